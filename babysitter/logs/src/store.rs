//! The writing side of the store, used by the babysitter, and the file
//! naming shared with the readers.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use weaver_proto::runtime::LogEntry;

use crate::Error;

/// The largest entry the store accepts (protobuf bytes). Readers treat a
/// larger length prefix as corruption, so it must stay well below what a
/// stray 4-byte value is likely to be.
pub(crate) const MAX_ENTRY_LEN: usize = 16 << 20;

/// Permissions of the log directory: logs are private to the user and group.
const DIR_MODE: u32 = 0o750;

/// Permissions of a log file.
const FILE_MODE: u32 = 0o640;

/// Suffix of every log file.
const SUFFIX: &str = ".log";

/// The fields that pick an entry's file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    pub(crate) app: String,
    pub(crate) version: String,
    pub(crate) node: String,
    pub(crate) level: String,
}

/// Appends log entries to the store.
///
/// One process writes each file: the babysitter holds one `Writer` for its
/// deployment and appends everything its children log. Files are created on
/// first use and kept open. Writes are buffered: call [`Writer::flush`] after
/// each batch so that readers in other processes see it, and at teardown.
/// Dropping the writer flushes too (and logs a warning if that fails).
#[derive(Debug)]
pub struct Writer {
    dir: PathBuf,
    files: Vec<OpenFile>,
    /// Indices into `files` by a hash of the entry's key fields, so an append
    /// allocates nothing to find its file.
    index: HashMap<u64, Vec<usize>>,
    /// Scratch space for one encoded frame.
    frame: Vec<u8>,
}

#[derive(Debug)]
struct OpenFile {
    key: FileKey,
    path: PathBuf,
    out: BufWriter<File>,
}

// === impl FileKey ===

impl FileKey {
    /// The file name: `<app>#<version>#<node>#<level>.log`, each part with
    /// `%`, `#`, `/` and NUL percent-escaped so any value makes a valid,
    /// unambiguous name.
    pub(crate) fn file_name(&self) -> String {
        let mut name = String::new();
        for (i, part) in [&self.app, &self.version, &self.node, &self.level]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                name.push('#');
            }
            escape_into(&mut name, part);
        }
        name.push_str(SUFFIX);
        name
    }

    /// Parses a file name made by [`FileKey::file_name`].
    pub(crate) fn parse(name: &str) -> Option<FileKey> {
        let stem = name.strip_suffix(SUFFIX)?;
        let mut parts = stem.split('#');
        let mut next = || parts.next().and_then(unescape);
        let key = FileKey {
            app: next()?,
            version: next()?,
            node: next()?,
            level: next()?,
        };
        parts.next().is_none().then_some(key)
    }

    /// Whether `e` belongs in this file.
    pub(crate) fn holds(&self, app: &str, version: &str, node: &str, level: &str) -> bool {
        self.app == app && self.version == version && self.node == node && self.level == level
    }
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '%' | '#' | '/' | '\0' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
}

fn unescape(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

fn key_hash(app: &str, version: &str, node: &str, level: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (app, version, node, level).hash(&mut h);
    h.finish()
}

// === impl Writer ===

impl Writer {
    /// A writer for the store in `dir`. Nothing is created until the first
    /// entry arrives; then `dir` is created (mode 0750) if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            files: Vec::new(),
            index: HashMap::new(),
            frame: Vec::new(),
        }
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `entry` to its file, creating the file on first use.
    ///
    /// The entry is normalized in place, so a caller that also prints it
    /// shows what was stored: a `time_micros` of 0 becomes the current time,
    /// and the level is lower-cased (queries compare levels in lower case).
    ///
    /// The entry is buffered; see [`Writer::flush`].
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] for an entry over 16 MiB, [`Error::CreateDir`] or
    /// [`Error::Open`] if its file cannot be created, [`Error::Write`] if
    /// writing fails. Entries appended before remain stored.
    pub fn append(&mut self, entry: &mut LogEntry) -> Result<(), Error> {
        normalize(entry);
        let len = entry.encoded_len();
        if len > MAX_ENTRY_LEN {
            return Err(Error::TooLarge {
                len,
                max: MAX_ENTRY_LEN,
            });
        }
        self.frame.clear();
        self.frame.extend_from_slice(&(len as u32).to_le_bytes());
        entry
            .encode(&mut self.frame)
            .expect("a Vec grows to fit any message");
        let i = self.file_for(entry)?;
        let file = &mut self.files[i];
        file.out
            .write_all(&self.frame)
            .map_err(|source| Error::Write {
                path: file.path.clone(),
                source,
            })
    }

    /// Writes out everything appended so far, so that readers see it.
    ///
    /// # Errors
    ///
    /// [`Error::Write`] for the first file that fails; the others are still
    /// flushed.
    pub fn flush(&mut self) -> Result<(), Error> {
        let mut first = None;
        for file in &mut self.files {
            if let Err(source) = file.out.flush() {
                first.get_or_insert(Error::Write {
                    path: file.path.clone(),
                    source,
                });
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The index of `entry`'s open file, opening it if needed.
    fn file_for(&mut self, e: &LogEntry) -> Result<usize, Error> {
        let h = key_hash(&e.app, &e.version, &e.node, &e.level);
        if let Some(candidates) = self.index.get(&h) {
            for &i in candidates {
                if self.files[i]
                    .key
                    .holds(&e.app, &e.version, &e.node, &e.level)
                {
                    return Ok(i);
                }
            }
        }
        let key = FileKey {
            app: e.app.clone(),
            version: e.version.clone(),
            node: e.node.clone(),
            level: e.level.clone(),
        };
        let file = self.open(key)?;
        self.files.push(file);
        let i = self.files.len() - 1;
        self.index.entry(h).or_default().push(i);
        Ok(i)
    }

    fn open(&self, key: FileKey) -> Result<OpenFile, Error> {
        create_dir(&self.dir)?;
        let path = self.dir.join(key.file_name());
        // Append, never truncate: a file that exists holds entries of the
        // same weavelet (say, from before a babysitter restart).
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|source| Error::Open {
                path: path.clone(),
                source,
            })?;
        tracing::debug!(path = %path.display(), "created log file");
        Ok(OpenFile {
            key,
            path,
            out: BufWriter::with_capacity(32 << 10, file),
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "log entries lost at shutdown");
        }
    }
}

/// Stamps a missing time and lower-cases the level.
fn normalize(e: &mut LogEntry) {
    if e.time_micros == 0 {
        e.time_micros = now_micros();
    }
    if e.level.bytes().any(|b| b.is_ascii_uppercase()) {
        e.level.make_ascii_lowercase();
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Creates the log directory (and its parents) with mode 0750.
pub(crate) fn create_dir(dir: &Path) -> Result<(), Error> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| Error::CreateDir {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(app: &str, version: &str, node: &str, level: &str) -> FileKey {
        FileKey {
            app: app.into(),
            version: version.into(),
            node: node.into(),
            level: level.into(),
        }
    }

    #[test]
    fn file_names_round_trip() {
        let k = key("hello", "dep-1", "node-1", "info");
        assert_eq!(k.file_name(), "hello#dep-1#node-1#info.log");
        assert_eq!(FileKey::parse(&k.file_name()), Some(k));

        let odd = key("a#b/c%d", "", "n\0", "x%");
        assert_eq!(odd.file_name(), "a%23b%2Fc%25d##n%00#x%25.log");
        assert_eq!(FileKey::parse(&odd.file_name()), Some(odd));
    }

    #[test]
    fn bad_file_names_are_refused() {
        for name in [
            "a#b#c.log",
            "a#b#c#d#e.log",
            "a#b#c#d.txt",
            "a#b#c#%zz.log",
            "a#b#c#%2.log",
            "a#b#c#%FF.log",
        ] {
            assert_eq!(FileKey::parse(name), None, "{name}");
        }
    }

    #[test]
    fn normalize_stamps_time_and_lowercases_level() {
        let mut e = LogEntry {
            level: "DEBUG".into(),
            ..Default::default()
        };
        normalize(&mut e);
        assert_eq!(e.level, "debug");
        assert!(e.time_micros > 1_600_000_000_000_000);
        e.time_micros = 5;
        normalize(&mut e);
        assert_eq!(e.time_micros, 5);
    }
}
