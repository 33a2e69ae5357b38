//! Procedural macros for the `axactor` actor runtime: `#[actor]` and `#[msg]`.
//!
//! Use them through the `axactor` crate (`axactor::actor`, `axactor::msg`),
//! which re-exports them; the generated code refers to `::axactor::...`, so the
//! `axactor` crate must be a dependency under that name.
//!
//! # `#[actor]`
//!
//! Put `#[actor]` on the inherent `impl` block of an actor type and mark the
//! message handlers with `#[msg]`:
//!
//! ```ignore
//! // Not compiled here: a proc-macro crate cannot depend on `axactor`,
//! // which the generated code targets. The same example is tested in axactor.
//! use axactor::{actor, Context, ExitReason};
//!
//! pub struct Counter { n: i64 }
//!
//! #[actor]
//! impl Counter {
//!     pub fn new() -> Self { Self { n: 0 } }               // plain method, unchanged
//!     #[msg] fn inc(&mut self) { self.n += 1 }               // a tell
//!     #[msg] fn add(&mut self, by: i64) -> i64 {             // an ask
//!         self.n += by;
//!         self.n
//!     }
//!     #[msg] async fn nap(&mut self, ctx: &mut Context, ms: u64) {
//!         // `ctx`, if wanted, comes right after `&mut self`
//!     }
//!     async fn on_start(&mut self, ctx: &mut Context) {}    // hooks: recognised by name
//!     fn on_stop(&mut self, reason: &ExitReason) {}
//! }
//! ```
//!
//! Next to the impl block (re-emitted with the `#[msg]` attributes removed, so
//! every method stays an ordinary inherent method), this generates:
//!
//! * `pub enum CounterMsg`: one struct-like variant per `#[msg]` method, named
//!   in CamelCase (`get_value` → `GetValue`), with the arguments as fields; an
//!   ask's variant also carries `__reply: axactor::ReplyTo<T>`. Its `Debug`
//!   prints only the variant name.
//! * `pub struct CounterRef`, the typed handle (`Clone`, `Debug`,
//!   `From<LocalRef<CounterMsg>>`), with
//!   * for each tell `m(args)`: `m(&self, args) -> Result<(), TellError>` (fails
//!     if the mailbox is full) and `async m_wait(&self, args)` (waits for space);
//!   * for each ask `m(args) -> T`: `async m`, `m_wait`, `m_timeout` and
//!     `m_wait_timeout` returning `Result<T, AskError>` (the `_timeout` ones
//!     take a trailing `Duration`);
//!   * `pid`, `stop`, `stop_wait`, `mailbox_len`, `is_closed`, `as_local_ref`.
//! * `impl axactor::Actor for Counter`, whose `handle` dispatches each message
//!   to its method (awaiting `async` ones, passing the context to those that
//!   take it, and replying to asks), and whose `on_start`, `on_stop`,
//!   `on_exit` and `on_down` delegate to methods of the same names, if defined.
//!
//! A method returning nothing (or `()`) is a tell; any other return type makes
//! an ask. Lifecycle hooks may be sync or async, with or without the leading
//! `ctx: &mut Context`, and take, after it: nothing (`on_start`),
//! `reason: &ExitReason` (`on_stop`), `from: Pid, reason: ExitReason`
//! (`on_exit`), or `id: MonitorId, pid: Pid, reason: ExitReason` (`on_down`).
//!
//! # Diagnostics
//!
//! Misuse is reported all at once, each error pointing at the offending
//! method or argument and saying how to fix it; when there is any error only
//! the user's impl block is emitted (no generated items), so a mistake does
//! not cascade into unrelated errors. The rules: `#[msg]` methods take
//! `&mut self`, optionally `&mut Context` first, then plainly named arguments
//! of owned types (no borrowed references, no `impl Trait`), and return an
//! owned type; they are not generic or `unsafe`; their names are not reserved
//! (`pid`, `stop`, `stop_wait`, `mailbox_len`, `is_closed`, `as_local_ref`,
//! and `clone`, which would shadow `Clone::clone` on the ref), do not end in
//! `_wait` or `_timeout`, and map to distinct CamelCase variants; arguments
//! are not named `__reply` or `__timeout`. Hooks have the signatures above and
//! are not also `#[msg]`. The impl block is inherent and not generic.
//!
//! # `#[actor(remote)]`
//!
//! Generates everything `#[actor]` does, plus what the cluster layer needs to
//! host the actor and address it from any node. The generated code names
//! `::axactor_cluster`, so the crate must depend on `axactor-cluster` (and
//! on `axactor`; serde and tokio are reached through their re-exports):
//!
//! * `pub enum CounterTell` (one struct-like variant per tell, with the
//!   arguments as fields), `pub enum CounterAsk` (one per ask) and
//!   `pub enum CounterReply` (one tuple variant per ask, holding its return
//!   value): serde enums, `Debug` printing the variant name. The variants
//!   follow the order of the `#[msg]` methods, and that order is the wire
//!   format (postcard encodes a variant by its index): reordering, adding or
//!   removing message methods changes the contract between nodes.
//! * `pub struct CounterContract`, implementing `axactor::RefContract` with
//!   those three enums.
//! * `impl axactor_cluster::RemoteActor for Counter`: turns contract values
//!   into `CounterMsg`s (an ask's reply arrives as a `CounterReply`).
//! * `pub struct CounterRemoteRef` (`Clone`, `Debug`, `Send`, `Sync`), wrapping
//!   `axactor_cluster::RemoteHandle<Counter>`, with, for each tell `m(args)`:
//!   `async m(&self, args)` (sent, not acknowledged) and `async m_wait`
//!   (acknowledged once in the owner's mailbox); for each ask `m(args) -> T`:
//!   `async m(&self, args)` and `async m_timeout(&self, args, Duration)`, all
//!   returning `Result<_, RemoteError>`; plus `key()` and `async monitor()`.
//!
//! A `Context` parameter is not part of the contract. Every argument and
//! return type must be `axactor::RemoteSafe` (serde `Serialize +
//! DeserializeOwned`, `Send`, `'static`): one that is not is reported at the
//! type, naming it. Messages cannot be named `key` or `monitor`.
//!
//! # `#[msg]`
//!
//! Only meaningful inside an `#[actor]` impl block, where `#[actor]` consumes
//! it before it is ever resolved: write it bare, without importing it (an
//! imported `msg` would be reported as an unused import). Anywhere else it is
//! a compile error.

mod ast;
mod expand;
mod expand_remote;
mod validate;

use proc_macro::TokenStream;
use quote::quote;

/// Turns an inherent impl block into an actor: generates the `XMsg` enum, the
/// `XRef` handle and the `axactor::Actor` impl; with `#[actor(remote)]`, also
/// the wire contract, the `RemoteActor` impl and `XRemoteRef`. See the
/// [crate docs](crate).
#[proc_macro_attribute]
pub fn actor(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = ast::ActorArgs::parse(attr.into());
    let item = proc_macro2::TokenStream::from(item);
    let mut imp = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Impl(imp)) => imp,
        Ok(_) => {
            let err = validate::not_an_impl(proc_macro2::Span::call_site()).to_compile_error();
            return quote!(#item #err).into();
        }
        Err(e) => {
            let err = e.to_compile_error();
            return quote!(#item #err).into();
        }
    };
    let parsed = ast::lower(args, &mut imp);
    let generated = match validate::check(parsed) {
        Ok(actor) if actor.remote => {
            let local = expand::local(&actor);
            let remote = expand_remote::remote(&actor);
            quote!(#local #remote)
        }
        Ok(actor) => expand::local(&actor),
        Err(errors) => errors.to_compile_error(),
    };
    quote!(#imp #generated).into()
}

/// Marks a method of an `#[actor]` impl block as a message handler. It is
/// consumed by `#[actor]`; used anywhere else it is a compile error.
#[proc_macro_attribute]
pub fn msg(attr: TokenStream, item: TokenStream) -> TokenStream {
    let _ = attr;
    let item = proc_macro2::TokenStream::from(item);
    let err = validate::msg_outside_actor(proc_macro2::Span::call_site()).to_compile_error();
    quote!(#err #item).into()
}
