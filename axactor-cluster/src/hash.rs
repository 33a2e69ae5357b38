//! The crate's one stable hash: FNV-1a over bytes ([`Fnv1a`]) with
//! SplitMix64's mixing ([`mix64`], [`splitmix64`]). Pure, no state beyond
//! the running value.
//!
//! Every value computed here is fixed across processes, platforms and
//! releases: the key → shard map (`shard::shard_of`) and rendezvous
//! placement ([`stable_hash`]) are a contract between nodes, and the
//! in-memory overlay's per-link fault RNGs (`overlay::faults::link_seed`)
//! are seeded from it, so simulations replay. The tests pin the values.
//!
//! Also [`FastMap`], the hash map of the request path's in-process tables
//! (not a contract: nothing leaves the process).

/// A hash map for in-process tables on the request path whose keys no peer
/// chooses (our own request ids, our own registries' names and shards):
/// foldhash, cheaper than the standard library's SipHash for such keys
/// (docs/benchmarks-issue-13.md, the fifth round), with a fixed seed, so
/// nothing about the table depends on the process (the simulation replays
/// runs from a seed). Tables keyed by what a peer sends keep the standard
/// hasher.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// FNV-1a's 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a's 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// SplitMix64's increment (the golden ratio).
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
/// The byte written between parts: UTF-8 never contains it, so
/// `("ab", "c")` and `("a", "bc")` hash apart.
pub(crate) const SEPARATOR: u8 = 0xff;

/// A running FNV-1a hash. FNV's low bits are weak: finish with [`mix64`]
/// or [`splitmix64`] before taking a remainder or seeding an RNG.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv1a(u64);

impl Fnv1a {
    /// The empty hash (the offset basis).
    pub(crate) const fn new() -> Fnv1a {
        Fnv1a(FNV_OFFSET)
    }

    /// Hashes `bytes` in.
    #[inline]
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    /// Hashes in the [`SEPARATOR`] byte, ending a part.
    #[inline]
    pub(crate) fn separate(&mut self) {
        self.write(&[SEPARATOR]);
    }

    /// The raw FNV-1a value so far.
    #[inline]
    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// SplitMix64's finalizer: every input bit reaches every output bit.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One SplitMix64 step from the state `x`: [`mix64`] of `x` plus the
/// golden gamma.
#[inline]
pub(crate) fn splitmix64(x: u64) -> u64 {
    mix64(x.wrapping_add(GOLDEN_GAMMA))
}

/// The stable 64-bit hash of `parts`: FNV-1a over each part followed by
/// [`SEPARATOR`], then [`mix64`]. The key → shard map and rendezvous
/// placement depend on every node computing the same value.
#[inline]
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h = Fnv1a::new();
    for part in parts {
        h.write(part);
        h.separate();
    }
    mix64(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_values_are_pinned() {
        // Changing these re-maps every key and every shard's placement.
        assert_eq!(stable_hash(&[b"alice"]), 0x441b_53b1_b6ba_2c50);
        assert_eq!(stable_hash(&[b"ab", b"c"]), 0x9399_8dd6_edc9_a3b3);
        assert_eq!(stable_hash(&[b""]), 0x4f2d_b50f_1240_40cd);
        assert_eq!(stable_hash(&[]), 0xf52a_15e9_a9b5_e89b);
    }

    #[test]
    fn parts_are_separated() {
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
        assert_ne!(stable_hash(&[b"a"]), stable_hash(&[b"a", b""]));
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // FNV-1a 64 test vectors (the empty string is the offset basis).
        assert_eq!(Fnv1a::new().finish(), 0xcbf2_9ce4_8422_2325);
        let mut a = Fnv1a::new();
        a.write(b"a");
        assert_eq!(a.finish(), 0xaf63_dc4c_8601_ec8c);
        let mut foobar = Fnv1a::new();
        foobar.write(b"foo");
        foobar.write(b"bar");
        assert_eq!(foobar.finish(), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs of SplitMix64 seeded with 0.
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(GOLDEN_GAMMA), 0x6e78_9e6a_a1b9_65f4);
    }
}
