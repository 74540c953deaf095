//! Benchmark: time from `weaver multi deploy` to the first 200 OK from
//! hello, and from SIGINT to the last process of the deployment gone.
//!
//! Run with:
//!
//! ```sh
//! cargo build --release -p weaver-cli -p hello
//! cargo build --release --manifest-path benches/Cargo.toml --target-dir target
//! target/release/lifecycle-bench [runs]
//! ```
//!
//! Both are measured on release binaries, `runs` times (default 7); the
//! median and the spread are printed. Targets: ≤ 100 ms for each.

#![allow(clippy::print_stdout)] // a benchmark prints its report

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use weaver_integration::{TempDir, children_of, pid_alive, wait_gone};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(7);
    let dir = std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .to_path_buf();
    let (weaver, hello) = (dir.join("weaver"), dir.join("hello"));
    anyhow::ensure!(
        hello.exists() && weaver.exists(),
        "build the release binaries first (see the header)"
    );
    let mut up = Vec::new();
    let mut down = Vec::new();
    for _ in 0..runs {
        let (u, d) = one_run(&weaver, &hello).await?;
        up.push(u);
        down.push(d);
    }
    println!("lifecycle-bench: {runs} runs of hello under weaver multi deploy (release)");
    report("deploy → first 200 OK", &mut up);
    report("SIGINT → last process gone", &mut down);
    Ok(())
}

fn report(what: &str, xs: &mut [Duration]) {
    xs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = xs[xs.len() / 2];
    let verdict = if median <= Duration::from_millis(100) {
        "PASS"
    } else {
        "MISS"
    };
    println!(
        "  {what:<28} median {:7.1} ms  min {:7.1} ms  max {:7.1} ms   target ≤ 100 ms: {verdict} ({:.2}× the target)",
        ms(median),
        ms(xs[0]),
        ms(xs[xs.len() - 1]),
        ms(median) / 100.0
    );
}

/// A free loopback port (released just before the deployer binds it).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn one_run(
    weaver: &std::path::Path,
    hello: &std::path::Path,
) -> anyhow::Result<(Duration, Duration)> {
    let data = TempDir::new("weaver-bench")?;
    let port = free_port()?;
    let config = data.path().join("weaver.toml");
    std::fs::write(
        &config,
        format!(
            "[serviceweaver]\nname = \"hello\"\nbinary = \"{}\"\n[multi]\nlisteners.hello = {{ address = \"127.0.0.1:{port}\" }}\n",
            hello.display()
        ),
    )?;
    let start = Instant::now();
    let mut child = tokio::process::Command::new(weaver)
        .args(["multi", "deploy"])
        .arg(&config)
        .env("WEAVER_DATA_DIR", data.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    // Ready when a Main replica says its listener is exported to the proxy.
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("no listener within 30 s")??
            .context("the deployer exited before its listener was up")?;
        if line.contains("hello listener available") {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let addr = format!("127.0.0.1:{port}");
    let (status, body) = weaver_integration::http_get(&addr, "/hello?name=bench").await?;
    anyhow::ensure!(status == 200, "first request: {status} {body}");
    let up = start.elapsed();
    let pid = child.id().context("pid")?;
    // The first request has returned: the deployment is idle now.
    let mut all = children_of(pid);
    all.push(pid);
    let stop = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )?;
    let waited = tokio::spawn(async move { child.wait().await });
    wait_gone(&all, Duration::from_secs(30)).await?;
    let down = stop.elapsed();
    waited.await??;
    anyhow::ensure!(all.iter().all(|p| !pid_alive(*p)));
    Ok((up, down))
}
