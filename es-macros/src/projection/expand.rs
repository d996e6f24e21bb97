//! Writes the `Projection` impl from a validated [`Plan`]; or, after errors, a stub.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::check::Plan;
use crate::handler::distinct_on_names;
use crate::span::call_over;

/// The `Projection` impl (the user's impl block is emitted by the caller).
///
/// Each `#[on]` type `T` is used only through `T: OnEvents` (a single event, or an aggregate's
/// event enum), in helpers spanned at `T`: a type that is neither gets one error, at `T`.
pub(super) fn expand(plan: &Plan) -> TokenStream {
    let Plan {
        ident,
        name,
        handlers,
        aggregate,
        filter,
    } = plan;
    let aggregate_const = aggregate.as_ref().map(|a| {
        quote! {
            const AGGREGATE_TYPE: ::core::option::Option<&'static str> =
                ::core::option::Option::Some(#a);
        }
    });
    // The path is coerced to the function pointer type in a binding spanned at the path, so a
    // function of another signature is reported there, as a mismatched type.
    let filter_const = filter.as_ref().map(|f| {
        let coerced = quote_spanned! {f.span()=>
            {
                const FILTER: fn(&::es_core::store::RecordedEvent) -> bool = #f;
                FILTER
            }
        };
        quote! {
            const FILTER: ::core::option::Option<fn(&::es_core::store::RecordedEvent) -> bool> =
                ::core::option::Option::Some(#coerced);
        }
    });
    let accepted = handlers.iter().map(|h| {
        let ty = &h.ty;
        let accepts = quote_spanned!(ty.span()=> accepts::<#ty>);
        quote!(#accepts(event_type))
    });
    let branches = handlers.iter().map(|h| {
        let (ty, method) = (&h.ty, &h.method);
        let (matches, decode) = (
            quote_spanned!(ty.span()=> matches::<#ty>),
            quote_spanned!(ty.span()=> decode::<#ty>),
        );
        let outcome = call_over(
            quote!(::es_core::projection::HandlerOutcome::into_outcome),
            quote!(Self::#method(self, &recorded)),
            &h.output,
        );
        quote! {
            if #matches(event) {
                let recorded = #decode(event)?;
                return #outcome;
            }
        }
    });
    let unused = handlers.is_empty().then(|| quote!(let _ = event;));
    let state = state_codec();
    let header = header(ident);
    let distinct = distinct_names(plan);
    // A state without `Default` fails this bound first, with a message that says to derive it.
    let bound = quote_spanned!(ident.span()=> #ident: ::es_core::__private::ProjectionState);
    // Every handler type's bound is stated once, here, spanned at the type: a type that is not
    // an event gets one error, and the bodies below (which assume the bounds) add none.
    let bounds = handlers.iter().map(|h| {
        let ty = &h.ty;
        quote_spanned!(ty.span()=> #ty: ::es_core::projection::OnEvents)
    });
    quote! {
        const _: () = {
            #[allow(dead_code)]
            fn state_starts_from_default() where #bound {}
        };

        #[allow(private_bounds)]
        #header where #(#bounds,)* {
            const NAME: &'static str = #name;
            #aggregate_const
            #filter_const

            fn accepts(event_type: &str) -> bool {
                #[allow(dead_code)]
                fn accepts<E: ::es_core::projection::OnEvents>(event_type: &str) -> bool {
                    <E as ::es_core::event::EventSet>::contains(event_type)
                }
                false #(|| #accepted)*
            }

            fn handle(
                &mut self,
                event: &::es_core::store::RecordedEvent,
            ) -> ::core::result::Result<(), ::es_core::projection::ProjectionError> {
                // An event of the set's names, and, for an aggregate's event enum, of a stream
                // of that aggregate: checked before the payload is decoded.
                #[allow(dead_code)]
                fn matches<E: ::es_core::projection::OnEvents>(
                    event: &::es_core::store::RecordedEvent,
                ) -> bool {
                    <E as ::es_core::event::EventSet>::contains(&event.event_type)
                        && match <E as ::es_core::projection::OnEvents>::AGGREGATE_TYPE {
                            ::core::option::Option::Some(aggregate_type) => {
                                event.stream.aggregate_type == aggregate_type
                            }
                            ::core::option::Option::None => true,
                        }
                }
                #[allow(dead_code)]
                fn decode<E: ::es_core::projection::OnEvents>(
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

        #distinct
    }
}

/// A compile-time check that no stored event could match two `#[on]` handlers: per pair of
/// handler types, their names (aliases included) must not overlap, unless both are the event
/// enums of two different aggregates (the stream's aggregate type tells them apart). Each pair
/// is its own constant, so that every clash is reported, at the second type, naming both.
fn distinct_names(plan: &Plan) -> TokenStream {
    let handlers: Vec<_> = plan.handlers.iter().map(|h| (&h.ty, &h.method)).collect();
    distinct_on_names(&handlers, |first, second| {
        format!(
            "`#[on]` handlers (`{first}` and `{second}`) and a projection handles each event once"
        )
    })
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
