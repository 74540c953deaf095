//! The history's windows and quantiles over synthetic snapshots, with time
//! passed in (no waiting).

use std::collections::HashMap;

use weaver_proto::runtime::MetricType;

use super::*;

const BOUNDS: [f64; 3] = [10.0, 100.0, 1000.0];

fn def(id: u64, name: &str, caller: &str, remote: bool) -> MetricDef {
    let labels: HashMap<String, String> = [
        ("caller", caller),
        ("component", "mem::B"),
        ("method", "ping"),
        ("remote", if remote { "true" } else { "false" }),
        ("serviceweaver_node", "node"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let histogram = !name.ends_with("count");
    MetricDef {
        id,
        name: format!("serviceweaver_method_{name}"),
        typ: if histogram {
            MetricType::Histogram
        } else {
            MetricType::Counter
        } as i32,
        labels: labels.into_iter().collect(),
        bounds: if histogram {
            BOUNDS.to_vec()
        } else {
            Vec::new()
        },
        ..MetricDef::default()
    }
}

fn value(id: u64, value: f64, counts: Vec<u64>) -> MetricValue {
    MetricValue { id, value, counts }
}

/// A replica's method counts after `calls` calls from `weaver::Main`, each
/// taking 50 µs, `calls / 10` of them failing, with 8-byte requests and
/// 4-byte replies.
fn replica(calls: u64) -> Methods {
    let c = calls as f64;
    let series = [
        (def(1, "count", "weaver::Main", true), value(1, c, vec![])),
        (
            def(2, "error_count", "weaver::Main", true),
            value(2, (calls / 10) as f64, vec![]),
        ),
        (
            def(3, "latency_micros", "weaver::Main", true),
            value(3, 50.0 * c, vec![0, calls, 0, 0]),
        ),
        (
            def(4, "bytes_request", "weaver::Main", true),
            value(4, 8.0 * c, vec![calls, 0, 0, 0]),
        ),
        (
            def(5, "bytes_reply", "weaver::Main", true),
            value(5, 4.0 * c, vec![calls, 0, 0, 0]),
        ),
    ];
    methods_of(series.iter().map(|(d, v)| (d, v)))
}

/// The one row's (minute, hour, total) calls and spans in seconds.
fn calls(h: &History, now: Instant) -> [(u64, f64); 3] {
    let rows = h.stats(now, false);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    [&r.minute, &r.hour, &r.total].map(|w| (w.calls, w.seconds))
}

#[test]
fn quantiles_interpolate_within_buckets_and_count_the_overflow() {
    let q = |counts: &[u64], q| quantile(&BOUNDS, counts, q);
    assert_eq!(q(&[0, 0, 0, 0], 0.5), 0.0);
    // Rank 2 of 4, all in (10, 100].
    assert_eq!(q(&[0, 4, 0, 0], 0.5), 55.0);
    // The first bucket starts at 0.
    assert_eq!(q(&[2, 0, 0, 0], 0.5), 5.0);
    assert_eq!(q(&[1, 0, 0, 1], 0.5), 10.0);
    // Above every bound: at least the largest.
    assert_eq!(q(&[1, 0, 0, 1], 0.99), 1000.0);
    assert_eq!(q(&[0, 0, 0, 3], 0.5), 1000.0);
    assert_eq!(q(&[98, 0, 2, 0], 0.99), 550.0);
    assert_eq!(quantile(&[], &[5], 0.5), 0.0);

    // The overflow bucket counts toward the mean (Go's dashboard divides
    // by the other buckets' counts only).
    let slow = Counts {
        calls: 2.0,
        latency_sum: 5.0 + 4000.0,
        latency_bounds: BOUNDS.to_vec(),
        latency_counts: vec![1, 0, 0, 1],
        ..Counts::default()
    };
    let w = slow.window(1.0);
    assert_eq!(w.mean_latency_micros, 2002.5);
    assert_eq!((w.p50_micros, w.p99_micros), (10.0, 1000.0));
}

#[test]
fn a_replicas_series_add_up_per_method() {
    let local = [
        (
            def(1, "count", "weaver::Main", false),
            value(1, 2.0, vec![]),
        ),
        (def(2, "count", "weaver::Main", true), value(2, 3.0, vec![])),
        (
            def(3, "latency_micros", "weaver::Main", false),
            value(3, 20.0, vec![2, 0, 0, 0]),
        ),
        (
            def(4, "latency_micros", "weaver::Main", true),
            value(4, 300.0, vec![0, 3, 0, 0]),
        ),
        (
            MetricDef {
                id: 5,
                name: "mem_requests".to_owned(),
                ..MetricDef::default()
            },
            value(5, 9.0, vec![]),
        ),
    ];
    let methods = methods_of(local.iter().map(|(d, v)| (d, v)));
    let key = Key {
        component: "mem::B".to_owned(),
        method: "ping".to_owned(),
        caller: "weaver::Main".to_owned(),
    };
    assert_eq!(methods.keys().collect::<Vec<_>>(), [&key]);
    let w = methods[&key].window(1.0);
    assert_eq!((w.calls, w.mean_latency_micros), (5, 64.0));

    let w = replica(20).values().next().expect("a method").window(1.0);
    assert_eq!(
        (w.calls, w.errors, w.request_bytes, w.reply_bytes),
        (20, 2, 160, 80)
    );
    assert_eq!((w.mean_latency_micros, w.p50_micros), (50.0, 55.0));
}

#[test]
fn windows_span_what_they_can_and_keep_departed_and_restarted_replicas() {
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut h = History::new(t0);
    h.update("a", replica(0));
    h.record(at(0));

    // Numbers from the first seconds, over the time they really span.
    h.update("a", replica(10));
    h.record(at(10));
    assert_eq!(calls(&h, at(10)), [(10, 10.0), (10, 10.0), (10, 10.0)]);

    h.update("a", replica(20));
    h.update("b", replica(5));
    h.record(at(30));
    assert_eq!(calls(&h, at(30)), [(25, 30.0), (25, 30.0), (25, 30.0)]);

    // The minute starts at the oldest snapshot within it (t = 10 s).
    h.update("a", replica(30));
    h.record(at(70));
    assert_eq!(calls(&h, at(70)), [(25, 60.0), (35, 70.0), (35, 70.0)]);

    // b dies: its 5 calls stay; its replacement counts from 0.
    h.depart("b");
    h.update("b2", replica(0));
    h.update("a", replica(40));
    h.record(at(80));
    assert_eq!(calls(&h, at(80)), [(20, 50.0), (45, 80.0), (45, 80.0)]);

    // a dies too, and b2 counts 3.
    h.depart("a");
    h.update("b2", replica(3));
    h.record(at(90));
    assert_eq!(calls(&h, at(90)), [(23, 60.0), (48, 90.0), (48, 90.0)]);

    // A replica reporting less than before takes nothing back.
    // (The minute starts at t = 70 s: no poll between 30 s and 70 s.)
    h.update("b2", replica(1));
    h.record(at(95));
    assert_eq!(calls(&h, at(95)), [(13, 25.0), (48, 95.0), (48, 95.0)]);

    // Long after: the minute and the hour start at the newest snapshot.
    h.record(at(4000));
    assert_eq!(calls(&h, at(4000)), [(0, 0.0), (0, 0.0), (48, 4000.0)]);
    let rows = h.stats(at(4000), false);
    let total = &rows[0].total;
    assert_eq!((total.errors, total.request_bytes), (4, 8 * 48));
}

#[test]
fn a_window_without_a_snapshot_yet_starts_at_the_start() {
    let t0 = Instant::now();
    let mut h = History::new(t0);
    h.update("a", replica(4));
    let later = t0 + Duration::from_secs(2);
    assert_eq!(calls(&h, later), [(4, 2.0), (4, 2.0), (4, 2.0)]);
    // The first snapshot came after those calls: they still count.
    h.record(later);
    h.update("a", replica(6));
    let later = t0 + Duration::from_secs(3);
    assert_eq!(calls(&h, later), [(6, 3.0), (6, 3.0), (6, 3.0)]);
}

#[test]
fn the_rings_stay_bounded() {
    let t0 = Instant::now();
    let mut h = History::new(t0);
    for s in 0..3 * 3600 {
        h.update("a", replica(s));
        h.record(t0 + Duration::from_secs(s));
        let (recent, minutes) = h.ring_len();
        assert!(recent <= 13, "{recent} recent snapshots at {s} s");
        assert!(minutes <= RING_LEN, "{minutes} minute snapshots at {s} s");
    }
    assert_eq!(h.ring_len().1, RING_LEN);
    let now = t0 + Duration::from_secs(3 * 3600 - 1);
    let [minute, hour, _] = calls(&h, now);
    // One call a second.
    assert_eq!(minute, (59, 59.0));
    assert_eq!(hour, (3599, 3599.0));
}

#[test]
fn rows_are_per_caller_only_if_asked() {
    let t0 = Instant::now();
    let mut h = History::new(t0);
    let series = [
        (def(1, "count", "weaver::Main", true), value(1, 2.0, vec![])),
        (def(2, "count", "mem::C", true), value(2, 3.0, vec![])),
    ];
    h.update("a", methods_of(series.iter().map(|(d, v)| (d, v))));
    h.record(t0);
    let summed = h.stats(t0, false);
    assert_eq!(summed.len(), 1);
    assert_eq!(
        (summed[0].caller.as_deref(), summed[0].total.calls),
        (None, 5)
    );
    let split: Vec<_> = h
        .stats(t0, true)
        .into_iter()
        .map(|r| (r.caller, r.total.calls))
        .collect();
    assert_eq!(
        split,
        [
            (Some("mem::C".to_owned()), 3),
            (Some("weaver::Main".to_owned()), 2)
        ]
    );
}
