//! Upper bounds of [`ClusterConfig`](super::ClusterConfig)'s durations and
//! counts, and the check of a list of named values against them (the
//! config lists its fields).
//!
//! Durations are added to `Instant`s (`now + handshake_timeout`, a lease's
//! deadline, a backoff); past about 2^63 ns that addition panics. Every
//! duration is therefore at most [`MAX_DURATION`], far below any overflow,
//! so the sums the node computes stay representable. Counts size
//! semaphores and tables (a `tokio` semaphore panics above `usize::MAX >> 3`
//! permits), so each is at most [`MAX_LIMIT`]. Byte sizes are not counts:
//! `max_frame_bytes` has its own bound (4 GiB, the length prefix), and
//! `max_connection_queue_bytes` is only compared with saturating arithmetic,
//! so any value is safe.

use std::time::Duration;

use super::problem::ConfigProblem;

/// The longest duration any setting accepts: one day.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The largest count any table or queue limit accepts: 2^24 (16,777,216).
pub const MAX_LIMIT: usize = 1 << 24;

/// The first of `durations` above [`MAX_DURATION`], else the first of
/// `limits` above [`MAX_LIMIT`], as a problem naming its field.
pub(super) fn check(
    durations: &[(&'static str, Duration)],
    limits: &[(&'static str, usize)],
) -> Result<(), ConfigProblem> {
    if let Some(&(field, _)) = durations.iter().find(|(_, d)| *d > MAX_DURATION) {
        return Err(ConfigProblem { field, problem: "must be at most one day (config::MAX_DURATION)" });
    }
    if let Some(&(field, _)) = limits.iter().find(|(_, n)| *n > MAX_LIMIT) {
        return Err(ConfigProblem { field, problem: "must be at most 2^24 (config::MAX_LIMIT)" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::ClusterConfig;
    use super::super::tests::secure;
    use super::*;

    #[test]
    fn the_first_value_over_its_bound_is_named() {
        let day = MAX_DURATION;
        let over = MAX_DURATION + Duration::from_nanos(1);
        assert_eq!(check(&[("a", day), ("b", Duration::ZERO)], &[("n", MAX_LIMIT)]), Ok(()));
        assert_eq!(check(&[], &[]), Ok(()));
        assert_eq!(check(&[("a", day), ("b", over), ("c", over)], &[]).map_err(|p| p.field), Err("b"));
        assert_eq!(check(&[], &[("n", 1), ("m", MAX_LIMIT + 1)]).map_err(|p| p.field), Err("m"));
        // Durations are checked first.
        assert_eq!(check(&[("d", Duration::MAX)], &[("n", usize::MAX)]).map_err(|p| p.field), Err("d"));
    }

    /// Sets the duration field `field` of `cfg` to `d`.
    fn with_duration(field: &str, d: Duration) -> ClusterConfig {
        let mut cfg = secure();
        let slot = match field {
            "lease_ttl" => &mut cfg.lease_ttl,
            "renew_interval" => &mut cfg.renew_interval,
            "node_ttl" => &mut cfg.node_ttl,
            "heartbeat_interval" => &mut cfg.heartbeat_interval,
            "request_timeout" => &mut cfg.request_timeout,
            "handshake_timeout" => &mut cfg.handshake_timeout,
            "reconnect_min" => &mut cfg.reconnect_min,
            "reconnect_max" => &mut cfg.reconnect_max,
            "rebalance_settle" => &mut cfg.rebalance_settle,
            "lease_store_timeout" => &mut cfg.lease_store_timeout,
            "hello_timeout" => &mut cfg.hello_timeout,
            other => panic!("unknown duration field {other}"),
        };
        *slot = d;
        cfg
    }

    #[test]
    fn the_largest_duration_in_any_field_is_refused_naming_the_field() {
        for (field, _) in secure().durations() {
            for d in [Duration::MAX, MAX_DURATION + Duration::from_nanos(1)] {
                let got = with_duration(field, d).validate().map_err(|p| p.field);
                assert_eq!(got, Err(field), "{field} = {d:?}");
            }
        }
    }

    #[test]
    fn a_day_is_accepted_where_the_other_rules_allow_it() {
        let day = ClusterConfig {
            request_timeout: MAX_DURATION,
            handshake_timeout: MAX_DURATION,
            rebalance_settle: MAX_DURATION,
            reconnect_max: MAX_DURATION,
            node_ttl: MAX_DURATION,
            lease_ttl: MAX_DURATION,
            ..secure()
        };
        assert_eq!(day.validate(), Ok(()));
    }

    #[test]
    fn the_largest_count_in_any_limit_is_refused_naming_the_field() {
        for (field, _) in secure().limits() {
            let mut cfg = secure();
            let slot = match field {
                "max_pending_handshakes" => &mut cfg.max_pending_handshakes,
                "max_peers" => &mut cfg.max_peers,
                "max_inflight_requests" => &mut cfg.max_inflight_requests,
                "max_moves_per_interval" => &mut cfg.max_moves_per_interval,
                "max_remote_monitors" => &mut cfg.max_remote_monitors,
                "preauth_frame_budget" => &mut cfg.preauth_frame_budget,
                "max_pending_handshakes_per_source" => &mut cfg.max_pending_handshakes_per_source,
                other => panic!("unknown limit {other}"),
            };
            *slot = usize::MAX;
            assert_eq!(cfg.validate().map_err(|p| p.field), Err(field));
        }
    }
}
