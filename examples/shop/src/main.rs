//! A small shop that uses what the hello example does not: a routed
//! component, two colocated components, a component config section, a
//! not-retriable method and init hooks.
//!
//! - `Cache` is routed by key: while the replica set is stable, every call
//!   for one key lands on the same replica, so each replica's in-memory map
//!   holds its own share of the keys.
//! - `Pricing` and `Inventory` are colocated (`colocate` in `weaver.toml`):
//!   they share a process, and Pricing's calls to Inventory stay local.
//! - `Pricing` reads its `["shop::Pricing"]` section (currency, markup).
//! - `Inventory::reserve` is not retriable: a reservation that may have run
//!   is never sent twice. Inventory is not routed, so each replica keeps
//!   its own stock: a demo, not a warehouse.
//!
//! Every answer that crosses a component boundary carries the serving
//! process's pid, so a test (or a curious user) can see where calls ran:
//! `/price` shows `pricing_pid == inventory_pid` (one call, colocated), while
//! `/pids` makes separate calls from Main, which may reach different
//! replicas.
//!
//! Run with:
//!
//! ```sh
//! # One process: the listener address is in the "shop listener available" line.
//! SERVICEWEAVER_CONFIG=examples/shop/weaver.toml cargo run -p example-shop
//!
//! # Many processes: the proxy address is in the log and in `weaver multi status`.
//! cargo build --release -p example-shop -p weaver-cli
//! target/release/weaver multi deploy examples/shop/weaver.toml
//!
//! curl 'localhost:PORT/cache/put?key=k&value=v'  # {"key":"k","pid":..,"previous":null}
//! curl 'localhost:PORT/cache/get?key=k'          # {"key":"k","pid":..,"value":"v"}
//! curl 'localhost:PORT/price?item=apple'         # {"cents":132,"currency":"EUR",..}
//! curl 'localhost:PORT/reserve?item=apple&n=2'   # {"item":"apple","left":10,"pid":..}
//! curl 'localhost:PORT/config'                   # {"currency":"EUR","markup_percent":10,..}
//! curl 'localhost:PORT/pids'                     # {"inventory":..,"main":..,"pricing":..}
//! ```
//!
//! Every answer is one line of JSON. Application errors (an unknown item,
//! too little stock, a missing parameter) answer 400, failed calls 503 (504
//! past the deadline), all with `{"error": "..."}`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weaver::{Config, Context, Counter, Histogram, Listener, Logger, Ref};

/// Base prices in cents, before the configured markup.
const PRICES: &[(&str, u64)] = &[("apple", 120), ("pear", 95), ("plum", 60)];

/// Stock each Inventory replica starts with.
const INITIAL_STOCK: &[(&str, u32)] = &[("apple", 12), ("pear", 7), ("plum", 0)];

/// How long one HTTP request may spend in component calls.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

// === Cache: a routed component ===

/// A key-value cache, sharded over its replicas by key.
#[weaver::component(router = CacheRouter)]
pub(crate) trait Cache {
    /// The value stored under `key`, if any.
    async fn get(&self, ctx: &Context, key: String) -> weaver::Result<Lookup>;
    /// Stores `value` under `key`; the lookup holds the previous value.
    async fn put(&self, ctx: &Context, key: String, value: String) -> weaver::Result<Lookup>;
}

/// A cache answer and the pid of the replica that gave it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Lookup {
    value: Option<String>,
    pid: u32,
}

/// Routes every cache call by its key.
#[derive(Default)]
pub(crate) struct CacheRouter;

#[weaver::router(Cache)]
impl CacheRouter {
    fn get(&self, _ctx: &Context, key: &str) -> String {
        key.to_string()
    }
    fn put(&self, _ctx: &Context, key: &str, _value: &str) -> String {
        key.to_string()
    }
}

#[weaver::implements(Cache, init)]
struct CacheImpl {
    logger: Logger,
    /// The keys routed to this replica.
    #[weaver(default)]
    entries: Mutex<HashMap<String, String>>,
}

impl CacheImpl {
    async fn init(&mut self, _ctx: &Context) -> weaver::Result<()> {
        self.logger
            .info_with("cache replica ready", ("pid", std::process::id()));
        Ok(())
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A panic while holding the lock leaves the map usable.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Cache for CacheImpl {
    async fn get(&self, _ctx: &Context, key: String) -> weaver::Result<Lookup> {
        let value = self.entries().get(&key).cloned();
        self.logger
            .debug_with("get", (("key", key.as_str()), ("hit", value.is_some())));
        Ok(Lookup {
            value,
            pid: std::process::id(),
        })
    }

    async fn put(&self, _ctx: &Context, key: String, value: String) -> weaver::Result<Lookup> {
        self.logger.debug_with("put", ("key", key.as_str()));
        let previous = self.entries().insert(key, value);
        Ok(Lookup {
            value: previous,
            pid: std::process::id(),
        })
    }
}

// === Inventory: colocated with Pricing, with a not-retriable method ===

/// Stock levels.
#[weaver::component]
pub(crate) trait Inventory {
    /// How many of `item` are left (0 for items never stocked).
    async fn stock(&self, ctx: &Context, item: String) -> weaver::Result<Stock>;
    /// Takes `n` of `item` out of stock. Retrying a reservation whose answer
    /// was lost could reserve twice, so the runtime never retries it.
    #[weaver(not_retriable)]
    async fn reserve(&self, ctx: &Context, item: String, n: u32) -> weaver::Result<Stock>;
}

/// A stock level and the pid of the replica that reported it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Stock {
    item: String,
    left: u32,
    pid: u32,
}

/// Reservations made, over every Inventory replica.
#[weaver::metric]
static RESERVATIONS: Counter = Counter::new("shop_reservations_total", "Reservations made");

/// Units per reservation made.
#[weaver::metric]
static RESERVED_UNITS: Histogram = Histogram::new(
    "shop_reserved_units",
    "Units per reservation made",
    &[1.0, 2.0, 5.0, 10.0, 20.0],
);

#[weaver::implements(Inventory, init)]
struct InventoryImpl {
    logger: Logger,
    /// Items to units left, filled by `init`.
    #[weaver(default)]
    stock: Mutex<HashMap<String, u32>>,
}

impl InventoryImpl {
    async fn init(&mut self, _ctx: &Context) -> weaver::Result<()> {
        let stock = self.stock.get_mut().unwrap_or_else(PoisonError::into_inner);
        for (item, n) in INITIAL_STOCK {
            stock.insert((*item).to_string(), *n);
        }
        self.logger
            .info_with("inventory stocked", ("items", stock.len()));
        Ok(())
    }

    fn stock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.stock.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inventory for InventoryImpl {
    async fn stock(&self, _ctx: &Context, item: String) -> weaver::Result<Stock> {
        let left = self.stock().get(&item).copied().unwrap_or(0);
        Ok(Stock {
            item,
            left,
            pid: std::process::id(),
        })
    }

    async fn reserve(&self, _ctx: &Context, item: String, n: u32) -> weaver::Result<Stock> {
        let left = {
            let mut stock = self.stock();
            let left = stock.entry(item.clone()).or_insert(0);
            if *left < n {
                return Err(weaver::Error::new(format!(
                    "only {left} of {item:?} left, cannot reserve {n}"
                )));
            }
            *left -= n;
            *left
        };
        RESERVATIONS.inc();
        RESERVED_UNITS.put(f64::from(n));
        self.logger
            .info_with("reserved", (("item", item.as_str()), ("n", n)));
        Ok(Stock {
            item,
            left,
            pid: std::process::id(),
        })
    }
}

// === Pricing: configured, and a caller of Inventory ===

/// Prices items.
#[weaver::component]
pub(crate) trait Pricing {
    /// The price of `item`, with its stock level.
    async fn quote(&self, ctx: &Context, item: String) -> weaver::Result<Quote>;
    /// The configuration this replica runs with.
    async fn settings(&self, ctx: &Context) -> weaver::Result<Settings>;
}

/// A price, the stock behind it and where each part was computed.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Quote {
    item: String,
    cents: u64,
    currency: String,
    in_stock: u32,
    pricing_pid: u32,
    inventory_pid: u32,
}

/// Pricing's configuration as it reached a replica.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Settings {
    currency: String,
    markup_percent: u64,
    pid: u32,
}

/// The `["shop::Pricing"]` section of `weaver.toml`.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct PricingConfig {
    /// Currency code shown with every price.
    currency: String,
    /// Added to every base price.
    markup_percent: u64,
}

impl Default for PricingConfig {
    fn default() -> Self {
        Self {
            currency: "USD".to_string(),
            markup_percent: 0,
        }
    }
}

#[weaver::implements(Pricing)]
struct PricingImpl {
    config: Config<PricingConfig>,
    inventory: Ref<dyn Inventory>,
    logger: Logger,
}

impl Pricing for PricingImpl {
    async fn quote(&self, ctx: &Context, item: String) -> weaver::Result<Quote> {
        let Some(&(_, base)) = PRICES.iter().find(|(name, _)| *name == item) else {
            return Err(weaver::Error::new(format!("unknown item {item:?}")));
        };
        let stock = self.inventory.get().stock(ctx, item.clone()).await?;
        let cents = base * (100 + self.config.markup_percent) / 100;
        self.logger
            .info_with("quoted", (("item", item.as_str()), ("cents", cents)));
        Ok(Quote {
            item,
            cents,
            currency: self.config.currency.clone(),
            in_stock: stock.left,
            pricing_pid: std::process::id(),
            inventory_pid: stock.pid,
        })
    }

    async fn settings(&self, _ctx: &Context) -> weaver::Result<Settings> {
        Ok(Settings {
            currency: self.config.currency.clone(),
            markup_percent: self.config.markup_percent,
            pid: std::process::id(),
        })
    }
}

// === Main: the HTTP front end ===

/// The Main component: the `shop` listener and the components it calls.
#[weaver::main]
struct App {
    cache: Ref<dyn Cache>,
    pricing: Ref<dyn Pricing>,
    inventory: Ref<dyn Inventory>,
    shop: Listener,
    logger: Logger,
}

/// Why a request failed: its status and message.
type Failure = (StatusCode, String);

#[tokio::main]
async fn main() -> weaver::Result<()> {
    weaver::run(|app: &'static App, _ctx| async move {
        app.logger.info_with(
            "shop listener available",
            [("address", app.shop.proxy_addr())],
        );
        loop {
            let (stream, _) = app.shop.accept().await?;
            tokio::spawn(async move {
                // Every request is counted and timed (serviceweaver_http_*).
                let service =
                    weaver::http::instrument("shop", service_fn(move |req| serve(app, req)));
                // HTTP/1.1 and h2c: the proxy in front multiplexes its
                // requests over one HTTP/2 connection when the app speaks it.
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
    .await
}

/// Answers one request with one line of JSON.
async fn serve(app: &App, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let query = req.uri().query().unwrap_or("");
    let ctx = Context::new().with_timeout(REQUEST_TIMEOUT);
    let answer = match req.uri().path() {
        "/cache/get" => cache_get(app, &ctx, query).await,
        "/cache/put" => cache_put(app, &ctx, query).await,
        "/price" => price(app, &ctx, query).await,
        "/reserve" => reserve(app, &ctx, query).await,
        "/config" => config(app, &ctx).await,
        "/pids" => pids(app, &ctx).await,
        _ => Err((StatusCode::NOT_FOUND, "no such endpoint".to_string())),
    };
    let (status, body) = match answer {
        Ok(body) => (StatusCode::OK, body),
        Err((status, error)) => (status, json!({ "error": error })),
    };
    let mut resp = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *resp.status_mut() = status;
    Ok(resp)
}

async fn cache_get(app: &App, ctx: &Context, query: &str) -> Result<Value, Failure> {
    let key = required(query, "key")?;
    let found = app
        .cache
        .get()
        .get(ctx, key.clone())
        .await
        .map_err(failed)?;
    Ok(json!({ "key": key, "value": found.value, "pid": found.pid }))
}

async fn cache_put(app: &App, ctx: &Context, query: &str) -> Result<Value, Failure> {
    let key = required(query, "key")?;
    let value = required(query, "value")?;
    let cache = app.cache.get();
    let previous = cache.put(ctx, key.clone(), value).await.map_err(failed)?;
    Ok(json!({ "key": key, "previous": previous.value, "pid": previous.pid }))
}

async fn price(app: &App, ctx: &Context, query: &str) -> Result<Value, Failure> {
    let item = required(query, "item")?;
    let quote = app.pricing.get().quote(ctx, item).await.map_err(failed)?;
    Ok(json!(quote))
}

async fn reserve(app: &App, ctx: &Context, query: &str) -> Result<Value, Failure> {
    let item = required(query, "item")?;
    let n = required(query, "n")?
        .parse::<u32>()
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("parameter n: {e}")))?;
    let stock = app
        .inventory
        .get()
        .reserve(ctx, item, n)
        .await
        .map_err(failed)?;
    Ok(json!(stock))
}

async fn config(app: &App, ctx: &Context) -> Result<Value, Failure> {
    let settings = app.pricing.get().settings(ctx).await.map_err(failed)?;
    Ok(json!(settings))
}

async fn pids(app: &App, ctx: &Context) -> Result<Value, Failure> {
    let pricing = app.pricing.get().settings(ctx).await.map_err(failed)?;
    let inventory = app
        .inventory
        .get()
        .stock(ctx, String::new())
        .await
        .map_err(failed)?;
    Ok(json!({
        "main": std::process::id(),
        "pricing": pricing.pid,
        "inventory": inventory.pid,
    }))
}

/// Maps a component call's error to a status: the application's own errors
/// are the client's fault, anything else means the call did not complete.
fn failed(e: weaver::Error) -> Failure {
    let status = if e.is_application() {
        StatusCode::BAD_REQUEST
    } else if e.is_deadline_exceeded() {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, e.to_string())
}

/// The percent-decoded value of query parameter `name`.
fn required(query: &str, name: &str) -> Result<String, Failure> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| decode(k) == name)
        .map(|(_, v)| decode(v))
        .ok_or_else(|| (StatusCode::BAD_REQUEST, format!("missing parameter {name}")))
}

/// Decodes `%XX` escapes and `+` (a space) in a query component.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weaver::testing::{Env, fake};

    /// An Inventory with a fixed stock of everything, for Pricing's tests.
    struct Plenty(u32);

    impl Inventory for Plenty {
        async fn stock(&self, _ctx: &Context, item: String) -> weaver::Result<Stock> {
            Ok(Stock {
                item,
                left: self.0,
                pid: 0,
            })
        }
        async fn reserve(&self, _ctx: &Context, item: String, _n: u32) -> weaver::Result<Stock> {
            Err(weaver::Error::new(format!("{item}: not in this test")))
        }
    }

    /// A routed component's state stays consistent: every key is read
    /// back from the replica that stored it, under every runner (under
    /// `multi`, two Cache replicas in other processes, each holding the
    /// keys routed to it).
    #[weaver::test]
    async fn the_cache_reads_back_every_key_from_where_it_went(t: &Env) -> weaver::Result<()> {
        let cache = t.get::<dyn Cache>();
        let ctx = t.ctx();
        let mut owners = std::collections::BTreeSet::new();
        for i in 0..40 {
            let put = cache.put(&ctx, format!("k{i}"), format!("v{i}")).await?;
            // Under rpc, `put` (retriable) ran twice: the second run saw
            // the first one's value. Idempotent in effect, not in answer.
            let previous = (t.runner() == "rpc").then(|| format!("v{i}"));
            assert_eq!(put.value, previous, "k{i} is new");
            let got = cache.get(&ctx, format!("k{i}")).await?;
            assert_eq!(got.value.as_deref(), Some(format!("v{i}").as_str()));
            assert_eq!(got.pid, put.pid, "k{i} is read where it was stored");
            owners.insert(got.pid);
        }
        let expected = if t.runner() == "multi" { 2 } else { 1 };
        assert_eq!(owners.len(), expected, "replicas holding keys: {owners:?}");
        Ok(())
    }

    /// A test fixture: a counter whose `bump` is not idempotent but was
    /// left retriable, the mistake the rpc runner exists to catch.
    #[weaver::component]
    trait Ledger {
        /// Adds one; returns the count. Retriable by mistake.
        async fn bump(&self, ctx: &Context) -> weaver::Result<u64>;
        /// Adds one; returns the count.
        #[weaver(not_retriable)]
        async fn bump_once(&self, ctx: &Context) -> weaver::Result<u64>;
    }

    #[weaver::implements(Ledger)]
    struct LedgerImpl {
        #[weaver(default)]
        count: std::sync::atomic::AtomicU64,
    }

    impl Ledger for LedgerImpl {
        async fn bump(&self, _ctx: &Context) -> weaver::Result<u64> {
            Ok(self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
        }
        async fn bump_once(&self, _ctx: &Context) -> weaver::Result<u64> {
            Ok(self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
        }
    }

    /// The rpc runner runs every retriable call twice: the mistaken
    /// `bump` counts two, `bump_once` one. The other runners run each call
    /// once.
    #[weaver::test]
    async fn the_rpc_runner_runs_a_retriable_method_twice(t: &Env) -> weaver::Result<()> {
        // One object for every runner (under multi, asking for it puts it
        // in the test process), so one count.
        let imp = t.get_impl::<LedgerImpl>().await?;
        let ledger = t.get::<dyn Ledger>();
        let ctx = t.ctx();
        let after_bump = ledger.bump(&ctx).await?;
        let after_once = ledger.bump_once(&ctx).await?;
        if t.runner() == "rpc" {
            assert_eq!((after_bump, after_once), (2, 3), "bump ran twice");
        } else {
            assert_eq!((after_bump, after_once), (1, 2));
        }
        assert_eq!(
            imp.count.load(std::sync::atomic::Ordering::SeqCst),
            after_once
        );
        Ok(())
    }

    #[weaver::test(
        config = r#"["shop::Pricing"]
currency = "EUR"
markup_percent = 50"#,
        fakes = [fake::<dyn Inventory>(Plenty(9))]
    )]
    async fn pricing_applies_its_configured_markup(t: &Env) -> weaver::Result<()> {
        let quote = t
            .get::<dyn Pricing>()
            .quote(&t.ctx(), "apple".into())
            .await?;
        assert_eq!(
            (quote.cents, quote.currency.as_str(), quote.in_stock),
            (180, "EUR", 9)
        );
        let err = t
            .get::<dyn Pricing>()
            .quote(&t.ctx(), "kiwi".into())
            .await
            .expect_err("no kiwis");
        assert_eq!(err.message(), "unknown item \"kiwi\"");
        Ok(())
    }

    /// `reserve` is `not_retriable`: under the rpc runner, which runs every
    /// retriable call twice, it still takes stock out once.
    /// (Under each runner: `a_reservation_takes_stock_out_once::{local, rpc,
    /// multi}`.)
    #[weaver::test]
    async fn a_reservation_takes_stock_out_once(t: &Env) -> weaver::Result<()> {
        // Asked for first: in a multi test, that puts it in this process.
        let imp = t.get_impl::<InventoryImpl>().await?;
        let inventory = t.get::<dyn Inventory>();
        let ctx = t.ctx();
        let before = inventory.stock(&ctx, "pear".into()).await?.left;
        let after = inventory.reserve(&ctx, "pear".into(), 2).await?.left;
        assert_eq!(after, before - 2);
        assert_eq!(imp.stock().get("pear").copied(), Some(after));
        Ok(())
    }

    #[test]
    fn query_parameters_are_found_and_decoded() {
        let q = "key=a%20b%2Bc&value=x+y&n=3&bad=%zz";
        assert_eq!(required(q, "key").unwrap(), "a b+c");
        assert_eq!(required(q, "value").unwrap(), "x y");
        assert_eq!(required(q, "bad").unwrap(), "%zz");
        let (status, msg) = required(q, "item").unwrap_err();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(msg, "missing parameter item");
        assert_eq!(decode("caf%C3%A9%"), "café%");
    }
}
