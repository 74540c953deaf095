//! A static type checker for queries, run before any log is read.
//!
//! Every variable's type is known (see [`variable`]), so a query that can
//! never evaluate to a boolean — `1 + 1`, `nosuchfn(msg)`, `app.contains()`,
//! `msg > 3`, `level == 1` — is refused with its position rather than
//! matching nothing. The rules are those of the CEL standard library as the
//! `cel` crate implements it; `dyn` (an attribute's value, say) is accepted
//! wherever a value is, so the checker never refuses a query that could
//! succeed on some entry.

use std::collections::HashSet;
use std::fmt;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, SourceInfo, operators};

use super::VARIABLES;
use super::rewrite::{TYPE_NAMES, position_for, position_of, snippet};
use crate::QueryError;

/// A CEL type, as far as the checker tracks it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    Timestamp,
    Duration,
    Type,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    /// Any type: known only when an entry is evaluated.
    Dyn,
}

/// A parameter of a standard function: a type, ignoring element types.
#[derive(Debug, Clone, Copy, PartialEq)]
enum P {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Timestamp,
    Duration,
    List,
    Map,
    Any,
}

/// One overload of a standard function: `receiver.name(params) -> ret`, or
/// `name(params) -> ret` without a receiver.
struct Sig {
    name: &'static str,
    receiver: Option<P>,
    params: &'static [P],
    ret: R,
}

/// The result of an overload.
#[derive(Clone, Copy)]
enum R {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Timestamp,
    Duration,
    Type,
    Dyn,
}

/// The standard library of `cel::Env::stdlib()`, but for the operators,
/// which [`Checker::operator`] handles.
const SIGS: &[Sig] = &[
    sig("size", None, &[P::String], R::Int),
    sig("size", None, &[P::Bytes], R::Int),
    sig("size", None, &[P::List], R::Int),
    sig("size", None, &[P::Map], R::Int),
    sig("size", Some(P::String), &[], R::Int),
    sig("size", Some(P::Bytes), &[], R::Int),
    sig("size", Some(P::List), &[], R::Int),
    sig("size", Some(P::Map), &[], R::Int),
    sig("contains", Some(P::String), &[P::String], R::Bool),
    sig("startsWith", Some(P::String), &[P::String], R::Bool),
    sig("endsWith", Some(P::String), &[P::String], R::Bool),
    sig("matches", Some(P::String), &[P::String], R::Bool),
    sig("matches", None, &[P::String, P::String], R::Bool),
    sig("bool", None, &[P::Bool], R::Bool),
    sig("bool", None, &[P::String], R::Bool),
    sig("bytes", None, &[P::String], R::Bytes),
    sig("bytes", None, &[P::Bytes], R::Bytes),
    sig("double", None, &[P::Double], R::Double),
    sig("double", None, &[P::Int], R::Double),
    sig("double", None, &[P::Uint], R::Double),
    sig("double", None, &[P::String], R::Double),
    sig("int", None, &[P::Int], R::Int),
    sig("int", None, &[P::Uint], R::Int),
    sig("int", None, &[P::Double], R::Int),
    sig("int", None, &[P::String], R::Int),
    sig("int", None, &[P::Timestamp], R::Int),
    sig("uint", None, &[P::Uint], R::Uint),
    sig("uint", None, &[P::Int], R::Uint),
    sig("uint", None, &[P::Double], R::Uint),
    sig("uint", None, &[P::String], R::Uint),
    sig("string", None, &[P::String], R::String),
    sig("string", None, &[P::Bool], R::String),
    sig("string", None, &[P::Int], R::String),
    sig("string", None, &[P::Uint], R::String),
    sig("string", None, &[P::Double], R::String),
    sig("string", None, &[P::Bytes], R::String),
    sig("string", None, &[P::Timestamp], R::String),
    sig("string", None, &[P::Duration], R::String),
    sig("duration", None, &[P::String], R::Duration),
    sig("duration", None, &[P::Duration], R::Duration),
    sig("timestamp", None, &[P::String], R::Timestamp),
    sig("timestamp", None, &[P::Timestamp], R::Timestamp),
    sig("timestamp", None, &[P::Int], R::Timestamp),
    sig("dyn", None, &[P::Any], R::Dyn),
    sig("type", None, &[P::Any], R::Type),
    sig("getFullYear", Some(P::Timestamp), &[], R::Int),
    sig("getFullYear", Some(P::Timestamp), &[P::String], R::Int),
    sig("getMonth", Some(P::Timestamp), &[], R::Int),
    sig("getMonth", Some(P::Timestamp), &[P::String], R::Int),
    sig("getDayOfYear", Some(P::Timestamp), &[], R::Int),
    sig("getDayOfYear", Some(P::Timestamp), &[P::String], R::Int),
    sig("getDayOfMonth", Some(P::Timestamp), &[], R::Int),
    sig("getDayOfMonth", Some(P::Timestamp), &[P::String], R::Int),
    sig("getDate", Some(P::Timestamp), &[], R::Int),
    sig("getDate", Some(P::Timestamp), &[P::String], R::Int),
    sig("getDayOfWeek", Some(P::Timestamp), &[], R::Int),
    sig("getDayOfWeek", Some(P::Timestamp), &[P::String], R::Int),
    sig("getHours", Some(P::Timestamp), &[], R::Int),
    sig("getHours", Some(P::Timestamp), &[P::String], R::Int),
    sig("getMinutes", Some(P::Timestamp), &[], R::Int),
    sig("getMinutes", Some(P::Timestamp), &[P::String], R::Int),
    sig("getSeconds", Some(P::Timestamp), &[], R::Int),
    sig("getSeconds", Some(P::Timestamp), &[P::String], R::Int),
    sig("getMilliseconds", Some(P::Timestamp), &[], R::Int),
    sig("getMilliseconds", Some(P::Timestamp), &[P::String], R::Int),
    sig("getHours", Some(P::Duration), &[], R::Int),
    sig("getMinutes", Some(P::Duration), &[], R::Int),
    sig("getSeconds", Some(P::Duration), &[], R::Int),
    sig("getMilliseconds", Some(P::Duration), &[], R::Int),
    // The optional library (`x.?f`, `m[?k]` give optionals).
    sig("hasValue", Some(P::Any), &[], R::Bool),
    sig("value", Some(P::Any), &[], R::Dyn),
    sig("or", Some(P::Any), &[P::Any], R::Dyn),
    sig("orValue", Some(P::Any), &[P::Any], R::Dyn),
];

/// What checking found out, for the rewrite.
#[derive(Debug, Default)]
pub(super) struct Checked {
    /// The ids of the calls whose value is a boolean.
    pub(super) bool_calls: HashSet<u64>,
}

struct Checker<'s> {
    src: &'s str,
    info: &'s SourceInfo,
    /// Names bound by the enclosing comprehensions, innermost last.
    scope: Vec<(String, Ty)>,
    checked: Checked,
}

const fn sig(name: &'static str, receiver: Option<P>, params: &'static [P], ret: R) -> Sig {
    Sig {
        name,
        receiver,
        params,
        ret,
    }
}

/// The type of the variable `name`.
pub(super) fn variable(name: &str) -> Option<Ty> {
    match name {
        "time" => Some(Ty::Timestamp),
        "attrs" => Some(Ty::Map(Box::new(Ty::String), Box::new(Ty::Dyn))),
        n if VARIABLES.contains(&n) => Some(Ty::String),
        _ => None,
    }
}

/// Checks `expr`; the query must be a condition.
///
/// # Errors
///
/// [`QueryError::UnknownVariable`], [`QueryError::Type`] or
/// [`QueryError::NotBool`], with the position of the offending part.
pub(super) fn check(src: &str, info: &SourceInfo, expr: &IdedExpr) -> Result<Checked, QueryError> {
    let mut c = Checker {
        src,
        info,
        scope: Vec::new(),
        checked: Checked::default(),
    };
    let ty = c.check(expr)?;
    if !matches!(ty, Ty::Bool | Ty::Dyn) {
        let at = position_of(src, start_of(src, info, expr));
        return Err(QueryError::NotBool {
            got: ty.to_string(),
            at,
            snippet: snippet(src, at),
        });
    }
    Ok(c.checked)
}

// === impl Checker ===

impl Checker<'_> {
    fn check(&mut self, e: &IdedExpr) -> Result<Ty, QueryError> {
        match &e.expr {
            Expr::Literal(l) => Ok(literal(l)),
            Expr::Ident(name) => self.ident(name, e.id),
            Expr::Select(s) => {
                let operand = self.check(&s.operand)?;
                let field = match &operand {
                    Ty::Map(k, v) if matches!(**k, Ty::String | Ty::Dyn) => (**v).clone(),
                    Ty::Dyn => Ty::Dyn,
                    other => {
                        return Err(self.error(
                            e.id,
                            format!("{} has no fields: `.{}` needs a map", an(&other), s.field),
                        ));
                    }
                };
                Ok(if s.test { Ty::Bool } else { field })
            }
            Expr::Call(call) => {
                let target = match &call.target {
                    Some(t) => Some(self.check(t)?),
                    None => None,
                };
                let mut args = Vec::with_capacity(call.args.len());
                for arg in &call.args {
                    args.push(self.check(arg)?);
                }
                let ty = self.call(e.id, &call.func_name, target.as_ref(), &args)?;
                if ty == Ty::Bool {
                    self.checked.bool_calls.insert(e.id);
                }
                Ok(ty)
            }
            Expr::List(list) => {
                let mut elem = None;
                for x in &list.elements {
                    let t = self.check(x)?;
                    elem = Some(join(elem, t));
                }
                Ok(Ty::List(Box::new(elem.unwrap_or(Ty::Dyn))))
            }
            Expr::Map(map) => {
                let (mut key, mut value) = (None, None);
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(kv) = &entry.expr {
                        let k = self.check(&kv.key)?;
                        let v = self.check(&kv.value)?;
                        key = Some(join(key, k));
                        value = Some(join(value, v));
                    }
                }
                let key = Box::new(key.unwrap_or(Ty::Dyn));
                Ok(Ty::Map(key, Box::new(value.unwrap_or(Ty::Dyn))))
            }
            Expr::Struct(s) => Err(self.error(
                e.id,
                format!("unknown message type `{}`: queries have none", s.type_name),
            )),
            Expr::Comprehension(c) => {
                let range = self.check(&c.iter_range)?;
                // (one variable; two variables): a list gives its element, or
                // index and element; a map its key, or key and value.
                let (one, first, second) = match range {
                    Ty::List(t) => ((*t).clone(), Ty::Int, *t),
                    Ty::Map(k, v) => ((*k).clone(), *k, *v),
                    Ty::Dyn => (Ty::Dyn, Ty::Dyn, Ty::Dyn),
                    other => {
                        return Err(self.error(
                            c.iter_range.id,
                            format!("cannot iterate over {}", an(&other)),
                        ));
                    }
                };
                let accu = self.check(&c.accu_init)?;
                let outer = self.scope.len();
                match &c.iter_var2 {
                    Some(var2) => {
                        self.scope.push((c.iter_var.clone(), first));
                        self.scope.push((var2.clone(), second));
                    }
                    None => self.scope.push((c.iter_var.clone(), one)),
                }
                self.scope.push((c.accu_var.clone(), accu));
                self.check(&c.loop_cond)?;
                self.check(&c.loop_step)?;
                let result = self.check(&c.result);
                self.scope.truncate(outer);
                result
            }
            Expr::Unspecified => Ok(Ty::Dyn),
        }
    }

    fn ident(&self, name: &str, id: u64) -> Result<Ty, QueryError> {
        if let Some((_, t)) = self.scope.iter().rev().find(|(n, _)| n == name) {
            return Ok(t.clone());
        }
        if let Some(t) = variable(name) {
            return Ok(t);
        }
        if TYPE_NAMES.contains(&name) {
            return Ok(Ty::Type);
        }
        let at = position_for(self.src, self.info, id);
        Err(QueryError::UnknownVariable {
            name: name.to_owned(),
            at,
            snippet: snippet(self.src, at),
        })
    }

    fn call(
        &self,
        id: u64,
        name: &str,
        target: Option<&Ty>,
        args: &[Ty],
    ) -> Result<Ty, QueryError> {
        if target.is_none()
            && let Some(result) = self.operator(id, name, args)
        {
            return result;
        }
        self.function(id, name, target, args)
    }

    /// The type of an operator applied to `args`, or `None` if `name` is
    /// not an operator.
    fn operator(&self, id: u64, name: &str, args: &[Ty]) -> Option<Result<Ty, QueryError>> {
        use operators as op;
        let symbol = match name {
            op::LOGICAL_AND => "&&",
            op::LOGICAL_OR => "||",
            op::LOGICAL_NOT => "!",
            op::CONDITIONAL => "?:",
            op::EQUALS => "==",
            op::NOT_EQUALS => "!=",
            op::LESS => "<",
            op::LESS_EQUALS => "<=",
            op::GREATER => ">",
            op::GREATER_EQUALS => ">=",
            op::ADD => "+",
            op::SUBSTRACT => "-",
            op::MULTIPLY => "*",
            op::DIVIDE => "/",
            op::MODULO => "%",
            op::NEGATE => "-",
            op::INDEX => "[]",
            op::IN => "in",
            op::NOT_STRICTLY_FALSE | op::OPT_INDEX | op::OPT_SELECT => {
                return Some(Ok(if name == op::NOT_STRICTLY_FALSE {
                    Ty::Bool
                } else {
                    Ty::Dyn
                }));
            }
            _ => return None,
        };
        let ty = match (name, args) {
            (op::LOGICAL_AND | op::LOGICAL_OR, [a, b]) if is_bool(a) && is_bool(b) => {
                Some(Ty::Bool)
            }
            (op::LOGICAL_NOT, [a]) if is_bool(a) => Some(Ty::Bool),
            (op::CONDITIONAL, [c, a, b]) if is_bool(c) => Some(join(Some(a.clone()), b.clone())),
            (op::EQUALS | op::NOT_EQUALS, [a, b]) if comparable(a, b) => Some(Ty::Bool),
            (op::LESS | op::LESS_EQUALS | op::GREATER | op::GREATER_EQUALS, [a, b]) => {
                orderable(a, b).then_some(Ty::Bool)
            }
            (op::NEGATE, [a]) => match a {
                Ty::Int | Ty::Double | Ty::Dyn => Some(a.clone()),
                _ => None,
            },
            (op::INDEX, [a, i]) => index(a, i),
            (op::IN, [x, c]) => match c {
                Ty::List(t) if comparable(x, t) => Some(Ty::Bool),
                Ty::Map(k, _) if comparable(x, k) => Some(Ty::Bool),
                Ty::Dyn => Some(Ty::Bool),
                _ => None,
            },
            (_, [a, b]) => arithmetic(name, a, b),
            _ => None,
        };
        Some(ty.ok_or_else(|| {
            let message = match args {
                [a] => format!("`{symbol}` cannot be applied to {}", an(a)),
                [a, b] if symbol == "in" => {
                    format!("`in` cannot look for {} in {}", an(a), an(b))
                }
                [a, b] if symbol == "[]" => format!("{} cannot be indexed by {}", an(a), an(b)),
                [a, b] => format!("`{symbol}` cannot be applied to {} and {}", an(a), an(b)),
                [c, _, _] => format!("the condition of `?:` is {}, not a bool", an(c)),
                _ => format!("`{symbol}` takes other operands"),
            };
            self.error(id, message)
        }))
    }

    fn function(
        &self,
        id: u64,
        name: &str,
        target: Option<&Ty>,
        args: &[Ty],
    ) -> Result<Ty, QueryError> {
        let same_name: Vec<&Sig> = SIGS.iter().filter(|s| s.name == name).collect();
        let candidates: Vec<&Sig> = same_name
            .iter()
            .copied()
            .filter(|s| s.receiver.is_some() == target.is_some())
            .collect();
        if same_name.is_empty() {
            let what = if target.is_some() {
                "method"
            } else {
                "function"
            };
            return Err(self.call_error(id, name, format!("unknown {what} `{name}`")));
        }
        let mut result: Option<Ty> = None;
        for s in &candidates {
            let receiver_ok = match (s.receiver, target) {
                (Some(p), Some(t)) => accepts(p, t),
                _ => true,
            };
            if receiver_ok
                && s.params.len() == args.len()
                && s.params.iter().zip(args).all(|(p, a)| accepts(*p, a))
            {
                let ret = ret_type(s.ret);
                // Several overloads fit a `dyn` argument: the result is known
                // only if they agree.
                result = Some(match result {
                    None => ret,
                    Some(r) if r == ret => r,
                    Some(_) => Ty::Dyn,
                });
            }
        }
        result.ok_or_else(|| {
            let call = call_text(name, target, args);
            let want: Vec<String> = same_name.iter().map(|s| s.to_string()).collect();
            let want = match want.as_slice() {
                [one] => one.clone(),
                many => format!("one of {}", many.join(", ")),
            };
            self.call_error(id, name, format!("no overload for {call}; want {want}"))
        })
    }

    /// An error about the call `id` to `name`, pointing at the name.
    fn call_error(&self, id: u64, name: &str, message: String) -> QueryError {
        let start = name_start(self.src, offset(self.info, id), name);
        let at = position_of(self.src, start);
        QueryError::Type {
            message,
            at,
            snippet: snippet(self.src, at),
        }
    }

    fn error(&self, id: u64, message: String) -> QueryError {
        let at = position_for(self.src, self.info, id);
        QueryError::Type {
            message,
            at,
            snippet: snippet(self.src, at),
        }
    }
}

fn literal(l: &LiteralValue) -> Ty {
    match l {
        LiteralValue::Boolean(_) => Ty::Bool,
        LiteralValue::Bytes(_) => Ty::Bytes,
        LiteralValue::Double(_) => Ty::Double,
        LiteralValue::Int(_) => Ty::Int,
        LiteralValue::Null => Ty::Null,
        LiteralValue::String(_) => Ty::String,
        LiteralValue::UInt(_) => Ty::Uint,
    }
}

fn is_bool(t: &Ty) -> bool {
    matches!(t, Ty::Bool | Ty::Dyn)
}

fn is_number(t: &Ty) -> bool {
    matches!(t, Ty::Int | Ty::Uint | Ty::Double)
}

/// The type of a value that is either an `a` or a `b`.
fn join(a: Option<Ty>, b: Ty) -> Ty {
    match a {
        None => b,
        Some(a) if a == b => a,
        Some(Ty::List(x)) => match b {
            Ty::List(y) => Ty::List(Box::new(join(Some(*x), *y))),
            _ => Ty::Dyn,
        },
        Some(Ty::Map(k, v)) => match b {
            Ty::Map(k2, v2) => {
                Ty::Map(Box::new(join(Some(*k), *k2)), Box::new(join(Some(*v), *v2)))
            }
            _ => Ty::Dyn,
        },
        Some(_) => Ty::Dyn,
    }
}

/// Whether `==` between an `a` and a `b` can be true: the same type, two
/// numbers (CEL compares numbers across types), or `dyn`.
fn comparable(a: &Ty, b: &Ty) -> bool {
    match (a, b) {
        (Ty::Dyn, _) | (_, Ty::Dyn) => true,
        (Ty::List(x), Ty::List(y)) => comparable(x, y),
        (Ty::Map(k, v), Ty::Map(k2, v2)) => comparable(k, k2) && comparable(v, v2),
        _ => a == b || (is_number(a) && is_number(b)),
    }
}

/// Whether `<` applies to an `a` and a `b`.
fn orderable(a: &Ty, b: &Ty) -> bool {
    let ordered = |t: &Ty| {
        matches!(
            t,
            Ty::Int
                | Ty::Uint
                | Ty::Double
                | Ty::String
                | Ty::Bytes
                | Ty::Bool
                | Ty::Timestamp
                | Ty::Duration
                | Ty::Dyn
        )
    };
    ordered(a)
        && ordered(b)
        && (a == b || matches!(a, Ty::Dyn) || matches!(b, Ty::Dyn) || is_number(a) && is_number(b))
}

fn index(a: &Ty, i: &Ty) -> Option<Ty> {
    match a {
        Ty::List(t) if matches!(i, Ty::Int | Ty::Uint | Ty::Dyn) => Some((**t).clone()),
        Ty::Map(k, v) if comparable(k, i) => Some((**v).clone()),
        Ty::Dyn => Some(Ty::Dyn),
        _ => None,
    }
}

/// `+ - * / %` on an `a` and a `b`.
fn arithmetic(name: &str, a: &Ty, b: &Ty) -> Option<Ty> {
    use Ty::*;
    use operators as op;
    match (name, a, b) {
        (_, Dyn, Dyn) => Some(Dyn),
        (op::ADD, Int, Int) | (op::SUBSTRACT, Int, Int) => Some(Int),
        (op::ADD, Uint, Uint) | (op::SUBSTRACT, Uint, Uint) => Some(Uint),
        (op::ADD, Double, Double) | (op::SUBSTRACT, Double, Double) => Some(Double),
        (op::MULTIPLY | op::DIVIDE, Int, Int) => Some(Int),
        (op::MULTIPLY | op::DIVIDE, Uint, Uint) => Some(Uint),
        (op::MULTIPLY | op::DIVIDE, Double, Double) => Some(Double),
        (op::MODULO, Int, Int) => Some(Int),
        (op::MODULO, Uint, Uint) => Some(Uint),
        (op::ADD, String, String) => Some(String),
        (op::ADD, Bytes, Bytes) => Some(Bytes),
        (op::ADD, List(x), List(y)) => {
            Some(List(Box::new(join(Some((**x).clone()), (**y).clone()))))
        }
        (op::ADD, Timestamp, Duration) | (op::ADD, Duration, Timestamp) => Some(Timestamp),
        (op::SUBSTRACT, Timestamp, Duration) => Some(Timestamp),
        (op::SUBSTRACT, Timestamp, Timestamp) => Some(Duration),
        (op::ADD | op::SUBSTRACT, Duration, Duration) => Some(Duration),
        // With one side unknown, the other must be a type the operator
        // takes at all.
        (_, Dyn, t) | (_, t, Dyn) => {
            let takes = match name {
                op::ADD => matches!(
                    t,
                    Int | Uint | Double | String | Bytes | List(_) | Timestamp | Duration
                ),
                op::SUBSTRACT => matches!(t, Int | Uint | Double | Timestamp | Duration),
                op::MODULO => matches!(t, Int | Uint),
                _ => is_number(t),
            };
            takes.then_some(Dyn)
        }
        _ => None,
    }
}

fn accepts(p: P, t: &Ty) -> bool {
    matches!(
        (p, t),
        (P::Any, _)
            | (_, Ty::Dyn)
            | (P::Bool, Ty::Bool)
            | (P::Int, Ty::Int)
            | (P::Uint, Ty::Uint)
            | (P::Double, Ty::Double)
            | (P::String, Ty::String)
            | (P::Bytes, Ty::Bytes)
            | (P::Timestamp, Ty::Timestamp)
            | (P::Duration, Ty::Duration)
            | (P::List, Ty::List(_))
            | (P::Map, Ty::Map(..))
    )
}

fn ret_type(r: R) -> Ty {
    match r {
        R::Bool => Ty::Bool,
        R::Int => Ty::Int,
        R::Uint => Ty::Uint,
        R::Double => Ty::Double,
        R::String => Ty::String,
        R::Bytes => Ty::Bytes,
        R::Timestamp => Ty::Timestamp,
        R::Duration => Ty::Duration,
        R::Type => Ty::Type,
        R::Dyn => Ty::Dyn,
    }
}

/// `t` with its article: "an int", "a string".
pub(crate) fn an(t: &dyn fmt::Display) -> String {
    let t = t.to_string();
    let article = if t.starts_with(['a', 'e', 'i', 'o']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

/// `string.contains()`, `size(int)`: a call as the checker saw it.
fn call_text(name: &str, target: Option<&Ty>, args: &[Ty]) -> String {
    let args: Vec<String> = args.iter().map(Ty::to_string).collect();
    match target {
        Some(t) => format!("{t}.{name}({})", args.join(", ")),
        None => format!("{name}({})", args.join(", ")),
    }
}

/// The offset (in characters) where the text of `e` starts: that of its
/// leftmost node.
fn start_of(src: &str, info: &SourceInfo, e: &IdedExpr) -> usize {
    let mut e = e;
    loop {
        e = match &e.expr {
            Expr::Call(c) => match (&c.target, c.args.first()) {
                (Some(t), _) => t,
                // Operators start at their left operand.
                (None, Some(first)) if c.func_name.starts_with('_') => first,
                // A call's node is at its `(`: back up over the name.
                _ => return name_start(src, offset(info, e.id), &c.func_name),
            },
            Expr::Select(s) => &s.operand,
            _ => return offset(info, e.id),
        };
    }
}

fn offset(info: &SourceInfo, id: u64) -> usize {
    info.offset_for(id).map_or(0, |(start, _)| start as usize)
}

/// Where `name` starts, given the offset of the `(` after it.
fn name_start(src: &str, paren: usize, name: &str) -> usize {
    let before: String = src.chars().take(paren).collect();
    let trimmed = before.trim_end();
    match trimmed.strip_suffix(name) {
        Some(rest) => rest.chars().count(),
        None => paren,
    }
}

// === impl Ty ===

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Bool => f.write_str("bool"),
            Ty::Int => f.write_str("int"),
            Ty::Uint => f.write_str("uint"),
            Ty::Double => f.write_str("double"),
            Ty::String => f.write_str("string"),
            Ty::Bytes => f.write_str("bytes"),
            Ty::Null => f.write_str("null"),
            Ty::Timestamp => f.write_str("timestamp"),
            Ty::Duration => f.write_str("duration"),
            Ty::Type => f.write_str("type"),
            Ty::List(t) => write!(f, "list({t})"),
            Ty::Map(k, v) => write!(f, "map({k}, {v})"),
            Ty::Dyn => f.write_str("dyn"),
        }
    }
}

// === impl Sig ===

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<&str> = self.params.iter().map(|p| p.name()).collect();
        match self.receiver {
            Some(r) => write!(f, "{}.{}({})", r.name(), self.name, params.join(", ")),
            None => write!(f, "{}({})", self.name, params.join(", ")),
        }
    }
}

impl P {
    fn name(self) -> &'static str {
        match self {
            P::Bool => "bool",
            P::Int => "int",
            P::Uint => "uint",
            P::Double => "double",
            P::String => "string",
            P::Bytes => "bytes",
            P::Timestamp => "timestamp",
            P::Duration => "duration",
            P::List => "list",
            P::Map => "map",
            P::Any => "dyn",
        }
    }
}
