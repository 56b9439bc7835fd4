//! Secrets at rest (TOTP secrets, ...): AES-256-GCM under keys from `secrets`
//! (flow-config.md 4.5).
//!
//! Sealed text: `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`:
//! - `v1`: the format version, so a later format can be told apart;
//! - key id: 8 hex digits derived from the key (not the key): picks the key to open with,
//!   so `previous_encryption_keys` cost nothing until needed, and tells when a value was
//!   sealed with an old key and should be sealed again on its next write;
//! - nonce: 12 random bytes from the CSPRNG per seal.
//!
//! The associated data binds the version, the key id and a caller-chosen *context* (for
//! TOTP: [`crate::credentials::totp::seal_context`] of the user), so a sealed value copied
//! to another record or with an edited header does not open.
//!
//! The configured key is not used as is: the AES key is HMAC-SHA256(key, purpose), so the
//! same configured bytes could serve another purpose later without key reuse.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::clock::SecureRandom;
use crate::config::SecretsConfig;
use crate::config::decode_encryption_key;
use crate::store::{Database, StoreError};

pub const VERSION: &str = "v1";
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
const KEY_ID_HEX: usize = 8;
const CIPHER_PURPOSE: &[u8] = b"authflow seal v1: AES-256-GCM key";
const KEY_ID_PURPOSE: &[u8] = b"authflow seal v1: key id";

/// Name of the server secret (`Database::get_or_insert_server_secret`) that holds the key
/// generated when `secrets.encryption_key` is not set: 64 hex digits.
pub const GENERATED_KEY_SECRET_NAME: &str = "secrets.encryption_key";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value has an unknown format version")]
    UnknownVersion,
    /// Sealed with a key that is neither the current one nor a previous one.
    #[error("sealed value was sealed with a key that is not configured")]
    UnknownKey,
    /// Wrong context, edited bytes, or a key id collision with another key.
    #[error("sealed value does not authenticate")]
    Tampered,
}

#[derive(Debug, thiserror::Error)]
pub enum SealLoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server secret {GENERATED_KEY_SECRET_NAME:?} is not a 32-byte key")]
    BadStoredKey,
}

/// Opened plaintext; `stale` when it was sealed with a previous key (seal it again with
/// [`Sealer::seal`] when the record is next written).
#[derive(PartialEq, Eq)]
pub struct Opened {
    pub plaintext: Vec<u8>,
    pub stale: bool,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("plaintext", &"***")
            .field("stale", &self.stale)
            .finish()
    }
}

struct SealKey {
    id: String,
    cipher: Aes256Gcm,
}

impl SealKey {
    fn derive(key: &[u8; 32]) -> Self {
        let aes_key = hmac_sha256(key, CIPHER_PURPOSE);
        let id = hex::encode(&hmac_sha256(key, KEY_ID_PURPOSE)[..KEY_ID_HEX / 2]);
        SealKey {
            id,
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&aes_key)),
        }
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn associated_data(key_id: &str, context: &str) -> Vec<u8> {
    format!("authflow-seal:{VERSION}:{key_id}:{context}").into_bytes()
}

/// The current key (seals and opens) and previous keys (open only). `Debug` shows key ids.
pub struct Sealer {
    current: SealKey,
    previous: Vec<SealKey>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A [`Sealer`] built from the config and the database, and whether it seals with the
/// generated key (`serve` warns about that at every start, spec 4.5).
#[derive(Debug)]
pub struct LoadedSealer {
    pub sealer: Sealer,
    pub uses_generated_key: bool,
}

impl Sealer {
    /// Keys as 32 raw bytes; `previous` in the order they are tried (duplicates of the
    /// current key are dropped).
    pub fn new(current: &[u8; 32], previous: &[[u8; 32]]) -> Self {
        let current = SealKey::derive(current);
        let mut kept: Vec<SealKey> = Vec::new();
        for key in previous {
            let key = SealKey::derive(key);
            if key.id != current.id && kept.iter().all(|k| k.id != key.id) {
                kept.push(key);
            }
        }
        Sealer {
            current,
            previous: kept,
        }
    }

    /// `secrets.encryption_key` seals when set; the generated key (made on first use and
    /// kept in the database as [`GENERATED_KEY_SECRET_NAME`]) seals otherwise. Either way
    /// `previous_encryption_keys` and the generated key open old values.
    pub async fn load(
        secrets: &SecretsConfig,
        db: &dyn Database,
        rng: &dyn SecureRandom,
    ) -> Result<LoadedSealer, SealLoadError> {
        let mut candidate = [0u8; 32];
        rng.fill(&mut candidate);
        let stored = db
            .get_or_insert_server_secret(GENERATED_KEY_SECRET_NAME, &hex::encode(candidate))
            .await?;
        let generated = decode_encryption_key(&stored).map_err(|_| SealLoadError::BadStoredKey)?;
        Ok(Self::from_config(secrets, &generated))
    }

    /// [`Sealer::load`] once the generated key is known.
    pub fn from_config(secrets: &SecretsConfig, generated: &[u8; 32]) -> LoadedSealer {
        let mut previous = secrets.previous_key_bytes();
        match secrets.encryption_key_bytes() {
            Some(current) => {
                previous.push(*generated);
                LoadedSealer {
                    sealer: Sealer::new(&current, &previous),
                    uses_generated_key: false,
                }
            }
            None => LoadedSealer {
                sealer: Sealer::new(generated, &previous),
                uses_generated_key: true,
            },
        }
    }

    /// Id of the key new values are sealed with.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` for `context` with the current key and a fresh random nonce.
    pub fn seal(&self, rng: &dyn SecureRandom, context: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rng.fill(&mut nonce);
        let aad = associated_data(&self.current.id, context);
        let ciphertext = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut body = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&ciphertext);
        format!(
            "{VERSION}.{}.{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(body)
        )
    }

    /// Opens a value sealed for `context` with the current or a previous key.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Opened, SealError> {
        let mut parts = sealed.split('.');
        let (Some(version), Some(key_id), Some(body), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Malformed);
        };
        if version != VERSION {
            return Err(if version.starts_with('v') {
                SealError::UnknownVersion
            } else {
                SealError::Malformed
            });
        }
        let well_formed_id = key_id.len() == KEY_ID_HEX
            && key_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed_id {
            return Err(SealError::Malformed);
        }
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Malformed)?;
        if body.len() < NONCE_BYTES + TAG_BYTES {
            return Err(SealError::Malformed);
        }
        let (key, stale) = if key_id == self.current.id {
            (&self.current, false)
        } else {
            let key = self
                .previous
                .iter()
                .find(|k| k.id == key_id)
                .ok_or(SealError::UnknownKey)?;
            (key, true)
        };
        let (nonce, ciphertext) = body.split_at(NONCE_BYTES);
        let aad = associated_data(key_id, context);
        let plaintext = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Tampered)?;
        Ok(Opened { plaintext, stale })
    }

    /// Whether `sealed` names a key other than the current one (re-seal on next write).
    pub fn is_stale(&self, sealed: &str) -> bool {
        sealed
            .split('.')
            .nth(1)
            .is_none_or(|id| id != self.current.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::OsRandom;
    use crate::config::Secret;

    const K1: [u8; 32] = [1; 32];
    const K2: [u8; 32] = [2; 32];
    const K3: [u8; 32] = [3; 32];

    fn body_bytes(sealed: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD
            .decode(sealed.split('.').nth(2).unwrap())
            .unwrap()
    }

    fn with_body(sealed: &str, body: &[u8]) -> String {
        let mut parts: Vec<&str> = sealed.split('.').collect();
        let encoded = URL_SAFE_NO_PAD.encode(body);
        parts[2] = &encoded;
        parts.join(".")
    }

    #[test]
    fn roundtrip_and_format() {
        let s = Sealer::new(&K1, &[]);
        let sealed = s.seal(&OsRandom, "totp:U1", b"twenty secret bytes!");
        let parts: Vec<&str> = sealed.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "v1");
        assert_eq!(parts[1], s.current_key_id());
        assert_eq!(parts[1].len(), 8);
        assert_eq!(body_bytes(&sealed).len(), 12 + 20 + 16);
        assert!(!sealed.contains("twenty"));
        let opened = s.open("totp:U1", &sealed).unwrap();
        assert_eq!(opened.plaintext, b"twenty secret bytes!");
        assert!(!opened.stale);
        assert!(!s.is_stale(&sealed));
    }

    #[test]
    fn nonces_differ() {
        let s = Sealer::new(&K1, &[]);
        let a = s.seal(&OsRandom, "c", b"same");
        let b = s.seal(&OsRandom, "c", b"same");
        assert_ne!(a, b);
        assert_ne!(body_bytes(&a)[..12], body_bytes(&b)[..12]);
    }

    #[test]
    fn key_id_depends_on_the_key_only() {
        assert_eq!(
            Sealer::new(&K1, &[]).current_key_id(),
            Sealer::new(&K1, &[K2]).current_key_id()
        );
        assert_ne!(
            Sealer::new(&K1, &[]).current_key_id(),
            Sealer::new(&K2, &[]).current_key_id()
        );
        // The id is not a prefix of the key's bytes.
        assert_ne!(Sealer::new(&K1, &[]).current_key_id(), "01010101");
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let s = Sealer::new(&K1, &[]);
        let sealed = s.seal(&OsRandom, "ctx", b"secret");
        let body = body_bytes(&sealed);
        for i in 0..body.len() {
            for bit in 0..8 {
                let mut tampered = body.clone();
                tampered[i] ^= 1 << bit;
                assert_eq!(
                    s.open("ctx", &with_body(&sealed, &tampered)),
                    Err(SealError::Tampered),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn truncation_and_extension_are_detected() {
        let s = Sealer::new(&K1, &[]);
        let sealed = s.seal(&OsRandom, "ctx", b"secret");
        let body = body_bytes(&sealed);
        assert_eq!(
            s.open("ctx", &with_body(&sealed, &body[..body.len() - 1])),
            Err(SealError::Tampered)
        );
        let mut longer = body.clone();
        longer.push(0);
        assert_eq!(
            s.open("ctx", &with_body(&sealed, &longer)),
            Err(SealError::Tampered)
        );
        assert_eq!(
            s.open("ctx", &with_body(&sealed, &body[..27])),
            Err(SealError::Malformed)
        );
    }

    #[test]
    fn wrong_context_does_not_open() {
        let s = Sealer::new(&K1, &[]);
        let sealed = s.seal(&OsRandom, "totp:U1", b"secret");
        assert_eq!(s.open("totp:U2", &sealed), Err(SealError::Tampered));
        assert_eq!(s.open("", &sealed), Err(SealError::Tampered));
    }

    #[test]
    fn header_edits_are_detected() {
        let s = Sealer::new(&K1, &[]);
        let sealed = s.seal(&OsRandom, "ctx", b"secret");
        let body = sealed.split('.').nth(2).unwrap();
        assert_eq!(
            s.open("ctx", &format!("v2.{}.{body}", s.current_key_id())),
            Err(SealError::UnknownVersion)
        );
        assert_eq!(
            s.open("ctx", &format!("v1.deadbeef.{body}")),
            Err(SealError::UnknownKey)
        );
        for malformed in [
            "",
            "v1",
            "v1..",
            "x1.00000000.AAAA",
            "v1.0000000.AAAA",
            "v1.DEADBEEF.AAAA",
            &format!("{sealed}.x"),
            &format!("v1.{}.{body}!", s.current_key_id()),
        ] {
            assert_eq!(
                s.open("ctx", malformed),
                Err(SealError::Malformed),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn previous_keys_open_and_mark_stale() {
        let old = Sealer::new(&K2, &[]);
        let sealed = old.seal(&OsRandom, "ctx", b"secret");
        let rotated = Sealer::new(&K1, &[K3, K2]);
        let opened = rotated.open("ctx", &sealed).unwrap();
        assert_eq!(opened.plaintext, b"secret");
        assert!(opened.stale);
        assert!(rotated.is_stale(&sealed));
        let resealed = rotated.seal(&OsRandom, "ctx", &opened.plaintext);
        assert!(!rotated.open("ctx", &resealed).unwrap().stale);
        // Without the old key it no longer opens.
        assert_eq!(
            Sealer::new(&K1, &[K3]).open("ctx", &sealed),
            Err(SealError::UnknownKey)
        );
        // Values sealed with the new key do not open with the old one.
        assert_eq!(old.open("ctx", &resealed), Err(SealError::UnknownKey));
    }

    #[test]
    fn config_key_seals_and_the_generated_one_opens() {
        let generated = K3;
        let by_generated = Sealer::new(&generated, &[]).seal(&OsRandom, "c", b"old");
        let by_k2 = Sealer::new(&K2, &[]).seal(&OsRandom, "c", b"older");

        let unset = SecretsConfig::default();
        let loaded = Sealer::from_config(&unset, &generated);
        assert!(loaded.uses_generated_key);
        assert_eq!(
            loaded.sealer.current_key_id(),
            Sealer::new(&generated, &[]).current_key_id()
        );

        let configured = SecretsConfig {
            encryption_key: Some(Secret::new(hex::encode(K1))),
            previous_encryption_keys: vec![Secret::new(URL_SAFE_NO_PAD.encode(K2))],
        };
        let loaded = Sealer::from_config(&configured, &generated);
        assert!(!loaded.uses_generated_key);
        let s = loaded.sealer;
        assert_eq!(s.current_key_id(), Sealer::new(&K1, &[]).current_key_id());
        assert_eq!(s.open("c", &by_generated).unwrap().plaintext, b"old");
        assert_eq!(s.open("c", &by_k2).unwrap().plaintext, b"older");
        assert!(s.open("c", &by_k2).unwrap().stale);
    }

    #[test]
    fn duplicate_previous_keys_are_dropped() {
        let s = Sealer::new(&K1, &[K1, K2, K2]);
        assert_eq!(s.previous.len(), 1);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let s = Sealer::new(&K1, &[K2]);
        let text = format!("{s:?}");
        assert!(text.contains(s.current_key_id()), "{text}");
        assert!(!text.contains("0101"), "{text}");
        let opened = s.open("c", &s.seal(&OsRandom, "c", b"hunter2")).unwrap();
        assert!(!format!("{opened:?}").contains("104"));
    }

    #[test]
    fn sealing_is_bound_to_the_derived_key_not_raw_aes() {
        // A value sealed by AES-GCM keyed directly with the configured bytes must not
        // open: the derivation is part of the format.
        let s = Sealer::new(&K1, &[]);
        let raw = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&K1));
        let nonce = [7u8; 12];
        let aad = associated_data(s.current_key_id(), "ctx");
        let ct = raw
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: b"secret",
                    aad: &aad,
                },
            )
            .unwrap();
        let mut body = nonce.to_vec();
        body.extend_from_slice(&ct);
        let forged = format!("v1.{}.{}", s.current_key_id(), URL_SAFE_NO_PAD.encode(body));
        assert_eq!(s.open("ctx", &forged), Err(SealError::Tampered));
    }
}
