//! `identity` (flow-config.md 5.1).

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};

use crate::config::de::with;
use crate::model::LoginIdType;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    pub login_id: LoginIdConfig,
    /// [later]
    pub oauth: IdentityOAuthConfig,
    /// [later]
    pub on_conflict: OnConflictConfig,
}

impl IdentityConfig {
    /// `K` of 7.8: the distinct login ID key types in first-appearance order.
    pub fn login_id_types(&self) -> Vec<LoginIdType> {
        let mut out = Vec::new();
        for key in &self.login_id.keys {
            if !out.contains(&key.r#type) {
                out.push(key.r#type);
            }
        }
        out
    }

    /// The key an identification of type `t` uses: the first key of that type.
    pub fn first_key_of_type(&self, t: LoginIdType) -> Option<&LoginIdKeyConfig> {
        self.login_id.keys.iter().find(|k| k.r#type == t)
    }

    pub fn has_login_id_type(&self, t: LoginIdType) -> bool {
        self.first_key_of_type(t).is_some()
    }
}

/// `identity.login_id`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginIdConfig {
    /// In order; `[]` allowed; `key` unique (checked).
    pub keys: Vec<LoginIdKeyConfig>,
    pub types: LoginIdTypesConfig,
}

impl Default for LoginIdConfig {
    fn default() -> Self {
        LoginIdConfig {
            keys: vec![LoginIdKeyConfig::of_type(LoginIdType::Email)],
            types: LoginIdTypesConfig::default(),
        }
    }
}

/// `identity.login_id.keys[]`, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginIdKeyConfig {
    pub r#type: LoginIdType,
    /// Defaults to the type's name.
    pub key: String,
    /// Defaults: email 320, phone 40, username 40.
    pub max_length: u32,
    /// [later]; the deprecated `modify_disabled` sets all three.
    pub create_disabled: bool,
    pub update_disabled: bool,
    pub delete_disabled: bool,
}

impl LoginIdKeyConfig {
    pub fn of_type(t: LoginIdType) -> Self {
        LoginIdKeyConfig {
            r#type: t,
            key: t.as_str().to_string(),
            max_length: default_max_length(t),
            create_disabled: false,
            update_disabled: false,
            delete_disabled: false,
        }
    }
}

fn default_max_length(t: LoginIdType) -> u32 {
    match t {
        LoginIdType::Email => 320,
        LoginIdType::Phone | LoginIdType::Username => 40,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoginIdKey {
    r#type: LoginIdType,
    #[serde(default, deserialize_with = "opt_non_empty")]
    key: Option<String>,
    #[serde(default, deserialize_with = "opt_u32_min_1")]
    max_length: Option<u32>,
    #[serde(default)]
    create_disabled: Option<bool>,
    #[serde(default)]
    update_disabled: Option<bool>,
    #[serde(default)]
    delete_disabled: Option<bool>,
    #[serde(default)]
    modify_disabled: Option<bool>,
}

fn opt_non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    with::non_empty_string(d).map(Some)
}

fn opt_u32_min_1<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    with::u32_min::<D, 1>(d).map(Some)
}

impl<'de> Deserialize<'de> for LoginIdKeyConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawLoginIdKey::deserialize(d)?;
        let all = raw.modify_disabled.unwrap_or(false);
        Ok(LoginIdKeyConfig {
            key: raw.key.unwrap_or_else(|| raw.r#type.as_str().to_string()),
            max_length: raw.max_length.unwrap_or(default_max_length(raw.r#type)),
            create_disabled: raw.create_disabled.unwrap_or(all),
            update_disabled: raw.update_disabled.unwrap_or(all),
            delete_disabled: raw.delete_disabled.unwrap_or(all),
            r#type: raw.r#type,
        })
    }
}

/// `identity.login_id.types`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginIdTypesConfig {
    pub email: EmailLoginIdConfig,
    pub username: UsernameLoginIdConfig,
}

/// `identity.login_id.types.email`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailLoginIdConfig {
    pub case_sensitive: bool,
    pub block_plus_sign: bool,
    /// Local-part dots ignored for uniqueness.
    pub ignore_dot_sign: bool,
    /// [later] (and the next five).
    pub domain_blocklist_enabled: bool,
    pub domain_allowlist_enabled: bool,
    pub block_free_email_provider_domains: bool,
    pub block_disposable_email_domains: bool,
    pub domain_blocklist: Vec<String>,
    pub domain_allowlist: Vec<String>,
}

/// `identity.login_id.types.username`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsernameLoginIdConfig {
    pub block_reserved_usernames: bool,
    /// [later], with `excluded_keywords`.
    pub exclude_keywords_enabled: bool,
    pub excluded_keywords: Vec<String>,
    pub ascii_only: bool,
    pub case_sensitive: bool,
}

impl Default for UsernameLoginIdConfig {
    fn default() -> Self {
        UsernameLoginIdConfig {
            block_reserved_usernames: true,
            exclude_keywords_enabled: false,
            excluded_keywords: Vec::new(),
            ascii_only: true,
            case_sensitive: false,
        }
    }
}

/// `identity.oauth` [later].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityOAuthConfig {
    pub providers: Vec<OAuthProviderConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OAuthProviderType {
    Google,
    Facebook,
    Github,
    Linkedin,
    Azureadv2,
    Azureadb2c,
    Adfs,
    Apple,
    Wechat,
    Oidc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialsBehavior {
    UseProjectCredentials,
    UseDemoCredentials,
}

/// `identity.oauth.providers[]` [later]: validated, not used yet.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthProviderConfig {
    #[serde(deserialize_with = "with::non_empty_string")]
    pub alias: String,
    pub r#type: OAuthProviderType,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<crate::config::values::Secret>,
    #[serde(default)]
    pub claims: ProviderClaims,
    #[serde(default)]
    pub credentials_behavior: Option<CredentialsBehavior>,
    #[serde(default)]
    pub create_disabled: bool,
    #[serde(default)]
    pub delete_disabled: bool,
    #[serde(default)]
    pub do_not_store_identity_attributes: bool,
    #[serde(default)]
    pub include_identity_attributes_in_id_token: bool,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub discovery_document_endpoint: Option<String>,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default)]
    pub app_type: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderClaims {
    pub email: ProviderClaim,
    pub phone_number: ProviderClaim,
}

/// Unset booleans keep Authgear's behaviour (decided when OAuth lands).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderClaim {
    pub assume_verified: Option<bool>,
    pub required: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Promotion {
    #[default]
    Error,
    Login,
}

/// `identity.on_conflict` [later].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnConflictConfig {
    pub promotion: Promotion,
}
