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
    Finished,
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
            Action::CreateAuthenticator { .. } => "create_authenticator",
            Action::ChangePassword { .. } => "change_password",
            Action::Verify(_) => "verify",
            Action::OtpEntry { step, .. } | Action::SelectChannel { step, .. } => step.as_str(),
            Action::Finished => "finished",
        }
    }

    /// `action.authentication`: the chosen branch the awaited input belongs to.
    pub fn authentication(&self) -> Option<Authentication> {
        match self {
            Action::OtpEntry { authentication, .. } => Some(*authentication),
            Action::SelectChannel { authentication, .. } => *authentication,
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
