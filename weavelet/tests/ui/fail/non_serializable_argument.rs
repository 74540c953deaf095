use weaver::Context;

struct Opaque;

#[weaver::component]
trait Greeter {
    async fn greet(&self, ctx: &Context, who: Opaque) -> weaver::Result<String>;
}

fn main() {}
