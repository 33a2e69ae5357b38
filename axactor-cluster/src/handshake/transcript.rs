//! The handshake transcript: every field of Hello and Challenge, in a fixed
//! order, each as a length-prefixed byte string. Independent of postcard so
//! that it is stable and can be reproduced from `docs/protocol.md` alone.
//!
//! ```text
//! field(x)   = len(x): u32 big-endian ‖ x
//! session(s) = field(s.node as UTF-8) ‖ field(s.boot: u64 BE) ‖ field(s.counter: u64 BE)
//! transcript = session(hello.session) ‖ field(hello.min_version: u16 BE) ‖ field(hello.max_version: u16 BE)
//!            ‖ field(hello.nonce)
//!            ‖ session(challenge.session) ‖ field(challenge.min_version: u16 BE)
//!            ‖ field(challenge.max_version: u16 BE) ‖ field(challenge.chosen_version: u16 BE)
//!            ‖ field(challenge.nonce)
//! ```

use crate::id::SessionId;
use crate::wire::hello::{Challenge, Hello};

/// The transcript of a Hello and the Challenge answering it, as both sides
/// MAC it (see the module docs of [`crate::handshake`] and
/// `docs/protocol.md`). Public so that tests, fuzzers and other
/// implementations can check their encoding against this one.
pub fn transcript(hello: &Hello, challenge: &Challenge) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        2 * (3 * 4 + 16) + hello.session.node.as_str().len() + challenge.session.node.as_str().len() + 5 * 6 + 2 * 36,
    );
    session(&mut out, &hello.session);
    field(&mut out, &hello.min_version.to_be_bytes());
    field(&mut out, &hello.max_version.to_be_bytes());
    field(&mut out, &hello.nonce);
    session(&mut out, &challenge.session);
    field(&mut out, &challenge.min_version.to_be_bytes());
    field(&mut out, &challenge.max_version.to_be_bytes());
    field(&mut out, &challenge.chosen_version.to_be_bytes());
    field(&mut out, &challenge.nonce);
    out
}

fn session(out: &mut Vec<u8>, s: &SessionId) {
    field(out, s.node.as_str().as_bytes());
    field(out, &s.boot.to_be_bytes());
    field(out, &s.counter.to_be_bytes());
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    // Names are checked to be at most 255 bytes before a transcript is
    // built; every other field has a fixed size.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;

    fn sample() -> (Hello, Challenge) {
        let hello = Hello {
            session: SessionId { node: NodeId::new("a"), boot: 0x0102_0304_0506_0708, counter: 1 },
            min_version: 1,
            max_version: 3,
            nonce: [0x11; 32],
        };
        let challenge = Challenge {
            session: SessionId { node: NodeId::new("bb"), boot: 0x1112_1314_1516_1718, counter: 2 },
            min_version: 2,
            max_version: 4,
            chosen_version: 3,
            nonce: [0x22; 32],
        };
        (hello, challenge)
    }

    #[test]
    fn encoding_is_byte_exact() {
        let (hello, challenge) = sample();
        let t = transcript(&hello, &challenge);
        let mut want = Vec::new();
        want.extend_from_slice(&[0, 0, 0, 1, b'a']);
        want.extend_from_slice(&[0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(&[0, 0, 0, 2, 0, 1]);
        want.extend_from_slice(&[0, 0, 0, 2, 0, 3]);
        want.extend_from_slice(&[0, 0, 0, 32]);
        want.extend_from_slice(&[0x11; 32]);
        want.extend_from_slice(&[0, 0, 0, 2, b'b', b'b']);
        want.extend_from_slice(&[0, 0, 0, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 2]);
        want.extend_from_slice(&[0, 0, 0, 2, 0, 2]);
        want.extend_from_slice(&[0, 0, 0, 2, 0, 4]);
        want.extend_from_slice(&[0, 0, 0, 2, 0, 3]);
        want.extend_from_slice(&[0, 0, 0, 32]);
        want.extend_from_slice(&[0x22; 32]);
        assert_eq!(t, want);
    }

    #[test]
    fn every_field_changes_the_transcript() {
        let (h, c) = sample();
        let base = transcript(&h, &c);
        let mut variants: Vec<(Hello, Challenge)> = Vec::new();
        let mut push = |f: &dyn Fn(&mut Hello, &mut Challenge)| {
            let (mut h, mut c) = sample();
            f(&mut h, &mut c);
            variants.push((h, c));
        };
        push(&|h, _| h.session.node = NodeId::new("b"));
        push(&|h, _| h.session.boot ^= 1);
        push(&|h, _| h.session.counter ^= 1);
        push(&|h, _| h.min_version ^= 1);
        push(&|h, _| h.max_version ^= 1);
        push(&|h, _| h.nonce[31] ^= 1);
        push(&|_, c| c.session.node = NodeId::new("bc"));
        push(&|_, c| c.session.boot ^= 1);
        push(&|_, c| c.session.counter ^= 1);
        push(&|_, c| c.min_version ^= 1);
        push(&|_, c| c.max_version ^= 1);
        push(&|_, c| c.chosen_version ^= 1);
        push(&|_, c| c.nonce[0] ^= 1);
        // Moving a byte from one name to the other keeps the concatenation
        // but not the length prefixes.
        push(&|h, c| {
            h.session.node = NodeId::new("ab");
            c.session.node = NodeId::new("b");
        });
        for (i, (h, c)) in variants.iter().enumerate() {
            assert_ne!(transcript(h, c), base, "variant {i}");
        }
    }
}
