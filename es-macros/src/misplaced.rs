//! `#[command]`, `#[apply]` and `#[on]` on their own: the block macros (`#[aggregate]`,
//! `#[projection]`) read and remove them, so these only run when one is out of place, and say
//! where it belongs instead of rustc's "cannot find attribute".

use proc_macro2::{Span, TokenStream};

/// `#[command]` outside an `#[aggregate]` impl block.
pub(crate) fn command(attr: TokenStream, item: TokenStream) -> TokenStream {
    report(
        "command",
        "an `#[aggregate]` impl block",
        "`#[aggregate] impl MyAggregate { #[command] fn ... }` (all the `#[command]` and \
         `#[apply]` methods of an aggregate go in its one `#[aggregate]` block)",
        attr,
        item,
    )
}

/// `#[apply]` outside an `#[aggregate]` impl block.
pub(crate) fn apply(attr: TokenStream, item: TokenStream) -> TokenStream {
    report(
        "apply",
        "an `#[aggregate]` impl block",
        "`#[aggregate] impl MyAggregate { #[apply] fn ... }` (all the `#[command]` and \
         `#[apply]` methods of an aggregate go in its one `#[aggregate]` block)",
        attr,
        item,
    )
}

/// `#[on]` outside a `#[projection]` impl block.
pub(crate) fn on(attr: TokenStream, item: TokenStream) -> TokenStream {
    report(
        "on",
        "a `#[projection]` impl block",
        "`#[projection(name = \"...\")] impl MyProjection { #[on] fn ... }`",
        attr,
        item,
    )
}

/// `#[rejected]` outside a `#[process_manager]` impl block.
pub(crate) fn rejected(attr: TokenStream, item: TokenStream) -> TokenStream {
    report(
        "rejected",
        "a `#[process_manager]` impl block",
        "`#[process_manager(name = \"...\")] impl MyWorkflow { #[rejected] fn ... }`",
        attr,
        item,
    )
}

/// One error at the attribute (the call site of an attribute macro), then the item unchanged so
/// that nothing else is reported about it.
fn report(
    helper: &str,
    home: &str,
    example: &str,
    _attr: TokenStream,
    item: TokenStream,
) -> TokenStream {
    let message =
        format!("`#[{helper}]` only works inside {home}: move this method into {example}");
    let mut tokens = syn::Error::new(Span::call_site(), message).into_compile_error();
    tokens.extend(item);
    tokens
}
