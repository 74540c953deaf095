//! Small helpers shared by the macros.

use proc_macro2::Ident;
use syn::{Path, Type};

/// Collects errors so one expansion reports all of them.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// The last segment's identifier of a path type, e.g. `Result` for
/// `weaver::Result<T>`.
pub(crate) fn last_ident(ty: &Type) -> Option<&Ident> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| &s.ident),
        _ => None,
    }
}

/// The generic type arguments of a path type's last segment.
pub(crate) fn type_args(ty: &Type) -> Vec<&Type> {
    let Type::Path(p) = ty else { return Vec::new() };
    let Some(last) = p.path.segments.last() else {
        return Vec::new();
    };
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return Vec::new();
    };
    args.args
        .iter()
        .filter_map(|a| match a {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// Parses the `crate = "path"` option, defaulting to `::weaver`.
pub(crate) fn default_crate() -> Path {
    syn::parse_quote!(::weaver)
}

/// `path` with its last segment renamed by `f` (arguments dropped).
pub(crate) fn sibling(path: &Path, f: impl FnOnce(&Ident) -> String) -> Path {
    let mut out = path.clone();
    if let Some(last) = out.segments.last_mut() {
        last.ident = Ident::new(&f(&last.ident), last.ident.span());
        last.arguments = syn::PathArguments::None;
    }
    out
}

/// Name of the hidden erased trait of component `name`.
pub(crate) fn erased_name(name: &Ident) -> String {
    format!("__WeaverErased{name}")
}

/// Name of the hidden routing trait of component `name`.
pub(crate) fn routing_name(name: &Ident) -> String {
    format!("__WeaverRouting{name}")
}

/// Name of the hidden argument-tuple alias of `method` of component `name`.
pub(crate) fn args_alias_name(name: &Ident, method: &Ident) -> String {
    format!("__WeaverArgs{name}_{method}")
}
