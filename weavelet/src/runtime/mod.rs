//! The runtime behind components: how references resolve, where listeners
//! listen, where logs go.
//!
//! [`run`] picks the mode: started by an envelope (the pipe variables are
//! set), the process is a remote weavelet; otherwise every component runs in
//! this process.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use crate::component::{Builder, Implementation, Main, Registration, Target};
use crate::config::{Section, SingleConfig};
use crate::logger::LogSink;
use crate::{BoxFuture, Context, Error, Listener, Result};

mod announce;
mod balancer;
mod endpoint;
mod instances;
mod pipes;
mod profile;
mod remote;
mod single;
mod sink;
pub(crate) mod test;

/// What components need from the process they run in.
pub(crate) trait Runtime: Send + Sync + 'static {
    /// Where calls to component `name` go.
    fn resolve(&self, name: &'static str) -> BoxFuture<'_, Result<Target>>;
    /// Creates listener `name` of `component`.
    fn listener<'a>(
        &'a self,
        component: &'static str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Listener>>;
    /// The config section of `component`.
    fn config_section(&self, component: &str) -> Option<Section>;
    /// Where this process's log entries go.
    fn log_sink(&self) -> Arc<dyn LogSink>;
}

/// Runs the application.
///
/// Builds the Main component `M` (the struct marked `#[weaver::main]`) and
/// calls `f` with it. Run directly, every component is local; started by
/// `weaver multi deploy`, this process hosts what the deployer assigns and
/// runs `f` only in replicas of the Main group.
///
/// # Errors
///
/// If the config is invalid, a component cannot be built, or `f` fails.
///
/// # Panics
///
/// If two metrics marked `#[weaver::metric]` have the same name.
pub async fn run<M, F, Fut>(f: F) -> Result<()>
where
    M: Implementation<Interface = dyn Main>,
    F: FnOnce(&'static M, Context) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    // Before anything else: a duplicate metric name stops the process here.
    crate::metrics::declare_all();
    if pipes::under_envelope()? {
        remote::run(f).await
    } else {
        single::run(f).await
    }
}

/// Serves as a weavelet of a multiprocess test: the components the test's
/// deployer assigns, until it closes the control pipe.
pub(crate) async fn serve_test_weavelet() -> Result<()> {
    if !pipes::under_envelope()? {
        return Err(Error::internal(
            "started as a test weavelet without the control pipes",
        ));
    }
    remote::serve_components().await
}

/// Builds the Main component `M` through `instances`, so every path that
/// asks for Main (the app's entry point, the deployer's component list)
/// gets the same one instance.
async fn build_main<M>(
    instances: &instances::Instances,
    runtime: Arc<dyn Runtime>,
) -> Result<&'static M>
where
    M: Implementation<Interface = dyn Main>,
{
    let name = <dyn Main as crate::component::Interface>::NAME;
    let instance = instances.get(name, runtime).await?;
    let main: Arc<M> = instance.downcast::<M>().map_err(|_| {
        Error::internal(format!(
            "the Main component registered by #[weaver::main] is not {}, the type weaver::run was called with",
            std::any::type_name::<M>()
        ))
    })?;
    // Main lives as long as the process; a 'static borrow lets the app
    // spawn tasks that use it freely.
    Ok(&**Box::leak(Box::new(main)))
}

/// Checks every component's config section against the component's config
/// type before anything is built, so a typo stops the app when it starts,
/// not at its first call. Components for which `skip` holds (faked in a
/// test) are not checked.
///
/// # Errors
///
/// A construction error naming the file, the section and the key.
fn check_configs(
    registry: &Registry,
    runtime: &Arc<dyn Runtime>,
    skip: impl Fn(&str) -> bool,
) -> Result<()> {
    for reg in registry.all() {
        if skip(reg.name) {
            continue;
        }
        let b = Builder::new(runtime.clone(), reg.name);
        if reg.has_config() {
            (reg.check_config)(&b)?;
        } else {
            b.check_no_config()?;
        }
    }
    Ok(())
}

/// Checks a one-process config (from `file`) against the binary, as the Go
/// tool does: its component sections name components the binary has, and
/// its listeners are declared by some component ("listener X specified in
/// the config not found in the binary").
///
/// # Errors
///
/// A construction error naming the file and what is wrong.
fn check_against_binary(config: &SingleConfig, file: &str, registry: &Registry) -> Result<()> {
    let names: Vec<&str> = registry.all().iter().map(|r| r.name).collect();
    if let Some(unknown) = config
        .sections
        .keys()
        .find(|s| !names.contains(&s.as_str()))
    {
        return Err(Error::construction(format!(
            "{file}: section [\"{unknown}\"] names no component of the binary (components: {})",
            names.join(", ")
        )));
    }
    let declared = registry.listeners();
    if let Some(unknown) = config
        .listeners
        .keys()
        .find(|l| !declared.contains(&l.as_str()))
    {
        let declared = if declared.is_empty() {
            "it declares none".to_string()
        } else {
            let names: Vec<String> = declared.iter().map(|l| format!("{l:?}")).collect();
            format!("it declares {}", names.join(", "))
        };
        return Err(Error::construction(format!(
            "{file}: listener \"{unknown}\" specified in [single] listeners not found in the binary ({declared})"
        )));
    }
    Ok(())
}

/// Binds listener `name` at its `[single] listeners` address in `config`
/// (loopback, any port, if none): what a one-process run and the test
/// runners do.
///
/// # Errors
///
/// A construction error naming the address if it cannot be bound.
async fn bind_listener(
    config: &SingleConfig,
    name: &str,
) -> Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let addr = config
        .listeners
        .get(name)
        .map(String::as_str)
        .filter(|a| !a.is_empty())
        .unwrap_or("127.0.0.1:0");
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::construction(format!("listen on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// The registered implementations, by component name.
pub(crate) struct Registry {
    by_name: HashMap<&'static str, &'static Registration>,
}

impl Registry {
    /// The registry of this binary.
    ///
    /// # Errors
    ///
    /// If a component has two implementations.
    pub(crate) fn get() -> Result<&'static Registry> {
        static REGISTRY: OnceLock<std::result::Result<Registry, String>> = OnceLock::new();
        REGISTRY
            .get_or_init(Registry::collect)
            .as_ref()
            .map_err(Error::construction)
    }

    fn collect() -> std::result::Result<Registry, String> {
        let mut by_name = HashMap::new();
        for reg in crate::__private::COMPONENTS.iter() {
            if let Some(prev) = by_name.insert(reg.name, reg) {
                return Err(format!(
                    "component {} is implemented twice: by {} and by {}",
                    reg.name, prev.impl_name, reg.impl_name
                ));
            }
        }
        Ok(Registry { by_name })
    }

    /// The implementation of `name`.
    pub(crate) fn find(&self, name: &str) -> Result<&'static Registration> {
        self.by_name.get(name).copied().ok_or_else(|| {
            Error::construction(format!(
                "no implementation of component {name} is linked into this binary \
                 (mark one with #[weaver::implements]; if it lives in another crate, \
                 name that crate in the binary, e.g. `use that_crate as _;`)"
            ))
        })
    }

    /// Every listener name the binary declares, sorted.
    pub(crate) fn listeners(&self) -> Vec<&'static str> {
        let mut all: Vec<_> = self.by_name.values().flat_map(|r| r.listeners()).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Every registration, sorted by name.
    pub(crate) fn all(&self) -> Vec<&'static Registration> {
        let mut all: Vec<_> = self.by_name.values().copied().collect();
        all.sort_by_key(|r| r.name);
        all
    }
}
