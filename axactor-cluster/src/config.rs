//! [`ClusterConfig`]: every tunable of a node, with secure defaults and a
//! consistency check run by `ClusterNode::start`.
//!
//! Every table or queue a peer can grow has a named default here, a field,
//! an error when it is full and a counter in `ClusterNode::inspect`.

use std::time::Duration;

use crate::wire::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::wire::hello::{PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION};

mod bounds;
mod problem;
mod token;

pub use bounds::{MAX_DURATION, MAX_LIMIT};
pub use problem::ConfigProblem;
pub use token::{MIN_TOKEN_CHARS, MIN_TOKEN_DISTINCT_CHARS};

/// Default lease time-to-live.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// Default lease renewal interval.
pub const DEFAULT_RENEW_INTERVAL: Duration = Duration::from_secs(3);
/// Default time after which a silent node is considered gone.
pub const DEFAULT_NODE_TTL: Duration = Duration::from_secs(10);
/// Default heartbeat interval per peer.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// Default deadline of a remote request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default deadline of a handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of handshakes in progress at once (unauthenticated peers).
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 64;
/// Default number of authenticated peer sessions.
pub const DEFAULT_MAX_PEERS: usize = 256;
/// Default number of frames an unauthenticated peer may send (the
/// handshake needs two).
pub const DEFAULT_PREAUTH_FRAME_BUDGET: usize = 4;
/// Default size limit of a frame before authentication.
pub const DEFAULT_PREAUTH_MAX_FRAME_BYTES: usize = 4 * 1024;
/// Default number of remote requests awaiting a reply, per node.
pub const DEFAULT_MAX_INFLIGHT_REQUESTS: usize = 65_536;
/// Default first delay before re-dialling a lost peer.
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(50);
/// Default cap of the re-dial backoff.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Default settle window: no handover until the set of nodes has been
/// stable this long.
pub const DEFAULT_REBALANCE_SETTLE: Duration = Duration::from_secs(5);
/// Default cap on handovers a node starts per `renew_interval`.
pub const DEFAULT_MAX_MOVES_PER_INTERVAL: usize = 8;
/// Default bound on monitors this node holds on remote activations.
pub const DEFAULT_MAX_REMOTE_MONITORS: usize = 65_536;
/// Default bound on one lease-store call (2 s): with the default lease ttl
/// (10 s) and renewal interval (3 s), a renewal that hangs for the whole
/// bound still leaves room for a retry before the lease's local deadline
/// (3 s + 2 s + 0.75 s retry delay + 2 s < 10 s − 0.2 s drift margin).
pub const DEFAULT_LEASE_STORE_TIMEOUT: Duration = Duration::from_secs(2);

// Pre-authentication and per-connection memory bounds (issue #11, items 7 and 8).
/// Default deadline of an inbound connection's first handshake message (the
/// Hello): a connection that sends nothing frees its pending-handshake slot
/// after this long, not after the whole `handshake_timeout`.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(1);
/// Default number of pending inbound handshakes from one source address
/// (TCP: one IP address, whatever the port).
pub const DEFAULT_MAX_PENDING_HANDSHAKES_PER_SOURCE: usize = 8;
/// Default byte budget of each direction of one connection's link queues:
/// the frames an established peer can make this node hold, queued, per
/// connection and direction. The same as the overlay's default link budget
/// (`overlay::DEFAULT_LINK_QUEUE_BYTES`, 32 MiB), so the default
/// configuration leaves an authenticated link's budget as the overlay made it.
pub const DEFAULT_MAX_CONNECTION_QUEUE_BYTES: usize = 32 * 1024 * 1024;

/// Settings of a cluster node. `Default` is secure: no token means
/// `ClusterNode::start` refuses to run unless `allow_insecure_auth` is set,
/// and a token must be strong (see [`ClusterConfig::auth_token`]).
///
/// Every duration is at most [`MAX_DURATION`] (1 day) and every count at
/// most [`MAX_LIMIT`]; [`ClusterConfig::validate`] refuses larger values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Shared secret all nodes of the cluster authenticate each other with.
    /// Never sent on the wire.
    ///
    /// Must carry at least 128 bits of entropy: at least
    /// [`MIN_TOKEN_CHARS`] (32) characters, of at least
    /// [`MIN_TOKEN_DISTINCT_CHARS`] (8) distinct ones, unless
    /// `allow_weak_token` is set. [`ClusterConfig::generate_token`] makes
    /// one. Frames are authenticated, not encrypted: an on-path observer
    /// reads every message, and one recorded handshake lets it test guesses
    /// of the token offline, as fast as it can compute HMACs; only a long
    /// random token makes that hopeless.
    pub auth_token: Option<String>,
    /// Accept a token shorter or less varied than the rules above (tests and
    /// demos only: a weak token can be guessed offline from one recorded
    /// handshake). An empty token is refused regardless.
    pub allow_weak_token: bool,
    /// Allow running without a token (a well-known key is used: no security;
    /// a loud warning is logged).
    pub allow_insecure_auth: bool,
    /// How long a shard lease lasts without renewal.
    pub lease_ttl: Duration,
    /// How often leases are renewed; must be well below `lease_ttl`.
    pub renew_interval: Duration,
    /// How long a node may stay silent before it is considered gone.
    pub node_ttl: Duration,
    /// Heartbeat interval per peer connection.
    pub heartbeat_interval: Duration,
    /// Deadline of a remote request (an ask, a `_wait` tell, a monitor
    /// registration), at most [`MAX_DURATION`]. Independent of the lease
    /// timings: a handler may legitimately run longer than a lease's ttl.
    /// Lease-store calls have their own bound, `lease_store_timeout`.
    pub request_timeout: Duration,
    /// Largest frame sent or accepted after authentication.
    pub max_frame_bytes: usize,
    /// Oldest protocol version spoken.
    pub protocol_min_version: u16,
    /// Newest protocol version spoken.
    pub protocol_max_version: u16,
    /// Deadline of a handshake.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once; further connections are closed.
    pub max_pending_handshakes: usize,
    /// Frames an unauthenticated peer may send before it must be
    /// authenticated.
    pub preauth_frame_budget: usize,
    /// Largest frame accepted before authentication.
    pub preauth_max_frame_bytes: usize,
    /// Authenticated peer sessions at once.
    pub max_peers: usize,
    /// Remote requests awaiting replies at once; more fail at once.
    pub max_inflight_requests: usize,
    /// First delay before re-dialling a lost peer (doubles up to
    /// `reconnect_max`).
    pub reconnect_min: Duration,
    /// Cap of the re-dial backoff.
    pub reconnect_max: Duration,
    /// Settle window: a node hands a shard over to its preferred owner only
    /// once the set of nodes has been stable this long.
    pub rebalance_settle: Duration,
    /// Handovers a node starts per `renew_interval`, at most.
    pub max_moves_per_interval: usize,
    /// Monitors this node may hold on remote activations; more fail with
    /// `Overloaded`.
    pub max_remote_monitors: usize,
    /// Bound on one lease-store call (acquire, renew, release, lookup,
    /// membership refresh); a call still unanswered then is abandoned and
    /// counts as failed (it may still take effect: every store operation is
    /// idempotent). Must satisfy
    /// `renew_interval + lease_store_timeout + drift margin < lease_ttl`,
    /// where the drift margin is `max(2% of lease_ttl, 50 ms)`: a renewal is
    /// sent `renew_interval` after the send that set the lease's local
    /// deadline (`sent_at + lease_ttl − drift margin`), so the inequality
    /// says a renewal that hangs is abandoned before that deadline and a
    /// retry is still sent under the same lease, instead of one slow answer
    /// fencing the shard. Default [`DEFAULT_LEASE_STORE_TIMEOUT`] (2 s).
    pub lease_store_timeout: Duration,
    /// Deadline of an inbound connection's first handshake message (the
    /// Hello), counted from the accept; at most `handshake_timeout`. A
    /// connection that sends no complete Hello in time is closed and
    /// counted (`handshake_failures["hello_timed_out"]`), freeing its
    /// pending-handshake slot early.
    pub hello_timeout: Duration,
    /// Pending inbound handshakes from one source address at once (TCP:
    /// one IP address; in memory: one dialling node); further connections
    /// from it are closed at once and counted
    /// (`handshake_source_limit_exceeded`). At most
    /// `max_pending_handshakes`. Links whose source the overlay does not
    /// know are only bound by `max_pending_handshakes`.
    pub max_pending_handshakes_per_source: usize,
    /// Byte budget of each direction of an authenticated connection's link
    /// queues (the peer's frames received and not handled yet; our frames
    /// queued and not written yet). Over it, the link stops taking the
    /// peer's frames or makes our writer wait, like a full queue. On TCP
    /// and TLS nothing is queued on the receiving side (the session reads
    /// the socket itself, only while it waits for a frame): there it caps
    /// each read. At least `max_frame_bytes`.
    pub max_connection_queue_bytes: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            auth_token: None,
            allow_weak_token: false,
            allow_insecure_auth: false,
            lease_ttl: DEFAULT_LEASE_TTL,
            renew_interval: DEFAULT_RENEW_INTERVAL,
            node_ttl: DEFAULT_NODE_TTL,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            protocol_min_version: PROTOCOL_MIN_VERSION,
            protocol_max_version: PROTOCOL_MAX_VERSION,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_pending_handshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
            preauth_frame_budget: DEFAULT_PREAUTH_FRAME_BUDGET,
            preauth_max_frame_bytes: DEFAULT_PREAUTH_MAX_FRAME_BYTES,
            max_peers: DEFAULT_MAX_PEERS,
            max_inflight_requests: DEFAULT_MAX_INFLIGHT_REQUESTS,
            reconnect_min: DEFAULT_RECONNECT_MIN,
            reconnect_max: DEFAULT_RECONNECT_MAX,
            rebalance_settle: DEFAULT_REBALANCE_SETTLE,
            max_moves_per_interval: DEFAULT_MAX_MOVES_PER_INTERVAL,
            max_remote_monitors: DEFAULT_MAX_REMOTE_MONITORS,
            lease_store_timeout: DEFAULT_LEASE_STORE_TIMEOUT,
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            max_pending_handshakes_per_source: DEFAULT_MAX_PENDING_HANDSHAKES_PER_SOURCE,
            max_connection_queue_bytes: DEFAULT_MAX_CONNECTION_QUEUE_BYTES,
        }
    }
}

impl ClusterConfig {
    /// Checks that the settings are consistent and within their bounds.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        let bad = |field, problem| Err(ConfigProblem { field, problem });
        if self.auth_token.is_none() && !self.allow_insecure_auth {
            return bad("auth_token", "is required: set a shared secret, or allow_insecure_auth for tests");
        }
        if let Some(token) = &self.auth_token {
            token::check(token, self.allow_weak_token)?;
        }
        // Before any arithmetic on the values: every sum below stays far
        // from overflowing once each term is at most a day.
        bounds::check(&self.durations(), &self.limits())?;
        if self.renew_interval.is_zero() {
            return bad("renew_interval", "must be greater than zero");
        }
        if self.lease_ttl <= self.renew_interval {
            return bad("lease_ttl", "must be greater than renew_interval (suggested: about 3x)");
        }
        if self.renew_interval + crate::shard::lease_fsm::drift_margin(self.lease_ttl) >= self.lease_ttl {
            return bad(
                "renew_interval",
                "plus the drift margin (max(2% of lease_ttl, 50 ms)) must be below lease_ttl",
            );
        }
        if self.lease_store_timeout.is_zero() {
            return bad("lease_store_timeout", "must be greater than zero");
        }
        if self.renew_interval + self.lease_store_timeout + crate::shard::lease_fsm::drift_margin(self.lease_ttl)
            >= self.lease_ttl
        {
            return bad(
                "lease_store_timeout",
                "plus renew_interval and the drift margin (max(2% of lease_ttl, 50 ms)) must be below lease_ttl",
            );
        }
        if self.node_ttl < self.lease_ttl {
            return bad("node_ttl", "must be at least lease_ttl");
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.node_ttl {
            return bad("heartbeat_interval", "must be greater than zero and below node_ttl");
        }
        for (field, d) in [("request_timeout", self.request_timeout), ("handshake_timeout", self.handshake_timeout)] {
            if d.is_zero() {
                return bad(field, "must be greater than zero");
            }
        }
        if self.protocol_min_version > self.protocol_max_version {
            return bad("protocol_min_version", "must not exceed protocol_max_version");
        }
        if self.protocol_max_version < PROTOCOL_MIN_VERSION || self.protocol_min_version > PROTOCOL_MAX_VERSION {
            return bad("protocol_max_version", "range shares no version with this build");
        }
        if self.max_frame_bytes < 1024 || self.max_frame_bytes > u32::MAX as usize {
            return bad("max_frame_bytes", "must be between 1 KiB and 4 GiB");
        }
        if self.preauth_max_frame_bytes < 256 || self.preauth_max_frame_bytes > self.max_frame_bytes {
            return bad("preauth_max_frame_bytes", "must be between 256 bytes and max_frame_bytes");
        }
        for (field, n) in [
            ("max_pending_handshakes", self.max_pending_handshakes),
            ("max_peers", self.max_peers),
            ("max_inflight_requests", self.max_inflight_requests),
            ("max_moves_per_interval", self.max_moves_per_interval),
            ("max_remote_monitors", self.max_remote_monitors),
        ] {
            if n == 0 {
                return bad(field, "must be at least 1");
            }
        }
        if self.preauth_frame_budget < 2 {
            return bad("preauth_frame_budget", "must be at least 2 (the handshake sends two frames)");
        }
        if self.reconnect_min.is_zero() || self.reconnect_min > self.reconnect_max {
            return bad("reconnect_min", "must be greater than zero and at most reconnect_max");
        }
        self.validate_preauth_and_queue_bounds()
    }

    /// A fresh token for [`ClusterConfig::auth_token`]: 32 bytes (256 bits)
    /// from the operating system's CSPRNG, as 64 lowercase hex characters.
    /// Generate it once and give the same value to every node of the
    /// cluster (a secret store, an environment variable); a node that
    /// generates its own can talk to nobody.
    ///
    /// # Panics
    /// If the operating system's random generator fails (no usable entropy
    /// source): there is no safe fallback for a secret.
    pub fn generate_token() -> String {
        token::generate()
    }

    /// Every duration field, by name (each bounded by [`MAX_DURATION`]).
    fn durations(&self) -> [(&'static str, Duration); 11] {
        [
            ("lease_ttl", self.lease_ttl),
            ("renew_interval", self.renew_interval),
            ("node_ttl", self.node_ttl),
            ("heartbeat_interval", self.heartbeat_interval),
            ("request_timeout", self.request_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("reconnect_min", self.reconnect_min),
            ("reconnect_max", self.reconnect_max),
            ("rebalance_settle", self.rebalance_settle),
            ("lease_store_timeout", self.lease_store_timeout),
            ("hello_timeout", self.hello_timeout),
        ]
    }

    /// Every count limit, by name (each bounded by [`MAX_LIMIT`]).
    fn limits(&self) -> [(&'static str, usize); 7] {
        [
            ("max_pending_handshakes", self.max_pending_handshakes),
            ("max_peers", self.max_peers),
            ("max_inflight_requests", self.max_inflight_requests),
            ("max_moves_per_interval", self.max_moves_per_interval),
            ("max_remote_monitors", self.max_remote_monitors),
            ("preauth_frame_budget", self.preauth_frame_budget),
            ("max_pending_handshakes_per_source", self.max_pending_handshakes_per_source),
        ]
    }

    /// The checks of `hello_timeout`, `max_pending_handshakes_per_source`
    /// and `max_connection_queue_bytes`.
    fn validate_preauth_and_queue_bounds(&self) -> Result<(), ConfigProblem> {
        let bad = |field, problem| Err(ConfigProblem { field, problem });
        if self.hello_timeout.is_zero() || self.hello_timeout > self.handshake_timeout {
            return bad("hello_timeout", "must be greater than zero and at most handshake_timeout");
        }
        if self.max_pending_handshakes_per_source == 0
            || self.max_pending_handshakes_per_source > self.max_pending_handshakes
        {
            return bad("max_pending_handshakes_per_source", "must be at least 1 and at most max_pending_handshakes");
        }
        if self.max_connection_queue_bytes < self.max_frame_bytes {
            return bad("max_connection_queue_bytes", "must be at least max_frame_bytes");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token that passes the strength rule.
    pub(super) const TOKEN: &str = "unit-test-token-4f1c9a7e2b8d6053";

    pub(super) fn secure() -> ClusterConfig {
        ClusterConfig { auth_token: Some(TOKEN.into()), ..ClusterConfig::default() }
    }

    #[test]
    fn defaults_with_a_token_are_valid() {
        assert_eq!(secure().validate(), Ok(()));
    }

    #[test]
    fn default_without_token_is_refused_unless_insecure_is_allowed() {
        assert_eq!(ClusterConfig::default().validate().map_err(|p| p.field), Err("auth_token"));
        let insecure = ClusterConfig { allow_insecure_auth: true, ..ClusterConfig::default() };
        assert_eq!(insecure.validate(), Ok(()));
    }

    #[test]
    fn inconsistent_values_name_the_field() {
        let cases: Vec<(ClusterConfig, &str)> = vec![
            (ClusterConfig { lease_ttl: Duration::from_secs(3), ..secure() }, "lease_ttl"),
            (ClusterConfig { renew_interval: Duration::ZERO, ..secure() }, "renew_interval"),
            (ClusterConfig { node_ttl: Duration::from_secs(1), ..secure() }, "node_ttl"),
            (ClusterConfig { protocol_min_version: 3, protocol_max_version: 2, ..secure() }, "protocol_min_version"),
            (ClusterConfig { protocol_min_version: 9, protocol_max_version: 9, ..secure() }, "protocol_max_version"),
            (ClusterConfig { max_frame_bytes: 10, ..secure() }, "max_frame_bytes"),
            (ClusterConfig { max_peers: 0, ..secure() }, "max_peers"),
            (ClusterConfig { preauth_frame_budget: 1, ..secure() }, "preauth_frame_budget"),
            (ClusterConfig { auth_token: Some(String::new()), ..secure() }, "auth_token"),
            (ClusterConfig { lease_store_timeout: Duration::ZERO, ..secure() }, "lease_store_timeout"),
            // 3 s + 6.8 s + 0.2 s margin is not below 10 s.
            (ClusterConfig { lease_store_timeout: Duration::from_millis(6800), ..secure() }, "lease_store_timeout"),
            (ClusterConfig { hello_timeout: Duration::ZERO, ..secure() }, "hello_timeout"),
            (ClusterConfig { hello_timeout: Duration::from_secs(6), ..secure() }, "hello_timeout"),
            (ClusterConfig { max_pending_handshakes_per_source: 0, ..secure() }, "max_pending_handshakes_per_source"),
            (ClusterConfig { max_pending_handshakes_per_source: 65, ..secure() }, "max_pending_handshakes_per_source"),
            (ClusterConfig { max_connection_queue_bytes: 1024, ..secure() }, "max_connection_queue_bytes"),
        ];
        for (cfg, field) in cases {
            assert_eq!(cfg.validate().map_err(|p| p.field), Err(field));
        }
    }

    #[test]
    fn the_default_connection_budget_is_the_overlays_link_budget() {
        assert_eq!(DEFAULT_MAX_CONNECTION_QUEUE_BYTES, crate::overlay::DEFAULT_LINK_QUEUE_BYTES);
    }

    #[test]
    fn lease_store_timeout_must_leave_room_below_the_lease_ttl() {
        let just_fits = ClusterConfig { lease_store_timeout: Duration::from_millis(6799), ..secure() };
        assert_eq!(just_fits.validate(), Ok(()));
        // The store bound does not tie request_timeout to the lease: an ask
        // may take far longer than a lease lives.
        let long_asks = ClusterConfig { request_timeout: Duration::from_secs(600), ..secure() };
        assert_eq!(long_asks.validate(), Ok(()));
        let short =
            ClusterConfig { lease_ttl: Duration::from_secs(1), renew_interval: Duration::from_millis(300), ..secure() };
        assert_eq!(short.validate().map_err(|p| p.field), Err("lease_store_timeout"));
        let fixed = ClusterConfig { lease_store_timeout: Duration::from_millis(600), ..short };
        assert_eq!(fixed.validate(), Ok(()));
    }
}
