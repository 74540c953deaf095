//! `weaver multi status` and `weaver single status`, run as the real binary
//! against a recorded registry: a multi registration whose "babysitter" is
//! this test process (serving a fixed status), and a single-process
//! registration naming this process too. Output is compared exactly.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use weaver_babysitter::{
    ComponentStatus, ListenerStatus, Registration, Registry, ReplicaStatus, Status, StatusProvider,
    StatusServer,
};

/// Bounds every run of the binary: a hang fails instead of stalling.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

const ID: &str = "a4bba25b-6312-4af1-beec-447c33b8e805";
const SINGLE_ID: &str = "5e1f0000-0000-4000-8000-000000000001";

/// 2100-01-01T00:00:00Z: in the future, so every age is 0 and the output
/// does not depend on the clock.
const STARTED_AT: i64 = 4_102_444_800_000_000;

fn replica(pid: u32, weavelet_id: &str) -> ReplicaStatus {
    ReplicaStatus {
        pid,
        weavelet_id: weavelet_id.to_owned(),
        index: 0,
        restarts: 0,
    }
}

fn status(status_addr: SocketAddr) -> Status {
    Status {
        app: "hello".into(),
        deployment_id: ID.into(),
        submitted_at: STARTED_AT,
        status_addr,
        components: vec![
            ComponentStatus {
                name: "weaver::Main".into(),
                group: "weaver::Main".into(),
                replicas: vec![replica(202, "bbbbbbbb-2"), replica(201, "aaaaaaaa-1")],
            },
            ComponentStatus {
                name: "hello::Reverser".into(),
                group: "hello::Reverser".into(),
                replicas: vec![replica(301, "cccccccc-3")],
            },
        ],
        listeners: vec![ListenerStatus {
            name: "hello".into(),
            address: "127.0.0.1:12345".into(),
        }],
        sections: Default::default(),
    }
}

/// Serves [`status`] at its own address and registers it in `data`.
async fn fake_babysitter(data: &Path) -> StatusServer {
    let addr = Arc::new(OnceLock::new());
    let provider: StatusProvider = {
        let addr = addr.clone();
        Arc::new(move || status(*addr.get().expect("set after binding")))
    };
    let server = StatusServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), provider)
        .await
        .unwrap();
    addr.set(server.addr()).unwrap();
    let registry = Registry::new(data.join("multi/registry")).unwrap();
    registry
        .register(&Registration {
            deployment_id: ID.into(),
            app: "hello".into(),
            status_addr: server.addr(),
            pid: std::process::id(),
            started_at: STARTED_AT,
        })
        .unwrap();
    server
}

/// Records a single-process run of this process in `data`.
fn fake_single_run(data: &Path) {
    let dir = data.join("single/registry");
    std::fs::create_dir_all(&dir).unwrap();
    let json = format!(
        r#"{{"deployment_id":"{SINGLE_ID}","app":"solo","pid":{},"started_at":{STARTED_AT},
            "components":["weaver::Main","solo::Echo"],"listeners":{{"http":"127.0.0.1:8080"}}}}"#,
        std::process::id()
    );
    std::fs::write(dir.join(format!("{SINGLE_ID}.json")), json).unwrap();
}

async fn weaver(data: &Path, args: &[&str]) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_weaver"))
        .args(args)
        .env("WEAVER_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .env_remove("WEAVER_LOG")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(TEST_TIMEOUT, run)
        .await
        .expect("weaver hung")
        .unwrap()
}

fn stdout(out: &Output) -> &str {
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    std::str::from_utf8(&out.stdout).unwrap()
}

const MULTI_TABLE: &str = "\
╭────────────────────────────────────────────────────╮
│ DEPLOYMENTS                                        │
├───────┬──────────────────────────────────────┬─────┤
│ APP   │ DEPLOYMENT                           │ AGE │
├───────┼──────────────────────────────────────┼─────┤
│ hello │ a4bba25b-6312-4af1-beec-447c33b8e805 │ 0s  │
╰───────┴──────────────────────────────────────┴─────╯
╭──────────────────────────────────────────────────────────────────────────╮
│ COMPONENTS                                                               │
├───────┬────────────┬─────────────────┬──────────────┬────────────────────┤
│ APP   │ DEPLOYMENT │ COMPONENT       │ REPLICA PIDS │ WEAVELET IDS       │
├───────┼────────────┼─────────────────┼──────────────┼────────────────────┤
│ hello │ a4bba25b   │ hello::Reverser │ 301          │ cccccccc           │
│ hello │ a4bba25b   │ weaver::Main    │ 201, 202     │ aaaaaaaa, bbbbbbbb │
╰───────┴────────────┴─────────────────┴──────────────┴────────────────────╯
╭─────────────────────────────────────────────────╮
│ LISTENERS                                       │
├───────┬────────────┬──────────┬─────────────────┤
│ APP   │ DEPLOYMENT │ LISTENER │ ADDRESS         │
├───────┼────────────┼──────────┼─────────────────┤
│ hello │ a4bba25b   │ hello    │ 127.0.0.1:12345 │
╰───────┴────────────┴──────────┴─────────────────╯
";

#[tokio::test]
async fn multi_status_json_is_the_documented_document() {
    let data = tempfile::tempdir().unwrap();
    let server = fake_babysitter(data.path()).await;
    let out = weaver(data.path(), &["multi", "status", "--format=json"]).await;
    let want = format!(
        r#"{{
  "deployments": [
    {{
      "app": "hello",
      "deployment_id": "{ID}",
      "started_at": "2100-01-01T00:00:00.000000Z",
      "age_secs": 0,
      "pid": {pid},
      "status_addr": "{addr}",
      "components": [
        {{
          "name": "hello::Reverser",
          "group": "hello::Reverser",
          "replicas": [
            {{
              "pid": 301,
              "weavelet_id": "cccccccc-3",
              "restarts": 0
            }}
          ]
        }},
        {{
          "name": "weaver::Main",
          "group": "weaver::Main",
          "replicas": [
            {{
              "pid": 201,
              "weavelet_id": "aaaaaaaa-1",
              "restarts": 0
            }},
            {{
              "pid": 202,
              "weavelet_id": "bbbbbbbb-2",
              "restarts": 0
            }}
          ]
        }}
      ],
      "listeners": [
        {{
          "name": "hello",
          "address": "127.0.0.1:12345"
        }}
      ]
    }}
  ]
}}
"#,
        pid = std::process::id(),
        addr = server.addr(),
    );
    assert_eq!(stdout(&out), want);
    server.shutdown().await;
}

#[tokio::test]
async fn multi_status_tables_are_the_default_and_unchanged() {
    let data = tempfile::tempdir().unwrap();
    let server = fake_babysitter(data.path()).await;
    let default = weaver(data.path(), &["multi", "status"]).await;
    let table = weaver(data.path(), &["multi", "status", "--format", "table"]).await;
    assert_eq!(stdout(&default), MULTI_TABLE);
    assert_eq!(stdout(&table), MULTI_TABLE);
    server.shutdown().await;
}

#[tokio::test]
async fn single_status_json_lists_runs_as_deployments() {
    let data = tempfile::tempdir().unwrap();
    fake_single_run(data.path());
    let out = weaver(data.path(), &["single", "status", "--format=json"]).await;
    let pid = std::process::id();
    let want = format!(
        r#"{{
  "deployments": [
    {{
      "app": "solo",
      "deployment_id": "{SINGLE_ID}",
      "started_at": "2100-01-01T00:00:00.000000Z",
      "age_secs": 0,
      "pid": {pid},
      "status_addr": null,
      "components": [
        {{
          "name": "solo::Echo",
          "group": "solo::Echo",
          "replicas": [
            {{
              "pid": {pid},
              "weavelet_id": "{SINGLE_ID}",
              "restarts": 0
            }}
          ]
        }},
        {{
          "name": "weaver::Main",
          "group": "weaver::Main",
          "replicas": [
            {{
              "pid": {pid},
              "weavelet_id": "{SINGLE_ID}",
              "restarts": 0
            }}
          ]
        }}
      ],
      "listeners": [
        {{
          "name": "http",
          "address": "127.0.0.1:8080"
        }}
      ]
    }}
  ]
}}
"#
    );
    assert_eq!(stdout(&out), want);
}

#[tokio::test]
async fn an_empty_machine_is_an_empty_list() {
    let data = tempfile::tempdir().unwrap();
    for cmd in ["multi", "single"] {
        let out = weaver(data.path(), &[cmd, "status", "--format=json"]).await;
        assert_eq!(stdout(&out), "{\n  \"deployments\": []\n}\n", "{cmd}");
    }
}

#[tokio::test]
async fn an_unknown_format_is_a_usage_error() {
    let data = tempfile::tempdir().unwrap();
    for cmd in ["multi", "single"] {
        let out = weaver(data.path(), &[cmd, "status", "--format=yaml"]).await;
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(out.stdout.is_empty(), "{cmd}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "error: invalid value 'yaml' for '--format <FORMAT>'\n  \
             [possible values: table, json]\n\n\
             For more information, try '--help'.\n",
            "{cmd}"
        );
    }
}
