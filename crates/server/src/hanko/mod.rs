//! The Hanko-style Flow API (seed 004, hanko-flow-api.md): a second dialect over the same
//! engine, driven by Hanko's frontend SDK. Every response is a state with the actions that
//! can run in it; each action has an `href`, typed inputs and a rotating CSRF token.
//!
//! Layout: [`record`] (the stored flow, CSRF, lock), [`view`] (engine states as Hanko
//! states), [`flow`] (the flow endpoints), [`session`] (JWT sessions and their
//! endpoints), [`error`] (the one error enum and its wire mapping).

pub mod error;
mod flow;
mod qr;
mod record;
mod session;
mod view;

pub use session::verify_with_jwks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use authflow_core::config::{
    Config, HankoApiConfig, OtpChannel, PrimaryAuthenticatorType, SessionRetention,
};
use authflow_core::flow::limits::RateLimiter;
use authflow_core::store::StateStore;

use crate::{AppState, CorsPolicy};

/// What the dialect needs from the configuration, resolved at start.
pub struct HankoSettings {
    pub config: HankoApiConfig,
    pub public_origin: String,
    /// `public_origin` is https: cookies are `Secure`.
    pub secure: bool,
    /// JWT `aud` (and the audiences accepted when validating).
    pub audience: Vec<String>,
    pub cors: CorsPolicy,
    pub password_min_length: u32,
    /// Registration must verify the email: a taken one can be concealed (spec 6.4).
    pub email_verification_required: bool,
    /// Password is a primary method: a concealed login offers it, the profile sets it.
    pub password_primary: bool,
    /// What a concealed login offers besides: passcodes by email.
    pub pretend_passcode_email: bool,
    pub passcode_cooldown_secs: u64,
    pub prompt_remember_me: bool,
    /// `login_password` offers recovery by a passcode to an email / a phone (spec 7.3).
    pub recovery_by_email: bool,
    pub recovery_by_phone: bool,
    /// The per-IP request limit's own bucket (spec 1).
    pub limiter: RateLimiter,
    /// 20 minutes (spec 5.2); tests shorten it with [`FLOW_LIFETIME_ENV`].
    pub flow_lifetime: Duration,
}

/// Test-only override of the flow lifetime, in seconds.
pub const FLOW_LIFETIME_ENV: &str = "AUTHFLOW_TEST_HANKO_FLOW_LIFETIME_SECONDS";

fn flow_lifetime() -> Duration {
    let overridden = std::env::var(FLOW_LIFETIME_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    if overridden.is_some() {
        tracing::warn!("{FLOW_LIFETIME_ENV} is set: Hanko flow lifetime overridden (tests only)");
    }
    overridden.unwrap_or(record::FLOW_LIFETIME)
}

impl HankoSettings {
    /// `None` while `hanko_api.enabled` is false.
    pub fn from_config(config: &Config, state_store: Arc<dyn StateStore>) -> Option<Arc<Self>> {
        let hanko = &config.hanko_api;
        if !hanko.enabled {
            return None;
        }
        let public_origin = config
            .server
            .public_origin
            .trim_end_matches('/')
            .to_string();
        let audience = if hanko.session.audience.is_empty() {
            vec![public_origin.clone()]
        } else {
            hanko.session.audience.clone()
        };
        let mut origins = vec![public_origin.clone()];
        origins.extend(hanko.allowed_origins.iter().cloned());
        let primary = &config.authentication.primary_authenticators;
        let claims = &config.verification.claims;
        Some(Arc::new(HankoSettings {
            config: hanko.clone(),
            secure: public_origin.starts_with("https://"),
            cors: CorsPolicy {
                origins,
                allow_any_loopback: is_loopback(&public_origin),
            },
            audience,
            public_origin,
            password_min_length: config.authenticator.password.policy.min_length,
            email_verification_required: claims.email.enabled && claims.email.required,
            password_primary: primary.contains(&PrimaryAuthenticatorType::Password),
            pretend_passcode_email: primary.contains(&PrimaryAuthenticatorType::OobOtpEmail),
            passcode_cooldown_secs: config
                .verification
                .rate_limits
                .channel(OtpChannel::Email)
                .trigger_cooldown
                .as_secs(),
            prompt_remember_me: hanko.session.retention == SessionRetention::Prompt,
            recovery_by_email: config.forgot_password.enabled
                && !config.ui.forgot_password.email.is_empty(),
            recovery_by_phone: config.forgot_password.enabled
                && !config.ui.forgot_password.phone.is_empty(),
            limiter: RateLimiter::new(state_store),
            flow_lifetime: flow_lifetime(),
        }))
    }

    fn prefix(&self) -> &str {
        &self.config.path_prefix
    }
}

fn is_loopback(origin: &str) -> bool {
    url::Url::parse(origin)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]")
}

/// The dialect's routes under `hanko_api.path_prefix`; none while it is disabled.
pub fn routes(state: &AppState) -> Router<AppState> {
    let Some(settings) = &state.hanko else {
        return Router::new();
    };
    let not_allowed =
        || async { session::plain_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed") };
    let inner = Router::new()
        .route(
            "/registration",
            post(flow::registration).fallback(not_allowed),
        )
        .route("/login", post(flow::login).fallback(not_allowed))
        .route("/profile", post(flow::profile).fallback(not_allowed))
        .route("/me", get(session::me).fallback(not_allowed))
        .route(
            "/users/{id}",
            get(session::user_by_id).fallback(not_allowed),
        )
        .route(
            "/sessions/validate",
            get(session::validate_get)
                .post(session::validate_post)
                .fallback(not_allowed),
        )
        .route("/logout", post(session::logout).fallback(not_allowed))
        .route(
            "/.well-known/jwks.json",
            get(session::jwks).fallback(not_allowed),
        )
        .fallback(|| async { session::plain_error(StatusCode::NOT_FOUND, "Not Found") });
    Router::new().nest(settings.prefix(), inner)
}

/// Whether `path` belongs to the dialect (it has its own CORS rules, spec 2.3).
pub fn is_hanko_path(app: &AppState, path: &str) -> bool {
    app.hanko.as_deref().is_some_and(|s| {
        path.strip_prefix(s.prefix())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

const EXPOSED: &str = "X-Auth-Token, X-Session-Lifetime, X-Session-Retention, Retry-After";

/// CORS of the dialect (spec 2.3), used by the app's CORS middleware for its paths.
pub async fn cors(app: &AppState, request: Request, next: Next) -> Response {
    let Some(settings) = app.hanko.clone() else {
        return next.run(request).await;
    };
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let allowed = origin.as_deref().is_some_and(|o| settings.cors.allows(o));
    if request.method() == Method::OPTIONS {
        if !allowed {
            return session::plain_error(StatusCode::FORBIDDEN, "Origin not allowed");
        }
        let mut response = StatusCode::NO_CONTENT.into_response();
        let h = response.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Content-Type, Authorization, X-Language, Accept"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(Duration::from_secs(7200).as_secs()),
        );
        add_cors(&mut response, origin.as_deref());
        return response;
    }
    // A cookie is sent by the browser on its own: refuse cross-site POSTs it would carry.
    let by_cookie = request.headers().get(header::AUTHORIZATION).is_none()
        && session::cookie_token(&settings, request.headers()).is_some();
    if request.method() == Method::POST && origin.is_some() && !allowed && by_cookie {
        return session::plain_error(StatusCode::FORBIDDEN, "Origin not allowed");
    }
    let mut response = next.run(request).await;
    if allowed {
        add_cors(&mut response, origin.as_deref());
    }
    response
}

fn add_cors(response: &mut Response, origin: Option<&str>) {
    let Some(origin) = origin.and_then(|o| HeaderValue::from_str(o).ok()) else {
        return;
    };
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
}
