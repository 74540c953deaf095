//! `weaver single deploy`: run an application as one process, as Service
//! Weaver's `weaver single deploy` does.
//!
//! The config is checked first (`[serviceweaver]` and `[single]`, through
//! the babysitter's parser, so errors name the file, section and key), and
//! so is the binary; nothing starts when either is wrong. The binary then
//! runs with the config's `args` and `env` and with `SERVICEWEAVER_CONFIG`
//! naming the file, which is how a run outside any deployer finds its
//! `[single]` listeners and component sections. Its stdio is ours: it prints
//! its own app/deployment box and logs, as when run directly. SIGINT and
//! SIGTERM are passed on to it, and this command exits with its status
//! (128 + the signal that ended it, as a shell reports it).
//!
//! The app must not outlive this process: it is started with a parent-death
//! signal (SIGKILL). That signal follows the *thread* that forked, so the
//! child is forked by the main thread, which lives as long as the process:
//! everything here runs on a current-thread runtime driven by `main`.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::ExitStatus;

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};
use weaver_babysitter::Config;
use weaver_proto::{ENVELOPE_TO_WEAVELET_FD, WEAVELET_TO_ENVELOPE_FD};

use crate::{Outcome, UsageError};

/// The variable naming the config file of a single-process run (the
/// `weaver` crate's `config::CONFIG_ENV`; the CLI does not link the app
/// library).
const CONFIG_ENV: &str = "SERVICEWEAVER_CONFIG";

/// Checks `path`, runs its binary as one process and waits for it.
pub(crate) fn deploy(path: &Path) -> anyhow::Result<Outcome> {
    let config = Config::load_single(path).map_err(|e| UsageError(e.to_string()))?;
    config
        .check_binary()
        .map_err(|e| UsageError(e.to_string()))?;
    // One thread, this one: see the module docs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(&config))
}

async fn run(config: &Config) -> anyhow::Result<Outcome> {
    // Handle the signals before the child exists: one that arrives during
    // the spawn is then queued and passed on, instead of ending this process
    // alone.
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let binary = config.binary();
    let mut child = command(config)
        .spawn()
        .with_context(|| format!("cannot start binary \"{}\"", binary.display()))?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw)
        .context("the app exited before its pid was known")?;
    tracing::info!(app = config.app_name(), %pid, binary = %binary.display(), "app started");
    loop {
        let sig = tokio::select! {
            status = child.wait() => {
                let status = status.context("cannot wait for the app")?;
                tracing::info!(%pid, %status, "app exited");
                return Ok(outcome(status));
            }
            _ = sigint.recv() => Signal::SIGINT,
            _ = sigterm.recv() => Signal::SIGTERM,
        };
        // The child is not reaped before `wait` returns, so `pid` is still
        // ours: at worst a zombie, never another process.
        tracing::debug!(%pid, signal = %sig, "passing the signal on to the app");
        if let Err(errno) = kill(pid, sig) {
            tracing::warn!(%pid, signal = %sig, %errno, "cannot signal the app");
        }
    }
}

/// The app's command: binary, args, env, the config's path; our stdio.
fn command(config: &Config) -> Command {
    let mut cmd = Command::new(config.binary());
    cmd.args(config.args())
        .envs(config.env().iter().map(|(k, v)| (k, v)))
        .env(CONFIG_ENV, config.path())
        // Pipe variables inherited from a deployer above us would make the
        // app wait for an envelope that is not there.
        .env_remove(ENVELOPE_TO_WEAVELET_FD)
        .env_remove(WEAVELET_TO_ENVELOPE_FD)
        // If waiting fails, the app goes with the error.
        .kill_on_drop(true);
    sys::kill_with_parent(&mut cmd);
    cmd
}

/// How the command ends, given how the app ended.
fn outcome(status: ExitStatus) -> Outcome {
    match (status.code(), status.signal()) {
        (Some(0), _) => Outcome::Ok,
        // An exit code is 0..=255 on Unix.
        (Some(code), _) => Outcome::Exit(u8::try_from(code).unwrap_or(1)),
        // Signal numbers are below 65, so 128 + signal fits an exit code.
        (None, Some(sig)) => Outcome::Signal(u8::try_from(sig).map_or(127, |s| s.min(127))),
        (None, None) => Outcome::Failed,
    }
}

mod sys {
    //! The command's only unsafe code: the parent-death signal, set in the
    //! forked child before exec.
    #![allow(unsafe_code)]

    use nix::errno::Errno;
    use nix::sys::prctl;
    use nix::sys::signal::Signal;
    use nix::unistd;

    /// Arranges for the child to get SIGKILL when the thread that forks it
    /// dies (see the module docs of `deploy` for which thread that is).
    pub(super) fn kill_with_parent(cmd: &mut tokio::process::Command) {
        let parent = unistd::getpid();
        // SAFETY: the closure runs in the forked child before exec. It only
        // makes async-signal-safe system calls (prctl, getppid) on integers,
        // allocates nothing and takes no locks.
        unsafe {
            cmd.pre_exec(move || {
                prctl::set_pdeathsig(Signal::SIGKILL)?;
                // If we died between fork and prctl, no signal will come:
                // give up instead of running unsupervised.
                if unistd::getppid() != parent {
                    return Err(Errno::ESRCH.into());
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_is_the_apps_status() {
        let exit = |code: i32| ExitStatus::from_raw(code << 8);
        assert!(matches!(outcome(exit(0)), Outcome::Ok));
        assert!(matches!(outcome(exit(3)), Outcome::Exit(3)));
        assert!(matches!(outcome(exit(255)), Outcome::Exit(255)));
        // Killed by a signal: the raw wait status is the signal number.
        let sigint = ExitStatus::from_raw(Signal::SIGINT as i32);
        assert!(matches!(outcome(sigint), Outcome::Signal(2)));
    }
}
