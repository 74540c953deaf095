use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::render::{id_color, palette};
use super::*;

/// Bounds every network test: a hang fails instead of stalling the suite.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

const NOW: i64 = 1_700_000_000_000_000;
const HELLO_ID: &str = "a4bba25b-6312-4af1-beec-447c33b8e805";
const CHAT_ID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn component(name: &str, replicas: &[(u32, &str)]) -> ComponentStatus {
    ComponentStatus {
        name: name.to_owned(),
        group: name.to_owned(),
        replicas: replicas
            .iter()
            .map(|(pid, id)| ReplicaStatus {
                pid: *pid,
                weavelet_id: (*id).to_owned(),
            })
            .collect(),
    }
}

fn listener(name: &str, address: &str) -> ListenerStatus {
    ListenerStatus {
        name: name.to_owned(),
        address: address.to_owned(),
    }
}

/// Two deployments, given out of order, with components and listeners out of
/// order and replicas not sorted by pid.
fn deployments() -> Vec<Status> {
    let hello = Status {
        app: "hello".into(),
        deployment_id: HELLO_ID.into(),
        submitted_at: NOW - 65_400_000,
        status_addr: "127.0.0.1:40001".parse().unwrap(),
        components: vec![
            component(
                "weaver::Main",
                &[(695111, "12345678-aaaa"), (695110, "0badcafe-1111")],
            ),
            component(
                "hello::Reverser",
                &[(695137, "e1f2a3b4-5555"), (695136, "d0c0ffee-4444")],
            ),
        ],
        listeners: vec![listener("hello", "127.0.0.1:12345")],
    };
    let chat = Status {
        app: "chat".into(),
        deployment_id: CHAT_ID.into(),
        submitted_at: NOW - 7_203_999_999,
        status_addr: "127.0.0.1:40002".parse().unwrap(),
        components: vec![
            component("weaver::Main", &[(8, "bbbbbbbb-2"), (7, "aaaaaaaa-1")]),
            component("chat::store::Cache", &[(42, "feedface-0")]),
        ],
        listeners: vec![
            listener("api", "[::]:41619"),
            listener("admin", "127.0.0.1:9001"),
        ],
    };
    vec![hello, chat]
}

const TWO_DEPLOYMENTS: &str = "\
╭───────────────────────────────────────────────────────╮
│ DEPLOYMENTS                                           │
├───────┬──────────────────────────────────────┬────────┤
│ APP   │ DEPLOYMENT                           │ AGE    │
├───────┼──────────────────────────────────────┼────────┤
│ chat  │ 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 │ 2h0m3s │
│ hello │ a4bba25b-6312-4af1-beec-447c33b8e805 │ 1m5s   │
╰───────┴──────────────────────────────────────┴────────╯
╭────────────────────────────────────────────────────────────────────────────╮
│ COMPONENTS                                                                 │
├───────┬────────────┬─────────────────┬────────────────┬────────────────────┤
│ APP   │ DEPLOYMENT │ COMPONENT       │ REPLICA PIDS   │ WEAVELET IDS       │
├───────┼────────────┼─────────────────┼────────────────┼────────────────────┤
│ chat  │ 0f1e2d3c   │ store::Cache    │ 42             │ feedface           │
│ chat  │ 0f1e2d3c   │ weaver::Main    │ 7, 8           │ aaaaaaaa, bbbbbbbb │
│ hello │ a4bba25b   │ hello::Reverser │ 695136, 695137 │ d0c0ffee, e1f2a3b4 │
│ hello │ a4bba25b   │ weaver::Main    │ 695110, 695111 │ 0badcafe, 12345678 │
╰───────┴────────────┴─────────────────┴────────────────┴────────────────────╯
╭─────────────────────────────────────────────────╮
│ LISTENERS                                       │
├───────┬────────────┬──────────┬─────────────────┤
│ APP   │ DEPLOYMENT │ LISTENER │ ADDRESS         │
├───────┼────────────┼──────────┼─────────────────┤
│ chat  │ 0f1e2d3c   │ admin    │ 127.0.0.1:9001  │
│ chat  │ 0f1e2d3c   │ api      │ [::]:41619      │
│ hello │ a4bba25b   │ hello    │ 127.0.0.1:12345 │
╰───────┴────────────┴──────────┴─────────────────╯
";

const NO_DEPLOYMENTS: &str = "\
╭────────────────────────╮
│ DEPLOYMENTS            │
├─────┬────────────┬─────┤
│ APP │ DEPLOYMENT │ AGE │
├─────┼────────────┼─────┤
╰─────┴────────────┴─────╯
╭────────────────────────────────────────────────────────────╮
│ COMPONENTS                                                 │
├─────┬────────────┬───────────┬──────────────┬──────────────┤
│ APP │ DEPLOYMENT │ COMPONENT │ REPLICA PIDS │ WEAVELET IDS │
├─────┼────────────┼───────────┼──────────────┼──────────────┤
╰─────┴────────────┴───────────┴──────────────┴──────────────╯
╭───────────────────────────────────────╮
│ LISTENERS                             │
├─────┬────────────┬──────────┬─────────┤
│ APP │ DEPLOYMENT │ LISTENER │ ADDRESS │
├─────┼────────────┼──────────┼─────────┤
╰─────┴────────────┴──────────┴─────────╯
";

/// Removes ANSI escape sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn renders_two_deployments_exactly() {
    assert_eq!(render_status(&deployments(), NOW, false), TWO_DEPLOYMENTS);
}

#[test]
fn renders_empty_tables_without_deployments() {
    assert_eq!(render_status(&[], NOW, false), NO_DEPLOYMENTS);
}

#[test]
fn sorts_deployments_of_one_app_by_submission_time() {
    let mut newer = deployments().remove(0);
    newer.deployment_id = "ffffffff-0000-0000-0000-000000000000".into();
    newer.submitted_at = NOW - 3_000_000;
    let older = deployments().remove(0);
    let text = render_status(&[newer, older], NOW, false);
    let ages: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("│ hello │"))
        .take(2)
        .collect();
    assert_eq!(
        ages,
        [
            "│ hello │ a4bba25b-6312-4af1-beec-447c33b8e805 │ 1m5s │",
            "│ hello │ ffffffff-0000-0000-0000-000000000000 │ 3s   │",
        ]
    );
}

#[test]
fn color_output_has_the_plain_layout() {
    let colored = render_status(&deployments(), NOW, true);
    assert_ne!(colored, TWO_DEPLOYMENTS);
    assert_eq!(strip_ansi(&colored), TWO_DEPLOYMENTS);
}

#[test]
fn color_output_styles_titles_ids_and_repeats() {
    let colored = render_status(&deployments(), NOW, true);
    let lines: Vec<&str> = colored.lines().collect();
    assert_eq!(
        lines[1],
        "│ \x1b[1mDEPLOYMENTS\x1b[0m                                           │"
    );
    // The full id: 8-char prefix underlined, all of it in the id's color.
    assert_eq!(
        lines[6],
        "│ hello │ \x1b[38;5;45m\x1b[4ma4bba25b\x1b[0m\x1b[38;5;45m-6312-4af1-beec-447c33b8e805\x1b[0m │ 1m5s   │"
    );
    // Second chat component: repeated APP and DEPLOYMENT dimmed, the rest not.
    assert_eq!(
        lines[14],
        "│ \x1b[38;5;245mchat\x1b[0m  │ \x1b[38;5;245m\x1b[4m0f1e2d3c\x1b[0m   │ weaver::Main    │ 7, 8           │ aaaaaaaa, bbbbbbbb │"
    );
    // The first row of a table is never dimmed.
    assert_eq!(
        lines[13],
        "│ chat  │ \x1b[38;5;169m\x1b[4m0f1e2d3c\x1b[0m   │ store::Cache    │ 42             │ feedface           │"
    );
}

#[test]
fn control_characters_cannot_break_the_layout() {
    let mut d = deployments().remove(0);
    d.app = "he\nllo\x1b[31m".into();
    let text = render_status(&[d], NOW, false);
    assert!(text.contains("│ he\\nllo\\u{1b}[31m │"), "{text}");
    assert!(!text.contains('\x1b'));
}

#[test]
fn id_colors_follow_the_go_palette() {
    let palette = palette();
    assert_eq!(
        (palette[0], palette[100], palette[159]),
        (1, 134, 219),
        "palette endpoints"
    );
    assert!(palette.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(id_color(HELLO_ID), 45);
    assert_eq!(id_color(CHAT_ID), 169);
}

#[test]
fn ages_use_go_duration_syntax_truncated_to_seconds() {
    let cases = [
        (0, "0s"),
        (999_999, "0s"),
        (3_000_000, "3s"),
        (59_999_999, "59s"),
        (60_000_000, "1m0s"),
        (65_400_000, "1m5s"),
        (3_599_000_000, "59m59s"),
        (3_600_000_000, "1h0m0s"),
        (7_203_000_000, "2h0m3s"),
        (90_061_000_000, "25h1m1s"),
    ];
    for (micros, text) in cases {
        assert_eq!(
            format_age(Duration::from_micros(micros)),
            text,
            "{micros}µs"
        );
    }
}

#[test]
fn future_submission_times_show_as_zero_age() {
    let mut d = deployments().remove(0);
    d.submitted_at = NOW + 5_000_000;
    let text = render_status(&[d], NOW, false);
    assert!(text.contains("│ 0s  │"), "{text}");
}

#[test]
fn component_names_keep_two_segments() {
    assert_eq!(short_component("weaver::Main"), "weaver::Main");
    assert_eq!(short_component("hello::Reverser"), "hello::Reverser");
    assert_eq!(short_component("app::store::cache::Cache"), "cache::Cache");
    assert_eq!(short_component("Solo"), "Solo");
}

#[test]
fn ids_shorten_to_eight_characters() {
    assert_eq!(short_id(HELLO_ID), "a4bba25b");
    assert_eq!(short_id("abc"), "abc");
    assert_eq!(short_id("ééééééééé"), "éééééééé");
}

#[test]
fn status_json_round_trips() {
    let status = deployments().remove(0);
    let json = serde_json::to_string(&status).unwrap();
    assert!(
        json.contains("\"status_addr\":\"127.0.0.1:40001\""),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
}

// === server and client ===

fn provider(status: Status, calls: Arc<AtomicUsize>) -> StatusProvider {
    Arc::new(move || {
        calls.fetch_add(1, Ordering::SeqCst);
        status.clone()
    })
}

#[tokio::test]
async fn server_and_client_round_trip() {
    let calls = Arc::new(AtomicUsize::new(0));
    let status = deployments().remove(0);
    let server = StatusServer::start(loopback(), provider(status.clone(), calls.clone()))
        .await
        .unwrap();
    let addr = server.addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    assert_eq!(fetch_status(addr, TEST_TIMEOUT).await.unwrap(), status);
    // The provider runs on every request, so the status is always current.
    fetch_status(addr, TEST_TIMEOUT).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    tokio::time::timeout(TEST_TIMEOUT, server.shutdown())
        .await
        .unwrap();
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = StatusServer::start(loopback(), provider(deployments().remove(0), calls))
        .await
        .unwrap();
    let addr = server.addr();
    fetch_status(addr, TEST_TIMEOUT).await.unwrap();
    tokio::time::timeout(TEST_TIMEOUT, server.shutdown())
        .await
        .unwrap();
    let err = fetch_status(addr, TEST_TIMEOUT).await.unwrap_err();
    assert!(err.is_refused(), "{err:?}");
}

#[tokio::test]
async fn connection_refused_is_distinguishable() {
    // Bind and drop a listener to get a port nothing listens on.
    let addr = tokio::net::TcpListener::bind(loopback())
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = fetch_status(addr, TEST_TIMEOUT).await.unwrap_err();
    assert!(err.is_refused(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("no status server at {addr} (connection refused)")
    );
}

#[tokio::test]
async fn a_silent_server_times_out_and_is_not_refused() {
    // A bound listener that never accepts: the connect succeeds (backlog),
    // the request is never answered.
    let silent = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = silent.local_addr().unwrap();
    let timeout = Duration::from_millis(100);
    let err = fetch_status(addr, timeout).await.unwrap_err();
    assert!(matches!(err, StatusError::Timeout { .. }), "{err:?}");
    assert!(!err.is_refused());
}

#[tokio::test]
async fn other_paths_and_methods_are_rejected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let calls = Arc::new(AtomicUsize::new(0));
    let server = StatusServer::start(loopback(), provider(deployments().remove(0), calls.clone()))
        .await
        .unwrap();
    let addr = server.addr();
    let exchange = |request: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply
    };
    let not_found = tokio::time::timeout(
        TEST_TIMEOUT,
        exchange("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await
    .unwrap();
    assert!(not_found.starts_with("HTTP/1.1 404 "), "{not_found}");
    let post = tokio::time::timeout(
        TEST_TIMEOUT,
        exchange(
            "POST /debug/weaver/status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
        ),
    )
    .await
    .unwrap();
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    assert!(post.to_ascii_lowercase().contains("allow: get"), "{post}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_non_status_reply_is_a_decode_error() {
    use tokio::io::AsyncWriteExt;

    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let body = "{\"not\":\"a status\"}";
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(reply.as_bytes()).await.unwrap();
        // Keep the stream open until the client has read the reply.
        let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut [0; 1024]).await;
    });
    let err = fetch_status(addr, TEST_TIMEOUT).await.unwrap_err();
    assert!(matches!(err, StatusError::Decode { .. }), "{err:?}");
    server.abort();
}
