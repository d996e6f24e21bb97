//! Reads a `#[derive(Event)]` input into an [`EventModel`], reporting every mistake.

use syn::{DeriveInput, Expr, ExprLit, Ident, Lit, LitInt, LitStr, Meta, Path, Token};

use crate::attr::ArgSet;
use crate::diagnostics::Diagnostics;
use crate::pii::PiiModel;

/// What `#[derive(Event)]` implements.
pub(super) struct EventModel {
    /// The event type.
    pub(super) ident: Ident,
    /// The recorded name.
    pub(super) name: LitStr,
    /// The schema version.
    pub(super) version: u32,
    /// Older names that decode as this event.
    pub(super) aliases: Vec<LitStr>,
    /// The upcasters, by the version each lifts from (the chain is checked complete).
    pub(super) upcasts: Vec<(u32, Path)>,
    /// The `#[pii]` fields.
    pub(super) pii: PiiModel,
}

/// One `upcast(from = k, with = f)`, as read.
struct Upcast {
    /// The `upcast` key, for errors about the argument as a whole.
    key: Ident,
    /// `from = k`.
    from: Option<(LitInt, u32)>,
    /// `with = f`.
    with: Option<Path>,
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
    let mut args =
        ArgSet::new("event", &["name", "version", "aliases", "upcast"]).repeatable(&["upcast"]);
    let mut name = None;
    let mut version = 1;
    let mut version_lit = None;
    let mut aliases = Vec::new();
    let mut upcasts = Vec::new();
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
                    Some((lit, v)) => {
                        version = v;
                        version_lit = Some(lit);
                    }
                    None => {}
                },
                "aliases" => aliases = value.name_list("bank.withdrawn", diagnostics),
                "upcast" => {
                    let mut upcast = Upcast {
                        key: value.key_ident().clone(),
                        from: None,
                        with: None,
                    };
                    let example = "upcast(from = 1, with = withdrawn_v1)";
                    if value.nested(example, diagnostics, |inner, diagnostics| {
                        read_upcast_argument(inner, &mut upcast, diagnostics)
                    }) {
                        upcasts.push(upcast);
                    }
                }
                _ => {}
            }
        });
    }
    let name = name.unwrap_or_else(|| LitStr::new(&input.ident.to_string(), input.ident.span()));
    for (i, alias) in aliases.iter().enumerate() {
        if alias.value() == name.value() {
            diagnostics.error(
                alias,
                format!(
                    "`{}` is this event's own name, not an alias: remove it from `aliases(...)`",
                    alias.value()
                ),
            );
        } else if aliases[..i].iter().any(|a| a.value() == alias.value()) {
            diagnostics.error(
                alias,
                format!(
                    "the alias `{}` is given twice: remove one of the two",
                    alias.value()
                ),
            );
        }
    }
    let upcasts = check_chain(&upcasts, version, version_lit.as_ref(), &mut diagnostics);
    let pii = crate::pii::parse(input, &mut diagnostics);

    (
        EventModel {
            ident: input.ident.clone(),
            name,
            version,
            aliases,
            upcasts,
            pii,
        },
        diagnostics,
    )
}

/// Reads one argument of `upcast(...)`.
fn read_upcast_argument(
    inner: &syn::meta::ParseNestedMeta<'_>,
    upcast: &mut Upcast,
    diagnostics: &mut Diagnostics,
) -> syn::Result<()> {
    let key = inner
        .path
        .get_ident()
        .map(Ident::to_string)
        .unwrap_or_default();
    match key.as_str() {
        "from" => {
            let expr: Expr = inner.value()?.parse()?;
            match &expr {
                Expr::Lit(ExprLit {
                    lit: Lit::Int(lit), ..
                }) => match lit.base10_parse::<u32>() {
                    Ok(v) if upcast.from.is_none() => upcast.from = Some((lit.clone(), v)),
                    Ok(_) => diagnostics.error(
                        &inner.path,
                        "`from` is given twice in this `upcast(...)`: remove one of the two",
                    ),
                    Err(_) => diagnostics.error(
                        lit,
                        "`from` in `upcast(...)` takes the stored version it lifts, like `from = 1`",
                    ),
                },
                other => diagnostics.error(
                    other,
                    "`from` in `upcast(...)` takes the stored version it lifts, like `from = 1`",
                ),
            }
        }
        "with" => {
            let path: Path = inner.value()?.parse()?;
            if upcast.with.is_none() {
                upcast.with = Some(path);
            } else {
                diagnostics.error(
                    &inner.path,
                    "`with` is given twice in this `upcast(...)`: remove one of the two",
                );
            }
        }
        _ => {
            diagnostics.error(
                &inner.path,
                "unknown argument in `upcast(...)`: it takes `from = <version>` and \
                 `with = <function>`, like `upcast(from = 1, with = withdrawn_v1)`",
            );
            if inner.input.peek(Token![=]) {
                let _: Expr = inner.value()?.parse()?;
            }
        }
    }
    Ok(())
}

/// Checks that the upcasters form one chain from version 1 to `version`: no `from = 0`, none
/// at or above `version`, none twice, none missing. Returns the chain, ordered by `from`.
fn check_chain(
    upcasts: &[Upcast],
    version: u32,
    version_lit: Option<&LitInt>,
    diagnostics: &mut Diagnostics,
) -> Vec<(u32, Path)> {
    let mut chain: Vec<(u32, Path)> = Vec::new();
    let mut incomplete = false;
    for upcast in upcasts {
        let (Some((lit, from)), Some(with)) = (&upcast.from, &upcast.with) else {
            let missing = match (&upcast.from, &upcast.with) {
                (None, None) => "`from = <version>` and `with = <function>`",
                (None, _) => "`from = <version>`",
                _ => "`with = <function>`",
            };
            diagnostics.error(
                &upcast.key,
                format!(
                    "this `upcast(...)` needs {missing}, like `upcast(from = 1, with = withdrawn_v1)`"
                ),
            );
            incomplete = true;
            continue;
        };
        let from = *from;
        if from == 0 {
            diagnostics.error(
                lit,
                "event versions start at 1, so there is no version 0 to upcast from: remove \
                 this `upcast(from = 0, ...)`",
            );
        } else if from >= version {
            diagnostics.error(
                lit,
                format!(
                    "an upcaster lifts a stored version to the next one, up to the current \
                     `version = {version}`, so `from = {from}` has nothing to lift to: remove \
                     this `upcast(...)`, or raise the event's version to `version = {}`",
                    from.saturating_add(1)
                ),
            );
        } else if chain.iter().any(|(f, _)| *f == from) {
            diagnostics.error(
                lit,
                format!(
                    "a second upcaster from version {from}: the chain takes one per version; \
                     remove one of the two `upcast(from = {from}, ...)`"
                ),
            );
        } else {
            chain.push((from, with.clone()));
        }
    }
    let missing: Vec<u32> = (1..version)
        .filter(|v| !chain.iter().any(|(f, _)| f == v))
        .collect();
    // Without any upcaster, older payloads deserialize as they are (`Event::UPCASTERS`); with
    // one, the chain must reach every older version.
    if !missing.is_empty() && !incomplete && !upcasts.is_empty() {
        let add: Vec<String> = missing
            .iter()
            .map(|v| format!("`upcast(from = {v}, with = ...)`"))
            .collect();
        let message = format!(
            "events stored at version{} {} cannot reach `version = {version}`: the upcaster \
             chain has no link from {}; add {}",
            if missing.len() == 1 { "" } else { "s" },
            join(&missing),
            if missing.len() == 1 { "it" } else { "them" },
            add.join(", "),
        );
        match version_lit {
            Some(lit) => diagnostics.error(lit, message),
            None => diagnostics.push(syn::Error::new(proc_macro2::Span::call_site(), message)),
        }
    }
    chain.sort_by_key(|(from, _)| *from);
    chain
}

/// `1, 2 and 3`.
fn join(versions: &[u32]) -> String {
    let text: Vec<String> = versions.iter().map(u32::to_string).collect();
    match text.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => text.join(""),
    }
}
