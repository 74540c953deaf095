//! Fetching a deployment's status from its status server.

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

use super::{STATUS_PATH, Status, StatusError};

/// The largest status reply accepted; a real one is a few KiB.
const MAX_STATUS_BYTES: usize = 16 << 20;

/// How much of an error reply's body goes into the error message.
const MAX_ERROR_BODY: usize = 512;

/// Aborts the connection task when the request is done or dropped (e.g. by
/// the timeout), so no task outlives the call.
struct AbortOnDrop(JoinHandle<()>);

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
/// [`StatusError::Refused`] if nothing listens at `addr` (see
/// [`StatusError::is_refused`]); otherwise connect, timeout, HTTP and decode
/// errors.
///
/// # Cancel safety
///
/// Dropping the future closes the connection.
pub async fn fetch_status(addr: SocketAddr, timeout: Duration) -> Result<Status, StatusError> {
    tokio::time::timeout(timeout, fetch(addr))
        .await
        .unwrap_or(Err(StatusError::Timeout { addr, timeout }))
}

async fn fetch(addr: SocketAddr) -> Result<Status, StatusError> {
    let stream = TcpStream::connect(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::ConnectionRefused {
            StatusError::Refused { addr }
        } else {
            StatusError::Connect { addr, source }
        }
    })?;
    let http = |source| StatusError::Http { addr, source };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        if let Err(err) = conn.await {
            debug!(%addr, error = %err, "status client connection failed");
        }
    }));
    let req = Request::get(STATUS_PATH)
        .header(HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .expect("a static path and a socket address make a valid request");
    let resp = sender.send_request(req).await.map_err(http)?;
    let code = resp.status();
    let body = read_body(addr, resp.into_body(), MAX_STATUS_BYTES).await?;
    if code != StatusCode::OK {
        let end = body.len().min(MAX_ERROR_BODY);
        return Err(StatusError::HttpStatus {
            addr,
            code: code.as_u16(),
            body: String::from_utf8_lossy(&body[..end]).trim().to_owned(),
        });
    }
    serde_json::from_slice(&body).map_err(|source| StatusError::Decode { addr, source })
}

/// Reads a whole body, failing once it grows past `limit`.
async fn read_body(
    addr: SocketAddr,
    mut body: Incoming,
    limit: usize,
) -> Result<Vec<u8>, StatusError> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|source| StatusError::Http { addr, source })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(StatusError::TooLarge { addr, limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}
