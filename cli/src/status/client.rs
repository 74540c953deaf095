//! Fetching a deployment's status from its babysitter's status server.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::HOST;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tracing::debug;

use serde::de::DeserializeOwned;
use weaver_babysitter::{
    METHODS_PATH, METRICS_PATH, MethodStats, Metric, PARTIAL_HEADER, PROMETHEUS_PATH, STATUS_PATH,
    Status,
};

/// The largest status reply accepted; a real one is a few KiB.
const MAX_STATUS_BYTES: usize = 16 << 20;

/// [`METRICS_PATH`] with the series summed over replicas.
const SUMMED_METRICS_PATH: &str = "/debug/weaver/metrics?replicas=sum";

/// [`PROMETHEUS_PATH`] with the series summed over replicas.
const SUMMED_PROMETHEUS_PATH: &str = "/debug/weaver/prometheus?replicas=sum";

/// How much of an error reply's body goes into the error message.
const MAX_ERROR_BODY: usize = 4096;

/// An error fetching a [`Status`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// Nothing listens at the address: the deployment is gone.
    #[error("no status server at {addr} (connection refused)")]
    Refused {
        /// The status server's address.
        addr: SocketAddr,
    },
    /// Connecting failed for another reason than a refusal.
    #[error("cannot connect to the status server at {addr}")]
    Connect {
        /// The status server's address.
        addr: SocketAddr,
        /// Why connecting failed.
        #[source]
        source: std::io::Error,
    },
    /// The server did not answer in time.
    #[error("the status server at {addr} did not answer within {timeout:?}")]
    Timeout {
        /// The status server's address.
        addr: SocketAddr,
        /// How long the client waited.
        timeout: Duration,
    },
    /// The HTTP exchange failed.
    #[error("status request to {addr} failed")]
    Http {
        /// The status server's address.
        addr: SocketAddr,
        /// The HTTP error.
        #[source]
        source: hyper::Error,
    },
    /// The server answered with an error status.
    #[error("the status server at {addr} answered HTTP {code}: {body}")]
    HttpStatus {
        /// The status server's address.
        addr: SocketAddr,
        /// The HTTP status code.
        code: u16,
        /// The start of the response body.
        body: String,
    },
    /// The reply was larger than a status (or metrics) reply can be.
    #[error("the reply from the status server at {addr} is larger than {limit} bytes")]
    TooLarge {
        /// The status server's address.
        addr: SocketAddr,
        /// The largest reply accepted.
        limit: usize,
    },
    /// The reply was not valid JSON of the expected shape.
    #[error("the status server at {addr} sent an invalid reply")]
    Decode {
        /// The status server's address.
        addr: SocketAddr,
        /// Why decoding failed.
        #[source]
        source: serde_json::Error,
    },
}

/// Aborts the connection task when the request is done or dropped (e.g. by
/// the timeout), so no task outlives the call.
struct AbortOnDrop(JoinHandle<()>);

// === impl FetchError ===

impl FetchError {
    /// Whether the server refused the connection, meaning nothing listens at
    /// the address any more.
    pub(crate) fn is_refused(&self) -> bool {
        matches!(self, FetchError::Refused { .. })
    }
}

// === impl AbortOnDrop ===

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Fetches the status of the deployment whose status server listens at
/// `addr`, giving up after `timeout`.
///
/// # Errors
///
/// [`FetchError::Refused`] if nothing listens at `addr` (see
/// [`FetchError::is_refused`]); otherwise connect, timeout, HTTP and decode
/// errors.
///
/// # Cancel safety
///
/// Dropping the future closes the connection.
pub(crate) async fn fetch_status(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Status, FetchError> {
    tokio::time::timeout(timeout, fetch(addr, STATUS_PATH))
        .await
        .unwrap_or(Err(FetchError::Timeout { addr, timeout }))
}

/// Fetches every replica's metrics from the deployment whose status server
/// listens at `addr`, giving up after `timeout`.
///
/// # Errors
///
/// As [`fetch_status`].
///
/// # Cancel safety
///
/// Dropping the future closes the connection.
pub(crate) async fn fetch_metrics(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Vec<Metric>, FetchError> {
    tokio::time::timeout(timeout, fetch(addr, METRICS_PATH))
        .await
        .unwrap_or(Err(FetchError::Timeout { addr, timeout }))
}

/// The largest profile accepted.
const MAX_PROFILE_BYTES: usize = 256 << 20;

/// A profile fetched from a status server (or a single process's
/// endpoint).
#[derive(Debug)]
pub(crate) struct FetchedProfile {
    /// The gzipped pprof protobuf.
    pub(crate) data: Vec<u8>,
    /// The groups left out and why, if the profile is partial.
    pub(crate) partial: Option<String>,
}

/// Fetches `target` (the profile path with its query) from `addr`,
/// giving up after `timeout`.
///
/// # Errors
///
/// As [`fetch_status`]; an error answer (e.g. no group could be profiled)
/// is [`FetchError::HttpStatus`] with the reasons.
///
/// # Cancel safety
///
/// Dropping the future closes the connection, which stops the profile.
pub(crate) async fn fetch_profile(
    addr: SocketAddr,
    target: &str,
    timeout: Duration,
) -> Result<FetchedProfile, FetchError> {
    let get = async {
        let (headers, data) = get(addr, target, MAX_PROFILE_BYTES).await?;
        let partial = headers
            .get(PARTIAL_HEADER)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        Ok(FetchedProfile { data, partial })
    };
    tokio::time::timeout(timeout, get)
        .await
        .unwrap_or(Err(FetchError::Timeout { addr, timeout }))
}

/// Fetches the per-method statistics (summed over replicas and callers)
/// from the deployment whose status server listens at `addr`, giving up
/// after `timeout`.
///
/// # Errors
///
/// As [`fetch_status`].
pub(crate) async fn fetch_methods(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Vec<MethodStats>, FetchError> {
    tokio::time::timeout(timeout, fetch(addr, METHODS_PATH))
        .await
        .unwrap_or(Err(FetchError::Timeout { addr, timeout }))
}

async fn fetch<T: DeserializeOwned>(addr: SocketAddr, path: &'static str) -> Result<T, FetchError> {
    let (_, body) = get(addr, path, MAX_STATUS_BYTES).await?;
    serde_json::from_slice(&body).map_err(|source| FetchError::Decode { addr, source })
}

/// Fetches the metrics summed over replicas (`?replicas=sum`) from the
/// deployment whose status server listens at `addr`, giving up after
/// `timeout`.
///
/// # Errors
///
/// As [`fetch_status`].
pub(crate) async fn fetch_summed_metrics(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Vec<Metric>, FetchError> {
    tokio::time::timeout(timeout, fetch(addr, SUMMED_METRICS_PATH))
        .await
        .unwrap_or(Err(FetchError::Timeout { addr, timeout }))
}

/// Fetches the Prometheus text from the deployment whose status server
/// listens at `addr`, summed over replicas if `summed`, giving up after
/// `timeout`.
///
/// # Errors
///
/// As [`fetch_status`], but for decoding: the text is passed on as it is
/// (invalid UTF-8 replaced).
pub(crate) async fn fetch_prometheus(
    addr: SocketAddr,
    summed: bool,
    timeout: Duration,
) -> Result<String, FetchError> {
    let path = if summed {
        SUMMED_PROMETHEUS_PATH
    } else {
        PROMETHEUS_PATH
    };
    let fetched = tokio::time::timeout(timeout, fetch_bytes(addr, path)).await;
    let bytes = fetched.unwrap_or(Err(FetchError::Timeout { addr, timeout }))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// GETs `path` from `addr`: the body of a 200 answer.
async fn fetch_bytes(addr: SocketAddr, path: &'static str) -> Result<Vec<u8>, FetchError> {
    get(addr, path, MAX_STATUS_BYTES)
        .await
        .map(|(_, body)| body)
}

/// GETs `target` from `addr`: the headers and body of a 200 answer.
async fn get(
    addr: SocketAddr,
    target: &str,
    limit: usize,
) -> Result<(hyper::HeaderMap, Vec<u8>), FetchError> {
    let stream = TcpStream::connect(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::ConnectionRefused {
            FetchError::Refused { addr }
        } else {
            FetchError::Connect { addr, source }
        }
    })?;
    let http = |source| FetchError::Http { addr, source };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        if let Err(err) = conn.await {
            debug!(%addr, error = %err, "status client connection failed");
        }
    }));
    let req = Request::get(target)
        .header(HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .expect("our paths and a socket address make a valid request");
    let resp = sender.send_request(req).await.map_err(http)?;
    let code = resp.status();
    let (parts, body) = resp.into_parts();
    let body = read_body(addr, body, limit).await?;
    if code != StatusCode::OK {
        let end = body.len().min(MAX_ERROR_BODY);
        return Err(FetchError::HttpStatus {
            addr,
            code: code.as_u16(),
            body: String::from_utf8_lossy(&body[..end]).trim().to_owned(),
        });
    }
    Ok((parts.headers, body))
}

/// Reads a whole body, failing once it grows past `limit`.
async fn read_body(
    addr: SocketAddr,
    mut body: Incoming,
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|source| FetchError::Http { addr, source })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(FetchError::TooLarge { addr, limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}
