//! Runs wrk against one URL and reads its summary.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::BenchError;

/// How wrk loads a target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) threads: u32,
    pub(crate) connections: u32,
    pub(crate) duration: Duration,
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    pub(crate) requests: u64,
    pub(crate) requests_per_sec: f64,
    pub(crate) p99: Duration,
}

/// Runs wrk against `http://{addr}/` (on CPU 1 if `pin`) and parses its output.
pub(crate) fn run(addr: SocketAddr, load: Load, pin: bool) -> Result<Summary, BenchError> {
    let mut command = if pin {
        let mut taskset = Command::new("taskset");
        taskset.args(["-c", "1", "wrk"]);
        taskset
    } else {
        Command::new("wrk")
    };
    let output = command
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.duration.as_secs()))
        .arg("--latency")
        .arg(format!("http://{addr}/"))
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("wrk failed ({}): {text}", output.status).into());
    }
    parse(&text).map_err(|e| format!("{e}; wrk said:\n{text}").into())
}

/// Reads total requests, requests/s and the 99th percentile from wrk's text.
fn parse(text: &str) -> Result<Summary, String> {
    if let Some(line) = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses"))
    {
        return Err(format!("errors during the run: {}", line.trim()));
    }
    let mut requests = None;
    let mut requests_per_sec = None;
    let mut p99 = None;
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("Requests/sec:"), Some(rate), _) => requests_per_sec = rate.parse().ok(),
            (Some("99%"), Some(latency), _) => p99 = parse_latency(latency),
            (Some(count), Some("requests"), Some("in")) => requests = count.parse().ok(),
            _ => {}
        }
    }
    match (requests, requests_per_sec, p99) {
        (Some(requests), Some(requests_per_sec), Some(p99)) => Ok(Summary {
            requests,
            requests_per_sec,
            p99,
        }),
        _ => Err("cannot find requests, Requests/sec and 99% in wrk output".to_owned()),
    }
}

/// Parses wrk's latency notation: `812.00us`, `1.23ms`, `2.00s`, `1.00m`.
fn parse_latency(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 5s test @ http://127.0.0.1:1234/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  456.00us  10.00ms   80.00%
    Req/Sec    25.00k     1.00k   30.00k    70.00%
  Latency Distribution
     50%    1.00ms
     75%    1.50ms
     90%    2.00ms
     99%  812.00us
  250000 requests in 5.00s, 30.00MB read
Requests/sec:  50000.50
Transfer/sec:      6.00MB
";

    #[test]
    fn parses_summary() {
        let summary = parse(SAMPLE).expect("parses");
        assert_eq!(summary.requests, 250_000);
        assert!((summary.requests_per_sec - 50_000.5).abs() < 1e-9);
        assert_eq!(summary.p99, Duration::from_micros(812));
    }

    #[test]
    fn rejects_runs_with_errors() {
        let text = format!("{SAMPLE}  Non-2xx or 3xx responses: 12\n");
        assert!(parse(&text).is_err());
    }
}
