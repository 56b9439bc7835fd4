//! `oauth` (flow-config.md 5.6).

use std::time::Duration;

use serde::de::{Deserializer, Error};
use serde::{Deserialize, Serialize};

use crate::config::de::with;
use crate::config::problem::quote;
use crate::config::values::{self, Secret};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// Unique `client_id` (checked).
    pub clients: Vec<OAuthClientConfig>,
    pub signing_keys: SigningKeysConfig,
}

impl OAuthConfig {
    pub fn client(&self, client_id: &str) -> Option<&OAuthClientConfig> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationType {
    Spa,
    TraditionalWebapp,
    Native,
    Confidential,
    ThirdPartyApp,
    M2m,
}

impl ApplicationType {
    pub fn requires_secret(self) -> bool {
        matches!(
            self,
            ApplicationType::Confidential | ApplicationType::ThirdPartyApp | ApplicationType::M2m
        )
    }

    pub fn forbids_secret(self) -> bool {
        matches!(self, ApplicationType::Spa | ApplicationType::Native)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseType {
    Code,
    /// [later]
    None,
}

/// `oauth.clients[]`, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthClientConfig {
    pub client_id: String,
    /// Display name; defaults to `client_id`.
    pub name: String,
    /// Presence makes the client confidential.
    pub client_secret: Option<Secret>,
    pub x_application_type: Option<ApplicationType>,
    /// Exact-match redirect URIs; empty only for `m2m` clients.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Informational (5.6).
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<ResponseType>,
    pub access_token_lifetime_seconds: u64,
    /// Defaults to max(access lifetime, 31449600).
    pub refresh_token_lifetime_seconds: u64,
    pub refresh_token_idle_timeout_enabled: bool,
    pub refresh_token_idle_timeout_seconds: u64,
    pub refresh_token_rotation_enabled: bool,
    pub issue_jwt_access_token: bool,
    pub x_custom_ui_uri: Option<String>,
    /// [later] `0` or `1`.
    pub x_max_concurrent_session: u8,
    /// [later]
    pub x_authentication_flow_allowlist: Option<FlowAllowlist>,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub logo_uri: Option<String>,
}

impl OAuthClientConfig {
    pub fn is_confidential(&self) -> bool {
        self.client_secret.is_some()
    }

    pub fn is_m2m(&self) -> bool {
        self.x_application_type == Some(ApplicationType::M2m)
    }

    pub fn access_token_lifetime(&self) -> Duration {
        Duration::from_secs(self.access_token_lifetime_seconds)
    }

    pub fn refresh_token_lifetime(&self) -> Duration {
        Duration::from_secs(self.refresh_token_lifetime_seconds)
    }

    /// `None` when the idle timeout is disabled.
    pub fn refresh_token_idle_timeout(&self) -> Option<Duration> {
        self.refresh_token_idle_timeout_enabled
            .then(|| Duration::from_secs(self.refresh_token_idle_timeout_seconds))
    }
}

/// `x_authentication_flow_allowlist` [later].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowAllowlist {
    pub groups: Vec<NamedRef>,
    pub flows: Vec<FlowRef>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedRef {
    pub name: String,
}

/// `{type, name}` naming a flow.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowRef {
    pub r#type: FlowRefType,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowRefType {
    Signup,
    Promote,
    Login,
    SignupLogin,
    Reauth,
    AccountRecovery,
}

fn yes() -> bool {
    true
}

fn default_response_types() -> Vec<ResponseType> {
    vec![ResponseType::Code]
}

fn default_access_lifetime() -> u64 {
    1800
}

fn default_idle_timeout() -> u64 {
    2_592_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    #[serde(deserialize_with = "client_id")]
    client_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    client_secret: Option<Secret>,
    #[serde(default)]
    x_application_type: Option<ApplicationType>,
    #[serde(default, deserialize_with = "values::with::opt_absolute_uris")]
    redirect_uris: Option<Vec<String>>,
    #[serde(default, deserialize_with = "values::with::absolute_uris")]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Vec<GrantType>,
    #[serde(default = "default_response_types")]
    response_types: Vec<ResponseType>,
    #[serde(
        default = "default_access_lifetime",
        deserialize_with = "with::u64_min::<_, 300>"
    )]
    access_token_lifetime_seconds: u64,
    #[serde(default)]
    refresh_token_lifetime_seconds: Option<u64>,
    #[serde(default = "yes")]
    refresh_token_idle_timeout_enabled: bool,
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "with::u64_min::<_, 1>"
    )]
    refresh_token_idle_timeout_seconds: u64,
    #[serde(default = "yes")]
    refresh_token_rotation_enabled: bool,
    #[serde(default = "yes")]
    issue_jwt_access_token: bool,
    #[serde(default, deserialize_with = "values::with::opt_http_url")]
    x_custom_ui_uri: Option<String>,
    #[serde(default, deserialize_with = "max_concurrent_session")]
    x_max_concurrent_session: u8,
    #[serde(default)]
    x_authentication_flow_allowlist: Option<FlowAllowlist>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default, deserialize_with = "values::with::opt_url")]
    client_uri: Option<String>,
    #[serde(default, deserialize_with = "values::with::opt_url")]
    policy_uri: Option<String>,
    #[serde(default, deserialize_with = "values::with::opt_url")]
    tos_uri: Option<String>,
    #[serde(default, deserialize_with = "values::with::opt_url")]
    logo_uri: Option<String>,
}

fn client_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'));
    if ok {
        Ok(s)
    } else {
        Err(D::Error::custom(format!(
            "must match [A-Za-z0-9._~-]+ (got {})",
            quote(&s)
        )))
    }
}

fn max_concurrent_session<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let v = u8::deserialize(d)?;
    if v > 1 {
        return Err(D::Error::custom(format!("must be 0 or 1 (got {v})")));
    }
    Ok(v)
}

impl<'de> Deserialize<'de> for OAuthClientConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawClient::deserialize(d)?;
        let m2m = raw.x_application_type == Some(ApplicationType::M2m);
        let redirect_uris = match raw.redirect_uris {
            Some(uris) => uris,
            None if m2m => Vec::new(),
            None => return Err(D::Error::missing_field("redirect_uris")),
        };
        Ok(OAuthClientConfig {
            name: raw.name.unwrap_or_else(|| raw.client_id.clone()),
            client_id: raw.client_id,
            client_secret: raw.client_secret,
            x_application_type: raw.x_application_type,
            redirect_uris,
            post_logout_redirect_uris: raw.post_logout_redirect_uris,
            grant_types: raw.grant_types,
            response_types: raw.response_types,
            refresh_token_lifetime_seconds: raw
                .refresh_token_lifetime_seconds
                .unwrap_or(raw.access_token_lifetime_seconds.max(31_449_600)),
            access_token_lifetime_seconds: raw.access_token_lifetime_seconds,
            refresh_token_idle_timeout_enabled: raw.refresh_token_idle_timeout_enabled,
            refresh_token_idle_timeout_seconds: raw.refresh_token_idle_timeout_seconds,
            refresh_token_rotation_enabled: raw.refresh_token_rotation_enabled,
            issue_jwt_access_token: raw.issue_jwt_access_token,
            x_custom_ui_uri: raw.x_custom_ui_uri,
            x_max_concurrent_session: raw.x_max_concurrent_session,
            x_authentication_flow_allowlist: raw.x_authentication_flow_allowlist,
            client_name: raw.client_name,
            client_uri: raw.client_uri,
            policy_uri: raw.policy_uri,
            tos_uri: raw.tos_uri,
            logo_uri: raw.logo_uri,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum SigningAlgorithm {
    #[default]
    RS256,
    ES256,
}

/// `oauth.signing_keys` (authflow).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningKeysConfig {
    pub id_token_algorithm: SigningAlgorithm,
    #[serde(deserialize_with = "with::duration")]
    pub rotation_period: Duration,
}

impl Default for SigningKeysConfig {
    fn default() -> Self {
        SigningKeysConfig {
            id_token_algorithm: SigningAlgorithm::RS256,
            rotation_period: Duration::from_secs(2160 * 3600),
        }
    }
}
