//! Fixtures shared by the envelope tests: the fake weavelet's path, a
//! recording handler, and ways to watch processes end without sleeping.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};
use weaver_envelope::weaver_proto::runtime::*;
use weaver_envelope::{
    Child, ChildIo, Config, EnvelopeHandler, Exit, Handle, HandlerError, ProcessChild,
};

/// The fake weavelet binary (src/bin/fake-weavelet.rs).
pub(crate) const FAKE: &str = env!("CARGO_BIN_EXE_fake-weavelet");

/// The longest any single step of a test may take.
pub(crate) const STEP: Duration = Duration::from_secs(20);

/// Installs a test subscriber once (`RUST_LOG` to see the envelope's logs).
pub(crate) fn trace_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Runs `fut`, failing the test if it takes longer than [`STEP`].
pub(crate) async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(STEP, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// A config that runs the fake weavelet in `mode`.
pub(crate) fn fake(mode: &str) -> Config {
    Config::new(FAKE).env("FAKE_MODE", mode)
}

/// The handshake arguments every test sends.
pub(crate) fn args() -> WeaveletArgs {
    WeaveletArgs {
        app: "app".into(),
        deployment_id: "dep-1".into(),
        id: "node-1".into(),
        group: "main".into(),
        ..Default::default()
    }
}

/// What a [`Recorder`] saw.
#[derive(Debug)]
pub(crate) enum Event {
    Log(LogEntry),
    Activate(ActivateComponentRequest),
    ListenerAddress(GetListenerAddressRequest),
    Export(ExportListenerRequest),
}

/// How a [`Recorder`] answers ExportListener.
pub(crate) enum Export {
    Ok,
    Fail(String),
    Panic,
}

/// A handler that records everything into a channel.
pub(crate) struct Recorder {
    tx: mpsc::UnboundedSender<Event>,
    export: Export,
    /// If set, log batches wait until it holds `true`.
    gate: Option<watch::Receiver<bool>>,
}

/// The receiving end of a [`Recorder`].
pub(crate) struct Events {
    rx: mpsc::UnboundedReceiver<Event>,
}

pub(crate) fn recorder() -> (Arc<Recorder>, Events) {
    recorder_with(Export::Ok)
}

pub(crate) fn recorder_with(export: Export) -> (Arc<Recorder>, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let recorder = Recorder {
        tx,
        export,
        gate: None,
    };
    (Arc::new(recorder), Events { rx })
}

/// A recorder whose log handling blocks until the returned gate is opened
/// (set to `true`): a handler slower than the child.
pub(crate) fn gated_recorder() -> (Arc<Recorder>, Events, watch::Sender<bool>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (gate_tx, gate) = watch::channel(false);
    let recorder = Recorder {
        tx,
        export: Export::Ok,
        gate: Some(gate),
    };
    (Arc::new(recorder), Events { rx }, gate_tx)
}

impl EnvelopeHandler for Recorder {
    async fn activate_component(
        &self,
        from: &Handle,
        req: ActivateComponentRequest,
    ) -> Result<ActivateComponentReply, HandlerError> {
        let _ = self.tx.send(Event::Activate(req.clone()));
        // Like a real deployer: push the routing to the weavelet that asked.
        let routing = RoutingInfo {
            component: req.component,
            local: true,
            ..Default::default()
        };
        from.update_routing_info(routing).await?;
        Ok(ActivateComponentReply {})
    }

    async fn get_listener_address(
        &self,
        _from: &Handle,
        req: GetListenerAddressRequest,
    ) -> Result<GetListenerAddressReply, HandlerError> {
        let _ = self.tx.send(Event::ListenerAddress(req));
        Ok(GetListenerAddressReply {
            address: "127.0.0.1:0".into(),
        })
    }

    async fn export_listener(
        &self,
        _from: &Handle,
        req: ExportListenerRequest,
    ) -> Result<ExportListenerReply, HandlerError> {
        let _ = self.tx.send(Event::Export(req));
        match &self.export {
            Export::Ok => Ok(ExportListenerReply {
                proxy_address: "127.0.0.1:9999".into(),
                error: String::new(),
            }),
            Export::Fail(text) => Err(HandlerError::new(text.clone())),
            Export::Panic => panic!("deliberate handler panic (expected by the test)"),
        }
    }

    async fn handle_log_batch(&self, batch: LogEntryBatch) {
        if let Some(gate) = &self.gate {
            let mut gate = gate.clone();
            let _ = gate.wait_for(|open| *open).await;
        }
        for entry in batch.entries {
            let _ = self.tx.send(Event::Log(entry));
        }
    }
}

impl Events {
    /// Receives events until a log entry whose message contains `needle`;
    /// returns every event up to and including it.
    pub(crate) async fn until_log(&mut self, needle: &str) -> Vec<Event> {
        let mut seen = Vec::new();
        within(&format!("log containing {needle:?}"), async {
            loop {
                let event = self.rx.recv().await.expect("handler dropped");
                let hit = matches!(&event, Event::Log(e) if e.msg.contains(needle));
                seen.push(event);
                if hit {
                    return;
                }
            }
        })
        .await;
        seen
    }

    /// Every event already delivered, without waiting.
    pub(crate) fn now(&mut self) -> Vec<Event> {
        let mut seen = Vec::new();
        while let Ok(event) = self.rx.try_recv() {
            seen.push(event);
        }
        seen
    }
}

/// The log entries among `events`, in order.
pub(crate) fn logs(events: &[Event]) -> Vec<&LogEntry> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Log(entry) => Some(entry),
            _ => None,
        })
        .collect()
}

/// The messages of the entries of `component`, in order.
pub(crate) fn messages<'a>(events: &'a [Event], component: &str) -> Vec<&'a str> {
    logs(events)
        .into_iter()
        .filter(|e| e.component == component)
        .map(|e| e.msg.as_str())
        .collect()
}

/// Reads the pid a fake wrote to its `FAKE_PID_FILE`.
pub(crate) fn read_pid(path: &Path) -> u32 {
    let text = std::fs::read_to_string(path).expect("pid file");
    text.trim().parse().expect("pid")
}

/// Whether a process with this pid still exists (a zombie counts).
pub(crate) fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A process watched through a pidfd, which names it even after its pid is
/// reused. Dropping it kills the process, so a failing test leaves nothing
/// behind.
pub(crate) struct Process {
    pidfd: AsyncFd<OwnedFd>,
}

impl Process {
    /// Opens a pidfd for `pid`.
    #[allow(unsafe_code)]
    pub(crate) fn open(pid: u32) -> io::Result<Self> {
        let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor or -1; it touches no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(io::Error::other)?;
        // SAFETY: `fd` was just returned by pidfd_open, so it is open and ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open
        // and the same until the AsyncFd is dropped.
        let pidfd =
            unsafe { AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Self { pidfd })
    }

    /// Waits until the process has exited.
    pub(crate) async fn exited(&self) {
        within("process exit", self.pidfd.readable())
            .await
            .expect("poll pidfd")
            .retain_ready();
    }
}

impl Drop for Process {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: pidfd_send_signal takes our open pidfd, a signal number, a
        // null siginfo and flags; it fails harmlessly if the process is gone.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
}

/// A child process killed and reaped when dropped.
pub(crate) struct Reaped(pub(crate) std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real child process that tells the test once the envelope has collected
/// its exit status: an event at the moment the envelope learns of the exit,
/// with no race against the reaping (a pidfd opened after `start` can find
/// the child already reaped on a busy machine).
pub(crate) struct Watched {
    child: ProcessChild,
    reaped: watch::Sender<Option<Exit>>,
}

/// Spawns `config`'s binary as a [`Watched`] child; the receiver holds its
/// exit status once the envelope has it.
pub(crate) async fn watched(config: &Config) -> (Watched, ChildIo, watch::Receiver<Option<Exit>>) {
    let (child, io) = ProcessChild::spawn(config).await.expect("spawn");
    let (reaped, rx) = watch::channel(None);
    (Watched { child, reaped }, io, rx)
}

impl Child for Watched {
    fn id(&self) -> Option<u32> {
        self.child.id()
    }

    fn terminate(&mut self) -> io::Result<()> {
        self.child.terminate()
    }

    fn kill(&mut self) -> io::Result<()> {
        self.child.kill()
    }

    async fn wait(&mut self) -> io::Result<Exit> {
        let status = self.child.wait().await;
        // Sent in the same poll that returns the status, so the envelope
        // cannot act on the exit before the test hears of it.
        if let Ok(exit) = &status {
            self.reaped.send_replace(Some(*exit));
        }
        status
    }
}
