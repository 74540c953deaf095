//! `weaver single`: applications run directly as one process.
//!
//! Such a process announces itself in `<data>/single/registry/` (see the
//! `weaver` crate); this command lists the ones still alive and forgets
//! the others.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use clap::Subcommand;
use serde::Deserialize;
use weaver_babysitter::status::{self, ComponentStatus, ListenerStatus, ReplicaStatus, Status};

use crate::Outcome;

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show the applications running directly as one process.
    Status,
    /// Print the weaver version.
    Version,
}

/// A single-process registration, as the `weaver` runtime writes it.
#[derive(Debug, Deserialize)]
struct Record {
    deployment_id: String,
    app: String,
    pid: u32,
    started_at: i64,
    #[serde(default)]
    components: Vec<String>,
    #[serde(default)]
    listeners: std::collections::BTreeMap<String, String>,
}

pub(crate) fn run(cmd: Command) -> anyhow::Result<Outcome> {
    match cmd {
        Command::Status => {
            let dir = weaver_babysitter::registry::data_dir()?
                .join("single")
                .join("registry");
            let statuses: Vec<Status> = live_records(&dir).into_iter().map(to_status).collect();
            let text =
                status::render_status(&statuses, crate::now_micros(), status::color_enabled());
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(Outcome::Ok)
        }
        Command::Version => {
            println!("{}", crate::version());
            Ok(Outcome::Ok)
        }
    }
}

/// The registrations of live processes; removes those of dead ones.
fn live_records(dir: &Path) -> Vec<Record> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut records = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let record = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok());
        match record {
            Some(r) if process_exists(r.pid) => records.push(r),
            Some(_) => {
                let _ = std::fs::remove_file(&path);
            }
            None => tracing::warn!(path = %path.display(), "skipping an unreadable registration"),
        }
    }
    records
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

fn to_status(r: Record) -> Status {
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
