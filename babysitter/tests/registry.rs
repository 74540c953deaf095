//! The registry of live deployments: atomic files, listing, liveness.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use weaver_babysitter::registry::{Liveness, check_liveness};
use weaver_babysitter::status::StatusProvider;
use weaver_babysitter::{Registration, Registry, RegistryError, Status, StatusError, StatusServer};

/// Bounds every network step: a hang fails instead of stalling the suite.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn registration(id: &str, status_addr: SocketAddr) -> Registration {
    Registration {
        deployment_id: id.to_owned(),
        app: "hello".to_owned(),
        status_addr,
        pid: std::process::id(),
        started_at: 1_700_000_000_000_000,
    }
}

fn status_of(id: &str, addr: SocketAddr) -> Status {
    Status {
        app: "hello".to_owned(),
        deployment_id: id.to_owned(),
        submitted_at: 1_700_000_000_000_000,
        status_addr: addr,
        components: Vec::new(),
        listeners: Vec::new(),
    }
}

/// A status server that reports deployment `id`.
async fn server_for(id: &str) -> StatusServer {
    let id = id.to_owned();
    // The provider learns its address only after binding; liveness does not
    // look at it, so a placeholder is enough.
    let provider: StatusProvider = Arc::new(move || status_of(&id, loopback()));
    StatusServer::start(loopback(), provider).await.unwrap()
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    listener.local_addr().unwrap()
}

fn file_names(registry: &Registry) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(registry.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn new_creates_a_private_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path().join("multi/registry")).unwrap();
    let mode = std::fs::metadata(registry.dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn register_writes_one_json_file_and_list_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path()).unwrap();
    let reg = registration("a4bba25b-6312-4af1-beec-447c33b8e805", loopback());
    registry.register(&reg).unwrap();

    assert_eq!(
        file_names(&registry),
        ["a4bba25b-6312-4af1-beec-447c33b8e805.registration.json"]
    );
    let path = registry
        .dir()
        .join("a4bba25b-6312-4af1-beec-447c33b8e805.registration.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(
        json["deployment_id"],
        "a4bba25b-6312-4af1-beec-447c33b8e805"
    );
    assert_eq!(json["app"], "hello");
    assert_eq!(json["status_addr"], "127.0.0.1:0");
    assert_eq!(json["pid"], std::process::id());
    assert_eq!(json["started_at"], 1_700_000_000_000_000_i64);
    assert_eq!(registry.list().unwrap(), [reg]);
}

#[test]
fn list_is_sorted_by_start_time() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path()).unwrap();
    let mut newer = registration("aaaa", loopback());
    newer.started_at += 10;
    let older = registration("bbbb", loopback());
    registry.register(&newer).unwrap();
    registry.register(&older).unwrap();
    assert_eq!(registry.list().unwrap(), [older, newer]);
}

#[test]
fn list_ignores_other_files_and_skips_corrupt_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path()).unwrap();
    let good = registration("good", loopback());
    registry.register(&good).unwrap();
    let dir = registry.dir();
    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    std::fs::write(dir.join("corrupt.registration.json"), "{\"deployment_id\":").unwrap();
    std::fs::write(dir.join(".good.registration.json.tmp.1.2"), "{").unwrap();
    std::fs::write(dir.join(".hidden.registration.json"), "{").unwrap();
    // A file whose contents name another deployment than its name.
    let other = serde_json::to_vec(&registration("other", loopback())).unwrap();
    std::fs::write(dir.join("mismatch.registration.json"), other).unwrap();
    std::fs::create_dir(dir.join("sub.registration.json")).unwrap();

    assert_eq!(registry.list().unwrap(), [good]);
}

#[test]
fn unregister_removes_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path()).unwrap();
    registry
        .register(&registration("gone", loopback()))
        .unwrap();
    registry.unregister("gone").unwrap();
    registry.unregister("gone").unwrap();
    assert!(registry.list().unwrap().is_empty());
    assert!(file_names(&registry).is_empty());
}

#[test]
fn ids_that_are_not_file_names_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path().join("reg")).unwrap();
    for id in ["", "../escape", "a/b", ".hidden"] {
        let err = registry
            .register(&registration(id, loopback()))
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::InvalidId { .. }),
            "{id:?}: {err}"
        );
        assert!(registry.unregister(id).is_err(), "{id:?}");
    }
    assert!(!tmp.path().join("escape.registration.json").exists());
}

#[test]
fn readers_never_see_a_partial_registration() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path()).unwrap();
    let short = registration("same", loopback());
    let mut long = short.clone();
    long.app = "x".repeat(64 << 10);
    registry.register(&short).unwrap();

    let writer = {
        let registry = registry.clone();
        let (short, long) = (short.clone(), long.clone());
        std::thread::spawn(move || {
            for i in 0..200 {
                let reg = if i % 2 == 0 { &long } else { &short };
                registry.register(reg).unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let listed = registry.list().unwrap();
        assert_eq!(listed.len(), 1, "a reader saw a partial file");
        assert!(listed[0] == short || listed[0] == long);
        reads += 1;
    }
    writer.join().unwrap();
    // No temporary files are left behind.
    assert_eq!(file_names(&registry), ["same.registration.json"]);
}

#[tokio::test]
async fn live_keeps_deployments_that_answer_with_their_id() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path()).unwrap();
    let server = server_for("alive").await;
    registry
        .register(&registration("alive", server.addr()))
        .unwrap();

    let live = tokio::time::timeout(TEST_TIMEOUT, registry.live(TEST_TIMEOUT))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].registration.deployment_id, "alive");
    assert_eq!(live[0].status.as_ref().unwrap().deployment_id, "alive");
    assert_eq!(registry.list().unwrap().len(), 1);
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
    let live = registry.live(TEST_TIMEOUT).await.unwrap();
    assert!(live.is_empty());
    assert!(file_names(&registry).is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn live_removes_registrations_whose_server_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path()).unwrap();
    registry
        .register(&registration("refused", closed_port().await))
        .unwrap();
    let live = tokio::time::timeout(TEST_TIMEOUT, registry.live(TEST_TIMEOUT))
        .await
        .unwrap()
        .unwrap();
    assert!(live.is_empty());
    assert!(file_names(&registry).is_empty());
}

#[tokio::test]
async fn live_removes_registrations_answered_by_another_deployment() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::new(tmp.path()).unwrap();
    let server = server_for("someone-else").await;
    registry
        .register(&registration("stale", server.addr()))
        .unwrap();
    let live = tokio::time::timeout(TEST_TIMEOUT, registry.live(TEST_TIMEOUT))
        .await
        .unwrap()
        .unwrap();
    assert!(live.is_empty());
    assert!(file_names(&registry).is_empty());
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

    let live = tokio::time::timeout(TEST_TIMEOUT, registry.live(Duration::from_millis(100)))
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<&str> = live
        .iter()
        .map(|d| d.registration.deployment_id.as_str())
        .collect();
    assert_eq!(ids, ["busy", "alive"]);
    assert!(matches!(live[0].status, Err(StatusError::Timeout { .. })));
    assert!(live[1].status.is_ok());
    assert_eq!(registry.list().unwrap().len(), 2);
    server.shutdown().await;
}
