use weaver::Context;

#[weaver::component]
trait Greeter {
    async fn greet(&self, ctx: &Context, name: &str) -> weaver::Result<String>;
}

fn main() {}
