//! Starting groups, watching replicas, restarting the ones that die, and
//! stopping everything at teardown.

use std::sync::Arc;
use std::time::Duration;

// tokio's clock, so that a paused clock in tests also times the crashes.
use tokio::time::Instant;
use weaver_envelope::Envelope;

use super::{DeployError, Shared};
use crate::RestartPolicy;

/// A replica that exits sooner than this after its handshake crashed
/// "quickly": each consecutive quick crash doubles the pause before the
/// next restart.
const QUICK_CRASH: Duration = Duration::from_secs(2);

/// Consecutive replacements that fail before completing the handshake
/// before the deployment gives up. Only those are a crash loop: a replica
/// that crashes while serving (a request that kills it, say) is restarted
/// with backoff for as long as it takes, and its callers get errors.
const MAX_FAILED_STARTS: u32 = 3;

/// The longest pause between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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
    let mut quick_crashes = 0;
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
        quick_crashes = if started.elapsed() < QUICK_CRASH {
            quick_crashes + 1
        } else {
            0
        };
        match restart(&shared, &group, index, quick_crashes, &exit).await {
            Some(new) => env = new,
            None => return,
        }
    }
}

/// Starts a replacement with backoff; `None` if the deployment gave up or
/// is shutting down.
///
/// `quick_crashes` counts the consecutive replicas that died soon after
/// their handshake; it sets the first pause. Replacements that fail before
/// the handshake add to it, and [`MAX_FAILED_STARTS`] of them in a row stop
/// the deployment.
async fn restart(
    shared: &Arc<Shared>,
    group: &str,
    index: u32,
    quick_crashes: u32,
    exit: &str,
) -> Option<Arc<Envelope>> {
    let mut failed_starts = 0;
    let mut last = exit.to_string();
    loop {
        if failed_starts >= MAX_FAILED_STARTS {
            shared.fail(DeployError::CrashLoop {
                group: group.to_string(),
                replica: index,
                exit: last,
            });
            return None;
        }
        tokio::time::sleep(backoff(quick_crashes + failed_starts)).await;
        if shared.is_shutting_down() {
            return None;
        }
        match shared.start_replica(group, index, true).await {
            Ok(env) => {
                shared.count_restart(group, index);
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
                last = super::handler::error_chain(&e);
                shared.system_log(
                    "error",
                    &format!("restarting replica {index} of group {group}: {last}"),
                );
                failed_starts += 1;
            }
        }
    }
}

/// The pause before a restart after `n` consecutive quick failures:
/// 50 ms, 100 ms, 200 ms, ... up to [`MAX_BACKOFF`].
pub(super) fn backoff(n: u32) -> Duration {
    (Duration::from_millis(50) * 2u32.pow(n.min(7))).min(MAX_BACKOFF)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(50));
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(400));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
