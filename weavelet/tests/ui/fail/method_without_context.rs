#[weaver::component]
trait Greeter {
    async fn greet(&self, name: String) -> weaver::Result<String>;
}

fn main() {}
