//! [`KeyedConfig`]: the settings of a keyed registry, its defaults and
//! bounds. Plain data, read by the registry's host.

use std::time::Duration;

use crate::config::{ConfigProblem, MAX_DURATION, MAX_LIMIT};

/// Default mailbox capacity of an activation.
pub const DEFAULT_MAILBOX_CAPACITY: usize = 1024;
/// Default idle time after which an activation is passivated (stopped; the
/// next message starts a fresh one).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default bound on activations of one registry on one node.
pub const DEFAULT_MAX_ACTIVATIONS: usize = 100_000;
/// Default bound on monitors held on one registry's activations on one node.
pub const DEFAULT_MAX_MONITORS: usize = 65_536;
/// Default time a stopping activation (handover, shutdown) may take before
/// it is killed.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The most shards a registry may have.
pub const MAX_SHARDS: usize = 65_536;

/// Settings of a keyed registry. Every node hosting the registry must use
/// the same `shard_count`. Durations are at most
/// [`MAX_DURATION`](crate::config::MAX_DURATION) (1 day) and the capacity
/// and limits at most [`MAX_LIMIT`](crate::config::MAX_LIMIT);
/// [`KeyedConfig::validate`] refuses larger values.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedConfig {
    /// Shards the key space is split into (the unit of ownership and
    /// movement), 1 to [`MAX_SHARDS`].
    pub shard_count: usize,
    /// Mailbox capacity of each activation.
    pub mailbox_capacity: usize,
    /// Passivate activations idle this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Activations of this registry on one node; more are refused with
    /// `Overloaded` (a peer cannot make a node spawn without bound).
    pub max_activations: usize,
    /// Monitors held on this registry's activations on one node.
    pub max_monitors: usize,
    /// How long an activation may take to stop on handover or shutdown
    /// before it is killed.
    pub stop_timeout: Duration,
}

impl KeyedConfig {
    /// A registry of `shard_count` shards with default settings.
    pub fn new(shard_count: usize) -> KeyedConfig {
        KeyedConfig {
            shard_count,
            mailbox_capacity: DEFAULT_MAILBOX_CAPACITY,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_activations: DEFAULT_MAX_ACTIVATIONS,
            max_monitors: DEFAULT_MAX_MONITORS,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
        }
    }

    /// Sets the activations' mailbox capacity.
    pub fn mailbox_capacity(mut self, n: usize) -> Self {
        self.mailbox_capacity = n;
        self
    }

    /// Sets the idle time before passivation (`None`: never passivate).
    pub fn idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Sets the bound on activations per node.
    pub fn max_activations(mut self, n: usize) -> Self {
        self.max_activations = n;
        self
    }

    /// Sets the bound on monitors per node.
    pub fn max_monitors(mut self, n: usize) -> Self {
        self.max_monitors = n;
        self
    }

    /// Sets how long a stopping activation may take before it is killed.
    pub fn stop_timeout(mut self, d: Duration) -> Self {
        self.stop_timeout = d;
        self
    }

    pub(crate) fn shard_count_u32(&self) -> u32 {
        u32::try_from(self.shard_count.clamp(1, MAX_SHARDS)).unwrap_or(1)
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A [`ConfigProblem`] naming the field.
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        let bad = |field, problem| Err(ConfigProblem { field, problem });
        if self.shard_count == 0 || self.shard_count > MAX_SHARDS {
            return bad("shard_count", "must be between 1 and 65536");
        }
        if self.mailbox_capacity == 0 {
            return bad("mailbox_capacity", "must be at least 1");
        }
        if self.max_activations == 0 {
            return bad("max_activations", "must be at least 1");
        }
        if self.idle_timeout == Some(Duration::ZERO) {
            return bad("idle_timeout", "must be positive (use None to never passivate)");
        }
        // Durations are added to instants and counts size channels: beyond
        // these bounds that would panic.
        for (field, d) in [("idle_timeout", self.idle_timeout.unwrap_or_default()), ("stop_timeout", self.stop_timeout)]
        {
            if d > MAX_DURATION {
                return bad(field, "must be at most one day (config::MAX_DURATION)");
            }
        }
        for (field, n) in [
            ("mailbox_capacity", self.mailbox_capacity),
            ("max_activations", self.max_activations),
            ("max_monitors", self.max_monitors),
        ] {
            if n > MAX_LIMIT {
                return bad(field, "must be at most 2^24 (config::MAX_LIMIT)");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_settings_are_refused_naming_the_field() {
        let cases = [
            (KeyedConfig::new(8).stop_timeout(Duration::MAX), "stop_timeout"),
            (KeyedConfig::new(8).idle_timeout(Some(Duration::MAX)), "idle_timeout"),
            (KeyedConfig::new(8).mailbox_capacity(usize::MAX), "mailbox_capacity"),
            (KeyedConfig::new(8).max_activations(usize::MAX), "max_activations"),
            (KeyedConfig::new(8).max_monitors(usize::MAX), "max_monitors"),
        ];
        for (cfg, field) in cases {
            assert_eq!(cfg.validate().map_err(|p| p.field), Err(field));
        }
        let day = KeyedConfig::new(8).stop_timeout(MAX_DURATION).idle_timeout(Some(MAX_DURATION));
        assert_eq!(day.validate(), Ok(()));
    }
}
