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

    /// Records an error spanned at `tokens`, with a second note spanned at `previous`
    /// (for example the first of two conflicting handlers).
    pub(crate) fn error_with_note(
        &mut self,
        tokens: impl ToTokens,
        message: impl Display,
        previous: impl ToTokens,
        note: impl Display,
    ) {
        let mut error = syn::Error::new_spanned(tokens, message);
        error.combine(syn::Error::new_spanned(previous, note));
        self.push(error);
    }

    /// Records an already built error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(errors) => errors.combine(error),
            None => self.errors = Some(error),
        }
    }

    /// Records the error of a `syn::Result`, keeping its value if there was none.
    pub(crate) fn take<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(error);
                None
            }
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
}
