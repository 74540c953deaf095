//! The babysitter's status server: `GET /debug/weaver/status` as JSON,
//! `GET /debug/weaver/prometheus` as Prometheus text, and the metrics and
//! per-method statistics as JSON (`/debug/weaver/metrics`,
//! `/debug/weaver/methods`), and a CPU profile of every group
//! (`/debug/weaver/profile`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use super::metrics::{
    self, METHODS_PATH, METRICS_PATH, MethodsProvider, MetricsProvider, PROMETHEUS_PATH,
};
use super::profile::{self, PARTIAL_HEADER, PROFILE_PATH, ProfileProvider, Profiled};
use super::{STATUS_PATH, Status, StatusError};

/// Produces the current status on every request. It runs on the server's
/// task, so it should only take a snapshot (lock, clone, unlock).
pub type StatusProvider = Arc<dyn Fn() -> Status + Send + Sync>;

/// How long to back off after a failed `accept` (e.g. out of file
/// descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What the server answers with.
struct Providers {
    /// Where the server listens, for the Prometheus page's header.
    addr: SocketAddr,
    status: StatusProvider,
    metrics: MetricsProvider,
    methods: MethodsProvider,
    profiles: ProfileProvider,
}

/// A running status server. Dropping it stops it too, without waiting.
#[derive(Debug)]
pub struct StatusServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

// === impl StatusServer ===

impl StatusServer {
    /// Binds `bind` (use port 0 for an ephemeral port) and serves the status
    /// that `provider` returns. Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`StatusError::Bind`] if the address cannot be bound.
    pub async fn start(bind: SocketAddr, provider: StatusProvider) -> Result<Self, StatusError> {
        let none: MetricsProvider = Arc::new(|| Box::pin(async { Vec::new() }));
        Self::start_with_metrics(bind, provider, none).await
    }

    /// Like [`StatusServer::start`], and serves the metrics that `metrics`
    /// returns at [`PROMETHEUS_PATH`].
    ///
    /// # Errors
    ///
    /// [`StatusError::Bind`] if the address cannot be bound.
    pub async fn start_with_metrics(
        bind: SocketAddr,
        provider: StatusProvider,
        metrics: MetricsProvider,
    ) -> Result<Self, StatusError> {
        let none: MethodsProvider = Arc::new(|_| Box::pin(async { Vec::new() }));
        Self::start_with_methods(bind, provider, metrics, none).await
    }

    /// Like [`StatusServer::start_with_metrics`], and serves the per-method
    /// statistics that `methods` returns at [`METHODS_PATH`].
    ///
    /// # Errors
    ///
    /// [`StatusError::Bind`] if the address cannot be bound.
    pub async fn start_with_methods(
        bind: SocketAddr,
        provider: StatusProvider,
        metrics: MetricsProvider,
        methods: MethodsProvider,
    ) -> Result<Self, StatusError> {
        let none: ProfileProvider = Arc::new(|_| {
            Box::pin(async {
                Profiled {
                    data: Vec::new(),
                    errors: vec!["this deployment serves no profiles".to_owned()],
                }
            })
        });
        Self::start_with_profiles(bind, provider, metrics, methods, none).await
    }

    /// Like [`StatusServer::start_with_methods`], and serves the profiles
    /// that `profiles` collects at [`PROFILE_PATH`].
    ///
    /// # Errors
    ///
    /// [`StatusError::Bind`] if the address cannot be bound.
    pub async fn start_with_profiles(
        bind: SocketAddr,
        provider: StatusProvider,
        metrics: MetricsProvider,
        methods: MethodsProvider,
        profiles: ProfileProvider,
    ) -> Result<Self, StatusError> {
        let bind_err = |source| StatusError::Bind { addr: bind, source };
        let listener = TcpListener::bind(bind).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let (stop, stopped) = oneshot::channel();
        let providers = Providers {
            addr,
            status: provider,
            metrics,
            methods,
            profiles,
        };
        let task = tokio::spawn(serve(listener, Arc::new(providers), stopped));
        debug!(%addr, "status server listening");
        Ok(StatusServer {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server. When this returns the port is closed, so clients
    /// get "connection refused", and open connections are dropped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            // The task may have ended already; then there is nothing to stop.
            let _ = stop.send(());
        }
        if let Err(err) = (&mut self.task).await
            && err.is_panic()
        {
            warn!(error = %err, "status server task panicked");
        }
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections until told to stop. Dropping the listener and the
/// connection set on return closes the port and every connection.
async fn serve(
    listener: TcpListener,
    provider: Arc<Providers>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    conns.spawn(serve_conn(stream, peer, provider.clone()));
                }
                Err(err) => {
                    warn!(error = %err, "status server cannot accept");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
    }
    debug!("status server stopped");
}

async fn serve_conn(stream: TcpStream, peer: SocketAddr, provider: Arc<Providers>) {
    let service = service_fn(move |req| {
        let provider = provider.clone();
        async move { Ok::<_, Infallible>(respond(&req, &provider).await) }
    });
    if let Err(err) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        debug!(%peer, error = %err, "status connection failed");
    }
}

async fn respond(req: &Request<Incoming>, provider: &Providers) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if ![
        STATUS_PATH,
        PROMETHEUS_PATH,
        METRICS_PATH,
        METHODS_PATH,
        PROFILE_PATH,
    ]
    .contains(&path)
    {
        return text(StatusCode::NOT_FOUND, "not found");
    }
    if req.method() != Method::GET {
        let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        resp.headers_mut()
            .insert(ALLOW, hyper::header::HeaderValue::from_static("GET"));
        return resp;
    }
    if path == PROFILE_PATH {
        return respond_profile(req.uri().query(), provider).await;
    }
    if path == PROMETHEUS_PATH {
        let snapshots = (provider.metrics)().await;
        let page = metrics::page(provider.addr, req.uri().query(), &snapshots);
        let mut resp = Response::new(Full::new(Bytes::from(page)));
        resp.headers_mut().insert(
            CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(weaver_proto::metrics::PROMETHEUS_CONTENT_TYPE),
        );
        return resp;
    }
    let body = if path == METRICS_PATH {
        metrics::json(req.uri().query(), &(provider.metrics)().await)
    } else if path == METHODS_PATH {
        let by_caller = metrics::by_caller(req.uri().query());
        serde_json::to_vec(&(provider.methods)(by_caller).await)
    } else {
        serde_json::to_vec(&(provider.status)())
    };
    match body {
        Ok(body) => {
            let mut resp = Response::new(Full::new(Bytes::from(body)));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(err) => {
            warn!(error = %err, path, "cannot encode a reply");
            text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the reply")
        }
    }
}

/// The profile `query` asks for: 200 with the gzipped pprof protobuf (and
/// [`PARTIAL_HEADER`] naming the groups left out), 400 for a bad request,
/// 502 if no group could be profiled.
async fn respond_profile(query: Option<&str>, provider: &Providers) -> Response<Full<Bytes>> {
    let checked = weaver_proto::profile::from_query(query)
        .and_then(|req| weaver_proto::profile::validate(&req).map(|_| req));
    let req = match checked {
        Ok(req) => req,
        Err(e) => return owned_text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let Profiled { data, errors } = (provider.profiles)(req).await;
    if data.is_empty() {
        let why = if errors.is_empty() {
            "no profile data was collected".to_owned()
        } else {
            errors.join("\n")
        };
        return owned_text(StatusCode::BAD_GATEWAY, format!("{why}\n"));
    }
    let mut resp = Response::new(Full::new(Bytes::from(data)));
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/octet-stream"),
    );
    if !errors.is_empty()
        && let Ok(v) = hyper::header::HeaderValue::from_str(&profile::header_value(&errors))
    {
        headers.insert(PARTIAL_HEADER, v);
    }
    resp
}

fn owned_text(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    resp
}

fn text(code: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = code;
    resp
}
