//! `weaver multi dashboard` and `weaver single dashboard`: a web page an
//! operator leaves open.
//!
//! A small HTTP server in the CLI process. On every request it reads the
//! [`Registry`] of live deployments, asks their babysitters' status servers
//! for status, per-method statistics and metrics, or reads the log store,
//! and renders a page on the server. For `single`, it reads the
//! single-process runs' registrations and asks each run for its metrics
//! (methods show totals only; such runs print their logs on their own
//! stdout, so there is no logs page). Every page is self-contained: inline
//! style sheet, a few lines of inline script for live updates, the traffic
//! graph as inline SVG; the `Content-Security-Policy` header forbids loading
//! anything from elsewhere. It binds loopback unless `--host` says otherwise.
//!
//! Pages: `/` (live deployments), `/deployment?id=` (summary, commands,
//! components, methods, traffic), `/metrics?id=` (tables; the Prometheus
//! text at `/prometheus?id=`), `/logs?id=&q=<CEL>`. A missing or malformed id,
//! or one no deployment ever had, is a 400 naming it; a deployment that
//! ended gets a 410 page saying so.

mod graph;
mod html;
pub(crate) use html::escape;
mod methods;
mod pages;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{debug, warn};
use weaver_babysitter::{Registration, Registry, Status, data_dir};
use weaver_proto::runtime::LogEntry;

use self::html::Page;
use self::pages::Tool;
use crate::{Outcome, single, status};

/// How long a status server gets to answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// How many of the matching log entries the logs page shows (the last ones).
const MAX_LOG_ENTRIES: usize = 500;

/// Forbids loading anything from another origin: pages are self-contained.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                   img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'";

/// The dashboard's sources and settings, shared by every connection.
struct Dashboard {
    /// Whose runs it shows.
    tool: Tool,
    /// Where live deployments are registered.
    source: Source,
    /// The log store.
    logs_dir: PathBuf,
}

/// Where the runs are registered.
enum Source {
    /// `weaver multi`'s registry of babysitters.
    Multi(Registry),
    /// The registry directory of single-process runs.
    Single(PathBuf),
}

/// A live run: its status and where its metrics are served.
struct Live {
    status: Status,
    /// The babysitter's status server (multi) or the process's metrics
    /// endpoint (single); none if the run serves no metrics.
    metrics_addr: Option<SocketAddr>,
}

/// A rendered reply.
struct Reply {
    code: StatusCode,
    content_type: &'static str,
    body: String,
}

/// Where a deployment id led.
enum Found {
    /// A live deployment and its status.
    Live(Box<Live>),
    /// A deployment that ran here and ended.
    Ended {
        /// Its app, if known.
        app: String,
        /// How we know.
        why: String,
    },
}

/// Runs `weaver multi dashboard` until ctrl-c.
///
/// # Errors
///
/// If the address cannot be bound or the data directory is unusable.
pub(crate) fn run_multi(host: &str, port: u16) -> anyhow::Result<Outcome> {
    run(
        Dashboard {
            tool: Tool::Multi,
            source: Source::Multi(Registry::open_default()?),
            logs_dir: data_dir()?.join("logs"),
        },
        host,
        port,
    )
}

/// Runs `weaver single dashboard` until ctrl-c.
///
/// # Errors
///
/// As [`run_multi`].
pub(crate) fn run_single(host: &str, port: u16) -> anyhow::Result<Outcome> {
    let data = data_dir()?;
    run(
        Dashboard {
            tool: Tool::Single,
            source: Source::Single(weaver_proto::single::registry_dir(&data)),
            logs_dir: data.join("logs"),
        },
        host,
        port,
    )
}

fn run(dashboard: Dashboard, host: &str, port: u16) -> anyhow::Result<Outcome> {
    let dashboard = Arc::new(dashboard);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let listener = bind(host, port).await?;
        let addr = listener.local_addr()?;
        eprintln!("Dashboard available at: http://{addr}");
        tokio::select! {
            () = serve(listener, dashboard) => Ok(Outcome::Ok),
            _ = sigint.recv() => Ok(Outcome::Signal(2)),
            _ = sigterm.recv() => Ok(Outcome::Signal(15)),
        }
    })
}

/// Binds the first address `host` resolves to that can be bound.
async fn bind(host: &str, port: u16) -> anyhow::Result<TcpListener> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve --host {host:?}"))?
        .collect();
    // Prefer IPv4: `localhost` then means 127.0.0.1, as in every other
    // address the tools print.
    let mut sorted = addrs.clone();
    sorted.sort_by_key(|a| !a.is_ipv4());
    let mut last = None;
    for addr in sorted {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some((addr, e)),
        }
    }
    match last {
        Some((addr, e)) => Err(e).with_context(|| format!("cannot listen on {addr}")),
        None => anyhow::bail!("--host {host:?} resolves to no address"),
    }
}

async fn serve(listener: TcpListener, dashboard: Arc<Dashboard>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(serve_conn(stream, peer, dashboard.clone()));
            }
            Err(err) => {
                warn!(error = %err, "dashboard cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_conn(stream: TcpStream, peer: SocketAddr, dashboard: Arc<Dashboard>) {
    let service = service_fn(move |req| {
        let dashboard = dashboard.clone();
        async move { Ok::<_, Infallible>(dashboard.respond(&req).await.into_response()) }
    });
    if let Err(err) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        debug!(%peer, error = %err, "dashboard connection failed");
    }
}

// === impl Dashboard ===

impl Dashboard {
    async fn respond(&self, req: &Request<Incoming>) -> Reply {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        let query = parse_query(req.uri().query().unwrap_or(""));
        let id = query.get("id").map(String::as_str);
        match req.uri().path() {
            "/" => self.index().await,
            "/favicon.svg" | "/favicon.ico" => Reply {
                code: StatusCode::OK,
                content_type: "image/svg+xml",
                body: html::FAVICON.to_owned(),
            },
            "/deployment" => self.deployment(id).await,
            "/metrics" => self.metrics(id).await,
            "/prometheus" => {
                let summed = query.get("replicas").is_some_and(|r| r == "sum");
                self.prometheus(id, summed).await
            }
            "/logs" if self.tool == Tool::Multi => {
                let q = query.get("q").map_or("", String::as_str);
                self.logs(id, q).await
            }
            path => {
                let body = pages::problem("Not found", &format!("no page at {path}"));
                self.page(StatusCode::NOT_FOUND, "Not found", None, 0, body)
            }
        }
    }

    fn tool_name(&self) -> &'static str {
        match self.tool {
            Tool::Multi => "weaver multi",
            Tool::Single => "weaver single",
        }
    }

    fn page(
        &self,
        code: StatusCode,
        title: &str,
        deployment: Option<&str>,
        refresh_secs: u32,
        body: String,
    ) -> Reply {
        let page = Page {
            title,
            tool: self.tool_name(),
            deployment,
            logs: self.tool == Tool::Multi,
            refresh_secs,
            body,
        };
        Reply::html(code, page.render())
    }

    async fn index(&self) -> Reply {
        let runs = match self.list().await {
            Ok(runs) => runs,
            Err(msg) => {
                let body = pages::problem("Cannot read the registry", &msg);
                return self.page(StatusCode::INTERNAL_SERVER_ERROR, "Error", None, 0, body);
            }
        };
        let rows: Vec<pages::Row<'_>> = runs
            .iter()
            .map(|(app, id, status)| pages::Row {
                app,
                id,
                status: status.as_ref().map_err(Clone::clone),
            })
            .collect();
        let body = pages::index(&rows, self.tool, crate::now_micros());
        let title = format!("{} Dashboard", self.tool_name());
        self.page(StatusCode::OK, &title, None, 5, body)
    }

    /// Every live run: (app, id, status or why it could not be fetched).
    async fn list(&self) -> Result<Vec<(String, String, Result<Status, String>)>, String> {
        match &self.source {
            Source::Multi(registry) => {
                let live = status::live(registry, FETCH_TIMEOUT)
                    .await
                    .map_err(|e| weaver_babysitter::error_chain(&e))?;
                Ok(live
                    .into_iter()
                    .map(|d| {
                        let r = d.registration;
                        (
                            r.app,
                            r.deployment_id,
                            d.status.map_err(|e| weaver_babysitter::error_chain(&e)),
                        )
                    })
                    .collect())
            }
            Source::Single(dir) => {
                let mut runs: Vec<_> = single::live_registrations(dir)
                    .into_iter()
                    .map(|r| {
                        (
                            r.app.clone(),
                            r.deployment_id.clone(),
                            Ok(single::to_status(r)),
                        )
                    })
                    .collect();
                runs.sort_by_key(|(_, _, s)| s.as_ref().map_or(0, |s| s.submitted_at));
                Ok(runs)
            }
        }
    }

    async fn deployment(&self, id: Option<&str>) -> Reply {
        let live = match self.live(id).await {
            Ok(live) => live,
            Err(reply) => return reply,
        };
        let extra = self.extra(&live).await;
        let s = &live.status;
        let body = pages::deployment(s, &extra, self.tool, crate::now_micros());
        let title = format!("{} - Status", s.app);
        self.page(StatusCode::OK, &title, Some(&s.deployment_id), 5, body)
    }

    /// The method statistics and summed metrics of `live`.
    async fn extra(&self, live: &Live) -> pages::Extra {
        let Some(addr) = live.metrics_addr else {
            let none = "the run serves no metrics".to_owned();
            return pages::Extra {
                methods: Err(none.clone()),
                metrics: Err(none),
            };
        };
        if self.tool == Tool::Single {
            let metrics = status::fetch_metrics(addr, FETCH_TIMEOUT)
                .await
                .map_err(|e| weaver_babysitter::error_chain(&e));
            return pages::Extra {
                methods: metrics
                    .as_ref()
                    .map(|m| methods::totals(m))
                    .map_err(Clone::clone),
                metrics,
            };
        }
        let (methods, metrics) = tokio::join!(
            status::fetch_methods(addr, FETCH_TIMEOUT),
            status::fetch_summed_metrics(addr, FETCH_TIMEOUT),
        );
        pages::Extra {
            methods: methods.map_err(|e| weaver_babysitter::error_chain(&e)),
            metrics: metrics.map_err(|e| weaver_babysitter::error_chain(&e)),
        }
    }

    async fn metrics(&self, id: Option<&str>) -> Reply {
        let live = match self.live(id).await {
            Ok(live) => live,
            Err(reply) => return reply,
        };
        let s = &live.status;
        let title = format!("{} - Metrics", s.app);
        let fetched = match live.metrics_addr {
            None => return self.no_metrics(s),
            // A single run is one process: nothing to sum.
            Some(addr) if self.tool == Tool::Single => {
                status::fetch_metrics(addr, FETCH_TIMEOUT).await
            }
            Some(addr) => status::fetch_summed_metrics(addr, FETCH_TIMEOUT).await,
        };
        match fetched {
            Ok(metrics) => {
                let body = pages::metrics(s, &metrics);
                self.page(StatusCode::OK, &title, Some(&s.deployment_id), 10, body)
            }
            Err(e) => self.unavailable(s, &e),
        }
    }

    async fn prometheus(&self, id: Option<&str>, summed: bool) -> Reply {
        let live = match self.live(id).await {
            Ok(live) => live,
            Err(reply) => return reply,
        };
        let Some(addr) = live.metrics_addr else {
            return self.no_metrics(&live.status);
        };
        let summed = summed && self.tool == Tool::Multi;
        match status::fetch_prometheus(addr, summed, FETCH_TIMEOUT).await {
            Ok(text) => Reply {
                code: StatusCode::OK,
                content_type: weaver_proto::metrics::PROMETHEUS_CONTENT_TYPE,
                body: text,
            },
            Err(e) => self.unavailable(&live.status, &e),
        }
    }

    async fn logs(&self, id: Option<&str>, q: &str) -> Reply {
        let (app, live) = match self.find(id).await {
            Ok(Found::Live(l)) => (l.status.app, true),
            Ok(Found::Ended { app, .. }) => (app, false),
            Err(reply) => return reply,
        };
        let id = id.unwrap_or("").trim();
        let title = format!("{app} - Logs");
        let (entries, matched, code) = match self.read_logs(id, q).await {
            Ok((entries, matched)) => (Ok(entries), matched, StatusCode::OK),
            Err(e) => (Err(e), 0, StatusCode::BAD_REQUEST),
        };
        let view = pages::Logs {
            id,
            app: &app,
            query: q,
            entries,
            matched,
            live,
        };
        let refresh = if live && code == StatusCode::OK { 2 } else { 0 };
        self.page(code, &title, Some(id), refresh, pages::logs(&view))
    }

    /// The last [`MAX_LOG_ENTRIES`] entries of deployment `id` that match
    /// `q`, and how many matched; an error if `q` is not a valid query.
    async fn read_logs(&self, id: &str, q: &str) -> Result<(Vec<LogEntry>, u64), String> {
        // Check the user's query on its own, so errors point into what they
        // typed.
        weaver_logs::Query::parse(q, false).map_err(|e| format!("bad query: {e}"))?;
        let full = if q.trim().is_empty() {
            format!("full_version == {id:?}")
        } else {
            format!("full_version == {id:?} && ({q})")
        };
        let query =
            weaver_logs::Query::parse(&full, false).map_err(|e| format!("bad query: {e}"))?;
        let dir = self.logs_dir.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut last = VecDeque::with_capacity(MAX_LOG_ENTRIES);
            let matched = weaver_logs::for_each(&dir, &query, |e| {
                if last.len() == MAX_LOG_ENTRIES {
                    last.pop_front();
                }
                last.push_back(e);
                Ok(())
            });
            matched.map(|n| (Vec::from(last), n))
        });
        match read.await {
            Ok(Ok(read)) => Ok(read),
            Ok(Err(e)) => Err(format!(
                "cannot read the logs: {}",
                weaver_babysitter::error_chain(&e)
            )),
            Err(e) => Err(format!("cannot read the logs: {e}")),
        }
    }

    /// The live run the `id` parameter names.
    ///
    /// # Errors
    ///
    /// The reply to send instead: see [`Dashboard::find`], and 410 for a run
    /// that ended.
    async fn live(&self, id: Option<&str>) -> Result<Live, Reply> {
        match self.find(id).await? {
            Found::Live(live) => Ok(*live),
            Found::Ended { why, .. } => Err(self.ended(id.unwrap_or("").trim(), &why)),
        }
    }

    /// Resolves the `id` parameter.
    ///
    /// # Errors
    ///
    /// The reply to send instead: 400 for a missing, malformed or unknown
    /// id, 503 for a deployment whose babysitter does not answer in time.
    async fn find(&self, id: Option<&str>) -> Result<Found, Reply> {
        let id = match id.map(str::trim) {
            None | Some("") => return Err(self.bad_request("no deployment id provided".into())),
            Some(id) => id,
        };
        if id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(self.bad_request(format!("invalid deployment id {id:?}")));
        }
        let found = match &self.source {
            Source::Multi(registry) => self.find_multi(registry, id).await?,
            Source::Single(dir) => find_single(dir, id),
        };
        match found {
            Some(found) => Ok(found),
            None => match self.app_in_logs(id) {
                Some(app) => Ok(Found::Ended {
                    app,
                    why: "it is no longer registered".into(),
                }),
                None => Err(self.bad_request(format!("unknown deployment id {id:?}"))),
            },
        }
    }

    /// Deployment `id` in `registry`, if registered.
    async fn find_multi(&self, registry: &Registry, id: &str) -> Result<Option<Found>, Reply> {
        let registered = match registry.list() {
            Ok(list) => list.into_iter().find(|r| r.deployment_id == id),
            Err(e) => {
                let body = pages::problem(
                    "Cannot read the registry",
                    &weaver_babysitter::error_chain(&e),
                );
                return Err(self.page(StatusCode::INTERNAL_SERVER_ERROR, "Error", None, 0, body));
            }
        };
        match registered {
            Some(r) => self.check(r).await.map(Some),
            None => Ok(None),
        }
    }

    /// Whether the registered deployment `r` still answers.
    async fn check(&self, r: Registration) -> Result<Found, Reply> {
        let ended = |why: &str| Found::Ended {
            app: r.app.clone(),
            why: why.to_owned(),
        };
        if status::process_exists(r.pid) == Some(false) {
            return Ok(ended("its babysitter process is gone"));
        }
        match status::fetch_status(r.status_addr, FETCH_TIMEOUT).await {
            Ok(s) if s.deployment_id == r.deployment_id => Ok(Found::Live(Box::new(Live {
                metrics_addr: Some(s.status_addr),
                status: s,
            }))),
            Ok(_) => Ok(ended("its status address now serves another deployment")),
            Err(e) if e.is_refused() => Ok(ended("its babysitter no longer answers")),
            Err(e) => {
                let body = pages::problem(
                    "Deployment not answering",
                    &weaver_babysitter::error_chain(&e),
                );
                Err(self.page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Not answering",
                    None,
                    5,
                    body,
                ))
            }
        }
    }

    /// The app of deployment `id` if the log store has its logs: then it
    /// ran here.
    fn app_in_logs(&self, id: &str) -> Option<String> {
        let needle = format!("#{id}#");
        std::fs::read_dir(&self.logs_dir)
            .ok()?
            .flatten()
            .find_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let (app, _) = name.split_once(&needle)?;
                Some(app.to_owned())
            })
    }

    fn bad_request(&self, msg: String) -> Reply {
        let body = pages::problem("Bad request", &msg);
        self.page(StatusCode::BAD_REQUEST, "Bad request", None, 0, body)
    }

    fn ended(&self, id: &str, why: &str) -> Reply {
        let body = pages::ended(id, why, self.tool);
        self.page(StatusCode::GONE, "Deployment ended", None, 0, body)
    }

    fn no_metrics(&self, s: &Status) -> Reply {
        let body = pages::problem("No metrics", "the run serves no metrics");
        self.page(
            StatusCode::OK,
            "No metrics",
            Some(&s.deployment_id),
            0,
            body,
        )
    }

    /// A live deployment stopped answering between two requests.
    fn unavailable(&self, s: &Status, e: &status::FetchError) -> Reply {
        if e.is_refused() {
            return self.ended(&s.deployment_id, "it no longer answers");
        }
        let body = pages::problem(
            "Deployment not answering",
            &weaver_babysitter::error_chain(e),
        );
        self.page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not answering",
            Some(&s.deployment_id),
            5,
            body,
        )
    }
}

/// Single-process run `id` in registry directory `dir`, if registered.
fn find_single(dir: &std::path::Path, id: &str) -> Option<Found> {
    let path = weaver_proto::single::registration_path(dir, id);
    let bytes = std::fs::read(path).ok()?;
    let r: weaver_proto::single::Registration = serde_json::from_slice(&bytes).ok()?;
    if status::process_exists(r.pid) == Some(false) {
        return Some(Found::Ended {
            app: r.app,
            why: "its process is gone".into(),
        });
    }
    let metrics_addr = r.metrics_addr.as_deref().and_then(|a| a.parse().ok());
    Some(Found::Live(Box::new(Live {
        status: single::to_status(r),
        metrics_addr,
    })))
}

// === impl Reply ===

impl Reply {
    fn html(code: StatusCode, body: String) -> Self {
        Reply {
            code,
            content_type: "text/html; charset=utf-8",
            body,
        }
    }

    fn text(code: StatusCode, body: &str) -> Self {
        Reply {
            code,
            content_type: "text/plain; charset=utf-8",
            body: body.to_owned(),
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::from(self.body)));
        *resp.status_mut() = self.code;
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert("content-security-policy", HeaderValue::from_static(CSP));
        resp
    }
}

/// The parameters of a query string, percent-decoded (`+` is a space); the
/// first of repeated ones counts.
fn parse_query(q: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.entry(decode(k)).or_insert_with(|| decode(v));
    }
    params
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
