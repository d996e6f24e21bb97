//! Attribute arguments of the form `key = value, ...`, read with syn's own meta parser:
//! `syn::meta::parser` for the arguments of `#[aggregate(...)]` and `#[projection(...)]`, and
//! `Attribute::parse_nested_meta` for helper attributes such as `#[event(...)]` or `#[command]`.
//!
//! Every mistake is recorded in [`Diagnostics`], spanned at the user's tokens, and reading goes
//! on with the next argument, so that one mistake gives one error and all of them are reported
//! (except after a token where a key must be, where syn's parser stops).

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::meta::{self, ParseNestedMeta};
use syn::parse::discouraged::Speculative;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Attribute, Expr, ExprLit, Ident, Lit, LitInt, LitStr, Meta, Path, Token};

use crate::diagnostics::Diagnostics;

/// The arguments one attribute takes, and the keys given so far: a key given twice, even in two
/// attributes (`#[event(name = "a")] #[event(name = "b")]`), is reported as a duplicate.
pub(crate) struct ArgSet {
    /// The attribute's name, for messages: `aggregate`, `event`, `command`, ...
    attribute: String,
    /// The keys it takes.
    known: &'static [&'static str],
    /// The keys that may be given more than once (`upcast(...)`).
    repeatable: &'static [&'static str],
    /// The first occurrence of each key read.
    given: Vec<Ident>,
    /// Whether the arguments could not be read to the end (syn stopped at a malformed one).
    malformed: bool,
}

impl ArgSet {
    /// The arguments of `#[attribute(...)]`, which takes the keys `known`.
    pub(crate) fn new(attribute: impl Into<String>, known: &'static [&'static str]) -> Self {
        ArgSet {
            attribute: attribute.into(),
            known,
            repeatable: &[],
            given: Vec::new(),
            malformed: false,
        }
    }

    /// Lets each of `keys` be given more than once; `read` sees every occurrence.
    pub(crate) fn repeatable(mut self, keys: &'static [&'static str]) -> Self {
        self.repeatable = keys;
        self
    }

    /// Whether `key` was given (even with a value that was reported as malformed).
    pub(crate) fn given(&self, key: &str) -> bool {
        self.given.iter().any(|ident| ident == key)
    }

    /// Whether reading stopped at a malformed argument (already reported), so that what
    /// follows it, a required key included, was not read.
    pub(crate) fn malformed(&self) -> bool {
        self.malformed
    }

    /// Reads the arguments of an attribute macro (the `attr` tokens of `#[aggregate(...)]`) with
    /// `syn::meta::parser`, calling `read` with the value of each known key given once.
    pub(crate) fn parse_tokens(
        &mut self,
        tokens: TokenStream,
        diagnostics: &mut Diagnostics,
        mut read: impl FnMut(Value<'_, '_>, &mut Diagnostics),
    ) {
        let result = meta::parser(|meta| {
            self.argument(&meta, diagnostics, &mut read);
            Ok(())
        })
        .parse2(tokens);
        self.report_malformed(result, diagnostics);
    }

    /// Reads the arguments of a helper attribute such as `#[event(...)]` with
    /// `Attribute::parse_nested_meta`, calling `read` with the value of each known key given
    /// once. `#[event]` has no arguments; `#[event = ...]` is reported.
    pub(crate) fn parse_attribute(
        &mut self,
        attr: &Attribute,
        diagnostics: &mut Diagnostics,
        mut read: impl FnMut(Value<'_, '_>, &mut Diagnostics),
    ) {
        match &attr.meta {
            Meta::Path(_) => {}
            Meta::List(_) => {
                let result = attr.parse_nested_meta(|meta| {
                    self.argument(&meta, diagnostics, &mut read);
                    Ok(())
                });
                self.report_malformed(result, diagnostics);
            }
            Meta::NameValue(nv) => {
                let name = &self.attribute;
                let message = if self.known.is_empty() {
                    takes_no_arguments(name)
                } else {
                    format!(
                        "expected `#[{name}(key = value, ...)]`, not `#[{name} = ...]`; {}",
                        expected_keys(self.known)
                    )
                };
                diagnostics.error(nv, message);
            }
        }
    }

    /// Handles one argument: reports an unknown or duplicate key (skipping its value), or hands
    /// the value to `read`. Leaves `meta.input` at the `,` after the argument or at the end.
    fn argument(
        &mut self,
        meta: &ParseNestedMeta<'_>,
        diagnostics: &mut Diagnostics,
        read: &mut impl FnMut(Value<'_, '_>, &mut Diagnostics),
    ) {
        let attribute = &self.attribute;
        let key = match meta.path.get_ident() {
            Some(key) if self.known.iter().any(|known| key == known) => key,
            _ => {
                let given = path_display(&meta.path);
                let hint = match suggest(&given, self.known) {
                    Some(known) => format!("did you mean `{known}`? "),
                    None => String::new(),
                };
                diagnostics.error(
                    &meta.path,
                    format!(
                        "unknown argument `{given}` in `#[{attribute}]`; {hint}{}",
                        expected_keys(self.known)
                    ),
                );
                skip_argument_rest(meta.input);
                return;
            }
        };
        if !self.repeatable.iter().any(|k| key == k) && self.given.iter().any(|ident| ident == key)
        {
            diagnostics.error(
                key,
                format!(
                    "duplicate argument `{key}` in `#[{attribute}]`: it is given earlier too; \
                     remove one of the two"
                ),
            );
            skip_argument_rest(meta.input);
            return;
        }
        self.given.push(key.clone());
        read(
            Value {
                meta,
                key,
                attribute,
            },
            diagnostics,
        );
        // The readers stop at the end of the value; this only guards the loop of syn's parser.
        skip_argument_rest(meta.input);
    }

    /// Reports what syn's meta parser rejects itself: something other than a key where a key
    /// is expected, as in `#[aggregate("account")]` or `#[aggregate(name = "a",, error = E)]`.
    /// syn stops reading the attribute there, so what follows is not checked.
    fn report_malformed(&mut self, result: syn::Result<()>, diagnostics: &mut Diagnostics) {
        if let Err(error) = result {
            self.malformed = true;
            let attribute = &self.attribute;
            let message = if self.known.is_empty() {
                takes_no_arguments(attribute)
            } else if let Some(positional) = self.positional_name(error.span()) {
                // `#[projection("balances")]`, as `tracing` or `axum` attributes are written.
                format!(
                    "`#[{attribute}]` takes its name as `name = {positional}`, not as a bare \
                     string: write `#[{attribute}(name = {positional})]`"
                )
            } else {
                format!(
                    "expected `key = value` in `#[{attribute}]`; {}",
                    expected_keys(self.known)
                )
            };
            diagnostics.push(syn::Error::new(error.span(), message));
        }
    }
}

impl ArgSet {
    /// The string literal at `span` when it stands where a key should be and the attribute
    /// takes a `name` (as in `#[projection("balances")]`), as written.
    fn positional_name(&self, span: proc_macro2::Span) -> Option<String> {
        if !self.known.contains(&"name") {
            return None;
        }
        let text = span.source_text()?;
        let lit: LitStr = syn::parse_str(&text).ok()?;
        Some(format!("{:?}", lit.value()))
    }
}

/// The value of one known argument, read by the macro that knows what the key takes.
pub(crate) struct Value<'m, 'a> {
    /// The argument, its input just after the key.
    meta: &'m ParseNestedMeta<'a>,
    /// The key.
    key: &'m Ident,
    /// The attribute's name, for messages.
    attribute: &'m str,
}

impl Value<'_, '_> {
    /// The key, to choose how to read the value.
    pub(crate) fn key(&self) -> String {
        self.key.to_string()
    }

    /// The value as a `T` (any syn syntax tree, such as a `Type`), or `None` after reporting
    /// at the user's tokens that the key takes `what`, like `example`: when `= value` is
    /// missing, when the `=` is, or when the value does not parse as a `T`.
    pub(crate) fn parse<T: Parse>(
        &self,
        what: &str,
        example: &str,
        diagnostics: &mut Diagnostics,
    ) -> Option<T> {
        let input = self.meta.input;
        let has_eq = input.peek(Token![=]) && input.parse::<Token![=]>().is_ok();
        if at_value_end(input) {
            // Spanned from the key to the `=`, if any.
            diagnostics.push(self.meta.error(self.takes(what, example)));
            return None;
        }
        if !has_eq {
            let tokens = skip_value(input);
            let (key, attribute) = (self.key, self.attribute);
            diagnostics.error(
                tokens,
                format!("expected `=` after `{key}` in `#[{attribute}]`, like `{example}`"),
            );
            return None;
        }
        if let Some(value) = speculate::<T>(input) {
            return Some(value);
        }
        let tokens = skip_value(input);
        diagnostics.error(tokens, self.takes(what, example));
        None
    }

    /// A string literal that is not blank, like `key = "example"`.
    pub(crate) fn string(&self, example: &str, diagnostics: &mut Diagnostics) -> Option<LitStr> {
        let what = "a string literal";
        let example = format!("{} = \"{example}\"", self.key);
        match self.parse::<Expr>(what, &example, diagnostics)? {
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit),
                attrs,
            }) if attrs.is_empty() => {
                if lit.value().trim().is_empty() {
                    let (key, attribute) = (self.key, self.attribute);
                    diagnostics.error(
                        &lit,
                        format!("`{key}` in `#[{attribute}]` must not be empty"),
                    );
                    return None;
                }
                Some(lit)
            }
            Expr::Path(path) if path.attrs.is_empty() && path.qself.is_none() => {
                // `name = NAME` (a constant) or `name = bank_deposited` (quotes forgotten).
                let written = path_display(&path.path);
                let (key, attribute) = (self.key, self.attribute);
                diagnostics.error(
                    &path,
                    format!(
                        "`{key}` in `#[{attribute}]` takes a string literal, not a path: the \
                         macro reads the value as written and cannot look up a constant; write \
                         it in quotes, like `{key} = \"{written}\"`"
                    ),
                );
                None
            }
            other => {
                diagnostics.error(other, self.takes(what, &example));
                None
            }
        }
    }

    /// A type, like `example`; a type written as a string (`error = "BankError"`, as some
    /// attribute macros take them) is reported with the type to write without quotes.
    pub(crate) fn type_(
        &self,
        what: &str,
        example: &str,
        diagnostics: &mut Diagnostics,
    ) -> Option<syn::Type> {
        let input = self.meta.input;
        if input.peek(Token![=]) && input.peek2(LitStr) {
            let fork = input.fork();
            let quoted = fork
                .parse::<Token![=]>()
                .and_then(|_| fork.parse::<LitStr>())
                .ok()
                .filter(|_| at_value_end(&fork));
            if let Some(lit) = quoted {
                input.advance_to(&fork);
                let (key, attribute) = (self.key, self.attribute);
                diagnostics.error(
                    &lit,
                    format!(
                        "`{key}` in `#[{attribute}]` takes {what} written as a type, not as a \
                         string: remove the quotes, `{key} = {}`",
                        lit.value()
                    ),
                );
                return None;
            }
        }
        self.parse::<syn::Type>(what, example, diagnostics)
    }

    /// A name the store records and matches exactly (an event, aggregate or projection name):
    /// a string literal that is not blank and has no whitespace or control character anywhere,
    /// like `key = "example"`. `" bank.deposited "` would be stored with its spaces and never
    /// match a `"bank.deposited"` written elsewhere, so it is refused with the name to write.
    pub(crate) fn name(&self, example: &str, diagnostics: &mut Diagnostics) -> Option<LitStr> {
        let lit = self.string(example, diagnostics)?;
        self.checked_name(lit, false, diagnostics)
    }

    /// `lit` if it is a name the store can match exactly (see [`Value::name`]), reported
    /// otherwise.
    /// `in_list` says how to write the suggestion: `key("...")` rather than `key = "..."`.
    fn checked_name(
        &self,
        lit: LitStr,
        in_list: bool,
        diagnostics: &mut Diagnostics,
    ) -> Option<LitStr> {
        let value = lit.value();
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            let suggestion = value
                .split(|c: char| c.is_whitespace() || c.is_control())
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("_");
            let (key, attribute) = (self.key, self.attribute);
            let write = if in_list {
                format!("{key}({suggestion:?})")
            } else {
                format!("{key} = {suggestion:?}")
            };
            diagnostics.error(
                &lit,
                format!(
                    "`{key}` in `#[{attribute}]` must not contain spaces or control characters: \
                     names are stored and matched exactly, so this one would never match the \
                     same name written without them; write `{write}`"
                ),
            );
            return None;
        }
        Some(lit)
    }

    /// A parenthesized list of names, like `aliases("old.name", "older")`: each a string
    /// literal checked as [`Value::name`] does. Whatever is not is reported and left out.
    pub(crate) fn name_list(&self, example: &str, diagnostics: &mut Diagnostics) -> Vec<LitStr> {
        let input = self.meta.input;
        let (key, attribute) = (self.key, self.attribute);
        let takes = format!(
            "`{key}` in `#[{attribute}]` takes a list of string literals, like `{key}({example:?})`"
        );
        if !input.peek(syn::token::Paren) {
            let tokens = skip_value(input);
            if tokens.is_empty() {
                diagnostics.error(self.key, takes);
            } else {
                diagnostics.error(tokens, takes);
            }
            return Vec::new();
        }
        let list = (|| -> syn::Result<syn::punctuated::Punctuated<Expr, Token![,]>> {
            let content;
            syn::parenthesized!(content in input);
            content.parse_terminated(Expr::parse, Token![,])
        })();
        let list = match list {
            Ok(list) => list,
            Err(error) => {
                diagnostics.push(syn::Error::new(error.span(), takes));
                return Vec::new();
            }
        };
        if list.is_empty() {
            diagnostics.error(
                self.key,
                format!("{takes}; remove `{key}()` if there are none"),
            );
        }
        let mut names = Vec::new();
        for expr in list {
            match expr {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(lit),
                    attrs,
                }) if attrs.is_empty() => {
                    if lit.value().trim().is_empty() {
                        diagnostics
                            .error(&lit, format!("a name in `{key}(...)` must not be empty"));
                        continue;
                    }
                    names.extend(self.checked_name(lit, true, diagnostics));
                }
                other => diagnostics.error(other, &takes),
            }
        }
        names
    }

    /// A parenthesized list of `key = value` arguments, like `upcast(from = 1, with = f)`:
    /// `read` gets each one (a nested [`ParseNestedMeta`]); syntax errors are reported with
    /// `example`. Returns false when the arguments could not be read.
    pub(crate) fn nested(
        &self,
        example: &str,
        diagnostics: &mut Diagnostics,
        mut read: impl FnMut(&ParseNestedMeta<'_>, &mut Diagnostics) -> syn::Result<()>,
    ) -> bool {
        let (key, attribute) = (self.key, self.attribute);
        let takes = format!("`{key}` in `#[{attribute}]` takes arguments, like `{example}`");
        if !self.meta.input.peek(syn::token::Paren) {
            let tokens = skip_value(self.meta.input);
            if tokens.is_empty() {
                diagnostics.error(self.key, takes);
            } else {
                diagnostics.error(tokens, takes);
            }
            return false;
        }
        match self
            .meta
            .parse_nested_meta(|inner| read(&inner, diagnostics))
        {
            Ok(()) => true,
            Err(error) => {
                diagnostics.push(syn::Error::new(error.span(), format!("{error}; {takes}")));
                false
            }
        }
    }

    /// The key's identifier, to span errors about the argument as a whole.
    pub(crate) fn key_ident(&self) -> &Ident {
        self.key
    }

    /// An integer literal that fits a `u32`, like `example`, with its value.
    pub(crate) fn u32(
        &self,
        what: &str,
        example: &str,
        diagnostics: &mut Diagnostics,
    ) -> Option<(LitInt, u32)> {
        match self.parse::<Expr>(what, example, diagnostics)? {
            Expr::Lit(ExprLit {
                lit: Lit::Int(lit),
                attrs,
            }) if attrs.is_empty() => match lit.base10_parse::<u32>() {
                Ok(value) => Some((lit, value)),
                Err(_) => {
                    diagnostics.error(lit, self.takes(what, example));
                    None
                }
            },
            other => {
                diagnostics.error(other, self.takes(what, example));
                None
            }
        }
    }

    /// "`key` in `#[attribute]` takes `what`, like `example`".
    fn takes(&self, what: &str, example: &str) -> String {
        let (key, attribute) = (self.key, self.attribute);
        format!("`{key}` in `#[{attribute}]` takes {what}, like `{example}`")
    }
}

/// The message for arguments given to a helper attribute that takes none.
fn takes_no_arguments(attribute: &str) -> String {
    format!("`#[{attribute}]` takes no arguments: write `#[{attribute}]`")
}

/// The known keys, for messages about an unknown one.
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

/// The known key an unknown one was probably meant to be: serde's `rename` (or `alias`-like
/// spellings) for `name`, a different case, or a typo within two edits.
fn suggest<'k>(given: &str, known: &[&'k str]) -> Option<&'k str> {
    const SYNONYMS: &[(&str, &str)] = &[
        ("rename", "name"),
        ("event_name", "name"),
        ("aggregate_name", "name"),
        ("aggregate_type", "name"),
        ("id", "name"),
        ("err", "error"),
        ("rejection", "error"),
        ("schema_version", "version"),
    ];
    let lower = given.to_lowercase();
    if let Some(&(_, to)) = SYNONYMS.iter().find(|(from, _)| *from == lower) {
        return known.iter().copied().find(|k| *k == to);
    }
    known
        .iter()
        .copied()
        .filter(|k| lower.len() >= 3 && edit_distance(&lower, k) <= 2)
        .min_by_key(|k| edit_distance(&lower, k))
}

/// Levenshtein distance (keys are a few characters long).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            let insert = current[j] + 1;
            let delete = previous[j + 1] + 1;
            current.push(substitute.min(insert).min(delete));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or(0)
}

/// A path as written, for messages (`a::b`, not `a :: b`).
fn path_display(path: &Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// Whether `input` is at the end of an argument's value: at the next `,` or at the end.
fn at_value_end(input: ParseStream<'_>) -> bool {
    input.is_empty() || input.peek(Token![,])
}

/// Parses a whole value as a `T`, advancing `input` only when that succeeds.
fn speculate<T: Parse>(input: ParseStream<'_>) -> Option<T> {
    let fork = input.fork();
    let value = fork.parse::<T>().ok()?;
    if !at_value_end(&fork) {
        return None;
    }
    input.advance_to(&fork);
    Some(value)
}

/// Skips a value that is reported rather than read, returning its tokens (for the error's
/// span). A type such as `Map<K, V>` or an expression is skipped whole, commas included;
/// anything else up to the next `,`.
fn skip_value(input: ParseStream<'_>) -> TokenStream {
    if let Some(ty) = speculate::<syn::Type>(input) {
        return ty.into_token_stream();
    }
    if let Some(expr) = speculate::<Expr>(input) {
        return expr.into_token_stream();
    }
    let mut tokens = TokenStream::new();
    while !at_value_end(input) {
        match input.parse::<TokenTree>() {
            Ok(token) => tokens.extend([token]),
            Err(_) => break,
        }
    }
    tokens
}

/// Skips what follows a key that is reported rather than read: `= value`, `(...)`, or nothing.
fn skip_argument_rest(input: ParseStream<'_>) {
    if input.peek(Token![=]) && input.parse::<Token![=]>().is_err() {
        return;
    }
    if !at_value_end(input) {
        skip_value(input);
    }
}

#[cfg(test)]
mod tests {
    use super::{edit_distance, suggest};

    #[test]
    fn suggestions_for_unknown_keys() {
        assert_eq!(edit_distance("nmae", "name"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(suggest("nmae", &["name", "error"]), Some("name"));
        assert_eq!(suggest("rename", &["name", "version"]), Some("name"));
        assert_eq!(suggest("Error", &["name", "error"]), Some("error"));
        assert_eq!(suggest("snapshot_every", &["name", "error"]), None);
        assert_eq!(suggest("rename", &["version"]), None);
        assert_eq!(suggest("ab", &["abc"]), None, "too short to guess");
    }
}
