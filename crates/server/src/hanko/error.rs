//! The Hanko dialect's errors and their one mapping to the wire (hanko-flow-api.md 6).
//!
//! [`HankoError`] is what a request can end in; [`InputCode`] is the per-input error code
//! attached to an action input. [`from_flow`] is the single place where engine errors
//! become either of them.

use axum::http::StatusCode;
use serde_json::{Value, json};

use authflow_core::flow::FlowError;

/// Flow-level outcomes other than a plain state (spec 6.1).
#[derive(Debug, thiserror::Error)]
pub enum HankoError {
    /// 400 (an input failed), answered in the same state.
    #[error("Form data invalid.")]
    FormDataInvalid,
    /// 400 / 413 / 415: the request itself is malformed; state `error`.
    #[error("Form data invalid.")]
    MalformedRequest {
        status: StatusCode,
        cause: &'static str,
    },
    /// 401: `/profile` without a valid session.
    #[error("The session is invalid.")]
    Unauthorized,
    /// 401 in `passcode_confirmation`: the code was revoked by too many failures.
    #[error("The maximum number of passcode attempts is reached.")]
    PasscodeMaxAttempts,
    /// 403 in state `error`: checks 3–7 of section 3.
    #[error("The operation is not permitted.")]
    NotPermitted,
    /// 403 in the current state: a refused operation (`cause` names why).
    #[error("The operation is not permitted.")]
    Refused { cause: &'static str },
    /// 410: the flow expired.
    #[error("The flow has expired.")]
    FlowExpired,
    /// 429: a rate limit; `in_state` unless it is the per-IP request limit (check 1).
    #[error("Too many requests.")]
    RateLimited {
        retry_after: u64,
        cause: Option<&'static str>,
        in_state: bool,
    },
    /// 500: a step this dialect cannot show, or a config dead end.
    #[error("The flow cannot continue.")]
    FlowDiscontinuity(String),
    /// 500: an unexpected fault (the detail is logged, never sent).
    #[error("A technical error occurred.")]
    Technical(String),
}

impl HankoError {
    pub fn status(&self) -> StatusCode {
        match self {
            HankoError::FormDataInvalid => StatusCode::BAD_REQUEST,
            HankoError::MalformedRequest { status, .. } => *status,
            HankoError::Unauthorized | HankoError::PasscodeMaxAttempts => StatusCode::UNAUTHORIZED,
            HankoError::NotPermitted | HankoError::Refused { .. } => StatusCode::FORBIDDEN,
            HankoError::FlowExpired => StatusCode::GONE,
            HankoError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            HankoError::FlowDiscontinuity(_) | HankoError::Technical(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            HankoError::FormDataInvalid | HankoError::MalformedRequest { .. } => {
                "form_data_invalid_error"
            }
            HankoError::Unauthorized => "unauthorized",
            HankoError::PasscodeMaxAttempts => "passcode_max_attempts_reached",
            HankoError::NotPermitted | HankoError::Refused { .. } => {
                "operation_not_permitted_error"
            }
            HankoError::FlowExpired => "flow_expired_error",
            HankoError::RateLimited { .. } => "rate_limit_exceeded",
            HankoError::FlowDiscontinuity(_) => "flow_discontinuity_error",
            HankoError::Technical(_) => "technical_error",
        }
    }

    fn cause(&self) -> Option<&'static str> {
        match self {
            HankoError::MalformedRequest { cause, .. } => Some(cause),
            HankoError::Refused { cause } => Some(cause),
            HankoError::RateLimited { cause, .. } => *cause,
            _ => None,
        }
    }

    /// Whether the response shows the current state (else the state `error`, spec 6.1).
    pub fn keeps_state(&self) -> bool {
        match self {
            HankoError::FormDataInvalid
            | HankoError::PasscodeMaxAttempts
            | HankoError::Refused { .. } => true,
            HankoError::RateLimited { in_state, .. } => *in_state,
            _ => false,
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self {
            HankoError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The `error` member of the response.
    pub fn wire(&self) -> Value {
        let mut v = json!({"code": self.code(), "message": self.to_string()});
        if let Some(cause) = self.cause() {
            v["cause"] = json!(cause);
        }
        v
    }
}

/// Per-input error codes (spec 6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputCode {
    ValueMissing,
    ValueTooShort,
    ValueTooLong,
    ValueInvalid,
    EmailAlreadyExists,
    UsernameAlreadyExists,
    InvalidUsername,
    PasscodeInvalid,
    OtpCodeInvalid,
    UnknownEmail,
    UnknownUsername,
}

impl InputCode {
    pub fn code(self) -> &'static str {
        match self {
            InputCode::ValueMissing => "value_missing_error",
            InputCode::ValueTooShort => "value_too_short_error",
            InputCode::ValueTooLong => "value_too_long_error",
            InputCode::ValueInvalid => "value_invalid_error",
            InputCode::EmailAlreadyExists => "email_already_exists",
            InputCode::UsernameAlreadyExists => "username_already_exists",
            InputCode::InvalidUsername => "invalid_username_error",
            InputCode::PasscodeInvalid => "passcode_invalid",
            InputCode::OtpCodeInvalid => "otp_code_invalid",
            InputCode::UnknownEmail => "unknown_email_error",
            InputCode::UnknownUsername => "unknown_username_error",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            InputCode::ValueMissing => "The value is missing.",
            InputCode::ValueTooShort => "The value is too short.",
            InputCode::ValueTooLong => "The value is too long.",
            InputCode::ValueInvalid => "The value is invalid.",
            InputCode::EmailAlreadyExists => "The email address already exists.",
            InputCode::UsernameAlreadyExists => "The username already exists.",
            InputCode::InvalidUsername => "The username is invalid.",
            InputCode::PasscodeInvalid => "The passcode is invalid.",
            InputCode::OtpCodeInvalid => "The OTP code is invalid.",
            InputCode::UnknownEmail => "The email address is unknown.",
            InputCode::UnknownUsername => "The username is unknown.",
        }
    }
}

/// An error attached to one input of an action.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    pub code: InputCode,
    pub cause: Option<String>,
}

impl InputError {
    pub fn new(code: InputCode) -> Self {
        InputError { code, cause: None }
    }

    pub fn with_cause(code: InputCode, cause: impl Into<String>) -> Self {
        InputError {
            code,
            cause: Some(cause.into()),
        }
    }

    pub fn wire(&self) -> Value {
        let mut v = json!({"code": self.code.code(), "message": self.code.message()});
        if let Some(cause) = &self.cause {
            v["cause"] = json!(cause);
        }
        v
    }
}

/// What an engine error means for this dialect.
#[derive(Debug)]
pub enum Mapped {
    /// Answered in the same state: a flow-level error, maybe one input's error.
    InState(HankoError, Option<(String, InputError)>),
    /// Answered in state `error`.
    Fatal(HankoError),
    /// An unknown identifier or a taken email that must not be revealed (spec 6.4).
    Conceal,
}

/// Which input the executed action fed, and of what sort, to place engine errors.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub input: Option<&'a str>,
    /// The identifier input of an identify action is a username.
    pub username: bool,
    pub hints: bool,
    /// A taken email may be concealed: registration with a required email verification.
    pub conceal_taken_email: bool,
}

/// The one mapping of engine errors (spec 6.5).
pub fn from_flow(error: &FlowError, target: Target<'_>, now_secs: i64) -> Mapped {
    let on_input = |e: InputError| {
        Mapped::InState(
            HankoError::FormDataInvalid,
            target.input.map(|name| (name.to_string(), e)),
        )
    };
    match error {
        FlowError::ValidationFailed { causes, .. } => {
            let kind = causes.first().map(|c| c.kind).unwrap_or("");
            let code = match kind {
                "maxLength" => InputCode::ValueTooLong,
                "minLength" => InputCode::ValueTooShort,
                "required" => InputCode::ValueMissing,
                "blocked" if target.username => InputCode::InvalidUsername,
                _ => InputCode::ValueInvalid,
            };
            on_input(InputError::new(code))
        }
        FlowError::InvalidCredentials { .. } => match target.input {
            Some("password") => on_input(InputError::with_cause(
                InputCode::ValueInvalid,
                "InvalidCredentials",
            )),
            Some("otp_code") | Some("recovery_code") => {
                on_input(InputError::new(InputCode::OtpCodeInvalid))
            }
            _ => on_input(InputError::new(InputCode::PasscodeInvalid)),
        },
        FlowError::InvalidVerificationCode { .. } => {
            on_input(InputError::new(InputCode::PasscodeInvalid))
        }
        FlowError::UserNotFound { login_id_type, .. } => {
            if !target.hints {
                return Mapped::Conceal;
            }
            let code = if *login_id_type == "email" {
                InputCode::UnknownEmail
            } else {
                InputCode::UnknownUsername
            };
            on_input(InputError::new(code))
        }
        FlowError::DuplicatedIdentity {
            login_id_type_existing,
            ..
        } => match *login_id_type_existing {
            "email" if target.conceal_taken_email && !target.hints => Mapped::Conceal,
            "email" => on_input(InputError::new(InputCode::EmailAlreadyExists)),
            "username" => on_input(InputError::new(InputCode::UsernameAlreadyExists)),
            _ => on_input(InputError::with_cause(
                InputCode::ValueInvalid,
                "DuplicatedIdentity",
            )),
        },
        FlowError::PasswordPolicyViolated(violations) => {
            let names: Vec<&str> = violations.iter().map(|v| v.name()).collect();
            let code = if names.contains(&"PasswordTooShort") {
                InputCode::ValueTooShort
            } else {
                InputCode::ValueInvalid
            };
            on_input(InputError::with_cause(code, names.join(",")))
        }
        FlowError::RateLimited(hit) if hit.bucket_name == "TrackFailedOTPAttemptBucket" => {
            Mapped::InState(HankoError::PasscodeMaxAttempts, None)
        }
        FlowError::RateLimited(_) => Mapped::InState(
            HankoError::RateLimited {
                retry_after: 60,
                cause: None,
                in_state: true,
            },
            None,
        ),
        FlowError::AccountLockout { until } => Mapped::InState(
            HankoError::RateLimited {
                retry_after: (until.timestamp() - now_secs).max(1) as u64,
                cause: Some("AccountLockout"),
                in_state: true,
            },
            None,
        ),
        FlowError::NoAuthenticator => Mapped::InState(
            HankoError::Refused {
                cause: "NoAuthenticator",
            },
            None,
        ),
        FlowError::DisabledUser { .. } => Mapped::InState(
            HankoError::Refused {
                cause: "DisabledUser",
            },
            None,
        ),
        FlowError::PasswordResetFailed { .. } => {
            on_input(InputError::new(InputCode::PasscodeInvalid))
        }
        FlowError::NoPublicSignup
        | FlowError::ForgotPasswordDisabled
        | FlowError::NoUserId
        | FlowError::DifferentUserId => Mapped::Fatal(HankoError::NotPermitted),
        FlowError::FlowNotFound => Mapped::Fatal(HankoError::FlowExpired),
        FlowError::FlowNameNotFound
        | FlowError::UnknownFlow
        | FlowError::InvalidFlowConfig(_)
        | FlowError::InvalidTargetStep(_) => {
            Mapped::Fatal(HankoError::FlowDiscontinuity(error.to_string()))
        }
        FlowError::Store(_) | FlowError::Unexpected(_) => {
            Mapped::Fatal(HankoError::Technical(error.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authflow_core::flow::error::RateLimitHit;

    fn target(input: &'static str) -> Target<'static> {
        Target {
            input: Some(input),
            username: false,
            hints: false,
            conceal_taken_email: true,
        }
    }

    #[test]
    fn wrong_password_and_wrong_code_land_on_their_inputs() {
        let e = FlowError::InvalidCredentials {
            authentication_type: "password",
        };
        match from_flow(&e, target("password"), 0) {
            Mapped::InState(HankoError::FormDataInvalid, Some((name, err))) => {
                assert_eq!(name, "password");
                assert_eq!(err.code, InputCode::ValueInvalid);
                assert_eq!(err.cause.as_deref(), Some("InvalidCredentials"));
            }
            other => panic!("{other:?}"),
        }
        let e = FlowError::InvalidVerificationCode {
            cause_kind: "InvalidVerificationCode",
        };
        assert!(matches!(
            from_flow(&e, target("code"), 0),
            Mapped::InState(
                _,
                Some((
                    _,
                    InputError {
                        code: InputCode::PasscodeInvalid,
                        ..
                    }
                ))
            )
        ));
    }

    #[test]
    fn enumeration_is_concealed_without_hints() {
        let e = FlowError::UserNotFound {
            login_id_type: "email",
            existing_identities: vec![],
        };
        assert!(matches!(from_flow(&e, target("email"), 0), Mapped::Conceal));
        let hinted = Target {
            hints: true,
            ..target("email")
        };
        assert!(matches!(
            from_flow(&e, hinted, 0),
            Mapped::InState(
                _,
                Some((
                    _,
                    InputError {
                        code: InputCode::UnknownEmail,
                        ..
                    }
                ))
            )
        ));
    }

    #[test]
    fn revoked_codes_and_flow_faults() {
        let e = FlowError::RateLimited(RateLimitHit {
            bucket_name: "TrackFailedOTPAttemptBucket".into(),
            limit: None,
        });
        let m = from_flow(&e, target("code"), 0);
        assert!(matches!(
            m,
            Mapped::InState(HankoError::PasscodeMaxAttempts, None)
        ));
        assert_eq!(
            HankoError::PasscodeMaxAttempts.status(),
            StatusCode::UNAUTHORIZED
        );
        assert!(matches!(
            from_flow(&FlowError::FlowNotFound, target("code"), 0),
            Mapped::Fatal(HankoError::FlowExpired)
        ));
        assert_eq!(HankoError::FlowExpired.status(), StatusCode::GONE);
        assert_eq!(
            HankoError::Technical("x".into()).wire(),
            json!({"code": "technical_error", "message": "A technical error occurred."})
        );
    }
}
