use weaver::Context;

#[weaver::component]
trait Greeter {
    fn greet(&self, ctx: &Context, name: String) -> weaver::Result<String>;
}

fn main() {}
