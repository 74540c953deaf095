use weaver::Context;

#[weaver::component]
trait Clock {
    async fn now(&self, ctx: &Context) -> weaver::Result<u64>;
}

/// Not a clock.
struct NotAClock;

fn main() {
    let _ = weaver::testing::fake::<dyn Clock>(NotAClock);
}
