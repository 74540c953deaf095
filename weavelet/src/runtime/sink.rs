//! The log sink of a weavelet under an envelope: entries go up the pipe to
//! the deployer as `LogEntryBatch` messages.
//!
//! # When the pipe cannot keep up
//!
//! A logging call never waits: it puts the entry in a queue of at most
//! [`QUEUE`] entries and returns. One task sends what accumulates as a
//! batch, and waits until the batch is written to the pipe before it takes
//! the next, so the connection's own write queue holds at most one batch of
//! logs. The deployer reads the pipe only as fast as it can store entries,
//! so an app that logs faster than that fills the queue; entries logged
//! while it is full are dropped and counted, and the next batch carries a
//! `warn` entry of the runtime's saying how many were lost
//! (`N log entries dropped: …`). Nothing is lost without a trace in the log
//! store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};
use weaver_proto::Conn;
use weaver_proto::runtime::{
    EnvelopeMsg, LogEntry, LogEntryBatch, WeaveletArgs, WeaveletMsg, weavelet_msg,
};

use crate::Error;
use crate::logger::LogSink;

type EnvConn = Conn<WeaveletMsg, EnvelopeMsg>;

/// Entries that may wait for the pipe before new ones are dropped.
pub(crate) const QUEUE: usize = 8192;
/// Most entries in one batch.
const MAX_BATCH: usize = 1024;

/// Sends log entries up the pipe, batching what accumulates while the
/// previous batch is being written.
pub(crate) struct PipeSink {
    app: String,
    deployment: String,
    node: String,
    tx: mpsc::Sender<SinkMsg>,
    /// Entries dropped because the queue was full, not yet reported.
    dropped: Arc<AtomicU64>,
}

// Nearly every message is an entry, so boxing it would add an allocation
// per log call to save nothing.
#[allow(clippy::large_enum_variant)]
enum SinkMsg {
    Entry(LogEntry),
    /// Acknowledged once every entry before it is written to the pipe.
    Flush(oneshot::Sender<()>),
}

// === impl PipeSink ===

impl PipeSink {
    /// A sink for the weavelet `args` describes, sending on `conn`; spawns
    /// the task that sends batches.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub(crate) fn new(conn: EnvConn, args: &WeaveletArgs) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let sender = Sender {
            conn,
            rx,
            dropped: dropped.clone(),
            origin: (
                args.app.clone(),
                args.deployment_id.clone(),
                args.id.clone(),
            ),
        };
        tokio::spawn(sender.run());
        Self {
            app: args.app.clone(),
            deployment: args.deployment_id.clone(),
            node: args.id.clone(),
            tx,
            dropped,
        }
    }

    /// Logs `e` as an error of the runtime's about `component`.
    pub(crate) fn system_error(&self, component: &str, e: &Error) {
        self.log(system_entry(component, "error", e.to_string()));
    }

    /// Waits until every entry logged so far is written to the pipe (or the
    /// pipe is gone).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub(crate) async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(SinkMsg::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

impl LogSink for PipeSink {
    fn log(&self, mut entry: LogEntry) {
        entry.app.clone_from(&self.app);
        entry.version.clone_from(&self.deployment);
        entry.node.clone_from(&self.node);
        // Full: counted and reported in the next batch. Closed: the pipe is
        // gone, and with it anyone to tell.
        if self.tx.try_send(SinkMsg::Entry(entry)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The task that turns queued entries into batches.
struct Sender {
    conn: EnvConn,
    rx: mpsc::Receiver<SinkMsg>,
    dropped: Arc<AtomicU64>,
    /// App, deployment and weavelet id, for the drop reports.
    origin: (String, String, String),
}

impl Sender {
    /// Sends batches until every sink handle is gone or the pipe closes.
    async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let mut entries = Vec::new();
            let mut acks = Vec::new();
            let mut next = Some(first);
            while let Some(msg) = next {
                match msg {
                    SinkMsg::Entry(e) => entries.push(e),
                    SinkMsg::Flush(ack) => acks.push(ack),
                }
                next = if entries.len() < MAX_BATCH {
                    self.rx.try_recv().ok()
                } else {
                    None
                };
            }
            let dropped = self.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                entries.push(self.drop_report(dropped));
            }
            if !entries.is_empty() && !self.send(entries).await {
                return;
            }
            for ack in acks {
                let _ = ack.send(());
            }
        }
    }

    /// Sends one batch and waits until it is written; false if the pipe is
    /// gone.
    async fn send(&self, entries: Vec<LogEntry>) -> bool {
        let msg = WeaveletMsg {
            msg: Some(weavelet_msg::Msg::LogEntryBatch(LogEntryBatch { entries })),
            ..Default::default()
        };
        // Waiting for the write is what bounds the logs in the
        // connection's write queue to this one batch.
        self.conn.send(msg).is_ok() && self.conn.flush().await.is_ok()
    }

    fn drop_report(&self, dropped: u64) -> LogEntry {
        let mut e = system_entry(
            "weavelet",
            "warn",
            format!(
                "{dropped} log entries dropped: the app logged faster than the deployer \
                 stored them (the weavelet queues at most {QUEUE})"
            ),
        );
        let (app, deployment, node) = &self.origin;
        e.app.clone_from(app);
        e.version.clone_from(deployment);
        e.node.clone_from(node);
        e
    }
}

/// An entry of the runtime's own (marked `serviceweaver/system`).
fn system_entry(component: &str, level: &str, msg: String) -> LogEntry {
    LogEntry {
        component: component.to_string(),
        time_micros: crate::logger::now_micros(),
        level: level.to_string(),
        line: -1,
        msg,
        attrs: vec!["serviceweaver/system".to_string(), String::new()],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use weaver_proto::{Incoming, MAX_FRAME_LEN};

    use super::*;

    fn entry(i: usize) -> LogEntry {
        LogEntry {
            component: "app::C".into(),
            level: "info".into(),
            msg: format!("entry {i}"),
            ..Default::default()
        }
    }

    /// A sink whose pipe is an in-memory one of `buffer` bytes, and the
    /// deployer's end of it.
    fn sink(buffer: usize) -> (PipeSink, Incoming<WeaveletMsg>, impl Sized) {
        let (a, b) = tokio::io::duplex(buffer);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let (conn, _incoming) = EnvConn::new(ar, aw, MAX_FRAME_LEN);
        let (deployer, from_weavelet) =
            Conn::<EnvelopeMsg, WeaveletMsg>::new(br, bw, MAX_FRAME_LEN);
        let args = WeaveletArgs {
            app: "app".into(),
            deployment_id: "dep".into(),
            id: "w1".into(),
            ..Default::default()
        };
        (PipeSink::new(conn, &args), from_weavelet, deployer)
    }

    async fn next_batch(incoming: &mut Incoming<WeaveletMsg>) -> Vec<LogEntry> {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), incoming.recv())
            .await
            .expect("a batch in time")
            .expect("the pipe is open");
        match msg.msg {
            Some(weavelet_msg::Msg::LogEntryBatch(b)) => b.entries,
            other => panic!("unexpected message {other:?}"),
        }
    }

    #[tokio::test]
    async fn entries_arrive_in_order_with_their_origin() {
        let (sink, mut incoming, _deployer) = sink(64 * 1024);
        for i in 0..3 {
            sink.log(entry(i));
        }
        sink.flush().await;
        let got = next_batch(&mut incoming).await;
        let msgs: Vec<_> = got.iter().map(|e| e.msg.as_str()).collect();
        assert_eq!(msgs, ["entry 0", "entry 1", "entry 2"]);
        assert!(
            got.iter()
                .all(|e| (e.app.as_str(), e.version.as_str(), e.node.as_str())
                    == ("app", "dep", "w1"))
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_says_how_many() {
        let (sink, mut incoming, _deployer) = sink(64 * 1024);
        // The sending task has not run yet: the queue fills, the rest is
        // dropped without the logging calls waiting.
        let total = QUEUE + 100;
        for i in 0..total {
            sink.log(entry(i));
        }
        let flushed = tokio::spawn(async move { sink.flush().await });
        let mut received = 0;
        let mut report = None;
        while received < QUEUE || report.is_none() {
            for e in next_batch(&mut incoming).await {
                if e.msg.contains("log entries dropped") {
                    assert_eq!(e.level, "warn");
                    assert!(weaver_proto::logging::is_system(&e));
                    report = Some(e.msg);
                } else {
                    assert_eq!(e.msg, format!("entry {received}"));
                    received += 1;
                }
            }
        }
        let report = report.expect("a drop report");
        assert!(report.starts_with("100 log entries dropped"), "{report}");
        assert_eq!(received, QUEUE);
        flushed.await.expect("flush finished");
    }
}
