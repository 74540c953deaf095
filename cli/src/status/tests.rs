use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use weaver_babysitter::{
    ComponentStatus, ListenerStatus, Registration, Registry, ReplicaStatus, Status, StatusProvider,
    StatusServer,
};

use super::client::{FetchError, fetch_status};
use super::json::render_json;
use super::live::{Liveness, check_liveness, live};
use super::render::{format_age, id_color, palette, render_status, short_component, short_id};
use super::{Format, Listed, format_listed};

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
                index: 0,
                restarts: 0,
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
        sections: Default::default(),
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
        sections: Default::default(),
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

// === JSON ===

/// The fixture as `multi status` lists it: hello's babysitter is pid 4242,
/// chat's 4343.
fn listed() -> Vec<Listed> {
    deployments()
        .into_iter()
        .zip([4242, 4343])
        .map(|(status, pid)| Listed {
            pid,
            has_status_server: true,
            status,
        })
        .collect()
}

const TWO_DEPLOYMENTS_JSON: &str = r#"{
  "deployments": [
    {
      "app": "chat",
      "deployment_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
      "started_at": "2023-11-14T20:13:16.000001Z",
      "age_secs": 7203,
      "pid": 4343,
      "status_addr": "127.0.0.1:40002",
      "components": [
        {
          "name": "chat::store::Cache",
          "group": "chat::store::Cache",
          "replicas": [
            {
              "pid": 42,
              "weavelet_id": "feedface-0",
              "restarts": 0
            }
          ]
        },
        {
          "name": "weaver::Main",
          "group": "weaver::Main",
          "replicas": [
            {
              "pid": 7,
              "weavelet_id": "aaaaaaaa-1",
              "restarts": 0
            },
            {
              "pid": 8,
              "weavelet_id": "bbbbbbbb-2",
              "restarts": 0
            }
          ]
        }
      ],
      "listeners": [
        {
          "name": "admin",
          "address": "127.0.0.1:9001"
        },
        {
          "name": "api",
          "address": "[::]:41619"
        }
      ]
    },
    {
      "app": "hello",
      "deployment_id": "a4bba25b-6312-4af1-beec-447c33b8e805",
      "started_at": "2023-11-14T22:12:14.600000Z",
      "age_secs": 65,
      "pid": 4242,
      "status_addr": "127.0.0.1:40001",
      "components": [
        {
          "name": "hello::Reverser",
          "group": "hello::Reverser",
          "replicas": [
            {
              "pid": 695136,
              "weavelet_id": "d0c0ffee-4444",
              "restarts": 0
            },
            {
              "pid": 695137,
              "weavelet_id": "e1f2a3b4-5555",
              "restarts": 0
            }
          ]
        },
        {
          "name": "weaver::Main",
          "group": "weaver::Main",
          "replicas": [
            {
              "pid": 695110,
              "weavelet_id": "0badcafe-1111",
              "restarts": 0
            },
            {
              "pid": 695111,
              "weavelet_id": "12345678-aaaa",
              "restarts": 0
            }
          ]
        }
      ],
      "listeners": [
        {
          "name": "hello",
          "address": "127.0.0.1:12345"
        }
      ]
    }
  ]
}
"#;

#[test]
fn json_lists_two_deployments_exactly_in_table_order() {
    assert_eq!(render_json(&listed(), NOW), TWO_DEPLOYMENTS_JSON);
}

#[test]
fn json_without_deployments_is_an_empty_list() {
    assert_eq!(render_json(&[], NOW), "{\n  \"deployments\": []\n}\n");
}

#[test]
fn json_of_a_single_process_run_has_no_status_addr() {
    let mut run = listed().remove(0);
    run.has_status_server = false;
    run.status.submitted_at = NOW + 5_000_000;
    let json: serde_json::Value = serde_json::from_str(&render_json(&[run], NOW)).unwrap();
    let d = &json["deployments"][0];
    assert_eq!(d["status_addr"], serde_json::Value::Null);
    assert!(d.as_object().unwrap().contains_key("status_addr"));
    // A clock ahead of ours is age 0, as in the tables.
    assert_eq!(d["age_secs"], 0);
    assert_eq!(d["pid"], 4242);
}

#[test]
fn the_table_format_is_the_tables() {
    assert_eq!(
        format_listed(listed(), Format::Table, NOW, false),
        TWO_DEPLOYMENTS
    );
    assert_eq!(
        format_listed(listed(), Format::Json, NOW, false),
        TWO_DEPLOYMENTS_JSON
    );
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
    assert!(matches!(err, FetchError::Timeout { .. }), "{err:?}");
    assert!(!err.is_refused());
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
    assert!(matches!(err, FetchError::Decode { .. }), "{err:?}");
    server.abort();
}

// === liveness ===

fn registration(id: &str, status_addr: SocketAddr) -> Registration {
    Registration {
        deployment_id: id.to_owned(),
        app: "hello".to_owned(),
        status_addr,
        pid: std::process::id(),
        started_at: 1_700_000_000_000_000,
    }
}

/// A status server that reports deployment `id`.
async fn server_for(id: &str) -> StatusServer {
    let mut status = deployments().remove(0);
    status.deployment_id = id.to_owned();
    let calls = Arc::new(AtomicUsize::new(0));
    StatusServer::start(loopback(), provider(status, calls))
        .await
        .unwrap()
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    listener.local_addr().unwrap()
}

fn registered_ids(registry: &Registry) -> Vec<String> {
    let listed = registry.list().unwrap();
    listed.into_iter().map(|r| r.deployment_id).collect()
}

#[tokio::test]
async fn live_keeps_deployments_that_answer_with_their_id() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path()).unwrap();
    let server = server_for("alive").await;
    registry
        .register(&registration("alive", server.addr()))
        .unwrap();

    let live = tokio::time::timeout(TEST_TIMEOUT, live(&registry, TEST_TIMEOUT))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].registration.deployment_id, "alive");
    assert_eq!(live[0].status.as_ref().unwrap().deployment_id, "alive");
    assert_eq!(registered_ids(&registry), ["alive"]);
    server.shutdown().await;
}

#[tokio::test]
async fn live_removes_registrations_of_dead_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path()).unwrap();
    // A process that has exited and been reaped: its pid no longer exists.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    // Its status server still answers, so only the pid shows it is dead.
    let server = server_for("dead").await;
    let mut reg = registration("dead", server.addr());
    reg.pid = dead_pid;
    registry.register(&reg).unwrap();

    assert!(matches!(
        check_liveness(&reg, TEST_TIMEOUT).await,
        Liveness::Dead(_)
    ));
    let live = live(&registry, TEST_TIMEOUT).await.unwrap();
    assert!(live.is_empty());
    assert!(registered_ids(&registry).is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn live_removes_registrations_whose_server_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path()).unwrap();
    registry
        .register(&registration("refused", closed_port().await))
        .unwrap();
    let live = tokio::time::timeout(TEST_TIMEOUT, live(&registry, TEST_TIMEOUT))
        .await
        .unwrap()
        .unwrap();
    assert!(live.is_empty());
    assert!(registered_ids(&registry).is_empty());
}

#[tokio::test]
async fn live_removes_registrations_answered_by_another_deployment() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path()).unwrap();
    let server = server_for("someone-else").await;
    registry
        .register(&registration("stale", server.addr()))
        .unwrap();
    let live = tokio::time::timeout(TEST_TIMEOUT, live(&registry, TEST_TIMEOUT))
        .await
        .unwrap()
        .unwrap();
    assert!(live.is_empty());
    assert!(registered_ids(&registry).is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn live_keeps_deployments_it_cannot_decide_on() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path()).unwrap();
    // Listening but never answering: the babysitter may just be busy.
    let silent = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    registry
        .register(&registration("busy", silent.local_addr().unwrap()))
        .unwrap();
    let server = server_for("alive").await;
    let mut alive = registration("alive", server.addr());
    alive.started_at += 1;
    registry.register(&alive).unwrap();

    let live = tokio::time::timeout(TEST_TIMEOUT, live(&registry, Duration::from_millis(100)))
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<&str> = live
        .iter()
        .map(|d| d.registration.deployment_id.as_str())
        .collect();
    assert_eq!(ids, ["busy", "alive"]);
    assert!(matches!(live[0].status, Err(FetchError::Timeout { .. })));
    assert!(live[1].status.is_ok());
    assert_eq!(registered_ids(&registry), ["busy", "alive"]);
    server.shutdown().await;
}

/// A status server whose profiles are `data`, with `errors` for the
/// groups left out.
async fn profile_server(data: &'static [u8], errors: &'static [&'static str]) -> StatusServer {
    let calls = Arc::new(AtomicUsize::new(0));
    let metrics: weaver_babysitter::MetricsProvider = Arc::new(|| Box::pin(async { Vec::new() }));
    let methods: weaver_babysitter::MethodsProvider = Arc::new(|_| Box::pin(async { Vec::new() }));
    let profiles: weaver_babysitter::ProfileProvider = Arc::new(move |_| {
        Box::pin(async move {
            weaver_babysitter::Profiled {
                data: data.to_vec(),
                errors: errors.iter().map(|e| (*e).to_owned()).collect(),
            }
        })
    });
    let status = provider(deployments().remove(0), calls);
    StatusServer::start_with_profiles(loopback(), status, metrics, methods, profiles)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_partial_profile_arrives_with_the_groups_left_out() {
    let target = "/debug/weaver/profile?seconds=1&type=cpu";
    let server = profile_server(b"\x1f\x8b-bytes", &["profile group b: busy"]).await;
    let got = super::fetch_profile(server.addr(), target, TEST_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(got.data, b"\x1f\x8b-bytes");
    assert_eq!(got.partial.as_deref(), Some("profile group b: busy"));

    let server = profile_server(b"", &["profile group a: gone", "profile group b: busy"]).await;
    let err = super::fetch_profile(server.addr(), target, TEST_TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the status server at {} answered HTTP 502: profile group a: gone\nprofile group b: busy",
            server.addr()
        )
    );
}
