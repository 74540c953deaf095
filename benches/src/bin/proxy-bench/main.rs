//! Throughput and tail latency through weaver-proxy, against nginx over the
//! same two backends and against one backend hit directly, all measured by
//! wrk in one run and printed as ratios.
//!
//! Run with:
//!
//! ```text
//! scripts/install-bench-deps.sh
//! cargo run --release --manifest-path benches/Cargo.toml --target-dir target --bin proxy-bench [-- OPTIONS]
//! ```
//!
//! Options: `--runs N` (3), `--duration SECS` (5), `--connections N` (64),
//! `--threads N` (2), `--runtime current-thread|multi-thread` (current-thread,
//! the proxy's tokio runtime), `--event-interval N` (tokio's default),
//! `--nginx-workers N|auto` (1), `--backends auto|http1` (auto: the
//! backends speak HTTP/1.1 and h2c, and weaver-proxy reaches them over one
//! HTTP/2 connection each while nginx uses HTTP/1.1 keep-alive; http1: both
//! proxies speak HTTP/1.1 to them), `--pin` (wrk on CPU 1; backends and the
//! proxy under test on CPU 0, so the proxy's cost decides the throughput).
//!
//! Fairness: by default both proxies get one thread (tokio current-thread,
//! nginx `worker_processes 1`), both keep upstream connections alive with no
//! request cap, and nginx logs nothing. Targets are run in turn, round after
//! round, and medians are reported.
#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

mod backend;
mod cpu;
mod nginx;
mod wrk;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use weaver_proxy::Proxy;

use crate::nginx::Nginx;
use crate::wrk::{Load, Summary};

/// Anything that stops the benchmark.
pub(crate) type BenchError = Box<dyn std::error::Error + Send + Sync>;

struct Options {
    load: Load,
    runs: usize,
    multi_thread: bool,
    /// tokio's `event_interval` for the proxy runtime, if not the default.
    event_interval: Option<u32>,
    nginx_workers: String,
    /// Backends that speak HTTP/1.1 only.
    http1_backends: bool,
    pin: bool,
}

/// Our proxy on a runtime of its own, and the kernel ids of its threads.
struct ProxyThreads {
    addr: SocketAddr,
    tids: Arc<Mutex<Vec<u32>>>,
}

/// One configuration measured by wrk.
enum Target<'a> {
    Direct(SocketAddr),
    Weaver(&'a ProxyThreads),
    Nginx(&'a Nginx),
}

/// One wrk run and the proxy CPU it cost.
struct Run {
    summary: Summary,
    cpu_per_request: Option<Duration>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("proxy-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), BenchError> {
    let options = parse_args()?;
    let (backends, backend_tid) = backend::start(2, options.http1_backends)?;
    let weaver = start_proxy(&backends, &options)?;
    if options.pin {
        let tids = weaver.tids.lock().unwrap_or_else(PoisonError::into_inner);
        for tid in tids.iter().chain(&backend_tid) {
            cpu::pin_thread(*tid, 0)?;
        }
    }
    let nginx = Nginx::start(&backends, &options.nginx_workers, options.pin)?;
    let targets = [
        Target::Direct(backends[0]),
        Target::Weaver(&weaver),
        Target::Nginx(&nginx),
    ];
    let warm_up = Load {
        duration: Duration::from_secs(1),
        ..options.load
    };
    for target in &targets {
        wrk::run(target.addr(), warm_up, options.pin)?;
    }
    let mut runs: [Vec<Run>; 3] = Default::default();
    for round in 1..=options.runs {
        for (target, runs) in targets.iter().zip(runs.iter_mut()) {
            let run = measure(target, options.load, options.pin)?;
            println!(
                "round {round} {:<14} {:>10.0} req/s  p99 {:>9}",
                target.name(),
                run.summary.requests_per_sec,
                format_duration(run.summary.p99)
            );
            runs.push(run);
        }
    }
    report(&options, &runs);
    Ok(())
}

fn measure(target: &Target<'_>, load: Load, pin: bool) -> Result<Run, BenchError> {
    let before = target.cpu();
    let summary = wrk::run(target.addr(), load, pin)?;
    let cpu_per_request = before.zip(target.cpu()).and_then(|(before, after)| {
        let requests = u32::try_from(summary.requests.max(1)).ok()?;
        Some(after.saturating_sub(before) / requests)
    });
    Ok(Run {
        summary,
        cpu_per_request,
    })
}

fn start_proxy(backends: &[SocketAddr], options: &Options) -> Result<ProxyThreads, BenchError> {
    let multi_thread = options.multi_thread;
    let tids = Arc::new(Mutex::new(Vec::new()));
    let record = {
        let tids = Arc::clone(&tids);
        move || {
            if let Some(tid) = cpu::current_tid() {
                tids.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(tid);
            }
        }
    };
    let mut builder = if multi_thread {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2).on_thread_start(record.clone());
        builder
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    if let Some(interval) = options.event_interval {
        builder.event_interval(interval);
    }
    let runtime = builder.enable_all().build()?;
    let backends = backends.to_vec();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("weaver-proxy".to_owned())
        .spawn(move || {
            if !multi_thread {
                record();
            }
            runtime.block_on(async move {
                let proxy = Proxy::bind("127.0.0.1:0").await;
                if let Ok(proxy) = &proxy {
                    backends.iter().for_each(|b| proxy.add_backend(*b));
                }
                let _ = tx.send(
                    proxy
                        .as_ref()
                        .map(Proxy::local_addr)
                        .map_err(|e| e.to_string()),
                );
                std::future::pending::<()>().await;
            });
        })?;
    let addr = rx.recv()??;
    Ok(ProxyThreads { addr, tids })
}

// === impl Target ===

impl Target<'_> {
    fn name(&self) -> &'static str {
        match self {
            Target::Direct(_) => "direct",
            Target::Weaver(_) => "weaver-proxy",
            Target::Nginx(_) => "nginx",
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Target::Direct(addr) => *addr,
            Target::Weaver(proxy) => proxy.addr,
            Target::Nginx(nginx) => nginx.addr,
        }
    }

    /// CPU used so far by the proxy under test (none for the direct runs).
    fn cpu(&self) -> Option<Duration> {
        match self {
            Target::Direct(_) => None,
            Target::Weaver(proxy) => {
                let tids = proxy.tids.lock().unwrap_or_else(PoisonError::into_inner);
                Some(tids.iter().map(|tid| cpu::of_thread(*tid)).sum())
            }
            Target::Nginx(nginx) => Some(nginx.cpu()),
        }
    }
}

fn report(options: &Options, runs: &[Vec<Run>; 3]) {
    let rps = |i: usize| median(runs[i].iter().map(|r| r.summary.requests_per_sec));
    let p99 = |i: usize| median(runs[i].iter().map(|r| r.summary.p99.as_secs_f64()));
    let cpu = |i: usize| {
        let per_request: Vec<f64> = runs[i]
            .iter()
            .filter_map(|r| r.cpu_per_request)
            .map(|d| d.as_secs_f64() * 1e6)
            .collect();
        (!per_request.is_empty()).then(|| median(per_request.into_iter()))
    };
    let load = options.load;
    println!();
    println!(
        "wrk -t{} -c{} -d{}s --latency; {} runs per target, alternating; medians; {}",
        load.threads,
        load.connections,
        load.duration.as_secs(),
        options.runs,
        if options.pin {
            "pinned: wrk on CPU 1, backends and proxies on CPU 0"
        } else {
            "unpinned"
        }
    );
    println!(
        "weaver-proxy: tokio {} runtime | {}: worker_processes {} | backends: 2 x hyper {}, one current-thread runtime",
        if options.multi_thread {
            "multi-thread (2 workers)"
        } else {
            "current-thread"
        },
        Nginx::version(),
        options.nginx_workers,
        if options.http1_backends {
            "http1 (both proxies speak HTTP/1.1 to them)"
        } else {
            "auto (HTTP/1.1 + h2c: weaver-proxy speaks HTTP/2 to them, nginx HTTP/1.1)"
        }
    );
    println!(
        "{:<22} {:>12} {:>10} {:>16}",
        "target", "req/s", "p99", "proxy CPU/req"
    );
    for (i, label) in ["direct (one backend)", "weaver-proxy", "nginx"]
        .iter()
        .enumerate()
    {
        let cpu = cpu(i).map_or("-".to_owned(), |us| format!("{us:.1} us"));
        let p99 = format_duration(Duration::from_secs_f64(p99(i)));
        println!("{label:<22} {:>12.0} {p99:>10} {cpu:>16}", rps(i));
    }
    println!();
    // The load generator must not compete with what it measures: the
    // targets are for the pinned run.
    let judged = if options.pin {
        "judged here"
    } else {
        "judged on --pin runs"
    };
    println!(
        "ours/nginx req/s:  {:.2}x  (target >= 1.20x, {judged})",
        rps(1) / rps(2)
    );
    println!(
        "ours/nginx p99:    {:.2}x  (target <= 1.00x, {judged})",
        p99(1) / p99(2)
    );
    println!("ours/direct req/s: {:.2}x", rps(1) / rps(0));
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn format_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0}us")
    } else {
        format!("{:.2}ms", us / 1000.0)
    }
}

fn parse_args() -> Result<Options, BenchError> {
    let mut options = Options {
        load: Load {
            threads: 2,
            connections: 64,
            duration: Duration::from_secs(5),
        },
        runs: 3,
        multi_thread: false,
        event_interval: None,
        nginx_workers: "1".to_owned(),
        http1_backends: false,
        pin: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => options.runs = value()?.parse()?,
            "--duration" => options.load.duration = Duration::from_secs(value()?.parse()?),
            "--connections" => options.load.connections = value()?.parse()?,
            "--threads" => options.load.threads = value()?.parse()?,
            "--runtime" => {
                options.multi_thread = match value()?.as_str() {
                    "multi-thread" => true,
                    "current-thread" => false,
                    other => return Err(format!("unknown runtime {other}").into()),
                }
            }
            "--event-interval" => options.event_interval = Some(value()?.parse()?),
            "--nginx-workers" => options.nginx_workers = value()?,
            "--backends" => {
                options.http1_backends = match value()?.as_str() {
                    "http1" => true,
                    "auto" => false,
                    other => return Err(format!("unknown backends {other}").into()),
                }
            }
            "--pin" => options.pin = true,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    if options.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    Ok(options)
}
