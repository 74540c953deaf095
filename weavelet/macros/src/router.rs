//! `#[router(Component)]`: an `impl` block of routing-key methods.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ItemImpl, Path, ReturnType, Type};

use crate::util::{self, Errors};

struct RouterMethod {
    name: syn::Ident,
    /// The argument types after the context, as written.
    args: Vec<Type>,
    key: Type,
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let (component, krate) = parse_options(attr)?;
    let imp: ItemImpl = syn::parse2(item)?;
    if let Some((_, path, _)) = &imp.trait_ {
        return Err(syn::Error::new(
            path.span(),
            "#[weaver::router] goes on an inherent impl block (`impl MyRouter { ... }`)",
        ));
    }
    // Mismatched methods are reported and stubbed out; the rest still get
    // their impl, so one mistake gives one error.
    let (methods, bad, errors) = check_methods(&imp);
    let errors = errors.finish().err().map(syn::Error::into_compile_error);
    let self_ty = &imp.self_ty;
    let routing = util::sibling(&component, util::routing_name);
    let key = methods
        .first()
        .map(|m| m.key.clone())
        .unwrap_or_else(|| syn::parse_quote!(()));
    let wrappers = methods.iter().map(|m| {
        let mname = &m.name;
        let alias = util::sibling(&component, |c| util::args_alias_name(c, mname));
        let vars: Vec<_> = (0..m.args.len()).map(|i| format_ident!("__a{}", i)).collect();
        // Each argument goes through `RouterArg`, so a type that does not
        // match the method's (by reference) is one error at that type.
        let borrows = m.args.iter().zip(&vars).enumerate().map(|(i, (t, v))| {
            let t = without_lifetimes(t);
            quote_spanned! {t.span()=>
                let #v = #krate::__private::router_arg::<
                    #t,
                    <#alias as #krate::__private::ArgAt<#i>>::Arg,
                >(#v);
            }
        });
        quote_spanned! {mname.span()=>
            fn #mname(&self, ctx: &#krate::Context, args: &#alias) -> ::core::option::Option<Self::Key> {
                let (#(#vars,)*) = args;
                #(#borrows)*
                ::core::option::Option::Some(<#self_ty>::#mname(self, ctx, #(#vars),*))
            }
        }
    });
    let stubs = bad.iter().map(|mname| {
        let alias = util::sibling(&component, |c| util::args_alias_name(c, mname));
        quote! {
            fn #mname(&self, _: &#krate::Context, _: &#alias) -> ::core::option::Option<Self::Key> {
                ::core::option::Option::None
            }
        }
    });
    Ok(quote! {
        #imp

        impl #routing for #self_ty {
            type Key = #key;
            #(#wrappers)*
            #(#stubs)*
        }

        #errors
    })
}

fn parse_options(attr: TokenStream) -> syn::Result<(Path, Path)> {
    let mut component = None;
    let mut krate = util::default_crate();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let s: syn::LitStr = meta.value()?.parse()?;
            krate = s.parse()?;
        } else if component.is_none() {
            component = Some(meta.path.clone());
        } else {
            return Err(meta.error("expected the component trait, e.g. #[weaver::router(Cache)]"));
        }
        Ok(())
    });
    syn::parse::Parser::parse2(parser, attr)?;
    let component = component.ok_or_else(|| {
        syn::Error::new(
            proc_macro2::Span::call_site(),
            "name the component this routes, e.g. #[weaver::router(Cache)]",
        )
    })?;
    Ok((component, krate))
}

/// The well-formed router methods, the names of the others, and what is
/// wrong with them.
fn check_methods(imp: &ItemImpl) -> (Vec<RouterMethod>, Vec<syn::Ident>, Errors) {
    let mut errors = Errors::default();
    let mut methods: Vec<RouterMethod> = Vec::new();
    let mut bad = Vec::new();
    for item in &imp.items {
        let ImplItem::Fn(f) = item else { continue };
        let sig = &f.sig;
        let key = match &sig.output {
            ReturnType::Type(_, t) => (**t).clone(),
            ReturnType::Default => {
                errors.push(syn::Error::new(
                    sig.ident.span(),
                    "router methods return the routing key",
                ));
                bad.push(sig.ident.clone());
                continue;
            }
        };
        let has_self = matches!(sig.inputs.first(), Some(FnArg::Receiver(_)));
        if !has_self || sig.inputs.len() < 2 {
            errors.push(syn::Error::new(
                sig.ident.span(),
                "router methods take `&self`, a `&weaver::Context` and the method's arguments",
            ));
            bad.push(sig.ident.clone());
            continue;
        }
        if let Some(first) = methods.first().filter(|f| !same_type(&f.key, &key)) {
            let (fk, fname) = (&first.key, &first.name);
            errors.push(syn::Error::new(
                key.span(),
                format!(
                    "all router methods must return the same routing key type: `{fname}` returns `{}`, but `{}` returns `{}`",
                    quote!(#fk),
                    sig.ident,
                    quote!(#key)
                ),
            ));
            bad.push(sig.ident.clone());
            continue;
        }
        let args = sig
            .inputs
            .iter()
            .skip(2)
            .filter_map(|a| match a {
                FnArg::Typed(pt) => Some((*pt.ty).clone()),
                FnArg::Receiver(_) => None,
            })
            .collect();
        methods.push(RouterMethod {
            name: sig.ident.clone(),
            args,
            key,
        });
    }
    (methods, bad, errors)
}

/// `ty` with the lifetimes of its outer references elided, so it can be
/// named inside the generated method.
fn without_lifetimes(ty: &Type) -> Type {
    let mut ty = ty.clone();
    let mut t = &mut ty;
    while let Type::Reference(r) = t {
        r.lifetime = None;
        t = &mut *r.elem;
    }
    ty
}

/// Whether two types are spelled the same.
fn same_type(a: &Type, b: &Type) -> bool {
    quote!(#a).to_string() == quote!(#b).to_string()
}
