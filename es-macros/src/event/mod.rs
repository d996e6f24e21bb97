//! `#[derive(Event)]`: implements `::es_core::event::Event` (its `NAME` and `VERSION`).

mod expand;
mod parse;

use proc_macro2::TokenStream;

/// Expands `#[derive(Event)]`: the impl, or the errors plus a stub impl.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<syn::DeriveInput>(input) {
        Ok(input) => input,
        Err(error) => return error.into_compile_error(),
    };
    let (model, diagnostics) = parse::parse(&input);
    if diagnostics.has_errors() {
        let mut tokens = diagnostics.into_compile_errors();
        tokens.extend(expand::fallback(&input));
        return tokens;
    }
    expand::expand(&model)
}
