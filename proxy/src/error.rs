//! Errors: [`Error`] for the handle's operations (binding), and the crate-private
//! [`Failure`] that a single proxied request ends with, tagged upstream,
//! downstream or internal so it maps to 502, 400 or 500.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::ResponseBody;
use crate::pool::ConnectError;

/// What can go wrong starting a proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another socket already listens on the requested address.
    #[error("address {addr} is already in use")]
    AddrInUse {
        /// The address as it was requested.
        addr: String,
    },
    /// Binding the listening socket failed for another reason (bad address,
    /// permission denied, ...).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address as it was requested.
        addr: String,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// Which side a failed request is blamed on; decides the status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// A backend is missing, unreachable or broke: 502.
    Upstream,
    /// The client sent something we cannot forward: 400.
    Downstream,
    /// Our own bug or limit: 500.
    Internal,
}

/// Why one proxied request got an error response instead of a backend's.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The backend set is empty.
    #[error("no backend available")]
    NoBackend,
    /// No connection to the chosen backend could be opened.
    #[error("cannot reach backend {addr}")]
    Connect {
        /// The backend that could not be reached.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: ConnectError,
    },
    /// The backend failed before its response head was complete.
    #[error("backend {addr} failed")]
    Backend {
        /// The backend that failed.
        addr: SocketAddr,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// The client's request body failed while it was being forwarded.
    #[error("client request body failed")]
    ClientBody {
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// The request cannot be forwarded as it is (e.g. CONNECT, or an
    /// asterisk-form target).
    #[error("request cannot be forwarded: {reason}")]
    BadRequest {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// hyper refused a request we built: our bug.
    #[error("outbound request rejected")]
    Internal {
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
}

// === impl Failure ===

impl Failure {
    /// Classifies an error from sending a request to the backend at `addr`.
    pub(crate) fn exchange(addr: SocketAddr, error: hyper::Error) -> Failure {
        if !error.is_user() {
            return Failure::Backend {
                addr,
                source: error,
            };
        }
        // A user error caused by another hyper error is the client's body
        // failing (hyper reads it through our `RequestBody`); any other user
        // error means we built a request hyper will not send.
        let client_body = std::error::Error::source(&error)
            .is_some_and(|cause| cause.downcast_ref::<hyper::Error>().is_some());
        if client_body {
            Failure::ClientBody { source: error }
        } else {
            Failure::Internal { source: error }
        }
    }

    /// Which side this failure is blamed on.
    pub(crate) fn side(&self) -> Side {
        match self {
            Failure::NoBackend | Failure::Connect { .. } | Failure::Backend { .. } => {
                Side::Upstream
            }
            Failure::ClientBody { .. } | Failure::BadRequest { .. } => Side::Downstream,
            Failure::Internal { .. } => Side::Internal,
        }
    }

    /// A short plain-text response for the client; details go to the log only.
    pub(crate) fn into_response(self) -> Response<ResponseBody> {
        let (status, text): (StatusCode, &'static str) = match (&self, self.side()) {
            (Failure::NoBackend, _) => (StatusCode::BAD_GATEWAY, "no backend available\n"),
            (_, Side::Upstream) => (StatusCode::BAD_GATEWAY, "backend error\n"),
            (_, Side::Downstream) => (StatusCode::BAD_REQUEST, "bad request\n"),
            (_, Side::Internal) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
        };
        let mut response =
            Response::new(ResponseBody::message(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

impl Error {
    /// Classifies a failed `bind` of `addr`.
    pub(crate) fn bind(addr: &str, source: io::Error) -> Error {
        if source.kind() == io::ErrorKind::AddrInUse {
            Error::AddrInUse {
                addr: addr.to_owned(),
            }
        } else {
            Error::Bind {
                addr: addr.to_owned(),
                source,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_status_by_side() {
        let cases = [
            (Failure::NoBackend, StatusCode::BAD_GATEWAY),
            (Failure::BadRequest { reason: "x" }, StatusCode::BAD_REQUEST),
        ];
        for (failure, status) in cases {
            assert_eq!(failure.into_response().status(), status);
        }
    }

    #[test]
    fn addr_in_use_names_the_address() {
        let err = Error::bind("127.0.0.1:80", io::ErrorKind::AddrInUse.into());
        assert!(matches!(err, Error::AddrInUse { .. }));
        assert_eq!(err.to_string(), "address 127.0.0.1:80 is already in use");
    }
}
