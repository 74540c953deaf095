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
/// hyper's or axum's accept loops. Accepted connections have Nagle's
/// algorithm off (`TCP_NODELAY`, inherited from the listening socket).
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
