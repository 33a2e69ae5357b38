//! Placing a monitor on a key's activation through a [`Route`]: locally
//! when the shard is held here, else at the owner (`Monitor`, and on a
//! version 2 session the owner's `Monitored` answer naming the activation).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Span;

use super::{Lookup, RemoteError, Route};
use crate::hosted::{DownEvent, HostedActor, HostedRegistry, MonitorSink};
use crate::id::SessionId;
use crate::node::remote_monitors::Watched;
use crate::shard::lease_name;
use crate::wire::ControlMsg;

impl<A: HostedActor> Route<A> {
    /// Places a monitor on `key`'s activation. Also returns the owner's
    /// session and the id it gave the activation it watches, when the
    /// owner named one: `None` when the answer was the `Down` itself, or
    /// from a version 1 owner.
    pub(crate) async fn monitor(
        &self,
        key: &Arc<str>,
        shard: u32,
    ) -> Result<(mpsc::Receiver<DownEvent>, Option<(SessionId, u64)>), RemoteError> {
        self.check_running()?;
        let (tx, rx) = mpsc::channel(1);
        let started = Instant::now();
        let deadline = started + self.node.cfg.request_timeout;
        let tx = &tx;
        let watched = self
            .with_retries(key, started, deadline, &Span::none(), RemoteError::is_retryable, |lookup| {
                self.try_monitor(key, shard, tx.clone(), lookup, deadline)
            })
            .await?;
        Ok((rx, watched))
    }

    /// One attempt at placing a monitor, locally or at the owner; on a
    /// version 2 session, waits for the owner's answer (`Monitored`, or the
    /// `Down` at once) until `deadline`. Returns the owner's session and
    /// the watched activation's id, if it was named.
    async fn try_monitor(
        &self,
        key: &Arc<str>,
        shard: u32,
        tx: mpsc::Sender<DownEvent>,
        lookup: Lookup,
        deadline: Instant,
    ) -> Result<Option<(SessionId, u64)>, RemoteError> {
        if self.host.usable(shard) {
            let watch = tx.clone();
            return Ok(match HostedRegistry::monitor(&*self.host, key, MonitorSink::Local { tx }) {
                Err((sink, reason)) => {
                    sink.fire(self.registry(), key, reason);
                    None
                }
                Ok(activation) => {
                    // Dropping the receiver cancels the monitor (as a
                    // remote one's `Demonitor` does).
                    let (host, key) = (Arc::clone(&self.host), Arc::clone(key));
                    self.node.env.spawn(async move {
                        watch.closed().await;
                        host.demonitor_local(&key, &watch);
                    });
                    Some((self.node.session.clone(), activation))
                }
            });
        }
        let (link, holder, epoch) = self.looked_up_link(shard, lookup).await?;
        let registry = self.registry().to_string();
        let lease = lease_name(&registry, self.shards, shard);
        let watched =
            Watched { registry: registry.clone(), key: key.to_string(), lease, holder: holder.clone(), epoch };
        let (request_id, answered) = self.node.register_monitor(&link, watched, tx)?;
        let msg = ControlMsg::Monitor { request_id, registry, key: key.to_string() };
        if link.control.try_send(msg).is_err() {
            self.node.monitors.remove(request_id);
            return Err(RemoteError::Overloaded);
        }
        let Some(answered) = answered else { return Ok(None) };
        match tokio::time::timeout_at(deadline, answered).await {
            Ok(Ok(activation)) => Ok(activation.map(|id| (holder, id))),
            // The connection ended before the answer: nothing is placed (the
            // host drops a connection's monitors when it ends), so this is
            // definite, and retried like a missing connection.
            Ok(Err(_)) => Err(RemoteError::UnknownSession),
            Err(_) => {
                self.node.monitors.cancel(request_id, &self.node.counters).await;
                Err(RemoteError::Timeout)
            }
        }
    }
}
