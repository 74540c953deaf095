//! Benchmark: how fast `weaver multi dashboard` serves the deployment page
//! of a 9-process deployment (hello with 4 replicas per group: 4 × Main,
//! 4 × Reverser, and the babysitter).
//!
//! Run with:
//!
//! ```sh
//! cargo build --release -p weaver-cli -p hello
//! cargo build --release --manifest-path benches/Cargo.toml --target-dir target
//! target/release/dashboard-bench [fetches]
//! ```
//!
//! Fetches `/deployment?id=` `fetches` times (default 200) one after
//! another, each on a new connection as a browser's reload may, after 10
//! unmeasured warm-up fetches, and prints p50, p99 and the maximum. Each
//! fetch asks the babysitter for its status, method statistics and metrics,
//! which polls every replica. Target: p99 ≤ 50 ms.

#![allow(clippy::print_stdout)] // a benchmark prints its report

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use weaver_integration::{TempDir, children_of, http_get};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let fetches: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let dir = std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .to_path_buf();
    let (weaver, hello) = (dir.join("weaver"), dir.join("hello"));
    anyhow::ensure!(
        hello.exists() && weaver.exists(),
        "build the release binaries first (see the header)"
    );
    let data = TempDir::new("weaver-dashboard-bench")?;
    let config = data.path().join("weaver.toml");
    std::fs::write(
        &config,
        format!(
            "[serviceweaver]\nname = \"hello\"\nbinary = \"{}\"\n[multi]\nreplicas = 4\n",
            hello.display()
        ),
    )?;
    let mut deploy = Command::new(&weaver)
        .args(["multi", "deploy"])
        .arg(&config)
        .env("WEAVER_DATA_DIR", data.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(deploy.stdout.take().context("stdout")?).lines();
    let (mut id, mut listener) = (None, None);
    while listener.is_none() || id.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("no listener within 30 s")??
            .context("the deployer exited")?;
        if let Some(rest) = line.split("deployment : ").nth(1) {
            id = Some(rest.trim_end_matches(['│', ' ']).to_owned());
        }
        if let Some(rest) = line.split("proxy for listener hello listening on ").nth(1) {
            listener = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let (id, listener) = (
        id.context("no deployment id")?,
        listener.context("no listener")?,
    );
    // Start the Reverser group and give the methods table rows.
    for i in 0..50 {
        let (code, _) = http_get(&listener, &format!("/hello?name=bench{i}")).await?;
        anyhow::ensure!(code == 200, "request {i}: {code}");
    }
    let pid = deploy.id().context("pid")?;
    let (_dashboard, addr) = dashboard(&weaver, data.path()).await?;
    let path = format!("/deployment?id={id}");
    // Wait for all 8 replicas, then warm up.
    let start = Instant::now();
    while children_of(pid).len() < 8 || !page_lists_replicas(&addr, &path, 8).await? {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "replicas never all up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut times = Vec::with_capacity(fetches);
    for i in 0..10 + fetches {
        let t = Instant::now();
        let (code, page) = http_get(&addr, &path).await?;
        let took = t.elapsed();
        anyhow::ensure!(code == 200, "fetch {i}: {code} {page}");
        if i >= 10 {
            times.push(took);
        }
    }
    report(&mut times);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    deploy.wait().await?;
    Ok(())
}

/// Starts `weaver multi dashboard --port 0`; returns it and its address.
async fn dashboard(
    weaver: &std::path::Path,
    data: &std::path::Path,
) -> anyhow::Result<(tokio::process::Child, String)> {
    let mut child = Command::new(weaver)
        .args(["multi", "dashboard", "--port", "0"])
        .env("WEAVER_DATA_DIR", data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    let line = lines.next_line().await?.context("the dashboard exited")?;
    let addr = line
        .strip_prefix("Dashboard available at: http://")
        .with_context(|| format!("unexpected line {line:?}"))?
        .to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr))
}

/// Whether the page's components show `n` replica pids in all.
async fn page_lists_replicas(addr: &str, path: &str, n: usize) -> anyhow::Result<bool> {
    let (_, page) = http_get(addr, path).await?;
    let pids: std::collections::BTreeSet<&str> = page
        .split("data-pids=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .flat_map(|s| s.split(' '))
        .collect();
    Ok(pids.len() >= n)
}

fn report(times: &mut [Duration]) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    let p99 = at(0.99);
    let verdict = if p99 <= Duration::from_millis(50) {
        "PASS"
    } else {
        "MISS"
    };
    println!(
        "dashboard-bench: /deployment of hello with 9 processes, {} fetches (release)",
        times.len()
    );
    println!(
        "  p50 {:6.2} ms  p99 {:6.2} ms  max {:6.2} ms   target p99 ≤ 50 ms: {verdict} ({:.2}× the target)",
        ms(at(0.5)),
        ms(p99),
        ms(times[times.len() - 1]),
        ms(p99) / 50.0
    );
}
