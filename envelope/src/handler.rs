//! What a deployer implements to serve one weavelet's requests.

use std::fmt;
use std::future::Future;

use weaver_proto::runtime::{
    ActivateComponentReply, ActivateComponentRequest, ExportListenerReply, ExportListenerRequest,
    GetListenerAddressReply, GetListenerAddressRequest, LogEntryBatch, TraceSpans,
};

use crate::envelope::Handle;

/// The deployer's side of the conversation with one weavelet.
///
/// An [`Envelope`](crate::Envelope) calls these methods for the messages its
/// weavelet sends. Requests (`activate_component`, `get_listener_address`,
/// `export_listener`) run concurrently, each in its own task, so a slow
/// activation never holds up logs; their answer (or the error's text) goes
/// back to the weavelet. Telemetry from one source arrives in order: the
/// weavelet's log batches and trace spans one call at a time, and likewise the
/// lines of the child's stdout and of its stderr. Different sources may call
/// concurrently.
///
/// The methods return `impl Future + Send` (no boxing, no `async-trait`), so a
/// handler is a generic parameter, not a trait object; implement them with
/// `async fn` or `fn ... { async move { ... } }`.
///
/// A request still running when its weavelet goes away runs to completion;
/// its answer is dropped.
pub trait EnvelopeHandler: Send + Sync + 'static {
    /// Makes sure `req.component` runs somewhere, and that `from` receives
    /// its routing (through [`Handle::update_routing_info`]) now and whenever
    /// it changes.
    ///
    /// The weavelet waits for the routing before its first call to the
    /// component, and retries a failed activation with backoff.
    ///
    /// REQUIRES: `req.component` is a full component name, e.g. `hello::Reverser`.
    /// REQUIRES: it may be called many times for one component, from one or
    /// many weavelets; every call after the first must be cheap.
    fn activate_component(
        &self,
        from: &Handle,
        req: ActivateComponentRequest,
    ) -> impl Future<Output = Result<ActivateComponentReply, HandlerError>> + Send;

    /// Tells the weavelet where to listen for the listener `req.name`, e.g.
    /// `127.0.0.1:0`.
    ///
    /// REQUIRES: `req.name` is a listener name declared by a component that
    /// `from` hosts.
    fn get_listener_address(
        &self,
        from: &Handle,
        req: GetListenerAddressRequest,
    ) -> impl Future<Output = Result<GetListenerAddressReply, HandlerError>> + Send;

    /// Records that the weavelet listens for `req.listener` at
    /// `req.address`, typically by adding it to a proxy; answers with the
    /// public address.
    ///
    /// REQUIRES: `req.address` is the address the weavelet actually bound
    /// after asking [`EnvelopeHandler::get_listener_address`].
    fn export_listener(
        &self,
        from: &Handle,
        req: ExportListenerRequest,
    ) -> impl Future<Output = Result<ExportListenerReply, HandlerError>> + Send;

    /// Takes a batch of log entries: the weavelet's own logs, or lines of the
    /// child's stdout and stderr (component and level `"stdout"`/`"stderr"`).
    ///
    /// Every entry reaches this method before
    /// [`Envelope::wait`](crate::Envelope::wait) reports the child's exit.
    ///
    /// REQUIRES: entries of one source are handled in the order given; the
    /// envelope awaits each call before making the next one for that source,
    /// so a slow handler slows (never drops) that source.
    fn handle_log_batch(&self, batch: LogEntryBatch) -> impl Future<Output = ()> + Send;

    /// Takes finished trace spans. The default drops them.
    ///
    /// REQUIRES: same ordering contract as [`EnvelopeHandler::handle_log_batch`].
    fn handle_trace_spans(&self, spans: TraceSpans) -> impl Future<Output = ()> + Send {
        let _ = spans;
        async {}
    }
}

/// A handler's failure, sent to the weavelet as the reply's error text.
///
/// Only the text crosses the pipe, so this type keeps just the text (with
/// the source chain joined by `": "`). It deliberately does not implement
/// [`std::error::Error`], which lets `?` convert any error into it.
pub struct HandlerError {
    message: String,
}

// === impl HandlerError ===

impl HandlerError {
    /// An error with this text.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The text sent to the weavelet.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: std::error::Error> From<E> for HandlerError {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Self { message }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HandlerError").field(&self.message).finish()
    }
}
