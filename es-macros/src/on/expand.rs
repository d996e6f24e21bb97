//! The parts of the trait impl that `#[on]` handlers make: the `where` bounds of their types,
//! `accepts`, the dispatch in `handle`, and the check that no stored event matches two of them.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, LitStr};

use super::check::OnHandler;
use crate::handler::distinct_on_names;
use crate::span::call_over;

/// The trait impl of an `#[on]` block: `header` (`impl Trait for Type`, spanned at the type)
/// with `NAME` and `items`, after `state_check` (a function whose `where` clause states the
/// bound on the state type first, so that its message comes first), and the check that no
/// stored event matches two handlers; `clash(first, second)` names two clashing methods for the
/// macro at hand.
///
/// Every handler type's bound is stated once, in the impl's `where` clause, spanned at the
/// type: a type that is not an event gets one error, and the bodies (which assume the bounds)
/// add none. `more_bounds` are the macro's own (a process manager's deadline types).
pub(crate) fn on_impl(
    (header, name): (TokenStream, &LitStr),
    state_check: TokenStream,
    (handlers, more_bounds): (&[OnHandler], Vec<TokenStream>),
    items: TokenStream,
    clash: impl Fn(&Ident, &Ident) -> String,
) -> TokenStream {
    let bounds = handlers
        .iter()
        .map(|h| {
            let ty = &h.ty;
            quote_spanned!(ty.span()=> #ty: ::es_core::projection::OnEvents)
        })
        .chain(more_bounds);
    let pairs: Vec<_> = handlers.iter().map(|h| (&h.ty, &h.method)).collect();
    let distinct = distinct_on_names(&pairs, clash);
    quote! {
        const _: () = {
            #[allow(dead_code)]
            #state_check
        };

        #[allow(private_bounds)]
        #header where #(#bounds,)* {
            const NAME: &'static str = #name;
            #items
        }

        #distinct
    }
}

/// A stub impl emitted next to errors: `header` with `NAME`, `accepts` and `items` (which
/// should be `unimplemented!()` too).
pub(crate) fn fallback(header: TokenStream, name: &LitStr, items: TokenStream) -> TokenStream {
    quote! {
        #header {
            const NAME: &'static str = #name;
            fn accepts(_: &str) -> bool {
                ::core::unimplemented!()
            }
            #items
        }
    }
}

/// `fn accepts(event_type: &str) -> bool`: whether some handler's type has that name.
pub(crate) fn accepts_fn(handlers: &[OnHandler]) -> TokenStream {
    let accepted = handlers.iter().map(|h| {
        let ty = &h.ty;
        let accepts = quote_spanned!(ty.span()=> accepts::<#ty>);
        quote!(#accepts(event_type))
    });
    quote! {
        fn accepts(event_type: &str) -> bool {
            #[allow(dead_code)]
            fn accepts<E: ::es_core::projection::OnEvents>(event_type: &str) -> bool {
                <E as ::es_core::event::EventSet>::contains(event_type)
            }
            false #(|| #accepted)*
        }
    }
}

/// A local `fn matches<E>(event: &RecordedEvent) -> bool`: an event of the set's names, and,
/// for an aggregate's event enum, of a stream of that aggregate (checked before the payload is
/// decoded).
pub(crate) fn matches_fn() -> TokenStream {
    quote! {
        #[allow(dead_code)]
        fn matches<E: ::es_core::projection::OnEvents>(
            event: &::es_core::store::RecordedEvent,
        ) -> bool {
            ::es_core::__private::on_matches::<E>(event)
        }
    }
}

/// The body of `handle` over `event: &RecordedEvent`: the first handler whose type matches gets
/// the decoded event, as `Self::method(self, &recorded, #rest)`, and its outcome is returned;
/// `Ok(())` when none matches.
pub(crate) fn handle_body(handlers: &[OnHandler], rest: &TokenStream) -> TokenStream {
    let branches = handlers.iter().map(|h| {
        let (ty, method) = (&h.ty, &h.method);
        let (matches, decode) = (
            quote_spanned!(ty.span()=> matches::<#ty>),
            quote_spanned!(ty.span()=> decode::<#ty>),
        );
        let outcome = call_over(
            quote!(::es_core::projection::HandlerOutcome::into_outcome),
            quote!(Self::#method(self, &recorded #rest)),
            &h.output,
        );
        quote! {
            if #matches(event) {
                let recorded = #decode(event)?;
                return #outcome;
            }
        }
    });
    let matches = matches_fn();
    quote! {
        #matches
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
        ::core::result::Result::Ok(())
    }
}
