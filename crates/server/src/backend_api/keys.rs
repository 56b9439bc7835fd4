//! Organization API keys (backend-auth-api.md 1): `afk_<key id>_<secret>`, stored as the
//! key id and a SHA-256 of the whole key, compared in constant time.

use chrono::{DateTime, Utc};

use authflow_core::clock::SecureRandom;
use authflow_core::credentials::token::{
    CROCKFORD_ALPHABET, constant_time_eq, random_crockford, sha256_hex,
};
use authflow_core::model::{ApiKey, Organization};
use authflow_core::store::{Database, StoreResult};

pub const API_KEY_PREFIX: &str = "afk_";
/// Lowercase Crockford characters of the public key id.
pub const KEY_ID_LEN: usize = 16;
/// Crockford characters of the secret: 32 × 5 = 160 bits.
pub const SECRET_LEN: usize = 32;

/// A freshly generated key: the record to store and the key to show once.
pub struct NewApiKey {
    pub record: ApiKey,
    pub key: String,
}

/// A new key of `org_id`, valid until rotated or revoked.
pub fn generate(org_id: &str, now: DateTime<Utc>, rng: &dyn SecureRandom) -> NewApiKey {
    let key_id = random_crockford(rng, KEY_ID_LEN).to_ascii_lowercase();
    let secret = random_crockford(rng, SECRET_LEN);
    let key = format!("{API_KEY_PREFIX}{key_id}_{secret}");
    let record = ApiKey {
        id: key_id,
        org_id: org_id.to_string(),
        key_hash: sha256_hex(&key),
        created_at: now,
        expires_at: None,
        revoked_at: None,
    };
    NewApiKey { record, key }
}

/// The key id of a well-formed key; `None` for anything else.
pub fn key_id_of(key: &str) -> Option<&str> {
    let (key_id, secret) = key.strip_prefix(API_KEY_PREFIX)?.split_once('_')?;
    let lowercase_crockford =
        |b: u8| !b.is_ascii_uppercase() && CROCKFORD_ALPHABET.contains(&b.to_ascii_uppercase());
    let key_id_ok = key_id.len() == KEY_ID_LEN && key_id.bytes().all(lowercase_crockford);
    let secret_ok =
        secret.len() == SECRET_LEN && secret.bytes().all(|b| CROCKFORD_ALPHABET.contains(&b));
    (key_id_ok && secret_ok).then_some(key_id)
}

/// Whether a stored key accepts requests at `now`: not revoked, not past its grace period.
pub fn is_active(record: &ApiKey, now: DateTime<Utc>) -> bool {
    record.revoked_at.is_none() && record.expires_at.is_none_or(|until| now < until)
}

/// The organization and key record a presented key authenticates, or `None`.
pub async fn authenticate(
    db: &dyn Database,
    key: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<(Organization, ApiKey)>> {
    let Some(key_id) = key_id_of(key) else {
        return Ok(None);
    };
    let Some(record) = db.get_api_key(key_id).await? else {
        return Ok(None);
    };
    let hash_matches = constant_time_eq(sha256_hex(key).as_bytes(), record.key_hash.as_bytes());
    if !hash_matches || !is_active(&record, now) {
        return Ok(None);
    }
    let org = db.get_organization(&record.org_id).await?;
    Ok(org.map(|org| (org, record)))
}

/// A random (version 4) UUID in its hyphenated lowercase form: organization and user ids.
pub fn uuid_v4(rng: &dyn SecureRandom) -> String {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `8-4-4-4-12` hex digits (any version; case-insensitive).
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == lengths.len()
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use authflow_core::clock::OsRandom;

    #[test]
    fn generated_key_parses_back_to_its_id() {
        let new = generate("org", Utc::now(), &OsRandom);
        assert!(new.key.starts_with("afk_"));
        assert_eq!(new.key.len(), 4 + KEY_ID_LEN + 1 + SECRET_LEN);
        assert_eq!(key_id_of(&new.key), Some(new.record.id.as_str()));
        assert_eq!(new.record.key_hash, sha256_hex(&new.key));
        assert!(!new.record.key_hash.contains(&new.key));
    }

    #[test]
    fn malformed_keys_have_no_id() {
        let good = generate("org", Utc::now(), &OsRandom).key;
        let upper_id = format!("afk_{}", good[4..].to_ascii_uppercase());
        for bad in [
            "",
            "afk_",
            "afk_abc_DEF",
            &good[1..],
            &format!("{good}X"),
            &upper_id,
        ] {
            assert_eq!(key_id_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn uuid_v4_has_version_and_variant() {
        let id = uuid_v4(&OsRandom);
        assert!(is_uuid(&id), "{id}");
        assert_eq!(&id[14..15], "4");
        assert!("89ab".contains(&id[19..20]));
        assert!(!is_uuid("default"));
        assert!(!is_uuid("0000000-0000-0000-0000-0000000000000"));
    }

    #[test]
    fn rotated_key_works_until_it_expires() {
        let now = Utc::now();
        let mut key = generate("org", now, &OsRandom).record;
        assert!(is_active(&key, now));
        key.expires_at = Some(now + chrono::Duration::seconds(10));
        assert!(is_active(&key, now));
        assert!(!is_active(&key, now + chrono::Duration::seconds(10)));
        key.expires_at = None;
        key.revoked_at = Some(now);
        assert!(!is_active(&key, now));
    }
}
