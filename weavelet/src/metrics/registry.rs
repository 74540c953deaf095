//! The process's metrics: their definitions, their cells (the atomics the
//! handles update) and what has been reported to the envelope.
//!
//! A handle resolves its cell once, under the registry's lock; updates then
//! touch only the cell. Export takes the lock and reads every cell.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

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

/// A counter's value, striped: each thread adds to its own shard (see
/// [`shard`]), so threads that count the same calls do not fight over one
/// cache line; a read sums the shards. Whole increments are kept apart from
/// fractional ones, so that `inc` is one `fetch_add`.
#[derive(Debug)]
pub(crate) struct CounterCell {
    /// One line per shard: slot 0 the whole increments, slot 1 the bits of
    /// the fractional sum.
    lines: Box<[Line]>,
}

/// A gauge's value.
#[derive(Debug, Default)]
pub(crate) struct GaugeCell(AtomicF64);

/// A histogram's buckets and sum, striped like [`CounterCell`].
#[derive(Debug)]
pub(crate) struct HistogramCell {
    bounds: &'static [f64],
    /// Whether `bounds` are Go's 1, 2, 5 × 10^k (the method metrics'), whose
    /// bucket an integer finds without a search.
    decimal: bool,
    /// Slots per shard, a whole number of lines: `bounds.len() + 1` counts
    /// (the last one above every bound), the whole part of the sum, the
    /// bits of the fractional part.
    stride: usize,
    lines: Box<[Line]>,
}

/// Eight atomics on a cache line of their own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Line([AtomicU64; 8]);

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
        add_f64(&self.0, delta);
    }
}

// === impl CounterCell ===

impl Default for CounterCell {
    fn default() -> Self {
        Self {
            lines: (0..shards()).map(|_| Line::default()).collect(),
        }
    }
}

impl CounterCell {
    #[inline]
    pub(crate) fn inc(&self) {
        self.inc_at(Shard::current());
    }

    /// [`inc`](Self::inc) from the thread that holds `shard`.
    #[inline]
    pub(crate) fn inc_at(&self, shard: Shard) {
        shard.add(&self.lines[shard.index].0[0], 1);
    }

    #[inline]
    pub(crate) fn add(&self, delta: f64) {
        if delta.is_nan() || delta <= 0.0 {
            return;
        }
        let shard = Shard::current();
        let line = &self.lines[shard.index];
        if delta.fract() == 0.0 && delta < u32::MAX as f64 {
            shard.add(&line.0[0], delta as u64);
        } else {
            shard.add_f64(&line.0[1], delta);
        }
    }

    pub(crate) fn get(&self) -> f64 {
        let ints: u64 = self.lines.iter().map(|l| l.0[0].load(Relaxed)).sum();
        let floats: f64 = self
            .lines
            .iter()
            .map(|l| f64::from_bits(l.0[1].load(Relaxed)))
            .sum();
        ints as f64 + floats
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
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        let stride = (bounds.len() + 3).div_ceil(8) * 8;
        Self {
            bounds,
            decimal: bounds == super::method::BUCKETS,
            stride,
            lines: (0..shards() * stride / 8)
                .map(|_| Line::default())
                .collect(),
        }
    }

    /// Slot `i` of shard number `shard`.
    #[inline]
    fn slot(&self, shard: usize, i: usize) -> &AtomicU64 {
        let k = shard * self.stride + i;
        &self.lines[k / 8].0[k % 8]
    }

    #[inline]
    pub(crate) fn put(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let shard = Shard::current();
        if v >= 0.0 && v.fract() == 0.0 && v < (1u64 << 53) as f64 {
            return self.put_u64_at(shard, v as u64);
        }
        // The first bucket whose bound is >= v: Prometheus' `le`.
        let i = self.bounds.partition_point(|b| *b < v);
        shard.add(self.slot(shard.index, i), 1);
        shard.add_f64(self.slot(shard.index, self.bounds.len() + 2), v);
    }

    /// [`put`](Self::put) for a whole number, such as microseconds or
    /// bytes, from the thread that holds `shard`: no search for Go's
    /// bounds, and no loop for the sum.
    #[inline]
    pub(crate) fn put_u64_at(&self, shard: Shard, v: u64) {
        let i = if self.decimal {
            decimal_bucket(v)
        } else {
            self.bounds.partition_point(|b| *b < v as f64)
        };
        shard.add(self.slot(shard.index, i), 1);
        if v != 0 {
            shard.add(self.slot(shard.index, self.bounds.len() + 1), v);
        }
    }

    pub(crate) fn counts(&self) -> Vec<u64> {
        (0..=self.bounds.len())
            .map(|i| (0..shards()).map(|s| self.slot(s, i).load(Relaxed)).sum())
            .collect()
    }

    pub(crate) fn count(&self) -> u64 {
        self.counts().iter().sum()
    }

    pub(crate) fn sum(&self) -> f64 {
        let n = self.bounds.len();
        (0..shards())
            .map(|s| {
                self.slot(s, n + 1).load(Relaxed) as f64
                    + f64::from_bits(self.slot(s, n + 2).load(Relaxed))
            })
            .sum()
    }
}

/// The bucket of whole number `v` among Go's bounds 1, 2, 5 × 10^k for k in
/// 0..=9 (index 30: above them all).
#[inline]
pub(crate) fn decimal_bucket(v: u64) -> usize {
    if v <= 1 {
        return 0;
    }
    // 10^k < v <= 10^(k+1); the bounds in there are 2·10^k, 5·10^k, 10^(k+1).
    let k = (v - 1).ilog10();
    if k > 9 {
        return 30;
    }
    let scale = 10u64.pow(k);
    let i = 3 * k as usize
        + if v <= 2 * scale {
            1
        } else if v <= 5 * scale {
            2
        } else {
            3
        };
    i.min(30)
}

/// Adds `delta` to the `f64` whose bits are in `slot`: a CAS loop, as
/// there is no atomic float add.
fn add_f64(slot: &AtomicU64, delta: f64) {
    let _ = slot.fetch_update(Relaxed, Relaxed, |b| {
        Some((f64::from_bits(b) + delta).to_bits())
    });
}

/// Shards a striped cell has: one per thread that updates metrics, up to
/// twice the CPUs (at least 4, at most 64), and a last one that the
/// threads beyond those share.
pub(crate) fn shards() -> usize {
    owned_shards() + 1
}

/// How many shards are each held by one thread at most.
fn owned_shards() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        (2 * cpus).clamp(4, 64)
    })
}

/// Which shard of a striped cell the current thread writes.
///
/// A thread takes a shard of its own the first time it updates a metric
/// and gives it back when it exits; on its own shard an update is a plain
/// load and store (no other thread writes there, readers only load), which
/// is what makes a method call's metrics cheap. Threads beyond
/// [`owned_shards`] share the last shard, with atomic read-modify-writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shard {
    index: usize,
    owned: bool,
}

/// Shards given back by threads that exited.
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());
/// Shards never held yet start here.
static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The current thread's shard, encoded by [`Shard::encode`] (0: none
    /// taken yet). Constant-initialized and without a destructor, so that
    /// reading it is one load, even in other thread-locals' destructors.
    static MINE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Gives an owned shard back when the thread exits.
    static RELEASE: Release = const { Release };
}

/// See [`RELEASE`].
struct Release;

impl Shard {
    /// The current thread's shard.
    #[inline]
    pub(crate) fn current() -> Self {
        let code = MINE.get();
        if code != 0 {
            return Self::decode(code);
        }
        Self::take()
    }

    /// Takes a shard for the current thread: one given back, else a new
    /// one, else the shared one.
    #[cold]
    fn take() -> Self {
        let shared = Self {
            index: owned_shards(),
            owned: false,
        };
        let reused = FREE.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let index = reused.or_else(|| {
            NEXT.fetch_update(Relaxed, Relaxed, |n| (n < owned_shards()).then_some(n + 1))
                .ok()
        });
        let shard = match index {
            // Arms the destructor that gives the shard back; a thread that is
            // exiting already cannot arm it, so it shares.
            Some(index) if RELEASE.try_with(|_| ()).is_ok() => Self { index, owned: true },
            Some(index) => {
                FREE.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(index);
                shared
            }
            None => shared,
        };
        MINE.set(shard.encode());
        shard
    }

    fn encode(self) -> usize {
        (self.index << 1 | usize::from(self.owned)) + 2
    }

    #[inline]
    fn decode(code: usize) -> Self {
        let v = code - 2;
        Self {
            index: v >> 1,
            owned: v & 1 == 1,
        }
    }

    /// Adds `n` to `slot`, a slot of this shard.
    #[inline]
    fn add(self, slot: &AtomicU64, n: u64) {
        if self.owned {
            slot.store(slot.load(Relaxed).wrapping_add(n), Relaxed);
        } else {
            slot.fetch_add(n, Relaxed);
        }
    }

    /// Adds `delta` to the `f64` whose bits are in `slot`, a slot of this
    /// shard.
    #[inline]
    fn add_f64(self, slot: &AtomicU64, delta: f64) {
        if self.owned {
            slot.store(
                (f64::from_bits(slot.load(Relaxed)) + delta).to_bits(),
                Relaxed,
            );
        } else {
            add_f64(slot, delta);
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let code = MINE.get();
        if code == 0 {
            return;
        }
        let shard = Shard::decode(code);
        if shard.owned {
            // Updates from later destructors on this thread share.
            MINE.set(
                Shard {
                    index: owned_shards(),
                    owned: false,
                }
                .encode(),
            );
            FREE.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(shard.index);
        }
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
