//! `#[component]`: a trait becomes a component interface.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemTrait, Pat, Path, ReturnType, TraitItem, TraitItemFn, Type};

use crate::util::{self, Errors};

/// Options of `#[component(...)]`.
struct Options {
    krate: Path,
    router: Option<Path>,
}

/// One checked method.
struct Method {
    attrs: Vec<syn::Attribute>,
    name: Ident,
    ctx_pat: Box<Pat>,
    ctx_ty: Box<Type>,
    args: Vec<(Ident, Type)>,
    ret: Type,
    ok_ty: Type,
    retriable: bool,
    /// `#[weaver(unrouted)]`: the router has no method for it; calls go to
    /// any replica.
    unrouted: bool,
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let opts = parse_options(attr)?;
    let mut tr: ItemTrait = syn::parse2(item)?;
    let methods = check_trait(&mut tr)?;
    Ok(generate(&opts, &tr, &methods))
}

fn parse_options(attr: TokenStream) -> syn::Result<Options> {
    let mut opts = Options {
        krate: util::default_crate(),
        router: None,
    };
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("router") {
            opts.router = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("crate") {
            let s: syn::LitStr = meta.value()?.parse()?;
            opts.krate = s.parse()?;
            Ok(())
        } else {
            Err(meta.error("unknown option; expected `router = Type` or `crate = \"path\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(opts)
}

fn check_trait(tr: &mut ItemTrait) -> syn::Result<Vec<Method>> {
    let mut errors = Errors::default();
    if !tr.generics.params.is_empty() || tr.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            tr.generics.span(),
            "component traits cannot be generic",
        ));
    }
    if let Some(bound) = tr.supertraits.first() {
        errors.push(syn::Error::new(
            bound.span(),
            "component traits cannot have supertraits",
        ));
    }
    let mut methods = Vec::new();
    for item in &tr.items {
        match item {
            TraitItem::Fn(f) => match check_method(f) {
                Ok(m) => methods.push(m),
                Err(e) => errors.push(e),
            },
            other => errors.push(syn::Error::new(
                other.span(),
                "component traits may contain only `async fn` methods",
            )),
        }
    }
    errors.finish()?;
    Ok(methods)
}

fn check_method(f: &TraitItemFn) -> syn::Result<Method> {
    let sig = &f.sig;
    let mut errors = Errors::default();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            "component methods must be `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            "component methods cannot be generic",
        ));
    }
    if let Some(body) = &f.default {
        errors.push(syn::Error::new(
            body.span(),
            "component methods cannot have a default body",
        ));
    }
    let (retriable, unrouted) = match method_options(&f.attrs) {
        Ok(r) => r,
        Err(e) => {
            errors.push(e);
            (true, false)
        }
    };
    let (ret, ok_ty) = match check_return(&sig.output, &sig.ident) {
        Ok(r) => r,
        Err(e) => {
            errors.push(e);
            (syn::parse_quote!(()), syn::parse_quote!(()))
        }
    };
    let inputs = check_inputs(sig);
    let inputs = match inputs {
        Ok(i) => Some(i),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    errors.finish()?;
    let (ctx_pat, ctx_ty, args) = inputs.expect("errors were returned above");
    let attrs = f
        .attrs
        .iter()
        .filter(|a| !a.path().is_ident("weaver"))
        .cloned()
        .collect();
    Ok(Method {
        attrs,
        name: sig.ident.clone(),
        ctx_pat,
        ctx_ty,
        args,
        ret,
        ok_ty,
        retriable,
        unrouted,
    })
}

/// Reads `#[weaver(not_retriable, unrouted)]`; returns (retriable,
/// unrouted).
fn method_options(attrs: &[syn::Attribute]) -> syn::Result<(bool, bool)> {
    let (mut retriable, mut unrouted) = (true, false);
    for attr in attrs.iter().filter(|a| a.path().is_ident("weaver")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("not_retriable") {
                retriable = false;
                Ok(())
            } else if meta.path.is_ident("unrouted") {
                unrouted = true;
                Ok(())
            } else {
                Err(meta.error("unknown method option; expected `not_retriable` or `unrouted`"))
            }
        })?;
    }
    Ok((retriable, unrouted))
}

fn check_return(output: &ReturnType, name: &Ident) -> syn::Result<(Type, Type)> {
    let ty = match output {
        ReturnType::Type(_, ty) => ty,
        ReturnType::Default => {
            return Err(syn::Error::new(
                name.span(),
                format!("component method `{name}` must return `weaver::Result<T>`"),
            ));
        }
    };
    let is_result = util::last_ident(ty).is_some_and(|i| i == "Result");
    let args = util::type_args(ty);
    if !is_result || args.is_empty() {
        return Err(syn::Error::new(
            ty.span(),
            format!("component method `{name}` must return `weaver::Result<T>`"),
        ));
    }
    if args.len() > 1 {
        return Err(syn::Error::new(
            args[1].span(),
            "component methods return `weaver::Result<T>`: the error type is always `weaver::Error`",
        ));
    }
    Ok(((**ty).clone(), args[0].clone()))
}

type Inputs = (Box<Pat>, Box<Type>, Vec<(Ident, Type)>);

fn check_inputs(sig: &syn::Signature) -> syn::Result<Inputs> {
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        Some(other) => {
            return Err(syn::Error::new(
                other.span(),
                "component methods take `&self` first",
            ));
        }
        None => {
            return Err(syn::Error::new(
                sig.ident.span(),
                "component methods take `&self` first",
            ));
        }
    }
    let ctx_err = |span| {
        syn::Error::new(
            span,
            format!(
                "component method `{}` must take a `&weaver::Context` as its first argument after `&self`",
                sig.ident
            ),
        )
    };
    let (ctx_pat, ctx_ty) = match inputs.next() {
        Some(FnArg::Typed(pt)) if is_context_ref(&pt.ty) => (pt.pat.clone(), pt.ty.clone()),
        Some(other) => return Err(ctx_err(other.span())),
        None => return Err(ctx_err(sig.paren_token.span.join())),
    };
    let mut args = Vec::new();
    for input in inputs {
        let FnArg::Typed(pt) = input else {
            return Err(syn::Error::new(input.span(), "unexpected receiver"));
        };
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(syn::Error::new(
                pt.pat.span(),
                "component method arguments must be plain names",
            ));
        };
        if let Type::Reference(r) = &*pt.ty {
            return Err(syn::Error::new(
                r.span(),
                "component method arguments are sent by value: use an owned type, not a reference",
            ));
        }
        args.push((pi.ident.clone(), (*pt.ty).clone()));
    }
    Ok((ctx_pat, ctx_ty, args))
}

fn is_context_ref(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => {
            r.mutability.is_none() && util::last_ident(&r.elem).is_some_and(|i| i == "Context")
        }
        _ => false,
    }
}

fn generate(opts: &Options, tr: &ItemTrait, methods: &[Method]) -> TokenStream {
    let trait_def = gen_trait(tr, methods);
    let erased = gen_erased(opts, tr, methods);
    let client = gen_client(opts, tr, methods);
    let interface = gen_interface(opts, tr, methods);
    let routing = gen_routing(opts, tr, methods);
    quote! {
        #trait_def
        #erased
        #client
        #interface
        #routing
    }
}

fn gen_trait(tr: &ItemTrait, methods: &[Method]) -> TokenStream {
    let (attrs, vis, name) = (&tr.attrs, &tr.vis, &tr.ident);
    let sigs = methods.iter().map(|m| {
        let (mattrs, mname, ctx_pat, ctx_ty, ret) =
            (&m.attrs, &m.name, &m.ctx_pat, &m.ctx_ty, &m.ret);
        let args = m.args.iter().map(|(a, t)| quote!(#a: #t));
        quote! {
            #(#mattrs)*
            fn #mname(&self, #ctx_pat: #ctx_ty, #(#args),*)
                -> impl ::core::future::Future<Output = #ret> + ::core::marker::Send
            where
                Self: ::core::marker::Sized;
        }
    });
    quote! {
        #(#attrs)*
        #vis trait #name: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#sigs)*
        }
    }
}

fn gen_erased(opts: &Options, tr: &ItemTrait, methods: &[Method]) -> TokenStream {
    let krate = &opts.krate;
    let (vis, name) = (&tr.vis, &tr.ident);
    let erased = format_ident!("{}", util::erased_name(name));
    let decls = methods.iter().map(|m| {
        let (mname, ret) = (&m.name, &m.ret);
        let args = m.args.iter().map(|(a, t)| quote!(#a: #t));
        quote! {
            fn #mname<'__w>(&'__w self, ctx: &'__w #krate::Context, #(#args),*)
                -> #krate::__private::BoxFuture<'__w, #ret>;
        }
    });
    let impls = methods.iter().map(|m| {
        let (mname, ret) = (&m.name, &m.ret);
        let args = m.args.iter().map(|(a, t)| quote!(#a: #t));
        let names = m.args.iter().map(|(a, _)| a);
        quote! {
            fn #mname<'__w>(&'__w self, ctx: &'__w #krate::Context, #(#args),*)
                -> #krate::__private::BoxFuture<'__w, #ret> {
                ::std::boxed::Box::pin(<__W as #name>::#mname(self, ctx, #(#names),*))
            }
        }
    });
    quote! {
        #[doc(hidden)]
        #vis trait #erased: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#decls)*
        }

        impl<__W: #name> #erased for __W {
            #(#impls)*
        }
    }
}

fn gen_client(opts: &Options, tr: &ItemTrait, methods: &[Method]) -> TokenStream {
    let krate = &opts.krate;
    let (vis, name) = (&tr.vis, &tr.ident);
    let client = format_ident!("{}Client", name);
    let erased = format_ident!("{}", util::erased_name(name));
    let doc = format!("Client of the [`{name}`] component, returned by `Ref::<dyn {name}>::get`.");
    let count = methods.len();
    let inherent = methods.iter().enumerate().map(|(i, m)| {
        let index = i as u32;
        let (mattrs, mname, ret, ok_ty) = (&m.attrs, &m.name, &m.ret, &m.ok_ty);
        let mname_str = mname.to_string();
        let args = m.args.iter().map(|(a, t)| quote!(#a: #t));
        let names: Vec<_> = m.args.iter().map(|(a, _)| a).collect();
        let key = route_expr(opts, tr, m);
        let pushes = m.args.iter().enumerate().map(|(i, (_, t))| {
            let i = syn::Index::from(i);
            quote_spanned!(t.span()=> enc.push::<#t>(&args.#i)?;)
        });
        let decode_reply = quote_spanned!(ok_ty.span()=> #krate::__private::decode::<#ok_ty>(&reply));
        quote! {
            #(#mattrs)*
            pub async fn #mname(&self, ctx: &#krate::Context, #(#args),*) -> #ret {
                match self.handle.resolve().await? {
                    #krate::__private::Target::Local(instance) => {
                        let obj = #krate::__private::downcast::<::std::sync::Arc<dyn #erased>>(instance)?;
                        let __start = ::std::time::Instant::now();
                        let __result = obj.#mname(ctx, #(#names),*).await.map_err(|e| {
                            #krate::__private::returned_by(
                                <dyn #name as #krate::__private::Interface>::NAME,
                                #mname_str,
                                e,
                            )
                        });
                        self.handle
                            .method(#index, #count, #mname_str, false)
                            .record(__start, __result.is_err(), (0, 0));
                        __result
                    }
                    #krate::__private::Target::Remote(transport) => {
                        let args = (#(#names,)*);
                        let key = #key;
                        let mut enc = #krate::__private::ArgsEncoder::new();
                        #(#pushes)*
                        let __args = enc.finish();
                        let __request = __args.len();
                        let __start = ::std::time::Instant::now();
                        let __reply = transport.call(ctx, #index, key, __args).await;
                        let __size = __reply.as_ref().map_or(0, |r| r.len());
                        self.handle
                            .method(#index, #count, #mname_str, true)
                            .record(__start, __reply.is_err(), (__request, __size));
                        let reply = __reply?;
                        #decode_reply
                    }
                }
            }
        }
    });
    let trait_impl = methods.iter().map(|m| {
        let (mname, ctx_ty, ret) = (&m.name, &m.ctx_ty, &m.ret);
        let args = m.args.iter().map(|(a, t)| quote!(#a: #t));
        let names = m.args.iter().map(|(a, _)| a);
        quote! {
            fn #mname(&self, ctx: #ctx_ty, #(#args),*)
                -> impl ::core::future::Future<Output = #ret> + ::core::marker::Send {
                #client::#mname(self, ctx, #(#names),*)
            }
        }
    });
    quote! {
        #[doc = #doc]
        #[derive(::core::clone::Clone)]
        #vis struct #client {
            handle: #krate::__private::Handle,
        }

        impl #client {
            #(#inherent)*
        }

        impl #name for #client {
            #(#trait_impl)*
        }

        impl ::core::fmt::Debug for #client {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(::core::stringify!(#client))
            }
        }
    }
}

/// The expression computing a call's routing key (`Option<u64>`).
fn route_expr(opts: &Options, tr: &ItemTrait, m: &Method) -> TokenStream {
    let krate = &opts.krate;
    let Some(router) = opts.router.as_ref().filter(|_| !m.unrouted) else {
        return quote!(::core::option::Option::None);
    };
    let routing = format_ident!("{}", util::routing_name(&tr.ident));
    let mname = &m.name;
    quote_spanned! {router.span()=>
        #krate::__private::route_key(<#router as #routing>::#mname(
            &<#router as ::core::default::Default>::default(),
            ctx,
            &args,
        ))
    }
}

fn gen_interface(opts: &Options, tr: &ItemTrait, methods: &[Method]) -> TokenStream {
    let krate = &opts.krate;
    let name = &tr.ident;
    let client = format_ident!("{}Client", name);
    let erased = format_ident!("{}", util::erased_name(name));
    let name_str = name.to_string();
    let routed = opts.router.is_some();
    let infos = methods.iter().map(|m| {
        let (n, r) = (m.name.to_string(), m.retriable);
        quote!(#krate::__private::MethodInfo { name: #n, retriable: #r })
    });
    let arms = methods.iter().enumerate().map(|(i, m)| {
        let index = i as u32;
        let mname = &m.name;
        let mname_str = mname.to_string();
        let names: Vec<_> = m.args.iter().map(|(a, _)| a).collect();
        let decodes = m.args.iter().map(|(a, t)| {
            quote_spanned! {t.span()=>
                let #a = match dec.arg::<#t>() {
                    ::core::result::Result::Ok(v) => v,
                    ::core::result::Result::Err(e) => return #krate::__private::ready(::core::result::Result::Err(e)),
                };
            }
        });
        let ok_ty = &m.ok_ty;
        let encode_out = quote_spanned!(ok_ty.span()=> #krate::__private::encode::<#ok_ty>(&out));
        quote! {
            #index => {
                #[allow(unused_mut, unused_variables)]
                let mut dec = #krate::__private::ArgsDecoder::new(args);
                #(#decodes)*
                ::std::boxed::Box::pin(async move {
                    let out = obj.#mname(&ctx, #(#names),*).await.map_err(|e| {
                        #krate::__private::returned_by(
                            <dyn #name as #krate::__private::Interface>::NAME,
                            #mname_str,
                            e,
                        )
                    })?;
                    #encode_out
                })
            }
        }
    });
    quote! {
        impl<'__w> #krate::__private::Interface for dyn #name + '__w {
            type Client = #client;
            const NAME: &'static str = ::core::concat!(::core::module_path!(), "::", #name_str);
            const METHODS: &'static [#krate::__private::MethodInfo] = &[#(#infos),*];
            const ROUTED: bool = #routed;

            fn client(handle: #krate::__private::Handle) -> #client {
                #client { handle }
            }

            fn dispatch(
                instance: &#krate::__private::Instance,
                ctx: #krate::Context,
                method: u32,
                args: &[u8],
            ) -> #krate::__private::BoxFuture<'static, #krate::Result<::std::vec::Vec<u8>>> {
                let obj = match #krate::__private::downcast::<::std::sync::Arc<dyn #erased>>(instance) {
                    ::core::result::Result::Ok(obj) => <::std::sync::Arc<dyn #erased> as ::core::clone::Clone>::clone(obj),
                    ::core::result::Result::Err(e) => return #krate::__private::ready(::core::result::Result::Err(e)),
                };
                match method {
                    #(#arms)*
                    _ => #krate::__private::ready(::core::result::Result::Err(
                        #krate::__private::unknown_method(<Self as #krate::__private::Interface>::NAME, method),
                    )),
                }
            }
        }

        impl<'__w, __W: #name> #krate::__private::Wrap<__W> for dyn #name + '__w {
            fn wrap(obj: ::std::sync::Arc<__W>) -> #krate::__private::Instance {
                let erased: ::std::sync::Arc<dyn #erased> = obj;
                ::std::sync::Arc::new(erased)
            }
        }
    }
}

/// The routing trait and argument aliases, if the component has a router.
fn gen_routing(opts: &Options, tr: &ItemTrait, methods: &[Method]) -> TokenStream {
    let Some(router) = &opts.router else {
        return TokenStream::new();
    };
    let krate = &opts.krate;
    let (vis, name) = (&tr.vis, &tr.ident);
    let routing = format_ident!("{}", util::routing_name(name));
    let mut aliases = Vec::new();
    let mut decls = Vec::new();
    for m in methods {
        let alias = format_ident!("{}", util::args_alias_name(name, &m.name));
        let tys = m.args.iter().map(|(_, t)| t);
        aliases.push(quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            #vis type #alias = (#(#tys,)*);
        });
        if m.unrouted {
            continue;
        }
        // No default: a router that lacks a method does not compile
        // ("not all trait items implemented, missing: `method`"), unless the
        // method is marked `#[weaver(unrouted)]`.
        let mname = &m.name;
        decls.push(quote! {
            #[doc(hidden)]
            fn #mname(&self, _: &#krate::Context, _: &#alias) -> ::core::option::Option<Self::Key>;
        });
    }
    let check = quote_spanned! {router.span()=>
        const _: fn() = || {
            fn __weaver_router_is_declared<R: #routing + ::core::default::Default>() {}
            __weaver_router_is_declared::<#router>();
        };
    };
    quote! {
        #(#aliases)*

        #[doc(hidden)]
        #vis trait #routing {
            #[doc(hidden)]
            type Key: #krate::__private::serde::Serialize;
            #(#decls)*
        }

        #check
    }
}
