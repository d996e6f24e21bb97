//! Writes the `ProcessManager` impl from a validated [`Plan`]; or, after errors, a stub.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::check::Plan;
use crate::handler::distinct_on_names;
use crate::span::call_over;

/// The `ProcessManager` impl (the user's impl block is emitted by the caller).
pub(super) fn expand(plan: &Plan) -> TokenStream {
    let Plan {
        ident,
        name,
        key,
        handlers,
        rejected,
    } = plan;
    let accepted = handlers.iter().map(|h| {
        let ty = &h.ty;
        let accepts = quote_spanned!(ty.span()=> accepts::<#ty>);
        quote!(#accepts(event_type))
    });
    let starts = handlers.iter().filter(|h| h.start).map(|h| {
        let ty = &h.ty;
        let matches = quote_spanned!(ty.span()=> matches::<#ty>);
        quote!(#matches(event))
    });
    let branches = handlers.iter().map(|h| {
        let (ty, method) = (&h.ty, &h.method);
        let (matches, decode) = (
            quote_spanned!(ty.span()=> matches::<#ty>),
            quote_spanned!(ty.span()=> decode::<#ty>),
        );
        let outcome = call_over(
            quote!(::es_core::projection::HandlerOutcome::into_outcome),
            quote!(Self::#method(self, &recorded, out)),
            &h.output,
        );
        quote! {
            if #matches(event) {
                let recorded = #decode(event)?;
                return #outcome;
            }
        }
    });
    let rejected = rejected.as_ref().map(|r| {
        let method = &r.method;
        let outcome = call_over(
            quote!(::es_core::projection::HandlerOutcome::into_outcome),
            quote!(Self::#method(self, rejection, out)),
            &r.output,
        );
        quote! {
            fn rejected(
                &mut self,
                rejection: &::es_core::process::Rejection,
                out: &mut ::es_core::process::Commands,
            ) -> ::core::result::Result<(), ::es_core::projection::ProjectionError> {
                #outcome
            }
        }
    });
    let key = key.as_ref().map(|f| {
        quote_spanned! {f.span()=>
            fn key(event: &::es_core::store::RecordedEvent) -> ::core::option::Option<::std::string::String> {
                let key: fn(&::es_core::store::RecordedEvent) -> ::core::option::Option<::std::string::String> = #f;
                key(event)
            }
        }
    });
    let bound = quote_spanned!(ident.span()=> #ident: ::es_core::__private::ProcessState);
    let bounds = handlers.iter().map(|h| {
        let ty = &h.ty;
        quote_spanned!(ty.span()=> #ty: ::es_core::projection::OnEvents)
    });
    let header = header(ident);
    let distinct = distinct_names(plan);
    quote! {
        const _: () = {
            #[allow(dead_code)]
            fn state_is_default_and_serde() where #bound {}
        };

        #[allow(private_bounds)]
        #header where #(#bounds,)* {
            const NAME: &'static str = #name;

            fn accepts(event_type: &str) -> bool {
                #[allow(dead_code)]
                fn accepts<E: ::es_core::projection::OnEvents>(event_type: &str) -> bool {
                    <E as ::es_core::event::EventSet>::contains(event_type)
                }
                false #(|| #accepted)*
            }

            fn starts(event: &::es_core::store::RecordedEvent) -> bool {
                #[allow(dead_code)]
                fn matches<E: ::es_core::projection::OnEvents>(
                    event: &::es_core::store::RecordedEvent,
                ) -> bool {
                    ::es_core::__private::on_matches::<E>(event)
                }
                false #(|| #starts)*
            }

            #key

            fn handle(
                &mut self,
                event: &::es_core::store::RecordedEvent,
                out: &mut ::es_core::process::Commands,
            ) -> ::core::result::Result<(), ::es_core::projection::ProjectionError> {
                #[allow(dead_code)]
                fn matches<E: ::es_core::projection::OnEvents>(
                    event: &::es_core::store::RecordedEvent,
                ) -> bool {
                    ::es_core::__private::on_matches::<E>(event)
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
                let _ = &out;
                #(#branches)*
                ::core::result::Result::Ok(())
            }

            #rejected
        }

        #distinct
    }
}

/// A compile-time check that no stored event matches two handlers (as for projections).
fn distinct_names(plan: &Plan) -> TokenStream {
    let handlers: Vec<_> = plan.handlers.iter().map(|h| (&h.ty, &h.method)).collect();
    distinct_on_names(&handlers, |first, second| {
        format!("handlers (`{first}` and `{second}`)")
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
            fn starts(_: &::es_core::store::RecordedEvent) -> bool {
                ::core::unimplemented!()
            }
            fn handle(
                &mut self,
                _: &::es_core::store::RecordedEvent,
                _: &mut ::es_core::process::Commands,
            ) -> ::core::result::Result<(), ::es_core::projection::ProjectionError> {
                ::core::unimplemented!()
            }
        }
    }
}

/// `impl ProcessManager for Type`, spanned at the type's name.
fn header(ident: &syn::Ident) -> TokenStream {
    quote_spanned!(ident.span()=> impl ::es_core::process::ProcessManager for #ident)
}
