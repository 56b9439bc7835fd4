//! `authenticator` (flow-config.md 5.3).

use std::time::Duration;

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};

use crate::config::de::with;
use crate::credentials::password::{HashingParams, PasswordPolicy};
use crate::flow::def::Channel;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthenticatorConfig {
    pub password: PasswordAuthenticatorConfig,
    pub oob_otp: OobOtpAuthenticatorConfig,
    pub totp: TotpAuthenticatorConfig,
}

/// `authenticator.password`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordAuthenticatorConfig {
    /// `max_length` is not a key here (only in `auth_api`): rejected when loading.
    pub policy: PasswordPolicy,
    /// `change_password` runs when the password used breaks the policy.
    pub force_change: bool,
    pub expiry: PasswordExpiryConfig,
    /// (authflow) argon2id parameters.
    pub hashing: HashingParams,
}

impl Default for PasswordAuthenticatorConfig {
    fn default() -> Self {
        PasswordAuthenticatorConfig {
            policy: PasswordPolicy::default(),
            force_change: true,
            expiry: PasswordExpiryConfig::default(),
            hashing: HashingParams::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordExpiryConfig {
    pub force_change: ForceChangeConfig,
}

/// `authenticator.password.expiry.force_change`; the duration is required when enabled.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForceChangeConfig {
    pub enabled: bool,
    #[serde(deserialize_with = "with::opt_duration")]
    pub duration_since_last_update: Option<Duration>,
}

impl PasswordAuthenticatorConfig {
    /// Passwords older than this must be changed at login; `None` = no expiry.
    pub fn expiry(&self) -> Option<Duration> {
        let fc = &self.expiry.force_change;
        fc.enabled
            .then_some(fc.duration_since_last_update)
            .flatten()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailOtpMode {
    #[default]
    Code,
    LoginLink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneOtpMode {
    #[default]
    Sms,
    Whatsapp,
    WhatsappSms,
}

impl PhoneOtpMode {
    /// The channels offered, in order.
    pub fn channels(self) -> &'static [Channel] {
        match self {
            PhoneOtpMode::Sms => &[Channel::Sms],
            PhoneOtpMode::Whatsapp => &[Channel::Whatsapp],
            PhoneOtpMode::WhatsappSms => &[Channel::Whatsapp, Channel::Sms],
        }
    }
}

/// Lifetimes of codes and links (`valid_periods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidPeriods {
    pub code: Duration,
    pub link: Duration,
}

impl Default for ValidPeriods {
    fn default() -> Self {
        ValidPeriods {
            code: Duration::from_secs(300),
            link: Duration::from_secs(20 * 60),
        }
    }
}

/// `valid_periods` as written; absent parts are filled by deprecated keys, then defaults.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawValidPeriods {
    #[serde(deserialize_with = "with::opt_duration")]
    pub code: Option<Duration>,
    #[serde(deserialize_with = "with::opt_duration")]
    pub link: Option<Duration>,
}

impl RawValidPeriods {
    pub fn resolve(
        self,
        code_fallback: Option<Duration>,
        link_fallback: Option<Duration>,
    ) -> ValidPeriods {
        let d = ValidPeriods::default();
        ValidPeriods {
            code: self.code.or(code_fallback).unwrap_or(d.code),
            link: self.link.or(link_fallback).unwrap_or(d.link),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OobOtpAuthenticatorConfig {
    pub email: OobOtpEmailConfig,
    pub sms: OobOtpSmsConfig,
}

fn ninety_nine() -> u32 {
    99
}

/// `authenticator.oob_otp.email`.
#[derive(Debug, Clone, PartialEq)]
pub struct OobOtpEmailConfig {
    pub email_otp_mode: EmailOtpMode,
    pub valid_periods: ValidPeriods,
    /// Authenticators of this type per user.
    pub maximum: u32,
}

impl Default for OobOtpEmailConfig {
    fn default() -> Self {
        OobOtpEmailConfig {
            email_otp_mode: EmailOtpMode::Code,
            valid_periods: ValidPeriods::default(),
            maximum: ninety_nine(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOobOtpEmail {
    #[serde(default)]
    email_otp_mode: EmailOtpMode,
    #[serde(default)]
    valid_periods: RawValidPeriods,
    #[serde(default, deserialize_with = "with::opt_duration")]
    code_valid_period: Option<Duration>,
    #[serde(default = "ninety_nine")]
    maximum: u32,
}

impl<'de> Deserialize<'de> for OobOtpEmailConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawOobOtpEmail::deserialize(d)?;
        // The deprecated key fills the period of the configured mode.
        let (code_fb, link_fb) = match raw.email_otp_mode {
            EmailOtpMode::Code => (raw.code_valid_period, None),
            EmailOtpMode::LoginLink => (None, raw.code_valid_period),
        };
        Ok(OobOtpEmailConfig {
            email_otp_mode: raw.email_otp_mode,
            valid_periods: raw.valid_periods.resolve(code_fb, link_fb),
            maximum: raw.maximum,
        })
    }
}

/// `authenticator.oob_otp.sms`.
#[derive(Debug, Clone, PartialEq)]
pub struct OobOtpSmsConfig {
    pub phone_otp_mode: PhoneOtpMode,
    pub valid_periods: ValidPeriods,
    pub maximum: u32,
}

impl Default for OobOtpSmsConfig {
    fn default() -> Self {
        OobOtpSmsConfig {
            phone_otp_mode: PhoneOtpMode::Sms,
            valid_periods: ValidPeriods::default(),
            maximum: ninety_nine(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOobOtpSms {
    #[serde(default)]
    phone_otp_mode: PhoneOtpMode,
    #[serde(default)]
    valid_periods: RawValidPeriods,
    #[serde(default, deserialize_with = "with::opt_duration")]
    code_valid_period: Option<Duration>,
    #[serde(default = "ninety_nine")]
    maximum: u32,
}

impl<'de> Deserialize<'de> for OobOtpSmsConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawOobOtpSms::deserialize(d)?;
        Ok(OobOtpSmsConfig {
            phone_otp_mode: raw.phone_otp_mode,
            valid_periods: raw.valid_periods.resolve(raw.code_valid_period, None),
            maximum: raw.maximum,
        })
    }
}

/// `authenticator.totp`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TotpAuthenticatorConfig {
    pub maximum: u32,
}

impl Default for TotpAuthenticatorConfig {
    fn default() -> Self {
        TotpAuthenticatorConfig {
            maximum: ninety_nine(),
        }
    }
}
