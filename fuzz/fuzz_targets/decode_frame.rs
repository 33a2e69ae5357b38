//! Arbitrary bytes into every wire decoder: the frame decoder (in chunks),
//! the body decoder and the envelope decoders (owned and borrowed). None may panic; the frame
//! decoder may never grow its buffer; whatever decodes must re-encode to a
//! value that decodes to itself.
//!
//! Input layout: byte 0 picks the chunk size for the stream, the rest is
//! both the stream and, whole, a body and a payload.

#![no_main]

use axactor_cluster::wire::msg::{
    Body, Envelope, decode_body, decode_envelope, decode_envelope_ref, encode_envelope, encode_preauth,
};
use axactor_cluster::wire::{FrameDecoder, MAX_PREAUTH_FRAME_BYTES};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let chunk = usize::from(first % 64) + 1;

    check_body(rest);
    check_envelope(rest);

    let mut dec = FrameDecoder::new(MAX_PREAUTH_FRAME_BYTES);
    let mut buf = BytesMut::new();
    'feed: for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let cap = buf.capacity();
            let res = dec.decode(&mut buf);
            assert!(buf.capacity() <= cap, "decoder grew its buffer");
            match res {
                Ok(Some(frame)) => {
                    assert!(!frame.is_empty() && frame.len() <= MAX_PREAUTH_FRAME_BYTES);
                    check_body(&frame);
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    let _ = dec.decode_eof(&mut buf);
});

fn check_body(bytes: &[u8]) {
    match decode_body(bytes) {
        Ok(Body::PreAuth(msg)) => {
            let mut again = Vec::new();
            encode_preauth(&msg, &mut again).expect("a decoded handshake message encodes");
            assert_eq!(decode_body(&again), Ok(Body::PreAuth(msg)));
        }
        Ok(Body::Sealed { payload, .. }) => check_envelope(payload),
        Ok(_) | Err(_) => {}
    }
}

fn check_envelope(bytes: &[u8]) {
    // The node's borrowed decoder accepts exactly what the owned one does.
    assert_eq!(decode_envelope_ref(bytes).is_ok(), decode_envelope(bytes).is_ok());
    if let Ok(env) = decode_envelope(bytes) {
        let mut again = Vec::new();
        encode_envelope(&env, &mut again).expect("a decoded envelope encodes");
        let back: Envelope = decode_envelope(&again).expect("a re-encoded envelope decodes");
        assert_eq!(back, env);
    }
}
