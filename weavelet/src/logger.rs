//! `weaver::Logger`: structured application logs.
//!
//! Entries become `LogEntry` records: printed to stderr when the app runs as
//! one process, sent up the pipe to the deployer (and so to
//! `weaver multi logs`) when it runs under `weaver multi deploy`.

use std::fmt::Display;
use std::panic::Location;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use weaver_proto::runtime::{LogAttr, LogEntry, log_attr};

/// Where log entries go. The runtime fills in app, deployment and node.
pub(crate) trait LogSink: Send + Sync + 'static {
    fn log(&self, entry: LogEntry);
}

/// A logger bound to a component, with optional attributes on every entry.
///
/// `info(msg)` logs a message; `info_with(msg, attrs)` adds attributes:
/// a `(key, value)` pair, a tuple of pairs (of mixed value types), an array,
/// vector or slice of pairs, or `()`. Values keep their type — strings,
/// signed and unsigned integers, floats and booleans (see [`AttrValue`]) —
/// all the way to the log store, so a query compares them as what they are:
///
/// ```no_run
/// # fn f(logger: &weaver::Logger) {
/// logger.info("started");
/// logger.info_with("paid", (("amount", 150), ("currency", "EUR"), ("card", true)));
/// logger.info_with("reversed", [("len", 6)]);
/// let l = logger.with(("user", "ada"));
/// l.warn("slow request");
/// # }
/// ```
///
/// and then `weaver multi logs 'attrs["amount"] > 100'` finds the payment
/// (an int compared with an int). In a query, `attrs` is a
/// `map(string, dyn)`: each value has the type it was logged with (entries
/// stored before typed attributes have strings only). Anything else
/// displayable goes in as text with [`AttrValue::display`].
#[derive(Clone)]
pub struct Logger {
    component: Arc<str>,
    attrs: Arc<[(String, AttrValue)]>,
    sink: Arc<dyn LogSink>,
}

/// The value of a log attribute.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AttrValue {
    /// Text.
    Str(String),
    /// A signed integer (every signed type but `i128`).
    Int(i64),
    /// An unsigned integer (every unsigned type but `u128`).
    Uint(u64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

/// Key/value attributes of a log entry: `()`, a `(key, value)` pair, a
/// tuple of up to 8 pairs, or an array, vector or slice of pairs. A key is
/// a `&str` or a `String`; a value anything that converts into an
/// [`AttrValue`].
pub trait Attrs {
    /// Appends the pairs, in order.
    fn append_to(self, out: &mut Vec<(String, AttrValue)>);
}

/// A key of a log attribute: `&str`, `String` or `&String`.
pub trait AttrKey: private::Sealed {
    /// The key as an owned string.
    fn into_key(self) -> String;
}

mod private {
    pub trait Sealed {}
    impl Sealed for &str {}
    impl Sealed for String {}
    impl Sealed for &String {}
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

    /// Logs `msg` at debug level.
    #[track_caller]
    pub fn debug(&self, msg: impl Display) {
        self.log("debug", msg, (), Location::caller());
    }

    /// Logs `msg` with `attrs` at debug level.
    #[track_caller]
    pub fn debug_with(&self, msg: impl Display, attrs: impl Attrs) {
        self.log("debug", msg, attrs, Location::caller());
    }

    /// Logs `msg` at info level.
    #[track_caller]
    pub fn info(&self, msg: impl Display) {
        self.log("info", msg, (), Location::caller());
    }

    /// Logs `msg` with `attrs` at info level.
    #[track_caller]
    pub fn info_with(&self, msg: impl Display, attrs: impl Attrs) {
        self.log("info", msg, attrs, Location::caller());
    }

    /// Logs `msg` at warn level.
    #[track_caller]
    pub fn warn(&self, msg: impl Display) {
        self.log("warn", msg, (), Location::caller());
    }

    /// Logs `msg` with `attrs` at warn level.
    #[track_caller]
    pub fn warn_with(&self, msg: impl Display, attrs: impl Attrs) {
        self.log("warn", msg, attrs, Location::caller());
    }

    /// Logs `msg` at error level.
    #[track_caller]
    pub fn error(&self, msg: impl Display) {
        self.log("error", msg, (), Location::caller());
    }

    /// Logs `msg` with `attrs` at error level.
    #[track_caller]
    pub fn error_with(&self, msg: impl Display, attrs: impl Attrs) {
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
            typed_attrs: all.into_iter().map(to_proto).collect(),
            ..Default::default()
        });
    }
}

fn to_proto((key, value): (String, AttrValue)) -> LogAttr {
    let value = match value {
        AttrValue::Str(s) => log_attr::Value::Str(s),
        AttrValue::Int(i) => log_attr::Value::Int(i),
        AttrValue::Uint(u) => log_attr::Value::Uint(u),
        AttrValue::Float(f) => log_attr::Value::Float(f),
        AttrValue::Bool(b) => log_attr::Value::Bool(b),
    };
    LogAttr {
        key,
        value: Some(value),
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

// === impl AttrValue ===

impl AttrValue {
    /// `v` as text, for a value of any other displayable type.
    pub fn display(v: impl Display) -> Self {
        AttrValue::Str(v.to_string())
    }
}

macro_rules! attr_from {
    ($variant:ident($target:ty): $($t:ty),*) => {
        $(impl From<$t> for AttrValue {
            fn from(v: $t) -> Self {
                AttrValue::$variant(<$target>::from(v))
            }
        })*
    };
}

attr_from!(Int(i64): i8, i16, i32, i64);
attr_from!(Uint(u64): u8, u16, u32, u64);
attr_from!(Float(f64): f32, f64);
attr_from!(Bool(bool): bool);
attr_from!(Str(String): &str, String, &String, char, Box<str>, std::borrow::Cow<'_, str>);

impl From<isize> for AttrValue {
    fn from(v: isize) -> Self {
        // isize is at most 64 bits on every supported target.
        AttrValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<usize> for AttrValue {
    fn from(v: usize) -> Self {
        AttrValue::Uint(u64::try_from(v).unwrap_or(u64::MAX))
    }
}

impl From<std::net::SocketAddr> for AttrValue {
    fn from(v: std::net::SocketAddr) -> Self {
        AttrValue::Str(v.to_string())
    }
}

impl From<std::net::IpAddr> for AttrValue {
    fn from(v: std::net::IpAddr) -> Self {
        AttrValue::Str(v.to_string())
    }
}

// === impl AttrKey ===

impl AttrKey for &str {
    fn into_key(self) -> String {
        self.to_owned()
    }
}

impl AttrKey for String {
    fn into_key(self) -> String {
        self
    }
}

impl AttrKey for &String {
    fn into_key(self) -> String {
        self.clone()
    }
}

// === impl Attrs ===

impl Attrs for () {
    fn append_to(self, _out: &mut Vec<(String, AttrValue)>) {}
}

impl<K: AttrKey, V: Into<AttrValue>> Attrs for (K, V) {
    fn append_to(self, out: &mut Vec<(String, AttrValue)>) {
        out.push((self.0.into_key(), self.1.into()));
    }
}

/// Tuples of pairs, whose values may differ in type.
macro_rules! attrs_tuple {
    ($(($k:ident, $v:ident, $i:tt)),+) => {
        impl<$($k: AttrKey, $v: Into<AttrValue>),+> Attrs for ($(($k, $v),)+) {
            fn append_to(self, out: &mut Vec<(String, AttrValue)>) {
                $(out.push(((self.$i).0.into_key(), (self.$i).1.into()));)+
            }
        }
    };
}

attrs_tuple!((K0, V0, 0));
attrs_tuple!((K0, V0, 0), (K1, V1, 1));
attrs_tuple!((K0, V0, 0), (K1, V1, 1), (K2, V2, 2));
attrs_tuple!((K0, V0, 0), (K1, V1, 1), (K2, V2, 2), (K3, V3, 3));
attrs_tuple!(
    (K0, V0, 0),
    (K1, V1, 1),
    (K2, V2, 2),
    (K3, V3, 3),
    (K4, V4, 4)
);
attrs_tuple!(
    (K0, V0, 0),
    (K1, V1, 1),
    (K2, V2, 2),
    (K3, V3, 3),
    (K4, V4, 4),
    (K5, V5, 5)
);
attrs_tuple!(
    (K0, V0, 0),
    (K1, V1, 1),
    (K2, V2, 2),
    (K3, V3, 3),
    (K4, V4, 4),
    (K5, V5, 5),
    (K6, V6, 6)
);
attrs_tuple!(
    (K0, V0, 0),
    (K1, V1, 1),
    (K2, V2, 2),
    (K3, V3, 3),
    (K4, V4, 4),
    (K5, V5, 5),
    (K6, V6, 6),
    (K7, V7, 7)
);

impl<K: AttrKey, V: Into<AttrValue>, const N: usize> Attrs for [(K, V); N] {
    fn append_to(self, out: &mut Vec<(String, AttrValue)>) {
        out.extend(self.into_iter().map(|(k, v)| (k.into_key(), v.into())));
    }
}

impl<K: AttrKey, V: Into<AttrValue>> Attrs for Vec<(K, V)> {
    fn append_to(self, out: &mut Vec<(String, AttrValue)>) {
        out.extend(self.into_iter().map(|(k, v)| (k.into_key(), v.into())));
    }
}

impl<K: AttrKey + Clone, V: Into<AttrValue> + Clone> Attrs for &[(K, V)] {
    fn append_to(self, out: &mut Vec<(String, AttrValue)>) {
        out.extend(self.iter().cloned().map(|(k, v)| (k.into_key(), v.into())));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Keeps what is logged.
    #[derive(Default)]
    struct Keep(Mutex<Vec<LogEntry>>);

    impl LogSink for Keep {
        fn log(&self, entry: LogEntry) {
            self.0.lock().expect("no panics while held").push(entry);
        }
    }

    fn values(e: &LogEntry) -> Vec<(&str, Option<&log_attr::Value>)> {
        let attrs = e.typed_attrs.iter();
        attrs.map(|a| (a.key.as_str(), a.value.as_ref())).collect()
    }

    #[test]
    fn attributes_of_mixed_types_keep_them() {
        use log_attr::Value;
        let sink = Arc::new(Keep::default());
        let logger = Logger::new("app::Pay", sink.clone()).with(("user", "ada"));
        logger.info("started");
        logger.info_with("paid", (("amount", 150), ("kind", "card"), ("ok", true)));
        logger.warn_with("slow", [("ms", 12_u64), ("budget", 10)]);
        logger.error_with("rate", ("rate", 0.5));
        let key = String::from("k");
        logger.debug_with("owned", vec![(key, AttrValue::display('x'))]);

        let entries = sink.0.lock().expect("no panics while held");
        let levels: Vec<&str> = entries.iter().map(|e| e.level.as_str()).collect();
        assert_eq!(levels, ["info", "info", "warn", "error", "debug"]);
        let user = ("user", Some(&Value::Str("ada".into())));
        assert_eq!(values(&entries[0]), [user]);
        assert_eq!(
            values(&entries[1]),
            [
                user,
                ("amount", Some(&Value::Int(150))),
                ("kind", Some(&Value::Str("card".into()))),
                ("ok", Some(&Value::Bool(true))),
            ]
        );
        assert_eq!(
            values(&entries[2])[1..],
            // An array has one value type: the 10 is a u64 too.
            [
                ("ms", Some(&Value::Uint(12))),
                ("budget", Some(&Value::Uint(10)))
            ]
        );
        assert_eq!(
            values(&entries[3])[1..],
            [("rate", Some(&Value::Float(0.5)))]
        );
        assert_eq!(
            values(&entries[4])[1..],
            [("k", Some(&Value::Str("x".into())))]
        );
        assert!(entries.iter().all(|e| e.attrs.is_empty()));
        assert!(entries[1].file.ends_with("logger.rs"));
    }
}
