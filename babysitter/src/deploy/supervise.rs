//! Starting groups, watching replicas, restarting the ones that die, and
//! stopping everything at teardown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weaver_envelope::Envelope;

use super::{DeployError, Shared};
use crate::RestartPolicy;

/// A replica that exits sooner than this after starting "crashed at start".
const CRASH_WINDOW: Duration = Duration::from_secs(2);

/// Consecutive crashes at start before the deployment gives up.
const MAX_CRASHES: u32 = 3;

/// Starts every replica of `group` at once, then supervises each.
pub(super) async fn start_group(shared: Arc<Shared>, group: String) -> Result<(), DeployError> {
    let n = u32::try_from(shared.config.replicas()).unwrap_or(u32::MAX);
    let starts = (0..n).map(|i| shared.start_replica(&group, i, false));
    let results = futures_util::future::join_all(starts).await;
    let mut first_err = None;
    let mut started = Vec::new();
    for (i, r) in (0..n).zip(results) {
        match r {
            Ok(env) => started.push((i, env)),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        // All or nothing: a group half started is not started.
        let envs: Vec<_> = started.iter().map(|(_, e)| e.clone()).collect();
        for (_, env) in &started {
            shared.remove_replica(&group, &env.handle().args().id).await;
        }
        stop_all(&envs, Duration::from_millis(500)).await;
        return Err(e);
    }
    shared.push_group_routing(&group).await;
    shared.system_log(
        "info",
        &format!("group {group} started with {n} replica(s)"),
    );
    for (i, env) in started {
        tokio::spawn(supervise(shared.clone(), group.clone(), i, env));
    }
    Ok(())
}

/// Watches replica `index` of `group`; restarts it when it dies.
async fn supervise(shared: Arc<Shared>, group: String, index: u32, mut env: Arc<Envelope>) {
    let mut crashes = 0;
    loop {
        let started = Instant::now();
        let pid = env.pid();
        let exit = match env.wait().await {
            Ok(exit) => exit.to_string(),
            Err(e) => super::handler::error_chain(&e),
        };
        let weavelet_id = env.handle().args().id.clone();
        shared.remove_replica(&group, &weavelet_id).await;
        let exit = format!("{exit}{}", shared.take_tail(&weavelet_id));
        if shared.is_shutting_down() {
            return;
        }
        shared.system_log(
            "error",
            &format!("replica {index} of group {group} (pid {pid}) exited: {exit}"),
        );
        if shared.config.restart() == RestartPolicy::Never {
            shared.fail(DeployError::ReplicaExited {
                group,
                replica: index,
                pid,
                exit,
            });
            return;
        }
        crashes = if started.elapsed() < CRASH_WINDOW {
            crashes + 1
        } else {
            0
        };
        match restart(&shared, &group, index, &mut crashes, &exit).await {
            Some(new) => env = new,
            None => return,
        }
    }
}

/// Starts a replacement with backoff; `None` if the deployment gave up or
/// is shutting down.
async fn restart(
    shared: &Arc<Shared>,
    group: &str,
    index: u32,
    crashes: &mut u32,
    exit: &str,
) -> Option<Arc<Envelope>> {
    loop {
        if *crashes >= MAX_CRASHES {
            shared.fail(DeployError::CrashLoop {
                group: group.to_string(),
                replica: index,
                exit: exit.to_string(),
            });
            return None;
        }
        // 50 ms, 100 ms, 200 ms, ...
        let pause = Duration::from_millis(50) * 2u32.pow((*crashes).min(6));
        tokio::time::sleep(pause).await;
        if shared.is_shutting_down() {
            return None;
        }
        match shared.start_replica(group, index, true).await {
            Ok(env) => {
                shared.system_log(
                    "info",
                    &format!(
                        "replica {index} of group {group} restarted (pid {})",
                        env.pid()
                    ),
                );
                return Some(env);
            }
            Err(e) => {
                shared.system_log(
                    "error",
                    &format!(
                        "restarting replica {index} of group {group}: {}",
                        super::handler::error_chain(&e)
                    ),
                );
                *crashes += 1;
            }
        }
    }
}

/// Stops children: SIGTERM, then SIGKILL for whatever is left after `grace`.
pub(super) async fn stop_all(envelopes: &[Arc<Envelope>], grace: Duration) {
    for e in envelopes {
        e.terminate();
    }
    let all = futures_util::future::join_all(envelopes.iter().map(|e| e.wait()));
    if tokio::time::timeout(grace, all).await.is_ok() {
        return;
    }
    for e in envelopes {
        e.kill();
    }
    let all = futures_util::future::join_all(envelopes.iter().map(|e| e.wait()));
    if tokio::time::timeout(Duration::from_secs(5), all)
        .await
        .is_err()
    {
        tracing::error!("some children did not exit after SIGKILL");
    }
}
