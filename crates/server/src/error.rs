//! The error envelope of the Authentication Flow API (`{"error": {...}, "result"?}`) and
//! the one mapping from engine errors to it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use authflow_core::flow::def::FlowKind;
use authflow_core::flow::{FlowError, StateView};

use crate::authflow_api::render_result;

/// One API error: `name` fixes the HTTP status, `reason` is what clients switch on.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub name: &'static str,
    pub reason: &'static str,
    pub message: String,
    /// Boxed, like `result`, so that `Result<_, ApiError>` stays small.
    pub info: Option<Box<Map<String, Value>>>,
    /// The unchanged state echoed on input errors (spec 4.3).
    pub result: Option<Box<Value>>,
}

pub fn status_of(name: &str) -> StatusCode {
    match name {
        "BadRequest" | "Invalid" => StatusCode::BAD_REQUEST,
        "Unauthorized" => StatusCode::UNAUTHORIZED,
        "Forbidden" => StatusCode::FORBIDDEN,
        "NotFound" => StatusCode::NOT_FOUND,
        "MethodNotAllowed" => StatusCode::METHOD_NOT_ALLOWED,
        "AlreadyExists" | "DataRace" => StatusCode::CONFLICT,
        "RequestEntityTooLarge" => StatusCode::PAYLOAD_TOO_LARGE,
        "TooManyRequest" => StatusCode::TOO_MANY_REQUESTS,
        "ServiceUnavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    pub fn new(name: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            name,
            reason,
            message: message.into(),
            info: None,
            result: None,
        }
    }

    pub fn with_info(mut self, key: &str, value: Value) -> Self {
        self.info
            .get_or_insert_with(Box::default)
            .insert(key.to_string(), value);
        self
    }

    pub fn bad_request() -> Self {
        ApiError::new(
            "BadRequest",
            "BadRequest",
            "content type must be application/json",
        )
    }

    pub fn invalid_json() -> Self {
        ApiError::new(
            "BadRequest",
            "InvalidJSON",
            "request body is not a JSON object",
        )
    }

    pub fn body_too_large(limit: usize) -> Self {
        ApiError::new(
            "RequestEntityTooLarge",
            "RequestBodyTooLarge",
            "request body too large",
        )
        .with_info("limit", json!(limit))
    }

    pub fn not_found() -> Self {
        ApiError::new("NotFound", "NotFound", "not found")
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new("MethodNotAllowed", "MethodNotAllowed", "method not allowed")
    }

    /// A browser request from an origin the CORS policy does not allow.
    pub fn forbidden_origin() -> Self {
        ApiError::new("Forbidden", "ForbiddenOrigin", "origin not allowed")
    }

    /// A request whose query or form is not what the endpoint takes.
    pub fn invalid_request(message: &str) -> Self {
        ApiError::new("BadRequest", "BadRequest", message.to_string())
    }

    pub fn too_many_requests() -> Self {
        ApiError::new("TooManyRequest", "TooManyRequest", "request rate limited")
    }

    /// An envelope error with `ValidationFailed` causes.
    pub fn validation(causes: Vec<Value>) -> Self {
        ApiError::new("Invalid", "ValidationFailed", "invalid request body")
            .with_info("causes", Value::Array(causes))
    }

    pub fn with_result(mut self, state: Option<&StateView>) -> Self {
        self.result = state.map(|s| Box::new(render_result(s)));
        self
    }

    /// Map an engine error, adding `info.FlowType` when it happened inside a flow.
    pub fn from_flow(error: &FlowError, flow_kind: Option<FlowKind>) -> Self {
        let mut e = map_flow_error(error);
        if let (Some(kind), true) = (flow_kind, carries_flow_type(error)) {
            e = e.with_info("FlowType", json!(kind.as_str()));
        }
        e
    }
}

fn carries_flow_type(error: &FlowError) -> bool {
    !matches!(
        error,
        FlowError::FlowNotFound
            | FlowError::FlowNameNotFound
            | FlowError::UnknownFlow
            | FlowError::Store(_)
            | FlowError::Unexpected(_)
            | FlowError::InvalidFlowConfig(_)
    )
}

fn cause(kind: &str) -> Value {
    json!({ "kind": kind })
}

fn map_flow_error(error: &FlowError) -> ApiError {
    let reason = error.reason();
    match error {
        FlowError::FlowNotFound | FlowError::FlowNameNotFound => {
            ApiError::new("NotFound", reason, error.to_string())
        }
        FlowError::UnknownFlow => ApiError::new("BadRequest", reason, error.to_string()),
        FlowError::NoPublicSignup | FlowError::DisabledUser { reason: None } => {
            ApiError::new("Forbidden", reason, error.to_string())
        }
        FlowError::DisabledUser { reason: Some(why) } => {
            ApiError::new("Forbidden", reason, error.to_string()).with_info("reason", json!(why))
        }
        FlowError::ValidationFailed { message, causes } => {
            let causes: Vec<Value> = causes
                .iter()
                .map(|c| json!({"location": c.location, "kind": c.kind, "details": c.details}))
                .collect();
            ApiError::new("Invalid", reason, *message).with_info("causes", Value::Array(causes))
        }
        FlowError::InvalidCredentials {
            authentication_type,
        } => ApiError::new("Unauthorized", reason, "invalid credentials")
            .with_info("AuthenticationType", json!(authentication_type)),
        FlowError::UserNotFound {
            login_id_type,
            existing_identities,
        } => ApiError::new("NotFound", reason, "user not found")
            .with_info("IdentityTypeIncoming", json!("login_id"))
            .with_info("LoginIDTypeIncoming", json!(login_id_type))
            .with_info("ExistingIdentities", json!(existing_identities)),
        FlowError::DuplicatedIdentity {
            login_id_type_incoming,
            login_id_type_existing,
        } => ApiError::new("Invalid", reason, "duplicated identity")
            .with_info("cause", cause("DuplicatedIdentity"))
            .with_info("IdentityTypeIncoming", json!("login_id"))
            .with_info("LoginIDTypeIncoming", json!(login_id_type_incoming))
            .with_info("IdentityTypeExisting", json!("login_id"))
            .with_info("LoginIDTypeExisting", json!(login_id_type_existing)),
        FlowError::NoAuthenticator => ApiError::new("Invalid", reason, "no authenticator")
            .with_info("cause", cause("NoAuthenticator")),
        FlowError::InvalidVerificationCode { cause_kind } => {
            ApiError::new("Forbidden", reason, "invalid verification code")
                .with_info("cause", cause(cause_kind))
        }
        FlowError::PasswordPolicyViolated(violations) => {
            let causes: Vec<Value> = violations.iter().map(|v| v.to_cause_json()).collect();
            ApiError::new("Invalid", reason, "password policy violated")
                .with_info("causes", Value::Array(causes))
        }
        FlowError::RateLimited(hit) => {
            let mut e = ApiError::new("TooManyRequest", reason, "request rate limited")
                .with_info("bucket_name", json!(hit.bucket_name));
            if let Some((name, group)) = &hit.limit {
                e = e
                    .with_info("rate_limit_name", json!(group))
                    .with_info("rate_limit", json!({"name": name, "group": group}));
            }
            e
        }
        FlowError::AccountLockout { until } => {
            ApiError::new("TooManyRequest", reason, "account locked").with_info(
                "until",
                json!(until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            )
        }
        FlowError::PasswordResetFailed { cause_kind } => {
            ApiError::new("Invalid", reason, "invalid code").with_info("cause", cause(cause_kind))
        }
        FlowError::NoUserId | FlowError::DifferentUserId => {
            ApiError::new("BadRequest", reason, error.to_string())
        }
        FlowError::ForgotPasswordDisabled => {
            ApiError::new("Invalid", reason, "forgot password is disabled")
                .with_info("cause", cause("FeatureDisabled"))
        }
        FlowError::InvalidFlowConfig(_) | FlowError::InvalidTargetStep(_) => {
            ApiError::new("InternalError", reason, "invalid flow config")
        }
        FlowError::Store(_) | FlowError::Unexpected(_) => {
            ApiError::new("InternalError", reason, "unexpected error")
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.name);
        let tracking_id = crate::tracking_id();
        if status.is_server_error() {
            tracing::error!(%tracking_id, reason = self.reason, message = %self.message, "request failed");
        } else {
            tracing::info!(%tracking_id, reason = self.reason, "request refused");
        }
        let mut error = json!({
            "name": self.name,
            "reason": self.reason,
            "message": self.message,
            "code": status.as_u16(),
            "tracking_id": tracking_id,
        });
        if let Some(info) = self.info {
            error["info"] = Value::Object(*info);
        }
        let mut body = json!({ "error": error });
        if let Some(result) = self.result {
            body["result"] = *result;
        }
        (status, Json(body)).into_response()
    }
}
