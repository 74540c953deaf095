//! The reading side of the store: one tail reader per file, merged in time
//! order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use weaver_proto::runtime::LogEntry;

use crate::store::{FileKey, MAX_ENTRY_LEN};
use crate::view::EntryView;
use crate::{Error, Printer, Query};

mod follow;

pub use follow::{Stop, follow};

/// How much of a file is read at a time.
const CHUNK: usize = 64 << 10;

/// Size of a frame's length prefix.
const PREFIX: usize = 4;

/// Reads the entries of one log file, in file order, skipping corrupt data.
#[derive(Debug)]
pub(crate) struct FileReader {
    key: FileKey,
    path: PathBuf,
    file: File,
    /// `buf[pos..end]` holds bytes read but not yet consumed; the rest of
    /// `buf` is room for the next read.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// The file offset of `buf[0]`.
    base: u64,
    /// Whether the last read found nothing more.
    at_eof: bool,
    /// While skipping corrupt data: the file offset where it began.
    skipping_since: Option<u64>,
}

/// What the bytes at the read position hold.
enum Frame {
    /// A whole frame with a payload of this many bytes.
    Complete(usize),
    /// The start of a frame whose rest is not (yet) in the buffer.
    Partial,
    /// A length no valid frame has.
    Bad,
}

/// The next matching entry of every reader, merged by time.
#[derive(Debug, Default)]
pub(crate) struct Merger {
    pub(crate) readers: Vec<FileReader>,
    heads: Vec<Option<LogEntry>>,
    /// (time, reader index) of each head; the index breaks ties, so the
    /// output is deterministic.
    heap: BinaryHeap<Reverse<(i64, usize)>>,
}

/// Calls `f` with every stored entry that matches `query`, in time order
/// (a k-way merge of the files, which are each in time order), and returns
/// how many there were. Files that the query rules out by name (app,
/// deployment, weavelet, level) are not read at all.
///
/// Corrupt or truncated data in a file is skipped with a warning; so is a
/// file that cannot be read. A missing `dir` holds no entries.
///
/// # Errors
///
/// [`Error::ListDir`] if `dir` cannot be listed, or [`Error::Output`] with
/// the first error `f` returns (which stops the scan).
pub fn for_each(
    dir: &Path,
    query: &Query,
    mut f: impl FnMut(LogEntry) -> io::Result<()>,
) -> Result<u64, Error> {
    let mut merger = Merger::default();
    for (name, key) in list(dir)? {
        if query.may_match_file(&key) {
            merger.open(dir, &name, key);
        }
    }
    merger.fill(query, true);
    let mut n = 0;
    while let Some(e) = merger.pop(query, true) {
        f(e).map_err(|source| Error::Output { source })?;
        n += 1;
    }
    Ok(n)
}

/// Prints every stored entry that matches `query`, in time order, and
/// returns how many there were; see [`for_each`].
///
/// # Errors
///
/// As [`for_each`]; [`Error::Output`] also if flushing the output fails.
pub fn cat<W: Write>(dir: &Path, query: &Query, out: &mut Printer<W>) -> Result<u64, Error> {
    let n = for_each(dir, query, |e| out.print(&e))?;
    out.flush().map_err(|source| Error::Output { source })?;
    Ok(n)
}

/// Removes the log store in `dir` (the directory and everything in it).
/// A missing `dir` is not an error.
///
/// # Errors
///
/// [`Error::Remove`] if removing fails.
pub fn purge(dir: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Remove {
            path: dir.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The log files in `dir`, by name, with their keys. Other files are
/// ignored, with a warning for those that look like log files.
pub(crate) fn list(dir: &Path) -> Result<Vec<(String, FileKey)>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::ListDir {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::ListDir {
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name();
        if let Some(key) = name.to_str().and_then(log_file_key) {
            files.push((name.to_string_lossy().into_owned(), key));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// The key of a log file's name, or `None` (with a warning if it ends in
/// `.log` but is not a name the store makes).
pub(crate) fn log_file_key(name: &str) -> Option<FileKey> {
    let key = FileKey::parse(name);
    if key.is_none() && name.ends_with(".log") {
        tracing::warn!(name, "ignoring a file that is not a weaver log file");
    }
    key
}

// === impl Merger ===

impl Merger {
    /// Adds a reader for the file `name` in `dir`; a file that cannot be
    /// opened is skipped with a warning.
    pub(crate) fn open(&mut self, dir: &Path, name: &str, key: FileKey) {
        let path = dir.join(name);
        match File::open(&path) {
            Ok(file) => {
                self.readers.push(FileReader::new(key, path, file));
                self.heads.push(None);
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot open log file; skipping it");
            }
        }
    }

    /// Reads the next matching entry of every reader that has none.
    pub(crate) fn fill(&mut self, query: &Query, to_end: bool) {
        for i in 0..self.readers.len() {
            if self.heads[i].is_none() {
                self.refill(i, query, to_end);
            }
        }
    }

    /// The earliest entry among the readers' next ones, reading on in the
    /// reader it came from.
    pub(crate) fn pop(&mut self, query: &Query, to_end: bool) -> Option<LogEntry> {
        let Reverse((_, i)) = self.heap.pop()?;
        let e = self.heads[i].take();
        self.refill(i, query, to_end);
        e
    }

    fn refill(&mut self, i: usize, query: &Query, to_end: bool) {
        let reader = &mut self.readers[i];
        match reader.next(query, to_end) {
            Ok(Some(e)) => {
                self.heap.push(Reverse((e.time_micros, i)));
                self.heads[i] = Some(e);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(path = %reader.path.display(), %error, "cannot read log file");
            }
        }
    }
}

// === impl FileReader ===

impl FileReader {
    pub(crate) fn new(key: FileKey, path: PathBuf, file: File) -> Self {
        Self {
            key,
            path,
            file,
            buf: Vec::new(),
            pos: 0,
            end: 0,
            base: 0,
            at_eof: false,
            skipping_since: None,
        }
    }

    /// The next entry that matches `query`, or `None` if the file holds no
    /// further complete entry for now.
    ///
    /// With `to_end`, the file is taken to be complete: bytes at its end that
    /// do not make a whole frame are skipped as truncated. Without, they are
    /// a frame still being written, and a later call reads it.
    pub(crate) fn next(&mut self, query: &Query, to_end: bool) -> io::Result<Option<LogEntry>> {
        loop {
            match self.frame() {
                Frame::Complete(len) => {
                    if let Some(matched) = self.take(len, query) {
                        if matched.is_some() {
                            return Ok(matched);
                        }
                    } else {
                        self.skip_byte();
                    }
                }
                Frame::Bad => self.skip_byte(),
                Frame::Partial => {
                    if !(to_end && self.at_eof) && self.fill()? > 0 {
                        continue;
                    }
                    if !to_end || self.pos == self.end {
                        if to_end {
                            self.end_skip();
                        }
                        return Ok(None);
                    }
                    // A frame cut short: look for a whole one in what is left.
                    self.skip_byte();
                }
            }
        }
    }

    fn frame(&self) -> Frame {
        let avail = &self.buf[self.pos..self.end];
        let Some(prefix) = avail.first_chunk::<PREFIX>() else {
            return Frame::Partial;
        };
        let len = u32::from_le_bytes(*prefix) as usize;
        if len > MAX_ENTRY_LEN {
            Frame::Bad
        } else if avail.len() < PREFIX + len {
            Frame::Partial
        } else {
            Frame::Complete(len)
        }
    }

    /// Consumes the frame at the read position if it is a valid entry of
    /// this file (`None` if not), giving the entry if it matches `query`.
    fn take(&mut self, len: usize, query: &Query) -> Option<Option<LogEntry>> {
        let start = self.pos + PREFIX;
        let view = EntryView::decode(&self.buf[start..start + len])
            // An entry of another file is a stray prefix inside corrupt data.
            .filter(|v| self.key.holds(v.app, v.version, v.node, v.level))?;
        let matched = query.matches_view(&view).then(|| view.to_entry());
        self.end_skip();
        self.pos = start + len;
        Some(matched)
    }

    fn skip_byte(&mut self) {
        self.skipping_since
            .get_or_insert(self.base + self.pos as u64);
        self.pos += 1;
    }

    /// Reports the corrupt data skipped since the last valid frame.
    fn end_skip(&mut self) {
        if let Some(start) = self.skipping_since.take() {
            let end = self.base + self.pos as u64;
            tracing::warn!(
                path = %self.path.display(),
                offset = start,
                bytes = end - start,
                "skipped corrupt or truncated log data",
            );
        }
    }

    /// Reads more of the file; returns how many bytes.
    fn fill(&mut self) -> io::Result<usize> {
        // Keep the unconsumed bytes (at most a partial frame) at the front,
        // and make room; the buffer is zeroed only when it grows.
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.buf.len() - self.end < CHUNK / 2 {
            self.buf.resize((self.end + CHUNK).next_power_of_two(), 0);
        }
        let n = loop {
            match self.file.read(&mut self.buf[self.end..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        self.end += n;
        self.at_eof = n == 0;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
