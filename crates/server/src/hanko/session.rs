//! Sessions as the Hanko SDK expects them (hanko-flow-api.md 9): the session JWT, its
//! `claims` rendering, the user object, and `/me`, `/users/{id}`, `/sessions/validate`,
//! `/logout`, `/.well-known/jwks.json`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Value, json};

use authflow_core::config::{SameSite, SessionRetention};
use authflow_core::credentials::token::{constant_time_eq, sha256_hex};
use authflow_core::model::{
    AuthenticatorKind, AuthenticatorType, DEFAULT_ORG_ID, LoginIdType, Session, SessionKind,
};
use authflow_core::store::Change;

use super::HankoSettings;
use super::error::HankoError;
use crate::AppState;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A checked session token: its claims and its session record.
pub struct LiveSession {
    pub claims: Value,
    pub session: Session,
}

/// A session created at `success`, and the token standing for it.
pub struct Issued {
    pub jwt: String,
    pub claims: Value,
    pub user: Value,
}

/// Create the Hanko session of a finished flow: it replaces the engine's IdP session (whose
/// cookie this dialect never hands out) in one transaction, and sign its JWT (spec 9.1).
pub async fn issue(
    app: &AppState,
    settings: &HankoSettings,
    user_id: &str,
    engine_session_id: Option<&str>,
    amr: &[String],
) -> Result<Issued, HankoError> {
    let now = Utc::now();
    let lifetime = chrono::Duration::from_std(settings.config.session.lifetime)
        .map_err(|e| HankoError::Technical(format!("session lifetime: {e}")))?;
    let mut session = Session {
        id: super::record::uuid_v4(),
        user_id: user_id.to_string(),
        org_id: DEFAULT_ORG_ID.to_string(),
        kind: SessionKind::Hanko,
        token_hash: String::new(),
        amr: amr.to_vec(),
        created_at: now,
        last_accessed_at: now,
        expires_at: now + lifetime,
        revoked_at: None,
    };
    let user = user_object(app, user_id).await?;
    let mut claims = json!({
        "sub": user_id,
        "session_id": session.id,
        "iat": now.timestamp(),
        "exp": session.expires_at.timestamp(),
        "aud": settings.audience,
        "iss": settings.public_origin,
        "amr": amr,
    });
    if let Some(email) = user["emails"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["is_primary"] == json!(true)))
    {
        claims["email"] = json!({
            "address": email["address"],
            "is_primary": true,
            "is_verified": email["is_verified"],
        });
    }
    if let Some(username) = user["username"]["username"].as_str() {
        claims["username"] = json!(username);
    }
    let jwt = app
        .signing
        .sign(&claims)
        .map_err(|e| HankoError::Technical(format!("signing a session token: {e}")))?;
    session.token_hash = sha256_hex(&jwt);
    let mut changes = Vec::new();
    if let Some(id) = engine_session_id {
        changes.push(Change::RevokeSession {
            session_id: id.to_string(),
            at: now,
        });
    }
    changes.push(Change::CreateSession(session));
    app.db
        .commit(changes)
        .await
        .map_err(|e| HankoError::Technical(format!("storing the session: {e}")))?;
    Ok(Issued {
        jwt,
        claims: render_claims(&claims),
        user,
    })
}

/// The headers (and cookie) of a `success` response (spec 9.1).
pub fn session_headers(settings: &HankoSettings, jwt: &str, remember_me: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    let lifetime = settings.config.session.lifetime.as_secs();
    let persistent = match settings.config.session.retention {
        SessionRetention::Persistent => true,
        SessionRetention::Session => false,
        SessionRetention::Prompt => remember_me,
    };
    if settings.config.session.auth_token_header {
        if let Ok(v) = HeaderValue::from_str(jwt) {
            h.insert("x-auth-token", v);
        }
    } else {
        let max_age = persistent.then_some(lifetime);
        if let Ok(v) = HeaderValue::from_str(&cookie(settings, jwt, max_age)) {
            h.append(header::SET_COOKIE, v);
        }
    }
    h.insert("x-session-lifetime", HeaderValue::from(lifetime));
    h.insert(
        "x-session-retention",
        HeaderValue::from_static(if persistent { "persistent" } else { "session" }),
    );
    h
}

fn cookie(settings: &HankoSettings, value: &str, max_age: Option<u64>) -> String {
    let c = &settings.config.session.cookie;
    let same_site = match c.same_site {
        SameSite::Lax => "Lax",
        SameSite::Strict => "Strict",
        SameSite::None => "None",
    };
    let mut s = format!("{}={value}; Path=/; HttpOnly; SameSite={same_site}", c.name);
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    if let Some(domain) = &c.domain {
        s.push_str(&format!("; Domain={domain}"));
    }
    if settings.secure {
        s.push_str("; Secure");
    }
    s
}

/// The session token of a request: `Authorization: Bearer` first, then the cookie.
pub fn token_of(settings: &HankoSettings, headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(t) = bearer {
        return Some(t.to_string());
    }
    cookie_token(settings, headers)
}

pub fn cookie_token(settings: &HankoSettings, headers: &HeaderMap) -> Option<String> {
    let name = &settings.config.session.cookie.name;
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

/// Signature by a published key, `exp`, `aud`, and a live Hanko session of that token.
pub async fn validate(
    app: &AppState,
    settings: &HankoSettings,
    token: &str,
) -> Result<Option<LiveSession>, HankoError> {
    let Ok(claims) = app.signing.verify(token) else {
        return Ok(None);
    };
    let now = Utc::now();
    let exp_ok = claims["exp"].as_i64().is_some_and(|e| now.timestamp() < e);
    let aud_ok = match &claims["aud"] {
        Value::String(a) => settings.audience.contains(a),
        Value::Array(list) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| settings.audience.iter().any(|x| x == a)),
        _ => false,
    };
    let Some(session_id) = claims["session_id"].as_str().filter(|_| exp_ok && aud_ok) else {
        return Ok(None);
    };
    let Some(session) = app
        .db
        .get_session(session_id)
        .await
        .map_err(|e| HankoError::Technical(format!("reading a session: {e}")))?
    else {
        return Ok(None);
    };
    let live = session.kind == SessionKind::Hanko
        && session.is_live(now, None)
        && constant_time_eq(sha256_hex(token).as_bytes(), session.token_hash.as_bytes());
    Ok(live.then_some(LiveSession { claims, session }))
}

/// The session of a request, if valid.
pub async fn current(
    app: &AppState,
    settings: &HankoSettings,
    headers: &HeaderMap,
) -> Result<Option<LiveSession>, HankoError> {
    match token_of(settings, headers) {
        Some(t) => validate(app, settings, &t).await,
        None => Ok(None),
    }
}

/// `claims` of `success.payload` and `/sessions/validate` (spec 9.2).
pub fn render_claims(claims: &Value) -> Value {
    let time = |k: &str| {
        claims[k]
            .as_i64()
            .and_then(|t| Utc.timestamp_opt(t, 0).single())
            .map(rfc3339)
    };
    let mut out = json!({
        "subject": claims["sub"],
        "session_id": claims["session_id"],
        "issued_at": time("iat"),
        "expiration": time("exp"),
        "audience": claims["aud"],
        "issuer": claims["iss"],
    });
    if let Some(obj) = claims.as_object() {
        for (k, v) in obj {
            match k.as_str() {
                "sub" | "session_id" | "iat" | "exp" | "aud" | "iss" => {}
                _ => out[k.as_str()] = v.clone(),
            }
        }
    }
    out
}

/// The user object (spec 9.4).
pub async fn user_object(app: &AppState, user_id: &str) -> Result<Value, HankoError> {
    let store = |e: authflow_core::store::StoreError| HankoError::Technical(e.to_string());
    let user = app
        .db
        .get_user(user_id)
        .await
        .map_err(store)?
        .ok_or_else(|| HankoError::Technical("session user vanished".into()))?;
    let mut identities = app.db.list_identities(user_id).await.map_err(store)?;
    identities.sort_by_key(|i| i.created_at);
    let claims = app.db.list_verified_claims(user_id).await.map_err(store)?;
    let verified =
        |name: &str, value: &str| claims.iter().any(|c| c.name == name && c.value == value);
    let authenticators = app.db.list_authenticators(user_id).await.map_err(store)?;
    let totp = authenticators.iter().any(|a| {
        a.kind == AuthenticatorKind::Secondary && a.authenticator_type == AuthenticatorType::Totp
    });
    let of_type = |t: LoginIdType| identities.iter().filter(move |i| i.login_id_type == t);
    let emails: Vec<Value> = of_type(LoginIdType::Email)
        .enumerate()
        .map(|(n, i)| {
            json!({"id": i.id, "address": i.normalized,
                "is_verified": verified("email", &i.normalized), "is_primary": n == 0})
        })
        .collect();
    let phones: Vec<Value> = of_type(LoginIdType::Phone)
        .enumerate()
        .map(|(n, i)| {
            json!({"id": i.id, "number": i.normalized,
                "is_verified": verified("phone_number", &i.normalized), "is_primary": n == 0})
        })
        .collect();
    let mut v = json!({
        "id": user.id,
        "user_id": user.id,
        "mfa_config": {"auth_app_set_up": totp, "totp_enabled": totp, "security_keys_enabled": false},
        "created_at": rfc3339(user.created_at),
        "updated_at": rfc3339(user.created_at),
    });
    if !emails.is_empty() {
        v["emails"] = json!(emails);
    }
    if !phones.is_empty() {
        v["phone_numbers"] = json!(phones);
    }
    if let Some(u) = of_type(LoginIdType::Username).next() {
        v["username"] = json!({"id": u.id, "username": u.original,
            "created_at": rfc3339(u.created_at), "updated_at": rfc3339(u.created_at)});
    }
    Ok(v)
}

/// `sessions` of `profile_init`: the user's live Hanko sessions.
pub async fn sessions_of(
    app: &AppState,
    user_id: &str,
    current_id: &str,
) -> Result<Vec<Value>, HankoError> {
    let now = Utc::now();
    let list = app
        .db
        .list_user_sessions(user_id)
        .await
        .map_err(|e| HankoError::Technical(e.to_string()))?;
    Ok(list
        .into_iter()
        .filter(|s| s.kind == SessionKind::Hanko && s.is_live(now, None))
        .map(|s| {
            json!({"id": s.id, "created_at": rfc3339(s.created_at),
                "last_used": rfc3339(s.last_accessed_at), "expires_at": rfc3339(s.expires_at),
                "current": s.id == current_id})
        })
        .collect())
}

/// Verify a session JWT against a JWKS document (as `/.well-known/jwks.json` serves it), the
/// way a backend of the application does: signature by the key of its `kid`, `exp`, `aud`.
/// Returns the claims.
pub fn verify_with_jwks(token: &str, jwks: &Value, audience: &str) -> Result<Value, String> {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
    let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| format!("jwks: {e}"))?;
    let header = decode_header(token).map_err(|e| format!("header: {e}"))?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("kid not in the jwks")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key: {e}"))?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    decode::<Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| format!("token: {e}"))
}

// ---------------------------------------------------------------------------------------
// endpoints

/// Non-flow errors: `{"code": <status>, "message"}` (spec 2.1).
pub fn plain_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16(), "message": message})),
    )
        .into_response()
}

fn unauthorized() -> Response {
    plain_error(StatusCode::UNAUTHORIZED, "Unauthorized")
}

fn technical(e: HankoError) -> Response {
    if let HankoError::Technical(detail) = &e {
        tracing::error!(error = %detail, "hanko session endpoint failed");
    }
    plain_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

fn settings_of(app: &AppState) -> &HankoSettings {
    app.hanko
        .as_deref()
        .expect("routes are mounted only when enabled")
}

pub async fn me(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let settings = settings_of(&app);
    match current(&app, settings, &headers).await {
        Ok(Some(s)) => match user_object(&app, &s.session.user_id).await {
            Ok(user) => Json(user).into_response(),
            Err(e) => technical(e),
        },
        Ok(None) => unauthorized(),
        Err(e) => technical(e),
    }
}

pub async fn user_by_id(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let settings = settings_of(&app);
    match current(&app, settings, &headers).await {
        Ok(Some(s)) if s.session.user_id == id => match user_object(&app, &id).await {
            Ok(user) => Json(user).into_response(),
            Err(e) => technical(e),
        },
        Ok(Some(_)) => plain_error(StatusCode::FORBIDDEN, "Forbidden"),
        Ok(None) => unauthorized(),
        Err(e) => technical(e),
    }
}

fn validation_body(s: Option<LiveSession>) -> Value {
    match s {
        Some(s) => {
            let claims = render_claims(&s.claims);
            json!({
                "is_valid": true,
                "expiration_time": claims["expiration"],
                "user_id": s.session.user_id,
                "claims": claims,
            })
        }
        None => json!({"is_valid": false}),
    }
}

pub async fn validate_get(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let settings = settings_of(&app);
    match current(&app, settings, &headers).await {
        Ok(s) => Json(validation_body(s)).into_response(),
        Err(e) => technical(e),
    }
}

pub async fn validate_post(State(app): State<AppState>, body: axum::body::Bytes) -> Response {
    let settings = settings_of(&app);
    let token = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["session_token"].as_str().map(str::to_string))
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return plain_error(StatusCode::BAD_REQUEST, "session_token is missing");
    };
    match validate(&app, settings, &token).await {
        Ok(s) => Json(validation_body(s)).into_response(),
        Err(e) => technical(e),
    }
}

pub async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let settings = settings_of(&app);
    let session = match current(&app, settings, &headers).await {
        Ok(Some(s)) => s.session,
        Ok(None) => return unauthorized(),
        Err(e) => return technical(e),
    };
    if let Err(e) = app
        .db
        .commit(vec![Change::RevokeSession {
            session_id: session.id,
            at: Utc::now(),
        }])
        .await
    {
        return technical(HankoError::Technical(e.to_string()));
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie(settings, "", Some(0))) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

pub async fn jwks(State(app): State<AppState>) -> Response {
    let mut response = Json(app.signing.jwks()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_render_times_and_flatten_the_rest() {
        let c = json!({"sub": "u", "session_id": "s", "iat": 0, "exp": 60,
            "aud": ["http://x"], "iss": "http://x", "amr": ["pwd"], "email": {"address": "a@b.c"}});
        let r = render_claims(&c);
        assert_eq!(r["subject"], "u");
        assert_eq!(r["issued_at"], "1970-01-01T00:00:00Z");
        assert_eq!(r["expiration"], "1970-01-01T00:01:00Z");
        assert_eq!(r["amr"], json!(["pwd"]));
        assert_eq!(r["email"]["address"], "a@b.c");
        assert!(r.get("sub").is_none());
    }
}
