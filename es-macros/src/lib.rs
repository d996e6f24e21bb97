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
//! - **Where rustc must have the last word** (the macro cannot see a second `#[aggregate]` block
//!   of the same type), the generated code makes rustc's *first* error name the fix.
//! - **A helper attribute used in the wrong place** (`#[command]` outside an `#[aggregate]`
//!   block, `#[on]` outside a `#[projection]` block) is itself a macro that says where it
//!   belongs, instead of rustc's "cannot find attribute".
//!
//! The UI tests under `es-macros/tests/ui` hold one case per rule with the exact message; the
//! README's "Macro rules" section lists them.
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
//!
//! The macros check the shape of every handler and report each mistake at the tokens to change;
//! what only the type system can check (an event without `#[derive(Event)]`, a command returning
//! an event that has no `#[apply]`) is reported by rustc through `es-core`'s diagnostics.
//! `#[command]`, `#[apply]` and `#[on]` are read by the block's macro; on their own they only
//! report that they are out of place.

mod aggregate;
mod attr;
mod diagnostics;
mod event;
mod handler;
mod inherent;
mod misplaced;
mod on;
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
/// restored (see `es_core::aggregate::Aggregate::SNAPSHOT_VERSION`).
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
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(item: TokenStream) -> TokenStream {
    event::derive(item.into()).into()
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
/// `fn(&mut self, r: &Rejection, out: &mut Commands)`. Each returns `()` or `Result<(), E>`.
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
