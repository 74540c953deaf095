//! Connections to one backend: one multiplexed HTTP/2 connection if the
//! backend speaks h2c, else a pool of keep-alive HTTP/1.1 connections.
//!
//! Each backend owns a [`Pool`]; `forward.rs` checks a connection out before
//! it hands the request over, so a failed connect leaves the request intact
//! for another backend, and a response body checks its connection back in
//! when it ends.
//!
//! The first connection to a backend is a probe: it sends the HTTP/2 client
//! preface and looks at the first bytes that come back. A backend that
//! answers with a `SETTINGS` frame speaks h2c (hyper-util's `auto` server
//! does), and all its requests then share one HTTP/2 connection: the
//! requests that arrive together go out in one write and their responses
//! come back in one read, where HTTP/1.1 pays two system calls per request
//! on each side. Any other answer, or none within [`PROBE_TIMEOUT`], means
//! HTTP/1.1, spoken over a stack of idle connections, most recently used on
//! top.
//!
//! Dropping the pool (its backend removed and its last request done) drops
//! the idle senders and the shared one, which makes hyper close those
//! connections.

use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::body::RequestBody;

/// A backend that accepts nothing within this long counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A backend that has not answered the HTTP/2 preface within this long is
/// spoken to in HTTP/1.1.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The HTTP/2 client connection preface and an empty `SETTINGS` frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// How much of one response the proxy takes from a backend's HTTP/2
/// connection before its client has read it: what a slow client can hold.
const H2_STREAM_WINDOW: u32 = 1 << 20;

/// How much of all responses together it takes. Every stream sharing the
/// connection waits once unread data fills this, so it is the stream window
/// times the 200 concurrent streams servers commonly allow: slow clients
/// never stall the others' responses. Only unread data takes memory.
const H2_CONNECTION_WINDOW: u32 = 200 * H2_STREAM_WINDOW;

/// Connections idle longer than this are closed when next seen.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// At most this many idle connections are kept per backend; more are closed.
const MAX_IDLE: usize = 256;

/// A sender for requests on one backend connection.
#[derive(Debug)]
pub(crate) enum Sender {
    /// One HTTP/1.1 connection, one request at a time.
    Http1(http1::SendRequest<RequestBody>),
    /// A handle on the backend's shared HTTP/2 connection.
    Http2(http2::SendRequest<RequestBody>),
}

/// The protocol a backend was found to speak.
#[derive(Debug)]
enum Protocol {
    /// Not probed yet (or the probe could not connect).
    Unknown,
    Http1,
    /// h2c, and the shared connection if one is open.
    Http2(Option<http2::SendRequest<RequestBody>>),
}

/// Connections to one backend.
#[derive(Debug)]
pub(crate) struct Pool {
    addr: SocketAddr,
    /// What the backend speaks; held only to read or swap, never across an
    /// await.
    protocol: Mutex<Protocol>,
    /// Held while probing or opening the shared HTTP/2 connection, so the
    /// requests that arrive meanwhile wait for it instead of opening more.
    opening: tokio::sync::Mutex<()>,
    /// Guards the idle HTTP/1.1 connections, oldest first; held only to push
    /// or pop.
    idle: Mutex<Vec<Idle>>,
}

#[derive(Debug)]
struct Idle {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
}

/// A connection checked out for one request.
#[derive(Debug)]
pub(crate) struct Checkout {
    pub(crate) sender: Sender,
    /// Whether the connection served a request before: a reused connection
    /// may have been closed by the backend meanwhile, a fresh one not.
    pub(crate) reused: bool,
}

/// Why no connection to a backend could be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The TCP connect failed (refused, unreachable, ...).
    #[error("cannot connect")]
    Io(#[source] io::Error),
    /// The TCP connect did not finish in time.
    #[error("connect timed out")]
    Timeout,
}

// === impl Sender ===

impl Sender {
    /// Sends `req`; if it could not even be handed to the connection (the
    /// connection closed), the error gives it back.
    pub(crate) async fn try_send_request(
        &mut self,
        req: Request<RequestBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<RequestBody>>> {
        match self {
            Sender::Http1(sender) => sender.try_send_request(req).await,
            Sender::Http2(sender) => sender.try_send_request(req).await,
        }
    }

    /// Sends `req`.
    pub(crate) async fn send_request(
        &mut self,
        req: Request<RequestBody>,
    ) -> hyper::Result<Response<Incoming>> {
        match self {
            Sender::Http1(sender) => sender.send_request(req).await,
            Sender::Http2(sender) => sender.send_request(req).await,
        }
    }
}

// === impl Pool ===

impl Pool {
    pub(crate) fn new(addr: SocketAddr) -> Pool {
        Pool {
            addr,
            protocol: Mutex::new(Protocol::Unknown),
            opening: tokio::sync::Mutex::new(()),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The backend's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A connection for one request: the shared HTTP/2 one, a ready idle
    /// HTTP/1.1 one, or else a new one.
    ///
    /// # Errors
    ///
    /// If a new connection is needed and connecting fails.
    pub(crate) async fn checkout(&self) -> Result<Checkout, ConnectError> {
        if let Some(checkout) = self.ready() {
            return Ok(checkout);
        }
        // Boxed: connecting is the rare path, and inline its state would
        // grow every request's future (which hyper moves around).
        Box::pin(self.checkout_slow()).await
    }

    /// A connection that needs no connecting, if there is one.
    fn ready(&self) -> Option<Checkout> {
        let shared = match &*self.protocol() {
            Protocol::Http2(Some(sender)) if !sender.is_closed() => Some(sender.clone()),
            Protocol::Http1 => None,
            _ => return None,
        };
        let sender = match shared {
            Some(sender) => Sender::Http2(sender),
            None => Sender::Http1(self.take_idle()?),
        };
        Some(Checkout {
            sender,
            reused: true,
        })
    }

    async fn checkout_slow(&self) -> Result<Checkout, ConnectError> {
        let opening = self.opening.lock().await;
        // Someone else may have probed or connected while we waited.
        if let Some(checkout) = self.ready() {
            return Ok(checkout);
        }
        if matches!(*self.protocol(), Protocol::Unknown) {
            let h2 = self.probe().await?;
            debug!(backend = %self.addr, h2, "backend protocol probed");
            *self.protocol() = if h2 {
                Protocol::Http2(None)
            } else {
                Protocol::Http1
            };
        }
        if matches!(*self.protocol(), Protocol::Http1) {
            // New HTTP/1.1 connections need not wait for one another.
            drop(opening);
        }
        self.connect().await
    }

    /// Opens a new connection in the backend's protocol (HTTP/1.1 if not
    /// known yet); a new HTTP/2 connection replaces the shared one.
    pub(crate) async fn connect(&self) -> Result<Checkout, ConnectError> {
        let stream = self.dial().await?;
        let addr = self.addr;
        let h2 = matches!(*self.protocol(), Protocol::Http2(_));
        let sender = if h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(H2_STREAM_WINDOW)
                .initial_connection_window_size(H2_CONNECTION_WINDOW)
                .handshake(TokioIo::new(stream))
                .await
                .map_err(|e| ConnectError::Io(io::Error::other(e)))?;
            drive(addr, conn);
            *self.protocol() = Protocol::Http2(Some(sender.clone()));
            Sender::Http2(sender)
        } else {
            let (sender, conn) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| ConnectError::Io(io::Error::other(e)))?;
            drive(addr, conn);
            Sender::Http1(sender)
        };
        debug!(backend = %addr, h2, "backend connection opened");
        Ok(Checkout {
            sender,
            reused: false,
        })
    }

    /// A TCP connection to the backend.
    async fn dial(&self) -> Result<TcpStream, ConnectError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr))
            .await
            .map_err(|_| ConnectError::Timeout)?
            .map_err(ConnectError::Io)?;
        // Small requests must not wait on Nagle's algorithm.
        stream.set_nodelay(true).map_err(ConnectError::Io)?;
        Ok(stream)
    }

    /// Whether the backend answers the HTTP/2 preface with `SETTINGS`, on a
    /// connection of its own that is then closed.
    async fn probe(&self) -> Result<bool, ConnectError> {
        let mut stream = self.dial().await?;
        let answer = async {
            stream.write_all(H2_PREFACE).await?;
            let mut head = [0u8; 9];
            stream.read_exact(&mut head).await?;
            // A frame header: 24-bit length, type, flags, stream id.
            // SETTINGS is type 4, and the server's first one is no ACK.
            Ok::<_, io::Error>(head[3] == 0x4 && head[4] & 0x1 == 0)
        };
        Ok(matches!(
            tokio::time::timeout(PROBE_TIMEOUT, answer).await,
            Ok(Ok(true))
        ))
    }

    /// Returns a connection whose exchange finished cleanly.
    pub(crate) fn checkin(&self, sender: Sender) {
        // The shared HTTP/2 connection stays where it is.
        let Sender::Http1(sender) = sender else {
            return;
        };
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // The oldest sit at the bottom; expire a few per check-in.
        while idle
            .first()
            .is_some_and(|oldest| now.duration_since(oldest.since) > IDLE_TIMEOUT)
        {
            idle.remove(0);
        }
        if idle.len() < MAX_IDLE {
            idle.push(Idle { sender, since: now });
        }
    }

    /// Drops every idle connection and the shared one, which makes hyper
    /// close them once their requests are done.
    pub(crate) fn close_idle(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        drop(idle);
        if let Protocol::Http2(shared) = &mut *self.protocol() {
            shared.take();
        }
    }

    fn protocol(&self) -> std::sync::MutexGuard<'_, Protocol> {
        self.protocol.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take_idle(&self) -> Option<http1::SendRequest<RequestBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // Newest first: the likeliest to be ready and still open.
        let mut skipped = 0;
        while let Some(index) = idle.len().checked_sub(1 + skipped) {
            let entry = &idle[index];
            if entry.sender.is_closed() {
                idle.remove(index);
            } else if entry.sender.is_ready() {
                return Some(idle.remove(index).sender);
            } else {
                // Still finishing its last exchange; it will be ready soon.
                skipped += 1;
            }
        }
        None
    }
}

/// Runs a backend connection's I/O on a task of its own until it ends.
fn drive<C>(addr: SocketAddr, conn: C)
where
    C: std::future::Future<Output = hyper::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = conn.await {
            debug!(backend = %addr, %error, "backend connection failed");
        }
    });
}
