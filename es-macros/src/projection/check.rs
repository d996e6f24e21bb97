//! Validates the `#[on]` methods of a projection into a [`Plan`].

use proc_macro2::Span;
use quote::ToTokens;
use syn::{Ident, LitStr, ReturnType, Signature, Type};

use super::parse::Args;
use crate::diagnostics::Diagnostics;
use crate::handler::{
    self, Receiver, check_no_arguments, check_plain, recorded_event, recorded_inner, type_display,
    type_key,
};
use crate::inherent::InherentImpl;

/// One `#[on]` method.
pub(super) struct Handler {
    /// The method.
    pub(super) method: Ident,
    /// The event type `E` of `&Recorded<E>`.
    pub(super) ty: Type,
    /// The return type as written, or the method name when there is none (for the outcome
    /// conversion).
    pub(super) output: proc_macro2::TokenStream,
}

/// Everything expansion needs.
pub(super) struct Plan {
    /// The projection type.
    pub(super) ident: Ident,
    /// `Projection::NAME` (a placeholder after errors).
    pub(super) name: LitStr,
    /// The handlers, one per event type.
    pub(super) handlers: Vec<Handler>,
    /// `aggregate = "..."`, if given.
    pub(super) aggregate: Option<LitStr>,
    /// `filter = path`, if given.
    pub(super) filter: Option<syn::Path>,
}

/// Validates the input.
pub(super) fn check(args: Args, input: &InherentImpl, diagnostics: &mut Diagnostics) -> Plan {
    let mut handlers: Vec<Handler> = Vec::new();
    for method in &input.methods {
        for attr in &method.attrs {
            check_no_arguments(attr, diagnostics);
        }
        for attr in method.attrs.iter().skip(1) {
            diagnostics.error(attr, "duplicate attribute: remove this one");
        }
        let Some(sig) = &method.sig else {
            for attr in &method.attrs {
                diagnostics.error(
                    attr,
                    "`#[on]` goes on methods of the `#[projection]` impl block",
                );
            }
            continue;
        };
        let Some(handler) = check_handler(sig, diagnostics) else {
            continue;
        };
        if let Some(first) = handlers
            .iter()
            .find(|h| type_key(&h.ty) == type_key(&handler.ty))
        {
            diagnostics.error(
                &handler.ty,
                format!(
                    "two `#[on]` handlers for the event `{}`: `{}` and `{}`; merge them into one",
                    type_display(&handler.ty),
                    first.method,
                    handler.method
                ),
            );
            continue;
        }
        handlers.push(handler);
    }
    Plan {
        ident: input.ident.clone(),
        name: args
            .name
            .unwrap_or_else(|| LitStr::new("", Span::call_site())),
        aggregate: args.aggregate,
        filter: args.filter,
        handlers,
    }
}

fn check_handler(sig: &Signature, diagnostics: &mut Diagnostics) -> Option<Handler> {
    let example = format!("`fn {}(&mut self, e: &Recorded<MyEvent>)`", sig.ident);
    check_plain(sig, "on", diagnostics);
    match handler::receiver(sig) {
        (Receiver::RefMut, _) => {}
        (_, Some(r)) => diagnostics.error(
            r,
            format!(
                "an `#[on]` handler takes `&mut self` (it folds the event into the read \
                 model): {example}"
            ),
        ),
        (_, None) => diagnostics.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!(
                "an `#[on]` handler is a method: add `&mut self` as its first parameter, {example}"
            ),
        )),
    }
    let parameters = handler::parameters(sig);
    let parameter = match parameters.as_slice() {
        [] => {
            diagnostics.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!(
                    "an `#[on]` handler takes the recorded event as its one argument: {example}"
                ),
            ));
            return None;
        }
        [first, rest @ ..] => {
            if let Some(extra) = rest.first() {
                diagnostics.error(
                    extra,
                    format!("an `#[on]` handler takes exactly one argument, the recorded event: {example}"),
                );
            }
            first
        }
    };
    let Some(ty) = recorded_event(&parameter.ty) else {
        let ty = &parameter.ty;
        let event = match &**ty {
            Type::Reference(r) => recorded_inner(&r.elem).unwrap_or(&r.elem),
            other => recorded_inner(other).unwrap_or(other),
        };
        diagnostics.error(
            ty,
            format!(
                "an `#[on]` handler takes the event as `&Recorded<MyEvent>` (the typed view of a \
                 stored event, with its position, stream and metadata): write `e: &Recorded<{}>`",
                type_display(event)
            ),
        );
        return None;
    };
    let output = match &sig.output {
        ReturnType::Default => sig.ident.to_token_stream(),
        ReturnType::Type(_, ty) => ty.to_token_stream(),
    };
    Some(Handler {
        method: sig.ident.clone(),
        ty: ty.clone(),
        output,
    })
}
