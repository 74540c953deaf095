//! The status of a running deployment, and the server that serves it.
//!
//! Each babysitter runs a [`StatusServer`] on a loopback port and records the
//! port in the [registry](crate::Registry). `weaver multi status` (in the CLI
//! crate, which fetches and prints) reads the registry and asks each
//! deployment's server for its [`Status`] as JSON at [`STATUS_PATH`]. The
//! same server renders the deployment's metrics as Prometheus text at
//! [`PROMETHEUS_PATH`] and as JSON at [`METRICS_PATH`], and the per-method
//! statistics of the last minute, the last hour and since the start at
//! [`METHODS_PATH`], and a CPU profile of every group at [`PROFILE_PATH`].

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

mod metrics;
mod profile;
mod server;
#[cfg(test)]
mod tests;

pub use metrics::{
    METHODS_PATH, METRICS_PATH, MethodStats, MethodWindow, MethodsProvider, Metric, MetricKind,
    MetricsProvider, PROMETHEUS_PATH,
};
pub use profile::{PARTIAL_HEADER, PROFILE_PATH, ProfileProvider, Profiled};
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
    /// The component config sections of `weaver.toml`, by component, as
    /// TOML text.
    #[serde(default)]
    pub sections: std::collections::BTreeMap<String, String>,
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
    /// Which replica of its group it is (0-based); a restarted replica
    /// keeps its index.
    #[serde(default)]
    pub index: u32,
    /// How many times this replica was restarted after dying.
    #[serde(default)]
    pub restarts: u32,
}

/// One listener of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// The address of the listener's proxy, where clients connect.
    pub address: String,
}

/// An error serving a [`Status`].
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
}
