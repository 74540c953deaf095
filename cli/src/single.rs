//! `weaver single`: applications run as one process, directly or with
//! `weaver single deploy`.
//!
//! Such a process announces itself in `<data>/single/registry/` with a
//! [`Registration`] (written by the `weaver` crate); this command lists the
//! ones still alive and forgets the others.

mod deploy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use weaver_babysitter::{ComponentStatus, ListenerStatus, ReplicaStatus, Status};
use weaver_proto::single::{self, Registration};

use crate::{Outcome, metrics, profile, status};

// These doc comments are the commands' --help text: `[single]` there is a
// TOML section, not a link.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run an application as one process, configured by weaver.toml.
    ///
    /// Checks [serviceweaver] and [single] first: a bad key, a missing or
    /// non-executable binary is an error naming it (exit 64) and nothing
    /// starts. Then runs `binary` (relative to the config file) with `args`
    /// and `env`, and with SERVICEWEAVER_CONFIG naming the config file, from
    /// which the app reads its [single] listeners and component sections.
    /// Every component runs in that one process; it uses this terminal's
    /// stdin, stdout and stderr (it prints its app/deployment box, then its
    /// logs) and is listed by `weaver single status`.
    ///
    /// SIGINT (ctrl-c) and SIGTERM are passed on to the app; the app is
    /// killed if `weaver` dies. Exits with the app's exit status, or 128 +
    /// the signal that ended it (130 after ctrl-c).
    ///
    /// Example weaver.toml:
    ///   [serviceweaver]
    ///   name = "hello"
    ///   binary = "../../target/release/hello"
    ///   args = []
    ///   env = ["GREETING=hi"]
    ///
    ///   [single]
    ///   listeners.hello = { address = "127.0.0.1:12345" }  # default: a free loopback port
    #[command(verbatim_doc_comment)]
    Deploy {
        /// The application's config file (weaver.toml).
        config: PathBuf,
    },
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
    /// Write a CPU profile of an application running as one process.
    ///
    /// The process profiles itself for --duration (on the loopback port it
    /// announces in its registration); the gzipped pprof protobuf is
    /// written to $TMPDIR and its path printed. Open it with `go tool
    /// pprof -http=: <file>`, `pprof -http=: <file>` or speedscope.
    Profile(profile::Args),
    /// Serve a web dashboard of the applications running as one process.
    ///
    /// Prints `Dashboard available at: http://ADDR` on stderr and serves
    /// until ctrl-c: each run's components, listeners, method totals,
    /// traffic graph and metrics. Every page is self-contained.
    Dashboard {
        /// The host to listen on (loopback by default).
        #[arg(long, default_value = "localhost")]
        host: String,
        /// The port to listen on (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Print the weaver version.
    Version,
}

/// Printed instead of tables when no single-process run is live.
const NOTHING_RUNS: &str = "No applications are running as one process.\n";

pub(crate) fn run(cmd: Command) -> anyhow::Result<Outcome> {
    match cmd {
        Command::Deploy { config } => deploy::deploy(&config),
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
        Command::Profile(args) => {
            // Check the request before asking anyone.
            let req = args.request()?;
            let dir = single::registry_dir(&weaver_babysitter::data_dir()?);
            let candidates = live_registrations(&dir)
                .into_iter()
                .filter_map(source)
                .map(|s| profile::Candidate {
                    id: s.deployment_id,
                    app: s.app,
                    addr: s.addr,
                })
                .collect();
            let target = profile::pick(candidates, &args.prefix)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(profile::profile(&target, req, args.format))?;
            Ok(Outcome::Ok)
        }
        Command::Dashboard { host, port } => crate::dashboard::run_single(&host, port),
        Command::Version => {
            println!("{}", crate::version());
            Ok(Outcome::Ok)
        }
    }
}

/// The registrations of live processes; removes those of dead ones.
pub(crate) fn live_registrations(dir: &Path) -> Vec<Registration> {
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

pub(crate) fn to_status(r: Registration) -> Status {
    // The process is the run's one weavelet; its log entries name the
    // deployment id as their node.
    let replica = ReplicaStatus {
        pid: r.pid,
        weavelet_id: r.deployment_id.clone(),
        index: 0,
        restarts: 0,
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
        sections: Default::default(),
    }
}
