//! Metric update cost: ns per `Counter::inc`/`add`, uncontended and with two
//! threads updating one counter, plus `Histogram::put` and a
//! `CounterMap::get` then `inc`, and what a stub records per remote call,
//! for context.
//!
//! Run with:
//!
//! ```text
//! cargo run --release --manifest-path benches/Cargo.toml --target-dir target --bin metrics-bench [-- <runs>]
//! ```
//!
//! Each case runs `<runs>` times (default 7), 20,000,000 updates a run
//! (2,000,000 for the map), and prints the median ns per update and the
//! range. With 2 threads, ns/update is each thread's time over its own
//! updates (both run at once on one counter), so a collapse shows as a
//! figure many times the uncontended one.

#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

use weaver::{Counter, CounterMap, Histogram, MetricLabels};

/// Go's generated bounds, as the method metrics use: 1, 2, 5 × 10^k.
const BOUNDS: [f64; 30] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 1e2, 2e2, 5e2, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5,
    1e6, 2e6, 5e6, 1e7, 2e7, 5e7, 1e8, 2e8, 5e8, 1e9, 2e9, 5e9,
];

static INC: Counter = Counter::new("bench_inc", "Counter::inc, uncontended");
static ADD: Counter = Counter::new("bench_add", "Counter::add, uncontended");
static SHARED: Counter = Counter::new("bench_shared", "Counter::inc from 2 threads");
static SHARED_ADD: Counter = Counter::new("bench_shared_add", "Counter::add from 2 threads");
static HIST: Histogram = Histogram::new("bench_hist", "Histogram::put", &BOUNDS);
static MAP: CounterMap<Labels> = CounterMap::new("bench_map", "CounterMap::get then inc");

/// The labels of `MAP`, like a method's.
#[derive(MetricLabels)]
struct Labels {
    component: &'static str,
    method: &'static str,
    remote: bool,
}

const N: u64 = 20_000_000;
const N_MAP: u64 = 2_000_000;

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("<runs> is a number"))
        .unwrap_or(7);
    println!("metrics-bench: {runs} run(s) per case; median ns/update [min–max]");
    report("Counter::inc, 1 thread", runs, || time(N, |_| INC.inc()));
    report("Counter::add(1.0), 1 thread", runs, || {
        time(N, |_| ADD.add(black_box(1.0)))
    });
    report("Counter::inc, 2 threads, one counter", runs, || {
        two_threads(|| time(N, |_| SHARED.inc()))
    });
    report("Counter::add(1.0), 2 threads, one counter", runs, || {
        two_threads(|| time(N, |_| SHARED_ADD.add(black_box(1.0))))
    });
    report("Histogram::put (30 bounds)", runs, || {
        // Values spread over the buckets, as latencies in µs would be.
        time(N, |i| HIST.put((i & 0xffff) as f64))
    });
    // What a generated stub records per remote call (a clock read, a
    // count and three histograms), with the series resolved once, as the
    // stubs do.
    let method = weaver::__private::MethodMetrics::new("bench::Main", "bench::Echo", "echo", true);
    report("method record (remote call), 1 thread", runs, || {
        time(N / 4, |i| {
            method.record(Instant::now(), false, (16, (i & 0xff) as usize))
        })
    });
    report("method record (remote call), 2 threads", runs, || {
        two_threads(|| {
            time(N / 4, |i| {
                method.record(Instant::now(), false, (16, (i & 0xff) as usize))
            })
        })
    });
    report(
        "Instant::now + elapsed (the floor of a record)",
        runs,
        || {
            time(N / 4, |_| {
                black_box(Instant::now().elapsed());
            })
        },
    );
    report("CounterMap::get + inc (3 labels)", runs, || {
        time(N_MAP, |_| {
            let labels = Labels {
                component: black_box("bench.Echo"),
                method: black_box("echo"),
                remote: black_box(true),
            };
            MAP.get(&labels).inc();
        })
    });
    assert_eq!(INC.get(), (N * runs as u64) as f64, "lost updates");
    assert_eq!(SHARED.get(), (2 * N * runs as u64) as f64, "lost updates");
}

/// ns per call of `f(i)` over `n` calls.
fn time(n: u64, mut f: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        f(black_box(i));
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Runs `f` on two threads at once; the mean of their ns/update.
fn two_threads(f: impl Fn() -> f64 + Sync) -> f64 {
    let barrier = Barrier::new(2);
    let (a, b) = std::thread::scope(|s| {
        let run = || {
            barrier.wait();
            f()
        };
        let a = s.spawn(run);
        let b = s.spawn(run);
        (
            a.join().expect("bench thread"),
            b.join().expect("bench thread"),
        )
    });
    (a + b) / 2.0
}

fn report(name: &str, runs: usize, mut case: impl FnMut() -> f64) {
    let mut v: Vec<f64> = (0..runs).map(|_| case()).collect();
    v.sort_by(f64::total_cmp);
    println!(
        "  {name:<44} {:>7.2} ns  [{:.2}–{:.2}]",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1]
    );
}
