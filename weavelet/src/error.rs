//! `weaver::Error`: what component methods and calls return.

use std::fmt;

/// The result type of component methods.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from a component method or from the machinery that carried the
/// call.
///
/// Application errors (returned by a method's implementation) are told apart
/// from failures of the call itself: [`Error::is_remote`] is true when the
/// call could not be completed (the replica was unreachable, the connection
/// broke, ...), the analogue of Service Weaver's `RemoteCallError`.
///
/// It is a `std::error::Error`, so it flows into `anyhow`, `Box<dyn Error>`
/// and `thiserror` types with `?`. Inside component methods, `?` converts
/// the common standard errors (I/O, parsing, UTF-8, tasks, timeouts, boxed
/// errors, strings) into application errors; wrap any other error with
/// [`Error::new`] (`.map_err(weaver::Error::new)`).
pub struct Error {
    kind: Kind,
    msg: String,
}

/// What went wrong. Private so kinds can be added; use the `is_*` predicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Returned by the application.
    Application,
    /// The call could not be completed by the transport.
    Remote,
    /// The context's deadline passed.
    DeadlineExceeded,
    /// The component could not be built or configured.
    Construction,
    /// The runtime itself failed (bad frame, unknown method, ...).
    Internal,
}

// === impl Error ===

impl Error {
    /// An application error with the given message.
    pub fn new(msg: impl fmt::Display) -> Self {
        Self::with_kind(Kind::Application, msg)
    }

    pub(crate) fn with_kind(kind: Kind, msg: impl fmt::Display) -> Self {
        Self {
            kind,
            msg: msg.to_string(),
        }
    }

    pub(crate) fn remote(msg: impl fmt::Display) -> Self {
        Self::with_kind(Kind::Remote, msg)
    }

    pub(crate) fn construction(msg: impl fmt::Display) -> Self {
        Self::with_kind(Kind::Construction, msg)
    }

    pub(crate) fn internal(msg: impl fmt::Display) -> Self {
        Self::with_kind(Kind::Internal, msg)
    }

    pub(crate) fn deadline_exceeded() -> Self {
        Self::with_kind(Kind::DeadlineExceeded, "deadline exceeded")
    }

    /// Whether the call failed in transit (not in the application): the
    /// replica was unreachable or the connection broke. The method may or
    /// may not have run.
    pub fn is_remote(&self) -> bool {
        self.kind == Kind::Remote
    }

    /// Whether the error was returned by the application's code.
    pub fn is_application(&self) -> bool {
        self.kind == Kind::Application
    }

    /// Whether the call's deadline passed.
    pub fn is_deadline_exceeded(&self) -> bool {
        self.kind == Kind::DeadlineExceeded
    }

    /// Whether a component could not be built (bad config, failed init,
    /// missing implementation, listener error).
    pub fn is_construction(&self) -> bool {
        self.kind == Kind::Construction
    }

    /// The error message, without the kind.
    pub fn message(&self) -> &str {
        &self.msg
    }

    /// Encodes the error for the wire: (kind code, message).
    pub(crate) fn to_wire(&self) -> (u8, &str) {
        let code = match self.kind {
            Kind::Application => 0,
            Kind::Remote => 1,
            Kind::DeadlineExceeded => 2,
            Kind::Construction => 3,
            Kind::Internal => 4,
        };
        (code, &self.msg)
    }

    /// Decodes an error received from a remote replica.
    ///
    /// Application errors stay application errors; everything else that went
    /// wrong over there is a failure of the call, as seen from here.
    pub(crate) fn from_wire(code: u8, msg: String) -> Self {
        let kind = match code {
            0 => Kind::Application,
            2 => Kind::DeadlineExceeded,
            // A component that cannot be built (bad config, failed init)
            // fails the same way on every replica: not worth a retry.
            3 => Kind::Construction,
            _ => Kind::Remote,
        };
        Self { kind, msg }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("msg", &self.msg)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Application | Kind::DeadlineExceeded => f.write_str(&self.msg),
            Kind::Remote => write!(f, "remote call error: {}", self.msg),
            Kind::Construction => write!(f, "component construction error: {}", self.msg),
            Kind::Internal => write!(f, "internal error: {}", self.msg),
        }
    }
}

impl std::error::Error for Error {}

/// The message of `e` followed by its sources, joined by ": ".
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

macro_rules! from_std_errors {
    ($($t:ty),* $(,)?) => {
        $(
            impl From<$t> for Error {
                fn from(e: $t) -> Self {
                    Self::new(chain(&e))
                }
            }
        )*
    };
}

from_std_errors!(
    std::io::Error,
    std::fmt::Error,
    std::num::ParseIntError,
    std::num::ParseFloatError,
    std::num::TryFromIntError,
    std::str::ParseBoolError,
    std::str::Utf8Error,
    std::string::FromUtf8Error,
    std::net::AddrParseError,
    std::time::SystemTimeError,
    tokio::task::JoinError,
    tokio::time::error::Elapsed,
);

impl From<Box<dyn std::error::Error + Send + Sync>> for Error {
    fn from(e: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Self::new(chain(&*e))
    }
}

impl From<String> for Error {
    fn from(msg: String) -> Self {
        Self::new(msg)
    }
}

impl From<&str> for Error {
    fn from(msg: &str) -> Self {
        Self::new(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_errors_survive_the_wire_and_transport_errors_are_remote() {
        let app = Error::new("no such user");
        let (code, msg) = app.to_wire();
        let back = Error::from_wire(code, msg.to_string());
        assert!(back.is_application() && !back.is_remote());
        assert_eq!(back.to_string(), "no such user");

        let broken = Error::internal("unknown method 7");
        let (code, msg) = broken.to_wire();
        let back = Error::from_wire(code, msg.to_string());
        assert!(back.is_remote());
    }

    #[test]
    fn weaver_errors_flow_into_other_error_types() {
        fn boxed() -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
            Err(Error::new("no stock"))?;
            Ok(())
        }
        let e = boxed().unwrap_err();
        assert_eq!(e.to_string(), "no stock");
        assert!(e.downcast_ref::<Error>().is_some_and(Error::is_application));
    }

    #[test]
    fn std_errors_convert_with_their_chain() {
        fn parse(s: &str) -> Result<i32> {
            Ok(s.parse::<i32>()?)
        }
        let e = parse("x").unwrap_err();
        assert!(e.is_application());
        assert_eq!(e.message(), "invalid digit found in string");
    }
}
