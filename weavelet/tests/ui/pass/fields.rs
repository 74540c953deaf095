//! What a field is follows from its type, not its type's name: user types
//! called `Config` and `Logger` are plain fields marked `#[weaver(default)]`.

use weaver::{Context, Ref};

#[derive(Default)]
struct Config {
    retries: u32,
}

#[derive(Default)]
struct Logger {
    lines: Vec<String>,
}

#[weaver::component]
pub trait Store {
    async fn size(&self, ctx: &Context) -> weaver::Result<u32>;
}

#[weaver::implements(Store)]
struct StoreImpl {
    #[weaver(default)]
    config: Config,
    #[weaver(default)]
    logger: Logger,
    real: weaver::Config<std::collections::BTreeMap<String, u32>>,
    log: weaver::Logger,
}

impl Store for StoreImpl {
    async fn size(&self, _ctx: &Context) -> weaver::Result<u32> {
        let _ = &self.log;
        Ok(self.config.retries + self.logger.lines.len() as u32 + self.real.len() as u32)
    }
}

#[weaver::main]
struct App {
    store: Ref<dyn Store>,
}

fn main() {
    let _ = weaver::run(|app: &'static App, ctx| async move {
        let _ = app.store.size(&ctx).await?;
        Ok(())
    });
}
