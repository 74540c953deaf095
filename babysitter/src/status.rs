//! The status of a running deployment: what its babysitter serves, how
//! `weaver multi status` fetches it, and the tables it prints.
//!
//! Each babysitter runs a [`StatusServer`] on a loopback port and records the
//! port in the [registry](crate::registry). `weaver multi status` lists the
//! registry, calls [`fetch_status`] on every live deployment and prints
//! [`render_status`].

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod client;
mod render;
mod server;
#[cfg(test)]
mod tests;

pub use client::fetch_status;
pub use render::{color_enabled, format_age, render_status, short_component, short_id};
pub use server::{StatusProvider, StatusServer};

/// The HTTP path the status server answers on.
pub const STATUS_PATH: &str = "/debug/weaver/status";

/// The status of one deployment, as its babysitter reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The app's name.
    pub app: String,
    /// The deployment id (a UUID).
    pub deployment_id: String,
    /// When the deployment started, in microseconds since the Unix epoch.
    pub submitted_at: i64,
    /// Where the babysitter's status server listens.
    pub status_addr: SocketAddr,
    /// Every component started so far.
    #[serde(default)]
    pub components: Vec<ComponentStatus>,
    /// Every listener exported so far.
    #[serde(default)]
    pub listeners: Vec<ListenerStatus>,
}

/// One component of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentStatus {
    /// The full component name, e.g. `hello::Reverser`.
    pub name: String,
    /// The colocation group that runs it.
    pub group: String,
    /// The replicas of its group.
    #[serde(default)]
    pub replicas: Vec<ReplicaStatus>,
}

/// One replica: a process running a weavelet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// The process id.
    pub pid: u32,
    /// The weavelet id (a UUID).
    pub weavelet_id: String,
}

/// One listener of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// The address of the listener's proxy, where clients connect.
    pub address: String,
}

/// An error serving or fetching a [`Status`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The status server could not listen.
    #[error("cannot bind the status server to {addr}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// Nothing listens at the address: the deployment is gone.
    #[error("no status server at {addr} (connection refused)")]
    Refused {
        /// The status server's address.
        addr: SocketAddr,
    },
    /// Connecting failed for another reason than a refusal.
    #[error("cannot connect to the status server at {addr}")]
    Connect {
        /// The status server's address.
        addr: SocketAddr,
        /// Why connecting failed.
        #[source]
        source: std::io::Error,
    },
    /// The server did not answer in time.
    #[error("the status server at {addr} did not answer within {timeout:?}")]
    Timeout {
        /// The status server's address.
        addr: SocketAddr,
        /// How long the client waited.
        timeout: Duration,
    },
    /// The HTTP exchange failed.
    #[error("status request to {addr} failed")]
    Http {
        /// The status server's address.
        addr: SocketAddr,
        /// The HTTP error.
        #[source]
        source: hyper::Error,
    },
    /// The server answered with an error status.
    #[error("the status server at {addr} answered HTTP {code}: {body}")]
    HttpStatus {
        /// The status server's address.
        addr: SocketAddr,
        /// The HTTP status code.
        code: u16,
        /// The start of the response body.
        body: String,
    },
    /// The reply was larger than a status can be.
    #[error("the status from {addr} is larger than {limit} bytes")]
    TooLarge {
        /// The status server's address.
        addr: SocketAddr,
        /// The largest reply accepted.
        limit: usize,
    },
    /// The reply was not a valid status.
    #[error("the status server at {addr} sent an invalid status")]
    Decode {
        /// The status server's address.
        addr: SocketAddr,
        /// Why decoding failed.
        #[source]
        source: serde_json::Error,
    },
}

// === impl StatusError ===

impl StatusError {
    /// Whether the server refused the connection, meaning nothing listens at
    /// the address any more.
    pub fn is_refused(&self) -> bool {
        matches!(self, StatusError::Refused { .. })
    }
}
