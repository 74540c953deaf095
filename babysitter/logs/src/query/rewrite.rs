//! Checks a parsed query and rewrites it for evaluation.
//!
//! Checks, so that a bad query fails before any log is read rather than
//! silently matching nothing: every `matches` pattern and `timestamp`
//! argument written as a literal parses. (Names and types are checked
//! before, by the `check` module.)
//!
//! Rewrites:
//! - `s.matches("re")` (and `matches(s, "re")`) becomes a call to a function
//!   holding the precompiled regex;
//! - `timestamp("...")` becomes a constant, parsed once;
//! - string literals compared with `level` are lower-cased;
//! - a condition on `attrs["k"]` (or `attrs.k`), such as `attrs["k"] == "v"`
//!   or `size(attrs["k"]) > 3`, is guarded as `"k" in attrs && ...`, so a
//!   missing key is false rather than an error (as in Service Weaver). The
//!   guard goes on the innermost call whose value is a boolean, so that it
//!   never turns a number into a boolean.

use cel::common::ast::{CallExpr, Expr, ListExpr, LiteralValue, SourceInfo, operators};
use cel::common::types::{CelInt, CelString};
use cel::{IdedExpr, ParseErrors};
use chrono::{DateTime, FixedOffset};
use regex::Regex;

use super::MATCHES_FN;
use super::check::Checked;
use crate::{Position, QueryError};

/// CEL type names, which are identifiers too (`type(x) == string`).
pub(super) const TYPE_NAMES: [&str; 11] = [
    "bool",
    "bytes",
    "double",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
];

/// What the rewritten query needs at run time.
#[derive(Debug, Default)]
pub(super) struct Consts {
    /// The `matches` patterns, by the index the rewritten calls pass.
    pub(super) regexes: Vec<Regex>,
    /// The `timestamp` constants, by variable name.
    pub(super) timestamps: Vec<(String, DateTime<FixedOffset>)>,
}

struct Rewriter<'s> {
    src: &'s str,
    info: &'s SourceInfo,
    checked: &'s Checked,
    consts: Consts,
    /// The next id for a node made here.
    next_id: u64,
}

/// The error for a query the parser refused.
pub(super) fn syntax_error(src: &str, errors: &ParseErrors) -> QueryError {
    let (message, at) = match errors.errors.first() {
        Some(e) => {
            let line = usize::try_from(e.pos.0).unwrap_or(0).max(1);
            let column = usize::try_from(e.pos.1).unwrap_or(0).max(1);
            (lower_first(&e.msg), Position { line, column })
        }
        None => ("syntax error".to_owned(), Position { line: 1, column: 1 }),
    };
    QueryError::Syntax {
        message,
        at,
        snippet: snippet(src, at),
    }
}

/// Checks and rewrites `expr` in place (see the module docs); `checked`
/// is what the type checker found.
pub(super) fn rewrite(
    src: &str,
    info: &SourceInfo,
    checked: &Checked,
    expr: &mut IdedExpr,
) -> Result<Consts, QueryError> {
    let mut r = Rewriter {
        src,
        info,
        checked,
        consts: Consts::default(),
        next_id: max_id(expr) + 1,
    };
    r.walk(expr)?;
    Ok(r.consts)
}

/// The position of the node `id` in `src`.
pub(super) fn position_for(src: &str, info: &SourceInfo, id: u64) -> Position {
    let offset = info.offset_for(id).map_or(0, |(start, _)| start as usize);
    position_of(src, offset)
}

// === impl Rewriter ===

impl Rewriter<'_> {
    /// Rewrites `e` and what it holds; returns the keys of `attrs["k"]`
    /// operands below that still need a guard (see the module docs).
    fn walk(&mut self, e: &mut IdedExpr) -> Result<Vec<String>, QueryError> {
        let mut pending = Vec::new();
        match &mut e.expr {
            Expr::Call(call) => {
                let operands = call
                    .target
                    .iter_mut()
                    .map(|t| t.as_mut())
                    .chain(call.args.iter_mut());
                let is_index =
                    [operators::INDEX, operators::OPT_INDEX].contains(&call.func_name.as_str());
                for operand in operands {
                    if !is_index {
                        pending.extend(attr_key(operand));
                    }
                    pending.extend(self.walk(operand)?);
                }
                self.rewrite_call(e)?;
                if self.checked.bool_calls.contains(&e.id) {
                    pending.sort();
                    pending.dedup();
                    for key in pending.drain(..) {
                        self.guard(e, key);
                    }
                }
            }
            Expr::Select(select) => pending = self.walk(&mut select.operand)?,
            Expr::List(list) => {
                for elem in &mut list.elements {
                    pending.extend(self.walk(elem)?);
                }
            }
            Expr::Map(map) => {
                for entry in &mut map.entries {
                    if let cel::common::ast::EntryExpr::MapEntry(kv) = &mut entry.expr {
                        pending.extend(self.walk(&mut kv.key)?);
                        pending.extend(self.walk(&mut kv.value)?);
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &mut s.entries {
                    if let cel::common::ast::EntryExpr::StructField(f) = &mut entry.expr {
                        pending.extend(self.walk(&mut f.value)?);
                    }
                }
            }
            Expr::Comprehension(c) => {
                for part in [
                    &mut c.iter_range,
                    &mut c.accu_init,
                    &mut c.loop_cond,
                    &mut c.loop_step,
                    &mut c.result,
                ] {
                    pending.extend(self.walk(part)?);
                }
            }
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
        Ok(pending)
    }

    fn rewrite_call(&mut self, e: &mut IdedExpr) -> Result<(), QueryError> {
        let Expr::Call(call) = &mut e.expr else {
            return Ok(());
        };
        match call.func_name.as_str() {
            "matches" => self.rewrite_matches(call)?,
            "timestamp" => {
                if let Some(name) = self.timestamp_const(call)? {
                    e.expr = Expr::Ident(name);
                }
            }
            operators::EQUALS | operators::NOT_EQUALS | operators::IN => lower_level_literals(call),
            _ => {}
        }
        Ok(())
    }

    /// `s.matches(lit)` / `matches(s, lit)` → `s.@weaver_matches(<index>)`.
    fn rewrite_matches(&mut self, call: &mut CallExpr) -> Result<(), QueryError> {
        let arity_ok = match call.target {
            Some(_) => call.args.len() == 1,
            None => call.args.len() == 2,
        };
        let Some(pattern) = call.args.last().filter(|_| arity_ok) else {
            return Ok(());
        };
        let Some(text) = string_literal(pattern) else {
            // A computed pattern keeps the standard (uncached) function.
            return Ok(());
        };
        let re = Regex::new(text).map_err(|err| {
            let at = self.position(pattern.id);
            QueryError::Regex {
                pattern: text.to_owned(),
                reason: regex_reason(&err),
                at,
                snippet: snippet(self.src, at),
            }
        })?;
        let index = self.consts.regexes.len() as i64;
        self.consts.regexes.push(re);
        let subject = match call.target.take() {
            Some(target) => *target,
            None => call.args.remove(0),
        };
        let index = IdedExpr {
            id: self.fresh_id(),
            expr: Expr::Literal(LiteralValue::Int(CelInt::from(index))),
        };
        *call = CallExpr {
            func_name: MATCHES_FN.to_owned(),
            target: Some(Box::new(subject)),
            args: vec![index],
        };
        Ok(())
    }

    /// The constant's name for `timestamp(lit)`, or `None` for any other
    /// form of the call.
    fn timestamp_const(&mut self, call: &CallExpr) -> Result<Option<String>, QueryError> {
        let [arg] = call.args.as_slice() else {
            return Ok(None);
        };
        let Some(text) = string_literal(arg).filter(|_| call.target.is_none()) else {
            return Ok(None);
        };
        let t = DateTime::parse_from_rfc3339(text).map_err(|_| {
            let at = self.position(arg.id);
            QueryError::Timestamp {
                text: text.to_owned(),
                at,
                snippet: snippet(self.src, at),
            }
        })?;
        let name = format!("@timestamp{}", self.consts.timestamps.len());
        self.consts.timestamps.push((name.clone(), t));
        Ok(Some(name))
    }

    /// Wraps `e` in `"key" in attrs && <e>`.
    fn guard(&mut self, e: &mut IdedExpr, key: String) {
        let key = self.node(Expr::Literal(LiteralValue::String(CelString::from(key))));
        let map = self.node(Expr::Ident("attrs".to_owned()));
        let has = self.node(Expr::Call(CallExpr {
            func_name: operators::IN.to_owned(),
            target: None,
            args: vec![key, map],
        }));
        let guarded = std::mem::take(e);
        let id = self.fresh_id();
        *e = IdedExpr {
            id,
            expr: Expr::Call(CallExpr {
                func_name: operators::LOGICAL_AND.to_owned(),
                target: None,
                args: vec![has, guarded],
            }),
        };
    }

    fn node(&mut self, expr: Expr) -> IdedExpr {
        IdedExpr {
            id: self.fresh_id(),
            expr,
        }
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn position(&self, id: u64) -> Position {
        position_for(self.src, self.info, id)
    }
}

/// The key of `attrs["k"]` or `attrs.k`.
fn attr_key(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Expr::Call(c) if c.func_name == operators::INDEX && c.target.is_none() => {
            match c.args.as_slice() {
                [map, key] if is_ident(map, "attrs") => string_literal(key).map(str::to_owned),
                _ => None,
            }
        }
        Expr::Select(s) if !s.test && is_ident(&s.operand, "attrs") => Some(s.field.clone()),
        _ => None,
    }
}

/// Lower-cases string literals compared with `level` (`level == "INFO"`,
/// `level in ["DEBUG", "INFO"]`).
fn lower_level_literals(call: &mut CallExpr) {
    let [left, right] = call.args.as_mut_slice() else {
        return;
    };
    let literal = if is_ident(left, "level") {
        right
    } else if is_ident(right, "level") && call.func_name != operators::IN {
        left
    } else {
        return;
    };
    match &mut literal.expr {
        Expr::List(ListExpr { elements, .. }) => elements.iter_mut().for_each(lower_literal),
        _ => lower_literal(literal),
    }
}

fn lower_literal(e: &mut IdedExpr) {
    if let Expr::Literal(LiteralValue::String(s)) = &mut e.expr
        && s.inner().bytes().any(|b| b.is_ascii_uppercase())
    {
        *s = CelString::from(s.inner().to_ascii_lowercase());
    }
}

fn is_ident(e: &IdedExpr, name: &str) -> bool {
    matches!(&e.expr, Expr::Ident(n) if n == name)
}

fn string_literal(e: &IdedExpr) -> Option<&str> {
    match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => Some(s.inner()),
        _ => None,
    }
}

fn max_id(e: &IdedExpr) -> u64 {
    let children: Vec<&IdedExpr> = match &e.expr {
        Expr::Call(c) => c.target.iter().map(|t| t.as_ref()).chain(&c.args).collect(),
        Expr::Select(s) => vec![&s.operand],
        Expr::List(l) => l.elements.iter().collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::Map(m) => m
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                cel::common::ast::EntryExpr::MapEntry(kv) => vec![&kv.key, &kv.value],
                cel::common::ast::EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect(),
        Expr::Struct(s) => s
            .entries
            .iter()
            .filter_map(|entry| match &entry.expr {
                cel::common::ast::EntryExpr::StructField(f) => Some(&f.value),
                cel::common::ast::EntryExpr::MapEntry(_) => None,
            })
            .collect(),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => vec![],
    };
    children.into_iter().map(max_id).fold(e.id, u64::max)
}

/// The line and column of the character at `offset`.
pub(super) fn position_of(src: &str, offset: usize) -> Position {
    let mut pos = Position { line: 1, column: 1 };
    for c in src.chars().take(offset) {
        if c == '\n' {
            pos.line += 1;
            pos.column = 1;
        } else {
            pos.column += 1;
        }
    }
    pos
}

/// The query line at `at` and a caret under its column:
///
/// ```text
///   | msg.matches("(")
///   |             ^
/// ```
pub(super) fn snippet(src: &str, at: Position) -> String {
    let line = src.lines().nth(at.line - 1).unwrap_or("");
    let pad: String = line
        .chars()
        .take(at.column - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let pad = if pad.chars().count() < at.column - 1 {
        format!("{pad}{}", " ".repeat(at.column - 1 - pad.chars().count()))
    } else {
        pad
    };
    format!("  | {line}\n  | {pad}^")
}

/// The last line of a regex error ("error: unclosed group"), without its
/// prefix: the rest repeats the pattern with its own caret.
fn regex_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    let last = text.lines().last().unwrap_or(&text).trim();
    last.strip_prefix("error: ").unwrap_or(last).to_owned()
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
