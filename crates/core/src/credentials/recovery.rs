//! Recovery codes (authentication-flow-api.md 8.10, 9.6): generation, display, input
//! normalization, hashing for storage and constant-time verification.
//!
//! Codes are 10 Crockford base32 characters (50 random bits). They are stored as the
//! SHA-256 of the normalized code: with 50 bits of entropy per code and online guessing
//! limited by rate limits and lockout, a slow hash would add cost without adding safety
//! (an offline attacker with the table could not reverse it for far less than 2^49
//! hashes per code either way).

use chrono::{DateTime, Utc};

use crate::clock::SecureRandom;
use crate::credentials::token::{self, CROCKFORD_ALPHABET, RECOVERY_CODE_LEN};
use crate::model::RecoveryCode;

/// `authentication.recovery_code.count` default (spec 9.6; allowed 10..=50).
pub const DEFAULT_COUNT: usize = 16;
/// Longest imported code accepted (after normalization): bounds input, not entropy.
pub const MAX_IMPORTED_CODE_LEN: usize = 64;

/// `count` fresh codes from the CSPRNG, uppercase, without separators (as the flow shows
/// them). Distinct within the set.
pub fn generate(rng: &dyn SecureRandom, count: usize) -> Vec<String> {
    let mut codes: Vec<String> = Vec::with_capacity(count);
    while codes.len() < count {
        let code = token::recovery_code(rng);
        // 2^-50 per pair: the loop only guards against a duplicate making a set smaller.
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

/// `ABCDE-FGHJK` for people reading or typing codes (the flow API shows them plain; input
/// in either form is accepted).
pub fn display(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    if chars.len() != RECOVERY_CODE_LEN {
        return code.to_string();
    }
    let (a, b) = chars.split_at(RECOVERY_CODE_LEN / 2);
    format!(
        "{}-{}",
        a.iter().collect::<String>(),
        b.iter().collect::<String>()
    )
}

/// Spec 9.6: spaces and `-` removed, uppercased, `I`/`L` → `1`, `O` → `0`.
pub fn normalize(input: &str) -> String {
    token::normalize_recovery_code(input)
}

/// Whether normalized input has the shape of a generated code (10 Crockford characters).
/// Imported codes need not have it (see [`check_imported`]).
pub fn is_generated_format(normalized: &str) -> bool {
    normalized.len() == RECOVERY_CODE_LEN
        && normalized.bytes().all(|b| CROCKFORD_ALPHABET.contains(&b))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ImportedCodeError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_IMPORTED_CODE_LEN} characters")]
    TooLong,
    #[error("may only contain letters and digits (and spaces or '-')")]
    BadCharacter,
}

/// Checks a code from an import and returns it normalized. Other systems' codes may have
/// other lengths; they are accepted as long as they are plain ASCII letters and digits.
pub fn check_imported(code: &str) -> Result<String, ImportedCodeError> {
    let normalized = normalize(code);
    if normalized.is_empty() {
        return Err(ImportedCodeError::Empty);
    }
    if !normalized.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ImportedCodeError::BadCharacter);
    }
    if normalized.len() > MAX_IMPORTED_CODE_LEN {
        return Err(ImportedCodeError::TooLong);
    }
    Ok(normalized)
}

/// What is stored for a code: lowercase hex SHA-256 of its normalized form.
pub fn hash(code: &str) -> String {
    token::sha256_hex(&normalize(code))
}

/// Stored records for `codes` (plain or normalized), one per code, unconsumed.
pub fn records(
    rng: &dyn SecureRandom,
    user_id: &str,
    codes: &[String],
    now: DateTime<Utc>,
) -> Vec<RecoveryCode> {
    codes
        .iter()
        .map(|code| RecoveryCode {
            id: token::random_id(rng),
            user_id: user_id.to_string(),
            code_hash: hash(code),
            created_at: now,
            consumed_at: None,
        })
        .collect()
}

/// Whether `input` is the code behind `code_hash`, compared in constant time.
pub fn verify(input: &str, code_hash: &str) -> bool {
    token::constant_time_eq(hash(input).as_bytes(), code_hash.as_bytes())
}

/// The unconsumed code that `input` matches, if any. Every stored code is compared (no
/// early exit), so timing does not tell which one matched or how many were checked
/// before it. Consume the match with `Change::ConsumeRecoveryCode`.
pub fn find_unused<'a>(codes: &'a [RecoveryCode], input: &str) -> Option<&'a RecoveryCode> {
    let input_hash = hash(input);
    let mut found = None;
    for code in codes {
        let equal = token::constant_time_eq(input_hash.as_bytes(), code.code_hash.as_bytes());
        if equal && code.consumed_at.is_none() && found.is_none() {
            found = Some(code);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::OsRandom;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn sixteen_codes_of_ten_crockford_characters() {
        let codes = generate(&OsRandom, DEFAULT_COUNT);
        assert_eq!(codes.len(), 16);
        for code in &codes {
            assert!(is_generated_format(code), "{code}");
            assert_eq!(normalize(code), *code, "already normalized");
        }
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 16);
        assert_ne!(generate(&OsRandom, 16), codes);
        assert_eq!(generate(&OsRandom, 50).len(), 50);
        assert!(generate(&OsRandom, 0).is_empty());
    }

    #[test]
    fn display_groups_in_fives() {
        assert_eq!(display("94X5NST2VM"), "94X5N-ST2VM");
        assert_eq!(normalize(&display("94X5NST2VM")), "94X5NST2VM");
        assert_eq!(display("SHORT"), "SHORT");
    }

    #[test]
    fn normalization_per_spec() {
        assert_eq!(normalize("94x5n-st2vm"), "94X5NST2VM");
        assert_eq!(normalize(" 94X5N ST2VM\t"), "94X5NST2VM");
        assert_eq!(normalize("oO iI lL"), "001111");
        assert!(is_generated_format(&normalize("abcde-fghjk")));
        assert!(!is_generated_format("ABCDEFGHJ"));
        assert!(!is_generated_format("ABCDEFGHJU"), "U is not Crockford");
    }

    #[test]
    fn hash_is_of_the_normalized_code() {
        assert_eq!(hash("94x5n-st2vm"), hash("94X5NST2VM"));
        assert_eq!(hash("94X5NST2VM"), token::sha256_hex("94X5NST2VM"));
        assert_ne!(hash("94X5NST2VM"), hash("94X5NST2VN"));
        assert_eq!(hash("1O"), hash("io"));
    }

    #[test]
    fn verify_accepts_typed_variants_only() {
        let h = hash("7KQ2M9XZT4");
        assert!(verify("7kq2-m9xz-t4", &h));
        assert!(verify("7KQ2 M9XZ T4", &h));
        assert!(!verify("7KQ2M9XZT5", &h));
        assert!(!verify("", &h));
        assert!(!verify("7KQ2M9XZT4", "not a hash"));
    }

    #[test]
    fn records_store_hashes_only() {
        let codes = generate(&OsRandom, 3);
        let stored = records(&OsRandom, "U1", &codes, now());
        assert_eq!(stored.len(), 3);
        for (record, code) in stored.iter().zip(&codes) {
            assert_eq!(record.user_id, "U1");
            assert_eq!(record.code_hash, hash(code));
            assert_ne!(record.code_hash, *code);
            assert!(!record.code_hash.contains(code.as_str()));
            assert_eq!(record.consumed_at, None);
            assert_eq!(record.id.len(), 26);
        }
    }

    #[test]
    fn find_unused_skips_consumed_codes() {
        let codes = generate(&OsRandom, 4);
        let mut stored = records(&OsRandom, "U1", &codes, now());
        let found = find_unused(&stored, &codes[2].to_lowercase()).unwrap();
        assert_eq!(found.id, stored[2].id);
        stored[2].consumed_at = Some(now());
        assert!(find_unused(&stored, &codes[2]).is_none(), "each code once");
        assert_eq!(find_unused(&stored, &codes[3]).unwrap().id, stored[3].id);
        assert!(find_unused(&stored, "0000000000").is_none());
        assert!(find_unused(&[], &codes[0]).is_none());
    }

    #[test]
    fn imported_codes() {
        assert_eq!(check_imported("94x5n-st2vm"), Ok("94X5NST2VM".into()));
        assert_eq!(check_imported("abc123"), Ok("ABC123".into()));
        assert_eq!(check_imported(" - "), Err(ImportedCodeError::Empty));
        assert_eq!(
            check_imported("abc_123"),
            Err(ImportedCodeError::BadCharacter)
        );
        assert_eq!(check_imported("äbc"), Err(ImportedCodeError::BadCharacter));
        assert_eq!(
            check_imported(&"A".repeat(65)),
            Err(ImportedCodeError::TooLong)
        );
        assert!(check_imported(&"A".repeat(64)).is_ok());
    }
}
