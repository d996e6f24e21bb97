//! Attribute arguments of the form `key = value, ...`, shared by every macro.

use proc_macro2::{Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::Ident;
use syn::LitStr;

use crate::diagnostics::Diagnostics;

/// One `key = value` argument; `value` is `None` when the `= value` part is missing.
pub(crate) struct Arg {
    /// The key, as written.
    pub(crate) key: Ident,
    /// The value tokens.
    pub(crate) value: Option<TokenStream>,
}

/// The arguments of one attribute, with unknown and duplicate keys already reported.
pub(crate) struct Args {
    args: Vec<Arg>,
}

impl Args {
    /// Splits `tokens` into `key = value` arguments. Reports (into `diagnostics`) malformed
    /// arguments, keys not in `known`, and keys given twice; those are left out.
    pub(crate) fn parse(
        tokens: TokenStream,
        attribute: &str,
        known: &[&str],
        diagnostics: &mut Diagnostics,
    ) -> Self {
        let mut args: Vec<Arg> = Vec::new();
        for piece in split_commas(tokens) {
            let mut iter = piece.clone().into_iter();
            let key = match iter.next() {
                Some(TokenTree::Ident(ident)) => ident,
                _ => {
                    diagnostics.error(
                        &piece,
                        format!(
                            "expected `key = value` in `#[{attribute}]`; {}",
                            expected_keys(known)
                        ),
                    );
                    continue;
                }
            };
            let value = match iter.next() {
                None => None,
                Some(TokenTree::Punct(p))
                    if p.as_char() == '=' && p.spacing() == Spacing::Alone =>
                {
                    let rest: TokenStream = iter.collect();
                    if rest.is_empty() {
                        diagnostics.error(
                            &piece,
                            format!("`{key}` in `#[{attribute}]` needs a value after `=`"),
                        );
                        continue;
                    }
                    Some(rest)
                }
                Some(other) => {
                    diagnostics.error(
                        other,
                        format!("expected `=` after `{key}` in `#[{attribute}]`"),
                    );
                    continue;
                }
            };
            let name = key.to_string();
            if !known.contains(&name.as_str()) {
                diagnostics.error(
                    &key,
                    format!(
                        "unknown argument `{name}` in `#[{attribute}]`; {}",
                        expected_keys(known)
                    ),
                );
                continue;
            }
            if let Some(first) = args.iter().find(|a| a.key == key) {
                diagnostics.error_with_note(
                    &key,
                    format!("duplicate argument `{name}` in `#[{attribute}]`"),
                    &first.key,
                    format!("`{name}` is first given here"),
                );
                continue;
            }
            args.push(Arg { key, value });
        }
        Args { args }
    }

    /// The argument named `key`, if given.
    pub(crate) fn get(&self, key: &str) -> Option<&Arg> {
        self.args.iter().find(|a| a.key == key)
    }

    /// The string literal value of `key`, if given; reports a value that is not a string.
    pub(crate) fn string(
        &self,
        key: &str,
        attribute: &str,
        example: &str,
        diagnostics: &mut Diagnostics,
    ) -> Option<LitStr> {
        let arg = self.get(key)?;
        let hint = format!(
            "`{key}` in `#[{attribute}]` takes a string literal, like `{key} = \"{example}\"`"
        );
        let Some(value) = &arg.value else {
            diagnostics.error(&arg.key, hint);
            return None;
        };
        match syn::parse2::<LitStr>(value.clone()) {
            Ok(lit) if lit.value().trim().is_empty() => {
                diagnostics.error(
                    &lit,
                    format!("`{key}` in `#[{attribute}]` must not be empty"),
                );
                None
            }
            Ok(lit) => Some(lit),
            Err(_) => {
                diagnostics.error(value, hint);
                None
            }
        }
    }
}

fn expected_keys(known: &[&str]) -> String {
    match known {
        [] => "it takes no arguments".to_owned(),
        [one] => format!("the only argument is `{one}`"),
        _ => {
            let keys: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
            format!("expected one of {}", keys.join(", "))
        }
    }
}

/// Splits a token stream at commas that are not nested in `<...>` (groups nest by themselves).
fn split_commas(tokens: TokenStream) -> Vec<TokenStream> {
    let mut pieces = Vec::new();
    let mut current = TokenStream::new();
    let mut depth = 0usize;
    let mut previous_dash = false;
    for token in tokens {
        let mut dash = false;
        if let TokenTree::Punct(p) = &token {
            match p.as_char() {
                ',' if depth == 0 => {
                    if !current.is_empty() {
                        pieces.push(std::mem::take(&mut current));
                    }
                    previous_dash = false;
                    continue;
                }
                '<' => depth += 1,
                '>' if !previous_dash => depth = depth.saturating_sub(1),
                '-' => dash = p.spacing() == Spacing::Joint,
                _ => {}
            }
        }
        previous_dash = dash;
        current.extend(std::iter::once(token));
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// The tokens inside an attribute such as `#[command(...)]`, or an error for the
/// `#[command = ...]` form. A bare `#[command]` gives an empty stream.
pub(crate) fn attribute_arguments(attr: &syn::Attribute) -> syn::Result<TokenStream> {
    match &attr.meta {
        syn::Meta::Path(_) => Ok(TokenStream::new()),
        syn::Meta::List(list) => Ok(list.tokens.clone()),
        syn::Meta::NameValue(nv) => {
            let name = path_name(&nv.path);
            Err(syn::Error::new_spanned(
                nv.to_token_stream(),
                format!("expected `#[{name}(...)]` or `#[{name}]`, not `#[{name} = ...]`"),
            ))
        }
    }
}

/// The last segment of a path, for messages.
pub(crate) fn path_name(path: &syn::Path) -> String {
    path.segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default()
}
