//! The trace of one simulated run: every event in the order it happened,
//! and a digest of them all.
//!
//! Events that the checker reads ([`Ev`]) are kept; every frame the
//! in-memory overlay carried only goes into the digest (there are many, and
//! the checker judges the outcomes they cause, not the frames). The digest
//! is SHA-256 over each event's time (virtual microseconds since the run
//! started) and `Debug` form, and over each frame's link, fate and bytes, in
//! order: two runs with the same digest did the same things at the same
//! virtual instants.

use std::fmt::Write as _;
use std::sync::Arc;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::env::{NodeEvent, Observer};
use crate::error::RemoteError;
use crate::id::SessionId;
use crate::overlay::{FrameFate, FrameTap};
use crate::wire::{DataRef, EnvelopeRef};

/// What an executed operation did, as the activation computed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Register write: the value before, the value written.
    Write { prev: i64, value: i64 },
    /// Register read, counter read or account balance: the value read.
    Read { value: i64 },
    /// Counter increment: the value after.
    Incr { value: i64 },
    /// Account deposit: the amount and the balance after.
    Deposit { amount: i64, balance: i64 },
}

/// What a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Write(i64),
    Read,
    Incr,
    /// A deposit sent as an acknowledged tell (`true`) or a plain one.
    Deposit {
        amount: i64,
        acked: bool,
    },
    Balance,
}

/// How a client's call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Succeeded; the value returned, if the call returns one.
    Ok(Option<i64>),
    /// Failed.
    Err(RemoteError),
}

/// One event the checker reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ev {
    /// The store granted `lease` to `holder` (a new grant, or the holder
    /// acquiring again at its epoch) until `until` (µs).
    Grant { lease: Arc<str>, holder: SessionId, epoch: u64, until: u64 },
    /// The store extended the lease until `until` (µs).
    Renew { lease: Arc<str>, holder: SessionId, epoch: u64, until: u64 },
    /// The store released the lease.
    Release { lease: Arc<str>, holder: SessionId, epoch: u64 },
    /// A node session started, speaking protocol versions up to
    /// `max_version` (an older one stands for a node not yet upgraded).
    NodeUp { session: SessionId, max_version: u16 },
    /// A node session ended: crashed (`kill`) or shut down gracefully.
    NodeDown { session: SessionId, crashed: bool },
    /// A node's process was paused (`true`) or resumed.
    Paused { session: SessionId, paused: bool },
    /// What a node told its observer.
    Node { session: SessionId, event: NodeEvent },
    /// An activation's `on_start` ran.
    ActStart {
        uid: u64,
        /// The id its host names it by to monitors (from its actor's
        /// name; restarts in place keep it). Unique per host session and
        /// registry.
        activation: u64,
        session: SessionId,
        registry: &'static str,
        key: Arc<str>,
        /// The lease (by name) the activation runs under.
        lease: Arc<str>,
        epoch: u64,
    },
    /// An activation ended (`on_stop` finished, or it was dropped unfinished).
    ActStop { uid: u64, reason: String },
    /// An activation executed operation `op`.
    Exec { uid: u64, op: u64, effect: Effect },
    /// A client started operation `op` through `session`'s node.
    Invoke { op: u64, session: SessionId, registry: &'static str, key: Arc<str>, kind: OpKind },
    /// Operation `op` returned.
    Done { op: u64, outcome: Outcome },
    /// A client's monitor on `key` was placed, through `session`'s node,
    /// on the activation `activation` of the owner's session, if the owner
    /// named one.
    MonitorPlaced {
        mon: u64,
        session: SessionId,
        registry: &'static str,
        key: Arc<str>,
        activation: Option<(SessionId, u64)>,
    },
    /// A client's monitor fired.
    MonitorDown { mon: u64, reason: crate::wire::DownReason },
    /// The fault schedule did something (free text, for reading the trace).
    Fault(String),
    /// A request frame of operation `op` was delivered to node `to`, routed
    /// under `epoch` (read off the frame: authenticated, not encrypted).
    Routed { op: u64, to: String, epoch: u64 },
    /// A frame (kept only for a readable trace: `--trace`).
    Frame { from: String, to: String, fate: FrameFate, len: usize, hash: u64 },
}

/// One kept event: its position, its virtual time (µs since the start).
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) seq: u64,
    pub(crate) at: u64,
    pub(crate) ev: Ev,
}

struct Inner {
    t0: Instant,
    records: Vec<Record>,
    events: u64,
    hasher: Sha256,
    line: String,
    keep_frames: bool,
}

/// The trace, shared by everything that records into it. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Trace {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace").field("events", &self.inner.lock().events).finish_non_exhaustive()
    }
}

impl Trace {
    /// An empty trace whose clock starts now (tokio time).
    pub(crate) fn new() -> Trace {
        let inner = Inner {
            t0: Instant::now(),
            records: Vec::new(),
            events: 0,
            hasher: Sha256::new(),
            line: String::new(),
            keep_frames: false,
        };
        Trace { inner: Arc::new(Mutex::new(inner)) }
    }

    /// Keeps frames as events too (for a readable trace; slower).
    pub(crate) fn keep_frames(&self) {
        self.inner.lock().keep_frames = true;
    }

    /// Virtual microseconds since the start.
    pub(crate) fn now(&self) -> u64 {
        let t0 = self.inner.lock().t0;
        micros(Instant::now().saturating_duration_since(t0))
    }

    /// Records `ev` now.
    pub(crate) fn push(&self, ev: Ev) {
        let mut g = self.inner.lock();
        let at = micros(Instant::now().saturating_duration_since(g.t0));
        let inner = &mut *g;
        inner.line.clear();
        // Writing to a String cannot fail.
        let _ = writeln!(inner.line, "{at} {ev:?}");
        inner.hasher.update(inner.line.as_bytes());
        let seq = inner.events;
        inner.events += 1;
        inner.records.push(Record { seq, at, ev });
    }

    /// Events so far (kept and digest-only).
    pub(crate) fn events(&self) -> u64 {
        self.inner.lock().events
    }

    /// The kept events so far.
    pub(crate) fn records(&self) -> Vec<Record> {
        self.inner.lock().records.clone()
    }

    /// The digest of everything so far.
    pub(crate) fn digest(&self) -> [u8; 32] {
        self.inner.lock().hasher.clone().finalize().into()
    }
}

/// The workload operations and epoch of a request frame (empty for any
/// other frame): one for an ask or a tell, one per tell of a `Tells`.
/// Every workload message's first field is its operation id, so the
/// contract payload starts with the variant index, then the id.
fn routed_ops(frame: &[u8]) -> Vec<(u64, u64)> {
    let op = |payload: &[u8]| postcard::take_from_bytes::<(u32, u64)>(payload).ok().map(|((_variant, op), _)| op);
    let Ok(crate::wire::Body::Sealed { payload, .. }) = crate::wire::decode_body(frame) else { return Vec::new() };
    match crate::wire::decode_envelope_ref(payload) {
        Ok(EnvelopeRef::Data(DataRef::Ask { epoch, payload, .. } | DataRef::Tell { epoch, payload, .. })) => {
            op(payload).map(|op| (op, epoch)).into_iter().collect()
        }
        Ok(EnvelopeRef::Data(DataRef::Tells { epoch, payloads, .. })) => {
            payloads.iter().filter_map(|p| op(p)).map(|op| (op, epoch)).collect()
        }
        _ => Vec::new(),
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl FrameTap for Trace {
    fn frame(&self, from: &str, to: &str, bytes: &[u8], fate: FrameFate) {
        let mut g = self.inner.lock();
        let at = micros(Instant::now().saturating_duration_since(g.t0));
        let h = &mut g.hasher;
        h.update(at.to_le_bytes());
        let kind = fate;
        let fate: &[u8] = match fate {
            FrameFate::Delivered => b"delivered",
            FrameFate::DroppedPartition => b"partition",
            FrameFate::DroppedRandom => b"random",
            FrameFate::DroppedHoldOverflow => b"overflow",
            FrameFate::Held => b"held",
        };
        for part in [from.as_bytes(), to.as_bytes(), fate, bytes] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let seq = g.events;
        g.events += 1;
        if kind == FrameFate::Delivered {
            let routed = routed_ops(bytes);
            if !routed.is_empty() {
                drop(g);
                for (op, epoch) in routed {
                    self.push(Ev::Routed { op, to: to.to_owned(), epoch });
                }
                g = self.inner.lock();
            }
        }
        if g.keep_frames {
            let hash = crate::hash::stable_hash(&[bytes]);
            let ev = Ev::Frame { from: from.into(), to: to.into(), fate: kind, len: bytes.len(), hash };
            g.records.push(Record { seq, at, ev });
        }
    }
}

impl Observer for Trace {
    fn event(&self, node: &SessionId, event: NodeEvent) {
        self.push(Ev::Node { session: node.clone(), event });
    }
}
