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

use std::io::{self, Read};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use super::wire::{self, Kind};

/// A connected byte stream.
pub(crate) struct Stream {
    inner: Inner,
}

enum Inner {
    Socket(SocketIo),
    Generic(GenericIo),
}

/// A socket, registered for readability (or read by blocking calls), plus a
/// lazily registered duplicate for writability.
struct SocketIo {
    fd: Reads,
    write_wait: Mutex<Option<AsyncFd<Sock>>>,
    /// A duplicate registered for writability only so that the peer's
    /// reads wake this process early (see [`Stream::set_early_wake`]).
    early_wake: Mutex<Option<AsyncFd<Sock>>>,
    /// Whether `early_wake` holds a registration (read without the lock).
    early_wake_on: AtomicBool,
}

/// How a socket is read.
enum Reads {
    /// Non-blocking, registered with the runtime for readability.
    Async(AsyncFd<Sock>),
    /// In blocking mode, read by blocking calls from one thread.
    Blocking(Sock),
}

impl Reads {
    fn sock(&self) -> &Sock {
        match self {
            Reads::Async(fd) => fd.get_ref(),
            Reads::Blocking(sock) => sock,
        }
    }
}

/// A connected socket.
pub(crate) enum Sock {
    /// A Unix domain socket.
    Unix(std::os::unix::net::UnixStream),
    /// A TCP socket.
    Tcp(std::net::TcpStream),
}

type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

struct GenericIo {
    reader: Mutex<BoxRead>,
    writer: Mutex<BoxWrite>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AsRawFd for Sock {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Sock::Unix(s) => s.as_raw_fd(),
            Sock::Tcp(s) => s.as_raw_fd(),
        }
    }
}

impl Sock {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Unix(s) => (&*s).read(buf),
            Sock::Tcp(s) => (&*s).read(buf),
        }
    }

    /// Writes what fits without waiting, whatever the socket's mode.
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        use nix::sys::socket::{MsgFlags, send};
        send(
            self.as_raw_fd(),
            buf,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        )
        .map_err(io::Error::from)
    }

    fn try_clone(&self) -> io::Result<Sock> {
        Ok(match self {
            Sock::Unix(s) => Sock::Unix(s.try_clone()?),
            Sock::Tcp(s) => Sock::Tcp(s.try_clone()?),
        })
    }

    fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            Sock::Unix(s) => s.shutdown(how),
            Sock::Tcp(s) => s.shutdown(how),
        };
    }
}

/// Registers a socket with the runtime's reactor.
///
/// `AsyncFd::with_interest` is deprecated in favour of an `unsafe`
/// constructor whose contract is that the descriptor stays open and the same
/// while registered. A `Sock` owns its descriptor (a std socket) and never
/// replaces or closes it before the `AsyncFd` drops it, so the contract holds
/// and this crate can stay free of `unsafe`.
#[allow(deprecated)]
fn register(sock: Sock, interest: Interest) -> io::Result<AsyncFd<Sock>> {
    AsyncFd::with_interest(sock, interest)
}

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
        match &sock {
            Sock::Unix(s) => s.set_nonblocking(false)?,
            Sock::Tcp(s) => {
                let _ = s.set_nodelay(true);
                s.set_nonblocking(false)?;
            }
        }
        Ok(Self::with_reads(Reads::Blocking(sock)))
    }

    fn socket(sock: Sock) -> io::Result<Stream> {
        // `into_std` keeps the socket non-blocking.
        let fd = register(sock, Interest::READABLE)?;
        Ok(Self::with_reads(Reads::Async(fd)))
    }

    fn with_reads(fd: Reads) -> Stream {
        Stream {
            inner: Inner::Socket(SocketIo {
                fd,
                write_wait: Mutex::new(None),
                early_wake: Mutex::new(None),
                early_wake_on: AtomicBool::new(false),
            }),
        }
    }

    /// Any pair of halves.
    pub(crate) fn generic<R, W>(reader: R, writer: W) -> Stream
    where
        R: AsyncRead + Send + 'static,
        W: AsyncWrite + Send + 'static,
    {
        Stream {
            inner: Inner::Generic(GenericIo {
                reader: Mutex::new(Box::pin(reader)),
                writer: Mutex::new(Box::pin(writer)),
            }),
        }
    }

    /// Reads into `buf`; `Ok(0)` at end of stream. One reader at a time.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match &self.inner {
            Inner::Socket(SocketIo {
                fd: Reads::Blocking(_),
                ..
            }) => Poll::Ready(Err(io::Error::other(
                "a blocking socket is read with read_blocking",
            ))),
            Inner::Socket(SocketIo {
                fd: Reads::Async(fd),
                ..
            }) => loop {
                let mut guard = ready!(fd.poll_read_ready(cx))?;
                match guard.try_io(|fd| fd.get_ref().read(buf)) {
                    Ok(Ok(n)) => {
                        // A short read emptied the socket: forget the
                        // readiness now rather than learn it from a read
                        // that fails. Safe against races: readiness that
                        // arrived since `poll_read_ready` is kept.
                        if n > 0 && n < buf.len() {
                            guard.clear_ready();
                        }
                        return Poll::Ready(Ok(n));
                    }
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Ok(Err(e)) => return Poll::Ready(Err(e)),
                    Err(_would_block) => {}
                }
            },
            Inner::Generic(g) => {
                let mut r = lock(&g.reader);
                let mut rb = ReadBuf::new(buf);
                ready!(r.as_mut().poll_read(cx, &mut rb))?;
                Poll::Ready(Ok(rb.filled().len()))
            }
        }
    }

    /// Reads into `buf`, waiting for data; `Ok(0)` at end of stream (or
    /// once [`Stream::shutdown`] ran). Only for [`Stream::blocking`] sockets;
    /// blocks the calling thread.
    pub(crate) fn read_blocking(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.inner {
            Inner::Socket(SocketIo {
                fd: Reads::Blocking(sock),
                ..
            }) => loop {
                match sock.read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    r => return r,
                }
            },
            _ => Err(io::Error::other("not a blocking socket")),
        }
    }

    /// Whether [`Stream::try_read`] can read without disturbing the reader
    /// task's wake-ups.
    pub(crate) fn can_try_read(&self) -> bool {
        matches!(
            self.inner,
            Inner::Socket(SocketIo {
                fd: Reads::Async(_),
                ..
            })
        )
    }

    /// Reads what has arrived without waiting or registering for wake-ups
    /// (whoever polls [`Stream::poll_read`] still gets woken by new data).
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.inner {
            Inner::Socket(s) => loop {
                match s.fd.sock().read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    r => return r,
                }
            },
            Inner::Generic(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Writes what fits without waiting; `WouldBlock` if nothing does.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match &self.inner {
            Inner::Socket(s) => s.fd.sock().write(buf),
            Inner::Generic(g) => {
                let mut cx = Context::from_waker(Waker::noop());
                match lock(&g.writer).as_mut().poll_write(&mut cx, buf) {
                    Poll::Ready(r) => r,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }

    /// Writes, waiting for room.
    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &self.inner {
            Inner::Socket(s) => {
                let mut wait = lock(&s.write_wait);
                let fd = match &mut *wait {
                    Some(fd) => fd,
                    None => {
                        let dup = s.fd.sock().try_clone()?;
                        wait.insert(register(dup, Interest::WRITABLE)?)
                    }
                };
                loop {
                    let mut guard = ready!(fd.poll_write_ready(cx))?;
                    match guard.try_io(|fd| fd.get_ref().write(buf)) {
                        Ok(Ok(n)) => return Poll::Ready(Ok(n)),
                        Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                        Ok(Err(e)) => return Poll::Ready(Err(e)),
                        Err(_would_block) => {}
                    }
                }
            }
            Inner::Generic(g) => lock(&g.writer).as_mut().poll_write(cx, buf),
        }
    }

    /// Whether the peer's reads should wake this process.
    ///
    /// When the peer reads what we sent, the kernel frees our send buffer
    /// and wakes whoever watches the socket for room. With the peer on the
    /// same CPU that is pure waste (two context switches per message); with
    /// the peer on another CPU it wakes our idle CPU while the peer is still
    /// working on its reply, so the reply finds it awake: several µs sooner
    /// on a VM whose idle CPUs take long to wake. Callers turn this on when
    /// replies never come while they are still running, and off when they do.
    pub(crate) fn set_early_wake(&self, on: bool) {
        let Inner::Socket(s) = &self.inner else {
            return;
        };
        if s.early_wake_on.load(Ordering::Relaxed) == on {
            return;
        }
        let mut wake = lock(&s.early_wake);
        if on && wake.is_none() {
            *wake =
                s.fd.sock()
                    .try_clone()
                    .and_then(|d| register(d, Interest::WRITABLE))
                    .ok();
        } else if !on {
            wake.take();
        }
        s.early_wake_on.store(wake.is_some(), Ordering::Relaxed);
    }

    /// The write queue drained: stop watching for room.
    fn write_idle(&self) {
        if let Inner::Socket(s) = &self.inner {
            lock(&s.write_wait).take();
        }
    }

    /// Flushes without waiting; `Ok(false)` if that would have to wait.
    fn try_flush(&self) -> io::Result<bool> {
        match &self.inner {
            Inner::Socket(_) => Ok(true),
            Inner::Generic(g) => {
                let mut cx = Context::from_waker(Waker::noop());
                match lock(&g.writer).as_mut().poll_flush(&mut cx) {
                    Poll::Ready(r) => r.map(|()| true),
                    Poll::Pending => Ok(false),
                }
            }
        }
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.inner {
            Inner::Socket(_) => Poll::Ready(Ok(())),
            Inner::Generic(g) => lock(&g.writer).as_mut().poll_flush(cx),
        }
    }

    /// Closes the stream for writing (and for reading, where possible), so
    /// the peer and our own reader both see its end.
    pub(crate) fn shutdown(&self) {
        match &self.inner {
            Inner::Socket(s) => s.fd.sock().shutdown(Shutdown::Both),
            Inner::Generic(g) => {
                let mut cx = Context::from_waker(Waker::noop());
                let _ = lock(&g.writer).as_mut().poll_shutdown(&mut cx);
            }
        }
    }
}

/// Bytes read from a stream, cut into frames.
pub(crate) struct ReadBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// One frame, borrowed from a [`ReadBuffer`].
pub(crate) struct FrameRef<'a> {
    pub(crate) kind: Kind,
    pub(crate) id: u64,
    pub(crate) body: &'a [u8],
}

const READ_CHUNK: usize = 16 << 10;

impl ReadBuffer {
    pub(crate) fn new() -> ReadBuffer {
        ReadBuffer {
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
        }
    }

    /// The next complete frame, if there is one.
    pub(crate) fn next_frame(&mut self) -> Result<Option<FrameRef<'_>>, wire::WireError> {
        let Some((kind, id, len)) = wire::parse_header(&self.buf[self.start..self.end])? else {
            return Ok(None);
        };
        let body_start = self.start + wire::HEADER;
        let body_end = self.start + len;
        self.start = body_end;
        Ok(Some(FrameRef {
            kind,
            id,
            body: &self.buf[body_start..body_end],
        }))
    }

    /// Reads more bytes; `Ok(0)` at end of stream.
    pub(crate) fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        io: &Stream,
    ) -> Poll<io::Result<usize>> {
        self.make_room();
        let n = ready!(io.poll_read(cx, &mut self.buf[self.end..]))?;
        self.filled(n);
        Poll::Ready(Ok(n))
    }

    /// Reads more bytes, blocking the thread until some come; `Ok(0)` at end
    /// of stream. For [`Stream::blocking`] sockets.
    pub(crate) fn fill_blocking(&mut self, io: &Stream) -> io::Result<usize> {
        self.make_room();
        let n = io.read_blocking(&mut self.buf[self.end..])?;
        self.filled(n);
        Ok(n)
    }

    /// Reads what has arrived, without waiting; `WouldBlock` if nothing has.
    pub(crate) fn try_fill(&mut self, io: &Stream) -> io::Result<usize> {
        self.make_room();
        let n = io.try_read(&mut self.buf[self.end..])?;
        self.filled(n);
        Ok(n)
    }

    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // Give back memory lent to a huge frame once it is consumed.
            if self.buf.len() > 4 * READ_CHUNK {
                self.buf = vec![0; READ_CHUNK];
            }
        }
        // Room for at least the rest of the frame under way, and a chunk.
        let need = wire::frame_len(&self.buf[self.start..self.end])
            .unwrap_or(0)
            .max(READ_CHUNK);
        if self.buf.len() - self.start < need {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() < need {
                self.buf.resize(need, 0);
            }
        } else if self.buf.len() - self.end < READ_CHUNK / 4 && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    fn filled(&mut self, n: usize) {
        self.end += n;
    }
}

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
