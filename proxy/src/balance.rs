//! The live backend set and the choice of a backend per request.
//!
//! The handle's `add_backend`/`remove_backend` write the set; every request
//! reads it once to pick. Picking is power-of-two-choices on outstanding
//! requests: look at two backends and take the one with fewer requests in
//! flight. With two backends that is plain least-outstanding. Ties go to the
//! first candidate, which rotates, so an idle set is served round-robin.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use http::HeaderValue;

use crate::pool::Pool;

/// One backend and its count of requests in flight.
#[derive(Debug)]
pub(crate) struct Backend {
    addr: SocketAddr,
    /// The address as a `Host` header, for requests that arrive without one.
    host: HeaderValue,
    /// Keep-alive connections to this backend.
    pool: Pool,
    /// Requests sent here whose response body is not yet finished.
    in_flight: AtomicUsize,
}

/// Marks one request as in flight on a backend until dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Backend>);

/// The set of backends requests are spread over.
#[derive(Debug, Default)]
pub(crate) struct Backends {
    /// Rotates the first candidate of each pick.
    next: AtomicUsize,
    /// Guards the current set; held only to copy out or to pick, never across
    /// an await. Removed backends stay alive while requests still hold them.
    set: RwLock<Vec<Arc<Backend>>>,
}

// === impl Backend ===

impl Backend {
    fn new(addr: SocketAddr) -> Backend {
        let host = HeaderValue::from_maybe_shared(Bytes::from(addr.to_string()))
            .expect("a socket address is a valid header value");
        Backend {
            addr,
            host,
            pool: Pool::new(addr),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// The backend's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The backend's address as a `Host` header value.
    pub(crate) fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// Keep-alive connections to this backend.
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    fn load(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

// === impl InFlight ===

impl InFlight {
    fn start(backend: &Arc<Backend>) -> InFlight {
        backend.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(backend))
    }

    /// The backend this request is on.
    pub(crate) fn backend(&self) -> &Backend {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

// === impl Backends ===

impl Backends {
    /// Adds `addr`; does nothing if it is already present.
    pub(crate) fn add(&self, addr: SocketAddr) -> bool {
        let mut set = self.set.write().unwrap_or_else(PoisonError::into_inner);
        if set.iter().any(|b| b.addr == addr) {
            return false;
        }
        set.push(Arc::new(Backend::new(addr)));
        true
    }

    /// Removes `addr`; requests already on it keep their `InFlight` and finish.
    pub(crate) fn remove(&self, addr: SocketAddr) -> bool {
        let mut set = self.set.write().unwrap_or_else(PoisonError::into_inner);
        let before = set.len();
        set.retain(|b| b.addr != addr);
        set.len() != before
    }

    /// Closes every idle pooled connection to every backend.
    pub(crate) fn close_idle(&self) {
        let set = self.set.read().unwrap_or_else(PoisonError::into_inner);
        for backend in set.iter() {
            backend.pool.close_idle();
        }
    }

    /// The current addresses, in the order they were added.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        let set = self.set.read().unwrap_or_else(PoisonError::into_inner);
        set.iter().map(|b| b.addr).collect()
    }

    /// Picks a backend for a request, skipping `avoid` (a backend that just
    /// failed), and marks the request in flight on it.
    pub(crate) fn pick(&self, avoid: Option<SocketAddr>) -> Option<InFlight> {
        let set = self.set.read().unwrap_or_else(PoisonError::into_inner);
        let chosen = match avoid {
            None => self.two_choices(&set)?,
            // Retries are rare: a scan for the least loaded other backend is fine.
            Some(avoid) => set
                .iter()
                .filter(|b| b.addr != avoid)
                .min_by_key(|b| b.load())?,
        };
        Some(InFlight::start(chosen))
    }

    fn two_choices<'a>(&self, set: &'a [Arc<Backend>]) -> Option<&'a Arc<Backend>> {
        let n = set.len();
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let first = set.get(turn % n.max(1))?;
        if n == 1 {
            return Some(first);
        }
        // The second candidate is any other backend; a multiplicative hash of
        // the turn scatters it without a random number generator.
        let spread = turn.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> 16;
        let second = &set[(turn % n + 1 + spread % (n - 1)) % n];
        Some(if second.load() < first.load() {
            second
        } else {
            first
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn idle_set_is_round_robin() {
        let backends = Backends::default();
        backends.add(addr(1));
        backends.add(addr(2));
        let picks: Vec<_> = (0..4)
            .map(|_| backends.pick(None).map(|f| f.backend().addr()))
            .collect();
        assert_eq!(
            picks,
            [Some(addr(1)), Some(addr(2)), Some(addr(1)), Some(addr(2))]
        );
    }

    #[test]
    fn busy_backend_is_avoided() {
        let backends = Backends::default();
        backends.add(addr(1));
        backends.add(addr(2));
        let busy = backends.pick(None);
        let busy_addr = busy.as_ref().map(|f| f.backend().addr());
        for _ in 0..5 {
            let other = backends.pick(None).map(|f| f.backend().addr());
            assert!(other.is_some());
            assert_ne!(other, busy_addr);
        }
        drop(busy);
    }

    #[test]
    fn two_choices_covers_every_backend() {
        let backends = Backends::default();
        for port in 1..=5 {
            backends.add(addr(port));
        }
        // Hold every pick so loads differ; all five must get requests.
        let held: Vec<_> = (0..50).filter_map(|_| backends.pick(None)).collect();
        for port in 1..=5 {
            let count = held
                .iter()
                .filter(|f| f.backend().addr() == addr(port))
                .count();
            assert!((5..=15).contains(&count), "port {port} got {count} of 50");
        }
    }

    #[test]
    fn add_is_idempotent_and_remove_takes_effect() {
        let backends = Backends::default();
        assert!(backends.add(addr(1)));
        assert!(!backends.add(addr(1)));
        assert!(backends.add(addr(2)));
        let in_flight = backends.pick(None);
        assert!(backends.remove(addr(1)));
        assert!(!backends.remove(addr(1)));
        assert_eq!(backends.addrs(), [addr(2)]);
        for _ in 0..3 {
            assert_eq!(
                backends.pick(None).map(|f| f.backend().addr()),
                Some(addr(2))
            );
        }
        drop(in_flight);
    }

    #[test]
    fn empty_set_and_avoided_only_backend_pick_nothing() {
        let backends = Backends::default();
        assert!(backends.pick(None).is_none());
        backends.add(addr(1));
        assert!(backends.pick(Some(addr(1))).is_none());
        assert!(backends.pick(Some(addr(2))).is_some());
    }
}
