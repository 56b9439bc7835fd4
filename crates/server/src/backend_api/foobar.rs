//! The anti-abuse token of `/auth/fooBar` (seed 003's `foobar`): single use, short-lived,
//! bound to one organization and one normalised email. Kept in the state store under the
//! SHA-256 of the token, so the token itself is never a store key.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use authflow_core::clock::SecureRandom;
use authflow_core::credentials::token::{random_crockford, sha256_hex};
use authflow_core::store::{StateStore, StoreResult};

use super::error::AuthApiError;

pub const TOKEN_PREFIX: &str = "afb_";
const TOKEN_BODY_LEN: usize = 32;
const STORE_PREFIX: &str = "auth_api:foobar:";

/// What a token was issued for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Binding {
    org_id: String,
    /// The email's uniqueness key in that organization.
    email_key: String,
}

fn store_key(token: &str) -> String {
    format!("{STORE_PREFIX}{}", sha256_hex(token))
}

/// A new token for `email_key` in `org_id`, and when it expires.
pub async fn issue(
    store: &dyn StateStore,
    org_id: &str,
    email_key: &str,
    lifetime: Duration,
    rng: &dyn SecureRandom,
) -> StoreResult<(String, DateTime<Utc>)> {
    let token = format!("{TOKEN_PREFIX}{}", random_crockford(rng, TOKEN_BODY_LEN));
    let binding = Binding {
        org_id: org_id.to_string(),
        email_key: email_key.to_string(),
    };
    let value = serde_json::to_string(&binding).expect("a binding serializes");
    store.put(&store_key(&token), &value, lifetime).await?;
    let expires_at = Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or_default();
    Ok((token, expires_at))
}

/// Use up `token`: it must exist, be unexpired and unused, and be bound to `org_id` and
/// `email_key`. A token presented for the wrong organization or email is used up too.
pub async fn redeem(
    store: &dyn StateStore,
    token: &str,
    org_id: &str,
    email_key: &str,
) -> Result<(), AuthApiError> {
    let taken = store.take(&store_key(token)).await?;
    let binding = taken.and_then(|v| serde_json::from_str::<Binding>(&v).ok());
    match binding {
        Some(b) if b.org_id == org_id && b.email_key == email_key => Ok(()),
        _ => Err(AuthApiError::InvalidAntiAbuseToken),
    }
}
