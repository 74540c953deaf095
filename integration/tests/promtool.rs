//! The Prometheus text of a live shop deployment, as Prometheus's own
//! `promtool check metrics` reads it, and checked for histogram coherence.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::AsyncWriteExt as _;
use weaver_integration::{Deployment, bins, config, http_get};

/// What `promtool check metrics` says of the shop's page and we keep, each
/// listed with its reason in the README's "promtool findings": Go's names,
/// kept so that dashboards written for Service Weaver keep working.
const KEPT_LINTS: [&str; 8] = [
    "serviceweaver_method_count counter metrics should have \"_total\" suffix",
    "serviceweaver_method_count non-histogram and non-summary metrics should not have \"_count\" suffix",
    "serviceweaver_method_error_count counter metrics should have \"_total\" suffix",
    "serviceweaver_method_error_count non-histogram and non-summary metrics should not have \"_count\" suffix",
    "serviceweaver_http_request_count counter metrics should have \"_total\" suffix",
    "serviceweaver_http_request_count non-histogram and non-summary metrics should not have \"_count\" suffix",
    "serviceweaver_http_error_count counter metrics should have \"_total\" suffix",
    "serviceweaver_http_error_count non-histogram and non-summary metrics should not have \"_count\" suffix",
];

/// Runs `promtool check metrics` on `page`: its exit code and its findings.
async fn promtool_check(page: &str) -> anyhow::Result<(Option<i32>, String)> {
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run promtool ({e}): run scripts/install-test-deps.sh \
                 (or the test command, scripts/test.sh) to install it"
            )
        })?;
    let mut stdin = child.stdin.take().context("promtool's stdin")?;
    stdin.write_all(page.as_bytes()).await?;
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .context("promtool took over 30s")??;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code(), text))
}

/// A histogram series' `+Inf` bucket and `_count`, as read.
type InfAndCount = [Option<f64>; 2];

/// Every histogram series' `+Inf` bucket and `_count`, keyed by
/// (name, labels without `le`).
fn inf_and_count(page: &str) -> anyhow::Result<BTreeMap<(String, String), InfAndCount>> {
    let mut histograms = Vec::new();
    let mut found: BTreeMap<(String, String), InfAndCount> = BTreeMap::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" histogram") {
                histograms.push(name.to_owned());
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').context("a sample has a value")?;
        let value: f64 = value.parse().with_context(|| format!("value of {line}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        for h in &histograms {
            if name == format!("{h}_bucket") && labels.ends_with("le=\"+Inf\"") {
                let rest = labels.trim_end_matches("le=\"+Inf\"").trim_end_matches(',');
                found.entry((h.clone(), rest.to_owned())).or_default()[0] = Some(value);
            } else if name == format!("{h}_count") {
                found.entry((h.clone(), labels.to_owned())).or_default()[1] = Some(value);
            }
        }
    }
    Ok(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_parses_a_live_shops_metrics_and_inf_buckets_equal_counts() -> anyhow::Result<()> {
    let extra = "colocate = [[\"shop::Pricing\", \"shop::Inventory\"]]\n[\"shop::Pricing\"]\ncurrency = \"EUR\"\nmarkup_percent = 10\n";
    let d = Deployment::start(&config("shop", &bins().bin("shop"), extra)).await?;
    d.ready().await?;
    let addr = d.listener("shop").await?;
    // Remote and local calls, so method counts and histograms have samples.
    for i in 0..5 {
        for path in [
            format!("/cache/put?key=k{i}&value=v{i}"),
            format!("/cache/get?key=k{i}"),
            "/price?item=apple".to_owned(),
            "/reserve?item=apple&n=1".to_owned(),
        ] {
            let (status, body) = http_get(&addr, &path).await?;
            assert_eq!(status, 200, "{path}: {body}");
        }
    }
    let status = d.status().await?;
    let status_addr = status.status_addr.clone().context("a status address")?;
    let (code, page) = http_get(&status_addr, "/debug/weaver/prometheus").await?;
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("serviceweaver_method_latency_micros_bucket"),
        "histograms are populated: {page}"
    );

    // promtool exits 0 when clean, 3 on lint findings and 1 on a parse
    // error ("error while linting: text format parsing error …").
    let (code, lint) = promtool_check(&page).await?;
    eprintln!("promtool check metrics (exit {code:?}):\n{lint}");
    assert!(matches!(code, Some(0 | 3)), "promtool: {lint}\n{page}");
    assert!(!lint.contains("error while linting"), "{lint}\n{page}");
    let unexpected: Vec<&str> = lint
        .lines()
        .filter(|l| !l.is_empty() && !KEPT_LINTS.contains(l))
        .collect();
    assert!(
        unexpected.is_empty(),
        "new promtool findings: fix them or list them in KEPT_LINTS and the README: {unexpected:?}\n{page}"
    );

    let histograms = inf_and_count(&page)?;
    assert!(!histograms.is_empty(), "{page}");
    for ((name, labels), [inf, count]) in &histograms {
        assert!(
            inf.is_some(),
            "{name}{{{labels}}} has a +Inf bucket: {page}"
        );
        assert_eq!(inf, count, "{name}{{{labels}}}: +Inf bucket vs _count");
    }
    Ok(())
}
