//! A request/reply connection over a stream of framed messages.
//!
//! Both the envelope and the weavelet speak this way: each side numbers its
//! own requests from 1, a reply to request `x` carries id `-x`, and one-way
//! messages carry id 0. Incoming requests and one-way messages are handed to
//! the owner in arrival order through [`Incoming`]; replies wake the caller
//! waiting for them.
//!
//! A read or write failure, end of stream, or a message that breaks the
//! protocol (a reply id that cannot be negated, `i64::MIN`) closes the
//! connection: every waiting caller gets [`ConnError::Closed`] with the
//! reason, [`Incoming`] ends, and later sends fail the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::frame::{FrameError, MessageCodec};
use crate::runtime::{EnvelopeMsg, WeaveletMsg};

/// A message of the protocol: an id, a payload and an error text.
pub trait Message: prost::Message + Default + Send + 'static {
    /// The message id.
    fn id(&self) -> i64;
    /// Sets the message id.
    fn set_id(&mut self, id: i64);
    /// The error text of a reply (empty if none).
    fn error(&self) -> &str;
    /// Sets the error text of a reply.
    fn set_error(&mut self, error: String);
}

/// An error from a [`Conn`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    /// The connection is closed; the text says why.
    #[error("connection closed: {0}")]
    Closed(Arc<str>),
    /// The peer answered the request with an error.
    #[error("{0}")]
    Remote(String),
}

/// The sending half of a connection; cheap to clone.
#[derive(Debug)]
pub struct Conn<Out, In> {
    shared: Arc<Shared<In>>,
    tx: mpsc::UnboundedSender<Cmd<Out>>,
}

/// What the writer task is asked to do.
#[derive(Debug)]
enum Cmd<Out> {
    /// Write a message.
    Send(Out),
    /// Flush everything queued before, then acknowledge.
    Flush(oneshot::Sender<()>),
}

/// Incoming requests and one-way messages, in arrival order.
#[derive(Debug)]
pub struct Incoming<In> {
    rx: mpsc::UnboundedReceiver<In>,
}

#[derive(Debug)]
struct Shared<In> {
    next_id: AtomicI64,
    /// Why the connection closed, once it has.
    closed: watch::Sender<Option<Arc<str>>>,
    /// Callers waiting for replies, by request id.
    waiters: Mutex<HashMap<i64, oneshot::Sender<Result<In, ConnError>>>>,
}

/// Removes a waiter if its call is dropped before the reply arrives.
struct WaiterGuard<'a, In> {
    shared: &'a Shared<In>,
    id: i64,
}

// === impl Conn ===

impl<Out: Message, In: Message> Conn<Out, In> {
    /// Starts a connection over a reader and a writer, with frames of at most
    /// `max_frame` bytes.
    ///
    /// Spawns a reader and a writer task on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub fn new<R, W>(reader: R, writer: W, max_frame: usize) -> (Self, Incoming<In>)
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (closed, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            next_id: AtomicI64::new(1),
            closed,
            waiters: Mutex::new(HashMap::new()),
        });
        let (tx, out_rx) = mpsc::unbounded_channel();
        let (in_tx, rx) = mpsc::unbounded_channel();
        let reads = FramedRead::new(reader, MessageCodec::<In, Out>::new(max_frame));
        let writes = FramedWrite::new(writer, MessageCodec::<In, Out>::new(max_frame));
        tokio::spawn(read_loop(reads, in_tx, shared.clone()));
        tokio::spawn(write_loop(writes, out_rx, shared.clone()));
        (Self { shared, tx }, Incoming { rx })
    }

    /// Sends a request and waits for its reply.
    ///
    /// # Errors
    ///
    /// [`ConnError::Remote`] if the peer replied with an error, or
    /// [`ConnError::Closed`] if the connection closed first.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future forgets the request; a late reply is discarded.
    pub async fn call(&self, mut msg: Out) -> Result<In, ConnError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        msg.set_id(id);
        let (tx, rx) = oneshot::channel();
        self.shared.lock_waiters().insert(id, tx);
        let _guard = WaiterGuard {
            shared: &self.shared,
            id,
        };
        // Closing drains the waiters, so a close that raced with the insert
        // above is noticed here.
        if let Some(reason) = self.shared.closed.borrow().clone() {
            return Err(ConnError::Closed(reason));
        }
        self.send_raw(msg)?;
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(self.closed_error()),
        }
    }

    /// Sends a one-way message (id 0).
    ///
    /// # Errors
    ///
    /// [`ConnError::Closed`] if the connection is closed.
    pub fn send(&self, mut msg: Out) -> Result<(), ConnError> {
        msg.set_id(0);
        self.send_raw(msg)
    }

    /// Replies to the request with id `request_id`.
    ///
    /// # Errors
    ///
    /// [`ConnError::Closed`] if the connection is closed.
    pub fn reply(&self, request_id: i64, mut msg: Out) -> Result<(), ConnError> {
        msg.set_id(-request_id);
        self.send_raw(msg)
    }

    /// Replies to the request with id `request_id` with an error.
    ///
    /// # Errors
    ///
    /// [`ConnError::Closed`] if the connection is closed.
    pub fn reply_error(&self, request_id: i64, error: String) -> Result<(), ConnError> {
        let mut msg = Out::default();
        msg.set_error(error);
        self.reply(request_id, msg)
    }

    /// Waits until the connection closes and returns why.
    pub async fn closed(&self) -> Arc<str> {
        let mut rx = self.shared.closed.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_else(|| Arc::from("closed")),
            Err(_) => Arc::from("closed"),
        }
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.borrow().is_some()
    }

    /// Waits until every message sent before this call has been written
    /// to the stream (for example before the process exits).
    ///
    /// # Errors
    ///
    /// [`ConnError::Closed`] if the connection closed first.
    pub async fn flush(&self) -> Result<(), ConnError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Flush(tx))
            .map_err(|_| self.closed_error())?;
        rx.await.map_err(|_| self.closed_error())
    }

    fn send_raw(&self, msg: Out) -> Result<(), ConnError> {
        self.tx
            .send(Cmd::Send(msg))
            .map_err(|_| self.closed_error())
    }

    fn closed_error(&self) -> ConnError {
        let reason = self.shared.closed.borrow().clone();
        ConnError::Closed(reason.unwrap_or_else(|| Arc::from("closed")))
    }
}

impl<Out, In> Clone for Conn<Out, In> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            tx: self.tx.clone(),
        }
    }
}

// === impl Incoming ===

impl<In> Incoming<In> {
    /// The next incoming request or one-way message; `None` once the
    /// connection has closed and everything received was handed out.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn recv(&mut self) -> Option<In> {
        self.rx.recv().await
    }
}

// === impl Shared ===

impl<In> Shared<In> {
    fn lock_waiters(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<i64, oneshot::Sender<Result<In, ConnError>>>> {
        // A poisoned map is still a valid map: no invariant spans the lock.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the first close reason and fails every waiter with it.
    fn close(&self, reason: String) {
        let reason: Arc<str> = Arc::from(reason);
        self.closed.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(reason.clone());
                true
            } else {
                false
            }
        });
        let reason = self.closed.borrow().clone().unwrap_or(reason);
        let waiters: Vec<_> = self.lock_waiters().drain().collect();
        for (_, w) in waiters {
            let _ = w.send(Err(ConnError::Closed(reason.clone())));
        }
    }
}

impl<In> Drop for WaiterGuard<'_, In> {
    fn drop(&mut self) {
        self.shared.lock_waiters().remove(&self.id);
    }
}

async fn read_loop<R, In, Out>(
    mut reads: FramedRead<R, MessageCodec<In, Out>>,
    incoming: mpsc::UnboundedSender<In>,
    shared: Arc<Shared<In>>,
) where
    R: AsyncRead + Unpin,
    In: Message,
{
    let reason = loop {
        match reads.next().await {
            None => break "end of stream".to_string(),
            Some(Err(e)) => break error_chain(&e),
            Some(Ok(msg)) => {
                if let Err(reason) = deliver(msg, &incoming, &shared) {
                    break reason;
                }
            }
        }
    };
    shared.close(reason);
}

/// Hands a message to the caller waiting for it, or to [`Incoming`].
///
/// # Errors
///
/// The close reason if the message breaks the protocol.
fn deliver<In: Message>(
    msg: In,
    incoming: &mpsc::UnboundedSender<In>,
    shared: &Shared<In>,
) -> Result<(), String> {
    let id = msg.id();
    if id >= 0 {
        if incoming.send(msg).is_err() {
            // The owner stopped listening; replies still flow.
            tracing::trace!(id, "incoming message dropped: no receiver");
        }
        return Ok(());
    }
    // No request id answers to i64::MIN: its negation overflows.
    let request = id
        .checked_neg()
        .ok_or_else(|| format!("protocol error: reply id {id} cannot be negated"))?;
    let Some(waiter) = shared.lock_waiters().remove(&request) else {
        tracing::debug!(id, "dropping reply nobody waits for");
        return Ok(());
    };
    let result = if msg.error().is_empty() {
        Ok(msg)
    } else {
        Err(ConnError::Remote(msg.error().to_string()))
    };
    let _ = waiter.send(result);
    Ok(())
}

async fn write_loop<W, In, Out>(
    mut writes: FramedWrite<W, MessageCodec<In, Out>>,
    mut out: mpsc::UnboundedReceiver<Cmd<Out>>,
    shared: Arc<Shared<In>>,
) where
    W: AsyncWrite + Unpin,
    Out: Message,
{
    let mut closed = shared.closed.subscribe();
    loop {
        let cmd = tokio::select! {
            cmd = out.recv() => cmd,
            _ = closed.wait_for(Option::is_some) => None,
        };
        let Some(cmd) = cmd else { break };
        // Batch whatever else is queued into one write.
        let mut acks = Vec::new();
        let mut result = feed(&mut writes, cmd, &mut acks).await;
        while result.is_ok() {
            match out.try_recv() {
                Ok(more) => result = feed(&mut writes, more, &mut acks).await,
                Err(_) => break,
            }
        }
        if let Err(e) = result.and(SinkExt::<Out>::flush(&mut writes).await) {
            shared.close(error_chain(&e));
            return;
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
    // Every sender is gone or the connection closed: flush what is left and
    // close our end so the peer sees end of stream.
    let _ = SinkExt::<Out>::close(&mut writes).await;
}

async fn feed<W, In, Out>(
    writes: &mut FramedWrite<W, MessageCodec<In, Out>>,
    cmd: Cmd<Out>,
    acks: &mut Vec<oneshot::Sender<()>>,
) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    Out: Message,
{
    match cmd {
        Cmd::Send(msg) => writes.feed(msg).await,
        Cmd::Flush(ack) => {
            acks.push(ack);
            Ok(())
        }
    }
}

fn error_chain(e: &FrameError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

macro_rules! impl_message {
    ($t:ty) => {
        impl Message for $t {
            fn id(&self) -> i64 {
                self.id
            }
            fn set_id(&mut self, id: i64) {
                self.id = id;
            }
            fn error(&self) -> &str {
                &self.error
            }
            fn set_error(&mut self, error: String) {
                self.error = error;
            }
        }
    };
}

impl_message!(EnvelopeMsg);
impl_message!(WeaveletMsg);

#[cfg(test)]
mod tests;
