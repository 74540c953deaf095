//! A weaver app for the component-RPC benchmark (`rpc-bench`): a Main
//! component that calls an `Echo` component.
//!
//! Deployed with `weaver multi deploy` and `replicas = 1`, Main and Echo run
//! in two processes, so every call is a cross-process component RPC. With
//! `ECHO_BENCH=<spec>` set, Main measures the calls itself and writes one
//! JSON line to the file named by `ECHO_OUT`, then idles until the deployer
//! stops it. The spec is comma-separated `key=value` pairs, all optional:
//! `warmup` (calls before measuring), `calls` (timed calls at 1 in flight),
//! `mux` (calls at `inflight` in flight), `inflight`, `size` (bytes each way).
//!
//! Without `ECHO_BENCH`, Main makes one call, logs it and idles.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use weaver::{Context, Logger, Ref};

/// Echoes bytes back; the benchmark's remote component.
#[weaver::component]
pub(crate) trait Echo {
    /// Returns `data` unchanged.
    async fn echo(&self, ctx: &Context, data: Vec<u8>) -> weaver::Result<Vec<u8>>;
    /// Returns `data` unchanged after yielding to the runtime once, so the
    /// call cannot finish on its first poll (the path of handlers that wait).
    async fn echo_later(&self, ctx: &Context, data: Vec<u8>) -> weaver::Result<Vec<u8>>;
    /// This process's CPU time so far, in µs (user + system).
    async fn cpu(&self, ctx: &Context) -> weaver::Result<u64>;
}

#[weaver::implements(Echo)]
struct EchoImpl;

impl Echo for EchoImpl {
    async fn echo(&self, _ctx: &Context, data: Vec<u8>) -> weaver::Result<Vec<u8>> {
        Ok(data)
    }

    async fn echo_later(&self, _ctx: &Context, data: Vec<u8>) -> weaver::Result<Vec<u8>> {
        tokio::task::yield_now().await;
        Ok(data)
    }

    async fn cpu(&self, _ctx: &Context) -> weaver::Result<u64> {
        Ok(cpu_micros())
    }
}

/// The Main component: a reference to Echo.
#[weaver::main]
struct App {
    echo: Ref<dyn Echo>,
    logger: Logger,
}

/// What to measure.
#[derive(Debug, Clone)]
struct Spec {
    warmup: usize,
    calls: usize,
    mux: usize,
    inflight: usize,
    size: usize,
    /// Call `echo_later` instead of `echo` (handlers that wait).
    later: bool,
}

impl Spec {
    fn parse(s: &str) -> anyhow::Result<Spec> {
        let mut spec = Spec {
            warmup: 2_000,
            calls: 20_000,
            mux: 200_000,
            inflight: 64,
            size: 16,
            later: false,
        };
        for kv in s.split(',').filter(|kv| !kv.trim().is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("bad ECHO_BENCH item {kv:?}: want key=value"))?;
            let v: usize = v.trim().parse()?;
            match k.trim() {
                "warmup" => spec.warmup = v,
                "calls" => spec.calls = v,
                "mux" => spec.mux = v,
                "inflight" => spec.inflight = v.max(1),
                "size" => spec.size = v,
                "later" => spec.later = v != 0,
                other => anyhow::bail!("unknown ECHO_BENCH key {other:?}"),
            }
        }
        Ok(spec)
    }
}

fn main() -> weaver::Result<()> {
    // `#[tokio::main]` (multi-thread) unless `ECHO_RT=current_thread`.
    let rt = if current_thread() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    rt.block_on(app())
}

fn current_thread() -> bool {
    std::env::var("ECHO_RT").is_ok_and(|v| v == "current_thread")
}

async fn app() -> weaver::Result<()> {
    weaver::run(|app: &'static App, _ctx| async move {
        match std::env::var("ECHO_BENCH") {
            Ok(spec) => {
                // Run where a user's request handlers run: on a runtime task.
                let outcome = tokio::spawn(bench(app, spec)).await;
                let result = match outcome {
                    Ok(r) => r,
                    Err(e) => Err(anyhow::anyhow!("benchmark task failed: {e}")),
                };
                let line = match result {
                    Ok(v) => v.to_string(),
                    Err(e) => serde_json::json!({ "error": format!("{e:#}") }).to_string(),
                };
                if let Ok(out) = std::env::var("ECHO_OUT") {
                    // Write then rename, so a reader never sees half a line.
                    let tmp = format!("{out}.tmp");
                    if let Err(e) = std::fs::write(&tmp, format!("{line}\n"))
                        .and_then(|()| std::fs::rename(&tmp, &out))
                    {
                        app.logger
                            .error_with("writing the benchmark result", ("error", e.to_string()));
                    }
                } else {
                    println!("{line}");
                }
            }
            Err(_) => {
                let reply = app
                    .echo
                    .get()
                    .echo(&Context::new(), b"hello".to_vec())
                    .await?;
                app.logger
                    .info_with("echo answered", ("bytes", reply.len()));
            }
        }
        // Stay up until the deployer stops us.
        std::future::pending::<()>().await;
        Ok(())
    })
    .await
}

async fn bench(app: &'static App, spec: String) -> anyhow::Result<serde_json::Value> {
    let spec = Spec::parse(&spec)?;
    let echo = app.echo.get();
    let ctx = Context::new();
    let data: Vec<u8> = (0..spec.size).map(|i| i as u8).collect();

    // Warm up: connection dialled, caches and allocator warm.
    for _ in 0..spec.warmup {
        let r = echo.echo(&ctx, data.clone()).await.map_err(ae)?;
        anyhow::ensure!(r == data, "echo returned different bytes");
    }

    // 1 in flight.
    let mut lat = Vec::with_capacity(spec.calls);
    let (cpu0, remote0) = (cpu_micros(), echo.cpu(&ctx).await.map_err(ae)?);
    let start = Instant::now();
    for _ in 0..spec.calls {
        let t = Instant::now();
        let r = if spec.later {
            echo.echo_later(&ctx, data.clone()).await
        } else {
            echo.echo(&ctx, data.clone()).await
        }
        .map_err(ae)?;
        lat.push(t.elapsed());
        anyhow::ensure!(r.len() == data.len(), "echo returned different bytes");
    }
    let wall1 = start.elapsed();
    let (cpu1, remote1) = (cpu_micros(), echo.cpu(&ctx).await.map_err(ae)?);
    lat.sort_unstable();

    // Many in flight.
    let next = Arc::new(AtomicU64::new(0));
    let total = spec.mux as u64;
    let (cpu2, remote2) = (cpu_micros(), echo.cpu(&ctx).await.map_err(ae)?);
    let start = Instant::now();
    let workers: Vec<_> = (0..spec.inflight)
        .map(|_| {
            let (next, data) = (next.clone(), data.clone());
            tokio::spawn(async move {
                let ctx = Context::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let r = echo.echo(&ctx, data.clone()).await.map_err(ae)?;
                    anyhow::ensure!(r.len() == data.len(), "echo returned different bytes");
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    let wall64 = start.elapsed();
    let (cpu3, remote3) = (cpu_micros(), echo.cpu(&ctx).await.map_err(ae)?);

    let pct = |p: f64| -> f64 {
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len().max(1)) - 1;
        lat.get(i).copied().unwrap_or(Duration::ZERO).as_secs_f64() * 1e6
    };
    Ok(serde_json::json!({
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "mean_us": wall1.as_secs_f64() * 1e6 / spec.calls.max(1) as f64,
        "cpu1_us_per_call": (cpu1 - cpu0 + remote1 - remote0) as f64 / spec.calls.max(1) as f64,
        "calls_per_sec": spec.mux as f64 / wall64.as_secs_f64(),
        "cpu64_us_per_call": (cpu3 - cpu2 + remote3 - remote2) as f64 / spec.mux.max(1) as f64,
        "client_cpu64_us_per_call": (cpu3 - cpu2) as f64 / spec.mux.max(1) as f64,
        "runtime": if current_thread() { "tokio current_thread" } else { "tokio multi-thread (#[tokio::main])" },
    }))
}

/// A weaver error as an anyhow error.
fn ae(e: weaver::Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// This process's CPU time (user + system) in µs.
#[allow(unsafe_code)]
fn cpu_micros() -> u64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is valid.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}
