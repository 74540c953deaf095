use weaver::Context;

#[weaver::component]
trait Greeter {
    async fn greet(&self, ctx: &Context, name: String) -> Result<String, std::io::Error>;
}

fn main() {}
