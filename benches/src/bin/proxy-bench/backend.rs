//! The benchmark's backends: minimal hyper servers answering a short body,
//! all on one thread of their own. By default they speak HTTP/1.1 and h2c
//! (hyper-util's auto server, as the examples' apps do), so weaver-proxy
//! multiplexes its requests over HTTP/2 while nginx speaks HTTP/1.1 to them;
//! `--backends http1` makes them HTTP/1.1 only.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::mpsc;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::{BenchError, cpu};

const BODY: &[u8] = b"hello, weaver\n";

/// Starts `count` backends on 127.0.0.1:0 (HTTP/1.1 only if `http1_only`)
/// and returns their addresses and the kernel id of the thread serving them.
pub(crate) fn start(
    count: usize,
    http1_only: bool,
) -> Result<(Vec<SocketAddr>, Option<u32>), BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = mpsc::channel();
    let (tid_tx, tid_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("backends".to_owned())
        .spawn(move || {
            let _ = tid_tx.send(cpu::current_tid());
            runtime.block_on(async move {
                for _ in 0..count {
                    let bound = TcpListener::bind("127.0.0.1:0").await;
                    let addr = bound
                        .as_ref()
                        .map_err(|e| e.to_string())
                        .and_then(|l| l.local_addr().map_err(|e| e.to_string()));
                    let _ = tx.send(addr);
                    if let Ok(listener) = bound {
                        tokio::spawn(serve(listener, http1_only));
                    }
                }
                std::future::pending::<()>().await;
            });
        })?;
    let tid = tid_rx.recv()?;
    let addrs = (0..count)
        .map(|_| {
            rx.recv()
                .map_err(BenchError::from)?
                .map_err(BenchError::from)
        })
        .collect::<Result<_, _>>()?;
    Ok((addrs, tid))
}

async fn serve(listener: TcpListener, http1_only: bool) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_req| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(BODY))))
            });
            let io = TokioIo::new(stream);
            if http1_only {
                let _ = http1::Builder::new().serve_connection(io, service).await;
            } else {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
            }
        });
    }
}
