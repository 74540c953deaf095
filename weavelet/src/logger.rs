//! `weaver::Logger`: structured application logs.
//!
//! Entries become `LogEntry` records: printed to stderr when the app runs as
//! one process, sent up the pipe to the deployer (and so to
//! `weaver multi logs`) when it runs under `weaver multi deploy`.

use std::fmt::Display;
use std::panic::Location;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use weaver_proto::runtime::LogEntry;

/// Where log entries go. The runtime fills in app, deployment and node.
pub(crate) trait LogSink: Send + Sync + 'static {
    fn log(&self, entry: LogEntry);
}

/// A logger bound to a component, with optional attributes on every entry.
///
/// ```no_run
/// # fn f(logger: &weaver::Logger) {
/// logger.info("reversed", [("len", 6)]);
/// let l = logger.with([("user", "ada")]);
/// l.warn("slow request", ());
/// # }
/// ```
#[derive(Clone)]
pub struct Logger {
    component: Arc<str>,
    attrs: Arc<[String]>,
    sink: Arc<dyn LogSink>,
}

/// Key/value attributes of a log entry: `()`, an array or vector of
/// `(key, value)` pairs, or a single pair.
pub trait Attrs {
    /// Appends the pairs as key, value, key, value, ...
    fn append_to(self, out: &mut Vec<String>);
}

impl Logger {
    pub(crate) fn new(component: &str, sink: Arc<dyn LogSink>) -> Self {
        Self {
            component: Arc::from(component),
            attrs: Arc::from(Vec::new()),
            sink,
        }
    }

    /// A logger that adds `attrs` to every entry.
    pub fn with(&self, attrs: impl Attrs) -> Logger {
        let mut all = self.attrs.to_vec();
        attrs.append_to(&mut all);
        Self {
            component: self.component.clone(),
            attrs: Arc::from(all),
            sink: self.sink.clone(),
        }
    }

    /// Logs at debug level.
    #[track_caller]
    pub fn debug(&self, msg: impl Display, attrs: impl Attrs) {
        self.log("debug", msg, attrs, Location::caller());
    }

    /// Logs at info level.
    #[track_caller]
    pub fn info(&self, msg: impl Display, attrs: impl Attrs) {
        self.log("info", msg, attrs, Location::caller());
    }

    /// Logs at warn level.
    #[track_caller]
    pub fn warn(&self, msg: impl Display, attrs: impl Attrs) {
        self.log("warn", msg, attrs, Location::caller());
    }

    /// Logs at error level.
    #[track_caller]
    pub fn error(&self, msg: impl Display, attrs: impl Attrs) {
        self.log("error", msg, attrs, Location::caller());
    }

    fn log(&self, level: &str, msg: impl Display, attrs: impl Attrs, at: &Location<'_>) {
        let mut all = self.attrs.to_vec();
        attrs.append_to(&mut all);
        self.sink.log(LogEntry {
            component: self.component.to_string(),
            time_micros: now_micros(),
            level: level.to_string(),
            file: at.file().to_string(),
            line: i32::try_from(at.line()).unwrap_or(-1),
            msg: msg.to_string(),
            attrs: all,
            ..Default::default()
        });
    }
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("component", &self.component)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// === impl Attrs ===

impl Attrs for () {
    fn append_to(self, _out: &mut Vec<String>) {}
}

impl<K: Display, V: Display> Attrs for (K, V) {
    fn append_to(self, out: &mut Vec<String>) {
        out.push(self.0.to_string());
        out.push(self.1.to_string());
    }
}

impl<K: Display, V: Display, const N: usize> Attrs for [(K, V); N] {
    fn append_to(self, out: &mut Vec<String>) {
        for (k, v) in self {
            (k, v).append_to(out);
        }
    }
}

impl<K: Display, V: Display> Attrs for Vec<(K, V)> {
    fn append_to(self, out: &mut Vec<String>) {
        for (k, v) in self {
            (k, v).append_to(out);
        }
    }
}

impl<K: Display, V: Display> Attrs for &[(K, V)] {
    fn append_to(self, out: &mut Vec<String>) {
        for (k, v) in self {
            out.push(k.to_string());
            out.push(v.to_string());
        }
    }
}
