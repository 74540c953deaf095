use super::*;

const NODE: &str = "076cb5f1-5c4e-4b8e-8f0e-2d1a7b9c0d3e";
/// 2023-09-21 10:07:31.733831 UTC.
const T: i64 = 1_695_290_851_733_831;

fn entry(level: &str, component: &str, file: &str, line: i32, msg: &str) -> LogEntry {
    LogEntry {
        app: "hello".into(),
        version: "8f1c0a7e-0000-4000-8000-000000000000".into(),
        component: component.into(),
        node: NODE.into(),
        time_micros: T,
        level: level.into(),
        file: file.into(),
        line,
        msg: msg.into(),
        attrs: vec![],
        typed_attrs: vec![],
    }
}

#[test]
fn shorten_component_keeps_last_two_segments() {
    assert_eq!(shorten_component("app::cache::Cache"), "cache::Cache");
    assert_eq!(shorten_component("a::b::c::D"), "c::D");
    assert_eq!(shorten_component("hello::Reverser"), "hello::Reverser");
    assert_eq!(shorten_component("weaver::Main"), "weaver::Main");
    assert_eq!(shorten_component("stdout"), "stdout");
    assert_eq!(shorten_component(""), "");
}

#[test]
fn short_id_is_the_first_eight_chars() {
    assert_eq!(short_id(NODE), "076cb5f1");
    assert_eq!(short_id("abc"), "abc");
    assert_eq!(short_id("12345678"), "12345678");
    assert_eq!(short_id("ééééééééé"), "éééééééé");
}

#[test]
fn is_system_looks_for_the_key() {
    let mut e = entry("info", "weaver::Main", "", -1, "m");
    assert!(!is_system(&e));
    e.attrs = vec!["a".into(), SYSTEM_ATTR.into()]; // a value, not a key
    assert!(!is_system(&e));
    e.attrs = vec!["a".into(), "b".into(), SYSTEM_ATTR.into(), String::new()];
    assert!(is_system(&e));
}

#[test]
fn rfc3339_micros_in_utc() {
    assert_eq!(rfc3339_micros(T), "2023-09-21T10:07:31.733831Z");
    assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
    assert_eq!(rfc3339_micros(-1), "1969-12-31T23:59:59.999999Z");
    assert_eq!(
        rfc3339_micros(951_868_799_999_999),
        "2000-02-29T23:59:59.999999Z"
    );
    assert_eq!(
        rfc3339_micros(253_402_300_799_999_999),
        "9999-12-31T23:59:59.999999Z"
    );
}

#[test]
fn quote_escapes_like_go() {
    assert_eq!(quote("plain"), r#""plain""#);
    assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
    assert_eq!(quote("\n\t\r\u{7}\u{0}\u{7f}"), r#""\n\t\r\a\x00\x7f""#);
    assert_eq!(quote("é\u{85}\u{feff}"), r#""é\u0085\ufeff""#);
}

#[test]
fn pretty_line_with_source_and_sorted_attrs() {
    let mut e = entry(
        "info",
        "hello::Reverser",
        "src/bin/main.rs",
        164,
        "Reversing",
    );
    e.attrs = vec![
        "zeta".into(),
        "1".into(),
        SYSTEM_ATTR.into(),
        String::new(),
        "alpha".into(),
        "two words \"quoted\"".into(),
    ];
    assert_eq!(
        PrettyPrinter::new(false).format(&e),
        "I0921 10:07:31.733831 hello::Reverser      076cb5f1 main.rs:164          │ \
         Reversing alpha=\"two words \\\"quoted\\\"\" zeta=\"1\""
    );
}

#[test]
fn pretty_line_without_source() {
    let e = entry("debug", "app::cache::Cache", "", 12, "no file");
    assert_eq!(
        PrettyPrinter::new(false).format(&e),
        "D0921 10:07:31.733831 cache::Cache         076cb5f1                      │ no file"
    );
    let e = entry("warn", "app::cache::Cache", "x.rs", -1, "no line");
    assert_eq!(
        PrettyPrinter::new(false).format(&e),
        "W0921 10:07:31.733831 cache::Cache         076cb5f1                      │ no line"
    );
}

#[test]
fn pretty_stdout_and_error_letters() {
    let mut pp = PrettyPrinter::new(false);
    let e = entry("stdout", "stdout", "", -1, "hello from a child");
    assert_eq!(
        pp.format(&e),
        "S0921 10:07:31.733831 stdout               076cb5f1                      │ hello from a child"
    );
    let e = entry("error", "hello::Reverser", "", -1, "boom");
    assert_eq!(
        pp.format(&e),
        "E0921 10:07:31.733831 hello::Reverser      076cb5f1                      │ boom"
    );
    let e = entry("", "hello::Reverser", "", -1, "no level");
    assert!(pp.format(&e).starts_with(" 0921 10:07:31.733831 "));
}

#[test]
fn pretty_columns_grow_to_the_widest_seen() {
    let mut pp = PrettyPrinter::new(false);
    let long = entry(
        "info",
        "x::AVeryLongComponentName",
        "a_long_file_name_here.rs",
        1000,
        "a",
    );
    assert_eq!(
        pp.format(&long),
        "I0921 10:07:31.733831 x::AVeryLongComponentName 076cb5f1 a_long_file_name_here.rs:1000 │ a"
    );
    let short = entry("info", "hello::Reverser", "m.rs", 1, "b");
    assert_eq!(
        pp.format(&short),
        "I0921 10:07:31.733831 hello::Reverser           076cb5f1 m.rs:1                        │ b"
    );
}

#[test]
fn pretty_color_marks_errors_and_dims_repeats() {
    let mut pp = PrettyPrinter::new(true);
    let e = entry("error", "hello::Reverser", "main.rs", 7, "boom");
    assert_eq!(
        pp.format(&e),
        "\x1b[38;5;9mE\x1b[0m\x1b[38;5;9m0921 10:07:31.733831\x1b[0m hello::Reverser      \
         076cb5f1 main.rs:7           \x1b[38;5;245m │ \x1b[0m\x1b[38;5;9mboom\x1b[0m"
    );
    // Same second, component, node and source: all dimmed, and the
    // microseconds keep the level's color (none for info).
    let mut e = entry("info", "hello::Reverser", "main.rs", 7, "again");
    e.time_micros += 1;
    e.attrs = vec!["k".into(), "v".into()];
    assert_eq!(
        pp.format(&e),
        "I\x1b[38;5;245m0921 10:07:31.\x1b[0m733832 \x1b[38;5;245mhello::Reverser\x1b[0m      \
         \x1b[38;5;245m076cb5f1\x1b[0m \x1b[38;5;245mmain.rs:7\x1b[0m           \
         \x1b[38;5;245m │ \x1b[0magain \x1b[38;5;245mk=\x1b[0m\"v\""
    );
    // A new component breaks the leading run: node and source are not
    // dimmed even though they repeat.
    let mut e = entry("info", "hello::Other", "main.rs", 7, "x");
    e.time_micros += 2_000_000;
    assert_eq!(
        pp.format(&e),
        "I0921 10:07:33.733831 hello::Other         076cb5f1 main.rs:7           \
         \x1b[38;5;245m │ \x1b[0mx"
    );
}

#[test]
fn typed_attributes_print_bare_after_string_ones_sorted_by_key() {
    use crate::runtime::{LogAttr, log_attr::Value};
    let mut e = entry("info", "hello::Reverser", "src/main.rs", 1, "paid");
    e.attrs = vec!["kind".into(), "card".into()];
    let attr = |key: &str, value| LogAttr {
        key: key.into(),
        value,
    };
    e.typed_attrs = vec![
        attr("amount", Some(Value::Int(-5))),
        attr("ok", Some(Value::Bool(true))),
        attr("rate", Some(Value::Float(0.5))),
        attr("n", Some(Value::Uint(7))),
        attr("user", Some(Value::Str("ada".into()))),
        attr("none", None),
    ];
    let line = PrettyPrinter::new(false).format(&e);
    assert!(
        line.ends_with(
            "│ paid amount=-5 kind=\"card\" n=7 none=\"\" ok=true rate=0.5 user=\"ada\""
        ),
        "{line}"
    );
}
