//! Validates the handlers of a process manager into a [`Plan`].

use syn::{Attribute, Ident, LitStr, Meta, Path, Signature, Type};

use super::parse::{Args, MACRO};
use crate::diagnostics::Diagnostics;
use crate::handler::{self, check_no_arguments, recorded_inner, type_display, type_key};
use crate::inherent::InherentImpl;
use crate::on::{self, OnHandler, article};

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
    /// The event handlers, `#[on(start)]` and `#[on]`.
    pub(super) handlers: Vec<OnHandler>,
    /// The event types of the `#[on(start)]` handlers.
    pub(super) starts: Vec<Type>,
    /// The rejection handler, if any.
    pub(super) rejected: Option<Rejected>,
    /// The `#[on(deadline)]` handlers; their `ty` is the deadline type `D` of `&D`.
    pub(super) deadlines: Vec<OnHandler>,
}

/// What `#[on(...)]` says about its handler.
#[derive(Clone, Copy, PartialEq, Eq)]
enum On {
    /// `#[on]`: an event that continues an instance.
    Continue,
    /// `#[on(start)]`: an event that may create one.
    Start,
    /// `#[on(deadline)]`: a deadline of the instance that fell due.
    Deadline,
}

/// Validates the input.
pub(super) fn check(args: Args, input: &InherentImpl, diagnostics: &mut Diagnostics) -> Plan {
    let mut handlers = Vec::new();
    let mut starts = Vec::new();
    let mut rejected: Option<Rejected> = None;
    let mut deadlines: Vec<OnHandler> = Vec::new();
    let mut failed = false;
    on::for_each_method(
        input,
        &MACRO.info,
        diagnostics,
        |first, sig, diagnostics| {
            if first.path().is_ident("rejected") {
                check_no_arguments(first, diagnostics);
                let Some(handler) = check_rejected(sig, diagnostics) else {
                    failed = true;
                    return;
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
                    return;
                }
                rejected = Some(handler);
                return;
            }
            let Some(on) = on_argument(first, diagnostics) else {
                failed = true;
                return;
            };
            if on == On::Deadline {
                match check_deadline(sig, diagnostics) {
                    Some(handler) => push_deadline(&mut deadlines, handler, diagnostics),
                    None => failed = true,
                }
                return;
            }
            let start = on == On::Start;
            let Some(handler) = check_handler(sig, start, diagnostics) else {
                failed = true;
                return;
            };
            let ty = handler.ty.clone();
            if on::push_handler(&mut handlers, handler, diagnostics) && start {
                starts.push(ty);
            }
        },
    );
    if !failed && starts.is_empty() {
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
        name: args.name,
        key: args.key,
        handlers,
        starts,
        rejected,
        deadlines,
    }
}

/// What `#[on]`, `#[on(start)]` or `#[on(deadline)]` says; anything else in the parentheses
/// is reported (`None`).
fn on_argument(attr: &Attribute, diagnostics: &mut Diagnostics) -> Option<On> {
    match &attr.meta {
        Meta::Path(_) => Some(On::Continue),
        Meta::List(list) => match list.tokens.to_string().trim() {
            "start" => Some(On::Start),
            "deadline" => Some(On::Deadline),
            _ => {
                diagnostics.error(
                    &list.tokens,
                    "`#[on]` takes no argument except `start` or `deadline`: `#[on(start)]` for an \
                     event that begins an instance, `#[on]` for one that continues it, \
                     `#[on(deadline)]` for a deadline the instance scheduled",
                );
                None
            }
        },
        Meta::NameValue(nv) => {
            diagnostics.error(
                nv,
                "`#[on]` takes no value: `#[on(start)]`, `#[on(deadline)]` or `#[on]`",
            );
            None
        }
    }
}

/// Checks `#[on(deadline)] fn expired(&mut self, d: &MyDeadline, out: &mut Commands)`.
fn check_deadline(sig: &Signature, diagnostics: &mut Diagnostics) -> Option<OnHandler> {
    let (first, _) = first_argument(sig, "on(deadline)", "d: &MyDeadline", diagnostics)?;
    let deadline = match first {
        Type::Reference(r) if r.mutability.is_none() && recorded_inner(&r.elem).is_none() => {
            &*r.elem
        }
        other => {
            let inner = on::meant_type(other);
            diagnostics.error(
                other,
                format!(
                    "an `#[on(deadline)]` handler takes the deadline itself, by reference (it is \
                     not a stored event): write `d: &{}`",
                    type_display(inner)
                ),
            );
            return None;
        }
    };
    Some(OnHandler {
        method: sig.ident.clone(),
        ty: deadline.clone(),
        output: on::returned(sig),
    })
}

/// Adds a deadline handler, or reports it when an earlier one takes the same type.
fn push_deadline(
    deadlines: &mut Vec<OnHandler>,
    handler: OnHandler,
    diagnostics: &mut Diagnostics,
) {
    if let Some(earlier) = deadlines
        .iter()
        .find(|h| type_key(&h.ty) == type_key(&handler.ty))
    {
        diagnostics.error(
            &handler.ty,
            format!(
                "two `#[on(deadline)]` handlers for the deadline `{}`: `{}` and `{}`; merge them \
                 into one",
                type_display(&handler.ty),
                earlier.method,
                handler.method
            ),
        );
        return;
    }
    deadlines.push(handler);
}

/// The checks every handler of a process manager gets: see [`on::check_method`].
fn check_method(sig: &Signature, attribute: &str, example: &str, diagnostics: &mut Diagnostics) {
    on::check_method(
        sig,
        attribute,
        ("a process manager handler", "the instance's state"),
        example,
        diagnostics,
    );
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

/// The checks every handler gets (see [`check_method`] and [`two_arguments`]), with the right
/// signature shown as `fn method(&mut self, {first}, out: &mut Commands)`; returns the first
/// argument's type and that example.
fn first_argument<'s>(
    sig: &'s Signature,
    attribute: &str,
    first: &str,
    diagnostics: &mut Diagnostics,
) -> Option<(&'s Type, String)> {
    let example = format!("`fn {}(&mut self, {first}, out: &mut Commands)`", sig.ident);
    check_method(sig, attribute, &example, diagnostics);
    let first = two_arguments(sig, attribute, &example, diagnostics)?;
    Some((first, example))
}

fn check_handler(sig: &Signature, start: bool, diagnostics: &mut Diagnostics) -> Option<OnHandler> {
    let attribute = if start { "on(start)" } else { "on" };
    let (first, _) = first_argument(sig, attribute, "e: &Recorded<MyEvent>", diagnostics)?;
    on::on_handler(
        sig,
        attribute,
        first,
        "the typed view of a stored event",
        diagnostics,
    )
}

fn check_rejected(sig: &Signature, diagnostics: &mut Diagnostics) -> Option<Rejected> {
    let (first, example) = first_argument(sig, "rejected", "r: &Rejection", diagnostics)?;
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
        output: on::returned(sig),
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
