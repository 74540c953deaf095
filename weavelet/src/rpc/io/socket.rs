//! A Unix or TCP socket in either of its modes: registered with the runtime
//! for readability, or in blocking mode for a thread of its own. Writes never
//! wait in either mode; a duplicate registered for writability waits for
//! room when the socket is full.

use std::io::{self, Read};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::lock;

/// A connected socket.
pub(crate) enum Sock {
    /// A Unix domain socket.
    Unix(std::os::unix::net::UnixStream),
    /// A TCP socket.
    Tcp(std::net::TcpStream),
}

/// A socket, registered for readability (or read by blocking calls), plus a
/// lazily registered duplicate for writability.
pub(super) struct SocketIo {
    fd: Reads,
    write_wait: Mutex<Option<AsyncFd<Sock>>>,
    /// A duplicate registered for writability only so that the peer's
    /// reads wake this process early (see [`SocketIo::set_early_wake`]).
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

/// The error for a blocking read of a socket that is not in blocking mode.
pub(super) fn not_blocking() -> io::Error {
    io::Error::other("not a blocking socket")
}

/// Registers a socket with the runtime's reactor.
#[allow(unsafe_code)]
fn register(sock: Sock, interest: Interest) -> io::Result<AsyncFd<Sock>> {
    // SAFETY: `register_with_interest` requires the descriptor to stay open
    // and name the same file description until the `AsyncFd` drops, with
    // `as_raw_fd` returning it every time. A `Sock` owns a std socket, whose
    // descriptor is closed only when the socket drops (with the `AsyncFd`),
    // and nothing here replaces it: `AsyncFd::get_mut`/`into_inner` are never
    // called, and `shutdown` does not close the descriptor.
    unsafe { AsyncFd::register_with_interest(sock, interest) }.map_err(|e| e.into_parts().1)
}

// === impl Sock ===

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

// === impl Reads ===

impl Reads {
    fn sock(&self) -> &Sock {
        match self {
            Reads::Async(fd) => fd.get_ref(),
            Reads::Blocking(sock) => sock,
        }
    }
}

// === impl SocketIo ===

impl SocketIo {
    /// A non-blocking socket (as `into_std` leaves it), registered for
    /// readability; must be called inside the runtime.
    pub(super) fn registered(sock: Sock) -> io::Result<SocketIo> {
        Ok(Self::with_reads(Reads::Async(register(
            sock,
            Interest::READABLE,
        )?)))
    }

    /// A socket switched to blocking mode, to be read only by
    /// [`SocketIo::read_blocking`].
    pub(super) fn blocking(sock: Sock) -> io::Result<SocketIo> {
        match &sock {
            Sock::Unix(s) => s.set_nonblocking(false)?,
            Sock::Tcp(s) => {
                let _ = s.set_nodelay(true);
                s.set_nonblocking(false)?;
            }
        }
        Ok(Self::with_reads(Reads::Blocking(sock)))
    }

    fn with_reads(fd: Reads) -> SocketIo {
        SocketIo {
            fd,
            write_wait: Mutex::new(None),
            early_wake: Mutex::new(None),
            early_wake_on: AtomicBool::new(false),
        }
    }

    /// Whether the socket is registered for readability (not blocking).
    pub(super) fn is_registered(&self) -> bool {
        matches!(self.fd, Reads::Async(_))
    }

    #[inline]
    pub(super) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let fd = match &self.fd {
            Reads::Async(fd) => fd,
            Reads::Blocking(_) => {
                return Poll::Ready(Err(io::Error::other(
                    "a blocking socket is read with read_blocking",
                )));
            }
        };
        loop {
            let mut guard = ready!(fd.poll_read_ready(cx))?;
            match guard.try_io(|fd| fd.get_ref().read(buf)) {
                Ok(Ok(n)) => {
                    // A short read emptied the socket: forget the readiness
                    // now rather than learn it from a read that fails. Safe
                    // against races: readiness that arrived since
                    // `poll_read_ready` is kept.
                    if n > 0 && n < buf.len() {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(n));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => {}
            }
        }
    }

    #[inline]
    pub(super) fn read_blocking(&self, buf: &mut [u8]) -> io::Result<usize> {
        let Reads::Blocking(sock) = &self.fd else {
            return Err(not_blocking());
        };
        loop {
            match sock.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    #[inline]
    pub(super) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.fd.sock().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    #[inline]
    pub(super) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.fd.sock().write(buf)
    }

    pub(super) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut wait = lock(&self.write_wait);
        let fd = match &mut *wait {
            Some(fd) => fd,
            None => {
                let dup = self.fd.sock().try_clone()?;
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

    /// Whether the peer's reads should wake this process.
    ///
    /// When the peer reads what we sent, the kernel frees our send buffer
    /// and wakes whoever watches the socket for room. With the peer on the
    /// same CPU that is pure waste (two context switches per message); with
    /// the peer on another CPU it wakes our idle CPU while the peer is still
    /// working on its reply, so the reply finds it awake: several µs sooner
    /// on a VM whose idle CPUs take long to wake. Callers turn this on when
    /// replies never come while they are still running, and off when they do.
    pub(super) fn set_early_wake(&self, on: bool) {
        if self.early_wake_on.load(Ordering::Relaxed) == on {
            return;
        }
        let mut wake = lock(&self.early_wake);
        if on && wake.is_none() {
            *wake = self
                .fd
                .sock()
                .try_clone()
                .and_then(|d| register(d, Interest::WRITABLE))
                .ok();
        } else if !on {
            wake.take();
        }
        self.early_wake_on.store(wake.is_some(), Ordering::Relaxed);
    }

    /// The write queue drained: stop watching for room.
    pub(super) fn write_idle(&self) {
        lock(&self.write_wait).take();
    }

    pub(super) fn shutdown(&self) {
        self.fd.sock().shutdown(Shutdown::Both);
    }
}
