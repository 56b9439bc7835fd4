//! TOTP second factor (authentication-flow-api.md 8.8, 9.5): secrets, the `otpauth://` URI
//! and code verification. RFC 6238 with SHA-1, 6 digits, 30 s steps, ±1 step of drift.
//!
//! Verification returns the matched time step. The caller stores the last accepted step
//! in the authenticator (see [`DATA_LAST_USED_STEP`]) and passes it back, so a code is
//! accepted at most once (spec 9.5: no replay within the validity window).

use std::fmt;

use chrono::{DateTime, Utc};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use totp_rs::{Algorithm, TOTP};

use crate::clock::SecureRandom;

/// Bytes of a generated secret: 160 bits, RFC 4226's recommendation (32 base32 characters).
pub const SECRET_BYTES: usize = 20;
/// Shortest secret accepted from an import: 80 bits, what older authenticator deployments
/// (16 base32 characters) used. RFC 4226 asks for 128, so generated secrets are longer.
pub const MIN_IMPORTED_SECRET_BYTES: usize = 10;
/// Longest accepted secret (HMAC-SHA1 hashes longer keys anyway; this only bounds input).
pub const MAX_SECRET_BYTES: usize = 64;
pub const DIGITS: usize = 6;
pub const PERIOD_SECONDS: u64 = 30;
/// Steps accepted before and after the current one.
pub const SKEW_STEPS: u8 = 1;

/// Member of a TOTP authenticator's `data` holding the secret sealed with
/// [`crate::credentials::seal::Sealer`] under [`seal_context`].
pub const DATA_SEALED_SECRET: &str = "sealed_secret";
/// Member of a TOTP authenticator's `data` holding the last accepted time step (a number).
pub const DATA_LAST_USED_STEP: &str = "last_used_step";

/// The associated data a TOTP secret of `user_id` is sealed with: a sealed secret copied
/// to another user's authenticator does not open.
pub fn seal_context(user_id: &str) -> String {
    format!("totp:{user_id}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpSecretError {
    #[error("not base32 (RFC 4648: A-Z and 2-7)")]
    NotBase32,
    #[error("must be {min} to {max} bytes (got {got})")]
    Length { min: usize, max: usize, got: usize },
}

/// A TOTP shared secret (raw bytes). `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl TotpSecret {
    /// 20 bytes from the CSPRNG.
    pub fn generate(rng: &dyn SecureRandom) -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rng.fill(&mut bytes);
        TotpSecret(bytes)
    }

    /// Raw bytes, e.g. as decrypted from storage.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, TotpSecretError> {
        let got = bytes.len();
        if !(MIN_IMPORTED_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&got) {
            return Err(TotpSecretError::Length {
                min: MIN_IMPORTED_SECRET_BYTES,
                max: MAX_SECRET_BYTES,
                got,
            });
        }
        Ok(TotpSecret(bytes))
    }

    /// RFC 4648 base32 as authenticator apps and exports show it: case-insensitive,
    /// spaces and `-` ignored, `=` padding optional.
    pub fn from_base32(text: &str) -> Result<Self, TotpSecretError> {
        let cleaned: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let unpadded = cleaned.trim_end_matches('=');
        let valid = !unpadded.is_empty()
            && unpadded
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
        if !valid {
            return Err(TotpSecretError::NotBase32);
        }
        let bytes = totp_rs::Secret::Encoded(unpadded.to_string())
            .to_bytes()
            .map_err(|_| TotpSecretError::NotBase32)?;
        Self::from_bytes(bytes)
    }

    /// Uppercase RFC 4648 base32 without padding (32 characters for a generated secret):
    /// the `secret` of `create_totp_data`.
    pub fn to_base32(&self) -> String {
        match totp_rs::Secret::Raw(self.0.clone()).to_encoded() {
            totp_rs::Secret::Encoded(s) => s,
            totp_rs::Secret::Raw(_) => unreachable!("to_encoded returns Encoded"),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn totp(&self) -> TOTP {
        // `new_unchecked`: lengths are checked by our constructors (imports may be 80-bit).
        TOTP::new_unchecked(
            Algorithm::SHA1,
            DIGITS,
            SKEW_STEPS,
            PERIOD_SECONDS,
            self.0.clone(),
        )
    }
}

/// `otpauth://totp/<account>?algorithm=SHA1&digits=6&issuer=<issuer>&period=30&secret=<base32>`
/// with label and values percent-encoded (spec 8.8: the label is the login ID identified in
/// the flow, empty if none; the issuer is `server.public_origin`).
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    format!(
        "otpauth://totp/{}?algorithm=SHA1&digits={DIGITS}&issuer={}&period={PERIOD_SECONDS}&secret={}",
        percent_encode(account),
        percent_encode(issuer),
        secret.to_base32()
    )
}

/// Everything but RFC 3986 unreserved characters is escaped (`@` → `%40`, ` ` → `%20`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The RFC 6238 time step of `now` (steps before 1970 are clamped to 0).
pub fn time_step(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp()).unwrap_or(0) / PERIOD_SECONDS
}

/// The code of a time step; for tests and for clients we simulate.
pub fn code_at_step(secret: &TotpSecret, step: u64) -> String {
    secret.totp().generate(step.saturating_mul(PERIOD_SECONDS))
}

/// The code valid at `now`.
pub fn code_at(secret: &TotpSecret, now: DateTime<Utc>) -> String {
    code_at_step(secret, time_step(now))
}

/// Checks `code` against the steps `now − 1 ..= now + 1` and returns the step it matched.
/// Steps `<= last_used_step` never match, so an accepted code cannot be replayed (and
/// neither can an older one). Input with spaces (`123 456`) is accepted; anything but six
/// digits is refused before any comparison (the format is not secret). Each candidate is
/// computed and compared in constant time, with no early exit.
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    now: DateTime<Utc>,
    last_used_step: Option<u64>,
) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = time_step(now);
    let first = current.saturating_sub(u64::from(SKEW_STEPS));
    let last = current.saturating_add(u64::from(SKEW_STEPS));
    let totp = secret.totp();
    let mut matched = Choice::from(0);
    let mut step_found = 0u64;
    for step in first..=last {
        let candidate = totp.generate(step.saturating_mul(PERIOD_SECONDS));
        let fresh = Choice::from(u8::from(last_used_step.is_none_or(|used| step > used)));
        let hit = candidate.as_bytes().ct_eq(code.as_bytes()) & fresh & !matched;
        step_found = u64::conditional_select(&step_found, &step, hit);
        matched |= hit;
    }
    bool::from(matched).then_some(step_found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::OsRandom;

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).unwrap()
    }

    /// RFC 6238 appendix B's SHA-1 key: ASCII "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap()
    }

    #[test]
    fn rfc6238_sha1_vectors() {
        // The appendix gives 8 digits; 6-digit codes are their last six.
        let s = rfc_secret();
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(code_at(&s, at(t)), code, "t = {t}");
            assert_eq!(verify(&s, code, at(t), None), Some(t as u64 / 30));
        }
    }

    #[test]
    fn generated_secret_is_20_random_bytes_in_32_base32_chars() {
        let a = TotpSecret::generate(&OsRandom);
        let b = TotpSecret::generate(&OsRandom);
        assert_eq!(a.as_bytes().len(), 20);
        assert_ne!(a, b);
        let text = a.to_base32();
        assert_eq!(text.len(), 32);
        assert!(
            text.bytes()
                .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
        );
        assert_eq!(TotpSecret::from_base32(&text).unwrap(), a);
    }

    #[test]
    fn base32_input_forms() {
        let s = TotpSecret::from_base32("JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(s.as_bytes(), b"Hello!\xde\xad\xbe\xef");
        for form in [
            "jbswy3dpehpk3pxp",
            "JBSW Y3DP EHPK 3PXP",
            "JBSW-Y3DP-EHPK-3PXP",
        ] {
            assert_eq!(TotpSecret::from_base32(form).unwrap(), s, "{form}");
        }
        let padded = TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====").unwrap();
        assert_eq!(padded, rfc_secret());
    }

    #[test]
    fn bad_secrets_are_refused() {
        for bad in [
            "",
            "====",
            "JBSWY3DPEHPK3PX1",
            "JBSWY3DP!HPK3PXP",
            "ÄBCDEFGH",
        ] {
            assert_eq!(
                TotpSecret::from_base32(bad),
                Err(TotpSecretError::NotBase32),
                "{bad:?}"
            );
        }
        // 8 characters = 5 bytes: too short.
        assert_eq!(
            TotpSecret::from_base32("JBSWY3DP"),
            Err(TotpSecretError::Length {
                min: 10,
                max: 64,
                got: 5
            })
        );
        assert!(TotpSecret::from_bytes(vec![0; 65]).is_err());
        assert!(TotpSecret::from_bytes(vec![0; 10]).is_ok());
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = rfc_secret();
        assert_eq!(format!("{s:?}"), "***");
    }

    #[test]
    fn otpauth_uri_matches_the_spec_example() {
        let s = TotpSecret::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(
            otpauth_uri(&s, "http://127.0.0.1:3000", "john@example.com"),
            "otpauth://totp/john%40example.com?algorithm=SHA1&digits=6&issuer=http%3A%2F%2F127.0.0.1%3A3000&period=30&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
        );
        assert!(otpauth_uri(&s, "x", "").starts_with("otpauth://totp/?algorithm=SHA1"));
        assert!(otpauth_uri(&s, "My App", "a b:c").contains("totp/a%20b%3Ac?"));
        assert!(otpauth_uri(&s, "My App", "é").contains("totp/%C3%A9?"));
    }

    #[test]
    fn one_step_of_drift_each_way() {
        let s = TotpSecret::generate(&OsRandom);
        let now = at(1_700_000_015);
        let step = time_step(now);
        assert_eq!(verify(&s, &code_at_step(&s, step), now, None), Some(step));
        assert_eq!(
            verify(&s, &code_at_step(&s, step - 1), now, None),
            Some(step - 1)
        );
        assert_eq!(
            verify(&s, &code_at_step(&s, step + 1), now, None),
            Some(step + 1)
        );
        // Codes of steps two away differ from the window's (with overwhelming likelihood:
        // skip the rare collision instead of flaking).
        let window: Vec<String> = (step - 1..=step + 1).map(|t| code_at_step(&s, t)).collect();
        for far in [step - 2, step + 2] {
            let code = code_at_step(&s, far);
            if !window.contains(&code) {
                assert_eq!(verify(&s, &code, now, None), None);
            }
        }
    }

    #[test]
    fn used_steps_are_refused() {
        let s = TotpSecret::generate(&OsRandom);
        let now = at(1_700_000_000);
        let step = time_step(now);
        let code = code_at(&s, now);
        let used = verify(&s, &code, now, None).unwrap();
        assert_eq!(verify(&s, &code, now, Some(used)), None, "replay");
        // An older code still inside the window is refused once a newer step was used.
        let older = code_at_step(&s, step - 1);
        if older != code {
            assert_eq!(verify(&s, &older, now, Some(used)), None);
        }
        // The next step's code is fresh.
        let next = code_at_step(&s, step + 1);
        assert_eq!(verify(&s, &next, now, Some(used)), Some(step + 1));
    }

    #[test]
    fn malformed_codes_are_refused() {
        let s = rfc_secret();
        let now = at(59);
        assert_eq!(verify(&s, "287 082", now, None), Some(1));
        assert_eq!(verify(&s, " 287082\n", now, None), Some(1));
        for bad in ["", "28708", "2870820", "28708a", "２８７０８２", "94287082"] {
            assert_eq!(verify(&s, bad, now, None), None, "{bad:?}");
        }
    }

    #[test]
    fn epoch_edges() {
        let s = rfc_secret();
        assert_eq!(time_step(at(-100)), 0);
        // At step 0 the window is 0..=1.
        assert_eq!(verify(&s, &code_at_step(&s, 0), at(0), None), Some(0));
        assert_eq!(verify(&s, &code_at_step(&s, 1), at(0), None), Some(1));
    }

    #[test]
    fn seal_context_names_the_user() {
        assert_eq!(seal_context("U1"), "totp:U1");
    }
}
