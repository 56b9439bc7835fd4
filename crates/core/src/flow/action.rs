//! What a state asks the client to do, as typed data. Each wire dialect renders it.

use serde_json::Value;

use super::def::{Authentication, Channel, FlowKind, Identification, OtpForm, StepType};

#[derive(Debug, Clone, PartialEq)]
pub struct IdentifyOption {
    pub identification: Identification,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticateOption {
    pub authentication: Authentication,
    /// OOB options: how the code travels and where.
    pub otp: Option<OtpOptionView>,
}

/// `otp_form`, `channels` and `masked_display_name` of an OOB option.
#[derive(Debug, Clone, PartialEq)]
pub struct OtpOptionView {
    pub otp_form: OtpForm,
    pub channels: Vec<Channel>,
    /// Absent on `create_authenticator` options without `target_step`.
    pub masked_display_name: Option<String>,
    /// `create_authenticator` with `target_step`: whether a code will be asked for.
    pub verification_required: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateOption {
    pub authentication: Authentication,
    /// `password_policy` data object for password options.
    pub password_policy: Option<Value>,
    pub otp: Option<OtpOptionView>,
}

/// One `select_destination` option (spec 8.13).
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationOption {
    pub masked_display_name: String,
    pub channel: Channel,
    pub otp_form: OtpForm,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Identify {
        options: Vec<IdentifyOption>,
    },
    Authenticate {
        options: Vec<AuthenticateOption>,
        device_token_enabled: bool,
    },
    CreateAuthenticator {
        options: Vec<CreateOption>,
    },
    ChangePassword {
        password_policy: Value,
        force_change_reason: &'static str,
    },
    /// A code was sent to verify a claim (`verify_oob_otp_data`).
    Verify(OtpPrompt),
    /// A chosen OOB branch of `step` waits for its code or link (`action.authentication`).
    OtpEntry {
        step: StepType,
        authentication: Authentication,
        prompt: OtpPrompt,
    },
    /// A channel must be chosen before a code is sent (`select_oob_otp_channels_data`).
    SelectChannel {
        step: StepType,
        authentication: Option<Authentication>,
        channels: Vec<Channel>,
        masked_claim_value: String,
    },
    /// The chosen `secondary_totp` branch shows its new secret (`create_totp_data`).
    CreateTotp {
        secret: Shown,
        otpauth_uri: Shown,
    },
    /// Recovery codes to write down (`view_recovery_code_data`).
    ViewRecoveryCode {
        recovery_codes: Vec<Shown>,
    },
    /// Account recovery: where to send the code (`account_recovery_select_destination_data`).
    SelectDestination {
        options: Vec<DestinationOption>,
    },
    /// Account recovery: the code or link was sent (`account_recovery_verify_code_data`).
    VerifyAccountRecoveryCode {
        masked_display_name: String,
        channel: Channel,
        otp_form: OtpForm,
        code_length: u32,
        can_resend_at: chrono::DateTime<chrono::Utc>,
        failed_attempt_rate_limit_exceeded: bool,
    },
    /// Account recovery: the new password (`new_password_data` with `masked_target`).
    ResetPassword {
        password_policy: Value,
        masked_target: String,
    },
    Finished,
}

/// A secret the client must see once (a TOTP secret, a recovery code): rendered by the
/// dialects, never by `Debug`, so logging an action leaks nothing.
#[derive(Clone, PartialEq)]
pub struct Shown(String);

impl Shown {
    pub fn new(value: String) -> Self {
        Shown(value)
    }

    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OtpPrompt {
    pub channel: Channel,
    pub otp_form: OtpForm,
    pub masked_claim_value: String,
    pub code_length: u32,
    pub can_resend_at: chrono::DateTime<chrono::Utc>,
    pub can_check: bool,
    pub failed_attempt_rate_limit_exceeded: bool,
    /// Of the message that carried the current code (`delivery_status`, spec 8.5).
    pub delivery_status: super::otp::DeliveryStatus,
    /// Link form: where the client hears of the approval (spec 11).
    pub websocket_url: Option<String>,
}

impl Action {
    pub fn type_name(&self) -> &'static str {
        match self {
            Action::Identify { .. } => "identify",
            Action::Authenticate { .. } => "authenticate",
            Action::CreateAuthenticator { .. } | Action::CreateTotp { .. } => {
                "create_authenticator"
            }
            Action::ViewRecoveryCode { .. } => "view_recovery_code",
            Action::ChangePassword { .. } => "change_password",
            Action::Verify(_) => "verify",
            Action::OtpEntry { step, .. } | Action::SelectChannel { step, .. } => step.as_str(),
            Action::SelectDestination { .. } => "select_destination",
            Action::VerifyAccountRecoveryCode { .. } => "verify_account_recovery_code",
            Action::ResetPassword { .. } => "reset_password",
            Action::Finished => "finished",
        }
    }

    /// `action.authentication`: the chosen branch the awaited input belongs to.
    pub fn authentication(&self) -> Option<Authentication> {
        match self {
            Action::OtpEntry { authentication, .. } => Some(*authentication),
            Action::SelectChannel { authentication, .. } => *authentication,
            Action::CreateTotp { .. } => Some(Authentication::SecondaryTotp),
            _ => None,
        }
    }
}

/// A cookie the finishing response must set. Values are secrets: no `Debug` of them.
#[derive(Clone, PartialEq)]
pub struct CookieEffect {
    pub name: String,
    pub value: String,
    /// `None` = session cookie (no `Max-Age`).
    pub max_age_seconds: Option<u64>,
    pub same_site: &'static str,
    pub http_only: bool,
    pub secure: bool,
}

impl std::fmt::Debug for CookieEffect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieEffect")
            .field("name", &self.name)
            .field("value", &"***")
            .finish()
    }
}

/// The engine's answer to create / input / read: a state and what it asks for.
#[derive(Debug, Clone)]
pub struct StateView {
    pub state_token: String,
    pub flow_kind: FlowKind,
    pub flow_name: String,
    pub action: Action,
    /// Set when the flow finished: the user and session created or used.
    pub finished: Option<FinishedFlow>,
    pub cookies: Vec<CookieEffect>,
}

#[derive(Debug, Clone)]
pub struct FinishedFlow {
    pub user_id: String,
    pub session_id: Option<String>,
    pub amr: Vec<String>,
    /// Present when the flow completes an OAuth authorization request.
    pub finish_redirect_uri: Option<String>,
}
