//! A weaver app for the end-to-end tests of error semantics across
//! processes: a Bank whose deposits call an Audit component that can be
//! told to crash its process mid-call.
//!
//! Endpoints on the `http` listener:
//! - `/deposit?account=A&amount=N&crash=1`: credits the account, then asks
//!   the Audit to record it; with `crash=1` the Audit replica aborts while
//!   serving the call. Answers `200 <balance>` or `500 <error chain>
//!   remote=<is_remote> caused_by_remote=<caused_by_remote>
//!   construction=<is_construction>`.
//! - `/balance?account=A`: the account's balance.
//! - `/audit?account=A`: calls the Audit directly from Main.
//!
//! `FAIL_INIT=1` makes the Audit's init hook fail.
//!
//! The Bank counts the deposits it credits in `bank_deposits_total`, a metric the
//! metrics tests read back from the babysitter.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use weaver::{Context, Counter, Listener, Ref};

/// Deposits credited, over every Bank replica.
#[weaver::metric]
static DEPOSITS: Counter = Counter::new("bank_deposits_total", "Deposits credited");

/// Keeps balances; routed by account so every call for one account reaches
/// the replica that holds it.
#[weaver::component(router = BankRouter)]
pub(crate) trait Bank {
    /// Credits `amount` to `account`, then has the deposit audited.
    async fn deposit(
        &self,
        ctx: &Context,
        account: String,
        amount: u64,
        crash: bool,
    ) -> weaver::Result<u64>;
    /// The balance of `account`.
    async fn balance(&self, ctx: &Context, account: String) -> weaver::Result<u64>;
}

#[derive(Default)]
pub(crate) struct BankRouter;

#[weaver::router(Bank)]
impl BankRouter {
    fn deposit(&self, _ctx: &Context, account: &str, _amount: &u64, _crash: &bool) -> String {
        account.to_string()
    }
    fn balance(&self, _ctx: &Context, account: &str) -> String {
        account.to_string()
    }
}

/// Records deposits; can crash on demand.
#[weaver::component]
pub(crate) trait Audit {
    /// Records a deposit; with `crash`, aborts this process instead.
    #[weaver(not_retriable)]
    async fn record(&self, ctx: &Context, account: String, crash: bool) -> weaver::Result<()>;
}

#[weaver::implements(Bank)]
struct BankImpl {
    audit: Ref<dyn Audit>,
    #[weaver(default)]
    balances: Mutex<HashMap<String, u64>>,
}

impl Bank for BankImpl {
    async fn deposit(
        &self,
        ctx: &Context,
        account: String,
        amount: u64,
        crash: bool,
    ) -> weaver::Result<u64> {
        let balance = {
            let mut b = self.balances.lock().unwrap_or_else(|e| e.into_inner());
            let slot = b.entry(account.clone()).or_default();
            *slot += amount;
            *slot
        };
        DEPOSITS.inc();
        self.audit.record(ctx, account, crash).await?;
        Ok(balance)
    }

    async fn balance(&self, _ctx: &Context, account: String) -> weaver::Result<u64> {
        let b = self.balances.lock().unwrap_or_else(|e| e.into_inner());
        Ok(b.get(&account).copied().unwrap_or(0))
    }
}

#[weaver::implements(Audit, init)]
struct AuditImpl;

impl AuditImpl {
    async fn init(&mut self, _ctx: &Context) -> weaver::Result<()> {
        if std::env::var("FAIL_INIT").as_deref() == Ok("1") {
            return Err(weaver::Error::new("audit log unavailable"));
        }
        Ok(())
    }
}

impl Audit for AuditImpl {
    async fn record(&self, _ctx: &Context, _account: String, crash: bool) -> weaver::Result<()> {
        if crash {
            std::process::abort();
        }
        Ok(())
    }
}

#[weaver::main]
struct App {
    bank: Ref<dyn Bank>,
    audit: Ref<dyn Audit>,
    http: Listener,
}

#[tokio::main]
async fn main() -> weaver::Result<()> {
    weaver::run(|app: &'static App, _ctx| async move {
        let service = hyper::service::service_fn(move |req| handle(app, req));
        weaver::serve(&app.http, service).await?;
        Ok(())
    })
    .await
}

fn param<'a>(req: &'a Request<Incoming>, name: &str) -> &'a str {
    req.uri()
        .query()
        .and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        })
        .unwrap_or("")
}

async fn handle(app: &App, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let ctx = Context::new();
    let account = param(&req, "account").to_string();
    let result = match req.uri().path() {
        "/deposit" => {
            let amount = param(&req, "amount").parse().unwrap_or(0);
            let crash = param(&req, "crash") == "1";
            app.bank.deposit(&ctx, account, amount, crash).await
        }
        "/balance" => app.bank.balance(&ctx, account).await,
        "/audit" => app.audit.record(&ctx, account, false).await.map(|()| 0),
        _ => Err(weaver::Error::new("unknown path")),
    };
    let (status, body) = match result {
        Ok(n) => (StatusCode::OK, n.to_string()),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "{e:?} remote={} caused_by_remote={} construction={}",
                e.is_remote(),
                e.caused_by_remote(),
                e.is_construction()
            ),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    Ok(resp)
}
