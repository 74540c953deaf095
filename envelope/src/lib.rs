//! The deployer side of one weavelet.
//!
//! An [`Envelope`] runs in the deployer process (the babysitter, or any custom
//! deployer) and owns one child process of the application binary: it spawns
//! it, owns the pair of pipes to the child's weavelet (fd 3: envelope →
//! weavelet, fd 4: weavelet → envelope, named in the child's environment by
//! `ENVELOPE_TO_WEAVELET_FD` and `WEAVELET_TO_ENVELOPE_FD`), performs the
//! handshake, serves the weavelet's requests through the deployer's
//! [`EnvelopeHandler`], captures the child's stdout and stderr as log
//! entries, and reports the child's exit only after everything it sent has
//! been handled.
//!
//! Who talks to it: the deployer calls [`Envelope`] (or a cloned [`Handle`])
//! to push component sets and routing and to pull health, metrics, load and
//! profiles; the weavelet inside the child (the `weaver` crate) talks to it
//! over the pipes with the messages of [`weaver_proto`].
//!
//! A deployer in a few lines:
//!
//! ```no_run
//! use std::sync::Arc;
//! use weaver_envelope::weaver_proto::runtime::*;
//! use weaver_envelope::{Config, Envelope, EnvelopeHandler, Handle, HandlerError};
//!
//! struct Deployer;
//!
//! impl EnvelopeHandler for Deployer {
//!     async fn activate_component(
//!         &self,
//!         from: &Handle,
//!         req: ActivateComponentRequest,
//!     ) -> Result<ActivateComponentReply, HandlerError> {
//!         // Host everything in the caller's own process.
//!         let routing = RoutingInfo { component: req.component, local: true, ..Default::default() };
//!         from.update_routing_info(routing).await?;
//!         Ok(ActivateComponentReply {})
//!     }
//!     async fn get_listener_address(
//!         &self,
//!         _from: &Handle,
//!         _req: GetListenerAddressRequest,
//!     ) -> Result<GetListenerAddressReply, HandlerError> {
//!         Ok(GetListenerAddressReply { address: "127.0.0.1:0".into() })
//!     }
//!     async fn export_listener(
//!         &self,
//!         _from: &Handle,
//!         req: ExportListenerRequest,
//!     ) -> Result<ExportListenerReply, HandlerError> {
//!         Ok(ExportListenerReply { proxy_address: req.address, error: String::new() })
//!     }
//!     async fn handle_log_batch(&self, batch: LogEntryBatch) {
//!         for entry in batch.entries {
//!             eprintln!("{}: {}", entry.component, entry.msg);
//!         }
//!     }
//! }
//!
//! # async fn run() -> Result<(), weaver_envelope::Error> {
//! let args = WeaveletArgs { app: "hello".into(), run_main: true, ..Default::default() };
//! let envelope = Envelope::start(Config::new("target/debug/hello"), args, Arc::new(Deployer)).await?;
//! envelope.update_components(vec!["weaver::Main".into()]).await?;
//! let exit = envelope.wait().await?;
//! eprintln!("app ended: {exit}");
//! # Ok(())
//! # }
//! ```

mod child;
mod config;
mod envelope;
mod error;
mod handler;
mod output;
mod pipe;
mod progress;
mod serve;
mod spawner;
mod supervisor;
mod sys;

pub use child::{BoxRead, BoxWrite, Child, ChildIo, Exit, ProcessChild};
pub use config::Config;
pub use envelope::{Envelope, Handle};
pub use error::Error;
pub use handler::{EnvelopeHandler, HandlerError};
/// The protocol crate, re-exported so a deployer needs no second dependency
/// for the message types.
pub use weaver_proto;
