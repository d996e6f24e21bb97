//! Validates the `#[on]` methods of a projection into a [`Plan`].

use syn::{Ident, LitStr, Signature};

use super::parse::{Args, MACRO};
use crate::diagnostics::Diagnostics;
use crate::handler::{self, check_no_arguments};
use crate::inherent::InherentImpl;
use crate::on::{self, OnHandler};

/// Everything expansion needs.
pub(super) struct Plan {
    /// The projection type.
    pub(super) ident: Ident,
    /// `Projection::NAME` (a placeholder after errors).
    pub(super) name: LitStr,
    /// The handlers, one per event type.
    pub(super) handlers: Vec<OnHandler>,
    /// `aggregate = "..."`, if given.
    pub(super) aggregate: Option<LitStr>,
    /// `filter = path`, if given.
    pub(super) filter: Option<syn::Path>,
    /// `partition_by = ...`, if given.
    pub(super) partition_by: Option<super::parse::PartitionBy>,
}

/// Validates the input.
pub(super) fn check(args: Args, input: &InherentImpl, diagnostics: &mut Diagnostics) -> Plan {
    let mut handlers = Vec::new();
    on::for_each_method(input, &MACRO.info, diagnostics, |attr, sig, diagnostics| {
        check_no_arguments(attr, diagnostics);
        if let Some(handler) = check_handler(sig, diagnostics) {
            on::push_handler(&mut handlers, handler, diagnostics);
        }
    });
    Plan {
        ident: input.ident.clone(),
        name: args.name,
        aggregate: args.aggregate,
        filter: args.filter,
        partition_by: args.partition_by,
        handlers,
    }
}

fn check_handler(sig: &Signature, diagnostics: &mut Diagnostics) -> Option<OnHandler> {
    let example = format!("`fn {}(&mut self, e: &Recorded<MyEvent>)`", sig.ident);
    on::check_method(
        sig,
        "on",
        (
            "an `#[on]` handler",
            "it folds the event into the read model",
        ),
        &example,
        diagnostics,
    );
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
    on::on_handler(
        sig,
        "on",
        &parameter.ty,
        "the typed view of a stored event, with its position, stream and metadata",
        diagnostics,
    )
}
