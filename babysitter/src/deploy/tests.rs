//! The deployer with in-memory replicas ([`mem::MemSpawner`]) and paused
//! time: restarts, crash loops and routing pushes, without processes and
//! without waiting out the backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use weaver_envelope::Exit;

use self::mem::{Fate, MemSpawner, Weavelet};
use super::supervise::backoff;
use super::{DeployError, Deployment, Options};
use crate::Config;
use crate::config::MAIN_COMPONENT;

mod mem;
mod methods;

/// Longer than any pause the deployer takes (paused time: costs nothing).
const QUIET: Duration = Duration::from_secs(60);

/// The handshake timeout of every test deployment.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// A deployment of a `weaver.toml` with `multi` as its `[multi]` section,
/// whose replicas `spawner` starts; and its data directory.
async fn deploy(multi: &str, spawner: Arc<MemSpawner>) -> (Deployment, tempfile::TempDir) {
    let text = format!(
        "[serviceweaver]\nname = \"mem\"\nbinary = \"/in-memory/app\"\n\n[multi]\n{multi}\n"
    );
    let config = Config::parse(&text, "/in-memory/weaver.toml").expect("config");
    let data = tempfile::tempdir().expect("tempdir");
    let options = Options {
        out: Box::new(std::io::sink()),
        color: false,
        data_dir: data.path().to_owned(),
        handshake_timeout: HANDSHAKE,
    };
    let deployment = Deployment::start_with(config, options, spawner)
        .await
        .expect("deployment starts");
    (deployment, data)
}

/// The next replica spawned; fails if none is within [`QUIET`].
async fn next(spawned: &mut mpsc::UnboundedReceiver<Weavelet>) -> Weavelet {
    match tokio::time::timeout(QUIET, spawned.recv()).await {
        Ok(Some(w)) => w,
        Ok(None) => panic!("the spawner is gone"),
        Err(_) => panic!("no replica spawned within {QUIET:?}"),
    }
}

/// Lets [`QUIET`] pass, then checks nothing more was spawned and the
/// deployment has not failed.
async fn assert_settled(d: &Deployment, spawned: &mut mpsc::UnboundedReceiver<Weavelet>) {
    tokio::time::sleep(QUIET).await;
    if let Ok(w) = spawned.try_recv() {
        panic!(
            "replica {} of {} spawned at {:?} after the deployment settled",
            w.replica, w.group, w.at
        );
    }
    if let Some(e) = d.shared.fatal.borrow().as_ref() {
        panic!("the deployment failed: {e}");
    }
}

/// The weavelet ids of `group`'s live replicas.
fn live(d: &Deployment, group: &str) -> Vec<String> {
    let st = d.shared.lock_state();
    st.groups
        .get(group)
        .map(|g| g.replicas.iter().map(|r| r.weavelet_id.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn replicas_dying_right_after_the_handshake_are_restarted_with_backoff() {
    let crashes = 8;
    let plan = vec![Fate::ExitAfterHandshake; crashes];
    let (spawner, mut spawned) = MemSpawner::new([(MAIN_COMPONENT, plan)]);
    let (d, _data) = deploy("replicas = 1", spawner).await;

    let mut at = next(&mut spawned).await.at;
    for n in 1..=crashes {
        let w = next(&mut spawned).await;
        assert_eq!((w.group.as_str(), w.replica), (MAIN_COMPONENT, 0));
        // Each quick crash doubles the pause, up to the cap; none of them is
        // a failed start, so the deployment never gives up.
        let pause = w.at - at;
        let n = u32::try_from(n).expect("small");
        assert_eq!(pause, backoff(n), "pause before restart {n}");
        at = w.at;
        if n as usize == crashes {
            assert_eq!(w.fate, Fate::Serve);
            let id = w.id.clone();
            assert_settled(&d, &mut spawned).await;
            assert_eq!(live(&d, MAIN_COMPONENT), [id]);
        }
    }
    d.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_served_a_while_restarts_after_the_shortest_pause() {
    let (spawner, mut spawned) = MemSpawner::new([]);
    let (d, _data) = deploy("replicas = 1", spawner).await;
    let first = next(&mut spawned).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    first.crash(Exit::from_code(1));
    let second = next(&mut spawned).await;
    // 10 s of service is no quick crash: the pause starts over.
    assert_eq!(second.at - first.at, Duration::from_secs(10) + backoff(0));
    assert_settled(&d, &mut spawned).await;
    assert_eq!(live(&d, MAIN_COMPONENT), [second.id]);
    d.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn replacements_failing_their_handshake_in_a_row_are_a_crash_loop() {
    let plan = vec![
        Fate::Serve,
        Fate::FailHandshake,
        Fate::FailHandshake,
        Fate::FailHandshake,
    ];
    let (spawner, mut spawned) = MemSpawner::new([(MAIN_COMPONENT, plan)]);
    let (d, _data) = deploy("replicas = 1", spawner).await;
    let first = next(&mut spawned).await;
    first.crash(Exit::from_code(3));
    let mut at = first.at;
    for n in 1..=3 {
        let w = next(&mut spawned).await;
        assert_eq!(w.fate, Fate::FailHandshake);
        assert_eq!(w.at - at, backoff(n), "pause before start {n}");
        at = w.at;
    }
    let failed = tokio::time::timeout(QUIET, d.failed())
        .await
        .expect("the deployment gives up");
    match &*failed {
        DeployError::CrashLoop {
            group,
            replica,
            exit,
        } => {
            assert_eq!((group.as_str(), *replica), (MAIN_COMPONENT, 0));
            assert!(
                exit.contains("exited (exit status 1) before completing the weaver handshake"),
                "{exit}"
            );
        }
        other => panic!("not a crash loop: {other}"),
    }
    assert!(spawned.try_recv().is_err(), "spawned after giving up");
    assert!(live(&d, MAIN_COMPONENT).is_empty());
    d.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn replacements_that_never_answer_the_handshake_are_a_crash_loop() {
    let plan = vec![Fate::Serve, Fate::Silent, Fate::Silent, Fate::Silent];
    let (spawner, mut spawned) = MemSpawner::new([(MAIN_COMPONENT, plan)]);
    let (d, _data) = deploy("replicas = 1", spawner).await;
    let first = next(&mut spawned).await;
    first.crash(Exit::from_code(1));
    let mut at = first.at;
    for n in 1..=3 {
        let w = next(&mut spawned).await;
        // The one before waited out its handshake timeout (10 s).
        let waited = if n == 1 { Duration::ZERO } else { HANDSHAKE };
        assert_eq!(w.at - at, waited + backoff(n), "pause before start {n}");
        at = w.at;
    }
    let failed = tokio::time::timeout(QUIET, d.failed())
        .await
        .expect("the deployment gives up");
    assert!(
        matches!(&*failed, DeployError::CrashLoop { exit, .. } if exit.contains("did not complete the weaver handshake within 10s")),
        "{failed}"
    );
    assert!(spawned.try_recv().is_err(), "spawned after giving up");
    d.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn failed_starts_count_only_in_a_row() {
    let plan = vec![
        Fate::Serve,
        Fate::FailHandshake,
        Fate::FailHandshake,
        Fate::ExitAfterHandshake,
        Fate::FailHandshake,
        Fate::FailHandshake,
    ];
    let spawns = plan.len() + 1;
    let (spawner, mut spawned) = MemSpawner::new([(MAIN_COMPONENT, plan)]);
    let (d, _data) = deploy("replicas = 1", spawner).await;
    next(&mut spawned).await.crash(Exit::from_code(1));
    let mut last = None;
    for _ in 1..spawns {
        last = Some(next(&mut spawned).await);
    }
    let last = last.expect("spawned");
    assert_eq!(last.fate, Fate::Serve);
    assert_settled(&d, &mut spawned).await;
    assert_eq!(live(&d, MAIN_COMPONENT), [last.id]);
    d.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn restart_never_stops_the_deployment_at_the_first_exit() {
    let (spawner, mut spawned) = MemSpawner::new([]);
    let (d, _data) = deploy("replicas = 1\nrestart = \"never\"", spawner).await;
    next(&mut spawned).await.crash(Exit::from_code(7));
    let failed = tokio::time::timeout(QUIET, d.failed())
        .await
        .expect("the deployment fails");
    assert!(
        matches!(&*failed, DeployError::ReplicaExited { replica: 0, exit, .. } if exit == "exit status 7"),
        "{failed}"
    );
    assert!(
        spawned.try_recv().is_err(),
        "restarted under restart = never"
    );
    d.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_dead_replica_leaves_its_subscribers_routing_at_once() {
    const B: &str = "mem::B";
    let (spawner, mut spawned) = MemSpawner::new([]);
    let (d, _data) = deploy("replicas = 2", spawner).await;
    let mut main = next(&mut spawned).await;
    let _main_1 = next(&mut spawned).await;
    main.activate(B, true).await.expect("activate");
    let (b0, b1) = (next(&mut spawned).await, next(&mut spawned).await);
    let (b0, b1) = if b0.replica == 0 { (b0, b1) } else { (b1, b0) };
    assert_eq!((b0.group.as_str(), b1.group.as_str()), (B, B));
    let mut both = vec![b0.dial_addr.clone(), b1.dial_addr.clone()];
    both.sort();
    let up = main.next_routing(B).await.expect("routing");
    assert_eq!(up.replicas, both);

    b0.crash(Exit::from_code(1));
    // The first push after the crash already leaves b0 out, every slice
    // included.
    let mut down = main.next_routing(B).await.expect("routing");
    while down.version == up.version {
        down = main.next_routing(B).await.expect("routing");
    }
    assert!(down.version > up.version, "{down:?} after {up:?}");
    assert_eq!(down.replicas, [b1.dial_addr.as_str()]);
    let slices = &down.assignment.as_ref().expect("routed").slices;
    assert!(!slices.is_empty());
    assert!(
        slices.iter().all(|s| s.replicas == [b1.dial_addr.as_str()]),
        "{slices:?}"
    );

    // Its replacement joins again.
    let b2 = next(&mut spawned).await;
    assert_eq!((b2.group.as_str(), b2.replica), (B, 0));
    let again = main.next_routing(B).await.expect("routing");
    assert!(again.version > down.version);
    let mut both = vec![b1.dial_addr.clone(), b2.dial_addr.clone()];
    both.sort();
    assert_eq!(again.replicas, both);
    assert_settled(&d, &mut spawned).await;
    d.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_does_not_send_its_metrics_in_time_is_skipped() {
    let plan = vec![Fate::Serve, Fate::MuteMetrics];
    let (spawner, mut spawned) = MemSpawner::new([(MAIN_COMPONENT, plan)]);
    let (d, _data) = deploy("replicas = 2", spawner).await;
    let (a, b) = (next(&mut spawned).await, next(&mut spawned).await);
    let answering = if a.fate == Fate::Serve { &a } else { &b };
    assert_settled(&d, &mut spawned).await;
    // Twice: the second poll acknowledges the first reply.
    for poll in 0..2 {
        let started = tokio::time::Instant::now();
        let metrics = tokio::time::timeout(QUIET, d.shared.poll_metrics())
            .await
            .expect("a poll ends despite the mute replica");
        // The mute replica costs the timeout, no more.
        assert_eq!(started.elapsed(), super::METRICS_TIMEOUT, "poll {poll}");
        let got: Vec<_> = metrics
            .iter()
            .filter(|m| m.def.name == "mem_requests")
            .map(|m| (m.def.labels["serviceweaver_node"].as_str(), m.value.value))
            .collect();
        assert_eq!(got, [(answering.id.as_str(), 1.0)], "poll {poll}");
    }
    d.shutdown(Duration::from_secs(1)).await;
}
