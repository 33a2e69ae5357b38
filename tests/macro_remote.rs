//! Exercises what `#[actor(remote)]` generates on top of the local expansion:
//! the wire contract (`XTell`, `XAsk`, `XReply`, `XContract`), the
//! `axactor_cluster::RemoteActor` impl converting contract values into local
//! messages, and the signatures of `XRemoteRef`.
//!
//! Routing is not exercised here (a `RemoteHandle` comes from a cluster
//! node): contract values round-trip through postcard, and converted
//! messages are delivered to a locally spawned actor through `local_ref`.
//!
//! The lints below are denied so that generated code that would warn in a
//! user's crate fails this test.
#![deny(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    private_interfaces,
    private_bounds,
    dead_code,
    unused
)]

use std::fmt::Debug;
use std::time::Duration;

use axactor::{Context, LocalRef, RefContract, RemoteSafe, SpawnConfig, System, actor};
use axactor_cluster::{AskOf, DownEvent, RemoteActor, RemoteError, ReplyOf, TellOf};
use serde::{Deserialize, Serialize};

/// A user type crossing the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    title: String,
    tags: Vec<String>,
}

/// An account exercising tells, asks, async handlers, the context and
/// several argument types.
#[derive(Debug, Default)]
pub struct Account {
    balance: i64,
    log: Vec<String>,
    stored: Vec<(String, Vec<u8>, Note, Option<u32>)>,
}

#[actor(remote)]
impl Account {
    /// Adds `amount` (a tell).
    #[msg]
    fn deposit(&mut self, amount: i64) {
        self.balance += amount;
    }

    /// The balance (an ask without arguments).
    #[msg]
    fn balance(&mut self) -> i64 {
        self.balance
    }

    /// An ask taking the context, replying with a `Result`.
    #[msg]
    fn withdraw(&mut self, ctx: &mut Context, amount: i64) -> Result<i64, String> {
        let _ = ctx.pid();
        if amount > self.balance {
            return Err(format!("insufficient funds: {}", self.balance));
        }
        self.balance -= amount;
        Ok(self.balance)
    }

    /// An async tell.
    #[msg]
    async fn record(&mut self, line: String) {
        tokio::task::yield_now().await;
        self.log.push(line);
    }

    /// Several arguments of different types; replies with how many are stored.
    #[msg]
    fn store(&mut self, name: String, bytes: Vec<u8>, note: Note, tag: Option<u32>) -> usize {
        self.stored.push((name, bytes, note, tag));
        self.stored.len()
    }

    /// An async ask with the context.
    #[msg]
    async fn history(&mut self, ctx: &mut Context) -> Vec<String> {
        tokio::task::yield_now().await;
        let _ = ctx.pid();
        self.log.clone()
    }

    /// What was stored, as a user type.
    #[msg]
    fn last_note(&mut self) -> Option<Note> {
        self.stored.last().map(|s| s.2.clone())
    }

    /// A tell taking the context: stops the actor.
    #[msg]
    fn close(&mut self, ctx: &mut Context) {
        ctx.stop();
    }

    /// Argument names that look like the generated code's own names.
    #[msg]
    #[allow(clippy::too_many_arguments)]
    fn shadow(
        &mut self,
        inner: i64,
        handle: i64,
        actor: i64,
        __tell: i64,
        __ask: i64,
        __rx: i64,
        __value: i64,
        __received: i64,
    ) -> i64 {
        inner + handle + actor + __tell + __ask + __rx + __value + __received
    }

    /// Compiled out: no variant anywhere, no remote-safety check of its
    /// (not serializable) argument.
    #[cfg(any())]
    #[msg]
    fn never(&mut self, x: std::rc::Rc<u8>) {}
}

/// An actor with a single ask: the reply match has a single variant.
#[derive(Debug, Default)]
pub struct Echo;

#[actor(remote)]
impl Echo {
    /// Echoes.
    #[msg]
    fn echo(&mut self, s: String) -> String {
        s
    }
}

/// An actor without messages: empty contract enums.
#[derive(Debug, Default)]
pub struct Idle;

#[actor(remote)]
impl Idle {}

/// Byte payloads in the spellings the macro writes as one byte string.
#[derive(Debug, Default)]
pub struct Blob(Vec<u8>);

#[actor(remote)]
impl Blob {
    /// Replaces the blob (a tell with a `Vec<u8>`).
    #[msg]
    fn put(&mut self, data: Vec<u8>) {
        self.0 = data;
    }

    /// Replaces the blob with a path-spelled `Vec<u8>` beside another
    /// argument, replying with the old one.
    #[msg]
    fn swap(&mut self, data: std::vec::Vec<u8>, n: u32) -> Vec<u8> {
        let _ = n;
        std::mem::replace(&mut self.0, data)
    }

    /// A `Vec` of another element type keeps serde's own encoding.
    #[msg]
    fn words(&mut self, w: Vec<u16>) -> ::std::vec::Vec<u8> {
        w.iter().map(|x| *x as u8).collect()
    }
}

/// What [`Blob`]'s contract looks like with serde's own `Vec` impls: the
/// byte-string attribute must not change a byte of the contract.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum PlainBlobTell {
    Put { data: Vec<u8> },
}

/// See [`PlainBlobTell`].
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum PlainBlobAsk {
    Swap { data: Vec<u8>, n: u32 },
    Words { w: Vec<u16> },
}

/// See [`PlainBlobTell`].
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum PlainBlobReply {
    Swap(Vec<u8>),
    Words(Vec<u8>),
}

proptest::proptest! {
    #[test]
    fn byte_payloads_encode_as_serde_s_own_vec_impls_would(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        n in proptest::prelude::any::<u32>(),
        w in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..20),
    ) {
        let enc = |v: &dyn erased::Encode| v.bytes();
        let pairs: [(&dyn erased::Encode, &dyn erased::Encode); 5] = [
            (&BlobTell::Put { data: data.clone() }, &PlainBlobTell::Put { data: data.clone() }),
            (&BlobAsk::Swap { data: data.clone(), n }, &PlainBlobAsk::Swap { data: data.clone(), n }),
            (&BlobAsk::Words { w: w.clone() }, &PlainBlobAsk::Words { w: w.clone() }),
            (&BlobReply::Swap(data.clone()), &PlainBlobReply::Swap(data.clone())),
            (&BlobReply::Words(data.clone()), &PlainBlobReply::Words(data.clone())),
        ];
        for (ours, plain) in pairs {
            proptest::prop_assert_eq!(enc(ours), enc(plain));
        }
        let bytes = postcard::to_allocvec(&PlainBlobAsk::Swap { data: data.clone(), n }).expect("encode");
        match postcard::from_bytes::<BlobAsk>(&bytes).expect("decode") {
            BlobAsk::Swap { data: d, n: m } => proptest::prop_assert_eq!((d, m), (data.clone(), n)),
            other => proptest::prop_assert!(false, "wrong variant {other:?}"),
        }
        let bytes = postcard::to_allocvec(&PlainBlobReply::Swap(data.clone())).expect("encode");
        match postcard::from_bytes::<BlobReply>(&bytes).expect("decode") {
            BlobReply::Swap(d) => proptest::prop_assert_eq!(d, data),
            other => proptest::prop_assert!(false, "wrong variant {other:?}"),
        }
    }
}

/// Postcard encoding behind a trait object, to compare values of
/// different types.
mod erased {
    pub(crate) trait Encode {
        fn bytes(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Encode for T {
        fn bytes(&self) -> Vec<u8> {
            postcard::to_allocvec(self).expect("encode")
        }
    }
}

#[test]
fn a_truncated_byte_payload_is_an_error() {
    let bytes = postcard::to_allocvec(&PlainBlobTell::Put { data: vec![1; 10] }).expect("encode");
    for cut in 0..bytes.len() {
        assert!(postcard::from_bytes::<BlobTell>(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    assert!(postcard::from_bytes::<BlobTell>(&bytes).is_ok());
}

fn round_trip<T: RemoteSafe>(value: &T) -> (Vec<u8>, T) {
    let bytes = postcard::to_allocvec(value).expect("encode");
    let back = postcard::from_bytes(&bytes).expect("decode");
    (bytes, back)
}

fn note() -> Note {
    Note { title: "t".to_owned(), tags: vec!["a".to_owned(), "b".to_owned()] }
}

#[test]
fn contract_types_are_the_generated_enums() {
    fn same<T>(_: T, _: T) {}
    same::<<AccountContract as RefContract>::Tell>(AccountTell::Deposit { amount: 1 }, AccountTell::Close {});
    let tell: TellOf<Account> = AccountTell::Deposit { amount: 1 };
    let ask: AskOf<Account> = AccountAsk::Balance {};
    let reply: ReplyOf<Account> = AccountReply::Balance(1);
    assert_eq!(format!("{tell:?} {ask:?} {reply:?}"), "Deposit Balance Balance");
    assert_eq!(format!("{:?}", AccountContract), "AccountContract");
    assert_eq!(format!("{:?}", EchoReply::Echo("x".to_owned())), "Echo");
}

#[test]
fn tells_round_trip_with_their_fields() {
    match round_trip(&AccountTell::Deposit { amount: -7 }) {
        (bytes, AccountTell::Deposit { amount }) => {
            assert_eq!(bytes[0], 0, "deposit is the first tell");
            assert_eq!(amount, -7);
        }
        (_, other) => panic!("wrong variant {other:?}"),
    }
    match round_trip(&AccountTell::Record { line: "hello".to_owned() }) {
        (bytes, AccountTell::Record { line }) => {
            assert_eq!(bytes[0], 1, "record is the second tell");
            assert_eq!(line, "hello");
        }
        (_, other) => panic!("wrong variant {other:?}"),
    }
    match round_trip(&AccountTell::Close {}) {
        (bytes, AccountTell::Close {}) => assert_eq!(bytes, [2], "close is the third tell, without fields"),
        (_, other) => panic!("wrong variant {other:?}"),
    }
}

#[test]
fn asks_round_trip_with_their_fields() {
    let store = AccountAsk::Store { name: "n".to_owned(), bytes: vec![0, 1, 255], note: note(), tag: Some(9) };
    match round_trip(&store) {
        (bytes, AccountAsk::Store { name, bytes: b, note: n, tag }) => {
            assert_eq!(bytes[0], 2, "store is the third ask");
            assert_eq!(name, "n");
            assert_eq!(b, [0, 1, 255]);
            assert_eq!(n, note());
            assert_eq!(tag, Some(9));
        }
        (_, other) => panic!("wrong variant {other:?}"),
    }
    match round_trip(&AccountAsk::Store { name: String::new(), bytes: vec![], note: note(), tag: None }) {
        (_, AccountAsk::Store { tag: None, bytes, .. }) => assert!(bytes.is_empty()),
        (_, other) => panic!("wrong variant {other:?}"),
    }
    match round_trip(&AccountAsk::Withdraw { amount: 3 }) {
        (bytes, AccountAsk::Withdraw { amount: 3 }) => assert_eq!(bytes[0], 1, "withdraw is the second ask"),
        (_, other) => panic!("wrong variant {other:?}"),
    }
    let order: Vec<String> = [
        AccountAsk::Balance {},
        AccountAsk::Withdraw { amount: 0 },
        AccountAsk::History {},
        AccountAsk::LastNote {},
        AccountAsk::Shadow { inner: 0, handle: 0, actor: 0, __tell: 0, __ask: 0, __rx: 0, __value: 0, __received: 0 },
    ]
    .iter()
    .map(|a| format!("{a:?}"))
    .collect();
    assert_eq!(order, ["Balance", "Withdraw", "History", "LastNote", "Shadow"]);
}

#[test]
fn replies_round_trip_with_their_values() {
    match round_trip(&AccountReply::Withdraw(Err("no".to_owned()))) {
        (bytes, AccountReply::Withdraw(Err(e))) => {
            assert_eq!(bytes[0], 1, "withdraw is the second reply");
            assert_eq!(e, "no");
        }
        (_, other) => panic!("wrong variant {other:?}"),
    }
    match round_trip(&AccountReply::History(vec!["a".to_owned()])) {
        (_, AccountReply::History(h)) => assert_eq!(h, ["a"]),
        (_, other) => panic!("wrong variant {other:?}"),
    }
    match round_trip(&AccountReply::LastNote(Some(note()))) {
        (_, AccountReply::LastNote(n)) => assert_eq!(n, Some(note())),
        (_, other) => panic!("wrong variant {other:?}"),
    }
    let (_, EchoReply::Echo(s)) = round_trip(&EchoReply::Echo("hi".to_owned()));
    assert_eq!(s, "hi");
}

#[test]
fn empty_contracts_encode_nothing() {
    // No values exist; decoding any variant index fails cleanly.
    assert!(postcard::from_bytes::<IdleTell>(&[0]).is_err());
    assert!(postcard::from_bytes::<IdleAsk>(&[0]).is_err());
    assert!(postcard::from_bytes::<IdleReply>(&[0]).is_err());
}

#[test]
fn unknown_variants_are_rejected() {
    assert!(postcard::from_bytes::<AccountTell>(&[3]).is_err());
    assert!(postcard::from_bytes::<AccountAsk>(&[6]).is_err());
    assert!(postcard::from_bytes::<AccountReply>(&[6, 0]).is_err());
}

fn spawn_account(system: &System, name: &str) -> LocalRef<AccountMsg> {
    match system.spawn(Account::default(), SpawnConfig::new(name, 16)) {
        Ok(h) => Account::local_ref(&h.actor()),
        Err(e) => panic!("spawn failed: {e}"),
    }
}

/// Sends a contract ask to `local` and awaits its contract reply.
async fn ask(local: &LocalRef<AccountMsg>, ask: AccountAsk) -> Option<AccountReply> {
    let (msg, pending) = Account::ask_message(ask);
    local.send(msg).await.expect("send ask");
    pending.await
}

async fn tell(local: &LocalRef<AccountMsg>, tell: AccountTell) {
    local.send(Account::tell_message(tell)).await.expect("send tell");
}

#[tokio::test]
async fn converted_messages_reach_the_local_actor() {
    let system = System::new();
    let local = spawn_account(&system, "account");

    tell(&local, AccountTell::Deposit { amount: 10 }).await;
    tell(&local, AccountTell::Record { line: "first".to_owned() }).await;
    match ask(&local, AccountAsk::Balance {}).await {
        Some(AccountReply::Balance(b)) => assert_eq!(b, 10),
        other => panic!("unexpected reply {other:?}"),
    }
    match ask(&local, AccountAsk::Withdraw { amount: 4 }).await {
        Some(AccountReply::Withdraw(Ok(b))) => assert_eq!(b, 6),
        other => panic!("unexpected reply {other:?}"),
    }
    match ask(&local, AccountAsk::Withdraw { amount: 100 }).await {
        Some(AccountReply::Withdraw(Err(e))) => assert_eq!(e, "insufficient funds: 6"),
        other => panic!("unexpected reply {other:?}"),
    }
    match ask(&local, AccountAsk::History {}).await {
        Some(AccountReply::History(h)) => assert_eq!(h, ["first"]),
        other => panic!("unexpected reply {other:?}"),
    }
    let store = AccountAsk::Store { name: "n".to_owned(), bytes: vec![1, 2], note: note(), tag: Some(3) };
    match ask(&local, store).await {
        Some(AccountReply::Store(n)) => assert_eq!(n, 1),
        other => panic!("unexpected reply {other:?}"),
    }
    match ask(&local, AccountAsk::LastNote {}).await {
        Some(AccountReply::LastNote(n)) => assert_eq!(n, Some(note())),
        other => panic!("unexpected reply {other:?}"),
    }
    let shadow = AccountAsk::Shadow {
        inner: 1,
        handle: 2,
        actor: 4,
        __tell: 8,
        __ask: 16,
        __rx: 32,
        __value: 64,
        __received: 128,
    };
    match ask(&local, shadow).await {
        Some(AccountReply::Shadow(n)) => assert_eq!(n, 255),
        other => panic!("unexpected reply {other:?}"),
    }

    // A context-taking tell: the actor stops itself.
    tell(&local, AccountTell::Close {}).await;
    let _ = local.stop_wait().await;
    assert!(local.is_closed());
}

#[tokio::test]
async fn a_dropped_request_resolves_to_none() {
    let system = System::new();
    let local = spawn_account(&system, "account");
    local.stop_wait().await.expect("stop");

    // The actor is gone: the message (and its reply channel) is dropped.
    let (msg, pending) = Account::ask_message(AccountAsk::Balance {});
    assert!(local.send(msg).await.is_err());
    assert!(pending.await.is_none());

    // Dropping the message by hand does the same.
    let (msg, pending) = Account::ask_message(AccountAsk::History {});
    drop(msg);
    assert!(pending.await.is_none());
}

#[tokio::test]
async fn single_ask_actor_converts_too() {
    let system = System::new();
    let r = match system.spawn(Echo, SpawnConfig::new("echo", 4)) {
        Ok(h) => h.actor(),
        Err(e) => panic!("spawn failed: {e}"),
    };
    let (msg, pending) = Echo::ask_message(EchoAsk::Echo { s: "hi".to_owned() });
    Echo::local_ref(&r).send(msg).await.expect("send");
    let Some(EchoReply::Echo(s)) = pending.await else { panic!("no reply") };
    assert_eq!(s, "hi");
}

fn assert_remote_ref<T: Clone + Send + Sync + Debug + 'static>() {}
fn assert_send<T: Send>(t: T) -> T {
    t
}

#[test]
fn remote_refs_are_clone_send_sync_debug() {
    assert_remote_ref::<AccountRemoteRef>();
    assert_remote_ref::<EchoRemoteRef>();
    assert_remote_ref::<IdleRemoteRef>();
    assert_remote_ref::<<Account as RemoteActor>::RemoteRef>();
}

/// Never called: pins the signatures of the generated `XRemoteRef` methods
/// (and that their futures are `Send`).
#[allow(dead_code)]
async fn remote_ref_signatures(r: AccountRemoteRef, e: EchoRemoteRef, d: Duration) {
    let _: &str = r.key();
    let _: Result<tokio::sync::mpsc::Receiver<DownEvent>, RemoteError> = assert_send(r.monitor()).await;

    let _: Result<(), RemoteError> = assert_send(r.deposit(1)).await;
    let _: Result<(), RemoteError> = assert_send(r.deposit_wait(1)).await;
    let _: Result<(), RemoteError> = r.record("x".to_owned()).await;
    let _: Result<(), RemoteError> = r.record_wait("x".to_owned()).await;
    let _: Result<(), RemoteError> = r.close().await;
    let _: Result<(), RemoteError> = r.close_wait().await;

    let _: Result<i64, RemoteError> = assert_send(r.balance()).await;
    let _: Result<i64, RemoteError> = assert_send(r.balance_timeout(d)).await;
    let _: Result<Result<i64, String>, RemoteError> = r.withdraw(1).await;
    let _: Result<Result<i64, String>, RemoteError> = r.withdraw_timeout(1, d).await;
    let _: Result<usize, RemoteError> = r.store("n".to_owned(), vec![], note(), None).await;
    let _: Result<usize, RemoteError> = r.store_timeout("n".to_owned(), vec![], note(), Some(1), d).await;
    let _: Result<Vec<String>, RemoteError> = r.history().await;
    let _: Result<Vec<String>, RemoteError> = r.history_timeout(d).await;
    let _: Result<Option<Note>, RemoteError> = r.last_note().await;
    let _: Result<i64, RemoteError> = r.shadow(0, 0, 0, 0, 0, 0, 0, 0).await;
    let _: Result<i64, RemoteError> = r.shadow_timeout(0, 0, 0, 0, 0, 0, 0, 0, d).await;

    let _: Result<String, RemoteError> = e.echo("x".to_owned()).await;
    let _: Result<String, RemoteError> = e.echo_timeout("x".to_owned(), d).await;
    let _: AccountRemoteRef = r.clone();
}
