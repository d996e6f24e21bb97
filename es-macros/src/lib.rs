//! Procedural macros of `es-core`; use them through `es_core::prelude::*`.
//!
//! # The principle: one mistake, one error, at the user's tokens, naming the fix
//!
//! Every rule these macros enforce follows it, and a new rule must too:
//!
//! - **One mistake gives one error** (at most a handful, when the mistake really is in several
//!   places). After an error the macros still emit a stub of everything they would have
//!   generated (the enums, the trait impls), so that the rest of the crate compiles against the
//!   names it expects and rustc adds no cascade of its own.
//! - **The error is spanned at the user's tokens** that are wrong (the argument, the type, the
//!   receiver), never at the macro call as a whole when something more precise exists.
//! - **The message names the fix**: what to write instead, with an example in the user's own
//!   names where the macro knows them ("add `error = BankError` to `#[aggregate(...)]`").
//! - **What only the type system can see** (an event without `#[derive(Event)]`, a handler error
//!   that does not convert, a state without `Default`) is checked through `es-core` traits that
//!   carry `#[diagnostic::on_unimplemented]`, and the generated code that needs those bounds is
//!   spanned over the user's type, so that rustc's first message is ours and points at it. Each
//!   such bound is stated once, as a `where` clause of the generated impl spanned at the type,
//!   so that the bodies relying on it add no error of their own.
//! - **What lies outside the annotated block** (a second `#[aggregate]` block of the same type):
//!   rustc tells an attribute macro nothing about the rest of the module, so `#[aggregate]`
//!   reads the source file holding its block and finds the others in the same module or
//!   function body. The first block generates the items from the methods of all of them and
//!   every later block is one error saying to merge it, so nothing else cascades. Where the
//!   file cannot be read (a block written by another macro), a hidden marker item makes rustc's
//!   *first* error name the fix.
//! - **A helper attribute used in the wrong place** (`#[command]` outside an `#[aggregate]`
//!   block, `#[on]` outside a `#[projection]` block) is itself a macro that says where it
//!   belongs, instead of rustc's "cannot find attribute".
//!
//! The UI tests under `es-macros/tests/ui` hold one case per rule with the exact message; the
//! table under [Macro rules](#macro-rules) lists them.
//!
//! # Example
//!
//! ```
//! use es_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Deposit { pub amount: u64 }
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "bank.deposited")]
//! pub struct Deposited { pub amount: u64 }
//!
//! #[derive(Debug, Default, Clone, Serialize, Deserialize)]
//! pub struct Account { pub balance: u64 }
//!
//! #[aggregate] // name "account", error `Infallible`
//! impl Account {
//!     #[command]
//!     fn deposit(&self, cmd: Deposit) -> Result<Deposited, std::convert::Infallible> {
//!         Ok(Deposited { amount: cmd.amount })
//!     }
//!     #[apply]
//!     fn deposited(&mut self, e: &Deposited) { self.balance += e.amount; }
//! }
//!
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! pub struct Total { pub amount: u64 }
//!
//! #[projection(name = "total")]
//! impl Total {
//!     #[on]
//!     fn deposited(&mut self, e: &Recorded<Deposited>) { self.amount += e.payload.amount; }
//! }
//!
//! let mut account = Account::default();
//! let events: Vec<AccountEvent> = account.handle(AccountCommand::from(Deposit { amount: 5 })).unwrap();
//! account.apply(&events[0]);
//! assert_eq!((Account::TYPE, account.balance), ("account", 5));
//! assert_eq!(events[0].event_type(), "bank.deposited");
//! assert!(Total::accepts("bank.deposited"));
//! ```
//!
//! - `#[derive(Event)]` implements `es_core::event::Event` for one event type, with an optional
//!   `#[event(name = "...", version = N, aliases("..."), upcast(from = K, with = f))]`.
//! - `#[aggregate(name = "...", error = Type)]` on an inherent impl block with `#[command]` and
//!   `#[apply]` methods generates the `{Type}Command` and `{Type}Event` enums and the
//!   `es_core::aggregate::Aggregate` impl.
//! - `#[projection(name = "...")]` on an inherent impl block with `#[on]` methods implements
//!   `es_core::projection::Projection`.
//! - `#[process_manager(name = "...")]` on an inherent impl block with `#[on(start)]`, `#[on]`,
//!   `#[on(deadline)]` and `#[rejected]` methods implements `es_core::process::ProcessManager`.
//!
//! The macros check the shape of every handler and report each mistake at the tokens to change;
//! what only the type system can check (an event without `#[derive(Event)]`, a command returning
//! an event that has no `#[apply]`) is reported by rustc through `es-core`'s diagnostics.
//! `#[command]`, `#[apply]`, `#[on]` and `#[rejected]` are read by the block's macro; on their
//! own they only report that they are out of place.
//!
//! # Macro rules
//!
//! Every rule below has a UI case under `es-macros/tests/ui/<macro>/fail/` whose `.stderr` holds
//! the exact output; the table quotes the start of each message (`X`, `E` stand for the user's
//! names). Where only rustc can see the mistake, `es-core` traits with
//! `#[diagnostic::on_unimplemented]` make its first message ours.
//!
//! Two shapes that look like mistakes are accepted: a `#[command]` may return the aggregate's
//! own event enum (`Result<AccountEvent, _>`, `Result<Vec<AccountEvent>, _>`,
//! `Result<Option<AccountEvent>, _>`) for a variable number of mixed events, and an `#[on]`
//! handler may take `&Recorded<AccountEvent>` to get every event of that aggregate (its filter is
//! the enum's names and the aggregate's type, checked before decoding).
//!
//! | mistake | the message (UI case) |
//! | --- | --- |
//! | **all the macros** | |
//! | an unknown argument, misspelt or serde-style (`nmae`, `rename`, `errors`) | ``unknown argument `rename` in `#[event]`; did you mean `name`? expected one of …`` (`unknown_argument`, `serde_style_keys`, `typo_arguments`) |
//! | an argument given twice | ``duplicate argument `name` in `#[projection]`: it is given earlier too; remove one of the two`` (`duplicate_key`, `bad_arguments`, `bad_name`) |
//! | a name that is not a string (`name = 42`, `name = NAME`, `name = bank_deposited`) | `` … takes a string literal, like `name = "…"` `` / ``… takes a string literal, not a path: … write it in quotes`` (`bad_values`, `bad_name`) |
//! | a positional name (`#[projection("totals")]`) | `` `#[projection]` takes its name as `name = "totals"`, not as a bare string `` (`bad_name`, `malformed_arguments`) |
//! | malformed arguments (`name "x"`, `name =`, `#[event = "x"]`) | ``expected `=` after `name` …`` / `` expected `#[event(key = value, ...)]`, not `#[event = ...]` `` (`malformed_arguments`, `malformed`) |
//! | an empty name, or one with spaces or control characters (`" bank.deposited "`) | ``… must not be empty`` / `` … must not contain spaces or control characters: names are stored and matched exactly …; write `name = "bank.deposited"` `` (`name_whitespace` in each group) |
//! | the macro on something that is not an inherent impl block, on a trait impl, or a generic impl | `` `#[aggregate]` goes on an inherent impl block, not on … `` / ``does not support generic impl blocks`` (`not_an_impl`, `trait_impl`, `generic_impl`, `not_inherent`, `generic_projection`) |
//! | a handler that is `async`, `unsafe`, generic or variadic | `` `#[on]` handlers must be synchronous and pure: remove `async` … `` (`async_handler`) |
//! | a helper with arguments (`#[command(retries = 3)]`) | ``unknown argument `retries` in `#[command]`; it takes no arguments`` / `` `#[command]` takes no arguments: write `#[command]` `` (`unknown_argument`, `malformed_arguments`) |
//! | **`#[derive(Event)]`** | |
//! | a generic type or a union | `` `#[derive(Event)]` does not support generic types … `` (`generic`) |
//! | `version = 0`, `version = "2"`, `#[event]` without arguments | ``event versions start at 1 …`` / `` `version` … takes a positive integer `` / `` `#[event]` needs arguments `` (`bad_values`) |
//! | an upcaster chain with a missing link (`version = 3, upcast(from = 2, …)`) | `` events stored at version 1 cannot reach `version = 3`: the upcaster chain has no link from it; add `upcast(from = 1, with = ...)` `` (`upcast_missing_link`) |
//! | two links from one version | ``a second upcaster from version 1: the chain takes one per version; remove one of the two …`` (`upcast_duplicate_link`) |
//! | `from` at or above `version`, `from = 0` | `` … so `from = 2` has nothing to lift to: remove this `upcast(...)`, or raise the event's version to `version = 3` `` / `` … there is no version 0 to upcast from: remove this `upcast(from = 0, ...)` `` (`upcast_from_too_high`, `upcast_from_zero`) |
//! | `upcast(from = 1)` without `with`, an unknown key, an upcaster of the wrong type | ``this `upcast(...)` needs `with = <function>` …`` / ``unknown argument in `upcast(...)` …`` / rustc's ``mismatched types`` at the function (`upcast_malformed`) |
//! | an alias that is the event's own name, given twice, with spaces, or not a list | ``… is this event's own name, not an alias …`` / ``the alias `w` is given twice …`` (`aliases_bad`) |
//! | **`#[aggregate]`** | |
//! | `#[command]` or `#[apply]` outside an `#[aggregate]` block (a second, plain impl block; a projection) | `` `#[command]` only works inside an `#[aggregate]` impl block: move this method into … `` (`helper_outside`) |
//! | a second `#[aggregate]` block for one type | `` `Account` has more than one `#[aggregate]` impl block: merge them into one (move this block's methods into the first `#[aggregate] impl Account`) ``, one error per extra block and nothing else (`two_aggregate_blocks`, `three_blocks_in_fn`); two types of one name in two modules are told apart (`pass/same_name_two_modules`) |
//! | a handler's error without `error = …` | `` `deposit` returns the error `BankError`, but this `#[aggregate]` has no `error = ...` …: add `error = BankError` … `` (`missing_error_argument`); behind a `Result<T>` alias: `` a command handler's error `BankError` does not convert into the aggregate's error `Infallible` `` with the same fix in its note (`missing_error_alias`) |
//! | a handler's error that does not convert into `error = E` | `` a command handler's error `String` does not convert into the aggregate's error `BankError` `` (`wrong_error_type`) |
//! | `error = "BankError"` (quoted), or not a type | ``… written as a type, not as a string: remove the quotes`` (`bad_arguments`) |
//! | `error = E` where `E` is not a `std::error::Error` | `` `BankError` is not a `std::error::Error`, so it cannot be an aggregate's `error = ...` `` (`error_not_std_error`) |
//! | the state is not `Default` | ``the aggregate `Account` has no `Default` state`` (`state_not_default`) |
//! | the state is not `Serialize`/`Deserialize` | rustc's ``the trait bound `Account: serde::Serialize` is not satisfied`` with serde's "consider adding `#[derive(serde::Serialize)]`" (`state_not_serializable`) |
//! | a `#[command]` with the wrong receiver, argument count, a command by reference, or a wrong return type | ``a `#[command]` handler takes `&self` …`` / ``… takes exactly one argument, the command …`` / ``… by value, not by reference`` / ``… returns `Result<Events, Error>` …`` (`command_receiver`, `command_arguments`, `command_return_type`) |
//! | `&self` after the command (`fn deposit(cmd: Deposit, &self)`) | rustc's ``unexpected `self` parameter in function …`` (`argument_order`) |
//! | a command that is not `Clone` | `` the command `Deposit` is not `Clone` `` (the kernel re-runs commands after a conflict) (`command_not_clone`) |
//! | two handlers for one command, or two command types with one name | ``two `#[command]` handlers for the command `Deposit` …; keep one`` / ``two different types are named `Deposit`, `v1::Deposit` (in `deposit`) and `v2::Deposit` …; rename one of them`` (`duplicate_command`, `same_variant_name`) |
//! | two generic commands with one name (`Vec<Deposit>`, `Vec<Withdraw>`) | `` `Vec<Deposit>` and `Vec<Withdraw>` would both be the variant `AccountCommand::Vec` …; wrap each in a named command struct `` (`generic_command_types`) |
//! | a method marked both `#[command]` and `#[apply]` | ``a method is either a `#[command]` handler … or an `#[apply]` handler …, not both`` (`command_and_apply`) |
//! | an `#[apply]` with the wrong receiver, the event by value or `&mut`, a return type | ``an `#[apply]` handler takes `&mut self` …`` / `` … takes the event by reference: `e: &E` `` / ``… returns nothing …`` (`apply_signature`, `apply_return_type`) |
//! | an `#[apply]` taking `&Recorded<E>` | ``an `#[apply]` handler takes the event itself, `e: &Deposited` …`` (`apply_recorded`) |
//! | two `#[apply]` for one event, or two events with one stored name | ``two `#[apply]` handlers for the event …`` / ``… have the same `Event::NAME` …`` (`duplicate_apply`, `duplicate_event_name`) |
//! | an event's alias that is another event's name or alias in the same aggregate | ``an alias of `Withdrawn` or `Deposited` (`#[event(aliases(...))]`) is the other's name or alias …`` (`alias_clash`); a hand-written `EventSet` gets `BuildError::AmbiguousEventName` from `Kernel::builder().build()` |
//! | `snapshot_version = 0` or not an integer | ``snapshot versions start at 1 (the default) …`` (`snapshot_version_zero`) |
//! | `keep = ` anything but `after_snapshot` or `all` | `` `keep` in `#[aggregate]` takes `after_snapshot` or `all` … `` (`keep_unknown`) |
//! | an event without `#[derive(Event)]` | `` `Deposited` is not an event `` (`event_without_derive`) |
//! | a command returning an event that has no `#[apply]` | `` a command handler cannot return `Vec<Closed>` as events of `AccountEvent` `` (`event_without_apply`) |
//! | **`#[projection]` and `#[process_manager]`** (their `#[on]` handlers) | |
//! | no `name` | `` `#[projection]` needs a name, its unique checkpoint key … `` (`projection/missing_name`) |
//! | the state is not `Default` (a projection), not `Default + Serialize + DeserializeOwned` (a process manager) | ``the projection `Totals` has no `Default` state`` / `` the process manager state `Flow` must be `Default + Serialize + DeserializeOwned` `` (`projection/state_not_default`, `process_manager/state_not_serde`) |
//! | an `#[on]` with the wrong receiver, argument count or argument (`&E`, `Recorded<E>` by value) | ``an `#[on]` handler takes `&mut self` …`` / ``an `#[on(start)]` handler takes two arguments: …`` / `` an `#[on]` handler takes the event as `&Recorded<MyEvent>` …: write `e: &Recorded<B>` `` (`projection/on_signature`, `process_manager/handler_arguments`) |
//! | an `#[on]` returning something other than `()` or `Result<(), E: Error>` | `` an `#[on]` handler cannot return `u64` `` (`projection/bad_return`) |
//! | an `#[on]` type that is neither an event nor an aggregate's event enum | `` `Deposited` is not an event `` (`projection/event_without_derive`) |
//! | two `#[on]` for one type | ``two `#[on]` handlers for the event `Deposited` …; merge them into one`` (`projection/duplicate_on`) |
//! | `#[on]` types that share a stored name (two `Deposited` from two modules; an enum and one of its events) | `` `bank::Deposited` and `wallet::Deposited` share a stored event name, so one stored event would match two `#[on]` handlers … `` (`projection/shared_name`, `projection/enum_and_member`) |
//! | **`#[projection]`** | |
//! | `#[on]` outside a `#[projection]` block | `` `#[on]` only works inside a `#[projection]` impl block … `` (`on_outside`) |
//! | `filter = f` where `f` is not a `fn(&RecordedEvent) -> bool` | rustc's ``mismatched types`` at the path (`filter_signature`) |
//! | **`#[process_manager]`** | |
//! | no `#[on(start)]` handler | ``the process manager `Flow` has no `#[on(start)]` handler, so no instance is ever created: mark the handler of the event that begins a workflow with `#[on(start)]` …`` (`no_start`) |
//! | `#[on(x)]` with anything but `start` or `deadline` | `` `#[on]` takes no argument except `start` or `deadline` … `` (`on_argument`) |
//! | an `#[on(deadline)]` taking `&Recorded<D>` or `D` by value, or without `out` | ``an `#[on(deadline)]` handler takes the deadline itself, by reference (it is not a stored event): write `d: &TimedOut` `` / ``an `#[on(deadline)]` handler takes two arguments: …`` (`deadline_arguments`) |
//! | two `#[on(deadline)]` for one type | ``two `#[on(deadline)]` handlers for the deadline `TimedOut` …; merge them into one`` (`deadline_twice`) |
//! | a deadline type without `#[derive(Event)]` (deadlines are stored by name and version) | `` `TimedOut` is not an event `` (`deadline_not_event`) |
//! | a handler whose second argument is not `out: &mut Commands`, a `#[rejected]` not taking `&Rejection` | ``the second argument of an `#[on(start)]` handler is where it sends commands: `out: &mut Commands` …`` / ``a `#[rejected]` handler takes the rejected command as `&Rejection` …`` / ``a process manager handler takes `&mut self` (the instance's state) …`` (`commands_argument`, `handler_arguments`) |
//! | two `#[rejected]` handlers | ``two `#[rejected]` handlers: `refused` and `refused_again`; a process manager has one …`` (`two_rejected`) |
//! | `#[rejected]` outside a `#[process_manager]` block | `` `#[rejected]` only works inside a `#[process_manager]` impl block … `` (`rejected_outside`) |

mod aggregate;
mod attr;
mod diagnostics;
mod event;
mod handler;
mod inherent;
mod misplaced;
mod on;
mod pii;
mod process_manager;
mod projection;
mod span;

use proc_macro::TokenStream;

/// Implements `es_core::aggregate::Aggregate` for the type of an inherent impl block.
///
/// Arguments (all optional): `name = "..."`, the aggregate type name recorded in streams
/// (default: the type's name in snake_case), `error = Type`, the rejection error of commands
/// (default: `std::convert::Infallible`), and `snapshot_version = N` (default 1), the version
/// of the state's form in snapshots: bump it when a snapshot of the old state must not be
/// restored (see `es_core::aggregate::Aggregate::SNAPSHOT_VERSION`), and `keep =
/// after_snapshot` (default `keep = all`): once the kernel has written a snapshot it removes
/// the events the snapshot covers, and the stream rehydrates from the snapshot (see
/// `es_core::aggregate::Aggregate::KEEP_AFTER_SNAPSHOT`).
///
/// In the block, each `#[command]` method `fn x(&self, cmd: C) -> Result<R, Error>` handles one
/// command type `C`, where `R` is one event, `Vec<_>` or `Option<_>` of events, `()`, or a tuple
/// of events (trait `IntoEvents`), or the generated `{Type}Event` itself (one, `Vec<_>` or
/// `Option<_>` of it: a variable number of mixed events); each `#[apply]` method
/// `fn x(&mut self, e: &E)` folds one event type `E`. Next to the type, the macro generates `pub enum {Type}Command` (a variant per
/// command type, with `From` impls), `pub enum {Type}Event` (a variant per `#[apply]`, with
/// `From` impls and `EventSet`) and `impl Aggregate for Type`. The methods stay ordinary methods.
///
/// ```
/// # use es_core::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, Serialize, Deserialize)]
/// # pub struct Deposit { pub amount: u64 }
/// # #[derive(Debug, Clone, Serialize, Deserialize, Event)]
/// # pub struct Deposited { pub amount: u64 }
/// # #[derive(Debug, thiserror::Error)]
/// # #[error("rejected")]
/// # pub struct BankError;
/// # #[derive(Debug, Default, Serialize, Deserialize)]
/// # pub struct BankAccount { pub balance: u64 }
/// #[aggregate(name = "bank_account", error = BankError)]
/// impl BankAccount {
///     #[command]
///     fn deposit(&self, cmd: Deposit) -> Result<Deposited, BankError> {
///         Ok(Deposited { amount: cmd.amount })
///     }
///     #[apply]
///     fn deposited(&mut self, e: &Deposited) {
///         self.balance += e.amount;
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn aggregate(attr: TokenStream, item: TokenStream) -> TokenStream {
    aggregate::aggregate(attr.into(), item.into()).into()
}

/// Implements `es_core::projection::Projection` for the type of an inherent impl block.
///
/// The argument `name = "..."` (required) is the projection's unique name, its checkpoint key.
/// Each `#[on]` method `fn x(&mut self, e: &Recorded<E>)` handles one event type `E` and returns
/// `()` or `Result<(), Error>`. `E` may also be an aggregate's generated `{Type}Event`: that
/// handler gets every event of that aggregate, and only events of streams of its aggregate
/// type (checked before decoding). Events of other types are not accepted, so never decoded.
/// No stored event may match two handlers: `#[on]` types that share a stored name are a
/// compile error naming both. The state is saved with checkpoints when the type implements
/// `Serialize` and `Deserialize`.
///
/// ```
/// # use std::collections::BTreeMap;
/// # use es_core::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, Serialize, Deserialize, Event)]
/// # pub struct Deposited { pub amount: u64 }
/// #[derive(Debug, Default, Clone, Serialize, Deserialize)]
/// pub struct Balances { pub by_account: BTreeMap<String, i64> }
///
/// #[projection(name = "balances")]
/// impl Balances {
///     #[on]
///     fn deposited(&mut self, e: &Recorded<Deposited>) {
///         *self.by_account.entry(e.stream.aggregate_id.clone()).or_default() += e.payload.amount as i64;
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn projection(attr: TokenStream, item: TokenStream) -> TokenStream {
    projection::projection(attr.into(), item.into()).into()
}

/// Implements `es_core::event::Event`: the event's recorded `NAME` (default: the type's name)
/// and schema `VERSION` (default: 1), set with `#[event(name = "...", version = N)]`.
///
/// Schema evolution: `upcast(from = K, with = f)` (repeatable), where
/// `f: fn(serde_json::Value) -> Result<serde_json::Value, UpcastError>` lifts a payload stored
/// at version `K` to `K + 1`; once one is given, every version from 1 to `N - 1` needs one (a
/// missing link, a duplicate, `from = 0` or `from >= N` is a compile error). `aliases("old",
/// ...)` lists older names that decode as this event.
///
/// ```
/// # use es_core::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// #[derive(Debug, Clone, Serialize, Deserialize, Event)]
/// #[event(name = "bank.withdrawn", version = 2, aliases("withdrawn"),
///         upcast(from = 1, with = withdrawn_v1))]
/// pub struct Withdrawn { pub amount: u64, pub currency: String }
///
/// fn withdrawn_v1(mut v: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
///     v["currency"] = "EUR".into();
///     Ok(v)
/// }
///
/// assert_eq!((Withdrawn::NAME, Withdrawn::VERSION), ("bank.withdrawn", 2));
/// assert_eq!(<Withdrawn as Event>::ALIASES, ["withdrawn"]);
/// ```
///
/// Fields holding personal data take `#[pii(subject = field_or_fn, redacted = expr)]`: the
/// kernel stores them encrypted with the subject's key, and once the subject is forgotten they
/// read as `redacted` (default: `Default::default()`). See `es_core::erasure`.
#[proc_macro_derive(Event, attributes(event, pii))]
pub fn derive_event(item: TokenStream) -> TokenStream {
    event::derive(item.into()).into()
}

/// `#[derive(Pii)]`: implements `es_core::erasure::PiiFields` from the struct's
/// `#[pii(subject = field_or_fn, redacted = expr)]` fields, so that an aggregate state's
/// personal data is stored encrypted in snapshots (`#[aggregate]` picks it up).
///
/// ```
/// use es_core::erasure::PiiFields;
/// use es_core::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Default, Clone, Serialize, Deserialize, Pii)]
/// pub struct Customer {
///     pub id: String,
///     #[pii(subject = id)]
///     pub email: String,
///     #[pii(subject = Customer::subject, redacted = Some(0))]
///     pub born: Option<u16>,
/// }
///
/// impl Customer {
///     fn subject(&self) -> &str { &self.id }
/// }
///
/// let c = Customer { id: "c-1".into(), email: "a@b.c".into(), born: Some(1815) };
/// let fields = c.pii_fields();
/// assert_eq!(fields.len(), 2);
/// assert_eq!(fields[1].subject, "c-1");
/// assert_eq!(fields[1].redacted, serde_json::json!(0));
/// ```
#[proc_macro_derive(Pii, attributes(pii))]
pub fn derive_pii(item: TokenStream) -> TokenStream {
    pii::derive(item.into()).into()
}

/// Marks a command handler inside an `#[aggregate]` impl block; `#[aggregate]` reads and
/// removes it. Anywhere else it is an error saying so.
///
/// ```compile_fail
/// use es_core::prelude::*;
/// # #[derive(Clone)] pub struct Deposit;
/// pub struct Account;
/// impl Account {
///     #[command] // error: `#[command]` only works inside an `#[aggregate]` impl block
///     fn deposit(&self, _: Deposit) {}
/// }
/// ```
#[proc_macro_attribute]
pub fn command(attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced::command(attr.into(), item.into()).into()
}

/// Marks an event applier inside an `#[aggregate]` impl block; `#[aggregate]` reads and removes
/// it. Anywhere else it is an error saying so.
///
/// ```compile_fail
/// use es_core::prelude::*;
/// # pub struct Deposited;
/// pub struct Account;
/// impl Account {
///     #[apply] // error: `#[apply]` only works inside an `#[aggregate]` impl block
///     fn deposited(&mut self, _: &Deposited) {}
/// }
/// ```
#[proc_macro_attribute]
pub fn apply(attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced::apply(attr.into(), item.into()).into()
}

/// Implements `es_core::process::ProcessManager` for the type of an inherent impl block: a
/// workflow across aggregates, one state per instance.
///
/// Arguments: `name = "..."` (required), the manager's unique name (its checkpoint key and the
/// prefix of its command ids); `key = f` (optional), a `fn(&RecordedEvent) -> Option<String>`
/// that names an event's instance instead of its correlation id.
///
/// Handlers: `#[on(start)]` (creates the instance when its key has none) and `#[on]` (continues
/// one), `fn(&mut self, e: &Recorded<E>, out: &mut Commands)`; at most one `#[rejected]`,
/// `fn(&mut self, r: &Rejection, out: &mut Commands)`; `#[on(deadline)]`,
/// `fn(&mut self, d: &D, out: &mut Commands)`, for a deadline of type `D` (with
/// `#[derive(Event)]`) that the instance set with `out.schedule(..)` and that fell due. Each
/// returns `()` or `Result<(), E>`.
/// The state must be `Default + Serialize + DeserializeOwned`.
///
/// ```
/// use es_core::prelude::*;
/// use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, Serialize, Deserialize)]
/// # pub struct Ship;
/// #[derive(Debug, Clone, Serialize, Deserialize, Event)]
/// pub struct OrderPlaced { pub order: String }
/// #[derive(Debug, Clone, Serialize, Deserialize, Event)]
/// pub struct Shipped;
/// # #[derive(Debug, Default, Serialize, Deserialize)]
/// # pub struct Warehouse;
/// # #[aggregate(name = "warehouse")]
/// # impl Warehouse {
/// #     #[command]
/// #     fn ship(&self, _: Ship) -> Result<Shipped, std::convert::Infallible> { Ok(Shipped) }
/// #     #[apply]
/// #     fn shipped(&mut self, _: &Shipped) {}
/// # }
///
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// pub struct Fulfilment { pub order: String }
///
/// #[process_manager(name = "fulfilment")]
/// impl Fulfilment {
///     #[on(start)]
///     fn placed(&mut self, e: &Recorded<OrderPlaced>, out: &mut Commands) {
///         self.order = e.payload.order.clone();
///         out.dispatch::<Warehouse>("main", Ship);
///     }
///     #[on]
///     fn shipped(&mut self, _: &Recorded<Shipped>, out: &mut Commands) {
///         out.finish();
///     }
///     #[rejected]
///     fn refused(&mut self, _: &Rejection, out: &mut Commands) {
///         out.finish();
///     }
/// }
/// assert_eq!(<Fulfilment as ProcessManager>::NAME, "fulfilment");
/// ```
#[proc_macro_attribute]
pub fn process_manager(attr: TokenStream, item: TokenStream) -> TokenStream {
    process_manager::process_manager(attr.into(), item.into()).into()
}

/// Marks the rejection handler inside a `#[process_manager]` impl block; `#[process_manager]`
/// reads and removes it. Anywhere else it is an error saying so.
#[proc_macro_attribute]
pub fn rejected(attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced::rejected(attr.into(), item.into()).into()
}

/// Marks an event handler inside a `#[projection]` impl block; `#[projection]` reads and
/// removes it. Anywhere else it is an error saying so.
///
/// ```compile_fail
/// use es_core::prelude::*;
/// # pub struct Deposited;
/// #[derive(Default)]
/// pub struct Total;
/// impl Total {
///     #[on] // error: `#[on]` only works inside a `#[projection]` impl block
///     fn deposited(&mut self, _: &Recorded<Deposited>) {}
/// }
/// ```
#[proc_macro_attribute]
pub fn on(attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced::on(attr.into(), item.into()).into()
}
