//! Bad binaries and broken weavelets: clear errors, no process left behind.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use weaver_envelope::weaver_proto::PROTOCOL_VERSION;
use weaver_envelope::{Config, Envelope, Error};

use crate::common::*;

#[tokio::test]
async fn missing_binary() {
    let (handler, _events) = recorder();
    let err = Envelope::start(Config::new("/no/such/dir/app"), args(), handler)
        .await
        .expect_err("missing binary");
    assert!(matches!(err, Error::BinaryNotFound { .. }), "{err:?}");
    assert_eq!(err.to_string(), "binary /no/such/dir/app does not exist");
}

#[tokio::test]
async fn binary_without_execute_permission() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app");
    std::fs::write(&path, "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (handler, _events) = recorder();
    let err = Envelope::start(Config::new(&path), args(), handler)
        .await
        .expect_err("not executable");
    assert_eq!(
        err.to_string(),
        format!(
            "binary {} is not executable (it has no execute permission)",
            path.display()
        )
    );
}

#[tokio::test]
async fn a_directory_is_not_a_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (handler, _events) = recorder();
    let err = Envelope::start(Config::new(dir.path()), args(), handler)
        .await
        .expect_err("a directory");
    assert_eq!(
        err.to_string(),
        format!(
            "binary {} is not executable (it is a directory)",
            dir.path().display()
        )
    );
}

#[tokio::test]
async fn missing_working_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("gone");
    let (handler, _events) = recorder();
    let err = Envelope::start(fake("normal").current_dir(&missing), args(), handler)
        .await
        .expect_err("no such directory");
    assert!(matches!(err, Error::WorkingDir { .. }), "{err:?}");
}

#[tokio::test]
async fn version_mismatch_names_both_versions() {
    trace_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let config = fake("wrong-version").env("FAKE_PID_FILE", &pid_file);
    let (handler, _events) = recorder();
    let err = within("start", Envelope::start(config, args(), handler))
        .await
        .expect_err("mismatch");
    let app = PROTOCOL_VERSION + 1;
    assert!(
        matches!(err, Error::VersionMismatch { deployer, app: a } if deployer == PROTOCOL_VERSION && a == app),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "protocol version mismatch: the deployer speaks version {PROTOCOL_VERSION} but the \
             app binary speaks version {app}; rebuild the app and the weaver tool from the same release"
        )
    );
    assert!(!exists(read_pid(&pid_file)), "child left behind");
}

#[tokio::test]
async fn exit_before_handshake_reports_status_and_stderr_tail() {
    trace_init();
    let (handler, _events) = recorder();
    let config = fake("exit-before-handshake").env("FAKE_LINES", "30");
    let err = within("start", Envelope::start(config, args(), handler))
        .await
        .expect_err("early exit");
    let Error::ExitedBeforeHandshake {
        exit, stderr_tail, ..
    } = &err
    else {
        panic!("wrong error: {err:?}");
    };
    assert_eq!(exit.code(), Some(3));
    let want: Vec<String> = (10..30).map(|i| format!("err {i}")).collect();
    assert_eq!(stderr_tail, &want);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{FAKE} exited (exit status 3) before completing the weaver handshake; \
             the last lines of its stderr:\nerr 10\n"
        )),
        "{text}"
    );
    assert!(text.ends_with("\nerr 29"), "{text}");
}

#[tokio::test]
async fn silent_child_times_out_and_is_killed() {
    trace_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let config = fake("silent")
        .env("FAKE_PID_FILE", &pid_file)
        .handshake_timeout(Duration::from_millis(300));
    let (handler, _events) = recorder();
    let err = within("start", Envelope::start(config, args(), handler))
        .await
        .expect_err("timeout");
    assert_eq!(
        err.to_string(),
        format!(
            "{FAKE} did not complete the weaver handshake within 300ms; \
             is it a weaver application?"
        )
    );
    assert!(!exists(read_pid(&pid_file)), "child left behind");
}

#[tokio::test]
async fn garbage_on_the_pipe_is_not_a_weavelet() {
    trace_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    // A timeout far longer than the test's step proves garbage is noticed at
    // once, not by waiting.
    let config = fake("garbage")
        .env("FAKE_PID_FILE", &pid_file)
        .handshake_timeout(Duration::from_secs(3600));
    let (handler, _events) = recorder();
    let err = within("start", Envelope::start(config, args(), handler))
        .await
        .expect_err("garbage");
    assert!(matches!(err, Error::NotWeavelet { .. }), "{err:?}");
    let text = err.to_string();
    // The fake closes fd 3 before it lingers, so the handshake write may
    // fail before the garbage is read; either way it is garbage.
    assert!(
        text.contains("wrote something other than weaver messages"),
        "{text}"
    );
    assert!(text.ends_with("is it a weaver application?"), "{text}");
    assert!(!exists(read_pid(&pid_file)), "child left behind");
}

#[tokio::test]
async fn oversized_frame_after_the_handshake_kills_the_weavelet() {
    trace_init();
    let (handler, _events) = recorder();
    let envelope = within(
        "start",
        Envelope::start(fake("garbage-after-handshake"), args(), handler),
    )
    .await
    .expect("start");
    let pid = envelope.pid();
    let err = within("wait", envelope.wait())
        .await
        .expect_err("protocol error");
    let Error::Protocol { reason, exit } = &err else {
        panic!("wrong error: {err:?}");
    };
    assert!(reason.contains("exceeds the maximum"), "{reason}");
    assert_eq!(exit.signal(), Some(9));
    assert!(!exists(pid), "child left behind");
}
