//! [`SourceQuota`]: pending inbound handshakes per source address, so one
//! address cannot take every pending-handshake slot.
//!
//! An entry exists only while its source has a handshake pending, and a
//! slot is only taken while holding one of the node's
//! `max_pending_handshakes` permits, so the table never holds more than
//! `max_pending_handshakes` entries. A [`SourceSlot`] gives its slot back
//! when dropped (the handshake ended, whatever the outcome). Links whose
//! source the overlay does not know ([`LinkSource::Unknown`]) are not
//! counted here: only the node-wide limit applies to them.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::overlay::LinkSource;

/// Pending handshakes per source, against a per-source cap.
#[derive(Debug)]
pub(crate) struct SourceQuota {
    max_per_source: usize,
    pending: Mutex<BTreeMap<LinkSource, usize>>,
}

/// One pending handshake of a source; released on drop.
#[derive(Debug)]
pub(crate) struct SourceSlot {
    quota: Arc<SourceQuota>,
    source: LinkSource,
}

impl SourceQuota {
    pub(crate) fn new(max_per_source: usize) -> Arc<SourceQuota> {
        Arc::new(SourceQuota { max_per_source, pending: Mutex::new(BTreeMap::new()) })
    }

    /// A slot for one more pending handshake from `source`; `None` if it
    /// already has `max_per_source`. Unknown sources always get one.
    pub(crate) fn try_enter(self: &Arc<Self>, source: &LinkSource) -> Option<Option<SourceSlot>> {
        if *source == LinkSource::Unknown {
            return Some(None);
        }
        let mut pending = self.pending.lock();
        let n = pending.entry(source.clone()).or_insert(0);
        if *n >= self.max_per_source {
            return None;
        }
        *n += 1;
        Some(Some(SourceSlot { quota: Arc::clone(self), source: source.clone() }))
    }

    /// Sources with a handshake pending now.
    pub(crate) fn sources(&self) -> usize {
        self.pending.lock().len()
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut pending = self.quota.pending.lock();
        if let Some(n) = pending.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                pending.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn ip(last: u8) -> LinkSource {
        LinkSource::Ip(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
    }

    #[test]
    fn each_source_gets_at_most_its_cap_and_slots_come_back_on_drop() {
        let quota = SourceQuota::new(2);
        let a1 = quota.try_enter(&ip(1)).expect("first");
        let a2 = quota.try_enter(&ip(1)).expect("second");
        assert!(quota.try_enter(&ip(1)).is_none(), "a third from the same address is refused");
        let b1 = quota.try_enter(&ip(2)).expect("another address is not affected");
        assert_eq!(quota.sources(), 2);
        drop(a1);
        let a3 = quota.try_enter(&ip(1)).expect("a slot came back");
        drop((a2, a3, b1));
        assert_eq!(quota.sources(), 0, "no entry outlives its handshakes");
    }

    #[test]
    fn unknown_sources_are_not_limited_here() {
        let quota = SourceQuota::new(1);
        let slots: Vec<_> = (0..5).map(|_| quota.try_enter(&LinkSource::Unknown).expect("admitted")).collect();
        assert!(slots.iter().all(Option::is_none));
        assert_eq!(quota.sources(), 0);
    }
}
