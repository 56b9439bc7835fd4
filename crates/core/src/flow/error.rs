//! Errors a flow can answer. Each variant has one stable wire `reason`; the dialects map
//! them to their envelopes in one place each.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::credentials::password::PolicyViolation;
use crate::store::StoreError;

/// One `ValidationFailed` cause: `{location, kind, details}` (authentication-flow-api.md 4.5).
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub location: String,
    pub kind: &'static str,
    pub details: Value,
}

impl Cause {
    pub fn new(location: impl Into<String>, kind: &'static str, details: Value) -> Self {
        Cause {
            location: location.into(),
            kind,
            details,
        }
    }
}

/// A rate limit that fired: Authgear's bucket name and, for configurable limits, the
/// config path of the limit and its group (spec 17.8).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitHit {
    pub bucket_name: String,
    /// `(name, group)`, e.g. `("authentication.password.per_ip", "authentication.password")`.
    pub limit: Option<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("authentication flow not found")]
    FlowNotFound,
    #[error("flow not found")]
    FlowNameNotFound,
    #[error("unknown flow")]
    UnknownFlow,
    #[error("public signup is disabled")]
    NoPublicSignup,
    #[error("{message}")]
    ValidationFailed {
        message: &'static str,
        causes: Vec<Cause>,
    },
    #[error("invalid credentials")]
    InvalidCredentials { authentication_type: &'static str },
    #[error("user not found")]
    UserNotFound {
        login_id_type: &'static str,
        existing_identities: Vec<Value>,
    },
    #[error("duplicated identity")]
    DuplicatedIdentity {
        login_id_type_incoming: &'static str,
        login_id_type_existing: &'static str,
    },
    #[error("no authenticator")]
    NoAuthenticator,
    #[error("invalid verification code")]
    InvalidVerificationCode { cause_kind: &'static str },
    #[error("password policy violated")]
    PasswordPolicyViolated(Vec<PolicyViolation>),
    #[error("request rate limited")]
    RateLimited(RateLimitHit),
    #[error("account locked")]
    AccountLockout { until: DateTime<Utc> },
    #[error("user is disabled")]
    DisabledUser { reason: Option<String> },
    /// Account recovery: a wrong, expired or used code (spec 8.14).
    #[error("password reset failed")]
    PasswordResetFailed { cause_kind: &'static str },
    /// A `reauth` flow without a user: no valid ID-token hint, no live IdP session, and no
    /// `identify` step to ask for an ID token (authentication-flow-api.md 3.1).
    #[error("no user to reauthenticate")]
    NoUserId,
    /// An ID token naming another user than the one the flow already knows (spec 17.9).
    #[error("different user ID")]
    DifferentUserId,
    /// `forgot_password.enabled: false` (flow-config.md 5.5).
    #[error("forgot password is disabled")]
    ForgotPasswordDisabled,
    #[error("invalid flow config: {0}")]
    InvalidFlowConfig(String),
    #[error("invalid target step: {0}")]
    InvalidTargetStep(String),
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
    #[error("unexpected error: {0}")]
    Unexpected(String),
}

impl FlowError {
    pub fn validation(causes: Vec<Cause>) -> Self {
        FlowError::ValidationFailed {
            message: "invalid request body",
            causes,
        }
    }

    /// The stable wire reason.
    pub fn reason(&self) -> &'static str {
        match self {
            FlowError::FlowNotFound => "AuthenticationFlowNotFound",
            FlowError::FlowNameNotFound => "AuthenticationFlowFlowNotFound",
            FlowError::UnknownFlow => "AuthenticationFlowUnknownFlow",
            FlowError::NoPublicSignup => "AuthenticationFlowNoPublicSignup",
            FlowError::ValidationFailed { .. } => "ValidationFailed",
            FlowError::InvalidCredentials { .. } => "InvalidCredentials",
            FlowError::UserNotFound { .. } => "UserNotFound",
            FlowError::DuplicatedIdentity { .. } | FlowError::NoAuthenticator => {
                "InvariantViolated"
            }
            FlowError::PasswordPolicyViolated(_) => "PasswordPolicyViolated",
            FlowError::InvalidVerificationCode { .. } => "InvalidVerificationCode",
            FlowError::RateLimited(_) => "RateLimited",
            FlowError::AccountLockout { .. } => "AccountLockout",
            FlowError::DisabledUser { .. } => "DisabledUser",
            FlowError::PasswordResetFailed { .. } => "PasswordResetFailed",
            FlowError::ForgotPasswordDisabled => "ForgotPasswordFailed",
            FlowError::NoUserId => "AuthenticationFlowNoUserID",
            FlowError::DifferentUserId => "AuthenticationFlowDifferentUserID",
            FlowError::InvalidFlowConfig(_) => "AuthenticationFlowInvalidFlowConfig",
            FlowError::InvalidTargetStep(_) => "AuthenticationFlowInvalidTargetStep",
            FlowError::Store(_) | FlowError::Unexpected(_) => "UnexpectedError",
        }
    }
}

pub type FlowResult<T> = Result<T, FlowError>;
