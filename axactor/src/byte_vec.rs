//! `Vec<u8>` as one byte string rather than a sequence of `u8` values.
//!
//! serde's own `Vec<u8>` impls go through `serialize_seq` and
//! `visit_seq`: one call per byte on both ends. `#[actor(remote)]` puts
//! `#[serde(with = "::axactor::__private::byte_vec")]` on every message
//! argument and reply written `Vec<u8>`, so a byte payload is written with
//! `serialize_bytes` and read with `deserialize_byte_buf`: one copy.
//!
//! In postcard, the wire format of the cluster, both forms are the same
//! bytes (a varint length, then the bytes: a `u8` is one byte as is), so the
//! attribute changes speed, not the contract. A format that writes byte
//! strings as sequences (JSON) still round-trips: the visitor also accepts a
//! sequence.

use std::fmt;

use serde::de::{Error, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

/// Writes `v` as one byte string.
///
/// # Errors
/// Whatever the serializer returns.
// The signature is the one `#[serde(with)]` calls.
#[allow(clippy::ptr_arg)]
pub fn serialize<S: Serializer>(v: &Vec<u8>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(v)
}

/// Reads a byte string (or a sequence of `u8`, for formats that write one).
///
/// # Errors
/// Whatever the deserializer returns for input that is neither.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    d.deserialize_byte_buf(ByteVec)
}

struct ByteVec;

impl<'de> Visitor<'de> for ByteVec {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // The hint comes from the input: cap what it may reserve up front.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde::de::IntoDeserializer;
    use serde::de::value::{BytesDeserializer, Error as ValueError, SeqDeserializer};

    use super::*;

    #[test]
    fn reads_a_byte_string_and_a_sequence() {
        let bytes: BytesDeserializer<'_, ValueError> = BytesDeserializer::new(&[1, 2, 3]);
        assert_eq!(deserialize(bytes).expect("bytes"), vec![1, 2, 3]);
        let seq: SeqDeserializer<_, ValueError> = SeqDeserializer::new(vec![6u8, 7, 8].into_iter());
        assert_eq!(deserialize(seq).expect("a sequence"), vec![6, 7, 8]);
    }

    #[test]
    fn refuses_what_is_not_bytes() {
        let s: serde::de::value::StrDeserializer<'_, ValueError> = "abc".into_deserializer();
        assert!(deserialize(s).is_err());
    }
}
