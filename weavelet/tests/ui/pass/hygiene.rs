//! The macros' output names nothing from the caller's scope: it compiles
//! without the prelude and with the crate under another name.
#![no_implicit_prelude]

extern crate weaver as renamed;

#[renamed::component(crate = "::renamed")]
pub trait Echo {
    async fn echo(
        &self,
        ctx: &renamed::Context,
        s: ::std::string::String,
    ) -> renamed::Result<::std::string::String>;
}

#[renamed::implements(Echo, crate = "::renamed")]
struct EchoImpl;

impl Echo for EchoImpl {
    async fn echo(
        &self,
        _ctx: &renamed::Context,
        s: ::std::string::String,
    ) -> renamed::Result<::std::string::String> {
        ::std::result::Result::Ok(s)
    }
}

#[renamed::main(crate = "::renamed")]
struct App {
    echo: renamed::Ref<dyn Echo>,
}

fn main() {}
