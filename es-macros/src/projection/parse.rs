//! Reads `#[projection(name = "...", aggregate = "...", filter = f, partition_by = k)]`; the impl block is read
//! by [`crate::inherent::parse`].

use proc_macro2::TokenStream;
use syn::LitStr;

use crate::diagnostics::Diagnostics;
use crate::inherent::MacroInfo;
use crate::on::{self, OnMacro};

/// How `#[projection]` is named in messages, its helpers and its arguments.
pub(super) const MACRO: OnMacro = OnMacro {
    info: MacroInfo {
        name: "projection",
        helpers: &["on"],
        example: "#[projection(name = \"balances\")] impl MyProjection { #[on] fn ... }",
    },
    keys: &["name", "aggregate", "filter", "partition_by"],
    name_example: "balances",
    name_purpose: "its unique checkpoint key",
};

/// The attribute's arguments.
pub(super) struct Args {
    /// `name = "..."`, required (a placeholder after errors).
    pub(super) name: LitStr,
    /// `aggregate = "..."`: only streams of that aggregate type.
    pub(super) aggregate: Option<LitStr>,
    /// `filter = path`: a `fn(&RecordedEvent) -> bool` over the envelope.
    pub(super) filter: Option<syn::Path>,
    /// `partition_by = "stream"` or `partition_by = path`: the state is kept per key.
    pub(super) partition_by: Option<PartitionBy>,
}

/// How a partitionable projection's events are keyed.
pub(super) enum PartitionBy {
    /// `partition_by = "stream"`: by the event's stream.
    Stream,
    /// `partition_by = path`: by what a `fn(&RecordedEvent) -> String` returns.
    Key(syn::Path),
}

/// Parses the attribute arguments: the required `name`, and the optional `aggregate` and
/// `filter`.
pub(super) fn parse_args(attr: TokenStream, diagnostics: &mut Diagnostics) -> Args {
    let (mut aggregate, mut filter, mut partition_by) = (None, None, None);
    let name = on::parse_args(&MACRO, attr, diagnostics, |value, diagnostics| match value
        .key()
        .as_str()
    {
        "aggregate" => aggregate = value.name("bank_account", diagnostics),
        "filter" => {
            filter = value.parse::<syn::Path>(
                "the path of a `fn(&RecordedEvent) -> bool`",
                "filter = only_vip",
                diagnostics,
            );
        }
        "partition_by" => {
            let what = "`\"stream\"` or the path of a `fn(&RecordedEvent) -> String`";
            let example = "partition_by = \"stream\"";
            partition_by = match value.parse::<syn::Expr>(what, example, diagnostics) {
                Some(syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(lit),
                    ..
                })) if lit.value() == "stream" => Some(PartitionBy::Stream),
                Some(syn::Expr::Path(path)) if path.qself.is_none() => {
                    Some(PartitionBy::Key(path.path))
                }
                Some(other) => {
                    diagnostics.error(
                        other,
                        format!("`partition_by` takes {what}, like `{example}` or `partition_by = tenant_of`"),
                    );
                    None
                }
                None => None,
            };
        }
        _ => {}
    });
    Args {
        name,
        aggregate,
        filter,
        partition_by,
    }
}
