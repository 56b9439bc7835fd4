//! authflow's HTTP layer: one module per wire dialect, each a thin layer over the engine.

pub mod authflow_api;
pub mod error;
pub mod extract;
pub mod outbox;
mod run;
pub mod settings;

pub use run::{ServeError, build_state, run};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::RngCore;

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
    /// Present while messages go to the development outbox.
    pub outbox: Option<Arc<outbox::DevOutbox>>,
}

impl AppState {
    pub fn request_context(&self, peer: SocketAddr) -> RequestContext {
        RequestContext {
            ip: peer.ip().to_string(),
        }
    }
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
                        .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
            })
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/authflow/outbox", get(outbox::list))
        .merge(authflow_api::routes())
        .fallback(|| async { ApiError::not_found() })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), cors))
        .layer(middleware::map_response(no_store))
        .with_state(state)
}

async fn healthz(State(app): State<AppState>) -> Response {
    match (app.db.ping().await, app.state_store.ping().await) {
        (Ok(()), Ok(())) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"}))).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "unavailable"})),
        )
            .into_response(),
    }
}

async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// CORS: echo allowed origins with credentials; answer preflights.
async fn cors(State(app): State<AppState>, request: Request, next: Next) -> Response {
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
            HeaderValue::from_static("Content-Type"),
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
