//! Authorization codes, grants and refresh tokens, kept in the state store.
//!
//! Keys (every secret is stored as its SHA-256, never as such):
//! - `oauth_code:<sha256(code)>`: [`AuthorizationCode`], single use (`take`), TTL = code life.
//! - `oauth_code_spent:<sha256(code)>`: the grant id a redeemed code produced, so that a
//!   replayed code revokes it (RFC 6749 4.1.2).
//! - `oauth_grant:<grant id>`: [`Grant`] (the refresh-token family), TTL = refresh token
//!   lifetime (access token lifetime without refresh token). Access tokens carry the grant
//!   id; deleting the grant revokes its access and refresh tokens at once.
//! - `oauth_refresh:<grant id>`: SHA-256 of the one live refresh token secret of the grant,
//!   TTL = idle timeout. A refresh token is `<grant id>.<secret>`; presenting a secret that
//!   is not the live one (a rotated token) revokes the whole grant.
//! - `oauth_revoked_jti:<jti>`: an access token revoked on its own, TTL = its remaining life.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use authflow_core::store::StateStore;

use super::error::OAuthError;
use super::params::{random_token, sha256_hex, unix_now};

/// Who signed in and what the client may do: shared by codes, grants and tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    pub client_id: String,
    pub user_id: String,
    pub scope: Vec<String>,
    /// Unix seconds.
    pub auth_time: i64,
    pub amr: Vec<String>,
    /// IdP session id.
    pub sid: Option<String>,
}

impl Subject {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationCode {
    pub subject: Subject,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub subject: Subject,
    /// Unix seconds; the absolute end of the refresh token family.
    pub expires_at: i64,
}

fn code_key(code: &str) -> String {
    format!("oauth_code:{}", sha256_hex(code))
}

fn spent_key(code: &str) -> String {
    format!("oauth_code_spent:{}", sha256_hex(code))
}

fn grant_key(id: &str) -> String {
    format!("oauth_grant:{id}")
}

fn refresh_key(id: &str) -> String {
    format!("oauth_refresh:{id}")
}

fn revoked_key(jti: &str) -> String {
    format!("oauth_revoked_jti:{jti}")
}

fn to_json<T: Serialize>(value: &T) -> Result<String, OAuthError> {
    serde_json::to_string(value).map_err(|e| OAuthError::Server(e.to_string()))
}

fn from_json<T: for<'de> Deserialize<'de>>(json: Option<String>) -> Option<T> {
    json.and_then(|j| serde_json::from_str(&j).ok())
}

/// The grants store over a [`StateStore`].
pub struct Grants<'a> {
    pub store: &'a dyn StateStore,
}

impl Grants<'_> {
    /// Store a new authorization code; returns the code.
    pub async fn issue_code(
        &self,
        code: &AuthorizationCode,
        ttl: Duration,
    ) -> Result<String, OAuthError> {
        let value = random_token(32);
        self.store
            .put(&code_key(&value), &to_json(code)?, ttl)
            .await?;
        Ok(value)
    }

    /// Take a code (single use). `None`: unknown, expired or already used; in the last
    /// case the grant it produced is revoked.
    pub async fn redeem_code(&self, code: &str) -> Result<Option<AuthorizationCode>, OAuthError> {
        if let Some(found) = from_json(self.store.take(&code_key(code)).await?) {
            return Ok(Some(found));
        }
        if let Some(grant_id) = self.store.take(&spent_key(code)).await? {
            tracing::warn!("authorization code replayed: revoking the tokens it issued");
            self.revoke_grant(&grant_id).await?;
        }
        Ok(None)
    }

    /// Remember that `code` produced grant `grant_id` for `ttl`.
    pub async fn mark_spent(
        &self,
        code: &str,
        grant_id: &str,
        ttl: Duration,
    ) -> Result<(), OAuthError> {
        self.store.put(&spent_key(code), grant_id, ttl).await?;
        Ok(())
    }

    pub fn new_grant_id() -> String {
        random_token(18)
    }

    pub async fn save_grant(&self, grant: &Grant) -> Result<(), OAuthError> {
        let ttl = seconds_until(grant.expires_at);
        self.store
            .put(&grant_key(&grant.id), &to_json(grant)?, ttl)
            .await?;
        Ok(())
    }

    pub async fn grant(&self, id: &str) -> Result<Option<Grant>, OAuthError> {
        let grant: Option<Grant> = from_json(self.store.get(&grant_key(id)).await?);
        Ok(grant.filter(|g| g.expires_at > unix_now()))
    }

    pub async fn revoke_grant(&self, id: &str) -> Result<(), OAuthError> {
        self.store.delete(&refresh_key(id)).await?;
        self.store.delete(&grant_key(id)).await?;
        Ok(())
    }

    /// A new refresh token for `grant`, replacing the live one.
    pub async fn issue_refresh_token(
        &self,
        grant: &Grant,
        idle: Option<Duration>,
    ) -> Result<String, OAuthError> {
        let secret = random_token(32);
        let ttl = refresh_ttl(grant, idle);
        self.store
            .put(&refresh_key(&grant.id), &sha256_hex(&secret), ttl)
            .await?;
        Ok(format!("{}.{secret}", grant.id))
    }

    /// Check a refresh token of `client_id`. With `rotate` the token is consumed (the
    /// caller issues the next one), else its idle timeout restarts. A secret that is not
    /// the live one (a rotated token presented again) revokes the whole grant.
    pub async fn use_refresh_token(
        &self,
        token: &str,
        client_id: &str,
        rotate: bool,
        idle: Option<Duration>,
    ) -> Result<Grant, OAuthError> {
        const INVALID: &str = "the refresh token is invalid, expired or revoked";
        let (grant_id, secret) = token
            .split_once('.')
            .ok_or(OAuthError::InvalidGrant(INVALID))?;
        let grant = self
            .grant(grant_id)
            .await?
            .filter(|g| g.subject.client_id == client_id)
            .ok_or(OAuthError::InvalidGrant(INVALID))?;
        let key = refresh_key(grant_id);
        let live = if rotate {
            self.store.take(&key).await?
        } else {
            self.store.get(&key).await?
        };
        let hash = sha256_hex(secret);
        if live.as_deref() != Some(hash.as_str()) {
            tracing::warn!("refresh token reused or invalid: revoking its grant");
            self.revoke_grant(grant_id).await?;
            return Err(OAuthError::InvalidGrant(INVALID));
        }
        if !rotate {
            let ttl = refresh_ttl(&grant, idle);
            self.store.put(&key, &hash, ttl).await?;
        }
        Ok(grant)
    }

    /// Whether a refresh token is the live one of a live grant (introspection).
    pub async fn refresh_token_grant(&self, token: &str) -> Result<Option<Grant>, OAuthError> {
        let Some((grant_id, secret)) = token.split_once('.') else {
            return Ok(None);
        };
        let live = self.store.get(&refresh_key(grant_id)).await?;
        if live.as_deref() != Some(sha256_hex(secret).as_str()) {
            return Ok(None);
        }
        self.grant(grant_id).await
    }

    pub async fn revoke_access_token(&self, jti: &str, exp: i64) -> Result<(), OAuthError> {
        let ttl = seconds_until(exp);
        self.store.put(&revoked_key(jti), "1", ttl).await?;
        Ok(())
    }

    pub async fn access_token_revoked(&self, jti: &str) -> Result<bool, OAuthError> {
        Ok(self.store.get(&revoked_key(jti)).await?.is_some())
    }
}

/// At least one second.
pub fn seconds_until(at: i64) -> Duration {
    Duration::from_secs((at - unix_now()).max(1) as u64)
}

/// The idle timeout, capped by the grant's absolute end.
fn refresh_ttl(grant: &Grant, idle: Option<Duration>) -> Duration {
    let until_end = seconds_until(grant.expires_at);
    idle.map_or(until_end, |idle| idle.min(until_end))
}
