//! The errors of this crate: [`QueryError`] for a query that cannot run, and
//! [`Error`] for everything that touches files or the output.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A place in a query's text: 1-based line and column, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
}

/// A query that cannot run. Every variant points at the offending text: its
/// `Display` ends with the query line and a caret under the position, ready
/// for stderr.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The query is not valid CEL.
    #[error("invalid query at {at}: {message}\n{snippet}")]
    Syntax {
        /// The parser's description of the problem.
        message: String,
        /// Where the parser stopped.
        at: Position,
        /// The query line and a caret under `at`.
        snippet: String,
    },
    /// The query names a variable that log entries do not have.
    #[error(
        "unknown variable `{name}` at {at}; the variables are {}\n{snippet}",
        crate::query::VARIABLES.join(", ")
    )]
    UnknownVariable {
        /// The unknown name.
        name: String,
        /// Where it is used first.
        at: Position,
        /// The query line and a caret under `at`.
        snippet: String,
    },
    /// A `matches()` pattern is not a valid regular expression.
    #[error("invalid regular expression {pattern:?} at {at}: {reason}\n{snippet}")]
    Regex {
        /// The pattern as written.
        pattern: String,
        /// Why the regex crate refused it.
        reason: String,
        /// Where the pattern is.
        at: Position,
        /// The query line and a caret under `at`.
        snippet: String,
    },
    /// A `timestamp()` argument is not an RFC 3339 time.
    #[error(
        "invalid timestamp {text:?} at {at}: want RFC 3339, such as \"2024-01-01T00:00:00Z\"\n{snippet}"
    )]
    Timestamp {
        /// The argument as written.
        text: String,
        /// Where it is.
        at: Position,
        /// The query line and a caret under `at`.
        snippet: String,
    },
    /// An operator or function is applied to values of the wrong types or
    /// number, or is not one the query language has: `msg > 3`,
    /// `app.contains()`, `nosuchfn(msg)`.
    #[error("invalid query at {at}: {message}\n{snippet}")]
    Type {
        /// What is wrong.
        message: String,
        /// Where: the operator or the call.
        at: Position,
        /// The query line and a caret under `at`.
        snippet: String,
    },
    /// The query is not a condition: it evaluates to something other than a
    /// boolean, e.g. `msg` or `1 + 1`.
    #[error(
        "invalid query at {at}: the query is {}, not a condition: compare it, e.g. \
         `msg.contains(\"x\")`\n{snippet}",
        crate::query::an(got)
    )]
    NotBool {
        /// The type the query evaluates to.
        got: String,
        /// Where the query starts.
        at: Position,
        /// The query line and a caret under `at`.
        snippet: String,
    },
    /// The query is too long, or nests or chains too deeply, to be parsed
    /// and evaluated safely.
    #[error("invalid query at {at}: {message}\n{snippet}")]
    TooComplex {
        /// Which limit it exceeds.
        message: String,
        /// Where the limit is first exceeded.
        at: Position,
        /// The query line and a caret under `at`.
        snippet: String,
    },
}

/// Entries on which a query could not be evaluated (say, `attrs["n"] > 3`
/// on an entry whose `n` is a string): they do not match, and are counted
/// so that a caller can report them after a scan; see
/// [`Query::eval_errors`](crate::Query::eval_errors).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{count} entries could not be evaluated")]
pub struct EvalErrors {
    /// How many entries.
    pub count: u64,
    /// What went wrong on the first of them.
    #[source]
    pub first: EvalError,
}

/// Why a query could not be evaluated on one entry.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub(crate) EvalErrorKind);

/// The kinds of [`EvalError`].
#[derive(Debug, Clone)]
pub(crate) enum EvalErrorKind {
    /// CEL's own error (a missing key, no overload for the values, a
    /// computed regex that does not parse, ...).
    Cel(cel::ExecutionError),
    /// The query gave a value of this type rather than a boolean.
    NotBool(String),
}

/// A failure to write or read the log store, or to write the output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The log directory could not be created.
    #[error("cannot create log directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The log directory could not be listed.
    #[error("cannot list log directory {}", path.display())]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A log file could not be created or opened for appending.
    #[error("cannot open log file {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Appending to or flushing a log file failed.
    #[error("cannot write log file {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An entry is too large to store as one frame.
    #[error("log entry of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The encoded size of the entry.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Writing the formatted entries failed (for example, the reader of a
    /// pipe went away).
    #[error("cannot write output")]
    Output {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Watching the log directory for new entries failed.
    #[error("cannot watch log directory {}", path.display())]
    Watch {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Removing the log store failed.
    #[error("cannot remove {}", path.display())]
    Remove {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

// === impl Position ===

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

// === impl QueryError ===

impl QueryError {
    /// Where in the query the problem is.
    pub fn position(&self) -> Position {
        match self {
            QueryError::Syntax { at, .. }
            | QueryError::UnknownVariable { at, .. }
            | QueryError::Regex { at, .. }
            | QueryError::Timestamp { at, .. }
            | QueryError::Type { at, .. }
            | QueryError::NotBool { at, .. }
            | QueryError::TooComplex { at, .. } => *at,
        }
    }
}

// === impl EvalErrorKind ===

impl fmt::Display for EvalErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalErrorKind::Cel(e) => {
                // CEL's messages start in upper case; ours do not.
                let text = e.to_string();
                let mut chars = text.chars();
                match chars.next() {
                    Some(c) => write!(f, "{}{}", c.to_lowercase(), chars.as_str()),
                    None => Ok(()),
                }
            }
            EvalErrorKind::NotBool(got) => {
                write!(f, "the query gave {}, not a bool", crate::query::an(got))
            }
        }
    }
}

// === impl Error ===

impl Error {
    /// Whether this is an output error caused by a closed pipe (as with
    /// `weaver multi logs | head`), which a CLI should treat as success.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output { source } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}
