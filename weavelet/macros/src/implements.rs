//! `#[implements(Trait)]` and `#[main]`: a struct becomes a component
//! implementation the runtime can build.

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
    /// Filled by the runtime through `__private::Field`, whatever its type
    /// (a `Ref`, `Listener`, `Config` or `Logger`; anything else is a
    /// compile error from that trait). Carries the name passed to `fill`:
    /// the listener's name (the field's, or its `listener = "..."` rename).
    Filled { name: String, renamed: bool },
    /// `#[weaver(default)]`: `Default::default()`.
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
    match &mut st.fields {
        Fields::Unit => {}
        Fields::Unnamed(f) => errors.push(syn::Error::new(
            f.span(),
            "component implementations need named fields (or none)",
        )),
        Fields::Named(named) => {
            for field in named.named.iter_mut() {
                let opts = match field_options(&field.attrs) {
                    Ok(o) => o,
                    Err(e) => {
                        errors.push(e);
                        FieldOptions::default()
                    }
                };
                field.attrs.retain(|a| !a.path().is_ident("weaver"));
                let ident = field.ident.as_ref().expect("named fields have names");
                if let Err(e) = check_ref_argument(&field.ty) {
                    errors.push(e);
                }
                let kind = match (opts.default, opts.listener) {
                    (true, Some(_)) => {
                        errors.push(syn::Error::new(
                            field.span(),
                            "a field is either `#[weaver(default)]` or a renamed listener, not both",
                        ));
                        FieldKind::Default
                    }
                    (true, None) => FieldKind::Default,
                    (false, Some(name)) => FieldKind::Filled {
                        name,
                        renamed: true,
                    },
                    (false, None) => FieldKind::Filled {
                        name: ident.to_string(),
                        renamed: false,
                    },
                };
                kinds.push(kind);
            }
        }
    }
    errors.finish()?;
    Ok(kinds)
}

/// Our options on one field.
#[derive(Default)]
struct FieldOptions {
    /// `listener = "name"`.
    listener: Option<String>,
    /// `default`.
    default: bool,
}

fn field_options(attrs: &[syn::Attribute]) -> syn::Result<FieldOptions> {
    let mut opts = FieldOptions::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("weaver")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("listener") {
                let s: syn::LitStr = meta.value()?.parse()?;
                opts.listener = Some(s.value());
                Ok(())
            } else if meta.path.is_ident("default") {
                opts.default = true;
                Ok(())
            } else {
                Err(meta.error("unknown field option; expected `listener = \"name\"` or `default`"))
            }
        })?;
    }
    Ok(opts)
}

/// `Ref<T>` where `T` is not a trait object is the one mistake every new
/// app makes (`Ref<ReverserImpl>`): say so once, at the argument.
fn check_ref_argument(ty: &Type) -> syn::Result<()> {
    let Type::Path(p) = ty else { return Ok(()) };
    let Some(last) = p.path.segments.last() else {
        return Ok(());
    };
    if last.ident != "Ref" {
        return Ok(());
    }
    match util::type_args(ty).first() {
        Some(Type::TraitObject(_)) | None => Ok(()),
        Some(Type::Path(arg)) => {
            let name = arg
                .path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .unwrap_or_default();
            Err(syn::Error::new(
                arg.span(),
                format!(
                    "`Ref` takes the component's trait as a trait object: `Ref<dyn {name}>` if `{name}` is the component trait, or `Ref<dyn TheTrait>` if `{name}` implements it"
                ),
            ))
        }
        Some(other) => Err(syn::Error::new(
            other.span(),
            "`Ref` takes the component's trait as a trait object: `Ref<dyn MyComponent>`",
        )),
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

/// A field's type with `Ref<dyn X>` as `Ref<dyn X + 'static>`.
fn field_type(ty: &Type) -> Type {
    let mut ty = ty.clone();
    if let Type::Path(p) = &mut ty
        && let Some(last) = p.path.segments.last_mut()
        && last.ident == "Ref"
        && let syn::PathArguments::AngleBracketed(args) = &mut last.arguments
    {
        for arg in args.args.iter_mut() {
            if let syn::GenericArgument::Type(t) = arg {
                *t = static_object(t.clone());
            }
        }
    }
    ty
}

fn gen_impl(opts: &Options, st: &ItemStruct, interface: &Path, kinds: &[FieldKind]) -> TokenStream {
    let krate = &opts.krate;
    let name = &st.ident;
    let filled: Vec<(&syn::Field, &String, bool)> = fields(st)
        .zip(kinds)
        .filter_map(|(f, k)| match k {
            FieldKind::Filled { name, renamed } => Some((f, name, *renamed)),
            FieldKind::Default => None,
        })
        .collect();
    let infos = filled.iter().map(|(f, n, _)| {
        let ty = field_type(&f.ty);
        quote_spanned! {f.ty.span()=>
            #krate::__private::FieldInfo {
                name: #n,
                kind: <#ty as #krate::__private::Field>::KIND,
            }
        }
    });
    let checks = filled.iter().map(|(f, _, _)| {
        let ty = field_type(&f.ty);
        quote_spanned!(f.ty.span()=> <#ty as #krate::__private::Field>::check_config(__b)?;)
    });
    let asserts = listener_asserts(krate, &filled);
    let construct = construct_expr(krate, st, kinds);
    let init = opts.init.then(|| {
        quote_spanned! {name.span()=>
            #krate::__private::init(
                <dyn #interface as #krate::__private::Interface>::NAME,
                __this.init(&__b.context()),
            )
            .await?;
        }
    });
    let reg = format_ident!("__WEAVER_REGISTRATION_{}", name.to_string().to_uppercase());
    let name_str = name.to_string();
    quote! {
        impl #krate::__private::Implementation for #name {
            type Interface = dyn #interface;
            const FIELDS: &'static [#krate::__private::FieldInfo] = &[#(#infos),*];

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

            fn check_config(__b: &#krate::__private::Builder) -> #krate::Result<()> {
                let _ = __b;
                #(#checks)*
                ::core::result::Result::Ok(())
            }
        }

        #(#asserts)*

        #[#krate::__private::linkme::distributed_slice(#krate::__private::COMPONENTS)]
        #[linkme(crate = #krate::__private::linkme)]
        #[doc(hidden)]
        static #reg: #krate::__private::Registration =
            #krate::__private::Registration::of::<#name>(#name_str);
    }
}

fn fields(st: &ItemStruct) -> impl Iterator<Item = &syn::Field> {
    let named = match &st.fields {
        Fields::Named(named) => Some(named.named.iter()),
        _ => None,
    };
    named.into_iter().flatten()
}

/// Compile-time checks on listener names, which only the field types can
/// settle: a `listener = "..."` rename on a field that is not a listener,
/// and two listeners with one name.
fn listener_asserts(krate: &Path, filled: &[(&syn::Field, &String, bool)]) -> Vec<TokenStream> {
    let is_listener = |f: &syn::Field| {
        let ty = field_type(&f.ty);
        quote! {
            ::core::matches!(
                <#ty as #krate::__private::Field>::KIND,
                #krate::__private::FieldKind::Listener
            )
        }
    };
    let mut out = Vec::new();
    for (i, (f, n, renamed)) in filled.iter().enumerate() {
        let f_is = is_listener(f);
        if *renamed {
            let msg = format!(
                "`#[weaver(listener = {n:?})]` is on a field that is not a `weaver::Listener`"
            );
            out.push(quote_spanned! {f.span()=>
                const _: () = ::core::assert!(#f_is, #msg);
            });
        }
        for (g, m, _) in &filled[i + 1..] {
            if n == m {
                let g_is = is_listener(g);
                let msg = format!(
                    "two listeners named {n:?}; rename one with #[weaver(listener = \"...\")]"
                );
                out.push(quote_spanned! {g.span()=>
                    const _: () = ::core::assert!(!(#f_is && #g_is), #msg);
                });
            }
        }
    }
    out
}

fn construct_expr(krate: &Path, st: &ItemStruct, kinds: &[FieldKind]) -> TokenStream {
    let name = &st.ident;
    let Fields::Named(named) = &st.fields else {
        return quote!(#name);
    };
    let inits = named.named.iter().zip(kinds).map(|(f, k)| {
        let ident = &f.ident;
        let value = match k {
            FieldKind::Filled { name, .. } => {
                let ty = field_type(&f.ty);
                quote_spanned! {f.ty.span()=>
                    <#ty as #krate::__private::Field>::fill(&__b, #name).await?
                }
            }
            FieldKind::Default => {
                quote_spanned!(f.ty.span()=> ::core::default::Default::default())
            }
        };
        quote!(#ident: #value)
    });
    quote!(#name { #(#inits),* })
}
