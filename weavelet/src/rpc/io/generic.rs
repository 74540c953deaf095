//! Any other pair of stream halves (in-memory streams in tests), behind the
//! same non-blocking interface as a socket: "would block" is a poll that
//! returns `Pending` with a no-op waker.

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::lock;

type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

pub(super) struct GenericIo {
    reader: Mutex<BoxRead>,
    writer: Mutex<BoxWrite>,
}

// === impl GenericIo ===

impl GenericIo {
    pub(super) fn new<R, W>(reader: R, writer: W) -> GenericIo
    where
        R: AsyncRead + Send + 'static,
        W: AsyncWrite + Send + 'static,
    {
        GenericIo {
            reader: Mutex::new(Box::pin(reader)),
            writer: Mutex::new(Box::pin(writer)),
        }
    }

    pub(super) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut r = lock(&self.reader);
        let mut rb = ReadBuf::new(buf);
        ready!(r.as_mut().poll_read(cx, &mut rb))?;
        Poll::Ready(Ok(rb.filled().len()))
    }

    pub(super) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut cx = Context::from_waker(Waker::noop());
        match lock(&self.writer).as_mut().poll_write(&mut cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    pub(super) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        lock(&self.writer).as_mut().poll_write(cx, buf)
    }

    pub(super) fn try_flush(&self) -> io::Result<bool> {
        let mut cx = Context::from_waker(Waker::noop());
        match lock(&self.writer).as_mut().poll_flush(&mut cx) {
            Poll::Ready(r) => r.map(|()| true),
            Poll::Pending => Ok(false),
        }
    }

    pub(super) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        lock(&self.writer).as_mut().poll_flush(cx)
    }

    pub(super) fn shutdown(&self) {
        let mut cx = Context::from_waker(Waker::noop());
        let _ = lock(&self.writer).as_mut().poll_shutdown(&mut cx);
    }
}
