//! A deployer of your own, on the `weaver-envelope` API alone: it runs a
//! Weaver app with every component in one child process, like the deployer
//! in Service Weaver's "How to write a deployer" blog post.
//!
//! One [`Envelope`] spawns the app binary and speaks the control protocol
//! with the weavelet inside it; the [`Deployer`] answers what the weavelet
//! asks. Each component the app activates is added to the set the weavelet
//! hosts and routed to the weavelet itself, so every call stays local.
//! Listeners listen where `--listen` says, and log entries are printed.
//!
//! Run with:
//!
//! ```sh
//! cargo build -p hello -p custom-deployer
//! target/debug/custom-deployer target/debug/hello --listen 127.0.0.1:8080
//! curl 'localhost:8080/hello?name=Weaver'   # Hello, revaeW!
//! ```

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use clap::Parser;
use weaver_envelope::{Config, Envelope, EnvelopeHandler, Handle, HandlerError};
use weaver_proto::logging::PrettyPrinter;
use weaver_proto::runtime::{
    ActivateComponentReply, ActivateComponentRequest, ExportListenerReply, ExportListenerRequest,
    GetListenerAddressReply, GetListenerAddressRequest, LogEntryBatch, RoutingInfo, WeaveletArgs,
};

/// Runs a Weaver app with all its components in one child process.
#[derive(Parser)]
struct Args {
    /// The application binary, e.g. target/debug/hello.
    binary: PathBuf,
    /// The address every listener of the app listens on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

/// Answers the weavelet's requests.
struct Deployer {
    listen: String,
    /// The components the weavelet hosts. An async mutex, held while the new
    /// set is sent, so concurrent activations reach the weavelet in order.
    hosted: tokio::sync::Mutex<Vec<String>>,
    printer: Mutex<PrettyPrinter>,
}

impl Deployer {
    /// Adds `component` to what `weavelet` hosts and sends it the full set.
    async fn host(&self, weavelet: &Handle, component: &str) -> Result<(), weaver_envelope::Error> {
        let mut hosted = self.hosted.lock().await;
        if !hosted.iter().any(|c| c == component) {
            hosted.push(component.to_string());
            weavelet.update_components(hosted.clone()).await?;
        }
        Ok(())
    }
}

impl EnvelopeHandler for Deployer {
    async fn activate_component(
        &self,
        from: &Handle,
        req: ActivateComponentRequest,
    ) -> Result<ActivateComponentReply, HandlerError> {
        self.host(from, &req.component).await?;
        // `local`: the caller hosts the component itself.
        let routing = RoutingInfo {
            component: req.component,
            local: true,
            ..Default::default()
        };
        from.update_routing_info(routing).await?;
        Ok(ActivateComponentReply {})
    }

    async fn get_listener_address(
        &self,
        _from: &Handle,
        _req: GetListenerAddressRequest,
    ) -> Result<GetListenerAddressReply, HandlerError> {
        Ok(GetListenerAddressReply {
            address: self.listen.clone(),
        })
    }

    async fn export_listener(
        &self,
        _from: &Handle,
        req: ExportListenerRequest,
    ) -> Result<ExportListenerReply, HandlerError> {
        // No proxy: clients talk to the one replica directly.
        eprintln!("listener {} available on {}", req.listener, req.address);
        Ok(ExportListenerReply {
            proxy_address: req.address,
            error: String::new(),
        })
    }

    async fn handle_log_batch(&self, batch: LogEntryBatch) {
        let mut printer = self.printer.lock().unwrap_or_else(PoisonError::into_inner);
        for entry in &batch.entries {
            eprintln!("{}", printer.format(entry));
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custom-deployer: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the app until it exits or ctrl-c.
async fn run(args: Args) -> anyhow::Result<()> {
    // A private (0700) directory for the weavelet's RPC socket, removed on exit.
    let sockets = tempfile::tempdir().context("cannot create the socket directory")?;
    let weavelet = WeaveletArgs {
        app: args
            .binary
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into(),
        deployment_id: uuid::Uuid::new_v4().to_string(),
        id: uuid::Uuid::new_v4().to_string(),
        group: "main".into(),
        run_main: true,
        socket_dir: sockets.path().display().to_string(),
        internal_address: "unix".into(),
        ..Default::default()
    };
    let deployer = Arc::new(Deployer {
        listen: args.listen,
        hosted: tokio::sync::Mutex::default(),
        printer: Mutex::new(PrettyPrinter::new(std::io::stderr().is_terminal())),
    });
    let binary = args.binary.display();
    let envelope = Envelope::start(Config::new(&args.binary), weavelet, deployer.clone())
        .await
        .with_context(|| format!("cannot start {binary}"))?;
    deployer.host(envelope.handle(), "weaver::Main").await?;

    tokio::select! {
        exit = envelope.wait() => {
            let exit = exit?;
            anyhow::ensure!(exit.success(), "{binary} exited: {exit}");
        }
        _ = tokio::signal::ctrl_c() => {
            envelope.kill();
            // Waiting also prints whatever the app logged before it died.
            envelope.wait().await?;
        }
    }
    Ok(())
}
