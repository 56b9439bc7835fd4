//! Random tokens and codes, hashing and constant-time comparison helpers
//! (authentication-flow-api.md 5, 9.2, 9.6).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::SecureRandom;

/// Crockford base32: no `I`, `L`, `O`, `U`, so codes survive being read aloud or retyped.
pub const CROCKFORD_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

pub const STATE_TOKEN_PREFIX: &str = "authflowstate_";
pub const FLOW_ID_PREFIX: &str = "authflow_";
pub const WS_CHANNEL_PREFIX: &str = "ws_";

/// Random characters after a token prefix: 32 × 5 bits = 160 bits (spec 5).
pub const TOKEN_BODY_LEN: usize = 32;
/// Record ids: 26 × 5 = 130 bits, the size of a UUID, without its dashes.
pub const RANDOM_ID_LEN: usize = 26;
/// Recovery codes are 10 Crockford characters (spec 9.6).
pub const RECOVERY_CODE_LEN: usize = 10;
/// Link codes (login link, recovery link) are 32 Crockford characters (spec 9.2).
pub const LINK_CODE_LEN: usize = 32;

/// `len` characters drawn uniformly from [`CROCKFORD_ALPHABET`].
pub fn random_crockford(rng: &dyn SecureRandom, len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    // 256 is a multiple of 32, so the low 5 bits of a uniform byte are uniform: no bias.
    bytes
        .iter()
        .map(|b| char::from(CROCKFORD_ALPHABET[usize::from(b & 0x1f)]))
        .collect()
}

/// `authflowstate_` + 32 characters.
pub fn state_token(rng: &dyn SecureRandom) -> String {
    prefixed(rng, STATE_TOKEN_PREFIX)
}

/// `authflow_` + 32 characters.
pub fn flow_id(rng: &dyn SecureRandom) -> String {
    prefixed(rng, FLOW_ID_PREFIX)
}

/// `ws_` + 32 characters.
pub fn ws_channel(rng: &dyn SecureRandom) -> String {
    prefixed(rng, WS_CHANNEL_PREFIX)
}

/// Id of a durable record (user, identity, authenticator, ...).
pub fn random_id(rng: &dyn SecureRandom) -> String {
    random_crockford(rng, RANDOM_ID_LEN)
}

/// One recovery code (spec 9.6).
pub fn recovery_code(rng: &dyn SecureRandom) -> String {
    random_crockford(rng, RECOVERY_CODE_LEN)
}

/// The code of a login or recovery link (spec 9.2, 9.3).
pub fn link_code(rng: &dyn SecureRandom) -> String {
    random_crockford(rng, LINK_CODE_LEN)
}

fn prefixed(rng: &dyn SecureRandom, prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + TOKEN_BODY_LEN);
    s.push_str(prefix);
    s.push_str(&random_crockford(rng, TOKEN_BODY_LEN));
    s
}

/// `len` decimal digits, each uniform (OTP codes, spec 9.2).
pub fn otp_code_digits(rng: &dyn SecureRandom, len: usize) -> String {
    // `byte % 10` alone would favour 0..=5 (256 = 25·10 + 6); dropping bytes ≥ 250 leaves
    // 25 equally likely bytes per digit.
    const LIMIT: u8 = 250;
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 16];
    while out.len() < len {
        rng.fill(&mut buf);
        for &b in buf.iter().filter(|&&b| b < LIMIT) {
            if out.len() == len {
                break;
            }
            out.push(char::from(b'0' + b % 10));
        }
    }
    out
}

/// Lowercase hex SHA-256 of a string: how codes and tokens are stored (spec 9.2).
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Compares secrets without leaking, through timing, how long a prefix matched.
/// Different lengths compare unequal (the length itself is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Spec 9.6: spaces and `-` removed, uppercased, `I`/`L` → `1`, `O` → `0`, so codes copied
/// with separators or misread letters still match.
pub fn normalize_recovery_code(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            other => other,
        })
        .collect()
}

/// Whether `s` is `<prefix>` followed by exactly `body_len` Crockford characters.
pub fn has_crockford_body(s: &str, prefix: &str, body_len: usize) -> bool {
    s.strip_prefix(prefix).is_some_and(|body| {
        body.len() == body_len && body.bytes().all(|b| CROCKFORD_ALPHABET.contains(&b))
    })
}

/// Whether `s` looks like a state token we issued: lets callers answer 404 without a lookup.
pub fn is_state_token_format(s: &str) -> bool {
    has_crockford_body(s, STATE_TOKEN_PREFIX, TOKEN_BODY_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::OsRandom;
    use std::sync::Mutex;

    /// Replays a fixed byte sequence, cycling.
    struct FixedRandom(Mutex<(Vec<u8>, usize)>);

    impl FixedRandom {
        fn new(bytes: &[u8]) -> Self {
            FixedRandom(Mutex::new((bytes.to_vec(), 0)))
        }
    }

    impl SecureRandom for FixedRandom {
        fn fill(&self, buf: &mut [u8]) {
            let mut g = self.0.lock().unwrap();
            for b in buf.iter_mut() {
                let i = g.1;
                *b = g.0[i % g.0.len()];
                g.1 += 1;
            }
        }
    }

    fn is_crockford(s: &str) -> bool {
        s.bytes().all(|b| CROCKFORD_ALPHABET.contains(&b))
    }

    #[test]
    fn alphabet_is_crockford() {
        assert_eq!(CROCKFORD_ALPHABET.len(), 32);
        for c in [b'I', b'L', b'O', b'U'] {
            assert!(!CROCKFORD_ALPHABET.contains(&c));
        }
        let mut sorted = CROCKFORD_ALPHABET.to_vec();
        sorted.dedup();
        assert_eq!(sorted.len(), 32, "no duplicates");
    }

    #[test]
    fn random_crockford_maps_low_five_bits() {
        let rng = FixedRandom::new(&[0, 31, 32, 255, 10, 18]);
        // 32 → 0, 255 → 31, 10 → 'A', 18 → 'J' (I is skipped)
        assert_eq!(random_crockford(&rng, 6), "0Z0ZAJ");
    }

    #[test]
    fn random_crockford_covers_whole_alphabet() {
        let s = random_crockford(&OsRandom, 4096);
        assert_eq!(s.len(), 4096);
        assert!(is_crockford(&s));
        for &c in CROCKFORD_ALPHABET {
            assert!(s.as_bytes().contains(&c), "missing {}", c as char);
        }
    }

    #[test]
    fn token_formats() {
        let st = state_token(&OsRandom);
        assert!(st.starts_with("authflowstate_"));
        assert_eq!(st.len(), "authflowstate_".len() + 32);
        assert!(is_state_token_format(&st));

        let f = flow_id(&OsRandom);
        assert!(has_crockford_body(&f, "authflow_", 32));
        assert!(!is_state_token_format(&f));

        let ws = ws_channel(&OsRandom);
        assert!(has_crockford_body(&ws, "ws_", 32));

        let id = random_id(&OsRandom);
        assert_eq!(id.len(), 26);
        assert!(is_crockford(&id));

        assert_eq!(recovery_code(&OsRandom).len(), 10);
        assert_eq!(link_code(&OsRandom).len(), 32);
        assert_ne!(state_token(&OsRandom), st);
    }

    #[test]
    fn state_token_format_rejects_lookalikes() {
        let body = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        assert!(is_state_token_format(&format!("authflowstate_{body}")));
        assert!(!is_state_token_format(&format!(
            "authflowstate_{}",
            &body[1..]
        )));
        assert!(!is_state_token_format(&format!("authflowstate_{body}0")));
        assert!(!is_state_token_format(&format!(
            "authflowstate_{}",
            body.to_lowercase()
        )));
        assert!(!is_state_token_format(&format!(
            "authflowstate_{}I",
            &body[1..]
        )));
        assert!(!is_state_token_format(&format!("authflow_{body}")));
        assert!(!is_state_token_format(""));
        // Multi-byte characters must not be miscounted as one byte each.
        assert!(!is_state_token_format(&format!(
            "authflowstate_{}é",
            &body[2..]
        )));
    }

    #[test]
    fn otp_digits_reject_biased_bytes() {
        // 250..=255 are skipped; 249 → 9, 0 → 0, 123 → 3, 10 → 0, 7 → 7, then the
        // sequence restarts: 250 skipped, 249 → 9.
        let rng = FixedRandom::new(&[250, 249, 0, 251, 123, 10, 255, 7]);
        assert_eq!(otp_code_digits(&rng, 6), "903079");
    }

    #[test]
    fn otp_digits_are_uniform() {
        let n = 1_000_000;
        let code = otp_code_digits(&OsRandom, n);
        assert_eq!(code.len(), n);
        let mut counts = [0usize; 10];
        for b in code.bytes() {
            counts[usize::from(b - b'0')] += 1;
        }
        // Expected 100 000 each, σ ≈ 300; the bound is 4σ. With `byte % 10` digits 0..=5
        // would expect 101 562 and 6..=9 97 656, both outside it.
        for (d, &c) in counts.iter().enumerate() {
            assert!((98_800..=101_200).contains(&c), "digit {d}: {c}");
        }
    }

    #[test]
    fn otp_six_digits() {
        let code = otp_code_digits(&OsRandom, 6);
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(otp_code_digits(&OsRandom, 0), "");
    }

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"123456", b"123456"));
        assert!(!constant_time_eq(b"123456", b"123457"));
        assert!(!constant_time_eq(b"123456", b"12345"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn recovery_code_normalization() {
        assert_eq!(normalize_recovery_code("abcd-efgh ij"), "ABCDEFGH1J");
        assert_eq!(normalize_recovery_code("oOiIlL 01"), "00111101");
        assert_eq!(normalize_recovery_code(" 7KQ2-M9XZ-T4 "), "7KQ2M9XZT4");
        assert_eq!(normalize_recovery_code(""), "");
    }
}
