use weaver::Context;

#[weaver::component(router = CacheRouter)]
trait Cache {
    async fn get(&self, ctx: &Context, key: String, shard: u64) -> weaver::Result<String>;
}

#[derive(Default)]
struct CacheRouter;

#[weaver::router(Cache)]
impl CacheRouter {
    fn get(&self, _ctx: &Context, key: String, _shard: &u32) -> String {
        key
    }
}

fn main() {}
