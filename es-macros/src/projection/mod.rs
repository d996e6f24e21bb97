//! `#[projection]`: the `Projection` impl of an inherent impl block with `#[on]` methods.

mod check;
mod expand;
mod parse;

use proc_macro2::TokenStream;

use crate::diagnostics::Diagnostics;

/// Expands `#[projection(...)]`: the user's impl block (helper attributes removed) and the
/// `Projection` impl, or the errors plus a stub.
pub(crate) fn projection(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut diagnostics = Diagnostics::default();
    let args = parse::parse_args(attr, &mut diagnostics);
    let input = match parse::parse_item(item, &mut diagnostics) {
        Ok(input) => input,
        Err(unchanged) => return diagnostics.with_unchanged(unchanged),
    };
    let plan = check::check(args, &input, &mut diagnostics);
    diagnostics.finish(
        &input.item,
        || expand::expand(&plan),
        || expand::fallback(&plan),
    )
}
