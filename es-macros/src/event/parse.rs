//! Reads a `#[derive(Event)]` input into an [`EventModel`], reporting every mistake.

use proc_macro2::{Punct, Spacing, TokenStream};
use quote::ToTokens;
use syn::{DeriveInput, Ident, LitInt, LitStr};

use crate::args::{Args, attribute_arguments};
use crate::diagnostics::Diagnostics;

/// What `#[derive(Event)]` implements.
pub(super) struct EventModel {
    /// The event type.
    pub(super) ident: Ident,
    /// The recorded name.
    pub(super) name: LitStr,
    /// The schema version.
    pub(super) version: u32,
}

/// Builds the model; every error is in the returned diagnostics.
pub(super) fn parse(input: &DeriveInput) -> (EventModel, Diagnostics) {
    let mut diagnostics = Diagnostics::default();

    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        diagnostics.error(
            &input.generics,
            "`#[derive(Event)]` does not support generic types: an event name must identify one \
             concrete payload type; derive `Event` on a concrete type instead",
        );
    }
    if let syn::Data::Union(data) = &input.data {
        diagnostics.error(
            data.union_token,
            "`#[derive(Event)]` needs a struct or an enum, not a union",
        );
    }

    // Every `#[event(...)]` attribute together, so that a key given in two attributes is a
    // duplicate like any other.
    let mut tokens = TokenStream::new();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        let Some(inner) = diagnostics.take(attribute_arguments(attr)) else {
            continue;
        };
        if inner.is_empty() {
            diagnostics.error(
                attr,
                "`#[event]` needs arguments: `#[event(name = \"...\", version = N)]`",
            );
            continue;
        }
        if !tokens.is_empty() {
            Punct::new(',', Spacing::Alone).to_tokens(&mut tokens);
        }
        tokens.extend(inner);
    }
    let args = Args::parse(tokens, "event", &["name", "version"], &mut diagnostics);

    let name = args
        .string("name", "event", "bank.deposited", &mut diagnostics)
        .unwrap_or_else(|| LitStr::new(&input.ident.to_string(), input.ident.span()));

    let mut version = 1;
    if let Some(arg) = args.get("version") {
        let hint = "`version` in `#[event]` takes a positive integer, like `version = 2`";
        match &arg.value {
            None => diagnostics.error(&arg.key, hint),
            Some(value) => match syn::parse2::<LitInt>(value.clone())
                .ok()
                .and_then(|lit| lit.base10_parse::<u32>().ok().map(|v| (lit, v)))
            {
                Some((lit, 0)) => diagnostics.error(
                    lit,
                    "event versions start at 1: `version = 0` is not allowed",
                ),
                Some((_, v)) => version = v,
                None => diagnostics.error(value, hint),
            },
        }
    }

    (
        EventModel {
            ident: input.ident.clone(),
            name,
            version,
        },
        diagnostics,
    )
}
