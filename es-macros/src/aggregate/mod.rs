//! `#[aggregate]`: the command and event enums and the `Aggregate` impl of an inherent impl
//! block with `#[command]` and `#[apply]` methods.

mod check;
mod expand;
mod parse;
mod siblings;

use proc_macro2::TokenStream;

use crate::diagnostics::Diagnostics;

/// Expands `#[aggregate(...)]`: the user's impl block (helper attributes removed) and the
/// generated items, or the errors plus a stub.
pub(crate) fn aggregate(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut diagnostics = Diagnostics::default();
    let args = parse::parse_args(attr, &mut diagnostics);
    let input = match parse::parse_item(item, &mut diagnostics) {
        Ok(input) => input,
        Err(unchanged) => return diagnostics.with_unchanged(unchanged),
    };
    let input = match siblings::locate(&input.item, &input.ident) {
        siblings::Siblings::Alone => input,
        siblings::Siblings::First(others) => parse::merge(input, others),
        siblings::Siblings::Later => {
            let ident = &input.ident;
            diagnostics.error(
                &input.item.self_ty,
                format!(
                    "`{ident}` has more than one `#[aggregate]` impl block: merge them into one (move \
                     this block's methods into the first `#[aggregate] impl {ident}`)"
                ),
            );
            return diagnostics.finish(&input.item, TokenStream::new, TokenStream::new);
        }
    };
    let plan = check::check(args, &input, &mut diagnostics);
    diagnostics.finish(
        &input.item,
        || expand::expand(&plan),
        || expand::fallback(&plan),
    )
}
