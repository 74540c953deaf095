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

/// A query that cannot run. Every variant but [`QueryError::NotBool`] points
/// at the offending text: its `Display` ends with the query line and a caret
/// under the position, ready for stderr.
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
    /// The query is not a condition: it evaluates to something other than a
    /// boolean, e.g. `msg`.
    #[error("the query is a {got}, not a condition: compare it, e.g. `msg.contains(\"x\")`")]
    NotBool {
        /// The type the query evaluates to.
        got: &'static str,
    },
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

// === impl Error ===

impl Error {
    /// Whether this is an output error caused by a closed pipe (as with
    /// `weaver multi logs | head`), which a CLI should treat as success.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output { source } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}
