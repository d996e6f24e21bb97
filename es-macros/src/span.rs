//! Spans for generated code that rustc may reject: such code is spanned over the user's tokens
//! that the error is about, so that the message points at them.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote_spanned};

/// The spans of the first and last token of `tokens` (the call site when empty).
pub(crate) fn first_and_last(tokens: &impl ToTokens) -> (Span, Span) {
    let mut iter = tokens.to_token_stream().into_iter();
    let first = iter.next().map_or_else(Span::call_site, |t| t.span());
    let last = iter.last().map_or(first, |t| match t {
        TokenTree::Group(g) => g.span_close(),
        other => other.span(),
    });
    (first, last)
}

/// The call `function(argument)`, spanned so that rustc reports errors about it over the whole
/// of `over`: the function path starts at `over`'s first token, the parentheses end at its last.
pub(crate) fn call_over(
    function: TokenStream,
    argument: TokenStream,
    over: &impl ToTokens,
) -> TokenStream {
    let (first, last) = first_and_last(over);
    let mut arguments = Group::new(Delimiter::Parenthesis, argument);
    arguments.set_span(last);
    quote_spanned!(first=> #function #arguments)
}
