//! Medians, the table and the verdicts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::{Sample, Spec, System, pin_name};

/// Every sample, by system and pinning.
#[derive(Default)]
pub(crate) struct Results {
    samples: BTreeMap<(usize, bool), Vec<Sample>>,
}

/// The medians of one configuration.
#[derive(Clone, Copy)]
struct Medians {
    p50: f64,
    p99: f64,
    cpu1: f64,
    rate: f64,
    cpu64: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn index(s: System) -> usize {
    System::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

impl Results {
    pub(crate) fn add(&mut self, sys: System, pinned: bool, s: Sample) {
        self.samples.entry((index(sys), pinned)).or_default().push(s);
    }

    fn medians(&self, sys: System, pinned: bool) -> Option<Medians> {
        let v = self.samples.get(&(index(sys), pinned))?;
        let m = |f: fn(&Sample) -> f64| median(v.iter().map(f).collect());
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
            "Medians of {runs} run(s); {} B each way; 1 in flight: p50/p99 µs and CPU µs/call; {} in flight: calls/s and CPU µs/call (client + server)",
            spec.size, spec.inflight
        );
        let _ = writeln!(
            out,
            "{:<9} {:<7} {:>9} {:>9} {:>10} {:>12} {:>11}",
            "pinning", "system", "p50 µs", "p99 µs", "cpu1 µs", "calls/s", "cpu64 µs"
        );
        for pinned in [true, false] {
            for sys in System::ALL {
                if let Some(m) = self.medians(sys, pinned) {
                    let _ = writeln!(
                        out,
                        "{:<9} {:<7} {:>9.1} {:>9.1} {:>10.1} {:>12.0} {:>11.2}",
                        pin_name(pinned),
                        sys.name(),
                        m.p50,
                        m.p99,
                        m.cpu1,
                        m.rate,
                        m.cpu64
                    );
                }
            }
        }
        let raw_rt = if std::env::var("RPC_BENCH_RAW_RT").is_ok_and(|v| v == "ct") {
            "current-thread"
        } else {
            "multi-thread"
        };
        let _ = writeln!(
            out,
            "runtimes: weaver = echo app's #[tokio::main] (multi-thread); raw 64-in-flight = tokio {raw_rt} both sides; raw 1-in-flight = blocking std; tonic = multi-thread both sides"
        );
        for pinned in [true, false] {
            let (Some(w), raw, tonic) = (
                self.medians(System::Weaver, pinned),
                self.medians(System::Raw, pinned),
                self.medians(System::Tonic, pinned),
            ) else {
                continue;
            };
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "Ratios, {}{}:",
                pin_name(pinned),
                if pinned { " (targets judged here)" } else { " (for information)" }
            );
            let mut line = |name: &str, value: Option<f64>, target: &str, ok: Option<bool>| {
                let v = value.map_or("n/a".to_string(), |v| format!("{v:.2}×"));
                let verdict = match (pinned, ok) {
                    (true, Some(true)) => "PASS",
                    (true, Some(false)) => "MISS",
                    _ => "",
                };
                let _ = writeln!(out, "  {name:<34} {v:>8}   target {target:<8} {verdict}");
            };
            let r1 = raw.map(|r| w.p50 / r.p50);
            line("weaver p50 / raw p50 (1 in flight)", r1, "≤ 1.25×", r1.map(|x| x <= 1.25));
            let t1 = tonic.map(|t| w.p50 / t.p50);
            line("weaver p50 / tonic p50", t1, "≤ 0.5×", t1.map(|x| x <= 0.5));
            let r64 = raw.map(|r| w.rate / r.rate);
            line(
                &format!("weaver / raw calls/s ({} in flight)", spec.inflight),
                r64,
                "≥ 0.5×",
                r64.map(|x| x >= 0.5),
            );
            let t64 = tonic.map(|t| w.rate / t.rate);
            line("weaver / tonic calls/s", t64, "≥ 5×", t64.map(|x| x >= 5.0));
        }
        out
    }
}
