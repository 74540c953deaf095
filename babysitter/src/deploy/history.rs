//! Per-method history of a deployment's calls, for rates: what the
//! dashboard's Methods table shows for the last minute, the last hour and
//! since the start.
//!
//! Every poll of the replicas' metrics updates each replica's last-known
//! `serviceweaver_method_*` counts and records the deployment's total. A
//! window is the current total minus the oldest snapshot within it (minus
//! nothing while the deployment is younger than the window), so its numbers
//! are there from the first seconds (Go waits a minute), and each says how
//! long it really spans ([`MethodWindow::seconds`]).
//!
//! Totals never go down. A replica's counters only grow, and a restarted
//! replica is a new weavelet whose counters start from 0, so it adds to the
//! total. When a replica leaves, its last-known counts move to the
//! deployment's `departed` counts, where they stay: what it counted after
//! its last poll is lost, not taken back. Deltas are clamped at 0 all the
//! same, so a replica reporting less than before cannot make a rate
//! negative.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;
use weaver_proto::metrics::{MethodStats, MethodWindow, quantile};
use weaver_proto::runtime::{MetricDef, MetricValue};

#[cfg(test)]
mod tests;

/// The span of the minute window.
pub(crate) const MINUTE: Duration = Duration::from_secs(60);

/// The span of the hour window.
pub(crate) const HOUR: Duration = Duration::from_secs(3600);

/// Per-minute snapshots kept, for the hour window.
pub(crate) const RING_LEN: usize = 60;

/// The granularity of the snapshots kept for the minute window, which
/// bounds how many there are (polls on demand can come at any rate).
const RECENT_SPACING: Duration = Duration::from_secs(5);

/// One method as one caller calls it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub(crate) component: String,
    pub(crate) method: String,
    pub(crate) caller: String,
}

/// A method's counters, as counted since a replica (or the deployment)
/// started.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counts {
    pub(crate) calls: f64,
    pub(crate) errors: f64,
    /// The latency histogram's sum, in microseconds.
    pub(crate) latency_sum: f64,
    /// Its bucket upper bounds.
    pub(crate) latency_bounds: Vec<f64>,
    /// Its counts, `latency_bounds.len() + 1` (the last: above every
    /// bound).
    pub(crate) latency_counts: Vec<u64>,
    pub(crate) request_bytes: f64,
    pub(crate) reply_bytes: f64,
}

/// Counts per method.
pub(crate) type Methods = BTreeMap<Key, Counts>;

/// What the deployment counted, and snapshots of it over the last hour.
#[derive(Debug)]
pub(crate) struct History {
    /// When the deployment started: the start of the total window.
    started: Instant,
    /// Last-known counts of each live replica, by weavelet id.
    live: HashMap<String, Methods>,
    /// Last-known counts of the replicas that have left, added up.
    departed: Methods,
    /// Totals, one per [`RECENT_SPACING`] of time at most, none older than
    /// the minute window needs.
    recent: VecDeque<(Instant, Methods)>,
    /// Totals, one per minute at most, at most [`RING_LEN`] of them, none
    /// older than an hour.
    minutes: VecDeque<(Instant, Methods)>,
}

// === impl Key ===

impl Key {
    /// The key of a `serviceweaver_method_*` series.
    fn of(def: &MetricDef) -> Self {
        let label = |k: &str| def.labels.get(k).cloned().unwrap_or_default();
        Self {
            component: label("component"),
            method: label("method"),
            caller: label("caller"),
        }
    }
}

// === impl Counts ===

impl Counts {
    /// Adds `other` in, bucket by bucket (bounds from whichever has them:
    /// every method latency has Go's 30).
    pub(crate) fn add(&mut self, other: &Counts) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.latency_sum += other.latency_sum;
        if self.latency_bounds.is_empty() {
            self.latency_bounds.clone_from(&other.latency_bounds);
        }
        add_counts(&mut self.latency_counts, &other.latency_counts);
        self.request_bytes += other.request_bytes;
        self.reply_bytes += other.reply_bytes;
    }

    /// Raises each counter to `other`'s where that is higher.
    fn raise(&mut self, other: &Counts) {
        self.calls = self.calls.max(other.calls);
        self.errors = self.errors.max(other.errors);
        self.latency_sum = self.latency_sum.max(other.latency_sum);
        if self.latency_bounds.is_empty() {
            self.latency_bounds.clone_from(&other.latency_bounds);
        }
        if self.latency_counts.len() < other.latency_counts.len() {
            self.latency_counts.resize(other.latency_counts.len(), 0);
        }
        for (c, o) in self.latency_counts.iter_mut().zip(&other.latency_counts) {
            *c = (*c).max(*o);
        }
        self.request_bytes = self.request_bytes.max(other.request_bytes);
        self.reply_bytes = self.reply_bytes.max(other.reply_bytes);
    }

    /// What was counted after `base`, never below 0.
    pub(crate) fn since(&self, base: &Counts) -> Counts {
        let minus = |a: f64, b: f64| (a - b).max(0.0);
        let latency_counts = self
            .latency_counts
            .iter()
            .enumerate()
            .map(|(i, c)| c.saturating_sub(base.latency_counts.get(i).copied().unwrap_or(0)))
            .collect();
        Counts {
            calls: minus(self.calls, base.calls),
            errors: minus(self.errors, base.errors),
            latency_sum: minus(self.latency_sum, base.latency_sum),
            latency_bounds: self.latency_bounds.clone(),
            latency_counts,
            request_bytes: minus(self.request_bytes, base.request_bytes),
            reply_bytes: minus(self.reply_bytes, base.reply_bytes),
        }
    }

    /// The window these counts make over `seconds`.
    pub(crate) fn window(&self, seconds: f64) -> MethodWindow {
        let latencies: u64 = self.latency_counts.iter().sum();
        let mean = if latencies == 0 {
            0.0
        } else {
            self.latency_sum / latencies as f64
        };
        MethodWindow {
            seconds,
            calls: whole(self.calls),
            errors: whole(self.errors),
            mean_latency_micros: mean,
            p50_micros: quantile(&self.latency_bounds, &self.latency_counts, 0.5),
            p99_micros: quantile(&self.latency_bounds, &self.latency_counts, 0.99),
            request_bytes: whole(self.request_bytes),
            reply_bytes: whole(self.reply_bytes),
        }
    }
}

fn add_counts(sum: &mut Vec<u64>, counts: &[u64]) {
    if sum.len() < counts.len() {
        sum.resize(counts.len(), 0);
    }
    for (s, c) in sum.iter_mut().zip(counts) {
        *s += c;
    }
}

/// A counter's value as a whole number (they count whole calls and bytes).
fn whole(v: f64) -> u64 {
    // `as` saturates, and NaN becomes 0.
    v.max(0.0).round() as u64
}

/// The method counts in one replica's series.
pub(crate) fn methods_of<'a>(
    series: impl IntoIterator<Item = (&'a MetricDef, &'a MetricValue)>,
) -> Methods {
    let mut methods = Methods::new();
    for (def, value) in series {
        let Some(kind) = def.name.strip_prefix("serviceweaver_method_") else {
            continue;
        };
        let counts = methods.entry(Key::of(def)).or_default();
        // Series of one key differ only in `remote`: add them up.
        match kind {
            "count" => counts.calls += value.value,
            "error_count" => counts.errors += value.value,
            "latency_micros" => {
                counts.latency_sum += value.value;
                if counts.latency_bounds.is_empty() {
                    counts.latency_bounds.clone_from(&def.bounds);
                }
                add_counts(&mut counts.latency_counts, &value.counts);
            }
            "bytes_request" => counts.request_bytes += value.value,
            "bytes_reply" => counts.reply_bytes += value.value,
            _ => {}
        }
    }
    methods
}

fn add_methods(sum: &mut Methods, methods: &Methods) {
    for (key, counts) in methods {
        sum.entry(key.clone()).or_default().add(counts);
    }
}

// === impl History ===

impl History {
    /// An empty history of a deployment that started at `started`.
    pub(crate) fn new(started: Instant) -> Self {
        Self {
            started,
            live: HashMap::new(),
            departed: Methods::new(),
            recent: VecDeque::new(),
            minutes: VecDeque::new(),
        }
    }

    /// Sets what a live replica has counted so far. Its counters only
    /// grow: a value below the last one known is kept at that.
    pub(crate) fn update(&mut self, weavelet: &str, methods: Methods) {
        let known = self.live.entry(weavelet.to_owned()).or_default();
        for (key, counts) in methods {
            match known.get_mut(&key) {
                Some(old) => old.raise(&counts),
                None => {
                    known.insert(key, counts);
                }
            }
        }
    }

    /// A replica left: its last-known counts stay in the totals.
    pub(crate) fn depart(&mut self, weavelet: &str) {
        if let Some(methods) = self.live.remove(weavelet) {
            add_methods(&mut self.departed, &methods);
        }
    }

    /// Everything counted so far, by every replica that ever reported.
    pub(crate) fn total(&self) -> Methods {
        let mut total = self.departed.clone();
        for methods in self.live.values() {
            add_methods(&mut total, methods);
        }
        total
    }

    /// Records the current total as of `now` (a poll just ended): in each
    /// ring, if it has none of that slot of time yet (slots are counted
    /// from the start, so the rings do not drift with the polls' timing).
    pub(crate) fn record(&mut self, now: Instant) {
        let slot = |at: Instant, width: Duration| {
            at.saturating_duration_since(self.started).as_secs() / width.as_secs()
        };
        let new_slot = |ring: &VecDeque<(Instant, Methods)>, width| {
            ring.back()
                .is_none_or(|(at, _)| slot(*at, width) < slot(now, width))
        };
        let take_recent = new_slot(&self.recent, RECENT_SPACING);
        let take_minute = new_slot(&self.minutes, MINUTE);
        if take_recent || take_minute {
            let total = self.total();
            if take_minute {
                self.minutes.push_back((now, total.clone()));
            }
            if take_recent {
                self.recent.push_back((now, total));
            }
        }
        // The newest of `recent` is at most RECENT_SPACING old, so it stays.
        while self.recent.len() > 1 && self.recent[0].0 + MINUTE < now {
            self.recent.pop_front();
        }
        while self.minutes.len() > RING_LEN
            || (self.minutes.len() > 1 && self.minutes[0].0 + HOUR < now)
        {
            self.minutes.pop_front();
        }
    }

    /// When the last total was recorded.
    #[cfg(test)]
    pub(crate) fn last_record(&self) -> Option<Instant> {
        self.recent.back().map(|(at, _)| *at)
    }

    /// How many snapshots there are, for the minute and for the hour (for
    /// tests of the bounds).
    #[cfg(test)]
    pub(crate) fn ring_len(&self) -> (usize, usize) {
        (self.recent.len(), self.minutes.len())
    }

    /// One row per method (and per caller too if `by_caller`), as of `now`.
    pub(crate) fn stats(&self, now: Instant, by_caller: bool) -> Vec<MethodStats> {
        let total = group(&self.total(), by_caller);
        let since_start = now.saturating_duration_since(self.started);
        // A window that reaches back past the start (or has no snapshot
        // yet) starts there, from 0: the first snapshot may come after the
        // first calls.
        let bases =
            [(&self.recent, MINUTE), (&self.minutes, HOUR)].map(|(ring, span)| {
                match base(ring, now, span).filter(|_| since_start > span) {
                    Some((at, methods)) => (
                        now.saturating_duration_since(*at),
                        group(methods, by_caller),
                    ),
                    None => (since_start, BTreeMap::new()),
                }
            });
        let since_start = since_start.as_secs_f64();
        let none = Counts::default();
        total
            .iter()
            .map(|(key, counts)| {
                let [minute, hour] = bases.each_ref().map(|(span, base)| {
                    counts
                        .since(base.get(key).unwrap_or(&none))
                        .window(span.as_secs_f64())
                });
                let (component, method, caller) = key.clone();
                MethodStats {
                    component,
                    method,
                    caller,
                    minute,
                    hour,
                    total: counts.window(since_start),
                }
            })
            .collect()
    }
}

/// A row's key: the caller's only if asked.
type RowKey = (String, String, Option<String>);

fn group(methods: &Methods, by_caller: bool) -> BTreeMap<RowKey, Counts> {
    let mut rows: BTreeMap<RowKey, Counts> = BTreeMap::new();
    for (key, counts) in methods {
        let caller = by_caller.then(|| key.caller.clone());
        rows.entry((key.component.clone(), key.method.clone(), caller))
            .or_default()
            .add(counts);
    }
    rows
}

/// The snapshot a window of `span` up to `now` starts from: the oldest
/// within it, else (none is that young) the newest.
fn base(
    ring: &VecDeque<(Instant, Methods)>,
    now: Instant,
    span: Duration,
) -> Option<&(Instant, Methods)> {
    ring.iter()
        .find(|(at, _)| *at + span >= now)
        .or_else(|| ring.back())
}
