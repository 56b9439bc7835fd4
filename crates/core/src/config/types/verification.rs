//! `verification` and `forgot_password` (flow-config.md 5.4, 5.5).

use std::time::Duration;

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};

use super::authenticator::{RawValidPeriods, ValidPeriods};
use crate::config::de::with;
use crate::config::rate_limit::{ForgotPasswordRateLimits, VerificationRateLimits};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Criteria {
    #[default]
    Any,
    All,
}

/// `verification.claims.{email,phone_number}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimConfig {
    /// The claim can be verified.
    pub enabled: bool,
    /// Generated signup flows verify it (7.8).
    pub required: bool,
}

impl Default for ClaimConfig {
    fn default() -> Self {
        ClaimConfig {
            enabled: true,
            required: true,
        }
    }
}

impl ClaimConfig {
    /// Generated signup flows get a `verify` step for this claim.
    pub fn verified_at_signup(&self) -> bool {
        self.enabled && self.required
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimsConfig {
    pub email: ClaimConfig,
    pub phone_number: ClaimConfig,
}

/// `verification`.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationConfig {
    pub claims: ClaimsConfig,
    pub criteria: Criteria,
    /// `code_expiry_seconds` (deprecated) fills it when absent.
    pub code_valid_period: Duration,
    pub rate_limits: VerificationRateLimits,
}

impl Default for VerificationConfig {
    fn default() -> Self {
        VerificationConfig {
            claims: ClaimsConfig::default(),
            criteria: Criteria::Any,
            code_valid_period: Duration::from_secs(300),
            rate_limits: VerificationRateLimits::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerification {
    #[serde(default)]
    claims: ClaimsConfig,
    #[serde(default)]
    criteria: Criteria,
    #[serde(default, deserialize_with = "with::opt_duration")]
    code_valid_period: Option<Duration>,
    #[serde(default, deserialize_with = "opt_seconds_min_60")]
    code_expiry_seconds: Option<u64>,
    #[serde(default)]
    rate_limits: VerificationRateLimits,
}

fn opt_seconds_min_60<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    with::u64_min::<D, 60>(d).map(Some)
}

impl<'de> Deserialize<'de> for VerificationConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawVerification::deserialize(d)?;
        let fallback = raw.code_expiry_seconds.map(Duration::from_secs);
        Ok(VerificationConfig {
            claims: raw.claims,
            criteria: raw.criteria,
            code_valid_period: raw
                .code_valid_period
                .or(fallback)
                .unwrap_or(Duration::from_secs(300)),
            rate_limits: raw.rate_limits,
        })
    }
}

/// `forgot_password`.
#[derive(Debug, Clone, PartialEq)]
pub struct ForgotPasswordConfig {
    /// `false`: account recovery answers `ForgotPasswordFailed`.
    pub enabled: bool,
    pub valid_periods: ValidPeriods,
    pub rate_limits: ForgotPasswordRateLimits,
}

impl Default for ForgotPasswordConfig {
    fn default() -> Self {
        ForgotPasswordConfig {
            enabled: true,
            valid_periods: ValidPeriods::default(),
            rate_limits: ForgotPasswordRateLimits::default(),
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForgotPassword {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    valid_periods: RawValidPeriods,
    #[serde(default, deserialize_with = "with::opt_duration")]
    code_valid_period: Option<Duration>,
    #[serde(default, deserialize_with = "opt_seconds_min_1")]
    reset_code_expiry_seconds: Option<u64>,
    #[serde(default)]
    rate_limits: ForgotPasswordRateLimits,
}

fn opt_seconds_min_1<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    with::u64_min::<D, 1>(d).map(Some)
}

impl<'de> Deserialize<'de> for ForgotPasswordConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawForgotPassword::deserialize(d)?;
        // Deprecated fallbacks of `.link`: `code_valid_period`, then the seconds.
        let link_fallback = raw
            .code_valid_period
            .or(raw.reset_code_expiry_seconds.map(Duration::from_secs));
        Ok(ForgotPasswordConfig {
            enabled: raw.enabled,
            valid_periods: raw.valid_periods.resolve(None, link_fallback),
            rate_limits: raw.rate_limits,
        })
    }
}
