//! The metrics the generated stubs record for every component method call:
//! `serviceweaver_method_*`, labelled with the caller, the component, the
//! method and whether the call was remote.
//!
//! A stub resolves a method's series once, then records a call with a few
//! relaxed atomic updates. Each call is counted once, by the caller's stub.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Instant;

use super::registry::{CounterCell, HistogramCell, Shard};
use super::{CounterMap, HistogramMap};

/// Go's generated bounds: 1, 2 and 5 × 10^k for k in 0..=9.
pub(crate) const BUCKETS: [f64; 30] = buckets();

/// The labels of a method's series.
#[derive(crate::MetricLabels)]
#[weaver(crate = "crate")]
struct MethodLabels {
    caller: &'static str,
    component: &'static str,
    method: &'static str,
    remote: bool,
    /// Always `true`: marks what the runtime, not the app, records.
    serviceweaver_generated: bool,
}

static COUNT: CounterMap<MethodLabels> = CounterMap::new(
    "serviceweaver_method_count",
    "Count of Service Weaver component method invocations",
);
static ERROR_COUNT: CounterMap<MethodLabels> = CounterMap::new(
    "serviceweaver_method_error_count",
    "Count of Service Weaver component method invocations that result in an error",
);
static LATENCY: HistogramMap<MethodLabels> = HistogramMap::new(
    "serviceweaver_method_latency_micros",
    "Duration, in microseconds, of Service Weaver component method execution",
    &BUCKETS,
);
static BYTES_REQUEST: HistogramMap<MethodLabels> = HistogramMap::new(
    "serviceweaver_method_bytes_request",
    "Number of bytes in Service Weaver component method requests",
    &BUCKETS,
);
static BYTES_REPLY: HistogramMap<MethodLabels> = HistogramMap::new(
    "serviceweaver_method_bytes_reply",
    "Number of bytes in Service Weaver component method replies",
    &BUCKETS,
);

/// One method's series, as one caller calls it, locally or remotely.
pub struct MethodMetrics {
    /// `None` when method metrics are off (see [`enabled`]): decided once,
    /// at resolution, so a call pays one predictable branch for it.
    series: Option<Series>,
}

/// The cells of the series [`MethodMetrics`] records into (striped per
/// thread, so the calls of several threads do not contend).
struct Series {
    count: &'static CounterCell,
    errors: &'static CounterCell,
    latency: &'static HistogramCell,
    /// Request and reply sizes, for remote calls only.
    bytes: Option<(&'static HistogramCell, &'static HistogramCell)>,
}

// === impl MethodMetrics ===

impl MethodMetrics {
    /// The series of `caller` calling `component.method`.
    #[doc(hidden)]
    pub fn new(
        caller: &'static str,
        component: &'static str,
        method: &'static str,
        remote: bool,
    ) -> Self {
        let labels = MethodLabels {
            caller,
            component,
            method,
            remote,
            serviceweaver_generated: true,
        };
        let series = enabled().then(|| Series {
            count: COUNT.get(&labels).cell(),
            errors: ERROR_COUNT.get(&labels).cell(),
            latency: LATENCY.get(&labels).cell(),
            bytes: remote.then(|| {
                (
                    BYTES_REQUEST.get(&labels).cell(),
                    BYTES_REPLY.get(&labels).cell(),
                )
            }),
        });
        Self { series }
    }

    /// Records a call that started at `start`; `bytes` are a remote call's
    /// request and reply sizes (the reply's 0 if none came back).
    ///
    /// A remote call ends when its reply was read from the connection, if
    /// the RPC client noted that (see [`note_arrival`]): replies read
    /// together then share one clock read. Otherwise, and for local calls,
    /// it ends now.
    pub fn record(&self, start: Instant, failed: bool, bytes: (usize, usize)) {
        let arrived = take_arrival();
        let Some(s) = &self.series else {
            return;
        };
        let end = match arrived {
            Some(at) if s.bytes.is_some() && at >= start => at,
            _ => Instant::now(),
        };
        let micros = u64::try_from((end - start).as_micros()).unwrap_or(u64::MAX);
        let shard = Shard::current();
        s.count.inc_at(shard);
        if failed {
            s.errors.inc_at(shard);
        }
        s.latency.put_u64_at(shard, micros);
        if let Some((request, reply)) = s.bytes {
            request.put_u64_at(shard, bytes.0 as u64);
            reply.put_u64_at(shard, bytes.1 as u64);
        }
    }
}

thread_local! {
    /// When the reply of the remote call that just completed on this thread
    /// was read; see [`note_arrival`].
    static ARRIVED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Notes that the reply of the call the RPC client is completing on this
/// thread was read at `at` (`None`: no reply).
///
/// The client completes a call inside the poll of the stub that awaits it,
/// so the stub's [`MethodMetrics::record`], in that same poll, takes the
/// note (a stale one, from before the call started, is ignored).
pub(crate) fn note_arrival(at: Option<Instant>) {
    ARRIVED.set(at);
}

/// Takes the note of [`note_arrival`], if any.
pub(crate) fn take_arrival() -> Option<Instant> {
    ARRIVED.take()
}

/// Whether method metrics are recorded: yes, unless the process was started
/// with `WEAVER_METHOD_METRICS=off`. Read once per process.
///
/// Bench-only: `rpc-bench` sets it to measure what the metrics cost. Apps
/// should not set it; nothing else in the runtime reads it.
fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("WEAVER_METHOD_METRICS").is_none_or(|v| v != "off"))
}

const fn buckets() -> [f64; 30] {
    let mut out = [0.0; 30];
    let mut scale = 1.0;
    let mut k = 0;
    while k < 10 {
        out[3 * k] = scale;
        out[3 * k + 1] = 2.0 * scale;
        out[3 * k + 2] = 5.0 * scale;
        scale *= 10.0;
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{MethodMetrics, note_arrival};

    fn latency(m: &MethodMetrics) -> (u64, f64) {
        let s = m.series.as_ref().expect("method metrics are on in tests");
        (s.latency.count(), s.latency.sum())
    }

    #[test]
    fn remote_call_ends_when_its_reply_was_read() {
        let m = MethodMetrics::new("test::Caller", "test::Arrival", "remote", true);
        let start = Instant::now();
        note_arrival(Some(start + Duration::from_millis(5)));
        m.record(start, false, (3, 4));
        assert_eq!(latency(&m), (1, 5000.0));
        let s = m.series.as_ref().expect("on");
        let (request, reply) = s.bytes.expect("remote");
        assert_eq!((request.sum(), reply.sum()), (3.0, 4.0));
    }

    #[test]
    fn stale_or_missing_arrival_is_not_used() {
        let m = MethodMetrics::new("test::Caller", "test::Stale", "remote", true);
        let before = Instant::now();
        let start = before + Duration::from_secs(1);
        // A note from before the call started (another call's) is ignored:
        // the call ends at the clock, which is before `start` here, so 0 µs.
        note_arrival(Some(before));
        m.record(start, false, (0, 0));
        assert_eq!(latency(&m), (1, 0.0));
        // The note was taken: the next call finds none either.
        m.record(before, true, (0, 0));
        let (count, sum) = latency(&m);
        assert_eq!(count, 2);
        assert!(
            sum < 1_000_000.0,
            "ended at the clock, not at a note: {sum}"
        );
    }

    #[test]
    fn local_call_ignores_an_arrival_note() {
        let m = MethodMetrics::new("test::Caller", "test::Local", "local", false);
        let start = Instant::now();
        note_arrival(Some(start + Duration::from_secs(100)));
        m.record(start, false, (0, 0));
        let (count, sum) = latency(&m);
        assert_eq!(count, 1);
        assert!(sum < 100_000_000.0, "{sum}");
        assert_eq!(super::take_arrival(), None, "the note was taken");
    }
}
