//! The length-prefix layer: how frame bodies are cut out of a byte stream.
//!
//! A frame on a stream is a `u32` big-endian body length followed by that
//! many body bytes. What a body contains is `super::msg`'s business.
//!
//! Invariants, all against a peer that may send anything:
//! - an announced length is checked against the limit *before* anything is
//!   reserved or allocated for it; a zero length is rejected too (no frame
//!   is ever empty, so a stream of zero bytes cannot spin the reader);
//! - [`FrameDecoder::decode`] never grows the caller's buffer: it only
//!   splits complete bodies off it (zero-copy). The reader sizes its reads
//!   with [`FrameDecoder::needed`], which is at most the limit plus the prefix;
//! - once a stream has produced an error the decoder stays failed: the caller
//!   closes the connection, and nothing after the bad prefix is interpreted.
//!
//! The decoder is a pure state machine (no I/O, no clock); it is driven by the
//! receiving side of each stream link (`overlay/pull.rs`) and owned by it
//! alone.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Default largest frame body, in bytes (4 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Length of the frame length prefix, in bytes.
pub const LEN_PREFIX: usize = 4;

/// The largest body the prefix can announce; larger limits are clamped to it.
const PREFIX_MAX: usize = u32::MAX as usize;

/// Why a frame could not be encoded or a stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The body is longer than the limit (announced by the peer, or given to
    /// [`encode_frame`]).
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    Oversized {
        /// The body length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// A zero-length body.
    #[error("empty frame")]
    Empty,
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({have} of {need} bytes)")]
    Truncated {
        /// Bytes of the frame (prefix included) that arrived.
        have: usize,
        /// Bytes the frame (prefix included) needed.
        need: usize,
    },
}

/// Appends one frame (prefix + body) to `out`.
///
/// # Errors
/// [`FrameError::Empty`] if `body` is empty, [`FrameError::Oversized`] if it is
/// longer than `max_frame_bytes` (or than a `u32` can announce). Nothing is
/// written on error.
pub fn encode_frame(body: &[u8], max_frame_bytes: usize, out: &mut BytesMut) -> Result<(), FrameError> {
    let max = clamp_limit(max_frame_bytes);
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    let len = u32::try_from(body.len()).map_err(|_| FrameError::Oversized { len: body.len(), max })?;
    if body.len() > max {
        return Err(FrameError::Oversized { len: body.len(), max });
    }
    out.reserve(LEN_PREFIX + body.len());
    out.put_u32(len);
    out.extend_from_slice(body);
    Ok(())
}

fn clamp_limit(max_frame_bytes: usize) -> usize {
    max_frame_bytes.min(PREFIX_MAX)
}

/// Where the decoder is in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for a length prefix at the front of the buffer.
    Head,
    /// The prefix was consumed and accepted; waiting for `len` body bytes.
    Body { len: usize },
    /// The stream is bad; every later call reports this error again.
    Failed(FrameError),
}

/// Incremental decoder for one byte stream.
///
/// Feed it the connection's read buffer after every read; it takes complete
/// bodies off the front. Use one decoder per buffer, and always the same
/// buffer: the decoder consumes a prefix as soon as it has accepted it.
///
/// ```
/// use axactor_cluster::wire::frame::{encode_frame, FrameDecoder, DEFAULT_MAX_FRAME_BYTES};
/// use bytes::BytesMut;
///
/// let mut stream = BytesMut::new();
/// encode_frame(b"hello", DEFAULT_MAX_FRAME_BYTES, &mut stream).unwrap();
///
/// let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
/// let mut buf = BytesMut::new();
/// buf.extend_from_slice(&stream[..3]); // a partial read
/// assert_eq!(dec.decode(&mut buf).unwrap(), None);
/// assert_eq!(dec.needed(&buf), 1);
/// buf.extend_from_slice(&stream[3..]);
/// assert_eq!(dec.decode(&mut buf).unwrap().as_deref(), Some(&b"hello"[..]));
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    max: usize,
    state: State,
}

impl FrameDecoder {
    /// A decoder that accepts bodies of 1 to `max_frame_bytes` bytes
    /// (clamped to `u32::MAX`).
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder { max: clamp_limit(max_frame_bytes), state: State::Head }
    }

    /// The limit in force.
    pub fn max_frame_bytes(&self) -> usize {
        self.max
    }

    /// Changes the limit for frames whose prefix has not been read yet (e.g.
    /// from the small pre-authentication budget to the configured limit once
    /// the handshake is done). A frame already accepted keeps its length.
    pub fn set_max_frame_bytes(&mut self, max_frame_bytes: usize) {
        self.max = clamp_limit(max_frame_bytes);
    }

    /// Whether the decoder has seen a bad frame (every later call errors).
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// Takes one complete frame body off the front of `buf` if one is there.
    ///
    /// `Ok(None)`: more bytes are needed. Never grows `buf`.
    ///
    /// # Errors
    /// The stream is bad ([`FrameError::Oversized`] or [`FrameError::Empty`]
    /// announced): the caller closes the connection. The error repeats on
    /// every later call.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            match &self.state {
                State::Failed(err) => return Err(err.clone()),
                State::Head => {
                    if buf.len() < LEN_PREFIX {
                        return Ok(None);
                    }
                    let mut prefix = [0u8; LEN_PREFIX];
                    prefix.copy_from_slice(&buf[..LEN_PREFIX]);
                    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
                    if let Err(err) = self.check_len(len) {
                        self.state = State::Failed(err.clone());
                        return Err(err);
                    }
                    buf.advance(LEN_PREFIX);
                    self.state = State::Body { len };
                }
                State::Body { len } => {
                    let len = *len;
                    if buf.len() < len {
                        return Ok(None);
                    }
                    self.state = State::Head;
                    return Ok(Some(buf.split_to(len).freeze()));
                }
            }
        }
    }

    /// Like [`decode`](Self::decode), for when the stream has ended: bytes
    /// that do not make a complete frame are an error.
    ///
    /// # Errors
    /// As `decode`, plus [`FrameError::Truncated`] if the stream ended inside a
    /// frame.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if let Some(body) = self.decode(buf)? {
            return Ok(Some(body));
        }
        let (have, need) = match self.state {
            State::Body { len } => (LEN_PREFIX + buf.len(), LEN_PREFIX + len),
            _ => (buf.len(), LEN_PREFIX),
        };
        if have == 0 {
            return Ok(None);
        }
        let err = FrameError::Truncated { have, need };
        self.state = State::Failed(err.clone());
        Err(err)
    }

    /// How many more bytes the current frame needs before `decode` can
    /// return it: the rest of the prefix while it is incomplete (the body
    /// length is not known yet), then the rest of the body. `0` when a frame
    /// (or a bad prefix) is already in `buf`, or the decoder has failed.
    ///
    /// Never more than `max_frame_bytes + LEN_PREFIX`, so a reader may
    /// `reserve` this much (plus a constant read size) before each read.
    pub fn needed(&self, buf: &BytesMut) -> usize {
        match self.state {
            State::Failed(_) => 0,
            State::Body { len } => len.saturating_sub(buf.len()),
            State::Head if buf.len() < LEN_PREFIX => LEN_PREFIX - buf.len(),
            State::Head => {
                let mut prefix = [0u8; LEN_PREFIX];
                prefix.copy_from_slice(&buf[..LEN_PREFIX]);
                let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
                if self.check_len(len).is_err() { 0 } else { (LEN_PREFIX + len).saturating_sub(buf.len()) }
            }
        }
    }

    fn check_len(&self, len: usize) -> Result<(), FrameError> {
        if len == 0 {
            Err(FrameError::Empty)
        } else if len > self.max {
            Err(FrameError::Oversized { len, max: self.max })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
