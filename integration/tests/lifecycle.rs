//! Traffic and lifecycle: the proxy spreads load, ctrl-c tears down
//! cleanly, SIGKILL leaves no orphans, dead replicas are replaced.

use std::collections::BTreeSet;
use std::time::Duration;

use nix::sys::signal::Signal;
use weaver_integration::{Deployment, bins, children_of, config, http_get, pid_alive, wait_gone};

fn kill9(pid: u32) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
}

/// Bytes process `pid` has written (all descriptors), from /proc.
fn written(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_spreads_requests_over_both_main_replicas() -> anyhow::Result<()> {
    let d = Deployment::start(&config("hello", &bins().bin("hello"), "")).await?;
    d.ready().await?;
    let addr = d.listener("hello").await?;
    assert_eq!(http_get(&addr, "/hello?name=warm").await?.0, 200);
    let mains: Vec<u32> = d.status().await?.pids("weaver::Main").into_iter().collect();
    assert_eq!(mains.len(), 2);
    let before: Vec<u64> = mains.iter().map(|p| written(*p)).collect();
    for i in 0..1000 {
        let (status, body) = http_get(&addr, &format!("/hello?name={i}")).await?;
        assert_eq!(status, 200, "{body}");
    }
    // Each request costs a Main replica the same bytes written (the
    // response and its Reverser call), so the shares of bytes are the
    // shares of requests.
    let deltas: Vec<f64> = mains
        .iter()
        .zip(&before)
        .map(|(p, b)| (written(*p) - b) as f64)
        .collect();
    let total: f64 = deltas.iter().sum();
    for (pid, d) in mains.iter().zip(&deltas) {
        let share = d / total;
        assert!(
            (0.4..=0.6).contains(&share),
            "replica {pid} served {:.0}% of requests",
            share * 100.0
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_finishes_in_flight_requests_then_removes_everything() -> anyhow::Result<()> {
    let mut d = Deployment::start(&config("probe", &bins().bin("probe"), "")).await?;
    d.ready().await?;
    let addr = d.listener("http").await?;
    let runtime_dir = d.runtime_dir()?;
    assert!(runtime_dir.exists(), "{}", runtime_dir.display());
    let kids = d.children();
    assert_eq!(kids.len(), 2);

    let slow = tokio::spawn({
        let addr = addr.clone();
        async move { http_get(&addr, "/slow?ms=1500").await }
    });
    d.stdout
        .wait_for("the slow request", |l| l.contains("slow request started"))
        .await?;
    d.signal(Signal::SIGINT);
    let (status, body) = slow.await??;
    assert_eq!((status, body.as_str()), (200, "slept 1500"));
    assert_eq!(d.wait().await?, 130);
    wait_gone(&kids, Duration::from_secs(5)).await?;
    assert!(
        !runtime_dir.exists(),
        "runtime dir left: {}",
        runtime_dir.display()
    );
    let registry = d.data.path().join("multi/registry");
    assert_eq!(
        std::fs::read_dir(&registry)?.count(),
        0,
        "registration left"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_babysitter_leaves_no_process_behind() -> anyhow::Result<()> {
    let d = Deployment::start(&config("hello", &bins().bin("hello"), "")).await?;
    d.ready().await?;
    let addr = d.listener("hello").await?;
    assert_eq!(http_get(&addr, "/hello?name=x").await?.0, 200);
    d.group_started("hello::Reverser").await?;
    let kids = d.children();
    assert_eq!(kids.len(), 4);
    d.signal(Signal::SIGKILL);
    wait_gone(&kids, Duration::from_secs(2)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_reverser_is_replaced_under_load_and_routing_moves_on() -> anyhow::Result<()> {
    let d = Deployment::start(&config("hello", &bins().bin("hello"), "")).await?;
    d.ready().await?;
    let addr = d.listener("hello").await?;
    assert_eq!(http_get(&addr, "/hello?name=x").await?.0, 200);
    d.group_started("hello::Reverser").await?;
    let old: BTreeSet<u32> = d.status().await?.pids("hello::Reverser");
    let victim = *old.iter().next().expect("a reverser");

    // Steady load while the replica dies and comes back.
    let load = tokio::spawn({
        let addr = addr.clone();
        async move {
            let mut failures = 0;
            for i in 0..300 {
                match http_get(&addr, &format!("/hello?name={i}")).await {
                    Ok((200, _)) => {}
                    _ => failures += 1,
                }
            }
            failures
        }
    });
    kill9(victim);
    let exited = format!("(pid {victim}) exited");
    d.stdout
        .wait_for("the exit report", |l| l.contains(&exited))
        .await?;
    d.stdout
        .wait_for("the restart", |l| {
            l.contains("of group hello::Reverser restarted")
        })
        .await?;
    let failures_during = load.await?;
    // Every call that hit the dead replica was retried on the other one.
    assert_eq!(
        failures_during, 0,
        "requests failed while a replica was replaced"
    );

    let new: BTreeSet<u32> = d.status().await?.pids("hello::Reverser");
    assert_eq!(new.len(), 2);
    assert!(!new.contains(&victim));
    // Subscribers were pushed a newer routing version with both replicas.
    let out = d
        .weaver(&[
            "multi",
            "logs",
            "--system",
            r#"msg.startsWith("routing of hello::Reverser")"#,
        ])
        .await?;
    let versions: Vec<u64> = String::from_utf8(out.stdout)?
        .lines()
        .filter_map(|l| l.split("routing of hello::Reverser is now version ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    // Pushed on start, on the death and on the replacement: never going
    // back, and ending higher than before the kill.
    assert!(versions.len() >= 3, "{versions:?}");
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "{versions:?}");
    assert!(versions.last() > versions.first(), "{versions:?}");
    for i in 0..100 {
        let (status, body) = http_get(&addr, &format!("/hello?name=after{i}")).await?;
        assert_eq!(status, 200, "{body}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_main_replica_gets_no_more_traffic() -> anyhow::Result<()> {
    let d = Deployment::start(&config("probe", &bins().bin("probe"), "")).await?;
    d.ready().await?;
    let addr = d.listener("http").await?;
    let mut mains = BTreeSet::new();
    for _ in 0..20 {
        let (_, pid) = http_get(&addr, "/pid").await?;
        mains.insert(pid.parse::<u32>()?);
    }
    assert_eq!(mains.len(), 2, "both Main replicas serve");
    let victim = *mains.iter().next().expect("a main");
    kill9(victim);
    // From the moment it died, no request fails and none reaches it.
    for _ in 0..50 {
        let (status, pid) = http_get(&addr, "/pid").await?;
        assert_eq!(status, 200);
        assert_ne!(pid.parse::<u32>()?, victim);
    }
    assert!(!pid_alive(victim));
    Ok(())
}

#[tokio::test]
async fn a_listener_address_in_use_stops_the_deployment() -> anyhow::Result<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?;
    let text = config(
        "hello",
        &bins().bin("hello"),
        &format!("[multi]\nlisteners.hello = {{ address = \"{addr}\" }}"),
    );
    let mut d = Deployment::start(&text).await?;
    let code = d.wait().await?;
    assert_eq!(code, 1);
    let stderr = d.stderr.all().join("\n");
    assert!(
        stderr.contains(&format!("listener \"hello\" cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(children_of(d.pid()).is_empty());
    drop(taken);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_never_stops_the_deployment_when_a_replica_dies() -> anyhow::Result<()> {
    let mut d = Deployment::start(&config(
        "probe",
        &bins().bin("probe"),
        "[multi]\nrestart = \"never\"",
    ))
    .await?;
    d.ready().await?;
    let addr = d.listener("http").await?;
    let worker: u32 = http_get(&addr, "/worker?key=a").await?.1.parse()?;
    let kids = d.children();
    kill9(worker);
    assert_eq!(d.wait().await?, 1);
    let stderr = d.stderr.all().join("\n");
    assert!(
        stderr.contains(&format!(
            "(pid {worker}) exited: killed by signal 9 (SIGKILL)"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("restart = \"never\" stops the deployment"),
        "{stderr}"
    );
    wait_gone(&kids, Duration::from_secs(5)).await?;
    Ok(())
}
