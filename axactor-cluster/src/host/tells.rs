//! A batch of tells (`DataMsg::Tells`) handed to one activation: decoded
//! and enqueued in order, as many as its mailbox has room for.
//!
//! Only as many as fit are decoded (at least one, to learn why none fit):
//! a full mailbox refuses the rest, and the reader hands them over again
//! after a yield (`node/established.rs`), so decoding them now would be
//! work thrown away: a batch of 1,024 to a full mailbox was decoded whole
//! at every yield.

use std::collections::VecDeque;

use axactor::{LocalRef, TellError};

use crate::hosted::{HostedActor, TellOf, TellsDelivered};
use crate::wire::Rejection;

/// Delivers `payloads` to `local`, from the first, until the mailbox is
/// full (see [`TellsDelivered`]).
pub(super) fn deliver<A: HostedActor>(local: &LocalRef<A::Msg>, payloads: &[&[u8]]) -> TellsDelivered {
    let mut done = TellsDelivered::default();
    let room = local.capacity().saturating_sub(local.mailbox_len()).clamp(1, payloads.len().max(1));
    let mut msgs = VecDeque::with_capacity(room);
    // The first payload not looked at.
    let mut end = payloads.len();
    for (i, payload) in payloads.iter().enumerate() {
        if msgs.len() == room {
            end = i;
            break;
        }
        match postcard::from_bytes::<TellOf<A>>(payload) {
            Ok(tell) => msgs.push_back(A::tell_message(tell)),
            Err(_) => done.refused.push((i, Rejection::BadPayload)),
        }
    }
    let decoded = msgs.len();
    let sent = local.try_send_from(&mut msgs);
    // Those left are dropped unrun: decoded again when their turn comes.
    let unsent = msgs.len();
    match sent {
        Ok(()) => done.taken = end,
        Err(TellError::Full) => {
            // The payload of the first decoded message not enqueued; those
            // from it on are not looked at yet (a bad one among them is
            // refused when they are).
            let at = nth_decoded(decoded - unsent, &done.refused);
            done.refused.retain(|(i, _)| *i < at);
            done.taken = at.min(end);
        }
        Err(TellError::Closed) => {
            // Stopping: none of them could be enqueued, nor can those not
            // looked at; the bad ones keep their reason.
            let bad = std::mem::take(&mut done.refused);
            let mut bad = bad.into_iter().peekable();
            done.refused = (0..payloads.len())
                .map(|i| match bad.next_if(|(b, _)| *b == i) {
                    Some(refused) => refused,
                    None => (i, Rejection::ActorClosed),
                })
                .collect();
            done.taken = payloads.len();
        }
    }
    done
}

/// The index of the `n`th (from 0) payload not in `refused` (ascending).
fn nth_decoded(n: usize, refused: &[(usize, Rejection)]) -> usize {
    let mut at = n;
    for (i, _) in refused {
        if *i <= at {
            at += 1;
        } else {
            break;
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use axactor::{SpawnConfig, System, actor};

    use super::*;
    use crate::RemoteActor;

    struct Sum(i64);

    #[actor(remote)]
    impl Sum {
        #[msg]
        fn add(&mut self, n: i64) {
            self.0 += n;
        }
        #[msg]
        fn total(&mut self) -> i64 {
            self.0
        }
    }

    fn add(n: i64) -> Vec<u8> {
        postcard::to_allocvec(&SumTell::Add { n }).expect("encodable")
    }

    /// Only what fits is taken (a bad payload among it refused on its
    /// own); a stopped actor refuses the whole batch: a bad payload among
    /// those looked at (as many as the mailbox's capacity) as bad, the
    /// others as closed.
    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_stops_where_the_mailbox_is_full_and_a_stopped_actor_refuses_it_all() {
        let system = System::new();
        let sum = system.spawn_with(|| Sum(0), SpawnConfig::new("sum", 2)).expect("spawned").actor();
        let local = <Sum as RemoteActor>::local_ref(&sum);
        let (one, two, four) = (add(1), add(2), add(4));
        let batch: [&[u8]; 5] = [&one, &[0xFF], &two, &four, &[0xFF]];
        // One thread: the actor has not run yet, so two fit.
        let done = deliver::<Sum>(&local, &batch);
        assert_eq!(done, TellsDelivered { taken: 3, refused: vec![(1, Rejection::BadPayload)] });
        assert_eq!(sum.total_wait().await, Ok(3), "the two that fitted ran");
        let done = deliver::<Sum>(&local, &batch[3..]);
        assert_eq!(done, TellsDelivered { taken: 2, refused: vec![(1, Rejection::BadPayload)] });
        assert_eq!(sum.total_wait().await, Ok(7));
        local.stop().expect("stopping");
        local.wait_stopped().await;
        let closed = Rejection::ActorClosed;
        let done = deliver::<Sum>(&local, &batch);
        let refused = vec![
            (0, closed.clone()),
            (1, Rejection::BadPayload),
            (2, closed.clone()),
            (3, closed.clone()),
            (4, closed),
        ];
        assert_eq!(done, TellsDelivered { taken: 5, refused });
    }

    #[test]
    fn the_nth_decoded_payload_skips_the_refused_ones() {
        let bad = |is: &[usize]| is.iter().map(|&i| (i, Rejection::BadPayload)).collect::<Vec<_>>();
        assert_eq!(nth_decoded(0, &bad(&[])), 0);
        assert_eq!(nth_decoded(3, &bad(&[])), 3);
        assert_eq!(nth_decoded(0, &bad(&[0])), 1);
        assert_eq!(nth_decoded(0, &bad(&[0, 1, 2])), 3);
        assert_eq!(nth_decoded(2, &bad(&[1])), 3);
        assert_eq!(nth_decoded(2, &bad(&[3])), 2);
        assert_eq!(nth_decoded(2, &bad(&[0, 4])), 3);
        assert_eq!(nth_decoded(2, &bad(&[0, 3, 4])), 5);
    }
}
