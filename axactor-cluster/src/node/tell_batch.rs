//! [`TellBatch`]: unacknowledged tells to one key, gathered while they wait
//! for a connection's writer and sent as one `Tells` frame (protocol
//! version 3): one routing step, one seal and one open, one fence check and
//! one activation look-up at the receiver for all of them.
//!
//! A sender with an unacknowledged tell for a version 3 session
//! ([`ConnShared::try_batch`](super::write_path::ConnShared::try_batch)):
//! - appends it to the batch at the tail of the writer's data queue, if that
//!   batch is for the same registry, shard, epoch and key, the writer has
//!   not taken it yet, and it has room (the frame limit, at most
//!   [`MAX_BATCHED_TELLS`] tells);
//! - else, if the connection is behind (frames wait for the writer or for
//!   the transport, or the write path is held), queues a new batch holding
//!   the tell, as one item of the data queue;
//! - else sends the tell on its own, as before (a lone tell is written at
//!   once, from the sender's task).
//!
//! Order: a batch grows only while it is the last item queued for the
//! writer (anything queued after it ends its growth, under the same lock),
//! so a tell appended to it never overtakes a frame queued before that tell,
//! and one sender's messages keep their order. The writer ends a batch's
//! growth when it takes it, then seals it.

use parking_lot::Mutex;

use crate::wire::{CodecError, MAX_BATCHED_TELLS, OutFrame, OutPayload, TellEntries};

/// Where the tells of a batch go: the registry, the shard and epoch they
/// were routed by, the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TellTarget<'a> {
    pub(crate) registry: &'a str,
    pub(crate) shard: u32,
    pub(crate) epoch: u64,
    pub(crate) key: &'a str,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct TellBatch {
    registry: Box<str>,
    shard: u32,
    epoch: u64,
    key: Box<str>,
    /// The length of what opens its envelope (`TellEntries::head_len`).
    head_len: usize,
    entries: Mutex<TellEntries>,
}

impl TellBatch {
    /// A batch for `target` holding `payload`, if one tell of it fits in
    /// `max_envelope` bytes (`None`: it does not, even alone).
    ///
    /// # Errors
    /// [`CodecError::Postcard`] if the payload cannot be encoded.
    pub(crate) fn new<P: OutPayload>(
        target: TellTarget<'_>,
        payload: &P,
        max_envelope: usize,
    ) -> Result<Option<TellBatch>, CodecError> {
        let head_len = TellEntries::head_len(target.registry, target.shard, target.epoch, target.key)?;
        let batch = TellBatch {
            head_len,
            registry: target.registry.into(),
            shard: target.shard,
            epoch: target.epoch,
            key: target.key.into(),
            entries: Mutex::new(TellEntries::new()),
        };
        Ok(batch.try_push(payload, max_envelope)?.then_some(batch))
    }

    /// Whether the tells of this batch go to `target`.
    pub(crate) fn is_for(&self, target: TellTarget<'_>) -> bool {
        self.shard == target.shard
            && self.epoch == target.epoch
            && *self.key == *target.key
            && *self.registry == *target.registry
    }

    /// Appends `payload` if the batch has room for it: at most
    /// [`MAX_BATCHED_TELLS`] tells, an envelope of at most `max_envelope`
    /// bytes. `false`, and nothing appended, if not.
    ///
    /// # Errors
    /// [`CodecError::Postcard`] if the payload cannot be encoded.
    pub(crate) fn try_push<P: OutPayload>(&self, payload: &P, max_envelope: usize) -> Result<bool, CodecError> {
        let mut entries = self.entries.lock();
        if entries.count() >= MAX_BATCHED_TELLS {
            return Ok(false);
        }
        let len = payload.encoded_len()?;
        if entries.envelope_len(self.head_len, Some(len)) > max_envelope {
            return Ok(false);
        }
        entries.push(payload)?;
        Ok(true)
    }

    /// How many tells the batch holds.
    pub(crate) fn count(&self) -> usize {
        self.entries.lock().count()
    }

    /// The batch's `Tells` frame, with the tells appended so far (the
    /// writer calls it once the batch no longer grows).
    ///
    /// # Errors
    /// [`CodecError::Postcard`] if the frame cannot be encoded (not
    /// expected: a batch holds 1 to [`MAX_BATCHED_TELLS`] tells).
    pub(crate) fn frame(&self) -> Result<OutFrame, CodecError> {
        let entries = self.entries.lock();
        OutFrame::tells(&self.registry, self.shard, self.epoch, &self.key, &entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{DataMsg, Envelope, Raw, decode_envelope};

    const TARGET: TellTarget<'static> = TellTarget { registry: "r", shard: 3, epoch: 7, key: "k" };

    #[test]
    fn a_batch_holds_its_tells_in_order_within_its_bounds() {
        let batch = TellBatch::new(TARGET, &Raw(&[1, 2]), 64).expect("encodes").expect("fits");
        assert!(batch.is_for(TARGET));
        assert!(!batch.is_for(TellTarget { epoch: 8, ..TARGET }));
        assert!(!batch.is_for(TellTarget { key: "k2", ..TARGET }));
        assert!(batch.try_push(&Raw(&[3]), 64).expect("encodes"));
        // 13 bytes so far (prefix 2, head 6, count 1, entries 3 + 2): 62 more do not fit in 64.
        assert!(!batch.try_push(&Raw(&[0; 60]), 64).expect("encodes"));
        assert_eq!(batch.count(), 2);
        let frame = batch.frame().expect("encodes");
        assert!(frame.envelope_bytes().len() <= 64);
        let decoded = decode_envelope(frame.envelope_bytes()).expect("decodes");
        let want = DataMsg::Tells {
            registry: "r".into(),
            shard: 3,
            epoch: 7,
            key: "k".into(),
            payloads: vec![vec![1, 2], vec![3]],
        };
        assert_eq!(decoded, Envelope::Data(want));
        assert!(TellBatch::new(TARGET, &Raw(&[0; 100]), 64).expect("encodes").is_none(), "too large alone");
    }

    #[test]
    fn a_batch_stops_growing_at_the_count_bound() {
        let batch = TellBatch::new(TARGET, &Raw(&[]), usize::MAX).expect("encodes").expect("fits");
        for _ in 1..MAX_BATCHED_TELLS {
            assert!(batch.try_push(&Raw(&[]), usize::MAX).expect("encodes"));
        }
        assert!(!batch.try_push(&Raw(&[]), usize::MAX).expect("encodes"));
        assert_eq!(batch.count(), MAX_BATCHED_TELLS);
        assert!(batch.frame().is_ok());
    }
}
