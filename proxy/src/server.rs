//! The [`Proxy`] handle, its accept loop and per-connection serving.
//!
//! The babysitter holds one handle per listener: it adds a replica as a
//! backend when the replica exports the listener, removes it when the replica
//! dies, and shuts the proxy down at teardown. Each accepted connection is
//! served by hyper's auto builder (HTTP/1.1, or HTTP/2 with prior knowledge)
//! on a task of its own; a `watch` channel tells the accept loop and every
//! connection when to drain and when to close.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::error::Error;
use crate::forward::Router;

/// Pause after an accept error that is not about one connection (e.g. out of
/// file descriptors), so the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A running reverse proxy: a cheap handle, cloned freely.
///
/// Dropping every handle stops accepting and lets open connections finish,
/// like [`Proxy::shutdown`] with no deadline.
#[derive(Debug, Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    local_addr: SocketAddr,
    router: Arc<Router>,
    /// Tells the accept loop and every connection what to do; each of them
    /// holds a receiver, so `closed()` on this sender means all are gone.
    phase: watch::Sender<Phase>,
    /// Guards the accept loop's handle, taken by the first `shutdown`.
    accept: Mutex<Option<JoinHandle<()>>>,
}

/// Where the proxy is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepting and serving.
    Serving,
    /// Not accepting; open connections finish their requests, then close.
    Draining,
    /// Every connection is closed now, finished or not.
    Closed,
}

// === impl Proxy ===

impl Proxy {
    /// Binds `addr` (e.g. `"127.0.0.1:0"`) and starts serving on the current
    /// tokio runtime, with no backends yet.
    ///
    /// The proxy's tasks all run on that runtime. A current-thread runtime on
    /// a thread of its own costs the least CPU per request (see `proxy-bench`).
    ///
    /// # Errors
    ///
    /// [`Error::AddrInUse`] if another socket listens on `addr`, and
    /// [`Error::Bind`] for any other failure to listen.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub async fn bind(addr: &str) -> Result<Proxy, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::bind(addr, e))?;
        let local_addr = listener.local_addr().map_err(|e| Error::bind(addr, e))?;
        let router = Arc::new(Router::default());
        let (phase, watcher) = watch::channel(Phase::Serving);
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&router), watcher));
        info!(address = %local_addr, "proxy listening");
        Ok(Proxy {
            shared: Arc::new(Shared {
                local_addr,
                router,
                phase,
                accept: Mutex::new(Some(accept)),
            }),
        })
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Adds a backend; adding one that is already present does nothing.
    pub fn add_backend(&self, addr: SocketAddr) {
        if self.shared.router.backends.add(addr) {
            info!(proxy = %self.shared.local_addr, backend = %addr, "backend added");
        }
    }

    /// Removes a backend. The next request already avoids it; requests in
    /// flight on it finish.
    pub fn remove_backend(&self, addr: SocketAddr) {
        if self.shared.router.backends.remove(addr) {
            info!(proxy = %self.shared.local_addr, backend = %addr, "backend removed");
        }
    }

    /// The current backends, in the order they were added.
    pub fn backends(&self) -> Vec<SocketAddr> {
        self.shared.router.backends.addrs()
    }

    /// Stops accepting at once (new connections are refused once this has
    /// started), lets requests in flight finish for up to `grace`, then closes
    /// every client connection that is left and every idle backend connection.
    ///
    /// Calling it again, or from another clone, is harmless: each call returns
    /// once every connection is closed, and the shortest grace wins.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future after the listener closed leaves the open
    /// connections draining with no deadline.
    pub async fn shutdown(&self, grace: Duration) {
        let shared = &self.shared;
        shared
            .phase
            .send_if_modified(|phase| advance(phase, Phase::Draining));
        let accept = shared
            .accept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(accept) = accept
            && let Err(error) = accept.await
        {
            warn!(%error, "proxy accept loop ended abnormally");
        }
        if tokio::time::timeout(grace, shared.phase.closed())
            .await
            .is_err()
        {
            debug!(proxy = %shared.local_addr, "grace period over; closing connections");
            shared
                .phase
                .send_if_modified(|phase| advance(phase, Phase::Closed));
            shared.phase.closed().await;
        }
        // No request is left, so pooled backend connections can go too.
        shared.router.backends.close_idle();
        info!(proxy = %shared.local_addr, "proxy stopped");
    }
}

/// Moves `phase` forward to `to`; reports whether it changed.
fn advance(phase: &mut Phase, to: Phase) -> bool {
    let rank = |p: Phase| p as u8;
    if rank(to) > rank(*phase) {
        *phase = to;
        true
    } else {
        false
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Arc<Router>,
    mut phase: watch::Receiver<Phase>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            // Any change means draining at least; a dropped sender (every
            // handle gone) means the same.
            _ = phase.changed() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let conn = serve_connection(stream, peer, Arc::clone(&router), phase.clone());
                tokio::spawn(conn);
            }
            Err(error) if is_per_connection(&error) => debug!(%error, "accept failed"),
            Err(error) => {
                warn!(%error, "accept failed; backing off");
                tokio::select! {
                    _ = phase.changed() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
    // Dropping the listener here is what makes new connections be refused.
    drop(listener);
}

/// Accept errors that concern only the connection being accepted.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Arc<Router>,
    mut phase: watch::Receiver<Phase>,
) {
    // Small responses must not wait on Nagle's algorithm.
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "cannot set TCP_NODELAY");
    }
    // Rendered once per connection, cloned (a reference count) per request.
    let client_ip = HeaderValue::from_str(&peer.ip().to_string())
        .expect("an IP address is a valid header value");
    let service = service_fn(move |req| {
        let router = Arc::clone(&router);
        let client_ip = client_ip.clone();
        async move { Ok::<_, Infallible>(router.handle(&client_ip, req).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut watching = true;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            changed = phase.changed(), if watching => {
                // A dropped sender means every handle is gone: drain, no deadline.
                let now = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Draining };
                watching = changed.is_ok();
                match now {
                    Phase::Serving => {}
                    Phase::Draining => conn.as_mut().graceful_shutdown(),
                    Phase::Closed => return,
                }
            }
        }
    }
}
