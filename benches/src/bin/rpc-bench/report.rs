//! Medians, the table and the verdicts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::{Sample, Spec, System, pin_name};

/// Every sample, by system and pinning.
#[derive(Default)]
pub(crate) struct Results {
    samples: BTreeMap<(usize, bool), Vec<Sample>>,
}

/// The medians of one configuration (`None`: not measured).
#[derive(Clone, Copy)]
struct Medians {
    p50: Option<f64>,
    p99: Option<f64>,
    cpu1: Option<f64>,
    rate: Option<f64>,
    cpu64: Option<f64>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn index(s: System) -> usize {
    System::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.digits$}"))
}

/// One target: a ratio of medians, what it must be, whether it is, and
/// the same ratio run by run (the two systems of a run were measured
/// minutes apart at most, so they shared the machine's mood).
struct Target {
    name: String,
    value: Option<f64>,
    bound: &'static str,
    ok: Option<bool>,
    per_run: Vec<f64>,
}

/// A metric of one system: the median, and the value of each run.
type Metric = (Option<f64>, Vec<Option<f64>>);

fn ratio(
    name: String,
    a: &Metric,
    b: &Metric,
    bound: &'static str,
    ok: impl Fn(f64) -> bool,
) -> Target {
    let value = a.0.zip(b.0).map(|(a, b)| a / b);
    let per_run =
        a.1.iter()
            .zip(&b.1)
            .filter_map(|(a, b)| a.zip(*b).map(|(a, b)| a / b))
            .collect();
    Target {
        name,
        value,
        bound,
        ok: value.map(ok),
        per_run,
    }
}

impl Results {
    pub(crate) fn add(&mut self, sys: System, pinned: bool, s: Sample) {
        self.samples
            .entry((index(sys), pinned))
            .or_default()
            .push(s);
    }

    /// A metric of `sys`: its median and its value run by run.
    fn metric(&self, sys: System, pinned: bool, f: fn(&Sample) -> Option<f64>) -> Metric {
        let runs: Vec<Option<f64>> = self
            .samples
            .get(&(index(sys), pinned))
            .map(|v| v.iter().map(f).collect())
            .unwrap_or_default();
        (median(runs.iter().flatten().copied().collect()), runs)
    }

    fn medians(&self, sys: System, pinned: bool) -> Option<Medians> {
        let v = self.samples.get(&(index(sys), pinned))?;
        let m = |f: fn(&Sample) -> Option<f64>| median(v.iter().filter_map(f).collect());
        Some(Medians {
            p50: m(|s| s.p50_us),
            p99: m(|s| s.p99_us),
            cpu1: m(|s| s.cpu1_us_per_call),
            rate: m(|s| s.calls_per_sec),
            cpu64: m(|s| s.cpu64_us_per_call),
        })
    }

    pub(crate) fn render(&self, spec: &Spec) -> String {
        let mut out = String::new();
        let runs = self.samples.values().map(Vec::len).max().unwrap_or(0);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Medians of {runs} run(s); {} B each way. 1 in flight: p50/p99 latency and CPU µs per call; {} in flight: calls/s and CPU µs per call (client + server CPU).",
            spec.size, spec.inflight
        );
        let _ = writeln!(
            out,
            "{:<9} {:<10} {:>8} {:>8} {:>8} {:>11} {:>9}   runtime",
            "pinning", "system", "p50 µs", "p99 µs", "cpu1 µs", "calls/s", "cpu64 µs"
        );
        for pinned in [true, false] {
            for sys in System::ALL {
                if let Some(m) = self.medians(sys, pinned) {
                    let _ = writeln!(
                        out,
                        "{:<9} {:<10} {:>8} {:>8} {:>8} {:>11} {:>9}   {}",
                        pin_name(pinned),
                        sys.name(),
                        cell(m.p50, 1),
                        cell(m.p99, 1),
                        cell(m.cpu1, 1),
                        cell(m.rate, 0),
                        cell(m.cpu64, 2),
                        runtime(sys),
                    );
                }
            }
        }
        for pinned in [true, false] {
            let p50 = |s| self.metric(s, pinned, |x| x.p50_us);
            let rate = |s| self.metric(s, pinned, |x| x.calls_per_sec);
            let mut targets = Vec::new();
            for (w, raw_mux, label) in [
                (System::Weaver, System::Raw, "weaver"),
                (System::WeaverCt, System::RawCt, "weaver-ct"),
            ] {
                if self.medians(w, pinned).is_none() {
                    continue;
                }
                let (wp, wr) = (p50(w), rate(w));
                targets.push(ratio(
                    format!("{label} p50 / raw p50"),
                    &wp,
                    &p50(System::Raw),
                    "≤ 1.25×",
                    |v| v <= 1.25,
                ));
                targets.push(ratio(
                    format!("{label} p50 / tonic p50"),
                    &wp,
                    &p50(System::Tonic),
                    "≤ 0.5×",
                    |v| v <= 0.5,
                ));
                targets.push(ratio(
                    format!(
                        "{label} / {} calls/s ({} in flight)",
                        raw_mux.name(),
                        spec.inflight
                    ),
                    &wr,
                    &rate(raw_mux),
                    "≥ 0.5×",
                    |v| v >= 0.5,
                ));
                targets.push(ratio(
                    format!("{label} / tonic calls/s"),
                    &wr,
                    &rate(System::Tonic),
                    "≥ 5×",
                    |v| v >= 5.0,
                ));
            }
            if self.medians(System::WeaverOff, pinned).is_some() {
                // What the method metrics cost: the same deployment with
                // WEAVER_METHOD_METRICS=off, in the same run.
                let cpu64 = |s| self.metric(s, pinned, |x| x.cpu64_us_per_call);
                targets.push(ratio(
                    "weaver p50 / weaver-off p50 (metrics)".to_string(),
                    &p50(System::Weaver),
                    &p50(System::WeaverOff),
                    "≤ 1.03×",
                    |v| v <= 1.03,
                ));
                targets.push(ratio(
                    format!("weaver / weaver-off cpu64 ({} in flight)", spec.inflight),
                    &cpu64(System::Weaver),
                    &cpu64(System::WeaverOff),
                    "≤ 1.05×",
                    |v| v <= 1.05,
                ));
                targets.push(ratio(
                    "weaver-off p50 / raw p50".to_string(),
                    &p50(System::WeaverOff),
                    &p50(System::Raw),
                    "≤ 1.25×",
                    |v| v <= 1.25,
                ));
            }
            if self.medians(System::WeaverTcp, pinned).is_some() {
                // Component calls over loopback TCP beside Unix sockets.
                targets.push(ratio(
                    "weaver-tcp p50 / weaver p50 (reference)".to_string(),
                    &p50(System::WeaverTcp),
                    &p50(System::Weaver),
                    "",
                    |_| true,
                ));
                targets.push(ratio(
                    "weaver-tcp / weaver calls/s (reference)".to_string(),
                    &rate(System::WeaverTcp),
                    &rate(System::Weaver),
                    "",
                    |_| true,
                ));
            }
            if self.medians(System::Weaver, pinned).is_some() {
                targets.push(ratio(
                    "weaver p50 / tokio-pp p50 (reference)".to_string(),
                    &p50(System::Weaver),
                    &p50(System::TokioPp),
                    "",
                    |_| true,
                ));
            }
            if targets.is_empty() {
                continue;
            }
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "Ratios of the medians, {}{}; [the ratio in each run]:",
                pin_name(pinned),
                if pinned {
                    " (targets judged here)"
                } else {
                    " (for information)"
                }
            );
            for t in &targets {
                let verdict = match (pinned, t.ok, t.bound.is_empty()) {
                    (_, _, true) => "    ",
                    (true, Some(true), _) => "PASS",
                    (true, Some(false), _) => "MISS",
                    _ => "    ",
                };
                let runs: Vec<String> = t.per_run.iter().map(|r| format!("{r:.2}")).collect();
                let _ = writeln!(
                    out,
                    "  {:<42} {:>7}   {:<8} {verdict}   [{}]",
                    t.name,
                    t.value.map_or("n/a".to_string(), |v| format!("{v:.2}×")),
                    t.bound,
                    runs.join(" ")
                );
            }
        }
        out
    }
}

/// The runtime each system's figures used.
fn runtime(sys: System) -> &'static str {
    match sys {
        System::Weaver => "app: #[tokio::main] multi-thread",
        System::WeaverOff => "as weaver, WEAVER_METHOD_METRICS=off",
        System::WeaverTcp => "as weaver, [multi] transport = \"tcp\"",
        System::WeaverCt => "app: tokio current-thread",
        System::Raw => "1: blocking std; 64: tokio multi-thread",
        System::RawCt => "64: tokio current-thread",
        System::Tonic => "tokio multi-thread",
        System::TokioPp => "tokio multi-thread, read-only epoll",
    }
}
