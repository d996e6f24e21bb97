//! What `#[projection]` and `#[process_manager]` share: both annotate an inherent impl block
//! whose `#[on]` methods each handle one event type `E` through `&Recorded<E>`. Written once
//! here: reading the `name = "..."` argument ([`block`]), checking the methods and the handlers
//! ([`check`]), and writing the `accepts`/`handle` parts of the trait impl ([`expand`]). Each
//! macro keeps only what differs (a projection's state persistence and filters; a process
//! manager's `out: &mut Commands`, `#[on(start)]`, `#[rejected]` and key).

mod block;
mod check;
mod expand;

pub(crate) use block::{OnMacro, expand_block, parse_args};
pub(crate) use check::{
    OnHandler, article, check_method, for_each_method, meant_type, on_handler, push_handler,
    returned,
};
pub(crate) use expand::{accepts_fn, fallback, handle_body, matches_fn, on_impl};
