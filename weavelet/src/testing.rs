//! Testing components the Service Weaver way: the same test body run by
//! several runners, each deploying the components differently.
//!
//! Mark an `async fn` taking a `&weaver::testing::Env` with
//! [`#[weaver::test]`](crate::test); it becomes one `#[test]` per runner,
//! `name::local` and `name::rpc`:
//!
//! ```ignore
//! #[weaver::test]
//! async fn reverses(t: &weaver::testing::Env) -> weaver::Result<()> {
//!     let r = t.get::<dyn Reverser>();
//!     assert_eq!(r.reverse(&t.ctx(), "abc".into()).await?, "cba");
//!     Ok(())
//! }
//!
//! #[weaver::test(runners = [local], config = r#"["shop::Pricing"] rate = 2"#,
//!                fakes = [weaver::testing::fake::<dyn Clock>(FixedClock(0))])]
//! async fn prices(t: &weaver::testing::Env) -> weaver::Result<()> { /* … */ Ok(()) }
//! ```
//!
//! - **local**: every component in the test process; calls are plain
//!   method calls.
//! - **rpc**: every component in the test process too, but every call goes
//!   through the real serialization and the RPC stack (a Unix socket to the
//!   test process itself), and every call of a retriable method runs
//!   **twice**, as a deployer may run it after a failure in transit. A
//!   method that must not run twice (it is not idempotent) and is not
//!   marked `#[weaver(not_retriable)]` shows up here.
//!
//! [`Runner`] is the same without the macro, for custom harnesses and
//! benchmarks. Main is not run; listeners get loopback ports; log entries
//! go to the test's output (shown for a failing test, or with
//! `--nocapture`). Each test gets its own components: tests run in
//! parallel threads without sharing state.
//!
//! A reference to a component whose implementation is not linked into the
//! test binary makes the call fail, naming the component; a `config` with
//! a key a component does not take fails the test, naming the key.

use std::collections::HashMap;
use std::sync::Arc;

use crate::component::{Implementation, Instance, Interface, Wrap};
use crate::config::parse_single;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;

use crate::runtime::test::multi::{self, WEAVELET_ENV};
use crate::runtime::test::{Calls, TestRuntime};
use crate::{Context, Error, Result};

/// Runs test bodies against one way of deploying the components.
///
/// ```ignore
/// weaver::testing::Runner::rpc()
///     .config(r#"["shop::Pricing"] rate = 2"#)
///     .fake(weaver::testing::fake::<dyn Clock>(FixedClock(0)))
///     .run("shop::tests::prices", async |t| {
///         let pricing = t.get::<dyn Pricing>();
///         assert_eq!(pricing.price(&t.ctx(), 3).await?, 6);
///         Ok(())
///     });
/// ```
#[derive(Debug)]
pub struct Runner {
    kind: Kind,
    config: String,
    fakes: Vec<Fake>,
}

/// Which runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Local,
    Rpc,
    Multi,
}

/// A value standing in for a component, made by [`fake`].
pub struct Fake {
    name: &'static str,
    instance: Instance,
}

/// What a test body gets: clients of the components, their
/// implementations, a context.
pub struct Env {
    runtime: Arc<TestRuntime>,
    runner: &'static str,
}

/// A value that can stand in for component `T`: any type that implements
/// the component's trait.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot fake component `{T}`",
    label = "does not implement the component's trait",
    note = "a fake of `dyn C` is a value of a type that implements the trait `C`"
)]
pub trait FakeOf<T: ?Sized> {
    /// Erases the value into an instance of `T`.
    #[doc(hidden)]
    fn into_instance(self) -> Instance;
}

impl<T, V> FakeOf<T> for V
where
    T: ?Sized + Interface + Wrap<V>,
    V: Send + Sync + 'static,
{
    fn into_instance(self) -> Instance {
        T::wrap(Arc::new(self))
    }
}

/// A fake of component `T` (`fake::<dyn C>(value)`): every reference to
/// `T` in the test, in any runner, calls `value` directly.
///
/// A value whose type does not implement `C` is a compile error.
pub fn fake<T: ?Sized + Interface>(value: impl FakeOf<T>) -> Fake {
    Fake {
        name: T::NAME,
        instance: value.into_instance(),
    }
}

// === impl Runner ===

impl Runner {
    /// Every component in the test process; plain calls.
    pub fn local() -> Self {
        Self::new(Kind::Local)
    }

    /// Every component in the test process, every call through the RPC
    /// stack, retriable calls run twice.
    pub fn rpc() -> Self {
        Self::new(Kind::Rpc)
    }

    /// Every component in other processes: the test binary re-executed as
    /// weavelets, two replicas per group (`[serviceweaver] colocate` in the
    /// config groups components), each group started when first called.
    /// The test process calls them through the RPC stack; components asked
    /// for with [`Env::get_impl`] run in the test process instead, and the
    /// others call them there. Every child is gone when the test ends.
    ///
    /// The children run the same test (`<binary> <name> --exact`), so
    /// `name` in [`run`](Self::run) must be the test's full path as the test
    /// harness knows it, crate name first: `#[weaver::test]` passes it.
    pub fn multi() -> Self {
        Self::new(Kind::Multi)
    }

    fn new(kind: Kind) -> Self {
        Self {
            kind,
            config: String::new(),
            fakes: Vec::new(),
        }
    }

    /// The runner's name: `local`, `rpc` or `multi`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Local => "local",
            Kind::Rpc => "rpc",
            Kind::Multi => "multi",
        }
    }

    /// The test's config, in `weaver.toml` syntax: component sections
    /// (`["app::Component"] key = value`), `[serviceweaver] name`, and
    /// `[single] listeners` to fix listener addresses.
    pub fn config(mut self, toml: &str) -> Self {
        toml.clone_into(&mut self.config);
        self
    }

    /// Replaces a component by a fake.
    pub fn fake(mut self, fake: Fake) -> Self {
        self.fakes.push(fake);
        self
    }

    /// Runs `body` on a new Tokio runtime and returns what it returned,
    /// or why the components could not be set up (a bad config, say).
    ///
    /// # Errors
    ///
    /// A bad config or fakes, or the body's own error.
    pub fn try_run<F>(self, name: &str, body: F) -> Result<()>
    where
        F: AsyncFnOnce(&Env) -> Result<()>,
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("cannot start a Tokio runtime: {e}")))?;
        if self.kind == Kind::Multi && std::env::var_os(WEAVELET_ENV).is_some() {
            serve_as_weavelet(&rt);
        }
        rt.block_on(async move {
            let env = self.env(name).await?;
            // Whatever the body does, panics included, the children stop.
            let outcome = AssertUnwindSafe(body(&env)).catch_unwind().await;
            env.runtime.shutdown().await;
            match outcome {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Runs `body`; a test failure if it fails.
    ///
    /// # Panics
    ///
    /// If the components cannot be set up or `body` returns an error: the
    /// message names the test, the runner and the error.
    pub fn run<F>(self, name: &str, body: F)
    where
        F: AsyncFnOnce(&Env) -> Result<()>,
    {
        let runner = self.name();
        if let Err(e) = self.try_run(name, body) {
            panic!("{name} [{runner} runner]: {e}");
        }
    }

    /// Times `body` for benchmarks: runs it once to warm up (starting what
    /// it calls), then `iterations` times, and returns the mean time of
    /// one run. Usable from any benchmark harness (a `harness = false`
    /// bench, or inside criterion's `iter_custom`); under
    /// [`multi`](Self::multi) the children re-execute the benchmark binary with
    /// `name` as its first argument, so call this early in `main`.
    ///
    /// # Errors
    ///
    /// As for [`try_run`](Self::try_run), or if `iterations` is 0.
    pub fn bench<F>(self, name: &str, iterations: u32, body: F) -> Result<std::time::Duration>
    where
        F: AsyncFn(&Env) -> Result<()>,
    {
        if iterations == 0 {
            return Err(Error::new("a benchmark runs at least one iteration"));
        }
        let took = std::sync::Mutex::new(std::time::Duration::ZERO);
        self.try_run(name, async |t: &Env| {
            body(t).await?;
            let start = std::time::Instant::now();
            for _ in 0..iterations {
                body(t).await?;
            }
            *took
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = start.elapsed() / iterations;
            Ok(())
        })?;
        Ok(took
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    async fn env(self, name: &str) -> Result<Env> {
        let runner = self.name();
        let config = parse_single(&self.config, std::path::Path::new("[testconfig]"))?;
        let mut fakes: HashMap<&'static str, Instance> = HashMap::new();
        for f in self.fakes {
            if fakes.insert(f.name, f.instance).is_some() {
                return Err(Error::construction(format!(
                    "component {} is faked twice",
                    f.name
                )));
            }
        }
        let app = config
            .app
            .clone()
            .unwrap_or_else(|| name.replace("::", "_"));
        let deployment = uuid::Uuid::new_v4().to_string();
        let calls = match self.kind {
            Kind::Local => Calls::Local,
            Kind::Rpc => Calls::Rpc,
            Kind::Multi => {
                // The harness names a test by its path without the crate.
                let test = name.split_once("::").map_or(name, |(_, t)| t);
                Calls::Multi(multi::Deployer::new(
                    test.to_string(),
                    app.clone(),
                    deployment.clone(),
                    config.sections.clone(),
                    &config.colocate,
                    crate::runtime::test::socket_dir(&deployment),
                ))
            }
        };
        let runtime = TestRuntime::new(app, deployment, calls, config, fakes)?;
        runtime.check()?;
        runtime.host_fakes().await?;
        Ok(Env { runtime, runner })
    }
}

/// In a child of a multi test: serves as a weavelet until the test
/// process closes the pipe, then exits the process (the test harness never
/// reports on this run).
// Exiting is the point: the test function must not return to the harness,
// which would report a test that never ran; the weavelet flushed its logs
// to the test process before `serve_test_weavelet` returned.
#[allow(clippy::disallowed_methods)]
fn serve_as_weavelet(rt: &tokio::runtime::Runtime) -> ! {
    match rt.block_on(crate::runtime::serve_test_weavelet()) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("weaver test weavelet: {e}");
            }
            std::process::exit(1)
        }
    }
}

// === impl Env ===

impl Env {
    /// A client of component `T` (`t.get::<dyn C>()`): local or through
    /// RPC, as the runner decides; the fake if `T` is faked.
    pub fn get<T: ?Sized + Interface>(&self) -> T::Client {
        let handle = crate::component::Handle::new(T::NAME, "weaver::Test", self.runtime.clone());
        crate::component::Ref::<T>::new(handle).get().clone()
    }

    /// The real implementation of a component (`t.get_impl::<CImpl>()`),
    /// built on first use: the object the component's clients call, so a
    /// test can look inside it.
    ///
    /// # Errors
    ///
    /// If the component is faked, or cannot be built.
    pub async fn get_impl<I: Implementation>(&self) -> Result<Arc<I>> {
        let name = <I::Interface as Interface>::NAME;
        if self.runtime.is_faked(name) {
            return Err(Error::construction(format!(
                "component {name} has both a fake and its implementation asked for"
            )));
        }
        self.runtime.host_here(name).await?;
        let object = self.runtime.object(name).await?;
        object.downcast::<I>().map_err(|_| {
            Error::construction(format!(
                "component {name} is not implemented by {}",
                std::any::type_name::<I>()
            ))
        })
    }

    /// A fresh context for a call.
    pub fn ctx(&self) -> Context {
        Context::new()
    }

    /// The runner's name: `local`, `rpc` or `multi`.
    pub fn runner(&self) -> &'static str {
        self.runner
    }
}

impl std::fmt::Debug for Fake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fake")
            .field("component", &self.name)
            .finish()
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").field("runner", &self.runner).finish()
    }
}
