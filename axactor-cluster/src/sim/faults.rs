//! The fault schedule: which fault to inject next, drawn from the run's
//! generator, and how long it lasts. Pure: applying a fault to the running
//! cluster is the harness's job (`sim/cluster.rs`).

use std::time::Duration;

use rand::RngExt;
use rand::rngs::StdRng;

use crate::overlay::LinkFaults;

/// One fault, by node index.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fault {
    /// Both directions between two nodes cut.
    Partition(usize, usize),
    /// Frames from the first node to the second lost.
    OneWay(usize, usize),
    /// Drops, delays, duplicates and reordering on one directed link.
    Noisy(usize, usize, LinkFaults),
    /// These directed links hold their frames; released in the given order.
    Clog(Vec<(usize, usize)>),
    /// The node crashes; it restarts under the same name (a new session)
    /// when the fault ends.
    Crash(usize),
    /// The node's process stops making progress; it resumes with its backlog.
    Pause(usize),
    /// The node stops renewing its leases (as if it could not reach the store).
    RenewalPause(usize),
    /// Every store request takes this long each way (straddling the ttl).
    StoreSpike(Duration, Duration),
    /// The store answers nothing (half the requests take effect anyway).
    StoreOutage,
    /// The node shuts down gracefully (maybe mid-handover) and later
    /// starts again (a leave, then a join).
    Shutdown(usize),
    /// The node restarts with the register registry at another shard count
    /// (a rolling deploy caught half way); it restarts with the usual count
    /// when the fault ends.
    ShardSkew(usize),
}

impl Fault {
    /// The node this fault takes out of normal service, if any (one such
    /// fault per node at a time).
    pub(crate) fn node(&self) -> Option<usize> {
        match *self {
            Fault::Crash(n) | Fault::Pause(n) | Fault::RenewalPause(n) | Fault::Shutdown(n) | Fault::ShardSkew(n) => {
                Some(n)
            }
            _ => None,
        }
    }

    /// Whether this fault affects the store.
    pub(crate) fn is_store(&self) -> bool {
        matches!(self, Fault::StoreSpike(..) | Fault::StoreOutage)
    }
}

/// Draws faults for a cluster of `nodes` nodes with lease time `ttl`.
#[derive(Debug)]
pub(crate) struct Schedule {
    nodes: usize,
    ttl: Duration,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Two distinct node indices.
fn pair(rng: &mut StdRng, nodes: usize) -> (usize, usize) {
    let a = rng.random_range(0..nodes);
    let b = (a + rng.random_range(1..nodes)) % nodes;
    (a, b)
}

impl Schedule {
    pub(crate) fn new(nodes: usize, ttl: Duration) -> Schedule {
        Schedule { nodes, ttl }
    }

    /// The next fault and how long it lasts.
    pub(crate) fn draw(&self, rng: &mut StdRng) -> (Fault, Duration) {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let n = self.nodes;
        let node = rng.random_range(0..n);
        // Durations around the lease ttl: some shorter (nothing expires),
        // some longer (leases expire and move).
        let around_ttl = |rng: &mut StdRng| ms(rng.random_range(ttl_ms / 5..=ttl_ms * 2));
        match rng.random_range(0..100u32) {
            0..12 => {
                let (a, b) = pair(rng, n);
                (Fault::Partition(a, b), around_ttl(rng))
            }
            12..20 => {
                let (a, b) = pair(rng, n);
                (Fault::OneWay(a, b), around_ttl(rng))
            }
            20..32 => {
                let (a, b) = pair(rng, n);
                let delay_max = ms(rng.random_range(1..=ttl_ms / 4));
                let faults = LinkFaults {
                    drop_rate: rng.random_range(0.0..0.2),
                    duplicate_rate: if rng.random_bool(0.3) { rng.random_range(0.0..0.05) } else { 0.0 },
                    reorder_rate: if rng.random_bool(0.3) { rng.random_range(0.0..0.1) } else { 0.0 },
                    delay_min: Duration::ZERO,
                    delay_max,
                };
                (Fault::Noisy(a, b, faults), around_ttl(rng))
            }
            32..40 => {
                let mut links = Vec::new();
                for _ in 0..rng.random_range(1..=n) {
                    let link = pair(rng, n);
                    if !links.contains(&link) {
                        links.push(link);
                    }
                }
                (Fault::Clog(links), ms(rng.random_range(50..=ttl_ms)))
            }
            40..50 => (Fault::Crash(node), around_ttl(rng)),
            50..62 => (Fault::Pause(node), around_ttl(rng)),
            62..70 => (Fault::RenewalPause(node), around_ttl(rng)),
            70..76 => {
                let lo = ms(ttl_ms / 2);
                let hi = ms(ttl_ms + ttl_ms / 2);
                (Fault::StoreSpike(lo, hi), around_ttl(rng))
            }
            76..84 => (Fault::StoreOutage, ms(rng.random_range(100..=ttl_ms * 2))),
            84..94 => (Fault::Shutdown(node), around_ttl(rng)),
            _ => (Fault::ShardSkew(node), around_ttl(rng)),
        }
    }
}
