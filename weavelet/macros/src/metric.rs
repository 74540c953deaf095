//! `#[metric]` on a `static` metric: registers it at link time, so it is
//! reported (at 0) and its name checked for duplicates at start-up, before
//! its first update.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemStatic, StaticMutability};

use crate::util::default_crate;

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut krate = default_crate();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let s: syn::LitStr = meta.value()?.parse()?;
            krate = s.parse()?;
            Ok(())
        } else {
            Err(meta.error("unknown option; expected `crate = \"path\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    let item: ItemStatic = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "`#[weaver::metric]` goes on a `static` holding a metric",
        )
    })?;
    if let StaticMutability::Mut(m) = item.mutability {
        return Err(syn::Error::new(
            m.span(),
            "a metric is a plain `static`: it is updated through `&self`",
        ));
    }
    let ident = &item.ident;
    let entry = format_ident!("__WEAVER_METRIC_{}", ident.to_string().to_uppercase());
    // Spanned on the type, so a static that is not a metric is reported there.
    let declared = quote_spanned!(item.ty.span()=> &#ident);
    Ok(quote! {
        #item

        #[#krate::__private::linkme::distributed_slice(#krate::__private::METRICS)]
        #[linkme(crate = #krate::__private::linkme)]
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        static #entry: &'static dyn #krate::__private::Declared = #declared;
    })
}
