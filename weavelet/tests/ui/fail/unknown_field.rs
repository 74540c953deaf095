use std::collections::HashMap;
use std::sync::Mutex;

use weaver::Context;

#[weaver::component]
trait Counter {
    async fn add(&self, ctx: &Context, n: u64) -> weaver::Result<u64>;
}

#[weaver::implements(Counter)]
struct CounterImpl {
    // Not a Ref, Listener, Config or Logger, and not marked default.
    counts: Mutex<HashMap<String, u64>>,
}

impl Counter for CounterImpl {
    async fn add(&self, _ctx: &Context, n: u64) -> weaver::Result<u64> {
        let _ = &self.counts;
        Ok(n)
    }
}

fn main() {}
