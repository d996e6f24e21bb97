//! Writes the command enum, the event enum, their `EventSet` impl and the `Aggregate` impl from
//! a validated [`Plan`]; or, after errors, a stub of the same items.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Type};

use super::check::Plan;
use crate::handler::type_display;
use crate::span::call_over;

/// The full expansion (the user's impl block is emitted by the caller).
pub(super) fn expand(plan: &Plan) -> TokenStream {
    let enums = enums(plan);
    let event_set = event_set(plan);
    let enum_uses = enum_uses(plan, true);
    let aggregate = aggregate(plan);
    let once = one_block(plan);
    quote! {
        #once
        #enums
        #event_set
        #enum_uses
        #aggregate
    }
}

/// Items that steer rustc's errors about the block as a whole, emitted before everything else
/// (so that their errors come first):
/// - a second `#[aggregate]` block of the same type that [`super::siblings`] could not find
///   (its source file is not readable, e.g. the blocks were written by another macro) defines
///   this hidden marker again, and rustc's "the name `..._has_two_aggregate_impl_blocks_...` is
///   defined multiple times", spanned at the second block's type, comes first and says what to
///   change (the duplicated enums and impls follow);
/// - a state without `Default` fails a bound whose message says to derive it, before rustc's
///   own "`Default` is not satisfied" on the `Aggregate` impl; an `error = ...` type that is
///   not a `std::error::Error`, likewise.
fn one_block(plan: &Plan) -> TokenStream {
    let ident = &plan.ident;
    let marker = quote::format_ident!(
        "{}_has_two_aggregate_impl_blocks_merge_them_into_one",
        ident,
        span = ident.span()
    );
    let bound = quote_spanned!(ident.span()=> #ident: ::es_core::__private::AggregateState);
    // Only when written: the default, `Infallible`, is an error type.
    let error_check = plan.error_written.then(|| {
        let error = &plan.error;
        let bound = quote_spanned!(error.span()=> #error: ::es_core::__private::RejectionError);
        quote! {
            const _: () = {
                #[allow(dead_code)]
                fn error_is_std_error() where #bound {}
            };
        }
    });
    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code, clippy::empty_enum)]
        enum #marker {}

        const _: () = {
            #[allow(dead_code)]
            fn state_starts_from_default() where #bound {}
        };

        #error_check
    }
}

/// What the event enum can be used as besides an `EventSet`: a command handler's return (one,
/// `Vec` or `Option` of the enum, for a variable number of mixed events) and the event of an
/// `#[on]` handler that takes every event of this aggregate.
///
/// With `bounds`, the `OnEvents` impl states the `#[apply]` types' `Event` bounds like the
/// `EventSet` impl it depends on (the fallback's `EventSet` has none).
fn enum_uses(plan: &Plan, bounds: bool) -> TokenStream {
    let Plan {
        type_name,
        event_enum,
        ..
    } = plan;
    let bounds = if bounds {
        event_bounds(plan)
    } else {
        TokenStream::new()
    };
    quote! {
        impl ::es_core::event::IntoEvents<#event_enum> for #event_enum {
            fn into_events(self) -> ::std::vec::Vec<#event_enum> {
                ::std::vec![self]
            }
        }

        impl ::es_core::event::IntoEvents<#event_enum> for ::std::vec::Vec<#event_enum> {
            fn into_events(self) -> ::std::vec::Vec<#event_enum> {
                self
            }
        }

        impl ::es_core::event::IntoEvents<#event_enum> for ::core::option::Option<#event_enum> {
            fn into_events(self) -> ::std::vec::Vec<#event_enum> {
                ::core::iter::Iterator::collect(::core::iter::IntoIterator::into_iter(self))
            }
        }

        #[allow(private_bounds)]
        impl ::es_core::projection::OnEvents for #event_enum where #bounds {
            const AGGREGATE_TYPE: ::core::option::Option<&'static str> =
                ::core::option::Option::Some(#type_name);
        }
    }
}

/// The stub emitted next to errors: the enums with every variant that could be read, and
/// `EventSet` and `Aggregate` impls that compile without looking at the handlers, so that the
/// rest of the crate sees the names it expects.
pub(super) fn fallback(plan: &Plan) -> TokenStream {
    let enums = enums(plan);
    let Plan {
        ident,
        type_name,
        error,
        command_enum,
        event_enum,
        ..
    } = plan;
    let header = header(ident);
    let enum_uses = enum_uses(plan, false);
    quote! {
        #enums
        #enum_uses

        impl ::es_core::event::EventSet for #event_enum {
            const NAMES: &'static [&'static str] = &[];
            fn event_type(&self) -> &'static str {
                ::core::unimplemented!()
            }
            fn event_version(&self) -> u32 {
                ::core::unimplemented!()
            }
            fn encode(&self) -> ::core::result::Result<::std::vec::Vec<u8>, ::es_core::event::EventError> {
                ::core::unimplemented!()
            }
            fn decode(
                _: &str,
                _: u32,
                _: &[u8],
            ) -> ::core::result::Result<Self, ::es_core::event::EventError> {
                ::core::unimplemented!()
            }
        }

        #header {
            const TYPE: &'static str = #type_name;
            type Command = #command_enum;
            type Event = #event_enum;
            type Error = #error;
            fn handle(
                &self,
                _: #command_enum,
            ) -> ::core::result::Result<::std::vec::Vec<#event_enum>, #error> {
                ::core::unimplemented!()
            }
            fn apply(&mut self, _: &#event_enum) {
                ::core::unimplemented!()
            }
        }
    }
}

/// `{Type}Command` and `{Type}Event`, with their `From` impls.
fn enums(plan: &Plan) -> TokenStream {
    let Plan {
        ident,
        command_enum,
        event_enum,
        commands,
        applies,
        ..
    } = plan;
    let command_doc = format!(
        "The commands of [`{ident}`], one variant per `#[command]` method (generated by `#[aggregate]`)."
    );
    let event_doc = format!(
        "The events of [`{ident}`], one variant per `#[apply]` method (generated by `#[aggregate]`)."
    );
    let (command_variants, command_froms) = enum_parts(
        command_enum,
        commands.iter().map(|c| (&c.variant, &c.ty, &c.method)),
        &format!("handled by `{ident}::"),
    );
    let (event_variants, event_froms) = enum_parts(
        event_enum,
        applies.iter().map(|a| (&a.variant, &a.ty, &a.method)),
        &format!("applied by `{ident}::"),
    );
    // `Clone` by hand, bounded per command type through `CommandClone` (spanned at the type):
    // a command that is not `Clone` gets one error that says why it must be.
    let clone_bounds = commands.iter().map(|c| {
        let ty = &c.ty;
        quote_spanned!(ty.span()=> #ty: ::es_core::__private::CommandClone)
    });
    let clone_arms = commands.iter().map(|c| {
        let variant = &c.variant;
        quote! {
            #command_enum::#variant(ref command) => #command_enum::#variant(
                ::es_core::__private::CommandClone::clone_command(command),
            )
        }
    });
    // The enums are `pub` (the macro cannot see the type's visibility); domain types that are
    // less visible only make them less usable, which is no reason to warn.
    quote! {
        #[doc = #command_doc]
        #[allow(private_interfaces)]
        pub enum #command_enum {
            #(#command_variants,)*
        }
        #(#command_froms)*

        #[allow(private_bounds)]
        impl ::core::clone::Clone for #command_enum where #(#clone_bounds,)* {
            fn clone(&self) -> Self {
                match *self {
                    #(#clone_arms,)*
                }
            }
        }

        #[doc = #event_doc]
        #[derive(::core::fmt::Debug, ::core::clone::Clone)]
        #[allow(private_interfaces)]
        pub enum #event_enum {
            #(#event_variants,)*
        }
        #(#event_froms)*
    }
}

/// The documented variants of a generated enum and a `From` impl per variant, from
/// `(variant, type, method)` triples; `role` starts each variant's doc ("handled by `T::").
fn enum_parts<'a>(
    enum_ident: &Ident,
    members: impl Iterator<Item = (&'a Ident, &'a Type, &'a Ident)>,
    role: &str,
) -> (Vec<TokenStream>, Vec<TokenStream>) {
    members
        .map(|(variant, ty, method)| {
            let doc = format!("[`{variant}`], {role}{method}`.");
            let declaration = quote! {
                #[doc = #doc]
                #variant(#ty)
            };
            let from = quote! {
                impl ::core::convert::From<#ty> for #enum_ident {
                    fn from(value: #ty) -> Self {
                        #enum_ident::#variant(value)
                    }
                }
            };
            (declaration, from)
        })
        .unzip()
}

/// `impl EventSet for {Type}Event`, and a compile-time check that its event names differ.
fn event_set(plan: &Plan) -> TokenStream {
    let Plan {
        event_enum,
        applies,
        ..
    } = plan;
    let event = |ty: &syn::Type| quote_spanned!(ty.span()=> <#ty as ::es_core::event::Event>);
    let names = applies.iter().map(|a| {
        let event = event(&a.ty);
        quote!(#event::NAME)
    });
    let aliases = applies.iter().map(|a| {
        let event = event(&a.ty);
        quote!(#event::ALIASES)
    });
    let rust_types = applies.iter().map(|a| {
        let ty = &a.ty;
        quote!((::core::any::TypeId::of::<#ty>(), ::core::any::type_name::<#ty>()))
    });
    let type_arms = applies.iter().map(|a| {
        let (variant, event) = (&a.variant, event(&a.ty));
        quote!(#event_enum::#variant(_) => #event::NAME)
    });
    let version_arms = applies.iter().map(|a| {
        let (variant, event) = (&a.variant, event(&a.ty));
        quote!(#event_enum::#variant(_) => #event::VERSION)
    });
    let encode_arms = applies.iter().map(|a| {
        let (variant, event) = (&a.variant, event(&a.ty));
        quote!(#event_enum::#variant(ref event) => #event::encode_payload(event))
    });
    let decode_branches = applies.iter().map(|a| {
        let (variant, event) = (&a.variant, event(&a.ty));
        quote! {
            if #event::answers_to(event_type) {
                return ::core::result::Result::map(
                    #event::decode_payload(event_version, payload),
                    #event_enum::#variant,
                );
            }
        }
    });
    // Two event types under one name could not be told apart when decoding: a compile-time
    // check per pair, reported at the second type.
    let mut pair_checks = Vec::new();
    for (j, second) in applies.iter().enumerate() {
        for first in &applies[..j] {
            let message = format!(
                "`{}` and `{}` have the same `Event::NAME`, so their stored events could not be \
                 told apart: give one of them another `#[event(name = \"...\")]`",
                type_display(&first.ty),
                type_display(&second.ty),
            );
            let (a, b) = (event(&first.ty), event(&second.ty));
            pair_checks.push(quote_spanned! {second.ty.span()=>
                if same(#a::NAME, #b::NAME) {
                    ::core::panic!(#message);
                }
            });
            // An alias of one equal to the other's name, or one alias of both: stored events
            // under it could not be told apart either.
            let (first_name, second_name) = (type_display(&first.ty), type_display(&second.ty));
            let alias_message = format!(
                "an alias of `{second_name}` or `{first_name}` (`#[event(aliases(...))]`) is \
                 the other's name or alias, so stored events under it could not be told apart: \
                 remove it from the `aliases(...)` of one of them"
            );
            pair_checks.push(quote_spanned! {second.ty.span()=>
                if listed(#a::NAME, #b::ALIASES)
                    || listed(#b::NAME, #a::ALIASES)
                    || overlap(#a::ALIASES, #b::ALIASES)
                {
                    ::core::panic!(#alias_message);
                }
            });
        }
    }
    let distinct_names = if pair_checks.is_empty() {
        TokenStream::new()
    } else {
        quote! {
            const _: () = {
                const fn same(a: &str, b: &str) -> bool {
                    let (a, b) = (a.as_bytes(), b.as_bytes());
                    if a.len() != b.len() {
                        return false;
                    }
                    let mut i = 0;
                    while i < a.len() {
                        if a[i] != b[i] {
                            return false;
                        }
                        i += 1;
                    }
                    true
                }
                const fn listed(name: &str, list: &[&str]) -> bool {
                    let mut i = 0;
                    while i < list.len() {
                        if same(name, list[i]) {
                            return true;
                        }
                        i += 1;
                    }
                    false
                }
                const fn overlap(a: &[&str], b: &[&str]) -> bool {
                    let mut i = 0;
                    while i < a.len() {
                        if listed(a[i], b) {
                            return true;
                        }
                        i += 1;
                    }
                    false
                }
                #(#pair_checks)*
            };
        }
    };
    let bounds = event_bounds(plan);
    quote! {
        #[allow(private_bounds)]
        impl ::es_core::event::EventSet for #event_enum where #bounds {
            const NAMES: &'static [&'static str] = &[#(#names),*];
            const NAME_ALIASES: &'static [&'static [&'static str]] = &[#(#aliases),*];

            fn event_types() -> ::std::vec::Vec<(::core::any::TypeId, &'static str)> {
                ::std::vec![#(#rust_types),*]
            }

            fn event_type(&self) -> &'static str {
                match *self {
                    #(#type_arms,)*
                }
            }

            fn event_version(&self) -> u32 {
                match *self {
                    #(#version_arms,)*
                }
            }

            fn encode(&self) -> ::core::result::Result<::std::vec::Vec<u8>, ::es_core::event::EventError> {
                match *self {
                    #(#encode_arms,)*
                }
            }

            fn decode(
                event_type: &str,
                event_version: u32,
                payload: &[u8],
            ) -> ::core::result::Result<Self, ::es_core::event::EventError> {
                #(#decode_branches)*
                let _ = (event_version, payload);
                ::core::result::Result::Err(::es_core::event::EventError::UnknownEvent {
                    event_type: ::std::borrow::ToOwned::to_owned(event_type),
                })
            }
        }

        #distinct_names
    }
}

/// `impl Aggregate for Type`.
fn aggregate(plan: &Plan) -> TokenStream {
    let Plan {
        ident,
        type_name,
        error,
        command_enum,
        event_enum,
        commands,
        applies,
        snapshot_version,
        keep_after_snapshot,
        ..
    } = plan;
    let snapshot_version = snapshot_version.map(|v| quote!(const SNAPSHOT_VERSION: u32 = #v;));
    let keep = keep_after_snapshot.then(|| {
        quote!(
            const KEEP_AFTER_SNAPSHOT: bool = true;
        )
    });
    let handle_arms = commands.iter().map(|c| {
        let (variant, method) = (&c.variant, &c.method);
        let into_events = quote!(::es_core::event::IntoEvents::<#event_enum>::into_events);
        let into_events = match &c.events {
            Some(events) => call_over(into_events, quote!(events), events),
            None => quote!(#into_events(events)),
        };
        let from = call_over(
            quote!(::es_core::__private::FromRejection::from_rejection),
            quote!(error),
            &c.error_type,
        );
        quote! {
            #command_enum::#variant(command) => match Self::#method(self, command) {
                ::core::result::Result::Ok(events) => ::core::result::Result::Ok(#into_events),
                ::core::result::Result::Err(error) => ::core::result::Result::Err(#from),
            }
        }
    });
    let apply_arms = applies.iter().map(|a| {
        let (variant, method) = (&a.variant, &a.method);
        quote!(#event_enum::#variant(ref event) => Self::#method(self, event))
    });
    let error = quote_spanned!(error.span()=> #error);
    let header = header(ident);
    let bounds = event_bounds(plan);
    // Stated again here (as on the command enum's `Clone`), so that `Aggregate::Command: Clone`
    // holds under the same assumption and a command that is not `Clone` gets one error.
    let command_bounds = commands.iter().map(|c| {
        let ty = &c.ty;
        quote_spanned!(ty.span()=> #ty: ::es_core::__private::CommandClone)
    });
    quote! {
        #[allow(private_bounds)]
        #header where #bounds #(#command_bounds,)* {
            const TYPE: &'static str = #type_name;
            #snapshot_version
            #keep
            type Command = #command_enum;
            type Event = #event_enum;
            type Error = #error;

            // The conversions are spanned at the user's types (for their error messages), so
            // lints would see them as the user's code: an identity `From` for the common case
            // of the aggregate's own error type, unreachable code for `Infallible`.
            #[allow(unreachable_code, clippy::useless_conversion)]
            fn handle(
                &self,
                command: #command_enum,
            ) -> ::core::result::Result<::std::vec::Vec<#event_enum>, #error> {
                match command {
                    #(#handle_arms,)*
                }
            }

            fn apply(&mut self, event: &#event_enum) {
                match *event {
                    #(#apply_arms,)*
                }
            }

            fn pii_fields(&self) -> ::std::vec::Vec<::es_core::erasure::PiiField> {
                #[allow(unused_imports)]
                use ::es_core::erasure::__probe::{ViaNone as _, ViaPii as _};
                (&&::es_core::erasure::__probe::Probe(self)).pii_fields_of()
            }
        }
    }
}

/// `E: Event` for every `#[apply]` type, spanned at the type: stated on the impls so that a type
/// without `#[derive(Event)]` is reported there, once, and the bodies (which assume it) add no
/// error of their own.
fn event_bounds(plan: &Plan) -> TokenStream {
    let bounds = plan.applies.iter().map(|a| {
        let ty = &a.ty;
        quote_spanned!(ty.span()=> #ty: ::es_core::event::Event)
    });
    quote!(#(#bounds,)*)
}

/// `impl Aggregate for Type`, spanned at the type's name: an unsatisfied supertrait bound (`Default`,
/// serde, `Send`) is reported once, at the user's `impl Type`.
fn header(ident: &syn::Ident) -> TokenStream {
    quote_spanned!(ident.span()=> impl ::es_core::aggregate::Aggregate for #ident)
}
