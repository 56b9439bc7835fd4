//! What the engine needs from the configuration, resolved once at start (defaults and
//! fallbacks applied), so the engine never re-reads YAML-shaped data.

use std::time::Duration;

use super::def::{Channel, OtpForm};
use super::otp::OtpSettings;
use crate::config::LockoutConfig;
use crate::credentials::login_id::LoginIdRules;
use crate::credentials::password::{HashingParams, PasswordPolicy};
use crate::model::LoginIdType;

#[derive(Debug, Clone)]
pub struct LoginIdKey {
    /// `identity.login_id.keys[].key`.
    pub key: String,
    pub login_id_type: LoginIdType,
    pub rules: LoginIdRules,
}

/// A resolved, enabled rate limit: a bucket of `burst` tokens refilled per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub period: Duration,
    pub burst: u32,
}

/// Every limit the password flows use. `None` = off.
#[derive(Debug, Clone, Default)]
pub struct RateLimits {
    pub api_per_ip: Option<Limit>,
    pub password_per_ip: Option<Limit>,
    pub password_per_user_per_ip: Option<Limit>,
    /// `authentication.rate_limits.{totp,recovery_code}` (failures, like passwords).
    pub totp_per_ip: Option<Limit>,
    pub totp_per_user_per_ip: Option<Limit>,
    pub recovery_code_per_ip: Option<Limit>,
    pub recovery_code_per_user_per_ip: Option<Limit>,
    pub account_enumeration_per_ip: Option<Limit>,
    pub signup_per_ip: Option<Limit>,
    /// `authentication.rate_limits.oob_otp.{email,sms}` (login OTPs).
    pub oob_email: OtpLimits,
    pub oob_sms: OtpLimits,
    /// `verification.rate_limits.{email,sms}` (claim verification).
    pub verification_email: OtpLimits,
    pub verification_sms: OtpLimits,
    pub messaging: MessagingLimits,
}

/// Trigger (codes sent) and validate (wrong codes) buckets of one OTP purpose and channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtpLimits {
    pub trigger_per_ip: Option<Limit>,
    pub trigger_per_user: Option<Limit>,
    pub validate_per_ip: Option<Limit>,
    pub validate_per_user_per_ip: Option<Limit>,
}

/// `messaging.rate_limits`: every message the server sends, whatever its purpose.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagingLimits {
    pub email: Option<Limit>,
    pub email_per_ip: Option<Limit>,
    pub email_per_target: Option<Limit>,
    pub sms: Option<Limit>,
    pub sms_per_ip: Option<Limit>,
    pub sms_per_target: Option<Limit>,
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub lifetime: Duration,
    pub idle_timeout: Option<Duration>,
    pub cookie_name: String,
    /// Cookie without `Max-Age`.
    pub use_session_cookie: bool,
}

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub login_id_keys: Vec<LoginIdKey>,
    pub password_policy: PasswordPolicy,
    /// `authenticator.password.force_change`.
    pub force_change_on_policy_violation: bool,
    /// `authenticator.password.expiry.force_change` duration when enabled.
    pub password_expiry: Option<Duration>,
    pub hashing: HashingParams,
    pub public_signup_disabled: bool,
    pub rate_limits: RateLimits,
    pub session: SessionSettings,
    /// Lifetime of a state token, and of a flow after its newest state (spec 5).
    pub state_ttl: Duration,
    /// `Secure` on cookies (public origin is https).
    pub secure_cookies: bool,
    /// Claim verification codes by email / by SMS.
    pub verification_email: OtpSettings,
    pub verification_sms: OtpSettings,
    /// Login codes by email / by SMS (`authenticator.oob_otp.*.valid_periods.code`).
    pub authentication_email: OtpSettings,
    pub authentication_sms: OtpSettings,
    /// Lifetime of a login link (`authenticator.oob_otp.email.valid_periods.link`).
    pub login_link_valid: Duration,
    /// `authentication.device_token`.
    pub device_token: super::device_token::DeviceTokenSettings,
    /// `forgot_password`: account recovery flows.
    pub account_recovery: super::recovery::RecoverySettings,
    /// `link` when `email_otp_mode: login_link`.
    pub email_otp_form: OtpForm,
    /// Channels of phone OTPs, from `phone_otp_mode`, in order.
    pub phone_channels: Vec<Channel>,
    /// `server.public_origin`, for links and WebSocket URLs.
    pub public_origin: String,
    /// `authentication.lockout` (disabled by default).
    pub lockout: LockoutConfig,
    /// `authentication.recovery_code.count`.
    pub recovery_code_count: usize,
    /// `authenticator.{totp,oob_otp.email,oob_otp.sms}.maximum`: authenticators of that type
    /// per user; `create_authenticator` does not offer one more.
    pub maximum_totp: u32,
    pub maximum_oob_email: u32,
    pub maximum_oob_sms: u32,
}

impl EngineSettings {
    /// The first key of a login ID type (`identification: email` uses it).
    pub fn key_of_type(&self, t: LoginIdType) -> Option<&LoginIdKey> {
        self.login_id_keys.iter().find(|k| k.login_id_type == t)
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        use crate::credentials::login_id::EmailRules;
        EngineSettings {
            login_id_keys: vec![LoginIdKey {
                key: "email".into(),
                login_id_type: LoginIdType::Email,
                rules: LoginIdRules::Email(EmailRules {
                    case_sensitive: false,
                    block_plus_sign: false,
                    ignore_dot_sign: false,
                    max_length: 320,
                }),
            }],
            password_policy: PasswordPolicy::default(),
            force_change_on_policy_violation: true,
            password_expiry: None,
            hashing: HashingParams::default(),
            public_signup_disabled: false,
            rate_limits: RateLimits::default(),
            session: SessionSettings {
                lifetime: Duration::from_secs(31_449_600),
                idle_timeout: Some(Duration::from_secs(2_592_000)),
                cookie_name: "session".into(),
                use_session_cookie: false,
            },
            state_ttl: Duration::from_secs(20 * 60),
            secure_cookies: false,
            verification_email: OtpSettings::default(),
            verification_sms: OtpSettings::default(),
            authentication_email: OtpSettings::default(),
            authentication_sms: OtpSettings::default(),
            login_link_valid: Duration::from_secs(20 * 60),
            account_recovery: super::recovery::RecoverySettings::default(),
            device_token: super::device_token::DeviceTokenSettings::default(),
            email_otp_form: OtpForm::Code,
            phone_channels: vec![Channel::Sms],
            public_origin: "http://127.0.0.1:3000".into(),
            lockout: LockoutConfig::default(),
            recovery_code_count: crate::credentials::recovery::DEFAULT_COUNT,
            maximum_totp: 99,
            maximum_oob_email: 99,
            maximum_oob_sms: 99,
        }
    }
}
