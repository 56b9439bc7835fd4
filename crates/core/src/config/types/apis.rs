//! `session`, `auth_api` and `hanko_api` (flow-config.md 4.6–4.8).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::de::with;
use crate::config::rate_limit::AuthApiRateLimits;
use crate::config::values;
use crate::credentials::password::PasswordPolicy;

/// `session` (4.6): the IdP session created when a flow finishes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    #[serde(deserialize_with = "with::u64_min::<_, 1>")]
    pub lifetime_seconds: u64,
    pub idle_timeout_enabled: bool,
    #[serde(deserialize_with = "with::u64_min::<_, 1>")]
    pub idle_timeout_seconds: u64,
    /// Cookie without `Max-Age`; `cookie_non_persistent` is a deprecated alias.
    #[serde(alias = "cookie_non_persistent")]
    pub use_session_cookie: bool,
    #[serde(deserialize_with = "with::non_empty_string")]
    pub cookie_name: String,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            lifetime_seconds: 31_449_600,
            idle_timeout_enabled: true,
            idle_timeout_seconds: 2_592_000,
            use_session_cookie: false,
            cookie_name: "session".into(),
        }
    }
}

impl SessionConfig {
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.lifetime_seconds)
    }

    /// `None` when idle timeout is disabled.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout_enabled
            .then(|| Duration::from_secs(self.idle_timeout_seconds))
    }
}

/// `auth_api` (4.7, seed 003).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthApiConfig {
    pub enabled: bool,
    #[serde(deserialize_with = "with::duration")]
    pub anti_abuse_token_lifetime: Duration,
    #[serde(deserialize_with = "with::duration")]
    pub session_token_lifetime: Duration,
    #[serde(deserialize_with = "with::duration")]
    pub key_rotation_grace_period: Duration,
    /// A given object replaces the seed 003 default as a whole.
    pub password_policy: PasswordPolicy,
    pub rate_limits: AuthApiRateLimits,
    /// Organization name → its tightened policy.
    pub org_password_policies: BTreeMap<String, PasswordPolicy>,
}

impl Default for AuthApiConfig {
    fn default() -> Self {
        AuthApiConfig {
            enabled: true,
            anti_abuse_token_lifetime: Duration::from_secs(5 * 60),
            session_token_lifetime: Duration::from_secs(24 * 3600),
            key_rotation_grace_period: Duration::from_secs(24 * 3600),
            password_policy: seed_003_policy(),
            rate_limits: AuthApiRateLimits::default(),
            org_password_policies: BTreeMap::new(),
        }
    }
}

/// The seed 003 rule: 8..=32 characters, upper- and lowercase, digit and symbol.
pub fn seed_003_policy() -> PasswordPolicy {
    PasswordPolicy {
        min_length: 8,
        max_length: Some(32),
        uppercase_required: true,
        lowercase_required: true,
        digit_required: true,
        symbol_required: true,
        ..PasswordPolicy::default()
    }
}

impl AuthApiConfig {
    /// The policy of `/auth/signup` and `/auth/changePassword` for an organization.
    pub fn policy_for_org(&self, org_name: &str) -> &PasswordPolicy {
        self.org_password_policies
            .get(org_name)
            .unwrap_or(&self.password_policy)
    }
}

/// `hanko_api` (4.8, seed 004).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HankoApiConfig {
    pub enabled: bool,
    pub path_prefix: String,
    /// Origins (no `*`).
    #[serde(deserialize_with = "values::with::origins")]
    pub allowed_origins: Vec<String>,
    pub flows: HankoFlowsConfig,
    pub show_account_existence_hints: bool,
    pub session: HankoSessionConfig,
}

impl Default for HankoApiConfig {
    fn default() -> Self {
        HankoApiConfig {
            enabled: false,
            path_prefix: "/hanko".into(),
            allowed_origins: Vec::new(),
            flows: HankoFlowsConfig::default(),
            show_account_existence_hints: false,
            session: HankoSessionConfig::default(),
        }
    }
}

/// Paths `hanko_api.path_prefix` may not equal or lie under.
pub const RESERVED_PATH_PREFIXES: [&str; 6] = [
    "/api",
    "/oauth2",
    "/.well-known",
    "/authflow",
    "/auth",
    "/healthz",
];

/// `hanko_api.flows`: names of the flows the dialect runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HankoFlowsConfig {
    pub registration: String,
    pub login: String,
    pub account_recovery: String,
}

impl Default for HankoFlowsConfig {
    fn default() -> Self {
        HankoFlowsConfig {
            registration: "default".into(),
            login: "default".into(),
            account_recovery: "default".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SameSite {
    #[default]
    Lax,
    Strict,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionRetention {
    #[default]
    Persistent,
    Session,
    Prompt,
}

/// `hanko_api.session`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HankoSessionConfig {
    #[serde(deserialize_with = "with::duration")]
    pub lifetime: Duration,
    /// `true`: JWT in `X-Auth-Token`; `false`: HttpOnly cookie instead.
    pub auth_token_header: bool,
    pub cookie: HankoCookieConfig,
    pub retention: SessionRetention,
    /// JWT `aud`; defaults to `[server.public_origin]` (filled when loading).
    #[serde(deserialize_with = "with::non_empty")]
    pub audience: Vec<String>,
}

impl Default for HankoSessionConfig {
    fn default() -> Self {
        HankoSessionConfig {
            lifetime: Duration::from_secs(12 * 3600),
            auth_token_header: true,
            cookie: HankoCookieConfig::default(),
            retention: SessionRetention::Persistent,
            audience: Vec::new(),
        }
    }
}

/// `hanko_api.session.cookie`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HankoCookieConfig {
    #[serde(deserialize_with = "with::non_empty_string")]
    pub name: String,
    pub domain: Option<String>,
    pub same_site: SameSite,
}

impl Default for HankoCookieConfig {
    fn default() -> Self {
        HankoCookieConfig {
            name: "hanko".into(),
            domain: None,
            same_site: SameSite::Lax,
        }
    }
}
