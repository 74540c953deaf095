//! Formatting of `LogEntry` records, shared by every process that prints them.
//!
//! The single-process runtime prints its own entries to stderr, the
//! babysitter prints the entries its weavelets send, and `weaver multi logs`
//! prints entries read back from the log store: all three go through
//! [`PrettyPrinter`], so a line looks the same wherever it comes from.
//!
//! The layout is Service Weaver's (v0.24.6):
//!
//! ```text
//! I0921 10:07:31.733831 hello::Reverser      076cb5f1 main.rs:164          │ Reversing key="value"
//! ```
//!
//! Times are printed in **UTC**: this crate has no time-zone database, and a
//! fixed zone keeps lines from different machines comparable.

use std::fmt::Write as _;

use crate::runtime::{LogAttr, LogEntry, log_attr};

/// The attribute key that marks a system log entry (one written by the
/// weaver runtime or deployer rather than by application code). Its value is
/// empty; the key alone carries the meaning.
pub const SYSTEM_ATTR: &str = "serviceweaver/system";

/// Minimum width of the component column; it grows to the widest seen.
const COMPONENT_PADDING: usize = 20;

/// Minimum width of the `file:line` column; it grows to the widest seen.
const SOURCE_PADDING: usize = 20;

/// Width of the node column (see [`short_id`]).
const NODE_WIDTH: usize = 8;

/// 256-color gray for repeated (dimmed) text and separators.
const DIM: &str = "\x1b[38;5;245m";

/// 256-color light red for error entries.
const RED: &str = "\x1b[38;5;9m";

/// Resets all attributes.
const RESET: &str = "\x1b[0m";

/// Shortens a full component name to its last two `::` segments.
///
/// `app::cache::Cache` becomes `cache::Cache`; `hello::Reverser` and names
/// without `::` (such as `stdout`) are returned unchanged.
pub fn shorten_component(full: &str) -> &str {
    match full.rmatch_indices("::").nth(1) {
        Some((i, sep)) => &full[i + sep.len()..],
        None => full,
    }
}

/// The first 8 characters of an id (a deployment or weavelet id), or the
/// whole id if it is shorter.
pub fn short_id(id: &str) -> &str {
    match id.char_indices().nth(NODE_WIDTH) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

/// Whether `e` is a system entry, i.e. carries the [`SYSTEM_ATTR`] key.
pub fn is_system(e: &LogEntry) -> bool {
    e.attrs.chunks(2).any(|kv| kv[0] == SYSTEM_ATTR)
}

/// Formats a time in microseconds since the Unix epoch as RFC 3339 in UTC
/// with exactly six fractional digits, e.g. `2024-01-02T03:04:05.000006Z`.
pub fn rfc3339_micros(time_micros: i64) -> String {
    let t = CivilTime::from_micros(time_micros);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.micros
    )
}

/// Quotes `s` the way Go's `%q` does: double quotes, `\"` and `\\`, the C
/// escapes for control characters that have one, `\xNN` for other ASCII
/// controls and `\uNNNN` (`\UNNNNNNNN`) for other non-printable characters.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    quote_into(&mut out, s);
    out
}

fn quote_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || is_invisible(c) => {
                let _ = if (c as u32) <= 0xffff {
                    write!(out, "\\u{:04x}", c as u32)
                } else {
                    write!(out, "\\U{:08x}", c as u32)
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Characters that print as nothing and would make a value ambiguous.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{feff}')
}

/// How an attribute's value prints.
enum AttrText<'a> {
    /// Quoted.
    Str(&'a str),
    /// As it is: a number or a boolean.
    Bare(&'a dyn std::fmt::Display),
}

impl<'a> AttrText<'a> {
    fn of(a: &'a LogAttr) -> Self {
        match &a.value {
            Some(log_attr::Value::Str(s)) => AttrText::Str(s),
            Some(log_attr::Value::Int(i)) => AttrText::Bare(i),
            Some(log_attr::Value::Uint(u)) => AttrText::Bare(u),
            Some(log_attr::Value::Float(f)) => AttrText::Bare(f),
            Some(log_attr::Value::Bool(b)) => AttrText::Bare(b),
            None => AttrText::Str(""),
        }
    }
}

/// A broken-down UTC time.
struct CivilTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
}

impl CivilTime {
    fn from_micros(time_micros: i64) -> Self {
        let secs = time_micros.div_euclid(1_000_000);
        let micros = time_micros.rem_euclid(1_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            micros,
        }
    }
}

/// The proleptic Gregorian (year, month, day) of a day count since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Pretty-prints log entries as single human-readable lines.
///
/// It is stateful: columns grow to the widest component and `file:line`
/// seen so far (at least 20 characters each), and, with color, the parts of
/// a line that repeat the previous line are dimmed. Use one printer per
/// output stream.
///
/// ```
/// use weaver_proto::logging::PrettyPrinter;
/// use weaver_proto::runtime::LogEntry;
///
/// let e = LogEntry {
///     component: "hello::Reverser".into(),
///     node: "076cb5f1-5c4e-4b8e-8f0e-2d1a7b9c0d3e".into(),
///     time_micros: 1_695_290_851_733_831,
///     level: "info".into(),
///     file: "src/main.rs".into(),
///     line: 164,
///     msg: "Reversing".into(),
///     attrs: vec!["key".into(), "value".into()],
///     ..Default::default()
/// };
/// assert_eq!(
///     PrettyPrinter::new(false).format(&e),
///     "I0921 10:07:31.733831 hello::Reverser      076cb5f1 main.rs:164          │ Reversing key=\"value\"",
/// );
/// ```
#[derive(Debug)]
pub struct PrettyPrinter {
    color: bool,
    component_padding: usize,
    source_padding: usize,
    /// The previous line's second (for dimming the repeated time prefix)
    /// and its component, node and source columns.
    prev: Option<Prev>,
}

#[derive(Debug)]
struct Prev {
    second: i64,
    component: String,
    node: String,
    source: String,
}

// === impl PrettyPrinter ===

impl PrettyPrinter {
    /// A printer; with `color`, lines carry ANSI 256-color escapes.
    pub fn new(color: bool) -> Self {
        Self {
            color,
            component_padding: COMPONENT_PADDING,
            source_padding: SOURCE_PADDING,
            prev: None,
        }
    }

    /// Formats `e` as one line, without a trailing newline.
    pub fn format(&mut self, e: &LogEntry) -> String {
        let mut out = String::with_capacity(128 + e.msg.len());
        self.format_into(e, &mut out);
        out
    }

    /// Appends the line for `e` (without a trailing newline) to `out`.
    pub fn format_into(&mut self, e: &LogEntry, out: &mut String) {
        let error = e.level.eq_ignore_ascii_case("error");
        let accent = if error { Some(RED) } else { None };
        let second = e.time_micros.div_euclid(1_000_000);
        let component = shorten_component(&e.component);
        let node = short_id(&e.node);
        let source = source(e);

        // The leading run of columns equal to the previous line's.
        let prev = self.prev.as_ref();
        let same_second = prev.is_some_and(|p| p.second == second);
        let same_component = prev.is_some_and(|p| p.component == component);
        let same_node = same_component && prev.is_some_and(|p| p.node == node);
        let same_source = same_node && prev.is_some_and(|p| p.source == source);

        self.paint(out, accent, &level_letter(&e.level));
        self.write_time(out, e.time_micros, same_second, accent);
        out.push(' ');
        self.component_padding = self.component_padding.max(width(component));
        let dim = if same_component { Some(DIM) } else { None };
        self.paint_padded(out, dim, component, self.component_padding);
        out.push(' ');
        let dim = if same_node { Some(DIM) } else { None };
        self.paint_padded(out, dim, node, NODE_WIDTH);
        out.push(' ');
        self.source_padding = self.source_padding.max(width(&source));
        let dim = if same_source { Some(DIM) } else { None };
        self.paint_padded(out, dim, &source, self.source_padding);
        self.paint(out, Some(DIM), " │ ");
        self.paint(out, accent, &e.msg);
        self.write_attrs(out, e);

        self.prev = Some(Prev {
            second,
            component: component.to_owned(),
            node: node.to_owned(),
            source,
        });
    }

    /// Writes `MMDD HH:MM:SS.uuuuuu`, dimming all but the microseconds when
    /// the second repeats the previous line's.
    fn write_time(
        &self,
        out: &mut String,
        time_micros: i64,
        same_second: bool,
        accent: Option<&str>,
    ) {
        let t = CivilTime::from_micros(time_micros);
        let prefix = format!(
            "{:02}{:02} {:02}:{:02}:{:02}.",
            t.month, t.day, t.hour, t.minute, t.second
        );
        let micros = format!("{:06}", t.micros);
        if same_second {
            self.paint(out, Some(DIM), &prefix);
            self.paint(out, accent, &micros);
        } else {
            self.paint(out, accent, &(prefix + &micros));
        }
    }

    /// Writes ` key="value"` for each attribute but [`SYSTEM_ATTR`], sorted
    /// by key (stable, so repeated keys keep their order): strings quoted,
    /// other typed values (`n=5`, `ok=true`) bare.
    fn write_attrs(&self, out: &mut String, e: &LogEntry) {
        let strings = e
            .attrs
            .chunks_exact(2)
            .map(|kv| (kv[0].as_str(), AttrText::Str(&kv[1])));
        let typed = e
            .typed_attrs
            .iter()
            .map(|a| (a.key.as_str(), AttrText::of(a)));
        let mut attrs: Vec<(&str, AttrText<'_>)> = strings
            .chain(typed)
            .filter(|(k, _)| *k != SYSTEM_ATTR)
            .collect();
        attrs.sort_by_key(|(k, _)| *k);
        for (k, v) in attrs {
            out.push(' ');
            if self.color {
                out.push_str(DIM);
                out.push_str(k);
                out.push('=');
                out.push_str(RESET);
            } else {
                out.push_str(k);
                out.push('=');
            }
            match v {
                AttrText::Str(s) => quote_into(out, s),
                AttrText::Bare(v) => {
                    let _ = write!(out, "{v}");
                }
            }
        }
    }

    /// Writes `s`, in `color` if coloring is on and a color is given.
    fn paint(&self, out: &mut String, color: Option<&str>, s: &str) {
        match color {
            Some(code) if self.color => {
                out.push_str(code);
                out.push_str(s);
                out.push_str(RESET);
            }
            _ => out.push_str(s),
        }
    }

    /// Like [`Self::paint`], left-aligned and padded with spaces to `pad`
    /// characters (the escapes do not count).
    fn paint_padded(&self, out: &mut String, color: Option<&str>, s: &str, pad: usize) {
        self.paint(out, color, s);
        for _ in width(s)..pad {
            out.push(' ');
        }
    }
}

impl Default for PrettyPrinter {
    /// A printer without color.
    fn default() -> Self {
        Self::new(false)
    }
}

/// `basename:line`, or empty if the entry has no file or no line.
fn source(e: &LogEntry) -> String {
    if e.file.is_empty() || e.line < 0 {
        return String::new();
    }
    let base = e.file.rsplit('/').next().unwrap_or(&e.file);
    format!("{base}:{}", e.line)
}

/// The upper-cased first character of a level (`S` for stdout/stderr), or a
/// space if the level is empty.
fn level_letter(level: &str) -> String {
    match level.chars().next() {
        Some(c) => c.to_uppercase().collect(),
        None => " ".to_owned(),
    }
}

/// Display width, counted in characters (components, ids and file names are
/// ASCII in practice).
fn width(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests;
