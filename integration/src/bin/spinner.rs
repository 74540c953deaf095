//! A weaver app for the profiling tests: a Spinner component, in a group
//! of its own, burns CPU in a function with a name to look for in the
//! profile.
//!
//! Endpoints on the `http` listener: `/spin?ms=N` spins the Spinner for N
//! ms or until `/stop` (it logs "spinning" as it starts) and answers with
//! how many rounds it ran; `/stop` ends the spins under way. Main logs "spinner ready" with the listener's address once it
//! serves.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use weaver::{Context, Listener, Logger, Ref};

/// Burns CPU on request.
#[weaver::component]
pub(crate) trait Spinner {
    /// Spins for `ms` milliseconds or until [`Spinner::stop`]; returns the
    /// rounds run.
    async fn spin(&self, ctx: &Context, ms: u64) -> weaver::Result<u64>;
    /// Ends the spins under way.
    async fn stop(&self, ctx: &Context) -> weaver::Result<u64>;
}

#[weaver::implements(Spinner)]
struct SpinnerImpl {
    logger: Logger,
    /// Set by `stop`; cleared as a spin starts.
    #[weaver(default)]
    stopped: Arc<AtomicBool>,
}

impl Spinner for SpinnerImpl {
    async fn spin(&self, _ctx: &Context, ms: u64) -> weaver::Result<u64> {
        self.stopped.store(false, Ordering::SeqCst);
        self.logger.info("spinning");
        let until = Instant::now() + Duration::from_millis(ms);
        let stopped = self.stopped.clone();
        tokio::task::spawn_blocking(move || spin_for_the_profile(until, &stopped))
            .await
            .map_err(|e| weaver::Error::new(format!("the spinner panicked: {e}")))
    }

    async fn stop(&self, _ctx: &Context) -> weaver::Result<u64> {
        self.stopped.store(true, Ordering::SeqCst);
        Ok(0)
    }
}

/// The frame the profiling tests look for. It reads the clock rarely: the
/// profiler drops samples taken inside the vDSO.
#[inline(never)]
fn spin_for_the_profile(until: Instant, stopped: &AtomicBool) -> u64 {
    let mut rounds = 0u64;
    let mut x = 0u64;
    while Instant::now() < until && !stopped.load(Ordering::SeqCst) {
        for _ in 0..1_000_000 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        rounds += 1;
    }
    std::hint::black_box(x);
    rounds
}

#[weaver::main]
struct App {
    spinner: Ref<dyn Spinner>,
    http: Listener,
    logger: Logger,
}

#[tokio::main]
async fn main() -> weaver::Result<()> {
    weaver::run(|app: &'static App, _ctx| async move {
        app.logger
            .info_with("spinner ready", [("address", app.http.proxy_addr())]);
        let service = hyper::service::service_fn(move |req| handle(app, req));
        weaver::serve(&app.http, service).await?;
        Ok(())
    })
    .await
}

async fn handle(app: &App, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let ms = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let ctx = Context::new();
    let result = if req.uri().path() == "/stop" {
        app.spinner.stop(&ctx).await
    } else {
        app.spinner.spin(&ctx, ms).await
    };
    let (status, body) = match result {
        Ok(rounds) => (StatusCode::OK, rounds.to_string()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:?}")),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    Ok(resp)
}
