//! Writes the `Event` impl from an [`EventModel`].

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::DeriveInput;
use syn::spanned::Spanned;

use super::parse::EventModel;

/// The `Event` impl.
pub(super) fn expand(model: &EventModel) -> TokenStream {
    let EventModel {
        ident,
        name,
        version,
        aliases,
        upcasts,
        pii,
    } = model;
    let aliases = (!aliases.is_empty()).then(|| {
        quote! { const ALIASES: &'static [&'static str] = &[#(#aliases),*]; }
    });
    let upcast = (!upcasts.is_empty()).then(|| {
        let value = quote!(::es_core::__private::serde_json::Value);
        let result = quote!(::core::result::Result<#value, ::es_core::event::UpcastError>);
        let arms = upcasts.iter().map(|(from, with)| {
            // Spanned at the user's function: a wrong signature is reported there.
            let call = quote_spanned! {with.span()=> {
                let upcaster: fn(#value) -> #result = #with;
                upcaster(payload)
            }};
            quote!(#from => #call)
        });
        quote! {
            const UPCASTERS: bool = true;

            fn upcast(from: u32, payload: #value) -> #result {
                match from {
                    #(#arms,)*
                    _ => ::core::result::Result::Err(::es_core::event::UpcastError::new(
                        ::std::format!(
                            "no upcaster from version {} (this code reads version {})",
                            from,
                            #version,
                        ),
                    )),
                }
            }
        }
    });
    let (pii_impl, encode) = if pii.fields.is_empty() {
        (None, None)
    } else {
        let encode = quote! {
            fn encode_payload(
                &self,
            ) -> ::core::result::Result<::std::vec::Vec<u8>, ::es_core::event::EventError> {
                ::es_core::erasure::encode_open(
                    self,
                    <Self as ::es_core::event::Event>::NAME,
                    ::es_core::erasure::PiiFields::pii_fields(self),
                )
                .map_err(|e| ::es_core::event::EventError::Encode {
                    event_type: ::std::borrow::ToOwned::to_owned(
                        <Self as ::es_core::event::Event>::NAME,
                    ),
                    message: ::std::string::ToString::to_string(&e),
                })
            }
        };
        (Some(crate::pii::expand(ident, pii)), Some(encode))
    };
    quote! {
        #[automatically_derived]
        impl ::es_core::event::Event for #ident {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            #aliases
            #upcast
            #encode
        }
        #pii_impl
    }
}

/// A stub impl emitted next to the errors, so that uses of the type as an event do not add
/// errors of their own. Generic types get none (the impl itself could not compile).
pub(super) fn fallback(input: &DeriveInput) -> TokenStream {
    if !input.generics.params.is_empty() || matches!(input.data, syn::Data::Union(_)) {
        return TokenStream::new();
    }
    let ident = &input.ident;
    let name = ident.to_string();
    quote! {
        impl ::es_core::event::Event for #ident {
            const NAME: &'static str = #name;
            const VERSION: u32 = 1;
        }
    }
}
