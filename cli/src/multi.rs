//! `weaver multi`: deploy an application as many processes, and inspect
//! the deployments running on this machine.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use tokio::signal::unix::{SignalKind, signal};
use weaver_babysitter::{Config, Deployment, Options, Registry, registry, status};

use crate::{Outcome, UsageError};

/// How long in-flight requests get to finish at teardown.
const GRACE: Duration = Duration::from_secs(5);

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
    Status,
    /// Print the weaver version.
    Version,
}

pub(crate) fn run(cmd: Command) -> anyhow::Result<Outcome> {
    match cmd {
        Command::Deploy { config } => deploy(config),
        Command::Status => status(),
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
    let data_dir = registry::data_dir()?;
    runtime()?.block_on(async move {
        // Register the handlers before any child exists, so a ctrl-c during
        // startup still tears everything down.
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let options = Options {
            out: Box::new(std::io::stdout()),
            color: status::color_enabled(),
            data_dir,
            handshake_timeout: Duration::from_secs(10),
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
                let msg = crate::error_chain(&*e);
                eprintln!("Application {app} error: {msg}");
                return Ok(Outcome::Failed);
            }
        };
        deployment.shutdown(GRACE).await;
        eprintln!("Application {app} terminated by the user");
        Ok(outcome)
    })
}

fn status() -> anyhow::Result<Outcome> {
    let registry = Registry::open_default()?;
    let text = runtime()?.block_on(async {
        let live = registry.live(Duration::from_secs(2)).await?;
        let statuses: Vec<_> = live.into_iter().filter_map(|d| d.status.ok()).collect();
        let color = status::color_enabled();
        anyhow::Ok(status::render_status(&statuses, now_micros(), color))
    })?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(Outcome::Ok)
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[allow(dead_code)]
fn is_terminal() -> bool {
    std::io::stdout().is_terminal()
}
