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
/// # Errors returned by a method body
///
/// An error a method's body returns reaches that method's caller as an
/// application error, whatever it was inside the body. When component A's
/// method calls B and returns B's transport error with `?`, A's caller gets
/// an application error whose [`source`](std::error::Error::source) is B's
/// error; [`Error::caused_by_remote`] tells that a remote failure is in the
/// chain. Only a failure of a call's own transport is a remote error of that
/// call, and only those are retried: one call of A never runs A's side
/// effects twice because B's replica died. Deadline errors are the exception:
/// they pass through unchanged (the deadline is the caller's too).
///
/// It is a `std::error::Error`, so it flows into `anyhow`, `Box<dyn Error>`
/// and `thiserror` types with `?`. Inside component methods, `?` converts
/// the common standard errors (I/O, parsing, UTF-8, tasks, timeouts, boxed
/// errors, strings) into application errors; wrap any other error with
/// [`Error::new`] (`.map_err(weaver::Error::new)`).
///
/// `Display` writes this error's own message; `{:?}` (what `main` prints
/// when it returns `Err`) writes the message followed by its causes.
pub struct Error {
    kind: Kind,
    msg: String,
    /// The error this one was made from, e.g. the failure of a nested call
    /// that a method body returned.
    cause: Option<Box<Error>>,
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

/// Most causes an error carries over the wire; deeper ones are dropped.
const MAX_WIRE_CAUSES: usize = 16;

/// Set on a wire code when a cause follows the message.
const HAS_CAUSE: u8 = 0x80;

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
            cause: None,
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

    /// A construction error with `msg`, caused by `cause`.
    pub(crate) fn construction_caused_by(msg: impl fmt::Display, cause: Error) -> Self {
        Self {
            kind: Kind::Construction,
            msg: msg.to_string(),
            cause: Some(Box::new(cause)),
        }
    }

    /// What the caller of `component.method` receives when the method's
    /// body returned `e`: application errors and deadline errors as they
    /// are, anything else (a nested call's transport failure, a component
    /// that could not be built, ...) as the cause of an application error.
    pub(crate) fn returned_by(component: &str, method: &str, e: Error) -> Self {
        match e.kind {
            Kind::Application | Kind::DeadlineExceeded => e,
            Kind::Remote | Kind::Construction | Kind::Internal => Self {
                kind: Kind::Application,
                msg: format!("a call made by {component}.{method} failed"),
                cause: Some(Box::new(e)),
            },
        }
    }

    /// Whether the call failed in transit (not in the application): the
    /// replica was unreachable or the connection broke. The method may or
    /// may not have run. Such calls are retried unless the method is
    /// `not_retriable`.
    ///
    /// This is about the call that returned the error only: an error that a
    /// method body returned is an application error of its call even when
    /// it came from a nested call's transport failure (see
    /// [`Error::caused_by_remote`]).
    pub fn is_remote(&self) -> bool {
        self.kind == Kind::Remote
    }

    /// Whether this error or one of its causes is a remote error: somewhere
    /// down the chain of calls, a call failed in transit.
    pub fn caused_by_remote(&self) -> bool {
        self.chain().any(Error::is_remote)
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

    /// The error message, without the kind and without the causes.
    pub fn message(&self) -> &str {
        &self.msg
    }

    /// The error this one was made from, if any (also its
    /// [`source`](std::error::Error::source)).
    pub fn cause(&self) -> Option<&Error> {
        self.cause.as_deref()
    }

    /// This error, then its causes.
    fn chain(&self) -> impl Iterator<Item = &Error> {
        std::iter::successors(Some(self), |e| e.cause())
    }

    /// Encodes the error for the wire:
    /// `code:u8 message`, or, when a cause follows,
    /// `(code | 0x80):u8 len:u32le message cause`.
    pub(crate) fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.msg.len());
        let mut next = Some(self);
        let mut depth = 0;
        while let Some(e) = next {
            let code = e.kind.code();
            next = e.cause().filter(|_| depth + 1 < MAX_WIRE_CAUSES);
            depth += 1;
            match next {
                None => {
                    out.push(code);
                    out.extend_from_slice(e.msg.as_bytes());
                }
                Some(_) => {
                    out.push(code | HAS_CAUSE);
                    let len = u32::try_from(e.msg.len()).unwrap_or(u32::MAX);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(&e.msg.as_bytes()[..len as usize]);
                }
            }
        }
        out
    }

    /// Decodes an error received from a remote replica.
    ///
    /// Application errors stay application errors; everything else that went
    /// wrong over there is a failure of the call, as seen from here. Causes
    /// keep the kinds they had over there.
    pub(crate) fn from_wire(body: &[u8]) -> Self {
        let mut errors = Vec::new();
        let mut rest = body;
        while let Some((&code, tail)) = rest.split_first() {
            if errors.len() == MAX_WIRE_CAUSES {
                break;
            }
            let kind = Kind::from_code(code & !HAS_CAUSE);
            if code & HAS_CAUSE == 0 {
                errors.push(Self::with_kind(kind, String::from_utf8_lossy(tail)));
                break;
            }
            let Some((len, tail)) = tail.split_first_chunk::<4>() else {
                return Error::remote("malformed error reply");
            };
            let len = u32::from_le_bytes(*len) as usize;
            let Some((msg, tail)) = tail.split_at_checked(len) else {
                return Error::remote("malformed error reply");
            };
            errors.push(Self::with_kind(kind, String::from_utf8_lossy(msg)));
            rest = tail;
        }
        let Some(mut err) = errors.pop() else {
            return Error::remote("malformed error reply");
        };
        while let Some(mut outer) = errors.pop() {
            outer.cause = Some(Box::new(err));
            err = outer;
        }
        // The top-level kind as seen from here.
        err.kind = match err.kind {
            Kind::Application => Kind::Application,
            Kind::DeadlineExceeded => Kind::DeadlineExceeded,
            // A component that cannot be built (bad config, failed init)
            // fails the same way on every replica: not worth a retry.
            Kind::Construction => Kind::Construction,
            Kind::Remote | Kind::Internal => Kind::Remote,
        };
        err
    }
}

// === impl Kind ===

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Application => 0,
            Kind::Remote => 1,
            Kind::DeadlineExceeded => 2,
            Kind::Construction => 3,
            Kind::Internal => 4,
        }
    }

    fn from_code(code: u8) -> Kind {
        match code {
            0 => Kind::Application,
            2 => Kind::DeadlineExceeded,
            3 => Kind::Construction,
            4 => Kind::Internal,
            _ => Kind::Remote,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // What `fn main() -> weaver::Result<()>` prints: the message and its
        // causes, not a struct dump.
        let mut first = true;
        for e in self.chain() {
            if !first {
                f.write_str(": ")?;
            }
            first = false;
            fmt::Display::fmt(e, f)?;
        }
        Ok(())
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

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// The message of `e` followed by its sources, joined by ": ".
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
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
        let back = Error::from_wire(&app.to_wire());
        assert!(back.is_application() && !back.is_remote());
        assert_eq!(back.to_string(), "no such user");

        let broken = Error::internal("unknown method 7");
        let back = Error::from_wire(&broken.to_wire());
        assert!(back.is_remote());
    }

    #[test]
    fn errors_a_body_returns_are_application_errors_with_their_cause() {
        let inner = Error::remote("connection to unix:///b.sock closed");
        let outer = Error::returned_by("bank::Ledger", "deposit", inner);
        assert!(outer.is_application() && !outer.is_remote());
        assert!(outer.caused_by_remote());
        assert_eq!(
            outer.to_string(),
            "a call made by bank::Ledger.deposit failed"
        );
        let source = std::error::Error::source(&outer).expect("a source");
        assert_eq!(
            source.to_string(),
            "remote call error: connection to unix:///b.sock closed"
        );
        assert_eq!(
            format!("{outer:?}"),
            "a call made by bank::Ledger.deposit failed: remote call error: \
             connection to unix:///b.sock closed"
        );

        // Over the wire the chain survives and the outer error stays an
        // application error, so the caller does not retry it.
        let back = Error::from_wire(&outer.to_wire());
        assert!(back.is_application() && !back.is_remote() && back.caused_by_remote());
        assert_eq!(format!("{back:?}"), format!("{outer:?}"));

        // Application and deadline errors pass through unchanged.
        let app = Error::returned_by("c::C", "m", Error::new("no funds"));
        assert!(app.is_application() && app.cause().is_none());
        let late = Error::returned_by("c::C", "m", Error::deadline_exceeded());
        assert!(late.is_deadline_exceeded());
    }

    #[test]
    fn malformed_and_deep_error_replies_are_bounded() {
        assert!(Error::from_wire(&[]).is_remote());
        // A cause flag with a length running past the end.
        assert!(Error::from_wire(&[0x80, 9, 0, 0, 0, b'x']).is_remote());
        let mut deep = Error::new("bottom");
        for i in 0..100 {
            deep = Error {
                kind: Kind::Application,
                msg: format!("level {i}"),
                cause: Some(Box::new(deep)),
            };
        }
        let back = Error::from_wire(&deep.to_wire());
        assert_eq!(back.chain().count(), MAX_WIRE_CAUSES);
        assert_eq!(back.message(), "level 99");
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
