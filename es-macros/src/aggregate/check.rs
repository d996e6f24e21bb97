//! Validates the `#[aggregate]` input into a [`Plan`], reporting every mistake at its tokens.

use quote::ToTokens;
use syn::{GenericArgument, Ident, LitStr, PathArguments, ReturnType, Signature, Type};

use super::parse::AggregateArgs;
use crate::diagnostics::Diagnostics;
use crate::handler::{
    self, Receiver, check_no_arguments, check_plain, type_display, type_ident, type_key,
};
use crate::inherent::{InherentImpl, MarkedMethod};

/// One `#[command]` method.
pub(super) struct Command {
    /// The method.
    pub(super) method: Ident,
    /// The command type.
    pub(super) ty: Type,
    /// Its variant in the command enum.
    pub(super) variant: Ident,
    /// The `R` of `Result<R, E>` (what is converted into events).
    pub(super) events: Option<Type>,
    /// The error type as written (`E` of `Result<R, E>`, or the whole return type of an alias
    /// like `Result<R>`), for the error conversion.
    pub(super) error_type: proc_macro2::TokenStream,
    /// `E` of `Result<R, E>` when it is written out.
    pub(super) written_error: Option<Type>,
}

/// One `#[apply]` method.
pub(super) struct Apply {
    /// The method.
    pub(super) method: Ident,
    /// The event type.
    pub(super) ty: Type,
    /// Its variant in the event enum.
    pub(super) variant: Ident,
}

/// Everything expansion needs. After errors, it still holds what could be read, for the
/// fallback stub.
pub(super) struct Plan {
    /// The aggregate type.
    pub(super) ident: Ident,
    /// `Aggregate::TYPE`.
    pub(super) type_name: LitStr,
    /// `Aggregate::Error`.
    pub(super) error: Type,
    /// Whether `error = ...` was written (else `error` is the default, `Infallible`).
    pub(super) error_written: bool,
    /// `{Type}Command`.
    pub(super) command_enum: Ident,
    /// `{Type}Event`.
    pub(super) event_enum: Ident,
    /// The commands, one per command type.
    pub(super) commands: Vec<Command>,
    /// The event appliers, one per event type.
    pub(super) applies: Vec<Apply>,
    /// `snapshot_version = n`, when given.
    pub(super) snapshot_version: Option<u32>,
    /// `keep = after_snapshot`.
    pub(super) keep_after_snapshot: bool,
}

/// Validates the input.
pub(super) fn check(
    args: AggregateArgs,
    input: &InherentImpl,
    diagnostics: &mut Diagnostics,
) -> Plan {
    let ident = input.ident.clone();
    let type_name = args
        .name
        .unwrap_or_else(|| LitStr::new(&snake_case(&ident.to_string()), ident.span()));
    let error = args
        .error
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::std::convert::Infallible));
    let command_enum = quote::format_ident!("{}Command", ident);
    let event_enum = quote::format_ident!("{}Event", ident);

    let mut commands: Vec<Command> = Vec::new();
    let mut applies: Vec<Apply> = Vec::new();
    for method in &input.methods {
        if !check_attributes(method, diagnostics) {
            continue;
        }
        let Some(sig) = &method.sig else { continue };
        if method.is("command") {
            if let Some(command) = check_command(sig, &command_enum, diagnostics) {
                push_unique(
                    &mut commands,
                    command,
                    |c| (&c.ty, &c.variant, &c.method),
                    "command",
                    &command_enum,
                    diagnostics,
                );
            }
        } else if let Some(apply) = check_apply(sig, &event_enum, diagnostics) {
            push_unique(
                &mut applies,
                apply,
                |a| (&a.ty, &a.variant, &a.method),
                "apply",
                &event_enum,
                diagnostics,
            );
        }
    }

    if args.error.is_none() {
        check_default_error(&commands, diagnostics);
    }

    Plan {
        ident,
        type_name,
        error,
        error_written: args.error.is_some(),
        command_enum,
        event_enum,
        commands,
        applies,
        snapshot_version: args.snapshot_version,
        keep_after_snapshot: args.keep_after_snapshot,
    }
}

/// Reports helper attributes with arguments, a helper given twice, `#[command]` together with
/// `#[apply]`, and helpers on items that are not methods. Returns whether the signature is
/// worth checking (not when the method's role is unclear).
fn check_attributes(method: &MarkedMethod, diagnostics: &mut Diagnostics) -> bool {
    for attr in &method.attrs {
        check_no_arguments(attr, diagnostics);
    }
    if method.sig.is_none() {
        for attr in &method.attrs {
            diagnostics.error(
                attr,
                "`#[command]` and `#[apply]` go on methods of the `#[aggregate]` impl block",
            );
        }
        return false;
    }
    let Some(first) = method.attrs.first() else {
        return false;
    };
    let mut clear = true;
    for attr in &method.attrs[1..] {
        if attr.path() == first.path() {
            diagnostics.error(attr, "duplicate attribute: remove this one");
        } else {
            diagnostics.error(
                attr,
                "a method is either a `#[command]` handler (decides events from a command) or an \
                 `#[apply]` handler (folds an event into the state), not both: split it in two",
            );
            clear = false;
        }
    }
    clear
}

fn check_command(
    sig: &Signature,
    command_enum: &Ident,
    diagnostics: &mut Diagnostics,
) -> Option<Command> {
    let example = format!(
        "`fn {}(&self, cmd: MyCommand) -> Result<MyEvent, MyError>`",
        sig.ident
    );
    check_plain(sig, "command", diagnostics);
    match handler::receiver(sig) {
        (Receiver::Ref, _) => {}
        (Receiver::RefMut, Some(r)) => diagnostics.error(
            r,
            "a `#[command]` handler takes `&self`, not `&mut self`: it decides events and never \
             changes the state (the `#[apply]` methods do that)",
        ),
        (_, Some(r)) => diagnostics.error(
            r,
            format!("a `#[command]` handler takes `&self` (the current state): {example}"),
        ),
        (_, None) => diagnostics.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!(
                "a `#[command]` handler is a method: add `&self` as its first parameter, \
                 {example}"
            ),
        )),
    }

    let parameters = handler::parameters(sig);
    let ty = match parameters.as_slice() {
        [parameter] => command_type(&parameter.ty, command_enum, diagnostics),
        [] => {
            diagnostics.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!("a `#[command]` handler takes the command as its one argument: {example}"),
            ));
            None
        }
        [first, rest @ ..] => {
            let mut error = syn::Error::new_spanned(
                rest[0],
                format!(
                    "a `#[command]` handler takes exactly one argument, the command; put \
                     everything it needs into the command type: {example}"
                ),
            );
            for extra in &rest[1..] {
                error.combine(syn::Error::new_spanned(extra, "another extra argument"));
            }
            diagnostics.push(error);
            command_type(&first.ty, command_enum, diagnostics)
        }
    };

    let mut written_error = None;
    let (events, error_type) = match &sig.output {
        ReturnType::Default => {
            diagnostics.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!(
                    "a `#[command]` handler returns `Result<Events, Error>`, where `Events` is \
                     one event, `Vec<_>` or `Option<_>` of events, `()` or a tuple of events: \
                     {example}"
                ),
            ));
            (None, proc_macro2::TokenStream::new())
        }
        ReturnType::Type(_, ty) => match result_arguments(ty) {
            Some((events, error)) => {
                written_error = error.cloned();
                (Some(events.clone()), error.unwrap_or(ty).to_token_stream())
            }
            None => {
                diagnostics.error(
                    ty,
                    format!(
                        "a `#[command]` handler returns `Result<Events, Error>` (the error is \
                         the command's rejection; an alias must be named `Result`): {example}"
                    ),
                );
                (None, ty.to_token_stream())
            }
        },
    };

    let ty = ty?;
    let variant = type_ident(&ty)?.clone();
    Some(Command {
        method: sig.ident.clone(),
        ty,
        variant,
        events,
        error_type,
        written_error,
    })
}

/// Without `error = ...` the aggregate's error is `Infallible`, which no other error converts
/// into: a handler that returns `Result<_, BankError>` gets one error, at `BankError`, saying to
/// add `error = BankError` (instead of rustc's "`From<BankError>` is not implemented for
/// `Infallible`"). Only the first such handler is reported: the one fix covers them all.
fn check_default_error(commands: &[Command], diagnostics: &mut Diagnostics) {
    let written = commands
        .iter()
        .filter_map(|c| c.written_error.as_ref().map(|e| (c, e)))
        .find(|(_, error)| type_ident(error).is_none_or(|ident| ident != "Infallible"));
    if let Some((command, error)) = written {
        let shown = type_display(error);
        diagnostics.error(
            error,
            format!(
                "`{}` returns the error `{shown}`, but this `#[aggregate]` has no `error = ...`, \
                 so its commands cannot fail (the error type defaults to \
                 `std::convert::Infallible`): add `error = {shown}` to the arguments, \
                 `#[aggregate(error = {shown})]`",
                command.method
            ),
        );
    }
}

/// The command type of a parameter, if it can be a variant of the command enum.
fn command_type(ty: &Type, command_enum: &Ident, diagnostics: &mut Diagnostics) -> Option<Type> {
    if let Type::Reference(reference) = ty {
        let inner = &reference.elem;
        diagnostics.error(
            ty,
            format!(
                "a `#[command]` handler takes the command by value, not by reference: \
                 `cmd: {}` (the command is moved into `{command_enum}`)",
                type_display(inner)
            ),
        );
        return None;
    }
    if type_ident(ty).is_none() {
        diagnostics.error(
            ty,
            format!(
                "the command must be a named struct or enum type (it becomes a variant of \
                 `{command_enum}`)"
            ),
        );
        return None;
    }
    Some(ty.clone())
}

/// `R` and (when written) `E` of a return type `Result<R, E>` (any path ending in `Result`).
fn result_arguments(ty: &Type) -> Option<(&Type, Option<&Type>)> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    let events = types.next()?;
    Some((events, types.next()))
}

fn check_apply(
    sig: &Signature,
    event_enum: &Ident,
    diagnostics: &mut Diagnostics,
) -> Option<Apply> {
    let example = format!("`fn {}(&mut self, e: &MyEvent)`", sig.ident);
    check_plain(sig, "apply", diagnostics);
    match handler::receiver(sig) {
        (Receiver::RefMut, _) => {}
        (_, Some(r)) => diagnostics.error(
            r,
            format!("an `#[apply]` handler takes `&mut self` (it folds the event into the state): {example}"),
        ),
        (_, None) => diagnostics.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!("an `#[apply]` handler is a method: add `&mut self` as its first parameter, {example}"),
        )),
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        let unit = matches!(&**ty, Type::Tuple(t) if t.elems.is_empty());
        if !unit {
            diagnostics.error(
                ty,
                "an `#[apply]` handler returns nothing: applying a recorded event cannot fail \
                 or produce anything; remove the return type (reject bad input in the \
                 `#[command]` handler instead)",
            );
        }
    }

    let parameters = handler::parameters(sig);
    let ty = match parameters.as_slice() {
        [] => {
            diagnostics.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!("an `#[apply]` handler takes the event by reference as its one argument: {example}"),
            ));
            return None;
        }
        [first, rest @ ..] => {
            if let Some(extra) = rest.first() {
                diagnostics.error(
                    extra,
                    format!(
                        "an `#[apply]` handler takes exactly one argument, the event: {example}"
                    ),
                );
            }
            &first.ty
        }
    };
    let ty = match &**ty {
        Type::Reference(reference) if reference.mutability.is_none() => (*reference.elem).clone(),
        Type::Reference(reference) => {
            let inner = &reference.elem;
            diagnostics.error(
                ty,
                format!(
                    "an `#[apply]` handler takes the event by shared reference: `e: &{}`",
                    type_display(inner)
                ),
            );
            return None;
        }
        other => {
            diagnostics.error(
                other,
                format!(
                    "an `#[apply]` handler takes the event by reference: `e: &{}`",
                    type_display(other)
                ),
            );
            return None;
        }
    };
    let Some(variant) = type_ident(&ty).cloned() else {
        diagnostics.error(
            &ty,
            format!(
                "the event must be a named struct or enum type with `#[derive(Event)]` (it \
                 becomes a variant of `{event_enum}`)"
            ),
        );
        return None;
    };
    if let Some(inner) = generic_argument(&ty).filter(|_| variant == "Recorded") {
        diagnostics.error(
            &ty,
            format!(
                "an `#[apply]` handler takes the event itself, `e: &{}`: the state is folded \
                 from payloads only (`Recorded<_>`, with the position and metadata, is what the \
                 `#[on]` handlers of a `#[projection]` take)",
                type_display(inner)
            ),
        );
        return None;
    }
    Some(Apply {
        method: sig.ident.clone(),
        ty,
        variant,
    })
}

/// Adds a handler unless another handles the same type (or one with the same variant name).
fn push_unique<T>(
    handlers: &mut Vec<T>,
    handler: T,
    parts: impl Fn(&T) -> (&Type, &Ident, &Ident),
    attribute: &str,
    enumeration: &Ident,
    diagnostics: &mut Diagnostics,
) {
    let (ty, variant, method) = parts(&handler);
    for existing in handlers.iter() {
        let (other_ty, other_variant, other_method) = parts(existing);
        if type_key(ty) == type_key(other_ty) {
            let what = if attribute == "command" {
                "command"
            } else {
                "event"
            };
            diagnostics.error(
                ty,
                format!(
                    "two `#[{attribute}]` handlers for the {what} `{}`: `{other_method}` and \
                     `{method}`; keep one",
                    type_display(ty)
                ),
            );
            return;
        }
        if variant == other_variant
            && (generic_argument(ty).is_some() || generic_argument(other_ty).is_some())
        {
            // `Vec<Deposit>` and `Vec<Withdraw>`: `Vec` cannot be renamed, so the fix is a
            // named type for each; one error, at the second.
            let what = if attribute == "command" {
                "command"
            } else {
                "event"
            };
            let inner = generic_argument(ty)
                .and_then(type_ident)
                .map_or_else(String::new, ToString::to_string);
            diagnostics.error(
                ty,
                format!(
                    "`{}` and `{}` would both be the variant `{enumeration}::{variant}`: a {what} \
                     is one named type, and `{variant}` names neither; wrap each in a named \
                     {what} struct, like `pub struct {inner}{variant}(pub {});`",
                    type_display(other_ty),
                    type_display(ty),
                    type_display(ty),
                ),
            );
            return;
        }
        if variant == other_variant {
            diagnostics.error(
                ty,
                format!(
                    "two different types are named `{variant}`, `{}` (in `{other_method}`) and \
                     `{}`: both would be the variant `{enumeration}::{variant}`; rename one of \
                     them",
                    type_display(other_ty),
                    type_display(ty),
                ),
            );
            return;
        }
    }
    handlers.push(handler);
}

/// The first generic type argument of a path type (`Deposit` of `Vec<Deposit>`), if any.
fn generic_argument(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let PathArguments::AngleBracketed(args) = &path.path.segments.last()?.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    })
}

/// `BankAccount` -> `bank_account`, `HTTPServer` -> `http_server`.
pub(super) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let previous = i.checked_sub(1).and_then(|j| chars.get(j));
            let next = chars.get(i + 1);
            let boundary = match previous {
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_uppercase() => next.is_some_and(|n| n.is_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn snake_case_names() {
        assert_eq!(snake_case("BankAccount"), "bank_account");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("Order2Go"), "order2_go");
        assert_eq!(snake_case("Account"), "account");
        assert_eq!(snake_case("Raw_Name"), "raw_name");
    }
}
