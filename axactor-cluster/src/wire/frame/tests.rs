use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::wire::arb::hostile_stream;

fn framed(bodies: &[&[u8]], max: usize) -> BytesMut {
    let mut out = BytesMut::new();
    for body in bodies {
        encode_frame(body, max, &mut out).expect("encodable");
    }
    out
}

/// Decodes everything in `buf`, checking that `decode` never grows it.
fn drain(dec: &mut FrameDecoder, buf: &mut BytesMut) -> Result<Vec<Bytes>, FrameError> {
    let mut out = Vec::new();
    loop {
        let (cap, len) = (buf.capacity(), buf.len());
        let res = dec.decode(buf);
        assert!(buf.capacity() <= cap, "decode grew the buffer");
        assert!(buf.len() <= len);
        match res? {
            Some(body) => out.push(body),
            None => return Ok(out),
        }
    }
}

#[test]
fn round_trip() {
    let mut buf = framed(&[b"a", b"hello", &[7u8; 300]], DEFAULT_MAX_FRAME_BYTES);
    assert_eq!(&buf[..LEN_PREFIX], &[0, 0, 0, 1]);
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
    let got = drain(&mut dec, &mut buf).expect("valid stream");
    assert_eq!(got, vec![Bytes::from_static(b"a"), Bytes::from_static(b"hello"), Bytes::from(vec![7u8; 300])]);
    assert!(buf.is_empty());
    assert_eq!(dec.decode_eof(&mut buf), Ok(None));
}

#[test]
fn prefix_is_big_endian() {
    let mut out = BytesMut::new();
    encode_frame(&[0u8; 0x0102], 1 << 20, &mut out).expect("encodable");
    assert_eq!(&out[..LEN_PREFIX], &[0, 0, 1, 2]);
    assert_eq!(out.len(), LEN_PREFIX + 0x0102);
}

#[test]
fn encode_rejects_empty_and_oversized_without_writing() {
    let mut out = BytesMut::from(&b"xy"[..]);
    assert_eq!(encode_frame(b"", 16, &mut out), Err(FrameError::Empty));
    assert_eq!(encode_frame(&[1u8; 17], 16, &mut out), Err(FrameError::Oversized { len: 17, max: 16 }));
    assert_eq!(&out[..], b"xy");
    assert_eq!(encode_frame(&[1u8; 16], 16, &mut out), Ok(()));
}

#[test]
fn absurd_length_is_rejected_without_allocating() {
    let mut buf = BytesMut::with_capacity(8);
    buf.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 1, 2]);
    let cap = buf.capacity();
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
    assert_eq!(dec.needed(&buf), 0);
    let err = dec.decode(&mut buf).expect_err("oversized");
    assert_eq!(err, FrameError::Oversized { len: 0xFFFF_FFFF, max: DEFAULT_MAX_FRAME_BYTES });
    assert_eq!(buf.capacity(), cap);
    assert!(dec.is_failed());
    // The stream stays failed, whatever follows.
    buf.clear();
    buf.extend_from_slice(&[0, 0, 0, 1, 9]);
    assert_eq!(dec.decode(&mut buf), Err(err));
    assert_eq!(dec.needed(&buf), 0);
}

#[test]
fn zero_length_is_rejected() {
    let mut buf = BytesMut::from(&[0u8, 0, 0, 0, 0, 0, 0, 1, 5][..]);
    let mut dec = FrameDecoder::new(16);
    assert_eq!(dec.decode(&mut buf), Err(FrameError::Empty));
    assert_eq!(dec.decode(&mut buf), Err(FrameError::Empty));
}

#[test]
fn truncated_frame_waits_then_completes() {
    let whole = framed(&[b"abcdef"], 64);
    let mut dec = FrameDecoder::new(64);
    let mut buf = BytesMut::new();
    for (i, byte) in whole.iter().enumerate() {
        assert_eq!(dec.needed(&buf), if i < LEN_PREFIX { LEN_PREFIX - i } else { whole.len() - i });
        assert_eq!(dec.decode(&mut buf), Ok(None), "after {i} bytes");
        buf.extend_from_slice(&[*byte]);
    }
    assert_eq!(dec.decode(&mut buf), Ok(Some(Bytes::from_static(b"abcdef"))));
    assert_eq!(dec.needed(&buf), LEN_PREFIX);
}

#[test]
fn eof_inside_a_frame_is_truncated() {
    let whole = framed(&[b"abcdef"], 64);
    for cut in 1..whole.len() {
        let mut dec = FrameDecoder::new(64);
        let mut buf = BytesMut::from(&whole[..cut]);
        let need = if cut < LEN_PREFIX { LEN_PREFIX } else { whole.len() };
        assert_eq!(dec.decode_eof(&mut buf), Err(FrameError::Truncated { have: cut, need }), "cut at {cut}");
    }
    let mut dec = FrameDecoder::new(64);
    let mut buf = whole.clone();
    assert_eq!(dec.decode_eof(&mut buf), Ok(Some(Bytes::from_static(b"abcdef"))));
    assert_eq!(dec.decode_eof(&mut buf), Ok(None));
}

#[test]
fn limit_applies_at_the_boundary_and_can_change() {
    let mut dec = FrameDecoder::new(4);
    let mut buf = framed(&[b"abcd"], 4);
    assert_eq!(dec.decode(&mut buf), Ok(Some(Bytes::from_static(b"abcd"))));
    let mut buf = framed(&[b"abcde"], 5);
    dec.set_max_frame_bytes(5);
    assert_eq!(dec.max_frame_bytes(), 5);
    assert_eq!(dec.decode(&mut buf), Ok(Some(Bytes::from_static(b"abcde"))));
    dec.set_max_frame_bytes(4);
    let mut buf = framed(&[b"abcde"], 5);
    assert_eq!(dec.decode(&mut buf), Err(FrameError::Oversized { len: 5, max: 4 }));
}

#[test]
fn limit_is_clamped_to_what_the_prefix_can_say() {
    let dec = FrameDecoder::new(usize::MAX);
    assert_eq!(dec.max_frame_bytes(), u32::MAX as usize);
}

proptest! {
    #[test]
    fn frames_survive_any_chunking(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..200), 0..8),
        cuts in prop::collection::vec(1usize..64, 1..32),
    ) {
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let stream = framed(&refs, 256);
        let mut dec = FrameDecoder::new(256);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < stream.len() {
            let n = cuts[i % cuts.len()].min(stream.len() - pos);
            buf.extend_from_slice(&stream[pos..pos + n]);
            pos += n;
            i += 1;
            got.extend(drain(&mut dec, &mut buf).expect("valid stream"));
        }
        prop_assert_eq!(dec.decode_eof(&mut buf), Ok(None));
        let got: Vec<Vec<u8>> = got.iter().map(|b| b.to_vec()).collect();
        prop_assert_eq!(got, bodies);
    }

    /// Arbitrary bytes, read the way a reader sized by `needed` reads them:
    /// no panic, and the buffer never holds more than one frame's worth.
    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        stream in hostile_stream(),
        cuts in prop::collection::vec(1usize..40, 1..16),
        max in 1usize..64,
    ) {
        let mut dec = FrameDecoder::new(max);
        let mut buf = BytesMut::new();
        let mut pos = 0;
        let mut i = 0;
        loop {
            match drain(&mut dec, &mut buf) {
                Err(_) => {
                    prop_assert!(dec.is_failed());
                    break;
                }
                Ok(bodies) => prop_assert!(bodies.iter().all(|b| !b.is_empty() && b.len() <= max)),
            }
            if pos == stream.len() {
                let _ = dec.decode_eof(&mut buf);
                break;
            }
            let need = dec.needed(&buf);
            prop_assert!(need > 0 && need <= max + LEN_PREFIX);
            let n = cuts[i % cuts.len()].min(need).min(stream.len() - pos);
            buf.extend_from_slice(&stream[pos..pos + n]);
            prop_assert!(buf.len() <= max + LEN_PREFIX);
            pos += n;
            i += 1;
        }
    }
}
