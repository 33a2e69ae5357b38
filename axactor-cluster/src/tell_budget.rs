//! [`TellBudget`]: how a handle's tells spend Tokio's cooperative budget.
//!
//! A tell that joins a batch, is written through or is enqueued locally
//! waits for nothing, so a loop of them would keep its worker, and the
//! tasks woken on it (the connection's writer above all), until some queue
//! filled. Spending budget makes the loop yield now and then: Tokio gives a
//! task 128 units per turn. A unit per tell yielded every 128 tells, and
//! each yield lets the writer take a smaller batch (a frame, a MAC, a
//! write of its own); a unit every other tell yields every 256 tells:
//! 0.86–0.89× of the raw one-way stream on 1 worker against 0.75–0.78×
//! (`docs/benchmarks-issue-13.md`, sixteenth round). A handle's first tell
//! spends, so a loop that takes a fresh handle for each tell spends on
//! every one.

use std::sync::atomic::{AtomicBool, Ordering};

/// See the module docs. One per handle (a clone starts afresh).
#[derive(Debug, Default)]
pub(crate) struct TellBudget {
    /// The next tell spends nothing.
    skip: AtomicBool,
}

impl TellBudget {
    /// Spends a unit of the task's budget on every other call, the first
    /// included (yielding if the budget is used up). Tasks sharing the
    /// handle may race on the flag: a spend more or less, never a wait.
    pub(crate) async fn spend(&self) {
        let skip = self.skip.load(Ordering::Relaxed);
        self.skip.store(!skip, Ordering::Relaxed);
        if !skip {
            tokio::task::coop::consume_budget().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::task::coop::has_budget_remaining;

    use super::*;

    /// A unit every other tell, from the first: 255 tells spend the 128
    /// units of a turn, and a fresh budget spends on its first tell too.
    #[tokio::test(flavor = "current_thread")]
    async fn every_other_tell_spends_a_unit_from_the_first() {
        let budget = TellBudget::default();
        for _ in 0..255 {
            budget.spend().await;
        }
        assert!(!has_budget_remaining(), "128 units spent by 255 tells");
        let fresh = TellBudget::default();
        // Out of budget: its first tell spends, so it yields and goes on
        // in a new turn.
        fresh.spend().await;
        assert!(has_budget_remaining());
    }
}
