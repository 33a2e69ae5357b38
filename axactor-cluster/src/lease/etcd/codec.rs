//! Pure helpers of the etcd store: key names, the lease value format,
//! argument checks and the mapping of client errors to [`LeaseStoreError`].
//! No I/O, so all of it is unit-tested without a server.

use std::time::Duration;

use etcd_client::{Compare, CompareOp};

use crate::id::SessionId;
use crate::lease::{LeaseGroup, LeaseStoreError};

/// A lease group as stored in a lease value: its name and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredGroup {
    pub(super) name: String,
    pub(super) tag: u64,
}

impl From<LeaseGroup<'_>> for StoredGroup {
    fn from(g: LeaseGroup<'_>) -> StoredGroup {
        StoredGroup { name: g.name.to_owned(), tag: g.tag }
    }
}

/// A decoded lease value: the holder and the group it was acquired in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Value {
    pub(super) holder: SessionId,
    pub(super) group: Option<StoredGroup>,
}

/// The keys of one store, all under `{prefix}/`.
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

    /// `{prefix}/lease/{name}`: the lease value, attached to the lease's
    /// etcd lease; its `create_revision` is the epoch.
    pub(super) fn lease(&self, name: &str) -> String {
        format!("{}/lease/{name}", self.prefix)
    }

    /// `{prefix}/group/{len}:{group}/`: every live lease of a group has a
    /// key under it. The length makes the prefixes of two groups disjoint
    /// (no group's prefix is a prefix of another's).
    fn group_prefix(&self, group: &str) -> String {
        format!("{}/group/{}:{group}/", self.prefix, group.len())
    }

    /// `{prefix}/group/{len}:{group}/{tag:020}/{name}`: marks lease `name`
    /// live in `group` under `tag`; attached to the lease's etcd lease.
    pub(super) fn group_member(&self, group: &StoredGroup, name: &str) -> String {
        format!("{}{:020}/{name}", self.group_prefix(&group.name), group.tag)
    }

    /// The two key ranges `[start, end)` that hold the group's keys under
    /// every tag but `tag`: below `{tag:020}/` and from `{tag:020}0` (`'0'`
    /// follows `'/'`) to the end of the group's prefix. Tags have 20 digits,
    /// so another tag's keys fall in one of them and `tag`'s in neither.
    pub(super) fn other_tags(&self, group: LeaseGroup<'_>) -> [(String, Vec<u8>); 2] {
        let base = self.group_prefix(group.name);
        let own = format!("{base}{:020}", group.tag);
        let lower = (base.clone(), format!("{own}/").into_bytes());
        let upper = (format!("{own}0"), prefix_end(&base));
        [lower, upper]
    }

    /// The tag of a key in `group`'s prefix (as returned from
    /// [`Keys::other_tags`]).
    pub(super) fn tag_of(&self, group: &str, key: &[u8]) -> Result<u64, LeaseStoreError> {
        const BAD: LeaseStoreError = LeaseStoreError::Protocol("malformed group key");
        let base = self.group_prefix(group);
        let rest = key.strip_prefix(base.as_bytes()).ok_or(BAD)?;
        let digits = rest.get(..20).ok_or(BAD)?;
        if rest.get(20) != Some(&b'/') || !digits.iter().all(u8::is_ascii_digit) {
            return Err(BAD);
        }
        std::str::from_utf8(digits).map_err(|_| BAD)?.parse().map_err(|_| BAD)
    }

    /// `{prefix}/member/`: one key per live member.
    pub(super) fn members(&self) -> String {
        format!("{}/member/", self.prefix)
    }

    /// `{prefix}/member/{session}`: attached to an etcd lease of the member ttl.
    pub(super) fn member(&self, session: &SessionId) -> String {
        format!("{}{}", self.members(), session.encode())
    }

    /// The session of a member key.
    pub(super) fn member_of(&self, key: &[u8]) -> Result<SessionId, LeaseStoreError> {
        const BAD: LeaseStoreError = LeaseStoreError::Protocol("malformed member key");
        let rest = key.strip_prefix(self.members().as_bytes()).ok_or(BAD)?;
        SessionId::parse(std::str::from_utf8(rest).map_err(|_| BAD)?).ok_or(BAD)
    }
}

/// The first key after every key starting with `prefix` (which is not
/// empty and ends with `/`, so its last byte can be incremented).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// The compares "no key of `group` is live under another tag".
pub(super) fn no_other_tag(keys: &Keys, group: LeaseGroup<'_>) -> Vec<Compare> {
    keys.other_tags(group)
        .into_iter()
        .map(|(start, end)| Compare::version(start, CompareOp::Equal, 0).with_range(end))
        .collect()
}

/// Rejects an empty lease name, as `MemoryLeaseStore` does.
pub(super) fn check_name(name: &str) -> Result<(), LeaseStoreError> {
    if name.is_empty() {
        return Err(LeaseStoreError::Invalid("empty lease name"));
    }
    Ok(())
}

/// `ttl` in whole seconds, rounded up (etcd leases count seconds; the store
/// never expires a lease earlier than asked). Zero and ttls above
/// [`crate::config::MAX_DURATION`] are `Invalid`.
pub(super) fn ttl_secs(ttl: Duration) -> Result<i64, LeaseStoreError> {
    if ttl.is_zero() {
        return Err(LeaseStoreError::Invalid("zero ttl"));
    }
    if ttl > crate::config::MAX_DURATION {
        return Err(LeaseStoreError::Invalid("ttl too large (at most one day)"));
    }
    // At most 86 400 after the check above.
    i64::try_from(ttl.as_nanos().div_ceil(1_000_000_000)).map_err(|_| LeaseStoreError::Invalid("ttl too large"))
}

/// The stored form of a lease value: `-|{session}` without a group,
/// `{tag}|{len}:{group}|{session}` with one (`len` the group's length in
/// bytes, so the group may contain `|`).
pub(super) fn encode_value(holder: &SessionId, group: Option<&StoredGroup>) -> String {
    match group {
        None => format!("-|{}", holder.encode()),
        Some(g) => format!("{}|{}:{}|{}", g.tag, g.name.len(), g.name, holder.encode()),
    }
}

/// Parses a stored lease value. Anything but the output of
/// [`encode_value`] is a protocol error.
pub(super) fn parse_value(value: &[u8]) -> Result<Value, LeaseStoreError> {
    const BAD: LeaseStoreError = LeaseStoreError::Protocol("malformed lease value");
    let value = std::str::from_utf8(value).map_err(|_| BAD)?;
    let (head, rest) = value.split_once('|').ok_or(BAD)?;
    let (group, session) = if head == "-" {
        (None, rest)
    } else {
        let tag = decimal(head).ok_or(BAD)?;
        let (len, rest) = rest.split_once(':').ok_or(BAD)?;
        let len = usize::try_from(decimal(len).ok_or(BAD)?).map_err(|_| BAD)?;
        let name = rest.get(..len).ok_or(BAD)?;
        let session = rest.get(len..).and_then(|s| s.strip_prefix('|')).ok_or(BAD)?;
        (Some(StoredGroup { name: name.to_owned(), tag }), session)
    };
    let holder = SessionId::parse(session).ok_or(BAD)?;
    Ok(Value { holder, group })
}

/// A canonical decimal (digits only, no leading zero unless `0`).
fn decimal(s: &str) -> Option<u64> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// An etcd revision as an epoch: revisions start at 1, so anything below is
/// a protocol error.
pub(super) fn epoch_of(revision: i64) -> Result<u64, LeaseStoreError> {
    u64::try_from(revision).ok().filter(|r| *r > 0).ok_or(LeaseStoreError::Protocol("invalid revision"))
}

/// Classifies a client error: the store unreachable or not accepting
/// requests (worth retrying later) versus an answer this client does not
/// understand.
pub(super) fn map_error(e: &etcd_client::Error) -> LeaseStoreError {
    use etcd_client::Error as E;
    use tonic::Code;
    match e {
        E::TransportError(_) | E::IoError(_) => LeaseStoreError::Unavailable("connection failed"),
        E::InvalidUri(_) | E::InvalidArgs(_) | E::EndpointError(_) => LeaseStoreError::Invalid("bad etcd endpoint"),
        E::GRpcStatus(status) => match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted | Code::ResourceExhausted => {
                LeaseStoreError::Unavailable("etcd not answering")
            }
            // A status made on this side from a broken connection (a server's
            // own `Unknown` carries no source).
            Code::Unknown if std::error::Error::source(status).is_some() => {
                LeaseStoreError::Unavailable("connection failed")
            }
            Code::Unauthenticated | Code::PermissionDenied => LeaseStoreError::Unavailable("permission denied"),
            // A put under an etcd lease that expired between its grant and
            // the transaction: the request took longer than the lease's ttl.
            Code::NotFound => LeaseStoreError::Unavailable("etcd lease expired before use (slow store)"),
            _ => LeaseStoreError::Protocol("etcd error"),
        },
        _ => LeaseStoreError::Protocol("etcd client error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;

    fn session(name: &str) -> SessionId {
        SessionId { node: NodeId::new(name), boot: 0xabc, counter: 7 }
    }

    #[test]
    fn keys_live_under_the_prefix() {
        let k = Keys::new("p").expect("prefix");
        assert_eq!(k.lease("s/1"), "p/lease/s/1");
        assert_eq!(k.members(), "p/member/");
        let g = StoredGroup { name: "reg".into(), tag: 16 };
        assert_eq!(k.group_member(&g, "reg/16/1"), "p/group/3:reg/00000000000000000016/reg/16/1");
        assert_eq!(Keys::new("").map(|_| ()), Err(LeaseStoreError::Invalid("empty key prefix")));
        let s = session("a|b/c");
        assert_eq!(k.member_of(k.member(&s).as_bytes()), Ok(s));
        assert!(k.member_of(b"p/member/garbage").is_err());
        assert!(k.member_of(b"q/member/a#0000000000000abc.7").is_err());
    }

    #[test]
    fn other_tag_ranges_hold_exactly_the_other_tags() {
        let k = Keys::new("p").expect("prefix");
        for group in ["reg", "reg/00000000000000000016", ""] {
            let own = LeaseGroup { name: group, tag: 16 };
            let ranges = k.other_tags(own);
            let within = |key: &[u8]| ranges.iter().any(|(s, e)| s.as_bytes() <= key && key < e.as_slice());
            for tag in [0, 1, 15, 17, 160, 1_000_000, u64::MAX] {
                let key = k.group_member(&StoredGroup { name: group.into(), tag }, "n");
                assert!(within(key.as_bytes()), "{group}: tag {tag} is another tag");
                assert_eq!(k.tag_of(group, key.as_bytes()), Ok(tag));
            }
            let mine = k.group_member(&StoredGroup { name: group.into(), tag: 16 }, "n/0/\u{ff}");
            assert!(!within(mine.as_bytes()), "{group}: own tag");
            // Another group's keys (even one whose name extends this one's) are outside.
            let other = k.group_member(&StoredGroup { name: format!("{group}/x"), tag: 3 }, "n");
            assert!(!within(other.as_bytes()), "{group}: another group");
        }
        assert!(k.tag_of("reg", b"p/group/3:reg/123/n").is_err());
        assert!(k.tag_of("reg", b"p/group/3:reg/0000000000000000001x/n").is_err());
        assert!(k.tag_of("reg", b"p/group/3:reg/99999999999999999999/n").is_err(), "above u64::MAX");
    }

    #[test]
    fn ttls_round_up_to_seconds_and_are_bounded() {
        assert_eq!(ttl_secs(Duration::ZERO), Err(LeaseStoreError::Invalid("zero ttl")));
        assert_eq!(ttl_secs(Duration::from_nanos(1)), Ok(1));
        assert_eq!(ttl_secs(Duration::from_millis(250)), Ok(1));
        assert_eq!(ttl_secs(Duration::from_millis(1001)), Ok(2));
        assert_eq!(ttl_secs(Duration::from_secs(30)), Ok(30));
        assert_eq!(ttl_secs(crate::config::MAX_DURATION), Ok(86_400));
        assert!(ttl_secs(crate::config::MAX_DURATION + Duration::from_nanos(1)).is_err());
        assert!(ttl_secs(Duration::MAX).is_err());
    }

    #[test]
    fn lease_values_round_trip() {
        for node in ["a", "a|b", "x#y", "", "1:|"] {
            let holder = session(node);
            for group in [
                None,
                Some(StoredGroup { name: "r|5:x".into(), tag: u64::MAX }),
                Some(StoredGroup { name: String::new(), tag: 0 }),
            ] {
                let v = encode_value(&holder, group.as_ref());
                assert_eq!(parse_value(v.as_bytes()), Ok(Value { holder: holder.clone(), group }), "{v}");
            }
        }
    }

    #[test]
    fn malformed_values_are_protocol_errors() {
        let good = session("a").encode();
        for bad in [
            String::new(),
            "garbage".into(),
            good.clone(),
            format!("|{good}"),
            format!("+|{good}"),
            format!("01|3:reg|{good}"),
            format!("1|4:reg|{good}"),
            format!("1|2:reg|{good}"),
            format!("1|3:reg{good}"),
            format!("1|99999999999999999999:reg|{good}"),
            format!("18446744073709551616|3:reg|{good}"),
            "-|a#nothex0000000000.0".into(),
            "-|".into(),
        ] {
            assert_eq!(parse_value(bad.as_bytes()), Err(LeaseStoreError::Protocol("malformed lease value")), "{bad:?}");
        }
        assert!(parse_value(b"-|a#\xff0000000000000abc.7").is_err(), "not UTF-8");
        assert_eq!(epoch_of(0), Err(LeaseStoreError::Protocol("invalid revision")));
        assert_eq!(epoch_of(-5), Err(LeaseStoreError::Protocol("invalid revision")));
        assert_eq!(epoch_of(42), Ok(42));
    }

    #[test]
    fn errors_are_classified() {
        let unavailable = etcd_client::Error::GRpcStatus(tonic::Status::unavailable("down"));
        assert!(matches!(map_error(&unavailable), LeaseStoreError::Unavailable(_)));
        let io = etcd_client::Error::IoError(std::io::Error::other("refused"));
        assert!(matches!(map_error(&io), LeaseStoreError::Unavailable(_)));
        let broken = tonic::Status::from_error(Box::new(std::io::Error::other("broken pipe")));
        assert_eq!(broken.code(), tonic::Code::Unknown);
        assert!(matches!(map_error(&etcd_client::Error::GRpcStatus(broken)), LeaseStoreError::Unavailable(_)));
        let unknown = etcd_client::Error::GRpcStatus(tonic::Status::unknown("server says so"));
        assert!(matches!(map_error(&unknown), LeaseStoreError::Protocol(_)));
        let internal = etcd_client::Error::GRpcStatus(tonic::Status::internal("boom"));
        assert!(matches!(map_error(&internal), LeaseStoreError::Protocol(_)));
        let args = etcd_client::Error::InvalidArgs("empty endpoints".into());
        assert!(matches!(map_error(&args), LeaseStoreError::Invalid(_)));
    }
}
