//! Procedural macros for `es-core` (work in progress).
use proc_macro::TokenStream;

/// `#[aggregate]` (work in progress).
#[proc_macro_attribute]
pub fn aggregate(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
/// `#[projection]` (work in progress).
#[proc_macro_attribute]
pub fn projection(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
/// `#[derive(Event)]` (work in progress).
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(_item: TokenStream) -> TokenStream {
    TokenStream::new()
}
