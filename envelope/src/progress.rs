//! How the supervisor tells a child's pipes that are slow to drain (a busy
//! handler) from pipes that will never end (held open by a process the child
//! left behind).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Shared by the tasks that read a child's pipes and the supervisor.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Notified whenever a reader delivers something.
    delivered: Notify,
    /// How many readers are inside a handler call right now.
    busy: AtomicUsize,
}

/// Marks a handler call as finished, even if its future is dropped.
struct Busy<'a>(&'a Progress);

// === impl Progress ===

impl Progress {
    /// Records that something was delivered.
    pub(crate) fn made(&self) {
        self.delivered.notify_one();
    }

    /// Runs a handler call; while it runs the pipes count as draining, however
    /// long it takes.
    pub(crate) async fn handling<F: Future>(&self, call: F) -> F::Output {
        self.busy.fetch_add(1, Ordering::AcqRel);
        let _busy = Busy(self);
        call.await
    }

    /// Whether a handler call is in progress.
    pub(crate) fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    /// Waits for the next delivery.
    pub(crate) async fn next(&self) {
        self.delivered.notified().await;
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        self.0.made();
    }
}
