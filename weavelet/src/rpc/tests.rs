//! A component called through its generated client stub, over the real RPC
//! protocol on an in-memory stream, to the generated server dispatcher.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::{Connection, Dispatcher, server};
use crate::component::{Handle, Instance, Interface, Target, Transport, Wrap};
use crate::{BoxFuture, Context, Error, Ref, Result};

#[weaver_macros::component(crate = "crate")]
pub(crate) trait Calc {
    async fn add(&self, ctx: &Context, a: i64, b: i64) -> Result<i64>;
    async fn div(&self, ctx: &Context, a: i64, b: i64) -> Result<i64>;
    async fn echo(&self, ctx: &Context, data: Vec<u8>, tag: String) -> Result<(Vec<u8>, String)>;
    async fn wait(&self, ctx: &Context) -> Result<()>;
    async fn boom(&self, ctx: &Context) -> Result<()>;
    #[weaver(not_retriable)]
    async fn nothing(&self, ctx: &Context) -> Result<()>;
    async fn nested(&self, ctx: &Context) -> Result<()>;
}

struct CalcImpl {
    started: tokio::sync::mpsc::UnboundedSender<()>,
    release: Arc<Notify>,
    dropped: Arc<AtomicUsize>,
}

struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CalcImpl {
    fn new() -> (Self, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let (started, rx) = tokio::sync::mpsc::unbounded_channel();
        let imp = CalcImpl {
            started,
            release: Arc::default(),
            dropped: Arc::default(),
        };
        (imp, rx)
    }
}

impl Calc for CalcImpl {
    async fn add(&self, _ctx: &Context, a: i64, b: i64) -> Result<i64> {
        a.checked_add(b).ok_or_else(|| Error::new("overflow"))
    }
    async fn div(&self, _ctx: &Context, a: i64, b: i64) -> Result<i64> {
        if b == 0 {
            return Err(Error::new(format!("cannot divide {a} by zero")));
        }
        Ok(a / b)
    }
    async fn echo(&self, _ctx: &Context, data: Vec<u8>, tag: String) -> Result<(Vec<u8>, String)> {
        Ok((data, tag))
    }
    async fn wait(&self, _ctx: &Context) -> Result<()> {
        let _guard = DropCounter(self.dropped.clone());
        let _ = self.started.send(());
        self.release.notified().await;
        Ok(())
    }
    async fn boom(&self, _ctx: &Context) -> Result<()> {
        panic!("kaboom")
    }
    async fn nothing(&self, _ctx: &Context) -> Result<()> {
        Ok(())
    }
    async fn nested(&self, _ctx: &Context) -> Result<()> {
        // What a body sees when a call it makes fails in transit, returned
        // with `?`.
        Err(Error::remote("connection to the ledger replica closed"))
    }
}

/// Serves one instance's methods by key, as a weavelet does.
struct OneComponent {
    instance: Instance,
    keys: HashMap<u64, u32>,
}

impl Dispatcher for OneComponent {
    fn dispatch(&self, key: u64, ctx: Context, args: Bytes) -> BoxFuture<'static, Result<Vec<u8>>> {
        match self.keys.get(&key) {
            Some(m) => <dyn Calc>::dispatch(&self.instance, ctx, *m, &args),
            None => Box::pin(std::future::ready(Err(Error::internal(
                "unknown method key",
            )))),
        }
    }
}

/// Sends every call over one connection.
struct OneConnection {
    conn: Connection,
    keys: Vec<u64>,
}

impl Transport for OneConnection {
    fn call<'a>(
        &'a self,
        ctx: &'a Context,
        method: u32,
        _key: Option<u64>,
        args: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>>> {
        let key = self.keys[method as usize];
        Box::pin(async move { self.conn.call(key, ctx, &args).await.map(|b| b.to_vec()) })
    }
}

fn method_keys() -> Vec<u64> {
    <dyn Calc>::METHODS
        .iter()
        .map(|m| super::wire::method_key(<dyn Calc>::NAME, m.name))
        .collect()
}

fn instance(imp: CalcImpl) -> Instance {
    <dyn Calc as Wrap<CalcImpl>>::wrap(Arc::new(imp))
}

/// A local and a remote client of the same implementation.
fn clients(imp: CalcImpl) -> (CalcClient, CalcClient) {
    let instance = instance(imp);
    let keys = method_keys();
    let dispatcher = Arc::new(OneComponent {
        instance: instance.clone(),
        keys: keys
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, i as u32))
            .collect(),
    });
    let (a, b) = tokio::io::duplex(1 << 16);
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    tokio::spawn(server::serve(br, bw, dispatcher));
    let conn = Connection::new("in-memory".into(), ar, aw);
    let name = <dyn Calc>::NAME;
    let remote = Ref::<dyn Calc>::new(Handle::with_target(
        name,
        Target::Remote(Arc::new(OneConnection { conn, keys })),
    ));
    let local = Ref::<dyn Calc>::new(Handle::with_target(name, Target::Local(instance)));
    (local.get().clone(), remote.get().clone())
}

#[tokio::test]
async fn remote_calls_match_local_calls_errors_included() {
    let (local, remote) = clients(CalcImpl::new().0);
    let ctx = Context::new();
    for client in [&local, &remote] {
        assert_eq!(client.add(&ctx, 2, 40).await.unwrap(), 42);
        assert_eq!(client.div(&ctx, 9, 3).await.unwrap(), 3);
        let blob = vec![7u8; 100_000];
        assert_eq!(
            client.echo(&ctx, blob.clone(), "t".into()).await.unwrap(),
            (blob, "t".to_string())
        );
        client.nothing(&ctx).await.unwrap();
    }
    let (l, r) = (
        local.div(&ctx, 1, 0).await.unwrap_err(),
        remote.div(&ctx, 1, 0).await.unwrap_err(),
    );
    assert_eq!(l.to_string(), r.to_string());
    assert_eq!(r.to_string(), "cannot divide 1 by zero");
    assert!(r.is_application() && !r.is_remote());
    let overflow = remote.add(&ctx, i64::MAX, 1).await.unwrap_err();
    assert!(overflow.is_application());
    assert_eq!(overflow.message(), "overflow");
}

#[tokio::test]
async fn an_error_a_body_returns_is_never_a_transport_error_of_its_call() {
    let (local, remote) = clients(CalcImpl::new().0);
    let ctx = Context::new();
    let (l, r) = (
        local.nested(&ctx).await.unwrap_err(),
        remote.nested(&ctx).await.unwrap_err(),
    );
    for e in [&l, &r] {
        // Not remote, so no caller retries it; the cause stays visible.
        assert!(e.is_application() && !e.is_remote(), "{e:?}");
        assert!(e.caused_by_remote(), "{e:?}");
        assert_eq!(
            format!("{e:?}"),
            "a call made by weaver::rpc::tests::Calc.nested failed: \
             remote call error: connection to the ledger replica closed"
        );
    }
}

#[tokio::test]
async fn many_calls_in_flight_on_one_connection() {
    let (_, remote) = clients(CalcImpl::new().0);
    let calls = (0..500).map(|i| {
        let remote = remote.clone();
        tokio::spawn(async move { remote.add(&Context::new(), i, i).await })
    });
    for (i, c) in calls.enumerate() {
        assert_eq!(c.await.unwrap().unwrap(), 2 * i as i64);
    }
}

#[tokio::test]
async fn a_panicking_method_is_a_remote_error_and_the_connection_survives() {
    let (_, remote) = clients(CalcImpl::new().0);
    let err = remote.boom(&Context::new()).await.unwrap_err();
    assert!(err.is_remote(), "{err:?}");
    assert!(err.message().contains("kaboom"), "{err}");
    assert_eq!(remote.add(&Context::new(), 1, 1).await.unwrap(), 2);
}

#[tokio::test]
async fn deadlines_travel_and_cancellation_reaches_the_handler() {
    let (imp, mut started) = CalcImpl::new();
    let dropped = imp.dropped.clone();
    let (_, remote) = clients(imp);
    // The deadline expires while the handler waits: the caller gets a
    // deadline error and the handler is dropped at the server.
    let ctx = Context::new().with_timeout(Duration::from_millis(50));
    let err = remote.wait(&ctx).await.unwrap_err();
    assert!(err.is_deadline_exceeded(), "{err:?}");
    started.recv().await.unwrap();
    // Dropping an in-flight call cancels it remotely.
    let call = tokio::spawn({
        let remote = remote.clone();
        async move { remote.wait(&Context::new()).await }
    });
    started.recv().await.unwrap();
    call.abort();
    tokio::time::timeout(Duration::from_secs(5), async {
        while dropped.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("both handlers were dropped at the server");
}

#[tokio::test]
async fn a_closed_connection_is_a_remote_error() {
    let (a, b) = tokio::io::duplex(1024);
    let (ar, aw) = tokio::io::split(a);
    drop(b);
    let conn = Connection::new("gone".into(), ar, aw);
    let err = conn.call(1, &Context::new(), b"").await.unwrap_err();
    assert!(err.is_remote(), "{err:?}");
}

// === over a real Unix socket ===
//
// Sockets take other paths than in-memory streams: a server thread with
// blocking reads, writes that can fill the socket buffer, and callers that
// read their own replies.

/// A temporary socket directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A local and a remote client of the same implementation, the remote one
/// over a Unix socket served by [`super::Server`].
async fn socket_clients(imp: CalcImpl) -> (CalcClient, CalcClient, TempDir) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "weaver-rpc-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("calc.sock");
    let instance = instance(imp);
    let keys = method_keys();
    let dispatcher = Arc::new(OneComponent {
        instance: instance.clone(),
        keys: keys
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, i as u32))
            .collect(),
    });
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    super::Server::spawn_unix(listener, dispatcher);
    let conn = Connection::connect(&super::Addr::Unix(path)).await.unwrap();
    let name = <dyn Calc>::NAME;
    let remote = Ref::<dyn Calc>::new(Handle::with_target(
        name,
        Target::Remote(Arc::new(OneConnection { conn, keys })),
    ));
    let local = Ref::<dyn Calc>::new(Handle::with_target(name, Target::Local(instance)));
    (local.get().clone(), remote.get().clone(), TempDir(dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_a_unix_socket_match_local_calls() {
    let (local, remote, _dir) = socket_clients(CalcImpl::new().0).await;
    let ctx = Context::new();
    for client in [&local, &remote] {
        for _ in 0..100 {
            assert_eq!(client.add(&ctx, 2, 40).await.unwrap(), 42);
        }
        // Larger than the socket buffers: writes fill them and wait.
        let blob: Vec<u8> = (0..1 << 20).map(|i| i as u8).collect();
        assert_eq!(
            client.echo(&ctx, blob.clone(), "t".into()).await.unwrap(),
            (blob, "t".to_string())
        );
        client.nothing(&ctx).await.unwrap();
    }
    let err = remote.div(&ctx, 1, 0).await.unwrap_err();
    assert!(err.is_application() && !err.is_remote());
    assert_eq!(err.to_string(), "cannot divide 1 by zero");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_in_flight_over_a_unix_socket() {
    let (_, remote, _dir) = socket_clients(CalcImpl::new().0).await;
    let calls = (0..300).map(|i| {
        let remote = remote.clone();
        tokio::spawn(async move {
            let blob = vec![i as u8; (i as usize % 7) * 10_000];
            let (b, _) = remote
                .echo(&Context::new(), blob.clone(), String::new())
                .await?;
            assert_eq!(b, blob);
            remote.add(&Context::new(), i, i).await
        })
    });
    for (i, c) in calls.enumerate() {
        assert_eq!(c.await.unwrap().unwrap(), 2 * i as i64);
    }
}

#[tokio::test]
async fn panics_deadlines_and_cancellation_over_a_unix_socket() {
    let (imp, mut started) = CalcImpl::new();
    let (dropped, release) = (imp.dropped.clone(), imp.release.clone());
    let (_, remote, _dir) = socket_clients(imp).await;
    let err = remote.boom(&Context::new()).await.unwrap_err();
    assert!(
        err.is_remote() && err.message().contains("kaboom"),
        "{err:?}"
    );
    assert_eq!(remote.add(&Context::new(), 1, 1).await.unwrap(), 2);

    // A handler that waits runs on a task and answers when released.
    let call = tokio::spawn({
        let remote = remote.clone();
        async move { remote.wait(&Context::new()).await }
    });
    started.recv().await.unwrap();
    release.notify_one();
    call.await.unwrap().unwrap();

    let ctx = Context::new().with_timeout(Duration::from_millis(50));
    let err = remote.wait(&ctx).await.unwrap_err();
    assert!(err.is_deadline_exceeded(), "{err:?}");
    started.recv().await.unwrap();
    let call = tokio::spawn({
        let remote = remote.clone();
        async move { remote.wait(&Context::new()).await }
    });
    started.recv().await.unwrap();
    call.abort();
    tokio::time::timeout(Duration::from_secs(5), async {
        while dropped.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("every handler was dropped at the server");
    assert_eq!(remote.add(&Context::new(), 2, 2).await.unwrap(), 4);
}

#[tokio::test]
async fn a_vanished_server_is_a_remote_error() {
    let dir = TempDir(std::env::temp_dir().join(format!("weaver-rpc-gone-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join("gone.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let accept = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
    let conn = Connection::connect(&super::Addr::Unix(path)).await.unwrap();
    drop(accept.await.unwrap().unwrap());
    let err = conn.call(1, &Context::new(), b"").await.unwrap_err();
    assert!(err.is_remote(), "{err:?}");
    assert!(conn.is_closed());
}

/// A TCP listener on loopback whose accept queue is full (backlog 0, never
/// accepted, filled by `held`): the kernel drops further SYNs, as a peer
/// behind a lossy network would.
fn full_listener() -> (
    std::os::fd::OwnedFd,
    std::net::SocketAddr,
    Vec<std::net::TcpStream>,
) {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, getsockname, listen, socket,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(127, 0, 0, 1, 0),
    )
    .expect("bind");
    listen(&fd, nix::sys::socket::Backlog::new(0).expect("backlog")).expect("listen");
    let local: SockaddrIn = getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd)).expect("name");
    let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, local.port()));
    // Fill the queue: these complete (or hang, once it is full: bounded).
    let held = (0..3)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .collect();
    (fd, addr, held)
}

#[tokio::test]
async fn a_dial_that_gets_no_answer_gives_up_in_time() {
    let (_listener, addr, held) = full_listener();
    assert!(!held.is_empty(), "the queue took at least one connection");
    let started = std::time::Instant::now();
    let err = Connection::connect_within(
        &super::Addr::Tcp(addr.to_string()),
        Duration::from_millis(300),
    )
    .await
    .err()
    .expect("the queue is full: no answer");
    assert!(
        err.is_remote(),
        "a transport error, retried like one: {err:?}"
    );
    assert!(err.message().contains("no answer within 300ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
