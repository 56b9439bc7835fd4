//! Reading an `/auth` request in the order of backend-auth-api.md 4: JSON and content type,
//! then the API key; the handlers then ask [`Params::required`] for their members.

use std::net::{Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use chrono::Utc;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value};

use authflow_core::credentials::token::constant_time_eq;
use authflow_core::model::Organization;

use super::error::AuthApiError;
use super::keys;
use crate::AppState;
use crate::extract::is_json_content_type;

/// Bodies over 64 KiB are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Oversized bodies up to this size are still read (and dropped) before the 413.
const DRAIN_LIMIT: usize = 1024 * 1024;
pub const API_KEY_HEADER: &str = "x-api-key";
const API_KEY_MEMBER: &str = "api_key";

/// Who is calling: the organization of the API key, the key's id and the client IP.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org: Organization,
    pub api_key_id: String,
    pub ip: String,
}

/// The members of the JSON body.
#[derive(Debug, Default)]
pub struct Params(Map<String, Value>);

impl Params {
    /// The named members as strings, checked in order: the first absent, `null` or empty one
    /// is `missing_parameter`, the first non-string one `invalid_parameter`.
    pub fn required<const N: usize>(
        &self,
        names: [&'static str; N],
    ) -> Result<[&str; N], AuthApiError> {
        let mut values = [""; N];
        for (value, name) in values.iter_mut().zip(names) {
            *value = self.required_one(name)?;
        }
        Ok(values)
    }

    fn required_one(&self, name: &'static str) -> Result<&str, AuthApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Err(AuthApiError::MissingParameter(name)),
            Some(Value::String(s)) if s.is_empty() => Err(AuthApiError::MissingParameter(name)),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(AuthApiError::invalid(name, "must be a string")),
        }
    }
}

/// An authenticated `/auth` request: the caller and the body members.
pub struct AuthRequest {
    pub caller: Caller,
    pub params: Params,
}

impl FromRequest<AppState> for AuthRequest {
    type Rejection = AuthApiError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        ensure_enabled(app)?;
        let (parts, body) = req.into_parts();
        let params = read_json_object(&parts.headers, body).await?;
        let key = presented_api_key(&parts.headers, &params)?;
        let (org, record) = keys::authenticate(app.db.as_ref(), key, Utc::now())
            .await?
            .ok_or(AuthApiError::InvalidApiKey)?;
        let caller = Caller {
            org,
            api_key_id: record.id,
            ip: client_ip(app, &parts),
        };
        Ok(AuthRequest { caller, params })
    }
}

/// `auth_api.enabled: false` hides every `/auth` path.
pub fn ensure_enabled(app: &AppState) -> Result<(), AuthApiError> {
    if app.auth_api.config.enabled {
        Ok(())
    } else {
        Err(AuthApiError::NotFound)
    }
}

fn client_ip(app: &AppState, parts: &Parts) -> String {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer)
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    app.request_context(peer, &parts.headers).ip
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

async fn read_json_object(headers: &HeaderMap, body: Body) -> Result<Params, AuthApiError> {
    if !is_json_content_type(headers.get(axum::http::header::CONTENT_TYPE)) {
        return Err(AuthApiError::NotJsonContentType);
    }
    let too_large = AuthApiError::BodyTooLarge { limit: BODY_LIMIT };
    if declared_length(headers).is_some_and(|len| len > DRAIN_LIMIT as u64) {
        return Err(too_large);
    }
    // Read up to DRAIN_LIMIT even when over BODY_LIMIT: answering before a moderately
    // oversized body was received makes the connection close under the client, which then
    // may never see the 413.
    let bytes = match Limited::new(body, DRAIN_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large),
        Err(_) => return Err(AuthApiError::InvalidJson),
    };
    if bytes.len() > BODY_LIMIT {
        return Err(too_large);
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(members)) => Ok(Params(members)),
        _ => Err(AuthApiError::InvalidJson),
    }
}

/// The key of header `X-API-Key` or body member `api_key`; both present must be equal.
fn presented_api_key<'a>(
    headers: &'a HeaderMap,
    params: &'a Params,
) -> Result<&'a str, AuthApiError> {
    let header = match headers.get(API_KEY_HEADER) {
        Some(v) => Some(v.to_str().map_err(|_| AuthApiError::InvalidApiKey)?),
        None => None,
    };
    let member = match params.0.get(API_KEY_MEMBER) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(AuthApiError::InvalidApiKey),
    };
    match (header, member) {
        (Some(h), Some(m)) if !constant_time_eq(h.as_bytes(), m.as_bytes()) => {
            Err(AuthApiError::InvalidApiKey)
        }
        (Some(key), _) | (None, Some(key)) => Ok(key),
        (None, None) => Err(AuthApiError::InvalidApiKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Params {
        match v {
            Value::Object(m) => Params(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn required_reports_the_first_problem_in_order() {
        let p = params(json!({"a": "x", "b": "", "c": 3}));
        assert_eq!(p.required(["a"]).unwrap(), ["x"]);
        let e = p.required(["a", "b", "c"]).unwrap_err();
        assert!(matches!(e, AuthApiError::MissingParameter("b")));
        let e = p.required(["c", "d"]).unwrap_err();
        assert!(matches!(
            e,
            AuthApiError::InvalidParameter { param: "c", .. }
        ));
        let e = p.required(["d"]).unwrap_err();
        assert!(matches!(e, AuthApiError::MissingParameter("d")));
    }

    #[test]
    fn api_key_from_header_or_body_must_agree() {
        let mut headers = HeaderMap::new();
        let none = params(json!({}));
        assert!(presented_api_key(&headers, &none).is_err());
        let body = params(json!({"api_key": "k1"}));
        assert_eq!(presented_api_key(&headers, &body).unwrap(), "k1");
        headers.insert(API_KEY_HEADER, "k1".parse().unwrap());
        assert_eq!(presented_api_key(&headers, &none).unwrap(), "k1");
        assert_eq!(presented_api_key(&headers, &body).unwrap(), "k1");
        let other = params(json!({"api_key": "k2"}));
        assert!(presented_api_key(&headers, &other).is_err());
        let typed = params(json!({"api_key": 1}));
        assert!(presented_api_key(&headers, &typed).is_err());
    }
}
