//! Reads `#[projection(name = "...", aggregate = "...", filter = f)]`; the impl block is read
//! by [`crate::inherent::parse`].

use proc_macro2::TokenStream;
use syn::LitStr;

use crate::diagnostics::Diagnostics;
use crate::inherent::MacroInfo;
use crate::on::{self, OnMacro};

/// How `#[projection]` is named in messages, its helpers and its arguments.
pub(super) const MACRO: OnMacro = OnMacro {
    info: MacroInfo {
        name: "projection",
        helpers: &["on"],
        example: "#[projection(name = \"balances\")] impl MyProjection { #[on] fn ... }",
    },
    keys: &["name", "aggregate", "filter"],
    name_example: "balances",
    name_purpose: "its unique checkpoint key",
};

/// The attribute's arguments.
pub(super) struct Args {
    /// `name = "..."`, required (a placeholder after errors).
    pub(super) name: LitStr,
    /// `aggregate = "..."`: only streams of that aggregate type.
    pub(super) aggregate: Option<LitStr>,
    /// `filter = path`: a `fn(&RecordedEvent) -> bool` over the envelope.
    pub(super) filter: Option<syn::Path>,
}

/// Parses the attribute arguments: the required `name`, and the optional `aggregate` and
/// `filter`.
pub(super) fn parse_args(attr: TokenStream, diagnostics: &mut Diagnostics) -> Args {
    let (mut aggregate, mut filter) = (None, None);
    let name = on::parse_args(&MACRO, attr, diagnostics, |value, diagnostics| match value
        .key()
        .as_str()
    {
        "aggregate" => aggregate = value.name("bank_account", diagnostics),
        "filter" => {
            filter = value.parse::<syn::Path>(
                "the path of a `fn(&RecordedEvent) -> bool`",
                "filter = only_vip",
                diagnostics,
            );
        }
        _ => {}
    });
    Args {
        name,
        aggregate,
        filter,
    }
}
