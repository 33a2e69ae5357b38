//! Pure helpers of the Redis store: key names, the lease value format,
//! argument checks and the mapping of client errors to [`LeaseStoreError`].
//! No I/O, so all of it is unit-tested without a server.

use std::time::Duration;

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::id::SessionId;
use crate::lease::{Epoch, Lease, LeaseStoreError};

/// The largest ttl accepted, in ms (about 35 years): keeps `now + ttl` far
/// below both Redis's expiry limit and 2^53 (exact in Lua's doubles).
pub(super) const MAX_TTL_MS: u64 = 1 << 40;

/// The keys of one store, all under its prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Result<Keys, LeaseStoreError> {
        if prefix.is_empty() {
            return Err(LeaseStoreError::Invalid("empty key prefix"));
        }
        Ok(Keys { prefix: prefix.to_owned() })
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}:lease:{name}`: the lease value, with the lease's expiry.
    pub(super) fn lease(&self, name: &str) -> String {
        format!("{}:lease:{name}", self.prefix)
    }

    /// `{prefix}:epoch:{name}`: the last epoch granted; no expiry.
    pub(super) fn epoch(&self, name: &str) -> String {
        format!("{}:epoch:{name}", self.prefix)
    }

    /// `{prefix}:group:{name}`: a lease group's tags, each with the expiry
    /// of its newest lease (ms of server time).
    pub(super) fn group(&self, name: &str) -> String {
        format!("{}:group:{name}", self.prefix)
    }

    /// `{prefix}:members`: sessions scored by expiry (ms of server time).
    pub(super) fn members(&self) -> String {
        format!("{}:members", self.prefix)
    }
}

/// Rejects an empty lease name, as `MemoryLeaseStore` does.
pub(super) fn check_name(name: &str) -> Result<(), LeaseStoreError> {
    if name.is_empty() {
        return Err(LeaseStoreError::Invalid("empty lease name"));
    }
    Ok(())
}

/// `ttl` in whole milliseconds, rounded up (the store never expires a lease
/// earlier than asked). Zero and absurdly large ttls are `Invalid`.
pub(super) fn ttl_ms(ttl: Duration) -> Result<u64, LeaseStoreError> {
    if ttl.is_zero() {
        return Err(LeaseStoreError::Invalid("zero ttl"));
    }
    match u64::try_from(ttl.as_nanos().div_ceil(1_000_000)) {
        Ok(ms) if ms <= MAX_TTL_MS => Ok(ms),
        _ => Err(LeaseStoreError::Invalid("ttl too large")),
    }
}

/// The stored form of a lease: `"{epoch}|{session}"`.
pub(super) fn encode_value(epoch: Epoch, holder: &SessionId) -> String {
    format!("{}|{}", epoch.0, holder.encode())
}

/// Parses a stored lease value of `name`. The epoch is digits only (the
/// session may contain `|` in its node name, the epoch cannot).
pub(super) fn parse_value(name: &str, value: &str) -> Result<Lease, LeaseStoreError> {
    const BAD: LeaseStoreError = LeaseStoreError::Protocol("malformed lease value");
    let (epoch, session) = value.split_once('|').ok_or(BAD)?;
    if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BAD);
    }
    let epoch = epoch.parse().map_err(|_| BAD)?;
    let holder = SessionId::parse(session).ok_or(BAD)?;
    Ok(Lease { name: name.to_owned(), holder, epoch: Epoch(epoch) })
}

/// Parses a member of the members set.
pub(super) fn parse_member(member: &str) -> Result<SessionId, LeaseStoreError> {
    SessionId::parse(member).ok_or(LeaseStoreError::Protocol("malformed member"))
}

/// Classifies a client error: the store unreachable or not accepting writes
/// (worth retrying later) versus an answer this client does not understand.
pub(super) fn map_error(e: &RedisError) -> LeaseStoreError {
    match e.kind() {
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => LeaseStoreError::Unavailable("connection failed"),
        ErrorKind::AuthenticationFailed => LeaseStoreError::Unavailable("authentication failed"),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::ReadOnly,
        ) => LeaseStoreError::Unavailable("server not accepting writes"),
        ErrorKind::Server(ServerErrorKind::NoPerm) => LeaseStoreError::Unavailable("permission denied"),
        ErrorKind::Server(_) | ErrorKind::Extension => LeaseStoreError::Protocol("server error"),
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => LeaseStoreError::Protocol("unexpected reply"),
        _ => LeaseStoreError::Protocol("client error"),
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::id::NodeId;

    fn session(name: &str) -> SessionId {
        SessionId { node: NodeId::new(name), boot: 0xabc, counter: 7 }
    }

    #[test]
    fn keys_live_under_the_prefix() {
        let k = Keys::new("p").expect("prefix");
        assert_eq!(k.lease("s/1"), "p:lease:s/1");
        assert_eq!(k.epoch("s/1"), "p:epoch:s/1");
        assert_eq!(k.members(), "p:members");
        assert_eq!(Keys::new("").map(|_| ()), Err(LeaseStoreError::Invalid("empty key prefix")));
    }

    #[test]
    fn ttls_round_up_to_milliseconds_and_are_bounded() {
        assert_eq!(ttl_ms(Duration::ZERO), Err(LeaseStoreError::Invalid("zero ttl")));
        assert_eq!(ttl_ms(Duration::from_nanos(1)), Ok(1));
        assert_eq!(ttl_ms(Duration::from_micros(1500)), Ok(2));
        assert_eq!(ttl_ms(Duration::from_millis(250)), Ok(250));
        assert_eq!(ttl_ms(Duration::from_millis(MAX_TTL_MS)), Ok(MAX_TTL_MS));
        assert!(ttl_ms(Duration::from_millis(MAX_TTL_MS + 1)).is_err());
        assert!(ttl_ms(Duration::MAX).is_err());
    }

    #[test]
    fn lease_values_round_trip() {
        for node in ["a", "a|b", "x#y", ""] {
            let holder = session(node);
            let v = encode_value(Epoch(1_700_000_000_000_001), &holder);
            let lease = parse_value("s/1", &v).expect("parse");
            assert_eq!(lease, Lease { name: "s/1".into(), holder, epoch: Epoch(1_700_000_000_000_001) });
        }
    }

    #[test]
    fn malformed_values_are_protocol_errors() {
        let good = session("a").encode();
        for bad in [
            String::new(),
            "garbage".into(),
            format!("|{good}"),
            format!("+1|{good}"),
            format!("1.0|{good}"),
            format!("18446744073709551616|{good}"),
            "1|a#nothex0000000000.0".into(),
            "1|".into(),
        ] {
            assert_eq!(parse_value("n", &bad), Err(LeaseStoreError::Protocol("malformed lease value")), "{bad:?}");
        }
        assert!(matches!(parse_member("nope"), Err(LeaseStoreError::Protocol(_))));
    }

    #[test]
    fn errors_are_classified() {
        let io = RedisError::from(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
        assert!(matches!(map_error(&io), LeaseStoreError::Unavailable(_)));
        let timeout = RedisError::from(io::Error::new(io::ErrorKind::TimedOut, "slow"));
        assert!(matches!(map_error(&timeout), LeaseStoreError::Unavailable(_)));
        let ty = RedisError::from((ErrorKind::UnexpectedReturnType, "bad type"));
        assert!(matches!(map_error(&ty), LeaseStoreError::Protocol(_)));
        let script = RedisError::from((ErrorKind::Server(ServerErrorKind::ResponseError), "boom"));
        assert!(matches!(map_error(&script), LeaseStoreError::Protocol(_)));
        let ro = RedisError::from((ErrorKind::Server(ServerErrorKind::ReadOnly), "replica"));
        assert!(matches!(map_error(&ro), LeaseStoreError::Unavailable(_)));
    }
}
