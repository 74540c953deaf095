//! `weaver multi profile` and `weaver single profile`: a CPU profile of
//! every group of a running deployment (or of one process), merged,
//! written as a gzipped pprof protobuf or a flame graph whose path is
//! printed; and the errors for a bad prefix, duration or type.

use anyhow::Context as _;
use weaver_integration::{Deployment, bins, config, http_get};
use weaver_proto::profile::{self, Profile};

/// The names of the functions of `p`.
fn function_names(p: &Profile) -> Vec<&str> {
    p.function
        .iter()
        .map(|f| p.string_table[f.name as usize].as_str())
        .collect()
}

/// Checks that every reference of `p` resolves.
fn check_structure(p: &Profile) {
    let s = |i: i64| p.string_table.get(i as usize).map(String::as_str);
    assert_eq!(p.string_table.first().map(String::as_str), Some(""));
    let types: Vec<_> = p
        .sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
        .collect();
    assert_eq!(
        types,
        [
            (Some("samples"), Some("count")),
            (Some("cpu"), Some("nanoseconds"))
        ]
    );
    assert!(p.period > 0, "a sampling period");
    for sample in &p.sample {
        assert_eq!(sample.value.len(), p.sample_type.len());
        for id in &sample.location_id {
            let loc = p.location.iter().find(|l| l.id == *id).expect("location");
            for line in &loc.line {
                let f = p.function.iter().find(|f| f.id == line.function_id);
                assert!(
                    f.is_some_and(|f| s(f.name).is_some()),
                    "function of {loc:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_profile_merges_the_groups_and_shows_the_busy_function() -> anyhow::Result<()>
{
    let cfg = config("spinner", &bins().bin("spinner"), "[multi]\nreplicas = 1");
    let d = Deployment::start(&cfg).await?;
    d.ready().await?;
    let addr = d.listener("http").await?;
    let id = d.id().context("a deployment id")?;
    let prefix = &id[..8];

    // Spin in the Spinner's process until the profile is done (starting
    // the profiler can take a while: it symbolizes a first backtrace), and
    // profile once the spin has started.
    let load = tokio::spawn({
        let addr = addr.clone();
        async move { http_get(&addr, "/spin?ms=60000").await }
    });
    d.stdout
        .wait_for("the spinner starting", |l| l.contains("spinning"))
        .await?;
    let out = d
        .weaver(&["multi", "profile", "--duration", "1s", prefix])
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(!stderr.contains("Partial profile"), "{stderr}");
    // The same, drawn as a flame graph.
    let svg = d
        .weaver(&[
            "multi",
            "profile",
            "--duration",
            "1s",
            "--format",
            "svg",
            prefix,
        ])
        .await?;
    assert!(svg.status.success(), "{svg:?}");
    http_get(&addr, "/stop").await?;
    let svg_path = std::path::PathBuf::from(String::from_utf8(svg.stdout)?.trim_end());
    let drawn = std::fs::read_to_string(&svg_path)?;
    std::fs::remove_file(&svg_path)?;
    assert!(
        svg_path.extension().is_some_and(|e| e == "svg"),
        "{}",
        svg_path.display()
    );
    assert!(drawn.contains("<svg"), "{drawn}");
    assert!(drawn.contains("spin_for_the_profile"), "{drawn}");
    let (code, body) = load.await??;
    assert_eq!(code, 200, "{body}");

    let stdout = String::from_utf8(out.stdout)?;
    let path = std::path::PathBuf::from(stdout.trim_end());
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    assert!(
        name.starts_with("serviceweaver_spinner_cpu_profile_") && name.ends_with(".pb.gz"),
        "{stdout}"
    );
    assert_eq!(path.parent(), Some(std::env::temp_dir().as_path()));
    let data = std::fs::read(&path)?;
    std::fs::remove_file(&path)?;
    assert_eq!(&data[..2], &[0x1f, 0x8b], "gzip");
    let p = profile::decode(&data)?;
    check_structure(&p);
    assert!(!p.sample.is_empty(), "no samples");
    let names = function_names(&p);
    assert!(
        names.iter().any(|n| n.contains("spin_for_the_profile")),
        "the busy function is in the profile: {names:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_must_name_one_live_deployment_and_the_duration_be_nonzero() -> anyhow::Result<()>
{
    let cfg = config("spinner", &bins().bin("spinner"), "[multi]\nreplicas = 1");
    let a = Deployment::start(&cfg).await?;
    a.ready().await?;
    let id = a.id().context("a deployment id")?;

    let out = a
        .weaver(&["multi", "profile", "--duration", "1s", "zzzz"])
        .await?;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "weaver: no deployment with prefix \"zzzz\"\n"
    );

    let out = a
        .weaver(&["multi", "profile", "--duration", "0s", &id])
        .await?;
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "weaver: invalid zero duration for the CPU profile collection\n"
    );
    let out = a
        .weaver(&["multi", "profile", "--type", "heap", &id])
        .await?;
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("weaver: heap profiles are not supported"),
        "{stderr}"
    );

    // A second deployment in the same data directory: the empty prefix
    // names both.
    let b = Deployment::start_in(&cfg, a.data.clone()).await?;
    b.ready().await?;
    let out = a
        .weaver(&["multi", "profile", "--duration", "1s", ""])
        .await?;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("weaver: multiple deployments with prefix \"\": "),
        "{stderr}"
    );
    assert!(stderr.contains(&id), "{stderr}");
    Ok(())
}

/// A process run directly, its stderr collected line by line.
struct Direct {
    _child: tokio::process::Child,
    stderr: tokio::sync::watch::Receiver<Vec<String>>,
}

impl Direct {
    fn start(binary: &std::path::Path, data: &std::path::Path) -> anyhow::Result<Direct> {
        use tokio::io::AsyncBufReadExt as _;
        let mut child = tokio::process::Command::new(binary)
            .env("WEAVER_DATA_DIR", data)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawn the app")?;
        let (tx, stderr) = tokio::sync::watch::channel(Vec::new());
        let mut lines = tokio::io::BufReader::new(child.stderr.take().context("stderr")?).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                tx.send_modify(|all| all.push(line));
            }
        });
        Ok(Direct {
            _child: child,
            stderr,
        })
    }

    /// The first line containing `needle`, once printed.
    async fn line(&self, needle: &str) -> anyhow::Result<String> {
        let mut rx = self.stderr.clone();
        let found = tokio::time::timeout(
            weaver_integration::DEADLINE,
            rx.wait_for(|all| all.iter().any(|l| l.contains(needle))),
        )
        .await;
        let all = self.stderr.borrow().clone();
        match found {
            Ok(Ok(_)) => Ok(all
                .into_iter()
                .find(|l| l.contains(needle))
                .unwrap_or_default()),
            _ => anyhow::bail!("no line with {needle:?} in:\n{}", all.join("\n")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_run_directly_profiles_itself() -> anyhow::Result<()> {
    let data = weaver_integration::TempDir::new("weaver-data")?;
    let app = Direct::start(&bins().bin("spinner"), data.path())?;
    let ready = app.line("spinner ready").await?;
    let addr: String = ready
        .split_once("127.0.0.1:")
        .map(|(_, port)| {
            let port: String = port.chars().take_while(char::is_ascii_digit).collect();
            format!("127.0.0.1:{port}")
        })
        .with_context(|| format!("an address in {ready:?}"))?;
    let banner = app.line("deployment : ").await?;
    let id = banner
        .split("deployment : ")
        .nth(1)
        .map(|s| s.trim_end_matches(['│', ' ']).to_owned())
        .context("an id")?;

    let load = tokio::spawn({
        let addr = addr.clone();
        async move { http_get(&addr, "/spin?ms=60000").await }
    });
    app.line("spinning").await?;
    let out = weaver_integration::weaver_in(
        data.path(),
        &["single", "profile", "--duration", "1s", &id[..8]],
    )
    .await?;
    assert!(out.status.success(), "{out:?}");
    http_get(&addr, "/stop").await?;
    let (code, body) = load.await??;
    assert_eq!(code, 200, "{body}");
    let stdout = String::from_utf8(out.stdout)?;
    let path = std::path::PathBuf::from(stdout.trim_end());
    let bytes = std::fs::read(&path)?;
    std::fs::remove_file(&path)?;
    let p = profile::decode(&bytes)?;
    check_structure(&p);
    let names = function_names(&p);
    assert!(
        names.iter().any(|n| n.contains("spin_for_the_profile")),
        "the busy function is in the profile: {names:?}"
    );

    let out = weaver_integration::weaver_in(
        data.path(),
        &["single", "profile", "--duration", "1s", "zzzz"],
    )
    .await?;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "weaver: no deployment with prefix \"zzzz\"\n"
    );
    Ok(())
}
