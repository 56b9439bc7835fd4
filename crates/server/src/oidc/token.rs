//! `/oauth2/token` (RFC 6749 4.1.3, 4.4, 6; RFC 7636 4.6; OIDC Core 3.1.3).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use authflow_core::config::OAuthClientConfig;

use super::claims::{AccessToken, SCOPES, access_token_claims, id_token_claims, user_claims};
use super::client::authenticate;
use super::error::OAuthError;
use super::grants::{AuthorizationCode, Grant, Grants, Subject};
use super::params::{Params, form_body, s256, secrets_equal, split_spaces, unix_now};
use crate::AppState;

pub async fn token(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let params = form_body(&headers, &body)?;
    let client = authenticate(&app.oidc, &headers, &params)?;
    let body = match params.require("grant_type")? {
        "authorization_code" => authorization_code(&app, client, &params).await?,
        "refresh_token" => refresh_token(&app, client, &params).await?,
        "client_credentials" => client_credentials(&app, client, &params)?,
        _ => return Err(OAuthError::UnsupportedGrantType),
    };
    // Cache-Control: no-store comes from the app's middleware (RFC 6749 5.1).
    Ok(([(header::PRAGMA, "no-cache")], Json(body)).into_response())
}

fn grants(app: &AppState) -> Grants<'_> {
    Grants {
        store: app.state_store.as_ref(),
    }
}

fn refuse_m2m(client: &OAuthClientConfig) -> Result<(), OAuthError> {
    if client.is_m2m() {
        return Err(OAuthError::UnauthorizedClient(
            "this client may only use client_credentials",
        ));
    }
    Ok(())
}

async fn authorization_code(
    app: &AppState,
    client: &OAuthClientConfig,
    params: &Params,
) -> Result<Value, OAuthError> {
    refuse_m2m(client)?;
    let code = params.require("code")?;
    let grants = grants(app);
    let record = grants
        .redeem_code(code)
        .await?
        .ok_or(OAuthError::InvalidGrant(
            "the authorization code is invalid, expired or was already used",
        ))?;
    let grant_id = Grants::new_grant_id();
    let remember = app.oidc.code_ttl + client.access_token_lifetime();
    grants.mark_spent(code, &grant_id, remember).await?;
    check_code(client, &record, params)?;
    let offline = record.subject.has_scope("offline_access");
    let lifetime = if offline {
        client.refresh_token_lifetime_seconds
    } else {
        client.access_token_lifetime_seconds
    };
    let grant = Grant {
        id: grant_id,
        subject: record.subject,
        expires_at: unix_now() + lifetime as i64,
    };
    let mut body = tokens(app, client, &grant, record.nonce.as_deref()).await?;
    grants.save_grant(&grant).await?;
    if offline {
        let refresh = grants
            .issue_refresh_token(&grant, client.refresh_token_idle_timeout())
            .await?;
        body["refresh_token"] = json!(refresh);
    }
    Ok(body)
}

/// The code belongs to this client and redirect URI, and the PKCE verifier matches.
fn check_code(
    client: &OAuthClientConfig,
    code: &AuthorizationCode,
    params: &Params,
) -> Result<(), OAuthError> {
    if code.subject.client_id != client.client_id {
        return Err(OAuthError::InvalidGrant(
            "the authorization code was issued to another client",
        ));
    }
    if params.get("redirect_uri") != Some(code.redirect_uri.as_str()) {
        return Err(OAuthError::InvalidGrant(
            "redirect_uri does not match the authorization request",
        ));
    }
    let verifier = params.get("code_verifier");
    match (&code.code_challenge, verifier) {
        (Some(challenge), Some(v))
            if is_valid_verifier(v) && secrets_equal(&s256(v), challenge) =>
        {
            Ok(())
        }
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::InvalidGrant(
            "code_verifier given but the request had no code_challenge",
        )),
        _ => Err(OAuthError::InvalidGrant("code_verifier does not match")),
    }
}

/// 43 to 128 unreserved characters (RFC 7636 4.1).
fn is_valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

async fn refresh_token(
    app: &AppState,
    client: &OAuthClientConfig,
    params: &Params,
) -> Result<Value, OAuthError> {
    refuse_m2m(client)?;
    let token = params.require("refresh_token")?;
    let rotate = client.refresh_token_rotation_enabled;
    let idle = client.refresh_token_idle_timeout();
    let grants = grants(app);
    let mut grant = grants
        .use_refresh_token(token, &client.client_id, rotate, idle)
        .await?;
    if !session_lives(app, &grant).await? {
        grants.revoke_grant(&grant.id).await?;
        return Err(OAuthError::InvalidGrant(
            "the session of this grant has ended",
        ));
    }
    if let Some(requested) = params.get("scope") {
        grant.subject.scope = narrowed_scope(&grant.subject, requested)?;
    }
    let mut body = match tokens(app, client, &grant, None).await {
        Err(e @ OAuthError::InvalidGrant(_)) => {
            grants.revoke_grant(&grant.id).await?;
            return Err(e);
        }
        other => other?,
    };
    if rotate {
        body["refresh_token"] = json!(grants.issue_refresh_token(&grant, idle).await?);
    }
    Ok(body)
}

/// A refresh token belongs to the IdP session it was issued in: a revoked session (logout,
/// password reset, disabled user) ends it. Expiry does not: offline access outlives the cookie.
async fn session_lives(app: &AppState, grant: &Grant) -> Result<bool, OAuthError> {
    let Some(sid) = &grant.subject.sid else {
        return Ok(true);
    };
    let session = app.db.get_session(sid).await?;
    Ok(session.is_some_and(|s| s.revoked_at.is_none()))
}

/// A refresh may ask for fewer scopes, never more (RFC 6749 6).
fn narrowed_scope(subject: &Subject, requested: &str) -> Result<Vec<String>, OAuthError> {
    let requested = split_spaces(Some(requested));
    match requested.iter().find(|s| !subject.has_scope(s)) {
        Some(extra) => Err(OAuthError::InvalidScope(format!(
            "scope {extra} was not granted"
        ))),
        None => Ok(requested),
    }
}

fn client_credentials(
    app: &AppState,
    client: &OAuthClientConfig,
    params: &Params,
) -> Result<Value, OAuthError> {
    if !client.is_confidential() {
        return Err(OAuthError::UnauthorizedClient(
            "client_credentials needs a confidential client",
        ));
    }
    let scope = split_spaces(params.get("scope"));
    if let Some(s) = scope.first() {
        let why = if SCOPES.contains(&s.as_str()) {
            "is about a user"
        } else {
            "is unknown"
        };
        return Err(OAuthError::InvalidScope(format!("scope {s} {why}")));
    }
    let claims = access_token_claims(&AccessToken {
        issuer: &app.oidc.issuer,
        client_id: &client.client_id,
        sub: &client.client_id,
        scope: &[],
        grant_id: None,
        subject: None,
        now: unix_now(),
        lifetime: client.access_token_lifetime_seconds,
    });
    let access_token = app.signing.sign_typed("at+jwt", &claims)?;
    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": client.access_token_lifetime_seconds,
    }))
}

/// Access token and (with `openid`) ID token for a user's grant.
async fn tokens(
    app: &AppState,
    client: &OAuthClientConfig,
    grant: &Grant,
    nonce: Option<&str>,
) -> Result<Value, OAuthError> {
    let subject = &grant.subject;
    let user: Map<String, Value> = user_claims(app.db.as_ref(), &subject.user_id, &subject.scope)
        .await?
        .ok_or(OAuthError::InvalidGrant(
            "the user no longer exists or is disabled",
        ))?;
    let now = unix_now();
    let lifetime = client.access_token_lifetime_seconds;
    let access = access_token_claims(&AccessToken {
        issuer: &app.oidc.issuer,
        client_id: &client.client_id,
        sub: &subject.user_id,
        scope: &subject.scope,
        grant_id: Some(&grant.id),
        subject: Some(subject),
        now,
        lifetime,
    });
    let mut body = json!({
        "access_token": app.signing.sign_typed("at+jwt", &access)?,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": subject.scope.join(" "),
    });
    if subject.has_scope("openid") {
        let claims = id_token_claims(&app.oidc.issuer, subject, user, nonce, now, lifetime);
        body["id_token"] = json!(app.signing.sign(&claims)?);
    }
    Ok(body)
}
