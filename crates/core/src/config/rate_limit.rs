//! Rate limits (flow-config.md 6): the object, and every limit of the table with an
//! accessor that applies its fallback or default.
//!
//! Accessors return `Option<RateLimit>`: `None` = off (unlimited); `Some` is always
//! enabled. Naming: `<section>.rate_limits.<accessor>()`:
//!
//! | path | accessor |
//! |---|---|
//! | `authentication_flow.rate_limits.per_ip` | `authentication_flow.rate_limits.per_ip()` |
//! | `authentication.rate_limits.general.*` | `general_per_ip()`, `general_per_user_per_ip()` |
//! | `authentication.rate_limits.<m>.*` | `per_ip(m)`, `per_user_per_ip(m)` with [`AuthMethod`]; shorthands `password_per_ip()`, `password_per_user_per_ip()` |
//! | `authentication.rate_limits.oob_otp.<c>.*` | `oob_otp_trigger_per_ip(c)`, `oob_otp_trigger_per_user(c)`, `oob_otp_validate_per_ip(c)`, `oob_otp_validate_per_user_per_ip(c)` with [`OtpChannel`]; plain values `oob_otp.<c>.trigger_cooldown`, `.max_failed_attempts_revoke_otp` |
//! | `authentication.rate_limits.signup.per_ip` | `signup_per_ip()` |
//! | `authentication.rate_limits.account_enumeration.per_ip` | `account_enumeration_per_ip()` |
//! | `verification.rate_limits.<c>.*` | `trigger_per_ip(c)`, `trigger_per_user(c)`, `validate_per_ip(c)`; `channel(c)` for the plain values |
//! | `forgot_password.rate_limits.<c>.*` | `trigger_per_ip(c)`, `validate_per_ip(c)`; `channel(c)` |
//! | `messaging.rate_limits.*` | `email()`, `sms()`, `email_per_ip()`, `email_per_target()`, `sms_per_ip()`, `sms_per_target()` |
//! | `auth_api.rate_limits.*` | `anti_abuse_token_per_ip()`, `anti_abuse_token_per_identity()` |

use std::time::Duration;

use serde::de::{Deserializer, Error};
use serde::{Deserialize, Serialize};

use super::de::with;
use crate::flow::def::Channel;

/// A token bucket of `burst` tokens refilled at `burst` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    pub enabled: bool,
    /// Zero when the limit is given as off without a period.
    pub period: Duration,
    pub burst: u32,
}

impl RateLimit {
    pub const fn on(period: Duration, burst: u32) -> Self {
        RateLimit {
            enabled: true,
            period,
            burst,
        }
    }

    const fn per_minute(burst: u32) -> Self {
        Self::on(Duration::from_secs(60), burst)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default, deserialize_with = "with::opt_duration")]
    period: Option<Duration>,
    #[serde(default = "one", deserialize_with = "with::u32_min::<_, 1>")]
    burst: u32,
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

impl<'de> Deserialize<'de> for RateLimit {
    /// `enabled` is `true` when the object is present; `period` is required then.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawRateLimit::deserialize(d)?;
        match (raw.enabled, raw.period) {
            (true, None) => Err(D::Error::missing_field("period")),
            (enabled, period) => Ok(RateLimit {
                enabled,
                period: period.unwrap_or(Duration::ZERO),
                burst: raw.burst,
            }),
        }
    }
}

/// The effective limit: `None` when switched off, the fallback when absent.
pub fn resolve(limit: &Option<RateLimit>, fallback: Option<RateLimit>) -> Option<RateLimit> {
    match limit {
        Some(l) if !l.enabled => None,
        Some(l) => Some(*l),
        None => fallback,
    }
}

/// The two OTP channel groups of the rate-limit table; `sms` also governs WhatsApp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtpChannel {
    Email,
    Sms,
}

impl From<Channel> for OtpChannel {
    fn from(c: Channel) -> Self {
        match c {
            Channel::Email => OtpChannel::Email,
            Channel::Sms | Channel::Whatsapp => OtpChannel::Sms,
        }
    }
}

/// The authentication methods with their own failure limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    Password,
    Totp,
    RecoveryCode,
    DeviceToken,
    /// [later]; only `per_ip`.
    Passkey,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerIp {
    pub per_ip: Option<RateLimit>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerIpAndUser {
    pub per_ip: Option<RateLimit>,
    pub per_user_per_ip: Option<RateLimit>,
}

fn one_minute() -> Duration {
    Duration::from_secs(60)
}

fn five() -> u32 {
    5
}

/// `authentication.rate_limits.oob_otp.{email,sms}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OobOtpLimits {
    pub trigger_per_ip: Option<RateLimit>,
    pub trigger_per_user: Option<RateLimit>,
    pub validate_per_ip: Option<RateLimit>,
    pub validate_per_user_per_ip: Option<RateLimit>,
    /// Minimum time between two sends to one destination and within one flow.
    #[serde(deserialize_with = "with::duration")]
    pub trigger_cooldown: Duration,
    /// Wrong codes before the code is revoked.
    #[serde(deserialize_with = "with::u32_min::<_, 1>")]
    pub max_failed_attempts_revoke_otp: u32,
}

impl Default for OobOtpLimits {
    fn default() -> Self {
        OobOtpLimits {
            trigger_per_ip: None,
            trigger_per_user: None,
            validate_per_ip: None,
            validate_per_user_per_ip: None,
            trigger_cooldown: one_minute(),
            max_failed_attempts_revoke_otp: five(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OobOtpChannels {
    pub email: OobOtpLimits,
    pub sms: OobOtpLimits,
}

impl OobOtpChannels {
    pub fn channel(&self, c: OtpChannel) -> &OobOtpLimits {
        match c {
            OtpChannel::Email => &self.email,
            OtpChannel::Sms => &self.sms,
        }
    }
}

/// `authentication.rate_limits`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthenticationRateLimits {
    pub general: PerIpAndUser,
    pub password: PerIpAndUser,
    pub totp: PerIpAndUser,
    pub recovery_code: PerIpAndUser,
    pub device_token: PerIpAndUser,
    pub passkey: PerIp,
    pub oob_otp: OobOtpChannels,
    pub signup: PerIp,
    pub account_enumeration: PerIp,
}

impl AuthenticationRateLimits {
    pub fn general_per_ip(&self) -> Option<RateLimit> {
        resolve(&self.general.per_ip, Some(RateLimit::per_minute(60)))
    }

    pub fn general_per_user_per_ip(&self) -> Option<RateLimit> {
        resolve(
            &self.general.per_user_per_ip,
            Some(RateLimit::per_minute(10)),
        )
    }

    /// Failures of `method` per IP (falls back to `general.per_ip`).
    pub fn per_ip(&self, method: AuthMethod) -> Option<RateLimit> {
        let own = match method {
            AuthMethod::Password => &self.password.per_ip,
            AuthMethod::Totp => &self.totp.per_ip,
            AuthMethod::RecoveryCode => &self.recovery_code.per_ip,
            AuthMethod::DeviceToken => &self.device_token.per_ip,
            AuthMethod::Passkey => &self.passkey.per_ip,
        };
        resolve(own, self.general_per_ip())
    }

    /// Failures of `method` per user and IP (falls back to `general.per_user_per_ip`;
    /// passkeys have no such limit).
    pub fn per_user_per_ip(&self, method: AuthMethod) -> Option<RateLimit> {
        let own = match method {
            AuthMethod::Password => &self.password.per_user_per_ip,
            AuthMethod::Totp => &self.totp.per_user_per_ip,
            AuthMethod::RecoveryCode => &self.recovery_code.per_user_per_ip,
            AuthMethod::DeviceToken => &self.device_token.per_user_per_ip,
            AuthMethod::Passkey => return None,
        };
        resolve(own, self.general_per_user_per_ip())
    }

    pub fn password_per_ip(&self) -> Option<RateLimit> {
        self.per_ip(AuthMethod::Password)
    }

    pub fn password_per_user_per_ip(&self) -> Option<RateLimit> {
        self.per_user_per_ip(AuthMethod::Password)
    }

    /// Login OTPs sent per IP (default off).
    pub fn oob_otp_trigger_per_ip(&self, c: OtpChannel) -> Option<RateLimit> {
        resolve(&self.oob_otp.channel(c).trigger_per_ip, None)
    }

    /// Login OTPs sent per user (default off).
    pub fn oob_otp_trigger_per_user(&self, c: OtpChannel) -> Option<RateLimit> {
        resolve(&self.oob_otp.channel(c).trigger_per_user, None)
    }

    /// Wrong login OTPs per IP (falls back to `general.per_ip`).
    pub fn oob_otp_validate_per_ip(&self, c: OtpChannel) -> Option<RateLimit> {
        resolve(
            &self.oob_otp.channel(c).validate_per_ip,
            self.general_per_ip(),
        )
    }

    /// Wrong login OTPs per user and IP (falls back to `general.per_user_per_ip`).
    pub fn oob_otp_validate_per_user_per_ip(&self, c: OtpChannel) -> Option<RateLimit> {
        resolve(
            &self.oob_otp.channel(c).validate_per_user_per_ip,
            self.general_per_user_per_ip(),
        )
    }

    /// Finished signups per IP (default on, 1m, 200).
    pub fn signup_per_ip(&self) -> Option<RateLimit> {
        resolve(&self.signup.per_ip, Some(RateLimit::per_minute(200)))
    }

    /// Login identifications of an unknown login ID per IP (default on, 1m, 10).
    pub fn account_enumeration_per_ip(&self) -> Option<RateLimit> {
        resolve(
            &self.account_enumeration.per_ip,
            Some(RateLimit::per_minute(10)),
        )
    }
}

/// `verification.rate_limits.{email,sms}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerificationLimits {
    pub trigger_per_ip: Option<RateLimit>,
    pub trigger_per_user: Option<RateLimit>,
    pub validate_per_ip: Option<RateLimit>,
    #[serde(deserialize_with = "with::duration")]
    pub trigger_cooldown: Duration,
    #[serde(deserialize_with = "with::u32_min::<_, 1>")]
    pub max_failed_attempts_revoke_otp: u32,
}

impl Default for VerificationLimits {
    fn default() -> Self {
        VerificationLimits {
            trigger_per_ip: None,
            trigger_per_user: None,
            validate_per_ip: None,
            trigger_cooldown: one_minute(),
            max_failed_attempts_revoke_otp: five(),
        }
    }
}

/// `verification.rate_limits`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerificationRateLimits {
    pub email: VerificationLimits,
    pub sms: VerificationLimits,
}

impl VerificationRateLimits {
    pub fn channel(&self, c: OtpChannel) -> &VerificationLimits {
        match c {
            OtpChannel::Email => &self.email,
            OtpChannel::Sms => &self.sms,
        }
    }

    pub fn trigger_per_ip(&self, c: OtpChannel) -> Option<RateLimit> {
        resolve(&self.channel(c).trigger_per_ip, None)
    }

    pub fn trigger_per_user(&self, c: OtpChannel) -> Option<RateLimit> {
        resolve(&self.channel(c).trigger_per_user, None)
    }

    /// Wrong verification codes per IP (default on, 1m, 60).
    pub fn validate_per_ip(&self, c: OtpChannel) -> Option<RateLimit> {
        resolve(
            &self.channel(c).validate_per_ip,
            Some(RateLimit::per_minute(60)),
        )
    }
}

/// `forgot_password.rate_limits.{email,sms}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForgotPasswordLimits {
    pub trigger_per_ip: Option<RateLimit>,
    pub validate_per_ip: Option<RateLimit>,
    #[serde(deserialize_with = "with::duration")]
    pub trigger_cooldown: Duration,
    /// authflow addition (Authgear has none under `forgot_password`).
    #[serde(deserialize_with = "with::u32_min::<_, 1>")]
    pub max_failed_attempts_revoke_otp: u32,
}

impl Default for ForgotPasswordLimits {
    fn default() -> Self {
        ForgotPasswordLimits {
            trigger_per_ip: None,
            validate_per_ip: None,
            trigger_cooldown: one_minute(),
            max_failed_attempts_revoke_otp: five(),
        }
    }
}

/// `forgot_password.rate_limits`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForgotPasswordRateLimits {
    pub email: ForgotPasswordLimits,
    pub sms: ForgotPasswordLimits,
}

impl ForgotPasswordRateLimits {
    pub fn channel(&self, c: OtpChannel) -> &ForgotPasswordLimits {
        match c {
            OtpChannel::Email => &self.email,
            OtpChannel::Sms => &self.sms,
        }
    }

    pub fn trigger_per_ip(&self, c: OtpChannel) -> Option<RateLimit> {
        resolve(&self.channel(c).trigger_per_ip, None)
    }

    /// Wrong recovery codes per IP (default on, 1m, 60).
    pub fn validate_per_ip(&self, c: OtpChannel) -> Option<RateLimit> {
        resolve(
            &self.channel(c).validate_per_ip,
            Some(RateLimit::per_minute(60)),
        )
    }
}

/// `messaging.rate_limits`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagingRateLimits {
    pub email: Option<RateLimit>,
    pub sms: Option<RateLimit>,
    pub email_per_ip: Option<RateLimit>,
    pub email_per_target: Option<RateLimit>,
    pub sms_per_ip: Option<RateLimit>,
    pub sms_per_target: Option<RateLimit>,
}

impl MessagingRateLimits {
    /// All emails of the server (default off).
    pub fn email(&self) -> Option<RateLimit> {
        resolve(&self.email, None)
    }

    /// All SMS/WhatsApp messages of the server (default off).
    pub fn sms(&self) -> Option<RateLimit> {
        resolve(&self.sms, None)
    }

    pub fn email_per_ip(&self) -> Option<RateLimit> {
        resolve(&self.email_per_ip, Some(RateLimit::per_minute(200)))
    }

    pub fn email_per_target(&self) -> Option<RateLimit> {
        resolve(
            &self.email_per_target,
            Some(RateLimit::on(Duration::from_secs(24 * 3600), 50)),
        )
    }

    pub fn sms_per_ip(&self) -> Option<RateLimit> {
        resolve(&self.sms_per_ip, Some(RateLimit::per_minute(60)))
    }

    pub fn sms_per_target(&self) -> Option<RateLimit> {
        resolve(
            &self.sms_per_target,
            Some(RateLimit::on(Duration::from_secs(3600), 10)),
        )
    }
}

/// `auth_api.rate_limits`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthApiRateLimits {
    pub anti_abuse_token_per_ip: Option<RateLimit>,
    pub anti_abuse_token_per_identity: Option<RateLimit>,
}

impl AuthApiRateLimits {
    pub fn anti_abuse_token_per_ip(&self) -> Option<RateLimit> {
        resolve(
            &self.anti_abuse_token_per_ip,
            Some(RateLimit::per_minute(60)),
        )
    }

    pub fn anti_abuse_token_per_identity(&self) -> Option<RateLimit> {
        resolve(
            &self.anti_abuse_token_per_identity,
            Some(RateLimit::per_minute(10)),
        )
    }
}

/// `authentication_flow.rate_limits`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowRateLimits {
    pub per_ip: Option<RateLimit>,
}

impl FlowRateLimits {
    /// Every request to `/api/v1/authentication_flows*` (default on, 1m, 1200).
    pub fn per_ip(&self) -> Option<RateLimit> {
        resolve(&self.per_ip, Some(RateLimit::per_minute(1200)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(secs: u64, burst: u32) -> Option<RateLimit> {
        Some(RateLimit::on(Duration::from_secs(secs), burst))
    }

    const OFF: Option<RateLimit> = Some(RateLimit {
        enabled: false,
        period: Duration::ZERO,
        burst: 1,
    });

    #[test]
    fn resolve_applies_fallback_only_when_absent() {
        assert_eq!(resolve(&None, limit(60, 5)), limit(60, 5));
        assert_eq!(resolve(&OFF, limit(60, 5)), None);
        assert_eq!(resolve(&limit(1, 2), limit(60, 5)), limit(1, 2));
    }

    #[test]
    fn method_limits_fall_back_to_general() {
        let mut r = AuthenticationRateLimits::default();
        assert_eq!(r.password_per_ip(), limit(60, 60));
        assert_eq!(r.password_per_user_per_ip(), limit(60, 10));
        r.general.per_ip = limit(10, 3);
        assert_eq!(r.per_ip(AuthMethod::Totp), limit(10, 3));
        r.totp.per_ip = OFF;
        assert_eq!(r.per_ip(AuthMethod::Totp), None);
        r.general.per_user_per_ip = OFF;
        assert_eq!(r.oob_otp_validate_per_user_per_ip(OtpChannel::Sms), None);
        assert_eq!(r.oob_otp_trigger_per_ip(OtpChannel::Email), None);
        assert_eq!(r.signup_per_ip(), limit(60, 200));
        assert_eq!(r.account_enumeration_per_ip(), limit(60, 10));
    }

    #[test]
    fn other_defaults() {
        assert_eq!(FlowRateLimits::default().per_ip(), limit(60, 1200));
        let m = MessagingRateLimits::default();
        assert_eq!(m.email(), None);
        assert_eq!(m.email_per_target(), limit(86_400, 50));
        assert_eq!(m.sms_per_target(), limit(3600, 10));
        let v = VerificationRateLimits::default();
        assert_eq!(v.validate_per_ip(OtpChannel::Email), limit(60, 60));
        assert_eq!(
            v.channel(OtpChannel::Sms).trigger_cooldown,
            Duration::from_secs(60)
        );
        let a = AuthApiRateLimits::default();
        assert_eq!(a.anti_abuse_token_per_identity(), limit(60, 10));
    }
}
