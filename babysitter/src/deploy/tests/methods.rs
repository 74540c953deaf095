//! The metrics poller and the per-method history of a deployment of
//! in-memory replicas, and `/debug/weaver/methods` on its status server.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use weaver_envelope::Exit;
use weaver_proto::metrics::{METHODS_PATH, MethodStats};

use super::mem::MemSpawner;
use super::{QUIET, assert_settled, deploy, live, next};
use crate::config::MAIN_COMPONENT;
use crate::deploy::METRICS_PERIOD;

/// The one row of `rows`, for `mem::B.ping`.
fn ping(rows: &[MethodStats]) -> &MethodStats {
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(
        (row.component.as_str(), row.method.as_str()),
        ("mem::B", "ping")
    );
    row
}

/// `GET path` from `addr`: the status code and the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let talk = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.expect("read");
        reply
    };
    let reply = tokio::time::timeout(Duration::from_secs(10), talk)
        .await
        .expect("the status server answers");
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head and a body");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, body.to_owned())
}

#[tokio::test(start_paused = true)]
async fn the_poller_polls_every_period_and_stops_at_teardown() {
    let (spawner, mut spawned) = MemSpawner::new([]);
    let (d, _data) = deploy("replicas = 1", spawner).await;
    let w = next(&mut spawned).await;
    let booted = Instant::now();
    w.set_calls(3);
    // Nobody asks: the poller alone picks the calls up. The clock is
    // paused (start_paused): this sleep is virtual time, which tokio moves
    // on only when every task is idle, so each tick's poll runs to its end
    // and nothing waits in real time; the ticks are the events awaited.
    tokio::time::sleep(METRICS_PERIOD * 3 + METRICS_PERIOD / 2).await;
    let last = d.shared.metrics.last_poll().expect("polled");
    // Ticks at boot and every period after (boot may precede `booted`).
    assert!(last > booted + METRICS_PERIOD * 2, "{:?}", last - booted);
    let rows = d.shared.metrics.methods(Instant::now(), false);
    assert_eq!(ping(&rows).total.calls, 3);

    d.shutdown(Duration::from_secs(1)).await;
    assert!(d.shared.collector.lock().expect("lock").is_none());
    // Virtual time again: a tick after teardown would have polled by now.
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        d.shared.metrics.last_poll(),
        Some(last),
        "polled after teardown"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_replica_adds_to_the_calls_of_the_one_it_replaces() {
    let (spawner, mut spawned) = MemSpawner::new([]);
    let (d, _data) = deploy("replicas = 1", spawner).await;
    let first = next(&mut spawned).await;
    first.set_calls(5);
    d.shared.poll_metrics().await;
    first.crash(Exit::from_code(1));
    let second = next(&mut spawned).await;
    // Restarts with the poller running, in the usual time.
    assert_settled(&d, &mut spawned).await;
    assert_eq!(live(&d, MAIN_COMPONENT), [second.id.as_str()]);
    second.set_calls(2);
    d.shared.poll_metrics().await;
    let rows = d.shared.metrics.methods(Instant::now(), false);
    let row = ping(&rows);
    // The first replica's 5 stay in the totals; the minute saw only 2.
    assert_eq!(
        (row.total.calls, row.hour.calls, row.minute.calls),
        (7, 7, 2)
    );
    assert_eq!(row.total.mean_latency_micros, 100.0);
    d.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn methods_are_served_as_json_summed_over_replicas() {
    let (spawner, mut spawned) = MemSpawner::new([]);
    // Start returns once the Main replicas are up and in the state.
    let (d, _data) = deploy("replicas = 2", spawner).await;
    let (a, b) = (next(&mut spawned).await, next(&mut spawned).await);
    a.set_calls(3);
    b.set_calls(4);
    let addr = d.status_addr().expect("a status server");

    let (code, body) = get(addr, METHODS_PATH).await;
    assert_eq!(code, 200, "{body}");
    let rows: Vec<MethodStats> = serde_json::from_str(&body).expect("JSON rows");
    let row = ping(&rows);
    assert_eq!(row.caller, None);
    for w in [&row.minute, &row.hour, &row.total] {
        assert_eq!((w.calls, w.errors), (7, 0), "{w:?}");
        assert_eq!((w.mean_latency_micros, w.p50_micros), (100.0, 500.0));
        assert!((w.p99_micros - 990.0).abs() < 1e-6, "{w:?}");
    }
    assert!(!body.contains("\"caller\""), "{body}");

    let (code, body) = get(addr, &format!("{METHODS_PATH}?by=caller")).await;
    assert_eq!(code, 200, "{body}");
    let rows: Vec<MethodStats> = serde_json::from_str(&body).expect("JSON rows");
    assert_eq!(ping(&rows).caller.as_deref(), Some("weaver::Main"));
    d.shutdown(Duration::from_secs(1)).await;
}
