//! The floors: raw Unix sockets between two processes.
//!
//! - `raw` 1 in flight: a blocking std I/O ping-pong of `size`-byte
//!   messages. A message whose first byte is 0xFF asks the server for its
//!   CPU time.
//! - `raw` many in flight: a multiplexed tokio echo over one connection.
//!   Frames are `len:u32le id:u64le payload`; caller tasks each keep one
//!   call in flight, a writer task batches whatever is queued into one
//!   write, a reader task hands replies to callers by id. The server echoes
//!   every complete frame it has read in one write; id `u64::MAX` asks for
//!   its CPU time. Both sides run tokio's multi-thread runtime (`raw`, the
//!   flavour of `#[tokio::main]`) or its current-thread runtime (`raw-ct`).
//! - `tokio-pp` 1 in flight: the ping-pong again with tokio on both sides
//!   (multi-thread), the sockets registered for reading only: the floor of
//!   any RPC driven by a runtime's `epoll_wait` rather than a blocking read.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::{Sample, Spec, cpu_micros, percentile, start_server};

const CPU_ID: u64 = u64::MAX;

/// A tokio runtime flavour.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Flavour {
    MultiThread,
    CurrentThread,
}

impl Flavour {
    pub(crate) fn parse(s: &str) -> anyhow::Result<Flavour> {
        match s {
            "mt" => Ok(Flavour::MultiThread),
            "ct" => Ok(Flavour::CurrentThread),
            other => anyhow::bail!("unknown runtime flavour {other:?}"),
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Flavour::MultiThread => "mt",
            Flavour::CurrentThread => "ct",
        }
    }

    fn runtime(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            Flavour::MultiThread => tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build(),
            Flavour::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        }
    }
}

/// `raw` (with the ping-pong) or `raw-ct` (multiplexed echo only).
pub(crate) fn measure(
    exe: &Path,
    dir: &Path,
    spec: &Spec,
    flavour: Flavour,
    pingpong: bool,
) -> anyhow::Result<Sample> {
    let mut sample = Sample::none();
    if pingpong {
        measure_pingpong(exe, dir, spec, &mut sample)?;
    }
    // Many in flight: multiplexed tokio.
    let sock = dir.join("mux.sock");
    let _server = start_server(exe, &["raw-mux", flavour.arg()], &sock)?;
    let (calls_per_sec, cpu) = flavour.runtime()?.block_on(mux_client(&sock, spec))?;
    sample.calls_per_sec = Some(calls_per_sec);
    sample.cpu64_us_per_call = Some(cpu);
    Ok(sample)
}

fn measure_pingpong(
    exe: &Path,
    dir: &Path,
    spec: &Spec,
    sample: &mut Sample,
) -> anyhow::Result<()> {
    // 1 in flight: blocking ping-pong.
    let sock = dir.join("pingpong.sock");
    let server = start_server(exe, &["raw-pingpong"], &sock)?;
    let mut s = UnixStream::connect(&sock)?;
    let msg: Vec<u8> = (0..spec.size.max(1)).map(|i| i as u8).collect();
    let mut reply = vec![0u8; msg.len()];
    let call = |s: &mut UnixStream, m: &[u8], r: &mut [u8]| -> std::io::Result<()> {
        s.write_all(m)?;
        s.read_exact(r)
    };
    for _ in 0..spec.warmup {
        call(&mut s, &msg, &mut reply)?;
    }
    let server_cpu = |s: &mut UnixStream| -> anyhow::Result<u64> {
        let mut q = vec![0u8; msg.len().max(8)];
        q[0] = 0xFF;
        let mut r = vec![0u8; q.len()];
        s.write_all(&q)?;
        s.read_exact(&mut r)?;
        Ok(u64::from_le_bytes(r[..8].try_into()?))
    };
    let mut lat = Vec::with_capacity(spec.calls);
    let (c0, s0) = (cpu_micros(), server_cpu(&mut s)?);
    for _ in 0..spec.calls {
        let t = Instant::now();
        call(&mut s, &msg, &mut reply)?;
        lat.push(t.elapsed());
    }
    let (c1, s1) = (cpu_micros(), server_cpu(&mut s)?);
    anyhow::ensure!(reply == msg, "the ping-pong server echoed different bytes");
    drop(s);
    drop(server);
    lat.sort_unstable();
    sample.p50_us = Some(percentile(&lat, 0.50));
    sample.p99_us = Some(percentile(&lat, 0.99));
    sample.cpu1_us_per_call = Some((c1 - c0 + s1 - s0) as f64 / spec.calls as f64);
    Ok(())
}

/// The blocking ping-pong server: one connection at a time.
pub(crate) fn serve_pingpong(path: &Path) -> anyhow::Result<()> {
    let listener = UnixListener::bind(path)?;
    for conn in listener.incoming() {
        let mut s = conn?;
        // The first connection is the readiness probe; it sends nothing.
        let mut buf = [0u8; 4096];
        let mut size = 0usize;
        loop {
            // Learn the message size from the first read, then echo in kind.
            let n = match s.read(&mut buf[size..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            size += n;
            let msg = &mut buf[..size];
            if msg[0] == 0xFF && size >= 8 {
                msg[..8].copy_from_slice(&cpu_micros().to_le_bytes());
            }
            if s.write_all(msg).is_err() {
                break;
            }
            size = 0;
        }
    }
    Ok(())
}

/// The multiplexed server.
pub(crate) fn serve_mux(path: &Path, flavour: Flavour) -> anyhow::Result<()> {
    flavour.runtime()?.block_on(async {
        let listener = tokio::net::UnixListener::bind(path)?;
        loop {
            let (s, _) = listener.accept().await?;
            tokio::spawn(async move {
                let _ = echo_frames(s).await;
            });
        }
    })
}

async fn echo_frames(mut s: tokio::net::UnixStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    let mut filled = 0;
    loop {
        let n = s.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        // Find the complete frames.
        let mut end = 0;
        while filled - end >= 4 {
            let len = u32::from_le_bytes(buf[end..end + 4].try_into().unwrap_or_default()) as usize;
            if filled - end < 4 + len {
                break;
            }
            if len >= 16 && buf[end + 4..end + 12] == CPU_ID.to_le_bytes() {
                buf[end + 12..end + 20].copy_from_slice(&cpu_micros().to_le_bytes());
            }
            end += 4 + len;
        }
        s.write_all(&buf[..end]).await?;
        buf.copy_within(end..filled, 0);
        filled -= end;
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
    }
}

type Waiters = Arc<Mutex<Vec<Option<oneshot::Sender<Vec<u8>>>>>>;

/// Drives `spec.mux` calls with `spec.inflight` callers; returns calls/s and
/// CPU µs per call (both processes).
async fn mux_client(path: &Path, spec: &Spec) -> anyhow::Result<(f64, f64)> {
    let s = tokio::net::UnixStream::connect(path).await?;
    let (r, mut w) = s.into_split();
    let slots = spec.inflight + 1;
    let waiters: Waiters = Arc::new(Mutex::new((0..slots).map(|_| None).collect()));
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(64 << 10);
        while let Some(f) = rx.recv().await {
            batch.clear();
            batch.extend_from_slice(&f);
            while let Ok(f) = rx.try_recv() {
                batch.extend_from_slice(&f);
            }
            if w.write_all(&batch).await.is_err() {
                return;
            }
        }
    });
    let reader_waiters = waiters.clone();
    tokio::spawn(async move {
        let mut r = BufReader::with_capacity(64 << 10, r);
        let mut head = [0u8; 12];
        loop {
            if r.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let id = u64::from_le_bytes(head[4..12].try_into().unwrap_or_default());
            let mut payload = vec![0u8; len.saturating_sub(8)];
            if r.read_exact(&mut payload).await.is_err() {
                return;
            }
            let slot = if id == CPU_ID { slots - 1 } else { id as usize };
            let w = reader_waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(slot)
                .and_then(Option::take);
            if let Some(w) = w {
                let _ = w.send(payload);
            }
        }
    });
    let call = {
        let (tx, waiters) = (tx.clone(), waiters.clone());
        move |id: u64, slot: usize, payload: Vec<u8>| {
            let (otx, orx) = oneshot::channel();
            if let Some(s) = waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(slot)
            {
                *s = Some(otx);
            }
            let mut f = Vec::with_capacity(12 + payload.len());
            f.extend_from_slice(&((8 + payload.len()) as u32).to_le_bytes());
            f.extend_from_slice(&id.to_le_bytes());
            f.extend_from_slice(&payload);
            let sent = tx.send(f);
            async move {
                sent.map_err(|_| anyhow::anyhow!("writer gone"))?;
                Ok::<_, anyhow::Error>(orx.await?)
            }
        }
    };
    let server_cpu = || {
        let c = call(CPU_ID, slots - 1, vec![0u8; 8]);
        async move { anyhow::Ok(u64::from_le_bytes(c.await?[..8].try_into()?)) }
    };
    let msg: Vec<u8> = (0..spec.size).map(|i| i as u8).collect();
    // Warm up with every caller.
    let total_warm = spec.warmup.max(spec.inflight) as u64;
    run_callers(spec.inflight, total_warm, &msg, &call).await?;
    let (c0, s0) = (cpu_micros(), server_cpu().await?);
    let start = Instant::now();
    run_callers(spec.inflight, spec.mux as u64, &msg, &call).await?;
    let wall = start.elapsed();
    let (c1, s1) = (cpu_micros(), server_cpu().await?);
    Ok((
        spec.mux as f64 / wall.as_secs_f64().max(1e-9),
        (c1 - c0 + s1 - s0) as f64 / spec.mux as f64,
    ))
}

async fn run_callers<F, Fut>(
    inflight: usize,
    total: u64,
    msg: &[u8],
    call: &F,
) -> anyhow::Result<()>
where
    F: Fn(u64, usize, Vec<u8>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Vec<u8>>> + Send,
{
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..inflight)
        .map(|i| {
            let (next, call, msg) = (next.clone(), call.clone(), msg.to_vec());
            tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                    let r = call(i as u64, i, msg.clone()).await?;
                    anyhow::ensure!(r.len() == msg.len(), "short echo");
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t).await???;
    }
    Ok(())
}

/// `tokio-pp`: the ping-pong on tokio, registered for reading only.
pub(crate) fn measure_tokio_pingpong(
    exe: &Path,
    dir: &Path,
    spec: &Spec,
) -> anyhow::Result<Sample> {
    let sock = dir.join("tpp.sock");
    let _server = start_server(exe, &["tokio-pp"], &sock)?;
    let spec = spec.clone();
    Flavour::MultiThread.runtime()?.block_on(async move {
        // Run where a user's handlers would: on a runtime task.
        tokio::spawn(async move {
            let fd = register(UnixStream::connect(&sock)?)?;
            let msg: Vec<u8> = (0..spec.size.max(1)).map(|i| i as u8).collect();
            let mut reply = vec![0u8; 4096];
            let round_trip = async |m: &[u8], r: &mut [u8]| -> anyhow::Result<usize> {
                fd.get_ref().write_all(m)?;
                Ok(read_some(&fd, r).await?)
            };
            for _ in 0..spec.warmup {
                round_trip(&msg, &mut reply).await?;
            }
            let mut q = vec![0u8; msg.len().max(8)];
            q[0] = 0xFF;
            let mut lat = Vec::with_capacity(spec.calls);
            round_trip(&q, &mut reply).await?;
            let (c0, s0) = (cpu_micros(), u64::from_le_bytes(reply[..8].try_into()?));
            for _ in 0..spec.calls {
                let t = Instant::now();
                round_trip(&msg, &mut reply).await?;
                lat.push(t.elapsed());
            }
            round_trip(&q, &mut reply).await?;
            let (c1, s1) = (cpu_micros(), u64::from_le_bytes(reply[..8].try_into()?));
            lat.sort_unstable();
            let mut sample = Sample::none();
            sample.p50_us = Some(percentile(&lat, 0.5));
            sample.p99_us = Some(percentile(&lat, 0.99));
            sample.cpu1_us_per_call = Some((c1 - c0 + s1 - s0) as f64 / spec.calls as f64);
            anyhow::Ok(sample)
        })
        .await?
    })
}

/// The server of `tokio-pp`.
pub(crate) fn serve_tokio_pingpong(path: &Path) -> anyhow::Result<()> {
    Flavour::MultiThread.runtime()?.block_on(async {
        let listener = UnixListener::bind(path)?;
        loop {
            let (s, _) = listener.accept()?;
            tokio::spawn(async move {
                let fd = register(s)?;
                let mut buf = vec![0u8; 4096];
                loop {
                    let n = read_some(&fd, &mut buf).await?;
                    if n == 0 {
                        return anyhow::Ok(());
                    }
                    if buf[0] == 0xFF && n >= 8 {
                        buf[..8].copy_from_slice(&cpu_micros().to_le_bytes());
                    }
                    fd.get_ref().write_all(&buf[..n])?;
                }
            });
        }
    })
}

/// A socket registered with tokio for readability only (writes go straight
/// to the non-blocking socket; in a ping-pong they never wait).
#[allow(deprecated)] // `with_interest` is sound here: the AsyncFd owns the socket.
fn register(s: UnixStream) -> std::io::Result<tokio::io::unix::AsyncFd<UnixStream>> {
    s.set_nonblocking(true)?;
    tokio::io::unix::AsyncFd::with_interest(s, tokio::io::Interest::READABLE)
}

/// Waits for data and reads it; a short read forgets the readiness.
async fn read_some(
    fd: &tokio::io::unix::AsyncFd<UnixStream>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        if let Ok(r) = guard.try_io(|s| s.get_ref().read(buf)) {
            let n = r?;
            if n < buf.len() {
                guard.clear_ready();
            }
            return Ok(n);
        }
    }
}
