//! Helpers for the end-to-end tests: build the binaries once, deploy an
//! app with the real `weaver` binary in an isolated data directory, find
//! its processes, wait for events with deadlines, and clean up every
//! process a test started.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

mod status;

pub use status::{
    ComponentStatus, DeploymentStatus, ListenerStatus, ReplicaStatus, StatusReport, status_in,
};

/// Default deadline for anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Paths of the binaries the tests run.
#[derive(Debug)]
pub struct Bins {
    /// The `weaver` CLI.
    pub weaver: PathBuf,
    /// Directory holding every built binary.
    pub dir: PathBuf,
}

impl Bins {
    /// The path of binary `name`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Builds the workspace's binaries once per test process (a no-op when
/// cargo already built them) and returns their paths.
///
/// # Panics
///
/// If the build fails.
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "--bins"])
            .args([
                "-p",
                "weaver-cli",
                "-p",
                "hello",
                "-p",
                "weaver-integration",
            ])
            .args(extra_packages())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the test binaries failed");
        let dir = target_dir().join("debug");
        Bins {
            weaver: dir.join("weaver"),
            dir,
        }
    })
}

/// Example packages that exist in this checkout.
fn extra_packages() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = Vec::new();
    for (dir, pkg) in [
        ("examples/shop", "example-shop"),
        ("examples/custom-deployer", "custom-deployer"),
    ] {
        if root.join(dir).join("Cargo.toml").exists() {
            args.push("-p".to_string());
            args.push(pkg.to_string());
        }
    }
    args
}

fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // The test binary lives in <target>/debug/deps/.
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory.
    pub fn new(prefix: &str) -> anyhow::Result<TempDir> {
        let dir =
            std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (N.fetch_add(1, Ordering::Relaxed) << 48)
}

/// Output lines of a child, collected as they arrive.
#[derive(Debug, Default)]
pub struct Lines {
    lines: Mutex<Vec<String>>,
    more: Notify,
    /// While true, nobody reads the pipe (a paused terminal): the child's
    /// writes block once the pipe buffer is full.
    paused: tokio::sync::watch::Sender<bool>,
}

impl Lines {
    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until a line satisfies `pred` and returns it.
    pub async fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let notified = self.more.notified();
            if let Some(l) = self.all().into_iter().find(|l| pred(l)) {
                return Ok(l);
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                bail!(
                    "timed out waiting for {what}; output so far:\n{}",
                    self.all().join("\n")
                );
            }
        }
    }

    /// Waits until the lines so far satisfy `pred`.
    pub async fn wait_until(
        &self,
        what: &str,
        pred: impl Fn(&[String]) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let notified = self.more.notified();
            if pred(&self.all()) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                let all = self.all();
                let tail = &all[all.len().saturating_sub(20)..];
                bail!(
                    "timed out waiting for {what}; last lines:\n{}",
                    tail.join("\n")
                );
            }
        }
    }

    /// Stops reading the pipe (the pipe stays open): what the child writes
    /// piles up in the pipe buffer, then its writes block.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Reads the pipe again.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    fn push(&self, line: String) {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
        self.more.notify_waiters();
    }
}

fn collect<R: tokio::io::AsyncRead + Unpin + Send + 'static>(r: R, lines: Arc<Lines>) {
    tokio::spawn(async move {
        let mut paused = lines.paused.subscribe();
        let mut r = BufReader::new(r).lines();
        loop {
            // `next_line` is cancel safe: a pause loses no line.
            let line = tokio::select! {
                l = r.next_line() => Some(l),
                _ = paused.wait_for(|p| *p) => None,
            };
            let Some(line) = line else {
                if paused.wait_for(|p| !*p).await.is_err() {
                    break;
                }
                continue;
            };
            match line {
                Ok(Some(l)) => lines.push(l),
                _ => break,
            }
        }
        lines.more.notify_waiters();
    });
}

/// A `weaver multi deploy` run.
pub struct Deployment {
    child: Option<Child>,
    pid: u32,
    /// Its stdout (the app's logs) and stderr.
    pub stdout: Arc<Lines>,
    /// Its stderr.
    pub stderr: Arc<Lines>,
    /// Its data directory (registry, logs).
    pub data: Arc<TempDir>,
    _config_dir: TempDir,
}

impl Deployment {
    /// Deploys with `weaver.toml` text `config` in a fresh data directory.
    pub async fn start(config: &str) -> anyhow::Result<Deployment> {
        Self::start_in(config, Arc::new(TempDir::new("weaver-data")?)).await
    }

    /// Deploys with `config`, sharing data directory `data`.
    pub async fn start_in(config: &str, data: Arc<TempDir>) -> anyhow::Result<Deployment> {
        let dir = TempDir::new("weaver-config")?;
        let path = dir.path().join("weaver.toml");
        std::fs::write(&path, config)?;
        let mut child = Command::new(&bins().weaver)
            .args(["multi", "deploy"])
            .arg(&path)
            .env("WEAVER_DATA_DIR", data.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawn weaver multi deploy")?;
        let pid = child.id().context("babysitter pid")?;
        let (stdout, stderr) = (Arc::new(Lines::default()), Arc::new(Lines::default()));
        collect(child.stdout.take().context("stdout")?, stdout.clone());
        collect(child.stderr.take().context("stderr")?, stderr.clone());
        Ok(Deployment {
            child: Some(child),
            pid,
            stdout,
            stderr,
            data,
            _config_dir: dir,
        })
    }

    /// The babysitter's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits until the deployment is up (the app/deployment box printed).
    pub async fn ready(&self) -> anyhow::Result<()> {
        tokio::select! {
            r = self.stdout.wait_for("the deployment box", |l| l.contains("deployment : ")) => r.map(|_| ()),
            _ = self.exited_early() => bail!(
                "weaver multi deploy exited early:\n{}",
                self.stderr.all().join("\n")
            ),
        }
    }

    async fn exited_early(&self) {
        loop {
            if !pid_alive(self.pid) {
                return;
            }
            tokio::select! {
                _ = self.stdout.more.notified() => {}
                _ = self.stderr.more.notified() => {}
            }
        }
    }

    /// The address of listener `name`'s proxy, from `weaver multi status`
    /// once the deployer has logged that the proxy listens (it records the
    /// proxy in its status before it logs the line).
    pub async fn listener(&self, name: &str) -> anyhow::Result<String> {
        let needle = format!("proxy for listener {name} listening on ");
        self.stdout
            .wait_for(&needle, |l| l.contains(&needle))
            .await?;
        let status = self.status().await?;
        let addr = status
            .listener(name)
            .with_context(|| format!("listener {name} logged but not in {status:?}"))?;
        Ok(addr.to_string())
    }

    /// Pids of the babysitter's direct children.
    pub fn children(&self) -> Vec<u32> {
        children_of(self.pid)
    }

    /// Waits until the deployer reports group `group` started.
    pub async fn group_started(&self, group: &str) -> anyhow::Result<()> {
        let needle = format!("group {group} started with ");
        self.stdout
            .wait_for(&needle, |l| l.contains(&needle))
            .await
            .map(|_| ())
    }

    /// Sends `signal` to the babysitter.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), signal);
    }

    /// Waits for the babysitter to exit; returns its exit code (or 128 +
    /// signal).
    pub async fn wait(&mut self) -> anyhow::Result<i32> {
        let child = self.child.as_mut().context("already waited")?;
        let status = tokio::time::timeout(DEADLINE, child.wait())
            .await
            .context("babysitter did not exit")??;
        use std::os::unix::process::ExitStatusExt;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }

    /// Runs `weaver <args>` against this deployment's data directory.
    pub async fn weaver(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        weaver_in(self.data.path(), args).await
    }
}

impl Deployment {
    /// The deployment id, once the app/deployment box was printed.
    pub fn id(&self) -> Option<String> {
        self.stdout.all().iter().find_map(|l| {
            let id = l.split("deployment : ").nth(1)?;
            Some(id.trim_end_matches(['│', ' ']).to_string())
        })
    }

    /// The deployment's private socket directory (after [`Deployment::ready`]).
    pub fn runtime_dir(&self) -> anyhow::Result<PathBuf> {
        let id = self.id().context("no deployment id printed yet")?;
        Ok(std::env::temp_dir().join(format!("weaver-{id}")))
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        // Leave nothing behind, whatever the test did: the processes, and the
        // runtime directory a killed babysitter could not remove.
        let kids = children_of(self.pid);
        let kill = |pid: u32| {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        };
        kill(self.pid);
        kids.into_iter().for_each(kill);
        if let Ok(dir) = self.runtime_dir() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs `weaver <args>` with data directory `data`.
pub async fn weaver_in(data: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let out = tokio::time::timeout(
        DEADLINE,
        Command::new(&bins().weaver)
            .args(args)
            .env("WEAVER_DATA_DIR", data)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("weaver command timed out")??;
    Ok(out)
}

/// Whether process `pid` exists (and is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(stat_field(&stat, 0).as_deref(), Some("Z") | Some("X")),
        Err(_) => false,
    }
}

/// Pids whose parent is `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return kids;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat_field(&stat, 1).and_then(|p| p.parse::<u32>().ok());
        let state = stat_field(&stat, 0);
        if ppid == Some(parent) && !matches!(state.as_deref(), Some("Z") | Some("X")) {
            kids.push(pid);
        }
    }
    kids.sort_unstable();
    kids
}

/// Field `i` after the command name in /proc/<pid>/stat (0 = state,
/// 1 = ppid).
fn stat_field(stat: &str, i: usize) -> Option<String> {
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(i).map(str::to_string)
}

/// The executable of process `pid`.
pub fn exe_of(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Waits until none of `pids` is alive (each watched through a pidfd,
/// which becomes readable when the process exits).
pub async fn wait_gone(pids: &[u32], within: Duration) -> anyhow::Result<()> {
    let waits = pids.iter().map(|p| pidfd::exited(*p));
    match tokio::time::timeout(within, futures_join(waits)).await {
        Ok(r) => r,
        Err(_) => {
            let alive: Vec<_> = pids.iter().copied().filter(|p| pid_alive(*p)).collect();
            bail!("processes still alive after {within:?}: {alive:?}")
        }
    }
}

async fn futures_join<F: std::future::Future<Output = anyhow::Result<()>>>(
    futs: impl Iterator<Item = F>,
) -> anyhow::Result<()> {
    for f in futs {
        f.await?;
    }
    Ok(())
}

mod pidfd {
    //! Waiting for any process's exit with a pidfd (Linux 5.3+).
    #![allow(unsafe_code)]

    use std::os::fd::{FromRawFd, OwnedFd};

    use tokio::io::unix::AsyncFd;

    /// Resolves when `pid` has exited (at once if it does not exist).
    pub(crate) async fn exited(pid: u32) -> anyhow::Result<()> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor or -1; it touches no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(e.into());
        }
        // SAFETY: the syscall just returned this descriptor; we own it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open
        // and the same for as long as it is registered.
        let fd =
            unsafe { AsyncFd::register(fd) }.map_err(|e| anyhow::anyhow!("register pidfd: {e}"))?;
        let _ready = fd.readable().await?;
        Ok(())
    }
}

/// A minimal HTTP/1.1 GET on loopback; returns (status, body).
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(DEADLINE, tokio::net::TcpStream::connect(addr)).await??;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("no header end")?;
    let status: u16 = head.split(' ').nth(1).context("no status")?.parse()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The `weaver.toml` of an app whose binary is `binary`.
pub fn config(name: &str, binary: &Path, extra: &str) -> String {
    format!(
        "[serviceweaver]\nname = \"{name}\"\nbinary = \"{}\"\n{extra}\n",
        binary.display()
    )
}

/// `micros` since the Unix epoch as RFC 3339 in UTC, the format the tools
/// print.
pub fn rfc3339(micros: i64) -> String {
    weaver_proto::logging::rfc3339_micros(micros)
}
