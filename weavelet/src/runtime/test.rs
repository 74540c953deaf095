//! The runtime of the in-process test runners ([`crate::testing`]): every
//! component in the test process, called directly (local) or through the
//! real serialization and RPC stack to itself (rpc).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::balancer::{Balancer, Pool};
use super::instances::Instances;
use super::single::StderrSink;
use super::{Registry, Runtime};
use crate::component::{Instance, Registration, Target, Transport};
use crate::config::{Section, SingleConfig};
use crate::logger::LogSink;
use crate::rpc::{self, Addr, Connection, Dispatcher, wire};
use crate::{BoxFuture, Context, Error, Listener, Result};

pub(crate) mod multi;

/// How calls between components travel.
#[derive(Clone)]
pub(crate) enum Calls {
    /// Plain method calls.
    Local,
    /// Through an RPC connection to this process; retriable methods run
    /// twice.
    Rpc,
    /// To replicas in other processes, started by this deployer.
    Multi(Arc<multi::Deployer>),
}

/// The runtime of one test.
pub(crate) struct TestRuntime {
    this: Weak<TestRuntime>,
    calls: Calls,
    config: SingleConfig,
    /// Components replaced by fakes, by name.
    fakes: HashMap<&'static str, Instance>,
    instances: Instances,
    /// Prints entries as a one-process run does, where the test harness
    /// captures them (shown for failing tests, or with `--nocapture`).
    sink: Arc<StderrSink>,
    /// The address of the test process's RPC server, started on first
    /// use (rpc: every component; multi: those asked for with `get_impl`).
    server: OnceCell<PathBuf>,
    /// The connection to it (rpc only).
    rpc: OnceCell<Arc<Connection>>,
    /// Connections to other processes (multi only).
    pool: Arc<Pool>,
    /// The directory of the RPC socket, removed when the test ends.
    socket_dir: PathBuf,
}

/// Serves every component of the test over RPC.
struct Serve {
    runtime: Weak<TestRuntime>,
    methods: HashMap<u64, (&'static Registration, u32)>,
}

/// Carries one component's calls over the test's RPC connection.
struct Loopback {
    conn: Arc<Connection>,
    /// Per method index: its key, and whether it is retriable.
    methods: Vec<(u64, bool)>,
}

impl TestRuntime {
    pub(crate) fn new(
        app: String,
        deployment: String,
        calls: Calls,
        config: SingleConfig,
        fakes: HashMap<&'static str, Instance>,
    ) -> Result<Arc<Self>> {
        Registry::get()?;
        let socket_dir = socket_dir(&deployment);
        Ok(Arc::new_cyclic(|this| TestRuntime {
            this: this.clone(),
            calls,
            config,
            fakes,
            instances: Instances::default(),
            sink: Arc::new(StderrSink::new(app, deployment, false, true)),
            server: OnceCell::new(),
            rpc: OnceCell::new(),
            pool: Arc::default(),
            socket_dir,
        }))
    }

    fn arc(&self) -> Result<Arc<TestRuntime>> {
        self.this
            .upgrade()
            .ok_or_else(|| Error::internal("test runtime dropped"))
    }

    /// Checks the config against the test binary, as a single-process run
    /// does: sections name components it has and decode into their config
    /// types; listeners are declared.
    pub(crate) fn check(&self) -> Result<()> {
        let runtime: Arc<dyn Runtime> = self.arc()?;
        let registry = Registry::get()?;
        super::check_against_binary(&self.config, "[testconfig]", registry)?;
        super::check_configs(registry, &runtime, |name| self.fakes.contains_key(name))
    }

    /// Whether component `name` is faked.
    pub(crate) fn is_faked(&self, name: &str) -> bool {
        self.fakes.contains_key(name)
    }

    /// The implementation object of component `name` (an `Arc<T>`).
    pub(crate) async fn object(
        &self,
        name: &'static str,
    ) -> Result<Arc<dyn std::any::Any + Send + Sync>> {
        self.instances.object(name, self.arc()?).await
    }

    /// Where the test process serves its components over RPC, started on
    /// first use.
    async fn server(&self) -> Result<PathBuf> {
        self.server
            .get_or_try_init(|| async {
                let mut methods = HashMap::new();
                for reg in Registry::get()?.all() {
                    for (i, m) in (0u32..).zip(reg.methods) {
                        methods.insert(wire::method_key(reg.name, m.name), (reg, i));
                    }
                }
                let serve = Arc::new(Serve {
                    runtime: self.this.clone(),
                    methods,
                });
                std::fs::create_dir_all(&self.socket_dir)?;
                let path = self.socket_dir.join("test.sock");
                let listener = tokio::net::UnixListener::bind(&path).map_err(|e| {
                    Error::internal(format!("listen for RPC on {}: {e}", path.display()))
                })?;
                rpc::Server::spawn_unix(listener, serve);
                Ok(path)
            })
            .await
            .cloned()
    }

    /// The test's connection to itself, started on first use.
    async fn connection(&self) -> Result<Arc<Connection>> {
        self.rpc
            .get_or_try_init(|| async {
                let path = self.server().await?;
                Ok(Arc::new(Connection::connect(&Addr::Unix(path)).await?))
            })
            .await
            .cloned()
    }

    /// Makes component `name` run in the test process, for `get_impl`: in
    /// a multi test, the other processes then call it here.
    pub(crate) async fn host_here(&self, name: &'static str) -> Result<()> {
        if let Calls::Multi(d) = &self.calls {
            let path = self.server().await?;
            d.host_here(name, &format!("unix://{}", path.display()))?;
        }
        Ok(())
    }

    /// In a multi test, serves the fakes from the test process, so that
    /// the other processes call them too.
    pub(crate) async fn host_fakes(&self) -> Result<()> {
        let names: Vec<&'static str> = self.fakes.keys().copied().collect();
        for name in names {
            self.host_here(name).await?;
        }
        Ok(())
    }

    /// Stops what the test started: the children of a multi test.
    pub(crate) async fn shutdown(&self) {
        if let Calls::Multi(d) = &self.calls {
            d.shutdown().await;
        }
    }
}

impl Drop for TestRuntime {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.socket_dir);
    }
}

impl Runtime for TestRuntime {
    fn resolve(&self, name: &'static str) -> BoxFuture<'_, Result<Target>> {
        Box::pin(async move {
            if let Some(fake) = self.fakes.get(name) {
                // Fakes are always local.
                return Ok(Target::Local(fake.clone()));
            }
            let reg = Registry::get()?.find(name)?;
            match &self.calls {
                Calls::Local => Ok(Target::Local(self.instances.get(name, self.arc()?).await?)),
                Calls::Multi(d) => {
                    if d.is_hosted_here(name) {
                        return Ok(Target::Local(self.instances.get(name, self.arc()?).await?));
                    }
                    let rx = d.routing_for_test(name, reg.routed).await?;
                    Ok(Target::Remote(Arc::new(Balancer::new(
                        name,
                        reg.methods,
                        rx,
                        self.pool.clone(),
                    ))))
                }
                Calls::Rpc => {
                    let methods = reg
                        .methods
                        .iter()
                        .map(|m| (wire::method_key(name, m.name), m.retriable))
                        .collect();
                    let conn = self.connection().await?;
                    Ok(Target::Remote(Arc::new(Loopback { conn, methods })))
                }
            }
        })
    }

    fn listener<'a>(
        &'a self,
        _component: &'static str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Listener>> {
        Box::pin(async move {
            let (listener, local) = super::bind_listener(&self.config, name).await?;
            Ok(Listener::new(name.to_string(), listener, local))
        })
    }

    fn config_section(&self, component: &str) -> Option<Section> {
        let text = self.config.sections.get(component)?;
        Some(Section {
            text: text.clone(),
            file: "[testconfig]".to_string(),
        })
    }

    fn log_sink(&self) -> Arc<dyn LogSink> {
        self.sink.clone()
    }
}

impl Dispatcher for Serve {
    fn dispatch(
        &self,
        method_key: u64,
        ctx: Context,
        args: Bytes,
    ) -> BoxFuture<'static, Result<Vec<u8>>> {
        let Some(&(reg, method)) = self.methods.get(&method_key) else {
            return Box::pin(std::future::ready(Err(Error::internal(
                "unknown method key",
            ))));
        };
        let runtime = self.runtime.upgrade();
        Box::pin(async move {
            let rt = runtime.ok_or_else(|| Error::internal("test runtime dropped"))?;
            let instance = match rt.fakes.get(reg.name) {
                Some(fake) => fake.clone(),
                None => rt.instances.get(reg.name, rt.clone()).await?,
            };
            (reg.dispatch)(&instance, ctx, method, &args).await
        })
    }
}

impl Transport for Loopback {
    fn call<'a>(
        &'a self,
        ctx: &'a Context,
        method: u32,
        _key: Option<u64>,
        args: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(async move {
            let (key, retriable) = self
                .methods
                .get(method as usize)
                .copied()
                .ok_or_else(|| Error::internal(format!("no method {method}")))?;
            if retriable {
                // As a deployer may: a retriable call can run twice, and a
                // method that must not is caught here, in tests.
                let _ = self.conn.call(key, ctx, &args).await;
            }
            self.conn.call(key, ctx, &args).await
        })
    }
}

/// The directory of a test's sockets (short: a Unix socket path is at most
/// 108 bytes).
pub(crate) fn socket_dir(deployment: &str) -> PathBuf {
    std::env::temp_dir().join(format!("weaver-test-{}", &deployment[..8]))
}
