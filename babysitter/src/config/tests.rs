use std::path::{Path, PathBuf};

use super::*;

const FILE: &str = "/apps/hello/weaver.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, FILE)
}

/// Parses text that must fail and returns the message.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("parsed a bad config: {config:?}"),
        Err(err) => err.to_string(),
    }
}

/// A minimal valid file followed by `rest`.
fn with(rest: &str) -> String {
    format!("[serviceweaver]\nbinary = \"./hello\"\n{rest}")
}

fn known(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[test]
fn full_valid_file() {
    let text = r#"
[serviceweaver]
name = "greeter"
binary = "../../target/release/hello"
args = ["--x", "y"]
env = ["GREETING=hi", "EMPTY=", "EQ=a=b"]
colocate = [["hello::Reverser", "hello::Cache"], ["hello::Solo"]]

[multi]
listeners.hello = { address = "127.0.0.1:12345" }
listeners.admin = { address = "" }
listeners.other = {}
replicas = 3
restart = "never"

[single]
listeners.hello = { address = "127.0.0.1:9000" }

["hello::Reverser"]
Greeting = "Bonjour"
nested.level = 2
"#;
    let config = parse(text).unwrap();
    assert_eq!(config.path(), Path::new(FILE));
    assert_eq!(config.app_name(), "greeter");
    assert_eq!(config.binary(), Path::new("/target/release/hello"));
    assert_eq!(config.args(), ["--x", "y"]);
    let env: Vec<(&str, &str)> = config
        .env()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env, [("GREETING", "hi"), ("EMPTY", ""), ("EQ", "a=b")]);
    assert_eq!(
        config.colocate(),
        [
            known(&["hello::Reverser", "hello::Cache"]),
            known(&["hello::Solo"])
        ]
    );
    assert_eq!(config.group_of("hello::Cache"), "hello::Reverser");
    assert_eq!(config.group_of("hello::Other"), "hello::Other");
    assert_eq!(config.listener_address("hello"), Some("127.0.0.1:12345"));
    assert_eq!(config.listener_address("admin"), None);
    assert_eq!(config.listener_address("other"), None);
    assert_eq!(config.listener_address("missing"), None);
    let listeners: Vec<_> = config.listeners().collect();
    assert_eq!(
        listeners,
        [
            ("admin", None),
            ("hello", Some("127.0.0.1:12345")),
            ("other", None)
        ]
    );
    assert_eq!(config.replicas(), 3);
    assert_eq!(config.restart(), RestartPolicy::Never);
    let sections: Vec<_> = config.sections().keys().collect();
    assert_eq!(sections, ["hello::Reverser"]);
    let section: toml::Table = config.sections()["hello::Reverser"].parse().unwrap();
    let expected: toml::Table = "Greeting = \"Bonjour\"\nnested.level = 2".parse().unwrap();
    assert_eq!(section, expected);
}

#[test]
fn defaults() {
    let config = parse("[serviceweaver]\nbinary = \"bin/hello\"").unwrap();
    assert_eq!(config.app_name(), "hello");
    assert_eq!(config.binary(), Path::new("/apps/hello/bin/hello"));
    assert!(config.args().is_empty());
    assert!(config.env().is_empty());
    assert!(config.colocate().is_empty());
    assert_eq!(config.listeners().count(), 0);
    assert_eq!(config.replicas(), DEFAULT_REPLICAS);
    assert_eq!(config.restart(), RestartPolicy::Always);
    assert_eq!(config.transport(), Transport::Unix);
    assert!(config.sections().is_empty());
}

#[test]
fn transport_is_unix_or_tcp() {
    assert_eq!(
        error(&with("[multi]\ntransport = \"udp\"\n")),
        "/apps/hello/weaver.toml: invalid \"transport\" in [multi]: \"udp\" is not a \
         transport (expected \"unix\" or \"tcp\")"
    );
    let tcp = parse(&with("[multi]\ntransport = \"tcp\"\n")).unwrap();
    assert_eq!(tcp.transport(), Transport::Tcp);
    let unix = parse(&with("[multi]\ntransport = \"unix\"\n")).unwrap();
    assert_eq!(unix.transport(), Transport::Unix);
}

#[test]
fn binary_paths_resolve_against_the_config_dir() {
    let abs = Config::parse("[serviceweaver]\nbinary = \"/usr/bin/hello\"", FILE).unwrap();
    assert_eq!(abs.binary(), Path::new("/usr/bin/hello"));
    let dotted = Config::parse("[serviceweaver]\nbinary = \"./a/../b/./c\"", FILE).unwrap();
    assert_eq!(dotted.binary(), Path::new("/apps/hello/b/c"));
    // A bare file name resolves against the current directory.
    let bare = Config::parse("[serviceweaver]\nbinary = \"hello\"", "weaver.toml").unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(bare.binary(), cwd.join("hello"));
    assert!(bare.binary().is_absolute());
}

#[test]
fn load_reads_the_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weaver.toml");
    std::fs::write(&path, "[serviceweaver]\nbinary = \"hello\"\n").unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.binary(), dir.path().join("hello"));

    let missing = dir.path().join("nope.toml");
    let err = Config::load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert_eq!(
        err.to_string(),
        format!("{}: cannot read config file", missing.display())
    );
}

#[test]
fn syntax_errors_have_line_and_column() {
    let err = error("[serviceweaver]\nbinary = \"x\"\nargs = [\n  \"a\",\n  b\n]\n");
    assert!(
        err.starts_with("/apps/hello/weaver.toml:5:3: invalid TOML: "),
        "{err}"
    );

    assert_eq!(
        error("[multi]\nreplicas = 1\nreplicas = 2\n"),
        "/apps/hello/weaver.toml:3:1: invalid TOML: duplicate key \"replicas\""
    );
    assert_eq!(
        error("[multi]\n[serviceweaver]\nbinary = 'x'\n[multi]\n"),
        "/apps/hello/weaver.toml:4:2: invalid TOML: duplicate key \"multi\""
    );
}

#[test]
fn syntax_error_columns_count_characters() {
    let err = error("[serviceweaver]\nname = \"héllo\" x\n");
    assert!(err.starts_with("/apps/hello/weaver.toml:2:16: "), "{err}");
}

#[test]
fn unknown_keys_name_key_section_and_file() {
    assert_eq!(
        error(&with("[multi]\nreplica = 3\n")),
        "/apps/hello/weaver.toml: unknown key \"replica\" in [multi] \
         (expected one of: listeners, replicas, restart, transport)"
    );
    assert_eq!(
        error(&with("rollout = \"1m\"\n")),
        "/apps/hello/weaver.toml: unknown key \"rollout\" in [serviceweaver] \
         (expected one of: name, binary, args, env, colocate)"
    );
    assert_eq!(
        error(&with("[multi]\nlisteners.hello = { addr = \"x\" }\n")),
        "/apps/hello/weaver.toml: unknown key \"addr\" in [multi.listeners.hello] \
         (expected one of: address)"
    );
}

#[test]
fn the_file_name_is_shown_as_given() {
    let err = Config::parse(&with("[multi]\nreplica = 3\n"), "weaver.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "weaver.toml: unknown key \"replica\" in [multi] \
         (expected one of: listeners, replicas, restart, transport)"
    );
}

#[test]
fn wrong_types_name_the_key_and_the_expected_type() {
    let cases = [
        (
            "[serviceweaver]\nbinary = 1\n".to_owned(),
            "key \"binary\" in [serviceweaver] must be a string, found an integer",
        ),
        (
            with("args = \"--x\"\n"),
            "key \"args\" in [serviceweaver] must be an array of strings, found a string",
        ),
        (
            with("args = [\"a\", 2]\n"),
            "key \"args[1]\" in [serviceweaver] must be a string, found an integer",
        ),
        (
            with("colocate = [\"a\"]\n"),
            "key \"colocate[0]\" in [serviceweaver] must be an array of strings, found a string",
        ),
        (
            with("colocate = [[\"a\", true]]\n"),
            "key \"colocate[0][1]\" in [serviceweaver] must be a string, found a boolean",
        ),
        (
            with("[multi]\nreplicas = \"2\"\n"),
            "key \"replicas\" in [multi] must be an integer, found a string",
        ),
        (
            with("[multi]\nrestart = false\n"),
            "key \"restart\" in [multi] must be a string, found a boolean",
        ),
        (
            with("[multi]\nlisteners = 1\n"),
            "key \"listeners\" in [multi] must be a table, found an integer",
        ),
        (
            with("[multi]\nlisteners.hello = \"127.0.0.1:1\"\n"),
            "key \"hello\" in [multi.listeners] must be a table, found a string",
        ),
        (
            with("[multi]\nlisteners.\"my app\" = { address = 1 }\n"),
            "key \"address\" in [multi.listeners.\"my app\"] must be a string, found an integer",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(error(&text), format!("{FILE}: {message}"), "for {text:?}");
    }
}

#[test]
fn a_top_level_value_is_not_a_section() {
    assert_eq!(
        error("binary = \"x\"\n[serviceweaver]\nname = \"a\"\n"),
        "/apps/hello/weaver.toml: top-level key \"binary\" is not a section \
         (move it under [serviceweaver] or [multi])"
    );
}

#[test]
fn binary_is_required() {
    let expected = "/apps/hello/weaver.toml: missing required key \"binary\" in [serviceweaver]";
    assert_eq!(error("[serviceweaver]\nname = \"x\"\n"), expected);
    assert_eq!(error("[multi]\nreplicas = 1\n"), expected);
    assert_eq!(error(""), expected);
    assert_eq!(
        error("[serviceweaver]\nbinary = \"\"\n"),
        "/apps/hello/weaver.toml: invalid \"binary\" in [serviceweaver]: must not be empty"
    );
}

#[test]
fn empty_name_is_rejected() {
    assert_eq!(
        error(&with("name = \" \"\n")),
        "/apps/hello/weaver.toml: invalid \"name\" in [serviceweaver]: must not be empty"
    );
}

#[test]
fn bad_env_entries_are_rejected() {
    for entry in ["NOEQUALS", "=value"] {
        assert_eq!(
            error(&with(&format!("env = [\"A=1\", \"{entry}\"]\n"))),
            format!(
                "{FILE}: invalid \"env\" in [serviceweaver]: \
                 entry \"{entry}\" is not of the form KEY=VALUE"
            )
        );
    }
}

#[test]
fn components_placed_twice_are_rejected() {
    assert_eq!(
        error(&with(
            "colocate = [[\"a::X\", \"a::Y\"], [\"a::Z\", \"a::X\"]]\n"
        )),
        "/apps/hello/weaver.toml: component \"a::X\" placed multiple times in colocate"
    );
    assert_eq!(
        error(&with("colocate = [[\"a::X\", \"a::X\"]]\n")),
        "/apps/hello/weaver.toml: component \"a::X\" placed multiple times in colocate"
    );
}

#[test]
fn empty_colocation_groups_are_rejected() {
    assert_eq!(
        error(&with("colocate = [[\"a::X\"], []]\n")),
        "/apps/hello/weaver.toml: invalid \"colocate\" in [serviceweaver]: group 1 is empty"
    );
    assert_eq!(
        error(&with("colocate = [[\"\"]]\n")),
        "/apps/hello/weaver.toml: invalid \"colocate\" in [serviceweaver]: group 0 has an empty name"
    );
}

#[test]
fn replicas_must_be_positive() {
    assert_eq!(
        error(&with("[multi]\nreplicas = 0\n")),
        "/apps/hello/weaver.toml: invalid \"replicas\" in [multi]: must be at least 1, got 0"
    );
    assert_eq!(
        error(&with("[multi]\nreplicas = -2\n")),
        "/apps/hello/weaver.toml: invalid \"replicas\" in [multi]: must be at least 1, got -2"
    );
    assert_eq!(
        error(&with("[multi]\nreplicas = 99999999999\n")),
        "/apps/hello/weaver.toml: invalid \"replicas\" in [multi]: 99999999999 is too large"
    );
    assert_eq!(
        parse(&with("[multi]\nreplicas = 1\n")).unwrap().replicas(),
        1
    );
}

#[test]
fn restart_must_be_always_or_never() {
    assert_eq!(
        error(&with("[multi]\nrestart = \"sometimes\"\n")),
        "/apps/hello/weaver.toml: invalid \"restart\" in [multi]: \"sometimes\" is not a \
         restart policy (expected \"always\" or \"never\")"
    );
    let always = parse(&with("[multi]\nrestart = \"always\"\n")).unwrap();
    assert_eq!(always.restart(), RestartPolicy::Always);
    assert_eq!(always.restart().to_string(), "always");
}

#[test]
fn listener_addresses_need_host_and_port() {
    let cases = [
        ("localhost", "\"localhost\" is not of the form host:port"),
        (
            "127.0.0.1:http",
            "\"127.0.0.1:http\" does not end in a port number",
        ),
        (
            "127.0.0.1:70000",
            "\"127.0.0.1:70000\" does not end in a port number",
        ),
        (
            ":8080",
            "\":8080\" has no host (write \"127.0.0.1:8080\" for loopback \
             or \"0.0.0.0:8080\" for every interface)",
        ),
    ];
    for (addr, reason) in cases {
        let text = with(&format!(
            "[multi]\nlisteners.hello = {{ address = \"{addr}\" }}\n"
        ));
        assert_eq!(
            error(&text),
            format!("{FILE}: invalid \"address\" in [multi.listeners.hello]: {reason}")
        );
    }
    let ok = parse(&with(
        "[multi]\nlisteners.a = { address = \"localhost:80\" }\n\
         listeners.b = { address = \"[::1]:0\" }\n",
    ))
    .unwrap();
    assert_eq!(ok.listener_address("a"), Some("localhost:80"));
    assert_eq!(ok.listener_address("b"), Some("[::1]:0"));
}

#[test]
fn single_section_is_ignored() {
    let config = parse(&with("[single]\nanything = [1, 2]\nlisteners.x = 3\n")).unwrap();
    assert!(config.sections().is_empty());
    assert_eq!(config.listeners().count(), 0);
}

#[test]
fn parse_single_reads_single_listeners_and_leaves_multi_alone() {
    let text = with(concat!(
        "[single]\nlisteners.hello = { address = \"127.0.0.1:0\" }\nlisteners.admin = {}\n",
        "[multi]\nreplicas = 0\nbogus = 1\nlisteners.hello = { address = \"127.0.0.1:9\" }\n",
        "[\"hello::Reverser\"]\nGreeting = \"Bonjour\"\n",
    ));
    let config = Config::parse_single(&text, FILE).unwrap();
    assert_eq!(config.listener_address("hello"), Some("127.0.0.1:0"));
    assert_eq!(config.listener_address("admin"), None);
    assert_eq!(config.listeners().count(), 2);
    assert_eq!(config.replicas(), 1);
    assert_eq!(config.binary(), Path::new("/apps/hello/hello"));
    assert_eq!(
        config.sections().keys().collect::<Vec<_>>(),
        ["hello::Reverser"]
    );
    // The same file is a bad one for `weaver multi deploy`.
    assert!(parse(&text).is_err());
}

#[test]
fn parse_single_names_bad_keys_in_single_and_serviceweaver() {
    let single_error = |text: &str| match Config::parse_single(text, FILE) {
        Ok(config) => panic!("parsed a bad config: {config:?}"),
        Err(err) => err.to_string(),
    };
    assert_eq!(
        single_error(&with("[single]\nlistners.hello = {}\n")),
        format!("{FILE}: unknown key \"listners\" in [single] (expected one of: listeners)")
    );
    assert_eq!(
        single_error(&with("[single]\nlisteners.hello = { adress = \"x:1\" }\n")),
        format!(
            "{FILE}: unknown key \"adress\" in [single.listeners.hello] (expected one of: address)"
        )
    );
    assert_eq!(
        single_error(&with(
            "[single]\nlisteners.hello = { address = \"nope\" }\n"
        )),
        format!(
            "{FILE}: invalid \"address\" in [single.listeners.hello]: \"nope\" is not of the form host:port"
        )
    );
    assert_eq!(
        single_error("[serviceweaver]\nbinary = \"./hello\"\nbinnary = 1\n"),
        format!(
            "{FILE}: unknown key \"binnary\" in [serviceweaver] (expected one of: name, binary, args, env, colocate)"
        )
    );
    assert_eq!(
        single_error("[single]\n"),
        format!("{FILE}: missing required key \"binary\" in [serviceweaver]")
    );
}

#[test]
fn validate_components_rejects_unknown_colocated_names() {
    let config = parse(&with(
        "colocate = [[\"hello::Reverser\", \"hello::Reverse\"]]\n",
    ))
    .unwrap();
    let known = known(&["weaver::Main", "hello::Reverser"]);
    assert_eq!(
        config.validate_components(&known).unwrap_err().to_string(),
        "/apps/hello/weaver.toml: unknown component \"hello::Reverse\" in colocate \
         (did you mean \"hello::Reverser\"? known components: hello::Reverser, weaver::Main)"
    );
    let far = parse(&with("colocate = [[\"zzz::Q\"]]\n")).unwrap();
    assert_eq!(
        far.validate_components(&known).unwrap_err().to_string(),
        "/apps/hello/weaver.toml: unknown component \"zzz::Q\" in colocate \
         (known components: hello::Reverser, weaver::Main)"
    );
}

#[test]
fn validate_components_rejects_unknown_sections() {
    let config = parse(&with("[\"Reverser\"]\nGreeting = \"x\"\n")).unwrap();
    let err = config
        .validate_components(&known(&["weaver::Main", "hello::Reverser"]))
        .unwrap_err();
    assert!(matches!(err, ConfigError::UnknownSection { .. }));
    assert_eq!(
        err.to_string(),
        "/apps/hello/weaver.toml: section [\"Reverser\"] names no component of the binary \
         (did you mean \"hello::Reverser\"? known components: hello::Reverser, weaver::Main)"
    );
    assert_eq!(
        config.validate_components(&[]).unwrap_err().to_string(),
        "/apps/hello/weaver.toml: section [\"Reverser\"] names no component of the binary \
         (the binary has no components)"
    );
}

#[test]
fn validate_components_accepts_known_names() {
    let config = parse(&with(
        "colocate = [[\"hello::Reverser\", \"weaver::Main\"]]\n[\"hello::Reverser\"]\nx = 1\n",
    ))
    .unwrap();
    config
        .validate_components(&known(&["weaver::Main", "hello::Reverser"]))
        .unwrap();
}

#[test]
fn validate_listeners_rejects_unknown_names() {
    let config = parse(&with("[multi]\nlisteners.helo = {}\n")).unwrap();
    assert_eq!(
        config
            .validate_listeners(&known(&["hello"]))
            .unwrap_err()
            .to_string(),
        "/apps/hello/weaver.toml: listener \"helo\" in [multi] is not a listener of the binary \
         (did you mean \"hello\"? known listeners: hello)"
    );
    let ok = parse(&with("[multi]\nlisteners.hello = {}\n")).unwrap();
    ok.validate_listeners(&known(&["hello", "admin"])).unwrap();
}

#[test]
fn check_binary_reports_missing_and_unusable_binaries() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let config_at = |binary: &str| {
        let path: PathBuf = dir.path().join("weaver.toml");
        Config::parse(&format!("[serviceweaver]\nbinary = \"{binary}\"\n"), path).unwrap()
    };
    let missing = config_at("nope");
    assert_eq!(
        missing.check_binary().unwrap_err().to_string(),
        format!(
            "{}: binary \"{}\" doesn't exist",
            dir.path().join("weaver.toml").display(),
            dir.path().join("nope").display()
        )
    );

    std::fs::create_dir(dir.path().join("adir")).unwrap();
    let err = config_at("adir").check_binary().unwrap_err().to_string();
    assert!(err.ends_with("adir\" is a directory"), "{err}");

    let file = dir.path().join("plain");
    std::fs::write(&file, "data").unwrap();
    let err = config_at("plain").check_binary().unwrap_err().to_string();
    assert!(err.ends_with("plain\" is not executable"), "{err}");

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    config_at("plain").check_binary().unwrap();
}

#[test]
fn clean_folds_dots() {
    assert_eq!(clean(Path::new("/a/./b/../c")), Path::new("/a/c"));
    assert_eq!(clean(Path::new("/../a")), Path::new("/a"));
    assert_eq!(clean(Path::new("../a/..")), Path::new(".."));
}

#[test]
fn edit_distance_counts_edits() {
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("same", "same"), 0);
}

/// Deeply nested input is refused by the TOML parser's recursion limit,
/// not by a stack overflow, whatever the shape of the nesting.
#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    const DEEP: usize = 10_000;
    let dotted = vec!["a"; DEEP].join(".");
    let cases = [
        format!("a = {}1{}", "[".repeat(DEEP), "]".repeat(DEEP)),
        format!("a = {}1{}", "{b = ".repeat(DEEP), "}".repeat(DEEP)),
        with(&format!(
            "colocate = {}\"x\"{}",
            "[".repeat(DEEP),
            "]".repeat(DEEP)
        )),
        with(&format!("[c]\n{dotted} = 1")),
        with(&format!("[{dotted}]\nx = 1")),
        with(&format!("[[{dotted}]]\nx = 1")),
    ];
    for text in cases {
        let err = error(&text);
        assert!(err.contains("recurs"), "{err}");
    }
}

/// Property tests: any text parses to a config or an error, never a panic.
mod props {
    use proptest::prelude::*;

    use super::*;

    /// Lines a config file might hold, right or wrong.
    const LINES: &[&str] = &[
        "[serviceweaver]",
        "[multi]",
        "[single]",
        "[multi.listeners.hello]",
        "[multi.listeners]",
        "[[serviceweaver]]",
        "[\"hello::Cache\"]",
        "binary = \"./hello\"",
        "binary = \"\"",
        "binary = 7",
        "name = \"app\"",
        "name = [\"app\"]",
        "args = [\"--x\", \"y\"]",
        "args = [1, 2]",
        "env = [\"A=b\", \"C=\", \"D=e=f\"]",
        "env = [\"NOEQ\"]",
        "env = \"A=b\"",
        "colocate = [[\"a\", \"b\"], [\"c\"]]",
        "colocate = [[\"a\"], [\"a\"]]",
        "colocate = [\"a\"]",
        "colocate = [[[\"a\"]]]",
        "replicas = 0",
        "replicas = 3",
        "replicas = -1",
        "replicas = 9223372036854775807",
        "replicas = 1.5",
        "restart = \"always\"",
        "restart = \"never\"",
        "restart = \"sometimes\"",
        "listeners.hello = { address = \"127.0.0.1:12345\" }",
        "listeners.hello = { address = \"\" }",
        "listeners.hello = { address = \"nowhere:-1\" }",
        "listeners.hello = { port = 1 }",
        "listeners.hello = 1",
        "listeners = []",
        "address = \"[::1]:0\"",
        "unknown = true",
        "x.y.z = { a = [1, { b = 2 }] }",
        "a = 1979-05-27T07:32:00Z",
        "s = '''\nmulti\n'''",
        "dup = 1",
        "dup = 2",
        "k = \"\\u00e9\u{1F600}\"",
        "# comment",
        "",
    ];

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 256,
            // Failures print their minimal input; nothing is written to the tree.
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Files made of plausible lines in any order, so the checks past the
    /// TOML syntax are reached.
    fn line_soup() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(LINES), 0..24).prop_map(|lines| lines.join("\n"))
    }

    /// A valid file with random edits: bytes inserted, deleted or replaced.
    fn mutated() -> impl Strategy<Value = String> {
        let base = with(concat!(
            "name = \"a\"\ncolocate = [[\"a\", \"b\"]]\n[multi]\nreplicas = 2\n",
            "listeners.l = { address = \"127.0.0.1:0\" }\n[x]\nk = [1, 2]\n",
        ));
        let bytes: &[u8] = b"[]{}=\"'.,#\n\\ a0:-";
        let edit = (
            any::<prop::sample::Index>(),
            0u8..3,
            prop::sample::select(bytes),
        );
        prop::collection::vec(edit, 1..8).prop_map(move |edits| {
            let mut bytes = base.clone().into_bytes();
            for (at, op, b) in edits {
                let i = at.index(bytes.len() + 1);
                match op {
                    0 => bytes.insert(i, b),
                    _ if i == bytes.len() => bytes.push(b),
                    1 => {
                        bytes.remove(i);
                    }
                    _ => bytes[i] = b,
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn random_text_never_panics(text in "[\\[\\]{}=\"'.,#a-z0-9_: \n\t\\\\-]{0,300}") {
            let _ = parse(&text);
        }

        #[test]
        fn shuffled_config_lines_never_panic(text in line_soup()) {
            let _ = parse(&text);
        }

        #[test]
        fn edited_configs_never_panic(text in mutated()) {
            let _ = parse(&text);
        }

        /// Nesting the parser accepts survives the checks after it, and a
        /// component section is kept as text whatever its depth.
        #[test]
        fn nesting_below_the_limit_never_panics(depth in 1usize..300) {
            let arrays = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            let dotted = vec!["a"; depth].join(".");
            let _ = parse(&with(&format!("[c]\nk = {arrays}")));
            let _ = parse(&with(&format!("colocate = {arrays}")));
            let _ = parse(&with(&format!("[c]\n{dotted} = 1")));
            let _ = parse(&with(&format!("[c.{dotted}]\nx = 1")));
        }
    }
}
