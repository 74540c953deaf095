//! The metrics the generated stubs record for every component method call:
//! `serviceweaver_method_*`, labelled with the caller, the component, the
//! method and whether the call was remote.
//!
//! A stub resolves a method's series once, then records a call with a few
//! relaxed atomic updates. Each call is counted once, by the caller's stub.

use std::sync::OnceLock;
use std::time::Instant;

use super::{Counter, CounterMap, Histogram, HistogramMap};

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

/// The series [`MethodMetrics`] records into.
struct Series {
    count: &'static Counter,
    errors: &'static Counter,
    latency: &'static Histogram,
    /// Request and reply sizes, for remote calls only.
    bytes: Option<(&'static Histogram, &'static Histogram)>,
}

// === impl MethodMetrics ===

impl MethodMetrics {
    /// The series of `caller` calling `component.method`.
    pub(crate) fn new(
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
            count: COUNT.get(&labels),
            errors: ERROR_COUNT.get(&labels),
            latency: LATENCY.get(&labels),
            bytes: remote.then(|| (BYTES_REQUEST.get(&labels), BYTES_REPLY.get(&labels))),
        });
        Self { series }
    }

    /// Records a call that started at `start`; `bytes` are a remote call's
    /// request and reply sizes (the reply's 0 if none came back).
    pub fn record(&self, start: Instant, failed: bool, bytes: (usize, usize)) {
        let Some(s) = &self.series else {
            return;
        };
        s.count.inc();
        if failed {
            s.errors.inc();
        }
        s.latency.put(start.elapsed().as_micros() as f64);
        if let Some((request, reply)) = s.bytes {
            request.put(bytes.0 as f64);
            reply.put(bytes.1 as f64);
        }
    }
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
