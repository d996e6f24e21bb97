//! Writes the `Projection` impl from a validated [`Plan`]; or, after errors, a stub.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::check::Plan;
use crate::span::call_over;

/// The `Projection` impl (the user's impl block is emitted by the caller).
pub(super) fn expand(plan: &Plan) -> TokenStream {
    let Plan {
        ident,
        name,
        handlers,
    } = plan;
    let event = |ty: &syn::Type| quote_spanned!(ty.span()=> <#ty as ::es_core::event::Event>);
    let accepted = handlers.iter().map(|h| {
        let event = event(&h.ty);
        quote!(event_type == #event::NAME)
    });
    let branches = handlers.iter().map(|h| {
        let (ty, method) = (&h.ty, &h.method);
        let event = event(ty);
        // Decoding through a function bounded by `Event` reports a type without
        // `#[derive(Event)]` with `Event`'s own message, at the type.
        let decode = quote_spanned!(ty.span()=> decode::<#ty>);
        let outcome = call_over(
            quote!(::es_core::projection::HandlerOutcome::into_outcome),
            quote!(Self::#method(self, &recorded)),
            &h.output,
        );
        quote! {
            if event.event_type == #event::NAME {
                let recorded = #decode(event)?;
                return #outcome;
            }
        }
    });
    let unused = handlers.is_empty().then(|| quote!(let _ = event;));
    let state = state_codec();
    let header = header(ident);
    quote! {
        #header {
            const NAME: &'static str = #name;

            fn accepts(event_type: &str) -> bool {
                false #(|| #accepted)*
            }

            fn handle(
                &mut self,
                event: &::es_core::store::RecordedEvent,
            ) -> ::core::result::Result<(), ::es_core::projection::ProjectionError> {
                #[allow(dead_code)]
                fn decode<E: ::es_core::event::Event>(
                    event: &::es_core::store::RecordedEvent,
                ) -> ::core::result::Result<
                    ::es_core::event::Recorded<E>,
                    ::es_core::event::EventError,
                > {
                    ::es_core::event::Recorded::<E>::decode(event)
                }
                #(#branches)*
                #unused
                ::core::result::Result::Ok(())
            }

            #state
        }
    }
}

/// A stub impl emitted next to errors.
pub(super) fn fallback(plan: &Plan) -> TokenStream {
    let Plan { ident, name, .. } = plan;
    let header = header(ident);
    quote! {
        #header {
            const NAME: &'static str = #name;
            fn accepts(_: &str) -> bool {
                ::core::unimplemented!()
            }
            fn handle(
                &mut self,
                _: &::es_core::store::RecordedEvent,
            ) -> ::core::result::Result<(), ::es_core::projection::ProjectionError> {
                ::core::unimplemented!()
            }
        }
    }
}

/// `encode_state` and `decode_state` through the autoref specialization of
/// `::es_core::__private::StateCodec`: serde when the type supports it, nothing otherwise.
fn state_codec() -> TokenStream {
    quote! {
        fn encode_state(
            &self,
        ) -> ::core::option::Option<
            ::core::result::Result<::std::vec::Vec<u8>, ::es_core::projection::ProjectionError>,
        > {
            #[allow(unused_imports)]
            use ::es_core::__private::{ViaNothing as _, ViaSerde as _};
            (&::es_core::__private::StateCodec::<Self>(::core::marker::PhantomData))
                .encode_state(self)
        }

        fn decode_state(
            bytes: &[u8],
        ) -> ::core::option::Option<
            ::core::result::Result<Self, ::es_core::projection::ProjectionError>,
        > {
            #[allow(unused_imports)]
            use ::es_core::__private::{ViaNothing as _, ViaSerde as _};
            (&::es_core::__private::StateCodec::<Self>(::core::marker::PhantomData))
                .decode_state(bytes)
        }
    }
}

/// `impl Projection for Type`, spanned at the type's name: an unsatisfied supertrait bound (`Default`,
/// serde, `Send`) is reported once, at the user's `impl Type`.
fn header(ident: &syn::Ident) -> TokenStream {
    quote_spanned!(ident.span()=> impl ::es_core::projection::Projection for #ident)
}
