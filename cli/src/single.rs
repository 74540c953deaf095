//! `weaver single`: applications run directly as one process.
//!
//! Such a process announces itself in `<data>/single/registry/` with a
//! [`Registration`] (written by the `weaver` crate); this command lists the
//! ones still alive and forgets the others.

use std::net::SocketAddr;
use std::path::Path;

use clap::Subcommand;
use weaver_babysitter::{ComponentStatus, ListenerStatus, ReplicaStatus, Status};
use weaver_proto::single::{self, Registration};

use crate::{Outcome, metrics, status};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show the applications running directly as one process.
    ///
    /// `--format=json` prints the document `weaver multi status
    /// --format=json` prints, with each run as a deployment.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t = status::Format::Table)]
        format: status::Format,
    },
    /// Show the metrics of the applications running directly as one
    /// process.
    ///
    /// Each such process serves its metrics on a loopback port (announced
    /// in its registration); they are shown as `weaver multi metrics` shows
    /// a deployment's, one table per metric, user metrics first.
    Metrics {
        /// Show only metrics whose name matches this regular expression
        /// (unanchored).
        regex: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = metrics::Format::Table)]
        format: metrics::Format,
    },
    /// Print the weaver version.
    Version,
}

/// Printed instead of tables when no single-process run is live.
const NOTHING_RUNS: &str = "No applications are running as one process.\n";

pub(crate) fn run(cmd: Command) -> anyhow::Result<Outcome> {
    match cmd {
        Command::Status { format } => {
            let dir = single::registry_dir(&weaver_babysitter::data_dir()?);
            let listed = live_registrations(&dir)
                .into_iter()
                .map(|r| status::Listed {
                    pid: r.pid,
                    has_status_server: false,
                    status: to_status(r),
                })
                .collect();
            status::print(listed, format)?;
            Ok(Outcome::Ok)
        }
        Command::Metrics { regex, format } => {
            // Check the regex before asking anyone.
            let filter = metrics::filter(regex.as_deref())?;
            let dir = single::registry_dir(&weaver_babysitter::data_dir()?);
            let sources = live_registrations(&dir)
                .into_iter()
                .filter_map(source)
                .collect();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let runs = runtime.block_on(metrics::fetch(sources, filter.as_ref()));
            metrics::print(&runs, format, NOTHING_RUNS)?;
            Ok(Outcome::Ok)
        }
        Command::Version => {
            println!("{}", crate::version());
            Ok(Outcome::Ok)
        }
    }
}

/// The registrations of live processes; removes those of dead ones.
fn live_registrations(dir: &Path) -> Vec<Registration> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut live = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(single::SUFFIX) && !n.starts_with('.'));
        if !named {
            continue;
        }
        let registration = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Registration>(&b).ok());
        match registration {
            Some(r) if status::process_exists(r.pid) == Some(true) => live.push(r),
            Some(_) => {
                let _ = std::fs::remove_file(&path);
            }
            None => tracing::warn!(path = %path.display(), "skipping an unreadable registration"),
        }
    }
    live
}

/// Where run `r` serves its metrics; none (with a warning) if it does not.
fn source(r: Registration) -> Option<metrics::Source> {
    let addr = match r.metrics_addr.as_deref().map(str::parse::<SocketAddr>) {
        Some(Ok(addr)) => addr,
        Some(Err(_)) | None => {
            tracing::warn!(deployment = %r.deployment_id, pid = r.pid,
                "the run announces no metrics endpoint; skipping it");
            return None;
        }
    };
    Some(metrics::Source {
        app: r.app,
        deployment_id: r.deployment_id,
        addr,
    })
}

fn to_status(r: Registration) -> Status {
    // The process is the run's one weavelet; its log entries name the
    // deployment id as their node.
    let replica = ReplicaStatus {
        pid: r.pid,
        weavelet_id: r.deployment_id.clone(),
    };
    Status {
        components: r
            .components
            .iter()
            .map(|c| ComponentStatus {
                name: c.clone(),
                group: c.clone(),
                replicas: vec![replica.clone()],
            })
            .collect(),
        listeners: r
            .listeners
            .into_iter()
            .map(|(name, address)| ListenerStatus { name, address })
            .collect(),
        app: r.app,
        deployment_id: r.deployment_id,
        submitted_at: r.started_at,
        status_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
    }
}
