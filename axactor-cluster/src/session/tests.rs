//! The sealer and opener under both MACs: layout, known answers, and every
//! way a frame must be refused.

use proptest::prelude::*;

use super::*;
use crate::wire::msg::{Body, SEALED_OVERHEAD, TAG_SEALED, TAG_SEALED_GMAC, decode_body};

const KINDS: [FrameMac; 2] = [FrameMac::HmacSha256, FrameMac::Aes256Gmac];

fn key(b: u8) -> FrameKey {
    FrameKey::from_bytes([b; FRAME_KEY_LEN])
}

fn pair(kind: FrameMac, b: u8) -> (Sealer, Opener) {
    (Sealer::with_mac(key(b), kind), Opener::with_mac(key(b), kind))
}

fn opener(kind: FrameMac, b: u8) -> Opener {
    Opener::with_mac(key(b), kind)
}

fn sealed(s: &mut Sealer, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    s.seal(payload, &mut out).expect("seal");
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

#[test]
fn the_protocol_version_chooses_the_mac() {
    assert_eq!(FrameMac::for_version(1), FrameMac::HmacSha256);
    assert_eq!(FrameMac::for_version(3), FrameMac::HmacSha256);
    assert_eq!(FrameMac::for_version(4), FrameMac::Aes256Gmac);
    assert_eq!(FrameMac::for_version(crate::wire::hello::PROTOCOL_MAX_VERSION), FrameMac::Aes256Gmac);
    for kind in KINDS {
        assert_eq!(FrameMac::of_tag(kind.tag()), Some(kind));
        assert!(kind.overhead() <= SEALED_OVERHEAD);
    }
}

#[test]
fn sealing_a_frame_in_place_gives_the_same_bytes_and_advances_the_sequence() {
    use crate::wire::{ControlMsg, Envelope, encode_envelope};
    for kind in KINDS {
        let (mut a, mut b) = (Sealer::with_mac(key(3), kind), Sealer::with_mac(key(3), kind));
        let mut opener = opener(kind, 3);
        for ms in [1u64, 2, 300] {
            let env = Envelope::Control(ControlMsg::Heartbeat { sent_at_ms: ms });
            let mut payload = Vec::new();
            encode_envelope(&env, &mut payload).expect("encode");
            let in_place = a.seal_frame(OutFrame::envelope(&env).expect("encode")).expect("seal");
            assert_eq!(&in_place[..], &sealed(&mut b, &payload)[..], "{kind:?}");
            assert_eq!(opener.open(&in_place).expect("opens"), &payload[..]);
        }
        assert_eq!(a.next_seq(), 3);
    }
}

#[test]
fn hmac_layout_is_tag_seq_payload_mac() {
    let (mut s, _) = pair(FrameMac::HmacSha256, 1);
    let a = sealed(&mut s, b"hello");
    let b = sealed(&mut s, b"");
    assert_eq!(a.len(), 5 + SEALED_OVERHEAD);
    assert_eq!(a[0], TAG_SEALED);
    assert_eq!(&a[1..9], &0u64.to_be_bytes());
    assert_eq!(&a[9..14], b"hello");
    assert_eq!(&b[1..9], &1u64.to_be_bytes());
    assert_eq!(b.len(), SEALED_OVERHEAD);
    let mut expect = HmacSha256::new_from_slice(&[1; 32]).expect("key");
    expect.update(&0u64.to_be_bytes());
    expect.update(b"hello");
    assert_eq!(&a[14..], expect.finalize().into_bytes().as_slice());
}

/// AES-256-GMAC as the GCM specification defines it: its test case 13
/// (zero key, zero nonce, nothing to authenticate), then frames under the
/// frame keys of `docs/protocol.md`'s known answers, computed there with
/// Python's `cryptography` (`AESGCM(key).encrypt(nonce, b"", payload)`).
#[test]
fn gmac_layout_and_known_answers() {
    let gmac = |key: [u8; 32], seq: u64, payload: &[u8]| {
        let mut s = Sealer::starting_at(FrameKey::from_bytes(key), FrameMac::Aes256Gmac, seq);
        let body = sealed(&mut s, payload);
        assert_eq!(body[0], TAG_SEALED_GMAC);
        assert_eq!(&body[1..9], &seq.to_be_bytes());
        assert_eq!(&body[9..9 + payload.len()], payload);
        assert_eq!(body.len(), payload.len() + FrameMac::Aes256Gmac.overhead());
        hex(&body[9 + payload.len()..])
    };
    assert_eq!(gmac([0; 32], 0, b""), "530f8afbc74536b9a963b4f1c4cb738b");
    let i2r = unhex("d434d9128e46eefcd0c62ecdeaf17c95636c062ddcb7144f9424c6725815d2c1");
    let r2i = unhex("6033f2b765cd22967091435062d60563db98e88849e20d8fe59bb70a6c805a67");
    assert_eq!(gmac(i2r, 0, b""), "be5b97bc373d07069926fc74dffc766d");
    assert_eq!(gmac(r2i, 0, b""), "a6ab0d25cca0e7c594fe1932d783a6a8");
    assert_eq!(gmac(i2r, 1, b"hello"), "0745413963365345061779cb80f86a07");
    let hundred: Vec<u8> = (0..100).collect();
    assert_eq!(gmac(i2r, 0x0102_0304_0506_0708, &hundred), "9b3130d9dd74ec038b39140e1e6ba07e");
}

#[test]
fn seal_appends_to_out() {
    for kind in KINDS {
        let (mut s, mut o) = pair(kind, 1);
        let mut out = vec![0xAA, 0xBB];
        s.seal(b"x", &mut out).expect("seal");
        assert_eq!(&out[..2], &[0xAA, 0xBB]);
        assert_eq!(o.open(&out[2..]), Ok(&b"x"[..]));
    }
}

#[test]
fn round_trip_many_frames() {
    for kind in KINDS {
        let (mut s, mut o) = pair(kind, 7);
        for i in 0..1000u32 {
            let payload = i.to_le_bytes().repeat((i % 17) as usize);
            let body = sealed(&mut s, &payload);
            assert_eq!(o.open(&body), Ok(payload.as_slice()));
        }
        assert_eq!(s.next_seq(), 1000);
        assert_eq!(o.next_expected(), 1000);
    }
}

#[test]
fn every_flipped_bit_is_rejected() {
    for kind in KINDS {
        let (mut s, _) = pair(kind, 3);
        let body = sealed(&mut s, b"transfer 10 to alice");
        for bit in 0..body.len() * 8 {
            let mut bad = body.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let mut o = opener(kind, 3);
            let err = o.open(&bad).expect_err("flipped bit accepted");
            let want = if bit < 8 { OpenError::WrongTag } else { OpenError::BadMac };
            assert_eq!(err, want, "{kind:?} bit {bit}");
            assert!(o.is_closed());
        }
    }
}

#[test]
fn truncated_and_extended_bodies_are_rejected() {
    for kind in KINDS {
        let (mut s, _) = pair(kind, 3);
        let body = sealed(&mut s, b"abc");
        for len in 0..body.len() {
            let want = if len < kind.overhead() { OpenError::TooShort } else { OpenError::BadMac };
            assert_eq!(opener(kind, 3).open(&body[..len]), Err(want), "{kind:?} len {len}");
        }
        let mut longer = body.clone();
        longer.push(0);
        assert_eq!(opener(kind, 3).open(&longer), Err(OpenError::BadMac));
    }
}

/// A body sealed under the other MAC is refused by its tag, whole or cut
/// into parts, and closes the opener: neither version's MAC stands in for
/// the other's.
#[test]
fn a_body_under_the_other_mac_is_rejected() {
    for [ours, theirs] in [KINDS, [KINDS[1], KINDS[0]]] {
        let (mut s, _) = pair(theirs, 3);
        let body = sealed(&mut s, b"hello");
        let mut o = opener(ours, 3);
        assert_eq!(o.open(&body), Err(OpenError::WrongTag));
        assert!(o.is_closed());
        let Ok(Body::Sealed { kind, seq, payload, mac }) = decode_body(&body) else { panic!("not a sealed body") };
        assert_eq!(kind, theirs);
        let mut o = opener(ours, 3);
        assert_eq!(o.open_parts(kind, seq, payload, mac), Err(OpenError::WrongTag));
        assert_eq!(o.open_parts(ours, seq, payload, mac), Err(OpenError::Closed));
        // Relabelled with our tag, the other MAC does not verify.
        let mut relabelled = body.clone();
        relabelled[0] = ours.tag();
        let mut o = opener(ours, 3);
        assert!(matches!(o.open(&relabelled), Err(OpenError::BadMac | OpenError::TooShort)), "{ours:?}");
    }
}

#[test]
fn replayed_frame_is_rejected() {
    for kind in KINDS {
        let (mut s, mut o) = pair(kind, 4);
        let f0 = sealed(&mut s, b"a");
        let f1 = sealed(&mut s, b"b");
        assert!(o.open(&f0).is_ok());
        assert!(o.open(&f1).is_ok());
        assert_eq!(o.open(&f1), Err(OpenError::OutOfSequence { expected: 2, got: 1 }));
        assert_eq!(o.open(&sealed(&mut s, b"c")), Err(OpenError::Closed));
    }
}

#[test]
fn replay_of_first_frame_is_rejected() {
    for kind in KINDS {
        let (mut s, mut o) = pair(kind, 4);
        let f0 = sealed(&mut s, b"a");
        assert!(o.open(&f0).is_ok());
        assert_eq!(o.open(&f0), Err(OpenError::OutOfSequence { expected: 1, got: 0 }));
    }
}

#[test]
fn reordered_frames_are_rejected() {
    for kind in KINDS {
        let (mut s, mut o) = pair(kind, 5);
        let f0 = sealed(&mut s, b"a");
        let f1 = sealed(&mut s, b"b");
        assert_eq!(o.open(&f1), Err(OpenError::OutOfSequence { expected: 0, got: 1 }));
        assert_eq!(o.open(&f0), Err(OpenError::Closed));
    }
}

/// Under GMAC the sequence number is in the nonce, not the associated data:
/// a frame whose number is rewritten fails the MAC, it is not merely out
/// of sequence.
#[test]
fn a_rewritten_sequence_number_fails_the_mac() {
    for kind in KINDS {
        let (mut s, _) = pair(kind, 5);
        let _f0 = sealed(&mut s, b"a");
        let mut f1 = sealed(&mut s, b"b");
        f1[1..9].copy_from_slice(&0u64.to_be_bytes());
        assert_eq!(opener(kind, 5).open(&f1), Err(OpenError::BadMac), "{kind:?}");
    }
}

#[test]
fn gap_is_rejected() {
    for kind in KINDS {
        let (mut s, mut o) = pair(kind, 5);
        let f0 = sealed(&mut s, b"a");
        let _dropped = sealed(&mut s, b"b");
        let f2 = sealed(&mut s, b"c");
        assert!(o.open(&f0).is_ok());
        assert_eq!(o.open(&f2), Err(OpenError::OutOfSequence { expected: 1, got: 2 }));
    }
}

#[test]
fn frame_under_other_key_is_rejected() {
    for mac in KINDS {
        // The other direction of the same session, and an older session.
        let keys = SessionKeys { send: key(1), recv: key(2), mac };
        let (mut send, _) = keys.clone().into_parts();
        let (_, mut recv) = keys.into_parts();
        let body = sealed(&mut send, b"to peer");
        assert_eq!(recv.open(&body), Err(OpenError::BadMac));

        let (mut old_sealer, _) = pair(mac, 9);
        let (_, mut new_opener) = pair(mac, 10);
        assert_eq!(new_opener.open(&sealed(&mut old_sealer, b"stale")), Err(OpenError::BadMac));
    }
}

#[test]
fn sealer_stops_before_wrapping() {
    for kind in KINDS {
        let mut s = Sealer::starting_at(key(1), kind, u64::MAX - 1);
        let mut o = Opener::starting_at(key(1), kind, u64::MAX - 1);
        let body = sealed(&mut s, b"last");
        assert_eq!(o.open(&body), Ok(&b"last"[..]));
        assert_eq!(s.next_seq(), u64::MAX);
        assert_eq!(o.next_expected(), u64::MAX);
        let mut out = Vec::new();
        assert_eq!(s.seal(b"one more", &mut out), Err(SealError::Exhausted));
        assert!(out.is_empty());
    }
}

#[test]
fn opener_refuses_seq_max() {
    for kind in KINDS {
        // Forge a body with seq u64::MAX under the right key.
        let mac = key(1).keyed(kind).compute(u64::MAX, b"");
        let mut body = sealed_header(kind, u64::MAX).to_vec();
        body.extend_from_slice(mac.as_slice());
        let mut o = Opener::starting_at(key(1), kind, u64::MAX);
        assert_eq!(o.open(&body), Err(OpenError::Exhausted), "{kind:?}");
    }
}

#[test]
fn parts_from_the_wire_decoder_open() {
    for ours in KINDS {
        let (mut s, mut o) = pair(ours, 6);
        for payload in [&b"one"[..], b"", b"three"] {
            let body = sealed(&mut s, payload);
            let Ok(Body::Sealed { kind, seq, payload: got, mac }) = decode_body(&body) else {
                panic!("not a sealed body");
            };
            assert_eq!((kind, got, mac.len()), (ours, payload, ours.mac_len()));
            assert_eq!(o.open_parts(kind, seq, got, mac), Ok(()));
        }
        let body = sealed(&mut s, b"four");
        let Ok(Body::Sealed { kind, seq, payload, mac }) = decode_body(&body) else { panic!("not a sealed body") };
        assert_eq!(o.open_parts(kind, seq, b"fouR", mac), Err(OpenError::BadMac));
        assert_eq!(o.open_parts(kind, seq, payload, mac), Err(OpenError::Closed));
    }
}

#[test]
fn debug_hides_keys() {
    for kind in KINDS {
        let (s, o) = pair(kind, 0xAB);
        assert_eq!(format!("{:?}", key(0xAB)), "FrameKey(..)");
        assert_eq!(format!("{s:?}"), "Sealer { next_seq: 0, .. }");
        assert_eq!(format!("{o:?}"), "Opener { next_expected: 0, closed: false, .. }");
    }
}

fn any_kind() -> impl Strategy<Value = FrameMac> {
    prop::sample::select(KINDS.to_vec())
}

proptest! {
    #[test]
    fn random_payloads_round_trip(
        kind in any_kind(),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..40),
    ) {
        let (mut s, mut o) = pair(kind, 42);
        for p in &payloads {
            let body = sealed(&mut s, p);
            prop_assert_eq!(o.open(&body), Ok(p.as_slice()));
        }
    }

    #[test]
    fn single_bit_flips_are_rejected(
        kind in any_kind(),
        payload in prop::collection::vec(any::<u8>(), 0..200),
        skip in 0usize..4,
        bit in any::<prop::sample::Index>(),
    ) {
        let (mut s, mut o) = pair(kind, 42);
        for _ in 0..skip {
            let body = sealed(&mut s, b"earlier");
            prop_assert!(o.open(&body).is_ok());
        }
        let mut body = sealed(&mut s, &payload);
        let bit = bit.index(body.len() * 8);
        body[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(o.open(&body).is_err());
    }

    #[test]
    fn open_never_panics(kind in any_kind(), body in prop::collection::vec(any::<u8>(), 0..200), start in any::<u64>()) {
        let mut o = Opener::starting_at(key(42), kind, start);
        let _ = o.open(&body);
        let _ = o.open(&body);
    }
}
