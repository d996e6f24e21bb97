//! `#[projection]`: the `Projection` impl of an inherent impl block with `#[on]` methods.

mod check;
mod expand;
mod parse;

use proc_macro2::TokenStream;

use crate::on;

/// Expands `#[projection(...)]`: the user's impl block (helper attributes removed) and the
/// `Projection` impl, or the errors plus a stub.
pub(crate) fn projection(attr: TokenStream, item: TokenStream) -> TokenStream {
    on::expand_block(
        &parse::MACRO,
        attr,
        item,
        parse::parse_args,
        check::check,
        expand::expand,
        expand::fallback,
    )
}
