use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use weaver_logs::{Query, Writer};
use weaver_proto::runtime::LogEntry;

use super::{LogOutput, STORE_QUEUE, TERMINAL_QUEUE};

/// A stdout that blocks every write until it is opened, like a pipe
/// nobody reads.
#[derive(Clone, Default)]
struct Gate {
    state: Arc<(Mutex<GateState>, Condvar)>,
}

#[derive(Default)]
struct GateState {
    /// Whether writes may proceed.
    open: bool,
    /// Everything written.
    out: Vec<u8>,
}

impl Gate {
    fn open(&self) {
        let (lock, cv) = &*self.state;
        lock.lock().unwrap().open = true;
        cv.notify_all();
    }

    fn text(&self) -> String {
        String::from_utf8(self.state.0.lock().unwrap().out.clone()).unwrap()
    }

    /// Waits (with a deadline) until the output satisfies `pred`.
    fn wait_for(&self, pred: impl Fn(&str) -> bool) -> String {
        let (lock, cv) = &*self.state;
        let guard = lock.lock().unwrap();
        let (guard, timeout) = cv
            .wait_timeout_while(guard, Duration::from_secs(10), |st| {
                !pred(&String::from_utf8_lossy(&st.out))
            })
            .unwrap();
        let text = String::from_utf8_lossy(&guard.out).into_owned();
        assert!(!timeout.timed_out(), "output so far:\n{text}");
        text
    }
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (lock, cv) = &*self.state;
        let mut st = cv.wait_while(lock.lock().unwrap(), |st| !st.open).unwrap();
        st.out.extend_from_slice(buf);
        cv.notify_all();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn entry(i: usize) -> LogEntry {
    LogEntry {
        app: "app".into(),
        version: "v".into(),
        node: "n".into(),
        component: "app::C".into(),
        time_micros: 1_000_000 + i as i64,
        level: "info".into(),
        msg: format!("entry {i}"),
        ..Default::default()
    }
}

fn stored(dir: &std::path::Path) -> usize {
    let query = Query::parse("", false).unwrap();
    weaver_logs::for_each(dir, &query, |_| Ok(())).unwrap() as usize
}

/// Sum of the N in `… N log lines not shown` notices.
fn skipped(text: &str) -> usize {
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("… ")?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

#[tokio::test]
async fn a_blocked_stdout_blocks_neither_writers_nor_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Gate::default();
    let logs = LogOutput::new(Box::new(gate.clone()), false, Writer::new(dir.path())).unwrap();
    let total = 4 * TERMINAL_QUEUE + 1;
    for i in 0..total {
        logs.write(vec![entry(i)]).await;
    }
    // Stdout has not taken a byte, yet the store holds every entry.
    tokio::time::timeout(Duration::from_secs(10), async {
        let (ack, stored) = tokio::sync::oneshot::channel();
        logs.push_store(super::StoreItem::Flush(ack));
        stored.await
    })
    .await
    .expect("the store is not blocked by stdout")
    .unwrap();
    assert_eq!(stored(dir.path()), total);
    assert_eq!(gate.text(), "");

    // Once stdout drains, every line is shown or counted as skipped.
    gate.open();
    let text =
        gate.wait_for(|t| t.lines().filter(|l| l.contains("entry ")).count() + skipped(t) == total);
    assert!(skipped(&text) > 0, "{text}");
    assert!(text.contains("log lines not shown; see weaver multi logs"));
}

#[tokio::test]
async fn writers_wait_for_room_in_the_store_queue() {
    let dir = tempfile::tempdir().unwrap();
    let logs = LogOutput::new(Box::new(std::io::sink()), false, Writer::new(dir.path())).unwrap();
    // Take all the room, as a store thread far behind would.
    let held = logs
        .room
        .clone()
        .acquire_many_owned(STORE_QUEUE)
        .await
        .unwrap();
    let mut write = std::pin::pin!(logs.write(vec![entry(0)]));
    tokio::select! {
        biased;
        () = &mut write => panic!("wrote into a full queue"),
        () = std::future::ready(()) => {}
    }
    drop(held);
    tokio::time::timeout(Duration::from_secs(10), write)
        .await
        .expect("room came back");
    logs.flush().await;
    assert_eq!(stored(dir.path()), 1);
}

#[tokio::test]
async fn flush_returns_while_stdout_stays_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let logs = LogOutput::new(Box::new(Gate::default()), false, Writer::new(dir.path())).unwrap();
    logs.write_raw("banner\n");
    logs.write_system(entry(0));
    logs.write(vec![entry(1), entry(2)]).await;
    logs.flush().await;
    assert_eq!(stored(dir.path()), 3);
}
