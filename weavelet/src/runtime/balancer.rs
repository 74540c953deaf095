//! Calls to the remote replicas of one component: picking a replica
//! (round robin, or the owner of the key's slice), pooled connections, and
//! retries with backoff for calls that failed in transit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use weaver_proto::runtime::RoutingInfo;

use crate::component::{MethodInfo, Transport};
use crate::rpc::{Addr, Connection, wire};
use crate::{BoxFuture, Context, Error, Result};

/// Attempts per call before a transit failure is returned.
const MAX_ATTEMPTS: u32 = 20;

/// How long a call waits for a component with no replicas to get some.
const NO_REPLICA_WAIT: Duration = Duration::from_secs(10);

/// The routing of one component, as last pushed by the deployer.
#[derive(Debug, Default)]
pub(crate) struct Routing {
    pub(crate) local: bool,
    pub(crate) replicas: Vec<Addr>,
    /// Slices sorted by start: (start, owners).
    pub(crate) slices: Vec<(u64, Vec<Addr>)>,
    pub(crate) version: u64,
}

/// One connection per peer, shared by every component of the process.
#[derive(Default)]
pub(crate) struct Pool {
    conns: Mutex<HashMap<Addr, Connection>>,
}

/// The transport of one remote component.
pub(crate) struct Balancer {
    name: &'static str,
    methods: &'static [MethodInfo],
    keys: Vec<u64>,
    routing: watch::Receiver<Option<Arc<Routing>>>,
    pool: Arc<Pool>,
    /// Connections this balancer used lately, so the common call finds its
    /// connection without hashing an address or waiting on a timer.
    recent: Mutex<Vec<(Addr, Connection)>>,
    next: AtomicUsize,
    jitter: AtomicU64,
}

/// What the fast path found.
enum Fast {
    Conn(Connection),
    Dial(Addr),
    Wait,
}

/// How many connections a balancer remembers.
const RECENT: usize = 8;

/// Whether two addresses are the same, comparing bytes (a `PathBuf`'s own
/// equality walks its components).
fn same_addr(a: &Addr, b: &Addr) -> bool {
    match (a, b) {
        (Addr::Unix(a), Addr::Unix(b)) => a.as_os_str() == b.as_os_str(),
        (Addr::Tcp(a), Addr::Tcp(b)) => a == b,
        _ => false,
    }
}

// === impl Routing ===

impl Routing {
    pub(crate) fn from_proto(info: &RoutingInfo) -> Routing {
        let addrs = |v: &[String]| v.iter().filter_map(|a| Addr::parse(a)).collect::<Vec<_>>();
        let (slices, version) = match &info.assignment {
            Some(a) => {
                let mut s: Vec<_> = a
                    .slices
                    .iter()
                    .map(|s| (s.start, addrs(&s.replicas)))
                    .collect();
                s.sort_by_key(|(start, _)| *start);
                (s, a.version.max(info.version))
            }
            None => (Vec::new(), info.version),
        };
        Routing {
            local: info.local,
            replicas: addrs(&info.replicas),
            slices,
            version,
        }
    }

    /// The replica for a call: the owner of the key's slice, else the next
    /// replica in round-robin order.
    fn pick(&self, key: Option<u64>, next: &AtomicUsize) -> Option<&Addr> {
        if let Some(key) = key {
            let i = self.slices.partition_point(|(start, _)| *start <= key);
            if let Some((_, owners)) = i.checked_sub(1).and_then(|i| self.slices.get(i))
                && let Some(owner) = owners.first()
            {
                return Some(owner);
            }
        }
        if self.replicas.is_empty() {
            return None;
        }
        let i = next.fetch_add(1, Ordering::Relaxed) % self.replicas.len();
        self.replicas.get(i)
    }
}

// === impl Pool ===

impl Pool {
    /// A live connection to `addr`, dialing if needed.
    async fn get(&self, addr: &Addr) -> Result<Connection> {
        if let Some(c) = self.lock().get(addr)
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let conn = Connection::connect(addr).await?;
        self.lock().insert(addr.clone(), conn.clone());
        Ok(conn)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Addr, Connection>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// === impl Balancer ===

impl Balancer {
    pub(crate) fn new(
        name: &'static str,
        methods: &'static [MethodInfo],
        routing: watch::Receiver<Option<Arc<Routing>>>,
        pool: Arc<Pool>,
    ) -> Balancer {
        Balancer {
            name,
            methods,
            keys: methods
                .iter()
                .map(|m| wire::method_key(name, m.name))
                .collect(),
            routing,
            pool,
            recent: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            jitter: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
        }
    }

    /// The replica for a call, waiting a while if there is none.
    async fn pick(&self, ctx: &Context, key: Option<u64>) -> Result<Addr> {
        let mut rx = self.routing.clone();
        let wait = async {
            loop {
                if let Some(r) = rx.borrow_and_update().as_ref()
                    && let Some(a) = r.pick(key, &self.next)
                {
                    return Ok(a.clone());
                }
                if rx.changed().await.is_err() {
                    return Err(Error::remote(format!("{} is no longer routed", self.name)));
                }
            }
        };
        let limit = ctx
            .remaining()
            .map_or(NO_REPLICA_WAIT, |r| r.min(NO_REPLICA_WAIT));
        match tokio::time::timeout(limit, wait).await {
            Ok(r) => r,
            Err(_) if ctx.remaining().is_some_and(|r| r.is_zero()) => {
                Err(Error::deadline_exceeded())
            }
            Err(_) => Err(Error::remote(format!(
                "no replica of {} is available",
                self.name
            ))),
        }
    }

    /// The replica for a call and, if this balancer used it lately, its
    /// connection, without waiting.
    fn pick_now(&self, key: Option<u64>) -> Fast {
        let routing = self.routing.borrow();
        let Some(addr) = routing.as_ref().and_then(|r| r.pick(key, &self.next)) else {
            return Fast::Wait;
        };
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        match recent.iter().find(|(a, _)| same_addr(a, addr)) {
            Some((_, c)) if !c.is_closed() => Fast::Conn(c.clone()),
            _ => Fast::Dial(addr.clone()),
        }
    }

    /// A connection to `addr`, remembered for the next calls.
    async fn connection(&self, addr: Addr) -> Result<Connection> {
        let conn = self.pool.get(&addr).await?;
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.retain(|(a, c)| *a != addr && !c.is_closed());
        if recent.len() >= RECENT {
            recent.remove(0);
        }
        recent.push((addr, conn.clone()));
        Ok(conn)
    }

    async fn call_once(
        &self,
        ctx: &Context,
        method: u32,
        key: Option<u64>,
        args: &[u8],
    ) -> Result<Vec<u8>> {
        // The slow paths are boxed: dialling, waiting for routing and their
        // timers would otherwise make every call's future (which is moved
        // into a box per call) several times larger.
        let conn = match self.pick_now(key) {
            Fast::Conn(c) => c,
            Fast::Dial(addr) => Box::pin(self.connection(addr)).await?,
            Fast::Wait => {
                let addr = Box::pin(self.pick(ctx, key)).await?;
                Box::pin(self.connection(addr)).await?
            }
        };
        let k = self.keys.get(method as usize).copied().unwrap_or(0);
        conn.call(k, ctx, args).await
    }

    /// 10 ms × 1.3^attempt, minus up to 40% jitter (Service Weaver's policy).
    fn backoff(&self, attempt: u32) -> Duration {
        let mut x = self.jitter.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter.store(x, Ordering::Relaxed);
        let base = 10.0 * 1.3f64.powi(attempt as i32);
        let jitter = 1.0 - 0.4 * (x % 1000) as f64 / 1000.0;
        Duration::from_micros((base * jitter * 1000.0) as u64)
    }
}

impl Transport for Balancer {
    fn call<'a>(
        &'a self,
        ctx: &'a Context,
        method: u32,
        key: Option<u64>,
        args: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(async move {
            let retriable = self
                .methods
                .get(method as usize)
                .is_some_and(|m| m.retriable);
            let mut attempt = 0;
            loop {
                match self.call_once(ctx, method, key, &args).await {
                    Err(e) if e.is_remote() && retriable && attempt + 1 < MAX_ATTEMPTS => {
                        tracing::debug!(component = self.name, attempt, error = %e, "retrying call");
                        // The failed attempt's reply is not the call's end.
                        crate::metrics::method::take_arrival();
                        let pause = self.backoff(attempt);
                        if ctx.remaining().is_some_and(|r| r < pause) {
                            return Err(e);
                        }
                        Box::pin(tokio::time::sleep(pause)).await;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weaver_proto::runtime::{Assignment, Slice};

    fn info(replicas: &[&str], slices: &[(u64, &str)]) -> RoutingInfo {
        RoutingInfo {
            component: "c".into(),
            replicas: replicas.iter().map(|r| r.to_string()).collect(),
            assignment: (!slices.is_empty()).then(|| Assignment {
                slices: slices
                    .iter()
                    .map(|(s, r)| Slice {
                        start: *s,
                        replicas: vec![r.to_string()],
                    })
                    .collect(),
                version: 3,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn unrouted_calls_go_round_robin() {
        let r = Routing::from_proto(&info(&["tcp://a:1", "tcp://b:1"], &[]));
        let next = AtomicUsize::new(0);
        let picks: Vec<_> = (0..4)
            .map(|_| r.pick(None, &next).unwrap().to_string())
            .collect();
        assert_eq!(picks, ["tcp://a:1", "tcp://b:1", "tcp://a:1", "tcp://b:1"]);
        assert!(Routing::default().pick(None, &next).is_none());
    }

    #[test]
    fn routed_calls_go_to_the_slice_owner() {
        let half = u64::MAX / 2;
        let r = Routing::from_proto(&info(
            &["tcp://a:1", "tcp://b:1"],
            &[(0, "tcp://a:1"), (half, "tcp://b:1")],
        ));
        assert_eq!(r.version, 3);
        let next = AtomicUsize::new(0);
        for _ in 0..3 {
            assert_eq!(r.pick(Some(5), &next).unwrap().to_string(), "tcp://a:1");
            assert_eq!(
                r.pick(Some(half + 1), &next).unwrap().to_string(),
                "tcp://b:1"
            );
            assert_eq!(
                r.pick(Some(u64::MAX - 1), &next).unwrap().to_string(),
                "tcp://b:1"
            );
        }
    }
}
