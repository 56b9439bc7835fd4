//! The engine's [`IdTokenVerifier`]: the ID tokens this server issued name the user of a
//! reauth flow (authentication-flow-api.md 12.3, 17.9).

use std::sync::Arc;

use serde_json::Value;

use authflow_core::flow::{IdTokenVerifier, InvalidIdToken};

use super::OidcSettings;
use crate::signing::SigningKeys;

/// Checks ID tokens against the signing keys and the OIDC issuer and clients.
pub struct IssuedIdTokens {
    keys: Arc<SigningKeys>,
    oidc: Arc<OidcSettings>,
}

impl IssuedIdTokens {
    pub fn new(keys: Arc<SigningKeys>, oidc: Arc<OidcSettings>) -> Self {
        IssuedIdTokens { keys, oidc }
    }

    /// The same keys sign access tokens (`typ: at+jwt`, RFC 9068) and the session tokens of
    /// the other dialects, which carry no OAuth client as `aud`: neither is an ID token.
    fn is_id_token(&self, claims: &Value) -> bool {
        let audiences = match &claims["aud"] {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        claims["iss"].as_str() == Some(self.oidc.issuer.as_str())
            && audiences.iter().any(|aud| self.oidc.client(aud).is_some())
    }
}

impl IdTokenVerifier for IssuedIdTokens {
    fn subject(&self, id_token: &str) -> Result<String, InvalidIdToken> {
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| InvalidIdToken)?;
        if header.typ.as_deref() == Some("at+jwt") {
            return Err(InvalidIdToken);
        }
        let claims = self
            .keys
            .verify_signature(id_token)
            .map_err(|_| InvalidIdToken)?;
        if !self.is_id_token(&claims) {
            return Err(InvalidIdToken);
        }
        claims["sub"]
            .as_str()
            .filter(|sub| !sub.is_empty())
            .map(str::to_string)
            .ok_or(InvalidIdToken)
    }
}
