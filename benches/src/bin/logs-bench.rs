//! Log query throughput: `weaver multi logs` filtering vs `grep -c`.
//!
//! Run with:
//!
//! ```text
//! cargo run --release --manifest-path benches/Cargo.toml --target-dir target --bin logs-bench [-- <entries>]
//! ```
//!
//! Writes `<entries>` (default 1,000,000) entries to a store in a temporary
//! directory (4 weavelets; 5% error, 15% warn, 50% info, 30% debug; 10% of
//! messages contain an "x"), and the same entries as pretty text lines to
//! one file. Then, on one thread, it counts the entries matching
//! `level == "error" && msg.contains("x")`, 3 runs each, and prints the
//! medians and entries/s (all entries stored, over the time taken):
//!
//! - through the store's real read path (list the files, rule files out by
//!   name, decode, filter, merge in time order);
//! - the same, with the condition spelled so that no file can be ruled out
//!   (every entry is read, decoded and evaluated);
//! - `grep -c` (`LC_ALL=C`) with the equivalent pattern over the text lines.
//!
//! It fails if the three counts differ.

#![allow(clippy::print_stdout)]

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use weaver_logs::{Query, Writer, for_each};
use weaver_proto::logging::PrettyPrinter;
use weaver_proto::runtime::LogEntry;

/// Runs per measurement; the median is reported.
const RUNS: usize = 3;

const WORDS: [&str; 12] = [
    "request", "handled", "for", "user", "cache", "miss", "on", "key", "reply", "sent", "after",
    "retry",
];
const X_WORDS: [&str; 3] = ["exceeded", "proxy", "index"];

fn main() -> Result<(), Box<dyn Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 1_000_000,
    };
    let dir = std::env::temp_dir().join(format!("weaver-logs-bench-{}", std::process::id()));
    let result = run(&dir, n);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(dir: &Path, n: usize) -> Result<(), Box<dyn Error>> {
    let store = dir.join("logs");
    let text = dir.join("text.log");
    let started = Instant::now();
    let expected = write(&store, &text, n)?;
    println!(
        "wrote {n} entries ({expected} matching) in {:.2?}; store {} MB, text {} MB",
        started.elapsed(),
        du(&store)? >> 20,
        std::fs::metadata(&text)?.len() >> 20,
    );

    let query = r#"level == "error" && msg.contains("x")"#;
    let ours = measure(|| count(&store, query))?;
    // The same condition, spelled so that no file can be ruled out by name:
    // every entry is read, decoded and evaluated.
    let unpruned = r#"(level == "error" || full_component == "-") && msg.contains("x")"#;
    let full = measure(|| count(&store, unpruned))?;
    let grep = measure(|| grep_count(&text))?;
    if ours.1 != expected || full.1 != expected || grep.1 != expected {
        let counts = format!("store {}, unpruned {}, grep {}", ours.1, full.1, grep.1);
        return Err(format!("counts differ: want {expected}, got {counts}").into());
    }
    let rate = |d: Duration| n as f64 / d.as_secs_f64() / 1e6;
    println!("query: {query}");
    println!(
        "  store (prunes by file name): {:>8.2?}  {:>6.2} M entries/s",
        ours.0,
        rate(ours.0)
    );
    println!(
        "  grep -c (LC_ALL=C):          {:>8.2?}  {:>6.2} M entries/s",
        grep.0,
        rate(grep.0)
    );
    println!(
        "  ratio store/grep:            {:>8.2}x",
        grep.0.as_secs_f64() / ours.0.as_secs_f64()
    );
    println!("query: {unpruned}");
    println!(
        "  store (reads every entry):   {:>8.2?}  {:>6.2} M entries/s",
        full.0,
        rate(full.0)
    );
    println!(
        "  ratio store/grep:            {:>8.2}x",
        grep.0.as_secs_f64() / full.0.as_secs_f64()
    );
    Ok(())
}

/// Writes `n` entries to the store and as pretty lines to `text`; returns how
/// many match the benchmark query.
fn write(store: &Path, text: &Path, n: usize) -> Result<usize, Box<dyn Error>> {
    let mut w = Writer::new(store);
    let mut pp = PrettyPrinter::new(false);
    let mut lines = String::new();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut matching = 0;
    for i in 0..n {
        let mut e = entry(i, &mut rng);
        matching += usize::from(e.level == "error" && e.msg.contains('x'));
        w.append(&mut e)?;
        pp.format_into(&e, &mut lines);
        lines.push('\n');
        if i % 1000 == 999 {
            w.flush()?;
        }
    }
    w.flush()?;
    std::fs::write(text, lines)?;
    Ok(matching)
}

fn entry(i: usize, rng: &mut u64) -> LogEntry {
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    let level = match next() % 100 {
        0..5 => "error",
        5..20 => "warn",
        20..70 => "info",
        _ => "debug",
    };
    let mut msg = String::new();
    for _ in 0..(4 + next() % 8) {
        msg.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
        msg.push(' ');
    }
    if next() % 10 == 0 {
        msg.push_str(X_WORDS[(next() % 3) as usize]);
    }
    let node = ["0a1b2c3d", "4e5f6a7b", "8c9d0e1f", "2a3b4c5d"][i % 4];
    LogEntry {
        app: "hello".into(),
        version: "6c1d2f3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f".into(),
        component: ["hello::Reverser", "hello::Cache", "weaver::Main"][i % 3].into(),
        node: format!("{node}-1234-4567-89ab-cdef01234567"),
        time_micros: 1_717_243_200_000_000 + i as i64 * 100,
        level: level.into(),
        file: "src/main.rs".into(),
        line: 40 + (i % 50) as i32,
        msg,
        attrs: vec!["seq".into(), i.to_string()],
        typed_attrs: Vec::new(),
    }
}

fn count(store: &Path, query: &str) -> Result<usize, Box<dyn Error>> {
    let query = Query::parse(query, false)?;
    let mut n = 0;
    for_each(store, &query, |_| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

/// `grep -c` for error lines (`E` first) with an `x` in the message (after
/// the ` │ ` separator; attributes hold only digits and `seq=`).
fn grep_count(text: &Path) -> Result<usize, Box<dyn Error>> {
    let out = Command::new("grep")
        .env("LC_ALL", "C")
        .args(["-c", "^E.* │ .*x"])
        .arg(text)
        .output()?;
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

/// Runs `f` [`RUNS`] times; the median time and the (last) count.
fn measure(
    mut f: impl FnMut() -> Result<usize, Box<dyn Error>>,
) -> Result<(Duration, usize), Box<dyn Error>> {
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        n = f()?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok((times[RUNS / 2], n))
}

fn du(dir: &Path) -> Result<u64, Box<dyn Error>> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let path: PathBuf = entry?.path();
        total += std::fs::metadata(path)?.len();
    }
    Ok(total)
}
