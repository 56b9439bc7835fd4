//! The one error type of the `/auth` API and its one mapping to HTTP
//! (backend-auth-api.md 3): `{"error": {"code", "message", "param"?, ...}}`.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use authflow_core::credentials::password::PolicyViolation;
use authflow_core::store::StoreError;

/// Every way an `/auth` request can fail. Messages name parameters, never their values,
/// so no secret can reach a response or a log line through an error.
#[derive(Debug, thiserror::Error)]
pub enum AuthApiError {
    #[error("request body is not a JSON object")]
    InvalidJson,
    #[error("content type must be application/json")]
    NotJsonContentType,
    #[error("{0} is required")]
    MissingParameter(&'static str),
    #[error("{param} {problem}")]
    InvalidParameter {
        param: &'static str,
        problem: &'static str,
    },
    #[error("password does not meet the password policy")]
    PasswordPolicyViolated {
        param: &'static str,
        violations: Vec<PolicyViolation>,
    },
    #[error("API key is missing or invalid")]
    InvalidApiKey,
    #[error("anti-abuse token is invalid, expired or already used")]
    InvalidAntiAbuseToken,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("session token is invalid")]
    InvalidSession,
    #[error("org_id is not the organization of the API key")]
    OrganizationMismatch,
    #[error("user not found")]
    UserNotFound,
    #[error("a user with this email already exists")]
    UserExists,
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("request rate limited")]
    RateLimited { retry_after: Duration },
    #[error("account locked")]
    AccountLocked { until: DateTime<Utc> },
    #[error("method not allowed")]
    MethodNotAllowed,
    /// `/auth` is backend-only: cross-origin preflights are refused.
    #[error("cross-origin requests are not allowed: call /auth from your backend")]
    CorsRefused,
    /// `auth_api.enabled: false`.
    #[error("not found")]
    NotFound,
    /// A real fault; the detail goes to the log only.
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for AuthApiError {
    fn from(e: StoreError) -> Self {
        AuthApiError::Internal(format!("store: {e}"))
    }
}

impl AuthApiError {
    pub fn invalid(param: &'static str, problem: &'static str) -> Self {
        AuthApiError::InvalidParameter { param, problem }
    }

    pub fn status(&self) -> StatusCode {
        use AuthApiError::*;
        match self {
            InvalidJson
            | NotJsonContentType
            | MissingParameter(_)
            | InvalidParameter { .. }
            | PasswordPolicyViolated { .. } => StatusCode::BAD_REQUEST,
            InvalidApiKey
            | InvalidAntiAbuseToken
            | InvalidCredentials
            | InvalidSession
            | OrganizationMismatch => StatusCode::UNAUTHORIZED,
            CorsRefused => StatusCode::FORBIDDEN,
            UserNotFound | NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            UserExists => StatusCode::CONFLICT,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RateLimited { .. } | AccountLocked { .. } => StatusCode::TOO_MANY_REQUESTS,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable `code`.
    pub fn code(&self) -> &'static str {
        use AuthApiError::*;
        match self {
            InvalidJson | NotJsonContentType => "invalid_json",
            MissingParameter(_) => "missing_parameter",
            InvalidParameter { .. } => "invalid_parameter",
            PasswordPolicyViolated { .. } => "password_policy_violated",
            InvalidApiKey => "invalid_api_key",
            InvalidAntiAbuseToken => "invalid_anti_abuse_token",
            InvalidCredentials => "invalid_credentials",
            InvalidSession => "invalid_session",
            OrganizationMismatch => "organization_mismatch",
            UserNotFound => "user_not_found",
            UserExists => "user_exists",
            BodyTooLarge { .. } => "body_too_large",
            RateLimited { .. } => "rate_limited",
            AccountLocked { .. } => "account_locked",
            MethodNotAllowed => "method_not_allowed",
            CorsRefused => "cors_not_allowed",
            NotFound => "not_found",
            Internal(_) => "internal_error",
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            AuthApiError::MissingParameter(param)
            | AuthApiError::InvalidParameter { param, .. }
            | AuthApiError::PasswordPolicyViolated { param, .. } => Some(param),
            _ => None,
        }
    }

    /// Members beyond `code`, `message` and `param`.
    fn extra_members(&self) -> Map<String, Value> {
        let mut extra = Map::new();
        match self {
            AuthApiError::PasswordPolicyViolated { violations, .. } => {
                let causes = violations.iter().map(PolicyViolation::to_cause_json);
                extra.insert("causes".into(), Value::Array(causes.collect()));
            }
            AuthApiError::AccountLocked { until } => {
                let until = until.to_rfc3339_opts(SecondsFormat::Secs, true);
                extra.insert("until".into(), json!(until));
            }
            AuthApiError::BodyTooLarge { limit } => {
                extra.insert("limit".into(), json!(limit));
            }
            _ => {}
        }
        extra
    }

    fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code()));
        error.insert("message".into(), json!(self.to_string()));
        if let Some(param) = self.param() {
            error.insert("param".into(), json!(param));
        }
        error.extend(self.extra_members());
        json!({ "error": error })
    }

    fn log(&self) {
        match self {
            AuthApiError::Internal(detail) => {
                tracing::error!(code = self.code(), %detail, "/auth request failed");
            }
            _ => tracing::info!(code = self.code(), "/auth request refused"),
        }
    }
}

/// Whole seconds, at least 1, for `Retry-After`.
fn retry_after_seconds(retry_after: Duration) -> u64 {
    retry_after.as_secs_f64().ceil().max(1.0) as u64
}

impl IntoResponse for AuthApiError {
    fn into_response(self) -> Response {
        self.log();
        let mut response = (self.status(), Json(self.body())).into_response();
        if let AuthApiError::RateLimited { retry_after } = &self {
            let seconds = HeaderValue::from(retry_after_seconds(*retry_after));
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_parameter_names_it() {
        let body = AuthApiError::MissingParameter("email").body();
        assert_eq!(
            body,
            json!({"error": {"code": "missing_parameter", "message": "email is required", "param": "email"}})
        );
    }

    #[test]
    fn policy_violation_lists_causes() {
        let e = AuthApiError::PasswordPolicyViolated {
            param: "password",
            violations: vec![PolicyViolation::DigitRequired],
        };
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            e.body()["error"]["causes"],
            json!([{"Name": "PasswordDigitRequired"}])
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(6)), 6);
    }
}
