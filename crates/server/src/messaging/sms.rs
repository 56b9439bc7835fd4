//! SMS and WhatsApp through an HTTP gateway (`messaging.sms.webhook`): a `POST` of JSON
//! `{"to", "channel", "body", "template_variables"}`, signed with HMAC-SHA256 when a
//! `secret` is set.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use authflow_core::config::{Secret, SmsWebhookConfig};
use authflow_core::flow::otp::{DeliveryFailure, OutgoingMessage};

use super::templates::Templates;
use super::{Transport, TransportError, channel_name};

/// Lowercase hex HMAC-SHA256 of the exact body, keyed with `secret`.
pub const SIGNATURE_HEADER: &str = "X-Authflow-Signature";

/// A gateway's error answer is read up to this size (to find `invalid_phone_number`).
const MAX_ERROR_BODY: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

pub struct Webhook {
    client: reqwest::Client,
    url: String,
    secret: Option<Secret>,
    timeout: Duration,
    templates: Arc<Templates>,
}

impl Webhook {
    pub fn new(
        config: &SmsWebhookConfig,
        templates: Arc<Templates>,
    ) -> Result<Self, WebhookSetupError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .build()?;
        Ok(Webhook {
            client,
            url: config.url.clone(),
            secret: config.secret.clone(),
            timeout: config.timeout,
            templates,
        })
    }

    fn body(&self, message: &OutgoingMessage) -> Vec<u8> {
        let vars = self.templates.vars(message);
        let body = json!({
            "to": message.to,
            "channel": channel_name(message.channel),
            "body": self.templates.sms(message),
            "template_variables": {
                "code": vars.code,
                "valid_minutes": vars.valid_minutes,
                "app_name": vars.app_name,
                "masked_target": vars.masked_target,
            },
        });
        serde_json::to_vec(&body).expect("JSON encodes")
    }

    async fn post(&self, body: Vec<u8>) -> Result<reqwest::Response, TransportError> {
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret.expose(), &body));
        }
        request
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable_gateway(e, self.timeout))
    }
}

/// Lowercase hex HMAC-SHA256 of `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn unreachable_gateway(e: reqwest::Error, timeout: Duration) -> TransportError {
    // The URL may carry credentials: it is left out of the log.
    let detail = if e.is_timeout() {
        format!("SMS webhook: no answer within {timeout:?}")
    } else {
        format!("SMS webhook unreachable: {}", e.without_url())
    };
    TransportError {
        failure: DeliveryFailure::SmsGatewayTimeout,
        retryable: true,
        detail,
    }
}

/// Non-2xx: a 400 `{"code": "invalid_phone_number"}` is final; 5xx and 429 are retried.
async fn rejection(response: reqwest::Response) -> TransportError {
    let status = response.status();
    let invalid_number = status == StatusCode::BAD_REQUEST && {
        let body = read_limited(response).await;
        serde_json::from_slice::<Value>(&body)
            .ok()
            .is_some_and(|v| v["code"] == "invalid_phone_number")
    };
    if invalid_number {
        return TransportError {
            failure: DeliveryFailure::SmsGatewayInvalidPhoneNumber,
            retryable: false,
            detail: "SMS webhook: invalid phone number".into(),
        };
    }
    TransportError {
        failure: DeliveryFailure::SmsGatewayDeliveryRejected,
        retryable: status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
        detail: format!("SMS webhook answered HTTP {}", status.as_u16()),
    }
}

async fn read_limited(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ERROR_BODY {
            break;
        }
    }
    body
}

#[async_trait]
impl Transport for Webhook {
    fn name(&self) -> &'static str {
        "sms_webhook"
    }

    async fn deliver(&self, message: &OutgoingMessage) -> Result<(), TransportError> {
        let response = self.post(self.body(message)).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(rejection(response).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_lowercase_hex_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
