//! The checks of `#[on]` methods: the helper attributes of each marked item, the receiver, the
//! `&Recorded<E>` argument, and one handler per event type.

use quote::ToTokens;
use syn::{Attribute, Ident, ReturnType, Signature, Type};

use crate::diagnostics::Diagnostics;
use crate::handler::{
    self, Receiver, check_plain, recorded_event, recorded_inner, type_display, type_key,
};
use crate::inherent::{InherentImpl, MacroInfo};

/// One `#[on]` method.
pub(crate) struct OnHandler {
    /// The method.
    pub(crate) method: Ident,
    /// The event type `E` of `&Recorded<E>`.
    pub(crate) ty: Type,
    /// The return type as written, or the method name when there is none (for the outcome
    /// conversion).
    pub(crate) output: proc_macro2::TokenStream,
}

/// Calls `check` with the first helper attribute and the signature of every marked method of
/// the block, after reporting the helpers given twice and the helpers on an item that is not a
/// method.
pub(crate) fn for_each_method(
    input: &InherentImpl,
    info: &MacroInfo,
    diagnostics: &mut Diagnostics,
    mut check: impl FnMut(&Attribute, &Signature, &mut Diagnostics),
) {
    for method in &input.methods {
        for attr in method.attrs.iter().skip(1) {
            diagnostics.error(attr, "duplicate attribute: remove this one");
        }
        let Some(first) = method.attrs.first() else {
            continue;
        };
        let Some(sig) = &method.sig else {
            diagnostics.error(first, misplaced(info));
            continue;
        };
        check(first, sig, diagnostics);
    }
}

/// "`#[on]` goes on methods of the `#[projection]` impl block", or with every helper named.
fn misplaced(info: &MacroInfo) -> String {
    let helpers: Vec<String> = info.helpers.iter().map(|h| format!("`#[{h}]`")).collect();
    let verb = if helpers.len() == 1 { "goes" } else { "go" };
    format!(
        "{} {verb} on methods of the `#[{}]` impl block",
        helpers.join(" and "),
        info.name
    )
}

/// Checks what every handler of the block must be: not `async`, `unsafe`, generic or variadic
/// (see [`check_plain`]), and a method taking `&mut self`. `handler` names it in messages ("an
/// `#[on]` handler"), `state` says what `self` is, and `example` shows the right signature.
pub(crate) fn check_method(
    sig: &Signature,
    attribute: &str,
    (handler, state): (&str, &str),
    example: &str,
    diagnostics: &mut Diagnostics,
) {
    check_plain(sig, attribute, diagnostics);
    match handler::receiver(sig) {
        (Receiver::RefMut, _) => {}
        (_, Some(r)) => diagnostics.error(
            r,
            format!("{handler} takes `&mut self` ({state}): {example}"),
        ),
        (_, None) => diagnostics.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!("{handler} is a method: add `&mut self` as its first parameter, {example}"),
        )),
    }
}

/// The handler of `#[attribute] fn method(.., e: &Recorded<E>, ..)` given the type of its
/// event argument, or `None` after reporting a type that is not `&Recorded<E>`; `view` says
/// what `Recorded` is.
pub(crate) fn on_handler(
    sig: &Signature,
    attribute: &str,
    argument: &Type,
    view: &str,
    diagnostics: &mut Diagnostics,
) -> Option<OnHandler> {
    let Some(ty) = recorded_event(argument) else {
        let event = meant_type(argument);
        diagnostics.error(
            argument,
            format!(
                "{} handler takes the event as `&Recorded<MyEvent>` ({view}): write \
                 `e: &Recorded<{}>`",
                article(attribute),
                type_display(event)
            ),
        );
        return None;
    };
    Some(OnHandler {
        method: sig.ident.clone(),
        ty: ty.clone(),
        output: returned(sig),
    })
}

/// The type a handler's argument names, without the `&` and the `Recorded<..>` around it (what
/// a message suggests writing in their place).
pub(crate) fn meant_type(argument: &Type) -> &Type {
    match argument {
        Type::Reference(r) => recorded_inner(&r.elem).unwrap_or(&r.elem),
        other => recorded_inner(other).unwrap_or(other),
    }
}

/// Adds `handler` to `handlers`, or reports it when an earlier one handles the same type.
/// Returns whether it was added.
pub(crate) fn push_handler(
    handlers: &mut Vec<OnHandler>,
    handler: OnHandler,
    diagnostics: &mut Diagnostics,
) -> bool {
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
        return false;
    }
    handlers.push(handler);
    true
}

/// "an `#[on]`" or "a `#[rejected]`".
pub(crate) fn article(attribute: &str) -> String {
    let a = if attribute.starts_with("on") {
        "an"
    } else {
        "a"
    };
    format!("{a} `#[{attribute}]`")
}

/// The return type as written, or the method name when there is none: what the outcome
/// conversion is spanned over.
pub(crate) fn returned(sig: &Signature) -> proc_macro2::TokenStream {
    match &sig.output {
        ReturnType::Default => sig.ident.to_token_stream(),
        ReturnType::Type(_, ty) => ty.to_token_stream(),
    }
}
