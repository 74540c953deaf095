//! `#[test]` on an `async fn name(t: &weaver::testing::Env) ->
//! weaver::Result<()>`: one `#[test]` per runner, in a module named after
//! the function (`name::local`, `name::rpc`, `name::multi`).

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, ItemFn, LitStr, Token};

use crate::util::default_crate;

/// The runners a test runs under unless `runners = [...]` says otherwise.
const RUNNERS: [&str; 3] = ["local", "rpc", "multi"];

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut krate = default_crate();
    let mut runners: Option<Vec<Ident>> = None;
    let mut config: Option<LitStr> = None;
    let mut fakes: Vec<Expr> = Vec::new();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let s: LitStr = meta.value()?.parse()?;
            krate = s.parse()?;
        } else if meta.path.is_ident("runners") {
            let content;
            let value = meta.value()?;
            syn::bracketed!(content in value);
            let list = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
            for r in &list {
                if !RUNNERS.contains(&r.to_string().as_str()) {
                    return Err(syn::Error::new(
                        r.span(),
                        format!("unknown runner `{r}`; expected one of: local, rpc, multi"),
                    ));
                }
            }
            if list.is_empty() {
                return Err(meta.error("`runners` names at least one runner"));
            }
            runners = Some(list.into_iter().collect());
        } else if meta.path.is_ident("config") {
            config = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("fakes") {
            let content;
            let value = meta.value()?;
            syn::bracketed!(content in value);
            fakes = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?
                .into_iter()
                .collect();
        } else {
            return Err(meta.error(
                "unknown option; expected `runners = [...]`, `config = \"...\"`, `fakes = [...]` or `crate = \"path\"`",
            ));
        }
        Ok(())
    });
    syn::parse::Parser::parse2(parser, attr)?;
    let item: ItemFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "`#[weaver::test]` goes on an `async fn name(t: &weaver::testing::Env) -> weaver::Result<()>`",
        )
    })?;
    if item.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            item.sig.fn_token.span(),
            "`#[weaver::test]` goes on an `async fn`",
        ));
    }
    if item.sig.inputs.len() != 1 {
        return Err(syn::Error::new(
            item.sig.inputs.span(),
            "a weaver test takes one argument: `t: &weaver::testing::Env`",
        ));
    }
    let name = &item.sig.ident;
    let runners =
        runners.unwrap_or_else(|| RUNNERS.iter().map(|r| Ident::new(r, name.span())).collect());
    let config = config.map(|c| quote!(.config(#c)));
    let tests = runners.iter().map(|r| {
        let ctor = format_ident!("{}", r.to_string(), span = r.span());
        let fakes = fakes.iter().map(|f| quote_spanned!(f.span()=> .fake(#f)));
        let runner = r.to_string();
        quote! {
            #[test]
            fn #r() {
                #krate::testing::Runner::#ctor()
                    #config
                    #(#fakes)*
                    .run(
                        ::core::concat!(::core::module_path!(), "::", #runner),
                        super::#name,
                    );
            }
        }
    });
    let vis = &item.vis;
    Ok(quote! {
        #[allow(dead_code)]
        #item

        #[doc(hidden)]
        #vis mod #name {
            #[allow(unused_imports)]
            use super::*;
            #(#tests)*
        }
    })
}
