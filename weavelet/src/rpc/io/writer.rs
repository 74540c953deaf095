//! The write queue of one connection, shared by every task that sends on
//! it and by the flush task that waits for room.

use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Poll, ready};

use super::{Stream, lock};
use crate::rpc::wire::{self, Kind};

/// The frames waiting to be written on one connection.
///
/// A sender writes its frame straight to the socket when nothing is queued
/// ahead of it; what does not fit is queued for a flush task. While corked,
/// frames are only queued, and written together when uncorked (one system
/// call for a batch of replies).
pub(crate) struct Writer {
    io: Arc<Stream>,
    state: Mutex<WriteState>,
}

#[derive(Default)]
struct WriteState {
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    pos: usize,
    /// A flush task owns the queue.
    flushing: bool,
    corked: bool,
    failed: Option<String>,
}

// === impl Writer ===

impl Writer {
    pub(crate) fn new(io: Arc<Stream>) -> Arc<Writer> {
        Arc::new(Writer {
            io,
            state: Mutex::new(WriteState::default()),
        })
    }

    /// Queues a frame and writes what it can.
    ///
    /// # Errors
    ///
    /// If the connection can no longer be written.
    pub(crate) fn send(
        self: &Arc<Self>,
        kind: Kind,
        id: u64,
        parts: &[&[u8]],
    ) -> Result<(), String> {
        let mut st = lock(&self.state);
        if let Some(reason) = &st.failed {
            return Err(reason.clone());
        }
        wire::put_frame_vec(&mut st.buf, kind, id, parts);
        if !st.corked && !st.flushing {
            self.write_out(&mut st);
        }
        match &st.failed {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }

    /// Queues frames without writing until [`Writer::uncork`].
    pub(crate) fn cork(&self) {
        lock(&self.state).corked = true;
    }

    /// Writes what was queued while corked.
    pub(crate) fn uncork(self: &Arc<Self>) {
        let mut st = lock(&self.state);
        st.corked = false;
        if !st.flushing && st.failed.is_none() {
            self.write_out(&mut st);
        }
    }

    /// Writes queued bytes until done or the socket is full; in the latter
    /// case hands the rest to a flush task.
    fn write_out(self: &Arc<Self>, st: &mut WriteState) {
        while st.pos < st.buf.len() {
            match self.io.try_write(&st.buf[st.pos..]) {
                Ok(0) => {
                    self.fail(st, "connection closed while writing".to_string());
                    return;
                }
                Ok(n) => st.pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    st.flushing = true;
                    tokio::spawn(flush(self.clone()));
                    return;
                }
                Err(e) => {
                    self.fail(st, format!("write failed: {e}"));
                    return;
                }
            }
        }
        match self.io.try_flush() {
            Ok(true) => st.clear(),
            Ok(false) => {
                st.flushing = true;
                tokio::spawn(flush(self.clone()));
            }
            Err(e) => self.fail(st, format!("write failed: {e}")),
        }
    }

    fn fail(&self, st: &mut WriteState, reason: String) {
        st.failed = Some(reason);
        st.buf = Vec::new();
        st.pos = 0;
        // Our reader and the peer see the end too.
        self.io.shutdown();
    }
}

impl WriteState {
    fn clear(&mut self) {
        self.pos = 0;
        self.buf.clear();
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::new();
        }
    }
}

/// Writes the queue out as the socket makes room.
async fn flush(w: Arc<Writer>) {
    std::future::poll_fn(|cx| {
        let mut st = lock(&w.state);
        loop {
            if st.failed.is_some() {
                st.flushing = false;
                w.io.write_idle();
                return Poll::Ready(());
            }
            if st.pos == st.buf.len() {
                if let Err(e) = ready!(w.io.poll_flush(cx)) {
                    w.fail(&mut st, format!("write failed: {e}"));
                    continue;
                }
                st.clear();
                st.flushing = false;
                w.io.write_idle();
                return Poll::Ready(());
            }
            let pos = st.pos;
            match ready!(w.io.poll_write(cx, &st.buf[pos..])) {
                Ok(0) => w.fail(&mut st, "connection closed while writing".to_string()),
                Ok(n) => st.pos += n,
                Err(e) => w.fail(&mut st, format!("write failed: {e}")),
            }
        }
    })
    .await;
}
