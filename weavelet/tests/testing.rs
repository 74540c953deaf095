//! The test runners (`weaver::testing`) on components of their own: the
//! same body under each runner, fakes, config, implementations, and what a
//! runner reports when something is wrong.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use weaver::testing::{Env, Runner, fake};
use weaver::{Config, Context, Error, Ref};

/// Counts what it is told to add.
#[weaver::component]
trait Tally {
    /// Adds `n`; returns the new total. Retriable: it may run twice.
    async fn add(&self, ctx: &Context, n: u64) -> weaver::Result<u64>;
    /// Adds `n`; returns the new total. Runs once per call.
    #[weaver(not_retriable)]
    async fn add_once(&self, ctx: &Context, n: u64) -> weaver::Result<u64>;
}

#[weaver::implements(Tally)]
struct TallyImpl {
    #[weaver(default)]
    total: AtomicU64,
}

impl Tally for TallyImpl {
    async fn add(&self, _ctx: &Context, n: u64) -> weaver::Result<u64> {
        Ok(self.total.fetch_add(n, Ordering::SeqCst) + n)
    }
    async fn add_once(&self, _ctx: &Context, n: u64) -> weaver::Result<u64> {
        Ok(self.total.fetch_add(n, Ordering::SeqCst) + n)
    }
}

/// The time, in seconds.
#[weaver::component]
trait Clock {
    async fn now(&self, ctx: &Context) -> weaver::Result<u64>;
}

#[weaver::implements(Clock)]
struct SystemClock;

impl Clock for SystemClock {
    async fn now(&self, _ctx: &Context) -> weaver::Result<u64> {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| Error::new(e.to_string()))?;
        Ok(since.as_secs())
    }
}

/// A clock stopped at one time: the fake of `Clock` in these tests.
struct FixedClock(u64);

impl Clock for FixedClock {
    async fn now(&self, _ctx: &Context) -> weaver::Result<u64> {
        Ok(self.0)
    }
}

#[derive(serde::Deserialize, Default)]
struct GreeterConfig {
    #[serde(default)]
    greeting: String,
}

/// Greets, with the time.
#[weaver::component]
trait Greeter {
    async fn greet(&self, ctx: &Context, name: String) -> weaver::Result<String>;
    /// Fails, saying why.
    async fn fail(&self, ctx: &Context) -> weaver::Result<()>;
}

#[weaver::implements(Greeter)]
struct GreeterImpl {
    clock: Ref<dyn Clock>,
    config: Config<GreeterConfig>,
}

impl Greeter for GreeterImpl {
    async fn greet(&self, ctx: &Context, name: String) -> weaver::Result<String> {
        let at = self.clock.now(ctx).await?;
        Ok(format!("{} {name} at {at}", self.config.greeting))
    }
    async fn fail(&self, _ctx: &Context) -> weaver::Result<()> {
        Err(Error::new("the greeter is out of words"))
    }
}

/// A component no implementation of which is linked into this binary.
#[weaver::component]
trait Missing {
    async fn nothing(&self, ctx: &Context) -> weaver::Result<()>;
}

#[weaver::test(
    config = r#"["testing::Greeter"]
greeting = "Hi""#,
    fakes = [fake::<dyn Clock>(FixedClock(7))]
)]
async fn greets_with_config_and_fake(t: &Env) -> weaver::Result<()> {
    let greeter = t.get::<dyn Greeter>();
    assert_eq!(greeter.greet(&t.ctx(), "Ann".into()).await?, "Hi Ann at 7");
    Ok(())
}

#[weaver::test]
async fn retriable_calls_run_twice_under_rpc_only(t: &Env) -> weaver::Result<()> {
    // The implementation is the object the client calls (in a multi
    // test, asking for it first puts it in the test process).
    let imp = t.get_impl::<TallyImpl>().await?;
    let tally = t.get::<dyn Tally>();
    let ctx = t.ctx();
    let once = tally.add_once(&ctx, 1).await?;
    let twice = tally.add(&ctx, 10).await?;
    let runs = if t.runner() == "rpc" { 2 } else { 1 };
    assert_eq!(once, 1, "a not_retriable method runs once");
    assert_eq!(twice, 1 + 10 * runs, "runner {}", t.runner());
    assert_eq!(imp.total.load(Ordering::SeqCst), twice);
    Ok(())
}

#[weaver::test(runners = [rpc, multi])]
async fn errors_cross_the_rpc_stack_intact(t: &Env) -> weaver::Result<()> {
    let err = t
        .get::<dyn Greeter>()
        .fail(&t.ctx())
        .await
        .expect_err("fail fails");
    assert_eq!(err.message(), "the greeter is out of words");
    assert!(
        !err.is_remote(),
        "an application error, not a transport one: {err:?}"
    );
    Ok(())
}

/// What `Runner::try_run` returns for `config` and a body that calls the
/// greeter, under both runners.
fn setup_error(config: &str) -> Vec<String> {
    [Runner::local(), Runner::rpc()]
        .into_iter()
        .map(|r| {
            r.config(config)
                .try_run("setup", async |t: &Env| {
                    t.get::<dyn Greeter>().greet(&t.ctx(), "x".into()).await?;
                    Ok(())
                })
                .expect_err("the config is refused")
                .to_string()
        })
        .collect()
}

#[test]
fn an_unknown_key_fails_naming_it() {
    for e in setup_error("[\"testing::Greeter\"]\ngreting = \"Hi\"\n") {
        assert!(e.contains("unknown key \"greting\""), "{e}");
        assert!(e.contains("testing::Greeter"), "{e}");
    }
}

#[test]
fn a_section_for_no_component_fails_naming_it() {
    for e in setup_error("[\"testing::Greter\"]\ngreeting = \"Hi\"\n") {
        assert!(e.contains("testing::Greter"), "{e}");
        assert!(e.contains("names no component"), "{e}");
    }
}

#[test]
fn a_component_with_no_implementation_fails_the_call_naming_it() {
    for r in [Runner::local(), Runner::rpc()] {
        let err = r
            .try_run("missing", async |t: &Env| {
                t.get::<dyn Missing>().nothing(&t.ctx()).await
            })
            .expect_err("no implementation");
        let msg = err.to_string();
        assert!(
            msg.contains("no implementation of component testing::Missing"),
            "{msg}"
        );
    }
}

#[test]
fn a_failing_body_panics_with_the_test_the_runner_and_the_error() {
    let panic = std::panic::catch_unwind(|| {
        Runner::rpc().run("testing::fails", async |t: &Env| {
            t.get::<dyn Greeter>().fail(&t.ctx()).await
        })
    })
    .expect_err("the body failed");
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("testing::fails [rpc runner]"), "{msg}");
    assert!(msg.contains("the greeter is out of words"), "{msg}");
}

#[test]
fn a_faked_component_has_no_implementation_to_get() {
    let err = Runner::local()
        .fake(fake::<dyn Clock>(FixedClock(1)))
        .try_run("faked", async |t: &Env| {
            t.get_impl::<SystemClock>().await.map(|_| ())
        })
        .expect_err("faked");
    assert!(
        err.to_string().contains("testing::Clock has both a fake"),
        "{err}"
    );
}

#[test]
fn each_test_gets_its_own_components() {
    let totals: Vec<u64> = (0..2)
        .map(|_| {
            let total = Arc::new(AtomicU64::new(0));
            let seen = total.clone();
            Runner::local().run("fresh", async move |t: &Env| {
                let n = t.get::<dyn Tally>().add_once(&t.ctx(), 5).await?;
                seen.store(n, Ordering::SeqCst);
                Ok(())
            });
            total.load(Ordering::SeqCst)
        })
        .collect();
    assert_eq!(totals, [5, 5]);
}

/// Where it runs.
#[weaver::component]
trait Whoami {
    async fn pid(&self, ctx: &Context) -> weaver::Result<u32>;
}

#[weaver::implements(Whoami)]
struct WhoamiImpl;

impl Whoami for WhoamiImpl {
    async fn pid(&self, _ctx: &Context) -> weaver::Result<u32> {
        Ok(std::process::id())
    }
}

/// Where it runs, and where the `Whoami` it calls runs.
#[weaver::component]
trait Pair {
    async fn pids(&self, ctx: &Context) -> weaver::Result<(u32, u32)>;
}

#[weaver::implements(Pair)]
struct PairImpl {
    whoami: Ref<dyn Whoami>,
}

impl Pair for PairImpl {
    async fn pids(&self, ctx: &Context) -> weaver::Result<(u32, u32)> {
        Ok((std::process::id(), self.whoami.pid(ctx).await?))
    }
}

/// Whether process `pid` still exists.
fn alive(pid: u32) -> bool {
    // Signal 0 checks without sending; a zombie would count, but the
    // envelope reaps its child before `wait` returns.
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Calls `Whoami` until both replicas answered (bounded).
async fn replica_pids(t: &Env) -> weaver::Result<std::collections::BTreeSet<u32>> {
    let whoami = t.get::<dyn Whoami>();
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..200 {
        pids.insert(whoami.pid(&t.ctx()).await?);
        if pids.len() == 2 {
            break;
        }
    }
    Ok(pids)
}

#[test]
fn multi_runs_two_replicas_in_other_processes_and_stops_them() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    Runner::multi().run(
        "testing::multi_runs_two_replicas_in_other_processes_and_stops_them",
        async move |t: &Env| {
            let pids = replica_pids(t).await?;
            assert_eq!(pids.len(), 2, "two replicas answer: {pids:?}");
            assert!(!pids.contains(&std::process::id()), "{pids:?}");
            // A component in another group calls Whoami in its own.
            let (pair, called) = t.get::<dyn Pair>().pids(&t.ctx()).await?;
            assert!(pair != called && pair != std::process::id());
            record
                .lock()
                .unwrap()
                .extend(pids.iter().copied().chain([pair]));
            Ok(())
        },
    );
    let pids = seen.lock().unwrap().clone();
    assert_eq!(pids.len(), 3);
    for pid in pids {
        assert!(!alive(pid), "replica {pid} outlived the test");
    }
}

#[test]
fn multi_colocates_what_the_config_colocates() {
    Runner::multi()
        .config("[serviceweaver]\ncolocate = [[\"testing::Pair\", \"testing::Whoami\"]]\n")
        .run(
            "testing::multi_colocates_what_the_config_colocates",
            async |t: &Env| {
                let (pair, called) = t.get::<dyn Pair>().pids(&t.ctx()).await?;
                assert_eq!(pair, called, "colocated components share a process");
                assert_ne!(pair, std::process::id());
                Ok(())
            },
        );
}

#[test]
fn multi_stops_its_children_when_the_body_panics() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let panic = std::panic::catch_unwind(move || {
        Runner::multi().run(
            "testing::multi_stops_its_children_when_the_body_panics",
            async move |t: &Env| {
                let pids = replica_pids(t).await?;
                record.lock().unwrap().extend(pids);
                panic!("the body gives up");
            },
        )
    });
    assert!(panic.is_err());
    let pids = seen.lock().unwrap().clone();
    assert_eq!(pids.len(), 2, "{pids:?}");
    for pid in pids {
        assert!(!alive(pid), "replica {pid} outlived the failed test");
    }
}

#[test]
fn multi_with_a_wrong_test_name_fails_saying_so() {
    let err = Runner::multi()
        .try_run("testing::no_such_test", async |t: &Env| {
            t.get::<dyn Whoami>().pid(&t.ctx()).await.map(|_| ())
        })
        .expect_err("the children run no test");
    let msg = err.to_string();
    assert!(msg.contains("cannot start group testing::Whoami"), "{msg}");
    assert!(msg.contains("no_such_test --exact"), "{msg}");
}

#[test]
fn bench_times_each_runner_and_refuses_zero_iterations() {
    let calls = AtomicU64::new(0);
    for r in [Runner::local(), Runner::rpc()] {
        let mean = r
            .bench("testing::bench", 50, async |t: &Env| {
                calls.fetch_add(1, Ordering::SeqCst);
                t.get::<dyn Whoami>().pid(&t.ctx()).await.map(|_| ())
            })
            .expect("the benchmark runs");
        assert!(mean > std::time::Duration::ZERO);
    }
    // One warm-up and 50 timed runs per runner.
    assert_eq!(calls.load(Ordering::SeqCst), 2 * 51);
    let err = Runner::local()
        .bench("testing::bench", 0, async |_t: &Env| Ok(()))
        .expect_err("zero iterations");
    assert!(err.to_string().contains("at least one iteration"), "{err}");
}
