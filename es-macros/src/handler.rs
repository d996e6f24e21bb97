//! What the handler macros (`#[command]`, `#[apply]`, `#[on]`) need to know about a method's
//! signature, and the checks they share.

use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, GenericArgument, Ident, PatType, PathArguments, Signature, Type};

use crate::attr::ArgSet;
use crate::diagnostics::Diagnostics;

/// How a method takes `self`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Receiver {
    /// `&self` (or `self: &Self`).
    Ref,
    /// `&mut self` (or `self: &mut Self`).
    RefMut,
    /// `self`, `mut self`, `self: Box<Self>`, ...
    Other,
    /// An associated function without `self`.
    None,
}

/// The receiver of a method.
pub(crate) fn receiver(sig: &Signature) -> (Receiver, Option<&syn::Receiver>) {
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) => {
            let kind = match &*r.ty {
                Type::Reference(reference) if is_self(&reference.elem) => {
                    if reference.mutability.is_some() {
                        Receiver::RefMut
                    } else {
                        Receiver::Ref
                    }
                }
                _ => Receiver::Other,
            };
            (kind, Some(r))
        }
        _ => (Receiver::None, None),
    }
}

fn is_self(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self"))
}

/// The parameters of a method other than its receiver.
pub(crate) fn parameters(sig: &Signature) -> Vec<&PatType> {
    sig.inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect()
}

/// The identifier naming a type such as `Deposit` or `bank::Deposit` (its last path segment),
/// or `None` for a type that is not a plain path.
pub(crate) fn type_ident(ty: &Type) -> Option<&Ident> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| &s.ident),
        Type::Group(g) => type_ident(&g.elem),
        Type::Paren(p) => type_ident(&p.elem),
        _ => None,
    }
}

/// A type with groups and parentheses removed, compared by its tokens.
pub(crate) fn type_key(ty: &Type) -> String {
    match ty {
        Type::Group(g) => type_key(&g.elem),
        Type::Paren(p) => type_key(&p.elem),
        _ => quote::quote!(#ty).to_string(),
    }
}

/// A type as a user would write it, for messages (`Recorded<C>`, not `Recorded < C >`).
pub(crate) fn type_display(ty: &Type) -> String {
    let mut text = quote::quote!(#ty).to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" :: ", "::"),
        (":: ", "::"),
        ("& ", "&"),
        (" ,", ","),
        ("( ", "("),
        (" )", ")"),
    ] {
        text = text.replace(from, to);
    }
    text
}

/// Checks what no handler may be: `async`, `unsafe`, generic, variadic.
pub(crate) fn check_plain(sig: &Signature, attribute: &str, diagnostics: &mut Diagnostics) {
    if let Some(token) = &sig.asyncness {
        diagnostics.error(
            token,
            format!(
                "`#[{attribute}]` handlers must be synchronous and pure: remove `async` \
                 (do any I/O before dispatching, and pass its result in the command)"
            ),
        );
    }
    if let Some(token) = &sig.unsafety {
        diagnostics.error(
            token,
            format!("`#[{attribute}]` handlers cannot be `unsafe`: remove `unsafe`"),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let tokens = if sig.generics.params.is_empty() {
            sig.generics.where_clause.span()
        } else {
            sig.generics.span()
        };
        diagnostics.push(syn::Error::new(
            tokens,
            format!(
                "`#[{attribute}]` handlers cannot be generic: each handler takes one concrete type"
            ),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        diagnostics.error(
            variadic,
            format!("`#[{attribute}]` handlers cannot be variadic"),
        );
    }
}

/// Removes the attributes named in `names` from `attrs` and returns them, in order.
pub(crate) fn take_helpers(attrs: &mut Vec<Attribute>, names: &[&str]) -> Vec<Attribute> {
    let mut taken = Vec::new();
    attrs.retain(|attr| {
        if names.iter().any(|name| attr.path().is_ident(name)) {
            taken.push(attr.clone());
            false
        } else {
            true
        }
    });
    taken
}

/// Checks that a helper attribute such as `#[command]` has no arguments.
pub(crate) fn check_no_arguments(attr: &Attribute, diagnostics: &mut Diagnostics) {
    let name = attr.path().to_token_stream().to_string();
    ArgSet::new(name, &[]).parse_attribute(attr, diagnostics, |_, _| {});
}

/// `E` of `&Recorded<E>` (any path ending in `Recorded`).
pub(crate) fn recorded_event(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_none() => {
            recorded_inner(&reference.elem)
        }
        _ => None,
    }
}

/// `E` of `Recorded<E>` (any path ending in `Recorded`).
pub(crate) fn recorded_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Recorded" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(ty)] => Some(ty),
        _ => None,
    }
}

/// Compile-time checks that no stored event matches two `#[on]` handlers, given as
/// `(event type, method)`: per pair, their stored names (aliases included) must not overlap,
/// unless both are the event enums of two different aggregates (the stream's aggregate type
/// tells them apart). Each pair is its own constant, so every clash is reported, at the second
/// type, naming both types; `handlers_clause(first, second)` names the two methods for the
/// macro at hand.
pub(crate) fn distinct_on_names<'a>(
    handlers: &[(&'a Type, &'a Ident)],
    handlers_clause: impl Fn(&Ident, &Ident) -> String,
) -> proc_macro2::TokenStream {
    let mut checks = Vec::new();
    for (j, (second_ty, second_method)) in handlers.iter().enumerate() {
        for (first_ty, first_method) in &handlers[..j] {
            let message = format!(
                "`{}` and `{}` share a stored event name, so one stored event would match two \
                 {}: handle it in one of them, or, if these are different events, give one of \
                 them another `#[event(name = \"...\")]`",
                type_display(first_ty),
                type_display(second_ty),
                handlers_clause(first_method, second_method),
            );
            let (a, b) = (*first_ty, *second_ty);
            checks.push(quote::quote_spanned! {b.span()=>
                const _: () = if ::es_core::__private::on_types_clash::<#a, #b>() {
                    ::core::panic!(#message);
                };
            });
        }
    }
    quote::quote!(#(#checks)*)
}
