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

use crate::{Outcome, status};

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
    /// Print the weaver version.
    Version,
}

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
