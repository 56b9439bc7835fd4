//! The session JWT of `/auth/login` (backend-auth-api.md 5) and its full check: signature,
//! `exp`, a live server-side session, the caller's organization, the request's email.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use authflow_core::clock::OsRandom;
use authflow_core::credentials::login_id::NormalizedLoginId;
use authflow_core::credentials::token::{constant_time_eq, random_id, sha256_hex};
use authflow_core::model::{Session, SessionKind};

use super::accounts::{Account, find_account};
use super::error::AuthApiError;
use super::request::Caller;
use crate::AppState;

/// `aud` of the session tokens of one organization.
pub fn audience(org_id: &str) -> String {
    format!("authflow:auth_api:{org_id}")
}

/// A signed token and the session record it stands for (not yet stored).
pub struct IssuedToken {
    pub jwt: String,
    pub session: Session,
}

/// A new session of `account` for `caller`, and its token.
pub fn issue(
    app: &AppState,
    caller: &Caller,
    account: &Account,
    now: DateTime<Utc>,
) -> Result<IssuedToken, AuthApiError> {
    let lifetime = chrono::Duration::from_std(app.auth_api.config.session_token_lifetime)
        .map_err(|e| AuthApiError::Internal(format!("session token lifetime: {e}")))?;
    let mut session = Session {
        id: random_id(&OsRandom),
        user_id: account.user.id.clone(),
        org_id: caller.org.id.clone(),
        kind: SessionKind::AuthApi,
        token_hash: String::new(),
        amr: vec!["pwd".into()],
        created_at: now,
        last_accessed_at: now,
        expires_at: now + lifetime,
        revoked_at: None,
    };
    let claims = claims(app, caller, account, &session);
    let jwt = app
        .signing
        .sign(&claims)
        .map_err(|e| AuthApiError::Internal(format!("signing a session token: {e}")))?;
    session.token_hash = sha256_hex(&jwt);
    Ok(IssuedToken { jwt, session })
}

fn claims(app: &AppState, caller: &Caller, account: &Account, session: &Session) -> Value {
    json!({
        "iss": app.auth_api.issuer,
        "aud": audience(&caller.org.id),
        "sub": account.user.id,
        "email": account.identity.normalized,
        "org_id": caller.org.id,
        "sid": session.id,
        "api_key_id": caller.api_key_id,
        "iat": session.created_at.timestamp(),
        "exp": session.expires_at.timestamp(),
    })
}

/// A valid token's session and user.
pub struct Authenticated {
    pub session: Session,
    pub account: Account,
}

/// Check `token` fully for `caller` and `email`: `invalid_session` for any flaw of the
/// token or its session, `user_not_found` when the organization has no user of `email`.
pub async fn authenticate(
    app: &AppState,
    caller: &Caller,
    token: &str,
    email: &NormalizedLoginId,
    now: DateTime<Utc>,
) -> Result<Authenticated, AuthApiError> {
    let claims = app
        .signing
        .verify(token)
        .map_err(|_| AuthApiError::InvalidSession)?;
    let session_id = check_claims(app, caller, &claims, now)?;
    let session = live_session(app, caller, session_id, token, now).await?;
    let account = find_account(app, &caller.org.id, email)
        .await?
        .ok_or(AuthApiError::UserNotFound)?;
    if account.user.id != session.user_id || account.user.disabled {
        return Err(AuthApiError::InvalidSession);
    }
    Ok(Authenticated { session, account })
}

/// The session id of claims issued by us, for the caller's organization, not expired.
fn check_claims<'a>(
    app: &AppState,
    caller: &Caller,
    claims: &'a Value,
    now: DateTime<Utc>,
) -> Result<&'a str, AuthApiError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let exp = claims.get("exp").and_then(Value::as_i64);
    let ours = text("iss") == Some(app.auth_api.issuer.as_str())
        && text("aud") == Some(audience(&caller.org.id).as_str())
        && text("org_id") == Some(caller.org.id.as_str())
        && exp.is_some_and(|exp| now.timestamp() < exp);
    match text("sid") {
        Some(sid) if ours => Ok(sid),
        _ => Err(AuthApiError::InvalidSession),
    }
}

/// The stored session the token was issued for: same token, same organization, an
/// `/auth` session, not revoked, not expired.
async fn live_session(
    app: &AppState,
    caller: &Caller,
    session_id: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Session, AuthApiError> {
    let session = app
        .db
        .get_session(session_id)
        .await?
        .ok_or(AuthApiError::InvalidSession)?;
    let same_token = constant_time_eq(sha256_hex(token).as_bytes(), session.token_hash.as_bytes());
    let live = same_token
        && session.kind == SessionKind::AuthApi
        && session.org_id == caller.org.id
        && session.is_live(now, None);
    if live {
        Ok(session)
    } else {
        Err(AuthApiError::InvalidSession)
    }
}
