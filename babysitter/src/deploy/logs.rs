//! Where a deployment's log entries go: appended to the log store
//! `weaver multi logs` reads, and pretty-printed to the operator's terminal.
//!
//! Neither write runs on the tokio workers that also drive the proxies and
//! the envelopes: a terminal that stops reading (ctrl-s, a `| less` nobody
//! scrolls) or a slow disk must not stall traffic. Each has a thread of its
//! own behind a bounded queue:
//!
//! ```text
//! replica batches ──(wait for room)──▶ store queue ──▶ store thread ──▶ log store
//! deployer entries ─(never wait)────▶      │               │
//!                                           │               └─(text; skip when full)─▶ terminal queue ──▶ terminal thread ──▶ stdout
//! ```
//!
//! # When a queue is full
//!
//! - **The store loses nothing.** Its queue holds at most [`STORE_QUEUE`]
//!   entries from replicas; a batch that does not fit waits in
//!   [`LogOutput::write`] for room. The envelope awaits that call before it
//!   reads more from the child's pipe, so a store that falls behind slows
//!   the child that logs, never the others, and drops nothing. The
//!   deployer's own entries ([`LogOutput::write_system`]) come from code that
//!   cannot wait; there are a handful per deployment event, so they are
//!   queued past the bound rather than lost.
//! - **The terminal may skip lines, and says so.** The store thread hands
//!   each stored batch's text to the terminal without ever waiting for it.
//!   When [`TERMINAL_QUEUE`] lines are already waiting for stdout, the new
//!   lines are counted instead of queued, and where they would have been the
//!   terminal shows `… N log lines not shown; see weaver multi logs`. Every
//!   one of them is in the store.
//! - **Teardown** ([`LogOutput::flush`]) waits until the store has every
//!   entry queued before it, and gives the terminal [`TERMINAL_GRACE`] to
//!   catch up; a terminal that is still blocked after that is left behind.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};
use weaver_logs::Writer;
use weaver_proto::logging::PrettyPrinter;
use weaver_proto::runtime::LogEntry;

use super::DeployError;

/// Entries from replicas that may wait for the store thread.
pub(crate) const STORE_QUEUE: u32 = 4096;
/// Lines that may wait for the terminal before new ones are skipped.
pub(crate) const TERMINAL_QUEUE: usize = 2048;
/// How long teardown waits for the terminal to show what is queued.
pub(crate) const TERMINAL_GRACE: Duration = Duration::from_secs(1);

/// The deployment's log output: a handle on the store and terminal threads.
///
/// Dropping it lets both threads finish what is queued and exit.
pub(crate) struct LogOutput {
    store: Arc<Queue<StoreItem>>,
    terminal: Arc<Queue<TermItem>>,
    /// Room in the store queue, in entries from replicas. The store thread
    /// gives permits back once it has appended the entries that took them.
    room: Arc<Semaphore>,
}

/// What the store thread is asked to do.
enum StoreItem {
    /// Append entries; then give `permits` back to the room.
    Entries {
        entries: Vec<LogEntry>,
        permits: u32,
    },
    /// Flush the store and hand every line before this to the terminal,
    /// then acknowledge.
    Flush(oneshot::Sender<()>),
}

/// What the terminal thread is asked to do.
enum TermItem {
    /// Pretty-printed entries, `lines` of them.
    Lines { text: String, lines: usize },
    /// Text that is never skipped (the app/deployment box).
    Raw(String),
    /// Lines skipped here because the terminal could not keep up.
    Skipped(usize),
    /// Flush stdout, then acknowledge.
    Flush(oneshot::Sender<()>),
}

/// A queue between tokio tasks (which never block on it) and one thread.
struct Queue<T> {
    /// Notified when an item arrives or the queue closes.
    ready: Condvar,
    /// The items and whether producers are gone.
    state: Mutex<QueueState<T>>,
}

struct QueueState<T> {
    items: VecDeque<T>,
    /// Lines queued for the terminal (unused by the store queue).
    lines: usize,
    closed: bool,
}

// === impl LogOutput ===

impl LogOutput {
    /// Starts the store and terminal threads.
    ///
    /// # Errors
    ///
    /// [`DeployError::Io`] if a thread cannot be started.
    pub(crate) fn new(
        out: Box<dyn Write + Send>,
        color: bool,
        store: Writer,
    ) -> Result<Self, DeployError> {
        let queue_store = Arc::new(Queue::new());
        let terminal = Arc::new(Queue::new());
        let room = Arc::new(Semaphore::new(STORE_QUEUE as usize));
        let spawn_error = |source| DeployError::Io {
            what: "start a log output thread".to_string(),
            source,
        };
        let term = terminal.clone();
        std::thread::Builder::new()
            .name("weaver-log-terminal".into())
            .spawn(move || run_terminal(&term, out))
            .map_err(spawn_error)?;
        let thread = StoreThread {
            queue: queue_store.clone(),
            terminal: terminal.clone(),
            room: room.clone(),
            printer: PrettyPrinter::new(color),
            store,
            store_failed: false,
        };
        if let Err(e) = std::thread::Builder::new()
            .name("weaver-log-store".into())
            .spawn(move || thread.run())
        {
            terminal.close();
            return Err(spawn_error(e));
        }
        Ok(Self {
            store: queue_store,
            terminal,
            room,
        })
    }

    /// Queues a replica's `entries` for the store (and the terminal),
    /// waiting while the store queue is full.
    ///
    /// # Cancel safety
    ///
    /// Cancelling while waiting for room queues nothing.
    pub(crate) async fn write(&self, entries: Vec<LogEntry>) {
        if entries.is_empty() {
            return;
        }
        // A batch larger than the whole queue waits for an empty one.
        let want = u32::try_from(entries.len())
            .unwrap_or(u32::MAX)
            .min(STORE_QUEUE);
        let permits = match self.room.acquire_many(want).await {
            Ok(p) => {
                p.forget();
                want
            }
            // Closed: the store thread is gone; `push` reports the loss.
            Err(_) => 0,
        };
        self.push_store(StoreItem::Entries { entries, permits });
    }

    /// Queues one of the deployer's own entries without waiting (see the
    /// module docs for why these may exceed the bound).
    pub(crate) fn write_system(&self, entry: LogEntry) {
        self.push_store(StoreItem::Entries {
            entries: vec![entry],
            permits: 0,
        });
    }

    /// Queues raw text (the app/deployment box) for the terminal; it is
    /// never skipped.
    pub(crate) fn write_raw(&self, text: &str) {
        self.terminal.push(TermItem::Raw(text.to_string()));
    }

    /// Waits until every entry queued before is in the store, then up to
    /// [`TERMINAL_GRACE`] for the terminal to show what it queued.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; the entries are stored all the same.
    pub(crate) async fn flush(&self) {
        let (ack, stored) = oneshot::channel();
        self.push_store(StoreItem::Flush(ack));
        let _ = stored.await;
        let (ack, shown) = oneshot::channel();
        self.terminal.push(TermItem::Flush(ack));
        if tokio::time::timeout(TERMINAL_GRACE, shown).await.is_err() {
            tracing::warn!("stdout is not being read; log lines not shown are in the log store");
        }
    }

    fn push_store(&self, item: StoreItem) {
        if let Err(StoreItem::Entries { entries, .. }) = self.store.try_push(item) {
            tracing::error!(
                entries = entries.len(),
                "the log store thread is gone; entries lost"
            );
        }
    }
}

impl Drop for LogOutput {
    fn drop(&mut self) {
        self.store.close();
    }
}

/// The store thread's state.
struct StoreThread {
    queue: Arc<Queue<StoreItem>>,
    terminal: Arc<Queue<TermItem>>,
    room: Arc<Semaphore>,
    printer: PrettyPrinter,
    store: Writer,
    /// Whether a store failure was already reported (report once).
    store_failed: bool,
}

impl StoreThread {
    /// Stores what arrives until the queue closes and is drained; then
    /// closes the terminal queue.
    fn run(mut self) {
        // Whatever ends this thread, waiting writers must not wait forever.
        let _done = Done {
            room: self.room.clone(),
            queue: self.queue.clone(),
            terminal: self.terminal.clone(),
        };
        while let Some(items) = self.queue.take() {
            let (mut text, mut lines) = (String::new(), 0);
            for item in items {
                match item {
                    StoreItem::Entries { entries, permits } => {
                        lines += self.append(entries, &mut text);
                        self.room.add_permits(permits as usize);
                    }
                    StoreItem::Flush(ack) => {
                        self.flush();
                        push_lines(&self.terminal, std::mem::take(&mut text), lines);
                        lines = 0;
                        let _ = ack.send(());
                    }
                }
            }
            // Readers in other processes see each batch at once.
            self.flush();
            push_lines(&self.terminal, text, lines);
        }
    }

    /// Stores `entries` and formats those shown on the terminal into
    /// `text`; returns how many lines it added.
    fn append(&mut self, entries: Vec<LogEntry>, text: &mut String) -> usize {
        let mut lines = 0;
        for mut e in entries {
            if let Err(err) = self.store.append(&mut e) {
                self.report_store_failure(&err);
            }
            // The runtime's own chatter is stored (see `--system`) but not
            // printed; its warnings and errors are.
            if e.level == "debug" && weaver_proto::logging::is_system(&e) {
                continue;
            }
            self.printer.format_into(&e, text);
            text.push('\n');
            lines += 1;
        }
        lines
    }

    fn flush(&mut self) {
        if let Err(err) = self.store.flush() {
            self.report_store_failure(&err);
        }
    }

    fn report_store_failure(&mut self, err: &weaver_logs::Error) {
        if !self.store_failed {
            self.store_failed = true;
            tracing::error!(error = %err, "cannot write the log store; entries are still printed");
        }
    }
}

/// Runs when the store thread ends, even by a panic.
struct Done {
    room: Arc<Semaphore>,
    queue: Arc<Queue<StoreItem>>,
    terminal: Arc<Queue<TermItem>>,
}

impl Drop for Done {
    fn drop(&mut self) {
        self.queue.close();
        self.room.close();
        self.terminal.close();
    }
}

/// Hands `lines` lines of `text` to the terminal, or counts them as
/// skipped if it already has [`TERMINAL_QUEUE`] lines waiting.
fn push_lines(terminal: &Queue<TermItem>, text: String, lines: usize) {
    if lines == 0 {
        return;
    }
    let mut st = terminal.lock();
    // One batch larger than the whole queue is shown if nothing waits.
    if st.lines > 0 && st.lines + lines > TERMINAL_QUEUE {
        match st.items.back_mut() {
            Some(TermItem::Skipped(n)) => *n += lines,
            _ => st.items.push_back(TermItem::Skipped(lines)),
        }
    } else {
        st.lines += lines;
        st.items.push_back(TermItem::Lines { text, lines });
    }
    drop(st);
    terminal.ready.notify_one();
}

/// Writes what the terminal queue holds to `out` until it closes.
///
/// Write errors are ignored: a closed stdout (`| head`) must not stop the
/// deployment.
fn run_terminal(queue: &Queue<TermItem>, mut out: Box<dyn Write + Send>) {
    while let Some(items) = queue.take() {
        let mut written = 0;
        for item in items {
            match item {
                TermItem::Lines { text, lines } => {
                    let _ = out.write_all(text.as_bytes());
                    written += lines;
                }
                TermItem::Raw(text) => {
                    let _ = out.write_all(text.as_bytes());
                }
                TermItem::Skipped(n) => {
                    let _ = writeln!(out, "… {n} log lines not shown; see weaver multi logs");
                }
                TermItem::Flush(ack) => {
                    let _ = out.flush();
                    let _ = ack.send(());
                }
            }
        }
        let _ = out.flush();
        // Lines count against the bound until they are written, so a
        // blocked stdout holds at most TERMINAL_QUEUE of them.
        queue.lock().lines -= written;
    }
}

// === impl Queue ===

impl<T> Queue<T> {
    fn new() -> Self {
        Self {
            ready: Condvar::new(),
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                lines: 0,
                closed: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState<T>> {
        // The state stays consistent across a panic: every change is one
        // push, pop or counter update.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item`; gives it back if the queue is closed.
    fn try_push(&self, item: T) -> Result<(), T> {
        let mut st = self.lock();
        if st.closed {
            return Err(item);
        }
        st.items.push_back(item);
        drop(st);
        self.ready.notify_one();
        Ok(())
    }

    /// Queues `item`, dropping it if the queue is closed.
    fn push(&self, item: T) {
        let _ = self.try_push(item);
    }

    /// Blocks until items arrive and takes them all; `None` once the queue
    /// is closed and empty.
    fn take(&self) -> Option<Vec<T>> {
        let mut st = self.lock();
        loop {
            if !st.items.is_empty() {
                return Some(st.items.drain(..).collect());
            }
            if st.closed {
                return None;
            }
            st = self.ready.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests;
