//! Weaver for Rust: write an application as components, run it as one
//! process or many.
//!
//! This is the one library an application links. A component is a trait
//! marked [`component`] whose methods take a [`Context`] first and return a
//! [`Result`]; an implementation is a struct marked [`implements`]; the
//! application's entry point is a struct marked [`main`] whose fields are
//! [`Ref`]s to the components it calls and the [`Listener`]s it serves.
//!
//! ```no_run
//! use weaver::{Context, Listener, Ref};
//!
//! #[weaver::component]
//! pub trait Reverser {
//!     async fn reverse(&self, ctx: &Context, s: String) -> weaver::Result<String>;
//! }
//!
//! #[weaver::implements(Reverser)]
//! struct ReverserImpl;
//!
//! impl Reverser for ReverserImpl {
//!     async fn reverse(&self, _ctx: &Context, s: String) -> weaver::Result<String> {
//!         Ok(s.chars().rev().collect())
//!     }
//! }
//!
//! #[weaver::main]
//! struct App {
//!     reverser: Ref<dyn Reverser>,
//!     hello: Listener,
//! }
//!
//! #[tokio::main]
//! async fn main() -> weaver::Result<()> {
//!     weaver::run(|app: &App, ctx| async move {
//!         let s = app.reverser.reverse(&ctx, "!olleh".into()).await?;
//!         println!("{s} on {}", app.hello.proxy_addr());
//!         Ok(())
//!     })
//!     .await
//! }
//! ```
//!
//! Run directly (`cargo run`), every component lives in this process and
//! calls are plain async calls. Started by `weaver multi deploy`, the same
//! binary becomes a *weavelet*: it hosts the components the deployer assigns
//! to it, and calls to components elsewhere become RPCs.
//!
//! Runtime diagnostics go through `tracing`; application logs go through
//! [`Logger`]; application metrics are [`Counter`]s, [`Gauge`]s and
//! [`Histogram`]s declared as statics (see [`MetricLabels`] for labelled
//! families).

mod component;
mod config;
mod context;
mod error;
#[cfg(feature = "http")]
pub mod http;
mod listener;
mod logger;
mod metrics;
mod routing;
mod rpc;
mod runtime;
pub mod testing;

pub use component::{Config, Main, Ref};
pub use config::CONFIG_ENV;
pub use context::Context;
pub use error::{Error, Result};
pub use listener::Listener;
#[cfg(feature = "http")]
pub use listener::serve;
pub use logger::{AttrKey, AttrValue, Attrs, Logger};
pub use metrics::{Counter, CounterMap, Gauge, GaugeMap, Histogram, HistogramMap, MetricLabels};
pub use runtime::run;
pub use weaver_macros::{MetricLabels, metric};
pub use weaver_macros::{component, implements, main, router, test};

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future.
#[doc(hidden)]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Items the macros' output names. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::BoxFuture;
    pub use crate::component::{
        Builder, DispatchFn, Field, FieldInfo, FieldKind, Handle, Implementation, Instance,
        Interface, MethodInfo, Registration, Target, Transport, Wrap,
    };
    pub use crate::metrics::method::MethodMetrics;
    pub use crate::metrics::{Declared, LabelValue, MetricLabels};
    pub use crate::routing::route_key;
    pub use crate::routing::{ArgAt, RouterArg, router_arg};
    pub use linkme;
    pub use serde;

    use crate::{Error, Result};

    /// Every component implementation linked into the binary.
    #[linkme::distributed_slice]
    pub static COMPONENTS: [Registration];

    /// Every metric marked `#[weaver::metric]` linked into the binary.
    #[linkme::distributed_slice]
    pub static METRICS: [&'static dyn Declared];

    /// Encodes arguments or results.
    ///
    /// # Errors
    ///
    /// If a value cannot be serialized.
    pub fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
        postcard::to_allocvec(value).map_err(|e| Error::internal(format!("encode: {e}")))
    }

    /// Decodes arguments or results.
    ///
    /// # Errors
    ///
    /// If the bytes are not a valid `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        postcard::from_bytes(bytes).map_err(|e| Error::internal(format!("decode: {e}")))
    }

    /// The local implementation inside an instance.
    ///
    /// # Errors
    ///
    /// If the instance is not of the expected type (a registration bug).
    pub fn downcast<T: 'static>(instance: &Instance) -> Result<&T> {
        instance
            .downcast_ref::<T>()
            .ok_or_else(|| Error::internal("component instance of unexpected type"))
    }

    /// What the caller of `component.method` receives when its body
    /// returned `e` (see [`Error`]'s docs).
    pub fn returned_by(component: &str, method: &str, e: Error) -> Error {
        Error::returned_by(component, method, e)
    }

    /// Runs a component's init hook: a failure is a construction error of
    /// `component`, with the hook's error as its cause.
    ///
    /// # Errors
    ///
    /// If the hook fails.
    pub async fn init(
        component: &str,
        hook: impl std::future::Future<Output = Result<()>>,
    ) -> Result<()> {
        hook.await.map_err(|e| {
            Error::construction_caused_by(format!("component {component}: init failed"), e)
        })
    }

    /// The error for a method index the component does not have.
    pub fn unknown_method(component: &str, method: u32) -> Error {
        Error::internal(format!("component {component} has no method {method}"))
    }

    /// Encodes a call's arguments one by one (the same bytes as the tuple),
    /// so a type error points at the argument that causes it.
    #[derive(Default)]
    pub struct ArgsEncoder(Vec<u8>);

    impl ArgsEncoder {
        /// An empty encoder.
        pub fn new() -> Self {
            Self(Vec::new())
        }

        /// Appends one argument.
        ///
        /// # Errors
        ///
        /// If the value cannot be serialized.
        pub fn push<T: serde::Serialize>(&mut self, value: &T) -> Result<()> {
            let buf = std::mem::take(&mut self.0);
            self.0 = postcard::to_extend(value, buf)
                .map_err(|e| Error::internal(format!("encode: {e}")))?;
            Ok(())
        }

        /// The encoded arguments.
        pub fn finish(self) -> Vec<u8> {
            self.0
        }
    }

    /// Decodes a call's arguments one by one.
    pub struct ArgsDecoder<'a>(&'a [u8]);

    impl<'a> ArgsDecoder<'a> {
        /// Decodes from `bytes`.
        pub fn new(bytes: &'a [u8]) -> Self {
            Self(bytes)
        }

        /// The next argument.
        ///
        /// # Errors
        ///
        /// If the bytes are not a valid `T`.
        pub fn arg<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
            let (value, rest) = postcard::take_from_bytes(self.0)
                .map_err(|e| Error::internal(format!("decode arguments: {e}")))?;
            self.0 = rest;
            Ok(value)
        }
    }

    /// Wraps `Result<T>` as an erased future's output.
    pub fn ready<T: Send + 'static>(value: Result<T>) -> BoxFuture<'static, Result<T>> {
        Box::pin(std::future::ready(value))
    }
}
