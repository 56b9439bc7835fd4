//! Client authentication at the token, revocation and introspection endpoints:
//! `client_secret_basic`, `client_secret_post`, and `none` for public clients.

use axum::http::{HeaderMap, header};
use base64::Engine as _;

use authflow_core::config::OAuthClientConfig;

use super::OidcSettings;
use super::error::OAuthError;
use super::params::{Params, secrets_equal};

struct Credentials {
    client_id: String,
    secret: Option<String>,
    basic: bool,
}

/// The client making the request, authenticated.
pub fn authenticate<'a>(
    settings: &'a OidcSettings,
    headers: &HeaderMap,
    params: &Params,
) -> Result<&'a OAuthClientConfig, OAuthError> {
    let creds = credentials(headers, params)?;
    let basic = creds.basic;
    let client = settings
        .client(&creds.client_id)
        .ok_or(OAuthError::InvalidClient { basic })?;
    match (&client.client_secret, creds.secret.as_deref()) {
        (Some(expected), Some(given)) if secrets_equal(expected.expose(), given) => Ok(client),
        (None, None) => Ok(client),
        _ => Err(OAuthError::InvalidClient { basic }),
    }
}

fn credentials(headers: &HeaderMap, params: &Params) -> Result<Credentials, OAuthError> {
    let basic = basic_credentials(headers)?;
    let post_id = params.get("client_id");
    let post_secret = params.get("client_secret");
    match basic {
        Some((id, secret)) => {
            if post_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method",
                ));
            }
            if post_id.is_some_and(|p| p != id) {
                return Err(OAuthError::invalid_request("client_id does not match"));
            }
            Ok(Credentials {
                client_id: id,
                secret: Some(secret),
                basic: true,
            })
        }
        None => Ok(Credentials {
            client_id: post_id
                .ok_or(OAuthError::InvalidClient { basic: false })?
                .to_string(),
            secret: post_secret.map(str::to_string),
            basic: false,
        }),
    }
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::InvalidClient { basic: true };
    let value = value.to_str().map_err(|_| bad())?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err(bad());
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    Ok(Some((form_decode(id), form_decode(secret))))
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
