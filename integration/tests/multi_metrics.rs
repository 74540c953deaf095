//! Metrics under `weaver multi deploy`: what the app's replicas count
//! reaches the babysitter's Prometheus page, each process once.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use weaver_integration::{Deployment, TempDir, bins, config, http_get, weaver_in};

/// The `bank_deposits_total` samples of a Prometheus page, as (labels, value).
fn deposits(page: &str) -> anyhow::Result<Vec<(String, f64)>> {
    page.lines()
        .filter(|l| l.starts_with("bank_deposits_total"))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').context("a sample has a value")?;
            let labels = series.trim_start_matches("bank_deposits_total").to_owned();
            Ok((labels, value.parse()?))
        })
        .collect()
}

/// `weaver multi metrics --format=json REGEX`: the whole document, and
/// the metrics of deployment `d` in it.
async fn our_metrics(
    d: &Deployment,
    regex: &str,
) -> anyhow::Result<(serde_json::Value, Vec<serde_json::Value>)> {
    let out = d
        .weaver(&["multi", "metrics", "--format=json", regex])
        .await?;
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let id = d.id().context("a deployment id")?;
    let ours = doc["deployments"]
        .as_array()
        .and_then(|all| all.iter().find(|x| x["deployment_id"] == id.as_str()))
        .with_context(|| format!("our deployment in {doc}"))?;
    let metrics = ours["metrics"].as_array().context("metrics")?.clone();
    Ok((doc, metrics))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_counter_summed_over_replicas_counts_every_request() -> anyhow::Result<()> {
    // Bank and Audit share a group of two replicas: each process must be
    // polled once, not once per component it hosts.
    let extra = "colocate = [[\"bank::Bank\", \"bank::Audit\"]]\n[multi]\nreplicas = 2";
    let d = Deployment::start(&config("bank", &bins().bin("bank"), extra)).await?;
    d.ready().await?;
    let addr = d.listener("http").await?;
    const N: usize = 12;
    for i in 0..N {
        let (status, body) = http_get(&addr, &format!("/deposit?account=a{i}&amount=1")).await?;
        assert_eq!(status, 200, "deposit {i}: {body}");
    }
    let status = d.status().await?;
    let status_addr = status.status_addr.clone().context("a status address")?;
    let processes: BTreeSet<_> = status
        .components
        .iter()
        .flat_map(|c| c.replicas.iter().map(|r| r.weavelet_id.clone()))
        .collect();
    assert_eq!(status.pids("bank::Bank").len(), 2, "{status:?}");

    // The deploy box says where to scrape.
    let scrape = format!("metrics    : http://{status_addr}/debug/weaver/prometheus");
    assert!(
        d.stdout.all().iter().any(|l| l.contains(&scrape)),
        "{:?}",
        d.stdout.all()
    );

    let (code, page) = http_get(&status_addr, "/debug/weaver/prometheus").await?;
    assert_eq!(code, 200, "{page}");
    let each = deposits(&page)?;
    // One series per process, told apart by its (shortened) weavelet id;
    // every process links the counter, so Main reports it at 0.
    let nodes: BTreeSet<_> = processes
        .iter()
        .map(|id| format!("{{serviceweaver_node=\"{}\"}}", &id[..8]))
        .collect();
    let labels: BTreeSet<_> = each.iter().map(|(l, _)| l.clone()).collect();
    assert_eq!(labels, nodes, "{page}");
    assert_eq!(each.len(), processes.len(), "{page}");
    let total: f64 = each.iter().map(|(_, v)| v).sum();
    assert_eq!(total, N as f64, "{page}");

    // The babysitter's own sum agrees, and a second poll (deltas only)
    // keeps the totals.
    let (code, summed) = http_get(&status_addr, "/debug/weaver/prometheus?replicas=sum").await?;
    assert_eq!(code, 200, "{summed}");
    assert_eq!(deposits(&summed)?, [(String::new(), N as f64)], "{summed}");

    // `weaver multi metrics` reads the same series.
    let (doc, metrics) = our_metrics(&d, "deposit").await?;
    assert!(
        metrics.iter().all(|m| m["name"] == "bank_deposits_total"),
        "the regex keeps only matching names: {doc}"
    );
    let total: f64 = metrics.iter().filter_map(|m| m["value"].as_f64()).sum();
    assert_eq!((metrics.len(), total), (processes.len(), N as f64), "{doc}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_with_a_bad_regex_is_a_usage_error_naming_it() -> anyhow::Result<()> {
    let data = TempDir::new("metrics-regex")?;
    let out = weaver_in(data.path(), &["multi", "metrics", "bank_("]).await?;
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid regexp \"bank_(\""), "{stderr}");
    // With nothing running, the table is a sentence.
    let out = weaver_in(data.path(), &["multi", "metrics"]).await?;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "No deployments are running.\n"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_counts_and_measures_what_it_reverses() -> anyhow::Result<()> {
    let d = Deployment::start(&config("hello", &bins().bin("hello"), "")).await?;
    d.ready().await?;
    let addr = d.listener("hello").await?;
    let names = ["Weaver", "ab", "abcdefghijkl"];
    for name in names {
        let (status, body) = http_get(&addr, &format!("/hello?name={name}")).await?;
        assert_eq!(status, 200, "{body}");
    }
    let (doc, metrics) = our_metrics(&d, "^hello_").await?;
    let series = |name: &str| -> Vec<&serde_json::Value> {
        metrics.iter().filter(|m| m["name"] == name).collect()
    };
    let sum = |name: &str| -> f64 {
        series(name)
            .iter()
            .filter_map(|m| m["value"].as_f64())
            .sum()
    };
    assert_eq!(sum("hello_reversals_total"), names.len() as f64, "{doc}");
    // The histogram's sum is the characters reversed (6 + 2 + 12); of its
    // buckets (le 1, 2, 5, 10, 20, 50, 100, +Inf), le 2, 10 and 20 hold
    // one string each.
    assert_eq!(sum("hello_reversed_length"), 20.0, "{doc}");
    let mut counts = vec![0; 8];
    for m in series("hello_reversed_length") {
        for (i, c) in m["counts"].as_array().into_iter().flatten().enumerate() {
            counts[i] += c.as_u64().unwrap_or(0);
        }
    }
    assert_eq!(counts, [0, 1, 0, 1, 1, 0, 0, 0], "{doc}");

    // The stubs counted each call once, in the calling process: Main's
    // remote calls of Reverser.reverse, none failed, none local.
    let (doc, metrics) = our_metrics(&d, "^serviceweaver_method_").await?;
    let mut calls: std::collections::BTreeMap<(String, String, String, String), f64> =
        std::collections::BTreeMap::new();
    let mut errors = 0.0;
    let mut request_bytes = 0;
    for m in &metrics {
        let label = |k: &str| m["labels"][k].as_str().unwrap_or("").to_owned();
        assert_eq!(label("serviceweaver_generated"), "true", "{m}");
        let key = (
            label("caller"),
            label("component"),
            label("method"),
            label("remote"),
        );
        match m["name"].as_str() {
            Some("serviceweaver_method_count") => {
                *calls.entry(key).or_default() += m["value"].as_f64().unwrap_or(0.0);
            }
            Some("serviceweaver_method_error_count") => {
                errors += m["value"].as_f64().unwrap_or(0.0);
            }
            Some("serviceweaver_method_bytes_request") => {
                let counts = m["counts"].as_array().into_iter().flatten();
                request_bytes += counts.filter_map(serde_json::Value::as_u64).sum::<u64>();
            }
            _ => {}
        }
    }
    let reverse = (
        "weaver::Main".to_owned(),
        "hello::Reverser".to_owned(),
        "reverse".to_owned(),
        "true".to_owned(),
    );
    let want: std::collections::BTreeMap<_, _> = [(reverse, names.len() as f64)].into();
    assert_eq!(calls, want, "{doc}");
    assert_eq!(errors, 0.0, "{doc}");
    // One request size recorded per remote call.
    assert_eq!(request_bytes, names.len() as u64, "{doc}");

    // The listener's handler is instrumented: every request through the
    // proxy is counted once, in the replica that served it, and a 404 is
    // an error with its code.
    assert_eq!(http_get(&addr, "/nope").await?.0, 404);
    let (doc, metrics) = our_metrics(&d, "^serviceweaver_http_").await?;
    let (mut requests, mut errors, mut timed) = (0.0, BTreeMap::new(), 0);
    for m in &metrics {
        let label = |k: &str| m["labels"][k].as_str().unwrap_or("").to_owned();
        assert_eq!(label("label"), "hello", "{m}");
        let value = m["value"].as_f64().unwrap_or(0.0);
        match m["name"].as_str() {
            Some("serviceweaver_http_request_count") => {
                assert_eq!(label("serviceweaver_generated"), "", "{m}");
                requests += value;
            }
            Some("serviceweaver_http_error_count") => {
                *errors.entry(label("code")).or_insert(0.0) += value;
            }
            Some("serviceweaver_http_request_latency_micros") => {
                let counts = m["counts"].as_array().into_iter().flatten();
                timed += counts.filter_map(serde_json::Value::as_u64).sum::<u64>();
            }
            _ => {}
        }
    }
    assert_eq!(requests, names.len() as f64 + 1.0, "{doc}");
    assert_eq!(errors, BTreeMap::from([("404".to_owned(), 1.0)]), "{doc}");
    assert_eq!(timed, names.len() as u64 + 1, "{doc}");
    Ok(())
}
