//! Row → model mapping shared by the SQL backends. Column names are the same in both
//! schemas; only the physical types differ (integer millis vs `timestamptz`, JSON text
//! vs `jsonb`), which each backend hides behind [`RowExt`].

use authflow_core::model::*;
use authflow_core::store::StoreResult;
use chrono::{DateTime, Utc};

use crate::common::{
    parse_authenticator_kind, parse_authenticator_type, parse_login_id_type, parse_session_kind,
};

/// Typed column access with the backend's physical encoding.
pub(crate) trait RowExt {
    fn text(&self, col: &str) -> StoreResult<String>;
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;
    fn flag(&self, col: &str) -> StoreResult<bool>;
    fn time(&self, col: &str) -> StoreResult<DateTime<Utc>>;
    fn opt_time(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>>;
    fn json(&self, col: &str) -> StoreResult<serde_json::Value>;
    fn strings(&self, col: &str) -> StoreResult<Vec<String>>;
}

pub(crate) fn user(r: &impl RowExt) -> StoreResult<User> {
    Ok(User {
        id: r.text("id")?,
        org_id: r.text("org_id")?,
        created_at: r.time("created_at")?,
        disabled: r.flag("disabled")?,
        disabled_reason: r.opt_text("disabled_reason")?,
        name: r.opt_text("name")?,
    })
}

pub(crate) fn identity(r: &impl RowExt) -> StoreResult<Identity> {
    Ok(Identity {
        id: r.text("id")?,
        user_id: r.text("user_id")?,
        org_id: r.text("org_id")?,
        login_id_key: r.text("login_id_key")?,
        login_id_type: parse_login_id_type(&r.text("login_id_type")?)?,
        original: r.text("original")?,
        normalized: r.text("normalized")?,
        unique_key: r.text("unique_key")?,
        created_at: r.time("created_at")?,
    })
}

pub(crate) fn authenticator(r: &impl RowExt) -> StoreResult<Authenticator> {
    Ok(Authenticator {
        id: r.text("id")?,
        user_id: r.text("user_id")?,
        kind: parse_authenticator_kind(&r.text("kind")?)?,
        authenticator_type: parse_authenticator_type(&r.text("authenticator_type")?)?,
        data: r.json("data")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

pub(crate) fn verified_claim(r: &impl RowExt) -> StoreResult<VerifiedClaim> {
    Ok(VerifiedClaim {
        user_id: r.text("user_id")?,
        name: r.text("name")?,
        value: r.text("value")?,
        created_at: r.time("created_at")?,
    })
}

pub(crate) fn password_history(r: &impl RowExt) -> StoreResult<PasswordHistoryEntry> {
    Ok(PasswordHistoryEntry {
        user_id: r.text("user_id")?,
        password_hash: r.text("password_hash")?,
        created_at: r.time("created_at")?,
    })
}

pub(crate) fn recovery_code(r: &impl RowExt) -> StoreResult<RecoveryCode> {
    Ok(RecoveryCode {
        id: r.text("id")?,
        user_id: r.text("user_id")?,
        code_hash: r.text("code_hash")?,
        created_at: r.time("created_at")?,
        consumed_at: r.opt_time("consumed_at")?,
    })
}

pub(crate) fn session(r: &impl RowExt) -> StoreResult<Session> {
    Ok(Session {
        id: r.text("id")?,
        user_id: r.text("user_id")?,
        org_id: r.text("org_id")?,
        kind: parse_session_kind(&r.text("kind")?)?,
        token_hash: r.text("token_hash")?,
        amr: r.strings("amr")?,
        created_at: r.time("created_at")?,
        last_accessed_at: r.time("last_accessed_at")?,
        expires_at: r.time("expires_at")?,
        revoked_at: r.opt_time("revoked_at")?,
    })
}

pub(crate) fn organization(r: &impl RowExt) -> StoreResult<Organization> {
    Ok(Organization {
        id: r.text("id")?,
        name: r.text("name")?,
        created_at: r.time("created_at")?,
    })
}

pub(crate) fn api_key(r: &impl RowExt) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: r.text("id")?,
        org_id: r.text("org_id")?,
        key_hash: r.text("key_hash")?,
        created_at: r.time("created_at")?,
        expires_at: r.opt_time("expires_at")?,
        revoked_at: r.opt_time("revoked_at")?,
    })
}

pub(crate) fn audit_event(r: &impl RowExt) -> StoreResult<AuditEvent> {
    Ok(AuditEvent {
        id: r.text("id")?,
        org_id: r.text("org_id")?,
        user_id: r.opt_text("user_id")?,
        event_type: r.text("event_type")?,
        payload: r.json("payload")?,
        created_at: r.time("created_at")?,
    })
}

/// Map every row, failing on the first row the model cannot represent.
pub(crate) fn all<R, T>(rows: &[R], map: impl Fn(&R) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(map).collect()
}
