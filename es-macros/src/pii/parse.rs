//! Reads the `#[pii(subject = .., redacted = ..)]` fields of a struct into a [`PiiModel`].

use syn::{Data, DeriveInput, Expr, Fields, Ident, LitStr, Path, Type};

use crate::diagnostics::Diagnostics;

/// The personal-data fields of one struct.
pub(crate) struct PiiModel {
    /// The fields, in declaration order.
    pub(crate) fields: Vec<PiiFieldModel>,
}

/// One `#[pii]` field.
pub(crate) struct PiiFieldModel {
    /// Its name in the JSON (`#[serde(rename = "..")]` or the field's name).
    pub(crate) json_name: String,
    /// Its type.
    pub(crate) ty: Type,
    /// Where the subject comes from.
    pub(crate) subject: Subject,
    /// `redacted = expr`, if given.
    pub(crate) redacted: Option<Expr>,
}

/// `subject = ..`: a field of the struct or a function of it.
pub(crate) enum Subject {
    /// A field.
    Field(Ident),
    /// A function `fn(&Self) -> impl PiiSubject`.
    Function(Path),
}

/// Reads every `#[pii]` field of `input`; errors go to `diagnostics`.
pub(crate) fn parse(input: &DeriveInput, diagnostics: &mut Diagnostics) -> PiiModel {
    let mut fields = Vec::new();
    let named = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => Some(named),
            _ => None,
        },
        _ => None,
    };
    let Some(named) = named else {
        report_misplaced(input, diagnostics);
        return PiiModel { fields };
    };
    let names: Vec<&Ident> = named
        .named
        .iter()
        .filter_map(|f| f.ident.as_ref())
        .collect();
    for field in &named.named {
        let Some(ident) = &field.ident else { continue };
        let mut attrs = field.attrs.iter().filter(|a| a.path().is_ident("pii"));
        let Some(attr) = attrs.next() else { continue };
        for extra in attrs {
            diagnostics.error(extra, "`#[pii]` is given twice on this field: keep one");
        }
        let mut subject = None;
        let mut redacted = None;
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("subject") {
                let path: Path = meta.value()?.parse()?;
                subject = Some(path);
                Ok(())
            } else if meta.path.is_ident("redacted") {
                let expr: Expr = meta.value()?.parse()?;
                redacted = Some(expr);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown argument of `#[pii]`: it takes `subject = <field or function>` and \
                     an optional `redacted = <expression>`",
                ))
            }
        });
        if let Err(e) = parsed {
            diagnostics.push(e);
            continue;
        }
        let Some(path) = subject else {
            diagnostics.error(
                attr,
                format!(
                    "`#[pii]` needs the subject whose key encrypts `{ident}`: \
                     `#[pii(subject = <field>)]`, for example `#[pii(subject = {})]`",
                    names
                        .iter()
                        .find(|n| **n != ident)
                        .map_or_else(|| "customer_id".to_owned(), ToString::to_string)
                ),
            );
            continue;
        };
        let subject = match path.get_ident() {
            Some(name) if names.contains(&name) => Subject::Field(name.clone()),
            Some(name) => {
                let fields: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                diagnostics.error(
                    name,
                    format!(
                        "`{name}` is not a field of `{}` (its fields: {}): `subject = ..` names \
                         a field holding the subject's id, or a function \
                         `fn(&{}) -> impl PiiSubject` by its path (`self::{name}`)",
                        input.ident,
                        fields.join(", "),
                        input.ident,
                    ),
                );
                continue;
            }
            None => Subject::Function(path),
        };
        fields.push(PiiFieldModel {
            json_name: serde_rename(field).unwrap_or_else(|| ident.to_string()),
            ty: field.ty.clone(),
            subject,
            redacted,
        });
    }
    if !fields.is_empty()
        && let Some(attr) = input.attrs.iter().find(|a| renames_all(a))
    {
        diagnostics.error(
            attr,
            "`#[pii]` fields cannot be found under `#[serde(rename_all = ..)]`: rename the \
             fields one by one with `#[serde(rename = \"..\")]`",
        );
    }
    PiiModel { fields }
}

/// `#[pii]` on something other than a named field of a struct.
fn report_misplaced(input: &DeriveInput, diagnostics: &mut Diagnostics) {
    let attrs: Vec<&syn::Attribute> = match &input.data {
        Data::Struct(data) => data.fields.iter().flat_map(|f| &f.attrs).collect(),
        Data::Enum(data) => data
            .variants
            .iter()
            .flat_map(|v| v.fields.iter().flat_map(|f| &f.attrs))
            .collect(),
        Data::Union(_) => Vec::new(),
    };
    for attr in attrs.into_iter().filter(|a| a.path().is_ident("pii")) {
        diagnostics.error(
            attr,
            "`#[pii]` marks a named field of a struct: put the personal data in a struct with \
             named fields",
        );
    }
}

/// The field's `#[serde(rename = "..")]`, if any.
fn serde_rename(field: &syn::Field) -> Option<String> {
    let mut name = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                if let Ok(value) = meta.value()
                    && let Ok(lit) = value.parse::<LitStr>()
                {
                    name = Some(lit.value());
                }
            } else if meta.input.peek(syn::Token![=]) {
                let _: Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                let _ = meta.parse_nested_meta(|inner| {
                    if inner.input.peek(syn::Token![=]) {
                        let _: Expr = inner.value()?.parse()?;
                    }
                    Ok(())
                });
            }
            Ok(())
        });
    }
    name
}

/// Whether `attr` is `#[serde(rename_all = ..)]` (or holds it).
fn renames_all(attr: &syn::Attribute) -> bool {
    if !attr.path().is_ident("serde") {
        return false;
    }
    let mut found = false;
    let _ = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("rename_all") {
            found = true;
        }
        if meta.input.peek(syn::Token![=]) {
            let _: Expr = meta.value()?.parse()?;
        } else if meta.input.peek(syn::token::Paren) {
            let _ = meta.parse_nested_meta(|inner| {
                if inner.input.peek(syn::Token![=]) {
                    let _: Expr = inner.value()?.parse()?;
                }
                Ok(())
            });
        }
        Ok(())
    });
    found
}
