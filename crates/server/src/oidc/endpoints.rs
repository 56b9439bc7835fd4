//! Discovery (OIDC Discovery 3), JWKS, userinfo (OIDC Core 5.3), revocation (RFC 7009)
//! and introspection (RFC 7662).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::claims::{CLAIMS, SCOPES, user_claims};
use super::client::authenticate;
use super::error::OAuthError;
use super::grants::Grants;
use super::params::{Params, form_body};
use super::*;
use crate::AppState;

pub async fn discovery(State(app): State<AppState>) -> Json<Value> {
    let s = &app.oidc;
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    Json(json!({
        "issuer": s.issuer,
        "authorization_endpoint": s.url(AUTHORIZE_PATH),
        "token_endpoint": s.url(TOKEN_PATH),
        "userinfo_endpoint": s.url(USERINFO_PATH),
        "jwks_uri": s.url(JWKS_PATH),
        "revocation_endpoint": s.url(REVOKE_PATH),
        "introspection_endpoint": s.url(INTROSPECT_PATH),
        "end_session_endpoint": s.url(END_SESSION_PATH),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [app.signing.algorithm()],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS,
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    }))
}

pub async fn jwks(State(app): State<AppState>) -> Response {
    let mut response = Json(app.signing.jwks()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/jwk-set+json"),
    );
    response
}

/// The claims of a live access token issued here (signature, `exp`, `iss`, `typ`
/// `at+jwt`, not revoked, grant still live).
async fn verify_access_token(app: &AppState, token: &str) -> Result<Value, OAuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| OAuthError::InvalidToken)?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err(OAuthError::InvalidToken);
    }
    let claims = app.signing.verify(token)?;
    if claims["iss"] != json!(app.oidc.issuer) {
        return Err(OAuthError::InvalidToken);
    }
    let grants = Grants {
        store: app.state_store.as_ref(),
    };
    let jti = claims["jti"].as_str().ok_or(OAuthError::InvalidToken)?;
    if grants.access_token_revoked(jti).await? {
        return Err(OAuthError::InvalidToken);
    }
    if let Some(grant_id) = claims["grant_id"].as_str()
        && grants.grant(grant_id).await?.is_none()
    {
        return Err(OAuthError::InvalidToken);
    }
    Ok(claims)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `GET|POST /oauth2/userinfo` with `Authorization: Bearer`.
pub async fn userinfo(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let token = bearer(&headers).ok_or(OAuthError::InvalidToken)?;
    let claims = verify_access_token(&app, token).await?;
    let user_id = claims["sub"].as_str().ok_or(OAuthError::InvalidToken)?;
    if claims.get("grant_id").is_none() {
        return Err(OAuthError::InvalidToken);
    }
    let scope: Vec<String> = claims["scope"]
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .map(str::to_string)
        .collect();
    if !scope.iter().any(|s| s == "openid") {
        return Err(OAuthError::InvalidToken);
    }
    let user = user_claims(app.db.as_ref(), user_id, &scope)
        .await?
        .ok_or(OAuthError::InvalidToken)?;
    Ok(Json(Value::Object(user)).into_response())
}

/// `POST /oauth2/revoke` (RFC 7009): always 200 once the client is authenticated; tokens of
/// other clients and unknown tokens are ignored.
pub async fn revoke(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let params = form_body(&headers, &body)?;
    let client = authenticate(&app.oidc, &headers, &params)?;
    let token = params.require("token")?;
    let grants = Grants {
        store: app.state_store.as_ref(),
    };
    if let Some(grant) = grants.refresh_token_grant(token).await? {
        if grant.subject.client_id == client.client_id {
            grants.revoke_grant(&grant.id).await?;
        }
    } else if let Ok(claims) = verify_access_token(&app, token).await
        && claims["client_id"] == json!(client.client_id)
    {
        let jti = claims["jti"].as_str().unwrap_or_default();
        let exp = claims["exp"].as_i64().unwrap_or_default();
        grants.revoke_access_token(jti, exp).await?;
    }
    Ok(StatusCode::OK.into_response())
}

/// `POST /oauth2/introspect` (RFC 7662), for confidential clients.
pub async fn introspect(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, OAuthError> {
    let params: Params = form_body(&headers, &body)?;
    let client = authenticate(&app.oidc, &headers, &params)?;
    if !client.is_confidential() {
        return Err(OAuthError::InvalidClient {
            basic: headers.contains_key(header::AUTHORIZATION),
        });
    }
    let token = params.require("token")?;
    if let Ok(claims) = verify_access_token(&app, token).await {
        let mut out = json!({"active": true, "token_type": "Bearer"});
        for key in [
            "scope",
            "client_id",
            "sub",
            "exp",
            "iat",
            "iss",
            "aud",
            "jti",
            "sid",
        ] {
            if let Some(v) = claims.get(key) {
                out[key] = v.clone();
            }
        }
        return Ok(Json(out));
    }
    let grants = Grants {
        store: app.state_store.as_ref(),
    };
    match grants.refresh_token_grant(token).await? {
        Some(grant) => Ok(Json(json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": grant.subject.scope.join(" "),
            "client_id": grant.subject.client_id,
            "sub": grant.subject.user_id,
            "exp": grant.expires_at,
            "iss": app.oidc.issuer,
        }))),
        None => Ok(Json(json!({"active": false}))),
    }
}
