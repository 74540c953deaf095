//! The deployment's metrics as Prometheus text, at [`PROMETHEUS_PATH`], and
//! as JSON ([`Metric`]s), at [`METRICS_PATH`]; its per-method statistics
//! ([`MethodStats`]) at [`METHODS_PATH`].
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

use weaver_proto::prometheus::{self, Snapshot};
use weaver_proto::runtime::MetricValue;

pub use weaver_proto::metrics::{
    METHODS_PATH, METRICS_PATH, MethodStats, MethodWindow, Metric, MetricKind, PROMETHEUS_PATH,
};

/// The label that tells replicas apart.
const NODE_LABEL: &str = "serviceweaver_node";

/// A series across replicas: its name and labels but the node's.
type SeriesKey<'a> = (&'a str, Vec<(&'a str, &'a str)>);

/// Produces every replica's metrics on every request to
/// [`PROMETHEUS_PATH`]; it may poll the replicas, and should bound how long
/// that takes.
pub type MetricsProvider =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Vec<Snapshot>> + Send>> + Send + Sync>;

/// Produces the per-method statistics on every request to
/// [`METHODS_PATH`], one row per caller too if its argument is true
/// (`?by=caller`); like [`MetricsProvider`], it may poll the replicas.
pub type MethodsProvider =
    Arc<dyn Fn(bool) -> Pin<Box<dyn Future<Output = Vec<MethodStats>> + Send>> + Send + Sync>;

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

/// Whether `query` asks for the methods per caller (`by=caller`).
pub(crate) fn by_caller(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv == "by=caller"))
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
