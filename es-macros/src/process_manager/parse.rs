//! Reads `#[process_manager(name = "...", key = f)]`; the impl block is read by
//! [`crate::inherent::parse`].

use proc_macro2::TokenStream;
use syn::{LitStr, Path};

use crate::diagnostics::Diagnostics;
use crate::inherent::MacroInfo;
use crate::on::{self, OnMacro};

/// How `#[process_manager]` is named in messages, its helpers and its arguments.
pub(super) const MACRO: OnMacro = OnMacro {
    info: MacroInfo {
        name: "process_manager",
        helpers: &["on", "rejected"],
        example: "#[process_manager(name = \"transfers\")] impl MyWorkflow { #[on(start)] fn ... }",
    },
    keys: &["name", "key"],
    name_example: "transfers",
    name_purpose: "its unique checkpoint key and the prefix of its command ids",
};

/// The attribute's arguments.
pub(super) struct Args {
    /// `name = "..."`, required (a placeholder after errors).
    pub(super) name: LitStr,
    /// `key = path::to::f` (optional).
    pub(super) key: Option<Path>,
}

/// Parses the attribute arguments: the required `name` and the optional `key`.
pub(super) fn parse_args(attr: TokenStream, diagnostics: &mut Diagnostics) -> Args {
    let mut key = None;
    let name = on::parse_args(&MACRO, attr, diagnostics, |value, diagnostics| {
        key = value.parse::<Path>(
            "the path of a `fn(&RecordedEvent) -> Option<String>`",
            "key = transfer_key",
            diagnostics,
        );
    });
    Args { name, key }
}
