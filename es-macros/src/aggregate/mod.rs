//! `#[aggregate]`: the command and event enums and the `Aggregate` impl of an inherent impl
//! block with `#[command]` and `#[apply]` methods.

mod check;
mod expand;
mod parse;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::diagnostics::Diagnostics;

/// Expands `#[aggregate(...)]`: the user's impl block (helper attributes removed) and the
/// generated items, or the errors plus a stub.
pub(crate) fn aggregate(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut diagnostics = Diagnostics::default();
    let args = parse::parse_args(attr, &mut diagnostics);
    let input = match parse::parse_item(item, &mut diagnostics) {
        Ok(input) => input,
        Err(unchanged) => {
            let mut tokens = diagnostics.into_compile_errors();
            tokens.extend(unchanged);
            return tokens;
        }
    };
    let plan = check::check(args, &input, &mut diagnostics);
    let mut tokens = input.item.to_token_stream();
    if diagnostics.has_errors() {
        tokens.extend(expand::fallback(&plan));
        tokens.extend(diagnostics.into_compile_errors());
    } else {
        tokens.extend(expand::expand(&plan));
    }
    tokens
}
