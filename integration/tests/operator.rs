//! Operator tools against real deployments: `weaver multi status`, the log
//! store and `weaver multi logs`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use nix::sys::signal::Signal;
use weaver_integration::{Deployment, TempDir, bins, config, http_get, status_in, weaver_in};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_live_deployments_and_forgets_dead_ones() -> anyhow::Result<()> {
    let data = Arc::new(TempDir::new("weaver-data")?);
    let mut hello =
        Deployment::start_in(&config("hello", &bins().bin("hello"), ""), data.clone()).await?;
    let probe =
        Deployment::start_in(&config("probe", &bins().bin("probe"), ""), data.clone()).await?;
    hello.ready().await?;
    probe.ready().await?;
    let (hello_addr, probe_addr) = (
        hello.listener("hello").await?,
        probe.listener("http").await?,
    );

    let report = status_in(data.path(), "multi").await?;
    assert_eq!(
        report.apps(),
        BTreeSet::from(["hello", "probe"]),
        "{report:?}"
    );
    for (d, listener, addr) in [
        (&hello, "hello", &hello_addr),
        (&probe, "http", &probe_addr),
    ] {
        let status = report.by_pid(d.pid()).context("deployment missing")?;
        let pids: BTreeSet<u32> = status.component_pids().into_values().flatten().collect();
        let kids: BTreeSet<u32> = d.children().into_iter().collect();
        assert_eq!(pids, kids, "{status:?}");
        assert_eq!(status.listener(listener), Some(addr.as_str()), "{status:?}");
    }

    hello.signal(Signal::SIGINT);
    assert_eq!(hello.wait().await?, 130);
    let report = status_in(data.path(), "multi").await?;
    assert_eq!(report.apps(), BTreeSet::from(["probe"]), "{report:?}");

    // A babysitter killed outright cannot unregister; the next status does,
    // and removes the sockets it left.
    let runtime_dir = probe.runtime_dir()?;
    assert!(runtime_dir.exists(), "{}", runtime_dir.display());
    let kids = probe.children();
    probe.signal(Signal::SIGKILL);
    weaver_integration::wait_gone(&[probe.pid()], Duration::from_secs(5)).await?;
    weaver_integration::wait_gone(&kids, Duration::from_secs(5)).await?;
    let report = status_in(data.path(), "multi").await?;
    assert!(report.deployments.is_empty(), "{report:?}");
    let registry = data.path().join("multi/registry");
    assert_eq!(std::fs::read_dir(&registry)?.count(), 0);
    assert!(
        !runtime_dir.exists(),
        "sockets left in {}",
        runtime_dir.display()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_filters_with_cel_and_prints_json() -> anyhow::Result<()> {
    let mut d = Deployment::start(&config("hello", &bins().bin("hello"), "")).await?;
    d.ready().await?;
    let addr = d.listener("hello").await?;
    let before = chrono_like_now();
    for name in ["abc", "hello", "weaver"] {
        assert_eq!(
            http_get(&addr, &format!("/hello?name={name}")).await?.0,
            200
        );
    }
    d.signal(Signal::SIGINT);
    assert_eq!(d.wait().await?, 130);

    let q = |query: &str| {
        let data = d.data.clone();
        let query = query.to_string();
        async move { weaver_in(data.path(), &["multi", "logs", "--format=json", &query]).await }
    };
    let parse = |out: std::process::Output| -> anyhow::Result<Vec<serde_json::Value>> {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
            .lines()
            .map(|l| Ok(serde_json::from_str(l)?))
            .collect()
    };
    let entries = parse(q(r#"component == "hello::Reverser" && level == "info""#).await?)?;
    // The lengths were logged as numbers, and stay numbers.
    let lens: Vec<u64> = entries
        .iter()
        .map(|e| e["attrs"]["len"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(lens, [3, 5, 6]);
    assert!(
        entries
            .iter()
            .all(|e| e["msg"] == "reversing" && e["app"] == "hello")
    );
    assert_eq!(
        parse(q(r#"msg.matches("^rev.*g$") && attrs["len"] == 6"#).await?)?.len(),
        1
    );
    assert_eq!(
        parse(
            q(&format!(
                r#"msg == "reversing" && time > timestamp("{before}")"#
            ))
            .await?
        )?
        .len(),
        3
    );
    assert_eq!(
        parse(q(r#"msg == "reversing" && time < timestamp("2000-01-01T00:00:00Z")"#).await?)?.len(),
        0
    );
    // System entries only with --system.
    assert!(parse(q(r#"component == "deployer""#).await?)?.is_empty());
    let out = weaver_in(
        d.data.path(),
        &[
            "multi",
            "logs",
            "--system",
            "--format=json",
            r#"component == "deployer""#,
        ],
    )
    .await?;
    assert!(!parse(out)?.is_empty());

    // Bad queries: position and caret on stderr, nothing on stdout.
    let out = q("msg ==").await?;
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr)?;
    assert!(
        err.contains("line 1, column 7") && err.contains('^'),
        "{err}"
    );
    let out = q(r#"nope == "x""#).await?;
    assert!(String::from_utf8(out.stderr)?.contains("unknown variable `nope`"));
    let out = q(r#"msg.matches("(")"#).await?;
    assert_eq!(out.status.code(), Some(64));
    // Type errors are refused before reading, with the position.
    let out = q("msg > 3").await?;
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr)?;
    assert!(
        err.contains("line 1, column 5: `>` cannot be applied to a string and an int"),
        "{err}"
    );
    // Entries the query fails on are counted on stderr, not dropped silently.
    let out = q(r#"attrs["len"] > "a""#).await?;
    assert!(out.status.success() && out.stdout.is_empty());
    let err = String::from_utf8(out.stderr)?;
    assert!(
        err.contains("warning: 3 entries could not be evaluated: "),
        "{err}"
    );
    Ok(())
}

/// Now minus a second, as RFC 3339 (UTC).
fn chrono_like_now() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    weaver_proto_time(micros - 1_000_000)
}

fn weaver_proto_time(micros: i64) -> String {
    // Reuse the formatter the tools use for JSON output.
    weaver_integration::rfc3339(micros)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_prints_new_entries_promptly() -> anyhow::Result<()> {
    let d = Deployment::start(&config("probe", &bins().bin("probe"), "")).await?;
    d.ready().await?;
    let addr = d.listener("http").await?;
    let mut follow = tokio::process::Command::new(&bins().weaver)
        .args([
            "multi",
            "logs",
            "--follow",
            "--format=json",
            r#"msg == "working""#,
        ])
        .env("WEAVER_DATA_DIR", d.data.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
        follow.stdout.take().expect("stdout"),
    ));
    // The follower is up once it has printed what was already stored.
    assert_eq!(http_get(&addr, "/worker?key=first").await?.0, 200);
    let first = tokio::time::timeout(weaver_integration::DEADLINE, lines.next_line()).await??;
    assert!(first.is_some_and(|l| l.contains("\"first\"")));
    // An entry logged now shows up within a second.
    assert_eq!(http_get(&addr, "/worker?key=second").await?.0, 200);
    let second = tokio::time::timeout(Duration::from_secs(1), lines.next_line()).await??;
    assert!(second.is_some_and(|l| l.contains("\"second\"")));
    follow.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_a_replica_prints_reaches_the_store() -> anyhow::Result<()> {
    let mut d = Deployment::start(&config(
        "probe",
        &bins().bin("probe"),
        "[multi]\nreplicas = 1",
    ))
    .await?;
    d.ready().await?;
    let addr = d.listener("http").await?;
    assert_eq!(
        http_get(&addr, "/print?n=10000").await?,
        (200, "printed 10000".to_string())
    );
    d.signal(Signal::SIGINT);
    assert_eq!(d.wait().await?, 130);
    let out = d
        .weaver(&[
            "multi",
            "logs",
            r#"level == "stdout" && msg.startsWith("line ")"#,
        ])
        .await?;
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 10_000);
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.ends_with("line 9999"))
    );
    Ok(())
}

/// Runs hello directly (one process) with data directory `data`; returns
/// the child and its listener's address, read off its log on stderr.
async fn run_hello_directly(
    data: &std::path::Path,
) -> anyhow::Result<(tokio::process::Child, String)> {
    let mut app = tokio::process::Command::new(bins().bin("hello"))
        .env("WEAVER_DATA_DIR", data)
        .env_remove("SERVICEWEAVER_CONFIG")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut err = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
        app.stderr.take().expect("stderr"),
    ));
    let addr = loop {
        let line = tokio::time::timeout(weaver_integration::DEADLINE, err.next_line())
            .await??
            .context("hello exited before it listened")?;
        if let Some(a) = line.split("address=\"").nth(1) {
            break a.trim_end_matches('"').to_string();
        }
    };
    // Keep reading stderr so the app never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });
    Ok((app, addr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_status_lists_apps_run_directly() -> anyhow::Result<()> {
    let data = TempDir::new("weaver-data")?;
    let (mut app, addr) = run_hello_directly(data.path()).await?;
    let pid = app.id().unwrap_or(0);
    assert_eq!(http_get(&addr, "/hello?name=ab").await?.1, "Hello, ba!");
    let report = status_in(data.path(), "single").await?;
    let run = report.by_pid(pid).context("the run is not listed")?;
    assert_eq!(run.app, "hello", "{run:?}");
    assert_eq!(run.status_addr, None, "{run:?}");
    assert_eq!(
        run.pids("hello::Reverser"),
        BTreeSet::from([pid]),
        "{run:?}"
    );
    assert!(run.listeners.iter().any(|l| l.address == addr), "{run:?}");
    app.kill().await?;
    app.wait().await?;
    let report = status_in(data.path(), "single").await?;
    assert!(report.deployments.is_empty(), "{report:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_metrics_shows_a_run_s_own_metrics() -> anyhow::Result<()> {
    let data = TempDir::new("weaver-data")?;
    let out = weaver_in(data.path(), &["single", "metrics"]).await?;
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "No applications are running as one process.\n"
    );

    let (mut app, addr) = run_hello_directly(data.path()).await?;
    for name in ["ab", "abc", "abcd"] {
        assert_eq!(
            http_get(&addr, &format!("/hello?name={name}")).await?.0,
            200
        );
    }
    let out = weaver_in(
        data.path(),
        &["single", "metrics", "--format=json", "^hello_|method_count"],
    )
    .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let runs = doc["deployments"].as_array().context("deployments")?;
    assert_eq!(runs.len(), 1, "{doc}");
    assert_eq!(runs[0]["app"], "hello");
    let metrics = runs[0]["metrics"].as_array().context("metrics")?;
    let find = |name: &str| {
        metrics
            .iter()
            .filter(|m| m["name"] == name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let reversals = find("hello_reversals_total");
    assert_eq!(reversals.len(), 1, "{metrics:?}");
    assert_eq!(reversals[0]["value"], 3.0);
    assert_eq!(reversals[0]["labels"]["serviceweaver_app"], "hello");
    let lengths = find("hello_reversed_length");
    let counts: u64 = lengths[0]["counts"]
        .as_array()
        .context("counts")?
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    assert_eq!((counts, lengths[0]["value"].as_f64()), (3, Some(9.0)));
    // Main's calls of Reverser.reverse are local in one process.
    let calls: Vec<_> = find("serviceweaver_method_count")
        .into_iter()
        .filter(|m| m["labels"]["method"] == "reverse")
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["labels"]["remote"], "false");
    assert_eq!(calls[0]["value"], 3.0);
    // The regex filtered.
    assert!(metrics.iter().all(|m| {
        let n = m["name"].as_str().unwrap_or_default();
        n.starts_with("hello_") || n.contains("method_count")
    }));

    let out = weaver_in(data.path(), &["single", "metrics", "--format=prometheus"]).await?;
    let text = stdout(&out);
    assert!(text.contains("hello_reversals_total{"), "{text}");
    assert!(
        text.contains("# TYPE serviceweaver_method_count counter"),
        "{text}"
    );

    let out = weaver_in(data.path(), &["single", "metrics", "a("]).await?;
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid regexp \"a(\""));
    app.kill().await?;
    app.wait().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_refuses_while_running_and_deletes_after() -> anyhow::Result<()> {
    let mut d = Deployment::start(&config("hello", &bins().bin("hello"), "")).await?;
    d.ready().await?;
    let out = d.weaver(&["multi", "purge", "--force"]).await?;
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)?.contains("still running"));
    d.signal(Signal::SIGINT);
    assert_eq!(d.wait().await?, 130);
    let logs = d.data.path().join("logs");
    assert!(logs.exists());
    // Without --force and without a "yes", nothing is deleted.
    let out = d.weaver(&["multi", "purge"]).await?;
    assert!(!out.status.success());
    assert!(logs.exists());
    let out = d.weaver(&["multi", "purge", "--force"]).await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!logs.exists());
    let out = d.weaver(&["multi", "logs"]).await?;
    assert!(out.status.success() && out.stdout.is_empty());
    Ok(())
}
