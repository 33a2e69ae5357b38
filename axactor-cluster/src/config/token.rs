//! The strength rule for
//! [`ClusterConfig::auth_token`](super::ClusterConfig::auth_token), and the
//! generator behind
//! [`ClusterConfig::generate_token`](super::ClusterConfig::generate_token).
//!
//! The handshake proves knowledge of the token with HMACs over nonces, so
//! anyone who records one handshake can test guesses offline, at the speed
//! of their hardware and without talking to the cluster. Only a token with
//! at least 128 bits of entropy makes that hopeless. Entropy cannot be
//! measured from a string; the rule refuses what is certainly too weak
//! (short, or few distinct characters: `"s3cret"`, `"aaaa…"`,
//! `"abababab…"`) and points at `ClusterConfig::generate_token`, whose
//! 64 hex characters carry 256 random bits.

use std::collections::BTreeSet;

use rand::TryRng;

use super::problem::ConfigProblem;

/// Fewest characters an `auth_token` may have (unless weak tokens are
/// allowed): 32, e.g. 32 random hex digits carry 128 bits.
pub const MIN_TOKEN_CHARS: usize = 32;

/// Fewest distinct characters an `auth_token` may have (unless weak tokens
/// are allowed).
pub const MIN_TOKEN_DISTINCT_CHARS: usize = 8;

/// Random bytes in a generated token.
const GENERATED_BYTES: usize = 32;

/// Checks `token` against the strength rule; with `allow_weak`, only that it
/// is not empty.
pub(super) fn check(token: &str, allow_weak: bool) -> Result<(), ConfigProblem> {
    let bad = |problem| Err(ConfigProblem { field: "auth_token", problem });
    if token.is_empty() {
        return bad("must not be empty");
    }
    if allow_weak {
        return Ok(());
    }
    if token.chars().count() < MIN_TOKEN_CHARS {
        return bad("is too short: use at least 32 random characters (128 bits), e.g. from \
             ClusterConfig::generate_token() or `openssl rand -hex 32`; allow_weak_token accepts it (tests only)");
    }
    if token.chars().collect::<BTreeSet<_>>().len() < MIN_TOKEN_DISTINCT_CHARS {
        return bad("has fewer than 8 distinct characters, too predictable: use a random secret, e.g. from \
             ClusterConfig::generate_token() or `openssl rand -hex 32`; allow_weak_token accepts it (tests only)");
    }
    Ok(())
}

/// A fresh token (see `ClusterConfig::generate_token`): [`GENERATED_BYTES`]
/// bytes from the operating system's CSPRNG, as lowercase hex.
///
/// # Panics
/// If the operating system's random generator fails: there is no safe
/// fallback for a secret.
pub(super) fn generate() -> String {
    let mut bytes = [0u8; GENERATED_BYTES];
    if let Err(e) = rand::rngs::SysRng.try_fill_bytes(&mut bytes) {
        panic!("the operating system's random generator failed: {e}");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::super::ClusterConfig;
    use super::super::tests::{TOKEN, secure};
    use super::*;

    fn with_token(token: &str, allow_weak_token: bool) -> ClusterConfig {
        ClusterConfig { auth_token: Some(token.into()), allow_weak_token, ..secure() }
    }

    #[test]
    fn token_strength_table() {
        let cases: [(&str, bool, bool); 10] = [
            // (token, allow_weak_token, accepted)
            ("s3cret", false, false),
            ("shared-secret", false, false),
            ("0123456789abcdef0123456789abcde", false, false), // 31 chars
            ("0123456789abcdef0123456789abcdef", false, true), // 32 random-looking hex chars
            (&"a".repeat(64), false, false),
            (&"abcdefg".repeat(10), false, false), // 7 distinct
            (&"abcdefgh".repeat(4), false, true),
            ("s3cret", true, true),
            ("", true, false),
            (TOKEN, false, true),
        ];
        for (token, allow_weak, accepted) in cases {
            let got = with_token(token, allow_weak).validate().map_err(|p| p.field);
            let want = if accepted { Ok(()) } else { Err("auth_token") };
            assert_eq!(got, want, "token {token:?}, allow_weak_token {allow_weak}");
        }
    }

    #[test]
    fn the_refusal_says_how_to_make_a_token() {
        let problem = with_token("s3cret", false).validate().expect_err("a short token is refused");
        assert!(problem.to_string().contains("generate_token"), "{problem}");
    }

    #[test]
    fn generated_tokens_pass_and_differ() {
        let (a, b) = (ClusterConfig::generate_token(), ClusterConfig::generate_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 * GENERATED_BYTES);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(with_token(&a, false).validate(), Ok(()));
        assert_eq!(with_token(&b, false).validate(), Ok(()));
    }
}
