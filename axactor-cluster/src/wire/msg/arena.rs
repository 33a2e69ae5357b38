//! The buffers of outgoing frames ([`OutFrame`](super::OutFrame)), carved
//! from a chunk of memory per thread instead of allocated one per frame.
//!
//! Each thread carves from one chunk of [`CHUNK`] bytes: a frame of up to
//! [`MAX_CARVED`] bytes takes exactly its size off the front of the rest
//! (a view sharing the chunk: no allocation), larger frames get a buffer of
//! their own. Once the rest is too short, the chunk is retired and the
//! thread carves from the first chunk (this one or one of the last
//! [`RETIRED`] retired) that no frame uses any more (a frame's bytes live
//! until the link has written or delivered them and every `Bytes` sliced
//! from them is dropped), taken back whole; only when every one is still
//! in use is a new chunk allocated (the oldest retired one is then let go:
//! it is freed with its last frame). So a frame costs no allocation of its
//! own, and a pipeline of frames in flight cycles through a few chunks.
//!
//! Bound: per thread, the chunk it carves from and at most [`RETIRED`]
//! retired ones, plus chunks let go while still in use (each at most
//! [`CHUNK`] bytes, and only while one of its frames is alive; frames
//! themselves are bounded by the queues they wait in).

use std::cell::RefCell;

use bytes::BytesMut;

/// Bytes of one chunk.
pub(super) const CHUNK: usize = 8 * 1024;
/// Frames larger than this get a buffer of their own (so a chunk serves
/// at least eight frames).
pub(super) const MAX_CARVED: usize = CHUNK / 8;
/// Retired chunks a thread keeps to take back.
pub(super) const RETIRED: usize = 4;

/// One thread's chunks (see the module docs).
struct Chunks {
    /// The unused rest of the chunk carved from.
    rest: BytesMut,
    /// Retired chunks (their empty rests), oldest first.
    retired: Vec<BytesMut>,
}

thread_local! {
    static CHUNKS: RefCell<Chunks> = RefCell::new(Chunks { rest: BytesMut::new(), retired: Vec::new() });
}

impl Chunks {
    /// Makes room for a frame in `rest` (see the module docs).
    fn refill(&mut self) {
        self.rest.clear();
        if self.rest.try_reclaim(CHUNK) {
            return;
        }
        let next = match self.retired.iter_mut().position(|r| r.try_reclaim(CHUNK)) {
            Some(i) => self.retired.remove(i),
            None => BytesMut::with_capacity(CHUNK),
        };
        if self.retired.len() >= RETIRED {
            self.retired.remove(0);
        }
        let old = std::mem::replace(&mut self.rest, next);
        self.retired.push(old);
    }
}

/// An empty buffer with room for exactly `capacity` bytes.
pub(super) fn buffer(capacity: usize) -> BytesMut {
    if capacity > MAX_CARVED {
        return BytesMut::with_capacity(capacity);
    }
    let carved = CHUNKS.try_with(|chunks| {
        // Not borrowed elsewhere (nothing here calls out); a thread
        // tearing down its locals gets a buffer of its own instead.
        let mut chunks = chunks.try_borrow_mut().ok()?;
        if chunks.rest.capacity() < capacity {
            chunks.refill();
        }
        if chunks.rest.capacity() < capacity {
            return None;
        }
        let after = chunks.rest.split_off(capacity);
        Some(std::mem::replace(&mut chunks.rest, after))
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

    /// One chunk's worth of frames.
    fn fill() -> Vec<BytesMut> {
        (0..CHUNK / MAX_CARVED).map(|_| buffer(MAX_CARVED)).collect()
    }

    fn start_of(frames: &[BytesMut]) -> usize {
        frames[0].as_ptr() as usize
    }

    #[test]
    fn a_chunk_is_taken_back_once_its_frames_are_gone_and_kept_while_one_lives() {
        // One chunk exactly: its frames dropped, the next frame is its start again.
        let a = fill();
        let a_start = start_of(&a);
        drop(a);
        let mut a = fill();
        assert_eq!(start_of(&a), a_start, "the chunk was taken back");
        // One frame of it alive: the next chunk is another.
        let a_kept = a.pop().map(BytesMut::freeze);
        drop(a);
        let mut b = fill();
        let b_start = start_of(&b);
        assert!(!(a_start..a_start + CHUNK).contains(&b_start), "a chunk in use is not reused");
        // The retired chunk comes back once free, while the current one is in use.
        let b_kept = b.pop().map(BytesMut::freeze);
        drop((b, a_kept));
        let again = fill();
        assert_eq!(start_of(&again), a_start, "a retired chunk free again is taken back");
        drop(b_kept);
    }

    #[test]
    fn retired_chunks_are_bounded() {
        let mut held = Vec::new();
        for _ in 0..2 * RETIRED {
            let mut frames = fill();
            held.push(frames.pop().map(BytesMut::freeze));
        }
        let retired = CHUNKS.with(|c| c.borrow().retired.len());
        assert!(retired <= RETIRED);
    }
}
