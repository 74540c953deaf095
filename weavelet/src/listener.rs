//! `weaver::Listener`: a named network listener owned by a component.

use std::io;
use std::net::SocketAddr;
use std::ops::Deref;

use tokio::net::{TcpListener, TcpStream};

/// A TCP listener the runtime created for a component.
///
/// Run as one process, it listens on `[single] listeners.NAME` from the
/// config file, or an ephemeral loopback port. Under `weaver multi deploy`,
/// each replica listens on loopback and the deployer's proxy, listening on
/// [`Listener::proxy_addr`], spreads the traffic over the replicas.
///
/// It dereferences to the [`tokio::net::TcpListener`], so it plugs into
/// hyper's accept loops; with the `http` feature, `weaver::serve`
/// runs a hyper server on it in one line, and with the `axum` feature,
/// `axum::serve(&app.listener, router)` takes it directly. Accepted
/// connections have Nagle's algorithm off (`TCP_NODELAY`, inherited from
/// the listening socket).
#[derive(Debug)]
pub struct Listener {
    name: String,
    inner: TcpListener,
    public: SocketAddr,
}

impl Listener {
    pub(crate) fn new(name: String, inner: TcpListener, public: SocketAddr) -> Self {
        // Accepted connections inherit TCP_NODELAY from the listener on
        // Linux. Small responses must not wait on Nagle's algorithm: an HTTP/2
        // server writes a response in several small writes, and the second
        // would wait for the peer's delayed ACK (40 ms).
        if let Err(error) =
            nix::sys::socket::setsockopt(&inner, nix::sys::socket::sockopt::TcpNoDelay, &true)
        {
            tracing::debug!(%error, "cannot set TCP_NODELAY on listener {name}");
        }
        Self {
            name,
            inner,
            public,
        }
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address clients should use: the proxy's under a multiprocess
    /// deployment, the listener's own otherwise.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.public
    }

    /// Accepts a connection.
    ///
    /// # Errors
    ///
    /// The operating system's accept error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, like [`TcpListener::accept`].
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.inner.accept().await
    }

    /// The underlying listener.
    pub fn into_inner(self) -> TcpListener {
        self.inner
    }
}

impl Deref for Listener {
    type Target = TcpListener;
    fn deref(&self) -> &TcpListener {
        &self.inner
    }
}

/// Whether an accept error concerns one connection only (the peer gave up
/// before we took it); others (out of file descriptors, ...) concern the
/// listener.
#[cfg(any(feature = "axum", feature = "http"))]
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

#[cfg(feature = "axum")]
impl axum::serve::Listener for &'static Listener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok(conn) => return conn,
                Err(e) if per_connection(&e) => {}
                Err(error) => {
                    // Out of descriptors, say: wait for some to close rather
                    // than spin (axum's own listeners do the same).
                    tracing::error!(listener = %self.name, %error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Serves HTTP/1.1 and h2c on `listener` with `service`, one task per
/// connection, until accepting fails. The proxy in front of a multiprocess
/// deployment multiplexes its requests over HTTP/2 when the app speaks it,
/// which this does.
///
/// ```no_run
/// # use std::convert::Infallible;
/// # async fn handle(_req: hyper::Request<hyper::body::Incoming>)
/// #     -> Result<hyper::Response<String>, Infallible> { Ok(hyper::Response::new(String::new())) }
/// # async fn f(listener: &weaver::Listener) -> std::io::Result<()> {
/// weaver::serve(listener, hyper::service::service_fn(handle)).await
/// # }
/// ```
///
/// # Errors
///
/// The operating system's error if the listener cannot accept any more
/// connections (errors of single connections are skipped).
#[cfg(feature = "http")]
pub async fn serve<S, B>(listener: &Listener, service: S) -> io::Result<()>
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) if per_connection(&e) => continue,
            Err(e) => return Err(e),
        };
        let service = service.clone();
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let listener = Listener::new("l".to_string(), inner, addr);
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        assert!(server.nodelay().unwrap());
        // The client side is the peer's business.
        assert!(!client.nodelay().unwrap());
    }
}
