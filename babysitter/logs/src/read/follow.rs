//! Following the store: printing entries as writers append them.

use std::collections::HashSet;
use std::io::{self, PipeReader, PipeWriter, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::{Merger, list, log_file_key};
use crate::store::create_dir;
use crate::{Error, Printer, Query};

/// Ends a [`follow`] from another thread (or a signal handler's task).
///
/// Cloning gives another handle to the same switch. Once stopped, it stays
/// stopped.
#[derive(Debug, Clone)]
pub struct Stop {
    inner: Arc<StopInner>,
}

#[derive(Debug)]
struct StopInner {
    stopped: AtomicBool,
    /// A byte is written to `tx` on stop, waking the follower's `poll`.
    rx: PipeReader,
    tx: PipeWriter,
}

/// Follows the store in `dir`: prints every stored entry that matches
/// `query`, in time order, then keeps printing new ones as they are written,
/// including those of files created later (deployments that start after
/// the call), until `stop` is stopped.
///
/// Entries are merged in time order across files as far as what is written
/// allows: an entry is printed once every file has either a later entry or
/// nothing more to read. A frame still being written is waited for.
/// Changes are noticed through inotify, so a flushed entry is printed at
/// once. `dir` is created if missing, so that it can be watched.
///
/// # Errors
///
/// [`Error::CreateDir`], [`Error::ListDir`], [`Error::Watch`] if the
/// directory cannot be prepared or watched, [`Error::Output`] if writing
/// fails.
pub fn follow<W: Write>(
    dir: &Path,
    query: &Query,
    out: &mut Printer<W>,
    stop: &Stop,
) -> Result<(), Error> {
    create_dir(dir)?;
    let watch_error = |e: Errno| Error::Watch {
        path: dir.to_owned(),
        source: io::Error::from(e),
    };
    let inotify =
        Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(watch_error)?;
    // Watch before listing, so that no file created in between is missed.
    let mask = AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_MODIFY;
    inotify.add_watch(dir, mask).map_err(watch_error)?;

    let mut merger = Merger::default();
    let mut known = HashSet::new();
    add_new_files(dir, query, &mut merger, &mut known)?;
    loop {
        drain(&mut merger, query, out)?;
        if !wait(&inotify, stop).map_err(watch_error)? {
            return Ok(());
        }
        match read_events(&inotify).map_err(watch_error)? {
            Events::Overflow => add_new_files(dir, query, &mut merger, &mut known)?,
            Events::Created(names) => {
                for name in names {
                    add_file(dir, &name, query, &mut merger, &mut known);
                }
            }
        }
    }
}

/// What inotify reported since the last read.
enum Events {
    /// Names of files created or moved into the directory.
    Created(Vec<String>),
    /// The event queue overflowed: events were lost.
    Overflow,
}

/// Prints everything that can be printed in time order now.
fn drain<W: Write>(merger: &mut Merger, query: &Query, out: &mut Printer<W>) -> Result<(), Error> {
    merger.fill(query, false);
    while let Some(e) = merger.pop(query, false) {
        out.print(&e).map_err(|source| Error::Output { source })?;
    }
    out.flush().map_err(|source| Error::Output { source })
}

/// Waits for an inotify event or `stop`; false if stopped.
fn wait(inotify: &Inotify, stop: &Stop) -> Result<bool, Errno> {
    loop {
        if stop.is_stopped() {
            return Ok(false);
        }
        let mut fds = [
            PollFd::new(inotify.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.inner.rx.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {
                let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
                if ready(&fds[1]) {
                    return Ok(false);
                }
                if ready(&fds[0]) {
                    return Ok(true);
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads all pending events.
fn read_events(inotify: &Inotify) -> Result<Events, Errno> {
    let mut created = Vec::new();
    loop {
        match inotify.read_events() {
            Ok(events) => {
                for event in events {
                    if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                        return Ok(Events::Overflow);
                    }
                    let new = AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO;
                    if event.mask.intersects(new)
                        && let Some(name) = event.name.and_then(|n| n.into_string().ok())
                    {
                        created.push(name);
                    }
                }
            }
            Err(Errno::EAGAIN) => return Ok(Events::Created(created)),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Adds a reader for each log file in `dir` not yet `known`.
fn add_new_files(
    dir: &Path,
    query: &Query,
    merger: &mut Merger,
    known: &mut HashSet<String>,
) -> Result<(), Error> {
    for (name, _) in list(dir)? {
        add_file(dir, &name, query, merger, known);
    }
    Ok(())
}

fn add_file(
    dir: &Path,
    name: &str,
    query: &Query,
    merger: &mut Merger,
    known: &mut HashSet<String>,
) {
    if known.contains(name) {
        return;
    }
    let Some(key) = log_file_key(name) else {
        return;
    };
    known.insert(name.to_owned());
    if query.may_match_file(&key) {
        tracing::debug!(name, "following new log file");
        merger.open(dir, name, key);
    }
}

// === impl Stop ===

impl Stop {
    /// A switch, not yet stopped.
    ///
    /// # Errors
    ///
    /// If the process is out of file descriptors (it uses a pipe).
    pub fn new() -> io::Result<Self> {
        let (rx, tx) = io::pipe()?;
        Ok(Self {
            inner: Arc::new(StopInner {
                stopped: AtomicBool::new(false),
                rx,
                tx,
            }),
        })
    }

    /// Stops every [`follow`] using this switch, now or later.
    pub fn stop(&self) {
        if !self.inner.stopped.swap(true, Ordering::SeqCst) {
            // One byte never blocks on an empty pipe; if it failed, the flag
            // still ends the follower at its next wake-up.
            let _ = (&self.inner.tx).write(&[1]);
        }
    }

    /// Whether [`Stop::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }
}
