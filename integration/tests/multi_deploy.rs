//! `weaver multi deploy`: processes, cross-process calls, bad binaries and
//! bad configs.

use std::collections::BTreeSet;
use std::time::Duration;

use weaver_integration::{
    Deployment, TempDir, bins, config, exe_of, http_get, wait_gone, weaver_in,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_runs_as_four_processes_and_reverser_calls_cross_processes() -> anyhow::Result<()> {
    let bins = bins();
    let hello = bins.bin("hello");
    let mut d = Deployment::start(&config("hello", &hello, "")).await?;
    d.ready().await?;
    let addr = d.listener("hello").await?;
    let (status, body) = http_get(&addr, "/hello?name=Weaver").await?;
    assert_eq!((status, body.as_str()), (200, "Hello, revaeW!"));
    // Both Main replicas call the Reverser.
    for i in 0..6 {
        let (status, body) = http_get(&addr, &format!("/hello?name=ab{i}")).await?;
        assert_eq!((status, body), (200, format!("Hello, {i}ba!")));
    }
    d.group_started("hello::Reverser").await?;

    // Exactly groups × replicas children, each running the app binary.
    let kids = d.children();
    assert_eq!(kids.len(), 4, "children: {kids:?}");
    let hello = std::fs::canonicalize(&hello)?;
    for k in &kids {
        assert_eq!(exe_of(*k).as_deref(), Some(hello.as_path()), "child {k}");
    }

    // The status names the same processes: Main and Reverser in disjoint
    // pairs.
    let status = d.status().await?;
    let (main, reverser) = (status.pids("weaver::Main"), status.pids("hello::Reverser"));
    assert_eq!(main.len(), 2, "{status:?}");
    assert_eq!(reverser.len(), 2, "{status:?}");
    assert!(main.is_disjoint(&reverser), "{status:?}");
    let all: BTreeSet<u32> = main.union(&reverser).copied().collect();
    assert_eq!(all, kids.iter().copied().collect::<BTreeSet<_>>());

    // Every "reversing" entry was logged by a Reverser weavelet: the call
    // crossed from a Main process into a Reverser process.
    let reverser_ids: BTreeSet<String> = status
        .component("hello::Reverser")
        .map(|c| c.replicas.iter().map(|r| r.weavelet_id.clone()).collect())
        .unwrap_or_default();
    let out = d
        .weaver(&["multi", "logs", "--format=json", r#"msg == "reversing""#])
        .await?;
    let nodes: BTreeSet<String> = String::from_utf8(out.stdout)?
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v["full_node"].as_str().unwrap_or("").to_string())
        })
        .collect::<Result<_, _>>()?;
    assert!(!nodes.is_empty());
    assert!(
        nodes.is_subset(&reverser_ids),
        "nodes {nodes:?} vs reverser {reverser_ids:?}"
    );

    d.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(d.wait().await?, 130);
    wait_gone(&kids, Duration::from_secs(5)).await?;
    Ok(())
}

/// Runs a deployment that must fail; returns its stderr.
async fn failing(config_text: &str, env: &[(&str, &str)]) -> anyhow::Result<(i32, String)> {
    let data = TempDir::new("weaver-data")?;
    let dir = TempDir::new("weaver-config")?;
    let path = dir.path().join("weaver.toml");
    std::fs::write(&path, config_text)?;
    let mut cmd = tokio::process::Command::new(&bins().weaver);
    cmd.args(["multi", "deploy"])
        .arg(&path)
        .env("WEAVER_DATA_DIR", data.path())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id().unwrap_or(0);
    let out =
        tokio::time::timeout(weaver_integration::DEADLINE, child.wait_with_output()).await??;
    let code = out.status.code().unwrap_or(-1);
    // Nothing it started survives it, and it removed its registration.
    assert!(weaver_integration::children_of(pid).is_empty());
    let reg = data.path().join("multi/registry");
    let left = std::fs::read_dir(&reg).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "registration left in {}", reg.display());
    Ok((code, String::from_utf8(out.stderr)?))
}

#[tokio::test]
async fn an_app_that_panics_before_the_handshake_is_a_clear_error() -> anyhow::Result<()> {
    let probe = bins().bin("probe");
    let text = config("probe", &probe, "env = [\"CRASH=before\"]");
    // Without a backtrace, the panic message is within the stderr tail.
    let (code, stderr) = failing(&text.replace("\n\n", "\n"), &[("RUST_BACKTRACE", "0")]).await?;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("before completing the weaver handshake"),
        "{stderr}"
    );
    assert!(
        stderr.contains("probe: failing before weaver::run, as asked"),
        "stderr tail missing: {stderr}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_panics_in_main_is_restarted_with_backoff() -> anyhow::Result<()> {
    // A replica that dies after its handshake is restarted, however soon it
    // dies: only failures before the handshake are a crash loop.
    let probe = bins().bin("probe");
    let text = config(
        "probe",
        &probe,
        "env = [\"CRASH=main\", \"RUST_BACKTRACE=0\"]",
    );
    let mut d = Deployment::start(&text.replace("\n\n", "\n")).await?;
    d.stdout
        .wait_until("three restarts", |lines| {
            lines
                .iter()
                .filter(|l| l.contains("of group weaver::Main restarted"))
                .count()
                >= 3
        })
        .await?;
    let lines = d.stdout.all();
    // Each crash is reported, with what the app said as it died.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("of group weaver::Main") && l.contains("exited")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("probe: failing in main, as asked")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("keeps crashing")),
        "{lines:?}"
    );
    let kids = d.children();
    d.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(d.wait().await?, 130);
    wait_gone(&kids, Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::test]
async fn a_binary_that_is_not_a_weaver_app_is_a_clear_error() -> anyhow::Result<()> {
    // Exits at once.
    let (code, stderr) = failing(&config("t", std::path::Path::new("/bin/true"), ""), &[]).await?;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("/bin/true exited (exit status 0) before completing the weaver handshake"),
        "{stderr}"
    );
    // Runs but never answers.
    let text = config("s", std::path::Path::new("/bin/sleep"), "args = [\"600\"]");
    let (code, stderr) = failing(&text, &[("WEAVER_HANDSHAKE_TIMEOUT", "1s")]).await?;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "did not complete the weaver handshake within 1s; is it a weaver application?"
        ),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn bad_configs_name_the_problem_and_start_nothing() -> anyhow::Result<()> {
    let hello = bins().bin("hello");
    let cases = [
        (
            config("hello", &hello, "[multi]\nreplica = 3"),
            "unknown key \"replica\" in [multi]",
        ),
        (
            config("hello", std::path::Path::new("/no/such/binary"), ""),
            "/no/such/binary\" doesn't exist",
        ),
        (
            config("hello", &hello, "[multi]\nreplicas = \"two\""),
            "replicas",
        ),
        (
            config("hello", &hello, "colocate = [[\"hello::Nope\"]]"),
            "hello::Nope",
        ),
    ];
    for (text, want) in cases {
        let text = text.replace("\n\n", "\n");
        let (code, stderr) = failing(&text, &[]).await?;
        assert_ne!(code, 0, "{text}");
        assert!(stderr.contains(want), "want {want:?} in {stderr}");
    }
    Ok(())
}

#[tokio::test]
async fn status_on_an_empty_machine_prints_empty_tables() -> anyhow::Result<()> {
    let data = TempDir::new("weaver-data")?;
    let out = weaver_in(data.path(), &["multi", "status"]).await?;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout)?;
    assert!(
        text.contains("DEPLOYMENTS") && text.contains("COMPONENTS") && text.contains("LISTENERS"),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_run_directly_listens_where_its_config_says() -> anyhow::Result<()> {
    let dir = TempDir::new("weaver-single")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let cfg = dir.path().join("weaver.toml");
    std::fs::write(
        &cfg,
        format!(
            "[serviceweaver]\nname = \"hello\"\n\n[single]\nlisteners.hello = {{ address = \"127.0.0.1:{port}\" }}\n"
        ),
    )?;
    let mut app = tokio::process::Command::new(bins().bin("hello"))
        .env("SERVICEWEAVER_CONFIG", &cfg)
        .env("WEAVER_DATA_DIR", dir.path())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut err = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
        app.stderr.take().expect("stderr"),
    ));
    let mut seen = Vec::new();
    loop {
        let line = tokio::time::timeout(weaver_integration::DEADLINE, err.next_line()).await??;
        let Some(line) = line else {
            anyhow::bail!("hello exited: {seen:?}")
        };
        seen.push(line.clone());
        if line.contains("hello listener available") {
            assert!(
                line.contains(&format!("address=\"127.0.0.1:{port}\"")),
                "{line}"
            );
            break;
        }
    }
    // The app/deployment box came first, then pretty log lines.
    assert!(
        seen.iter().any(|l| l.contains("app        : hello")),
        "{seen:?}"
    );
    let (status, body) = http_get(&format!("127.0.0.1:{port}"), "/hello?name=Weaver").await?;
    assert_eq!((status, body.as_str()), (200, "Hello, revaeW!"));
    app.kill().await?;
    Ok(())
}
