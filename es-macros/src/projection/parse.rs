//! Reads `#[projection(name = "...")] impl Type { ... }`: the name, the type, and every method
//! marked `#[on]`, with the helper attributes removed.

use proc_macro2::{Span, TokenStream};
use syn::LitStr;

use crate::attr::ArgSet;
use crate::diagnostics::Diagnostics;
use crate::inherent::{self, InherentImpl, MacroInfo};

/// How `#[projection]` is named in messages and which helpers it reads.
const INFO: MacroInfo = MacroInfo {
    name: "projection",
    helpers: &["on"],
    example: "#[projection(name = \"balances\")] impl MyProjection { #[on] fn ... }",
};

/// The attribute's arguments.
#[derive(Default)]
pub(super) struct Args {
    /// `name = "..."`, required.
    pub(super) name: Option<LitStr>,
    /// `aggregate = "..."`: only streams of that aggregate type.
    pub(super) aggregate: Option<LitStr>,
    /// `filter = path`: a `fn(&RecordedEvent) -> bool` over the envelope.
    pub(super) filter: Option<syn::Path>,
}

/// Parses the attribute arguments: the required `name`, and the optional `aggregate` and
/// `filter`. The name is `None` after reporting a missing or malformed one.
pub(super) fn parse_args(attr: TokenStream, diagnostics: &mut Diagnostics) -> Args {
    let mut out = Args::default();
    let mut args = ArgSet::new("projection", &["name", "aggregate", "filter"]);
    args.parse_tokens(attr, diagnostics, |value, diagnostics| {
        match value.key().as_str() {
            "name" => out.name = value.name("balances", diagnostics),
            "aggregate" => out.aggregate = value.name("bank_account", diagnostics),
            "filter" => {
                out.filter = value.parse::<syn::Path>(
                    "the path of a `fn(&RecordedEvent) -> bool`",
                    "filter = only_vip",
                    diagnostics,
                );
            }
            _ => {}
        }
    });
    if !args.given("name") && !args.malformed() {
        diagnostics.push(syn::Error::new(
            Span::call_site(),
            "`#[projection]` needs a name, its unique checkpoint key: \
             `#[projection(name = \"balances\")]`",
        ));
    }
    out
}

/// Parses the impl block (see [`inherent::parse`]).
pub(super) fn parse_item(
    item: TokenStream,
    diagnostics: &mut Diagnostics,
) -> Result<InherentImpl, TokenStream> {
    inherent::parse(item, &INFO, diagnostics)
}
