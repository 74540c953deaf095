//! One request's trip to a backend and back: rewrite the client's request for
//! a backend, take a connection from that backend's pool, send, and rewrite
//! the response. A failed connect is retried once on another backend when the
//! request is safe to send again. The server side (`server.rs`) calls
//! [`Router::handle`] per request.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response, Version};
use hyper::body::{Body, Incoming};
use tracing::{debug, warn};

use crate::balance::{Backends, InFlight};
use crate::body::{BackendBody, RequestBody, ResponseBody};
use crate::error::{Failure, Side};
use crate::pool::{Checkout, ConnectError, Pool, Sender};

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1,
/// plus the non-standard ones Go's reverse proxy also drops). Headers named by
/// `Connection` are dropped too.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Routes requests over the backend set.
#[derive(Debug, Default)]
pub(crate) struct Router {
    /// The backends requests are spread over; each owns its connection pool.
    pub(crate) backends: Backends,
}

// === impl Router ===

impl Router {
    /// Forwards `req` from the client at `client_ip` and returns the backend's
    /// response, or a short error response of our own.
    pub(crate) async fn handle(
        &self,
        client_ip: &HeaderValue,
        req: Request<Incoming>,
    ) -> Response<ResponseBody> {
        match self.forward(client_ip, req).await {
            Ok(response) => response,
            Err(failure) => {
                let cause = std::error::Error::source(&failure);
                match failure.side() {
                    Side::Downstream => debug!(error = %failure, ?cause, "rejected request"),
                    Side::Upstream | Side::Internal => {
                        warn!(error = %failure, ?cause, "proxying failed");
                    }
                }
                failure.into_response()
            }
        }
    }

    async fn forward(
        &self,
        client_ip: &HeaderValue,
        req: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, Failure> {
        let req = prepare(req, client_ip)?;
        let first = self.backends.pick(None).ok_or(Failure::NoBackend)?;
        let failed = first.backend().addr();
        // A bodiless idempotent request can be rebuilt and sent again if the
        // backend dies under it (say, a replica killed while a pooled
        // connection to it looked fine).
        let replay = replayable(&req);
        let result = match first.backend().pool().checkout().await {
            Ok(checkout) => exchange(first, checkout, req).await,
            // Boxed to keep the common path's future small.
            Err(error) => return Box::pin(self.retry(first, error, req)).await,
        };
        match (result, replay) {
            (Err(failure), Some(req)) if failure.side() == Side::Upstream => {
                Box::pin(self.replay(failed, failure, req)).await
            }
            (result, _) => result,
        }
    }

    /// After `failed` broke off an exchange: sends the rebuilt request once
    /// to another backend.
    async fn replay(
        &self,
        failed: std::net::SocketAddr,
        failure: Failure,
        req: Request<RequestBody>,
    ) -> Result<Response<ResponseBody>, Failure> {
        let Some(second) = self.backends.pick(Some(failed)) else {
            return Err(failure);
        };
        debug!(backend = %failed, error = %failure, "exchange failed; replaying on another backend");
        match second.backend().pool().checkout().await {
            Ok(checkout) => exchange(second, checkout, req).await,
            Err(_) => Err(failure),
        }
    }

    /// After a failed connect to `failed`: nothing was sent and the request
    /// is still whole, so safe methods and bodiless requests may go to
    /// another backend.
    async fn retry(
        &self,
        failed: InFlight,
        error: ConnectError,
        req: Request<RequestBody>,
    ) -> Result<Response<ResponseBody>, Failure> {
        let failed = failed.backend().addr();
        let second = is_retryable(&req)
            .then(|| self.backends.pick(Some(failed)))
            .flatten();
        let Some(second) = second else {
            return Err(Failure::Connect {
                addr: failed,
                source: error,
            });
        };
        debug!(backend = %failed, %error, "connect failed; retrying on another backend");
        match second.backend().pool().checkout().await {
            Ok(checkout) => exchange(second, checkout, req).await,
            Err(source) => Err(Failure::Connect {
                addr: second.backend().addr(),
                source,
            }),
        }
    }
}

/// Sends `req` on the checked-out connection and wraps the response.
async fn exchange(
    in_flight: InFlight,
    checkout: Checkout,
    mut req: Request<RequestBody>,
) -> Result<Response<ResponseBody>, Failure> {
    let backend = in_flight.backend();
    if !req.headers().contains_key(header::HOST) {
        req.headers_mut()
            .insert(header::HOST, backend.host().clone());
    }
    let Checkout { mut sender, reused } = checkout;
    let result = match sender.try_send_request(req).await {
        Ok(response) => Ok(response),
        Err(mut error) => match error.take_message() {
            // A pooled connection the backend closed meanwhile; the request
            // never left, so it may go once more on a fresh connection.
            Some(req) if reused => {
                let (fresh, result) = Box::pin(resend(backend.pool(), req)).await?;
                sender = fresh;
                result
            }
            _ => Err(error.into_error()),
        },
    };
    match result {
        Ok(response) => Ok(into_client_response(response, in_flight, sender)),
        Err(error) => Err(Failure::exchange(backend.addr(), error)),
    }
}

/// Sends `req` on a fresh connection from `pool`.
async fn resend(
    pool: &Pool,
    req: Request<RequestBody>,
) -> Result<(Sender, hyper::Result<Response<Incoming>>), Failure> {
    let mut fresh = pool.connect().await.map_err(|source| Failure::Connect {
        addr: pool.addr(),
        source,
    })?;
    let result = fresh.sender.send_request(req).await;
    Ok((fresh.sender, result))
}

/// A copy of a bodiless GET, HEAD, OPTIONS or TRACE request, which may be
/// sent again even if a backend may have seen it.
fn replayable(req: &Request<RequestBody>) -> Option<Request<RequestBody>> {
    let idempotent = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if !idempotent || !matches!(req.body(), RequestBody::Empty) {
        return None;
    }
    let mut copy = Request::new(RequestBody::Empty);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// Whether a request that reached no backend may be sent to another one.
fn is_retryable(req: &Request<RequestBody>) -> bool {
    matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) || matches!(req.body(), RequestBody::Empty)
}

/// Rewrites the client's request for a backend: origin-form target, HTTP/1.1,
/// hop-by-hop headers dropped, the client's host kept (HTTP/2 carries it in
/// the URI, so it becomes a `Host` header), and the client appended to
/// `X-Forwarded-For`.
fn prepare(
    req: Request<Incoming>,
    client_ip: &HeaderValue,
) -> Result<Request<RequestBody>, Failure> {
    if req.method() == Method::CONNECT {
        return Err(Failure::BadRequest {
            reason: "CONNECT is not supported",
        });
    }
    let (mut parts, body) = req.into_parts();
    if !is_origin_form(&parts.uri) {
        let path = outbound_path(&parts.uri)?;
        if !parts.headers.contains_key(header::HOST)
            && let Some(authority) = parts.uri.authority()
        {
            let host =
                HeaderValue::from_str(authority.as_str()).map_err(|_| Failure::BadRequest {
                    reason: "authority is not a valid host header",
                })?;
            parts.headers.insert(header::HOST, host);
        }
        parts.uri = Uri::from(path);
    }
    // Backends are spoken to in HTTP/1.1 whatever the client spoke.
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    append_forwarded_for(&mut parts.headers, client_ip)?;
    let body = if body.is_end_stream() {
        RequestBody::Empty
    } else {
        RequestBody::Stream(body)
    };
    Ok(Request::from_parts(parts, body))
}

fn is_origin_form(target: &Uri) -> bool {
    target.scheme().is_none() && target.authority().is_none() && target.path().starts_with('/')
}

/// The path and query to ask the backend for.
fn outbound_path(target: &Uri) -> Result<PathAndQuery, Failure> {
    match target.path_and_query() {
        Some(pq) if pq.as_str().starts_with('/') => Ok(pq.clone()),
        // Absolute-form without a path ("http://host") means the root.
        None => Ok(PathAndQuery::from_static("/")),
        Some(_) => Err(Failure::BadRequest {
            reason: "request target is not a path",
        }),
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue) -> Result<(), Failure> {
    let mut prior = headers.get_all(X_FORWARDED_FOR).iter().peekable();
    if prior.peek().is_none() {
        headers.insert(X_FORWARDED_FOR, client_ip.clone());
        return Ok(());
    }
    let mut joined = Vec::with_capacity(64);
    for value in prior {
        joined.extend_from_slice(value.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(client_ip.as_bytes());
    let value =
        HeaderValue::from_maybe_shared(Bytes::from(joined)).map_err(|_| Failure::BadRequest {
            reason: "x-forwarded-for is not a valid header",
        })?;
    headers.insert(X_FORWARDED_FOR, value);
    Ok(())
}

/// Removes hop-by-hop headers, including every header `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass of cheap comparisons instead of a
    // hash lookup per name.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
}

fn into_client_response(
    response: Response<Incoming>,
    in_flight: InFlight,
    sender: Sender,
) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = BackendBody::new(body, in_flight, sender);
    Response::from_parts(parts, ResponseBody::Backend(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_stripped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("x-kept", "yes"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn forwarded_for_appends_to_every_prior_value() {
        let ip = HeaderValue::from_static("127.0.0.1");
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, &ip).expect("valid");
        assert_eq!(headers[X_FORWARDED_FOR], "127.0.0.1");

        let mut headers = HeaderMap::new();
        headers.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        headers.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        append_forwarded_for(&mut headers, &ip).expect("valid");
        let all: Vec<_> = headers.get_all(X_FORWARDED_FOR).iter().collect();
        assert_eq!(all, ["10.0.0.1, 10.0.0.2, 127.0.0.1"]);
    }

    #[test]
    fn only_paths_are_forwarded() {
        let path = |s: &str| outbound_path(&s.parse().expect("valid uri")).map(|p| p.to_string());
        assert_eq!(path("/a?b=c").ok().as_deref(), Some("/a?b=c"));
        assert_eq!(path("http://h").ok().as_deref(), Some("/"));
        assert!(path("*").is_err());
        assert!(is_origin_form(&"/a".parse().expect("valid uri")));
        assert!(!is_origin_form(&"http://h/a".parse().expect("valid uri")));
    }
}
