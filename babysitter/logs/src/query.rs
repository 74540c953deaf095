//! CEL queries over log entries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use cel::common::types::{CelBool, CelInt, CelString, CelTimestamp};
use cel::common::value::CowVal;
use cel::context::VariableResolver;
use cel::{Context, Env, ExecutionError, FunctionContext, IdedExpr, Value};
use regex::Regex;
use weaver_proto::logging::{is_system, short_id, shorten_component};
use weaver_proto::runtime::LogEntry;

use crate::error::EvalErrorKind;
use crate::store::FileKey;
use crate::view::{AttrRef, EntryView};
use crate::{EvalError, EvalErrors, QueryError};

mod attrs;
mod check;
mod limits;
mod rewrite;

use attrs::AttrsVal;
pub(crate) use check::an;

/// The variables a query may use, in the order the docs list them.
pub(crate) const VARIABLES: [&str; 12] = [
    "app",
    "version",
    "full_version",
    "component",
    "full_component",
    "node",
    "full_node",
    "time",
    "level",
    "source",
    "msg",
    "attrs",
];

/// The function `x.matches("re")` is rewritten to, with the pattern replaced
/// by its index among the query's precompiled regexes. (The standard
/// `matches` compiles its pattern on every call, some 30 µs each.)
const MATCHES_FN: &str = "@weaver_matches";

/// The signature of a function added to a CEL context.
type CelFn = Box<
    dyn for<'context, 'call> Fn(
            &mut FunctionContext<'context, 'call>,
        ) -> Result<CowVal<'context, 'call>, ExecutionError>
        + Send
        + Sync,
>;

/// A filter over log entries: a CEL condition, plus whether system entries
/// are shown.
///
/// The variables are those of Service Weaver's `weaver multi logs`:
///
/// | variable | type | value |
/// |---|---|---|
/// | `app` | string | application name |
/// | `version` | string | deployment id, first 8 characters |
/// | `full_version` | string | deployment id |
/// | `component` | string | component, shortened (`cache::Cache`) |
/// | `full_component` | string | component (`app::cache::Cache`), or `stdout`/`stderr` |
/// | `node` | string | weavelet id, first 8 characters |
/// | `full_node` | string | weavelet id |
/// | `time` | timestamp | when the entry was logged |
/// | `level` | string | `debug`, `info`, `warn`, `error`, `stdout`, `stderr` |
/// | `source` | string | `file:line` (`:-1` for captured output) |
/// | `msg` | string | the message |
/// | `attrs` | map(string, dyn) | the attributes: strings, or the ints, uints, doubles and bools the app logged |
///
/// All of CEL is available, notably `==` `!=` `<` `<=` `>` `>=`, `!`, `&&`,
/// `||`, `in`, `contains`, `startsWith`, `endsWith`, `matches` (RE2 syntax)
/// and `timestamp("2024-01-01T00:00:00Z")`. Levels compare in lower case:
/// `level == "DEBUG"` means `level == "debug"`. A comparison on a missing
/// attribute is false, not an error: `attrs["k"] == "v"` is read as
/// `"k" in attrs && attrs["k"] == "v"`. An attribute's value has the type
/// the app logged it with (see `weaver::Logger`): `attrs["amount"] > 100`
/// compares ints; entries stored before typed attributes have strings only.
/// An entry on which the query fails at run time (say, `attrs["k"] < 3`
/// where `k` is a string) does not match, and is counted: see
/// [`Query::eval_errors`].
///
/// Unless `include_system` is set, entries logged by weaver itself (those
/// with the `serviceweaver/system` attribute) are hidden, as if the query
/// were `(<query>) && !("serviceweaver/system" in attrs)`. The empty query
/// matches every entry.
///
/// Everything that can be checked before reading a log is checked by
/// [`Query::parse`]: the size and depth of the query (at most 16 KiB, 24
/// levels of brackets, 256 operators), the syntax, the variable names, the
/// types (every variable's type is known, so `msg > 3`, `level == 1`,
/// `app.contains()`, `nosuchfn(msg)` and `1 + 1` are refused), the regexes
/// and timestamps written as literals.
pub struct Query {
    source: String,
    include_system: bool,
    /// `None` for the empty query.
    compiled: Option<Compiled>,
    /// How many entries the query could not be evaluated on.
    failures: AtomicU64,
    /// Why, for the first of them.
    first_failure: OnceLock<EvalError>,
}

struct Compiled {
    /// The rewritten expression (see the `rewrite` module).
    expr: IdedExpr,
    /// Holds the regex function and the timestamp constants; each evaluation
    /// runs in a cheap child scope of it.
    root: Context<'static, 'static>,
}

/// The fields of an entry, owned or decoded in place.
pub(crate) trait Fields: Sync {
    fn app(&self) -> &str;
    fn version(&self) -> &str;
    fn component(&self) -> &str;
    fn node(&self) -> &str;
    fn time_micros(&self) -> i64;
    fn level(&self) -> &str;
    fn file(&self) -> &str;
    fn line(&self) -> i32;
    fn msg(&self) -> &str;
    /// The attributes as (key, value) pairs: the string ones, then the
    /// typed ones.
    fn attr_pairs(&self) -> Vec<(&str, AttrRef<'_>)>;
}

/// Resolves the query's variables against one entry. A string variable is
/// made on first use and kept in the record, which lends it out: a value
/// handed over instead would cost an allocation per lookup.
struct Record<'a, F> {
    entry: &'a F,
    strings: [OnceLock<CelString<'a>>; STRING_VARS.len()],
}

/// The variables kept in [`Record::strings`], in order.
const STRING_VARS: [&str; 9] = [
    "app",
    "version",
    "full_version",
    "component",
    "full_component",
    "node",
    "full_node",
    "msg",
    "level",
];

/// Resolves only the variables a file name determines, so that a query can
/// rule out a whole file: any other variable is an error, which CEL's
/// `&&` and `||` absorb where the known ones decide the result.
struct FileVars<'a>(&'a FileKey);

// === impl Query ===

impl Query {
    /// Compiles `src`; see [`Query`] for the language.
    ///
    /// # Errors
    ///
    /// A [`QueryError`] for a query too large or too deep, a syntax error,
    /// an unknown variable, a type error, a regex or a timestamp literal
    /// that does not parse, or a query that is not a condition. Its
    /// `Display` shows where.
    pub fn parse(src: &str, include_system: bool) -> Result<Query, QueryError> {
        let compiled = if src.trim().is_empty() {
            None
        } else {
            Some(compile(src)?)
        };
        Ok(Query {
            source: src.to_owned(),
            include_system,
            compiled,
            failures: AtomicU64::new(0),
            first_failure: OnceLock::new(),
        })
    }

    /// The entries this query could not be evaluated on so far (which did
    /// not match), or `None` if there were none. Report them after a scan:
    /// a query that fails on every entry would otherwise look like one that
    /// matches none.
    pub fn eval_errors(&self) -> Option<EvalErrors> {
        let count = self.failures.load(Ordering::Relaxed);
        let first = self.first_failure.get()?.clone();
        (count > 0).then_some(EvalErrors { count, first })
    }

    /// The query's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether system entries are shown.
    pub fn include_system(&self) -> bool {
        self.include_system
    }

    /// Whether `e` matches.
    pub fn matches(&self, e: &LogEntry) -> bool {
        (self.include_system || !is_system(e)) && self.eval(e)
    }

    /// Whether the entry viewed by `v` matches.
    pub(crate) fn matches_view(&self, v: &EntryView<'_>) -> bool {
        (self.include_system || !v.system) && self.eval(v)
    }

    /// Whether entries of the file `key` may match (false only when the
    /// file's app, deployment, weavelet and level alone rule it out).
    pub(crate) fn may_match_file(&self, key: &FileKey) -> bool {
        match &self.compiled {
            None => true,
            // Errors are expected here: the other variables are unknown.
            Some(c) => !matches!(c.run(&FileVars(key)), Ok(false)),
        }
    }

    fn eval<F: Fields>(&self, f: &F) -> bool {
        match &self.compiled {
            None => true,
            Some(c) => match c.run(&Record::new(f)) {
                Ok(b) => b,
                Err(e) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    self.first_failure.get_or_init(|| EvalError(e));
                    false
                }
            },
        }
    }
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("source", &self.source)
            .field("include_system", &self.include_system)
            .finish_non_exhaustive()
    }
}

// === impl Compiled ===

impl Compiled {
    /// Evaluates the query with `vars`.
    fn run(&self, vars: &dyn VariableResolver) -> Result<bool, EvalErrorKind> {
        // A child scope borrows the root for less than 'static; the context
        // is covariant, so the root can lend itself at the resolver's
        // lifetime.
        let root: &Context<'_, '_> = &self.root;
        let mut ctx = root.new_inner_scope();
        ctx.set_variable_resolver(vars);
        let value = Value::resolve_val(&self.expr, &ctx).map_err(EvalErrorKind::Cel)?;
        match value.downcast_ref::<CelBool>() {
            Some(b) => Ok(*b.inner()),
            None => Err(EvalErrorKind::NotBool(value.get_type().name().to_owned())),
        }
    }
}

/// The stack of the thread that parses and checks a query: cel's parser
/// needs about 150 KB per level of brackets in a debug build (see the
/// `limits` module).
const FRONT_END_STACK: usize = 64 << 20;

fn compile(src: &str) -> Result<Compiled, QueryError> {
    limits::scan(src)?;
    let env = Arc::new(Env::stdlib());
    let front = || front_end(&env, src);
    let spawned = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("query-parser".into())
            .stack_size(FRONT_END_STACK)
            .spawn_scoped(s, front)
            .map(|handle| handle.join())
    });
    let (expr, consts) = match spawned {
        Ok(Ok(result)) => result?,
        // The parser panicked: let the panic through.
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        // No thread to be had: the limits keep the caller's stack safe in
        // release builds.
        Err(_) => front_end(&env, src)?,
    };
    let mut root = Context::with_env(env);
    let regexes: Arc<[Regex]> = consts.regexes.into();
    let matches: CelFn = Box::new(move |ftx| {
        let subject = ftx
            .this
            .as_ref()
            .and_then(|s| s.downcast_ref::<CelString<'_>>());
        let index = ftx.args.first().and_then(|i| i.downcast_ref::<CelInt>());
        let re = index
            .and_then(|i| usize::try_from(*i.inner()).ok())
            .and_then(|i| regexes.get(i));
        match (subject, re) {
            (Some(s), Some(re)) => Ok(CowVal::owned(CelBool::from(re.is_match(s.inner())))),
            _ => Err(ftx.error("matches() takes a string and a pattern")),
        }
    });
    root.add_function::<CelFn, CelFn>(MATCHES_FN, matches)
        .expect("the function name is not a standard one");
    for (name, t) in consts.timestamps {
        root.add_variable_as_val(name, Box::new(CelTimestamp::from(t)));
    }
    Ok(Compiled { expr, root })
}

/// Parses, checks and rewrites `src`.
fn front_end(env: &Env, src: &str) -> Result<(IdedExpr, rewrite::Consts), QueryError> {
    let (mut expr, info) = env
        .parser()
        .parse_with_source_info(src)
        .map_err(|e| rewrite::syntax_error(src, &e))?;
    let checked = check::check(src, &info, &expr)?;
    let consts = rewrite::rewrite(src, &info, &checked, &mut expr)?;
    limits::check_depth(src, &info, &expr)?;
    Ok((expr, consts))
}

// === impl Record ===

impl<'a, F: Fields> Record<'a, F> {
    fn new(entry: &'a F) -> Self {
        Self {
            entry,
            strings: Default::default(),
        }
    }

    /// The string variable `STRING_VARS[i]`.
    fn string(&self, i: usize) -> CelString<'a> {
        let f = self.entry;
        CelString::from(match i {
            0 => f.app(),
            1 => short_id(f.version()),
            2 => f.version(),
            3 => shorten_component(f.component()),
            4 => f.component(),
            5 => short_id(f.node()),
            6 => f.node(),
            7 => f.msg(),
            _ => return level(f.level()),
        })
    }
}

impl<F: Fields> VariableResolver for Record<'_, F> {
    fn resolve<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        if let Some(i) = STRING_VARS.iter().position(|v| *v == name) {
            let s = self.strings[i].get_or_init(|| self.string(i));
            return Some(CowVal::Borrowed(s));
        }
        let f = self.entry;
        match name {
            "time" => timestamp(f.time_micros()),
            "source" => {
                let source = format!("{}:{}", f.file(), f.line());
                Some(CowVal::owned(CelString::from(source)))
            }
            "attrs" => Some(CowVal::owned(AttrsVal::new(f.attr_pairs()))),
            _ => None,
        }
    }
}

// === impl FileVars ===

impl VariableResolver for FileVars<'_> {
    fn resolve<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        let k = self.0;
        let s = match name {
            "app" => &k.app,
            "version" => short_id(&k.version),
            "full_version" => &k.version,
            "node" => short_id(&k.node),
            "full_node" => &k.node,
            "level" => return Some(CowVal::owned(level(&k.level))),
            _ => return None,
        };
        Some(CowVal::owned(CelString::from(s)))
    }
}

/// The level, in lower case (stored levels already are; older files may not
/// be).
fn level(l: &str) -> CelString<'_> {
    if l.bytes().any(|b| b.is_ascii_uppercase()) {
        CelString::from(l.to_ascii_lowercase())
    } else {
        CelString::from(l)
    }
}

fn timestamp<'b>(micros: i64) -> Option<CowVal<'b, 'b>> {
    let t = chrono::DateTime::from_timestamp_micros(micros)?.fixed_offset();
    Some(CowVal::owned(CelTimestamp::from(t)))
}

// === impl Fields ===

impl Fields for LogEntry {
    fn app(&self) -> &str {
        &self.app
    }
    fn version(&self) -> &str {
        &self.version
    }
    fn component(&self) -> &str {
        &self.component
    }
    fn node(&self) -> &str {
        &self.node
    }
    fn time_micros(&self) -> i64 {
        self.time_micros
    }
    fn level(&self) -> &str {
        &self.level
    }
    fn file(&self) -> &str {
        &self.file
    }
    fn line(&self) -> i32 {
        self.line
    }
    fn msg(&self) -> &str {
        &self.msg
    }
    fn attr_pairs(&self) -> Vec<(&str, AttrRef<'_>)> {
        let strings = self.attrs.chunks_exact(2);
        let strings = strings.map(|kv| (kv[0].as_str(), AttrRef::Str(&kv[1])));
        let typed = self
            .typed_attrs
            .iter()
            .map(|a| (a.key.as_str(), AttrRef::of(a)));
        strings.chain(typed).collect()
    }
}

impl Fields for EntryView<'_> {
    fn app(&self) -> &str {
        self.app
    }
    fn version(&self) -> &str {
        self.version
    }
    fn component(&self) -> &str {
        self.component
    }
    fn node(&self) -> &str {
        self.node
    }
    fn time_micros(&self) -> i64 {
        self.time_micros
    }
    fn level(&self) -> &str {
        self.level
    }
    fn file(&self) -> &str {
        self.file
    }
    fn line(&self) -> i32 {
        self.line
    }
    fn msg(&self) -> &str {
        self.msg
    }
    fn attr_pairs(&self) -> Vec<(&str, AttrRef<'_>)> {
        let mut pairs = Vec::new();
        let mut it = self.attrs();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, AttrRef::Str(v)));
        }
        pairs.extend(self.typed_attrs());
        pairs
    }
}

#[cfg(test)]
mod tests;
