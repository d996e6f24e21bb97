//! Spans for generated code that rustc may reject: such code is spanned over the user's tokens
//! that the error is about, so that the message points at them.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};

/// The spans of the first and last token of `tokens` (the call site when empty).
fn first_and_last(tokens: &impl ToTokens) -> (Span, Span) {
    let mut iter = tokens.to_token_stream().into_iter();
    let first = iter.next().map_or_else(Span::call_site, |t| t.span());
    let last = iter.last().map_or(first, |t| match t {
        TokenTree::Group(g) => g.span_close(),
        other => other.span(),
    });
    (first, last)
}

/// `tokens` with every token (and every nested one) spanned at `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) => {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                TokenTree::Group(respanned)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// `function(argument)`, spanned so that rustc reports an unsatisfied bound of the call over
/// the whole of `over` (the user's type it is about), not at the macro attribute.
///
/// rustc points such errors at the argument (or the call); an expression's span runs from its
/// first token to its last, so the argument is wrapped in `identity(..)` whose path starts at
/// `over`'s first token and whose parentheses end at its last.
pub(crate) fn call_over(
    function: TokenStream,
    argument: TokenStream,
    over: &impl ToTokens,
) -> TokenStream {
    let (first, last) = first_and_last(over);
    let function = respan(function, first);
    let identity = respan(quote!(::core::convert::identity), first);
    let mut inner = Group::new(Delimiter::Parenthesis, argument);
    inner.set_span(last);
    let mut outer = Group::new(Delimiter::Parenthesis, quote!(#identity #inner));
    outer.set_span(last);
    quote_spanned!(first=> #function #outer)
}
