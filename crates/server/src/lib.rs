//! authflow's HTTP layer: one module per wire dialect, each a thin layer over the engine.

pub mod authflow_api;
pub mod backend_api;
pub mod error;
pub mod extract;
pub mod hanko;
pub mod html;
pub mod links;
pub mod messaging;
pub mod oidc;
pub mod outbox;
mod run;
pub mod settings;
pub mod signing;
pub mod ui;

pub use run::{ServeError, build_state, run};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::RngCore;

use authflow_core::config::IpNet;
use authflow_core::flow::{Engine, RequestContext};
use authflow_core::store::{Database, StateStore};

use crate::error::ApiError;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub db: Arc<dyn Database>,
    pub state_store: Arc<dyn StateStore>,
    pub cors: Arc<CorsPolicy>,
    pub trusted_proxies: Arc<Vec<IpNet>>,
    /// Present while messages go to the development outbox.
    pub outbox: Option<Arc<outbox::DevOutbox>>,
    /// Token signing keys (OAuth/OIDC).
    pub signing: Arc<signing::SigningKeys>,
    /// The backend `/auth` API (seed 003).
    pub auth_api: Arc<backend_api::AuthApiSettings>,
    /// OpenID Connect settings (issuer, clients).
    pub oidc: Arc<oidc::OidcSettings>,
    /// The Hanko-style Flow API (seed 004); `None` while `hanko_api.enabled` is false.
    pub hanko: Option<Arc<hanko::HankoSettings>>,
    /// Login-link approvals on their way to the waiting WebSockets.
    pub link_events: Arc<links::LinkEvents>,
}

impl AppState {
    pub fn request_context(&self, peer: SocketAddr, headers: &HeaderMap) -> RequestContext {
        RequestContext {
            ip: client_ip(peer.ip(), headers, &self.trusted_proxies).to_string(),
            session_secret: oidc::params::cookie(headers, &self.oidc.cookie_name),
            device_token: oidc::params::cookie(
                headers,
                authflow_core::flow::device_token::COOKIE_NAME,
            ),
            codes_only: false,
        }
    }
}

/// The client IP: behind a trusted proxy, the right-most `X-Forwarded-For` address that is
/// not a trusted proxy (the left-most if all are); else the TCP peer (flow-config.md 4.1).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(forwarded.first())
        .copied()
        .unwrap_or(peer)
}

/// Origins allowed to call the API from a browser (spec 2).
#[derive(Debug, Clone, Default)]
pub struct CorsPolicy {
    pub origins: Vec<String>,
    /// While the public origin is a loopback origin, any loopback origin is allowed.
    pub allow_any_loopback: bool,
}

impl CorsPolicy {
    pub fn allows(&self, origin: &str) -> bool {
        if self.origins.iter().any(|o| o == origin) {
            return true;
        }
        self.allow_any_loopback
            && ["http://localhost", "http://127.0.0.1"].iter().any(|base| {
                origin == *base
                    || origin
                        .strip_prefix(base)
                        .and_then(|rest| rest.strip_prefix(':'))
                        .is_some_and(|port| {
                            !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                        })
            })
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/authflow/outbox", get(outbox::list))
        .merge(authflow_api::routes())
        .merge(oidc::routes().merge(ui::routes()))
        .merge(backend_api::routes())
        .merge(links::routes())
        .merge(hanko::routes(&state))
        .fallback(|| async { ApiError::not_found() })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), cors))
        .layer(middleware::map_response(no_store))
        .with_state(state)
}

async fn healthz(State(app): State<AppState>) -> Response {
    match (app.db.ping().await, app.state_store.ping().await) {
        (Ok(()), Ok(())) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok"})),
        )
            .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "unavailable"})),
        )
            .into_response(),
    }
}

async fn no_store(mut response: Response) -> Response {
    // A handler that set its own (the Hanko JWKS: max-age) keeps it.
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// CORS: echo allowed origins with credentials; answer preflights.
async fn cors(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if backend_api::is_backend_path(request.uri().path()) {
        return backend_api::without_cors(&app, request, next).await;
    }
    if hanko::is_hanko_path(&app, request.uri().path()) {
        return hanko::cors(&app, request, next).await;
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| app.cors.allows(o))
        .map(str::to_string);
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    if let Some(origin) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Content-Type, Authorization"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// A random id put in error envelopes and in the matching log line (spec 17.6).
pub fn tracking_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        let (addr, len) = s.split_once('/').unwrap();
        IpNet {
            addr: addr.parse().unwrap(),
            prefix_len: len.parse().unwrap(),
        }
    }

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_only_believed_from_trusted_proxies() {
        let trusted = vec![net("10.0.0.0/8")];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let h = headers("203.0.113.9, 198.51.100.7, 10.1.2.3");
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("192.0.2.1"), &h, &trusted), ip("192.0.2.1"));
        let all_trusted = headers("10.9.9.9, 10.8.8.8");
        assert_eq!(
            client_ip(ip("10.0.0.1"), &all_trusted, &trusted),
            ip("10.9.9.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn loopback_origins_are_allowed_only_while_public_origin_is_loopback() {
        let open = CorsPolicy {
            origins: vec!["https://app.example.com".into()],
            allow_any_loopback: true,
        };
        assert!(open.allows("http://localhost:5173"));
        assert!(open.allows("http://127.0.0.1:8080"));
        assert!(open.allows("https://app.example.com"));
        assert!(!open.allows("http://localhost.evil.com"));
        assert!(!open.allows("http://127.0.0.1:80x"));
        let closed = CorsPolicy {
            allow_any_loopback: false,
            ..open
        };
        assert!(!closed.allows("http://localhost:5173"));
    }
}
