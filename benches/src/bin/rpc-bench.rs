//! The component-RPC benchmark: a cross-process component call of 16 bytes
//! each way, at 1 and at 64 calls in flight, beside a raw Unix-socket floor
//! and a tonic gRPC echo measured in the same run, printed as ratios.
//!
//! Run:
//!
//! ```sh
//! scripts/bench-rpc.sh    # or:
//! cargo build --release -p weaver-cli
//! cargo build --release --manifest-path benches/Cargo.toml --target-dir target
//! target/release/rpc-bench
//! ```
//!
//! Options: `--runs N` (default 3), `--calls N` (timed calls at 1 in flight,
//! default 20000), `--mux N` (calls at 64 in flight, default 200000),
//! `--inflight N` (default 64), `--size N` (bytes each way, default 16),
//! `--only weaver,weaver-off,weaver-tcp,weaver-ct,raw,raw-ct,tonic,tokio-pp`,
//! `--pin pinned,unpinned`, `--echo PATH` (another build of the echo app,
//! to compare builds).
//!
//! Every configuration runs once pinned (all of its processes under
//! `taskset -c 0`) and once unpinned, `--runs` times, alternating the
//! systems; the table shows medians. Targets are judged on the pinned runs.
//!
//! - **weaver**: the `echo` app deployed with `weaver multi deploy` and
//!   `replicas = 1` (one Main process calling one Echo process); Main
//!   measures and writes a JSON line (see `echo.rs`). The app runs on
//!   `#[tokio::main]`'s multi-thread runtime; **weaver-ct** is the same app
//!   on tokio's current-thread runtime; **weaver-tcp** is weaver with
//!   `[multi] transport = "tcp"` (component RPC over loopback TCP);
//!   **weaver-off** is weaver with the
//!   method metrics off (`WEAVER_METHOD_METRICS=off`, bench-only), so the
//!   ratios show what they cost.
//! - **raw**: a child of this binary serves a Unix socket. 1 in flight is a
//!   blocking std ping-pong; 64 in flight is a multiplexed tokio echo
//!   (length-prefixed frames with ids, 64 caller tasks on one connection)
//!   on the multi-thread runtime; **raw-ct** is that echo on the
//!   current-thread runtime.
//! - **tonic**: a tonic 0.14 gRPC echo (hand-built service, prost codec) over
//!   a Unix socket, the server in a child of this binary.
//! - **tokio-pp** (for reference): the ping-pong with tokio on both sides,
//!   sockets registered for reading only: the floor of any runtime-driven
//!   RPC at 1 in flight.
//!
//! CPU per call is the client's plus the server's CPU time (getrusage) over
//! the timed calls, divided by the number of calls.

#![allow(clippy::print_stdout)]

#[path = "rpc-bench/grpc.rs"]
mod grpc;
#[path = "rpc-bench/raw.rs"]
mod raw;
#[path = "rpc-bench/report.rs"]
mod report;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// The sizes of one measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Spec {
    pub(crate) warmup: usize,
    pub(crate) calls: usize,
    pub(crate) mux: usize,
    pub(crate) inflight: usize,
    pub(crate) size: usize,
}

impl Spec {
    /// The form `ECHO_BENCH` takes.
    fn to_echo_env(&self) -> String {
        format!(
            "warmup={},calls={},mux={},inflight={},size={}",
            self.warmup, self.calls, self.mux, self.inflight, self.size
        )
    }
}

/// What one measurement of one system found (`None`: not measured).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Sample {
    pub(crate) p50_us: Option<f64>,
    pub(crate) p99_us: Option<f64>,
    pub(crate) cpu1_us_per_call: Option<f64>,
    pub(crate) calls_per_sec: Option<f64>,
    pub(crate) cpu64_us_per_call: Option<f64>,
}

impl Sample {
    /// Nothing measured yet.
    pub(crate) fn none() -> Sample {
        Sample::default()
    }
}

/// The systems compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum System {
    Weaver,
    /// `Weaver` with the method metrics off (the bench-only
    /// `WEAVER_METHOD_METRICS=off`): what they cost.
    WeaverOff,
    WeaverTcp,
    WeaverCt,
    Raw,
    RawCt,
    Tonic,
    TokioPp,
}

impl System {
    pub(crate) const ALL: [System; 8] = [
        System::Weaver,
        System::WeaverOff,
        System::WeaverTcp,
        System::WeaverCt,
        System::Raw,
        System::RawCt,
        System::Tonic,
        System::TokioPp,
    ];

    /// How a weaver system's deployment differs from plain `weaver`;
    /// `None` for the others.
    fn variant(self) -> Option<Variant> {
        let plain = Variant::default();
        match self {
            System::Weaver => Some(plain),
            System::WeaverOff => Some(Variant {
                env: &["WEAVER_METHOD_METRICS=off"],
                ..plain
            }),
            System::WeaverTcp => Some(Variant {
                multi: "transport = \"tcp\"\n",
                ..plain
            }),
            System::WeaverCt => Some(Variant {
                env: &["ECHO_RT=current_thread"],
                ..plain
            }),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            System::Weaver => "weaver",
            System::WeaverOff => "weaver-off",
            System::WeaverTcp => "weaver-tcp",
            System::WeaverCt => "weaver-ct",
            System::Raw => "raw",
            System::RawCt => "raw-ct",
            System::Tonic => "tonic",
            System::TokioPp => "tokio-pp",
        }
    }
}

struct Options {
    runs: usize,
    spec: Spec,
    systems: Vec<System>,
    pins: Vec<bool>,
    echo: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        // Internal modes: this binary as a client or a server of one system.
        Some("measure") => measure(&args[1..]),
        Some("serve") => serve(&args[1..]),
        _ => match parse_options(&args)? {
            Some(o) => orchestrate(o),
            None => Ok(()),
        },
    }
}

/// The options; `None` after printing the usage.
fn parse_options(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut o = Options {
        runs: 3,
        spec: Spec {
            warmup: 2_000,
            calls: 20_000,
            mux: 200_000,
            inflight: 64,
            size: 16,
        },
        systems: System::ALL.to_vec(),
        pins: vec![true, false],
        echo: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => o.runs = value()?.parse()?,
            "--calls" => o.spec.calls = value()?.parse()?,
            "--warmup" => o.spec.warmup = value()?.parse()?,
            "--mux" => o.spec.mux = value()?.parse()?,
            "--inflight" => o.spec.inflight = value()?.parse()?,
            "--size" => o.spec.size = value()?.parse()?,
            "--echo" => o.echo = Some(PathBuf::from(value()?)),
            "--only" => {
                let v = value()?;
                o.systems = System::ALL
                    .into_iter()
                    .filter(|s| v.split(',').any(|x| x == s.name()))
                    .collect();
            }
            "--pin" => {
                let v = value()?;
                o.pins = [true, false]
                    .into_iter()
                    .filter(|p| {
                        v.split(',')
                            .any(|x| x == if *p { "pinned" } else { "unpinned" })
                    })
                    .collect();
            }
            "-h" | "--help" => {
                println!(
                    "usage: rpc-bench [--runs N] [--calls N] [--mux N] [--inflight N] [--size N] \
                     [--only weaver,weaver-off,weaver-tcp,weaver-ct,raw,raw-ct,tonic,tokio-pp] [--pin pinned,unpinned] [--echo PATH]"
                );
                return Ok(None);
            }
            other => bail!("unknown option {other:?} (try --help)"),
        }
    }
    anyhow::ensure!(
        o.runs > 0 && o.spec.calls > 0 && o.spec.mux > 0,
        "counts must be positive"
    );
    anyhow::ensure!(
        !o.systems.is_empty() && !o.pins.is_empty(),
        "nothing to run"
    );
    Ok(Some(o))
}

/// Runs every configuration and prints the table.
fn orchestrate(o: Options) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("no directory for this binary")?
        .to_path_buf();
    let weaver = dir.join("weaver");
    let echo = o.echo.clone().unwrap_or_else(|| dir.join("echo"));
    for b in [&weaver, &echo] {
        if o.systems.iter().any(|s| s.variant().is_some()) && !b.exists() {
            bail!(
                "{} is missing; build with: cargo build --release -p weaver-cli -p weaver-integration --bins",
                b.display()
            );
        }
    }
    if o.pins.contains(&true) {
        let ok = Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success());
        anyhow::ensure!(
            matches!(ok, Ok(true)),
            "taskset (util-linux) is needed to pin to CPU 0"
        );
    }
    let tmp = std::env::temp_dir().join(format!("rpc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let _cleanup = RemoveDir(tmp.clone());

    println!(
        "rpc-bench: {} B each way; 1 in flight: {} calls after {} warm-up; {} in flight: {} calls; {} run(s) per configuration",
        o.spec.size, o.spec.calls, o.spec.warmup, o.spec.inflight, o.spec.mux, o.runs
    );
    let mut results = report::Results::default();
    let mut n = 0;
    for run in 0..o.runs {
        for &pinned in &o.pins {
            // Alternate the order of the systems from run to run.
            let mut order = o.systems.clone();
            if run % 2 == 1 {
                order.reverse();
            }
            for sys in order {
                n += 1;
                let started = Instant::now();
                let out = tmp.join(format!("{}-{n}.json", sys.name()));
                let sample = match sys.variant() {
                    Some(variant) => {
                        run_weaver(&weaver, &echo, &tmp, &out, &o.spec, pinned, variant)
                    }
                    None => run_self(&exe, sys, &out, &o.spec, pinned),
                }
                .with_context(|| format!("{} ({})", sys.name(), pin_name(pinned)))?;
                let f = |v: Option<f64>, digits: usize| {
                    v.map_or("-".to_string(), |v| format!("{v:.digits$}"))
                };
                println!(
                    "  run {} {:>8} {:<9}  p50 {:>6} µs  p99 {:>6} µs  {:>9} calls/s  cpu {:>5}/{:>5} µs/call  ({:.1} s)",
                    run + 1,
                    pin_name(pinned),
                    sys.name(),
                    f(sample.p50_us, 1),
                    f(sample.p99_us, 1),
                    f(sample.calls_per_sec, 0),
                    f(sample.cpu1_us_per_call, 1),
                    f(sample.cpu64_us_per_call, 2),
                    started.elapsed().as_secs_f64()
                );
                results.add(sys, pinned, sample);
            }
        }
    }
    print!("{}", results.render(&o.spec));
    Ok(())
}

pub(crate) fn pin_name(pinned: bool) -> &'static str {
    if pinned { "pinned" } else { "unpinned" }
}

/// A command, under `taskset -c 0` when pinned.
fn command(program: &Path, pinned: bool) -> Command {
    if pinned {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Deploys the echo app, with `extra` (`NAME=value`) added to its
/// environment, and waits for its result line.
/// How a weaver system differs from plain `weaver`.
#[derive(Default, Clone, Copy)]
struct Variant {
    /// Extra `KEY=VALUE` for the app's environment.
    env: &'static [&'static str],
    /// Extra lines for the `[multi]` section.
    multi: &'static str,
}

fn run_weaver(
    weaver: &Path,
    echo: &Path,
    tmp: &Path,
    out: &Path,
    spec: &Spec,
    pinned: bool,
    variant: Variant,
) -> anyhow::Result<Sample> {
    let toml = tmp.join("weaver.toml");
    let mut env = vec![
        format!("ECHO_BENCH={}", spec.to_echo_env()),
        format!("ECHO_OUT={}", out.display()),
    ];
    // E.g. the app's runtime flavour, if not `#[tokio::main]`'s (see
    // echo.rs), or the metrics switch.
    env.extend(variant.env.iter().map(|e| e.to_string()));
    let multi = variant.multi;
    std::fs::write(
        &toml,
        format!(
            "[serviceweaver]\nname = \"echo\"\nbinary = {:?}\nenv = {env:?}\n\n[multi]\nreplicas = 1\n{multi}",
            echo.display().to_string(),
        ),
    )?;
    let log = std::fs::File::create(tmp.join("deploy.log"))?;
    let mut cmd = command(weaver, pinned);
    cmd.arg("multi")
        .arg("deploy")
        .arg(&toml)
        .env("WEAVER_DATA_DIR", tmp.join("data"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = cmd.spawn().context("starting weaver multi deploy")?;
    let mut guard = ChildGuard(Some(child));
    let line = wait_for_file(out, &mut guard, Duration::from_secs(300));
    // ctrl-c the deployer and wait for the whole deployment to go.
    guard.interrupt(Duration::from_secs(30));
    let line = line.with_context(|| format!("deploy log: {}", tail(&tmp.join("deploy.log"))))?;
    parse_sample(&line)
}

/// Runs `rpc-bench measure <sys>` (a client that starts its own server).
fn run_self(
    exe: &Path,
    sys: System,
    out: &Path,
    spec: &Spec,
    pinned: bool,
) -> anyhow::Result<Sample> {
    let status = command(exe, pinned)
        .arg("measure")
        .arg(sys.name())
        .arg(serde_json::to_string(spec)?)
        .arg(out)
        .stdin(Stdio::null())
        .status()?;
    anyhow::ensure!(
        status.success(),
        "measuring {} failed: {status}",
        sys.name()
    );
    parse_sample(&std::fs::read_to_string(out)?)
}

fn parse_sample(line: &str) -> anyhow::Result<Sample> {
    let v: serde_json::Value =
        serde_json::from_str(line.trim()).with_context(|| format!("bad result line {line:?}"))?;
    if let Some(e) = v.get("error") {
        bail!("the benchmark failed: {e}");
    }
    Ok(serde_json::from_value(v)?)
}

fn wait_for_file(path: &Path, child: &mut ChildGuard, limit: Duration) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            return Ok(s);
        }
        if let Some(status) = child.try_wait()? {
            bail!("the deployer exited early ({status})");
        }
        if start.elapsed() > limit {
            bail!("no result after {limit:?}");
        }
        nap(Duration::from_millis(100));
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `rpc-bench measure <raw|tonic> <spec json> <out>`: the client side.
fn measure(args: &[String]) -> anyhow::Result<()> {
    let [sys, spec, out] = args else {
        bail!("usage: rpc-bench measure <raw|tonic> <spec> <out>")
    };
    let spec: Spec = serde_json::from_str(spec)?;
    let exe = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("rpc-bench-{}-{sys}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = RemoveDir(dir.clone());
    let sample = match sys.as_str() {
        "raw" => raw::measure(&exe, &dir, &spec, raw::Flavour::MultiThread, true)?,
        "raw-ct" => raw::measure(&exe, &dir, &spec, raw::Flavour::CurrentThread, false)?,
        "tonic" => grpc::measure(&exe, &dir, &spec)?,
        "tokio-pp" => raw::measure_tokio_pingpong(&exe, &dir, &spec)?,
        other => bail!("unknown system {other:?}"),
    };
    let tmp = PathBuf::from(format!("{out}.tmp"));
    std::fs::write(&tmp, format!("{}\n", serde_json::to_string(&sample)?))?;
    std::fs::rename(&tmp, out)?;
    Ok(())
}

/// `rpc-bench serve <kind> [flavour] <socket>`: a server child.
fn serve(args: &[String]) -> anyhow::Result<()> {
    let (kind, path) = match args {
        [kind, path] => (kind.as_str(), Path::new(path)),
        [kind, flavour, path] if kind == "raw-mux" => {
            return raw::serve_mux(Path::new(path), raw::Flavour::parse(flavour)?);
        }
        _ => bail!("usage: rpc-bench serve <kind> [flavour] <socket>"),
    };
    match kind {
        "raw-pingpong" => raw::serve_pingpong(path),
        "tonic" => grpc::serve(path),
        "tokio-pp" => raw::serve_tokio_pingpong(path),
        other => bail!("unknown server {other:?}"),
    }
}

/// Starts `rpc-bench serve <args...> <socket>` and waits until it listens.
pub(crate) fn start_server(exe: &Path, args: &[&str], socket: &Path) -> anyhow::Result<ChildGuard> {
    let kind = args.first().copied().unwrap_or("?");
    let child = Command::new(exe)
        .arg("serve")
        .args(args)
        .arg(socket)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting the {kind} server"))?;
    let mut guard = ChildGuard(Some(child));
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        if let Some(status) = guard.try_wait()? {
            bail!("the {kind} server exited: {status}");
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(20),
            "the {kind} server did not listen"
        );
        nap(Duration::from_millis(5));
    }
    Ok(guard)
}

/// Kills (or interrupts) a child on drop, and reaps it.
pub(crate) struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn try_wait(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        match &mut self.0 {
            Some(c) => Ok(c.try_wait()?),
            None => Ok(None),
        }
    }

    /// SIGINT, then SIGKILL if it is still there after `grace`.
    fn interrupt(&mut self, grace: Duration) {
        let Some(mut c) = self.0.take() else { return };
        if let Ok(pid) = i32::try_from(c.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGINT,
            );
        }
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            nap(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits a little while polling a child or a file.
#[expect(
    clippy::disallowed_methods,
    reason = "the driver is a plain synchronous program: there is no executor thread to block"
)]
fn nap(d: Duration) {
    std::thread::sleep(d);
}

/// This process's CPU time (user + system) in µs.
#[allow(unsafe_code)]
pub(crate) fn cpu_micros() -> u64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is valid.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// Percentile `p` (0..1) of sorted latencies, in µs.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}
