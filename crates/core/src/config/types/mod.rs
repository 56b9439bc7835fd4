//! The typed configuration: one struct per section of flow-config.md, field names =
//! YAML keys, defaults of the spec applied.

mod apis;
mod authentication;
mod authenticator;
mod identity;
mod infra;
mod oauth;
mod ui;
mod verification;

pub use apis::*;
pub use authentication::*;
pub use authenticator::*;
pub use identity::*;
pub use infra::*;
pub use oauth::*;
pub use ui::*;
pub use verification::*;

use serde::Deserialize;

use super::rate_limit::FlowRateLimits;

pub(crate) use ui::DestinationItem;

/// The whole `authflow.yaml` (flow-config.md 1). Flows of `authentication_flow` are in
/// [`super::FlowCatalog`], not here.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// Absent: short-lived state lives in the database (single replica).
    pub state_store: Option<StateStoreConfig>,
    pub messaging: MessagingConfig,
    pub secrets: SecretsConfig,
    pub session: SessionConfig,
    pub auth_api: AuthApiConfig,
    pub hanko_api: HankoApiConfig,
    pub identity: IdentityConfig,
    pub authentication: AuthenticationConfig,
    pub authenticator: AuthenticatorConfig,
    pub verification: VerificationConfig,
    pub forgot_password: ForgotPasswordConfig,
    pub oauth: OAuthConfig,
    pub ui: UiConfig,
    /// [later]
    pub bot_protection: BotProtectionConfig,
    pub test_mode: TestModeConfig,
    pub authentication_flow: AuthenticationFlowConfig,
}

/// The typed part of `authentication_flow` (its flow lists are parsed by the flow
/// grammar into the catalog).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthenticationFlowConfig {
    pub rate_limits: FlowRateLimits,
}

impl Config {
    /// The configuration of `serve` without `--config` (2.5): every default plus
    /// `database.url` `sqlite://./authflow.db` (relative to the working directory).
    pub fn builtin_defaults() -> Self {
        let mut config = Config {
            server: ServerConfig::default(),
            database: DatabaseConfig::builtin(),
            state_store: None,
            messaging: MessagingConfig::default(),
            secrets: SecretsConfig::default(),
            session: SessionConfig::default(),
            auth_api: AuthApiConfig::default(),
            hanko_api: HankoApiConfig::default(),
            identity: IdentityConfig::default(),
            authentication: AuthenticationConfig::default(),
            authenticator: AuthenticatorConfig::default(),
            verification: VerificationConfig::default(),
            forgot_password: ForgotPasswordConfig::default(),
            oauth: OAuthConfig::default(),
            ui: UiConfig::default(),
            bot_protection: BotProtectionConfig::default(),
            test_mode: TestModeConfig::default(),
            authentication_flow: AuthenticationFlowConfig::default(),
        };
        config.resolve_derived_defaults();
        config
    }

    /// Fills the defaults that depend on other sections: `messaging.app_name` (host of
    /// `public_origin`) and `hanko_api.session.audience` (`[public_origin]`).
    pub(crate) fn resolve_derived_defaults(&mut self) {
        if self.messaging.app_name.is_empty() {
            self.messaging.app_name = self.server.public_host();
        }
        if self.hanko_api.session.audience.is_empty() {
            self.hanko_api.session.audience = vec![self.server.public_origin.clone()];
        }
    }

    /// All CORS origins of the flow API (4.1): `public_origin`, `allowed_origins`, and
    /// the origins of every http(s) `x_custom_ui_uri` and `redirect_uris`.
    pub fn cors_origins(&self) -> Vec<String> {
        let mut out = vec![self.server.public_origin.clone()];
        out.extend(self.server.allowed_origins.iter().cloned());
        for client in &self.oauth.clients {
            let uris = client.x_custom_ui_uri.iter().chain(&client.redirect_uris);
            for uri in uris {
                if let Ok(u) = url::Url::parse(uri)
                    && matches!(u.scheme(), "http" | "https")
                {
                    out.push(u.origin().ascii_serialization());
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|o| seen.insert(o.clone()));
        out
    }
}
