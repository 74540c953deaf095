//! What to run and how patiently to talk to it.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to start one weavelet and supervise it.
///
/// Built with chained setters; every timing has a default that suits a
/// deployer on one machine.
///
/// ```
/// use std::time::Duration;
/// use weaver_envelope::Config;
///
/// let config = Config::new("target/release/hello")
///     .arg("--verbose")
///     .env("GREETING", "hi")
///     .handshake_timeout(Duration::from_secs(5));
/// assert_eq!(config.get_handshake_timeout(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    binary: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    current_dir: Option<PathBuf>,
    handshake_timeout: Duration,
    max_frame: usize,
    stop_grace: Duration,
    drain_timeout: Duration,
}

// === impl Config ===

impl Config {
    /// The default time a child gets to answer the handshake.
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default time a child may outlive its closed control pipe.
    pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);
    /// The default time output streams may stay silent after the child exited.
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

    /// A configuration that runs `binary` with no arguments.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            args: Vec::new(),
            env: Vec::new(),
            current_dir: None,
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            max_frame: weaver_proto::MAX_FRAME_LEN,
            stop_grace: Self::DEFAULT_STOP_GRACE,
            drain_timeout: Self::DEFAULT_DRAIN_TIMEOUT,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Adds an environment variable for the child.
    ///
    /// The child gets the deployer's environment, then the two pipe
    /// variables, then these in order; a later setting of a name wins.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Adds environment variables; see [`Config::env`].
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Runs the child in `dir` instead of the deployer's working directory.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// How long the child may take to answer the handshake.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The largest frame accepted from or sent to the weavelet, in bytes.
    pub fn max_frame(mut self, max: usize) -> Self {
        self.max_frame = max;
        self
    }

    /// How long a child may keep running after its control pipe closed (its
    /// own doing, or because the [`Envelope`](crate::Envelope) was dropped)
    /// before it is killed.
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// How long, once the child has exited, its pipes may stay open with
    /// nothing arriving before the envelope stops reading them.
    ///
    /// Pipes normally end the moment the child exits; they stay open only if
    /// the child passed them on to a process that outlives it.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The binary to run.
    pub fn get_binary(&self) -> &Path {
        &self.binary
    }

    /// The arguments, without the program name.
    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    /// The extra environment, in the order given.
    pub fn get_envs(&self) -> &[(OsString, OsString)] {
        &self.env
    }

    /// The working directory, if one was set.
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.current_dir.as_deref()
    }

    /// The handshake timeout.
    pub fn get_handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The maximum frame size.
    pub fn get_max_frame(&self) -> usize {
        self.max_frame
    }

    /// The stop grace; see [`Config::stop_grace`].
    pub fn get_stop_grace(&self) -> Duration {
        self.stop_grace
    }

    /// The drain timeout; see [`Config::drain_timeout`].
    pub fn get_drain_timeout(&self) -> Duration {
        self.drain_timeout
    }
}
