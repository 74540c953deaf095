//! Per-method totals computed from a process's metrics, for single-process
//! runs: they serve metrics but not the babysitter's per-minute and
//! per-hour statistics, so only the "All" columns are filled.

use std::collections::BTreeMap;

use weaver_babysitter::{MethodStats, MethodWindow, Metric};
use weaver_proto::metrics::quantile;

/// What one method's series add up to.
#[derive(Default)]
struct Counts {
    calls: f64,
    errors: f64,
    latency_sum: f64,
    latency_bounds: Vec<f64>,
    latency_counts: Vec<u64>,
    request_bytes: f64,
    reply_bytes: f64,
}

/// One row per (component, method) in `metrics`, all time only.
pub(crate) fn totals(metrics: &[Metric]) -> Vec<MethodStats> {
    let mut methods: BTreeMap<(String, String), Counts> = BTreeMap::new();
    for m in metrics {
        let Some(kind) = m.name.strip_prefix("serviceweaver_method_") else {
            continue;
        };
        let label = |k: &str| m.labels.get(k).cloned().unwrap_or_default();
        let c = methods
            .entry((label("component"), label("method")))
            .or_default();
        match kind {
            "count" => c.calls += m.value,
            "error_count" => c.errors += m.value,
            "latency_micros" => {
                c.latency_sum += m.value;
                c.latency_bounds.clone_from(&m.bounds);
                if c.latency_counts.len() < m.counts.len() {
                    c.latency_counts.resize(m.counts.len(), 0);
                }
                for (s, n) in c.latency_counts.iter_mut().zip(&m.counts) {
                    *s += n;
                }
            }
            "bytes_request" => c.request_bytes += m.value,
            "bytes_reply" => c.reply_bytes += m.value,
            _ => {}
        }
    }
    methods
        .into_iter()
        .map(|((component, method), c)| MethodStats {
            component,
            method,
            caller: None,
            minute: MethodWindow::default(),
            hour: MethodWindow::default(),
            total: window(&c),
        })
        .collect()
}

fn window(c: &Counts) -> MethodWindow {
    let latencies: u64 = c.latency_counts.iter().sum();
    let mean = if latencies == 0 {
        0.0
    } else {
        c.latency_sum / latencies as f64
    };
    MethodWindow {
        // Unknown: the process's age is not in its metrics.
        seconds: f64::NAN,
        calls: whole(c.calls),
        errors: whole(c.errors),
        mean_latency_micros: mean,
        p50_micros: quantile(&c.latency_bounds, &c.latency_counts, 0.5),
        p99_micros: quantile(&c.latency_bounds, &c.latency_counts, 0.99),
        request_bytes: whole(c.request_bytes),
        reply_bytes: whole(c.reply_bytes),
    }
}

/// A counter's value as a whole number.
fn whole(v: f64) -> u64 {
    // `as` saturates, and NaN becomes 0.
    v.max(0.0).round() as u64
}
