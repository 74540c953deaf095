//! The deployer of the multiprocess test runner: the test binary,
//! re-executed as weavelets, two replicas per group, each group started
//! when a component of it is first activated.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{OnceCell, watch};
use weaver_envelope::{Envelope, EnvelopeHandler, Handle, HandlerError};
use weaver_proto::logging::PrettyPrinter;
use weaver_proto::routing::{local_info, routing_info};
use weaver_proto::runtime::{
    ActivateComponentReply, ActivateComponentRequest, ExportListenerReply, ExportListenerRequest,
    GetListenerAddressReply, GetListenerAddressRequest, LogEntryBatch, RoutingInfo, WeaveletArgs,
};

use crate::runtime::balancer::Routing;
use crate::{Error, Result};

/// Replicas per group, as Service Weaver's multiprocess runner starts.
pub(crate) const REPLICAS: u32 = 2;

/// Set in the children: the test function runs as a weavelet.
pub(crate) const WEAVELET_ENV: &str = "WEAVER_TEST_WEAVELET";

/// How long a child may take to stop once its pipe is closed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The deployer of one multiprocess test.
pub(crate) struct Deployer {
    this: Weak<Deployer>,
    /// The test binary's name for the test: what the children run.
    test: String,
    app: String,
    deployment: String,
    sections: BTreeMap<String, String>,
    /// Component -> group, for colocated components; others are alone.
    colocated: HashMap<String, String>,
    groups: Mutex<HashMap<String, Arc<Group>>>,
    /// Components the test process hosts itself (asked for with
    /// `get_impl`), served at `self_addr`.
    hosted: Mutex<HashSet<String>>,
    self_addr: OnceCell<String>,
    socket_dir: PathBuf,
    printer: Mutex<PrettyPrinter>,
    /// Routing for the test process's own clients, by component.
    routing: Mutex<HashMap<String, watch::Sender<Option<Arc<Routing>>>>>,
    /// Set once the test ended: no group starts after that.
    stopping: std::sync::atomic::AtomicBool,
}

/// One group: its components and, once started, its replicas.
struct Group {
    name: String,
    components: Vec<String>,
    replicas: OnceCell<Vec<Arc<Envelope>>>,
}

impl Deployer {
    pub(crate) fn new(
        test: String,
        app: String,
        deployment: String,
        sections: BTreeMap<String, String>,
        colocate: &[Vec<String>],
        socket_dir: PathBuf,
    ) -> Arc<Self> {
        let mut colocated = HashMap::new();
        for group in colocate {
            if let Some(first) = group.first() {
                for c in group {
                    colocated.insert(c.clone(), first.clone());
                }
            }
        }
        Arc::new_cyclic(|this| Deployer {
            this: this.clone(),
            test,
            app,
            deployment,
            sections,
            colocated,
            groups: Mutex::default(),
            hosted: Mutex::default(),
            self_addr: OnceCell::new(),
            socket_dir,
            printer: Mutex::new(PrettyPrinter::new(false)),
            routing: Mutex::default(),
            stopping: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Places `component` in the test process, which serves it at `addr`.
    ///
    /// # Errors
    ///
    /// If its group has started already: its replicas would be called
    /// instead.
    pub(crate) fn host_here(&self, component: &str, addr: &str) -> Result<()> {
        let group = self.group_name(component);
        if self.lock_groups().contains_key(&group) {
            return Err(Error::construction(format!(
                "component {component} already runs in other processes: in a multi test, \
                 ask for its implementation (get_impl) before its first call"
            )));
        }
        let _ = self.self_addr.set(addr.to_string());
        lock(&self.hosted).insert(component.to_string());
        Ok(())
    }

    /// Whether the test process hosts `component` itself.
    pub(crate) fn is_hosted_here(&self, component: &str) -> bool {
        lock(&self.hosted).contains(component)
    }

    /// The routing of `component` for the test process's clients, starting
    /// its group if needed.
    pub(crate) async fn routing_for_test(
        &self,
        component: &str,
        routed: bool,
    ) -> Result<watch::Receiver<Option<Arc<Routing>>>> {
        let info = self.routing_of(component, routed, None).await?;
        let sender = lock(&self.routing)
            .entry(component.to_string())
            .or_insert_with(|| watch::channel(None).0)
            .clone();
        sender.send_replace(Some(Arc::new(Routing::from_proto(&info))));
        Ok(sender.subscribe())
    }

    /// The routing of `component` as seen from group `from` (`None`: the
    /// test process).
    async fn routing_of(
        &self,
        component: &str,
        routed: bool,
        from: Option<&str>,
    ) -> Result<RoutingInfo> {
        if lock(&self.hosted).contains(component) {
            let addr = self.self_addr.get().cloned().unwrap_or_default();
            return Ok(routing_info(component, routed, &[addr], 1));
        }
        let group = self.group(component);
        if from == Some(group.name.as_str()) {
            return Ok(local_info(component));
        }
        let replicas = group
            .replicas
            .get_or_try_init(|| self.start(&group))
            .await?;
        let addrs: Vec<String> = replicas
            .iter()
            .map(|e| e.info().dial_addr.clone())
            .collect();
        Ok(routing_info(component, routed, &addrs, 1))
    }

    /// Starts the replicas of `group` and tells them what they host.
    async fn start(&self, group: &Group) -> Result<Vec<Arc<Envelope>>> {
        if self.stopping.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::remote("the test has ended"));
        }
        let handler = self
            .this
            .upgrade()
            .ok_or_else(|| Error::internal("test deployer dropped"))?;
        std::fs::create_dir_all(&self.socket_dir).map_err(|e| {
            Error::internal(format!("cannot create {}: {e}", self.socket_dir.display()))
        })?;
        let exe = std::env::current_exe()
            .map_err(|e| Error::construction(format!("cannot find the test binary: {e}")))?;
        let starts = (0..REPLICAS).map(|replica| {
            let args = WeaveletArgs {
                app: self.app.clone(),
                deployment_id: self.deployment.clone(),
                id: uuid::Uuid::new_v4().to_string(),
                group: group.name.clone(),
                replica,
                sections: self.sections.clone().into_iter().collect(),
                run_main: false,
                socket_dir: self.socket_dir.display().to_string(),
                internal_address: "unix".to_string(),
                config_file: "[testconfig]".to_string(),
                ..Default::default()
            };
            // The test binary runs this one test, which serves as a
            // weavelet when it finds WEAVELET_ENV.
            let config = weaver_envelope::Config::new(&exe)
                .args::<_, OsString>([
                    self.test.clone().into(),
                    "--exact".into(),
                    "--nocapture".into(),
                    "--test-threads=1".into(),
                ])
                .env(WEAVELET_ENV, "1")
                .stop_grace(STOP_GRACE);
            Envelope::start(config, args, handler.clone())
        });
        let started = futures_util::future::join_all(starts).await;
        let mut replicas = Vec::new();
        let mut failure = None;
        for s in started {
            match s {
                Ok(e) => replicas.push(Arc::new(e)),
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            stop(&replicas).await;
            return Err(Error::construction(format!(
                "cannot start group {} as `{} {} --exact`: {e}",
                group.name,
                exe.display(),
                self.test
            )));
        }
        for e in &replicas {
            if let Err(err) = e.update_components(group.components.clone()).await {
                stop(&replicas).await;
                return Err(Error::remote(format!("group {}: {err}", group.name)));
            }
        }
        Ok(replicas)
    }

    /// Stops every child and waits for it to exit.
    pub(crate) async fn shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
        let groups: Vec<Arc<Group>> = self.lock_groups().values().cloned().collect();
        for g in groups {
            if let Some(replicas) = g.replicas.get() {
                stop(replicas).await;
            }
        }
    }

    fn group_name(&self, component: &str) -> String {
        self.colocated
            .get(component)
            .cloned()
            .unwrap_or_else(|| component.to_string())
    }

    fn group(&self, component: &str) -> Arc<Group> {
        let name = self.group_name(component);
        let mut groups = self.lock_groups();
        groups
            .entry(name.clone())
            .or_insert_with(|| {
                let mut components: Vec<String> = self
                    .colocated
                    .iter()
                    .filter(|(_, g)| **g == name)
                    .map(|(c, _)| c.clone())
                    .collect();
                if components.is_empty() {
                    components.push(name.clone());
                }
                components.sort();
                Arc::new(Group {
                    name,
                    components,
                    replicas: OnceCell::new(),
                })
            })
            .clone()
    }

    fn lock_groups(&self) -> MutexGuard<'_, HashMap<String, Arc<Group>>> {
        lock(&self.groups)
    }
}

/// Closes each child's pipe, which makes its weavelet exit, and waits;
/// kills what is still running after the grace period.
async fn stop(replicas: &[Arc<Envelope>]) {
    for e in replicas {
        e.terminate();
    }
    for e in replicas {
        if tokio::time::timeout(STOP_GRACE, e.wait()).await.is_err() {
            e.kill();
            let _ = e.wait().await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EnvelopeHandler for Deployer {
    async fn activate_component(
        &self,
        from: &Handle,
        req: ActivateComponentRequest,
    ) -> std::result::Result<ActivateComponentReply, HandlerError> {
        let info = self
            .routing_of(&req.component, req.routed, Some(&from.args().group))
            .await
            .map_err(|e| HandlerError::new(e.to_string()))?;
        from.update_routing_info(info).await?;
        Ok(ActivateComponentReply {})
    }

    async fn get_listener_address(
        &self,
        _from: &Handle,
        _req: GetListenerAddressRequest,
    ) -> std::result::Result<GetListenerAddressReply, HandlerError> {
        Ok(GetListenerAddressReply {
            address: "127.0.0.1:0".to_string(),
        })
    }

    async fn export_listener(
        &self,
        _from: &Handle,
        req: ExportListenerRequest,
    ) -> std::result::Result<ExportListenerReply, HandlerError> {
        Ok(ExportListenerReply {
            proxy_address: req.address,
            error: String::new(),
        })
    }

    async fn handle_log_batch(&self, batch: LogEntryBatch) {
        let mut printer = lock(&self.printer);
        for entry in &batch.entries {
            // The test harness's own lines in the children are noise.
            if entry.component == "stdout"
                && (entry.msg.is_empty()
                    || entry.msg.starts_with("running ")
                    || entry.msg.starts_with("test "))
            {
                continue;
            }
            let line = printer.format(entry);
            // Through the print macros, which the harness captures.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{line}");
            }
        }
    }
}
