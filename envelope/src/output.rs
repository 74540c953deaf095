//! The child's stdout and stderr, turned into log entries line by line.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::AsyncReadExt;
use weaver_proto::runtime::{LogEntry, LogEntryBatch, WeaveletArgs};

use crate::child::BoxRead;
use crate::handler::EnvelopeHandler;
use crate::progress::Progress;

/// How many stderr lines an error about an early exit quotes.
const TAIL_LINES: usize = 20;

/// Longest line kept whole; a longer one is cut into pieces of this size, so
/// a child that never writes a newline cannot make us buffer without bound.
const MAX_LINE: usize = 64 * 1024;

/// Size of one read; a read returns what the pipe holds, up to this, and
/// every complete line in it goes out as one batch.
const READ_SIZE: usize = 64 * 1024;

/// Which output stream; also the entry's component and level.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// The last lines of stderr, for error messages.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    lines: Mutex<VecDeque<String>>,
}

/// What every entry of one child carries.
#[derive(Debug)]
pub(crate) struct Origin {
    app: String,
    deployment_id: String,
    node: String,
}

/// Splits a byte stream into lines.
#[derive(Debug, Default)]
struct Lines {
    buf: Vec<u8>,
}

// === impl Stream ===

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

// === impl Tail ===

impl Tail {
    fn push(&self, lines: &[String]) {
        let mut tail = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        for line in lines {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.clone());
        }
    }

    /// The kept lines, oldest first.
    pub(crate) fn lines(&self) -> Vec<String> {
        let tail = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect()
    }
}

// === impl Origin ===

impl Origin {
    pub(crate) fn new(args: &WeaveletArgs) -> Self {
        Self {
            app: args.app.clone(),
            deployment_id: args.deployment_id.clone(),
            node: args.id.clone(),
        }
    }

    fn entry(&self, stream: Stream, msg: String, time_micros: i64) -> LogEntry {
        LogEntry {
            app: self.app.clone(),
            version: self.deployment_id.clone(),
            component: stream.as_str().to_string(),
            node: self.node.clone(),
            time_micros,
            level: stream.as_str().to_string(),
            file: String::new(),
            line: -1,
            msg,
            attrs: Vec::new(),
            typed_attrs: Vec::new(),
        }
    }
}

// === impl Lines ===

impl Lines {
    /// Appends bytes and returns every line they complete.
    fn push(&mut self, data: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(data);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(end) = self.next_break(start) {
            lines.push(decode(&self.buf[start..end]));
            start = if self.buf.get(end) == Some(&b'\n') {
                end + 1
            } else {
                end
            };
        }
        self.buf.drain(..start);
        lines
    }

    /// The end of the line starting at `start`: its newline, or `MAX_LINE`
    /// bytes on.
    fn next_break(&self, start: usize) -> Option<usize> {
        let rest = &self.buf[start..];
        match rest.iter().position(|b| *b == b'\n') {
            Some(n) if n <= MAX_LINE => Some(start + n),
            _ if rest.len() > MAX_LINE => Some(start + MAX_LINE),
            _ => None,
        }
    }

    /// The final line, if the stream ended without a newline.
    fn finish(&mut self) -> Option<String> {
        if self.buf.is_empty() {
            return None;
        }
        let line = decode(&self.buf);
        self.buf.clear();
        Some(line)
    }
}

fn decode(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Reads `reader` to its end, handing each batch of lines to the handler.
///
/// `tail`, if given, keeps the last lines; `progress` follows each batch.
pub(crate) async fn capture<H: EnvelopeHandler>(
    mut reader: BoxRead,
    stream: Stream,
    origin: Arc<Origin>,
    handler: Arc<H>,
    tail: Option<Arc<Tail>>,
    progress: Arc<Progress>,
) {
    let mut lines = Lines::default();
    let mut chunk = vec![0u8; READ_SIZE];
    loop {
        let batch = match reader.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => lines.push(&chunk[..n]),
            Err(error) => {
                tracing::warn!(%error, stream = stream.as_str(), "cannot read child output");
                break;
            }
        };
        let delivery = deliver(batch, stream, &origin, &*handler, tail.as_deref());
        progress.handling(delivery).await;
    }
    if let Some(last) = lines.finish() {
        let delivery = deliver(vec![last], stream, &origin, &*handler, tail.as_deref());
        progress.handling(delivery).await;
    }
    progress.made();
}

async fn deliver<H: EnvelopeHandler>(
    lines: Vec<String>,
    stream: Stream,
    origin: &Origin,
    handler: &H,
    tail: Option<&Tail>,
) {
    if lines.is_empty() {
        return;
    }
    if let Some(tail) = tail {
        tail.push(&lines);
    }
    let now = now_micros();
    let entries = lines
        .into_iter()
        .map(|msg| origin.entry(stream, msg, now))
        .collect();
    handler.handle_log_batch(LogEntryBatch { entries }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_partial_lines_kept() {
        let mut lines = Lines::default();
        assert_eq!(lines.push(b"a\nb"), vec!["a"]);
        assert_eq!(lines.push(b"c\r\n\nd"), vec!["bc", ""]);
        assert_eq!(lines.finish(), Some("d".to_string()));
        assert_eq!(lines.finish(), None);
    }

    #[test]
    fn overlong_lines_are_cut() {
        let mut lines = Lines::default();
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        let got = lines.push(&long);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|l| l.len() == MAX_LINE));
        assert_eq!(lines.finish().map(|l| l.len()), Some(5));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let mut lines = Lines::default();
        assert_eq!(lines.push(b"ok \xff\n"), vec!["ok \u{fffd}"]);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let tail = Tail::default();
        let lines: Vec<String> = (0..30).map(|i| i.to_string()).collect();
        tail.push(&lines);
        let kept = tail.lines();
        assert_eq!(kept.len(), TAIL_LINES);
        assert_eq!(kept.first().map(String::as_str), Some("10"));
        assert_eq!(kept.last().map(String::as_str), Some("29"));
    }
}
