//! Token contents: ID tokens (OIDC Core 2), JWT access tokens (RFC 9068) and the scoped
//! user claims of ID tokens and userinfo (OIDC Core 5.4).

use serde_json::{Map, Value, json};

use authflow_core::model::LoginIdType;
use authflow_core::store::Database;

use super::error::OAuthError;
use super::grants::Subject;
use super::params::random_token;

pub const SCOPES: [&str; 5] = ["openid", "profile", "email", "phone", "offline_access"];
pub const CLAIMS: [&str; 15] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "amr",
    "sid",
    "name",
    "preferred_username",
    "email",
    "email_verified",
    "phone_number",
    "phone_number_verified",
];

/// The user's claims allowed by `scope`, plus `sub`. `None` if the user is gone or disabled.
pub async fn user_claims(
    db: &dyn Database,
    user_id: &str,
    scope: &[String],
) -> Result<Option<Map<String, Value>>, OAuthError> {
    let Some(user) = db.get_user(user_id).await?.filter(|u| !u.disabled) else {
        return Ok(None);
    };
    let has = |s: &str| scope.iter().any(|x| x == s);
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.id));
    if !(has("profile") || has("email") || has("phone")) {
        return Ok(Some(claims));
    }
    let identities = db.list_identities(user_id).await?;
    let verified = db.list_verified_claims(user_id).await?;
    let is_verified =
        |name: &str, value: &str| verified.iter().any(|v| v.name == name && v.value == value);
    let first = |t: LoginIdType| identities.iter().find(|i| i.login_id_type == t);
    if has("profile") {
        if let Some(name) = &user.name {
            claims.insert("name".into(), json!(name));
        }
        if let Some(u) = first(LoginIdType::Username) {
            claims.insert("preferred_username".into(), json!(u.normalized));
        }
    }
    if has("email")
        && let Some(e) = first(LoginIdType::Email)
    {
        claims.insert("email".into(), json!(e.normalized));
        claims.insert(
            "email_verified".into(),
            json!(is_verified("email", &e.normalized)),
        );
    }
    if has("phone")
        && let Some(p) = first(LoginIdType::Phone)
    {
        claims.insert("phone_number".into(), json!(p.normalized));
        claims.insert(
            "phone_number_verified".into(),
            json!(is_verified("phone_number", &p.normalized)),
        );
    }
    Ok(Some(claims))
}

/// Claims of an ID token: the user's claims plus the authentication facts.
pub fn id_token_claims(
    issuer: &str,
    subject: &Subject,
    user: Map<String, Value>,
    nonce: Option<&str>,
    now: i64,
    lifetime: u64,
) -> Value {
    let mut claims = user;
    claims.insert("iss".into(), json!(issuer));
    claims.insert("aud".into(), json!(subject.client_id));
    claims.insert("exp".into(), json!(now + lifetime as i64));
    claims.insert("iat".into(), json!(now));
    claims.insert("auth_time".into(), json!(subject.auth_time));
    if !subject.amr.is_empty() {
        claims.insert("amr".into(), json!(subject.amr));
    }
    if let Some(sid) = &subject.sid {
        claims.insert("sid".into(), json!(sid));
    }
    if let Some(nonce) = nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    Value::Object(claims)
}

/// The facts an access token carries.
pub struct AccessToken<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The user, or the client itself for `client_credentials`.
    pub sub: &'a str,
    pub scope: &'a [String],
    pub grant_id: Option<&'a str>,
    pub subject: Option<&'a Subject>,
    pub now: i64,
    pub lifetime: u64,
}

/// Claims of a JWT access token (RFC 9068 2.2); `aud` is the issuer, whose userinfo
/// endpoint is the resource.
pub fn access_token_claims(t: &AccessToken<'_>) -> Value {
    let mut claims = json!({
        "iss": t.issuer,
        "sub": t.sub,
        "aud": t.issuer,
        "client_id": t.client_id,
        "exp": t.now + t.lifetime as i64,
        "iat": t.now,
        "jti": random_token(16),
        "scope": t.scope.join(" "),
    });
    if let Some(grant_id) = t.grant_id {
        claims["grant_id"] = json!(grant_id);
    }
    if let Some(s) = t.subject {
        claims["auth_time"] = json!(s.auth_time);
        if let Some(sid) = &s.sid {
            claims["sid"] = json!(sid);
        }
    }
    claims
}
