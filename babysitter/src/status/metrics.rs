//! The deployment's metrics as Prometheus text, at [`PROMETHEUS_PATH`], and
//! as JSON ([`Metric`]s), at [`METRICS_PATH`].
//!
//! Each replica's series carry its weavelet id (`serviceweaver_node`); with
//! `?replicas=sum` the series that differ only in it are added up, one per
//! name and label set for the whole deployment.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weaver_proto::prometheus::{self, Snapshot};
use weaver_proto::runtime::{MetricDef, MetricType, MetricValue};

/// The HTTP path the Prometheus text is served on.
pub const PROMETHEUS_PATH: &str = "/debug/weaver/prometheus";

/// The HTTP path the metrics are served on as JSON (a list of [`Metric`]).
pub const METRICS_PATH: &str = "/debug/weaver/metrics";

/// One series, as [`METRICS_PATH`] serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The metric's name.
    pub name: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: MetricKind,
    /// Its help text.
    #[serde(default)]
    pub help: String,
    /// The series' labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A counter's or gauge's value; a histogram's sum.
    pub value: f64,
    /// A histogram's bucket upper bounds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bounds: Vec<f64>,
    /// A histogram's counts per bucket, `bounds.len() + 1` of them (the
    /// last is above every bound).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counts: Vec<u64>,
}

/// Kind of a [`Metric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Counts per bucket, and a sum.
    Histogram,
}

/// The label that tells replicas apart.
const NODE_LABEL: &str = "serviceweaver_node";

/// A series across replicas: its name and labels but the node's.
type SeriesKey<'a> = (&'a str, Vec<(&'a str, &'a str)>);

/// Produces every replica's metrics on every request to
/// [`PROMETHEUS_PATH`]; it may poll the replicas, and should bound how long
/// that takes.
pub type MetricsProvider =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Vec<Snapshot>> + Send>> + Send + Sync>;

/// The page for `metrics`, scraped from `addr`; summed over replicas if
/// `query` asks for it (`replicas=sum`).
pub(crate) fn page(addr: SocketAddr, query: Option<&str>, metrics: &[Snapshot]) -> String {
    let summed = summed(query);
    let mut out = String::new();
    let path = if summed {
        format!("{PROMETHEUS_PATH}?replicas=sum")
    } else {
        PROMETHEUS_PATH.to_owned()
    };
    prometheus::header(&mut out, &addr.to_string(), &path);
    if summed {
        prometheus::encode(&mut out, &sum_replicas(metrics));
    } else {
        prometheus::encode(&mut out, metrics);
    }
    out
}

/// The JSON list of `metrics`, summed over replicas if `query` asks for
/// it.
pub(crate) fn json(
    query: Option<&str>,
    metrics: &[Snapshot],
) -> Result<Vec<u8>, serde_json::Error> {
    let list: Vec<Metric> = if summed(query) {
        sum_replicas(metrics)
            .iter()
            .map(Metric::from_snapshot)
            .collect()
    } else {
        metrics.iter().map(Metric::from_snapshot).collect()
    };
    serde_json::to_vec(&list)
}

fn summed(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv == "replicas=sum"))
}

/// One series per name and label set other than [`NODE_LABEL`]: values,
/// histogram sums and bucket counts added up over replicas.
pub(crate) fn sum_replicas(metrics: &[Snapshot]) -> Vec<Snapshot> {
    let mut sums: BTreeMap<SeriesKey<'_>, Snapshot> = BTreeMap::new();
    for m in metrics {
        let labels = m
            .def
            .labels
            .iter()
            .filter(|(k, _)| *k != NODE_LABEL)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match sums.entry((m.def.name.as_str(), labels)) {
            Entry::Occupied(mut sum) => add(&mut sum.get_mut().value, &m.value),
            Entry::Vacant(slot) => {
                let mut first = m.clone();
                first.def.labels.remove(NODE_LABEL);
                slot.insert(first);
            }
        }
    }
    sums.into_values()
        .zip(1..)
        .map(|(mut s, id)| {
            s.def.id = id;
            s.value.id = id;
            s
        })
        .collect()
}

// === impl Metric ===

impl Metric {
    /// The series of `s`.
    pub fn from_snapshot(s: &Snapshot) -> Self {
        let kind = match s.def.typ() {
            MetricType::Counter => MetricKind::Counter,
            MetricType::Histogram => MetricKind::Histogram,
            MetricType::Gauge | MetricType::Invalid => MetricKind::Gauge,
        };
        Self {
            name: s.def.name.clone(),
            kind,
            help: s.def.help.clone(),
            labels: s.def.labels.clone().into_iter().collect(),
            value: s.value.value,
            bounds: s.def.bounds.clone(),
            counts: s.value.counts.clone(),
        }
    }

    /// The series as a snapshot with id `id`, e.g. to render it with
    /// [`weaver_proto::prometheus`].
    pub fn to_snapshot(&self, id: u64) -> Snapshot {
        let typ = match self.kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        Snapshot {
            def: MetricDef {
                id,
                name: self.name.clone(),
                typ: typ as i32,
                help: self.help.clone(),
                labels: self.labels.clone().into_iter().collect(),
                bounds: self.bounds.clone(),
            },
            value: MetricValue {
                id,
                value: self.value,
                counts: self.counts.clone(),
            },
        }
    }
}

fn add(sum: &mut MetricValue, v: &MetricValue) {
    sum.value += v.value;
    if sum.counts.len() < v.counts.len() {
        sum.counts.resize(v.counts.len(), 0);
    }
    for (s, c) in sum.counts.iter_mut().zip(&v.counts) {
        *s += c;
    }
}

#[cfg(test)]
mod tests {
    use weaver_proto::runtime::{MetricDef, MetricType};

    use super::*;

    fn series(id: u64, node: &str, method: &str, v: f64, counts: Vec<u64>) -> Snapshot {
        let labels = [("serviceweaver_node", node), ("method", method)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Snapshot {
            def: MetricDef {
                id,
                name: "calls".to_owned(),
                typ: MetricType::Histogram as i32,
                labels,
                bounds: vec![1.0],
                ..MetricDef::default()
            },
            value: MetricValue {
                id,
                value: v,
                counts,
            },
        }
    }

    #[test]
    fn replicas_sum_per_label_set_without_the_node() {
        let metrics = [
            series(1, "aaaa", "add", 2.0, vec![1, 0]),
            series(2, "aaaa", "sub", 1.0, vec![0, 1]),
            series(1, "bbbb", "add", 3.0, vec![2, 1]),
        ];
        let summed = sum_replicas(&metrics);
        let got: Vec<_> = summed
            .iter()
            .map(|s| {
                let labels: Vec<_> = s.def.labels.keys().cloned().collect();
                (s.def.id, labels, s.value.value, s.value.counts.clone())
            })
            .collect();
        let method = vec!["method".to_owned()];
        assert_eq!(
            got,
            [
                (1, method.clone(), 5.0, vec![3, 1]),
                (2, method, 1.0, vec![0, 1]),
            ]
        );
    }
}
