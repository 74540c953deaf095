//! The Weaver for Rust tutorial: a Main component that serves HTTP and a
//! Reverser component it calls.
//!
//! Run with:
//!
//! ```sh
//! cargo run -p hello                                  # one process
//! cargo build --release -p hello -p weaver-cli
//! target/release/weaver multi deploy examples/hello/weaver.toml   # many processes
//! curl 'localhost:12345/hello?name=Weaver'           # Hello, revaeW!
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use weaver::{Context, Counter, Histogram, Listener, Logger, Ref};

/// Strings reversed, over every Reverser replica.
#[weaver::metric]
static REVERSALS: Counter = Counter::new("hello_reversals_total", "Strings reversed");

/// Lengths of the strings reversed, in characters.
#[weaver::metric]
static LENGTHS: Histogram = Histogram::new(
    "hello_reversed_length",
    "Characters per string reversed",
    &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0],
);

/// Reverses strings.
#[weaver::component]
pub(crate) trait Reverser {
    /// Returns `s` reversed.
    async fn reverse(&self, ctx: &Context, s: String) -> weaver::Result<String>;
}

#[weaver::implements(Reverser)]
struct ReverserImpl {
    logger: Logger,
}

impl Reverser for ReverserImpl {
    async fn reverse(&self, _ctx: &Context, s: String) -> weaver::Result<String> {
        let len = s.chars().count();
        self.logger.info_with("reversing", ("len", len));
        REVERSALS.inc();
        LENGTHS.put(len as f64);
        Ok(s.chars().rev().collect())
    }
}

/// The Main component: a reference to the Reverser and the `hello` listener.
#[weaver::main]
struct App {
    reverser: Ref<dyn Reverser>,
    hello: Listener,
    logger: Logger,
}

#[tokio::main]
async fn main() -> weaver::Result<()> {
    weaver::run(|app: &'static App, _ctx| async move {
        app.logger.info_with(
            "hello listener available",
            [("address", app.hello.proxy_addr())],
        );
        // HTTP/1.1 and h2c: the proxy in front multiplexes its requests
        // over one HTTP/2 connection when the app speaks it.
        // Every request is counted and timed (serviceweaver_http_*).
        let service = weaver::http::instrument("hello", service_fn(move |req| handle(app, req)));
        weaver::serve(&app.hello, service).await?;
        Ok(())
    })
    .await
}

/// `GET /hello?name=X` answers `Hello, <X reversed>!`.
async fn handle(app: &App, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/hello" {
        return Ok(reply(StatusCode::NOT_FOUND, "not found\n".into()));
    }
    let name = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("name=")))
        .unwrap_or("")
        .to_string();
    let ctx = Context::new();
    match app.reverser.reverse(&ctx, name).await {
        Ok(reversed) => Ok(reply(StatusCode::OK, format!("Hello, {reversed}!"))),
        Err(e) => Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))),
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use weaver::testing::Env;

    /// Under each runner (`reverses::local`, `reverses::rpc`).
    #[weaver::test]
    async fn reverses(t: &Env) -> weaver::Result<()> {
        let reverser = t.get::<dyn Reverser>();
        assert_eq!(reverser.reverse(&t.ctx(), "Weaver".into()).await?, "revaeW");
        assert_eq!(reverser.reverse(&t.ctx(), "añb".into()).await?, "bña");
        Ok(())
    }
}
