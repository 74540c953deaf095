//! `weaver multi dashboard` against a real hello deployment: over HTTP and
//! in headless Chromium (installed by scripts/install-test-deps.sh).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use weaver_integration::{DEADLINE, Deployment, TempDir, bins, config, http_get, wait_gone};

/// A running `weaver multi dashboard`, killed on drop.
struct Dashboard {
    _child: Child,
    addr: String,
}

impl Dashboard {
    /// Starts `weaver multi dashboard` on data directory `data`, and reads
    /// its address from the line it prints on stderr.
    async fn start(data: &Path) -> anyhow::Result<Dashboard> {
        Self::start_tool(data, "multi").await
    }

    /// Starts `weaver <tool> dashboard` on data directory `data`.
    async fn start_tool(data: &Path, tool: &str) -> anyhow::Result<Dashboard> {
        let mut child = Command::new(&bins().weaver)
            .args([tool, "dashboard", "--port", "0"])
            .env("WEAVER_DATA_DIR", data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawn weaver multi dashboard")?;
        let stderr = child.stderr.take().context("stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .context("the dashboard printed nothing")??
            .context("the dashboard exited")?;
        let addr = line
            .strip_prefix("Dashboard available at: http://")
            .with_context(|| format!("unexpected first line {line:?}"))?
            .to_owned();
        // Keep draining stderr so the dashboard never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Dashboard {
            _child: child,
            addr,
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get(&self.addr, path).await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// The attributes of every `<tag class="class" …>` element in `html`.
fn elements(html: &str, tag: &str, class: &str) -> Vec<BTreeMap<String, String>> {
    let open = format!("<{tag} class=\"{class}\"");
    let mut found = Vec::new();
    for (i, _) in html.match_indices(&open) {
        let rest = &html[i + open.len()..];
        let Some(end) = rest.find('>') else { continue };
        let mut attrs = BTreeMap::new();
        let mut s = &rest[..end];
        while let Some((k, after)) = s.split_once("=\"") {
            let Some((v, tail)) = after.split_once('"') else {
                break;
            };
            attrs.insert(k.trim().to_owned(), unescape(v));
            s = tail;
        }
        found.push(attrs);
    }
    found
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// `s` percent-encoded for a query string.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Checks what the deployment page must show of a hello deployment after
/// `n` calls: the listener's address, components whose replica count is
/// their pid count (the pids `weaver multi status` lists), the methods row
/// of `hello::Reverser.reverse` and the traffic edge Main → Reverser, both
/// with `n` calls. `Ok(false)` if the counts are not there yet.
fn check_deployment_page(
    page: &str,
    listener: &str,
    pids: &BTreeMap<String, BTreeSet<u32>>,
    n: usize,
) -> anyhow::Result<bool> {
    assert!(page.contains(listener), "listener {listener} in {page}");
    let components = elements(page, "tr", "component");
    let shown: BTreeMap<String, BTreeSet<u32>> = components
        .iter()
        .map(|c| {
            let pids: BTreeSet<u32> = c["data-pids"]
                .split(' ')
                .filter_map(|p| p.parse().ok())
                .collect();
            assert_eq!(c["data-replicas"], pids.len().to_string(), "{c:?}");
            (c["data-component"].clone(), pids)
        })
        .collect();
    assert_eq!(&shown, pids, "components in {page}");
    let reverse: Vec<_> = elements(page, "tr", "method")
        .into_iter()
        .filter(|m| m["data-component"] == "hello::Reverser" && m["data-method"] == "reverse")
        .collect();
    let edge: Vec<_> = elements(page, "g", "edge")
        .into_iter()
        .filter(|e| e["data-from"] == "weaver::Main" && e["data-to"] == "hello::Reverser")
        .collect();
    let want = n.to_string();
    Ok(reverse.len() == 1
        && reverse[0]["data-calls"] == want
        && edge.len() == 1
        && edge[0]["data-calls"] == want
        && page.contains(&format!(">{want}</text></g>")))
}

/// A hello deployment that served `n` requests, its id, the listener's
/// address and `weaver multi status`'s pids per component.
async fn hello(n: usize) -> anyhow::Result<(Deployment, String, String, ComponentPids)> {
    let d = Deployment::start(&config("hello", &bins().bin("hello"), "")).await?;
    d.ready().await?;
    let addr = d.listener("hello").await?;
    for i in 0..n {
        let (code, body) = http_get(&addr, &format!("/hello?name=dash{i}")).await?;
        assert_eq!(code, 200, "{body}");
    }
    d.group_started("hello::Reverser").await?;
    let id = d.id().context("a deployment id")?;
    let pids = d.status().await?.component_pids();
    Ok((d, id, addr, pids))
}

type ComponentPids = BTreeMap<String, BTreeSet<u32>>;

/// A shop deployment in `beside`'s data directory, after remote and local
/// calls.
async fn shop(beside: &Deployment) -> anyhow::Result<Deployment> {
    let extra = "colocate = [[\"shop::Pricing\", \"shop::Inventory\"]]\n\
                 [\"shop::Pricing\"]\ncurrency = \"EUR\"\nmarkup_percent = 10\n";
    let d = Deployment::start_in(
        &config("shop", &bins().bin("shop"), extra),
        beside.data.clone(),
    )
    .await?;
    d.ready().await?;
    let addr = d.listener("shop").await?;
    for path in [
        "/cache/put?key=k&value=v",
        "/cache/get?key=k",
        "/price?item=apple",
    ] {
        let (code, body) = http_get(&addr, path).await?;
        assert_eq!(code, 200, "{path}: {body}");
    }
    Ok(d)
}

/// Fetches `path` until `ready` accepts the page.
async fn eventually(
    dash: &Dashboard,
    path: &str,
    mut ready: impl FnMut(&str) -> anyhow::Result<bool>,
) -> anyhow::Result<String> {
    let start = Instant::now();
    // The page is the event: fetched on a fixed cadence until it shows
    // what is expected or the deadline passes.
    let mut every = tokio::time::interval(Duration::from_millis(200));
    loop {
        every.tick().await;
        let (code, page) = dash.get(path).await?;
        assert_eq!(code, 200, "{path}: {page}");
        if ready(&page)? {
            return Ok(page);
        }
        if start.elapsed() > DEADLINE {
            bail!("{path} never showed what was expected:\n{page}");
        }
    }
}

/// Every `http(s)://host` in `html` whose host is not loopback, and every
/// `src=`/`href=` that names another host.
fn external_references(html: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for scheme in ["http://", "https://", "//"] {
        for (i, _) in html.match_indices(scheme) {
            if scheme == "//" && html[..i].ends_with(':') {
                continue; // Counted as http(s):// above.
            }
            let rest = &html[i + scheme.len()..];
            let host: String = rest
                .chars()
                .take_while(|c| !matches!(c, '/' | '"' | '\'' | ' ' | '<' | '>' | ')'))
                .collect();
            let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
            if scheme == "//"
                && !["src=\"", "href=\"", "url("]
                    .iter()
                    .any(|p| html[..i].ends_with(p))
            {
                continue; // `//` in a comment or a script, not a reference.
            }
            if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
                bad.push(html[i..(i + 60).min(html.len())].to_owned());
            }
        }
    }
    for tag in ["<script src", "<link href", "<img src", "@import"] {
        if html.contains(tag) {
            bad.push(tag.to_owned());
        }
    }
    bad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_a_hello_deployment_and_says_when_it_ended() -> anyhow::Result<()> {
    const N: usize = 5;
    let (d, id, listener, pids) = hello(N).await?;
    let dash = Dashboard::start(d.data.path()).await?;

    // `/` lists the app, with a link that works.
    let (code, index) = dash.get("/").await?;
    assert_eq!(code, 200, "{index}");
    let rows = elements(&index, "tr", "deployment");
    assert_eq!(rows.len(), 1, "{index}");
    assert_eq!(
        (rows[0]["data-app"].as_str(), &rows[0]["data-id"]),
        ("hello", &id)
    );
    let link = format!("/deployment?id={id}");
    assert!(index.contains(&format!("href=\"{link}\"")), "{index}");

    let page = eventually(&dash, &link, |p| {
        check_deployment_page(p, &listener, &pids, N)
    })
    .await?;
    assert!(
        page.contains(&format!("id=\"deployment-id\">{id}<")),
        "{page}"
    );

    // Metrics as tables, and the Prometheus text behind the link.
    let (code, metrics) = dash.get(&format!("/metrics?id={id}")).await?;
    assert_eq!(code, 200, "{metrics}");
    assert!(
        metrics.contains("data-metric=\"serviceweaver_method_count\""),
        "{metrics}"
    );
    let (code, text) = dash.get(&format!("/prometheus?id={id}")).await?;
    assert_eq!(code, 200, "{text}");
    assert!(
        text.contains("# TYPE serviceweaver_method_count counter"),
        "{text}"
    );

    // Logs: a filter shows exactly the entries `weaver multi logs` prints.
    let filter = "component == \"hello::Reverser\" && msg == \"reversing\"";
    let logs_path = format!("/logs?id={id}&q={}", encode(filter));
    let logs = eventually(&dash, &logs_path, |p| {
        Ok(p.contains(&format!("data-matched=\"{N}\"")))
    })
    .await?;
    let rows = elements(&logs, "tr", "log");
    assert_eq!(rows.len(), N, "{logs}");
    assert!(
        rows.iter()
            .all(|r| r["data-component"] == "hello::Reverser"),
        "{logs}"
    );
    let cli = d
        .weaver(&[
            "multi",
            "logs",
            "--format=json",
            &format!("full_version == \"{id}\" && {filter}"),
        ])
        .await?;
    assert_eq!(String::from_utf8(cli.stdout)?.lines().count(), N);
    let (code, bad) = dash
        .get(&format!("/logs?id={id}&q={}", encode("msg ==")))
        .await?;
    assert_eq!(code, 400, "{bad}");
    assert!(bad.contains("id=\"query-error\""), "{bad}");

    // Nothing any page refers to leaves loopback.
    for page in [&index, &page, &metrics, &logs] {
        assert_eq!(external_references(page), Vec::<String>::new(), "{page}");
    }

    // Killed, the deployment's page says it ended (and its logs stay).
    let kids = d.children();
    d.signal(Signal::SIGKILL);
    for k in &kids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*k as i32), Signal::SIGKILL);
    }
    let mut all = kids.clone();
    all.push(d.pid());
    wait_gone(&all, DEADLINE).await?;
    let (code, ended) = dash.get(&link).await?;
    assert_eq!(code, 410, "{ended}");
    assert!(ended.contains("has ended"), "{ended}");
    assert!(ended.contains(&id), "{ended}");
    let (code, logs) = dash.get(&logs_path).await?;
    assert_eq!(code, 200, "{logs}");
    assert!(logs.contains(&format!("data-matched=\"{N}\"")), "{logs}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_without_deployments_and_with_bad_ids() -> anyhow::Result<()> {
    let data = TempDir::new("dashboard-empty")?;
    let dash = Dashboard::start(data.path()).await?;
    let (code, index) = dash.get("/").await?;
    assert_eq!(code, 200, "{index}");
    assert!(index.contains("id=\"no-deployments\""), "{index}");
    assert_eq!(external_references(&index), Vec::<String>::new());

    for (path, message) in [
        ("/deployment", "no deployment id provided".to_owned()),
        ("/deployment?id=", "no deployment id provided".to_owned()),
        (
            "/deployment?id=nope",
            "invalid deployment id &quot;nope&quot;".to_owned(),
        ),
        (
            "/metrics?id=%3Cb%3E",
            "invalid deployment id &quot;&lt;b&gt;&quot;".to_owned(),
        ),
        (
            "/logs?id=0123abcd-0000-4000-8000-000000000000",
            "unknown deployment id &quot;0123abcd-0000-4000-8000-000000000000&quot;".to_owned(),
        ),
    ] {
        let (code, page) = dash.get(path).await?;
        assert_eq!(code, 400, "{path}: {page}");
        assert!(page.contains(&message), "{path}: {page}");
    }
    assert_eq!(dash.get("/nope").await?.0, 404);
    Ok(())
}

/// Runs headless Chromium with `args` and returns its stdout.
async fn chromium(profile: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("chromium")
            .args(["--headless=new", "--no-sandbox", "--disable-gpu"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args([
                "--no-first-run",
                "--disable-extensions",
                "--hide-scrollbars",
            ])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("chromium took over 60s")?
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot run chromium ({e}): run scripts/install-test-deps.sh \
             (or the test command, scripts/test.sh) to install it"
        )
    })?;
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Where the screenshots go: the target directory.
fn screenshot(page: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .unwrap_or(tmp)
        .join(format!("dashboard-{page}.png"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() -> anyhow::Result<()> {
    const N: usize = 4;
    let (d, id, listener, pids) = hello(N).await?;
    let dash = Dashboard::start(d.data.path()).await?;
    let profile = TempDir::new("dashboard-chromium")?;
    let link = format!("/deployment?id={id}");
    // The counts reach the babysitter first; then the browser's DOM shows
    // them.
    eventually(&dash, &link, |p| {
        check_deployment_page(p, &listener, &pids, N)
    })
    .await?;
    let dom = chromium(profile.path(), &["--dump-dom", &dash.url(&link)]).await?;
    assert!(
        check_deployment_page(&dom, &listener, &pids, N)?,
        "the browser's DOM lacks the counts:\n{dom}"
    );
    assert!(dom.contains("<svg class=\"traffic\""), "{dom}");

    // A shop deployment beside it: `/` lists both apps, and both links work.
    let shop = shop(&d).await?;
    let shop_id = shop.id().context("shop's deployment id")?;
    let index = chromium(profile.path(), &["--dump-dom", &dash.url("/")]).await?;
    let rows = elements(&index, "tr", "deployment");
    let listed: BTreeMap<&str, &str> = rows
        .iter()
        .map(|r| (r["data-app"].as_str(), r["data-id"].as_str()))
        .collect();
    let want = BTreeMap::from([("hello", id.as_str()), ("shop", shop_id.as_str())]);
    assert_eq!(listed, want, "{index}");
    for id in [&id, &shop_id] {
        let link = format!("/deployment?id={id}");
        assert!(index.contains(&format!("href=\"{link}\"")), "{index}");
        let (code, page) = dash.get(&link).await?;
        assert_eq!(code, 200, "{page}");
    }
    // Shop's components call each other: its graph has edges.
    let shop_link = format!("/deployment?id={shop_id}");
    eventually(&dash, &shop_link, |p| {
        Ok(!elements(p, "g", "edge").is_empty())
    })
    .await?;
    let dom = chromium(profile.path(), &["--dump-dom", &dash.url(&shop_link)]).await?;
    assert!(!elements(&dom, "g", "edge").is_empty(), "{dom}");

    let filter = encode("msg == \"reversing\"");
    for (name, path) in [
        ("index", "/".to_owned()),
        ("deployment", link.clone()),
        ("metrics", format!("/metrics?id={id}")),
        ("logs", format!("/logs?id={id}&q={filter}")),
        ("shop", shop_link.clone()),
    ] {
        let file = screenshot(name);
        let _ = std::fs::remove_file(&file);
        let shot = format!("--screenshot={}", file.display());
        chromium(
            profile.path(),
            &[&shot, "--window-size=1280,1800", &dash.url(&path)],
        )
        .await?;
        let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "no screenshot of {name} at {}", file.display());
    }
    Ok(())
}

/// Runs hello directly (one process) with data directory `data`; returns
/// the child and its listener's address, read off its log on stderr.
async fn run_hello_directly(data: &Path) -> anyhow::Result<(Child, String)> {
    let mut app = Command::new(bins().bin("hello"))
        .env("WEAVER_DATA_DIR", data)
        .env_remove("SERVICEWEAVER_CONFIG")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut err = BufReader::new(app.stderr.take().context("stderr")?).lines();
    let addr = loop {
        let line = tokio::time::timeout(DEADLINE, err.next_line())
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
async fn single_dashboard_shows_a_run_of_hello() -> anyhow::Result<()> {
    const N: usize = 3;
    let data = TempDir::new("dashboard-single")?;
    let (mut app, listener) = run_hello_directly(data.path()).await?;
    let pid = app.id().context("hello's pid")?;
    for i in 0..N {
        let (code, body) = http_get(&listener, &format!("/hello?name=one{i}")).await?;
        assert_eq!(code, 200, "{body}");
    }
    let dash = Dashboard::start_tool(data.path(), "single").await?;
    let (code, index) = dash.get("/").await?;
    assert_eq!(code, 200, "{index}");
    let rows = elements(&index, "tr", "deployment");
    assert_eq!(rows.len(), 1, "{index}");
    let id = rows[0]["data-id"].clone();
    assert!(index.contains("weaver single dashboard"), "{index}");

    // One process hosts every component; Main's calls are local.
    let pids: ComponentPids = ["weaver::Main", "hello::Reverser"]
        .into_iter()
        .map(|c| (c.to_owned(), BTreeSet::from([pid])))
        .collect();
    let link = format!("/deployment?id={id}");
    let page = eventually(&dash, &link, |p| {
        check_deployment_page(p, &listener, &pids, N)
    })
    .await?;
    assert!(
        !page.contains("/logs?id="),
        "no logs page for single: {page}"
    );
    assert_eq!(external_references(&page), Vec::<String>::new(), "{page}");
    let (code, metrics) = dash.get(&format!("/metrics?id={id}")).await?;
    assert_eq!(code, 200, "{metrics}");
    assert!(
        metrics.contains("data-metric=\"hello_reversals_total\""),
        "{metrics}"
    );

    app.kill().await?;
    app.wait().await?;
    let (code, ended) = dash.get(&link).await?;
    assert_eq!(code, 410, "{ended}");
    assert!(ended.contains("has ended"), "{ended}");
    Ok(())
}

/// A loopback HTTP relay in front of the dashboard that holds every
/// request after the first for `path` until `release` is notified, and
/// notifies `served` once the first has been answered: the browser's first
/// load sees the live page, its refreshes wait for the test.
async fn relay(
    to: String,
    path: String,
    release: std::sync::Arc<tokio::sync::Notify>,
    served: std::sync::Arc<tokio::sync::Notify>,
) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (to, path, release) = (to.clone(), path.clone(), release.clone());
            let served = served.clone();
            let (seen, released) = (seen.clone(), released.clone());
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).into_owned();
                let target = text.split(' ').nth(1).unwrap_or("").to_owned();
                let first =
                    target == path && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
                if target == path && !first && !released.load(std::sync::atomic::Ordering::SeqCst) {
                    release.notified().await;
                    released.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                // One request per connection, so the reply ends at EOF.
                let (status, body) = match http_get(&to, &target).await {
                    Ok(reply) => reply,
                    Err(_) => return,
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: text/html; charset=utf-8\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(body.as_bytes()).await;
                let _ = conn.shutdown().await;
                if first {
                    served.notify_one();
                }
            });
        }
    });
    Ok(addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_left_open_in_chromium_says_when_its_deployment_ends() -> anyhow::Result<()> {
    let (d, id, _, _) = hello(1).await?;
    let dash = Dashboard::start(d.data.path()).await?;
    let profile = TempDir::new("dashboard-chromium-open")?;
    let path = format!("/deployment?id={id}");
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let served = std::sync::Arc::new(tokio::sync::Notify::new());
    let relay = relay(
        dash.addr.clone(),
        path.clone(),
        release.clone(),
        served.clone(),
    )
    .await?;
    // The page re-fetches itself every 5 s of (virtual) time; the relay holds
    // that refresh until the deployment is dead.
    let browser = {
        let (profile, url) = (profile.path().to_owned(), format!("http://{relay}{path}"));
        tokio::spawn(async move {
            chromium(
                &profile,
                &["--virtual-time-budget=7000", "--dump-dom", &url],
            )
            .await
        })
    };
    tokio::time::timeout(DEADLINE, served.notified())
        .await
        .context("chromium never loaded the page")?;
    let kids = d.children();
    d.signal(Signal::SIGKILL);
    for k in &kids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*k as i32), Signal::SIGKILL);
    }
    let mut all = kids.clone();
    all.push(d.pid());
    wait_gone(&all, DEADLINE).await?;
    release.notify_one();
    let dom = browser.await??;
    // The page was swapped by its script (data-updates) for the ended page.
    assert!(
        dom.contains("data-updates=\""),
        "the page never refreshed:\n{dom}"
    );
    assert!(dom.contains("has ended"), "{dom}");
    assert!(!dom.contains("class=\"component\""), "{dom}");
    Ok(())
}
