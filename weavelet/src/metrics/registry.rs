//! The process's metrics: their definitions, their cells (the atomics the
//! handles update) and what has been reported to the envelope.
//!
//! A handle resolves its cell once, under the registry's lock; updates then
//! touch only the cell. Export takes the lock and reads every cell.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub(crate) use weaver_proto::prometheus::Snapshot;
use weaver_proto::runtime as proto;

/// The registry of the process, which every handle registers in.
static GLOBAL: Registry = Registry::new();

/// Kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Counts per bucket, and a sum.
    Histogram,
}

/// What the series of one metric name share.
#[derive(Debug, Clone)]
pub(crate) struct FamilyDef {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    bounds: &'static [f64],
}

/// A counter's value: whole increments apart from fractional ones, so that
/// `inc` is one `fetch_add`.
#[derive(Debug, Default)]
pub(crate) struct CounterCell {
    ints: AtomicU64,
    floats: AtomicF64,
}

/// A gauge's value.
#[derive(Debug, Default)]
pub(crate) struct GaugeCell(AtomicF64);

/// A histogram's buckets and sum.
#[derive(Debug)]
pub(crate) struct HistogramCell {
    bounds: &'static [f64],
    /// `bounds.len() + 1` counts; the last one is above every bound.
    counts: Box<[AtomicU64]>,
    sum: AtomicF64,
}

/// The process's metrics.
pub(crate) struct Registry {
    state: Mutex<State>,
}

/// One reply to a metrics poll: what changed since the last acknowledged
/// reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Update {
    /// This reply's sequence number (> 0). The next poll acknowledges it.
    pub(crate) seq: u64,
    /// Definitions the poller does not have yet.
    pub(crate) defs: Vec<proto::MetricDef>,
    /// Values that changed (absolute values, not increments).
    pub(crate) values: Vec<proto::MetricValue>,
}

/// An `f64` in an `AtomicU64`.
#[derive(Debug, Default)]
struct AtomicF64(AtomicU64);

/// State guarded by `Registry::state`.
struct State {
    /// Metric names taken, so a second metric of the same name is refused.
    names: BTreeSet<&'static str>,
    /// Every series, in registration order; a series' id is its index + 1.
    series: Vec<Series>,
    /// Sequence number of the last reply the poller acknowledged (0: none).
    acked_seq: u64,
    /// The values the poller has, by id, as of `acked_seq`.
    acked: BTreeMap<u64, Sample>,
    /// The last reply, not acknowledged yet.
    pending: Option<(u64, Vec<(u64, Sample)>)>,
    /// The last sequence number used.
    last_seq: u64,
}

struct Series {
    family: FamilyDef,
    labels: Vec<String>,
    cell: Cell,
}

enum Cell {
    Counter(Arc<CounterCell>),
    Gauge(Arc<GaugeCell>),
    Histogram(Arc<HistogramCell>),
}

/// What a change is detected on: the value's bits, and a histogram's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sample {
    bits: u64,
    counts: Vec<u64>,
}

/// The process's registry.
pub(crate) fn global() -> &'static Registry {
    &GLOBAL
}

// === impl AtomicF64 ===

impl AtomicF64 {
    fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Relaxed))
    }

    fn store(&self, v: f64) {
        self.0.store(v.to_bits(), Relaxed);
    }

    fn add(&self, delta: f64) {
        // A CAS loop: there is no atomic float add.
        let _ = self.0.fetch_update(Relaxed, Relaxed, |b| {
            Some((f64::from_bits(b) + delta).to_bits())
        });
    }
}

// === impl CounterCell ===

impl CounterCell {
    #[inline]
    pub(crate) fn inc(&self) {
        self.ints.fetch_add(1, Relaxed);
    }

    #[inline]
    pub(crate) fn add(&self, delta: f64) {
        if delta.is_nan() || delta <= 0.0 {
            return;
        }
        if delta.fract() == 0.0 && delta < u32::MAX as f64 {
            self.ints.fetch_add(delta as u64, Relaxed);
        } else {
            self.floats.add(delta);
        }
    }

    pub(crate) fn get(&self) -> f64 {
        self.ints.load(Relaxed) as f64 + self.floats.load()
    }
}

// === impl GaugeCell ===

impl GaugeCell {
    #[inline]
    pub(crate) fn set(&self, v: f64) {
        self.0.store(v);
    }

    #[inline]
    pub(crate) fn add(&self, delta: f64) {
        self.0.add(delta);
    }

    pub(crate) fn get(&self) -> f64 {
        self.0.load()
    }
}

// === impl HistogramCell ===

impl HistogramCell {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicF64::default(),
        }
    }

    #[inline]
    pub(crate) fn put(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        // The first bucket whose bound is >= v: Prometheus' `le`.
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i].fetch_add(1, Relaxed);
        if v != 0.0 {
            self.sum.add(v);
        }
    }

    pub(crate) fn counts(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Relaxed)).collect()
    }

    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    pub(crate) fn sum(&self) -> f64 {
        self.sum.load()
    }
}

// === impl Registry ===

impl Registry {
    pub(crate) const fn new() -> Self {
        Self {
            state: Mutex::new(State {
                names: BTreeSet::new(),
                series: Vec::new(),
                acked_seq: 0,
                acked: BTreeMap::new(),
                pending: None,
                last_seq: 0,
            }),
        }
    }

    /// Takes `name` for a family of series.
    ///
    /// # Panics
    ///
    /// If a metric named `name` exists, or a label name is invalid or
    /// repeated (the derive refuses those at compile time).
    pub(crate) fn family(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> FamilyDef {
        let problem = super::name_problem(name)
            .map(str::to_owned)
            .or_else(|| super::bounds_problem(bounds).map(str::to_owned))
            .or_else(|| bad_label(labels));
        if let Some(problem) = problem {
            panic!("metric {name:?}: {problem}");
        }
        let taken = !self.lock().names.insert(name);
        if taken {
            panic!("metric {name:?} already exists");
        }
        FamilyDef {
            name,
            help,
            kind,
            labels,
            bounds,
        }
    }

    /// Registers a counter without labels.
    pub(crate) fn counter(&self, name: &'static str, help: &'static str) -> Arc<CounterCell> {
        let family = self.family(name, help, Kind::Counter, &[], &[]);
        self.counter_in(&family, Vec::new())
    }

    /// Registers a gauge without labels.
    pub(crate) fn gauge(&self, name: &'static str, help: &'static str) -> Arc<GaugeCell> {
        let family = self.family(name, help, Kind::Gauge, &[], &[]);
        self.gauge_in(&family, Vec::new())
    }

    /// Registers a histogram without labels.
    pub(crate) fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        bounds: &'static [f64],
    ) -> Arc<HistogramCell> {
        let family = self.family(name, help, Kind::Histogram, &[], bounds);
        self.histogram_in(&family, Vec::new())
    }

    /// Registers the counter of label values `labels` in `family`.
    pub(crate) fn counter_in(&self, family: &FamilyDef, labels: Vec<String>) -> Arc<CounterCell> {
        let cell = Arc::new(CounterCell::default());
        self.add(family, labels, Cell::Counter(cell.clone()));
        cell
    }

    /// Registers the gauge of label values `labels` in `family`.
    pub(crate) fn gauge_in(&self, family: &FamilyDef, labels: Vec<String>) -> Arc<GaugeCell> {
        let cell = Arc::new(GaugeCell::default());
        self.add(family, labels, Cell::Gauge(cell.clone()));
        cell
    }

    /// Registers the histogram of label values `labels` in `family`.
    pub(crate) fn histogram_in(
        &self,
        family: &FamilyDef,
        labels: Vec<String>,
    ) -> Arc<HistogramCell> {
        let cell = Arc::new(HistogramCell::new(family.bounds));
        self.add(family, labels, Cell::Histogram(cell.clone()));
        cell
    }

    /// Every metric's definition and current value.
    pub(crate) fn snapshot(&self) -> Vec<Snapshot> {
        let state = self.lock();
        state
            .series
            .iter()
            .zip(1..)
            .map(|(s, id)| Snapshot {
                def: s.def(id),
                value: s.sample().value(id),
            })
            .collect()
    }

    /// The reply to a poll that acknowledges reply `ack` (0 if the poller
    /// has none): the definitions and values the poller lacks, given what
    /// it acknowledged.
    ///
    /// A reply is only taken as received once the next poll acknowledges
    /// it; a poll that acknowledges anything else gets everything since the
    /// last acknowledged reply again (or, from a poller that knows nothing,
    /// everything). Values are absolute, so a resent value does no harm.
    /// One poller at a time.
    pub(crate) fn export(&self, ack: u64) -> Update {
        let mut state = self.lock();
        let state = &mut *state;
        match state.pending.take() {
            Some((seq, sent)) if seq == ack => {
                state.acked.extend(sent);
                state.acked_seq = ack;
            }
            _ if ack == state.acked_seq => {}
            _ => {
                state.acked.clear();
                state.acked_seq = ack;
            }
        }
        state.last_seq += 1;
        let mut update = Update {
            seq: state.last_seq,
            ..Update::default()
        };
        let mut sent = Vec::new();
        for (s, id) in state.series.iter().zip(1..) {
            let sample = s.sample();
            match state.acked.get(&id) {
                Some(acked) if *acked == sample => continue,
                Some(_) => {}
                None => update.defs.push(s.def(id)),
            }
            update.values.push(sample.value(id));
            sent.push((id, sample));
        }
        state.pending = Some((update.seq, sent));
        update
    }

    fn add(&self, family: &FamilyDef, labels: Vec<String>, cell: Cell) {
        self.lock().series.push(Series {
            family: family.clone(),
            labels,
            cell,
        });
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic: every update is one
        // push or insert.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl Series ===

impl Series {
    fn def(&self, id: u64) -> proto::MetricDef {
        let f = &self.family;
        proto::MetricDef {
            id,
            name: f.name.to_owned(),
            typ: match f.kind {
                Kind::Counter => proto::MetricType::Counter,
                Kind::Gauge => proto::MetricType::Gauge,
                Kind::Histogram => proto::MetricType::Histogram,
            } as i32,
            help: f.help.to_owned(),
            labels: f
                .labels
                .iter()
                .map(|l| (*l).to_owned())
                .zip(self.labels.iter().cloned())
                .collect(),
            bounds: f.bounds.to_vec(),
        }
    }

    fn sample(&self) -> Sample {
        match &self.cell {
            Cell::Counter(c) => Sample::scalar(c.get()),
            Cell::Gauge(g) => Sample::scalar(g.get()),
            Cell::Histogram(h) => Sample {
                bits: h.sum().to_bits(),
                counts: h.counts(),
            },
        }
    }
}

// === impl Sample ===

impl Sample {
    fn scalar(v: f64) -> Self {
        Self {
            bits: v.to_bits(),
            counts: Vec::new(),
        }
    }

    fn value(&self, id: u64) -> proto::MetricValue {
        proto::MetricValue {
            id,
            value: f64::from_bits(self.bits),
            counts: self.counts.clone(),
        }
    }
}

/// What is wrong with label names `labels`, if anything.
fn bad_label(labels: &[&str]) -> Option<String> {
    for (i, l) in labels.iter().enumerate() {
        let mut chars = l.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !l.starts_with("__");
        if !valid {
            return Some(format!("invalid label name {l:?}"));
        }
        if labels[..i].contains(l) {
            return Some(format!("label {l:?} appears twice"));
        }
    }
    None
}
