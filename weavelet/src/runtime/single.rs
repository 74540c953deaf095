//! Every component in one process.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, Weak};

use weaver_proto::logging::PrettyPrinter;
use weaver_proto::runtime::LogEntry;

use super::announce::Announcer;
use super::endpoint;
use super::instances::Instances;
use super::{Registry, Runtime};
use crate::component::{Implementation, Instance, Main, Target};
use crate::config::{self, Section, SingleConfig};
use crate::logger::LogSink;
use crate::metrics::Origin;
use crate::{BoxFuture, Context, Error, Listener, Result};

/// The single-process runtime.
pub(crate) struct Single {
    this: Weak<Single>,
    config: SingleConfig,
    sink: Arc<StderrSink>,
    instances: Instances,
    announcer: Announcer,
}

/// Pretty-prints entries to stderr, as Service Weaver does for `go run`.
pub(super) struct StderrSink {
    app: String,
    deployment: String,
    node: String,
    printer: Mutex<PrettyPrinter>,
    /// Through `eprintln!`, which the test harness captures (for the test
    /// runners), rather than straight to the stderr file.
    captured: bool,
}

pub(super) async fn run<M, F, Fut>(f: F) -> Result<()>
where
    M: Implementation<Interface = dyn Main>,
    F: FnOnce(&'static M, Context) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let rt = Single::new(config::load_single()?)?;
    let runtime: Arc<dyn Runtime> = rt.clone();
    rt.check_against_binary(&runtime)?;
    print_banner(&rt.sink.app, &rt.sink.deployment);
    rt.serve_metrics().await;
    let main = super::build_main::<M>(&rt.instances, runtime).await?;
    rt.announcer
        .component(<dyn Main as crate::component::Interface>::NAME);
    f(main, Context::new()).await
}

impl Single {
    pub(crate) fn new(config: SingleConfig) -> Result<Arc<Self>> {
        Registry::get()?;
        let app = config.app.clone().unwrap_or_else(default_app_name);
        let deployment = uuid::Uuid::new_v4().to_string();
        let sink = Arc::new(StderrSink::new(app, deployment, color_stderr(), false));
        let announcer = Announcer::new(&sink.app, &sink.deployment);
        Ok(Arc::new_cyclic(|this| Single {
            this: this.clone(),
            config,
            announcer,
            sink,
            instances: Instances::default(),
        }))
    }

    /// Checks the config file against the binary before anything starts:
    /// its component sections name components the binary has and decode
    /// into their config types, and its listeners are declared by some
    /// component (as the Go tool checks: "listener X specified in the config
    /// not found in the binary").
    fn check_against_binary(&self, runtime: &Arc<dyn Runtime>) -> Result<()> {
        let registry = Registry::get()?;
        // No file: no sections or listeners to check, but config types
        // with required keys still fail here rather than on first use.
        if let Some(file) = &self.config.file {
            super::check_against_binary(&self.config, &file.display().to_string(), registry)?;
        }
        super::check_configs(registry, runtime, |_| false)
    }

    /// Starts the metrics endpoint and announces it; a run that cannot
    /// bind one goes on without it.
    async fn serve_metrics(&self) {
        let origin = Origin {
            app: self.sink.app.clone(),
            version: self.sink.deployment.clone(),
            node: self.sink.node.clone(),
        };
        match endpoint::start(origin).await {
            Ok(addr) => self.announcer.metrics(addr),
            Err(error) => tracing::warn!(%error, "cannot serve the metrics on loopback"),
        }
    }

    async fn instance(&self, name: &'static str) -> Result<Instance> {
        let runtime: Arc<dyn Runtime> = self
            .this
            .upgrade()
            .ok_or_else(|| Error::internal("runtime dropped"))?;
        let instance = self.instances.get(name, runtime).await?;
        self.announcer.component(name);
        Ok(instance)
    }
}

impl Runtime for Single {
    fn resolve(&self, name: &'static str) -> BoxFuture<'_, Result<Target>> {
        Box::pin(async move { Ok(Target::Local(self.instance(name).await?)) })
    }

    fn listener<'a>(
        &'a self,
        _component: &'static str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Listener>> {
        Box::pin(async move {
            let (listener, local) = super::bind_listener(&self.config, name).await?;
            self.announcer.listener(name, local.to_string());
            Ok(Listener::new(name.to_string(), listener, local))
        })
    }

    fn config_section(&self, component: &str) -> Option<Section> {
        let text = self.config.sections.get(component)?;
        Some(Section {
            text: text.clone(),
            file: self
                .config
                .file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        })
    }

    fn log_sink(&self) -> Arc<dyn LogSink> {
        self.sink.clone()
    }
}

impl StderrSink {
    /// A sink for a run of `app` as deployment `deployment` (also its node
    /// id), in colour if `color`, through the print macros if `captured`.
    pub(super) fn new(app: String, deployment: String, color: bool, captured: bool) -> Self {
        StderrSink {
            app,
            node: deployment.clone(),
            deployment,
            printer: Mutex::new(PrettyPrinter::new(color)),
            captured,
        }
    }
}

impl LogSink for StderrSink {
    fn log(&self, mut entry: LogEntry) {
        entry.app.clone_from(&self.app);
        entry.version.clone_from(&self.deployment);
        entry.node.clone_from(&self.node);
        let line = self
            .printer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .format(&entry);
        if self.captured {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{line}");
            }
        } else {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}

fn default_app_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".to_string())
}

fn color_stderr() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none()
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
        && std::io::stderr().is_terminal()
}

/// Prints the app/deployment box to stderr.
pub(crate) fn print_banner(app: &str, deployment: &str) {
    let rows = [
        format!("app        : {app}"),
        format!("deployment : {deployment}"),
    ];
    let width = rows.iter().map(|r| r.chars().count()).max().unwrap_or(0);
    let bar = "─".repeat(width + 2);
    let mut out = format!("╭{bar}╮\n");
    for r in &rows {
        out.push_str(&format!("│ {r:<width$} │\n"));
    }
    out.push_str(&format!("╰{bar}╯\n"));
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}
