//! The process boundary: a [`Child`] the envelope supervises, and
//! [`ProcessChild`], the real one.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::unix::pipe;
use weaver_proto::{
    ENVELOPE_TO_WEAVELET_FD, ENVELOPE_TO_WEAVELET_FD_NUM, WEAVELET_TO_ENVELOPE_FD,
    WEAVELET_TO_ENVELOPE_FD_NUM,
};

use crate::{Config, Error, spawner, sys};

/// A boxed reader, for the streams of a [`ChildIo`].
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;

/// A boxed writer, for the streams of a [`ChildIo`].
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A running child that hosts one weavelet.
///
/// [`ProcessChild`] is the real thing; tests and unusual deployers (a child
/// in a container, or in memory) implement their own and hand it to
/// [`Envelope::start_child`](crate::Envelope::start_child) together with its
/// [`ChildIo`].
pub trait Child: Send + 'static {
    /// The operating system's process id, while the child runs.
    fn id(&self) -> Option<u32>;

    /// Asks the child to stop (SIGTERM for a process). A no-op once it has
    /// exited.
    ///
    /// # Errors
    ///
    /// If the signal cannot be delivered.
    fn terminate(&mut self) -> io::Result<()>;

    /// Stops the child at once (SIGKILL for a process). A no-op once it has
    /// exited.
    ///
    /// # Errors
    ///
    /// If the signal cannot be delivered.
    fn kill(&mut self) -> io::Result<()>;

    /// Waits for the child to exit.
    ///
    /// # Errors
    ///
    /// If the exit status cannot be collected.
    ///
    /// # Cancel safety
    ///
    /// Must be cancel safe: the envelope races it against other events and
    /// calls it again. Once it has returned a status, later calls return the
    /// same status at once.
    fn wait(&mut self) -> impl Future<Output = io::Result<Exit>> + Send;
}

/// The streams of a started child.
pub struct ChildIo {
    /// The envelope → weavelet control stream (fd 3 in a process).
    pub to_weavelet: BoxWrite,
    /// The weavelet → envelope control stream (fd 4 in a process).
    pub from_weavelet: BoxRead,
    /// The child's standard output, captured line by line if present.
    pub stdout: Option<BoxRead>,
    /// The child's standard error, captured line by line if present.
    pub stderr: Option<BoxRead>,
}

/// How a child ended: an exit code or a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    code: Option<i32>,
    signal: Option<i32>,
}

/// A child process of the application binary, spawned by [`ProcessChild::spawn`].
///
/// The process runs in its own process group (so a terminal's ctrl-c reaches
/// only the deployer, which tears children down itself), gets SIGKILL if the
/// deployer dies, and has its group killed if this value is dropped before
/// the process was reaped.
#[derive(Debug)]
pub struct ProcessChild {
    child: tokio::process::Child,
}

// === impl ChildIo ===

impl fmt::Debug for ChildIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildIo")
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .finish_non_exhaustive()
    }
}

// === impl Exit ===

impl Exit {
    /// A normal exit with `code`.
    pub fn from_code(code: i32) -> Self {
        Self {
            code: Some(code),
            signal: None,
        }
    }

    /// Death by signal number `signal`.
    pub fn from_signal(signal: i32) -> Self {
        Self {
            code: None,
            signal: Some(signal),
        }
    }

    /// The exit code, if the child exited normally.
    pub fn code(&self) -> Option<i32> {
        self.code
    }

    /// The signal that killed the child, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.signal
    }

    /// Whether the child exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl From<ExitStatus> for Exit {
    fn from(status: ExitStatus) -> Self {
        Self {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit status {code}"),
            (None, Some(sig)) => match Signal::try_from(sig) {
                Ok(name) => write!(f, "killed by signal {sig} ({})", name.as_str()),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
            (None, None) => f.write_str("unknown exit status"),
        }
    }
}

// === impl ProcessChild ===

impl ProcessChild {
    /// Starts `config`'s binary with the weavelet pipes on fds 3 and 4.
    ///
    /// The child's environment is the deployer's, plus
    /// `ENVELOPE_TO_WEAVELET_FD=3` and `WEAVELET_TO_ENVELOPE_FD=4`, plus the
    /// configured variables (a later one wins). Its stdin is `/dev/null`; its
    /// stdout and stderr are piped. The fork happens on one long-lived thread,
    /// because the parent-death signal fires when the *thread* that forked
    /// exits, not the process.
    ///
    /// # Errors
    ///
    /// [`Error::BinaryNotFound`], [`Error::NotExecutable`],
    /// [`Error::WorkingDir`] or [`Error::Spawn`].
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub async fn spawn(config: &Config) -> Result<(Self, ChildIo), Error> {
        let binary = check_paths(config)?;
        let fail = |e: io::Error| spawn_error(config.get_binary(), e);
        let (to_child, to_weavelet) = io::pipe().map_err(fail)?;
        let (from_weavelet, from_child) = io::pipe().map_err(fail)?;
        let mut cmd = command(config, &binary);
        sys::wire_child(&mut cmd, to_child.as_raw_fd(), from_child.as_raw_fd());
        let runtime = tokio::runtime::Handle::current();
        let spawned = spawner::run(move || {
            let _entered = runtime.enter();
            let spawned = cmd.spawn();
            // The child holds its own copies now. Ours must close at once or
            // the weavelet never sees end of stream on fd 3.
            drop((cmd, to_child, from_child));
            spawned
        })
        .await
        .ok_or(Error::Spawner)?;
        let mut child = Self {
            child: spawned.map_err(fail)?,
        };
        // From here on, dropping `child` on an error kills it.
        let io = ChildIo {
            to_weavelet: Box::new(
                pipe::Sender::from_owned_fd(OwnedFd::from(to_weavelet)).map_err(fail)?,
            ),
            from_weavelet: Box::new(
                pipe::Receiver::from_owned_fd(OwnedFd::from(from_weavelet)).map_err(fail)?,
            ),
            stdout: child.child.stdout.take().map(|s| Box::new(s) as BoxRead),
            stderr: child.child.stderr.take().map(|s| Box::new(s) as BoxRead),
        };
        Ok((child, io))
    }

    /// Signals the child's process group (which includes anything it started
    /// that did not move to a group of its own), or the child alone if the
    /// group is gone.
    fn signal(&self, sig: Signal) -> io::Result<()> {
        // After the child is reaped its pid may belong to someone else.
        let Some(pid) = self.child.id() else {
            return Ok(());
        };
        let pid = Pid::from_raw(pid as i32);
        match signal::killpg(pid, sig) {
            Ok(()) => Ok(()),
            Err(Errno::ESRCH) => match signal::kill(pid, sig) {
                Ok(()) | Err(Errno::ESRCH) => Ok(()),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }
}

impl Child for ProcessChild {
    fn id(&self) -> Option<u32> {
        self.child.id()
    }

    fn terminate(&mut self) -> io::Result<()> {
        self.signal(Signal::SIGTERM)
    }

    fn kill(&mut self) -> io::Result<()> {
        self.signal(Signal::SIGKILL)
    }

    async fn wait(&mut self) -> io::Result<Exit> {
        self.child.wait().await.map(Exit::from)
    }
}

impl Drop for ProcessChild {
    fn drop(&mut self) {
        // Nothing may outlive its envelope; tokio reaps the corpse later.
        if let Err(error) = self.signal(Signal::SIGKILL) {
            tracing::warn!(%error, "cannot kill dropped child");
        }
    }
}

/// Checks what exec would otherwise report as a bare errno; returns the
/// binary's path as exec will see it.
fn check_paths(config: &Config) -> Result<PathBuf, Error> {
    let binary = config.get_binary();
    if let Some(dir) = config.get_current_dir()
        && !dir.is_dir()
    {
        return Err(Error::WorkingDir {
            dir: dir.to_owned(),
        });
    }
    // A bare name is looked up in PATH by exec; leave that to the spawn.
    if binary.components().count() == 1 && !binary.has_root() {
        return Ok(binary.to_owned());
    }
    let resolved = match config.get_current_dir() {
        // The child changes directory before exec, so a relative path is
        // relative to its directory.
        Some(dir) if binary.is_relative() => dir.join(binary),
        _ => binary.to_owned(),
    };
    let not_executable = |why| Error::NotExecutable {
        binary: binary.to_owned(),
        why,
    };
    match std::fs::metadata(&resolved) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::BinaryNotFound {
            binary: binary.to_owned(),
        }),
        Ok(meta) if meta.is_dir() => Err(not_executable("it is a directory")),
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => {
            Err(not_executable("it has no execute permission"))
        }
        // Other failures (say, a directory we may not search) are left to
        // the spawn, which reports them with the OS error.
        _ => Ok(resolved),
    }
}

fn command(config: &Config, binary: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.args(config.get_args())
        .env(
            ENVELOPE_TO_WEAVELET_FD,
            ENVELOPE_TO_WEAVELET_FD_NUM.to_string(),
        )
        .env(
            WEAVELET_TO_ENVELOPE_FD,
            WEAVELET_TO_ENVELOPE_FD_NUM.to_string(),
        )
        .envs(config.get_envs().iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // Drop is handled by ProcessChild, which kills the whole group.
        .kill_on_drop(false);
    if let Some(dir) = config.get_current_dir() {
        cmd.current_dir(dir);
    }
    cmd
}

fn spawn_error(binary: &Path, error: io::Error) -> Error {
    let binary = binary.to_owned();
    match error.kind() {
        io::ErrorKind::NotFound => Error::BinaryNotFound { binary },
        io::ErrorKind::PermissionDenied => Error::NotExecutable {
            binary,
            why: "permission denied",
        },
        _ if error.raw_os_error() == Some(libc::ENOEXEC) => Error::NotExecutable {
            binary,
            why: "it is not a program this system can run",
        },
        _ => Error::Spawn {
            binary,
            source: Arc::new(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_display_matches_the_shell() {
        assert_eq!(Exit::from_code(1).to_string(), "exit status 1");
        assert_eq!(
            Exit::from_signal(9).to_string(),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            Exit::from_signal(15).to_string(),
            "killed by signal 15 (SIGTERM)"
        );
        assert_eq!(Exit::from_signal(99).to_string(), "killed by signal 99");
        assert!(Exit::from_code(0).success());
        assert!(!Exit::from_signal(9).success());
    }

    #[test]
    fn relative_binaries_resolve_against_the_working_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::new("./app").current_dir(dir.path());
        let err = check_paths(&config).expect_err("missing");
        assert_eq!(err.to_string(), "binary ./app does not exist");
    }

    #[test]
    fn bare_names_are_left_to_path_lookup() {
        let config = Config::new("sh");
        assert_eq!(check_paths(&config).expect("ok"), PathBuf::from("sh"));
    }
}
