//! A weaver app that fails on purpose, for the tests of failure handling.
//!
//! `CRASH=before` panics before `weaver::run` (so before the handshake);
//! `CRASH=main` panics inside the app's main, after the handshake;
//! `CRASH=child` makes the `Worker` component's process exit when called;
//! anything else runs normally.

use weaver::{Context, Ref};

/// A component whose process can be made to die.
#[weaver::component]
pub(crate) trait Worker {
    /// Returns the worker's pid, or exits the process if `die`.
    async fn work(&self, ctx: &Context, die: bool) -> weaver::Result<u32>;
}

#[weaver::implements(Worker)]
struct WorkerImpl;

impl Worker for WorkerImpl {
    async fn work(&self, _ctx: &Context, die: bool) -> weaver::Result<u32> {
        if die {
            std::process::exit(3);
        }
        Ok(std::process::id())
    }
}

#[weaver::main]
struct App {
    worker: Ref<dyn Worker>,
}

#[tokio::main]
async fn main() -> weaver::Result<()> {
    let mode = std::env::var("CRASH").unwrap_or_default();
    if mode == "before" {
        panic!("crashy: failing before weaver::run, as asked");
    }
    weaver::run(|app: &'static App, ctx| async move {
        if mode == "main" {
            panic!("crashy: failing in main, as asked");
        }
        let pid = app.worker.get().work(&ctx, mode == "child").await?;
        eprintln!("worker pid {pid}");
        std::future::pending::<()>().await;
        Ok(())
    })
    .await
}
