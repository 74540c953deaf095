//! A weaver app for the end-to-end tests: it reports which process served
//! a request, serves slow requests on demand, and fails on purpose.
//!
//! Endpoints on the `http` listener: `/pid` (the Main replica's pid),
//! `/worker?key=K` (the Worker replica's pid; routed by key),
//! `/slow?ms=N` (answers after N ms), `/print?n=N` (prints N lines to
//! stdout).
//!
//! `CRASH=before` panics before `weaver::run` (before the handshake);
//! `CRASH=main` panics inside the app's main, after the handshake.

#![allow(clippy::print_stdout)] // printing lines is what /print is for

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use weaver::{Context, Listener, Logger, Ref};

/// A component in its own group, routed by key.
#[weaver::component(router = WorkerRouter)]
pub(crate) trait Worker {
    /// Returns the worker's pid.
    async fn work(&self, ctx: &Context, key: String) -> weaver::Result<u32>;
}

#[derive(Default)]
pub(crate) struct WorkerRouter;

#[weaver::router(Worker)]
impl WorkerRouter {
    fn work(&self, _ctx: &Context, key: &str) -> String {
        key.to_string()
    }
}

#[weaver::implements(Worker)]
struct WorkerImpl {
    logger: Logger,
}

impl Worker for WorkerImpl {
    async fn work(&self, _ctx: &Context, key: String) -> weaver::Result<u32> {
        self.logger.info_with("working", ("key", key));
        Ok(std::process::id())
    }
}

#[weaver::main]
struct App {
    worker: Ref<dyn Worker>,
    http: Listener,
    logger: Logger,
}

#[tokio::main]
async fn main() -> weaver::Result<()> {
    let mode = std::env::var("CRASH").unwrap_or_default();
    if mode == "before" {
        panic!("probe: failing before weaver::run, as asked");
    }
    weaver::run(|app: &'static App, _ctx| async move {
        if mode == "main" {
            panic!("probe: failing in main, as asked");
        }
        loop {
            let (stream, _) = app.http.accept().await?;
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(app, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
    .await
}

fn param<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

async fn handle(app: &App, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.uri().path() {
        "/pid" => std::process::id().to_string(),
        "/worker" => {
            let key = param(&req, "key").unwrap_or("").to_string();
            match app.worker.get().work(&Context::new(), key).await {
                Ok(pid) => pid.to_string(),
                Err(e) => format!("error: {e}"),
            }
        }
        "/slow" => {
            let ms = param(&req, "ms")
                .and_then(|m| m.parse().ok())
                .unwrap_or(100);
            app.logger.info_with("slow request started", ("ms", ms));
            tokio::time::sleep(Duration::from_millis(ms)).await;
            format!("slept {ms}")
        }
        "/print" => {
            let n: usize = param(&req, "n").and_then(|m| m.parse().ok()).unwrap_or(0);
            for i in 0..n {
                println!("line {i}");
            }
            format!("printed {n}")
        }
        _ => "unknown".to_string(),
    };
    Ok(Response::new(Full::new(Bytes::from(body))))
}
