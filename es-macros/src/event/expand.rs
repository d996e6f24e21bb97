//! Writes the `Event` impl from an [`EventModel`].

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use super::parse::EventModel;

/// The `Event` impl.
pub(super) fn expand(model: &EventModel) -> TokenStream {
    let EventModel {
        ident,
        name,
        version,
    } = model;
    quote! {
        #[automatically_derived]
        impl ::es_core::event::Event for #ident {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
        }
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
