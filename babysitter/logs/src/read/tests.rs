use std::fs::OpenOptions;
use std::os::unix::fs::PermissionsExt;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use weaver_proto::frame::write_message;
use weaver_proto::logging::{PrettyPrinter, SYSTEM_ATTR};

use super::*;
use crate::{Format, Stop, Writer, follow};

/// 2024-06-01T12:00:00Z.
const T0: i64 = 1_717_243_200_000_000;
/// How long a test waits for an event before failing.
const PATIENCE: Duration = Duration::from_secs(10);

fn entry(node: &str, level: &str, seq: usize) -> LogEntry {
    LogEntry {
        app: "hello".into(),
        version: "dep-1234-5678".into(),
        component: "hello::Reverser".into(),
        node: node.into(),
        time_micros: T0 + seq as i64,
        level: level.into(),
        file: "src/main.rs".into(),
        line: 7,
        msg: format!("entry {seq}"),
        attrs: vec!["seq".into(), seq.to_string()],
        typed_attrs: Vec::new(),
    }
}

fn all() -> Query {
    Query::parse("", true).expect("empty query")
}

fn collect(dir: &Path, query: &Query) -> Vec<LogEntry> {
    let mut got = Vec::new();
    for_each(dir, query, |e| {
        got.push(e);
        Ok(())
    })
    .expect("readable store");
    got
}

fn seqs(entries: &[LogEntry]) -> Vec<usize> {
    entries
        .iter()
        .map(|e| e.attrs[1].parse().expect("a seq attribute"))
        .collect()
}

fn frame(e: &LogEntry) -> Vec<u8> {
    let mut buf = Vec::new();
    write_message(&mut buf, e).expect("small entry");
    buf
}

fn file_path(dir: &Path, e: &LogEntry) -> PathBuf {
    let key = FileKey {
        app: e.app.clone(),
        version: e.version.clone(),
        node: e.node.clone(),
        level: e.level.clone(),
    };
    dir.join(key.file_name())
}

#[test]
fn writes_and_reads_10000_entries_in_time_order() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("logs");
    let mut w = Writer::new(&dir);
    let nodes = ["node-a", "node-b", "node-c", "node-d"];
    let levels = ["debug", "info", "error"];
    let mut want = Vec::new();
    for i in 0..10_000 {
        let mut e = entry(nodes[i % 4], levels[i % 3], i);
        w.append(&mut e).expect("append");
        want.push(e);
        if i % 1000 == 999 {
            w.flush().expect("flush");
        }
    }
    drop(w);
    assert_eq!(list(&dir).expect("list").len(), 12);
    let got = collect(&dir, &all());
    assert_eq!(got.len(), want.len());
    assert!(got == want, "entries differ or are out of order");
}

#[test]
fn store_layout_and_permissions() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data").join("logs");
    let mut w = Writer::new(&dir);
    let mut e = entry("node-a", "INFO", 1);
    e.time_micros = 0;
    w.append(&mut e).expect("append");
    w.flush().expect("flush");
    assert_eq!(e.level, "info");
    assert_ne!(e.time_micros, 0);

    let mode = |p: &Path| fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o750);
    let names: Vec<String> = list(&dir)
        .expect("list")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["hello#dep-1234-5678#node-a#info.log"]);
    assert_eq!(mode(&dir.join(&names[0])), 0o640);
}

#[test]
fn drop_flushes_and_reopening_appends() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut w = Writer::new(tmp.path());
    for i in 0..3 {
        w.append(&mut entry("n", "info", i)).expect("append");
    }
    drop(w); // no explicit flush
    let mut w = Writer::new(tmp.path());
    w.append(&mut entry("n", "info", 3)).expect("append");
    drop(w);
    assert_eq!(seqs(&collect(tmp.path(), &all())), [0, 1, 2, 3]);
}

#[test]
fn write_failures_are_errors() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let not_a_dir = tmp.path().join("file");
    fs::write(&not_a_dir, b"x").expect("write");
    let mut w = Writer::new(&not_a_dir);
    let err = w
        .append(&mut entry("n", "info", 0))
        .expect_err("a file is not a dir");
    assert!(matches!(err, Error::CreateDir { .. }), "{err:?}");
}

#[test]
fn missing_dir_is_empty_and_purge_removes_the_store() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("logs");
    assert!(collect(&dir, &all()).is_empty());
    purge(&dir).expect("purging nothing");
    let mut w = Writer::new(&dir);
    w.append(&mut entry("n", "info", 0)).expect("append");
    drop(w);
    purge(&dir).expect("purge");
    assert!(!dir.exists());
}

#[test]
fn truncated_tails_are_skipped() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut bytes = Vec::new();
    for i in 0..100 {
        bytes.extend(frame(&entry("n", "info", i)));
    }
    let last = frame(&entry("n", "info", 100));
    for cut in [1, 3, 4, 10, last.len() - 1] {
        let path = file_path(tmp.path(), &entry("n", "info", 0));
        let mut data = bytes.clone();
        data.extend_from_slice(&last[..cut]);
        fs::write(&path, &data).expect("write");
        let got = seqs(&collect(tmp.path(), &all()));
        assert_eq!(got, (0..100).collect::<Vec<_>>(), "cut at {cut}");
    }
}

#[test]
fn corrupt_data_is_skipped_and_the_rest_read() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut data = Vec::new();
    for i in 0..100 {
        let mut f = frame(&entry("n", "info", i));
        match i {
            // A frame whose payload is garbage.
            50 => f[4..].fill(0xff),
            // A frame whose length is absurd.
            80 => f[..4].copy_from_slice(&u32::MAX.to_le_bytes()),
            // Garbage between frames, with plausible-looking lengths.
            70 => data.extend_from_slice(&[0x10, 0, 0, 0, 0xde, 0xad, 2, 0, 0, 0, 0x0a]),
            _ => {}
        }
        data.extend(f);
    }
    fs::write(file_path(tmp.path(), &entry("n", "info", 0)), &data).expect("write");
    let want: Vec<usize> = (0..100).filter(|i| ![50, 80].contains(i)).collect();
    assert_eq!(seqs(&collect(tmp.path(), &all())), want);
}

#[test]
fn entries_of_another_file_are_corruption() {
    // A frame that decodes but belongs to another file (as a stray length
    // inside garbage could make happen) is not shown.
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut data = frame(&entry("n", "info", 0));
    data.extend(frame(&entry("other-node", "info", 1)));
    data.extend(frame(&entry("n", "info", 2)));
    fs::write(file_path(tmp.path(), &entry("n", "info", 0)), &data).expect("write");
    assert_eq!(seqs(&collect(tmp.path(), &all())), [0, 2]);
}

#[test]
fn other_files_are_ignored() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut w = Writer::new(tmp.path());
    w.append(&mut entry("n", "info", 0)).expect("append");
    drop(w);
    fs::write(tmp.path().join("notes.txt"), b"hello").expect("write");
    fs::write(tmp.path().join("bad.log"), b"hello").expect("write");
    fs::create_dir(tmp.path().join("a#b#c#d.log")).expect("mkdir");
    assert_eq!(seqs(&collect(tmp.path(), &all())), [0]);
}

#[test]
fn reader_runs_while_the_writer_writes() {
    const N: usize = 20_000;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_owned();
    let writer = thread::spawn(move || {
        let mut w = Writer::new(&dir);
        for i in 0..N {
            w.append(&mut entry("n", "info", i)).expect("append");
            if i % 100 == 99 {
                w.flush().expect("flush");
            }
        }
    });
    let deadline = Instant::now() + PATIENCE;
    let mut passes = 0;
    loop {
        let got = seqs(&collect(tmp.path(), &all()));
        passes += 1;
        // Whatever is visible is a prefix of what was written, in order.
        assert!(
            got.iter().enumerate().all(|(i, s)| i == *s),
            "pass {passes}"
        );
        if got.len() == N {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "saw {} of {N} entries",
            got.len()
        );
    }
    writer.join().expect("writer thread");
}

#[test]
fn cat_filters_and_hides_system_entries() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut w = Writer::new(tmp.path());
    for i in 0..10 {
        let mut e = entry("n", if i % 2 == 0 { "info" } else { "error" }, i);
        if i == 4 {
            e.attrs.extend([SYSTEM_ATTR.to_owned(), String::new()]);
        }
        w.append(&mut e).expect("append");
    }
    drop(w);
    let q = Query::parse(r#"level == "info" || msg == "entry 3""#, false).expect("query");
    assert_eq!(seqs(&collect(tmp.path(), &q)), [0, 2, 3, 6, 8]);
    let q = Query::parse(r#"level == "info" || msg == "entry 3""#, true).expect("query");
    assert_eq!(seqs(&collect(tmp.path(), &q)), [0, 2, 3, 4, 6, 8]);
}

#[test]
fn cat_prints_pretty_lines() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut w = Writer::new(tmp.path());
    let mut want = String::new();
    let mut pp = PrettyPrinter::new(false);
    for i in 0..3 {
        let mut e = entry(["a", "b"][i % 2], "info", i);
        w.append(&mut e).expect("append");
        want.push_str(&pp.format(&e));
        want.push('\n');
    }
    drop(w);
    let mut out = Printer::new(Vec::new(), Format::Pretty { color: false });
    assert_eq!(cat(tmp.path(), &all(), &mut out).expect("cat"), 3);
    let got = String::from_utf8(out.into_inner()).expect("utf-8");
    assert_eq!(got, want);
    assert_eq!(
        got.lines().next(),
        Some(
            "I0601 12:00:00.000000 hello::Reverser      a        main.rs:7            │ entry 0 seq=\"0\""
        )
    );
}

#[test]
fn cat_prints_json_lines() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut w = Writer::new(tmp.path());
    let mut e = entry("076cb5f1-aaaa", "info", 1);
    e.component = "app::cache::Cache".into();
    e.msg = "quote \" and\nnewline".into();
    e.attrs.extend([SYSTEM_ATTR.to_owned(), String::new()]);
    w.append(&mut e).expect("append");
    w.append(&mut entry("076cb5f1-aaaa", "info", 2))
        .expect("append");
    drop(w);
    let mut out = Printer::new(Vec::new(), Format::Json);
    cat(tmp.path(), &all(), &mut out).expect("cat");
    let text = String::from_utf8(out.into_inner()).expect("utf-8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a JSON object"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        serde_json::json!({
            "app": "hello",
            "version": "dep-1234",
            "full_version": "dep-1234-5678",
            "component": "cache::Cache",
            "full_component": "app::cache::Cache",
            "node": "076cb5f1",
            "full_node": "076cb5f1-aaaa",
            "time": "2024-06-01T12:00:00.000001Z",
            "level": "info",
            "file": "src/main.rs",
            "line": 7,
            "msg": "quote \" and\nnewline",
            "attrs": {"seq": "1", SYSTEM_ATTR: ""},
        })
    );
}

/// A `Write` that sends each complete line down a channel.
struct Lines {
    partial: Vec<u8>,
    tx: mpsc::Sender<String>,
}

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line[..i]).into_owned();
            self.tx.send(line).map_err(io::Error::other)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A follower running in a thread; its lines arrive on `lines`.
struct Follower {
    lines: mpsc::Receiver<String>,
    stop: Stop,
    done: mpsc::Receiver<Result<(), Error>>,
}

impl Follower {
    fn start(dir: &Path, query: &str) -> Self {
        let (tx, lines) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let stop = Stop::new().expect("pipe");
        let query = Query::parse(query, false).expect("query");
        let (dir, stopper) = (dir.to_owned(), stop.clone());
        thread::spawn(move || {
            let out = Lines {
                partial: Vec::new(),
                tx,
            };
            let mut printer = Printer::new(out, Format::Json);
            let _ = done_tx.send(follow(&dir, &query, &mut printer, &stopper));
        });
        Follower { lines, stop, done }
    }

    /// The `msg` of the next line.
    fn next_msg(&self) -> String {
        let line = self.lines.recv_timeout(PATIENCE).expect("a line in time");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        v["msg"].as_str().expect("a msg").to_owned()
    }

    fn finish(self) {
        self.stop.stop();
        let result = self
            .done
            .recv_timeout(PATIENCE)
            .expect("follow returns once stopped");
        result.expect("follow succeeded");
    }
}

#[test]
fn follow_prints_old_new_and_later_files() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("logs"); // created by follow
    let f = Follower::start(&dir, r#"!msg.contains("skip")"#);

    let mut w1 = Writer::new(&dir);
    w1.append(&mut entry("a", "info", 0)).expect("append");
    w1.flush().expect("flush");
    assert_eq!(f.next_msg(), "entry 0");

    let start = Instant::now();
    w1.append(&mut entry("a", "info", 1)).expect("append");
    w1.flush().expect("flush");
    assert_eq!(f.next_msg(), "entry 1");
    let latency = start.elapsed();

    // A deployment that starts later: a new file, after a filtered-out and
    // a system entry.
    let mut w2 = Writer::new(&dir);
    let mut skipped = entry("b", "info", 2);
    skipped.msg = "skip me".into();
    let mut sys = entry("b", "info", 3);
    sys.attrs.extend([SYSTEM_ATTR.to_owned(), String::new()]);
    w2.append(&mut skipped).expect("append");
    w2.append(&mut sys).expect("append");
    w2.append(&mut entry("b", "warn", 4)).expect("append");
    w2.flush().expect("flush");
    assert_eq!(f.next_msg(), "entry 4");
    f.finish();
    assert!(latency < PATIENCE);
}

#[test]
fn follow_prints_existing_entries_in_time_order() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut w = Writer::new(tmp.path());
    for i in 0..6 {
        w.append(&mut entry(["a", "b", "c"][i % 3], "info", i))
            .expect("append");
    }
    drop(w);
    let f = Follower::start(tmp.path(), "");
    for i in 0..6 {
        assert_eq!(f.next_msg(), format!("entry {i}"));
    }
    f.finish();
}

#[test]
fn follow_waits_for_a_frame_being_written() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let f = Follower::start(tmp.path(), "");
    // Wait until the follower is watching: it prints this.
    let mut w = Writer::new(tmp.path());
    w.append(&mut entry("a", "info", 0)).expect("append");
    w.flush().expect("flush");
    assert_eq!(f.next_msg(), "entry 0");

    let half_written = entry("b", "info", 1);
    let bytes = frame(&half_written);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(file_path(tmp.path(), &half_written))
        .expect("open");
    file.write_all(&bytes[..bytes.len() / 2]).expect("write");
    // Another file's entry, printed once the follower has seen both files.
    w.append(&mut entry("a", "info", 2)).expect("append");
    w.flush().expect("flush");
    assert_eq!(f.next_msg(), "entry 2");
    assert!(f.lines.try_recv().is_err(), "half a frame was printed");

    file.write_all(&bytes[bytes.len() / 2..]).expect("write");
    assert_eq!(f.next_msg(), "entry 1");
    f.finish();
}

#[test]
fn stop_before_follow_returns_at_once() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let stop = Stop::new().expect("pipe");
    stop.stop();
    stop.stop();
    assert!(stop.is_stopped());
    let mut out = Printer::new(Vec::new(), Format::Json);
    follow(tmp.path(), &all(), &mut out, &stop).expect("follow");
}

#[test]
fn oversized_entries_are_refused_and_the_rest_kept() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut w = Writer::new(tmp.path());
    w.append(&mut entry("n", "info", 0)).expect("append");
    let mut big = entry("n", "info", 1);
    big.msg = "x".repeat(MAX_ENTRY_LEN);
    let err = w.append(&mut big).expect_err("too large");
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
    w.append(&mut entry("n", "info", 2)).expect("append");
    drop(w);
    assert_eq!(seqs(&collect(tmp.path(), &all())), [0, 2]);
}

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Query>();
    send_sync::<Stop>();
    send::<Writer>();
    send::<Printer<io::Stdout>>();
}
