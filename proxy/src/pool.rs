//! Keep-alive HTTP/1.1 connections to one backend.
//!
//! Each backend owns a [`Pool`]; `forward.rs` checks a connection out before
//! it hands the request over, so a failed connect leaves the request intact
//! for another backend, and a response body checks its connection back in
//! when it ends. A stack keeps the most recently used connections on top.
//! Dropping the pool (its backend removed and its last request done) drops
//! the idle senders, which makes hyper close those connections.

use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

use crate::body::RequestBody;

/// A backend that accepts nothing within this long counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections idle longer than this are closed when next seen.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// At most this many idle connections are kept per backend; more are closed.
const MAX_IDLE: usize = 256;

/// A sender for requests on one backend connection.
pub(crate) type Sender = SendRequest<RequestBody>;

/// Keep-alive connections to one backend.
#[derive(Debug)]
pub(crate) struct Pool {
    addr: SocketAddr,
    /// Guards the idle connections, oldest first; held only to push or pop.
    idle: Mutex<Vec<Idle>>,
}

#[derive(Debug)]
struct Idle {
    sender: Sender,
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

// === impl Pool ===

impl Pool {
    pub(crate) fn new(addr: SocketAddr) -> Pool {
        Pool {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The backend's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A ready idle connection, or else a new one.
    ///
    /// # Errors
    ///
    /// If there is no idle connection and connecting fails.
    pub(crate) async fn checkout(&self) -> Result<Checkout, ConnectError> {
        if let Some(sender) = self.take_idle() {
            return Ok(Checkout {
                sender,
                reused: true,
            });
        }
        // Boxed: connecting is the rare path, and inline its state would
        // grow every request's future (which hyper moves around) by ~300 bytes.
        Box::pin(self.connect()).await
    }

    /// Opens a new connection.
    pub(crate) async fn connect(&self) -> Result<Checkout, ConnectError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr))
            .await
            .map_err(|_| ConnectError::Timeout)?
            .map_err(ConnectError::Io)?;
        // Small requests must not wait on Nagle's algorithm.
        stream.set_nodelay(true).map_err(ConnectError::Io)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ConnectError::Io(io::Error::other(e)))?;
        let addr = self.addr;
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                debug!(backend = %addr, %error, "backend connection failed");
            }
        });
        debug!(backend = %addr, "backend connection opened");
        Ok(Checkout {
            sender,
            reused: false,
        })
    }

    /// Returns a connection whose exchange finished cleanly.
    pub(crate) fn checkin(&self, sender: Sender) {
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

    /// Drops every idle connection, which makes hyper close it.
    pub(crate) fn close_idle(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        drop(idle);
    }

    fn take_idle(&self) -> Option<Sender> {
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
