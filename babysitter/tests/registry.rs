//! The registry of deployments: atomic files and listing. (Liveness checks
//! run in the CLI, which owns the status client; its tests cover them.)

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use weaver_babysitter::{Registration, Registry, RegistryError};

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
