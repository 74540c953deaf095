//! `#[derive(MetricLabels)]`: a struct whose fields are a metric's labels.
//!
//! Field types are not judged by name: every field goes through the
//! `LabelValue` trait, so an unsupported type is a trait error spanned on
//! that field's type.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, Path, Type};

use crate::util::{Errors, default_crate};

/// The parsed struct.
struct Labels {
    krate: Path,
    ident: Ident,
    fields: Vec<Field>,
}

struct Field {
    ident: Ident,
    ty: Type,
    label: String,
}

pub(crate) fn expand(item: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    let labels = parse(input)?;
    Ok(generate(&labels))
}

fn parse(input: DeriveInput) -> syn::Result<Labels> {
    let mut errors = Errors::default();
    let mut krate = default_crate();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("weaver")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let s: syn::LitStr = meta.value()?.parse()?;
                krate = s.parse()?;
                Ok(())
            } else {
                Err(meta.error("unknown option; expected `crate = \"path\"`"))
            }
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new(
            input.generics.span(),
            "metric labels cannot be generic: every field is a `String`, `&'static str`, `bool` or integer",
        ));
    }
    let named = match input.data {
        Data::Struct(s) => match s.fields {
            Fields::Named(named) => Some(named.named),
            Fields::Unit => Some(Default::default()),
            Fields::Unnamed(f) => {
                errors.push(syn::Error::new(
                    f.span(),
                    "metric labels need named fields: a label is named after its field",
                ));
                None
            }
        },
        _ => {
            errors.push(syn::Error::new(
                input.ident.span(),
                "`MetricLabels` can only be derived for a struct with named fields",
            ));
            None
        }
    };
    let mut fields: Vec<Field> = Vec::new();
    for f in named.into_iter().flatten() {
        let Some(ident) = f.ident else { continue };
        let (label, span) = match label_attr(&f.attrs) {
            Ok(Some((label, span))) => (label, span),
            Ok(None) => (ident.unraw().to_string(), ident.span()),
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if let Some(why) = bad_label(&label) {
            errors.push(syn::Error::new(span, format!("label {label:?} {why}")));
        } else if fields.iter().any(|o| o.label == label) {
            errors.push(syn::Error::new(
                span,
                format!(
                    "label {label:?} appears twice; rename one with `#[weaver(label = \"...\")]`"
                ),
            ));
        }
        fields.push(Field {
            ident,
            ty: f.ty,
            label,
        });
    }
    errors.finish()?;
    Ok(Labels {
        krate,
        ident: input.ident,
        fields,
    })
}

/// The `#[weaver(label = "x")]` rename of a field, with its span.
fn label_attr(attrs: &[syn::Attribute]) -> syn::Result<Option<(String, Span)>> {
    let mut label = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("weaver")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("label") {
                let s: syn::LitStr = meta.value()?.parse()?;
                label = Some((s.value(), s.span()));
                Ok(())
            } else {
                Err(meta.error("unknown option; expected `label = \"name\"`"))
            }
        })?;
    }
    Ok(label)
}

/// Why `label` is not a valid Prometheus label name, if it is not.
fn bad_label(label: &str) -> Option<&'static str> {
    let mut chars = label.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Some("is not a label name: ASCII letters, digits and `_`, not starting with a digit")
    } else if label.starts_with("__") {
        Some("is reserved: names starting with `__` belong to Prometheus")
    } else {
        None
    }
}

fn generate(labels: &Labels) -> TokenStream {
    let Labels {
        krate,
        ident,
        fields,
    } = labels;
    let names = fields.iter().map(|f| &f.label);
    // Each use names the field's type with its span, so an unsupported type
    // is reported once, on the field.
    let value_trait = quote!(#krate::__private::LabelValue);
    let render = fields.iter().map(|Field { ident, ty, .. }| {
        quote_spanned!(ty.span()=> <#ty as #value_trait>::render(&self.#ident))
    });
    let same = fields.iter().map(|Field { ident, ty, .. }| {
        quote_spanned!(ty.span()=> <#ty as #value_trait>::same(&self.#ident, &other.#ident))
    });
    let hash = fields.iter().map(|Field { ident, ty, .. }| {
        quote_spanned!(ty.span()=> <#ty as #value_trait>::feed(&self.#ident, state);)
    });
    let copy = fields.iter().map(|Field { ident, ty, .. }| {
        quote_spanned!(ty.span()=> #ident: <#ty as #value_trait>::copy(&self.#ident))
    });
    quote! {
        impl #krate::__private::MetricLabels for #ident {
            const NAMES: &'static [&'static str] = &[#(#names),*];

            fn values(&self) -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![#(#render),*]
            }

            fn __same(&self, other: &Self) -> bool {
                let _ = other;
                true #(&& #same)*
            }

            fn __hash(&self, state: &mut ::std::hash::DefaultHasher) {
                let _ = state;
                #(#hash)*
            }

            fn __copy(&self) -> Self {
                Self { #(#copy),* }
            }
        }
    }
}
