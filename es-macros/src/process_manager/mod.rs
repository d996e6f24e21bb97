//! `#[process_manager]`: the `ProcessManager` impl of an inherent impl block with
//! `#[on(start)]`, `#[on]` and `#[rejected]` methods.

mod check;
mod expand;
mod parse;

use proc_macro2::TokenStream;

use crate::diagnostics::Diagnostics;

/// Expands `#[process_manager(...)]`: the user's impl block (helper attributes removed) and the
/// `ProcessManager` impl, or the errors plus a stub.
pub(crate) fn process_manager(attr: TokenStream, item: TokenStream) -> TokenStream {
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
