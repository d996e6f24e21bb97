//! Error collection: every mistake is reported, each spanned at the user's tokens.

use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// Collects spanned errors so that a macro reports all of them at once (serde's `Ctxt`).
#[derive(Default)]
pub(crate) struct Diagnostics {
    errors: Option<syn::Error>,
}

impl Diagnostics {
    /// Records an error spanned at `tokens`.
    pub(crate) fn error(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an already built error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(errors) => errors.combine(error),
            None => self.errors = Some(error),
        }
    }

    /// Whether any error was recorded.
    pub(crate) fn has_errors(&self) -> bool {
        self.errors.is_some()
    }

    /// The `compile_error!` invocations of every recorded error (empty when none).
    pub(crate) fn into_compile_errors(self) -> TokenStream {
        self.errors
            .map(syn::Error::into_compile_error)
            .unwrap_or_default()
    }

    /// The output of an attribute macro whose item could not be read: the errors and the item
    /// unchanged.
    pub(crate) fn with_unchanged(self, item: TokenStream) -> TokenStream {
        let mut tokens = self.into_compile_errors();
        tokens.extend(item);
        tokens
    }

    /// The output of an attribute macro on an impl block: the user's item (helper attributes
    /// removed), then the expansion, or, when errors were recorded, a fallback stub (so one
    /// mistake does not cascade) and every error.
    pub(crate) fn finish(
        self,
        item: impl ToTokens,
        expand: impl FnOnce() -> TokenStream,
        fallback: impl FnOnce() -> TokenStream,
    ) -> TokenStream {
        let mut tokens = item.to_token_stream();
        if self.has_errors() {
            tokens.extend(fallback());
            tokens.extend(self.into_compile_errors());
        } else {
            tokens.extend(expand());
        }
        tokens
    }
}
