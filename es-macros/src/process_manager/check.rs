//! Validates the handlers of a process manager into a [`Plan`].

use proc_macro2::Span;
use quote::ToTokens;
use syn::{Attribute, Ident, LitStr, Meta, Path, ReturnType, Signature, Type};

use super::parse::Args;
use crate::diagnostics::Diagnostics;
use crate::handler::{
    self, Receiver, check_no_arguments, check_plain, recorded_event, recorded_inner, type_display,
    type_key,
};
use crate::inherent::InherentImpl;

/// One `#[on]` or `#[on(start)]` method.
pub(super) struct Handler {
    /// The method.
    pub(super) method: Ident,
    /// The event type `E` of `&Recorded<E>`.
    pub(super) ty: Type,
    /// The return type as written, or the method name when there is none.
    pub(super) output: proc_macro2::TokenStream,
    /// Whether it is `#[on(start)]`.
    pub(super) start: bool,
}

/// The `#[rejected]` method.
pub(super) struct Rejected {
    /// The method.
    pub(super) method: Ident,
    /// The return type as written, or the method name when there is none.
    pub(super) output: proc_macro2::TokenStream,
}

/// Everything expansion needs.
pub(super) struct Plan {
    /// The state type.
    pub(super) ident: Ident,
    /// `ProcessManager::NAME` (a placeholder after errors).
    pub(super) name: LitStr,
    /// `key = f`, if given.
    pub(super) key: Option<Path>,
    /// The event handlers.
    pub(super) handlers: Vec<Handler>,
    /// The rejection handler, if any.
    pub(super) rejected: Option<Rejected>,
}

/// Validates the input.
pub(super) fn check(args: Args, input: &InherentImpl, diagnostics: &mut Diagnostics) -> Plan {
    let mut handlers: Vec<Handler> = Vec::new();
    let mut rejected: Option<Rejected> = None;
    let mut failed = false;
    for method in &input.methods {
        for attr in method.attrs.iter().skip(1) {
            diagnostics.error(attr, "duplicate attribute: remove this one");
        }
        let Some(first) = method.attrs.first() else {
            continue;
        };
        let Some(sig) = &method.sig else {
            diagnostics.error(
                first,
                "`#[on]` and `#[rejected]` go on methods of the `#[process_manager]` impl block",
            );
            continue;
        };
        if method.is("rejected") {
            check_no_arguments(first, diagnostics);
            let Some(handler) = check_rejected(sig, diagnostics) else {
                failed = true;
                continue;
            };
            if let Some(earlier) = &rejected {
                diagnostics.error(
                    first,
                    format!(
                        "two `#[rejected]` handlers: `{}` and `{}`; a process manager has one, \
                         which gets every rejected command of the instance (match on \
                         `r.aggregate_type` or `r.command_id` to tell them apart)",
                        earlier.method, handler.method
                    ),
                );
                continue;
            }
            rejected = Some(handler);
            continue;
        }
        let Some(start) = on_argument(first, diagnostics) else {
            failed = true;
            continue;
        };
        let Some(handler) = check_handler(sig, start, diagnostics) else {
            failed = true;
            continue;
        };
        if let Some(earlier) = handlers
            .iter()
            .find(|h| type_key(&h.ty) == type_key(&handler.ty))
        {
            diagnostics.error(
                &handler.ty,
                format!(
                    "two `#[on]` handlers for the event `{}`: `{}` and `{}`; merge them into one",
                    type_display(&handler.ty),
                    earlier.method,
                    handler.method
                ),
            );
            continue;
        }
        handlers.push(handler);
    }
    if !failed && !handlers.iter().any(|h| h.start) {
        diagnostics.error(
            &input.ident,
            format!(
                "the process manager `{}` has no `#[on(start)]` handler, so no instance is ever \
                 created: mark the handler of the event that begins a workflow with \
                 `#[on(start)]` (plain `#[on]` handlers only continue an instance)",
                input.ident
            ),
        );
    }
    Plan {
        ident: input.ident.clone(),
        name: args
            .name
            .unwrap_or_else(|| LitStr::new("", Span::call_site())),
        key: args.key,
        handlers,
        rejected,
    }
}

/// Whether `#[on]` is `#[on(start)]`; anything else in the parentheses is reported (`None`).
fn on_argument(attr: &Attribute, diagnostics: &mut Diagnostics) -> Option<bool> {
    match &attr.meta {
        Meta::Path(_) => Some(false),
        Meta::List(list) => {
            let tokens = list.tokens.to_string();
            if tokens.trim() == "start" {
                Some(true)
            } else {
                diagnostics.error(
                    &list.tokens,
                    "`#[on]` takes no argument except `start`: `#[on(start)]` for an event that \
                     begins an instance, `#[on]` for one that continues it",
                );
                None
            }
        }
        Meta::NameValue(nv) => {
            diagnostics.error(nv, "`#[on]` takes no value: `#[on(start)]` or `#[on]`");
            None
        }
    }
}

fn check_receiver(sig: &Signature, example: &str, diagnostics: &mut Diagnostics) {
    match handler::receiver(sig) {
        (Receiver::RefMut, _) => {}
        (_, Some(r)) => diagnostics.error(
            r,
            format!("a process manager handler takes `&mut self` (the instance's state): {example}"),
        ),
        (_, None) => diagnostics.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!("a process manager handler is a method: add `&mut self` as its first parameter, {example}"),
        )),
    }
}

/// Checks the two arguments `(first, out: &mut Commands)`; returns the first's type.
fn two_arguments<'s>(
    sig: &'s Signature,
    attribute: &str,
    example: &str,
    diagnostics: &mut Diagnostics,
) -> Option<&'s Type> {
    let parameters = handler::parameters(sig);
    match parameters.as_slice() {
        [first, second] => {
            if !is_commands(&second.ty) {
                diagnostics.error(
                    &second.ty,
                    format!(
                        "the second argument of {} handler is where it sends commands: \
                         `out: &mut Commands`, {example}",
                        article(attribute)
                    ),
                );
                return None;
            }
            Some(&first.ty)
        }
        [_, _, extra, ..] => {
            diagnostics.error(
                extra,
                format!(
                    "{} handler takes exactly two arguments: {example}",
                    article(attribute)
                ),
            );
            None
        }
        _ => {
            diagnostics.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!(
                    "{} handler takes two arguments: {example}",
                    article(attribute)
                ),
            ));
            None
        }
    }
}

/// "an `#[on]`" or "a `#[rejected]`".
fn article(attribute: &str) -> String {
    let a = if attribute.starts_with("on") {
        "an"
    } else {
        "a"
    };
    format!("{a} `#[{attribute}]`")
}

fn output(sig: &Signature) -> proc_macro2::TokenStream {
    match &sig.output {
        ReturnType::Default => sig.ident.to_token_stream(),
        ReturnType::Type(_, ty) => ty.to_token_stream(),
    }
}

fn check_handler(sig: &Signature, start: bool, diagnostics: &mut Diagnostics) -> Option<Handler> {
    let attribute = if start { "on(start)" } else { "on" };
    let example = format!(
        "`fn {}(&mut self, e: &Recorded<MyEvent>, out: &mut Commands)`",
        sig.ident
    );
    check_plain(sig, attribute, diagnostics);
    check_receiver(sig, &example, diagnostics);
    let first = two_arguments(sig, attribute, &example, diagnostics)?;
    let Some(ty) = recorded_event(first) else {
        let event = match first {
            Type::Reference(r) => recorded_inner(&r.elem).unwrap_or(&r.elem),
            other => recorded_inner(other).unwrap_or(other),
        };
        diagnostics.error(
            first,
            format!(
                "{} handler takes the event as `&Recorded<MyEvent>` (the typed view of a \
                 stored event): write `e: &Recorded<{}>`",
                article(attribute),
                type_display(event)
            ),
        );
        return None;
    };
    Some(Handler {
        method: sig.ident.clone(),
        ty: ty.clone(),
        output: output(sig),
        start,
    })
}

fn check_rejected(sig: &Signature, diagnostics: &mut Diagnostics) -> Option<Rejected> {
    let example = format!(
        "`fn {}(&mut self, r: &Rejection, out: &mut Commands)`",
        sig.ident
    );
    check_plain(sig, "rejected", diagnostics);
    check_receiver(sig, &example, diagnostics);
    let first = two_arguments(sig, "rejected", &example, diagnostics)?;
    let is_rejection = matches!(first, Type::Reference(r) if r.mutability.is_none() && last_ident(&r.elem).is_some_and(|i| i == "Rejection"));
    if !is_rejection {
        diagnostics.error(
            first,
            format!(
                "a `#[rejected]` handler takes the rejected command as `&Rejection`: {example}"
            ),
        );
        return None;
    }
    Some(Rejected {
        method: sig.ident.clone(),
        output: output(sig),
    })
}

fn last_ident(ty: &Type) -> Option<&Ident> {
    match ty {
        Type::Path(path) => path.path.segments.last().map(|s| &s.ident),
        _ => None,
    }
}

/// Whether `ty` is `&mut Commands` (any path ending in `Commands`).
fn is_commands(ty: &Type) -> bool {
    matches!(ty, Type::Reference(r) if r.mutability.is_some() && last_ident(&r.elem).is_some_and(|i| i == "Commands"))
}
