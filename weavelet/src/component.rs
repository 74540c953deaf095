//! Components as the runtime sees them: interfaces, implementations,
//! references between them and their registration.
//!
//! The `#[weaver::component]`, `#[weaver::implements]` and `#[weaver::main]`
//! macros implement the traits here; application code only ever names
//! [`Ref`], [`Config`] and [`Main`].

use std::any::Any;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::metrics::method::MethodMetrics;
use crate::{BoxFuture, Context, Error, Logger, Result, runtime::Runtime};

/// A built component: an `Arc<Arc<dyn ErasedTrait>>` for ordinary
/// components, an `Arc<App>` for the Main component.
pub type Instance = Arc<dyn Any + Send + Sync>;

/// The Main component: the one every application has. Its implementation is
/// the struct marked `#[weaver::main]`.
pub trait Main: Send + Sync + 'static {}

/// A reference to another component, filled in by the runtime.
///
/// Declare one as a field of a component implementation
/// (`reverser: Ref<dyn Reverser>`, with the component's trait, not its
/// implementation) and call its methods directly
/// (`self.reverser.reverse(&ctx, s)`): it dereferences to the generated
/// client. Whether the component runs in this process or another is the
/// deployer's choice.
pub struct Ref<T: ?Sized + Interface> {
    client: T::Client,
}

/// A component's configuration, read from its section of `weaver.toml`.
///
/// Declare a field `config: Config<MyConfig>` where `MyConfig` implements
/// `serde::Deserialize`; keys in the section that `MyConfig` does not know
/// are an error that names them. A missing section deserializes from an
/// empty table.
#[derive(Debug, Clone, Default)]
pub struct Config<T>(T);

/// Static description of one component method.
#[derive(Debug, Clone, Copy)]
pub struct MethodInfo {
    /// Method name as written in the trait.
    pub name: &'static str,
    /// Whether a call that failed in transit may be retried.
    pub retriable: bool,
}

/// A component interface, implemented by the `#[weaver::component]` macro
/// for `dyn Trait`.
///
/// It is implemented for `dyn Trait + 'a` for every `'a`: async code that
/// holds a `Ref` across an await is checked for `Send` with erased
/// lifetimes, which an impl for `'static` objects only would fail.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a component interface",
    label = "not a `dyn Trait` of a `#[weaver::component]` trait",
    note = "a reference names the component's trait, not its implementation: `Ref<dyn MyComponent>`"
)]
pub trait Interface {
    /// The generated client type `Ref::get` returns.
    type Client: Clone + Send + Sync + 'static;
    /// Full component name, e.g. `hello::Reverser`.
    const NAME: &'static str;
    /// Methods in index order.
    const METHODS: &'static [MethodInfo];
    /// Whether calls are routed by key.
    const ROUTED: bool;
    /// A client over a handle.
    fn client(handle: Handle) -> Self::Client;
    /// Runs method `method` on a local instance with encoded arguments and
    /// returns the encoded result.
    fn dispatch(
        instance: &Instance,
        ctx: Context,
        method: u32,
        args: &[u8],
    ) -> BoxFuture<'static, Result<Vec<u8>>>;
}

/// Wraps an implementation into an [`Instance`] of interface `Self`.
///
/// Implemented by the component macro for every implementation of the
/// trait; the Main component keeps its concrete type.
pub trait Wrap<T> {
    /// Erases `obj`.
    fn wrap(obj: Arc<T>) -> Instance;
}

/// A component implementation, implemented by `#[weaver::implements]`.
pub trait Implementation: Sized + Send + Sync + 'static {
    /// The interface it implements.
    type Interface: ?Sized + Interface + Wrap<Self>;
    /// The fields the runtime fills (those not marked `#[weaver(default)]`).
    const FIELDS: &'static [FieldInfo];
    /// Builds the implementation: fills references, listeners, config and
    /// logger, then runs its init hook.
    fn build(b: Builder) -> BoxFuture<'static, Result<Self>>;
    /// Checks the component's config section without building anything.
    fn check_config(b: &Builder) -> Result<()>;
}

/// A field of an implementation that the runtime fills.
#[derive(Debug, Clone, Copy)]
pub struct FieldInfo {
    /// The field's name, or the listener's name for a listener.
    pub name: &'static str,
    /// What it is.
    pub kind: FieldKind,
}

/// What a filled field is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A [`Ref`] to the named component.
    Ref(&'static str),
    /// A [`Listener`](crate::Listener).
    Listener,
    /// A [`Config`].
    Config,
    /// A [`Logger`].
    Logger,
}

/// A field type the runtime knows how to fill. Implemented for [`Ref`],
/// [`Listener`](crate::Listener), [`Config`] and [`Logger`]; the macro
/// resolves every field through it, so what a field is follows from its
/// type, not from its type's name.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a field weaver can fill",
    label = "not a `Ref<dyn C>`, `Listener`, `Config<T>` or `Logger`",
    note = "mark other fields `#[weaver(default)]` to fill them with `Default::default()`"
)]
pub trait Field: Sized + Send + Sync + 'static {
    /// What the field is.
    const KIND: FieldKind;
    /// Fills the field `name` (the listener's name for a listener).
    fn fill<'a>(b: &'a Builder, name: &'static str) -> BoxFuture<'a, Result<Self>>;
    /// Checks the component's config section (only [`Config`] looks).
    ///
    /// # Errors
    ///
    /// A construction error naming the section, the key and the file.
    fn check_config(_b: &Builder) -> Result<()> {
        Ok(())
    }
}

/// One registered implementation, collected at link time.
pub struct Registration {
    /// Full component name.
    pub name: &'static str,
    /// Methods in index order.
    pub methods: &'static [MethodInfo],
    /// Whether calls are routed.
    pub routed: bool,
    /// The fields the runtime fills.
    pub fields: &'static [FieldInfo],
    /// Name of the implementing type, for messages.
    pub impl_name: &'static str,
    /// Builds an instance.
    pub build: fn(Builder) -> BoxFuture<'static, Result<Built>>,
    /// Checks the component's config section.
    pub check_config: fn(&Builder) -> Result<()>,
    /// Dispatches a call on an instance.
    pub dispatch: DispatchFn,
}

/// A component just built: its [`Instance`], and the implementation
/// object itself (an `Arc<T>` of the implementing type), which test
/// runners hand out.
#[derive(Clone)]
pub struct Built {
    /// What calls dispatch on.
    pub instance: Instance,
    /// The `Arc<T>`.
    pub object: Arc<dyn Any + Send + Sync>,
}

/// Runs method `u32` of an instance on encoded arguments.
pub type DispatchFn = fn(&Instance, Context, u32, &[u8]) -> BoxFuture<'static, Result<Vec<u8>>>;

/// Everything a component implementation is built from.
#[derive(Clone)]
pub struct Builder {
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) component: &'static str,
}

/// The runtime's side of a [`Ref`]: resolves the component on first use.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    name: &'static str,
    /// The component holding the reference: the `caller` of its calls.
    caller: &'static str,
    /// Per method, its local and remote series, resolved on first call.
    methods: std::sync::OnceLock<Box<[[std::sync::OnceLock<MethodMetrics>; 2]]>>,
    /// Resolves the target on first use; `None` if it was given up front.
    runtime: Option<Arc<dyn Runtime>>,
    target: OnceCell<Target>,
}

/// Where calls through a [`Handle`] go.
pub enum Target {
    /// A component instance in this process: calls are plain method calls.
    Local(Instance),
    /// Replicas in other processes.
    Remote(Arc<dyn Transport>),
}

/// Carries encoded calls to remote replicas of one component.
pub trait Transport: Send + Sync + 'static {
    /// Calls method `method` with encoded `args`, routed by `key` if given.
    fn call<'a>(
        &'a self,
        ctx: &'a Context,
        method: u32,
        key: Option<u64>,
        args: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>>>;
}

// === impl Ref ===

impl<T: ?Sized + Interface> Deref for Ref<T> {
    type Target = T::Client;
    fn deref(&self) -> &T::Client {
        &self.client
    }
}

impl<T: ?Sized + Interface> Ref<T> {
    /// The client through which to call the component.
    pub fn get(&self) -> &T::Client {
        &self.client
    }

    pub(crate) fn new(handle: Handle) -> Self {
        Self {
            client: T::client(handle),
        }
    }
}

impl<T: ?Sized + Interface> Clone for Ref<T> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
        }
    }
}

impl<T: ?Sized + Interface> fmt::Debug for Ref<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ref<{}>", T::NAME)
    }
}

// === impl Config ===

impl<T> Config<T> {
    /// The configuration.
    pub fn get(&self) -> &T {
        &self.0
    }

    pub(crate) fn new(value: T) -> Self {
        Self(value)
    }
}

impl<T> Deref for Config<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

// === impl Builder ===

impl Builder {
    pub(crate) fn new(runtime: Arc<dyn Runtime>, component: &'static str) -> Self {
        Self { runtime, component }
    }

    /// Checks that the component, which has no [`Config`] field, has no
    /// keys in its config section either.
    pub(crate) fn check_no_config(&self) -> Result<()> {
        let Some(section) = self.runtime.config_section(self.component) else {
            return Ok(());
        };
        let keys = crate::config::section_keys(self.component, &section)?;
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
        Err(Error::construction(format!(
            "{}: [\"{c}\"] sets {}, but component {c} takes no config (it has no weaver::Config field)",
            section.file,
            keys.join(", "),
            c = self.component,
        )))
    }

    /// A reference to component `T`, resolved on first call.
    pub fn get_ref<T: ?Sized + Interface>(&self) -> Ref<T> {
        Ref::new(Handle::new(T::NAME, self.component, self.runtime.clone()))
    }

    /// The listener `name` of this component.
    ///
    /// # Errors
    ///
    /// A construction error if the address cannot be obtained or bound.
    pub async fn listener(&self, name: &str) -> Result<crate::Listener> {
        self.runtime
            .listener(self.component, name)
            .await
            .map_err(|e| {
                Error::construction(format!(
                    "component {}: listener {name:?}: {}",
                    self.component,
                    e.message()
                ))
            })
    }

    /// This component's configuration.
    ///
    /// # Errors
    ///
    /// A construction error naming the component, the key and the file if
    /// the section has unknown keys or values of the wrong type.
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Result<Config<T>> {
        let section = self.runtime.config_section(self.component);
        crate::config::decode_section(self.component, section).map(Config::new)
    }

    /// A logger for this component.
    pub fn logger(&self) -> Logger {
        Logger::new(self.component, self.runtime.log_sink())
    }

    /// The context passed to init hooks.
    pub fn context(&self) -> Context {
        Context::new()
    }
}

// === impl Handle ===

impl Handle {
    pub(crate) fn new(name: &'static str, caller: &'static str, runtime: Arc<dyn Runtime>) -> Self {
        Self {
            inner: Arc::new(HandleInner {
                name,
                caller,
                methods: std::sync::OnceLock::new(),
                runtime: Some(runtime),
                target: OnceCell::new(),
            }),
        }
    }

    /// A handle whose calls go to `target`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn with_target(name: &'static str, target: Target) -> Self {
        Self {
            inner: Arc::new(HandleInner {
                name,
                caller: "",
                methods: std::sync::OnceLock::new(),
                runtime: None,
                target: OnceCell::new_with(Some(target)),
            }),
        }
    }

    /// Where calls go, resolving the component on first use.
    ///
    /// # Errors
    ///
    /// If the component cannot be built or reached; the next call tries
    /// again.
    pub async fn resolve(&self) -> Result<&Target> {
        let inner = &*self.inner;
        inner
            .target
            .get_or_try_init(|| async {
                let target = match &inner.runtime {
                    Some(rt) => rt.resolve(inner.name).await,
                    None => Err(Error::internal("handle without a runtime")),
                }?;
                self.declare_methods(matches!(target, Target::Remote(_)));
                Ok(target)
            })
            .await
    }

    /// Resolves the series of every method of the component, as called
    /// through this handle (`remote`ly or not), so they are reported (as
    /// 0) before their first call, as Go's stubs do.
    fn declare_methods(&self, remote: bool) {
        let Ok(registration) =
            crate::runtime::Registry::get().and_then(|r| r.find(self.inner.name))
        else {
            return;
        };
        let count = registration.methods.len();
        for (index, m) in (0u32..).zip(registration.methods) {
            self.method(index, count, m.name, remote);
        }
    }

    /// The full name of the component.
    pub fn name(&self) -> &'static str {
        self.inner.name
    }

    /// The series of method `index` (of the component's `count`), named
    /// `method`, called locally or `remote`ly through this handle; resolved
    /// once, then found without a lock.
    ///
    /// # Panics
    ///
    /// If `index >= count` (the generated stubs never pass one).
    pub fn method(
        &self,
        index: u32,
        count: usize,
        method: &'static str,
        remote: bool,
    ) -> &MethodMetrics {
        let inner = &*self.inner;
        let table = inner.methods.get_or_init(|| {
            (0..count)
                .map(|_| [std::sync::OnceLock::new(), std::sync::OnceLock::new()])
                .collect()
        });
        table[index as usize][usize::from(remote)]
            .get_or_init(|| MethodMetrics::new(inner.caller, inner.name, method, remote))
    }
}

// === impl Registration ===

impl Registration {
    /// The registration of implementation `T`.
    pub const fn of<T: Implementation>(impl_name: &'static str) -> Self {
        Self {
            name: <T::Interface as Interface>::NAME,
            methods: <T::Interface as Interface>::METHODS,
            routed: <T::Interface as Interface>::ROUTED,
            fields: T::FIELDS,
            impl_name,
            build: build_instance::<T>,
            check_config: T::check_config,
            dispatch: <T::Interface as Interface>::dispatch,
        }
    }

    /// Names of its listeners.
    pub fn listeners(&self) -> impl Iterator<Item = &'static str> {
        self.fields
            .iter()
            .filter(|f| f.kind == FieldKind::Listener)
            .map(|f| f.name)
    }

    /// Full names of the components it holds references to.
    pub fn refs(&self) -> impl Iterator<Item = &'static str> {
        self.fields.iter().filter_map(|f| match f.kind {
            FieldKind::Ref(c) => Some(c),
            _ => None,
        })
    }

    /// Whether it has a [`Config`] field.
    pub fn has_config(&self) -> bool {
        self.fields.iter().any(|f| f.kind == FieldKind::Config)
    }
}

fn build_instance<T: Implementation>(b: Builder) -> BoxFuture<'static, Result<Built>> {
    Box::pin(async move {
        let obj = Arc::new(T::build(b).await?);
        Ok(Built {
            instance: <T::Interface as Wrap<T>>::wrap(obj.clone()),
            object: obj,
        })
    })
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.name)
            .field("impl", &self.impl_name)
            .finish_non_exhaustive()
    }
}

// === impl Field ===

impl<T: ?Sized + Interface + 'static> Field for Ref<T> {
    const KIND: FieldKind = FieldKind::Ref(T::NAME);
    fn fill<'a>(b: &'a Builder, _name: &'static str) -> BoxFuture<'a, Result<Self>> {
        Box::pin(std::future::ready(Ok(b.get_ref::<T>())))
    }
}

impl Field for crate::Listener {
    const KIND: FieldKind = FieldKind::Listener;
    fn fill<'a>(b: &'a Builder, name: &'static str) -> BoxFuture<'a, Result<Self>> {
        Box::pin(b.listener(name))
    }
}

impl<T> Field for Config<T>
where
    T: serde::de::DeserializeOwned + Send + Sync + 'static,
{
    const KIND: FieldKind = FieldKind::Config;
    fn fill<'a>(b: &'a Builder, _name: &'static str) -> BoxFuture<'a, Result<Self>> {
        Box::pin(std::future::ready(b.config()))
    }
    fn check_config(b: &Builder) -> Result<()> {
        b.config::<T>().map(|_| ())
    }
}

impl Field for Logger {
    const KIND: FieldKind = FieldKind::Logger;
    fn fill<'a>(b: &'a Builder, _name: &'static str) -> BoxFuture<'a, Result<Self>> {
        Box::pin(std::future::ready(Ok(b.logger())))
    }
}

// === Main ===

impl Interface for dyn Main + '_ {
    type Client = ();
    const NAME: &'static str = "weaver::Main";
    const METHODS: &'static [MethodInfo] = &[];
    const ROUTED: bool = false;

    fn client(_handle: Handle) {}

    fn dispatch(
        _instance: &Instance,
        _ctx: Context,
        method: u32,
        _args: &[u8],
    ) -> BoxFuture<'static, Result<Vec<u8>>> {
        Box::pin(std::future::ready(Err(Error::internal(format!(
            "weaver::Main has no method {method}"
        )))))
    }
}

impl<T: Main> Wrap<T> for dyn Main + '_ {
    fn wrap(obj: Arc<T>) -> Instance {
        obj
    }
}
