//! What `weaver multi metrics` prints: every live deployment's metrics,
//! those whose name matches a regular expression, as tables, JSON or
//! Prometheus text.
//!
//! Each babysitter polls its replicas when asked and serves their series
//! as JSON; this module only fetches, filters and prints.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use comfy_table::{ContentArrangement, Table};
use regex::Regex;
use serde::Serialize;
use weaver_babysitter::{Metric, MetricKind, PROMETHEUS_PATH, Registry};

use crate::UsageError;
use crate::status::{self, STYLE, short_component, short_id};

/// How long a babysitter may take to answer; it gives each replica 2 s.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the liveness check of each registration may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// Printed instead of tables when no deployment runs.
pub(crate) const NOTHING_RUNS: &str = "No deployments are running.\n";

/// How `metrics` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Format {
    /// One table per metric, for people.
    #[default]
    Table,
    /// One JSON document for scripts: {"deployments": [{app,
    /// deployment_id, status_addr, metrics: [{name, type, help, labels,
    /// value, bounds, counts}]}]}.
    Json,
    /// The Prometheus text format, as the status server serves it.
    Prometheus,
}

/// One deployment's metrics.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Deployed {
    /// The app's name.
    pub(crate) app: String,
    /// The deployment id.
    pub(crate) deployment_id: String,
    /// Where its status server listens.
    pub(crate) status_addr: SocketAddr,
    /// Its series, one per replica and label set.
    pub(crate) metrics: Vec<Metric>,
}

/// The JSON document.
#[derive(Serialize)]
struct Document<'a> {
    deployments: &'a [Deployed],
}

/// The filter of `regex`: unanchored, on the metric's name.
///
/// # Errors
///
/// [`UsageError`] naming `regex` if it does not parse.
pub(crate) fn filter(regex: Option<&str>) -> Result<Option<Regex>, UsageError> {
    regex
        .map(|re| Regex::new(re).map_err(|e| UsageError(format!("invalid regexp {re:?}: {e}"))))
        .transpose()
}

/// Where one deployment's (or single-process run's) metrics are served.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The app's name.
    pub(crate) app: String,
    /// The deployment id.
    pub(crate) deployment_id: String,
    /// The address serving [`weaver_babysitter::METRICS_PATH`].
    pub(crate) addr: SocketAddr,
}

/// The metrics of every live deployment whose name `filter` matches. A
/// deployment that does not answer is skipped with a warning.
///
/// # Errors
///
/// If the registry cannot be read.
pub(crate) async fn collect(
    registry: &Registry,
    filter: Option<&Regex>,
) -> anyhow::Result<Vec<Deployed>> {
    let mut sources = Vec::new();
    for d in status::live(registry, STATUS_TIMEOUT).await? {
        let Ok(st) = d.status else { continue };
        sources.push(Source {
            app: st.app,
            deployment_id: st.deployment_id,
            addr: d.registration.status_addr,
        });
    }
    Ok(fetch(sources, filter).await)
}

/// The metrics `sources` serve whose name `filter` matches, fetched at
/// once. A source that does not answer is skipped with a warning.
pub(crate) async fn fetch(sources: Vec<Source>, filter: Option<&Regex>) -> Vec<Deployed> {
    let fetches = sources.into_iter().map(|s| async move {
        let fetched = status::fetch_metrics(s.addr, FETCH_TIMEOUT).await;
        (s, fetched)
    });
    let mut out = Vec::new();
    for (s, fetched) in futures_util::future::join_all(fetches).await {
        match fetched {
            Ok(mut metrics) => {
                // The status server's own metrics, as in Go, are not shown.
                metrics.retain(|m| {
                    !m.name.starts_with("serviceweaver_system")
                        && filter.is_none_or(|re| re.is_match(&m.name))
                });
                out.push(Deployed {
                    app: s.app,
                    deployment_id: s.deployment_id,
                    status_addr: s.addr,
                    metrics,
                });
            }
            Err(error) => {
                tracing::warn!(deployment = %s.deployment_id, error = %error,
                    "cannot fetch the deployment's metrics; skipping it");
            }
        }
    }
    out
}

/// Prints `deployments` in `format` on stdout; `nothing` (a sentence) if
/// there are none — on stderr for Prometheus text, so stdout stays
/// scrapeable.
///
/// # Errors
///
/// If stdout cannot be written.
pub(crate) fn print(deployments: &[Deployed], format: Format, nothing: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    if deployments.is_empty() && format == Format::Prometheus {
        eprintln!("{}", nothing.trim_end());
    }
    let text = render_or(deployments, format, status::color_enabled(), nothing);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The 256-color of rows whose value is 0 (a light gray, as Go's).
const DIM_COLOR: u8 = 245;

/// The text `metrics` prints for `deployments`; with `color`, table rows
/// whose value is 0 are dimmed.
#[cfg(test)]
fn render(deployments: &[Deployed], format: Format, color: bool) -> String {
    render_or(deployments, format, color, NOTHING_RUNS)
}

/// Like `render`, with `nothing` as the table text when nothing runs.
fn render_or(deployments: &[Deployed], format: Format, color: bool, nothing: &str) -> String {
    match format {
        Format::Json => {
            let doc = Document { deployments };
            // Non-finite numbers become `null`; nothing else can fail.
            let mut text = serde_json::to_string(&doc).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Prometheus => {
            let mut out = String::new();
            for d in deployments {
                weaver_proto::prometheus::header(
                    &mut out,
                    &d.status_addr.to_string(),
                    PROMETHEUS_PATH,
                );
                let snapshots: Vec<_> = d
                    .metrics
                    .iter()
                    .zip(1..)
                    .map(|(m, id)| m.to_snapshot(id))
                    .collect();
                weaver_proto::prometheus::encode(&mut out, &snapshots);
            }
            out
        }
        Format::Table if deployments.is_empty() => nothing.to_owned(),
        Format::Table => tables(deployments, color),
    }
}

/// One table per metric name, user metrics first, then `serviceweaver_*`,
/// each alphabetically; rows sorted by their label values.
fn tables(deployments: &[Deployed], color: bool) -> String {
    let mut by_name: BTreeMap<(bool, &str), Vec<&Metric>> = BTreeMap::new();
    for m in deployments.iter().flat_map(|d| &d.metrics) {
        let generated = m.name.starts_with("serviceweaver");
        by_name.entry((generated, &m.name)).or_default().push(m);
    }
    let mut out = String::new();
    for ((generated, name), series) in by_name {
        let first = series[0];
        let kind = match first.kind {
            MetricKind::Counter => "COUNTER",
            MetricKind::Gauge => "GAUGE",
            _ => "HISTOGRAM",
        };
        out.push_str(&format!("// {}\n{name}: {kind}\n", first.help));
        let keys: BTreeSet<&str> = series
            .iter()
            .flat_map(|m| m.labels.keys().map(String::as_str))
            .collect();
        let mut rows: Vec<Vec<String>> = series.iter().map(|m| row(m, &keys, generated)).collect();
        rows.sort();
        let value = if first.kind == MetricKind::Histogram {
            "Average"
        } else {
            "Value"
        };
        let mut table = Table::new();
        let header: Vec<&str> = keys.iter().copied().chain([value]).collect();
        table
            .load_style(STYLE)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(header);
        let zero: Vec<bool> = rows
            .iter()
            .map(|r| r.last().is_some_and(|v| v == "0"))
            .collect();
        for r in rows {
            table.add_row(r);
        }
        // Border, header and separator come first, then one line per row.
        for (i, line) in table.lines().enumerate() {
            if color && i >= 3 && zero.get(i - 3).copied().unwrap_or(false) {
                out.push_str(&format!("\x1b[38;5;{DIM_COLOR}m{line}\x1b[0m\n"));
            } else {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out.push('\n');
    }
    out
}

/// The cells of one series: its label values (ids and, for generated
/// metrics, component names shortened), then its value or average.
fn row(m: &Metric, keys: &BTreeSet<&str>, generated: bool) -> Vec<String> {
    let mut cells: Vec<String> = keys
        .iter()
        .map(|k| {
            let v = m.labels.get(*k).map_or("", String::as_str);
            match *k {
                "serviceweaver_node" | "serviceweaver_version" => short_id(v).to_owned(),
                "component" | "caller" if generated => short_component(v).to_owned(),
                _ => v.to_owned(),
            }
        })
        .collect();
    let value = if m.kind == MetricKind::Histogram {
        let n: u64 = m.counts.iter().sum();
        if n == 0 { 0.0 } else { m.value / n as f64 }
    } else {
        m.value
    };
    cells.push(value.to_string());
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(name: &str, kind: MetricKind, node: &str, value: f64, counts: Vec<u64>) -> Metric {
        Metric {
            name: name.to_owned(),
            kind,
            help: format!("Help of {name}"),
            labels: [
                ("serviceweaver_node".to_owned(), node.to_owned()),
                (
                    "serviceweaver_version".to_owned(),
                    "0123456789abcdef".to_owned(),
                ),
            ]
            .into(),
            value,
            bounds: if counts.is_empty() {
                vec![]
            } else {
                vec![10.0]
            },
            counts,
        }
    }

    fn deployed(metrics: Vec<Metric>) -> Vec<Deployed> {
        vec![Deployed {
            app: "bank".to_owned(),
            deployment_id: "0123456789abcdef".to_owned(),
            status_addr: SocketAddr::from(([127, 0, 0, 1], 4000)),
            metrics,
        }]
    }

    #[test]
    fn tables_put_user_metrics_first_and_average_histograms() {
        let d = deployed(vec![
            metric(
                "serviceweaver_method_count",
                MetricKind::Counter,
                "bbbbbbbb-2",
                1.0,
                vec![],
            ),
            metric(
                "bank_sizes",
                MetricKind::Histogram,
                "aaaaaaaa-1",
                9.0,
                vec![2, 1],
            ),
            metric(
                "bank_deposits",
                MetricKind::Counter,
                "bbbbbbbb-2",
                3.0,
                vec![],
            ),
            metric(
                "bank_deposits",
                MetricKind::Counter,
                "aaaaaaaa-1",
                2.0,
                vec![],
            ),
        ]);
        let want = "\
// Help of bank_deposits
bank_deposits: COUNTER
╭────────────────────┬───────────────────────┬───────╮
│ serviceweaver_node │ serviceweaver_version │ Value │
├────────────────────┼───────────────────────┼───────┤
│ aaaaaaaa           │ 01234567              │ 2     │
│ bbbbbbbb           │ 01234567              │ 3     │
╰────────────────────┴───────────────────────┴───────╯

// Help of bank_sizes
bank_sizes: HISTOGRAM
╭────────────────────┬───────────────────────┬─────────╮
│ serviceweaver_node │ serviceweaver_version │ Average │
├────────────────────┼───────────────────────┼─────────┤
│ aaaaaaaa           │ 01234567              │ 3       │
╰────────────────────┴───────────────────────┴─────────╯

// Help of serviceweaver_method_count
serviceweaver_method_count: COUNTER
╭────────────────────┬───────────────────────┬───────╮
│ serviceweaver_node │ serviceweaver_version │ Value │
├────────────────────┼───────────────────────┼───────┤
│ bbbbbbbb           │ 01234567              │ 1     │
╰────────────────────┴───────────────────────┴───────╯

";
        assert_eq!(render(&d, Format::Table, false), want);
    }

    #[test]
    fn with_color_rows_at_zero_are_dimmed() {
        let d = deployed(vec![
            metric(
                "bank_deposits",
                MetricKind::Counter,
                "aaaaaaaa-1",
                0.0,
                vec![],
            ),
            metric(
                "bank_deposits",
                MetricKind::Counter,
                "bbbbbbbb-2",
                3.0,
                vec![],
            ),
        ]);
        let text = render(&d, Format::Table, true);
        let rows: Vec<_> = text.lines().filter(|l| l.contains("01234567")).collect();
        assert_eq!(
            rows,
            [
                "\x1b[38;5;245m│ aaaaaaaa           │ 01234567              │ 0     │\x1b[0m",
                "│ bbbbbbbb           │ 01234567              │ 3     │",
            ]
        );
    }

    #[test]
    fn nothing_running_is_a_sentence_or_an_empty_document() {
        assert_eq!(render(&[], Format::Table, true), NOTHING_RUNS);
        assert_eq!(render(&[], Format::Json, true), "{\"deployments\":[]}\n");
        assert_eq!(render(&[], Format::Prometheus, true), "");
    }

    #[test]
    fn a_bad_regex_is_a_usage_error_naming_it() {
        let err = filter(Some("bank_(")).unwrap_err();
        assert!(
            err.0.starts_with("invalid regexp \"bank_(\": "),
            "{}",
            err.0
        );
        let re = filter(Some("deposit")).unwrap().unwrap();
        assert!(re.is_match("bank_deposits"), "unanchored");
    }
}
