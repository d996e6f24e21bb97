//! The steps of an `#[on]` block macro, and its `name = "..."` argument.

use proc_macro2::{Span, TokenStream};
use syn::LitStr;

use crate::attr::{ArgSet, Value};
use crate::diagnostics::Diagnostics;
use crate::inherent::{self, InherentImpl, MacroInfo};

/// How an `#[on]` block macro is named in messages, and the arguments it takes.
pub(crate) struct OnMacro {
    /// Its name, its helper attributes and an example of its use.
    pub(crate) info: MacroInfo,
    /// The keys of its arguments, `name` first.
    pub(crate) keys: &'static [&'static str],
    /// An example name, such as `balances`.
    pub(crate) name_example: &'static str,
    /// What the name is for, such as "its unique checkpoint key".
    pub(crate) name_purpose: &'static str,
}

/// Reads `#[macro(name = "...", ...)]`: returns the required name (an empty placeholder after
/// reporting a missing or malformed one) and hands the value of every other key to `read`.
pub(crate) fn parse_args(
    on: &OnMacro,
    attr: TokenStream,
    diagnostics: &mut Diagnostics,
    mut read: impl FnMut(Value<'_, '_>, &mut Diagnostics),
) -> LitStr {
    let macro_name = on.info.name;
    let mut name = None;
    let mut args = ArgSet::new(macro_name, on.keys);
    args.parse_tokens(attr, diagnostics, |value, diagnostics| {
        if value.key() == "name" {
            name = value.name(on.name_example, diagnostics);
        } else {
            read(value, diagnostics);
        }
    });
    if !args.given("name") && !args.malformed() {
        diagnostics.push(syn::Error::new(
            Span::call_site(),
            format!(
                "`#[{macro_name}]` needs a name, {}: `#[{macro_name}(name = \"{}\")]`",
                on.name_purpose, on.name_example
            ),
        ));
    }
    name.unwrap_or_else(|| LitStr::new("", Span::call_site()))
}

/// Expands an `#[on]` block macro: reads its arguments and the impl block, checks them into a
/// plan, and emits the user's impl block (helper attributes removed) with `expand(plan)`, or
/// the errors with `fallback(plan)`.
pub(crate) fn expand_block<Args, Plan>(
    on: &OnMacro,
    attr: TokenStream,
    item: TokenStream,
    parse_args: impl FnOnce(TokenStream, &mut Diagnostics) -> Args,
    check: impl FnOnce(Args, &InherentImpl, &mut Diagnostics) -> Plan,
    expand: impl FnOnce(&Plan) -> TokenStream,
    fallback: impl FnOnce(&Plan) -> TokenStream,
) -> TokenStream {
    let mut diagnostics = Diagnostics::default();
    let args = parse_args(attr, &mut diagnostics);
    let input = match inherent::parse(item, &on.info, &mut diagnostics) {
        Ok(input) => input,
        Err(unchanged) => return diagnostics.with_unchanged(unchanged),
    };
    let plan = check(args, &input, &mut diagnostics);
    diagnostics.finish(&input.item, || expand(&plan), || fallback(&plan))
}
