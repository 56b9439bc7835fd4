//! `authentication` (flow-config.md 5.2).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::{Deserializer, Error};
use serde::{Deserialize, Serialize};

use crate::config::de::with;
use crate::config::problem::quote;
use crate::config::rate_limit::AuthenticationRateLimits;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityType {
    LoginId,
    /// [later]
    Oauth,
    /// [later]
    Passkey,
    /// [later]
    Ldap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrimaryAuthenticatorType {
    Password,
    OobOtpEmail,
    OobOtpSms,
    /// [later]
    Passkey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondaryAuthenticatorType {
    Totp,
    OobOtpEmail,
    OobOtpSms,
    Password,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondaryAuthenticationMode {
    Disabled,
    #[default]
    IfExists,
    Required,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthenticationConfig {
    /// Identity types of generated flows, in order; unique.
    #[serde(deserialize_with = "with::unique")]
    pub identities: Vec<IdentityType>,
    #[serde(deserialize_with = "with::unique")]
    pub primary_authenticators: Vec<PrimaryAuthenticatorType>,
    #[serde(deserialize_with = "with::unique")]
    pub secondary_authenticators: Vec<SecondaryAuthenticatorType>,
    pub secondary_authentication_mode: SecondaryAuthenticationMode,
    /// [later]
    pub secondary_authentication_grace_period: GracePeriodConfig,
    pub device_token: DeviceTokenConfig,
    pub recovery_code: RecoveryCodeConfig,
    /// Signups answer `AuthenticationFlowNoPublicSignup`.
    pub public_signup_disabled: bool,
    pub rate_limits: AuthenticationRateLimits,
    pub lockout: LockoutConfig,
}

impl Default for AuthenticationConfig {
    fn default() -> Self {
        AuthenticationConfig {
            identities: vec![IdentityType::Oauth, IdentityType::LoginId],
            primary_authenticators: vec![PrimaryAuthenticatorType::Password],
            secondary_authenticators: vec![SecondaryAuthenticatorType::Totp],
            secondary_authentication_mode: SecondaryAuthenticationMode::IfExists,
            secondary_authentication_grace_period: GracePeriodConfig::default(),
            device_token: DeviceTokenConfig::default(),
            recovery_code: RecoveryCodeConfig::default(),
            public_signup_disabled: false,
            rate_limits: AuthenticationRateLimits::default(),
            lockout: LockoutConfig::default(),
        }
    }
}

/// `authentication.secondary_authentication_grace_period` [later].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GracePeriodConfig {
    pub enabled: bool,
    #[serde(deserialize_with = "rfc3339")]
    pub end_at: Option<DateTime<Utc>>,
}

fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let s = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| D::Error::custom(format!("must be an RFC 3339 time (got {})", quote(&s))))
}

/// `authentication.device_token`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceTokenConfig {
    pub disabled: bool,
    #[serde(deserialize_with = "with::u32_min::<_, 1>")]
    pub expire_in_days: u32,
}

impl Default for DeviceTokenConfig {
    fn default() -> Self {
        DeviceTokenConfig {
            disabled: false,
            expire_in_days: 30,
        }
    }
}

impl DeviceTokenConfig {
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(u64::from(self.expire_in_days) * 86_400)
    }
}

/// `authentication.recovery_code`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryCodeConfig {
    pub disabled: bool,
    #[serde(deserialize_with = "with::u32_range::<_, 10, 50>")]
    pub count: u32,
    /// [later]
    pub list_enabled: bool,
}

impl Default for RecoveryCodeConfig {
    fn default() -> Self {
        RecoveryCodeConfig {
            disabled: false,
            count: 16,
            list_enabled: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockoutType {
    PerUser,
    PerUserPerIp,
}

/// `{enabled}` of a lockout method; `enabled` is required in the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutMethod {
    pub enabled: bool,
}

/// The kinds of failures `authentication.lockout` can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockoutKind {
    Password,
    Totp,
    OobOtp,
    RecoveryCode,
}

/// `authentication.lockout`. With `max_attempts` >= 1 the durations and
/// `lockout_type` are required (checked when loading), so they are `Some` then.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// `0` = disabled.
    pub max_attempts: u32,
    #[serde(deserialize_with = "with::opt_duration")]
    pub history_duration: Option<Duration>,
    #[serde(deserialize_with = "with::opt_duration")]
    pub minimum_duration: Option<Duration>,
    #[serde(deserialize_with = "with::opt_duration")]
    pub maximum_duration: Option<Duration>,
    pub backoff_factor: f64,
    pub lockout_type: Option<LockoutType>,
    pub password: Option<LockoutMethod>,
    pub totp: Option<LockoutMethod>,
    pub oob_otp: Option<LockoutMethod>,
    pub recovery_code: Option<LockoutMethod>,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            max_attempts: 0,
            history_duration: None,
            minimum_duration: None,
            maximum_duration: None,
            backoff_factor: 1.0,
            lockout_type: None,
            password: None,
            totp: None,
            oob_otp: None,
            recovery_code: None,
        }
    }
}

impl LockoutConfig {
    pub fn is_enabled(&self) -> bool {
        self.max_attempts >= 1
    }

    /// Whether failures of `kind` count (absent object = not counted).
    pub fn counts(&self, kind: LockoutKind) -> bool {
        let method = match kind {
            LockoutKind::Password => self.password,
            LockoutKind::Totp => self.totp,
            LockoutKind::OobOtp => self.oob_otp,
            LockoutKind::RecoveryCode => self.recovery_code,
        };
        self.is_enabled() && method.is_some_and(|m| m.enabled)
    }

    /// Length of the `n`-th lockout (from 1): `minimum × backoff^(n−1)`, capped.
    pub fn duration_of(&self, n: u32) -> Duration {
        let (Some(min), Some(max)) = (self.minimum_duration, self.maximum_duration) else {
            return Duration::ZERO;
        };
        let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = min.as_secs_f64() * self.backoff_factor.powi(exponent);
        if !secs.is_finite() || secs >= max.as_secs_f64() {
            max
        } else {
            Duration::from_secs_f64(secs)
        }
    }
}
