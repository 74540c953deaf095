//! Formatting of matched entries: pretty lines or JSON lines.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;
use weaver_proto::logging::{PrettyPrinter, rfc3339_micros, short_id, shorten_component};
use weaver_proto::runtime::{LogAttr, LogEntry, log_attr};

/// How [`Printer`] writes entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// One human-readable line per entry (see
    /// [`weaver_proto::logging::PrettyPrinter`]), with ANSI colors if
    /// `color`.
    Pretty {
        /// Whether to color the output.
        color: bool,
    },
    /// One JSON object per line, with the fields `app`, `version`,
    /// `full_version`, `component`, `full_component`, `node`, `full_node`,
    /// `time` (RFC 3339 in UTC, with microseconds), `level`, `file`, `line`,
    /// `msg` and `attrs` (an object; all attributes, system ones included,
    /// typed ones as JSON numbers and booleans).
    Json,
}

/// Writes entries to an output in a [`Format`], one line each.
#[derive(Debug)]
pub struct Printer<W> {
    out: W,
    format: Format,
    pretty: PrettyPrinter,
    line: String,
}

/// The JSON form of an entry; field order is output order.
#[derive(Serialize)]
struct JsonEntry<'a> {
    app: &'a str,
    version: &'a str,
    full_version: &'a str,
    component: &'a str,
    full_component: &'a str,
    node: &'a str,
    full_node: &'a str,
    time: String,
    level: &'a str,
    file: &'a str,
    line: i32,
    msg: &'a str,
    attrs: BTreeMap<&'a str, serde_json::Value>,
}

// === impl Printer ===

impl<W: Write> Printer<W> {
    /// A printer writing to `out`.
    pub fn new(out: W, format: Format) -> Self {
        let color = matches!(format, Format::Pretty { color: true });
        Self {
            out,
            format,
            pretty: PrettyPrinter::new(color),
            line: String::new(),
        }
    }

    /// Writes `e` as one line.
    ///
    /// # Errors
    ///
    /// The output's error.
    pub fn print(&mut self, e: &LogEntry) -> io::Result<()> {
        self.line.clear();
        match self.format {
            Format::Pretty { .. } => self.pretty.format_into(e, &mut self.line),
            Format::Json => {
                let json = serde_json::to_string(&JsonEntry::new(e)).map_err(io::Error::other)?;
                self.line.push_str(&json);
            }
        }
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes())
    }

    /// Flushes the output.
    ///
    /// # Errors
    ///
    /// The output's error.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The output.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Returns the output.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A typed attribute's value as JSON (a NaN becomes `null`).
fn json(a: &LogAttr) -> serde_json::Value {
    match &a.value {
        Some(log_attr::Value::Str(s)) => serde_json::Value::from(s.as_str()),
        Some(log_attr::Value::Int(i)) => serde_json::Value::from(*i),
        Some(log_attr::Value::Uint(u)) => serde_json::Value::from(*u),
        Some(log_attr::Value::Float(f)) => serde_json::Value::from(*f),
        Some(log_attr::Value::Bool(b)) => serde_json::Value::from(*b),
        None => serde_json::Value::from(""),
    }
}

// === impl JsonEntry ===

impl<'a> JsonEntry<'a> {
    fn new(e: &'a LogEntry) -> Self {
        Self {
            app: &e.app,
            version: short_id(&e.version),
            full_version: &e.version,
            component: shorten_component(&e.component),
            full_component: &e.component,
            node: short_id(&e.node),
            full_node: &e.node,
            time: rfc3339_micros(e.time_micros),
            level: &e.level,
            file: &e.file,
            line: e.line,
            msg: &e.msg,
            // Typed attributes last, so that for a key in both they win.
            attrs: e
                .attrs
                .chunks_exact(2)
                .map(|kv| (kv[0].as_str(), serde_json::Value::from(kv[1].as_str())))
                .chain(e.typed_attrs.iter().map(|a| (a.key.as_str(), json(a))))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_attrs_keep_their_types() {
        let attr = |key: &str, value| LogAttr {
            key: key.into(),
            value: Some(value),
        };
        let e = LogEntry {
            attrs: vec!["kind".into(), "card".into(), "n".into(), "old".into()],
            typed_attrs: vec![
                attr("amount", log_attr::Value::Int(-5)),
                attr("n", log_attr::Value::Uint(7)),
                attr("ok", log_attr::Value::Bool(true)),
                attr("rate", log_attr::Value::Float(0.5)),
            ],
            ..Default::default()
        };
        let mut p = Printer::new(Vec::new(), Format::Json);
        p.print(&e).expect("in memory");
        let line = String::from_utf8(p.into_inner()).expect("utf-8");
        assert!(
            line.ends_with(
                r#""attrs":{"amount":-5,"kind":"card","n":7,"ok":true,"rate":0.5}}
"#
            ),
            "{line}"
        );
    }
}
