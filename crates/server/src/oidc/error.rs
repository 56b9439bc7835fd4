//! OAuth errors (RFC 6749 4.1.2.1 and 5.2, RFC 6750 3.1) and the HTML error page shown
//! when a redirect cannot be trusted. The one mapping from errors to responses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use authflow_core::store::StoreError;

use crate::html::escape;
use crate::signing::SigningError;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    /// Unknown client or failed client authentication. `basic`: credentials came in the
    /// `Authorization` header (the answer then carries `WWW-Authenticate`).
    #[error("client authentication failed")]
    InvalidClient { basic: bool },
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("{0}")]
    UnauthorizedClient(&'static str),
    #[error("unsupported grant_type")]
    UnsupportedGrantType,
    #[error("unsupported response_type")]
    UnsupportedResponseType,
    #[error("{0}")]
    InvalidScope(String),
    #[error("the user must sign in")]
    LoginRequired,
    #[error("{0}")]
    RequestNotSupported(&'static str),
    /// A bearer token that is invalid, expired or revoked (RFC 6750).
    #[error("the access token is invalid")]
    InvalidToken,
    #[error("internal error: {0}")]
    Server(String),
}

impl OAuthError {
    pub fn invalid_request(message: impl Into<String>) -> Self {
        OAuthError::InvalidRequest(message.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient { .. } => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::UnsupportedResponseType => "unsupported_response_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::LoginRequired => "login_required",
            OAuthError::RequestNotSupported(p) if *p == "request_uri" => {
                "request_uri_not_supported"
            }
            OAuthError::RequestNotSupported(_) => "request_not_supported",
            OAuthError::InvalidToken => "invalid_token",
            OAuthError::Server(_) => "server_error",
        }
    }

    pub fn description(&self) -> String {
        match self {
            OAuthError::Server(_) => "internal server error".to_string(),
            OAuthError::RequestNotSupported(p) => format!("the {p} parameter is not supported"),
            other => other.to_string(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            OAuthError::InvalidClient { .. } | OAuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            OAuthError::Server(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The `error`, `error_description` pairs for a redirect to the client.
    pub fn query_pairs(&self) -> [(&'static str, String); 2] {
        [
            ("error", self.code().to_string()),
            ("error_description", self.description()),
        ]
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        OAuthError::Server(e.to_string())
    }
}

impl From<SigningError> for OAuthError {
    fn from(e: SigningError) -> Self {
        match e {
            SigningError::Invalid | SigningError::Expired => OAuthError::InvalidToken,
            other => OAuthError::Server(other.to_string()),
        }
    }
}

/// JSON error of the token, revocation and introspection endpoints; bearer errors of
/// userinfo carry `WWW-Authenticate`.
impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        if let OAuthError::Server(detail) = &self {
            tracing::error!(error = %detail, "oauth endpoint failed");
        }
        let body = json!({"error": self.code(), "error_description": self.description()});
        let mut response = (self.status(), Json(body)).into_response();
        let challenge = match &self {
            OAuthError::InvalidClient { basic: true } => {
                Some("Basic realm=\"authflow\"".to_string())
            }
            OAuthError::InvalidToken => Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                self.description()
            )),
            _ => None,
        };
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
            .headers_mut()
            .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}

/// An HTML page for errors that must not redirect (unknown client, unregistered
/// redirect URI, expired login): the browser stays at authflow.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: String,
}

impl ErrorPage {
    pub fn bad_request(title: &'static str, message: impl Into<String>) -> Self {
        ErrorPage {
            status: StatusCode::BAD_REQUEST,
            title,
            message: message.into(),
        }
    }
}

impl From<OAuthError> for ErrorPage {
    fn from(e: OAuthError) -> Self {
        if let OAuthError::Server(detail) = &e {
            tracing::error!(error = %detail, "oauth endpoint failed");
        }
        ErrorPage {
            status: if matches!(e, OAuthError::Server(_)) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::BAD_REQUEST
            },
            title: "Sign-in request failed",
            message: format!("{}: {}", e.code(), e.description()),
        }
    }
}

impl From<StoreError> for ErrorPage {
    fn from(e: StoreError) -> Self {
        OAuthError::from(e).into()
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let body = page(self.title, &format!("<p>{}</p>", escape(&self.message)));
        (self.status, Html(body)).into_response()
    }
}

/// A minimal standalone HTML document; `body` is trusted markup.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:28rem;\
         margin:3rem auto;padding:0 1rem}}</style></head><body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    )
}
