//! Section `mac` (only when named): what authenticating one frame costs.
//! Every sealed frame is sealed once and opened once (the same MAC,
//! checked); a remote ask is two frames, so four MACs per round trip.
//! Measured under both frame MACs (HMAC-SHA256, protocol versions 1 to 3;
//! AES-256-GMAC, version 4 on) on the frame sizes of the benchmark's ask
//! and reply, against one SHA-256 of the same bytes (HMAC's inner hash
//! alone) to show what HMAC adds on top.

use std::hint::black_box;
use std::time::Instant;

use axactor_cluster::session::{FRAME_KEY_LEN, FrameKey, FrameMac, Opener, Sealer};
use sha2::{Digest, Sha256};

use crate::measure::median;
use crate::raw::Sizes;

/// Frames per timed run.
const FRAMES: usize = 200_000;

/// Nanoseconds per call of `f`, median of `rounds` timed runs of [`FRAMES`].
fn per_call(rounds: usize, mut f: impl FnMut(usize)) -> f64 {
    let runs: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for i in 0..FRAMES {
                f(i);
            }
            t.elapsed().as_nanos() as f64 / FRAMES as f64
        })
        .collect();
    median(&runs)
}

/// One row per MAC and frame size: seal, open, and a plain SHA-256 of the
/// payload.
pub(crate) fn section(frames: Sizes, rounds: usize) {
    println!(
        "## MAC per frame\n\nSealing and opening of one frame under each frame MAC (the `sha2` crate picks the \
         CPU's SHA instructions, `aes-gcm` its AES and carry-less multiply instructions, when it has them); a remote \
         ask is two frames: four MACs per round trip. Median of {rounds} runs of {FRAMES} frames.\n"
    );
    println!("| MAC | frame | seal | open | SHA-256 of the payload alone |\n|---|---|---:|---:|---:|");
    let overhead = crate::nodes::sealed_overhead();
    let mut round_trips = Vec::new();
    for mac in [FrameMac::HmacSha256, FrameMac::Aes256Gmac] {
        round_trips.push((mac, rows(mac, frames, overhead, rounds)));
    }
    for (mac, round_trip) in round_trips {
        println!(
            "MACs per remote round trip under {mac:?} (seal and open of the ask and the reply): {round_trip:.2} µs"
        );
    }
    println!();
}

/// The rows of `mac`, on the payloads of the benchmark's frames (`overhead`
/// is what sealing adds to them between two nodes of this build); returns
/// the round trip's four MACs in µs.
fn rows(mac: FrameMac, frames: Sizes, overhead: usize, rounds: usize) -> f64 {
    let mut round_trip = 0.0;
    for (name, body) in [("ask", frames.request), ("reply", frames.reply)] {
        let payload = vec![7u8; body - overhead];
        let key = FrameKey::from_bytes([3; FRAME_KEY_LEN]);
        let mut sealer = Sealer::with_mac(key.clone(), mac);
        let mut out = Vec::with_capacity(body);
        let seal = per_call(rounds, |_| {
            out.clear();
            sealer.seal(black_box(&payload), &mut out).expect("sequence numbers left");
        });
        // Frames sealed in order, opened in the same order by a fresh opener.
        let mut sealer = Sealer::with_mac(key.clone(), mac);
        let sealed: Vec<Vec<u8>> = (0..FRAMES)
            .map(|_| {
                let mut b = Vec::with_capacity(body);
                sealer.seal(&payload, &mut b).expect("sequence numbers left");
                b
            })
            .collect();
        let mut opener = Opener::with_mac(key.clone(), mac);
        let mut next = 0;
        let open = per_call(rounds, |i| {
            if i == 0 {
                // Each run opens the same frames again from sequence number 0.
                opener = Opener::with_mac(key.clone(), mac);
                next = 0;
            }
            black_box(opener.open(&sealed[next]).expect("in sequence"));
            next += 1;
        });
        let hash = per_call(rounds, |_| {
            black_box(Sha256::digest(black_box(&payload)));
        });
        round_trip += seal + open;
        println!(
            "| {mac:?} | {name}, {} B | {seal:.0} ns | {open:.0} ns | {hash:.0} ns |",
            payload.len() + mac.overhead()
        );
    }
    round_trip / 1000.0
}
