//! Procedural macros of Weaver for Rust.
//!
//! - `#[component]` on a trait: checks the methods, and generates the erased
//!   trait used for local calls, the client (local or remote), the server
//!   dispatcher and the interface description;
//! - `#[implements(Trait)]` on a struct: generates how the runtime builds it
//!   (references, listeners, config, logger, init hook) and registers it at
//!   link time;
//! - `#[main]`: `#[implements]` for the Main component;
//! - `#[router(Trait)]` on an `impl` block: ties routing-key methods to a
//!   component's methods;
//! - `#[derive(MetricLabels)]` on a struct: its fields become a metric
//!   family's labels;
//! - `#[metric]` on a metric `static`: registers it at link time;
//! - `#[test]` on an `async fn` taking a `&weaver::testing::Env`: one
//!   `#[test]` per test runner.
//!
//! This crate holds no runtime logic: every item it emits names only
//! `::weaver::__private::…` (or the path given with `crate = "..."`).
//! Apps use these through the `weaver` crate's re-exports.

mod component;
mod implements;
mod labels;
mod metric;
mod router;
mod test;
mod util;

use proc_macro::TokenStream;

/// Declares a component interface. See the `weaver` crate.
#[proc_macro_attribute]
pub fn component(attr: TokenStream, item: TokenStream) -> TokenStream {
    component::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Declares a component implementation. See the `weaver` crate.
#[proc_macro_attribute]
pub fn implements(attr: TokenStream, item: TokenStream) -> TokenStream {
    implements::expand(attr.into(), item.into(), false)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Declares the Main component's implementation. See the `weaver` crate.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    implements::expand(attr.into(), item.into(), true)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Declares the routing-key methods of a component's router. See the
/// `weaver` crate.
#[proc_macro_attribute]
pub fn router(attr: TokenStream, item: TokenStream) -> TokenStream {
    router::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `MetricLabels` for a struct whose fields are a metric family's
/// labels. See the `weaver` crate.
#[proc_macro_derive(MetricLabels, attributes(weaver))]
pub fn derive_metric_labels(item: TokenStream) -> TokenStream {
    labels::expand(item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Registers a metric `static` at link time. See the `weaver` crate.
#[proc_macro_attribute]
pub fn metric(attr: TokenStream, item: TokenStream) -> TokenStream {
    metric::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// A component test run by each test runner. See `weaver::testing`.
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    test::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
