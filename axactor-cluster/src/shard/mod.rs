//! Shards: how keys map to shards, how a shard's lease is held (a pure
//! state machine), what the lease driver does about each shard
//! (`lease_plan`), when a message may reach a shard's activations
//! (`fence_rule`), and where shards should live (rendezvous placement with
//! bounded moves). All pure; the drivers that act on these decisions live
//! in `crate::manager` (leases) and `crate::host` (activations).

pub(crate) mod fence_rule;
pub(crate) mod lease_fsm;
pub(crate) mod lease_plan;
pub(crate) mod placement;

use crate::hash::stable_hash;

/// The shard of `key` in a registry of `shard_count` shards (`shard_count`
/// is at least 1: checked when the registry is created): the key's
/// [`stable_hash`] modulo the count. Part of the contract between nodes.
pub(crate) fn shard_of(key: &str, shard_count: u32) -> u32 {
    (stable_hash(&[key.as_bytes()]) % u64::from(shard_count.max(1))) as u32
}

/// The lease-store name of a shard's lease: `{registry}/{shard_count}/{shard}`.
/// The count is part of the name (and the lease's group tag, see
/// `crate::lease`), so a node that hosts the registry with another count
/// never names, nor can take, the same leases.
pub fn lease_name(registry: &str, shard_count: u32, shard: u32) -> String {
    if mutant!(IgnoreShardCount) {
        return format!("{registry}/{shard}");
    }
    format!("{registry}/{shard_count}/{shard}")
}

/// The name rendezvous placement hashes for a shard (independent of the
/// lease name, so preferences stay as pinned).
pub(crate) fn placement_name(registry: &str, shard: u32) -> String {
    format!("{registry}/{shard}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_carry_the_shard_count() {
        assert_eq!(lease_name("accounts", 64, 17), "accounts/64/17");
        assert_ne!(lease_name("accounts", 64, 17), lease_name("accounts", 128, 17));
    }

    #[test]
    fn hash_is_stable_across_releases() {
        // Pinned values: changing the hash re-maps every key of a running cluster.
        assert_eq!(shard_of("alice", 64), shard_of("alice", 64));
        let pinned: Vec<u32> = ["alice", "bob", "carol", ""].iter().map(|k| shard_of(k, 64)).collect();
        assert_eq!(pinned, PINNED.to_vec());
    }

    const PINNED: [u32; 4] = [16, 22, 11, 13];

    #[test]
    fn keys_spread_over_shards() {
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            counts[shard_of(&format!("key-{i}"), 16) as usize] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "uneven spread: {counts:?}");
        }
    }
}
