//! Metrics an application declares and updates: counters, gauges and
//! histograms, plain or in families keyed by a labels struct.
//!
//! Declare each metric once, as a `static`; the constructors are `const`
//! and check the name (and a histogram's bounds) at compile time. A metric
//! is registered the first time it is used, or at start-up if marked
//! `#[weaver::metric]` (so it is reported, at 0, before its first update,
//! and a duplicate name stops the process at once); updates are then a few
//! relaxed atomic operations, with no lock and no allocation.
//!
//! ```
//! use weaver::{Counter, CounterMap, Histogram, MetricLabels};
//!
//! #[weaver::metric]
//! static REQUESTS: Counter = Counter::new("shop_requests", "Requests served");
//! #[weaver::metric]
//! static SIZES: Histogram = Histogram::new("shop_cart_size", "Items per cart", &[1.0, 5.0, 10.0]);
//!
//! #[derive(MetricLabels)]
//! struct Outcome {
//!     status: &'static str,
//!     #[weaver(label = "retried")]
//!     was_retried: bool,
//! }
//!
//! static OUTCOMES: CounterMap<Outcome> = CounterMap::new("shop_outcomes", "Requests by outcome");
//!
//! REQUESTS.inc();
//! SIZES.put(3.0);
//! OUTCOMES.get(&Outcome { status: "ok", was_retried: false }).inc();
//! assert_eq!(REQUESTS.get(), 1.0);
//! ```
//!
//! The runtime reads the registry: the weavelet reports deltas to its
//! envelope, and the babysitter renders them as Prometheus text.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};

use weaver_proto::prometheus::Snapshot;
use weaver_proto::runtime::{GetMetricsReply, MetricUpdate};

use self::family::Family;
pub(crate) use self::registry::global;
use self::registry::{CounterCell, FamilyDef, GaugeCell, HistogramCell, Kind, Registry, Update};

mod family;
pub(crate) mod method;
pub(crate) mod registry;
#[cfg(test)]
mod tests;

/// A struct whose fields are the labels of a metric family
/// ([`CounterMap`], [`GaugeMap`], [`HistogramMap`]).
///
/// Derive it with `#[derive(weaver::MetricLabels)]` on a struct with named
/// fields of type `String`, `&'static str`, `bool` or an integer type. The
/// label name is the field name, or the name given with
/// `#[weaver(label = "name")]` on the field. Field order does not matter to
/// readers: labels are sorted by name when shown.
///
/// The derive implements the hidden methods; implementing this trait by
/// hand is not supported.
pub trait MetricLabels: Send + Sync + 'static {
    /// The label names, in field order.
    const NAMES: &'static [&'static str];

    /// The label values, in the order of [`NAMES`](Self::NAMES).
    fn values(&self) -> Vec<String>;

    /// Whether `self` and `other` name the same series.
    #[doc(hidden)]
    fn __same(&self, other: &Self) -> bool;

    /// Feeds the label values to `state`.
    #[doc(hidden)]
    fn __hash(&self, state: &mut DefaultHasher);

    /// A copy, kept as the key of a new series.
    #[doc(hidden)]
    fn __copy(&self) -> Self
    where
        Self: Sized;
}

/// A metric `static` that `#[weaver::metric]` registers at start-up.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a metric",
    label = "`#[weaver::metric]` goes on a `Counter`, `Gauge`, `Histogram` or one of their maps"
)]
pub trait Declared: Sync {
    /// Registers the metric (a family: takes its name), if not yet.
    fn declare(&self);
}

/// A type a [`MetricLabels`] field may have.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a metric label",
    label = "unsupported label type",
    note = "metric label fields are `String`, `&'static str`, `bool` or integer types"
)]
pub trait LabelValue: Clone + Eq + Hash + Send + Sync + 'static {
    /// The value as the label's text.
    fn render(&self) -> String;

    /// `==`, callable through this trait.
    fn same(&self, other: &Self) -> bool {
        self == other
    }

    /// Feeds the value to `state`.
    fn feed(&self, state: &mut DefaultHasher) {
        self.hash(state);
    }

    /// A clone, callable through this trait.
    fn copy(&self) -> Self {
        self.clone()
    }
}

/// A value that only goes up, such as a number of requests.
///
/// ```
/// static ERRORS: weaver::Counter = weaver::Counter::new("cart_errors", "Failed cart updates");
/// ERRORS.inc();
/// ERRORS.add(2.0);
/// assert_eq!(ERRORS.get(), 3.0);
/// ```
pub struct Counter {
    name: &'static str,
    help: &'static str,
    cell: OnceLock<Arc<CounterCell>>,
}

/// A value that goes up and down, such as a queue length.
pub struct Gauge {
    name: &'static str,
    help: &'static str,
    cell: OnceLock<Arc<GaugeCell>>,
}

/// A distribution of values over buckets with explicit upper bounds, such as
/// latencies.
///
/// Bucket `i` counts the values `v` with `bounds[i-1] < v <= bounds[i]`
/// (Prometheus' `le`), and a last bucket the values above every bound.
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    bounds: &'static [f64],
    cell: OnceLock<Arc<HistogramCell>>,
}

/// A family of [`Counter`]s, one per label set `L`.
///
/// ```
/// #[derive(weaver::MetricLabels)]
/// struct Parity {
///     parity: &'static str,
/// }
///
/// static ADDS: weaver::CounterMap<Parity> = weaver::CounterMap::new("adds", "Additions by parity");
/// ADDS.get(&Parity { parity: "even" }).inc();
/// ```
pub struct CounterMap<L: MetricLabels> {
    name: &'static str,
    help: &'static str,
    family: OnceLock<FamilyDef>,
    series: Family<L, Counter>,
}

/// A family of [`Gauge`]s, one per label set `L`.
pub struct GaugeMap<L: MetricLabels> {
    name: &'static str,
    help: &'static str,
    family: OnceLock<FamilyDef>,
    series: Family<L, Gauge>,
}

/// A family of [`Histogram`]s with the same bounds, one per label set `L`.
pub struct HistogramMap<L: MetricLabels> {
    name: &'static str,
    help: &'static str,
    bounds: &'static [f64],
    family: OnceLock<FamilyDef>,
    series: Family<L, Histogram>,
}

// === impl Counter ===

impl Counter {
    /// A counter named `name` with help text `help`.
    ///
    /// # Panics
    ///
    /// At compile time (in a `static`) if `name` is not a valid Prometheus
    /// metric name; on first use if another metric has the same name.
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        check_name(name);
        Self {
            name,
            help,
            cell: OnceLock::new(),
        }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.cell().inc();
    }

    /// Adds `delta`. A negative or NaN `delta` is ignored: a counter never
    /// goes down.
    #[inline]
    pub fn add(&self, delta: f64) {
        self.cell().add(delta);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        self.cell().get()
    }

    /// Registers the counter now, so it is reported (as 0) before its first
    /// update.
    pub fn register(&self) {
        self.cell();
    }

    fn cell(&self) -> &CounterCell {
        self.cell
            .get_or_init(|| global().counter(self.name, self.help))
    }

    fn member(name: &'static str, help: &'static str, cell: Arc<CounterCell>) -> Self {
        Self {
            name,
            help,
            cell: OnceLock::from(cell),
        }
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a registered counter has a value: formatting registers nothing.
        f.debug_struct("Counter")
            .field("name", &self.name)
            .field("value", &self.cell.get().map(|c| c.get()))
            .finish()
    }
}

// === impl Gauge ===

impl Gauge {
    /// A gauge named `name` with help text `help`.
    ///
    /// # Panics
    ///
    /// At compile time (in a `static`) if `name` is not a valid Prometheus
    /// metric name; on first use if another metric has the same name.
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        check_name(name);
        Self {
            name,
            help,
            cell: OnceLock::new(),
        }
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, value: f64) {
        self.cell().set(value);
    }

    /// Adds `delta`.
    #[inline]
    pub fn add(&self, delta: f64) {
        self.cell().add(delta);
    }

    /// Subtracts `delta`.
    #[inline]
    pub fn sub(&self, delta: f64) {
        self.cell().add(-delta);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        self.cell().get()
    }

    /// Registers the gauge now, so it is reported (as 0) before its first
    /// update.
    pub fn register(&self) {
        self.cell();
    }

    fn cell(&self) -> &GaugeCell {
        self.cell
            .get_or_init(|| global().gauge(self.name, self.help))
    }

    fn member(name: &'static str, help: &'static str, cell: Arc<GaugeCell>) -> Self {
        Self {
            name,
            help,
            cell: OnceLock::from(cell),
        }
    }
}

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauge")
            .field("name", &self.name)
            .field("value", &self.cell.get().map(|c| c.get()))
            .finish()
    }
}

// === impl Histogram ===

impl Histogram {
    /// A histogram named `name` with help text `help` and bucket upper
    /// bounds `bounds`.
    ///
    /// # Panics
    ///
    /// At compile time (in a `static`) if `name` is not a valid Prometheus
    /// metric name or `bounds` are not strictly ascending numbers (NaN is
    /// refused); on first use if another metric has the same name.
    pub const fn new(name: &'static str, help: &'static str, bounds: &'static [f64]) -> Self {
        check_name(name);
        check_bounds(bounds);
        Self {
            name,
            help,
            bounds,
            cell: OnceLock::new(),
        }
    }

    /// Records `value`. NaN is ignored.
    #[inline]
    pub fn put(&self, value: f64) {
        self.cell().put(value);
    }

    /// The number of values recorded.
    pub fn count(&self) -> u64 {
        self.cell().count()
    }

    /// The sum of the values recorded.
    pub fn sum(&self) -> f64 {
        self.cell().sum()
    }

    /// Registers the histogram now, so it is reported (empty) before its
    /// first update.
    pub fn register(&self) {
        self.cell();
    }

    fn cell(&self) -> &HistogramCell {
        self.cell
            .get_or_init(|| global().histogram(self.name, self.help, self.bounds))
    }

    fn member(
        name: &'static str,
        help: &'static str,
        bounds: &'static [f64],
        cell: Arc<HistogramCell>,
    ) -> Self {
        Self {
            name,
            help,
            bounds,
            cell: OnceLock::from(cell),
        }
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("name", &self.name)
            .field("bounds", &self.bounds)
            .field("count", &self.cell.get().map(|c| c.count()))
            .finish()
    }
}

// === impl CounterMap ===

impl<L: MetricLabels> CounterMap<L> {
    /// A family of counters named `name` with help text `help`.
    ///
    /// # Panics
    ///
    /// At compile time (in a `static`) if `name` is not a valid Prometheus
    /// metric name; on first use if another metric has the same name.
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        check_name(name);
        Self {
            name,
            help,
            family: OnceLock::new(),
            series: Family::new(),
        }
    }

    /// The counter of label set `labels`, created (at 0) the first time.
    ///
    /// Finding an existing series takes no lock and allocates nothing; keep
    /// the returned reference to skip even the lookup.
    pub fn get(&self, labels: &L) -> &Counter {
        self.series.get(labels, || {
            let family = self.family();
            Counter::member(
                self.name,
                self.help,
                global().counter_in(family, labels.values()),
            )
        })
    }

    fn family(&self) -> &FamilyDef {
        self.family
            .get_or_init(|| global().family(self.name, self.help, Kind::Counter, L::NAMES, &[]))
    }
}

// === impl GaugeMap ===

impl<L: MetricLabels> GaugeMap<L> {
    /// A family of gauges named `name` with help text `help`.
    ///
    /// # Panics
    ///
    /// At compile time (in a `static`) if `name` is not a valid Prometheus
    /// metric name; on first use if another metric has the same name.
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        check_name(name);
        Self {
            name,
            help,
            family: OnceLock::new(),
            series: Family::new(),
        }
    }

    /// The gauge of label set `labels`, created (at 0) the first time.
    ///
    /// Finding an existing series takes no lock and allocates nothing.
    pub fn get(&self, labels: &L) -> &Gauge {
        self.series.get(labels, || {
            let family = self.family();
            Gauge::member(
                self.name,
                self.help,
                global().gauge_in(family, labels.values()),
            )
        })
    }

    fn family(&self) -> &FamilyDef {
        self.family
            .get_or_init(|| global().family(self.name, self.help, Kind::Gauge, L::NAMES, &[]))
    }
}

// === impl HistogramMap ===

impl<L: MetricLabels> HistogramMap<L> {
    /// A family of histograms named `name` with help text `help` and bucket
    /// upper bounds `bounds`.
    ///
    /// # Panics
    ///
    /// At compile time (in a `static`) if `name` is not a valid Prometheus
    /// metric name, `bounds` are not strictly ascending numbers, or a label
    /// is named `le` (Prometheus' bucket label); on first use if another
    /// metric has the same name.
    pub const fn new(name: &'static str, help: &'static str, bounds: &'static [f64]) -> Self {
        check_name(name);
        check_bounds(bounds);
        let mut i = 0;
        while i < L::NAMES.len() {
            assert!(
                !str_eq(L::NAMES[i], "le"),
                "a histogram label cannot be named `le`"
            );
            i += 1;
        }
        Self {
            name,
            help,
            bounds,
            family: OnceLock::new(),
            series: Family::new(),
        }
    }

    /// The histogram of label set `labels`, created (empty) the first time.
    ///
    /// Finding an existing series takes no lock and allocates nothing.
    pub fn get(&self, labels: &L) -> &Histogram {
        self.series.get(labels, || {
            let family = self.family();
            Histogram::member(
                self.name,
                self.help,
                self.bounds,
                global().histogram_in(family, labels.values()),
            )
        })
    }

    fn family(&self) -> &FamilyDef {
        self.family.get_or_init(|| {
            global().family(self.name, self.help, Kind::Histogram, L::NAMES, self.bounds)
        })
    }
}

// === impl Declared ===

impl Declared for Counter {
    fn declare(&self) {
        self.register();
    }
}

impl Declared for Gauge {
    fn declare(&self) {
        self.register();
    }
}

impl Declared for Histogram {
    fn declare(&self) {
        self.register();
    }
}

impl<L: MetricLabels> Declared for CounterMap<L> {
    fn declare(&self) {
        self.family();
    }
}

impl<L: MetricLabels> Declared for GaugeMap<L> {
    fn declare(&self) {
        self.family();
    }
}

impl<L: MetricLabels> Declared for HistogramMap<L> {
    fn declare(&self) {
        self.family();
    }
}

// === impl LabelValue ===

impl LabelValue for String {
    fn render(&self) -> String {
        self.clone()
    }
}

impl LabelValue for &'static str {
    fn render(&self) -> String {
        (*self).to_owned()
    }
}

macro_rules! label_value_to_string {
    ($($ty:ty),*) => {
        $(impl LabelValue for $ty {
            fn render(&self) -> String {
                self.to_string()
            }
        })*
    };
}

label_value_to_string!(
    bool, u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

/// The weavelet a metric comes from: the labels it adds to every
/// definition it exports, so series from different processes stay apart.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The app's name (`serviceweaver_app`).
    pub(crate) app: String,
    /// The deployment id (`serviceweaver_version`).
    pub(crate) version: String,
    /// The weavelet id (`serviceweaver_node`).
    pub(crate) node: String,
}

/// The reply to a `GetMetrics` request that acknowledges reply `ack`: what
/// changed in `registry` since (see [`Registry::export`]), each definition
/// labelled with `origin`.
pub(crate) fn reply(registry: &Registry, ack: u64, origin: &Origin) -> GetMetricsReply {
    let Update { seq, defs, values } = registry.export(ack);
    let defs = defs
        .into_iter()
        .map(|mut def| {
            origin.label(&mut def);
            def
        })
        .collect();
    GetMetricsReply {
        update: Some(MetricUpdate { defs, values }),
        seq,
    }
}

/// Every metric of `registry` with its current value, each definition
/// labelled with `origin`: what a single-process run serves.
pub(crate) fn snapshot(registry: &Registry, origin: &Origin) -> Vec<Snapshot> {
    let mut all = registry.snapshot();
    for s in &mut all {
        origin.label(&mut s.def);
    }
    all
}

impl Origin {
    /// Adds the origin's labels to `def`.
    fn label(&self, def: &mut weaver_proto::runtime::MetricDef) {
        for (k, v) in [
            ("serviceweaver_app", &self.app),
            ("serviceweaver_version", &self.version),
            ("serviceweaver_node", &self.node),
        ] {
            def.labels.insert(k.to_owned(), v.clone());
        }
    }
}

/// Registers every metric marked `#[weaver::metric]`.
///
/// # Panics
///
/// If two metrics have the same name.
pub(crate) fn declare_all() {
    for metric in crate::__private::METRICS {
        metric.declare();
    }
}

/// The hash of a label set, for [`MetricLabels::__hash`].
pub(crate) fn labels_hash<L: MetricLabels>(labels: &L) -> u64 {
    let mut h = DefaultHasher::new();
    labels.__hash(&mut h);
    h.finish()
}

/// Panics (at compile time when called in a constant) unless `name` is a
/// valid Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) const fn check_name(name: &str) {
    if let Some(problem) = name_problem(name) {
        panic!("{}", problem);
    }
}

/// Panics (at compile time when called in a constant) unless `bounds` are
/// strictly ascending and none is NaN.
pub(crate) const fn check_bounds(bounds: &[f64]) {
    if let Some(problem) = bounds_problem(bounds) {
        panic!("{}", problem);
    }
}

/// What is wrong with metric name `name`, if anything.
pub(crate) const fn name_problem(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Some("a metric name cannot be empty");
    }
    if b[0].is_ascii_digit() {
        return Some("a metric name cannot start with a digit");
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_alphanumeric() || c == b'_' || c == b':') {
            return Some("a metric name has only ASCII letters, digits, `_` and `:`");
        }
        i += 1;
    }
    None
}

/// What is wrong with histogram bounds `bounds`, if anything.
pub(crate) const fn bounds_problem(bounds: &[f64]) -> Option<&'static str> {
    let mut i = 0;
    while i < bounds.len() {
        if bounds[i].is_nan() {
            return Some("a histogram bound cannot be NaN");
        }
        if i > 0 && bounds[i - 1] >= bounds[i] {
            return Some("histogram bounds must be strictly ascending");
        }
        i += 1;
    }
    None
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
