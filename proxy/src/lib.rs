//! An HTTP reverse proxy whose set of backends changes at run time.
//!
//! The babysitter runs one [`Proxy`] per listener name; every replica that
//! exports the listener becomes a backend, and a replica that dies is removed
//! at once. Clients may speak HTTP/1.1 or HTTP/2 with prior knowledge (h2c);
//! backends are reached over pooled HTTP/1.1 keep-alive connections.
//!
//! Each request goes to the less loaded of two backends (power of two choices
//! on requests in flight). Bodies stream both ways. When no backend answers the
//! client gets a short `502 Bad Gateway`; a bodiless request whose backend
//! refused the connection is first retried once on another backend.
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
