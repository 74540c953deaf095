//! `weaver.toml`: the deployment config read by `weaver multi deploy` and
//! `weaver single deploy`.
//!
//! The file is read in two steps. The TOML text is first parsed into a raw
//! table; each known section is then read key by key into a checked
//! [`Config`], so every error can name the file, the section and the key:
//!
//! ```toml
//! [serviceweaver]
//! name = "hello"                          # default: the binary's file name
//! binary = "../../target/release/hello"   # relative to this file
//! args = ["--x"]
//! env = ["GREETING=hi"]
//! colocate = [["hello::Reverser", "hello::Cache"]]
//!
//! [multi]
//! listeners.hello = { address = "127.0.0.1:12345" }
//! replicas = 2
//! restart = "always"
//! transport = "unix"                      # or "tcp": component RPC over loopback TCP
//!
//! ["hello::Reverser"]                     # a component's own config
//! Greeting = "Bonjour"
//! ```
//!
//! Any section other than `[serviceweaver]`, `[multi]` and `[single]`
//! configures the component it names, and is handed to the weavelets as TOML
//! text without being interpreted here. Each deployer checks its own section
//! and leaves the other's alone: [`Config::parse`] reads `[multi]` (for
//! `weaver multi deploy`), [`Config::parse_single`] reads `[single]`, whose
//! only key is `listeners`, shaped as in `[multi]`.
//!
//! Checks that need the binary's list of components run later, through
//! [`Config::validate_components`]; whether the binary exists is checked by
//! [`Config::check_binary`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

mod reader;
#[cfg(test)]
mod tests;

use self::reader::Section;

/// How many replicas each group runs when `[multi] replicas` is absent.
pub(crate) const DEFAULT_REPLICAS: usize = 2;

/// The full name of the main component, the one that runs the app's `main`.
pub(crate) const MAIN_COMPONENT: &str = "weaver::Main";

/// App-wide settings: binary, arguments, environment, colocation.
const SERVICEWEAVER: &str = "serviceweaver";
/// Settings of multiprocess deployments.
const MULTI: &str = "multi";
/// Settings of single-process runs (`weaver single deploy`).
const SINGLE: &str = "single";

const SERVICEWEAVER_KEYS: &[&str] = &["name", "binary", "args", "env", "colocate"];
const MULTI_KEYS: &[&str] = &["listeners", "replicas", "restart", "transport"];
const SINGLE_KEYS: &[&str] = &["listeners"];
const LISTENER_KEYS: &[&str] = &["address"];

/// A checked `weaver.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file, as the user named it; every error message starts with it.
    path: PathBuf,
    app: String,
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    colocate: Vec<Vec<String>>,
    /// Listener name to address (from the deployer's section); `None`
    /// means an ephemeral loopback port.
    listeners: BTreeMap<String, Option<String>>,
    replicas: usize,
    restart: RestartPolicy,
    transport: Transport,
    /// Component name to the TOML text of its section.
    sections: BTreeMap<String, String>,
}

/// What the babysitter does when a replica exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RestartPolicy {
    /// Restart it, with backoff (the default).
    #[default]
    Always,
    /// Leave it dead; the rest of the deployment keeps running.
    Never,
}

/// How replicas carry component calls to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// Unix domain sockets in the deployment's runtime directory (the
    /// default).
    #[default]
    Unix,
    /// TCP on loopback, with `TCP_NODELAY`: the data plane a deployment
    /// across machines uses, tested on one.
    Tcp,
}

/// Which deployer a file is read for: the one section it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deployer {
    /// `weaver multi deploy`: `[multi]`.
    Multi,
    /// `weaver single deploy`: `[single]`.
    Single,
}

/// An error in `weaver.toml`. Every message starts with the file's path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config file", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}:{line}:{column}: invalid TOML: {message}", path.display())]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        /// What the TOML parser expected.
        message: String,
    },
    /// A top-level key is a plain value instead of a section.
    #[error(
        "{}: top-level key \"{key}\" is not a section (move it under [serviceweaver] or [multi])",
        path.display()
    )]
    NotASection {
        /// The config file.
        path: PathBuf,
        /// The offending key.
        key: String,
    },
    /// A section holds a key it does not know.
    #[error(
        "{}: unknown key \"{key}\" in [{section}] (expected one of: {expected})",
        path.display()
    )]
    UnknownKey {
        /// The config file.
        path: PathBuf,
        /// The section, as written between brackets.
        section: String,
        /// The unknown key.
        key: String,
        /// The keys the section accepts, comma-separated.
        expected: String,
    },
    /// A required key is absent.
    #[error("{}: missing required key \"{key}\" in [{section}]", path.display())]
    MissingKey {
        /// The config file.
        path: PathBuf,
        /// The section, as written between brackets.
        section: String,
        /// The missing key.
        key: String,
    },
    /// A key holds a value of the wrong type.
    #[error(
        "{}: key \"{key}\" in [{section}] must be {expected}, found {found}",
        path.display()
    )]
    WrongType {
        /// The config file.
        path: PathBuf,
        /// The section, as written between brackets.
        section: String,
        /// The key, with an index for array elements (`args[1]`).
        key: String,
        /// The type the key must have.
        expected: &'static str,
        /// The TOML type it has.
        found: &'static str,
    },
    /// A key has the right type but a value that is not allowed.
    #[error("{}: invalid \"{key}\" in [{section}]: {reason}", path.display())]
    InvalidValue {
        /// The config file.
        path: PathBuf,
        /// The section, as written between brackets.
        section: String,
        /// The key.
        key: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// A component appears in more than one place in `colocate`.
    #[error("{}: component \"{component}\" placed multiple times in colocate", path.display())]
    PlacedTwice {
        /// The config file.
        path: PathBuf,
        /// The component.
        component: String,
    },
    /// `colocate` names a component the binary does not have.
    #[error("{}: unknown component \"{component}\" in colocate ({hint})", path.display())]
    UnknownColocated {
        /// The config file.
        path: PathBuf,
        /// The unknown name.
        component: String,
        /// A suggestion and the known names.
        hint: String,
    },
    /// A component section names a component the binary does not have.
    #[error("{}: section [\"{component}\"] names no component of the binary ({hint})", path.display())]
    UnknownSection {
        /// The config file.
        path: PathBuf,
        /// The section's name.
        component: String,
        /// A suggestion and the known names.
        hint: String,
    },
    /// `[multi] listeners` names a listener the binary does not have.
    #[error("{}: listener \"{listener}\" in [multi] is not a listener of the binary ({hint})", path.display())]
    UnknownListener {
        /// The config file.
        path: PathBuf,
        /// The unknown name.
        listener: String,
        /// A suggestion and the known names.
        hint: String,
    },
    /// The binary does not exist.
    #[error("{}: binary \"{}\" doesn't exist", path.display(), binary.display())]
    BinaryMissing {
        /// The config file.
        path: PathBuf,
        /// The resolved binary path.
        binary: PathBuf,
    },
    /// The binary exists but cannot be run.
    #[error("{}: binary \"{}\" {problem}", path.display(), binary.display())]
    BinaryUnusable {
        /// The config file.
        path: PathBuf,
        /// The resolved binary path.
        binary: PathBuf,
        /// Why it cannot be run ("is a directory", "is not executable").
        problem: &'static str,
    },
    /// The binary's metadata could not be read.
    #[error("{}: cannot inspect binary \"{}\"", path.display(), binary.display())]
    BinaryInspect {
        /// The config file.
        path: PathBuf,
        /// The resolved binary path.
        binary: PathBuf,
        /// Why inspecting failed.
        #[source]
        source: std::io::Error,
    },
}

// === impl Config ===

impl Config {
    /// Reads and checks the config file at `path`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] if the file cannot be read, otherwise the errors
    /// of [`Config::parse`].
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Config::load_for(path.as_ref(), Deployer::Multi)
    }

    /// Reads and checks the config file at `path` for a single-process run:
    /// like [`Config::load`], with `[single]` read instead of `[multi]`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] if the file cannot be read, otherwise the errors
    /// of [`Config::parse_single`].
    pub fn load_single(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Config::load_for(path.as_ref(), Deployer::Single)
    }

    fn load_for(path: &Path, deployer: Deployer) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse_for(&text, path, deployer)
    }

    /// Parses and checks config text. `path` names the file in error messages,
    /// and its directory is the base of a relative `binary`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for bad TOML, unknown keys, wrong types, a missing
    /// `binary`, a component placed twice in `colocate`, `replicas = 0`, an
    /// unknown `restart` policy, an `env` entry without `=`, or a bad listener
    /// address.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Config::parse_for(text, path.as_ref(), Deployer::Multi)
    }

    /// Parses and checks config text for a single-process run (`weaver
    /// single deploy`): `[serviceweaver]` and `[single]` are checked, with
    /// listeners taken from `[single] listeners`; `[multi]` is left alone.
    /// The run is one process, so [`Config::replicas`] is 1.
    ///
    /// # Errors
    ///
    /// As [`Config::parse`], for `[single]` instead of `[multi]`: bad TOML,
    /// an unknown key (`[single]` has only `listeners`), a wrong type, a
    /// missing `binary`, a bad listener address.
    pub fn parse_single(text: &str, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Config::parse_for(text, path.as_ref(), Deployer::Single)
    }

    fn parse_for(text: &str, path: &Path, deployer: Deployer) -> Result<Config, ConfigError> {
        let raw: toml::Table = text.parse().map_err(|err| syntax_error(path, text, &err))?;
        let empty = toml::Table::new();
        let mut app_table = &empty;
        let mut multi_table = &empty;
        let mut single_table = &empty;
        let mut sections = BTreeMap::new();
        for (key, value) in &raw {
            let table = value.as_table().ok_or_else(|| ConfigError::NotASection {
                path: path.to_owned(),
                key: key.clone(),
            })?;
            match key.as_str() {
                SERVICEWEAVER => app_table = table,
                MULTI => multi_table = table,
                SINGLE => single_table = table,
                component => {
                    let text = toml::to_string(table)
                        .expect("a table parsed from TOML serializes back to TOML");
                    sections.insert(component.to_owned(), text);
                }
            }
        }
        let app = AppSection::read(&Section::new(path, SERVICEWEAVER, app_table), path)?;
        let multi = match deployer {
            Deployer::Multi => MultiSection::read(&Section::new(path, MULTI, multi_table))?,
            Deployer::Single => {
                MultiSection::read_single(&Section::new(path, SINGLE, single_table))?
            }
        };
        Ok(Config {
            path: path.to_owned(),
            app: app.name,
            binary: app.binary,
            args: app.args,
            env: app.env,
            colocate: app.colocate,
            listeners: multi.listeners,
            replicas: multi.replicas,
            restart: multi.restart,
            transport: multi.transport,
            sections,
        })
    }

    /// The config file, as it was named to [`Config::load`] or [`Config::parse`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The app's name: `[serviceweaver] name`, or the binary's file name.
    pub fn app_name(&self) -> &str {
        &self.app
    }

    /// The binary to run, as an absolute path.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Extra command-line arguments for every replica.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Extra environment variables for every replica, in file order.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The colocation groups, each a list of full component names.
    pub fn colocate(&self) -> &[Vec<String>] {
        &self.colocate
    }

    /// The name of the group that runs `component`: the first member of its
    /// colocation group, or the component itself if it is in none.
    pub fn group_of<'a>(&'a self, component: &'a str) -> &'a str {
        self.colocate
            .iter()
            .find(|group| group.iter().any(|member| member == component))
            .and_then(|group| group.first())
            .map_or(component, String::as_str)
    }

    /// The configured address of a listener: `None` if the listener is not
    /// configured or its address is empty, meaning an ephemeral loopback port.
    pub fn listener_address(&self, name: &str) -> Option<&str> {
        self.listeners.get(name).and_then(Option::as_deref)
    }

    /// Every listener named in `[multi] listeners` (`[single] listeners` for
    /// [`Config::parse_single`]), with its address if set.
    pub fn listeners(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.listeners
            .iter()
            .map(|(name, addr)| (name.as_str(), addr.as_deref()))
    }

    /// Replicas per group (at least 1).
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// What to do when a replica exits.
    pub fn restart(&self) -> RestartPolicy {
        self.restart
    }

    /// How replicas call each other: `[multi] transport`.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Component configs: full component name to the TOML text of its section.
    pub fn sections(&self) -> &BTreeMap<String, String> {
        &self.sections
    }

    /// Checks that the binary exists, is a file and is executable.
    ///
    /// # Errors
    ///
    /// [`ConfigError::BinaryMissing`] (`binary "<path>" doesn't exist`),
    /// [`ConfigError::BinaryUnusable`] or [`ConfigError::BinaryInspect`].
    pub fn check_binary(&self) -> Result<(), ConfigError> {
        use std::os::unix::fs::PermissionsExt;

        let unusable = |problem| ConfigError::BinaryUnusable {
            path: self.path.clone(),
            binary: self.binary.clone(),
            problem,
        };
        let meta = match std::fs::metadata(&self.binary) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::BinaryMissing {
                    path: self.path.clone(),
                    binary: self.binary.clone(),
                });
            }
            Err(source) => {
                return Err(ConfigError::BinaryInspect {
                    path: self.path.clone(),
                    binary: self.binary.clone(),
                    source,
                });
            }
        };
        if meta.is_dir() {
            return Err(unusable("is a directory"));
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(unusable("is not executable"));
        }
        Ok(())
    }

    /// Checks the names in `colocate` and the component sections against the
    /// components the binary has (full names).
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownColocated`] or [`ConfigError::UnknownSection`]
    /// for the first unknown name, with a close match if there is one and the
    /// list of known names.
    pub fn validate_components(&self, known: &[String]) -> Result<(), ConfigError> {
        let is_known = |name: &str| known.iter().any(|k| k == name);
        let colocated = self.colocate.iter().flatten();
        if let Some(name) = colocated.into_iter().find(|name| !is_known(name)) {
            return Err(ConfigError::UnknownColocated {
                path: self.path.clone(),
                component: name.clone(),
                hint: hint(name, known, "components"),
            });
        }
        if let Some(name) = self.sections.keys().find(|name| !is_known(name)) {
            return Err(ConfigError::UnknownSection {
                path: self.path.clone(),
                component: name.clone(),
                hint: hint(name, known, "components"),
            });
        }
        Ok(())
    }

    /// Checks the listener names in the deployer's `listeners` against the listeners
    /// the binary declares.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownListener`] for the first unknown name.
    pub fn validate_listeners(&self, known: &[String]) -> Result<(), ConfigError> {
        match self.listeners.keys().find(|name| !known.contains(name)) {
            Some(name) => Err(ConfigError::UnknownListener {
                path: self.path.clone(),
                listener: name.clone(),
                hint: hint(name, known, "listeners"),
            }),
            None => Ok(()),
        }
    }
}

// === impl RestartPolicy ===

impl RestartPolicy {
    /// The policy's name in `weaver.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::Never => "never",
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === sections ===

/// The checked contents of `[serviceweaver]`.
struct AppSection {
    name: String,
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    colocate: Vec<Vec<String>>,
}

impl AppSection {
    fn read(section: &Section<'_>, path: &Path) -> Result<AppSection, ConfigError> {
        section.check_keys(SERVICEWEAVER_KEYS)?;
        let binary = match section.string("binary")? {
            Some("") => return Err(section.invalid("binary", "must not be empty".into())),
            Some(binary) => resolve_binary(path, binary),
            None => return Err(section.missing("binary")),
        };
        let name = match section.string("name")? {
            Some(name) if name.trim().is_empty() => {
                return Err(section.invalid("name", "must not be empty".into()));
            }
            Some(name) => name.to_owned(),
            None => binary
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .ok_or_else(|| section.invalid("binary", "does not name a file".into()))?,
        };
        let args = section.strings("args")?.unwrap_or_default();
        let env = read_env(section)?;
        let colocate = read_colocate(section)?;
        Ok(AppSection {
            name,
            binary,
            args,
            env,
            colocate,
        })
    }
}

/// The checked contents of `[multi]`, or of `[single]` for a
/// single-process run.
struct MultiSection {
    listeners: BTreeMap<String, Option<String>>,
    replicas: usize,
    restart: RestartPolicy,
    transport: Transport,
}

impl MultiSection {
    fn read(section: &Section<'_>) -> Result<MultiSection, ConfigError> {
        section.check_keys(MULTI_KEYS)?;
        let replicas = match section.integer("replicas")? {
            None => DEFAULT_REPLICAS,
            Some(n) if n < 1 => {
                return Err(section.invalid("replicas", format!("must be at least 1, got {n}")));
            }
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| u32::try_from(*n).is_ok())
                .ok_or_else(|| section.invalid("replicas", format!("{n} is too large")))?,
        };
        let restart = match section.string("restart")? {
            None | Some("always") => RestartPolicy::Always,
            Some("never") => RestartPolicy::Never,
            Some(other) => {
                let reason = format!(
                    "\"{other}\" is not a restart policy (expected \"always\" or \"never\")"
                );
                return Err(section.invalid("restart", reason));
            }
        };
        let transport = match section.string("transport")? {
            None | Some("unix") => Transport::Unix,
            Some("tcp") => Transport::Tcp,
            Some(other) => {
                let reason =
                    format!("\"{other}\" is not a transport (expected \"unix\" or \"tcp\")");
                return Err(section.invalid("transport", reason));
            }
        };
        Ok(MultiSection {
            listeners: read_listeners(section)?,
            replicas,
            restart,
            transport,
        })
    }

    /// Reads `[single]`: listeners only, one process that is not restarted.
    fn read_single(section: &Section<'_>) -> Result<MultiSection, ConfigError> {
        section.check_keys(SINGLE_KEYS)?;
        Ok(MultiSection {
            listeners: read_listeners(section)?,
            replicas: 1,
            restart: RestartPolicy::Never,
            transport: Transport::Unix,
        })
    }
}

/// Reads `env = ["K=V", ...]`.
fn read_env(section: &Section<'_>) -> Result<Vec<(String, String)>, ConfigError> {
    let entries = section.strings("env")?.unwrap_or_default();
    entries
        .into_iter()
        .map(|entry| match entry.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(section.invalid(
                "env",
                format!("entry \"{entry}\" is not of the form KEY=VALUE"),
            )),
        })
        .collect()
}

/// Reads `colocate = [[...], ...]`, rejecting empty groups and components
/// placed twice.
fn read_colocate(section: &Section<'_>) -> Result<Vec<Vec<String>>, ConfigError> {
    let groups = section.string_lists("colocate")?.unwrap_or_default();
    let mut placed = BTreeSet::new();
    for (i, group) in groups.iter().enumerate() {
        if group.is_empty() {
            return Err(section.invalid("colocate", format!("group {i} is empty")));
        }
        for member in group {
            if member.is_empty() {
                return Err(section.invalid("colocate", format!("group {i} has an empty name")));
            }
            if !placed.insert(member.as_str()) {
                return Err(ConfigError::PlacedTwice {
                    path: section.path().to_owned(),
                    component: member.clone(),
                });
            }
        }
    }
    Ok(groups)
}

/// Reads `listeners.NAME = { address = "host:port" }`.
fn read_listeners(section: &Section<'_>) -> Result<BTreeMap<String, Option<String>>, ConfigError> {
    let Some(table) = section.table("listeners")? else {
        return Ok(BTreeMap::new());
    };
    let listeners = section.child("listeners", table);
    let mut out = BTreeMap::new();
    for name in table.keys() {
        let Some(entry) = listeners.table(name)? else {
            continue;
        };
        let entry = listeners.child(name, entry);
        entry.check_keys(LISTENER_KEYS)?;
        let address = match entry.string("address")? {
            None | Some("") => None,
            Some(addr) => Some(check_address(&entry, addr)?),
        };
        out.insert(name.clone(), address);
    }
    Ok(out)
}

/// Checks that a listener address is `host:port` with a numeric port.
fn check_address(section: &Section<'_>, addr: &str) -> Result<String, ConfigError> {
    let reason = match addr.rsplit_once(':') {
        None => format!("\"{addr}\" is not of the form host:port"),
        Some(("", port)) => format!(
            "\"{addr}\" has no host (write \"127.0.0.1:{port}\" for loopback \
             or \"0.0.0.0:{port}\" for every interface)"
        ),
        Some((_, port)) if port.parse::<u16>().is_err() => {
            format!("\"{addr}\" does not end in a port number")
        }
        Some(_) => return Ok(addr.to_owned()),
    };
    Err(section.invalid("address", reason))
}

// === helpers ===

/// Turns a TOML parse error into a `file:line:column` error.
fn syntax_error(path: &Path, text: &str, err: &toml::de::Error) -> ConfigError {
    let offset = err.span().map_or(0, |span| span.start).min(text.len());
    // The offset is a byte offset; step back to a char boundary before slicing.
    let offset = (0..=offset)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let mut message = err.message().trim_end().to_owned();
    // The parser's "duplicate key" does not say which; the span does.
    let key = err.span().and_then(|span| text.get(span));
    if let Some(key) = key.filter(|key| message == "duplicate key" && !key.contains('\n')) {
        message = format!("duplicate key {key:?}");
    }
    ConfigError::Syntax {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}

/// Resolves `binary` against the directory of the config file, cleaning `.`
/// and `..` lexically (as Go's `filepath.Join` does) so messages show a
/// readable path.
fn resolve_binary(config: &Path, binary: &str) -> PathBuf {
    let base = config.parent().unwrap_or(Path::new(""));
    let joined = base.join(binary);
    // `absolute` only fails on an empty path or a missing current directory;
    // the joined path then stays relative, which the binary check reports.
    let absolute = std::path::absolute(&joined).unwrap_or(joined);
    clean(&absolute)
}

/// Removes `.` components and folds `name/..` pairs.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                // `/..` is `/`.
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}

/// Builds the hint of an unknown-name error: the closest known name, if any
/// is close, then all the known names.
fn hint(name: &str, known: &[String], what: &str) -> String {
    if known.is_empty() {
        return format!("the binary has no {what}");
    }
    let mut sorted: Vec<&str> = known.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let list = sorted.join(", ");
    match closest(name, &sorted) {
        Some(best) => format!("did you mean \"{best}\"? known {what}: {list}"),
        None => format!("known {what}: {list}"),
    }
}

/// The known name closest to `name`: one whose last segment is `name`, or
/// one within a few edits.
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let suffix = format!("::{name}");
    if let Some(found) = known.iter().find(|k| k.ends_with(&suffix)) {
        return Some(found);
    }
    let limit = (name.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
