//! `#[process_manager]`: the `ProcessManager` impl of an inherent impl block with
//! `#[on(start)]`, `#[on]` and `#[rejected]` methods.

mod check;
mod expand;
mod parse;

use proc_macro2::TokenStream;

use crate::on;

/// Expands `#[process_manager(...)]`: the user's impl block (helper attributes removed) and the
/// `ProcessManager` impl, or the errors plus a stub.
pub(crate) fn process_manager(attr: TokenStream, item: TokenStream) -> TokenStream {
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
