//! A single-process run's metrics endpoint: the process's own metrics at
//! the paths a babysitter's status server uses ([`METRICS_PATH`] as JSON,
//! [`PROMETHEUS_PATH`] as Prometheus text), on an ephemeral loopback port
//! announced in the run's registration, so `weaver single metrics` and a
//! Prometheus scraper read it as they read a deployment's; and a CPU
//! profile of the process at [`PROFILE_PATH`] (`?seconds=N&type=cpu`), for
//! `weaver single profile`.
//!
//! It is a deliberately small HTTP/1.1 server (one `GET` per connection,
//! then close), so the `weaver` crate needs no HTTP stack by default. It
//! serves only read-only pages, as a loopback port must; the one costly
//! one, the profile, runs once at a time (a second request is refused).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weaver_proto::metrics::{METRICS_PATH, Metric, PROMETHEUS_CONTENT_TYPE, PROMETHEUS_PATH};
use weaver_proto::profile::PROFILE_PATH;

use super::profile;
use crate::metrics::{self, Origin};

/// The longest request head read; longer ones get 431.
const MAX_HEAD: usize = 8 * 1024;

/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to back off after a failed `accept`, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Binds an ephemeral loopback port and serves `origin`'s metrics on it
/// for as long as the runtime runs. Returns the address.
pub(crate) async fn start(origin: Origin) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let origin = Arc::new(origin);
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream, addr, origin.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "the metrics endpoint cannot accept");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    });
    Ok(addr)
}

async fn serve(mut stream: TcpStream, addr: SocketAddr, origin: Arc<Origin>) {
    let response = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => match profile_query(&head) {
            Some(query) => respond_profile(query).await,
            None => respond(&head, addr, &origin),
        },
        Ok(Err(Refused::TooLong)) => Response::text(431, "Request Header Fields Too Large"),
        Ok(Err(Refused::Closed)) | Err(_) => return,
    };
    if let Err(error) = stream.write_all(&response.encode()).await {
        tracing::debug!(%error, "cannot answer on the metrics endpoint");
        return;
    }
    let _ = stream.shutdown().await;
}

/// Why no request head was read.
#[derive(Debug)]
enum Refused {
    /// The client closed (or failed) before the head ended.
    Closed,
    /// The head is longer than [`MAX_HEAD`].
    TooLong,
}

/// Reads up to the blank line that ends a request head.
async fn read_head(stream: &mut TcpStream) -> Result<String, Refused> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await.map_err(|_| Refused::Closed)?;
        if n == 0 {
            return Err(Refused::Closed);
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find_end(&head) {
            head.truncate(end);
            return Ok(String::from_utf8_lossy(&head).into_owned());
        }
        if head.len() > MAX_HEAD {
            return Err(Refused::TooLong);
        }
    }
}

fn find_end(head: &[u8]) -> Option<usize> {
    head.windows(4).position(|w| w == b"\r\n\r\n")
}

/// An HTTP response, closed after it is sent.
#[derive(Debug, PartialEq)]
struct Response {
    code: u16,
    reason: &'static str,
    content_type: &'static str,
    extra: Option<&'static str>,
    body: Vec<u8>,
}

impl Response {
    fn text(code: u16, reason: &'static str) -> Self {
        Response {
            code,
            reason,
            content_type: "text/plain; charset=utf-8",
            extra: None,
            body: format!("{}\n", reason.to_lowercase()).into_bytes(),
        }
    }

    fn ok(content_type: &'static str, body: Vec<u8>) -> Self {
        Response {
            code: 200,
            reason: "OK",
            content_type,
            extra: None,
            body,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.code,
            self.reason,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if let Some(extra) = self.extra {
            out.extend_from_slice(extra.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// The answer to request head `head`.
fn respond(head: &str, addr: SocketAddr, origin: &Origin) -> Response {
    let mut parts = head.lines().next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Response::text(400, "Bad Request");
    };
    if !version.starts_with("HTTP/1.") {
        return Response::text(400, "Bad Request");
    }
    let path = target.split('?').next().unwrap_or_default();
    if ![METRICS_PATH, PROMETHEUS_PATH, PROFILE_PATH].contains(&path) {
        return Response::text(404, "Not Found");
    }
    if method != "GET" {
        let mut r = Response::text(405, "Method Not Allowed");
        r.extra = Some("Allow: GET");
        return r;
    }
    let snapshots = metrics::snapshot(metrics::global(), origin);
    if path == PROMETHEUS_PATH {
        let mut page = String::new();
        weaver_proto::prometheus::header(&mut page, &addr.to_string(), PROMETHEUS_PATH);
        weaver_proto::prometheus::encode(&mut page, &snapshots);
        return Response::ok(PROMETHEUS_CONTENT_TYPE, page.into_bytes());
    }
    let list: Vec<Metric> = snapshots.iter().map(Metric::from_snapshot).collect();
    match serde_json::to_vec(&list) {
        Ok(body) => Response::ok("application/json", body),
        Err(error) => {
            tracing::warn!(%error, "cannot encode the metrics");
            Response::text(500, "Internal Server Error")
        }
    }
}

/// The query of a `GET` of [`PROFILE_PATH`]; `None` for any other
/// request.
fn profile_query(head: &str) -> Option<Option<&str>> {
    let mut parts = head.lines().next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if method != "GET" || !version.starts_with("HTTP/1.") {
        return None;
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    (path == PROFILE_PATH).then_some(query)
}

/// Collects the profile `query` asks for: 200 with the gzipped pprof
/// protobuf, 400 for a bad request, 409 while another profile runs.
async fn respond_profile(query: Option<&str>) -> Response {
    let collected = match weaver_proto::profile::from_query(query) {
        Ok(req) => profile::collect(&req).await,
        Err(e) => Err(e.into()),
    };
    match collected {
        Ok(data) => Response::ok("application/octet-stream", data),
        Err(e) => {
            let (code, reason) = if e.is_bad_request() {
                (400, "Bad Request")
            } else if matches!(e, profile::ProfileError::Busy) {
                (409, "Conflict")
            } else {
                (500, "Internal Server Error")
            };
            let mut r = Response::text(code, reason);
            r.body = format!("{}\n", e.chain()).into_bytes();
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            app: "app".to_owned(),
            version: "v".to_owned(),
            node: "n".to_owned(),
        }
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[test]
    fn only_get_of_the_two_paths_is_served() {
        let get = |line: &str| respond(line, addr(), &origin()).code;
        assert_eq!(get("GET /debug/weaver/metrics HTTP/1.1\r\nHost: x"), 200);
        assert_eq!(get("GET /debug/weaver/prometheus?x=1 HTTP/1.0"), 200);
        assert_eq!(get("GET /nope HTTP/1.1"), 404);
        assert_eq!(get("POST /debug/weaver/metrics HTTP/1.1"), 405);
        assert_eq!(get("POST /debug/weaver/profile HTTP/1.1"), 405);
        assert_eq!(get("GET /debug/weaver/metrics"), 400);
        assert_eq!(get("GET /debug/weaver/metrics SPDY/3"), 400);
        assert_eq!(get(""), 400);
    }

    #[test]
    fn json_lists_metrics_with_the_origin_labels() {
        let r = respond("GET /debug/weaver/metrics HTTP/1.1", addr(), &origin());
        let list: Vec<Metric> = serde_json::from_slice(&r.body).expect("a JSON list");
        assert!(!list.is_empty(), "the method metrics are declared");
        for m in &list {
            assert_eq!(
                m.labels.get("serviceweaver_app").map(String::as_str),
                Some("app")
            );
            assert_eq!(
                m.labels.get("serviceweaver_node").map(String::as_str),
                Some("n")
            );
        }
    }

    #[test]
    fn only_a_get_of_the_profile_path_is_a_profile_request() {
        let q = profile_query;
        assert_eq!(q("GET /debug/weaver/profile HTTP/1.1"), Some(None));
        assert_eq!(
            q("GET /debug/weaver/profile?seconds=1 HTTP/1.1\r\nHost: x"),
            Some(Some("seconds=1"))
        );
        assert_eq!(q("POST /debug/weaver/profile HTTP/1.1"), None);
        assert_eq!(q("GET /debug/weaver/profiles HTTP/1.1"), None);
        assert_eq!(q("GET /debug/weaver/profile"), None);
    }

    #[tokio::test]
    async fn a_bad_profile_request_is_answered_400_with_the_reason() {
        let r = respond_profile(Some("seconds=0&type=cpu")).await;
        assert_eq!(r.code, 400);
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            "invalid zero duration for the CPU profile collection\n"
        );
        assert_eq!(respond_profile(Some("type=heap")).await.code, 400);
    }

    #[test]
    fn responses_carry_their_length_and_close() {
        let text = String::from_utf8(Response::text(404, "Not Found").encode()).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n"
        );
    }

    #[tokio::test]
    async fn serves_over_tcp_and_refuses_an_endless_head() {
        let addr = start(origin()).await.expect("bind loopback");
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /debug/weaver/prometheus HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(
            reply.contains("# Metrics in Prometheus text format"),
            "{reply}"
        );
        assert!(reply.contains(&format!("targets: ['{addr}']")), "{reply}");

        let mut s = TcpStream::connect(addr).await.unwrap();
        // Exactly what the server reads before it refuses, so it closes with
        // nothing unread (which would reset the connection).
        s.write_all(&vec![b'a'; MAX_HEAD + 1]).await.unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
    }
}
