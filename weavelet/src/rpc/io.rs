//! The byte streams under RPC connections, and the write queue both sides
//! share.
//!
//! A Unix or TCP socket is registered with the runtime for *readability
//! only*. Registering for writability as well (what `tokio::net` does) costs
//! a context switch per message on a ping-pong: every time the peer reads, the
//! kernel frees send-buffer space and wakes this side's `epoll_wait` with
//! `EPOLLOUT`, though nobody waits to write. Writes go straight to the
//! non-blocking socket from whichever task sends; only when the socket is
//! full does a flush task register a duplicate of the socket for writability
//! until the queue drains.
//!
//! A server connection's socket is not registered for reading at all: it is
//! put in blocking mode and read by a thread of its own (see `server.rs`),
//! which saves the `epoll_wait` before each request. Writes always pass
//! `MSG_DONTWAIT`, so they never block whatever the socket's mode.
//!
//! Any other `AsyncRead + AsyncWrite` (in-memory streams in tests) works too,
//! through the same interface.
//!
//! One concern per module: `socket` (both socket modes), `generic` (any
//! other stream), `read_buffer` (bytes cut into frames) and `writer` (the
//! write queue); [`Stream`] only picks between the first two.

use std::io;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

mod generic;
mod read_buffer;
mod socket;
mod writer;

pub(crate) use read_buffer::ReadBuffer;
pub(crate) use socket::Sock;
pub(crate) use writer::Writer;

use generic::GenericIo;
use socket::SocketIo;

/// A connected byte stream.
pub(crate) struct Stream {
    inner: Inner,
}

enum Inner {
    Socket(SocketIo),
    Generic(GenericIo),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// === impl Stream ===

impl Stream {
    /// A Unix socket connection; must be called inside the runtime.
    pub(crate) fn unix(s: tokio::net::UnixStream) -> io::Result<Stream> {
        Self::socket(Sock::Unix(s.into_std()?))
    }

    /// A TCP connection; must be called inside the runtime.
    pub(crate) fn tcp(s: tokio::net::TcpStream) -> io::Result<Stream> {
        let _ = s.set_nodelay(true);
        Self::socket(Sock::Tcp(s.into_std()?))
    }

    /// A socket to be read only by [`Stream::read_blocking`], from one
    /// thread; it is switched to blocking mode. Writes still never block.
    pub(crate) fn blocking(sock: Sock) -> io::Result<Stream> {
        Ok(Stream {
            inner: Inner::Socket(SocketIo::blocking(sock)?),
        })
    }

    fn socket(sock: Sock) -> io::Result<Stream> {
        Ok(Stream {
            inner: Inner::Socket(SocketIo::registered(sock)?),
        })
    }

    /// Any pair of halves.
    pub(crate) fn generic<R, W>(reader: R, writer: W) -> Stream
    where
        R: AsyncRead + Send + 'static,
        W: AsyncWrite + Send + 'static,
    {
        Stream {
            inner: Inner::Generic(GenericIo::new(reader, writer)),
        }
    }

    /// Reads into `buf`; `Ok(0)` at end of stream. One reader at a time.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match &self.inner {
            Inner::Socket(s) => s.poll_read(cx, buf),
            Inner::Generic(g) => g.poll_read(cx, buf),
        }
    }

    /// Reads into `buf`, waiting for data; `Ok(0)` at end of stream (or
    /// once [`Stream::shutdown`] ran). Only for [`Stream::blocking`] sockets;
    /// blocks the calling thread.
    pub(crate) fn read_blocking(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.inner {
            Inner::Socket(s) => s.read_blocking(buf),
            Inner::Generic(_) => Err(socket::not_blocking()),
        }
    }

    /// Whether [`Stream::try_read`] can read without disturbing the reader
    /// task's wake-ups.
    pub(crate) fn can_try_read(&self) -> bool {
        match &self.inner {
            Inner::Socket(s) => s.is_registered(),
            Inner::Generic(_) => false,
        }
    }

    /// Reads what has arrived without waiting or registering for wake-ups
    /// (whoever polls [`Stream::poll_read`] still gets woken by new data).
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.inner {
            Inner::Socket(s) => s.try_read(buf),
            Inner::Generic(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Writes what fits without waiting; `WouldBlock` if nothing does.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match &self.inner {
            Inner::Socket(s) => s.try_write(buf),
            Inner::Generic(g) => g.try_write(buf),
        }
    }

    /// Writes, waiting for room.
    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &self.inner {
            Inner::Socket(s) => s.poll_write(cx, buf),
            Inner::Generic(g) => g.poll_write(cx, buf),
        }
    }

    /// Whether the peer's reads should wake this process; see
    /// `SocketIo::set_early_wake`. Other streams have no such wake-ups.
    pub(crate) fn set_early_wake(&self, on: bool) {
        if let Inner::Socket(s) = &self.inner {
            s.set_early_wake(on);
        }
    }

    /// The write queue drained: stop watching for room.
    fn write_idle(&self) {
        if let Inner::Socket(s) = &self.inner {
            s.write_idle();
        }
    }

    /// Flushes without waiting; `Ok(false)` if that would have to wait.
    /// Sockets have nothing to flush.
    fn try_flush(&self) -> io::Result<bool> {
        match &self.inner {
            Inner::Socket(_) => Ok(true),
            Inner::Generic(g) => g.try_flush(),
        }
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.inner {
            Inner::Socket(_) => Poll::Ready(Ok(())),
            Inner::Generic(g) => g.poll_flush(cx),
        }
    }

    /// Closes the stream for writing (and for reading, where possible), so
    /// the peer and our own reader both see its end.
    pub(crate) fn shutdown(&self) {
        match &self.inner {
            Inner::Socket(s) => s.shutdown(),
            Inner::Generic(g) => g.shutdown(),
        }
    }
}
