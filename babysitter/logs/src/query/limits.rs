//! Bounds on a query's size and depth, so that parsing, checking and
//! evaluating it cannot overflow the stack.
//!
//! All three recurse over the expression tree, and a long chain such as
//! `1 + 1 + …` is a tree as deep as the chain is long; cel's parser alone
//! takes some 150 KB of stack per level of parentheses in a debug build.
//! So before parsing, a lexical scan bounds the length, the bracket nesting
//! and the number of operators (which bound the depth of the tree), and
//! parsing and checking run on a thread with a large stack; after rewriting,
//! the tree's depth is measured without recursion and bounded for
//! evaluation, which runs on the caller's thread.

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr, SourceInfo};

use super::rewrite::{position_for, position_of, snippet};
use crate::QueryError;

/// The longest query accepted, in bytes.
pub(super) const MAX_LEN: usize = 16 << 10;

/// How deep brackets (`(`, `[`, `{`) may nest.
pub(super) const MAX_NESTING: usize = 24;

/// How many operators a query may have, counting operator characters in
/// strings too (`&&` and `||` are not counted: the parser balances their
/// chains, so they do not deepen the tree).
pub(super) const MAX_OPERATORS: usize = 256;

/// How deep the rewritten expression tree may be. Evaluation recurses once
/// per level on the caller's thread: 40 levels fit in a 2 MiB thread stack
/// even in a debug build.
pub(super) const MAX_DEPTH: usize = 40;

/// Checks `src` against [`MAX_LEN`], [`MAX_NESTING`] and [`MAX_OPERATORS`]
/// without parsing it.
///
/// # Errors
///
/// [`QueryError::TooComplex`] at the first place a limit is exceeded.
pub(super) fn scan(src: &str) -> Result<(), QueryError> {
    if src.len() > MAX_LEN {
        let offset = src.char_indices().take_while(|(i, _)| *i < MAX_LEN).count();
        return Err(too_complex(
            src,
            offset,
            format!(
                "the query is {} bytes long; the limit is {MAX_LEN}",
                src.len()
            ),
        ));
    }
    // Strings and comments are scanned like the rest: a lexer that skipped
    // them would have to agree exactly with cel's on where they end, which
    // recovers from a bad literal by lexing what follows as code.
    let chars: Vec<char> = src.chars().collect();
    let (mut depth, mut operators) = (0usize, 0usize);
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let operator = match c {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    let message = format!("brackets nest more than {MAX_NESTING} deep");
                    return Err(too_complex(src, i, message));
                }
                // `[` indexes as well as opening a list.
                c == '['
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                false
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while chars
                    .get(i + 1)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    i += 1;
                }
                chars[start..=i] == ['i', 'n']
            }
            '=' => i == 0 || !"=!<>".contains(chars[i - 1]),
            // `.` selects; a number's `.` counts too, erring on the safe side.
            '+' | '-' | '*' | '/' | '%' | '<' | '>' | '!' | '.' | '?' => true,
            _ => false,
        };
        if operator {
            operators += 1;
            if operators > MAX_OPERATORS {
                let message = format!("the query has more than {MAX_OPERATORS} operators");
                return Err(too_complex(src, i, message));
            }
        }
        i += 1;
    }
    Ok(())
}

/// Checks that `expr` is at most [`MAX_DEPTH`] deep.
///
/// # Errors
///
/// [`QueryError::TooComplex`] at the first node too deep.
pub(super) fn check_depth(src: &str, info: &SourceInfo, expr: &IdedExpr) -> Result<(), QueryError> {
    let mut stack = vec![(expr, 1usize)];
    while let Some((e, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            let at = position_for(src, info, e.id);
            return Err(QueryError::TooComplex {
                message: format!(
                    "the query nests more than {MAX_DEPTH} levels of operators and calls"
                ),
                at,
                snippet: snippet(src, at),
            });
        }
        let next = depth + 1;
        match &e.expr {
            Expr::Call(c) => {
                stack.extend(c.target.iter().map(|t| (t.as_ref(), next)));
                stack.extend(c.args.iter().map(|a| (a, next)));
            }
            Expr::Select(s) => stack.push((&s.operand, next)),
            Expr::List(l) => stack.extend(l.elements.iter().map(|x| (x, next))),
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(kv) = &entry.expr {
                        stack.push((&kv.key, next));
                        stack.push((&kv.value, next));
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        stack.push((&f.value, next));
                    }
                }
            }
            Expr::Comprehension(c) => {
                for part in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    stack.push((part, next));
                }
            }
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    Ok(())
}

fn too_complex(src: &str, offset: usize, message: String) -> QueryError {
    let at = position_of(src, offset);
    QueryError::TooComplex {
        message,
        at,
        snippet: snippet(src, at),
    }
}
