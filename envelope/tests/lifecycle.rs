//! Stopping weavelets: signals, dropped envelopes, dead deployers.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use weaver_envelope::weaver_proto::runtime::HealthStatus;
use weaver_envelope::{Envelope, Exit};

use crate::common::*;

#[tokio::test]
async fn terminate_reports_sigterm() {
    trace_init();
    let (handler, _events) = recorder();
    let envelope = within("start", Envelope::start(fake("normal"), args(), handler))
        .await
        .expect("start");
    envelope.terminate();
    let exit = within("wait", envelope.wait()).await.expect("exit");
    assert_eq!(exit, Exit::from_signal(15));
    assert_eq!(exit.to_string(), "killed by signal 15 (SIGTERM)");
    // Every caller of wait gets the same outcome.
    assert_eq!(envelope.wait().await.expect("exit"), exit);
}

#[tokio::test]
async fn kill_reports_sigkill() {
    trace_init();
    let (handler, _events) = recorder();
    let envelope = within("start", Envelope::start(fake("normal"), args(), handler))
        .await
        .expect("start");
    envelope.kill();
    let exit = within("wait", envelope.wait()).await.expect("exit");
    assert_eq!(exit.to_string(), "killed by signal 9 (SIGKILL)");
    let err = within("health", envelope.get_health())
        .await
        .expect_err("weavelet is gone");
    assert!(err.to_string().starts_with("GetHealth request"), "{err}");
}

#[tokio::test]
async fn dropping_the_envelope_closes_the_pipe_and_the_weavelet_exits() {
    trace_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let eof_file = dir.path().join("eof");
    // A grace far beyond the test's step: the weavelet must leave on its own.
    let config = fake("normal")
        .env("FAKE_EOF_FILE", &eof_file)
        .stop_grace(Duration::from_secs(3600));
    let (handler, _events) = recorder();
    let envelope = within("start", Envelope::start(config, args(), handler))
        .await
        .expect("start");
    let weavelet = Process::open(envelope.pid()).expect("pidfd");
    drop(envelope);
    weavelet.exited().await;
    assert_eq!(std::fs::read_to_string(&eof_file).expect("eof file"), "eof");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weavelets_outlive_the_thread_that_started_them() {
    trace_init();
    // The parent-death signal follows the thread that forked. Start from a
    // thread that then exits: the weavelet must not die with it.
    let runtime = tokio::runtime::Handle::current();
    let (handler, _events) = recorder();
    let starter = std::thread::spawn(move || {
        let envelope = runtime.block_on(Envelope::start(fake("normal"), args(), handler));
        (nix::unistd::gettid(), envelope)
    });
    let (tid, envelope) = tokio::task::spawn_blocking(move || starter.join().expect("join"))
        .await
        .expect("join");
    let envelope = envelope.expect("start");
    // join returns before the kernel has finished the thread's exit (which is
    // when the signal would be sent); wait until its /proc entry is gone.
    let task = format!("/proc/self/task/{tid}");
    within("thread exit", async {
        while Path::new(&task).exists() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let health = within("health", envelope.get_health())
        .await
        .expect("still alive");
    assert_eq!(health, HealthStatus::Healthy);
    envelope.kill();
    within("wait", envelope.wait()).await.expect("wait");
}

#[tokio::test]
async fn weavelets_die_with_their_deployer() {
    trace_init();
    // The fake, as a deployer, runs another fake that ignores end of stream
    // on its pipe: only the parent-death signal can end it.
    let mut deployer = Reaped(
        Command::new(FAKE)
            .env("FAKE_MODE", "deployer")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn deployer"),
    );
    let stdout = deployer.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = within("weavelet pid", line)
        .await
        .expect("join")
        .expect("read");
    let pid: u32 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("pid line {line:?}"));
    let weavelet = Process::open(pid).expect("pidfd");
    deployer.0.kill().expect("kill deployer");
    deployer.0.wait().expect("reap deployer");
    weavelet.exited().await;
}
