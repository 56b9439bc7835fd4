//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at `end_session_endpoint`:
//! ends the IdP session, clears its cookie, and redirects only to a registered
//! `post_logout_redirect_uri`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

use authflow_core::config::OAuthClientConfig;
use authflow_core::store::Change;

use super::authorize::live_idp_session;
use super::error::{ErrorPage, OAuthError, page};
use super::params::{Params, form_body, redirect, with_query};
use crate::AppState;

pub async fn end_session_get(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    respond(end_session(&app, &headers, params).await)
}

pub async fn end_session_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(end_session(&app, &headers, form_body(&headers, &body)).await)
}

fn respond(outcome: Result<Response, ErrorPage>) -> Response {
    outcome.unwrap_or_else(IntoResponse::into_response)
}

async fn end_session(
    app: &AppState,
    headers: &HeaderMap,
    params: Result<Params, OAuthError>,
) -> Result<Response, ErrorPage> {
    let params = params?;
    let hint = id_token_hint(app, &params)?;
    let client = logout_client(app, &params, hint.as_ref())?;
    let target = match params.get("post_logout_redirect_uri") {
        Some(uri) => Some(registered_target(client, uri)?),
        None => None,
    };
    revoke_session(app, headers, hint.as_ref()).await?;
    let mut response = match target {
        Some(uri) => {
            let state = params.get("state");
            let location = match state {
                Some(state) => with_query(uri, &[("state", state)]),
                None => uri.to_string(),
            };
            redirect(&location)
        }
        None => Html(page("Signed out", "<p>You have been signed out.</p>")).into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(app)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// The claims of a valid `id_token_hint` issued here (expired ones are accepted).
fn id_token_hint(app: &AppState, params: &Params) -> Result<Option<Value>, ErrorPage> {
    let Some(token) = params.get("id_token_hint") else {
        return Ok(None);
    };
    let claims = app.signing.verify_signature(token).map_err(|_| {
        ErrorPage::bad_request("Sign-out failed", "The id_token_hint is not valid.")
    })?;
    if claims["iss"].as_str() != Some(app.oidc.issuer.as_str()) {
        return Err(ErrorPage::bad_request(
            "Sign-out failed",
            "The id_token_hint was not issued here.",
        ));
    }
    Ok(Some(claims))
}

/// The client named by `client_id`, else by the hint's `aud`; they must agree.
fn logout_client<'a>(
    app: &'a AppState,
    params: &Params,
    hint: Option<&Value>,
) -> Result<Option<&'a OAuthClientConfig>, ErrorPage> {
    let from_hint = hint.and_then(|h| h["aud"].as_str());
    let client_id = match (params.get("client_id"), from_hint) {
        (Some(a), Some(b)) if a != b => {
            return Err(ErrorPage::bad_request(
                "Sign-out failed",
                "client_id does not match the id_token_hint.",
            ));
        }
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) => return Ok(None),
    };
    app.oidc.client(client_id).map(Some).ok_or_else(|| {
        ErrorPage::bad_request("Sign-out failed", "The application is not registered.")
    })
}

fn registered_target<'a>(
    client: Option<&OAuthClientConfig>,
    uri: &'a str,
) -> Result<&'a str, ErrorPage> {
    let registered = client.is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
    if registered {
        Ok(uri)
    } else {
        Err(ErrorPage::bad_request(
            "Sign-out failed",
            "The post_logout_redirect_uri is not registered for this application.",
        ))
    }
}

/// Revoke the IdP session of the cookie, else the one the hint's `sid` names.
async fn revoke_session(
    app: &AppState,
    headers: &HeaderMap,
    hint: Option<&Value>,
) -> Result<(), ErrorPage> {
    let from_cookie = live_idp_session(app, headers).await?.map(|s| s.id);
    let from_hint = || hint.and_then(|h| h["sid"].as_str()).map(str::to_string);
    let Some(session_id) = from_cookie.or_else(from_hint) else {
        return Ok(());
    };
    app.db
        .commit(vec![Change::RevokeSession {
            session_id,
            at: chrono::Utc::now(),
        }])
        .await
        .map_err(|e| ErrorPage::from(OAuthError::from(e)))
}

fn clear_cookie(app: &AppState) -> String {
    let secure = if app.oidc.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}",
        app.oidc.cookie_name
    )
}
