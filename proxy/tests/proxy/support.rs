//! Fixtures: in-process backends on 127.0.0.1:0, HTTP/1.1 and h2c clients,
//! and a deadline for every wait.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use weaver_proxy::Proxy;

/// Every wait in these tests ends by this deadline.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// What test clients send.
pub(crate) type ClientBody = BoxBody<Bytes, Infallible>;
/// What test backends answer.
type ServerBody = BoxBody<Bytes, hyper::Error>;

/// Installs a test subscriber once (`RUST_LOG` to see the proxy's logs).
pub(crate) fn trace_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
}

/// Awaits `fut`, failing the test if it takes longer than [`DEADLINE`].
pub(crate) async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// What a test backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Speaks {
    /// HTTP/1.1 only (hyper's http1 server).
    Http1,
    /// HTTP/1.1 and h2c with prior knowledge (hyper-util's auto server).
    Auto,
}

/// An in-process backend. Routes:
/// - `/hold`: reports arrival, then answers its name once released;
/// - `/echo`: streams the request body back as the response body;
/// - `/echo-headers`: answers with one `name: value` line per header;
/// - `/hop-response`: answers with hop-by-hop headers of its own;
/// - `/version`: answers the HTTP version the request came in;
/// - `/big`: answers 24 MiB;
/// - anything else: answers its name.
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    state: Arc<State>,
    held: Mutex<mpsc::UnboundedReceiver<()>>,
    release: watch::Sender<bool>,
    open: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

struct State {
    name: &'static str,
    hits: AtomicUsize,
    connections: AtomicUsize,
    /// Connections accepted and not yet closed.
    open: watch::Sender<usize>,
    held: mpsc::UnboundedSender<()>,
    release: watch::Receiver<bool>,
    /// The tasks serving accepted connections, aborted when the backend is
    /// dropped (as if its process died).
    conns: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Backend {
    /// Starts an HTTP/1.1 backend that answers `name`.
    pub(crate) async fn start(name: &'static str) -> Backend {
        Backend::start_speaking(name, Speaks::Http1).await
    }

    /// Starts a backend that answers `name` and speaks `speaks`.
    pub(crate) async fn start_speaking(name: &'static str, speaks: Speaks) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend address");
        let (held_tx, held) = mpsc::unbounded_channel();
        let (release, release_rx) = watch::channel(false);
        let (open_tx, open) = watch::channel(0);
        let state = Arc::new(State {
            name,
            hits: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            open: open_tx,
            held: held_tx,
            release: release_rx,
            conns: std::sync::Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(serve(listener, Arc::clone(&state), speaks));
        Backend {
            addr,
            state,
            held: Mutex::new(held),
            release,
            open,
            task,
        }
    }

    /// The name this backend answers.
    pub(crate) fn name(&self) -> &'static str {
        self.state.name
    }

    /// How many requests reached this backend.
    pub(crate) fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// How many connections this backend accepted.
    pub(crate) fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Waits until every connection to this backend is closed.
    pub(crate) async fn wait_all_closed(&self) {
        let mut open = self.open.clone();
        within("backend connections to close", open.wait_for(|n| *n == 0))
            .await
            .expect("backend alive");
    }

    /// Waits until a `/hold` request has arrived here.
    pub(crate) async fn wait_held(&self) {
        let mut held = self.held.lock().await;
        within("a held request", held.recv())
            .await
            .expect("backend alive");
    }

    /// Lets every held request, now and later, answer.
    pub(crate) fn release(&self) {
        self.release.send_replace(true);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
        let conns = std::mem::take(&mut *self.state.conns.lock().expect("not poisoned"));
        for conn in conns {
            conn.abort();
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<State>, speaks: Speaks) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        state.connections.fetch_add(1, Ordering::SeqCst);
        state.open.send_modify(|n| *n += 1);
        let conn = tokio::spawn({
            let state = Arc::clone(&state);
            async move {
                let service = service_fn({
                    let state = Arc::clone(&state);
                    move |req| answer(Arc::clone(&state), req)
                });
                let io = TokioIo::new(stream);
                let _ = match speaks {
                    Speaks::Http1 => hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await
                        .map_err(|e| e.to_string()),
                    Speaks::Auto => auto::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await
                        .map_err(|e| e.to_string()),
                };
                state.open.send_modify(|n| *n -= 1);
            }
        });
        state
            .conns
            .lock()
            .expect("not poisoned")
            .push(conn.abort_handle());
    }
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<ServerBody>, Infallible> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let text = |s: String| Full::new(Bytes::from(s)).map_err(|n| match n {}).boxed();
    let response = match req.uri().path() {
        "/hold" => {
            let _ = state.held.send(());
            let mut release = state.release.clone();
            let _ = release.wait_for(|released| *released).await;
            Response::new(text(state.name.to_owned()))
        }
        "/echo" => Response::new(req.into_body().boxed()),
        "/version" => Response::new(text(format!("{:?}", req.version()))),
        "/big" => Response::new(
            Full::new(Bytes::from(vec![b'x'; 24 << 20]))
                .map_err(|n| match n {})
                .boxed(),
        ),
        "/echo-headers" => {
            let lines: String = req
                .headers()
                .iter()
                .map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap_or("<binary>")))
                .collect();
            Response::new(text(lines))
        }
        "/hop-response" => Response::builder()
            .header("connection", "x-resp-hop")
            .header("x-resp-hop", "1")
            .header("keep-alive", "timeout=9")
            .header("x-kept", "yes")
            .body(text(state.name.to_owned()))
            .expect("valid response"),
        _ => Response::new(text(state.name.to_owned())),
    };
    Ok(response)
}

/// A proxy on 127.0.0.1:0 in front of `backends`.
pub(crate) async fn proxy_for(backends: &[&Backend]) -> Proxy {
    let proxy = Proxy::bind("127.0.0.1:0").await.expect("bind proxy");
    for backend in backends {
        proxy.add_backend(backend.addr);
    }
    proxy
}

/// An address nothing listens on (a listener bound and dropped).
pub(crate) async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address")
}

/// A pooled HTTP/1.1 client.
pub(crate) fn http1_client() -> Client<HttpConnector, ClientBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 client with prior knowledge (h2c).
pub(crate) fn h2c_client() -> Client<HttpConnector, ClientBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// An empty request body.
pub(crate) fn empty() -> ClientBody {
    Empty::new().boxed()
}

/// A request body holding `bytes`.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ClientBody {
    Full::new(bytes.into()).boxed()
}

/// Sends `req` and reads the whole answer, by the deadline.
pub(crate) async fn send(
    client: &Client<HttpConnector, ClientBody>,
    req: Request<ClientBody>,
) -> (StatusCode, String) {
    within("a response", async {
        let response = client.request(req).await.expect("response");
        let status = response.status();
        let body = response.into_body().collect().await.expect("body");
        (
            status,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        )
    })
    .await
}

/// `GET http://{proxy}{path}` over `client`.
pub(crate) async fn get(
    client: &Client<HttpConnector, ClientBody>,
    proxy: &Proxy,
    path: &str,
) -> (StatusCode, String) {
    let req = Request::get(format!("http://{}{path}", proxy.local_addr()))
        .body(empty())
        .expect("valid request");
    send(client, req).await
}

/// Parses `/echo-headers` output into name -> values.
pub(crate) fn parse_headers(echo: &str) -> HashMap<String, Vec<String>> {
    let mut headers: HashMap<String, Vec<String>> = HashMap::new();
    for line in echo.lines() {
        if let Some((name, value)) = line.split_once(": ") {
            headers
                .entry(name.to_owned())
                .or_default()
                .push(value.to_owned());
        }
    }
    headers
}
