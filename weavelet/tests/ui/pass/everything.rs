//! Every feature of the component macros in one valid program.

use serde::Deserialize;
use weaver::{Config, Context, Listener, Logger, Ref};

#[weaver::component(router = CacheRouter)]
pub trait Cache {
    async fn get(&self, ctx: &Context, key: String) -> weaver::Result<Option<String>>;
    async fn put(&self, ctx: &Context, key: String, value: String) -> weaver::Result<()>;
    #[weaver(not_retriable, unrouted)]
    async fn clear(&self, ctx: &Context) -> weaver::Result<u64>;
}

#[derive(Default)]
pub struct CacheRouter;

#[weaver::router(Cache)]
impl CacheRouter {
    fn get(&self, _ctx: &Context, key: &str) -> String {
        key.to_string()
    }
    fn put(&self, _ctx: &Context, key: &String, _value: &str) -> String {
        key.to_string()
    }
}

#[derive(Debug, Default, Deserialize)]
struct CacheConfig {
    #[serde(default)]
    capacity: usize,
}

#[weaver::implements(Cache, init)]
struct CacheImpl {
    config: Config<CacheConfig>,
    logger: Logger,
    #[weaver(default)]
    entries: std::sync::Mutex<std::collections::HashMap<String, String>>,
    admin: Listener,
}

impl CacheImpl {
    async fn init(&mut self, _ctx: &Context) -> weaver::Result<()> {
        self.logger
            .info_with("cache ready", ("capacity", self.config.capacity));
        let _ = &self.admin;
        Ok(())
    }
}

impl Cache for CacheImpl {
    async fn get(&self, _ctx: &Context, key: String) -> weaver::Result<Option<String>> {
        Ok(self.entries.lock().unwrap().get(&key).cloned())
    }
    async fn put(&self, _ctx: &Context, key: String, value: String) -> weaver::Result<()> {
        self.entries.lock().unwrap().insert(key, value);
        Ok(())
    }
    async fn clear(&self, _ctx: &Context) -> weaver::Result<u64> {
        let mut e = self.entries.lock().unwrap();
        let n = e.len() as u64;
        e.clear();
        Ok(n)
    }
}

#[weaver::main]
struct App {
    cache: Ref<dyn Cache>,
    #[weaver(listener = "public")]
    http: Listener,
}

/// Refs and clients are Send + Sync + Clone + 'static.
fn assert_handles() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Ref<dyn Cache>>();
    check::<CacheClient>();
}

fn main() {
    assert_handles();
    let _ = weaver::run(|app: &'static App, ctx| async move {
        app.cache.get().put(&ctx, "k".into(), "v".into()).await?;
        // A Ref derefs to the client.
        let _ = app.cache.clear(&ctx).await?;
        let _ = app.http.proxy_addr();
        Ok(())
    });
}
