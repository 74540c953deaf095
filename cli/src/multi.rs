//! `weaver multi`: deploy an application as many processes, and inspect
//! the deployments running on this machine.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use tokio::signal::unix::{SignalKind, signal};
use weaver_babysitter::{Config, Deployment, Options, Registry, data_dir};

use crate::{Outcome, UsageError, dashboard, metrics, profile, status};

/// How long in-flight requests get to finish at teardown.
const GRACE: Duration = Duration::from_secs(5);

/// Output formats of `weaver multi logs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line per entry.
    Pretty,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Deploy an application as many processes on this machine.
    ///
    /// Starts the Main component's replicas, then every other component's
    /// group on first use; prints every replica's logs; ctrl-c tears the
    /// whole deployment down.
    Deploy {
        /// The application's config file (weaver.toml).
        config: PathBuf,
    },
    /// Show the deployments running on this machine.
    ///
    /// `--format=json` prints one JSON document for scripts (see the
    /// README): {"deployments": [{app, deployment_id, started_at, age_secs,
    /// pid, status_addr, components: [{name, group, replicas: [{pid,
    /// weavelet_id}]}], listeners: [{name, address}]}]}.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t = status::Format::Table)]
        format: status::Format,
    },
    /// Show the metrics of the deployments running on this machine.
    ///
    /// Each babysitter polls its replicas (a replica that does not answer
    /// within 2 s is left out, with a warning) and the series of every
    /// replica are shown, one table per metric, user metrics first.
    Metrics {
        /// Show only metrics whose name matches this regular expression
        /// (unanchored).
        regex: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = metrics::Format::Table)]
        format: metrics::Format,
    },
    /// Print the logs of live and finished deployments, filtered by CEL.
    ///
    /// Variables: app, version (8-char deployment id), full_version,
    /// component (e.g. hello::Reverser), full_component, node (8-char
    /// weavelet id), full_node, time, level (debug, info, warn, error,
    /// stdout, stderr), source ("file:line"), msg, attrs (a map whose
    /// values keep the type they were logged with). A query is type-checked
    /// before any log is read (exit 64 if bad); entries it fails on at run
    /// time are counted on stderr.
    ///
    /// Examples:
    ///   weaver multi logs 'level == "error"'
    ///   weaver multi logs --follow 'component == "hello::Reverser" && msg.contains("len")'
    ///   weaver multi logs 'attrs["user"] == "ada" && time > timestamp("2026-01-01T00:00:00Z")'
    ///   weaver multi logs 'attrs["len"] > 5'
    #[command(verbatim_doc_comment)]
    Logs {
        /// The CEL query; every entry if omitted.
        query: Option<String>,
        /// Keep printing new entries as they are logged, including those of
        /// deployments that start later.
        #[arg(long)]
        follow: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
        format: LogFormat,
        /// Include the runtime's own (system) entries.
        #[arg(long)]
        system: bool,
    },
    /// Write a CPU profile of a running deployment to a file.
    ///
    /// Profiles one replica of every group at once for --duration (a
    /// group's profile is scaled by its replica count), merges them into
    /// one gzipped pprof protobuf in $TMPDIR and prints its path. Open it
    /// with `go tool pprof -http=: <file>`, `pprof -http=: <file>` or
    /// speedscope; or, with --format=svg, a flame graph to open in a
    /// browser. A group that cannot be profiled is left out, with a
    /// "Partial profile data received" note on stderr.
    Profile(profile::Args),
    /// Serve a web dashboard of the deployments running on this machine.
    ///
    /// Prints `Dashboard available at: http://ADDR` on stderr and serves
    /// until ctrl-c: live deployments, each one's components, methods,
    /// traffic graph, metrics and logs. Every page is self-contained (no
    /// request leaves the machine).
    Dashboard {
        /// The host to listen on (loopback by default).
        #[arg(long, default_value = "localhost")]
        host: String,
        /// The port to listen on (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Delete the logs and registrations of finished deployments.
    Purge {
        /// Do not ask for confirmation.
        #[arg(long)]
        force: bool,
    },
    /// Print the weaver version.
    Version,
}

pub(crate) fn run(cmd: Command) -> anyhow::Result<Outcome> {
    match cmd {
        Command::Deploy { config } => deploy(config),
        Command::Status { format } => status(format),
        Command::Metrics { regex, format } => metrics(regex.as_deref(), format),
        Command::Logs {
            query,
            follow,
            format,
            system,
        } => logs(query.as_deref(), follow, format, system),
        Command::Profile(args) => profile(&args),
        Command::Dashboard { host, port } => dashboard::run_multi(&host, port),
        Command::Purge { force } => purge(force),
        Command::Version => {
            println!("{}", crate::version());
            Ok(Outcome::Ok)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn deploy(path: PathBuf) -> anyhow::Result<Outcome> {
    let config = Config::load(&path).map_err(|e| UsageError(e.to_string()))?;
    let app = config.app_name().to_string();
    let data_dir = data_dir()?;
    runtime()?.block_on(async move {
        // Register the handlers before any child exists, so a ctrl-c during
        // startup still tears everything down.
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let options = Options {
            out: Box::new(std::io::stdout()),
            color: status::color_enabled(),
            data_dir,
            handshake_timeout: handshake_timeout()?,
        };
        let deployment = tokio::select! {
            d = Deployment::start(config, options) => d.map_err(anyhow::Error::new)?,
            _ = sigint.recv() => return Ok(Outcome::Signal(2)),
            _ = sigterm.recv() => return Ok(Outcome::Signal(15)),
        };
        let outcome = tokio::select! {
            _ = sigint.recv() => Outcome::Signal(2),
            _ = sigterm.recv() => Outcome::Signal(15),
            e = deployment.failed() => {
                deployment.shutdown(GRACE).await;
                let e = anyhow::Error::new(e);
                eprintln!("Application {app} error: {e:#}");
                return Ok(Outcome::Failed);
            }
        };
        deployment.shutdown(GRACE).await;
        eprintln!("Application {app} terminated by the user");
        Ok(outcome)
    })
}

/// The handshake timeout: `WEAVER_HANDSHAKE_TIMEOUT` (e.g. `2s`, `500ms`),
/// else 10 s.
fn handshake_timeout() -> anyhow::Result<Duration> {
    let Ok(text) = std::env::var("WEAVER_HANDSHAKE_TIMEOUT") else {
        return Ok(Duration::from_secs(10));
    };
    let parsed = if let Some(ms) = text.strip_suffix("ms") {
        ms.parse::<u64>().ok().map(Duration::from_millis)
    } else {
        text.strip_suffix('s')
            .and_then(|s| s.parse::<f64>().ok())
            .map(Duration::from_secs_f64)
    };
    parsed.ok_or_else(|| {
        UsageError(format!(
            "WEAVER_HANDSHAKE_TIMEOUT={text:?} is not a duration like 2s or 500ms"
        ))
        .into()
    })
}

fn status(format: status::Format) -> anyhow::Result<Outcome> {
    let registry = Registry::open_default()?;
    let live = runtime()?.block_on(status::live(&registry, Duration::from_secs(2)))?;
    // Deployments that seem alive but did not answer in time are left out,
    // as the tables always did.
    let listed = live
        .into_iter()
        .filter_map(|d| {
            Some(status::Listed {
                pid: d.registration.pid,
                has_status_server: true,
                status: d.status.ok()?,
            })
        })
        .collect();
    status::print(listed, format)?;
    Ok(Outcome::Ok)
}

fn metrics(regex: Option<&str>, format: metrics::Format) -> anyhow::Result<Outcome> {
    // Check the regex before asking anyone.
    let filter = metrics::filter(regex)?;
    let registry = Registry::open_default()?;
    let deployments = runtime()?.block_on(metrics::collect(&registry, filter.as_ref()))?;
    metrics::print(&deployments, format, metrics::NOTHING_RUNS)?;
    Ok(Outcome::Ok)
}

fn profile(args: &profile::Args) -> anyhow::Result<Outcome> {
    // Check the request before asking anyone.
    let req = args.request()?;
    let registry = Registry::open_default()?;
    runtime()?.block_on(async {
        let candidates = status::live(&registry, Duration::from_secs(2))
            .await?
            .into_iter()
            .map(|d| profile::Candidate {
                id: d.registration.deployment_id,
                app: d.registration.app,
                addr: d.registration.status_addr,
            })
            .collect();
        let target = profile::pick(candidates, &args.prefix)?;
        profile::profile(&target, req, args.format).await
    })?;
    Ok(Outcome::Ok)
}

fn logs(
    query: Option<&str>,
    follow: bool,
    format: LogFormat,
    system: bool,
) -> anyhow::Result<Outcome> {
    // Check the query before reading anything.
    let query = weaver_logs::Query::parse(query.unwrap_or(""), system)
        .map_err(|e| UsageError(e.to_string()))?;
    let dir = data_dir()?.join("logs");
    let format = match format {
        LogFormat::Pretty => weaver_logs::Format::Pretty {
            color: status::color_enabled(),
        },
        LogFormat::Json => weaver_logs::Format::Json,
    };
    let mut printer = weaver_logs::Printer::new(std::io::stdout().lock(), format);
    let (result, outcome) = if follow {
        // Runs until ctrl-c, which stops the follower so that what could not
        // be evaluated is still reported.
        let stop = weaver_logs::Stop::new()?;
        stop_on_interrupt(stop.clone())?;
        let result = weaver_logs::follow(&dir, &query, &mut printer, &stop).map(|()| 0);
        (result, Outcome::Signal(2))
    } else {
        (weaver_logs::cat(&dir, &query, &mut printer), Outcome::Ok)
    };
    // Entries the query failed on did not match; never drop them silently.
    if let Some(e) = query.eval_errors() {
        eprintln!("weaver: warning: {e}: {}", e.first);
    }
    match result {
        Ok(_) => {
            printer.flush()?;
            Ok(outcome)
        }
        Err(e) if e.is_broken_pipe() => Ok(Outcome::Ok),
        Err(e) => Err(e.into()),
    }
}

/// Stops `stop` on SIGINT, from a thread of its own.
fn stop_on_interrupt(stop: weaver_logs::Stop) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut sigint = {
        let _guard = rt.enter();
        signal(SignalKind::interrupt())?
    };
    std::thread::Builder::new()
        .name("sigint".into())
        .spawn(move || {
            rt.block_on(sigint.recv());
            stop.stop();
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

fn purge(force: bool) -> anyhow::Result<Outcome> {
    let data = data_dir()?;
    let registry = Registry::open_default()?;
    let live = runtime()?.block_on(status::live(&registry, Duration::from_secs(2)))?;
    if !live.is_empty() {
        let ids: Vec<_> = live
            .iter()
            .map(|d| d.registration.deployment_id.clone())
            .collect();
        anyhow::bail!(
            "{} deployment(s) still running ({}); stop them with ctrl-c first",
            ids.len(),
            ids.join(", ")
        );
    }
    let paths = [data.join("logs"), data.join("multi")];
    let existing: Vec<_> = paths.iter().filter(|p| p.exists()).collect();
    if existing.is_empty() {
        eprintln!("Nothing to purge.");
        return Ok(Outcome::Ok);
    }
    if !force {
        eprintln!("This deletes:");
        for p in &existing {
            eprintln!("    {}", p.display());
        }
        eprint!("Enter (y)es to continue: ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "yes") {
            eprintln!("Nothing deleted.");
            return Ok(Outcome::Failed);
        }
    }
    for p in existing {
        match std::fs::remove_dir_all(p) {
            Ok(()) => eprintln!("Deleting {}... ✅", p.display()),
            Err(e) => {
                eprintln!("Deleting {}... ❌ {e}", p.display());
                return Ok(Outcome::Failed);
            }
        }
    }
    Ok(Outcome::Ok)
}
