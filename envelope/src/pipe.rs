//! The two control streams, wrapped for what the connection cannot do.
//!
//! The connection's reader and writer tasks own the streams and end only at
//! end of stream or when every clone of the connection is gone, but request
//! tasks and [`Handle`]s hold clones for as long as they like. The envelope
//! must still be able to close the pipe to the weavelet at once (dropping an
//! [`Envelope`]: a weavelet exits on end of stream) and to stop reading a
//! pipe that a process the child left behind holds open. So each stream sits
//! in a shared slot that [`Pipes`] can empty.
//!
//! The weavelet → envelope stream also records whether it reached its end.
//! The connection keeps only the first reason it closed, and a failed write
//! (the weavelet closed fd 3) may come first; if the reading stopped although
//! the stream never ended, the frame codec rejected the bytes.
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

/// The envelope → weavelet end given to the connection.
pub(crate) struct Writer {
    slot: Arc<Slot<BoxWrite>>,
}

/// The weavelet → envelope end given to the connection.
pub(crate) struct Reader {
    slot: Arc<Slot<BoxRead>>,
    ended: Arc<AtomicBool>,
}

/// Control over both streams, outside the connection.
#[derive(Clone)]
pub(crate) struct Pipes {
    writer: Arc<Slot<BoxWrite>>,
    reader: Arc<Slot<BoxRead>>,
    /// Whether the weavelet → envelope stream ended or failed.
    ended: Arc<AtomicBool>,
}

/// A stream until closed.
struct Slot<T> {
    inner: Mutex<SlotInner<T>>,
}

struct SlotInner<T> {
    stream: Option<T>,
    /// The task waiting on the stream, if any; woken on close so it learns
    /// the stream is gone.
    waiting: Option<Waker>,
}

/// Wraps the two control streams.
pub(crate) fn wrap(to_weavelet: BoxWrite, from_weavelet: BoxRead) -> (Writer, Reader, Pipes) {
    let writer = Arc::new(Slot::new(to_weavelet));
    let reader = Arc::new(Slot::new(from_weavelet));
    let ended = Arc::new(AtomicBool::new(false));
    let pipes = Pipes {
        writer: writer.clone(),
        reader: reader.clone(),
        ended: ended.clone(),
    };
    (
        Writer { slot: writer },
        Reader {
            slot: reader,
            ended,
        },
        pipes,
    )
}

// === impl Slot ===

impl<T: Unpin> Slot<T> {
    fn new(stream: T) -> Self {
        Self {
            inner: Mutex::new(SlotInner {
                stream: Some(stream),
                waiting: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotInner<T>> {
        // A poisoned slot still holds a valid stream or none.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Polls `op` on the stream, or returns `if_closed()` once it is gone.
    fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        if_closed: impl FnOnce() -> io::Result<R>,
        op: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        let mut slot = self.lock();
        let Some(stream) = slot.stream.as_mut() else {
            return Poll::Ready(if_closed());
        };
        let poll = op(Pin::new(stream), cx);
        if poll.is_pending() {
            slot.waiting = Some(cx.waker().clone());
        }
        poll
    }

    fn close(&self) {
        let (stream, waiting) = {
            let mut slot = self.lock();
            (slot.stream.take(), slot.waiting.take())
        };
        drop(stream);
        if let Some(waker) = waiting {
            waker.wake();
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the envelope closed the pipe")
}

// === impl Writer ===

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.slot
            .poll_with(cx, || Err(closed()), |s, cx| s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.slot.poll_with(cx, || Ok(()), |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.slot
            .poll_with(cx, || Ok(()), |s, cx| s.poll_shutdown(cx))
    }
}

// === impl Reader ===

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let (before, room) = (buf.filled().len(), buf.remaining() > 0);
        // A closed reader reads as end of stream.
        let poll = self
            .slot
            .poll_with(cx, || Ok(()), |s, cx| s.poll_read(cx, buf));
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

// === impl Pipes ===

impl Pipes {
    /// Closes the envelope → weavelet stream; the weavelet sees end of
    /// stream, and later writes fail with `BrokenPipe`.
    pub(crate) fn close_to_weavelet(&self) {
        self.writer.close();
    }

    /// Closes both streams: the connection then ends, and reads nothing more.
    pub(crate) fn close_all(&self) {
        self.writer.close();
        self.reader.close();
    }

    /// Whether the weavelet → envelope stream ended or failed (as opposed
    /// to the connection stopping reading it).
    pub(crate) fn saw_end(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pair() -> (
        Writer,
        Reader,
        Pipes,
        tokio::io::DuplexStream,
        tokio::io::DuplexStream,
    ) {
        let (to, to_peer) = tokio::io::duplex(4);
        let (from, from_peer) = tokio::io::duplex(64);
        let (w, r, pipes) = wrap(Box::new(to), Box::new(from));
        (w, r, pipes, to_peer, from_peer)
    }

    #[tokio::test]
    async fn closing_ends_the_peer_stream_and_fails_later_writes() {
        let (mut writer, _r, pipes, mut peer, _) = pair();
        writer.write_all(b"hi").await.expect("write");
        pipes.close_to_weavelet();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"hi");
        let err = writer.write_all(b"more").await.expect_err("closed");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test]
    async fn closing_wakes_a_writer_blocked_on_a_full_stream() {
        let (mut writer, _r, pipes, _peer, _) = pair();
        let blocked = tokio::spawn(async move { writer.write_all(b"more than four").await });
        // Let the writer fill the stream and park.
        tokio::task::yield_now().await;
        pipes.close_to_weavelet();
        let result = tokio::time::timeout(Duration::from_secs(5), blocked)
            .await
            .expect("writer woke")
            .expect("no panic");
        assert!(result.is_err());
    }

    #[tokio::test]
    async fn reader_tells_end_of_stream_from_a_stopped_reader() {
        let (_w, mut reader, pipes, _, mut peer) = pair();
        peer.write_all(b"abc").await.expect("write");
        let mut buf = [0u8; 3];
        reader.read_exact(&mut buf).await.expect("read");
        assert!(!pipes.saw_end(), "stopped reading, stream still open");
        drop(peer);
        assert_eq!(reader.read(&mut buf).await.expect("eof"), 0);
        assert!(pipes.saw_end());
    }

    #[tokio::test]
    async fn closing_ends_a_reader_waiting_on_a_silent_stream() {
        // The peer stays open, as when a process the child left behind
        // holds the pipe.
        let (_w, mut reader, pipes, _, _peer) = pair();
        let waiting = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            reader.read(&mut buf).await
        });
        tokio::task::yield_now().await;
        pipes.close_all();
        let n = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("reader woke")
            .expect("no panic")
            .expect("end of stream");
        assert_eq!(n, 0);
    }
}
