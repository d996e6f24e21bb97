//! The inherent impl block that `#[aggregate]`, `#[projection]` and `#[process_manager]` annotate: checks that it is
//! one, names its type, and takes out the helper attributes of its methods.

use proc_macro2::{Group, TokenStream, TokenTree};
use quote::quote;
use syn::{Attribute, Ident, ImplItem, Item, ItemImpl, Signature, Type};

use crate::diagnostics::Diagnostics;
use crate::handler::take_helpers;

/// A method (or, by mistake, another item) carrying helper attributes.
pub(crate) struct MarkedMethod {
    /// The helper attributes, in order; never empty.
    pub(crate) attrs: Vec<Attribute>,
    /// The method's signature; `None` when the helpers are on an item that is not a method.
    pub(crate) sig: Option<Signature>,
}

impl MarkedMethod {
    /// Whether the first helper is `name`.
    pub(crate) fn is(&self, name: &str) -> bool {
        self.attrs.first().is_some_and(|a| a.path().is_ident(name))
    }
}

/// An inherent impl block of a concrete type.
pub(crate) struct InherentImpl {
    /// The impl block with the helper attributes removed: emitted as is.
    pub(crate) item: ItemImpl,
    /// The type's name.
    pub(crate) ident: Ident,
    /// The items carrying helpers, in order.
    pub(crate) methods: Vec<MarkedMethod>,
}

/// What the annotating macro is, for messages.
pub(crate) struct MacroInfo {
    /// `aggregate` or `projection`.
    pub(crate) name: &'static str,
    /// Its helper attributes.
    pub(crate) helpers: &'static [&'static str],
    /// How a correct use looks, e.g. `#[aggregate] impl MyAggregate { ... }`.
    pub(crate) example: &'static str,
}

/// Parses the annotated item. Returns `Err` with the tokens to emit instead (the item, helper
/// attributes removed where possible) when it is not an inherent impl block of a concrete type.
pub(crate) fn parse(
    item: TokenStream,
    info: &MacroInfo,
    diagnostics: &mut Diagnostics,
) -> Result<InherentImpl, TokenStream> {
    let name = info.name;
    let parsed = match syn::parse2::<Item>(item.clone()) {
        Ok(parsed) => parsed,
        Err(error) => {
            // rustc has usually reported the same syntax error already; the helper attributes
            // are removed anyway, so that they do not add "only works inside" errors.
            diagnostics.push(error);
            return Err(strip_helpers(item, info.helpers));
        }
    };
    let mut item = match parsed {
        Item::Impl(item) => item,
        other => {
            diagnostics.error(
                item_head(&other),
                format!(
                    "`#[{name}]` goes on an inherent impl block, not on this item: `{}`",
                    info.example
                ),
            );
            return Err(quote!(#other));
        }
    };
    let methods = collect_methods(&mut item, info.helpers);
    let mut usable = true;
    if let Some((_, trait_path, _)) = &item.trait_ {
        diagnostics.error(
            trait_path,
            format!(
                "`#[{name}]` goes on an inherent impl block, not on a trait impl (it writes the \
                 trait impl itself): `{}`",
                info.example
            ),
        );
        usable = false;
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        diagnostics.error(
            &item.generics,
            format!(
                "`#[{name}]` does not support generic impl blocks: write it on the impl of a \
                 concrete type"
            ),
        );
        usable = false;
    }
    let ident = match &*item.self_ty {
        Type::Path(p) if p.qself.is_none() => match p.path.segments.last() {
            Some(segment) if segment.arguments.is_none() => Some(segment.ident.clone()),
            // Already reported with the impl's generics.
            Some(_) if !usable => None,
            Some(segment) => {
                diagnostics.error(
                    &segment.arguments,
                    format!(
                        "`#[{name}]` does not support generic types: write it on the impl of a \
                         concrete type"
                    ),
                );
                None
            }
            None => None,
        },
        other => {
            diagnostics.error(
                other,
                format!("`#[{name}]` needs an impl block of a named struct or enum"),
            );
            None
        }
    };
    match ident {
        Some(ident) if usable => Ok(InherentImpl {
            item,
            ident,
            methods,
        }),
        _ => Err(quote!(#item)),
    }
}

/// Adds the marked methods of `others` (blocks of the same type written elsewhere, which their
/// own expansions emit) to `input`'s; `input`'s item is unchanged.
pub(crate) fn merge(
    mut input: InherentImpl,
    others: Vec<ItemImpl>,
    helpers: &[&str],
) -> InherentImpl {
    for mut other in others {
        input.methods.extend(collect_methods(&mut other, helpers));
    }
    input
}

/// Removes the helper attributes from the impl block and returns the items that carried them.
fn collect_methods(item: &mut ItemImpl, helpers: &[&str]) -> Vec<MarkedMethod> {
    let mut methods = Vec::new();
    for impl_item in &mut item.items {
        let (attrs, sig) = match impl_item {
            ImplItem::Fn(method) => (&mut method.attrs, Some(&method.sig)),
            ImplItem::Const(c) => (&mut c.attrs, None),
            ImplItem::Type(t) => (&mut t.attrs, None),
            ImplItem::Macro(m) => (&mut m.attrs, None),
            _ => continue,
        };
        let attrs = take_helpers(attrs, helpers);
        if !attrs.is_empty() {
            methods.push(MarkedMethod {
                attrs,
                sig: sig.cloned(),
            });
        }
    }
    methods
}

/// The tokens naming an item, for errors about the item as a whole.
fn item_head(item: &Item) -> TokenStream {
    match item {
        Item::Struct(s) => {
            let (token, ident) = (&s.struct_token, &s.ident);
            quote!(#token #ident)
        }
        Item::Enum(e) => {
            let (token, ident) = (&e.enum_token, &e.ident);
            quote!(#token #ident)
        }
        Item::Fn(f) => {
            let (token, ident) = (&f.sig.fn_token, &f.sig.ident);
            quote!(#token #ident)
        }
        Item::Trait(t) => {
            let (token, ident) = (&t.trait_token, &t.ident);
            quote!(#token #ident)
        }
        Item::Mod(m) => {
            let (token, ident) = (&m.mod_token, &m.ident);
            quote!(#token #ident)
        }
        other => quote!(#other),
    }
}

/// Removes `#[helper ...]` attributes at the token level, for an item syn cannot parse.
fn strip_helpers(tokens: TokenStream, helpers: &[&str]) -> TokenStream {
    let mut out = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(token) = iter.next() {
        match token {
            TokenTree::Punct(pound) if pound.as_char() == '#' => {
                let is_helper = matches!(iter.peek(), Some(TokenTree::Group(group))
                    if group.delimiter() == proc_macro2::Delimiter::Bracket
                        && matches!(group.stream().into_iter().next(),
                            Some(TokenTree::Ident(ident)) if helpers.iter().any(|h| ident == h)));
                if is_helper {
                    iter.next();
                } else {
                    out.push(TokenTree::Punct(pound));
                }
            }
            TokenTree::Group(group) => {
                let mut stripped =
                    Group::new(group.delimiter(), strip_helpers(group.stream(), helpers));
                stripped.set_span(group.span());
                out.push(TokenTree::Group(stripped));
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}
