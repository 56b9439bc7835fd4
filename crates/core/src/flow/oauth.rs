//! The tie between flows and OAuth authorization requests (authentication-flow-api.md 12).
//! The OIDC layer stores an [`OAuthSession`] under its `x_ref` when `/oauth2/authorize`
//! sends the browser to a UI; a flow created with that `x_ref` ends by writing an
//! [`AuthenticationInfo`] entry, whose code the OIDC layer redeems at `consent_uri`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Lifetime of an OAuth session (the authorization request awaiting a login).
pub const OAUTH_SESSION_TTL: Duration = Duration::from_secs(20 * 60);
/// Lifetime of the single-use authentication-info entry written at finish.
pub const AUTHENTICATION_INFO_TTL: Duration = Duration::from_secs(5 * 60);

pub fn oauth_session_key(x_ref: &str) -> String {
    format!("oauth_session:{x_ref}")
}

pub fn authentication_info_key(code: &str) -> String {
    format!("authn_info:{code}")
}

/// An authorization request waiting for the user to sign in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthSession {
    pub client_id: String,
    pub redirect_uri: String,
    /// Where the finished flow sends the browser; `code=<authentication info>` is added.
    pub consent_uri: String,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub x_state: Option<String>,
    #[serde(default)]
    pub ui_locales: Option<String>,
    #[serde(default)]
    pub login_hint: Option<String>,
    #[serde(default)]
    pub id_token_hint: Option<String>,
    #[serde(default)]
    pub prompt: Vec<String>,
    #[serde(default)]
    pub suppress_idp_session_cookie: bool,
    /// Everything else the OIDC layer needs back (scope, nonce, PKCE challenge, ...).
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// Who signed in, written when a flow tied to an OAuth session finishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthenticationInfo {
    pub x_ref: String,
    pub user_id: String,
    pub session_id: Option<String>,
    pub authenticated_at: DateTime<Utc>,
    pub amr: Vec<String>,
}

/// The `x_ref` of a raw query string (`a=1&x_ref=...`), if any.
pub fn x_ref_of(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
        .find(|(k, _)| k == "x_ref")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

/// `uri` with `code=<code>` appended to its query.
pub fn with_code(uri: &str, code: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            u.query_pairs_mut().append_pair("code", code);
            u.to_string()
        }
        Err(_) => {
            let sep = if uri.contains('?') { '&' } else { '?' };
            format!("{uri}{sep}code={code}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_x_ref_and_appends_code() {
        assert_eq!(
            x_ref_of("client_id=a&x_ref=XYZ&state=s"),
            Some("XYZ".into())
        );
        assert_eq!(x_ref_of("?x_ref="), None);
        assert_eq!(x_ref_of("client_id=a"), None);
        assert_eq!(
            with_code("http://127.0.0.1:3000/oauth2/consent?x_ref=1", "C"),
            "http://127.0.0.1:3000/oauth2/consent?x_ref=1&code=C"
        );
    }
}
