//! The one thread that forks every child.
//!
//! Linux delivers the parent-death signal when the *thread* that forked the
//! child exits, not when the process does (prctl(2)). A child forked on a
//! tokio blocking-pool thread, or on a short-lived thread, would be killed
//! when that thread retires. So every fork happens on this thread, which is
//! started on first use and lives as long as the process.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::sync::mpsc;

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// The spawner thread's queue; `None` if the thread could not be created.
static SPAWNER: OnceLock<Option<mpsc::Sender<Job>>> = OnceLock::new();

/// Runs `f` on the spawner thread and returns its result, or `None` if the
/// thread is unavailable or `f` panicked.
pub(crate) async fn run<T, F>(f: F) -> Option<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    queue()?.send(job).ok()?;
    rx.await.ok()
}

fn queue() -> Option<&'static mpsc::Sender<Job>> {
    SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let started = std::thread::Builder::new()
                .name("weaver-spawner".into())
                .spawn(move || serve(rx));
            match started {
                Ok(_) => Some(tx),
                Err(error) => {
                    tracing::error!(%error, "cannot start the process spawner thread");
                    None
                }
            }
        })
        .as_ref()
}

fn serve(jobs: mpsc::Receiver<Job>) {
    // The sender lives in a static, so this loop never ends: the thread must
    // outlive every child it forked.
    for job in jobs {
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a spawn job panicked; the spawner thread carries on");
        }
    }
}
