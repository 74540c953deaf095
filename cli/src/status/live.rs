//! Which registered deployments still run.
//!
//! A babysitter that was killed leaves its registration behind. Every
//! listing checks each registration and deletes the dead ones, as the Go
//! tool does: the babysitter process must exist and its status server must
//! answer with the same deployment id.

use std::time::Duration;

use tracing::{info, warn};
use weaver_babysitter::{Registration, Registry, RegistryError, Status, runtime_dir};

use super::client::{FetchError, fetch_status};

/// A registration that passed the liveness check, or could not be checked.
#[derive(Debug)]
pub(crate) struct LiveDeployment {
    /// The registration.
    pub(crate) registration: Registration,
    /// Its status, or why it could not be fetched (e.g. a timeout) although
    /// the deployment seems alive.
    pub(crate) status: Result<Status, FetchError>,
}

/// What a liveness check found.
#[derive(Debug)]
pub(crate) enum Liveness {
    /// The deployment answered with its own status.
    Alive(Box<Status>),
    /// The deployment is gone; its registration is stale.
    Dead(&'static str),
    /// The babysitter exists but its status could not be fetched.
    Unknown(FetchError),
}

/// Checks whether a registered deployment still runs. A refused connection
/// or another deployment's id means dead; other fetch errors (a timeout,
/// say) leave the question open.
pub(crate) async fn check_liveness(registration: &Registration, timeout: Duration) -> Liveness {
    // A pid that names no single process leaves it to the status check.
    if process_exists(registration.pid) == Some(false) {
        return Liveness::Dead("its babysitter process is gone");
    }
    match fetch_status(registration.status_addr, timeout).await {
        Ok(status) if status.deployment_id == registration.deployment_id => {
            Liveness::Alive(Box::new(status))
        }
        Ok(_) => Liveness::Dead("its status address now serves another deployment"),
        Err(err) if err.is_refused() => Liveness::Dead("its status server refuses connections"),
        Err(err) => Liveness::Unknown(err),
    }
}

/// Every registered deployment that still runs, oldest first, each with its
/// status, checked concurrently with [`check_liveness`]. Registrations found
/// dead are deleted, with the sockets their babysitter left.
///
/// # Errors
///
/// [`RegistryError::List`] if the registry cannot be read.
pub(crate) async fn live(
    registry: &Registry,
    timeout: Duration,
) -> Result<Vec<LiveDeployment>, RegistryError> {
    let mut checks = tokio::task::JoinSet::new();
    for (i, registration) in registry.list()?.into_iter().enumerate() {
        checks.spawn(async move {
            let liveness = check_liveness(&registration, timeout).await;
            (i, registration, liveness)
        });
    }
    let mut live = Vec::new();
    while let Some(joined) = checks.join_next().await {
        // The check never panics; a failed join only means the runtime is
        // shutting down, and then the result no longer matters.
        let Ok((i, registration, liveness)) = joined else {
            continue;
        };
        let status = match liveness {
            Liveness::Alive(status) => Ok(*status),
            Liveness::Unknown(err) => Err(err),
            Liveness::Dead(why) => {
                remove_dead(registry, &registration, why);
                continue;
            }
        };
        live.push((
            i,
            LiveDeployment {
                registration,
                status,
            },
        ));
    }
    live.sort_by_key(|(i, _)| *i);
    Ok(live.into_iter().map(|(_, d)| d).collect())
}

fn remove_dead(registry: &Registry, registration: &Registration, why: &str) {
    info!(deployment = %registration.deployment_id, app = %registration.app, why,
        "removing stale registration");
    if let Err(err) = registry.unregister(&registration.deployment_id) {
        warn!(error = %err, "cannot remove stale registration");
        return;
    }
    // A babysitter that was killed outright left its sockets behind too.
    // (The id was validated by `unregister`.)
    let _ = std::fs::remove_dir_all(runtime_dir(&registration.deployment_id));
}

/// Whether process `pid` exists: signal 0 checks without sending, and EPERM
/// means it exists but belongs to someone else. `None` for pids that address
/// a process group or nothing (0, or past `i32::MAX`), never one process.
pub(crate) fn process_exists(pid: u32) -> Option<bool> {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;

    let pid = i32::try_from(pid).ok().filter(|pid| *pid > 0)?;
    Some(!matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH)))
}
