//! Storage traits owned by the core. Implementations live in `authflow-store`
//! (SQLite, PostgreSQL, Redis). The engine only sees these traits.
//!
//! Two kinds of data:
//! - [`Database`]: durable records, written in one transaction per [`ChangeSet`];
//! - [`StateStore`]: short-lived values with an expiry (flow states, OTPs, counters,
//!   rate-limit buckets, anti-abuse tokens, authorization codes).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A login ID is already taken (unique index on org, key, unique_key).
    #[error("login ID of key {login_id_key:?} is already taken")]
    DuplicateIdentity { login_id_key: String },
    /// Another unique constraint (organization name, ...).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend failed (connection lost, SQL error, ...). Message without secrets.
    #[error("storage backend error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One durable write. A [`ChangeSet`] is applied in a single transaction: all or nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    CreateUser(User),
    SetUserDisabled {
        user_id: String,
        disabled: bool,
        reason: Option<String>,
    },
    DeleteUser {
        user_id: String,
    },
    CreateIdentity(Identity),
    CreateAuthenticator(Authenticator),
    UpdateAuthenticatorData {
        authenticator_id: String,
        data: serde_json::Value,
        updated_at: DateTime<Utc>,
    },
    AddVerifiedClaim(VerifiedClaim),
    AddPasswordHistory(PasswordHistoryEntry),
    CreateRecoveryCodes(Vec<RecoveryCode>),
    ConsumeRecoveryCode {
        recovery_code_id: String,
        at: DateTime<Utc>,
    },
    CreateSession(Session),
    /// Revoke every live session of the user, except `except` (a session id).
    RevokeUserSessions {
        user_id: String,
        except: Option<String>,
        at: DateTime<Utc>,
    },
    RevokeSession {
        session_id: String,
        at: DateTime<Utc>,
    },
    TouchSession {
        session_id: String,
        at: DateTime<Utc>,
    },
    AuditEvent(AuditEvent),
}

pub type ChangeSet = Vec<Change>;

/// Durable records. Every read returns committed data only.
#[async_trait]
pub trait Database: Send + Sync {
    /// Cheap round trip; used by `/healthz`.
    async fn ping(&self) -> StoreResult<()>;

    /// Apply all changes in one transaction. A unique violation on identities is
    /// [`StoreError::DuplicateIdentity`] and nothing of the set is written.
    async fn commit(&self, changes: ChangeSet) -> StoreResult<()>;

    async fn get_user(&self, user_id: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self, org_id: &str, limit: u32, offset: u32) -> StoreResult<Vec<User>>;

    async fn find_identity(
        &self,
        org_id: &str,
        login_id_key: &str,
        unique_key: &str,
    ) -> StoreResult<Option<Identity>>;
    /// In creation order.
    async fn list_identities(&self, user_id: &str) -> StoreResult<Vec<Identity>>;

    /// In creation order.
    async fn list_authenticators(&self, user_id: &str) -> StoreResult<Vec<Authenticator>>;
    async fn list_verified_claims(&self, user_id: &str) -> StoreResult<Vec<VerifiedClaim>>;
    /// Newest first, at most `limit`.
    async fn list_password_history(
        &self,
        user_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<PasswordHistoryEntry>>;
    async fn list_recovery_codes(&self, user_id: &str) -> StoreResult<Vec<RecoveryCode>>;

    async fn get_session(&self, session_id: &str) -> StoreResult<Option<Session>>;
    async fn find_session_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Session>>;
    async fn list_user_sessions(&self, user_id: &str) -> StoreResult<Vec<Session>>;

    /// Fails with [`StoreError::AlreadyExists`] when the name is taken.
    async fn create_organization(&self, org: Organization) -> StoreResult<()>;
    async fn get_organization(&self, org_id: &str) -> StoreResult<Option<Organization>>;
    async fn find_organization_by_name(&self, name: &str) -> StoreResult<Option<Organization>>;
    async fn list_organizations(&self) -> StoreResult<Vec<Organization>>;
    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()>;
    async fn get_api_key(&self, key_id: &str) -> StoreResult<Option<ApiKey>>;
    async fn list_api_keys(&self, org_id: &str) -> StoreResult<Vec<ApiKey>>;
    /// Set `expires_at` (rotation) or `revoked_at` on a key.
    async fn update_api_key(&self, key: ApiKey) -> StoreResult<()>;

    /// Server-wide secrets (generated encryption key, signing keys): insert if the name
    /// is free, then return the stored value (so concurrent starts agree on one value).
    async fn get_or_insert_server_secret(&self, name: &str, value: &str) -> StoreResult<String>;

    async fn list_audit_events(&self, user_id: &str) -> StoreResult<Vec<AuditEvent>>;
}

/// Outcome of taking a token from a rate-limit bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    /// No token left; one becomes available after `retry_after`.
    Limited {
        retry_after: Duration,
    },
}

/// Short-lived state with expiry, shared by all replicas when backed by Redis.
/// Keys are plain strings chosen by the caller (`state:<token>`, `otp:<...>`); an
/// implementation may prefix them. Expired entries behave exactly like absent ones.
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn ping(&self) -> StoreResult<()>;
    /// Insert or replace.
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<()>;
    /// Insert only if absent (or expired). Returns whether it was inserted.
    async fn put_if_absent(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<bool>;
    async fn get(&self, key: &str) -> StoreResult<Option<String>>;
    /// Atomically read and delete: at most one caller gets the value (single-use tokens,
    /// "compare and delete" at flow finish).
    async fn take(&self, key: &str) -> StoreResult<Option<String>>;
    async fn delete(&self, key: &str) -> StoreResult<()>;
    /// Atomically add `delta` to an integer counter (absent = 0), returning the new value.
    /// A new counter gets `ttl`; an existing one keeps its expiry.
    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> StoreResult<i64>;
    /// Take one token from the bucket `key` holding `burst` tokens refilled at `burst`
    /// per `period` (GCRA). Atomic across replicas.
    async fn take_token(
        &self,
        key: &str,
        period: Duration,
        burst: u32,
    ) -> StoreResult<RateDecision>;
    /// Give back one token taken by [`StateStore::take_token`] (failure-only limits
    /// return the token on success). Never exceeds `burst`.
    async fn return_token(&self, key: &str, period: Duration, burst: u32) -> StoreResult<()>;
}
