//! HTTP metrics for a listener's handler, as Service Weaver's
//! `weaver.InstrumentHandler` records them.
//!
//! Wrap a service with [`instrument`] (a hyper or tower service, e.g. one
//! passed to [`crate::serve`]) or add [`InstrumentLayer`] to a tower stack
//! (`axum::Router::layer`). Every request then records:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `serviceweaver_http_request_count` | counter | `label`, `host` |
//! | `serviceweaver_http_error_count` | counter | `label`, `host`, `code` (4xx and 5xx; a service error counts as 500) |
//! | `serviceweaver_http_request_latency_micros` | histogram | `label`, `host` |
//! | `serviceweaver_http_request_bytes_received` | histogram | `label`, `host` (when the request body's size is known) |
//! | `serviceweaver_http_request_bytes_returned` | histogram | `label`, `host` (when the response body's size is known) |
//!
//! All but the request count are labelled `serviceweaver_generated="true"`;
//! the count is not, as in Go, because deployers read it (e.g. to judge a
//! rollout). `host` is the request's `Host` header (or URI authority) as
//! sent, as in Go: a listener reached under many names gets a series per
//! name. Latency is measured to the response head (the handler's work,
//! not the client's download), and the byte sizes are the bodies' exact
//! sizes as they declare them (`Content-Length`-like; Go estimates the
//! reply's size from its head and body instead), so a streamed body of
//! unknown length is not measured.
//!
//! ```no_run
//! # use std::convert::Infallible;
//! # async fn handle(_req: hyper::Request<hyper::body::Incoming>)
//! #     -> Result<hyper::Response<String>, Infallible> { Ok(hyper::Response::new(String::new())) }
//! # async fn f(listener: &weaver::Listener) -> std::io::Result<()> {
//! let service = weaver::http::instrument("hello", hyper::service::service_fn(handle));
//! weaver::serve(listener, service).await
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::Body;
use hyper::{Request, Response};

use crate::metrics::method::BUCKETS;
use crate::{CounterMap, HistogramMap};

/// The labels of the request count.
#[derive(crate::MetricLabels)]
#[weaver(crate = "crate")]
struct RequestLabels {
    label: String,
    host: String,
}

/// The labels of the generated histograms.
#[derive(crate::MetricLabels)]
#[weaver(crate = "crate")]
struct GeneratedLabels {
    label: String,
    host: String,
    serviceweaver_generated: bool,
}

/// The labels of the error count.
#[derive(crate::MetricLabels)]
#[weaver(crate = "crate")]
struct ErrorLabels {
    label: String,
    host: String,
    code: u16,
    serviceweaver_generated: bool,
}

static REQUESTS: CounterMap<RequestLabels> = CounterMap::new(
    "serviceweaver_http_request_count",
    "Count of HTTP requests received",
);
static ERRORS: CounterMap<ErrorLabels> = CounterMap::new(
    "serviceweaver_http_error_count",
    "Count of HTTP requests received that result in an error",
);
static LATENCY: HistogramMap<GeneratedLabels> = HistogramMap::new(
    "serviceweaver_http_request_latency_micros",
    "Duration, in microseconds, of HTTP request execution",
    &BUCKETS,
);
static RECEIVED: HistogramMap<GeneratedLabels> = HistogramMap::new(
    "serviceweaver_http_request_bytes_received",
    "Number of bytes received by HTTP request handlers",
    &BUCKETS,
);
static RETURNED: HistogramMap<GeneratedLabels> = HistogramMap::new(
    "serviceweaver_http_request_bytes_returned",
    "Number of bytes returned by HTTP request handlers",
    &BUCKETS,
);

/// `service`, recording the HTTP metrics of every request under `label`
/// (see the [module docs](self)).
pub fn instrument<S>(label: impl Into<String>, service: S) -> Instrumented<S> {
    Instrumented {
        label: Arc::from(label.into()),
        inner: service,
    }
}

/// A tower layer that wraps services with [`instrument`].
#[derive(Debug, Clone)]
pub struct InstrumentLayer {
    label: Arc<str>,
}

impl InstrumentLayer {
    /// A layer recording under `label`.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: Arc::from(label.into()),
        }
    }
}

impl<S> tower_layer::Layer<S> for InstrumentLayer {
    type Service = Instrumented<S>;

    fn layer(&self, inner: S) -> Instrumented<S> {
        Instrumented {
            label: self.label.clone(),
            inner,
        }
    }
}

/// A service that records HTTP metrics; made by [`instrument`] or
/// [`InstrumentLayer`].
#[derive(Debug, Clone)]
pub struct Instrumented<S> {
    label: Arc<str>,
    inner: S,
}

impl<S, B, RB> hyper::service::Service<Request<B>> for Instrumented<S>
where
    S: hyper::service::Service<Request<B>, Response = Response<RB>>,
    B: Body,
    RB: Body,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = InstrumentedFuture<S::Future>;

    fn call(&self, req: Request<B>) -> Self::Future {
        let call = Call::begin(&self.label, &req);
        InstrumentedFuture {
            inner: self.inner.call(req),
            call: Some(call),
        }
    }
}

impl<S, B, RB> tower_service::Service<Request<B>> for Instrumented<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>>,
    B: Body,
    RB: Body,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = InstrumentedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let call = Call::begin(&self.label, &req);
        InstrumentedFuture {
            inner: self.inner.call(req),
            call: Some(call),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of an [`Instrumented`] service.
    pub struct InstrumentedFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, RB, E> Future for InstrumentedFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    RB: Body,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Some(call) = this.call.take() {
            match &out {
                Ok(resp) => call.end(resp.status().as_u16(), resp.body().size_hint().exact()),
                Err(_) => call.end(500, None),
            }
        }
        Poll::Ready(out)
    }
}

/// One request being handled.
#[derive(Debug)]
struct Call {
    label: Arc<str>,
    host: String,
    start: Instant,
    received: Option<u64>,
}

impl Call {
    fn begin<B: Body>(label: &Arc<str>, req: &Request<B>) -> Self {
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .unwrap_or_default()
            .to_owned();
        Call {
            label: label.clone(),
            host,
            start: Instant::now(),
            received: req.body().size_hint().exact(),
        }
    }

    fn end(self, code: u16, returned: Option<u64>) {
        let micros = self.start.elapsed().as_micros() as f64;
        let label = self.label.to_string();
        REQUESTS
            .get(&RequestLabels {
                label: label.clone(),
                host: self.host.clone(),
            })
            .inc();
        if code >= 400 {
            ERRORS
                .get(&ErrorLabels {
                    label: label.clone(),
                    host: self.host.clone(),
                    code,
                    serviceweaver_generated: true,
                })
                .inc();
        }
        let labels = GeneratedLabels {
            label,
            host: self.host,
            serviceweaver_generated: true,
        };
        LATENCY.get(&labels).put(micros);
        if let Some(n) = self.received {
            RECEIVED.get(&labels).put(n as f64);
        }
        if let Some(n) = returned {
            RETURNED.get(&labels).put(n as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::StatusCode;

    use super::*;

    async fn handle(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
        let (code, body) = match req.uri().path() {
            "/ok" => (StatusCode::OK, "hello"),
            "/boom" => (StatusCode::INTERNAL_SERVER_ERROR, "boom!"),
            _ => (StatusCode::NOT_FOUND, "not found"),
        };
        let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *resp.status_mut() = code;
        Ok(resp)
    }

    fn request(host: &str, path: &str, body: &'static str) -> Request<Full<Bytes>> {
        Request::get(path)
            .header(hyper::header::HOST, host)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    fn generated(label: &str, host: &str) -> GeneratedLabels {
        GeneratedLabels {
            label: label.to_owned(),
            host: host.to_owned(),
            serviceweaver_generated: true,
        }
    }

    fn requests(label: &str, host: &str) -> f64 {
        REQUESTS
            .get(&RequestLabels {
                label: label.to_owned(),
                host: host.to_owned(),
            })
            .get()
    }

    fn errors(label: &str, host: &str, code: u16) -> f64 {
        ERRORS
            .get(&ErrorLabels {
                label: label.to_owned(),
                host: host.to_owned(),
                code,
                serviceweaver_generated: true,
            })
            .get()
    }

    #[tokio::test]
    async fn a_hyper_service_counts_requests_errors_and_bytes() {
        use hyper::service::Service as _;
        let svc = instrument("t-hyper", hyper::service::service_fn(handle));
        for path in ["/ok", "/ok", "/missing", "/boom"] {
            svc.call(request("a.test", path, "abc")).await.unwrap();
        }
        svc.call(request("b.test", "/ok", "")).await.unwrap();
        assert_eq!(requests("t-hyper", "a.test"), 4.0);
        assert_eq!(requests("t-hyper", "b.test"), 1.0);
        assert_eq!(errors("t-hyper", "a.test", 404), 1.0);
        assert_eq!(errors("t-hyper", "a.test", 500), 1.0);
        assert_eq!(errors("t-hyper", "b.test", 404), 0.0);
        let a = generated("t-hyper", "a.test");
        assert_eq!(LATENCY.get(&a).count(), 4);
        assert_eq!(RECEIVED.get(&a).count(), 4);
        assert_eq!(RECEIVED.get(&a).sum(), 12.0);
        // "hello" twice, "not found", "boom!".
        assert_eq!(RETURNED.get(&a).sum(), 5.0 + 5.0 + 9.0 + 5.0);
        assert_eq!(RETURNED.get(&generated("t-hyper", "b.test")).sum(), 5.0);
    }

    /// A tower service that fails every call.
    #[derive(Clone)]
    struct Failing;

    impl tower_service::Service<Request<Full<Bytes>>> for Failing {
        type Response = Response<Full<Bytes>>;
        type Error = &'static str;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<Full<Bytes>>) -> Self::Future {
            std::future::ready(Err("no"))
        }
    }

    #[tokio::test]
    async fn the_layer_wraps_tower_services_and_a_service_error_is_a_500() {
        use tower_layer::Layer as _;
        use tower_service::Service as _;
        let mut svc = InstrumentLayer::new("t-tower").layer(Failing);
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        assert_eq!(
            svc.call(request("c.test", "/", "")).await.unwrap_err(),
            "no"
        );
        assert_eq!(requests("t-tower", "c.test"), 1.0);
        assert_eq!(errors("t-tower", "c.test", 500), 1.0);
        assert_eq!(RETURNED.get(&generated("t-tower", "c.test")).count(), 0);
    }
}
