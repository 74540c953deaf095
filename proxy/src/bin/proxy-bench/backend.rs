//! The benchmark's backends: minimal hyper HTTP/1.1 servers answering a short
//! body, all on one thread of their own.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::mpsc;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{BenchError, cpu};

const BODY: &[u8] = b"hello, weaver\n";

/// Starts `count` backends on 127.0.0.1:0 and returns their addresses and
/// the kernel id of the thread serving them.
pub(crate) fn start(count: usize) -> Result<(Vec<SocketAddr>, Option<u32>), BenchError> {
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
                        tokio::spawn(serve(listener));
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

async fn serve(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_req| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(BODY))))
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
