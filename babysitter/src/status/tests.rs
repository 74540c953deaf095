//! The status server, driven with raw HTTP/1.1 (the client that parses its
//! replies lives in the CLI crate, with its own tests against this server).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Bounds every network test: a hang fails instead of stalling the suite.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

const GET_STATUS: &str =
    "GET /debug/weaver/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn hello() -> Status {
    Status {
        app: "hello".into(),
        deployment_id: "a4bba25b-6312-4af1-beec-447c33b8e805".into(),
        submitted_at: 1_700_000_000_000_000,
        status_addr: "127.0.0.1:40001".parse().unwrap(),
        components: vec![ComponentStatus {
            name: "hello::Reverser".into(),
            group: "hello::Reverser".into(),
            replicas: vec![ReplicaStatus {
                pid: 695136,
                weavelet_id: "d0c0ffee-4444".into(),
                index: 0,
                restarts: 0,
            }],
        }],
        listeners: vec![ListenerStatus {
            name: "hello".into(),
            address: "127.0.0.1:12345".into(),
        }],
        sections: Default::default(),
    }
}

fn provider(status: Status, calls: Arc<AtomicUsize>) -> StatusProvider {
    Arc::new(move || {
        calls.fetch_add(1, Ordering::SeqCst);
        status.clone()
    })
}

/// Sends `request` on a new connection and reads the reply until the server
/// closes it.
async fn exchange(addr: SocketAddr, request: &str) -> String {
    let talk = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply
    };
    tokio::time::timeout(TEST_TIMEOUT, talk).await.unwrap()
}

#[test]
fn status_json_round_trips() {
    let status = hello();
    let json = serde_json::to_string(&status).unwrap();
    assert!(
        json.contains("\"status_addr\":\"127.0.0.1:40001\""),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
}

#[tokio::test]
async fn get_answers_the_current_status_as_json() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = StatusServer::start(loopback(), provider(hello(), calls.clone()))
        .await
        .unwrap();
    let addr = server.addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let reply = exchange(addr, GET_STATUS).await;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    assert_eq!(serde_json::from_str::<Status>(body).unwrap(), hello());
    // The provider runs on every request, so the status is always current.
    exchange(addr, GET_STATUS).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    tokio::time::timeout(TEST_TIMEOUT, server.shutdown())
        .await
        .unwrap();
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = StatusServer::start(loopback(), provider(hello(), calls))
        .await
        .unwrap();
    let addr = server.addr();
    assert!(
        exchange(addr, GET_STATUS)
            .await
            .starts_with("HTTP/1.1 200 ")
    );
    tokio::time::timeout(TEST_TIMEOUT, server.shutdown())
        .await
        .unwrap();
    let err = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

#[tokio::test]
async fn other_paths_and_methods_are_rejected() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = StatusServer::start(loopback(), provider(hello(), calls.clone()))
        .await
        .unwrap();
    let addr = server.addr();
    let not_found = exchange(
        addr,
        "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(not_found.starts_with("HTTP/1.1 404 "), "{not_found}");
    let post = exchange(
        addr,
        "POST /debug/weaver/status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    assert!(post.to_ascii_lowercase().contains("allow: get"), "{post}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_port_in_use_is_a_bind_error() {
    let taken = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = taken.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let err = StatusServer::start(addr, provider(hello(), calls))
        .await
        .unwrap_err();
    assert!(matches!(err, StatusError::Bind { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("cannot bind the status server to {addr}")
    );
}

fn two_replicas() -> MetricsProvider {
    use weaver_proto::prometheus::Snapshot;
    use weaver_proto::runtime::{MetricDef, MetricType, MetricValue};
    let replica = |node: &str, v: f64| Snapshot {
        def: MetricDef {
            id: 1,
            name: "bank_deposits".into(),
            typ: MetricType::Counter as i32,
            help: "Deposits".into(),
            labels: [("serviceweaver_node".to_owned(), node.to_owned())].into(),
            bounds: Vec::new(),
        },
        value: MetricValue {
            id: 1,
            value: v,
            counts: Vec::new(),
        },
    };
    let metrics = vec![replica("aaaaaaaa-1", 2.0), replica("bbbbbbbb-2", 3.0)];
    Arc::new(move || {
        let metrics = metrics.clone();
        Box::pin(async move { metrics })
    })
}

fn is_sample(line: &str) -> bool {
    !line.is_empty() && !line.starts_with('#')
}

/// The body of `GET <target>`, after checking it is Prometheus text.
async fn get_prometheus(addr: SocketAddr, target: &str) -> String {
    let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let reply = exchange(addr, &request).await;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_owned()
}

#[tokio::test]
async fn prometheus_page_shows_each_replica_or_their_sum() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server =
        StatusServer::start_with_metrics(loopback(), provider(hello(), calls), two_replicas())
            .await
            .unwrap();
    let addr = server.addr();
    let each = get_prometheus(addr, PROMETHEUS_PATH).await;
    assert!(
        each.contains(&format!("#   metrics_path: {PROMETHEUS_PATH}\n")),
        "{each}"
    );
    assert!(
        each.contains(&format!("#     - targets: ['{addr}']\n")),
        "{each}"
    );
    let samples: Vec<_> = each.lines().filter(|l| is_sample(l)).collect();
    assert_eq!(
        samples,
        [
            "bank_deposits{serviceweaver_node=\"aaaaaaaa\"} 2",
            "bank_deposits{serviceweaver_node=\"bbbbbbbb\"} 3",
        ],
        "{each}"
    );
    let summed = get_prometheus(addr, "/debug/weaver/prometheus?replicas=sum").await;
    let samples: Vec<_> = summed.lines().filter(|l| is_sample(l)).collect();
    assert_eq!(samples, ["bank_deposits 5"], "{summed}");
    let request =
        "GET /debug/weaver/metrics?replicas=sum HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let reply = exchange(addr, request).await;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let metrics: Vec<Metric> = serde_json::from_str(body).unwrap();
    let got: Vec<_> = metrics
        .iter()
        .map(|m| (m.name.as_str(), m.kind, m.labels.len(), m.value))
        .collect();
    assert_eq!(
        got,
        [("bank_deposits", MetricKind::Counter, 0, 5.0)],
        "{body}"
    );
    tokio::time::timeout(TEST_TIMEOUT, server.shutdown())
        .await
        .unwrap();
}

/// Answers every profile request with `data` and `errors`, recording the
/// requested duration.
fn profiles(data: &'static [u8], errors: &'static [&'static str]) -> ProfileProvider {
    Arc::new(move |req| {
        Box::pin(async move {
            let mut errors: Vec<String> = errors.iter().map(|e| (*e).to_owned()).collect();
            errors.push(format!("asked for {} ns", req.cpu_duration_ns));
            Profiled {
                data: data.to_vec(),
                errors,
            }
        })
    })
}

async fn start_profiles(p: ProfileProvider) -> StatusServer {
    let none: MetricsProvider = Arc::new(|| Box::pin(async { Vec::new() }));
    let no_methods: MethodsProvider = Arc::new(|_| Box::pin(async { Vec::new() }));
    let calls = Arc::new(AtomicUsize::new(0));
    StatusServer::start_with_profiles(loopback(), provider(hello(), calls), none, no_methods, p)
        .await
        .unwrap()
}

fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn profiles_are_served_with_the_groups_left_out_in_a_header() {
    let server = start_profiles(profiles(b"pprof-bytes", &["group b: busy\nnow"])).await;
    let reply = exchange(server.addr(), &get("/debug/weaver/profile?seconds=1.5")).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(
        reply.contains("content-type: application/octet-stream\r\n"),
        "{reply}"
    );
    assert!(
        reply.contains("x-weaver-profile-errors: group b: busy?now; asked for 1500000000 ns\r\n"),
        "{reply}"
    );
    assert!(reply.ends_with("\r\n\r\npprof-bytes"), "{reply}");

    let reply = exchange(server.addr(), &get("/debug/weaver/profile?seconds=0")).await;
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply}");
    assert!(
        reply.ends_with("\r\n\r\ninvalid zero duration for the CPU profile collection\n"),
        "{reply}"
    );
    let reply = exchange(server.addr(), &get("/debug/weaver/profile?type=heap")).await;
    assert!(reply.contains("heap profiles are not supported"), "{reply}");
    server.shutdown().await;
}

#[tokio::test]
async fn no_profile_at_all_is_a_bad_gateway_with_every_reason() {
    let server = start_profiles(profiles(b"", &["group a: gone"])).await;
    let reply = exchange(server.addr(), &get("/debug/weaver/profile?seconds=1")).await;
    assert!(reply.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{reply}");
    assert!(
        reply.ends_with("\r\n\r\ngroup a: gone\nasked for 1000000000 ns\n"),
        "{reply}"
    );
    server.shutdown().await;
}
