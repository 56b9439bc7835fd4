//! Request body extraction shared by the JSON dialects: content type, size limit, syntax.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Bodies over this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Oversized bodies up to this size are read (and dropped) before the 413.
const DRAIN_LIMIT: usize = 4 * 1024 * 1024;

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

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::bad_request());
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > DRAIN_LIMIT as u64) {
            return Err(ApiError::body_too_large(BODY_LIMIT));
        }
        // Oversized bodies up to DRAIN_LIMIT are still read before the 413: answering while
        // the client is sending closes the connection under it, and it may miss the answer.
        let collected = Limited::new(req.into_body(), DRAIN_LIMIT).collect().await;
        let bytes = match collected {
            Ok(c) => c.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(ApiError::body_too_large(BODY_LIMIT));
            }
            Err(_) => return Err(ApiError::invalid_json()),
        };
        if bytes.len() > BODY_LIMIT {
            return Err(ApiError::body_too_large(BODY_LIMIT));
        }
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
