//! Durable records. Storage implementations persist these; the engine builds them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The organization every flow-API user belongs to when no organization is named.
pub const DEFAULT_ORG_ID: &str = "default";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub org_id: String,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    /// Display name (`name` of the import format, `fullname` of `/auth/signup`).
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginIdType {
    Email,
    Phone,
    Username,
}

impl LoginIdType {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginIdType::Email => "email",
            LoginIdType::Phone => "phone",
            LoginIdType::Username => "username",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(LoginIdType::Email),
            "phone" => Some(LoginIdType::Phone),
            "username" => Some(LoginIdType::Username),
            _ => None,
        }
    }
}

/// A login ID of a user. Unique per (org, key, unique_key), enforced by the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub id: String,
    pub user_id: String,
    pub org_id: String,
    /// `identity.login_id.keys[].key`.
    pub login_id_key: String,
    pub login_id_type: LoginIdType,
    /// As the user typed it (trimmed), for display.
    pub original: String,
    /// Normalized value (lowercased email, NFKC, ...): used for claims and messages.
    pub normalized: String,
    /// Value that decides uniqueness (normalized, plus `ignore_dot_sign` folding).
    pub unique_key: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthenticatorKind {
    Primary,
    Secondary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthenticatorType {
    Password,
    OobOtpEmail,
    OobOtpSms,
    Totp,
    Passkey,
}

impl AuthenticatorType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthenticatorType::Password => "password",
            AuthenticatorType::OobOtpEmail => "oob_otp_email",
            AuthenticatorType::OobOtpSms => "oob_otp_sms",
            AuthenticatorType::Totp => "totp",
            AuthenticatorType::Passkey => "passkey",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "password" => Some(AuthenticatorType::Password),
            "oob_otp_email" => Some(AuthenticatorType::OobOtpEmail),
            "oob_otp_sms" => Some(AuthenticatorType::OobOtpSms),
            "totp" => Some(AuthenticatorType::Totp),
            "passkey" => Some(AuthenticatorType::Passkey),
            _ => None,
        }
    }
}

/// A credential of a user. Type-specific material lives in `data` (for a password:
/// `{"password_hash": "$argon2id$..."}`; for OOB: `{"target": "..."}`; for TOTP: the
/// encrypted secret), so new authenticator kinds need no schema change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authenticator {
    pub id: String,
    pub user_id: String,
    pub kind: AuthenticatorKind,
    pub authenticator_type: AuthenticatorType,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Authenticator {
    pub fn password_hash(&self) -> Option<&str> {
        self.data.get("password_hash").and_then(|v| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedClaim {
    pub user_id: String,
    /// `email` or `phone_number`.
    pub name: String,
    pub value: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordHistoryEntry {
    pub user_id: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryCode {
    pub id: String,
    pub user_id: String,
    /// SHA-256 hex of the normalized code.
    pub code_hash: String,
    pub created_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// Created when an Authentication Flow API flow finishes (cookie `session`).
    Idp,
    /// Hanko-dialect session JWT.
    Hanko,
    /// `/auth` API session JWT.
    AuthApi,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Idp => "idp",
            SessionKind::Hanko => "hanko",
            SessionKind::AuthApi => "auth_api",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "idp" => Some(SessionKind::Idp),
            "hanko" => Some(SessionKind::Hanko),
            "auth_api" => Some(SessionKind::AuthApi),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub org_id: String,
    pub kind: SessionKind,
    /// SHA-256 hex of the opaque session token (cookie value); never the token itself.
    pub token_hash: String,
    /// Authentication methods used (`pwd`, `otp`, ...).
    pub amr: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_accessed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Session {
    /// Not revoked, not expired, and (with an idle timeout) used recently enough.
    pub fn is_live(&self, now: DateTime<Utc>, idle_timeout: Option<std::time::Duration>) -> bool {
        let idle_ok = idle_timeout.is_none_or(|idle| {
            self.last_accessed_at
                + chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::MAX)
                > now
        });
        self.revoked_at.is_none() && now < self.expires_at && idle_ok
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public id (also the prefix part of the key); safe to put in tokens.
    pub id: String,
    pub org_id: String,
    /// SHA-256 hex of the whole secret key.
    pub key_hash: String,
    pub created_at: DateTime<Utc>,
    /// Set when rotated: the key keeps working until then.
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    pub org_id: String,
    pub user_id: Option<String>,
    /// `user.signed_up`, `user.authenticated`, ...
    pub event_type: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}
