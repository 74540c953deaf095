//! A running multiprocess deployment.
//!
//! [`Deployment::start`] spawns the Main group; other groups start when a
//! weavelet first activates one of their components. Every subscriber of a
//! component is pushed new routing whenever the component's replica set
//! changes. Replicas that exit are removed from routing and from every
//! proxy at once and, unless the restart policy is `never`, restarted with
//! backoff.

pub(crate) mod handler;
mod history;
mod logs;
mod metrics;
mod profile;
mod routing;
mod spawn;
mod state;
mod supervise;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use weaver_envelope::{Envelope, Handle};
use weaver_proto::runtime::{LogEntry, WeaveletArgs};
use weaver_proxy::Proxy;

use self::handler::ReplicaHandler;
use self::logs::LogOutput;
use self::spawn::{ProcessSpawner, Spawner};
use self::state::{Replica, State};
use crate::Config;
use crate::config::MAIN_COMPONENT;
use crate::registry::{Registration, Registry};
use crate::status::{
    ComponentStatus, ListenerStatus, MethodsProvider, MetricsProvider, PROMETHEUS_PATH,
    ProfileProvider, Profiled, ReplicaStatus, Status, StatusServer,
};

pub use self::error::DeployError;
pub use self::handler::error_chain;

mod error;

/// How to run a deployment.
pub struct Options {
    /// Where log entries are pretty-printed (the operator's stdout).
    pub out: Box<dyn Write + Send>,
    /// Whether to color the pretty-printed entries.
    pub color: bool,
    /// The data directory: registry and log store live here.
    pub data_dir: PathBuf,
    /// How long to wait for each child's handshake.
    pub handshake_timeout: Duration,
}

/// A running deployment. Dropping it does not stop it; call
/// [`Deployment::shutdown`].
pub struct Deployment {
    shared: Arc<Shared>,
}

/// State shared by the deployment's tasks and replica handlers.
pub(crate) struct Shared {
    this: Weak<Shared>,
    config: Config,
    id: String,
    submitted_at: i64,
    socket_dir: PathBuf,
    handshake_timeout: Duration,
    /// Starts every replica's child.
    spawner: Arc<dyn Spawner>,
    registry: Registry,
    /// Log output; its own threads write the store and the terminal.
    logs: LogOutput,
    /// The first fatal error, once the deployment has failed.
    fatal: watch::Sender<Option<Arc<DeployError>>>,
    shutting_down: AtomicBool,
    status: Mutex<Option<StatusServer>>,
    /// What each replica reported of its metrics.
    metrics: metrics::Store,
    /// The task that polls the metrics every [`METRICS_PERIOD`], from boot
    /// to shutdown.
    collector: Mutex<Option<Collector>>,
    /// Groups, subscribers and proxies.
    state: Mutex<State>,
    /// The last lines each replica wrote to stderr, by weavelet id, for
    /// crash reports.
    tails: Mutex<HashMap<String, VecDeque<String>>>,
}

/// The metrics poller's task, and how to stop it.
struct Collector {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Lines of stderr kept per replica for crash reports.
const TAIL_LINES: usize = 10;

/// How long a replica may take to answer a metrics poll before the page is
/// served without it.
const METRICS_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the babysitter polls its replicas' metrics on its own, so the
/// per-method history has totals every few seconds even when nobody asks.
const METRICS_PERIOD: Duration = Duration::from_secs(10);

// === impl Deployment ===

impl Deployment {
    /// Starts a deployment of `config`: registers it, starts the status
    /// server and the Main group, and prints the app/deployment box.
    ///
    /// # Errors
    ///
    /// A bad binary or config, a Main replica that cannot start, a data
    /// directory that cannot be written. Nothing is left running on error.
    pub async fn start(config: Config, options: Options) -> Result<Deployment, DeployError> {
        config.check_binary()?;
        Self::start_with(config, options, Arc::new(ProcessSpawner)).await
    }

    /// Like [`Deployment::start`], with replicas started by `spawner`, and
    /// without checking the binary (a spawner need not run it).
    pub(crate) async fn start_with(
        config: Config,
        options: Options,
        spawner: Arc<dyn Spawner>,
    ) -> Result<Deployment, DeployError> {
        let shared = Shared::new(config, options, spawner)?;
        let deployment = Deployment { shared };
        match deployment.shared.clone().boot().await {
            Ok(()) => Ok(deployment),
            Err(e) => {
                deployment.shutdown(Duration::from_millis(500)).await;
                Err(e)
            }
        }
    }

    /// The deployment id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Where the status server listens.
    pub fn status_addr(&self) -> Option<SocketAddr> {
        self.shared.lock_status().as_ref().map(StatusServer::addr)
    }

    /// The deployment's current status.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// Waits until the deployment fails (a replica that may not be
    /// restarted died, a listener could not listen, ...) and returns why.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn failed(&self) -> Arc<DeployError> {
        let mut rx = self.shared.fatal.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(e) => e.clone().expect("waited for Some"),
            Err(_) => Arc::new(DeployError::Internal("deployment state dropped".into())),
        }
    }

    /// Tears the deployment down: stops accepting at the proxies and lets
    /// in-flight requests finish within `grace`, stops every child
    /// (SIGTERM, then SIGKILL after `grace`), flushes the logs and removes
    /// the registration and runtime files.
    pub async fn shutdown(&self, grace: Duration) {
        self.shared.shutdown(grace).await;
    }
}

// === impl Shared ===

impl Shared {
    fn new(
        config: Config,
        options: Options,
        spawner: Arc<dyn Spawner>,
    ) -> Result<Arc<Shared>, DeployError> {
        let id = uuid::Uuid::new_v4().to_string();
        let socket_dir = crate::registry::runtime_dir(&id);
        create_private_dir(&socket_dir)?;
        let registry = Registry::new(options.data_dir.join("multi").join("registry"))?;
        let store = weaver_logs::Writer::new(options.data_dir.join("logs"));
        let logs = LogOutput::new(options.out, options.color, store)?;
        Ok(Arc::new_cyclic(|this| Shared {
            this: this.clone(),
            config,
            id,
            submitted_at: now_micros(),
            socket_dir,
            handshake_timeout: options.handshake_timeout,
            spawner,
            registry,
            logs,
            fatal: watch::channel(None).0,
            shutting_down: AtomicBool::new(false),
            status: Mutex::new(None),
            metrics: metrics::Store::new(METRICS_TIMEOUT, Instant::now()),
            collector: Mutex::new(None),
            state: Mutex::new(State::default()),
            tails: Mutex::default(),
        }))
    }

    /// Registers the deployment and starts the Main group.
    async fn boot(self: Arc<Self>) -> Result<(), DeployError> {
        let weak = self.this.clone();
        let provider = Arc::new(move || weak.upgrade().map_or_else(gone_status, |s| s.status()));
        let weak = self.this.clone();
        let metrics: MetricsProvider = Arc::new(move || {
            let shared = weak.upgrade();
            Box::pin(async move {
                match shared {
                    Some(s) => s.poll_metrics().await,
                    None => Vec::new(),
                }
            })
        });
        let weak = self.this.clone();
        let methods: MethodsProvider = Arc::new(move |by_caller| {
            let shared = weak.upgrade();
            Box::pin(async move {
                match shared {
                    Some(s) => {
                        s.poll_metrics().await;
                        s.metrics.methods(Instant::now(), by_caller)
                    }
                    None => Vec::new(),
                }
            })
        });
        let weak = self.this.clone();
        let profiles: ProfileProvider = Arc::new(move |req| {
            let shared = weak.upgrade();
            Box::pin(async move {
                match shared {
                    Some(s) => s.profile(req).await,
                    None => Profiled {
                        data: Vec::new(),
                        errors: vec!["the deployment has stopped".to_owned()],
                    },
                }
            })
        });
        let bind = SocketAddr::from(([127, 0, 0, 1], 0));
        let server =
            StatusServer::start_with_profiles(bind, provider, metrics, methods, profiles).await?;
        let status_addr = server.addr();
        *self.lock_status() = Some(server);
        self.start_collector();
        self.registry.register(&Registration {
            deployment_id: self.id.clone(),
            app: self.config.app_name().to_string(),
            status_addr,
            pid: std::process::id(),
            started_at: self.submitted_at,
        })?;
        let group = self.config.group_of(MAIN_COMPONENT).to_string();
        self.mark_started(MAIN_COMPONENT, false);
        self.ensure_group(&group).await?;
        self.validate_against_binary()?;
        self.print_banner(status_addr);
        Ok(())
    }

    /// Checks `colocate`, component sections and `[multi] listeners`
    /// against the components the binary reported in its handshake.
    fn validate_against_binary(&self) -> Result<(), DeployError> {
        let (known, listeners) = {
            let st = self.lock_state();
            (st.known_components.clone(), st.known_listeners.clone())
        };
        if known.is_empty() {
            return Ok(());
        }
        self.config.validate_components(&known)?;
        self.config.validate_listeners(&listeners)?;
        Ok(())
    }

    fn print_banner(&self, status_addr: SocketAddr) {
        let rows = [
            format!("app        : {}", self.config.app_name()),
            format!("deployment : {}", self.id),
            format!("metrics    : http://{status_addr}{PROMETHEUS_PATH}"),
        ];
        let width = rows.iter().map(|r| r.chars().count()).max().unwrap_or(0);
        let bar = "─".repeat(width + 2);
        let mut text = format!("╭{bar}╮\n");
        for r in &rows {
            text.push_str(&format!("│ {r:<width$} │\n"));
        }
        text.push_str(&format!("╰{bar}╯\n"));
        self.logs.write_raw(&text);
    }

    fn arc(&self) -> Option<Arc<Shared>> {
        self.this.upgrade()
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, Option<StatusServer>> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Records the first fatal error; the CLI tears the deployment down.
    pub(crate) fn fail(&self, e: DeployError) {
        if self.is_shutting_down() {
            return;
        }
        self.system_log("error", &format!("deployment failed: {e}"));
        self.fatal.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(Arc::new(e));
                true
            } else {
                false
            }
        });
    }

    /// Logs a line of the deployer's own, as a system entry.
    pub(crate) fn system_log(&self, level: &str, msg: &str) {
        let entry = LogEntry {
            app: self.config.app_name().to_string(),
            version: self.id.clone(),
            component: "deployer".to_string(),
            node: self.id.clone(),
            time_micros: now_micros(),
            level: level.to_string(),
            line: -1,
            msg: msg.to_string(),
            attrs: vec!["serviceweaver/system".to_string(), String::new()],
            ..Default::default()
        };
        self.logs.write_system(entry);
    }

    /// Queues a replica's log entries; waits while the log store is behind
    /// (see [`logs`]), which slows that replica's pipe, never traffic.
    pub(crate) async fn write_logs(&self, entries: Vec<LogEntry>) {
        {
            let mut tails = self.tails.lock().unwrap_or_else(|e| e.into_inner());
            for e in entries.iter().filter(|e| e.level == "stderr") {
                let tail = tails.entry(e.node.clone()).or_default();
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(e.msg.clone());
            }
        }
        self.logs.write(entries).await;
    }

    /// Forgets and returns the stderr tail of a replica, as an indented
    /// block (empty if it wrote nothing).
    pub(crate) fn take_tail(&self, weavelet_id: &str) -> String {
        let tail = self
            .tails
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(weavelet_id);
        match tail {
            Some(lines) if !lines.is_empty() => {
                let mut text = String::from("; its last lines of stderr:");
                for l in lines {
                    text.push_str("\n    ");
                    text.push_str(&l);
                }
                text
            }
            _ => String::new(),
        }
    }

    fn mark_started(&self, component: &str, routed: bool) -> bool {
        let group = self.config.group_of(component).to_string();
        self.lock_state().mark_started(component, &group, routed)
    }

    /// Starts `group`'s replicas unless they are running or starting; waits
    /// until they are up.
    async fn ensure_group(&self, group: &str) -> Result<(), DeployError> {
        let cell = self.lock_state().group_mut(group).start.clone();
        let this = self
            .arc()
            .ok_or_else(|| DeployError::Internal("deployment dropped".into()))?;
        let result = cell
            .get_or_try_init(|| async move {
                supervise::start_group(this, group.to_string())
                    .await
                    .map_err(Arc::new)
            })
            .await;
        result
            .map(|_| ())
            .map_err(|e| DeployError::Shared(e.clone()))
    }

    /// The arguments for a new replica of `group`.
    fn weavelet_args(&self, group: &str, index: u32) -> WeaveletArgs {
        WeaveletArgs {
            app: self.config.app_name().to_string(),
            deployment_id: self.id.clone(),
            id: uuid::Uuid::new_v4().to_string(),
            group: group.to_string(),
            replica: index,
            sections: self.config.sections().clone().into_iter().collect(),
            run_main: self.config.group_of(MAIN_COMPONENT) == group,
            socket_dir: self.socket_dir.display().to_string(),
            internal_address: match self.config.transport() {
                crate::Transport::Tcp => "tcp://127.0.0.1:0".to_string(),
                _ => "unix".to_string(),
            },
            config_file: self.config.path().display().to_string(),
            ..Default::default()
        }
    }

    /// Spawns one replica of `group`, tells it what to host and adds it to
    /// routing; pushes the new routing if `push` (a group starting all its
    /// replicas pushes once, when all are up, so routed keys do not move).
    pub(crate) async fn start_replica(
        &self,
        group: &str,
        index: u32,
        push: bool,
    ) -> Result<Arc<Envelope>, DeployError> {
        let args = self.weavelet_args(group, index);
        let weavelet_id = args.id.clone();
        let handler = Arc::new(ReplicaHandler::new(self.this.clone(), group.to_string()));
        let config = weaver_envelope::Config::new(self.config.binary())
            .args(self.config.args())
            .envs(
                self.config
                    .env()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .handshake_timeout(self.handshake_timeout);
        let envelope = self
            .spawner
            .spawn(config, args, handler)
            .await
            .map_err(|source| DeployError::Start {
                group: group.to_string(),
                replica: index,
                source,
            })?;
        let envelope = Arc::new(envelope);
        let known: Vec<String> = envelope
            .info()
            .components
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let components = {
            let mut st = self.lock_state();
            if st.known_components.is_empty() {
                st.known_components = known;
                let mut listeners: Vec<String> = envelope
                    .info()
                    .components
                    .iter()
                    .flat_map(|c| c.listeners.iter().cloned())
                    .collect();
                listeners.sort();
                listeners.dedup();
                st.known_listeners = listeners;
            }
            st.group_mut(group)
                .components
                .iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        if let Err(e) = envelope.update_components(components).await {
            envelope.kill();
            return Err(DeployError::Replica(format!(
                "replica {index} of {group}: {e}"
            )));
        }
        let replica = Replica {
            index,
            weavelet_id,
            pid: envelope.pid(),
            dial_addr: envelope.info().dial_addr.clone(),
            envelope: envelope.clone(),
            listeners: Vec::new(),
        };
        self.lock_state().group_mut(group).add_replica(replica);
        if push {
            self.push_group_routing(group).await;
        }
        Ok(envelope)
    }

    /// Removes a replica that exited from routing and from every proxy.
    pub(crate) async fn remove_replica(&self, group: &str, weavelet_id: &str) {
        let removed = self.lock_state().remove_replica(group, weavelet_id);
        let Some((replica, proxies)) = removed else {
            return;
        };
        for (name, addr) in &replica.listeners {
            if let Some(p) = proxies.get(name) {
                p.remove_backend(*addr);
            }
        }
        self.push_group_routing(group).await;
    }

    /// Pushes the routing of every started component of `group` to its
    /// subscribers.
    pub(crate) async fn push_group_routing(&self, group: &str) {
        let pushes = self.lock_state().group_pushes(group);
        let mut seen = std::collections::BTreeSet::new();
        for (_, info) in &pushes {
            if seen.insert(info.component.clone()) {
                self.system_log(
                    "debug",
                    &format!(
                        "routing of {} is now version {} with {} replica(s)",
                        info.component,
                        info.version,
                        info.replicas.len()
                    ),
                );
            }
        }
        let sends = pushes.into_iter().map(|(handle, info)| async move {
            if let Err(e) = handle.update_routing_info(info).await {
                tracing::debug!(error = %e, "routing push to a subscriber failed");
            }
        });
        futures_util::future::join_all(sends).await;
    }

    /// Handles `ActivateComponent(component)` from the weavelet `from`.
    pub(crate) async fn activate(
        &self,
        from: &Handle,
        component: &str,
        routed: bool,
    ) -> Result<(), DeployError> {
        let group = self.config.group_of(component).to_string();
        let local = !routed && from.args().group == group;
        let newly_started = self.mark_started(component, routed);
        if !local {
            self.lock_state().subscribe(component, from.clone());
        }
        if newly_started {
            // Running replicas of the group must host it too.
            let replicas = self.lock_state().group_mut(&group).envelopes();
            let components: Vec<String> = self
                .lock_state()
                .group_mut(&group)
                .components
                .iter()
                .cloned()
                .collect();
            for r in replicas {
                let _ = r.update_components(components.clone()).await;
            }
        }
        self.ensure_group(&group).await?;
        let info = if local {
            routing::local_info(component)
        } else {
            self.lock_state().routing_of(component)
        };
        from.update_routing_info(info)
            .await
            .map_err(|e| DeployError::Replica(format!("push routing of {component}: {e}")))
    }

    /// Handles `ExportListener`: adds the replica's address to the
    /// listener's proxy, creating the proxy on first export.
    pub(crate) async fn export_listener(
        &self,
        from: &Handle,
        name: &str,
        address: &str,
    ) -> Result<SocketAddr, DeployError> {
        let backend: SocketAddr = address.parse().map_err(|_| {
            DeployError::Replica(format!("listener {name}: bad address {address:?}"))
        })?;
        let cell = self.lock_state().proxy_cell(name);
        let mut created = false;
        let proxy = cell
            .get_or_try_init(|| async {
                let addr = self
                    .config
                    .listener_address(name)
                    .unwrap_or("127.0.0.1:0")
                    .to_string();
                created = true;
                Proxy::bind(&addr).await.map(Arc::new).map_err(|source| {
                    Arc::new(DeployError::Listener {
                        name: name.to_string(),
                        address: addr,
                        source,
                    })
                })
            })
            .await
            .map_err(|e| {
                self.fail(DeployError::Shared(e.clone()));
                DeployError::Shared(e.clone())
            })?
            .clone();
        if created {
            // Only now is the proxy in the cell, so in the status: whoever
            // reads this line may trust `weaver multi status` to list it.
            self.system_log(
                "info",
                &format!(
                    "proxy for listener {name} listening on {}",
                    proxy.local_addr()
                ),
            );
        }
        proxy.add_backend(backend);
        let weavelet_id = from.args().id.clone();
        self.lock_state()
            .record_listener(&from.args().group, &weavelet_id, name, backend);
        Ok(proxy.local_addr())
    }

    /// Profiles every group with replicas (see [`profile::profile_groups`]).
    async fn profile(&self, req: weaver_proto::runtime::GetProfileRequest) -> Profiled {
        let groups: Vec<(String, Vec<Arc<Envelope>>)> = {
            let st = self.lock_state();
            let mut groups: Vec<_> = st
                .groups
                .iter()
                .filter(|(_, g)| !g.replicas.is_empty())
                .map(|(name, g)| (name.clone(), g.envelopes()))
                .collect();
            groups.sort_by(|a, b| a.0.cmp(&b.0));
            groups
        };
        profile::profile_groups(groups, req).await
    }

    /// Polls every replica (each process once) for its metrics.
    async fn poll_metrics(&self) -> Vec<weaver_proto::prometheus::Snapshot> {
        let envelopes = self.lock_state().all_envelopes();
        self.metrics.poll(&envelopes).await
    }

    /// Starts polling the metrics every [`METRICS_PERIOD`] (the first poll
    /// at once: the history's first totals), until [`Shared::shutdown`].
    fn start_collector(&self) {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(collect_metrics(self.this.clone(), stopped));
        let old = self
            .collector
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(Collector { stop, task });
        if let Some(old) = old {
            old.task.abort();
        }
    }

    /// Stops the metrics poller, cancelling a poll under way (that loses
    /// nothing: its replies are sent again), and waits until it has.
    async fn stop_collector(&self) {
        let collector = self
            .collector
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(Collector { stop, task }) = collector else {
            return;
        };
        // The task may have ended already (the state was dropped).
        let _ = stop.send(());
        if let Err(e) = task.await
            && e.is_panic()
        {
            tracing::warn!(error = %e, "the metrics poller panicked");
        }
    }

    /// The deployment's status.
    /// Counts a restart of replica `index` of `group`, for the status.
    pub(crate) fn count_restart(&self, group: &str, index: u32) {
        let mut st = self.lock_state();
        if let Some(g) = st.groups.get_mut(group) {
            *g.restarts.entry(index).or_default() += 1;
        }
    }

    pub(crate) fn status(&self) -> Status {
        let st = self.lock_state();
        let components = st
            .started
            .keys()
            .map(|name| {
                let group = self.config.group_of(name).to_string();
                let replicas = st
                    .groups
                    .get(&group)
                    .map(|g| {
                        g.replicas
                            .iter()
                            .map(|r| ReplicaStatus {
                                pid: r.pid,
                                weavelet_id: r.weavelet_id.clone(),
                                index: r.index,
                                restarts: g.restarts.get(&r.index).copied().unwrap_or(0),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                ComponentStatus {
                    name: name.clone(),
                    group,
                    replicas,
                }
            })
            .collect();
        let listeners = st
            .proxies
            .iter()
            .filter_map(|(name, cell)| {
                cell.get().map(|p| ListenerStatus {
                    name: name.clone(),
                    address: p.local_addr().to_string(),
                })
            })
            .collect();
        Status {
            app: self.config.app_name().to_string(),
            deployment_id: self.id.clone(),
            submitted_at: self.submitted_at,
            status_addr: self
                .lock_status()
                .as_ref()
                .map_or(SocketAddr::from(([127, 0, 0, 1], 0)), StatusServer::addr),
            components,
            listeners,
            sections: self.config.sections().clone(),
        }
    }

    async fn shutdown(&self, grace: Duration) {
        if self.shutting_down.swap(true, Ordering::SeqCst) {
            return;
        }
        // Before the replicas stop, so it does not poll them as they die.
        self.stop_collector().await;
        let (proxies, envelopes) = {
            let st = self.lock_state();
            let proxies: Vec<Arc<Proxy>> = st
                .proxies
                .values()
                .filter_map(|c| c.get().cloned())
                .collect();
            (proxies, st.all_envelopes())
        };
        // Stop taking new requests and let in-flight ones finish.
        futures_util::future::join_all(proxies.iter().map(|p| p.shutdown(grace))).await;
        supervise::stop_all(&envelopes, grace).await;
        let server = self.lock_status().take();
        if let Some(server) = server {
            server.shutdown().await;
        }
        if let Err(e) = self.registry.unregister(&self.id) {
            tracing::warn!(error = %e, "cannot remove the registration");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.socket_dir) {
            tracing::debug!(error = %e, "cannot remove the runtime directory");
        }
        self.logs.flush().await;
    }
}

/// Polls the metrics of `shared`'s replicas every [`METRICS_PERIOD`] until
/// `stopped` fires or the deployment's state is gone. A slow poll (each
/// replica has [`METRICS_TIMEOUT`]) delays the next tick rather than
/// bunching them. It only locks the state to list the envelopes, so it never
/// holds up a replica's restart.
async fn collect_metrics(shared: Weak<Shared>, mut stopped: oneshot::Receiver<()>) {
    let mut ticks = tokio::time::interval(METRICS_PERIOD);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = ticks.tick() => {}
        }
        let Some(shared) = shared.upgrade() else {
            break;
        };
        tokio::select! {
            _ = &mut stopped => break,
            _ = shared.poll_metrics() => {}
        }
    }
    tracing::debug!("metrics poller stopped");
}

/// Creates a directory only the current user can enter.
fn create_private_dir(dir: &std::path::Path) -> Result<(), DeployError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| DeployError::Io {
            what: format!("create {}", dir.display()),
            source,
        })
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The status of a deployment whose state is already gone.
fn gone_status() -> Status {
    Status {
        app: String::new(),
        deployment_id: String::new(),
        submitted_at: 0,
        status_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        components: Vec::new(),
        listeners: Vec::new(),
        sections: Default::default(),
    }
}
