//! Reads a `#[derive(Event)]` input into an [`EventModel`], reporting every mistake.

use syn::{DeriveInput, Ident, LitStr, Meta};

use crate::attr::ArgSet;
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

    // One argument set for every `#[event(...)]` attribute, so that a key given in two
    // attributes is a duplicate like any other.
    let mut args = ArgSet::new("event", &["name", "version"]);
    let mut name = None;
    let mut version = 1;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        let empty = match &attr.meta {
            Meta::Path(_) => true,
            Meta::List(list) => list.tokens.is_empty(),
            Meta::NameValue(_) => false,
        };
        if empty {
            diagnostics.error(
                attr,
                "`#[event]` needs arguments: `#[event(name = \"...\", version = N)]`",
            );
            continue;
        }
        args.parse_attribute(attr, &mut diagnostics, |value, diagnostics| {
            match value.key().as_str() {
                "name" => name = value.name("bank.deposited", diagnostics),
                "version" => match value.u32("a positive integer", "version = 2", diagnostics) {
                    Some((lit, 0)) => diagnostics.error(
                        lit,
                        "event versions start at 1: `version = 0` is not allowed",
                    ),
                    Some((_, v)) => version = v,
                    None => {}
                },
                _ => {}
            }
        });
    }
    let name = name.unwrap_or_else(|| LitStr::new(&input.ident.to_string(), input.ident.span()));

    (
        EventModel {
            ident: input.ident.clone(),
            name,
            version,
        },
        diagnostics,
    )
}
