//! The serving side of component RPC.
//!
//! One thread per socket connection reads requests with blocking reads (an
//! in-memory stream gets a task instead). Each handler is polled once right
//! there, inside the runtime's context; most finish on that poll, and the
//! replies to every request that arrived in the same read are written
//! together once all of them have been handled (one system call for the
//! batch). A handler that has to wait moves to a task of its own on the
//! runtime, which writes its reply straight to the socket when done and can
//! be cancelled by the caller.
//!
//! Why a thread: waiting in a blocking `read` is one system call per
//! request, where a runtime task waits in `epoll_wait` and then reads, and
//! the runtime's park and wake-up are skipped (about a microsecond of a
//! 10–12 µs round trip in `rpc-bench`). A handler that waits pays
//! one hand-off to the runtime (a spawn from outside it) and no hand-off
//! back, since its task writes the reply itself.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::AbortHandle;

use super::io::{ReadBuffer, Sock, Stream, Writer};
use super::wire::{self, Kind};
use crate::{BoxFuture, Context, Error, Result};

/// Runs calls by method key.
pub(crate) trait Dispatcher: Send + Sync + 'static {
    /// Runs the method with `method_key` on encoded `args`.
    fn dispatch(
        &self,
        method_key: u64,
        ctx: Context,
        args: Bytes,
    ) -> BoxFuture<'static, Result<Vec<u8>>>;
}

/// Accepts connections and serves calls on them.
pub(crate) struct Server;

/// Calls in progress on one connection, by request id.
type InFlight = Arc<Mutex<HashMap<u64, AbortHandle>>>;

impl Server {
    /// Serves every connection accepted on a Unix listener.
    pub(crate) fn spawn_unix(listener: tokio::net::UnixListener, d: Arc<dyn Dispatcher>) {
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((s, _)) => spawn_serve(s.into_std().map(Sock::Unix), &d),
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting component RPC connection");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }

    /// Serves every connection accepted on a TCP listener.
    pub(crate) fn spawn_tcp(listener: tokio::net::TcpListener, d: Arc<dyn Dispatcher>) {
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((s, _)) => spawn_serve(s.into_std().map(Sock::Tcp), &d),
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting component RPC connection");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
}

/// Serves an accepted socket from a thread of its own.
fn spawn_serve(sock: std::io::Result<Sock>, d: &Arc<dyn Dispatcher>) {
    let runtime = tokio::runtime::Handle::current();
    let d = d.clone();
    let started = sock.and_then(Stream::blocking).and_then(|stream| {
        std::thread::Builder::new()
            .name("weaver-rpc-serve".to_string())
            .spawn(move || {
                // Handlers' first polls and the tasks of those that wait
                // belong to the app's runtime.
                let _runtime = runtime.enter();
                // It runs for microseconds at a time: a short slice lets
                // it answer a caller on the same CPU at once (`slice.rs`).
                let short = super::slice::request_short_slice();
                tracing::trace!(short, "RPC server thread slice");
                serve_blocking(stream, &d);
            })
    });
    if let Err(e) = started {
        tracing::warn!(error = %e, "setting up component RPC connection");
    }
}

/// Serves calls arriving on one blocking socket until it closes.
fn serve_blocking(stream: Stream, d: &Arc<dyn Dispatcher>) {
    let mut conn = Session::new(stream);
    while conn.handle(d) {
        let filled = conn.rb.fill_blocking(&conn.io);
        if !more(filled) {
            break;
        }
    }
    conn.end();
}

/// Serves calls arriving on one connection until it closes.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) async fn serve<R, W>(reader: R, writer: W, d: Arc<dyn Dispatcher>)
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    serve_stream(Stream::generic(reader, writer), d).await;
}

async fn serve_stream(stream: Stream, d: Arc<dyn Dispatcher>) {
    let mut conn = Session::new(stream);
    while conn.handle(&d) {
        let Session { rb, io, .. } = &mut conn;
        let filled = std::future::poll_fn(|cx| rb.poll_fill(cx, io)).await;
        if !more(filled) {
            break;
        }
    }
    conn.end();
}

/// One server connection's state, whichever way it is read.
struct Session {
    io: Arc<Stream>,
    writer: Arc<Writer>,
    inflight: InFlight,
    rb: ReadBuffer,
}

impl Session {
    fn new(stream: Stream) -> Session {
        let io = Arc::new(stream);
        let writer = Writer::new(io.clone());
        let _ = writer.send(Kind::Version, 0, &[&wire::RPC_VERSION.to_le_bytes()]);
        Session {
            io,
            writer,
            inflight: Arc::default(),
            rb: ReadBuffer::new(),
        }
    }

    /// Handles every request that has arrived and writes the replies
    /// together; `false` if the connection must end.
    fn handle(&mut self, d: &Arc<dyn Dispatcher>) -> bool {
        self.writer.cork();
        let ok = handle_frames(&mut self.rb, d, &self.inflight, &self.writer);
        self.writer.uncork();
        ok
    }

    /// The caller is gone: nobody can receive the replies of what is left.
    fn end(self) {
        for (_, h) in lock(&self.inflight).drain() {
            h.abort();
        }
    }
}

/// Whether a read brought more bytes (not the end, not an error).
fn more(filled: std::io::Result<usize>) -> bool {
    match filled {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(error = %e, "component RPC connection failed");
            false
        }
    }
}

/// Handles every complete frame in `rb`; `false` if the connection must
/// end.
fn handle_frames(
    rb: &mut ReadBuffer,
    d: &Arc<dyn Dispatcher>,
    inflight: &InFlight,
    writer: &Arc<Writer>,
) -> bool {
    loop {
        let frame = match rb.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => return true,
            Err(e) => {
                tracing::debug!(error = %e, "component RPC connection failed");
                return false;
            }
        };
        match frame.kind {
            Kind::Request => start_call(frame.id, frame.body, d, inflight, writer),
            Kind::Cancel => {
                let handle = lock(inflight).remove(&frame.id);
                if let Some(h) = handle {
                    h.abort();
                }
            }
            Kind::Version => {}
            Kind::Response | Kind::Error => {
                tracing::debug!("unexpected reply frame on a server connection");
                return false;
            }
        }
    }
}

/// Runs a call: inline if it completes on its first poll, else on a task.
fn start_call(
    id: u64,
    body: &[u8],
    d: &Arc<dyn Dispatcher>,
    inflight: &InFlight,
    writer: &Arc<Writer>,
) {
    let req = match wire::parse_request(Bytes::copy_from_slice(body)) {
        Ok(r) => r,
        Err(e) => {
            send_reply(writer, id, Err(Error::internal(e)));
            return;
        }
    };
    let mut ctx = Context::new();
    if req.deadline_us > 0 {
        ctx = ctx.with_timeout(Duration::from_micros(req.deadline_us));
    }
    let deadline = ctx.deadline();
    let mut call = d.dispatch(req.method_key, ctx, req.args);
    // Most handlers finish without waiting: answer them here and skip the
    // cost of a task. A handler that waits is polled again at once by its
    // task, which registers the wakers that count. (A deadline cannot have
    // passed for a call that finishes on its first poll.)
    let mut cx = std::task::Context::from_waker(Waker::noop());
    match std::panic::catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(&mut cx))) {
        Ok(Poll::Ready(result)) => return send_reply(writer, id, result),
        Ok(Poll::Pending) => {}
        Err(panic) => return send_reply(writer, id, Err(panicked(&*panic))),
    }
    let call = guarded(call, deadline);
    let (writer, map) = (writer.clone(), inflight.clone());
    // Held across the spawn, so the task's removal comes after the insert
    // even when it runs on another thread at once.
    let mut calls = lock(inflight);
    let task = tokio::spawn(async move {
        let result = call.await;
        lock(&map).remove(&id);
        send_reply(&writer, id, result);
    });
    calls.insert(id, task.abort_handle());
}

/// The call with its deadline applied and panics turned into errors.
async fn guarded(
    call: BoxFuture<'static, Result<Vec<u8>>>,
    deadline: Option<std::time::Instant>,
) -> Result<Vec<u8>> {
    let call = AssertUnwindSafe(call).catch_unwind();
    let result = match deadline {
        Some(d) => match tokio::time::timeout_at(tokio::time::Instant::from_std(d), call).await {
            Ok(r) => r,
            Err(_) => return Err(Error::deadline_exceeded()),
        },
        None => call.await,
    };
    result.unwrap_or_else(|panic| Err(panicked(&*panic)))
}

/// The error a panic in a component method becomes.
fn panicked(panic: &(dyn std::any::Any + Send)) -> Error {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    Error::internal(format!("component method panicked: {msg}"))
}

fn send_reply(writer: &Arc<Writer>, id: u64, result: Result<Vec<u8>>) {
    // A failed write ends the connection; its reader sees that.
    let _ = match result {
        Ok(bytes) => writer.send(Kind::Response, id, &[&bytes]),
        Err(e) => writer.send(Kind::Error, id, &[&e.to_wire()]),
    };
}

fn lock(m: &InFlight) -> std::sync::MutexGuard<'_, HashMap<u64, AbortHandle>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
