//! Why a deployment failed.

use std::sync::Arc;

use crate::{ConfigError, RegistryError, StatusError};

/// An error starting or running a deployment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// `weaver.toml` is invalid, or does not match the binary.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A replica could not be started.
    #[error("cannot start replica {replica} of group {group}")]
    Start {
        /// The group.
        group: String,
        /// The replica's index.
        replica: u32,
        /// Why.
        #[source]
        source: weaver_envelope::Error,
    },
    /// A listener's proxy could not listen.
    #[error("listener {name:?} cannot listen on {address}")]
    Listener {
        /// The listener's name.
        name: String,
        /// The configured address.
        address: String,
        /// Why.
        #[source]
        source: weaver_proxy::Error,
    },
    /// A replica exited and the restart policy is `never`.
    #[error(
        "replica {replica} of group {group} (pid {pid}) exited: {exit}; restart = \"never\" stops the deployment"
    )]
    ReplicaExited {
        /// The group.
        group: String,
        /// The replica's index.
        replica: u32,
        /// Its pid.
        pid: u32,
        /// How it exited.
        exit: String,
    },
    /// Replacements of a replica kept failing before completing the
    /// handshake (a replica that crashes while serving is restarted instead).
    #[error(
        "replica {replica} of group {group} keeps crashing right after it starts (last: {exit}); giving up"
    )]
    CrashLoop {
        /// The group.
        group: String,
        /// The replica's index.
        replica: u32,
        /// How it last exited.
        exit: String,
    },
    /// A replica misbehaved.
    #[error("{0}")]
    Replica(String),
    /// The registry could not be written.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The status server could not start.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// A file system operation failed.
    #[error("cannot {what}")]
    Io {
        /// What was attempted.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// An error shared by several waiters.
    #[error(transparent)]
    Shared(Arc<DeployError>),
    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}
