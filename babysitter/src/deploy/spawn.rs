//! The deployer's process boundary: how a replica's child is started.
//!
//! The deployer never starts a child itself; it asks its [`Spawner`].
//! [`ProcessSpawner`] runs the application binary through
//! [`Envelope::start`]. Tests hand the deployer a spawner that runs
//! weavelets in memory (an [`Envelope::start_child`] over
//! `tokio::io::duplex`), so restarts and routing are tested without
//! processes and, with paused time, without waiting out the backoff.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use weaver_envelope::{Config, Envelope, Error};
use weaver_proto::runtime::WeaveletArgs;

use super::handler::ReplicaHandler;

/// A started replica, or why it did not start.
pub(crate) type Spawning<'a> = Pin<Box<dyn Future<Output = Result<Envelope, Error>> + Send + 'a>>;

/// Starts the child that hosts one replica.
///
/// The deployer holds one spawner for its whole life and calls it for every
/// replica it starts: the first ones of a group and every replacement.
pub(crate) trait Spawner: Send + Sync + 'static {
    /// Starts a child for the replica `args` describes, performs the
    /// handshake with `args` and serves the weavelet's requests with
    /// `handler`.
    ///
    /// REQUIRES: the envelope returned has completed its handshake, and its
    /// `handle().args()` are `args` (the deployer tells replicas apart by
    /// `args.id`).
    /// REQUIRES: on error nothing is left running: the child has been killed
    /// and reaped, as [`Envelope::start`] guarantees. The deployer counts an
    /// error as a failed start (see `supervise::MAX_FAILED_STARTS`).
    /// REQUIRES: the timings of `config` (handshake timeout, stop grace) are
    /// honoured; its binary, arguments and environment are the app's, which
    /// a spawner that runs something else may ignore.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future must kill the child, as it does for
    /// [`Envelope::start`].
    fn spawn(
        &self,
        config: Config,
        args: WeaveletArgs,
        handler: Arc<ReplicaHandler>,
    ) -> Spawning<'_>;
}

/// Runs every replica as a process of the application binary.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ProcessSpawner;

// === impl ProcessSpawner ===

impl Spawner for ProcessSpawner {
    fn spawn(
        &self,
        config: Config,
        args: WeaveletArgs,
        handler: Arc<ReplicaHandler>,
    ) -> Spawning<'_> {
        Box::pin(Envelope::start(config, args, handler))
    }
}
