use bytes::BytesMut;
use proptest::prelude::*;

use super::*;
use crate::id::{NodeId, SessionId};
use crate::wire::arb::{self, hostile_stream};
use crate::wire::frame::{FrameDecoder, LEN_PREFIX, encode_frame};
use crate::wire::hello::{Auth, Hello, Refusal};

fn envelope_bytes(env: &Envelope) -> Vec<u8> {
    let mut out = Vec::new();
    encode_envelope(env, &mut out).expect("encodable");
    out
}

fn session(name: &str) -> SessionId {
    SessionId { node: NodeId::new(name), boot: 1, counter: 0 }
}

/// The variant index of every message kind. An exhaustive match, so a new
/// variant does not compile until it is given its index here (and in
/// `docs/protocol.md`).
fn index_of(env: &Envelope) -> (u8, u8) {
    match env {
        Envelope::Control(c) => (
            0,
            match c {
                ControlMsg::Heartbeat { .. } => 0,
                ControlMsg::HeartbeatAck { .. } => 1,
                ControlMsg::LeaseNotice { .. } => 2,
                ControlMsg::Monitor { .. } => 3,
                ControlMsg::Demonitor { .. } => 4,
                ControlMsg::Down { .. } => 5,
                ControlMsg::Goodbye => 6,
                ControlMsg::Hosting { .. } => 7,
                ControlMsg::Monitored { .. } => 8,
                ControlMsg::Remonitor { .. } => 9,
            },
        ),
        Envelope::Data(d) => (
            1,
            match d {
                DataMsg::Tell { .. } => 0,
                DataMsg::Ask { .. } => 1,
                DataMsg::Reply { .. } => 2,
                DataMsg::Ack { .. } => 3,
                DataMsg::Rejected { .. } => 4,
                DataMsg::Canceled { .. } => 5,
                DataMsg::Tells { .. } => 6,
            },
        ),
    }
}

#[test]
fn golden_encodings() {
    // Pinned bytes: a change here is a wire-format change.
    let hb = Envelope::Control(ControlMsg::Heartbeat { sent_at_ms: 300 });
    assert_eq!(envelope_bytes(&hb), [0x00, 0x00, 0xAC, 0x02]);
    let monitored = Envelope::Control(ControlMsg::Monitored { request_id: 5, activation: 7 });
    assert_eq!(envelope_bytes(&monitored), [0x00, 0x08, 0x05, 0x07]);
    let remonitor = Envelope::Control(ControlMsg::Remonitor {
        request_id: 5,
        registry: "r".into(),
        key: "k".into(),
        activation: 300,
    });
    assert_eq!(envelope_bytes(&remonitor), [0x00, 0x09, 0x05, 0x01, 0x72, 0x01, 0x6B, 0xAC, 0x02]);
    let tell = Envelope::Data(DataMsg::Tell {
        registry: "r".into(),
        shard: 3,
        epoch: 7,
        key: "k".into(),
        payload: vec![0xAA, 0xBB],
        ack_id: Some(5),
    });
    assert_eq!(envelope_bytes(&tell), [0x01, 0x00, 0x01, b'r', 0x03, 0x07, 0x01, b'k', 0x02, 0xAA, 0xBB, 0x01, 0x05]);
    let rejected = Envelope::Data(DataMsg::Rejected {
        request_id: 1,
        reason: Rejection::NotOwner { owner_hint: Some(session("n")) },
    });
    assert_eq!(envelope_bytes(&rejected), [0x01, 0x04, 0x01, 0x00, 0x01, 0x01, b'n', 0x01, 0x00]);
    let tells = Envelope::Data(DataMsg::Tells {
        registry: "r".into(),
        shard: 3,
        epoch: 7,
        key: "k".into(),
        payloads: vec![vec![0xAA, 0xBB], vec![0xCC]],
    });
    assert_eq!(
        envelope_bytes(&tells),
        [0x01, 0x06, 0x01, b'r', 0x03, 0x07, 0x01, b'k', 0x02, 0x02, 0xAA, 0xBB, 0x01, 0xCC]
    );

    let mut body = Vec::new();
    encode_preauth(&HandshakeMsg::Refuse(Refusal::BadProof), &mut body).expect("encodable");
    assert_eq!(body, [TAG_PREAUTH, 0x04, 0x01]);
    body.clear();
    let hello = Hello { session: session("a"), min_version: 1, max_version: 300, nonce: [9; 32] };
    encode_preauth(&HandshakeMsg::Hello(hello), &mut body).expect("encodable");
    let mut want = vec![TAG_PREAUTH, 0x00, 0x01, b'a', 0x01, 0x00, 0x01, 0xAC, 0x02];
    want.extend_from_slice(&[9; 32]);
    assert_eq!(body, want);
}

#[test]
fn payload_bytes_match_plain_vec_encoding() {
    #[derive(serde::Serialize)]
    struct Plain {
        request_id: u64,
        payload: Vec<u8>,
    }
    let payload: Vec<u8> = (0..=255).collect();
    let plain = postcard::to_allocvec(&Plain { request_id: 9, payload: payload.clone() }).expect("encodable");
    let ours = envelope_bytes(&Envelope::Data(DataMsg::Reply { request_id: 9, payload }));
    assert_eq!(&ours[2..], &plain[..]);
}

#[test]
fn body_tags_and_layout() {
    assert_eq!(decode_body(&[]), Err(CodecError::Truncated));
    assert_eq!(decode_body(&[0x00]), Err(CodecError::UnknownTag(0x00)));
    assert_eq!(decode_body(&[0x04, 1, 2]), Err(CodecError::UnknownTag(0x04)));
    assert_eq!(decode_body(&[TAG_PREAUTH]), Err(CodecError::Truncated));
    for kind in [FrameMac::HmacSha256, FrameMac::Aes256Gmac] {
        for short in 1..kind.overhead() {
            let mut body = vec![0u8; short];
            body[0] = kind.tag();
            assert_eq!(decode_body(&body), Err(CodecError::Truncated), "{kind:?}: {short} bytes");
        }
        let mut body = Vec::new();
        let mac = vec![7; kind.mac_len()];
        encode_sealed(kind, 0x0102_0304_0506_0708, &[], &mac, &mut body);
        assert_eq!(body.len(), kind.overhead());
        assert_eq!(&body[..SEALED_HEADER_LEN], &[kind.tag(), 1, 2, 3, 4, 5, 6, 7, 8]);
        let want = Body::Sealed { kind, seq: 0x0102_0304_0506_0708, payload: &[], mac: &mac };
        assert_eq!(decode_body(&body), Ok(want));
        encode_sealed(kind, 1, &[9, 9], &mac, &mut body);
        let want = Body::Sealed { kind, seq: 1, payload: &[9, 9], mac: &mac };
        assert_eq!(decode_body(&body[kind.overhead()..]), Ok(want));
    }
    assert_eq!((TAG_SEALED, TAG_SEALED_GMAC, MAC_LEN, GMAC_TAG_LEN), (0x02, 0x03, 32, 16));
    assert_eq!(decode_envelope(&[]), Err(CodecError::Truncated));
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut body = Vec::new();
    encode_preauth(&HandshakeMsg::Auth(Auth { mac: [1; 32] }), &mut body).expect("encodable");
    body.push(0);
    assert_eq!(decode_body(&body), Err(CodecError::TrailingBytes));
    let mut payload = envelope_bytes(&Envelope::Control(ControlMsg::Goodbye));
    payload.push(0);
    assert_eq!(decode_envelope(&payload), Err(CodecError::TrailingBytes));
}

#[test]
fn unknown_variants_are_rejected() {
    let invalid = Some(CodecError::Postcard(PostcardErrorKind::Invalid));
    assert_eq!(decode_envelope(&[0x02]).err(), invalid); // Envelope has 2 variants
    assert_eq!(decode_envelope(&[0x00, 0x0A]).err(), invalid); // ControlMsg has 10
    assert_eq!(decode_envelope(&[0x01, 0x07]).err(), invalid); // DataMsg has 7
    assert_eq!(decode_envelope(&[0x00, 0x05, 0x00, 0x05]).err(), invalid); // DownReason has 5
    assert_eq!(decode_envelope(&[0x01, 0x04, 0x00, 0x09]).err(), invalid); // Rejection has 9
    assert_eq!(decode_body(&[TAG_PREAUTH, 0x05]).err(), invalid); // HandshakeMsg has 5
    assert_eq!(decode_body(&[TAG_PREAUTH, 0x04, 0x04]).err(), invalid); // Refusal has 4
    // A variant index past u32, and a varint that never ends.
    let bad_varint = Err(CodecError::Postcard(PostcardErrorKind::BadVarint));
    assert_eq!(decode_envelope(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]), bad_varint);
    let bad_varint = Err(CodecError::Postcard(PostcardErrorKind::BadVarint));
    assert_eq!(decode_envelope(&[0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]), bad_varint);
}

#[test]
fn bad_scalars_are_rejected() {
    // Option tag 2 in Tell's ack_id.
    let mut tell = envelope_bytes(&Envelope::Data(DataMsg::Tell {
        registry: String::new(),
        shard: 0,
        epoch: 0,
        key: String::new(),
        payload: vec![],
        ack_id: None,
    }));
    *tell.last_mut().expect("non-empty") = 2;
    assert_eq!(decode_envelope(&tell), Err(CodecError::Postcard(PostcardErrorKind::BadOption)));
    // Invalid UTF-8 in Monitor's registry.
    let monitor = [0x00, 0x03, 0x00, 0x01, 0xFF, 0x00];
    assert_eq!(decode_envelope(&monitor), Err(CodecError::Postcard(PostcardErrorKind::BadUtf8)));
}

#[test]
fn huge_announced_lengths_fail_without_allocating() {
    // A length of 2^62 for a string, for a byte payload, and for a node name:
    // postcard compares each with the bytes left before copying anything.
    let huge = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40];
    let mut monitor = vec![0x00, 0x03, 0x00];
    monitor.extend_from_slice(&huge);
    assert_eq!(decode_envelope(&monitor), Err(CodecError::Truncated));
    let mut reply = vec![0x01, 0x02, 0x00];
    reply.extend_from_slice(&huge);
    reply.extend_from_slice(b"abc");
    assert_eq!(decode_envelope(&reply), Err(CodecError::Truncated));
    let mut hello = vec![TAG_PREAUTH, 0x00];
    hello.extend_from_slice(&huge);
    assert_eq!(decode_body(&hello), Err(CodecError::Truncated));
}

#[test]
fn encoders_append() {
    let mut out = vec![0xEE];
    encode_envelope(&Envelope::Control(ControlMsg::Goodbye), &mut out).expect("encodable");
    assert_eq!(out, [0xEE, 0x00, 0x06]);
    encode_preauth(&HandshakeMsg::Refuse(Refusal::Timeout), &mut out).expect("encodable");
    assert_eq!(out, [0xEE, 0x00, 0x06, TAG_PREAUTH, 0x04, 0x03]);
}

#[test]
fn limits_fit_together() {
    assert_eq!(max_envelope_bytes(SEALED_OVERHEAD + 10), 10);
    assert_eq!(max_envelope_bytes(3), 0);
    assert_eq!(sealed_header(FrameMac::HmacSha256, 1), [TAG_SEALED, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(sealed_header(FrameMac::Aes256Gmac, 2), [TAG_SEALED_GMAC, 0, 0, 0, 0, 0, 0, 0, 2]);
}

proptest! {
    #[test]
    fn envelopes_round_trip(env in arb::envelope()) {
        let bytes = envelope_bytes(&env);
        prop_assert_eq!(bytes[0], index_of(&env).0);
        prop_assert_eq!(bytes[1], index_of(&env).1);
        prop_assert_eq!(decode_envelope(&bytes), Ok(env));
        // Every proper prefix is rejected (postcard is self-delimiting).
        for cut in 0..bytes.len() {
            prop_assert!(decode_envelope(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn handshake_messages_round_trip(msg in arb::handshake_msg()) {
        let mut body = Vec::new();
        encode_preauth(&msg, &mut body).expect("encodable");
        prop_assert_eq!(body[0], TAG_PREAUTH);
        prop_assert_eq!(decode_body(&body), Ok(Body::PreAuth(msg)));
        for cut in 0..body.len() {
            prop_assert!(decode_body(&body[..cut]).is_err());
        }
    }

    /// Envelope → sealed body → frame → decoder → body → envelope.
    #[test]
    fn sealed_envelopes_survive_the_whole_stack(
        envs in prop::collection::vec(arb::envelope(), 1..6),
        seq0 in any::<u64>(),
        cut in 1usize..50,
        gmac in any::<bool>(),
    ) {
        let kind = if gmac { FrameMac::Aes256Gmac } else { FrameMac::HmacSha256 };
        let mut stream = BytesMut::new();
        for (i, env) in envs.iter().enumerate() {
            let mut body = Vec::new();
            encode_sealed(kind, seq0.wrapping_add(i as u64), &envelope_bytes(env), &vec![i as u8; kind.mac_len()], &mut body);
            encode_frame(&body, DEFAULT_MAX, &mut stream).expect("fits");
        }
        let mut dec = FrameDecoder::new(DEFAULT_MAX);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in stream.chunks(cut) {
            buf.extend_from_slice(chunk);
            while let Some(frame) = dec.decode(&mut buf).expect("valid stream") {
                match decode_body(&frame).expect("valid body") {
                    Body::Sealed { kind: got_kind, seq, payload, mac } => {
                        let i = got.len();
                        prop_assert_eq!(got_kind, kind);
                        prop_assert_eq!(seq, seq0.wrapping_add(i as u64));
                        prop_assert_eq!(mac, &vec![i as u8; kind.mac_len()][..]);
                        got.push(decode_envelope(payload).expect("valid envelope"));
                    }
                    other => prop_assert!(false, "unexpected body {:?}", other),
                }
            }
        }
        prop_assert_eq!(got, envs);
    }

    /// Arbitrary bytes at every layer: errors, never panics, never more
    /// buffered than one frame.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in hostile_stream(), cut in 1usize..32) {
        let _ = decode_envelope(&bytes);
        if let [plane, kind, rest @ ..] = bytes.as_slice() {
            // Past the variant indices, into the fields.
            let _ = decode_envelope(&[&[plane % 2, kind % 8], rest].concat());
            let _ = decode_body(&[&[TAG_PREAUTH, kind % 6], rest].concat());
        }
        if let Ok(Body::Sealed { payload, .. }) = decode_body(&bytes) {
            let _ = decode_envelope(payload);
        }
        let mut dec = FrameDecoder::new(64);
        let mut buf = BytesMut::new();
        'feed: for chunk in bytes.chunks(cut) {
            buf.extend_from_slice(chunk);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        if let Ok(Body::Sealed { payload, .. }) = decode_body(&frame) {
                            let _ = decode_envelope(payload);
                        }
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
            prop_assert!(buf.len() < 64 + LEN_PREFIX + cut);
        }
    }

    /// Valid envelopes with some bytes flipped: still no panic.
    #[test]
    fn mutated_envelopes_never_panic(
        env in arb::envelope(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = envelope_bytes(&env);
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Ok(decoded) = decode_envelope(&bytes) {
            // Whatever decodes re-encodes and decodes to the same value.
            prop_assert_eq!(decode_envelope(&envelope_bytes(&decoded)), Ok(decoded));
        }
    }
}

const DEFAULT_MAX: usize = crate::wire::frame::DEFAULT_MAX_FRAME_BYTES;

/// `prefix`, then `claimed` as a list's length (a varint), then `entries`
/// copies of `entry`: a list as a peer could write it.
fn list_bytes(prefix: &[u8], claimed: u64, entry: &[u8], entries: usize) -> Vec<u8> {
    let mut out = prefix.to_vec();
    let mut n = claimed;
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    for _ in 0..entries {
        out.extend_from_slice(entry);
    }
    out
}

/// A `Hosting` payload as a peer could write it: `claimed` as the list's
/// length, then `entries` pairs of an empty registry id and shard count 0
/// (two bytes each, the smallest entry there is).
fn hosting_bytes(claimed: u64, entries: usize) -> Vec<u8> {
    // Envelope::Control, ControlMsg::Hosting
    list_bytes(&[0x00, 0x07], claimed, &[0x00, 0x00], entries)
}

#[test]
fn hosting_is_bounded_while_decoding() {
    let at_bound = hosting_bytes(MAX_HOSTED_REGISTRIES as u64, MAX_HOSTED_REGISTRIES);
    match decode_envelope(&at_bound) {
        Ok(Envelope::Control(ControlMsg::Hosting { registries })) => {
            assert_eq!(registries.len(), MAX_HOSTED_REGISTRIES);
        }
        other => panic!("a list at the bound decodes: {other:?}"),
    }
    // One entry over the bound, and a 4 MiB frame's worth of entries (two
    // million: ~64 MiB as a `Vec<(String, u32)>`): refused by the bound.
    let four_mib = DEFAULT_MAX_FRAME_BYTES_FOR_TESTS / 2 - 8;
    for (claimed, entries) in
        [(MAX_HOSTED_REGISTRIES as u64 + 1, MAX_HOSTED_REGISTRIES + 1), (four_mib as u64, four_mib)]
    {
        let bytes = hosting_bytes(claimed, entries);
        assert!(bytes.len() <= DEFAULT_MAX_FRAME_BYTES_FOR_TESTS, "fits a frame: {} bytes", bytes.len());
        assert_eq!(
            decode_envelope(&bytes).map(|_| ()),
            Err(CodecError::Postcard(PostcardErrorKind::Invalid)),
            "claimed {claimed}, {entries} entries in {} bytes",
            bytes.len()
        );
    }
    // A length claimed without the entries: postcard refuses it against the
    // bytes left, before anything is allocated.
    assert_eq!(decode_envelope(&hosting_bytes(u64::from(u32::MAX), 0)), Err(CodecError::Truncated));
}

/// A `Tells` envelope for registry "r", key "k" claiming `claimed`
/// payloads and holding `entries` one-byte ones.
fn tells_bytes(claimed: u64, entries: usize) -> Vec<u8> {
    // Envelope::Data, DataMsg::Tells, "r", shard 3, epoch 7, "k"
    list_bytes(&[0x01, 0x06, 0x01, b'r', 0x03, 0x07, 0x01, b'k'], claimed, &[0x01, 0xEE], entries)
}

/// A `Tells` holds 1 to `MAX_BATCHED_TELLS` payloads: an empty one, one
/// over the bound, and a count claimed beyond the bound are refused while
/// decoding, owned or borrowed.
#[test]
fn tells_are_bounded_while_decoding() {
    let at_bound = tells_bytes(MAX_BATCHED_TELLS as u64, MAX_BATCHED_TELLS);
    match decode_envelope(&at_bound) {
        Ok(Envelope::Data(DataMsg::Tells { payloads, .. })) => assert_eq!(payloads.len(), MAX_BATCHED_TELLS),
        other => panic!("a batch at the bound decodes: {other:?}"),
    }
    match decode_envelope_ref(&at_bound) {
        Ok(EnvelopeRef::Data(DataRef::Tells { payloads, .. })) => assert_eq!(payloads.len(), MAX_BATCHED_TELLS),
        other => panic!("a batch at the bound decodes borrowed: {other:?}"),
    }
    let invalid = Err(CodecError::Postcard(PostcardErrorKind::Invalid));
    for (claimed, entries) in [(0, 0), (MAX_BATCHED_TELLS as u64 + 1, MAX_BATCHED_TELLS + 1)] {
        let bytes = tells_bytes(claimed, entries);
        assert_eq!(decode_envelope(&bytes).map(|_| ()), invalid, "owned: claimed {claimed}, {entries} entries");
        assert_eq!(decode_envelope_ref(&bytes).map(|_| ()), invalid, "borrowed: claimed {claimed}, {entries} entries");
    }
    // A count claimed far beyond the bytes: refused before anything is reserved.
    let bytes = tells_bytes(1 << 40, 4);
    assert!(decode_envelope(&bytes).is_err() && decode_envelope_ref(&bytes).is_err());
}

const DEFAULT_MAX_FRAME_BYTES_FOR_TESTS: usize = crate::wire::frame::DEFAULT_MAX_FRAME_BYTES;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A `Hosting` list decodes exactly when it is within the bound, and a
    /// list over it is refused however long it claims to be.
    #[test]
    fn hosting_decodes_iff_within_the_bound(
        entries in 0usize..3 * MAX_HOSTED_REGISTRIES,
        extra_claim in 0u64..1 << 40,
    ) {
        let bytes = hosting_bytes(entries as u64, entries);
        let decoded = decode_envelope(&bytes);
        if entries <= MAX_HOSTED_REGISTRIES {
            let ok = matches!(decoded, Ok(Envelope::Control(ControlMsg::Hosting { ref registries })) if registries.len() == entries);
            prop_assert!(ok, "{} entries: {:?}", entries, decoded.map(|_| ()));
        } else {
            prop_assert_eq!(decoded.map(|_| ()), Err(CodecError::Postcard(PostcardErrorKind::Invalid)));
        }
        // Claiming more than the bound fails, whatever follows.
        let claimed = MAX_HOSTED_REGISTRIES as u64 + 1 + extra_claim;
        prop_assert!(decode_envelope(&hosting_bytes(claimed, entries)).is_err());
    }
}
