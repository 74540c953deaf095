//! An HTTP reverse proxy whose set of backends changes at run time.
//!
//! The babysitter runs one [`Proxy`] per listener name; every replica that
//! exports the listener becomes a backend, and a replica that dies is removed
//! at once. Clients may speak HTTP/1.1 or HTTP/2 with prior knowledge (h2c).
//! Each backend is probed once for h2c: one that speaks it gets all its
//! requests multiplexed over a single HTTP/2 connection (batched writes and
//! reads instead of two system calls per request); any other is reached over
//! pooled HTTP/1.1 keep-alive connections.
//!
//! Each request goes to the less loaded of two backends (power of two choices
//! on requests in flight). Hop-by-hop headers are dropped, the client's `Host`
//! is kept and its IP appended to `X-Forwarded-For`, and bodies stream both
//! ways. A request whose backend cannot be connected to is retried once on
//! another backend if its method is safe (GET, HEAD, OPTIONS, TRACE) or it has
//! no body; otherwise, and when no backend is left, the client gets a short
//! plain-text `502 Bad Gateway`. Failures are logged through `tracing`, tagged
//! upstream (502), downstream (400) or internal (500).
//!
//! ```no_run
//! # async fn run() -> Result<(), weaver_proxy::Error> {
//! use std::time::Duration;
//!
//! let proxy = weaver_proxy::Proxy::bind("127.0.0.1:0").await?;
//! proxy.add_backend("127.0.0.1:8081".parse().expect("valid address"));
//! println!("listening on {}", proxy.local_addr());
//! proxy.shutdown(Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```

mod balance;
mod body;
mod error;
mod forward;
mod pool;
mod server;

pub use error::Error;
pub use server::Proxy;
