use prost::Message;
use weaver_proto::logging::SYSTEM_ATTR;
use weaver_proto::runtime::{LogAttr, log_attr};

use super::*;
use crate::Position;

const DEPLOYMENT: &str = "8f1c0a7e-1111-4000-8000-000000000000";
const NODE: &str = "076cb5f1-2222-4000-8000-000000000000";
/// 2024-06-01T12:00:00Z.
const JUNE_2024: i64 = 1_717_243_200_000_000;

fn entry(component: &str, level: &str, msg: &str, attrs: &[&str]) -> LogEntry {
    LogEntry {
        app: "hello".into(),
        version: DEPLOYMENT.into(),
        component: component.into(),
        node: NODE.into(),
        time_micros: JUNE_2024,
        level: level.into(),
        file: "src/bin/main.rs".into(),
        line: 12,
        msg: msg.into(),
        attrs: attrs.iter().map(|s| s.to_string()).collect(),
        typed_attrs: Vec::new(),
    }
}

fn info(msg: &str) -> LogEntry {
    entry("hello::Reverser", "info", msg, &[])
}

fn system(msg: &str) -> LogEntry {
    entry("weaver::Main", "info", msg, &[SYSTEM_ATTR, ""])
}

/// Whether `q` matches `e`, checked both on the owned entry and on the
/// in-place view of its encoding (the two evaluation paths must agree).
fn is_match(q: &str, include_system: bool, e: &LogEntry) -> bool {
    let query = Query::parse(q, include_system).unwrap_or_else(|err| panic!("{q}: {err}"));
    let owned = query.matches(e);
    let bytes = e.encode_to_vec();
    let view = EntryView::decode(&bytes).expect("valid entry");
    assert_eq!(
        owned,
        query.matches_view(&view),
        "the two paths disagree on {q}"
    );
    owned
}

fn matches(q: &str, e: &LogEntry) -> bool {
    is_match(q, false, e)
}

fn error(q: &str) -> QueryError {
    match Query::parse(q, false) {
        Ok(_) => panic!("{q} parsed"),
        Err(e) => e,
    }
}

#[test]
fn empty_query_matches_everything_but_system_entries() {
    for q in ["", "  \n "] {
        assert!(matches(q, &info("x")));
        assert!(!matches(q, &system("x")));
        assert!(is_match(q, true, &system("x")));
    }
}

#[test]
fn equality_on_component_and_level() {
    let q = r#"component == "hello::Reverser" && level == "info""#;
    assert!(matches(q, &info("x")));
    assert!(!matches(q, &entry("hello::Reverser", "debug", "x", &[])));
    assert!(!matches(q, &entry("hello::Other", "info", "x", &[])));
}

#[test]
fn component_is_shortened_and_full_component_is_not() {
    let e = entry("app::cache::Cache", "info", "x", &[]);
    assert!(matches(r#"component == "cache::Cache""#, &e));
    assert!(matches(r#"full_component == "app::cache::Cache""#, &e));
    assert!(!matches(r#"component == "app::cache::Cache""#, &e));
}

#[test]
fn ids_are_short_or_full() {
    let e = info("x");
    assert!(matches(r#"version == "8f1c0a7e""#, &e));
    assert!(matches(&format!("full_version == {DEPLOYMENT:?}"), &e));
    assert!(matches(r#"node == "076cb5f1""#, &e));
    assert!(matches(&format!("full_node == {NODE:?}"), &e));
    assert!(matches(r#"app == "hello" && app != "bye""#, &e));
}

#[test]
fn levels_compare_in_lower_case() {
    let debug = entry("hello::Reverser", "debug", "x", &[]);
    assert!(matches(r#"level=="debug""#, &debug));
    assert!(matches(r#"level == "DEBUG""#, &debug));
    assert!(matches(r#""Debug" == level"#, &debug));
    // An entry stored by an older writer with an upper-case level.
    assert!(matches(
        r#"level == "debug""#,
        &entry("c", "DEBUG", "x", &[])
    ));
}

#[test]
fn in_list() {
    let q = r#"level in ["debug", "INFO"]"#;
    assert!(matches(q, &info("x")));
    assert!(matches(q, &entry("c", "debug", "x", &[])));
    assert!(!matches(q, &entry("c", "error", "x", &[])));
}

#[test]
fn string_functions() {
    let e = info("error: file /tmp/a already closed");
    assert!(matches(r#"msg.contains("already")"#, &e));
    assert!(!matches(r#"msg.contains("nope")"#, &e));
    assert!(matches(
        r#"msg.startsWith("error:") && msg.endsWith("closed")"#,
        &e
    ));
    assert!(matches(
        r#"msg.matches("error: file .* already closed")"#,
        &e
    ));
    assert!(matches(r#"msg.matches("^error")"#, &e));
    assert!(!matches(r#"msg.matches("^closed")"#, &e));
    assert!(matches(r#"matches(msg, "a.r")"#, &e));
    // A computed pattern falls back to the standard function.
    assert!(matches(r#"msg.matches("^" + "error")"#, &e));
}

#[test]
fn source_is_file_colon_line() {
    assert!(matches(r#"source == "src/bin/main.rs:12""#, &info("x")));
    assert!(matches(r#"source.contains("main.rs")"#, &info("x")));
    let mut out = entry("stdout", "stdout", "printed", &[]);
    out.file.clear();
    out.line = -1;
    assert!(matches(r#"source == ":-1""#, &out));
}

#[test]
fn time_compares_with_timestamps() {
    let e = info("x");
    assert!(matches(r#"time > timestamp("2024-01-01T00:00:00Z")"#, &e));
    assert!(!matches(r#"time > timestamp("2025-01-01T00:00:00Z")"#, &e));
    assert!(matches(
        r#"time == timestamp("2024-06-01T14:00:00+02:00")"#,
        &e
    ));
    assert!(matches(
        r#"time - timestamp("2024-06-01T11:00:00Z") == duration("1h")"#,
        &e
    ));
}

#[test]
fn attrs_index_select_and_in() {
    let e = entry("c", "info", "x", &["user", "ana", "k", "v"]);
    assert!(matches(r#"attrs["k"] == "v""#, &e));
    assert!(matches(r#"attrs.user == "ana""#, &e));
    assert!(matches(r#""k" in attrs"#, &e));
    assert!(!matches(r#""missing" in attrs"#, &e));
    assert!(matches(r#"attrs["user"].startsWith("a")"#, &e));
    assert!(matches(r#"attrs["user"] in ["ana", "bob"]"#, &e));
    assert!(matches("size(attrs) == 2", &e));
    assert!(matches(r#"attrs.exists(key, key == "user")"#, &e));
    assert!(matches(r#"has(attrs.user) && !has(attrs.nope)"#, &e));
}

/// An entry with typed attributes (and one string one).
fn typed(attrs: &[(&str, log_attr::Value)]) -> LogEntry {
    let mut e = entry("c", "info", "paid", &["kind", "card"]);
    e.typed_attrs = attrs
        .iter()
        .map(|(k, v)| LogAttr {
            key: (*k).into(),
            value: Some(v.clone()),
        })
        .collect();
    e
}

#[test]
fn typed_attrs_keep_their_type() {
    use log_attr::Value;
    let e = typed(&[
        ("amount", Value::Int(150)),
        ("count", Value::Uint(3)),
        ("rate", Value::Float(0.5)),
        ("ok", Value::Bool(true)),
        ("user", Value::Str("ada".into())),
    ]);
    assert!(matches(r#"attrs["amount"] > 100"#, &e));
    assert!(!matches(r#"attrs["amount"] > 200"#, &e));
    assert!(matches("attrs.amount == 150 && attrs.amount == 150.0", &e));
    assert!(matches("attrs.count == 3u && attrs.count > 2", &e));
    assert!(matches("attrs.rate < 1.0 && attrs.ok", &e));
    assert!(matches(
        r#"attrs.user == "ada" && attrs.kind == "card""#,
        &e
    ));
    assert!(matches("size(attrs) == 6", &e));
    // An old, string-valued entry stays queryable as a string; compared
    // with a number it fails evaluation, and is counted.
    let old = entry("c", "info", "paid", &["amount", "150"]);
    assert!(matches(r#"attrs.amount == "150""#, &old));
    let q = Query::parse("attrs.amount > 100", false).expect("valid query");
    assert!(!q.matches(&old));
    assert_eq!(q.eval_errors().map(|e| e.count), Some(1));
    // A typed value wins over a string one of the same key.
    let mut both = typed(&[("kind", Value::Int(1))]);
    both.attrs = vec!["kind".into(), "card".into()];
    assert!(matches("attrs.kind == 1", &both));
}

#[test]
fn missing_attrs_are_false_not_errors() {
    let e = entry("c", "info", "x", &["k", "v"]);
    assert!(!matches(r#"attrs["missing"] == "x""#, &e));
    assert!(!matches(r#"attrs.missing == "x""#, &e));
    assert!(!matches(r#"attrs["missing"] != "x""#, &e));
    assert!(!matches(r#"attrs["missing"].contains("x")"#, &e));
    assert!(matches(r#"!(attrs["missing"] == "x")"#, &e));
    assert!(matches(
        r#"attrs["missing"] == "x" || attrs["k"] == "v""#,
        &e
    ));
}

#[test]
fn not_and_or() {
    let e = info("hello");
    assert!(matches(r#"!(level == "error")"#, &e));
    assert!(!matches(r#"!msg.contains("hello")"#, &e));
    assert!(matches(r#"level == "error" || msg.contains("hell")"#, &e));
    assert!(!matches(r#"level == "error" || msg.contains("bye")"#, &e));
    assert!(matches(
        r#"(level == "error" || level == "info") && !(app == "x")"#,
        &e
    ));
}

#[test]
fn system_entries_stay_hidden_under_or() {
    // Service Weaver appends `&& !system` without parentheses, so `a || b`
    // leaked system entries matching `a`. Here the whole query is wrapped.
    let q = r#"component == "weaver::Main" || msg.contains("zzz")"#;
    assert!(!matches(q, &system("starting")));
    assert!(is_match(q, true, &system("starting")));
    assert!(matches(q, &entry("weaver::Main", "info", "app log", &[])));
}

#[test]
fn failing_evaluation_is_no_match_and_is_counted() {
    let e = entry("c", "info", "x", &["n", "3"]);
    let q = Query::parse(r#"attrs["n"] > 2"#, false).expect("valid query"); // string vs int
    assert!(q.eval_errors().is_none());
    assert!(!q.matches(&e));
    assert!(!q.matches(&e));
    let errors = q.eval_errors().expect("two failures");
    assert_eq!(errors.count, 2);
    assert_eq!(
        format!("{errors}: {}", errors.first),
        "2 entries could not be evaluated: found no matching overload for '_>_' applied to \
         '(string, int)'"
    );

    // A value that is not a boolean, and a computed regex that is not one.
    let q = Query::parse(r#"attrs["n"]"#, false).expect("valid query");
    assert!(!q.matches(&e));
    let errors = q.eval_errors().expect("one failure");
    assert_eq!(
        errors.first.to_string(),
        "the query gave a string, not a bool"
    );
    let q = Query::parse(r#"msg.matches("(" + attrs.n)"#, false).expect("valid query");
    assert!(!q.matches(&e));
    assert_eq!(q.eval_errors().map(|e| e.count), Some(1));
    // Missing attributes are false, not failures.
    let q = Query::parse(r#"attrs["missing"] == "x""#, false).expect("valid query");
    assert!(!q.matches(&e));
    assert!(q.eval_errors().is_none());
}

#[test]
fn files_are_pruned_by_name() {
    let key = |level: &str| FileKey {
        app: "hello".into(),
        version: DEPLOYMENT.into(),
        node: NODE.into(),
        level: level.into(),
    };
    let q = |s: &str| Query::parse(s, false).expect("valid query");
    let error = q(r#"level == "error" && msg.contains("x")"#);
    assert!(error.may_match_file(&key("error")));
    assert!(!error.may_match_file(&key("info")));
    // The unknown part on the left does not prevent pruning.
    let error = q(r#"msg.contains("x") && level == "error""#);
    assert!(!error.may_match_file(&key("info")));
    let either = q(r#"level == "error" || msg.contains("x")"#);
    assert!(either.may_match_file(&key("info")));
    assert!(!q(r#"app == "other""#).may_match_file(&key("info")));
    assert!(!q(r#"version == "deadbeef""#).may_match_file(&key("info")));
    assert!(q(r#"node == "076cb5f1""#).may_match_file(&key("info")));
    assert!(q("").may_match_file(&key("info")));
}

#[test]
fn syntax_errors_point_at_the_position() {
    let err = error("app ==");
    let QueryError::Syntax { at, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*at, Position { line: 1, column: 7 });
    let text = err.to_string();
    assert!(
        text.starts_with(
            "invalid query at line 1, column 7: syntax error: mismatched input '<EOF>'"
        ),
        "{text}"
    );
    assert!(text.ends_with("\n  | app ==\n  |       ^"), "{text}");

    let err = error("level == \"info\" &&\n  msg.contains(\"x\"");
    let QueryError::Syntax { at, snippet, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(at.line, 2, "{err}");
    assert!(
        snippet.starts_with("  |   msg.contains(\"x\"\n"),
        "{snippet}"
    );
}

#[test]
fn unknown_variables_are_named() {
    let err = error(r#"level == "info" && lvl == "x""#);
    assert_eq!(
        err.to_string(),
        "unknown variable `lvl` at line 1, column 20; the variables are app, version, \
         full_version, component, full_component, node, full_node, time, level, source, \
         msg, attrs\n  | level == \"info\" && lvl == \"x\"\n  |                    ^"
    );
    assert!(
        matches!(error("foo.bar == 1"), QueryError::UnknownVariable { name, .. } if name == "foo")
    );
    // Names bound by a comprehension are fine inside it only.
    assert!(Query::parse(r#"attrs.all(k, k != "x")"#, false).is_ok());
    assert!(matches!(
        error(r#"attrs.all(k, k != "x") && k == "y""#),
        QueryError::UnknownVariable { name, .. } if name == "k"
    ));
}

#[test]
fn bad_regex_literals_fail_at_parse_time() {
    let err = error(r#"msg.matches("(")"#);
    assert_eq!(
        err.to_string(),
        "invalid regular expression \"(\" at line 1, column 13: unclosed group\n  \
         | msg.matches(\"(\")\n  |             ^"
    );
    assert!(matches!(
        error(r#"matches(msg, "[z-a]")"#),
        QueryError::Regex { .. }
    ));
}

#[test]
fn bad_timestamp_literals_fail_at_parse_time() {
    let err = error(r#"time > timestamp("yesterday")"#);
    assert!(
        matches!(&err, QueryError::Timestamp { text, .. } if text == "yesterday"),
        "{err}"
    );
}

#[test]
fn non_boolean_queries_are_refused() {
    let got = |q: &str| match error(q) {
        QueryError::NotBool { got, at, .. } => (got, at),
        other => panic!("{q}: {other}"),
    };
    let start = Position { line: 1, column: 1 };
    assert_eq!(got("msg"), ("string".into(), start));
    assert_eq!(got("42"), ("int".into(), start));
    assert_eq!(got("time"), ("timestamp".into(), start));
    assert_eq!(got("1 + 1"), ("int".into(), start));
    assert_eq!(got("[level]"), ("list(string)".into(), start));
    assert_eq!(got("size(msg)"), ("int".into(), start));
    assert_eq!(
        error("attrs").to_string(),
        "invalid query at line 1, column 1: the query is a map(string, dyn), not a condition: \
         compare it, e.g. `msg.contains(\"x\")`\n  | attrs\n  | ^"
    );
    assert_eq!(
        error(" 1 + 1").to_string(),
        "invalid query at line 1, column 2: the query is an int, not a condition: \
         compare it, e.g. `msg.contains(\"x\")`\n  |  1 + 1\n  |  ^"
    );
}

/// The message and position of the type error in `q`.
fn type_error(q: &str) -> (String, Position) {
    match error(q) {
        QueryError::Type { message, at, .. } => (message, at),
        other => panic!("{q}: {other}"),
    }
}

fn at(column: usize) -> Position {
    Position { line: 1, column }
}

#[test]
fn unknown_functions_are_refused() {
    assert_eq!(
        type_error("nosuchfn(msg)"),
        ("unknown function `nosuchfn`".into(), at(1))
    );
    assert_eq!(
        type_error(r#"msg.nosuchfunc("x")"#),
        ("unknown method `nosuchfunc`".into(), at(5))
    );
    let text = error("nosuchfn(msg)").to_string();
    assert_eq!(
        text,
        "invalid query at line 1, column 1: unknown function `nosuchfn`\n  \
         | nosuchfn(msg)\n  | ^"
    );
}

#[test]
fn wrong_arity_and_argument_types_are_refused() {
    assert_eq!(
        type_error("app.contains()"),
        (
            "no overload for string.contains(); want string.contains(string)".into(),
            at(5)
        )
    );
    assert_eq!(
        type_error("msg.contains(1)").0,
        "no overload for string.contains(int); want string.contains(string)"
    );
    assert_eq!(
        type_error("time.contains(\"x\")").0,
        "no overload for timestamp.contains(string); want string.contains(string)"
    );
    assert_eq!(
        type_error("size(time) > 0").0,
        "no overload for size(timestamp); want one of size(string), size(bytes), size(list), \
         size(map), string.size(), bytes.size(), list.size(), map.size()"
    );
    assert!(
        type_error(r#"msg.startsWith("a", "b")"#)
            .0
            .starts_with("no overload")
    );
    assert!(
        type_error(r#"contains(msg, "x")"#)
            .0
            .starts_with("no overload")
    );
}

#[test]
fn type_mismatches_are_refused() {
    assert_eq!(
        type_error("msg > 3"),
        ("`>` cannot be applied to a string and an int".into(), at(5))
    );
    assert_eq!(
        type_error("level == 1"),
        (
            "`==` cannot be applied to a string and an int".into(),
            at(7)
        )
    );
    for q in [
        "msg == 1",
        "1 in [\"a\"]",
        "!msg",
        "msg && true",
        "-msg == msg",
        "msg[0] == \"a\"",
        "msg.foo == \"x\"",
        "time > 3",
        "time - 1 > duration(\"1s\")",
        "msg + 1 == msg",
        "msg ? true : false",
        "\"x\" in msg",
        "msg.exists(c, c == \"a\")",
        "time == null",
        "Foo{a: 1} == 1",
    ] {
        let _ = type_error(q);
    }
}

#[test]
fn documented_queries_pass_the_checker() {
    for q in [
        r#"level=="debug""#,
        r#"app == "todo" && level == "debug""#,
        r#"source.contains("foo.go")"#,
        r#"msg.matches("error: file .* already closed")"#,
        r#"attrs["foo"] == "bar""#,
        r#"attrs.foo == "bar""#,
        r#""foo" in attrs"#,
        r#"time > timestamp("2024-01-01T00:00:00Z")"#,
        r#"time - timestamp("2024-01-01T00:00:00Z") > duration("1h")"#,
        r#"time.getFullYear() == 2024"#,
        r#"level in ["debug","info"]"#,
        r#"msg.startsWith("error") && size(msg) > 3"#,
        r#"!(level == "error") || !msg.contains("x")"#,
        r#"attrs["n"] > 3 && attrs["n"] < 3.5 && attrs.k.startsWith("x")"#,
        r#"attrs.exists(k, k.startsWith("a")) && attrs.all(k, attrs[k] != 1)"#,
        r#"[1, 2].map(x, x * 2).filter(x, x > 2).size() == 1"#,
        r#"[1, 2].exists_one(x, x > 1) && has(attrs.k)"#,
        r#"(size(msg) > 3 ? "long" : "short") == "long""#,
        r#"type(msg) == string && int(time) > 0 && string(1) == "1""#,
        r#"dyn(msg) == 1 || attrs["k"]"#,
        r#"{"a": 1}["a"] == 1u || 1u == 1 || 1.0 == 1"#,
        r#"time.getHours("Europe/Paris") > 1 && duration("1h").getMinutes() == 60"#,
        r#"b"abc" + b"d" == b"abcd" && -1 < 0 && 7 % 2 == 1"#,
    ] {
        if let Err(e) = Query::parse(q, false) {
            panic!("{q}: {e}");
        }
    }
}

#[test]
fn conditions_on_computed_attrs_are_guarded_where_boolean() {
    let e = entry("c", "info", "x", &["k", "long value"]);
    // The guard goes on `>`, not on `size()`, which is a number.
    assert!(matches("size(attrs[\"k\"]) > 3", &e));
    assert!(!matches("size(attrs[\"missing\"]) > 3", &e));
    assert!(matches("size(attrs.k) + 1 == 11", &e));
    let q = Query::parse("size(attrs.missing) > 3", false).expect("valid query");
    assert!(!q.matches(&e));
    assert!(q.eval_errors().is_none());
}

/// The message and position of the limit `q` exceeds.
fn too_complex(q: &str) -> (String, Position) {
    match error(q) {
        QueryError::TooComplex { message, at, .. } => (message, at),
        other => panic!("{}: {other}", &q[..q.len().min(60)]),
    }
}

#[test]
fn long_chains_are_refused_not_overflowing() {
    let n = 10_000;
    for q in [
        format!("{} == 1", vec!["1"; n].join(" + ")),
        format!("{} == 1", vec!["1"; n].join("+")),
        format!("msg{} == \"x\"", ".size()".repeat(n)),
        format!("attrs{} == \"x\"", "[\"k\"]".repeat(n)),
        format!("{}attrs", "\"k\" in ".repeat(n)),
        format!("{}true", "!".repeat(n)),
        vec!["msg == \"x\""; n].join(" || "),
    ] {
        let (message, _) = too_complex(&q);
        assert!(
            message.contains("bytes long") || message.contains("operators"),
            "{message}"
        );
    }
    let (message, at) = too_complex(&format!("{} == 1", vec!["1"; 300].join("+")));
    assert_eq!(message, "the query has more than 256 operators");
    assert_eq!(
        at,
        Position {
            line: 1,
            column: 514
        }
    );
}

#[test]
fn deep_nesting_is_refused_not_overflowing() {
    let n = 10_000;
    for q in [
        format!("{}true{}", "(".repeat(n), ")".repeat(n)),
        format!("{}1{} == 1", "[".repeat(n), "]".repeat(n)),
        format!("{}msg{} == 1", "size(".repeat(n), ")".repeat(n)),
        format!("{}true", "(".repeat(n)),
    ] {
        let (message, at) = too_complex(&q);
        assert!(
            message.contains("bytes long") || message.contains("nest"),
            "{message}"
        );
        assert_eq!(at.line, 1);
    }
    let q = format!("{}true{}", "(".repeat(30), ")".repeat(30));
    let err = error(&q);
    assert_eq!(
        err.to_string(),
        format!(
            "invalid query at line 1, column 25: brackets nest more than 24 deep\n  | {q}\n  | {}^",
            " ".repeat(24)
        )
    );
}

#[test]
fn deep_trees_within_the_scan_limits_are_refused_before_evaluation() {
    // 100 additions pass the lexical scan but make a tree deeper than
    // evaluation may recurse.
    let q = format!("{} == 100", vec!["1"; 100].join(" + "));
    let (message, _) = too_complex(&q);
    assert_eq!(
        message,
        "the query nests more than 40 levels of operators and calls"
    );
}

#[test]
fn queries_at_the_limits_evaluate_on_a_small_stack() {
    // Test threads have 2 MiB stacks, like any spawned thread.
    let e = entry("c", "info", "x", &["k", "v"]);
    let deepest_sum = format!("{} == 37", vec!["1"; 37].join(" + "));
    assert!(matches(&deepest_sum, &e));
    let nested = format!("{}true{}", "(".repeat(24), ")".repeat(24));
    assert!(matches(&nested, &e));
    let lists = format!("size({}1{}) == 1", "[".repeat(23), "]".repeat(23));
    assert!(matches(&lists, &e));
    let ors = vec![r#"attrs["k"] == "v""#; 120].join(" || ");
    assert!(matches(&ors, &e));
    let macros = "attrs.exists(k, [1, 2].all(x, [3].exists_one(y, k.size() + x + y > 0)))";
    assert!(matches(macros, &e));
}

/// The query front end on arbitrary input: never a panic or a stack
/// overflow, always a query or an error with a position inside the text.
mod front_end {
    use proptest::prelude::*;

    use super::*;

    /// Parses `q` and, if it is a query, evaluates it on an entry.
    fn parse_and_run(q: &str) -> Result<(), TestCaseError> {
        match Query::parse(q, false) {
            Ok(query) => {
                let e = entry("c", "info", "a message", &["k", "v", "n", "3"]);
                let _ = query.matches(&e);
                let bytes = e.encode_to_vec();
                let view = EntryView::decode(&bytes).expect("valid entry");
                let _ = query.matches_view(&view);
            }
            Err(err) => {
                let at = err.position();
                let lines = q.split('\n').count();
                prop_assert!(at.line >= 1 && at.line <= lines, "{at:?} in {q:?}: {err}");
                let line_len = q
                    .split('\n')
                    .nth(at.line - 1)
                    .map_or(0, |l| l.chars().count());
                prop_assert!(
                    at.column >= 1 && at.column <= line_len + 1,
                    "{at:?} in {q:?}: {err}"
                );
                prop_assert!(err.to_string().ends_with('^'), "{err}");
            }
        }
        Ok(())
    }

    /// Pieces of CEL, so that random queries get past the lexer.
    fn token() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "msg",
            "level",
            "attrs",
            "time",
            "app",
            "k",
            "x",
            "\"a\"",
            "'b'",
            "r\"\\\"",
            "1",
            "2u",
            "3.5",
            "true",
            "null",
            "b\"x\"",
            "==",
            "!=",
            "<",
            ">=",
            "+",
            "-",
            "*",
            "/",
            "%",
            "!",
            "&&",
            "||",
            "?",
            ":",
            "in",
            ".",
            ",",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "contains",
            "size",
            "matches",
            "exists",
            "all",
            "map",
            "has",
            "timestamp",
            "duration",
            "\"2024-01-01T00:00:00Z\"",
            "\"1h\"",
            "\"(\"",
            " ",
            "\n",
            "//c\n",
        ])
    }

    fn chain_op() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            " + ", "+", " - ", " * ", " && ", " || ", " == ", " < ", ".", " in ", "[",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_string(q in "\\PC{0,80}") {
            parse_and_run(&q)?;
        }

        #[test]
        fn token_soup(tokens in prop::collection::vec(token(), 0..40)) {
            parse_and_run(&tokens.concat())?;
        }

        #[test]
        fn deep_nesting(
            depth in 0usize..12_000,
            open in prop::sample::select(vec!["(", "[", "{", "size(", "!(", "[1, "]),
            inner in prop::sample::select(vec!["true", "msg", "1", ""]),
            close in prop::sample::select(vec![")", "]", "}", ""]),
        ) {
            parse_and_run(&format!("{}{inner}{}", open.repeat(depth), close.repeat(depth)))?;
        }

        #[test]
        fn long_chains(
            n in 0usize..5_000,
            op in chain_op(),
            term in prop::sample::select(vec!["1", "msg", "attrs", "size()", "\"k\"", "x"]),
            tail in prop::sample::select(vec!["", " == 1", " > msg", ")"]),
        ) {
            let mut q = String::from(term);
            for _ in 0..n {
                q.push_str(op);
                q.push_str(term);
            }
            q.push_str(tail);
            parse_and_run(&q)?;
        }
    }
}
