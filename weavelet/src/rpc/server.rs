//! The serving side of component RPC.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_util::codec::FramedRead;

use super::client::write_loop;
use super::wire::{self, FrameDecoder, Kind};
use crate::{BoxFuture, Context, Error, Result};

/// Runs calls by method key.
pub(crate) trait Dispatcher: Send + Sync + 'static {
    /// Runs the method with `method_key` on encoded `args`.
    fn dispatch(&self, method_key: u64, ctx: Context, args: Bytes) -> BoxFuture<'static, Result<Vec<u8>>>;
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
                    Ok((s, _)) => {
                        let (r, w) = s.into_split();
                        tokio::spawn(serve(r, w, d.clone()));
                    }
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
                    Ok((s, _)) => {
                        let _ = s.set_nodelay(true);
                        let (r, w) = s.into_split();
                        tokio::spawn(serve(r, w, d.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting component RPC connection");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
}

/// Serves calls arriving on one connection until it closes.
pub(crate) async fn serve<R, W>(reader: R, writer: W, d: Arc<dyn Dispatcher>)
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let mut hello = BytesMut::new();
    wire::put_frame(&mut hello, Kind::Version, 0, &[&wire::RPC_VERSION.to_le_bytes()]);
    let _ = tx.send(hello);
    tokio::spawn(write_loop(writer, rx));
    let inflight: InFlight = Arc::default();
    let mut frames = FramedRead::with_capacity(reader, FrameDecoder, 16 << 10);
    while let Some(frame) = frames.next().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(error = %e, "component RPC connection failed");
                break;
            }
        };
        match frame.kind {
            Kind::Request => start_call(frame.id, frame.body, &d, &tx, &inflight).await,
            Kind::Cancel => {
                let handle = lock(&inflight).remove(&frame.id);
                if let Some(h) = handle {
                    h.abort();
                }
            }
            Kind::Version => {}
            Kind::Response | Kind::Error => {
                tracing::debug!("unexpected reply frame on a server connection");
                break;
            }
        }
    }
    // The caller is gone: nobody can receive the replies of what is left.
    for (_, h) in lock(&inflight).drain() {
        h.abort();
    }
}

/// Runs a call: inline if it completes on its first poll, else on a task.
async fn start_call(
    id: u64,
    body: Bytes,
    d: &Arc<dyn Dispatcher>,
    tx: &mpsc::UnboundedSender<BytesMut>,
    inflight: &InFlight,
) {
    let req = match wire::parse_request(body) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(error_frame(id, &Error::internal(e)));
            return;
        }
    };
    let mut ctx = Context::new();
    if req.deadline_us > 0 {
        ctx = ctx.with_timeout(Duration::from_micros(req.deadline_us));
    }
    let deadline = ctx.deadline();
    let call = d.dispatch(req.method_key, ctx, req.args);
    let mut call = Box::pin(guarded(call, deadline));
    // Most handlers finish without waiting: answer them here and skip the
    // cost of a task.
    let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
    if let Poll::Ready(result) = first {
        let _ = tx.send(reply_frame(id, result));
        return;
    }
    let (tx, map) = (tx.clone(), inflight.clone());
    let task = tokio::spawn(async move {
        let result = call.await;
        lock(&map).remove(&id);
        let _ = tx.send(reply_frame(id, result));
    });
    let mut map = lock(inflight);
    if !task.is_finished() {
        map.insert(id, task.abort_handle());
    }
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
    result.unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(Error::internal(format!("component method panicked: {msg}")))
    })
}

fn reply_frame(id: u64, result: Result<Vec<u8>>) -> BytesMut {
    match result {
        Ok(bytes) => {
            let mut f = BytesMut::new();
            wire::put_frame(&mut f, Kind::Response, id, &[&bytes]);
            f
        }
        Err(e) => error_frame(id, &e),
    }
}

fn error_frame(id: u64, e: &Error) -> BytesMut {
    let (code, msg) = e.to_wire();
    let mut f = BytesMut::new();
    wire::put_frame(&mut f, Kind::Error, id, &[&[code], msg.as_bytes()]);
    f
}

fn lock(m: &InFlight) -> std::sync::MutexGuard<'_, HashMap<u64, AbortHandle>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
