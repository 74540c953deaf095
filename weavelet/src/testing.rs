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

    fn new(kind: Kind) -> Self {
        Self {
            kind,
            config: String::new(),
            fakes: Vec::new(),
        }
    }

    /// The runner's name: `local` or `rpc`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Local => "local",
            Kind::Rpc => "rpc",
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
        rt.block_on(async move {
            let env = self.env(name)?;
            body(&env).await
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

    fn env(self, name: &str) -> Result<Env> {
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
        let calls = match self.kind {
            Kind::Local => Calls::Local,
            Kind::Rpc => Calls::Rpc,
        };
        let runtime = TestRuntime::new(app, calls, config, fakes)?;
        runtime.check()?;
        Ok(Env { runtime, runner })
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

    /// The runner's name: `local` or `rpc`.
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
