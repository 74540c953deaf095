//! A weavelet started by an envelope: it hosts the components the deployer
//! assigns, serves them to other weavelets, and reaches the rest over RPC.

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;
use weaver_proto::runtime::{
    ActivateComponentRequest, ComponentInfo, EnvelopeMsg, ExportListenerRequest, GetHealthReply,
    GetListenerAddressRequest, GetLoadReply, GetProfileReply, GetProfileRequest, HealthStatus,
    UpdateComponentsReply, UpdateRoutingInfoReply, WeaveletArgs, WeaveletInfo, WeaveletMsg,
    envelope_msg, weavelet_msg,
};
use weaver_proto::{Conn, ConnError, Incoming, MAX_FRAME_LEN, PROTOCOL_VERSION};

use super::balancer::{Balancer, Pool, Routing};
use super::instances::Instances;
use super::sink::PipeSink;
use super::{Registry, Runtime, pipes, profile};
use crate::component::{Implementation, Instance, Main, Registration, Target};
use crate::config::Section;
use crate::logger::LogSink;
use crate::metrics::{self, Origin};
use crate::rpc::{self, Dispatcher, U64Hasher, wire};
use crate::{BoxFuture, Context, Error, Listener, Result};

type EnvConn = Conn<WeaveletMsg, EnvelopeMsg>;

/// How long the handshake may take to arrive.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for a component's first routing after activation.
const ROUTING_TIMEOUT: Duration = Duration::from_secs(60);

/// The remote weavelet runtime.
pub(crate) struct Remote {
    this: Weak<Remote>,
    conn: EnvConn,
    args: WeaveletArgs,
    sink: Arc<PipeSink>,
    pool: Arc<Pool>,
    instances: Instances,
    /// Method key -> (component, method index), for every component:
    /// what a call needs, without locks.
    methods: HashMap<u64, (Arc<Served>, u32), BuildHasherDefault<U64Hasher>>,
    /// Every component of the binary, by name.
    served: HashMap<&'static str, Arc<Served>>,
    /// The labels this weavelet adds to the metrics it exports.
    origin: Origin,
    /// Latest routing per component this weavelet calls.
    routing: Mutex<HashMap<String, watch::Sender<Option<Arc<Routing>>>>>,
}

/// A component as the RPC server sees it.
struct Served {
    reg: &'static Registration,
    /// Whether the deployer assigned it to this weavelet.
    hosted: AtomicBool,
    /// Its instance, once built.
    instance: OnceLock<Instance>,
}

pub(super) async fn run<M, F, Fut>(f: F) -> Result<()>
where
    M: Implementation<Interface = dyn Main>,
    F: FnOnce(&'static M, Context) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let (rt, conn) = start().await?;
    let result = if rt.args.run_main {
        tokio::select! {
            r = run_main::<M, F, Fut>(&rt, f) => r,
            reason = conn.closed() => Err(pipe_closed(&reason)),
        }
    } else {
        Err(pipe_closed(&conn.closed().await))
    };
    // Everything logged so far reaches the deployer before we exit.
    rt.sink.flush().await;
    let _ = conn.flush().await;
    result
}

/// Serves the components the deployer assigns, never Main, until the
/// deployer closes the control pipe: a test binary re-executed as a
/// weavelet by the multiprocess test runner.
pub(crate) async fn serve_components() -> Result<()> {
    let (rt, conn) = start().await?;
    let reason = conn.closed().await;
    tracing::debug!(%reason, "the test runner closed the control pipe");
    rt.sink.flush().await;
    let _ = conn.flush().await;
    Ok(())
}

/// Opens the control pipe, does the handshake, checks the config and
/// starts serving component RPC and the envelope's requests.
async fn start() -> Result<(Arc<Remote>, EnvConn)> {
    let registry = Registry::get()?;
    let (rx, tx) = pipes::open()?;
    let (conn, mut incoming) = EnvConn::new(rx, tx, MAX_FRAME_LEN);
    let args = handshake(&conn, &mut incoming).await?;
    let rt = Remote::new(conn.clone(), args, registry);
    let runtime: Arc<dyn Runtime> = rt.clone();
    if let Err(e) = super::check_configs(registry, &runtime, |_| false) {
        // Refuse before serving anything; the deployer reports why.
        send_info(
            &conn,
            WeaveletInfo {
                protocol_version: PROTOCOL_VERSION,
                pid: i64::from(std::process::id()),
                error: e.message().to_string(),
                ..Default::default()
            },
        )?;
        let _ = conn.flush().await;
        return Err(e);
    }
    let dial_addr = rt.serve_rpc().await?;
    let info = WeaveletInfo {
        protocol_version: PROTOCOL_VERSION,
        dial_addr,
        pid: i64::from(std::process::id()),
        components: registry.all().iter().map(|r| component_info(r)).collect(),
        error: String::new(),
    };
    send_info(&conn, info)?;
    tokio::spawn(rt.clone().serve_envelope(incoming));
    Ok((rt, conn))
}

async fn run_main<M, F, Fut>(rt: &Arc<Remote>, f: F) -> Result<()>
where
    M: Implementation<Interface = dyn Main>,
    F: FnOnce(&'static M, Context) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let runtime: Arc<dyn Runtime> = rt.clone();
    let main = super::build_main::<M>(&rt.instances, runtime).await?;
    f(main, Context::new()).await
}

fn pipe_closed(reason: &str) -> Error {
    Error::internal(format!(
        "the deployer closed the control pipe ({reason}); exiting"
    ))
}

/// Waits for `WeaveletArgs` and checks the protocol version.
async fn handshake(conn: &EnvConn, incoming: &mut Incoming<EnvelopeMsg>) -> Result<WeaveletArgs> {
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming.recv())
        .await
        .map_err(|_| Error::internal("no handshake from the deployer"))?;
    let Some(EnvelopeMsg {
        msg: Some(envelope_msg::Msg::WeaveletArgs(args)),
        ..
    }) = first
    else {
        return Err(Error::internal(
            "the deployer's first message was not the handshake",
        ));
    };
    if args.protocol_version != PROTOCOL_VERSION {
        // Answer anyway, so the deployer can report the mismatch in words.
        send_info(
            conn,
            WeaveletInfo {
                protocol_version: PROTOCOL_VERSION,
                ..Default::default()
            },
        )?;
        let _ = conn.flush().await;
        return Err(Error::internal(format!(
            "protocol version mismatch: the deployer speaks version {} but this binary speaks version {PROTOCOL_VERSION}",
            args.protocol_version
        )));
    }
    Ok(args)
}

fn send_info(conn: &EnvConn, info: WeaveletInfo) -> Result<()> {
    conn.send(WeaveletMsg {
        msg: Some(weavelet_msg::Msg::WeaveletInfo(info)),
        ..Default::default()
    })
    .map_err(conn_error)
}

fn conn_error(e: ConnError) -> Error {
    match e {
        ConnError::Remote(msg) => Error::construction(msg),
        other => Error::internal(other),
    }
}

/// Collects the profile `req` asks for and replies to request `id`.
async fn reply_profile(conn: EnvConn, id: i64, req: GetProfileRequest) {
    let _ = match profile::collect(&req).await {
        Ok(data) => conn.reply(
            id,
            WeaveletMsg {
                msg: Some(weavelet_msg::Msg::GetProfileReply(GetProfileReply { data })),
                ..Default::default()
            },
        ),
        Err(e) => conn.reply_error(id, e.chain()),
    };
}

fn component_info(r: &Registration) -> ComponentInfo {
    ComponentInfo {
        name: r.name.to_string(),
        methods: r.methods.iter().map(|m| m.name.to_string()).collect(),
        routed: r.routed,
        listeners: r.listeners().map(str::to_string).collect(),
        refs: r.refs().map(str::to_string).collect(),
    }
}

impl Remote {
    fn new(conn: EnvConn, args: WeaveletArgs, registry: &Registry) -> Arc<Remote> {
        let mut methods = HashMap::default();
        let mut served = HashMap::new();
        for reg in registry.all() {
            let s = Arc::new(Served {
                reg,
                hosted: AtomicBool::new(false),
                instance: OnceLock::new(),
            });
            for (i, m) in reg.methods.iter().enumerate() {
                methods.insert(wire::method_key(reg.name, m.name), (s.clone(), i as u32));
            }
            served.insert(reg.name, s);
        }
        let sink = Arc::new(PipeSink::new(conn.clone(), &args));
        let origin = Origin {
            app: args.app.clone(),
            version: args.deployment_id.clone(),
            node: args.id.clone(),
        };
        Arc::new_cyclic(|this| Remote {
            this: this.clone(),
            conn,
            args,
            sink,
            pool: Arc::default(),
            instances: Instances::default(),
            methods,
            served,
            origin,
            routing: Mutex::default(),
        })
    }

    fn arc(&self) -> Result<Arc<Remote>> {
        self.this
            .upgrade()
            .ok_or_else(|| Error::internal("weavelet shut down"))
    }

    /// Starts serving component RPC; returns the address to dial.
    async fn serve_rpc(&self) -> Result<String> {
        let d: Arc<dyn Dispatcher> = self.arc()?;
        let addr = self.args.internal_address.as_str();
        if let Some(tcp) = addr.strip_prefix("tcp://") {
            let l = TcpListener::bind(tcp)
                .await
                .map_err(|e| Error::internal(format!("listen for RPC on {tcp}: {e}")))?;
            let local = l.local_addr()?;
            rpc::Server::spawn_tcp(l, d);
            return Ok(format!("tcp://{local}"));
        }
        let short: String = self.args.id.chars().take(8).collect();
        let path = std::path::Path::new(&self.args.socket_dir).join(format!("{short}.sock"));
        let _ = std::fs::remove_file(&path);
        let l = tokio::net::UnixListener::bind(&path)
            .map_err(|e| Error::internal(format!("listen for RPC on {}: {e}", path.display())))?;
        rpc::Server::spawn_unix(l, d);
        Ok(format!("unix://{}", path.display()))
    }

    /// Answers the envelope's requests until the pipe closes.
    async fn serve_envelope(self: Arc<Self>, mut incoming: Incoming<EnvelopeMsg>) {
        while let Some(msg) = incoming.recv().await {
            let id = msg.id;
            let reply = match msg.msg {
                Some(envelope_msg::Msg::UpdateComponentsReq(r)) => {
                    self.update_components(r.components);
                    weavelet_msg::Msg::UpdateComponentsReply(UpdateComponentsReply {})
                }
                Some(envelope_msg::Msg::UpdateRoutingInfoReq(r)) => {
                    if let Some(info) = r.routing_info {
                        self.update_routing(&info.component, Routing::from_proto(&info));
                    }
                    weavelet_msg::Msg::UpdateRoutingInfoReply(UpdateRoutingInfoReply {})
                }
                Some(envelope_msg::Msg::GetHealthReq(_)) => {
                    weavelet_msg::Msg::GetHealthReply(GetHealthReply {
                        status: HealthStatus::Healthy as i32,
                    })
                }
                Some(envelope_msg::Msg::GetLoadReq(_)) => {
                    weavelet_msg::Msg::GetLoadReply(GetLoadReply::default())
                }
                Some(envelope_msg::Msg::GetMetricsReq(r)) => {
                    // Metrics of a crate linked but not yet used appear at 0.
                    metrics::declare_all();
                    let reply = metrics::reply(metrics::global(), r.ack, &self.origin);
                    weavelet_msg::Msg::GetMetricsReply(reply)
                }
                Some(envelope_msg::Msg::GetProfileReq(r)) => {
                    // Profiles take seconds: answer from a task of their
                    // own, so health checks and routing are not held up.
                    tokio::spawn(reply_profile(self.conn.clone(), id, r));
                    continue;
                }
                other => {
                    if id > 0 {
                        let _ = self
                            .conn
                            .reply_error(id, format!("unsupported request {other:?}"));
                    }
                    continue;
                }
            };
            let _ = self.conn.reply(
                id,
                WeaveletMsg {
                    msg: Some(reply),
                    ..Default::default()
                },
            );
        }
    }

    /// Records the hosted set and builds new components in the background,
    /// so their init hooks run and their listeners are exported.
    fn update_components(&self, components: Vec<String>) {
        for name in components {
            let Some(served) = self.served.get(name.as_str()) else {
                tracing::warn!(component = %name, "asked to host a component this binary lacks");
                continue;
            };
            if served.hosted.swap(true, Ordering::AcqRel) {
                continue;
            }
            let Ok(rt) = self.arc() else { return };
            let name = served.reg.name;
            tokio::spawn(async move {
                if let Err(e) = rt.instance(name).await {
                    rt.sink.system_error(name, &e);
                }
            });
        }
    }

    fn routing_sender(&self, component: &str) -> watch::Sender<Option<Arc<Routing>>> {
        let mut map = self.routing.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(component.to_string())
            .or_insert_with(|| watch::channel(None).0)
            .clone()
    }

    fn update_routing(&self, component: &str, routing: Routing) {
        tracing::debug!(
            component,
            version = routing.version,
            replicas = routing.replicas.len(),
            "routing updated"
        );
        self.routing_sender(component)
            .send_replace(Some(Arc::new(routing)));
    }

    async fn instance(&self, name: &'static str) -> Result<Instance> {
        let runtime: Arc<dyn Runtime> = self.arc()?;
        let instance = self.instances.get(name, runtime).await?;
        if let Some(served) = self.served.get(name) {
            let _ = served.instance.set(instance.clone());
        }
        Ok(instance)
    }

    /// Asks the deployer to start `name` and route it to us, retrying while
    /// the pipe hiccups.
    async fn activate(&self, reg: &Registration) -> Result<Arc<Routing>> {
        let mut rx = self.routing_sender(reg.name).subscribe();
        let req = ActivateComponentRequest {
            component: reg.name.to_string(),
            routed: reg.routed,
        };
        self.conn
            .call(WeaveletMsg {
                msg: Some(weavelet_msg::Msg::ActivateComponentReq(req)),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                Error::construction(format!(
                    "activate {}: {}",
                    reg.name,
                    conn_error(e).message()
                ))
            })?;
        let first = tokio::time::timeout(ROUTING_TIMEOUT, rx.wait_for(Option::is_some)).await;
        match first {
            Ok(Ok(r)) => Ok(r.clone().expect("waited for Some")),
            _ => Err(Error::remote(format!(
                "no routing for {} from the deployer",
                reg.name
            ))),
        }
    }
}

impl Runtime for Remote {
    fn resolve(&self, name: &'static str) -> BoxFuture<'_, Result<Target>> {
        Box::pin(async move {
            let reg = Registry::get()?.find(name)?;
            let routing = self.activate(reg).await?;
            if routing.local {
                return Ok(Target::Local(self.instance(name).await?));
            }
            let rx = self.routing_sender(name).subscribe();
            Ok(Target::Remote(Arc::new(Balancer::new(
                name,
                reg.methods,
                rx,
                self.pool.clone(),
            ))))
        })
    }

    fn listener<'a>(
        &'a self,
        _component: &'static str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Listener>> {
        Box::pin(async move {
            let req = GetListenerAddressRequest {
                name: name.to_string(),
            };
            let reply = self
                .conn
                .call(WeaveletMsg {
                    msg: Some(weavelet_msg::Msg::GetListenerAddressReq(req)),
                    ..Default::default()
                })
                .await
                .map_err(conn_error)?;
            let addr = match reply.msg {
                Some(envelope_msg::Msg::GetListenerAddressReply(r)) if !r.address.is_empty() => {
                    r.address
                }
                _ => "127.0.0.1:0".to_string(),
            };
            let listener = TcpListener::bind(&addr)
                .await
                .map_err(|e| Error::construction(format!("listen on {addr}: {e}")))?;
            let local = listener.local_addr()?;
            let req = ExportListenerRequest {
                listener: name.to_string(),
                address: local.to_string(),
            };
            let reply = self
                .conn
                .call(WeaveletMsg {
                    msg: Some(weavelet_msg::Msg::ExportListenerReq(req)),
                    ..Default::default()
                })
                .await
                .map_err(conn_error)?;
            let public = match reply.msg {
                Some(envelope_msg::Msg::ExportListenerReply(r)) => {
                    if !r.error.is_empty() {
                        return Err(Error::construction(r.error));
                    }
                    r.proxy_address.parse::<SocketAddr>().unwrap_or(local)
                }
                _ => local,
            };
            Ok(Listener::new(name.to_string(), listener, public))
        })
    }

    fn config_section(&self, component: &str) -> Option<Section> {
        Some(Section {
            text: self.args.sections.get(component)?.clone(),
            file: if self.args.config_file.is_empty() {
                "weaver.toml".to_string()
            } else {
                self.args.config_file.clone()
            },
        })
    }

    fn log_sink(&self) -> Arc<dyn LogSink> {
        self.sink.clone()
    }
}

impl Dispatcher for Remote {
    fn dispatch(
        &self,
        method_key: u64,
        ctx: Context,
        args: Bytes,
    ) -> BoxFuture<'static, Result<Vec<u8>>> {
        let Some((served, method)) = self.methods.get(&method_key) else {
            return Box::pin(std::future::ready(Err(Error::internal(
                "unknown method key",
            ))));
        };
        let (reg, method) = (served.reg, *method);
        if !served.hosted.load(Ordering::Acquire) {
            return Box::pin(std::future::ready(Err(Error::internal(format!(
                "component {} is not hosted by this weavelet",
                reg.name
            )))));
        }
        if let Some(instance) = served.instance.get() {
            return (reg.dispatch)(instance, ctx, method, &args);
        }
        let this = self.arc();
        Box::pin(async move {
            let instance = this?.instance(reg.name).await?;
            (reg.dispatch)(&instance, ctx, method, &args).await
        })
    }
}
