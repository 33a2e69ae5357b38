//! The wire format: length-prefixed frames carrying postcard-encoded
//! messages. `docs/protocol.md` describes it byte by byte.

pub mod hello;
