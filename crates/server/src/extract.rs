//! Request body extraction shared by the JSON dialects: content type, size limit, syntax.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Bodies over this are refused with 413 before they are read whole.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A request body that is a JSON object sent as `application/json`.
pub struct JsonObject(pub Map<String, Value>);

pub fn is_json_content_type(value: Option<&header::HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default();
    if !essence.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|p| {
        p.is_empty()
            || p.eq_ignore_ascii_case("charset=utf-8")
            || p.eq_ignore_ascii_case("charset=\"utf-8\"")
    })
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::bad_request());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::body_too_large(BODY_LIMIT)
            } else {
                ApiError::invalid_json()
            }
        })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            _ => Err(ApiError::invalid_json()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_json_with_utf8_charset_only() {
        let ok = |s: &str| is_json_content_type(Some(&header::HeaderValue::from_str(s).unwrap()));
        assert!(ok("application/json"));
        assert!(ok("application/json; charset=utf-8"));
        assert!(ok("Application/JSON;charset=UTF-8"));
        assert!(!ok("application/json; charset=latin1"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/x-www-form-urlencoded"));
        assert!(!is_json_content_type(None));
    }
}
