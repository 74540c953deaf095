//! Metrics as the status endpoints serve them: a JSON list of [`Metric`]s
//! at [`METRICS_PATH`], Prometheus text at [`PROMETHEUS_PATH`], and the
//! babysitter's per-method statistics ([`MethodStats`]) at [`METHODS_PATH`].
//!
//! The babysitter's status server serves a deployment's metrics there, and
//! a single-process run (the `weaver` crate run directly) serves its own
//! on loopback; `weaver multi|single metrics` read them with these types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::prometheus::Snapshot;
use crate::runtime::{MetricDef, MetricType, MetricValue};

/// The HTTP path the Prometheus text is served on.
pub const PROMETHEUS_PATH: &str = "/debug/weaver/prometheus";

/// The HTTP path the metrics are served on as JSON (a list of [`Metric`]).
pub const METRICS_PATH: &str = "/debug/weaver/metrics";

/// The HTTP path the per-method statistics are served on as JSON (a list
/// of [`MethodStats`]); add `?by=caller` for one row per caller too.
pub const METHODS_PATH: &str = "/debug/weaver/methods";

/// The `Content-Type` of the Prometheus text.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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
    /// A counter's or gauge's value; a histogram's sum. JSON has no NaN or
    /// infinities: those are the strings `"NaN"`, `"+Inf"` and `"-Inf"`
    /// (Prometheus's spelling).
    #[serde(with = "float")]
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

/// One component method's calls, summed over replicas (and over callers,
/// unless asked per caller), as [`METHODS_PATH`] serves them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodStats {
    /// The full component name, e.g. `hello::Reverser`.
    pub component: String,
    /// The method's name.
    pub method: String,
    /// The calling component, when the rows are per caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// About the last minute.
    pub minute: MethodWindow,
    /// About the last hour.
    pub hour: MethodWindow,
    /// Since the deployment started.
    pub total: MethodWindow,
}

/// A method's calls within one window of time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MethodWindow {
    /// How long the window actually is: shorter than its name while the
    /// deployment is younger, for instance. Divide by it for rates.
    pub seconds: f64,
    /// Calls made.
    pub calls: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Mean latency, in microseconds (0 without calls).
    pub mean_latency_micros: f64,
    /// Median latency, in microseconds, interpolated within its histogram
    /// bucket (0 without calls).
    pub p50_micros: f64,
    /// 99th percentile latency, in microseconds, likewise.
    pub p99_micros: f64,
    /// Bytes of requests (remote calls only).
    pub request_bytes: u64,
    /// Bytes of replies (remote calls only).
    pub reply_bytes: u64,
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
    /// [`crate::prometheus`].
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

/// An `f64` in JSON: a number when finite, else `"NaN"`, `"+Inf"` or
/// `"-Inf"`; `null` reads as NaN (what serializers that know no better
/// write).
mod float {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v > 0.0 {
            s.serialize_str("+Inf")
        } else {
            s.serialize_str("-Inf")
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_any(FloatVisitor)
    }

    struct FloatVisitor;

    impl Visitor<'_> for FloatVisitor {
        type Value = f64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(r#"a number, "NaN", "+Inf" or "-Inf""#)
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }

        fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
            Ok(f64::NAN)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            match v {
                "NaN" => Ok(f64::NAN),
                "+Inf" | "Inf" => Ok(f64::INFINITY),
                "-Inf" => Ok(f64::NEG_INFINITY),
                _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
            }
        }
    }
}

/// The `q` quantile of a histogram, interpolated linearly within its bucket
/// as Prometheus's `histogram_quantile` does (the first bucket starts at
/// 0). Every bucket counts, the one above every bound included (Go's
/// dashboard leaves it out); a quantile that falls there is at least the
/// largest bound, and that is what it reads. 0 for an empty histogram.
pub fn quantile(bounds: &[f64], counts: &[u64], q: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        if (below + count) as f64 >= rank {
            let Some(&upper) = bounds.get(i) else {
                break;
            };
            let lower = if i == 0 {
                upper.min(0.0)
            } else {
                bounds[i - 1]
            };
            return lower + (upper - lower) * (rank - below as f64) / count as f64;
        }
        below += count;
    }
    bounds.last().copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(value: f64) -> Metric {
        Metric {
            name: "g".to_owned(),
            kind: MetricKind::Gauge,
            help: String::new(),
            labels: BTreeMap::new(),
            value,
            bounds: Vec::new(),
            counts: Vec::new(),
        }
    }

    #[test]
    fn non_finite_values_round_trip_through_json() {
        for (v, json) in [
            (1.5, "1.5"),
            (f64::INFINITY, "\"+Inf\""),
            (f64::NEG_INFINITY, "\"-Inf\""),
        ] {
            let text = serde_json::to_string(&gauge(v)).expect("encode");
            assert!(text.contains(&format!("\"value\":{json}")), "{text}");
            let back: Metric = serde_json::from_str(&text).expect("decode");
            assert_eq!(back.value, v);
        }
        let text = serde_json::to_string(&gauge(f64::NAN)).expect("encode");
        assert!(text.contains("\"value\":\"NaN\""), "{text}");
        let back: Metric = serde_json::from_str(&text).expect("decode");
        assert!(back.value.is_nan());
    }

    #[test]
    fn integers_and_null_decode_and_other_strings_are_refused() {
        let m: Metric = serde_json::from_str(r#"{"name":"g","type":"gauge","value":3}"#).unwrap();
        assert_eq!(m.value, 3.0);
        let m: Metric =
            serde_json::from_str(r#"{"name":"g","type":"gauge","value":null}"#).unwrap();
        assert!(m.value.is_nan());
        let err = serde_json::from_str::<Metric>(r#"{"name":"g","type":"gauge","value":"x"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("\"NaN\""), "{err}");
    }

    #[test]
    fn snapshots_convert_both_ways() {
        let mut m = gauge(2.0);
        m.kind = MetricKind::Histogram;
        m.bounds = vec![1.0];
        m.counts = vec![1, 1];
        m.labels.insert("k".to_owned(), "v".to_owned());
        assert_eq!(Metric::from_snapshot(&m.to_snapshot(7)), m);
    }
}
