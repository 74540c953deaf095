use weaver::{Context, Ref};

#[weaver::component]
trait Reverser {
    async fn reverse(&self, ctx: &Context, s: String) -> weaver::Result<String>;
}

#[weaver::implements(Reverser)]
struct ReverserImpl;

impl Reverser for ReverserImpl {
    async fn reverse(&self, _ctx: &Context, s: String) -> weaver::Result<String> {
        Ok(s)
    }
}

#[weaver::main]
struct App {
    reverser: Ref<ReverserImpl>,
}

fn main() {}
