//! Routing (work in progress).
use std::marker::PhantomData;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::error::RemoteError;
use crate::remote::{AskOf, DownEvent, RemoteActor, RemoteHandle, ReplyOf, TellOf};

pub(crate) struct Route<A> {
    registry: String,
    shards: u32,
    _a: PhantomData<fn() -> A>,
}

impl<A: RemoteActor> Route<A> {
    pub(crate) fn registry(&self) -> &str {
        &self.registry
    }
    pub(crate) fn shard_of(&self, key: &str) -> u32 {
        (key.len() as u32) % self.shards.max(1)
    }
    pub(crate) async fn tell(&self, _h: &RemoteHandle<A>, _t: TellOf<A>, _wait: bool) -> Result<(), RemoteError> {
        Err(RemoteError::NoOwner)
    }
    pub(crate) async fn ask(
        &self,
        _h: &RemoteHandle<A>,
        _a: AskOf<A>,
        _t: Option<Duration>,
    ) -> Result<ReplyOf<A>, RemoteError> {
        Err(RemoteError::NoOwner)
    }
    pub(crate) async fn monitor(&self, _h: &RemoteHandle<A>) -> Result<mpsc::Receiver<DownEvent>, RemoteError> {
        Err(RemoteError::NoOwner)
    }
}
