//! [`SpawnHandle`]: what `System::spawn_with` returns.

use std::fmt;
use std::sync::Arc;

use crate::cell_ops::CellOps;
use crate::meta::ExitWait;
use crate::{ExitReason, Pid};

/// The handle of a freshly spawned actor: its typed ref, its pid, and a way
/// to wait for its end.
pub struct SpawnHandle<R> {
    actor: R,
    cell: Arc<dyn CellOps>,
}

impl<R> SpawnHandle<R> {
    pub(crate) fn new(actor: R, cell: Arc<dyn CellOps>) -> Self {
        SpawnHandle { actor, cell }
    }

    pub(crate) fn cell(&self) -> &Arc<dyn CellOps> {
        &self.cell
    }

    /// The typed ref (`XRef`).
    pub fn actor(&self) -> R
    where
        R: Clone,
    {
        self.actor.clone()
    }

    /// The actor's pid.
    pub fn pid(&self) -> Pid {
        self.cell.meta().pid()
    }

    /// Resolves when the actor has finally stopped (after any restarts),
    /// with the reason.
    ///
    /// # Cancel safety
    /// Cancel safe; the actor is unaffected.
    pub async fn join(self) -> ExitReason {
        ExitWait::new(self.cell.meta()).await
    }
}

impl<R> fmt::Debug for SpawnHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnHandle").field("pid", &self.pid()).finish()
    }
}
