//! `/oauth2/authorize` (OIDC Core 3.1.2, RFC 7636) and `/oauth2/consent`, the end of the
//! tie-in with the Authentication Flow API (authentication-flow-api.md 12.1).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use authflow_core::config::OAuthClientConfig;
use authflow_core::flow::oauth::{
    AuthenticationInfo, OAUTH_SESSION_TTL, OAuthSession, authentication_info_key, oauth_session_key,
};
use authflow_core::model::Session;
use authflow_core::store::Change;

use super::claims::SCOPES;
use super::error::{ErrorPage, OAuthError};
use super::grants::{AuthorizationCode, Grants, Subject};
use super::params::{Params, cookie, form_body, random_token, redirect, split_spaces, with_query};
use super::{CONSENT_PATH, OidcSettings};
use crate::AppState;

/// Path of the built-in UI (crate::ui) used by clients without `x_custom_ui_uri`.
pub const BUILTIN_UI_PATH: &str = "/login";

/// What `/oauth2/authorize` keeps in [`OAuthSession::extra`] for the consent step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Extra {
    scope: Vec<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
}

/// A validated authorization request.
#[derive(Debug, Clone)]
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    extra: Extra,
    prompt: Vec<String>,
    max_age: Option<i64>,
    login_hint: Option<String>,
    ui_locales: Option<String>,
    id_token_hint: Option<String>,
    x_state: Option<String>,
    suppress_cookie: bool,
}

pub async fn authorize_get(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    authorize(&app, &headers, params).await
}

pub async fn authorize_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form_body(&headers, &body);
    authorize(&app, &headers, params).await
}

async fn authorize(
    app: &AppState,
    headers: &HeaderMap,
    params: Result<Params, OAuthError>,
) -> Response {
    let settings = &app.oidc;
    let params = match params {
        Ok(p) => p,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let (client, redirect_uri) = match trusted_redirect(settings, &params) {
        Ok(target) => target,
        Err(page) => return page.into_response(),
    };
    let state = params.get("state").map(str::to_string);
    let outcome = match parse_request(client, redirect_uri, &params) {
        Ok(request) if request.prompt.iter().any(|p| p == "none") => {
            prompt_none(app, headers, client, &request).await
        }
        Ok(request) => start_login(app, client, &request).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(response) => response,
        Err(OAuthError::Server(detail)) => {
            ErrorPage::from(OAuthError::Server(detail)).into_response()
        }
        Err(e) => redirect_error(settings, redirect_uri, &e, state.as_deref()),
    }
}

/// The client and its registered redirect URI; anything else is an error page (OIDC Core
/// 3.1.2.6: never redirect to an unverified URI).
fn trusted_redirect<'a>(
    settings: &'a OidcSettings,
    params: &'a Params,
) -> Result<(&'a OAuthClientConfig, &'a str), ErrorPage> {
    let client_id = params.get("client_id").ok_or_else(|| {
        ErrorPage::bad_request("Invalid sign-in request", "client_id is missing.")
    })?;
    let client = settings.client(client_id).ok_or_else(|| {
        ErrorPage::bad_request(
            "Invalid sign-in request",
            "The application is not registered.",
        )
    })?;
    let redirect_uri = params
        .get("redirect_uri")
        .filter(|uri| client.redirect_uris.iter().any(|r| r == uri))
        .ok_or_else(|| {
            ErrorPage::bad_request(
                "Invalid sign-in request",
                "The redirect URI is missing or not registered for this application.",
            )
        })?;
    Ok((client, redirect_uri))
}

fn parse_request(
    client: &OAuthClientConfig,
    redirect_uri: &str,
    params: &Params,
) -> Result<AuthRequest, OAuthError> {
    for unsupported in ["request", "request_uri"] {
        if params.get(unsupported).is_some() {
            return Err(OAuthError::RequestNotSupported(unsupported));
        }
    }
    if params.require("response_type")? != "code" {
        return Err(OAuthError::UnsupportedResponseType);
    }
    if client.is_m2m() {
        return Err(OAuthError::UnauthorizedClient(
            "this client may only use client_credentials",
        ));
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return Err(OAuthError::invalid_request(
            "only response_mode=query is supported",
        ));
    }
    Ok(AuthRequest {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_string(),
        state: params.get("state").map(str::to_string),
        extra: Extra {
            scope: parse_scope(params.get("scope"))?,
            nonce: params.get("nonce").map(str::to_string),
            code_challenge: code_challenge(client, params)?,
        },
        prompt: parse_prompt(params.get("prompt"))?,
        max_age: parse_max_age(params.get("max_age"))?,
        login_hint: params.get("login_hint").map(str::to_string),
        ui_locales: params.get("ui_locales").map(str::to_string),
        id_token_hint: params.get("id_token_hint").map(str::to_string),
        x_state: params.get("x_state").map(str::to_string),
        suppress_cookie: params.get("x_suppress_idp_session_cookie") == Some("true"),
    })
}

fn parse_scope(scope: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let scope = split_spaces(scope);
    match scope.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        Some(unknown) => Err(OAuthError::InvalidScope(format!("unknown scope {unknown}"))),
        None => Ok(scope),
    }
}

/// PKCE (RFC 7636 4.3): only `S256`; required for public clients.
fn code_challenge(
    client: &OAuthClientConfig,
    params: &Params,
) -> Result<Option<String>, OAuthError> {
    let challenge = params.get("code_challenge");
    let method = params.get("code_challenge_method");
    match (challenge, method) {
        (Some(c), Some("S256")) if is_valid_challenge(c) => Ok(Some(c.to_string())),
        (Some(_), Some("S256")) => Err(OAuthError::invalid_request("code_challenge is malformed")),
        (Some(_), _) => Err(OAuthError::invalid_request(
            "code_challenge_method must be S256",
        )),
        (None, Some(_)) => Err(OAuthError::invalid_request("code_challenge is required")),
        (None, None) if !client.is_confidential() => Err(OAuthError::invalid_request(
            "PKCE (code_challenge with S256) is required for public clients",
        )),
        (None, None) => Ok(None),
    }
}

/// An S256 challenge is 43 base64url characters.
fn is_valid_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_prompt(prompt: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let prompt = split_spaces(prompt);
    let known = ["none", "login", "consent", "select_account"];
    if let Some(p) = prompt.iter().find(|p| !known.contains(&p.as_str())) {
        return Err(OAuthError::invalid_request(format!(
            "unknown prompt value {p}"
        )));
    }
    if prompt.len() > 1 && prompt.iter().any(|p| p == "none") {
        return Err(OAuthError::invalid_request(
            "prompt=none cannot be combined",
        ));
    }
    Ok(prompt)
}

fn parse_max_age(max_age: Option<&str>) -> Result<Option<i64>, OAuthError> {
    max_age
        .map(|v| {
            v.parse::<u32>()
                .map(i64::from)
                .map_err(|_| OAuthError::invalid_request("max_age must be a non-negative integer"))
        })
        .transpose()
}

/// Keep the request as an OAuth session and send the browser to the UI (spec 12.1).
async fn start_login(
    app: &AppState,
    client: &OAuthClientConfig,
    request: &AuthRequest,
) -> Result<Response, OAuthError> {
    let settings = &app.oidc;
    let x_ref = random_token(24);
    let session = OAuthSession {
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        consent_uri: with_query(&settings.url(CONSENT_PATH), &[("x_ref", &x_ref)]),
        state: request.state.clone(),
        x_state: request.x_state.clone(),
        ui_locales: request.ui_locales.clone(),
        login_hint: request.login_hint.clone(),
        id_token_hint: request.id_token_hint.clone(),
        prompt: request.prompt.clone(),
        suppress_idp_session_cookie: request.suppress_cookie,
        extra: serde_json::to_value(&request.extra)
            .map_err(|e| OAuthError::Server(e.to_string()))?,
    };
    let json = serde_json::to_string(&session).map_err(|e| OAuthError::Server(e.to_string()))?;
    app.state_store
        .put(&oauth_session_key(&x_ref), &json, OAUTH_SESSION_TTL)
        .await?;
    let ui = client
        .x_custom_ui_uri
        .clone()
        .unwrap_or_else(|| settings.url(BUILTIN_UI_PATH));
    let mut pairs: Vec<(&str, &str)> = vec![
        ("x_ref", &x_ref),
        ("client_id", &request.client_id),
        ("redirect_uri", &request.redirect_uri),
    ];
    let optional = [
        ("state", &request.state),
        ("x_state", &request.x_state),
        ("ui_locales", &request.ui_locales),
        ("login_hint", &request.login_hint),
        ("id_token_hint", &request.id_token_hint),
    ];
    pairs.extend(
        optional
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v))),
    );
    Ok(redirect(&with_query(&ui, &pairs)))
}

/// `prompt=none`: answer at once from a live IdP session, else `login_required`.
async fn prompt_none(
    app: &AppState,
    headers: &HeaderMap,
    client: &OAuthClientConfig,
    request: &AuthRequest,
) -> Result<Response, OAuthError> {
    let session = live_idp_session(app, headers)
        .await?
        .ok_or(OAuthError::LoginRequired)?;
    let auth_time = session.created_at.timestamp();
    if request
        .max_age
        .is_some_and(|max| auth_time + max < super::params::unix_now())
    {
        return Err(OAuthError::LoginRequired);
    }
    app.db
        .commit(vec![Change::TouchSession {
            session_id: session.id.clone(),
            at: chrono::Utc::now(),
        }])
        .await?;
    let subject = Subject {
        client_id: client.client_id.clone(),
        user_id: session.user_id.clone(),
        scope: request.extra.scope.clone(),
        auth_time,
        amr: session.amr.clone(),
        sid: Some(session.id.clone()),
    };
    let location = code_redirect(
        app,
        request.redirect_uri.clone(),
        request.state.as_deref(),
        subject,
        &request.extra,
    )
    .await?;
    Ok(redirect(&location))
}

/// The IdP session of the request's cookie, if live (not revoked, expired or idle).
pub async fn live_idp_session(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, OAuthError> {
    let Some(token) = cookie(headers, &app.oidc.cookie_name) else {
        return Ok(None);
    };
    let hash = super::params::sha256_hex(&token);
    let session = app.db.find_session_by_token_hash(&hash).await?;
    Ok(session.filter(|s| s.is_live(chrono::Utc::now(), app.oidc.session_idle_timeout)))
}

/// Issue an authorization code and give the client redirect carrying it.
async fn code_redirect(
    app: &AppState,
    redirect_uri: String,
    state: Option<&str>,
    subject: Subject,
    extra: &Extra,
) -> Result<String, OAuthError> {
    let code = AuthorizationCode {
        subject,
        redirect_uri: redirect_uri.clone(),
        code_challenge: extra.code_challenge.clone(),
        nonce: extra.nonce.clone(),
    };
    let grants = Grants {
        store: app.state_store.as_ref(),
    };
    let value = grants.issue_code(&code, app.oidc.code_ttl).await?;
    let mut pairs = vec![("code", value.as_str())];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", &app.oidc.issuer));
    Ok(with_query(&redirect_uri, &pairs))
}

/// An error sent back to the client (RFC 6749 4.1.2.1, RFC 9207 `iss`).
fn redirect_error(
    settings: &OidcSettings,
    redirect_uri: &str,
    e: &OAuthError,
    state: Option<&str>,
) -> Response {
    let [error, description] = e.query_pairs();
    let mut pairs = vec![
        (error.0, error.1.as_str()),
        (description.0, description.1.as_str()),
    ];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", &settings.issuer));
    redirect(&with_query(redirect_uri, &pairs))
}

/// `/oauth2/consent?x_ref=..&code=..`: the finished flow's `finish_redirect_uri`.
pub async fn consent(State(app): State<AppState>, RawQuery(query): RawQuery) -> Response {
    match consent_redirect(&app, query.unwrap_or_default().as_bytes()).await {
        Ok(location) => redirect(&location),
        Err(page) => page.into_response(),
    }
}

async fn consent_redirect(app: &AppState, query: &[u8]) -> Result<String, ErrorPage> {
    let expired = || {
        ErrorPage::bad_request(
            "Sign-in expired",
            "This sign-in has expired or was already completed. Please start again from the application.",
        )
    };
    let params = Params::parse(query)?;
    let (Some(x_ref), Some(code)) = (params.get("x_ref"), params.get("code")) else {
        return Err(expired());
    };
    let info: AuthenticationInfo = app
        .state_store
        .take(&authentication_info_key(code))
        .await?
        .and_then(|j| serde_json::from_str(&j).ok())
        .ok_or_else(expired)?;
    if info.x_ref != x_ref {
        return Err(expired());
    }
    let session: OAuthSession = app
        .state_store
        .take(&oauth_session_key(x_ref))
        .await?
        .and_then(|j| serde_json::from_str(&j).ok())
        .ok_or_else(expired)?;
    let registered = app
        .oidc
        .client(&session.client_id)
        .is_some_and(|c| c.redirect_uris.contains(&session.redirect_uri));
    if !registered {
        return Err(expired());
    }
    let extra: Extra = serde_json::from_value(session.extra.clone()).unwrap_or_default();
    let subject = Subject {
        client_id: session.client_id.clone(),
        user_id: info.user_id,
        scope: extra.scope.clone(),
        auth_time: info.authenticated_at.timestamp(),
        amr: info.amr,
        sid: info.session_id,
    };
    Ok(code_redirect(
        app,
        session.redirect_uri.clone(),
        session.state.as_deref(),
        subject,
        &extra,
    )
    .await?)
}
