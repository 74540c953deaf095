//! `weaver`: deploy, inspect and tear down Weaver for Rust applications.
//!
//! The binary is thin: it parses arguments, installs the diagnostics
//! subscriber, runs a command from one of the modules below and maps the
//! outcome to an exit code (64 for usage and config errors, 1 for failures,
//! 128 + signal after a signal, 0 on a broken pipe; `weaver single deploy`
//! exits with its app's status).

// A command-line tool prints its results on stdout.
#![allow(clippy::print_stdout)]

mod dashboard;
mod flame;
mod metrics;
mod multi;
mod profile;
mod single;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Deploy and inspect Weaver for Rust applications.
///
/// Run an application directly (`cargo run`) or with `weaver single deploy
/// weaver.toml` to run every component in one process, or with `weaver multi
/// deploy weaver.toml` to run it as many processes on this machine.
#[derive(Debug, Parser)]
#[command(name = "weaver", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run and inspect applications deployed as many processes.
    #[command(subcommand)]
    Multi(multi::Command),
    /// Run and inspect applications as one process.
    #[command(subcommand)]
    Single(single::Command),
    /// Print the weaver version.
    Version,
}

/// How a command ended.
pub(crate) enum Outcome {
    /// Success.
    Ok,
    /// Ended by a signal: exit 128 + signal.
    Signal(u8),
    /// Exit with this status (the app's, for `weaver single deploy`).
    Exit(u8),
    /// A failure already reported on stderr.
    Failed,
}

/// An error in how the command was used (bad arguments, bad config):
/// exit 64.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Multi(cmd) => multi::run(cmd),
        Command::Single(cmd) => single::run(cmd),
        Command::Version => {
            println!("{}", version());
            Ok(Outcome::Ok)
        }
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Signal(sig)) => ExitCode::from(128 + sig),
        Ok(Outcome::Exit(code)) => ExitCode::from(code),
        Ok(Outcome::Failed) => ExitCode::FAILURE,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weaver: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(64)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `weaver 0.1.0 linux/x86_64 (protocol 1)`.
pub(crate) fn version() -> String {
    format!(
        "weaver {} {}/{} (protocol {})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        weaver_proto::PROTOCOL_VERSION
    )
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEAVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
