use weaver::Context;

#[weaver::component(router = CacheRouter)]
trait Cache {
    async fn get(&self, ctx: &Context, key: String) -> weaver::Result<String>;
    async fn put(&self, ctx: &Context, key: String, value: String) -> weaver::Result<()>;
}

#[derive(Default)]
struct CacheRouter;

// `put` is missing: its calls would land on any replica.
#[weaver::router(Cache)]
impl CacheRouter {
    fn get(&self, _ctx: &Context, key: &str) -> String {
        key.to_string()
    }
}

fn main() {}
