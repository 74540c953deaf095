//! `#[implements(Trait)]` and `#[main]`: a struct becomes a component
//! implementation the runtime can build.

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Fields, ItemStruct, Path, Type};

use crate::util::{self, Errors};

struct Options {
    krate: Path,
    interface: Option<Path>,
    init: bool,
}

/// How one field is filled.
enum FieldKind {
    /// `Ref<dyn X>`: a reference to component X.
    Ref(Type),
    /// `Listener`, with its name.
    Listener(String),
    /// `Config<T>`.
    Config,
    /// `Logger`.
    Logger,
    /// Anything else: `Default::default()`.
    Default,
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream, main: bool) -> syn::Result<TokenStream> {
    let opts = parse_options(attr, main)?;
    let mut st: ItemStruct = syn::parse2(item)?;
    if !st.generics.params.is_empty() {
        return Err(syn::Error::new(
            st.generics.span(),
            "component implementations cannot be generic",
        ));
    }
    let kinds = classify_fields(&mut st)?;
    let krate = &opts.krate;
    let interface: Path = match (&opts.interface, main) {
        (_, true) => syn::parse_quote!(#krate::Main),
        (Some(p), false) => p.clone(),
        (None, false) => {
            return Err(syn::Error::new(
                Span::call_site(),
                "name the component this implements: #[weaver::implements(MyComponent)]",
            ));
        }
    };
    let body = gen_impl(&opts, &st, &interface, &kinds);
    let main_impl = main.then(|| {
        let name = &st.ident;
        quote!(impl #krate::Main for #name {})
    });
    Ok(quote! {
        #st
        #body
        #main_impl
    })
}

fn parse_options(attr: TokenStream, main: bool) -> syn::Result<Options> {
    let mut opts = Options {
        krate: util::default_crate(),
        interface: None,
        init: false,
    };
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let s: syn::LitStr = meta.value()?.parse()?;
            opts.krate = s.parse()?;
        } else if meta.path.is_ident("init") {
            opts.init = true;
        } else if meta.input.is_empty() || meta.input.peek(syn::Token![,]) {
            if main || opts.interface.is_some() {
                return Err(meta.error(
                    "unknown option; expected the component trait, `init` or `crate = \"path\"`",
                ));
            }
            opts.interface = Some(meta.path.clone());
        } else {
            return Err(meta.error("unknown option"));
        }
        Ok(())
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(opts)
}

/// Classifies fields and strips our `#[weaver(...)]` field attributes.
fn classify_fields(st: &mut ItemStruct) -> syn::Result<Vec<FieldKind>> {
    let mut errors = Errors::default();
    let mut kinds = Vec::new();
    let mut listeners: HashMap<String, Span> = HashMap::new();
    match &mut st.fields {
        Fields::Unit => {}
        Fields::Unnamed(f) => errors.push(syn::Error::new(
            f.span(),
            "component implementations need named fields (or none)",
        )),
        Fields::Named(named) => {
            for field in named.named.iter_mut() {
                let rename = match listener_rename(&field.attrs) {
                    Ok(r) => r,
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                };
                field.attrs.retain(|a| !a.path().is_ident("weaver"));
                let ident = field.ident.as_ref().expect("named fields have names");
                let kind = field_kind(&field.ty, ident, rename);
                if let FieldKind::Listener(name) = &kind {
                    let span = field.span();
                    if listeners.insert(name.clone(), span).is_some() {
                        errors.push(syn::Error::new(
                            span,
                            format!("two listeners named {name:?}; rename one with #[weaver(listener = \"...\")]"),
                        ));
                    }
                }
                kinds.push(kind);
            }
        }
    }
    errors.finish()?;
    Ok(kinds)
}

fn listener_rename(attrs: &[syn::Attribute]) -> syn::Result<Option<String>> {
    let mut rename = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("weaver")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("listener") {
                let s: syn::LitStr = meta.value()?.parse()?;
                rename = Some(s.value());
                Ok(())
            } else {
                Err(meta.error("unknown field option; expected `listener = \"name\"`"))
            }
        })?;
    }
    Ok(rename)
}

fn field_kind(ty: &Type, ident: &syn::Ident, rename: Option<String>) -> FieldKind {
    match util::last_ident(ty).map(|i| i.to_string()).as_deref() {
        Some("Ref") => match util::type_args(ty).first() {
            Some(inner) => FieldKind::Ref(static_object((*inner).clone())),
            None => FieldKind::Default,
        },
        Some("Listener") => FieldKind::Listener(rename.unwrap_or_else(|| ident.to_string())),
        Some("Config") => FieldKind::Config,
        Some("Logger") => FieldKind::Logger,
        _ => FieldKind::Default,
    }
}

/// `dyn X` as `dyn X + 'static`: in expressions an elided object lifetime
/// is inferred, not defaulted, and the interface is implemented for
/// `'static` objects only.
fn static_object(mut ty: Type) -> Type {
    if let Type::TraitObject(obj) = &mut ty {
        let has_lifetime = obj
            .bounds
            .iter()
            .any(|b| matches!(b, syn::TypeParamBound::Lifetime(_)));
        if !has_lifetime {
            obj.bounds.push(syn::parse_quote!('static));
        }
    }
    ty
}

fn gen_impl(opts: &Options, st: &ItemStruct, interface: &Path, kinds: &[FieldKind]) -> TokenStream {
    let krate = &opts.krate;
    let name = &st.ident;
    let listeners = kinds.iter().filter_map(|k| match k {
        FieldKind::Listener(n) => Some(n),
        _ => None,
    });
    let refs = kinds.iter().filter_map(|k| match k {
        FieldKind::Ref(t) => Some(quote!(<#t as #krate::__private::Interface>::NAME)),
        _ => None,
    });
    let construct = construct_expr(st, kinds);
    let init = opts.init.then(|| {
        quote_spanned! {name.span()=>
            __this.init(&__b.context()).await?;
        }
    });
    let reg = format_ident!("__WEAVER_REGISTRATION_{}", name.to_string().to_uppercase());
    let name_str = name.to_string();
    quote! {
        impl #krate::__private::Implementation for #name {
            type Interface = dyn #interface;
            const LISTENERS: &'static [&'static str] = &[#(#listeners),*];
            const REFS: &'static [&'static str] = &[#(#refs),*];

            fn build(
                __b: #krate::__private::Builder,
            ) -> #krate::__private::BoxFuture<'static, #krate::Result<Self>> {
                ::std::boxed::Box::pin(async move {
                    #[allow(unused_mut)]
                    let mut __this = #construct;
                    #init
                    let _ = &__b;
                    ::core::result::Result::Ok(__this)
                })
            }
        }

        #[#krate::__private::linkme::distributed_slice(#krate::__private::COMPONENTS)]
        #[linkme(crate = #krate::__private::linkme)]
        #[doc(hidden)]
        static #reg: #krate::__private::Registration =
            #krate::__private::Registration::of::<#name>(#name_str);
    }
}

fn construct_expr(st: &ItemStruct, kinds: &[FieldKind]) -> TokenStream {
    let name = &st.ident;
    let Fields::Named(named) = &st.fields else {
        return quote!(#name);
    };
    let inits = named.named.iter().zip(kinds).map(|(f, k)| {
        let ident = &f.ident;
        let value = match k {
            FieldKind::Ref(t) => quote!(__b.get_ref::<#t>()),
            FieldKind::Listener(n) => quote!(__b.listener(#n).await?),
            FieldKind::Config => quote!(__b.config()?),
            FieldKind::Logger => quote!(__b.logger()),
            FieldKind::Default => quote!(::core::default::Default::default()),
        };
        quote!(#ident: #value)
    });
    quote!(#name { #(#inits),* })
}
