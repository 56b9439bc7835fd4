//! OpenID Connect authorization server (issue 7; docs/oidc.md): discovery, JWKS, the
//! authorization endpoint with its tie-in to the Authentication Flow API (spec 12), consent,
//! token, userinfo, revocation, introspection and RP-initiated logout.
//!
//! Authorization codes, grants and refresh tokens live in the [`StateStore`] (see
//! [`grants`]); signing keys in [`crate::signing`].
//!
//! [`StateStore`]: authflow_core::store::StateStore

mod authorize;
mod claims;
mod client;
mod endpoints;
mod error;
mod grants;
mod id_token;
mod logout;
pub(crate) mod params;
mod token;

use std::time::Duration;

use axum::Router;
use axum::routing::get;

use authflow_core::config::{Config, OAuthClientConfig};

use crate::AppState;

pub use error::{ErrorPage, OAuthError};
pub use id_token::IssuedIdTokens;

/// Default lifetime of an authorization code.
pub const AUTHORIZATION_CODE_TTL: Duration = Duration::from_secs(300);
/// Test-only override of the authorization code lifetime, in seconds (docs/oidc.md).
pub const CODE_TTL_ENV: &str = "AUTHFLOW_TEST_AUTHORIZATION_CODE_TTL_SECONDS";

/// What the OIDC layer takes from the configuration.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// `server.public_origin`: the issuer and base of every endpoint URL.
    pub issuer: String,
    pub clients: Vec<OAuthClientConfig>,
    pub code_ttl: Duration,
    pub cookie_name: String,
    pub secure_cookies: bool,
    /// `session.idle_timeout_seconds` when enabled.
    pub session_idle_timeout: Option<Duration>,
}

impl OidcSettings {
    pub fn from_config(config: &Config) -> OidcSettings {
        let code_ttl = std::env::var(CODE_TTL_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        if code_ttl.is_some() {
            tracing::warn!(
                "{CODE_TTL_ENV} is set: authorization code lifetime overridden (tests only)"
            );
        }
        let session = &config.session;
        OidcSettings {
            issuer: config
                .server
                .public_origin
                .trim_end_matches('/')
                .to_string(),
            clients: config.oauth.clients.clone(),
            code_ttl: code_ttl.unwrap_or(AUTHORIZATION_CODE_TTL),
            cookie_name: session.cookie_name.clone(),
            secure_cookies: config.server.public_origin.starts_with("https://"),
            session_idle_timeout: session
                .idle_timeout_enabled
                .then(|| Duration::from_secs(session.idle_timeout_seconds)),
        }
    }

    pub fn client(&self, client_id: &str) -> Option<&OAuthClientConfig> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    /// `issuer` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

pub const AUTHORIZE_PATH: &str = "/oauth2/authorize";
pub const CONSENT_PATH: &str = "/oauth2/consent";
pub const TOKEN_PATH: &str = "/oauth2/token";
pub const USERINFO_PATH: &str = "/oauth2/userinfo";
pub const JWKS_PATH: &str = "/oauth2/jwks";
pub const REVOKE_PATH: &str = "/oauth2/revoke";
pub const INTROSPECT_PATH: &str = "/oauth2/introspect";
pub const END_SESSION_PATH: &str = "/oauth2/end_session";
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(DISCOVERY_PATH, get(endpoints::discovery))
        .route(JWKS_PATH, get(endpoints::jwks))
        .route(
            AUTHORIZE_PATH,
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route(CONSENT_PATH, get(authorize::consent))
        .route(TOKEN_PATH, axum::routing::post(token::token))
        .route(
            USERINFO_PATH,
            get(endpoints::userinfo).post(endpoints::userinfo),
        )
        .route(REVOKE_PATH, axum::routing::post(endpoints::revoke))
        .route(INTROSPECT_PATH, axum::routing::post(endpoints::introspect))
        .route(
            END_SESSION_PATH,
            get(logout::end_session_get).post(logout::end_session_post),
        )
}
