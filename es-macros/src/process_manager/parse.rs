//! Reads `#[process_manager(name = "...", key = f)] impl Type { ... }`: the arguments, the
//! type, and every method marked `#[on]` or `#[rejected]`, with the helper attributes removed.

use proc_macro2::{Span, TokenStream};
use syn::{LitStr, Path};

use crate::attr::ArgSet;
use crate::diagnostics::Diagnostics;
use crate::inherent::{self, InherentImpl, MacroInfo};

/// How `#[process_manager]` is named in messages and which helpers it reads.
const INFO: MacroInfo = MacroInfo {
    name: "process_manager",
    helpers: &["on", "rejected"],
    example: "#[process_manager(name = \"transfers\")] impl MyWorkflow { #[on(start)] fn ... }",
};

/// The attribute's arguments.
pub(super) struct Args {
    /// `name = "..."` (required).
    pub(super) name: Option<LitStr>,
    /// `key = path::to::f` (optional).
    pub(super) key: Option<Path>,
}

/// Parses the attribute arguments: the required `name` and the optional `key`.
pub(super) fn parse_args(attr: TokenStream, diagnostics: &mut Diagnostics) -> Args {
    let mut args = Args {
        name: None,
        key: None,
    };
    let mut set = ArgSet::new("process_manager", &["name", "key"]);
    set.parse_tokens(attr, diagnostics, |value, diagnostics| {
        if value.key() == "name" {
            args.name = value.name("transfers", diagnostics);
        } else {
            args.key = value.parse::<Path>(
                "the path of a `fn(&RecordedEvent) -> Option<String>`",
                "key = transfer_key",
                diagnostics,
            );
        }
    });
    if !set.given("name") && !set.malformed() {
        diagnostics.push(syn::Error::new(
            Span::call_site(),
            "`#[process_manager]` needs a name, its unique checkpoint key and the prefix of its \
             command ids: `#[process_manager(name = \"transfers\")]`",
        ));
    }
    args
}

/// Parses the impl block (see [`inherent::parse`]).
pub(super) fn parse_item(
    item: TokenStream,
    diagnostics: &mut Diagnostics,
) -> Result<InherentImpl, TokenStream> {
    inherent::parse(item, &INFO, diagnostics)
}
