//! Key material of the handshake: the handshake key `K` derived from the
//! shared token, the two proofs (Auth and Accept MACs) over the transcript,
//! and the per-session frame keys. `docs/protocol.md` gives the byte-exact
//! inputs; the constants below are those inputs.
//!
//! Domain separation: `K` is used both as an HMAC key for the proofs and as
//! the HKDF pseudorandom key for the frame keys. HKDF-Expand computes
//! `HMAC(K, info ‖ 0x01)`, so every HMAC input under `K` starts with one of
//! four labels that share the prefix `axactor/1 ` and differ in the byte
//! after it (`i`, `r`, `f`) or, for the two frame labels, in `i2r`/`r2i`.
//! None is a prefix of another: no proof input can equal a key-derivation
//! input, and the two proofs cannot be swapped.

use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::session::{FRAME_KEY_LEN, FrameKey, FrameMac, SessionKeys};

/// Length of the handshake key `K`, in bytes.
pub(crate) const KEY_LEN: usize = 32;
/// HKDF-Extract salt of `K`.
pub(crate) const KDF_SALT: &[u8] = b"axactor/1 cluster auth";
/// HKDF-Expand info of `K` derived from a token.
pub(crate) const KDF_INFO: &[u8] = b"handshake";
/// HKDF-Expand info of the well-known insecure key (empty token).
pub(crate) const INSECURE_INFO: &[u8] = b"insecure handshake";
/// Prefix of the initiator's proof (the Auth MAC).
pub(crate) const INITIATOR_LABEL: &[u8] = b"axactor/1 initiator";
/// Prefix of the responder's proof (the Accept MAC).
pub(crate) const RESPONDER_LABEL: &[u8] = b"axactor/1 responder";
/// HKDF-Expand info prefix of the initiator→responder frame key.
pub(crate) const FRAMES_I2R_LABEL: &[u8] = b"axactor/1 frames i2r";
/// HKDF-Expand info prefix of the responder→initiator frame key.
pub(crate) const FRAMES_R2I_LABEL: &[u8] = b"axactor/1 frames r2i";

/// Which side of the handshake a party plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Role {
    /// Dialled the connection; sends Hello and Auth.
    Initiator,
    /// Accepted the connection; sends Challenge and Accept.
    Responder,
}

/// The handshake key `K`, shared by every node of a cluster. Derived from
/// the token; the token itself never leaves the node. `Debug` does not print
/// the key.
#[derive(Clone)]
pub struct AuthKey([u8; KEY_LEN]);

impl AuthKey {
    /// `K = HKDF-SHA256(salt = "axactor/1 cluster auth", ikm = token,
    /// info = "handshake")`, 32 bytes.
    pub fn from_token(token: &[u8]) -> AuthKey {
        AuthKey::derive(token, KDF_INFO)
    }

    /// The well-known key used when a node runs without a token
    /// (`allow_insecure_auth`): `HKDF-SHA256(salt, ikm = "", info =
    /// "insecure handshake")`. It gives **no security** — anyone can compute
    /// it — and it differs from every token-derived key, so a node with a
    /// token never accepts a node without one.
    pub fn insecure() -> AuthKey {
        AuthKey::derive(b"", INSECURE_INFO)
    }

    fn derive(ikm: &[u8], info: &[u8]) -> AuthKey {
        let mut k = [0u8; KEY_LEN];
        Hkdf::<Sha256>::new(Some(KDF_SALT), ikm).expand(info, &mut k).expect("32 bytes is a valid HKDF-SHA256 length");
        AuthKey(k)
    }

    fn hmac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }

    /// The proof `role` sends: `HMAC-SHA256(K, label(role) ‖ transcript)`.
    pub(crate) fn proof(&self, role: Role, transcript: &[u8]) -> [u8; 32] {
        let mut mac = self.hmac();
        mac.update(proof_label(role));
        mac.update(transcript);
        mac.finalize().into_bytes().into()
    }

    /// Checks, in constant time, that `mac` is the proof `role` must send.
    pub(crate) fn verify(&self, role: Role, transcript: &[u8], mac: &[u8]) -> bool {
        let mut check = self.hmac();
        check.update(proof_label(role));
        check.update(transcript);
        check.verify_slice(mac).is_ok()
    }

    /// The frame keys of `role` for the session with this transcript:
    /// `HKDF-Expand(PRK = K, info = direction label ‖ transcript, 32)` per
    /// direction, for the MAC of the negotiated `version`.
    pub(crate) fn session_keys(&self, role: Role, transcript: &[u8], version: u16) -> SessionKeys {
        let hkdf = Hkdf::<Sha256>::from_prk(&self.0).expect("K is exactly one hash length");
        let expand = |label: &[u8]| {
            let mut k = [0u8; FRAME_KEY_LEN];
            hkdf.expand_multi_info(&[label, transcript], &mut k).expect("32 bytes is a valid HKDF-SHA256 length");
            FrameKey::from_bytes(k)
        };
        let i2r = expand(FRAMES_I2R_LABEL);
        let r2i = expand(FRAMES_R2I_LABEL);
        let mac = FrameMac::for_version(version);
        match role {
            Role::Initiator => SessionKeys { send: i2r, recv: r2i, mac },
            Role::Responder => SessionKeys { send: r2i, recv: i2r, mac },
        }
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthKey(..)")
    }
}

fn proof_label(role: Role) -> &'static [u8] {
    match role {
        Role::Initiator => INITIATOR_LABEL,
        Role::Responder => RESPONDER_LABEL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_prefix_free() {
        let labels = [INITIATOR_LABEL, RESPONDER_LABEL, FRAMES_I2R_LABEL, FRAMES_R2I_LABEL];
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                assert!(!a.starts_with(b) && !b.starts_with(a));
            }
        }
    }

    #[test]
    fn token_key_differs_from_insecure_and_other_tokens() {
        let a = AuthKey::from_token(b"secret");
        assert_eq!(a.bytes(), AuthKey::from_token(b"secret").bytes());
        assert_ne!(a.bytes(), AuthKey::from_token(b"secret2").bytes());
        assert_ne!(AuthKey::from_token(b"").bytes(), AuthKey::insecure().bytes());
        assert_eq!(format!("{a:?}"), "AuthKey(..)");
    }

    #[test]
    fn proofs_are_direction_bound() {
        let k = AuthKey::from_token(b"t");
        let init = k.proof(Role::Initiator, b"transcript");
        assert!(k.verify(Role::Initiator, b"transcript", &init));
        assert!(!k.verify(Role::Responder, b"transcript", &init));
        assert!(!k.verify(Role::Initiator, b"transcripT", &init));
        assert!(!k.verify(Role::Initiator, b"transcript", &init[..31]));
        assert!(!AuthKey::from_token(b"u").verify(Role::Initiator, b"transcript", &init));
    }
}
