//! The peer: a tonic gRPC echo over a Unix socket.
//!
//! The service is built by hand on tonic's generic server and client
//! (`tonic::server::Grpc`, `tonic::client::Grpc`) with prost messages and
//! `tonic_prost::ProstCodec`, which is what tonic's generated code does, so
//! no `protoc` is needed. Methods: `/bench.Echo/Echo` (bytes back) and
//! `/bench.Echo/Cpu` (the server's CPU time). Both sides run on tokio's
//! multi-thread runtime, as a `#[tokio::main]` app does.

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tonic::codegen::Service;
use tonic::codegen::http::{self, Uri, uri::PathAndQuery};
use tonic::transport::{Channel, Endpoint};
use tonic_prost::ProstCodec;

use crate::{Sample, Spec, cpu_micros, percentile, start_server};

/// Bytes, each way.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Blob {
    /// The payload.
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) data: Vec<u8>,
}

/// The server's CPU time.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CpuReply {
    /// User + system µs.
    #[prost(uint64, tag = "1")]
    pub(crate) micros: u64,
}

const ECHO: &str = "/bench.Echo/Echo";
const CPU: &str = "/bench.Echo/Cpu";

type BoxFut<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

// === server ===

#[derive(Clone)]
struct EchoServer;

#[derive(Clone)]
struct EchoMethod;

impl Service<tonic::Request<Blob>> for EchoMethod {
    type Response = tonic::Response<Blob>;
    type Error = tonic::Status;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::Request<Blob>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(req.into_inner())))
    }
}

#[derive(Clone)]
struct CpuMethod;

impl Service<tonic::Request<Blob>> for CpuMethod {
    type Response = tonic::Response<CpuReply>;
    type Error = tonic::Status;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: tonic::Request<Blob>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(CpuReply {
            micros: cpu_micros(),
        })))
    }
}

impl Service<http::Request<tonic::body::Body>> for EchoServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFut<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        match req.uri().path() {
            ECHO => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::<Blob, Blob>::default());
                Ok(grpc.unary(EchoMethod, req).await)
            }),
            CPU => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::<CpuReply, Blob>::default());
                Ok(grpc.unary(CpuMethod, req).await)
            }),
            _ => Box::pin(
                async move { Ok(tonic::Status::unimplemented("no such method").into_http()) },
            ),
        }
    }
}

/// `rpc-bench serve tonic <socket>`.
pub(crate) fn serve(path: &Path) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::UnixListener::bind(path)?;
        let incoming = futures_util::stream::unfold(listener, |l| async move {
            let conn = l.accept().await.map(|(s, _)| s);
            Some((conn, l))
        });
        tonic::transport::Server::builder()
            .serve_with_incoming(EchoServer, incoming)
            .await?;
        anyhow::Ok(())
    })
}

// === client ===

/// Dials the Unix socket for tonic's channel.
#[derive(Clone)]
struct Uds(Arc<PathBuf>);

impl Service<Uri> for Uds {
    type Response = TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = BoxFut<Self::Response, std::io::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move { Ok(TokioIo::new(tokio::net::UnixStream::connect(&*path).await?)) })
    }
}

async fn echo(client: &mut tonic::client::Grpc<Channel>, data: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    client.ready().await?;
    let reply = client
        .unary(
            tonic::Request::new(Blob { data }),
            PathAndQuery::from_static(ECHO),
            ProstCodec::<Blob, Blob>::default(),
        )
        .await?;
    Ok(reply.into_inner().data)
}

async fn server_cpu(client: &mut tonic::client::Grpc<Channel>) -> anyhow::Result<u64> {
    client.ready().await?;
    let reply = client
        .unary(
            tonic::Request::new(Blob::default()),
            PathAndQuery::from_static(CPU),
            ProstCodec::<Blob, CpuReply>::default(),
        )
        .await?;
    Ok(reply.into_inner().micros)
}

pub(crate) fn measure(exe: &Path, dir: &Path, spec: &Spec) -> anyhow::Result<Sample> {
    let sock = dir.join("tonic.sock");
    let _server = start_server(exe, &["tonic"], &sock)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Run where a user's handlers would: on a runtime task.
        let spec = spec.clone();
        tokio::spawn(async move { client(sock, spec).await }).await?
    })
}

async fn client(sock: PathBuf, spec: Spec) -> anyhow::Result<Sample> {
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(Uds(Arc::new(sock)))
        .await?;
    let mut c = tonic::client::Grpc::new(channel);
    let data: Vec<u8> = (0..spec.size).map(|i| i as u8).collect();
    for _ in 0..spec.warmup {
        echo(&mut c, data.clone()).await?;
    }
    let mut sample = Sample::none();

    let mut lat = Vec::with_capacity(spec.calls);
    let (c0, s0) = (cpu_micros(), server_cpu(&mut c).await?);
    for _ in 0..spec.calls {
        let t = Instant::now();
        let r = echo(&mut c, data.clone()).await?;
        lat.push(t.elapsed());
        anyhow::ensure!(r.len() == data.len(), "short echo");
    }
    let (c1, s1) = (cpu_micros(), server_cpu(&mut c).await?);
    lat.sort_unstable();
    sample.p50_us = Some(percentile(&lat, 0.50));
    sample.p99_us = Some(percentile(&lat, 0.99));
    sample.cpu1_us_per_call = Some((c1 - c0 + s1 - s0) as f64 / spec.calls as f64);

    let next = Arc::new(AtomicU64::new(0));
    let total = spec.mux as u64;
    let (c2, s2) = (cpu_micros(), server_cpu(&mut c).await?);
    let start = Instant::now();
    let tasks: Vec<_> = (0..spec.inflight)
        .map(|_| {
            let (next, mut c, data) = (next.clone(), c.clone(), data.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let r = echo(&mut c, data.clone()).await?;
                    anyhow::ensure!(r.len() == data.len(), "short echo");
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(300), t).await???;
    }
    let wall = start.elapsed();
    let (c3, s3) = (cpu_micros(), server_cpu(&mut c).await?);
    sample.calls_per_sec = Some(spec.mux as f64 / wall.as_secs_f64().max(1e-9));
    sample.cpu64_us_per_call = Some((c3 - c2 + s3 - s2) as f64 / spec.mux as f64);
    Ok(sample)
}
