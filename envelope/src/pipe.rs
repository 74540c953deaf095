//! The two control streams, wrapped for what the connection does not tell.
//!
//! The envelope → weavelet stream is closable from outside its writer. The
//! connection's writer task owns the stream and ends only when every
//! clone of the connection is gone, but request tasks and [`Handle`]s hold
//! clones for as long as they like. Dropping an [`Envelope`] must still close
//! the pipe at once (a weavelet exits on end of stream), so the stream sits in
//! a shared slot that [`Closer::close`] empties.
//!
//! The weavelet → envelope stream records whether it reached its end. The
//! connection keeps only the first reason it closed, and a failed write (the
//! weavelet closed fd 3) may come first; if the reading stopped although the
//! stream never ended, the frame codec rejected the bytes.
//!
//! [`Handle`]: crate::Handle
//! [`Envelope`]: crate::Envelope

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::child::{BoxRead, BoxWrite};

/// The writing end given to the connection.
pub(crate) struct Writer {
    slot: Arc<Mutex<Slot>>,
}

/// Closes the stream behind a [`Writer`].
#[derive(Clone)]
pub(crate) struct Closer {
    slot: Arc<Mutex<Slot>>,
}

/// The reading end given to the connection.
pub(crate) struct Reader {
    stream: BoxRead,
    ended: Arc<AtomicBool>,
}

/// Tells whether a [`Reader`]'s stream reached its end (or failed).
#[derive(Debug, Clone)]
pub(crate) struct ReadEnd {
    ended: Arc<AtomicBool>,
}

#[derive(Default)]
struct Slot {
    /// The stream, until closed.
    stream: Option<BoxWrite>,
    /// The writer task, if it waits for the stream to accept bytes; woken on
    /// close so it learns the stream is gone.
    waiting: Option<Waker>,
}

/// A writer over `stream` and the closer for it.
pub(crate) fn closable(stream: BoxWrite) -> (Writer, Closer) {
    let slot = Arc::new(Mutex::new(Slot {
        stream: Some(stream),
        waiting: None,
    }));
    (Writer { slot: slot.clone() }, Closer { slot })
}

/// A reader over `stream` and the watcher of its end.
pub(crate) fn watched(stream: BoxRead) -> (Reader, ReadEnd) {
    let ended = Arc::new(AtomicBool::new(false));
    (
        Reader {
            stream,
            ended: ended.clone(),
        },
        ReadEnd { ended },
    )
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // A poisoned slot still holds a valid stream or none.
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the envelope closed the pipe")
}

// === impl Writer ===

impl Writer {
    fn poll_with<T>(
        &self,
        cx: &mut Context<'_>,
        if_closed: impl FnOnce() -> io::Result<T>,
        op: impl FnOnce(Pin<&mut BoxWrite>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let mut slot = lock(&self.slot);
        let Some(stream) = slot.stream.as_mut() else {
            return Poll::Ready(if_closed());
        };
        let poll = op(Pin::new(stream), cx);
        if poll.is_pending() {
            slot.waiting = Some(cx.waker().clone());
        }
        poll
    }
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(cx, || Err(closed()), |s, cx| s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_with(cx, || Ok(()), |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_with(cx, || Ok(()), |s, cx| s.poll_shutdown(cx))
    }
}

// === impl Reader ===

impl AsyncRead for Reader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let (before, room) = (buf.filled().len(), buf.remaining() > 0);
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        let ended = match &poll {
            Poll::Ready(Ok(())) => room && buf.filled().len() == before,
            Poll::Ready(Err(_)) => true,
            Poll::Pending => false,
        };
        if ended {
            self.ended.store(true, Ordering::Release);
        }
        poll
    }
}

// === impl ReadEnd ===

impl ReadEnd {
    /// Whether the stream ended or failed.
    pub(crate) fn saw_end(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

// === impl Closer ===

impl Closer {
    /// Closes the stream; later writes fail with `BrokenPipe`.
    pub(crate) fn close(&self) {
        let (stream, waiting) = {
            let mut slot = lock(&self.slot);
            (slot.stream.take(), slot.waiting.take())
        };
        drop(stream);
        if let Some(waker) = waiting {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn close_ends_the_peer_stream_and_fails_later_writes() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let (mut writer, closer) = closable(Box::new(ours));
        writer.write_all(b"hi").await.expect("write");
        closer.close();
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"hi");
        let err = writer.write_all(b"more").await.expect_err("closed");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test]
    async fn reader_tells_end_of_stream_from_a_stopped_reader() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let (mut reader, end) = watched(Box::new(ours));
        theirs.write_all(b"abc").await.expect("write");
        let mut buf = [0u8; 3];
        reader.read_exact(&mut buf).await.expect("read");
        assert!(!end.saw_end(), "stopped reading, stream still open");
        drop(theirs);
        assert_eq!(reader.read(&mut buf).await.expect("eof"), 0);
        assert!(end.saw_end());
    }

    #[tokio::test]
    async fn close_wakes_a_writer_blocked_on_a_full_stream() {
        let (ours, _theirs) = tokio::io::duplex(4);
        let (mut writer, closer) = closable(Box::new(ours));
        let blocked = tokio::spawn(async move { writer.write_all(b"more than four").await });
        // Let the writer fill the stream and park.
        tokio::task::yield_now().await;
        closer.close();
        let result = tokio::time::timeout(std::time::Duration::from_secs(5), blocked)
            .await
            .expect("writer woke")
            .expect("no panic");
        assert!(result.is_err());
    }
}
