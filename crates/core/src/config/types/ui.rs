//! `ui`, `bot_protection` and `test_mode` (flow-config.md 5.7–5.9).

use serde::de::{Deserializer, Error};
use serde::{Deserialize, Serialize};

use super::oauth::FlowRef;
use crate::config::problem::quote;
use crate::config::values::{Pattern, Secret};
use crate::flow::def::{Channel, Destination, OtpForm};

/// Valid `{channel, otp_form}` pairs in canonical order (5.7).
pub const DESTINATIONS: [Destination; 5] = [
    Destination {
        channel: Channel::Email,
        otp_form: OtpForm::Link,
    },
    Destination {
        channel: Channel::Email,
        otp_form: OtpForm::Code,
    },
    Destination {
        channel: Channel::Sms,
        otp_form: OtpForm::Code,
    },
    Destination {
        channel: Channel::Sms,
        otp_form: OtpForm::Link,
    },
    Destination {
        channel: Channel::Whatsapp,
        otp_form: OtpForm::Code,
    },
];

pub fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Whatsapp => "whatsapp",
    }
}

pub fn otp_form_name(f: OtpForm) -> &'static str {
    match f {
        OtpForm::Code => "code",
        OtpForm::Link => "link",
    }
}

/// `email+link`, … for messages.
pub fn destination_text(d: Destination) -> String {
    format!("{}+{}", channel_name(d.channel), otp_form_name(d.otp_form))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    channel: Channel,
    otp_form: OtpForm,
}

/// One `{channel, otp_form}` item; the pair must be one of [`DESTINATIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DestinationItem(pub Destination);

impl<'de> Deserialize<'de> for DestinationItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawDestination::deserialize(d)?;
        let dest = Destination {
            channel: raw.channel,
            otp_form: raw.otp_form,
        };
        if !DESTINATIONS.contains(&dest) {
            let valid: Vec<String> = DESTINATIONS.iter().map(|d| destination_text(*d)).collect();
            return Err(D::Error::custom(format!(
                "{} is not a valid destination (valid: {})",
                quote(&destination_text(dest)),
                valid.join(", ")
            )));
        }
        Ok(DestinationItem(dest))
    }
}

pub(crate) fn destinations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Destination>, D::Error> {
    Ok(Vec::<DestinationItem>::deserialize(d)?
        .into_iter()
        .map(|i| i.0)
        .collect())
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// Built-in UI uses one `signup_login` flow.
    pub signup_login_flow_enabled: bool,
    pub forgot_password: UiForgotPasswordConfig,
    pub phone_input: PhoneInputConfig,
    /// [later]
    pub authentication_flow: UiFlowGroupsConfig,
}

/// `ui.forgot_password`: destinations of the generated recovery flow.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiForgotPasswordConfig {
    /// `channel` must be `email` (checked).
    #[serde(deserialize_with = "destinations")]
    pub email: Vec<Destination>,
    /// `channel` must be `sms` or `whatsapp` (checked).
    #[serde(deserialize_with = "destinations")]
    pub phone: Vec<Destination>,
}

impl Default for UiForgotPasswordConfig {
    fn default() -> Self {
        UiForgotPasswordConfig {
            email: vec![DESTINATIONS[0]],
            phone: vec![DESTINATIONS[2]],
        }
    }
}

/// `ui.phone_input`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhoneInputConfig {
    /// ISO 3166-1 alpha-2 codes; empty = all countries (an explicit list has ≥ 1).
    #[serde(deserialize_with = "crate::config::de::with::non_empty")]
    pub allowlist: Vec<String>,
    pub validation: PhoneValidationConfig,
    /// Built-in UI only; each in `allowlist`.
    pub pinned_list: Vec<String>,
    pub preselect_by_ip_disabled: bool,
}

impl PhoneInputConfig {
    /// Whether numbers of `country` (alpha-2) are accepted.
    pub fn allows_country(&self, country: &str) -> bool {
        self.allowlist.is_empty() || self.allowlist.iter().any(|c| c == country)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhoneValidationConfig {
    pub implementation: PhoneValidationImplementation,
    pub libphonenumber: LibphonenumberConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneValidationImplementation {
    #[default]
    Libphonenumber,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LibphonenumberConfig {
    pub validation_method: PhoneValidationMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum PhoneValidationMethod {
    /// A valid number.
    #[default]
    #[serde(rename = "isValidNumber")]
    IsValidNumber,
    /// Only a possible length.
    #[serde(rename = "isPossibleNumber")]
    IsPossibleNumber,
}

/// `ui.authentication_flow` [later].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiFlowGroupsConfig {
    pub groups: Vec<UiFlowGroup>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiFlowGroup {
    pub name: String,
    #[serde(default)]
    pub flows: Vec<FlowRef>,
}

// ---------------------------------------------------------------------------------------
// bot_protection [later]
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BotProtectionConfig {
    pub enabled: bool,
    pub provider: Option<BotProviderConfig>,
    pub requirements: BotRequirementsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BotProviderType {
    Cloudflare,
    Recaptchav2,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotProviderConfig {
    pub r#type: BotProviderType,
    pub site_key: String,
    #[serde(default)]
    pub secret_key: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BotMode {
    Never,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotRequirement {
    pub mode: BotMode,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BotRequirementsConfig {
    pub signup_or_login: Option<BotRequirement>,
    pub account_recovery: Option<BotRequirement>,
    pub password: Option<BotRequirement>,
    pub oob_otp_email: Option<BotRequirement>,
    pub oob_otp_sms: Option<BotRequirement>,
}

// ---------------------------------------------------------------------------------------
// test_mode
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestModeConfig {
    pub oob_otp: TestOobOtpConfig,
    /// [later] (and `sms`, `whatsapp`).
    pub email: TestSuppressionConfig,
    pub sms: TestSuppressionConfig,
    pub whatsapp: TestSuppressionConfig,
}

impl TestModeConfig {
    /// Whether any part is enabled (`serve` warns at every start then).
    pub fn any_enabled(&self) -> bool {
        self.oob_otp.enabled || self.email.enabled || self.sms.enabled || self.whatsapp.enabled
    }

    /// The fixed OTP for `target` (email address or E.164 number): the first matching
    /// rule decides; `None` = random code.
    pub fn fixed_code_for(&self, target: &str) -> Option<&str> {
        if !self.oob_otp.enabled {
            return None;
        }
        self.oob_otp
            .rules
            .iter()
            .find(|r| r.regex.is_match(target))
            .and_then(|r| r.fixed_code.as_deref())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestOobOtpConfig {
    pub enabled: bool,
    pub rules: Vec<FixedCodeRule>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedCodeRule {
    pub regex: Pattern,
    #[serde(default)]
    pub fixed_code: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestSuppressionConfig {
    pub enabled: bool,
    pub rules: Vec<SuppressionRule>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressionRule {
    pub regex: Pattern,
    #[serde(default)]
    pub suppressed: bool,
}
