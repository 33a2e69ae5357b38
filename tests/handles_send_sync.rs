//! The handles users pass between tasks are `Send + Sync` (and the typed
//! refs `Clone + 'static`): a compile-time check that fails to build if a
//! change makes one of them `!Send` or `!Sync`.

use axactor::registry::Registry;
use axactor::{Context, LocalRef, SpawnHandle, Supervisor, System, actor};

/// A minimal actor whose generated types are checked.
#[derive(Debug)]
pub struct Probe;

#[actor]
impl Probe {
    #[msg]
    fn ping(&mut self) -> u8 {
        1
    }
}

fn send_sync<T: Send + Sync>() {}
fn handle<T: Clone + Send + Sync + 'static>() {}
fn send<T: Send>() {}

#[test]
fn handles_are_send_and_sync() {
    handle::<ProbeRef>();
    handle::<LocalRef<ProbeMsg>>();
    handle::<Registry<String, ProbeRef>>();
    handle::<Supervisor>();
    send_sync::<SpawnHandle<ProbeRef>>();
    send_sync::<System>();
    send_sync::<std::sync::Arc<System>>();
    send::<ProbeMsg>();
    send::<Context>();
}
