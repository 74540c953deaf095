//! The envelope: one child, from spawn and handshake to its reaped exit.

use std::io;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};
use tracing::Instrument;
use weaver_proto::runtime::{
    EnvelopeMsg, GetHealthRequest, GetLoadReply, GetLoadRequest, GetMetricsReply,
    GetMetricsRequest, GetProfileRequest, HealthStatus, RoutingInfo, UpdateComponentsRequest,
    UpdateRoutingInfoRequest, WeaveletArgs, WeaveletInfo, WeaveletMsg, envelope_msg, weavelet_msg,
};
use weaver_proto::{Conn, Incoming, PROTOCOL_VERSION};

use crate::child::{Child, ChildIo, Exit, ProcessChild};
use crate::handler::EnvelopeHandler;
use crate::output::{self, Origin, Stream, Tail};
use crate::pipe::{self, Pipes};
use crate::progress::Progress;
use crate::serve::{describe, serve};
use crate::supervisor::{self, Command, Supervisor, violation};
use crate::{Config, Error};

/// One weavelet in a child process, as its deployer sees it.
///
/// [`Envelope::start`] spawns the child, completes the handshake and starts
/// serving the weavelet's requests through an [`EnvelopeHandler`]; the
/// methods here send requests the other way and control the process.
///
/// Dropping an `Envelope` closes the weavelet's control pipe: a weavelet exits
/// on end of stream. Its output is still drained into the handler, and a
/// child still running [`Config::stop_grace`] later is killed, so nothing
/// outlives its envelope for long.
#[derive(Debug)]
pub struct Envelope {
    handle: Handle,
    /// To the supervisor task; dropping it is how the supervisor learns the
    /// envelope is gone.
    commands: mpsc::UnboundedSender<Command>,
    /// The child's fate, once every pipe has been drained.
    outcome: watch::Receiver<Option<Result<Exit, Error>>>,
}

/// A cheap, cloneable handle for sending requests to one weavelet.
///
/// Handlers receive one with every request (`from`), so they can answer an
/// activation by pushing routing to the weavelet that asked.
#[derive(Debug, Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    conn: Conn<EnvelopeMsg, WeaveletMsg>,
    info: WeaveletInfo,
    args: WeaveletArgs,
    pid: u32,
}

/// An envelope between spawn and a completed handshake.
struct Starting<C, H> {
    child: C,
    conn: Conn<EnvelopeMsg, WeaveletMsg>,
    incoming: Incoming<WeaveletMsg>,
    pipes: Pipes,
    pumps: JoinSet<()>,
    progress: Arc<Progress>,
    tail: Arc<Tail>,
    config: Config,
    args: WeaveletArgs,
    handler: Arc<H>,
}

/// Why a start failed, before the child is cleaned up.
enum Failure {
    TimedOut,
    Exited(Exit),
    NotWeavelet(String),
    Invalid(Error),
    Wait(io::Error),
}

// === impl Envelope ===

impl Envelope {
    /// Spawns `config`'s binary as a [`ProcessChild`], sends it `args`,
    /// waits for its handshake reply and starts serving it with `handler`.
    ///
    /// `args.protocol_version` is set to [`PROTOCOL_VERSION`]. Lines the
    /// child prints before a failed handshake still reach the handler.
    ///
    /// # Errors
    ///
    /// Bad configuration ([`Error::BinaryNotFound`], [`Error::NotExecutable`],
    /// [`Error::WorkingDir`], [`Error::Spawn`]) or a failed handshake
    /// ([`Error::ExitedBeforeHandshake`], [`Error::HandshakeTimeout`],
    /// [`Error::NotWeavelet`], [`Error::VersionMismatch`],
    /// [`Error::BadHandshake`]). On every error the child has been killed and
    /// reaped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future kills the child.
    pub async fn start<H: EnvelopeHandler>(
        config: Config,
        args: WeaveletArgs,
        handler: Arc<H>,
    ) -> Result<Self, Error> {
        let (child, io) = ProcessChild::spawn(&config).await?;
        Self::start_child(child, io, config, args, handler).await
    }

    /// Like [`Envelope::start`], for a child started some other way.
    ///
    /// Only the timing and frame settings of `config` are used, and its
    /// binary names the child in error messages.
    ///
    /// # Errors
    ///
    /// As for [`Envelope::start`], from the handshake on.
    pub async fn start_child<C: Child, H: EnvelopeHandler>(
        child: C,
        io: ChildIo,
        config: Config,
        mut args: WeaveletArgs,
        handler: Arc<H>,
    ) -> Result<Self, Error> {
        args.protocol_version = PROTOCOL_VERSION;
        let span = tracing::info_span!(
            "envelope",
            binary = %config.get_binary().display(),
            group = %args.group,
            replica = args.replica,
            pid = child.id(),
        );
        async move {
            let mut starting = Starting::begin(child, io, config, args, handler);
            match starting.handshake().await {
                Ok(info) => Ok(starting.finish(info)),
                Err(failure) => Err(starting.abort(failure).await),
            }
        }
        .instrument(span)
        .await
    }

    /// A cloneable handle for requests to the weavelet.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The weavelet's handshake reply.
    pub fn info(&self) -> &WeaveletInfo {
        self.handle.info()
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.handle.pid()
    }

    /// See [`Handle::update_components`].
    ///
    /// # Errors
    ///
    /// [`Error::Call`] or [`Error::UnexpectedReply`].
    pub async fn update_components(&self, components: Vec<String>) -> Result<(), Error> {
        self.handle.update_components(components).await
    }

    /// See [`Handle::update_routing_info`].
    ///
    /// # Errors
    ///
    /// [`Error::Call`] or [`Error::UnexpectedReply`].
    pub async fn update_routing_info(&self, routing_info: RoutingInfo) -> Result<(), Error> {
        self.handle.update_routing_info(routing_info).await
    }

    /// See [`Handle::get_health`].
    ///
    /// # Errors
    ///
    /// [`Error::Call`] or [`Error::UnexpectedReply`].
    pub async fn get_health(&self) -> Result<HealthStatus, Error> {
        self.handle.get_health().await
    }

    /// See [`Handle::get_metrics`].
    ///
    /// # Errors
    ///
    /// [`Error::Call`] or [`Error::UnexpectedReply`].
    pub async fn get_metrics(&self, ack: u64) -> Result<GetMetricsReply, Error> {
        self.handle.get_metrics(ack).await
    }

    /// See [`Handle::get_load`].
    ///
    /// # Errors
    ///
    /// [`Error::Call`] or [`Error::UnexpectedReply`].
    pub async fn get_load(&self) -> Result<GetLoadReply, Error> {
        self.handle.get_load().await
    }

    /// See [`Handle::get_profile`].
    ///
    /// # Errors
    ///
    /// [`Error::Call`] or [`Error::UnexpectedReply`].
    pub async fn get_profile(&self, req: GetProfileRequest) -> Result<Vec<u8>, Error> {
        self.handle.get_profile(req).await
    }

    /// Sends SIGTERM to the child's process group. A no-op once the child
    /// has exited.
    pub fn terminate(&self) {
        let _ = self.commands.send(Command::Terminate);
    }

    /// Sends SIGKILL to the child's process group. A no-op once the child
    /// has exited.
    pub fn kill(&self) {
        let _ = self.commands.send(Command::Kill);
    }

    /// Waits until the child has exited and everything it sent (pipe
    /// messages, stdout and stderr lines) has been handed to the handler.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] if the weavelet broke the protocol and was killed
    /// for it (the exit is inside), or [`Error::Wait`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; every call returns the same outcome.
    pub async fn wait(&self) -> Result<Exit, Error> {
        let mut outcome = self.outcome.clone();
        match outcome.wait_for(Option::is_some).await {
            Ok(done) => done.clone().unwrap_or_else(|| Err(supervisor_gone())),
            Err(_) => Err(supervisor_gone()),
        }
    }
}

/// The supervisor task vanished without an outcome: its runtime shut down.
fn supervisor_gone() -> Error {
    Error::Wait {
        source: Arc::new(io::Error::other(
            "the envelope's supervisor task stopped (runtime shut down?)",
        )),
    }
}

// === impl Handle ===

impl Handle {
    /// The weavelet's handshake reply.
    pub fn info(&self) -> &WeaveletInfo {
        &self.inner.info
    }

    /// What the weavelet was started with (its id, group, replica, ...).
    pub fn args(&self) -> &WeaveletArgs {
        &self.inner.args
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// Whether the pipe to the weavelet has closed; requests then fail.
    pub fn is_closed(&self) -> bool {
        self.inner.conn.is_closed()
    }

    /// Tells the weavelet the full set of components it hosts.
    ///
    /// # Errors
    ///
    /// [`Error::Call`] or [`Error::UnexpectedReply`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future forgets the reply; the weavelet may still act on
    /// the request. The same holds for every request method.
    pub async fn update_components(&self, components: Vec<String>) -> Result<(), Error> {
        let req = envelope_msg::Msg::UpdateComponentsReq(UpdateComponentsRequest { components });
        self.call("UpdateComponents", req, |m| match m {
            weavelet_msg::Msg::UpdateComponentsReply(_) => Ok(()),
            other => Err(other),
        })
        .await
    }

    /// Sends the weavelet new routing for a component it calls.
    ///
    /// # Errors
    ///
    /// [`Error::Call`] or [`Error::UnexpectedReply`].
    pub async fn update_routing_info(&self, routing_info: RoutingInfo) -> Result<(), Error> {
        let req = envelope_msg::Msg::UpdateRoutingInfoReq(UpdateRoutingInfoRequest {
            routing_info: Some(routing_info),
        });
        self.call("UpdateRoutingInfo", req, |m| match m {
            weavelet_msg::Msg::UpdateRoutingInfoReply(_) => Ok(()),
            other => Err(other),
        })
        .await
    }

    /// Asks the weavelet whether it is healthy.
    ///
    /// # Errors
    ///
    /// [`Error::Call`] or [`Error::UnexpectedReply`].
    pub async fn get_health(&self) -> Result<HealthStatus, Error> {
        let req = envelope_msg::Msg::GetHealthReq(GetHealthRequest {});
        self.call("GetHealth", req, |m| match m {
            weavelet_msg::Msg::GetHealthReply(r) => Ok(r.status()),
            other => Err(other),
        })
        .await
    }

    /// Fetches the metrics that changed since reply `ack` (the `seq` of the
    /// last reply received, 0 for none).
    ///
    /// Pass the previous reply's `seq` only once that reply has been
    /// applied: the weavelet then sends what changed since; any other `ack`
    /// makes it resend everything since the last acknowledged reply.
    ///
    /// # Errors
    ///
    /// [`Error::Call`] or [`Error::UnexpectedReply`].
    pub async fn get_metrics(&self, ack: u64) -> Result<GetMetricsReply, Error> {
        let req = envelope_msg::Msg::GetMetricsReq(GetMetricsRequest { ack });
        self.call("GetMetrics", req, |m| match m {
            weavelet_msg::Msg::GetMetricsReply(r) => Ok(r),
            other => Err(other),
        })
        .await
    }

    /// Fetches the load of the weavelet's routed components.
    ///
    /// # Errors
    ///
    /// [`Error::Call`] or [`Error::UnexpectedReply`].
    pub async fn get_load(&self) -> Result<GetLoadReply, Error> {
        let req = envelope_msg::Msg::GetLoadReq(GetLoadRequest {});
        self.call("GetLoad", req, |m| match m {
            weavelet_msg::Msg::GetLoadReply(r) => Ok(r),
            other => Err(other),
        })
        .await
    }

    /// Fetches a profile of the weavelet's process.
    ///
    /// # Errors
    ///
    /// [`Error::Call`] or [`Error::UnexpectedReply`].
    pub async fn get_profile(&self, req: GetProfileRequest) -> Result<Vec<u8>, Error> {
        let req = envelope_msg::Msg::GetProfileReq(req);
        self.call("GetProfile", req, |m| match m {
            weavelet_msg::Msg::GetProfileReply(r) => Ok(r.data),
            other => Err(other),
        })
        .await
    }

    pub(crate) fn conn(&self) -> &Conn<EnvelopeMsg, WeaveletMsg> {
        &self.inner.conn
    }

    /// Sends a request and picks the expected payload out of the reply.
    async fn call<T>(
        &self,
        what: &'static str,
        msg: envelope_msg::Msg,
        pick: fn(weavelet_msg::Msg) -> Result<T, weavelet_msg::Msg>,
    ) -> Result<T, Error> {
        let request = EnvelopeMsg {
            msg: Some(msg),
            ..Default::default()
        };
        let reply = self
            .inner
            .conn
            .call(request)
            .await
            .map_err(|source| Error::Call { what, source })?;
        let unexpected = |got: Option<&weavelet_msg::Msg>| Error::UnexpectedReply {
            what,
            got: describe(got).to_string(),
        };
        match reply.msg {
            Some(payload) => pick(payload).map_err(|other| unexpected(Some(&other))),
            None => Err(unexpected(None)),
        }
    }
}

// === impl Starting ===

impl<C: Child, H: EnvelopeHandler> Starting<C, H> {
    /// Opens the connection, starts capturing output and sends the
    /// handshake.
    fn begin(child: C, io: ChildIo, config: Config, args: WeaveletArgs, handler: Arc<H>) -> Self {
        let (writer, reader, pipes) = pipe::wrap(io.to_weavelet, io.from_weavelet);
        let (conn, incoming) = Conn::new(reader, writer, config.get_max_frame());
        let progress = Arc::new(Progress::default());
        let tail = Arc::new(Tail::default());
        let origin = Arc::new(Origin::new(&args));
        let mut pumps = JoinSet::new();
        let streams = [
            (io.stdout, Stream::Stdout, None),
            (io.stderr, Stream::Stderr, Some(tail.clone())),
        ];
        for (reader, stream, tail) in streams {
            let Some(reader) = reader else { continue };
            let capture = output::capture(
                reader,
                stream,
                origin.clone(),
                handler.clone(),
                tail,
                progress.clone(),
            );
            pumps.spawn(capture.in_current_span());
        }
        let hello = EnvelopeMsg {
            msg: Some(envelope_msg::Msg::WeaveletArgs(args.clone())),
            ..Default::default()
        };
        if let Err(error) = conn.send(hello) {
            // The handshake wait below finds out why.
            tracing::debug!(%error, "cannot send the handshake");
        }
        Self {
            child,
            conn,
            incoming,
            pipes,
            pumps,
            progress,
            tail,
            config,
            args,
            handler,
        }
    }

    /// Waits for the weavelet's handshake reply and checks it.
    async fn handshake(&mut self) -> Result<WeaveletInfo, Failure> {
        let deadline = Instant::now() + self.config.get_handshake_timeout();
        let first = tokio::select! {
            biased;
            msg = self.incoming.recv() => msg,
            status = self.child.wait() => {
                let exit = status.map_err(Failure::Wait)?;
                // A child may answer and exit at once; the answer is then
                // still in the pipe.
                match timeout(self.config.get_drain_timeout(), self.incoming.recv()).await {
                    Ok(Some(msg)) => Some(msg),
                    _ => return Err(Failure::Exited(exit)),
                }
            }
            () = sleep_until(deadline) => return Err(Failure::TimedOut),
        };
        let info = match first {
            Some(msg) => first_message(msg)?,
            None => return Err(self.closed_early().await),
        };
        check_info(&self.config, &info).map_err(Failure::Invalid)?;
        Ok(info)
    }

    /// Tells why the weavelet's pipe ended before the handshake.
    async fn closed_early(&mut self) -> Failure {
        let reason = self.conn.closed().await;
        if let Some(violation) = violation(self.pipes.saw_end(), &reason) {
            return Failure::NotWeavelet(format!(
                "it wrote something other than weaver messages on its pipe: {violation}"
            ));
        }
        match timeout(self.config.get_stop_grace(), self.child.wait()).await {
            Ok(Ok(exit)) => Failure::Exited(exit),
            Ok(Err(error)) => Failure::Wait(error),
            Err(_) => Failure::NotWeavelet("it closed its pipe without answering".into()),
        }
    }

    /// Starts serving the weavelet and supervising the child.
    fn finish(mut self, info: WeaveletInfo) -> Envelope {
        let reported = u32::try_from(info.pid).unwrap_or(0);
        let pid = self.child.id().unwrap_or(reported);
        if pid != reported {
            tracing::warn!(
                pid,
                reported,
                "the weavelet reports another pid (a wrapper script?)"
            );
        }
        tracing::info!(pid, dial_addr = %info.dial_addr, "weavelet started");
        let handle = Handle {
            inner: Arc::new(Inner {
                conn: self.conn.clone(),
                info,
                args: self.args,
                pid,
            }),
        };
        let (read_done_tx, read_done) = oneshot::channel();
        let serving = serve(
            self.incoming,
            handle.clone(),
            self.handler,
            self.progress.clone(),
            read_done_tx,
        );
        self.pumps.spawn(serving.in_current_span());
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (outcome_tx, outcome) = watch::channel(None);
        let supervisor = Supervisor {
            child: self.child,
            conn: self.conn,
            pipes: self.pipes,
            read_done,
            pumps: self.pumps,
            progress: self.progress,
            commands,
            outcome: outcome_tx,
            stop_grace: self.config.get_stop_grace(),
            drain_timeout: self.config.get_drain_timeout(),
        };
        tokio::spawn(supervisor.run().in_current_span());
        Envelope {
            handle,
            commands: commands_tx,
            outcome,
        }
    }

    /// Kills and reaps the child, drains its output, and explains the
    /// failure.
    async fn abort(mut self, failure: Failure) -> Error {
        if !matches!(failure, Failure::Exited(_)) {
            if let Err(error) = self.child.kill() {
                tracing::warn!(%error, "cannot kill the child");
            }
            match timeout(self.config.get_stop_grace(), self.child.wait()).await {
                Ok(Ok(exit)) => tracing::debug!(%exit, "child killed"),
                Ok(Err(error)) => tracing::warn!(%error, "cannot reap the child"),
                Err(_) => tracing::warn!("child still running after SIGKILL"),
            }
        }
        self.pipes.close_all();
        let drain_timeout = self.config.get_drain_timeout();
        supervisor::drain(&mut self.pumps, drain_timeout, &self.progress).await;
        let binary = self.config.get_binary().to_owned();
        let error = match failure {
            Failure::TimedOut => Error::HandshakeTimeout {
                binary,
                timeout: self.config.get_handshake_timeout(),
            },
            Failure::Exited(exit) => Error::ExitedBeforeHandshake {
                binary,
                exit,
                stderr_tail: self.tail.lines(),
            },
            Failure::NotWeavelet(reason) => Error::NotWeavelet { binary, reason },
            Failure::Invalid(error) => error,
            Failure::Wait(source) => Error::Wait {
                source: Arc::new(source),
            },
        };
        tracing::warn!(%error, "weavelet failed to start");
        error
    }
}

fn first_message(msg: WeaveletMsg) -> Result<WeaveletInfo, Failure> {
    match msg.msg {
        Some(weavelet_msg::Msg::WeaveletInfo(info)) => Ok(info),
        other => Err(Failure::NotWeavelet(format!(
            "its first message was {} instead of the handshake reply",
            describe(other.as_ref())
        ))),
    }
}

fn check_info(config: &Config, info: &WeaveletInfo) -> Result<(), Error> {
    // The version comes first: another version may mean other fields.
    if info.protocol_version != PROTOCOL_VERSION {
        return Err(Error::VersionMismatch {
            deployer: PROTOCOL_VERSION,
            app: info.protocol_version,
        });
    }
    if !info.error.is_empty() {
        return Err(Error::Refused {
            binary: config.get_binary().to_owned(),
            reason: info.error.clone(),
        });
    }
    let bad = |reason: String| Error::BadHandshake {
        binary: config.get_binary().to_owned(),
        reason,
    };
    if info.dial_addr.is_empty() {
        return Err(bad("its dial address is empty".into()));
    }
    if info.pid <= 0 {
        return Err(bad(format!("{} is not a process id", info.pid)));
    }
    Ok(())
}
