//! The buffers of outgoing frames ([`OutFrame`](super::OutFrame)), carved
//! from a chunk of memory per thread instead of allocated one per frame.
//!
//! Each thread keeps the unused rest of one chunk of [`CHUNK`] bytes; a
//! frame of up to [`MAX_CARVED`] bytes takes exactly its size off the
//! front (a view sharing the chunk: no allocation), larger frames get a
//! buffer of their own. Once the rest is too short, the chunk is taken
//! back whole if no frame carved from it is alive any more (a frame's
//! bytes live until the link has written or delivered them and every
//! `Bytes` sliced from them is dropped); otherwise a new chunk is
//! allocated and the old one is freed with its last frame. So a frame
//! costs no allocation of its own, a chunk two (its bytes and their shared
//! count).
//!
//! Bound: per thread, the one chunk it carves from, plus the chunks still
//! held by frames alive (each at most [`CHUNK`] bytes, and only while one
//! of its frames is; frames themselves are bounded by the queues they
//! wait in).

use std::cell::RefCell;

use bytes::BytesMut;

/// Bytes of one chunk.
pub(super) const CHUNK: usize = 8 * 1024;
/// Frames larger than this get a buffer of their own (so a chunk serves
/// at least eight frames).
pub(super) const MAX_CARVED: usize = CHUNK / 8;

thread_local! {
    /// The unused rest of this thread's chunk.
    static REST: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// An empty buffer with room for exactly `capacity` bytes.
pub(super) fn buffer(capacity: usize) -> BytesMut {
    if capacity > MAX_CARVED {
        return BytesMut::with_capacity(capacity);
    }
    let carved = REST.try_with(|rest| {
        // Not borrowed elsewhere (nothing here calls out); a thread
        // tearing down its locals gets a buffer of its own instead.
        let mut rest = rest.try_borrow_mut().ok()?;
        if rest.capacity() < capacity {
            // Empty, so this reclaims the whole chunk when nothing else
            // holds it, and allocates a new one otherwise.
            rest.clear();
            rest.reserve(CHUNK);
        }
        let after = rest.split_off(capacity);
        Some(std::mem::replace(&mut *rest, after))
    });
    carved.ok().flatten().unwrap_or_else(|| BytesMut::with_capacity(capacity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_have_exactly_their_capacity_and_are_disjoint() {
        let mut a = buffer(100);
        let mut b = buffer(50);
        assert_eq!((a.capacity(), b.capacity()), (100, 50));
        a.extend_from_slice(&[1; 100]);
        b.extend_from_slice(&[2; 50]);
        assert!(a.iter().all(|&x| x == 1) && b.iter().all(|&x| x == 2), "no overlap");
        let big = buffer(MAX_CARVED + 1);
        assert_eq!(big.capacity(), MAX_CARVED + 1);
    }

    #[test]
    fn a_chunk_is_taken_back_once_its_frames_are_gone_and_kept_while_one_lives() {
        let per_chunk = CHUNK / MAX_CARVED;
        // One chunk exactly: its frames dropped, the next frame is its start again.
        let frames: Vec<BytesMut> = (0..per_chunk).map(|_| buffer(MAX_CARVED)).collect();
        let start = frames[0].as_ptr() as usize;
        drop(frames);
        let mut frames: Vec<BytesMut> = (0..per_chunk).map(|_| buffer(MAX_CARVED)).collect();
        assert_eq!(frames[0].as_ptr() as usize, start, "the chunk was taken back");
        // One frame of it alive: the next frame comes from another chunk.
        let kept = frames.pop().map(BytesMut::freeze);
        drop(frames);
        let next = buffer(MAX_CARVED).as_ptr() as usize;
        assert!(!(start..start + CHUNK).contains(&next), "a chunk in use is not reused");
        drop(kept);
    }
}
