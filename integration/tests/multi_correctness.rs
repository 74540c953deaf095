//! An app split into processes computes what it computes as one process:
//! errors a method returns are not retried as transport failures, replicas
//! that crash on requests are restarted, and configs that do not match the
//! binary stop the deployment before anything runs.

use std::time::Duration;

use weaver_integration::{
    DEADLINE, Deployment, TempDir, bins, children_of, config, http_get, pid_alive, wait_gone,
};

/// The bank app, each component in its own group.
async fn bank(extra: &str) -> anyhow::Result<(Deployment, String)> {
    let d = Deployment::start(&config("bank", &bins().bin("bank"), extra)).await?;
    d.ready().await?;
    let addr = d.listener("http").await?;
    Ok((d, addr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_transport_error_does_not_rerun_the_outer_call() -> anyhow::Result<()> {
    let (_d, addr) = bank("").await?;
    // The Bank credits the account, then its call to the Audit dies with
    // the Audit's process. The Bank returns that error with `?`.
    let (status, body) = http_get(&addr, "/deposit?account=alice&amount=5&crash=1").await?;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.ends_with("remote=false caused_by_remote=true construction=false"),
        "{body}"
    );
    assert!(
        body.starts_with("a call made by bank::Bank.deposit failed: remote call error: "),
        "{body}"
    );
    // One request, one credit: Main did not retry the deposit.
    let (status, body) = http_get(&addr, "/balance?account=alice").await?;
    assert_eq!((status, body.as_str()), (200, "5"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_crashes_on_every_request_is_restarted_not_a_crash_loop()
-> anyhow::Result<()> {
    let (d, addr) = bank("").await?;
    // Each of these kills an Audit replica while it serves the call, often
    // within seconds of its restart. That is not a crash at start: the
    // deployment stays up and callers get errors.
    for i in 0..8 {
        let (status, body) =
            http_get(&addr, &format!("/deposit?account=c{i}&amount=1&crash=1")).await?;
        assert_eq!(status, 500, "request {i}: {body}");
        assert!(body.contains("caused_by_remote=true"), "{body}");
    }
    d.stdout
        .wait_until("restarts of the Audit", |lines| {
            lines
                .iter()
                .filter(|l| l.contains("of group bank::Audit restarted"))
                .count()
                >= 4
        })
        .await?;
    assert!(pid_alive(d.pid()), "the babysitter gave up");

    assert!(
        !d.stdout
            .all()
            .iter()
            .any(|l| l.contains("keeps crashing right after it starts")),
        "{:?}",
        d.stdout.all()
    );
    // Once restarted, the Audit serves ordinary calls again.
    let (status, body) = http_get(&addr, "/deposit?account=bob&amount=7").await?;
    assert_eq!((status, body.as_str()), (200, "7"));
    // The status counts the restarts per replica: once both replicas are
    // back, their counts add up to the restarts the babysitter logged.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut every = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        every.tick().await;
        let logged = d
            .stdout
            .all()
            .iter()
            .filter(|l| l.contains("of group bank::Audit restarted"))
            .count() as u32;
        let status = d.status().await?;
        let audit = status.component("bank::Audit").map(|c| c.replicas.clone());
        let replicas = audit.unwrap_or_default();
        let counted: u32 = replicas.iter().map(|r| r.restarts).sum();
        if replicas.len() == 2 && counted == logged {
            assert!(counted >= 4, "{status:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "restarts counted {counted}, logged {logged}: {status:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_init_hook_is_a_construction_error() -> anyhow::Result<()> {
    let (_d, addr) = bank("env = [\"FAIL_INIT=1\"]").await?;
    let (status, body) = http_get(&addr, "/audit?account=a").await?;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.ends_with("remote=false caused_by_remote=false construction=true"),
        "{body}"
    );
    assert!(
        body.contains("component bank::Audit: init failed: audit log unavailable"),
        "{body}"
    );
    // Not half-built: the next call tries to build it again, and fails the
    // same way (nothing was kept from the failed build).
    let (status, again) = http_get(&addr, "/audit?account=a").await?;
    assert_eq!(status, 500);
    assert!(again.contains("construction=true"), "{again}");
    Ok(())
}

/// Runs `weaver multi deploy` on `text`, which must fail; returns (exit
/// code, stderr) after checking that nothing it started is left.
async fn deploy_fails(text: &str) -> anyhow::Result<(i32, String)> {
    let mut d = Deployment::start(text).await?;
    let code = d.wait().await?;
    let kids = children_of(d.pid());
    wait_gone(&kids, Duration::from_secs(5)).await?;
    let reg = d.data.path().join("multi/registry");
    let left = std::fs::read_dir(&reg).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "registration left in {}", reg.display());
    Ok((code, d.stderr.all().join("\n")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_typo_is_named_at_deploy_time_and_nothing_is_left_running() -> anyhow::Result<()> {
    let shop = bins().bin("shop");
    let text = config(
        "shop",
        &shop,
        "[\"shop::Pricing\"]\ncurrency = \"EUR\"\nmarkup_prcent = 10",
    );
    let started = std::time::Instant::now();
    let (code, stderr) = deploy_fails(&text).await?;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("weaver.toml: unknown key \"markup_prcent\" in [\"shop::Pricing\"]"),
        "{stderr}"
    );
    // Stopped at deploy time, not left running until a first call.
    assert!(started.elapsed() < DEADLINE, "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_typo_stops_a_one_process_run_before_main() -> anyhow::Result<()> {
    let dir = TempDir::new("weaver-single")?;
    let cfg = dir.path().join("weaver.toml");
    std::fs::write(
        &cfg,
        "[serviceweaver]\nname = \"shop\"\n\n[\"shop::Pricing\"]\ncurrency = \"EUR\"\nmarkup_prcent = 10\n",
    )?;
    let out = tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new(bins().bin("shop"))
            .env("SERVICEWEAVER_CONFIG", &cfg)
            .env("WEAVER_DATA_DIR", dir.path())
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    let stderr = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("weaver.toml: unknown key \"markup_prcent\" in [\"shop::Pricing\"]"),
        "{stderr}"
    );
    // Checked before anything started: not even the app box was printed.
    assert!(!stderr.contains("app        :"), "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_the_binary_does_not_declare_is_rejected() -> anyhow::Result<()> {
    let hello = bins().bin("hello");
    let text = config("hello", &hello, "[multi]\nlisteners.helo = {}");
    let (code, stderr) = deploy_fails(&text).await?;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "listener \"helo\" in [multi] is not a listener of the binary (did you mean \"hello\"? known listeners: hello)"
        ),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_serves_a_weaver_listener_under_multi_deploy() -> anyhow::Result<()> {
    let d = Deployment::start(&config("axum-app", &bins().bin("axum-app"), "")).await?;
    d.ready().await?;
    let addr = d.listener("http").await?;
    let (status, body) = http_get(&addr, "/shout?s=hi").await?;
    assert_eq!(status, 200, "{body}");
    let (loud, pid) = body.split_once(' ').expect("a pid after the answer");
    assert_eq!(loud, "HI!");
    // Served by one of the deployment's processes, behind the proxy.
    let pid: u32 = pid.parse()?;
    assert!(
        d.children().contains(&pid),
        "{pid} not in {:?}",
        d.children()
    );
    Ok(())
}
