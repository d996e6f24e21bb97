//! Writes the `Projection` impl from a validated [`Plan`]; or, after errors, a stub.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::check::Plan;
use super::parse::PartitionBy;
use crate::on;

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
        partition_by,
    } = plan;
    let partitioning = partition_by.as_ref().map(|by| {
        let value = match by {
            PartitionBy::Stream => quote!(::es_core::projection::Partitioning::ByStream),
            PartitionBy::Key(f) => {
                let coerced = quote_spanned! {f.span()=>
                    {
                        const KEY: fn(&::es_core::store::RecordedEvent) -> ::std::string::String = #f;
                        KEY
                    }
                };
                quote!(::es_core::projection::Partitioning::By(#coerced))
            }
        };
        quote! {
            const PARTITIONING: ::es_core::projection::Partitioning = #value;
        }
    });
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
    let accepts = on::accepts_fn(handlers);
    let body = on::handle_body(handlers, &TokenStream::new());
    let unused = handlers.is_empty().then(|| quote!(let _ = event;));
    let state = state_codec();
    // A state without `Default` fails this bound first, with a message that says to derive it.
    let bound = quote_spanned!(ident.span()=> #ident: ::es_core::__private::ProjectionState);
    on::on_impl(
        (header(ident), name),
        quote!(fn state_starts_from_default() where #bound {}),
        (handlers, Vec::new()),
        quote! {
            #aggregate_const
            #filter_const
            #partitioning

            #accepts

            fn handle(
                &mut self,
                event: &::es_core::store::RecordedEvent,
            ) -> ::core::result::Result<(), ::es_core::projection::ProjectionError> {
                #unused
                #body
            }

            #state
        },
        |first, second| {
            format!(
                "`#[on]` handlers (`{first}` and `{second}`) and a projection handles each \
                 event once"
            )
        },
    )
}

/// A stub impl emitted next to errors.
pub(super) fn fallback(plan: &Plan) -> TokenStream {
    on::fallback(
        header(&plan.ident),
        &plan.name,
        quote! {
            fn handle(
                &mut self,
                _: &::es_core::store::RecordedEvent,
            ) -> ::core::result::Result<(), ::es_core::projection::ProjectionError> {
                ::core::unimplemented!()
            }
        },
    )
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
