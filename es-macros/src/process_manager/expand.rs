//! Writes the `ProcessManager` impl from a validated [`Plan`]; or, after errors, a stub.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::check::Plan;
use crate::on::{self, OnHandler};
use crate::span::call_over;

/// The `ProcessManager` impl (the user's impl block is emitted by the caller).
pub(super) fn expand(plan: &Plan) -> TokenStream {
    let Plan {
        ident,
        name,
        key,
        handlers,
        starts,
        rejected,
        deadlines,
    } = plan;
    let accepts = on::accepts_fn(handlers);
    let matches = on::matches_fn();
    let starts = starts.iter().map(|ty| {
        let matches = quote_spanned!(ty.span()=> matches::<#ty>);
        quote!(#matches(event))
    });
    let body = on::handle_body(handlers, &quote!(, out));
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
    let deadline = deadline_fn(deadlines);
    let deadline_bounds = deadlines
        .iter()
        .map(|h| {
            let ty = &h.ty;
            quote_spanned!(ty.span()=> #ty: ::es_core::event::Event)
        })
        .collect();
    let bound = quote_spanned!(ident.span()=> #ident: ::es_core::__private::ProcessState);
    on::on_impl(
        (header(ident), name),
        quote!(fn state_is_default_and_serde() where #bound {}),
        (handlers, deadline_bounds),
        quote! {
            #accepts

            fn starts(event: &::es_core::store::RecordedEvent) -> bool {
                #matches
                false #(|| #starts)*
            }

            #key

            fn handle(
                &mut self,
                event: &::es_core::store::RecordedEvent,
                out: &mut ::es_core::process::Commands,
            ) -> ::core::result::Result<(), ::es_core::projection::ProjectionError> {
                let _ = &out;
                #body
            }

            #rejected

            #deadline
        },
        |first, second| format!("handlers (`{first}` and `{second}`)"),
    )
}

/// `fn deadline`: the `#[on(deadline)]` handler of the deadline's type gets it decoded; none
/// (when no handler takes it) is an error naming it. Without handlers, the trait's default.
fn deadline_fn(deadlines: &[OnHandler]) -> Option<TokenStream> {
    if deadlines.is_empty() {
        return None;
    }
    let branches = deadlines.iter().map(|h| {
        let (ty, method) = (&h.ty, &h.method);
        let outcome = call_over(
            quote!(::es_core::projection::HandlerOutcome::into_outcome),
            quote!(Self::#method(self, &payload, out)),
            &h.output,
        );
        quote! {
            if deadline.is::<#ty>() {
                let payload = deadline.decode::<#ty>()?;
                return #outcome;
            }
        }
    });
    Some(quote! {
        fn deadline(
            &mut self,
            deadline: &::es_core::process::ScheduledDeadline,
            out: &mut ::es_core::process::Commands,
        ) -> ::core::result::Result<(), ::es_core::projection::ProjectionError> {
            #(#branches)*
            ::core::result::Result::Err(::es_core::process::no_deadline_handler(
                <Self as ::es_core::process::ProcessManager>::NAME,
                deadline,
            ))
        }
    })
}

/// A stub impl emitted next to errors.
pub(super) fn fallback(plan: &Plan) -> TokenStream {
    on::fallback(
        header(&plan.ident),
        &plan.name,
        quote! {
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
        },
    )
}

/// `impl ProcessManager for Type`, spanned at the type's name.
fn header(ident: &syn::Ident) -> TokenStream {
    quote_spanned!(ident.span()=> impl ::es_core::process::ProcessManager for #ident)
}
