//! The richer examples under the real deployer: routing, colocation,
//! component config, replica counts, and the custom deployer.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use serde_json::Value;
use weaver_integration::{Deployment, bins, config, http_get};

/// The shop's weaver.toml with its binary pointed at the test build.
fn shop_config(extra: &str) -> String {
    config(
        "shop",
        &bins().bin("shop"),
        &format!(
            "colocate = [[\"shop::Pricing\", \"shop::Inventory\"]]\n[multi]\n{extra}\n[\"shop::Pricing\"]\ncurrency = \"EUR\"\nmarkup_percent = 10\n"
        ),
    )
}

async fn get_json(addr: &str, path: &str) -> anyhow::Result<Value> {
    let (status, body) = http_get(addr, path).await?;
    anyhow::ensure!(status == 200, "{path}: {status} {body}");
    Ok(serde_json::from_str(&body)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_routes_keys_colocates_groups_and_reads_its_config() -> anyhow::Result<()> {
    shop_end_to_end("").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_over_tcp_routes_keys_colocates_groups_and_reads_its_config() -> anyhow::Result<()> {
    shop_end_to_end("transport = \"tcp\"").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_over_tcp_calls_reverser_replicas_listening_on_tcp() -> anyhow::Result<()> {
    let text = config(
        "hello",
        &bins().bin("hello"),
        "[multi]\ntransport = \"tcp\"\n",
    );
    let d = Deployment::start(&text).await?;
    d.ready().await?;
    let addr = d.listener("hello").await?;
    for i in 0..6 {
        let (status, body) = http_get(&addr, &format!("/hello?name=ab{i}")).await?;
        assert_eq!((status, body), (200, format!("Hello, {i}ba!")));
    }
    d.group_started("hello::Reverser").await?;
    let status = d.status().await?;
    let reverser = status.pids("hello::Reverser");
    assert_eq!(reverser.len(), 2, "{status:?}");
    // A Reverser has no listener of its own: a TCP socket it listens on
    // is its component RPC server, on loopback.
    for pid in reverser {
        let ports = tcp_listen_ports(pid)?;
        assert_eq!(ports.len(), 1, "replica {pid} listens on {ports:?}");
    }
    Ok(())
}

/// The loopback TCP ports process `pid` listens on (from /proc).
fn tcp_listen_ports(pid: u32) -> anyhow::Result<Vec<u16>> {
    let mut inodes = BTreeSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let link = std::fs::read_link(fd?.path()).unwrap_or_default();
        let link = link.to_string_lossy();
        if let Some(inode) = link
            .strip_prefix("socket:[")
            .and_then(|l| l.strip_suffix(']'))
        {
            inodes.insert(inode.to_owned());
        }
    }
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp"))?;
    let mut ports = Vec::new();
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st … inode (column 9); 0A = LISTEN.
        let (Some(local), Some(state), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
        else {
            continue;
        };
        if *state == "0A" && inodes.contains(*inode) {
            let (ip, port) = local.split_once(':').context("local address")?;
            assert_eq!(ip, "0100007F", "listens on loopback only: {line}");
            ports.push(u16::from_str_radix(port, 16)?);
        }
    }
    Ok(ports)
}

/// The shop's routing, colocation and config checks, with `extra` in its
/// `[multi]` section.
async fn shop_end_to_end(extra: &str) -> anyhow::Result<()> {
    let d = Deployment::start(&shop_config(extra)).await?;
    d.ready().await?;
    let addr = d.listener("shop").await?;

    // The config section reaches Pricing.
    let cfg = get_json(&addr, "/config").await?;
    assert_eq!(
        (cfg["currency"].as_str(), cfg["markup_percent"].as_u64()),
        (Some("EUR"), Some(10))
    );

    // Colocated components share a process, on every call.
    for _ in 0..10 {
        let p = get_json(&addr, "/price?item=apple").await?;
        assert_eq!(p["pricing_pid"], p["inventory_pid"], "{p}");
        assert_eq!(p["currency"], "EUR");
    }

    // Warm up the Cache group so its replica set is stable, then: a key
    // lands on the same replica every time.
    get_json(&addr, "/cache/get?key=warm").await?;
    d.group_started("shop::Cache").await?;
    let mut owners: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..16 {
        let key = format!("k{i}");
        let put = get_json(&addr, &format!("/cache/put?key={key}&value=v{i}")).await?;
        owners.insert(key, put["pid"].as_u64().unwrap_or(0));
    }
    for round in 0..3 {
        for (key, owner) in &owners {
            let got = get_json(&addr, &format!("/cache/get?key={key}")).await?;
            assert_eq!(
                got["pid"].as_u64(),
                Some(*owner),
                "round {round}, key {key}: {got}"
            );
            assert!(got["value"].as_str().is_some(), "{got}");
        }
    }
    // Both replicas own some keys.
    let distinct: BTreeSet<u64> = owners.values().copied().collect();
    assert_eq!(distinct.len(), 2, "{owners:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_three_gives_three_processes_per_group() -> anyhow::Result<()> {
    let d = Deployment::start(&shop_config("replicas = 3")).await?;
    d.ready().await?;
    let addr = d.listener("shop").await?;
    get_json(&addr, "/price?item=apple").await?;
    get_json(&addr, "/cache/get?key=x").await?;
    d.group_started("shop::Pricing").await?;
    d.group_started("shop::Cache").await?;
    // Main, Pricing+Inventory and Cache: three groups of three.
    assert_eq!(d.children().len(), 9, "{:?}", d.children());
    let status = d.status().await?;
    for comp in [
        "weaver::Main",
        "shop::Cache",
        "shop::Pricing",
        "shop::Inventory",
    ] {
        assert_eq!(status.pids(comp).len(), 3, "{comp}: {status:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_custom_deployer_runs_hello() -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(bins().bin("custom-deployer"))
        .arg(bins().bin("hello"))
        .args(["--listen", &addr])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
    // Ready once the app logs its listener.
    loop {
        let line = tokio::time::timeout(weaver_integration::DEADLINE, lines.next_line()).await??;
        let Some(line) = line else {
            anyhow::bail!("custom-deployer exited early")
        };
        if line.contains("hello listener available") {
            break;
        }
    }
    assert_eq!(
        http_get(&addr, "/hello?name=Weaver").await?,
        (200, "Hello, revaeW!".to_string())
    );
    let pid = child.id().unwrap_or(0);
    let kids = weaver_integration::children_of(pid);
    assert_eq!(kids.len(), 1, "one process runs every component");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )?;
    tokio::time::timeout(weaver_integration::DEADLINE, child.wait()).await??;
    weaver_integration::wait_gone(&kids, std::time::Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_reservations_are_counted_once_per_process() -> anyhow::Result<()> {
    let d = Deployment::start(&shop_config("")).await?;
    d.ready().await?;
    let addr = d.listener("shop").await?;
    for n in [2, 3] {
        get_json(&addr, &format!("/reserve?item=apple&n={n}")).await?;
    }
    // Main calls Pricing, which calls Inventory in its own process.
    get_json(&addr, "/price?item=apple").await?;
    let status = d.status().await?;
    let processes: BTreeSet<_> = status
        .components
        .iter()
        .flat_map(|c| c.replicas.iter().map(|r| r.weavelet_id.clone()))
        .collect();
    let out = d
        .weaver(&["multi", "metrics", "--format=json", "^shop_"])
        .await?;
    anyhow::ensure!(out.status.success(), "{out:?}");
    let doc: Value = serde_json::from_slice(&out.stdout)?;
    let ours = doc["deployments"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|x| x["deployment_id"] == status.deployment_id.as_str())
        })
        .ok_or_else(|| anyhow::anyhow!("our deployment in {doc}"))?;
    let series = |name: &str| -> Vec<Value> {
        ours["metrics"]
            .as_array()
            .map(|all| all.iter().filter(|m| m["name"] == name).cloned().collect())
            .unwrap_or_default()
    };
    let sum = |name: &str| -> f64 {
        series(name)
            .iter()
            .filter_map(|m| m["value"].as_f64())
            .sum()
    };
    assert_eq!(sum("shop_reservations_total"), 2.0, "{doc}");
    assert_eq!(sum("shop_reserved_units"), 5.0, "{doc}");
    // Pricing and Inventory share processes; each process reports once.
    assert_eq!(
        series("shop_reservations_total").len(),
        processes.len(),
        "{doc}"
    );

    // Each call counted once, by its caller; the colocated call is local.
    let out = d
        .weaver(&[
            "multi",
            "metrics",
            "--format=json",
            "^serviceweaver_method_count$",
        ])
        .await?;
    anyhow::ensure!(out.status.success(), "{out:?}");
    let doc: Value = serde_json::from_slice(&out.stdout)?;
    let mut calls: BTreeMap<String, f64> = BTreeMap::new();
    for d in doc["deployments"].as_array().into_iter().flatten() {
        if d["deployment_id"] != status.deployment_id.as_str() {
            continue;
        }
        for m in d["metrics"].as_array().into_iter().flatten() {
            let l = &m["labels"];
            let key = format!(
                "{} -> {}.{} remote={}",
                l["caller"].as_str().unwrap_or(""),
                l["component"].as_str().unwrap_or(""),
                l["method"].as_str().unwrap_or(""),
                l["remote"].as_str().unwrap_or("")
            );
            *calls.entry(key).or_default() += m["value"].as_f64().unwrap_or(0.0);
        }
    }
    let want: BTreeMap<String, f64> = [
        ("shop::Pricing -> shop::Inventory.stock remote=false", 1.0),
        ("weaver::Main -> shop::Inventory.reserve remote=true", 2.0),
        ("weaver::Main -> shop::Pricing.quote remote=true", 1.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    // Every method of a component a caller resolved has a series, 0 until
    // called (as in Go): Main reached Inventory for `reserve`, so its
    // never-called `stock` is there too.
    let (called, zero): (BTreeMap<_, _>, BTreeMap<_, _>) =
        calls.into_iter().partition(|(_, v)| *v != 0.0);
    assert_eq!(called, want, "{doc}");
    assert!(
        zero.contains_key("weaver::Main -> shop::Inventory.stock remote=true"),
        "{zero:?}"
    );
    Ok(())
}
