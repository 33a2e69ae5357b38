//! [`Keyed`] registries and [`Singleton`]s: the public faces of hosted
//! actors (their settings, [`KeyedConfig`], are in `keyed/config.rs`).

mod config;

use std::fmt;
use std::sync::Arc;

use crate::client::Route;
use crate::remote::{RemoteActor, RemoteHandle};

pub use config::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAILBOX_CAPACITY, DEFAULT_MAX_ACTIVATIONS, DEFAULT_MAX_MONITORS,
    DEFAULT_STOP_TIMEOUT, KeyedConfig, MAX_SHARDS,
};

/// A keyed registry of remote actors of type `A`, hosted on this node (and
/// on every other node that registers the same id). Cheap to clone.
///
/// Each activation's actor is named `registry/key#n` (`ctx.name()`): `n`
/// numbers the activations of this registry on this node (a new activation
/// of a key after passivation or failover gets a new number; a restart in
/// place keeps it), so logs tell successive activations of a key apart.
pub struct Keyed<A: RemoteActor> {
    pub(crate) route: Arc<Route<A>>,
}

impl<A: RemoteActor> Clone for Keyed<A> {
    fn clone(&self) -> Self {
        Keyed { route: Arc::clone(&self.route) }
    }
}

impl<A: RemoteActor> fmt::Debug for Keyed<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyed").field("registry", &self.route.registry()).finish_non_exhaustive()
    }
}

impl<A: RemoteActor> Keyed<A> {
    /// The remote ref of `key`: messages go to the key's single activation,
    /// wherever its shard is owned. Creating a ref does no I/O.
    pub fn get(&self, key: impl Into<String>) -> A::RemoteRef {
        A::remote_ref(self.handle(key))
    }

    /// The untyped handle behind [`Keyed::get`]'s ref.
    pub(crate) fn handle(&self, key: impl Into<String>) -> RemoteHandle<A> {
        let key: String = key.into();
        RemoteHandle::new(Arc::clone(&self.route), Arc::from(key))
    }

    /// The registry id.
    pub fn registry(&self) -> &str {
        self.route.registry()
    }

    /// The shard `key` maps to.
    pub fn shard_of(&self, key: &str) -> u32 {
        self.route.shard_of(key)
    }
}

/// A cluster singleton: one activation of `A` cluster-wide, started eagerly
/// on the holder of its lease and restarted elsewhere when that lease is
/// lost. Cheap to clone.
pub struct Singleton<A: RemoteActor> {
    pub(crate) keyed: Keyed<A>,
}

impl<A: RemoteActor> Clone for Singleton<A> {
    fn clone(&self) -> Self {
        Singleton { keyed: self.keyed.clone() }
    }
}

impl<A: RemoteActor> fmt::Debug for Singleton<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Singleton").field("name", &self.keyed.registry()).finish_non_exhaustive()
    }
}

impl<A: RemoteActor> Singleton<A> {
    /// The remote ref of the singleton.
    pub fn get(&self) -> A::RemoteRef {
        let name = self.keyed.registry().to_string();
        self.keyed.get(name)
    }
}
