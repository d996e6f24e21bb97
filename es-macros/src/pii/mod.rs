//! `#[pii(subject = .., redacted = ..)]` fields: read by `#[derive(Event)]` (events) and
//! `#[derive(Pii)]` (aggregate states), expanded into `impl es_core::erasure::PiiFields`.

mod expand;
mod parse;

use proc_macro2::TokenStream;
use quote::quote;

use crate::diagnostics::Diagnostics;

pub(crate) use expand::expand;
pub(crate) use parse::{PiiModel, parse};

/// Expands `#[derive(Pii)]`: the impl, or the errors plus a stub impl.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<syn::DeriveInput>(input) {
        Ok(input) => input,
        Err(error) => return error.into_compile_error(),
    };
    let mut diagnostics = Diagnostics::default();
    if !input.generics.params.is_empty() {
        diagnostics.error(
            &input.generics,
            "`#[derive(Pii)]` does not support generic types",
        );
    }
    let model = parse(&input, &mut diagnostics);
    let ident = &input.ident;
    if diagnostics.has_errors() {
        let mut tokens = diagnostics.into_compile_errors();
        if input.generics.params.is_empty() {
            tokens.extend(quote! {
                impl ::es_core::erasure::PiiFields for #ident {
                    fn pii_fields(&self) -> ::std::vec::Vec<::es_core::erasure::PiiField> {
                        ::std::vec::Vec::new()
                    }
                }
            });
        }
        return tokens;
    }
    expand(ident, &model)
}
