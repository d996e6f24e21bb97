//! Writes `impl PiiFields` from a [`PiiModel`].

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Ident;
use syn::spanned::Spanned;

use super::parse::{PiiModel, Subject};

/// `impl ::es_core::erasure::PiiFields for #ident`.
pub(crate) fn expand(ident: &Ident, model: &PiiModel) -> TokenStream {
    let fields = model.fields.iter().map(|f| {
        let ty = &f.ty;
        let name = &f.json_name;
        let subject = match &f.subject {
            Subject::Field(field) => quote_spanned! {field.span()=>
                ::es_core::erasure::PiiSubject::subject_id(&self.#field)
            },
            Subject::Function(path) => quote_spanned! {path.span()=>
                ::es_core::erasure::PiiSubject::subject_id(&#path(self))
            },
        };
        let redacted = match &f.redacted {
            Some(expr) => quote_spanned! {expr.span()=> {
                let redacted: #ty = #expr;
                redacted
            }},
            None => quote_spanned! {ty.span()=>
                <#ty as ::es_core::erasure::Redactable>::redacted()
            },
        };
        quote! {
            ::es_core::erasure::PiiField {
                name: #name,
                subject: #subject,
                redacted: ::es_core::erasure::redacted_json::<#ty>(#redacted),
            }
        }
    });
    quote! {
        #[automatically_derived]
        impl ::es_core::erasure::PiiFields for #ident {
            fn pii_fields(&self) -> ::std::vec::Vec<::es_core::erasure::PiiField> {
                ::std::vec![#(#fields),*]
            }
        }
    }
}
