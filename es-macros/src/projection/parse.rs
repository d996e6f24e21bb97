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

/// Parses the attribute arguments: the required `name`. Returns `None` after reporting a
/// missing or malformed name.
pub(super) fn parse_args(attr: TokenStream, diagnostics: &mut Diagnostics) -> Option<LitStr> {
    let mut name = None;
    let mut args = ArgSet::new("projection", &["name"]);
    args.parse_tokens(attr, diagnostics, |value, diagnostics| {
        name = value.name("balances", diagnostics);
    });
    if !args.given("name") && !args.malformed() {
        diagnostics.push(syn::Error::new(
            Span::call_site(),
            "`#[projection]` needs a name, its unique checkpoint key: \
             `#[projection(name = \"balances\")]`",
        ));
    }
    name
}

/// Parses the impl block (see [`inherent::parse`]).
pub(super) fn parse_item(
    item: TokenStream,
    diagnostics: &mut Diagnostics,
) -> Result<InherentImpl, TokenStream> {
    inherent::parse(item, &INFO, diagnostics)
}
