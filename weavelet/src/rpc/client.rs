//! The calling side of a component RPC connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

use super::Addr;
use super::wire::{self, FrameDecoder, Kind};
use crate::{Context, Error, Result};

/// One multiplexed connection to a peer weavelet; cheap to clone.
#[derive(Clone)]
pub(crate) struct Connection {
    inner: Arc<Inner>,
}

type Waiter = oneshot::Sender<Result<Bytes>>;

struct Inner {
    peer: String,
    next_id: AtomicU64,
    tx: mpsc::UnboundedSender<BytesMut>,
    /// Calls waiting for replies, by id; `None` once the connection closed
    /// (holding the reason).
    pending: Mutex<Result<HashMap<u64, Waiter>, String>>,
}

/// Forgets a call (and tells the peer to cancel it) if it is dropped before
/// its reply arrived.
struct CallGuard<'a> {
    inner: &'a Inner,
    id: u64,
    done: bool,
}

impl Connection {
    /// Dials `addr`.
    ///
    /// # Errors
    ///
    /// A remote error if the peer cannot be reached.
    pub(crate) async fn connect(addr: &Addr) -> Result<Connection> {
        let unreachable = |e: std::io::Error| Error::remote(format!("dial {addr}: {e}"));
        match addr {
            Addr::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path).await.map_err(unreachable)?;
                let (r, w) = s.into_split();
                Ok(Self::new(addr.to_string(), r, w))
            }
            Addr::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a).await.map_err(unreachable)?;
                let _ = s.set_nodelay(true);
                let (r, w) = s.into_split();
                Ok(Self::new(addr.to_string(), r, w))
            }
        }
    }

    /// A connection over an established stream.
    pub(crate) fn new<R, W>(peer: String, reader: R, writer: W) -> Connection
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            peer,
            next_id: AtomicU64::new(1),
            tx,
            pending: Mutex::new(Ok(HashMap::new())),
        });
        let mut hello = BytesMut::new();
        wire::put_frame(&mut hello, Kind::Version, 0, &[&wire::RPC_VERSION.to_le_bytes()]);
        let _ = inner.tx.send(hello);
        tokio::spawn(write_loop(writer, rx));
        tokio::spawn(read_loop(reader, inner.clone()));
        Connection { inner }
    }

    /// Whether the connection has failed.
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.lock().is_err()
    }

    /// Calls the method with key `method_key`.
    ///
    /// # Errors
    ///
    /// The method's error, a remote error if the connection fails, or a
    /// deadline error if the context's deadline passes first.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future cancels the call at the peer.
    pub(crate) async fn call(&self, method_key: u64, ctx: &Context, args: &[u8]) -> Result<Bytes> {
        let deadline_us = match ctx.remaining() {
            Some(d) if d.is_zero() => return Err(Error::deadline_exceeded()),
            Some(d) => u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1),
            None => 0,
        };
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match &mut *self.inner.lock() {
            Ok(map) => map.insert(id, tx),
            Err(reason) => return Err(Error::remote(reason.clone())),
        };
        let mut guard = CallGuard {
            inner: &self.inner,
            id,
            done: false,
        };
        let mut frame = BytesMut::new();
        wire::put_frame(
            &mut frame,
            Kind::Request,
            id,
            &[&method_key.to_le_bytes(), &deadline_us.to_le_bytes(), args],
        );
        if self.inner.tx.send(frame).is_err() {
            return Err(Error::remote(format!("connection to {} closed", self.inner.peer)));
        }
        let reply = match ctx.deadline() {
            Some(d) => match tokio::time::timeout_at(tokio::time::Instant::from_std(d), rx).await {
                Ok(r) => r,
                Err(_) => return Err(Error::deadline_exceeded()),
            },
            None => rx.await,
        };
        guard.done = true;
        reply.unwrap_or_else(|_| Err(Error::remote(format!("connection to {} closed", self.inner.peer))))
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Result<HashMap<u64, Waiter>, String>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails every waiting call and refuses new ones.
    fn close(&self, reason: String) {
        let old = std::mem::replace(&mut *self.lock(), Err(reason.clone()));
        if let Ok(map) = old {
            for (_, w) in map {
                let _ = w.send(Err(Error::remote(reason.clone())));
            }
        }
    }

    fn complete(&self, id: u64, result: Result<Bytes>) {
        let waiter = match &mut *self.lock() {
            Ok(map) => map.remove(&id),
            Err(_) => None,
        };
        if let Some(w) = waiter {
            let _ = w.send(result);
        }
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let removed = match &mut *self.inner.lock() {
            Ok(map) => map.remove(&self.id).is_some(),
            Err(_) => false,
        };
        if removed {
            let mut frame = BytesMut::new();
            wire::put_frame(&mut frame, Kind::Cancel, self.id, &[]);
            let _ = self.inner.tx.send(frame);
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(reader: R, inner: Arc<Inner>) {
    let mut frames = FramedRead::with_capacity(reader, FrameDecoder, 16 << 10);
    let reason = loop {
        match frames.next().await {
            None => break format!("connection to {} closed by the peer", inner.peer),
            Some(Err(e)) => break format!("connection to {} failed: {e}", inner.peer),
            Some(Ok(f)) => match f.kind {
                Kind::Response => inner.complete(f.id, Ok(f.body)),
                Kind::Error => inner.complete(f.id, Err(decode_error(&f.body))),
                Kind::Version => {}
                Kind::Request | Kind::Cancel => {
                    break format!("connection to {} failed: unexpected frame", inner.peer);
                }
            },
        }
    };
    inner.close(reason);
}

fn decode_error(body: &[u8]) -> Error {
    match body.split_first() {
        Some((code, msg)) => Error::from_wire(*code, String::from_utf8_lossy(msg).into_owned()),
        None => Error::remote("malformed error reply"),
    }
}

/// Writes queued frames, batching whatever is queued into one write.
pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::UnboundedReceiver<BytesMut>,
) {
    while let Some(mut buf) = rx.recv().await {
        while let Ok(more) = rx.try_recv() {
            buf.extend_from_slice(&more);
        }
        if writer.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}
