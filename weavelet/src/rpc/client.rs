//! The calling side of a component RPC connection.
//!
//! A caller writes its request straight to the socket (see [`Writer`]) and
//! waits in a slot keyed by its request id; one reader task per connection
//! fills the slots and wakes the callers. When a read brings several
//! replies at once, the reader corks the writer until the woken callers have
//! had a chance to send their next requests, so those go out in one write.
//!
//! A call that is alone on its connection may read its reply itself, right
//! after sending: when the peer runs on the same CPU, the reply is often
//! there already, and taking it directly saves the trip through the
//! runtime's `epoll_wait` and the reader task. Whether that pays, or
//! waiting on the runtime (woken early by the peer's read, or not) does
//! better, depends on where the peer runs; each connection learns it by
//! timing lone calls (see `tune.rs`).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::U64Hasher;
use super::tune::{Tuner, Wait};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// How long dialling a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

use tokio::io::{AsyncRead, AsyncWrite};

use super::Addr;
use super::io::{ReadBuffer, Stream, Writer};
use super::wire::{self, Kind};
use crate::metrics::method::note_arrival;
use crate::{Context, Error, Result};

/// One multiplexed connection to a peer weavelet; cheap to clone.
#[derive(Clone)]
pub(crate) struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    peer: String,
    next_id: AtomicU64,
    writer: Arc<Writer>,
    pending: Mutex<Pending>,
    /// Set once `pending.closed` is.
    closed: AtomicBool,
    io: Arc<Stream>,
    /// Bytes read and not yet cut into frames; the reader task's, lent to
    /// a caller that reads its own reply.
    read: Mutex<ReadBuffer>,
    /// Calls in a row that started while others were in flight.
    crowded: AtomicU32,
    /// How lone calls wait for their replies here.
    tuner: Mutex<Tuner>,
}

/// Calls in a row with company after which early wake-ups stop.
const CROWDED: u32 = 16;

/// Calls waiting for replies, by id.
#[derive(Default)]
struct Pending {
    calls: HashMap<u64, Slot, BuildHasherDefault<U64Hasher>>,
    /// Why the connection closed, once it has.
    closed: Option<String>,
}

enum Slot {
    Waiting(Option<Waker>),
    /// The result, and when the reply was read (none if the call failed
    /// without one).
    Done(Result<Vec<u8>>, Option<Instant>),
}

/// Forgets a call (and tells the peer to cancel it) if it is dropped before
/// its reply arrived.
struct CallGuard<'a> {
    inner: &'a Inner,
    id: u64,
    done: bool,
}

impl Connection {
    /// Dials `addr`.
    ///
    /// # Errors
    ///
    /// A remote error if the peer cannot be reached.
    pub(crate) async fn connect(addr: &Addr) -> Result<Connection> {
        Self::connect_within(addr, CONNECT_TIMEOUT).await
    }

    /// [`connect`](Self::connect), giving up after `timeout`: a peer
    /// across a network that drops packets would otherwise hold the call
    /// for as long as the kernel retries its SYNs (minutes).
    pub(crate) async fn connect_within(addr: &Addr, timeout: Duration) -> Result<Connection> {
        match tokio::time::timeout(timeout, Self::dial(addr)).await {
            Ok(conn) => conn,
            Err(_) => Err(Error::remote(format!(
                "dial {addr}: no answer within {timeout:?}"
            ))),
        }
    }

    async fn dial(addr: &Addr) -> Result<Connection> {
        let unreachable = |e: std::io::Error| Error::remote(format!("dial {addr}: {e}"));
        let stream = match addr {
            Addr::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(unreachable)?;
                Stream::unix(s).map_err(unreachable)?
            }
            Addr::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a)
                    .await
                    .map_err(unreachable)?;
                Stream::tcp(s).map_err(unreachable)?
            }
        };
        Ok(Self::with_stream(addr.to_string(), stream))
    }

    /// A connection over an established stream.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn new<R, W>(peer: String, reader: R, writer: W) -> Connection
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        Self::with_stream(peer, Stream::generic(reader, writer))
    }

    fn with_stream(peer: String, stream: Stream) -> Connection {
        let io = Arc::new(stream);
        let inner = Arc::new(Inner {
            peer,
            next_id: AtomicU64::new(1),
            writer: Writer::new(io.clone()),
            pending: Mutex::new(Pending::default()),
            closed: AtomicBool::new(false),
            io,
            read: Mutex::new(ReadBuffer::new()),
            crowded: AtomicU32::new(0),
            tuner: Mutex::new(Tuner::default()),
        });
        let _ = inner
            .writer
            .send(Kind::Version, 0, &[&wire::RPC_VERSION.to_le_bytes()]);
        tokio::spawn(read_loop(inner.clone()));
        Connection { inner }
    }

    /// Whether the connection has failed.
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Calls the method with key `method_key`.
    ///
    /// # Errors
    ///
    /// The method's error, a remote error if the connection fails, or a
    /// deadline error if the context's deadline passes first.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future cancels the call at the peer.
    pub(crate) async fn call(
        &self,
        method_key: u64,
        ctx: &Context,
        args: &[u8],
    ) -> Result<Vec<u8>> {
        let deadline = ctx.deadline();
        let deadline_us = match ctx.remaining() {
            Some(d) if d.is_zero() => return Err(Error::deadline_exceeded()),
            Some(d) => u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1),
            None => 0,
        };
        let inner = &*self.inner;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        // The slot holds our waker from the start, so the reply can wake us
        // whenever it comes and the first wait need not look.
        let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
        let alone = {
            let mut p = inner.lock();
            if let Some(reason) = &p.closed {
                return Err(Error::remote(reason.clone()));
            }
            p.calls.insert(id, Slot::Waiting(Some(waker)));
            p.calls.len() == 1
        };
        let mut guard = CallGuard {
            inner,
            id,
            done: false,
        };
        // Timed from before the send: a peer on this CPU may run and answer
        // inside it.
        let (wait, timed) = inner.wait_strategy(alone);
        let started = timed.then(Instant::now);
        let sent = inner.writer.send(
            Kind::Request,
            id,
            &[&method_key.to_le_bytes(), &deadline_us.to_le_bytes(), args],
        );
        if let Err(reason) = sent {
            let reason = format!("connection to {} failed: {reason}", inner.peer);
            inner.close(reason.clone());
            guard.done = true;
            return Err(Error::remote(reason));
        }
        if alone
            && wait.reads_directly()
            && inner.io.can_try_read()
            && let Some(result) = inner.try_receive(id)
        {
            guard.done = true;
            inner.record_lone_call(started);
            // Taking replies directly never waits: yield now and then all
            // the same, as a runtime resource would.
            tokio::task::coop::consume_budget().await;
            return result;
        }
        let mut first = true;
        let reply = std::future::poll_fn(|cx| {
            if std::mem::take(&mut first) {
                // Still in the poll that registered the waker: a reply
                // that has come since woke it, and we will be polled again.
                return Poll::Pending;
            }
            inner.poll_reply(id, cx.waker())
        });
        let result = match deadline {
            // Boxed: keeps the timer out of the common call's future.
            Some(d) => match Box::pin(tokio::time::timeout_at(
                tokio::time::Instant::from_std(d),
                reply,
            ))
            .await
            {
                Ok(r) => r,
                Err(_) => return Err(Error::deadline_exceeded()),
            },
            None => reply.await,
        };
        guard.done = true;
        inner.record_lone_call(started);
        result
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> MutexGuard<'_, ReadBuffer> {
        self.read.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How this call waits for its reply, and whether to time it for the
    /// tuner. Also turns early wake-ups on or off to match: they are for
    /// calls that come one at a time; when calls overlap, the process is
    /// busy anyway and the extra wake-ups only cost.
    fn wait_strategy(&self, alone: bool) -> (Wait, bool) {
        let crowded = if alone {
            self.crowded.swap(0, Ordering::Relaxed);
            0
        } else {
            self.crowded
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1)
        };
        let (wait, timed) = if alone {
            self.tuner.lock().unwrap_or_else(|e| e.into_inner()).next()
        } else {
            match self.tuner.try_lock() {
                Ok(tuner) => (tuner.current(), false),
                // Another caller is at it: leave the setting as it is.
                Err(_) => return (Wait::Runtime, false),
            }
        };
        self.io
            .set_early_wake(wait.wakes_early() && crowded < CROWDED);
        (wait, timed)
    }

    /// Feeds the time of a timed lone call to the tuner.
    fn record_lone_call(&self, started: Option<Instant>) {
        if let Some(started) = started {
            self.tuner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(started.elapsed());
        }
    }

    /// Reads the reply to call `id` if it has arrived, without waiting;
    /// hands any other replies read to their callers.
    fn try_receive(&self, id: u64) -> Option<Result<Vec<u8>>> {
        // The reader task is at it: let it deliver.
        let mut rb = self.read.try_lock().ok()?;
        match rb.try_fill(&self.io) {
            Ok(0) => self.close(format!("connection to {} closed by the peer", self.peer)),
            Ok(_) => {
                if let Err(reason) = self.drain(&mut rb) {
                    self.close(reason);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => self.close(format!("connection to {} failed: {e}", self.peer)),
        }
        drop(rb);
        let mut p = self.lock();
        match p.calls.get(&id) {
            Some(Slot::Done(..)) => match p.calls.remove(&id) {
                Some(Slot::Done(r, at)) => {
                    note_arrival(at);
                    Some(r)
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Hands every complete reply in `rb` to its caller; returns how many.
    fn drain(&self, rb: &mut ReadBuffer) -> std::result::Result<usize, String> {
        let mut replies = 0;
        // One clock read for every reply read at once: the end of their
        // calls, for the method latency metric.
        let mut now = None;
        loop {
            let frame = match rb.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(replies),
                Err(e) => return Err(format!("connection to {} failed: {e}", self.peer)),
            };
            match frame.kind {
                Kind::Response => {
                    replies += 1;
                    let at = *now.get_or_insert_with(Instant::now);
                    self.complete(frame.id, Ok(frame.body.to_vec()), at);
                }
                Kind::Error => {
                    replies += 1;
                    let at = *now.get_or_insert_with(Instant::now);
                    self.complete(frame.id, Err(Error::from_wire(frame.body)), at);
                }
                Kind::Version => {}
                Kind::Request | Kind::Cancel => {
                    return Err(format!(
                        "connection to {} failed: unexpected frame",
                        self.peer
                    ));
                }
            }
        }
    }

    fn poll_reply(&self, id: u64, waker: &Waker) -> Poll<Result<Vec<u8>>> {
        let mut p = self.lock();
        match p.calls.get_mut(&id) {
            Some(Slot::Waiting(w)) => {
                match w {
                    Some(w) if w.will_wake(waker) => {}
                    _ => *w = Some(waker.clone()),
                }
                Poll::Pending
            }
            Some(Slot::Done(..)) => match p.calls.remove(&id) {
                Some(Slot::Done(r, at)) => {
                    note_arrival(at);
                    Poll::Ready(r)
                }
                _ => Poll::Ready(Err(Error::remote("lost reply"))),
            },
            None => {
                let reason = p
                    .closed
                    .clone()
                    .unwrap_or_else(|| format!("connection to {} closed", self.peer));
                Poll::Ready(Err(Error::remote(reason)))
            }
        }
    }

    /// Fails every waiting call and refuses new ones.
    fn close(&self, reason: String) {
        let mut wakers = Vec::new();
        {
            let mut p = self.lock();
            if p.closed.is_none() {
                p.closed = Some(reason.clone());
                self.closed.store(true, Ordering::Release);
            }
            for slot in p.calls.values_mut() {
                if let Slot::Waiting(w) = slot {
                    wakers.extend(w.take());
                    *slot = Slot::Done(Err(Error::remote(reason.clone())), None);
                }
            }
        }
        for w in wakers {
            w.wake();
        }
    }

    fn complete(&self, id: u64, result: Result<Vec<u8>>, at: Instant) {
        let waker = {
            let mut p = self.lock();
            match p.calls.get_mut(&id) {
                Some(slot @ Slot::Waiting(_)) => {
                    match std::mem::replace(slot, Slot::Done(result, Some(at))) {
                        Slot::Waiting(w) => w,
                        Slot::Done(..) => None,
                    }
                }
                // A reply to a call given up on, or a duplicate.
                _ => None,
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let waiting = matches!(
            self.inner.lock().calls.remove(&self.id),
            Some(Slot::Waiting(_))
        );
        if waiting {
            let _ = self.inner.writer.send(Kind::Cancel, self.id, &[]);
        }
    }
}

/// Reads replies and hands them to their callers until the connection ends.
async fn read_loop(inner: Arc<Inner>) {
    let mut corked = false;
    let reason = loop {
        let drained = inner.drain(&mut inner.read());
        if corked {
            inner.writer.uncork();
            corked = false;
        }
        match drained {
            Err(reason) => break reason,
            Ok(replies) if replies > 1 => {
                // The callers just woken will mostly send again at once: let
                // them run first, then write all their requests together.
                inner.writer.cork();
                corked = true;
                yield_once().await;
                continue;
            }
            Ok(_) => {}
        }
        match std::future::poll_fn(|cx| inner.read().poll_fill(cx, &inner.io)).await {
            Ok(0) => break format!("connection to {} closed by the peer", inner.peer),
            Ok(_) => {}
            Err(e) => break format!("connection to {} failed: {e}", inner.peer),
        }
    };
    if corked {
        inner.writer.uncork();
    }
    inner.close(reason);
}

/// Returns to the scheduler once, queued behind the tasks woken so far
/// (unlike `tokio::task::yield_now`, which waits for the next poll of the
/// I/O driver on the multi-thread runtime).
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}
