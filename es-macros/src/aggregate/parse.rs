//! Reads `#[aggregate(...)] impl Type { ... }`: the arguments, the type, and every method marked
//! `#[command]` or `#[apply]`, with the helper attributes removed.

use proc_macro2::TokenStream;
use syn::{LitStr, Type};

use crate::args::Args;
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
}

/// Parses the attribute arguments, reporting unknown, duplicate and malformed ones.
pub(super) fn parse_args(attr: TokenStream, diagnostics: &mut Diagnostics) -> AggregateArgs {
    let args = Args::parse(attr, "aggregate", &["name", "error"], diagnostics);
    let name = args.string("name", "aggregate", "bank_account", diagnostics);
    let error = args.get("error").and_then(|arg| {
        let hint =
            "`error` in `#[aggregate]` takes the command error type, like `error = BankError`";
        match &arg.value {
            None => {
                diagnostics.error(&arg.key, hint);
                None
            }
            Some(value) => match syn::parse2::<Type>(value.clone()) {
                Ok(ty) => Some(ty),
                Err(_) => {
                    diagnostics.error(value, hint);
                    None
                }
            },
        }
    });
    AggregateArgs { name, error }
}

/// Parses the impl block (see [`inherent::parse`]).
pub(super) fn parse_item(
    item: TokenStream,
    diagnostics: &mut Diagnostics,
) -> Result<InherentImpl, TokenStream> {
    inherent::parse(item, &INFO, diagnostics)
}
