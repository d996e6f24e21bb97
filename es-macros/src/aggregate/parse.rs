//! Reads `#[aggregate(...)] impl Type { ... }`: the arguments, the type, and every method marked
//! `#[command]` or `#[apply]`, with the helper attributes removed.

use proc_macro2::TokenStream;
use syn::{LitStr, Type};

use crate::attr::ArgSet;
use crate::diagnostics::Diagnostics;
use crate::inherent::{self, InherentImpl, MacroInfo};

/// How `#[aggregate]` is named in messages and which helpers it reads.
const INFO: MacroInfo = MacroInfo {
    name: "aggregate",
    helpers: &["command", "apply"],
    example: "#[aggregate] impl MyAggregate { #[command] fn ... #[apply] fn ... }",
};

/// The arguments of `#[aggregate(...)]`.
pub(super) struct AggregateArgs {
    /// `name = "..."`.
    pub(super) name: Option<LitStr>,
    /// `error = Type`.
    pub(super) error: Option<Type>,
    /// `snapshot_version = n`.
    pub(super) snapshot_version: Option<u32>,
    /// `keep = after_snapshot` (`true`) or `keep = all` (`false`, the default).
    pub(super) keep_after_snapshot: bool,
}

/// Parses the attribute arguments, reporting unknown, duplicate and malformed ones.
pub(super) fn parse_args(attr: TokenStream, diagnostics: &mut Diagnostics) -> AggregateArgs {
    let mut args = AggregateArgs {
        name: None,
        error: None,
        snapshot_version: None,
        keep_after_snapshot: false,
    };
    ArgSet::new("aggregate", &["name", "error", "snapshot_version", "keep"]).parse_tokens(
        attr,
        diagnostics,
        |value, diagnostics| match value.key().as_str() {
            "name" => args.name = value.name("bank_account", diagnostics),
            "error" => {
                args.error = value.type_("the command error type", "error = BankError", diagnostics)
            }
            "snapshot_version" => {
                match value.u32("a positive integer", "snapshot_version = 2", diagnostics) {
                    Some((lit, 0)) => diagnostics.error(
                        lit,
                        "snapshot versions start at 1 (the default): `snapshot_version = 0` is \
                         not allowed",
                    ),
                    Some((_, v)) => args.snapshot_version = Some(v),
                    None => {}
                }
            }
            "keep" => {
                let example = "keep = after_snapshot";
                let what = "`after_snapshot` or `all`";
                match value.parse::<syn::Ident>(what, example, diagnostics) {
                    Some(kept) if kept == "after_snapshot" => args.keep_after_snapshot = true,
                    Some(kept) if kept == "all" => args.keep_after_snapshot = false,
                    Some(other) => diagnostics.error(
                        &other,
                        format!(
                            "`keep` in `#[aggregate]` takes {what}, like `{example}` (the events \
                             a snapshot covers are removed) or `keep = all` (the default)"
                        ),
                    ),
                    None => {}
                }
            }
            _ => {}
        },
    );
    args
}

/// Parses the impl block (see [`inherent::parse`]).
pub(super) fn parse_item(
    item: TokenStream,
    diagnostics: &mut Diagnostics,
) -> Result<InherentImpl, TokenStream> {
    inherent::parse(item, &INFO, diagnostics)
}

/// Adds the marked methods of the type's other `#[aggregate]` blocks (see
/// [`super::siblings`]) to the first block's, for generating the items of all of them.
pub(super) fn merge(input: InherentImpl, others: Vec<syn::ItemImpl>) -> InherentImpl {
    inherent::merge(input, others, INFO.helpers)
}
