//! One-time codes sent to an email address or phone number: issue, cooldown, check.
//! Only a SHA-256 hash of a code is stored, in the state store with its expiry.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::def::Channel;
use super::error::{FlowError, FlowResult, RateLimitHit};
use crate::clock::{Clock, SecureRandom};
use crate::credentials::token;
use crate::store::{StateStore, StoreResult};

/// What a code is for; codes of different purposes never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Verification,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Verification => "verification",
        }
    }
}

/// A message for a person; the code is a secret, so `Debug` hides it.
#[derive(Clone)]
pub struct OutgoingMessage {
    pub channel: Channel,
    pub to: String,
    pub purpose: Purpose,
    pub code: String,
    pub valid_minutes: u64,
    /// Names this message's entry in the [`DeliveryLog`].
    pub delivery_id: String,
}

impl std::fmt::Debug for OutgoingMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMessage")
            .field("channel", &self.channel)
            .field("purpose", &self.purpose)
            .field("code", &"***")
            .field("delivery_id", &self.delivery_id)
            .finish()
    }
}

/// Hands messages to a transport (SMTP, SMS gateway, development outbox).
pub trait Messenger: Send + Sync {
    /// Never waits on a transport. Returns [`DeliveryStatus::Sending`] when the message was
    /// queued (whoever delivers it then records the outcome in the [`DeliveryLog`]), or the
    /// final status when it is known at once.
    fn send(&self, message: OutgoingMessage) -> DeliveryStatus;
}

// ---------------------------------------------------------------------------------------
// delivery status (authentication-flow-api.md 8.5 `delivery_status`, 13)

/// Why a message finally could not be delivered (`delivery_error.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryFailure {
    /// The SMS webhook answered non-2xx.
    #[serde(rename = "SMSGatewayDeliveryRejected")]
    SmsGatewayDeliveryRejected,
    /// The SMS webhook timed out or was unreachable.
    #[serde(rename = "SMSGatewayTimeout")]
    SmsGatewayTimeout,
    /// The SMS webhook answered 400 `{"code": "invalid_phone_number"}`.
    #[serde(rename = "SMSGatewayInvalidPhoneNumber")]
    SmsGatewayInvalidPhoneNumber,
    /// SMTP failure, full queue, or no transport for the channel.
    #[serde(rename = "OTPDeliveryUnexpectedError")]
    OtpDeliveryUnexpectedError,
}

impl DeliveryFailure {
    pub fn reason(self) -> &'static str {
        match self {
            DeliveryFailure::SmsGatewayDeliveryRejected => "SMSGatewayDeliveryRejected",
            DeliveryFailure::SmsGatewayTimeout => "SMSGatewayTimeout",
            DeliveryFailure::SmsGatewayInvalidPhoneNumber => "SMSGatewayInvalidPhoneNumber",
            DeliveryFailure::OtpDeliveryUnexpectedError => "OTPDeliveryUnexpectedError",
        }
    }

    /// The error `name` of the reason (spec 14.1), which fixes its `code`.
    pub fn name(self) -> &'static str {
        match self {
            DeliveryFailure::SmsGatewayInvalidPhoneNumber => "BadRequest",
            _ => "InternalError",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            DeliveryFailure::SmsGatewayDeliveryRejected => "the SMS gateway rejected the message",
            DeliveryFailure::SmsGatewayTimeout => "the SMS gateway did not answer in time",
            DeliveryFailure::SmsGatewayInvalidPhoneNumber => {
                "the SMS gateway rejected the phone number"
            }
            DeliveryFailure::OtpDeliveryUnexpectedError => "the message could not be delivered",
        }
    }
}

/// Where a message is: queued, handed over, or finally failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "failure", rename_all = "snake_case")]
pub enum DeliveryStatus {
    Sending,
    Sent,
    Failed(DeliveryFailure),
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed(_) => "failed",
        }
    }
}

/// The delivery status of every message, kept in the state store under its purpose, target
/// and delivery id, so that any replica renders the same `delivery_status`.
#[derive(Clone)]
pub struct DeliveryLog {
    store: Arc<dyn StateStore>,
}

impl DeliveryLog {
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        DeliveryLog { store }
    }

    fn key(purpose: Purpose, target: &str, delivery_id: &str) -> String {
        format!("otpdlv:{}:{target}:{delivery_id}", purpose.as_str())
    }

    /// Kept a minute longer than the code it carries.
    pub async fn record(
        &self,
        message: &OutgoingMessage,
        status: DeliveryStatus,
    ) -> StoreResult<()> {
        let key = Self::key(message.purpose, &message.to, &message.delivery_id);
        let ttl = Duration::from_secs(message.valid_minutes.saturating_add(1) * 60);
        let json = serde_json::to_string(&status).expect("a delivery status encodes");
        self.store.put(&key, &json, ttl).await
    }

    pub async fn status(
        &self,
        purpose: Purpose,
        target: &str,
        delivery_id: &str,
    ) -> StoreResult<Option<DeliveryStatus>> {
        let json = self
            .store
            .get(&Self::key(purpose, target, delivery_id))
            .await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CodeRecord {
    code_hash: String,
    expires_at: DateTime<Utc>,
    sent_at: DateTime<Utc>,
    #[serde(default)]
    delivery_id: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct OtpSettings {
    pub code_valid: Duration,
    pub cooldown: Duration,
    pub max_failures: u32,
}

impl Default for OtpSettings {
    fn default() -> Self {
        OtpSettings {
            code_valid: Duration::from_secs(300),
            cooldown: Duration::from_secs(60),
            max_failures: 5,
        }
    }
}

/// What a client sees of the code sent to a target.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeStatus {
    pub can_resend_at: DateTime<Utc>,
    pub failed_attempt_rate_limit_exceeded: bool,
    /// Of the message that carried the current code (`Sent` when none is known).
    pub delivery: DeliveryStatus,
}

#[derive(Debug, PartialEq, Eq)]
pub enum CodeCheck {
    Valid,
    Wrong,
    NotFound,
    Revoked,
}

pub struct OtpService {
    store: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn SecureRandom>,
    messenger: Arc<dyn Messenger>,
    deliveries: DeliveryLog,
}

impl OtpService {
    pub fn new(
        store: Arc<dyn StateStore>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn SecureRandom>,
        messenger: Arc<dyn Messenger>,
    ) -> Self {
        OtpService {
            deliveries: DeliveryLog::new(store.clone()),
            store,
            clock,
            rng,
            messenger,
        }
    }

    fn code_key(purpose: Purpose, target: &str) -> String {
        format!("otp:{}:{target}", purpose.as_str())
    }

    fn failures_key(purpose: Purpose, target: &str) -> String {
        format!("otpfail:{}:{target}", purpose.as_str())
    }

    async fn failures(&self, purpose: Purpose, target: &str) -> FlowResult<u32> {
        let n = self.store.get(&Self::failures_key(purpose, target)).await?;
        Ok(n.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    fn cooldown_keys(purpose: Purpose, target: &str, flow_id: &str) -> [String; 2] {
        [
            format!("otpcd:{}:{target}", purpose.as_str()),
            format!("otpcd:{}:{flow_id}:{target}", purpose.as_str()),
        ]
    }

    /// Send a new code unless a cooldown for this target or flow runs. Returns whether
    /// a code was sent.
    pub async fn send_code(
        &self,
        purpose: Purpose,
        channel: Channel,
        target: &str,
        flow_id: &str,
        settings: OtpSettings,
    ) -> FlowResult<bool> {
        let [per_target, per_flow] = Self::cooldown_keys(purpose, target, flow_id);
        if self.store.get(&per_flow).await?.is_some() {
            return Ok(false);
        }
        if !self
            .store
            .put_if_absent(&per_target, "1", settings.cooldown)
            .await?
        {
            return Ok(false);
        }
        self.store.put(&per_flow, "1", settings.cooldown).await?;
        let code = token::otp_code_digits(&*self.rng, 6);
        let delivery_id = token::random_id(&*self.rng);
        let now = self.clock.now();
        let record = CodeRecord {
            code_hash: token::sha256_hex(&code),
            expires_at: now + chrono::Duration::from_std(settings.code_valid).unwrap_or_default(),
            sent_at: now,
            delivery_id: Some(delivery_id.clone()),
        };
        let json = serde_json::to_string(&record)
            .map_err(|e| FlowError::Unexpected(format!("otp encoding: {e}")))?;
        // A new code replaces the previous one and resets its failure counter.
        self.store
            .delete(&Self::failures_key(purpose, target))
            .await?;
        self.store
            .put(&Self::code_key(purpose, target), &json, settings.code_valid)
            .await?;
        self.dispatch(OutgoingMessage {
            channel,
            to: target.to_string(),
            purpose,
            code,
            valid_minutes: settings.code_valid.as_secs().div_ceil(60),
            delivery_id,
        })
        .await?;
        Ok(true)
    }

    /// `sending` is recorded before the hand-over, so a queue worker's outcome is never
    /// overwritten by it.
    async fn dispatch(&self, message: OutgoingMessage) -> FlowResult<()> {
        self.deliveries
            .record(&message, DeliveryStatus::Sending)
            .await?;
        let outcome = self.messenger.send(message.clone());
        if outcome != DeliveryStatus::Sending {
            self.deliveries.record(&message, outcome).await?;
        }
        Ok(())
    }

    async fn delivery_of(
        &self,
        record: &CodeRecord,
        purpose: Purpose,
        target: &str,
    ) -> FlowResult<DeliveryStatus> {
        let Some(id) = &record.delivery_id else {
            return Ok(DeliveryStatus::Sent);
        };
        let status = self.deliveries.status(purpose, target, id).await?;
        Ok(status.unwrap_or(DeliveryStatus::Sent))
    }

    /// The cooldown does not hold back a resend of a message whose delivery failed
    /// (spec 13).
    async fn lift_cooldown_after_failure(
        &self,
        purpose: Purpose,
        target: &str,
        flow_id: &str,
    ) -> FlowResult<()> {
        let Some(record) = self.record(purpose, target).await? else {
            return Ok(());
        };
        if let DeliveryStatus::Failed(_) = self.delivery_of(&record, purpose, target).await? {
            for key in Self::cooldown_keys(purpose, target, flow_id) {
                self.store.delete(&key).await?;
            }
        }
        Ok(())
    }

    /// An explicit resend: refused with `RateLimited` while a cooldown runs.
    pub async fn resend_code(
        &self,
        purpose: Purpose,
        channel: Channel,
        target: &str,
        flow_id: &str,
        settings: OtpSettings,
        cooldown_bucket: &str,
    ) -> FlowResult<()> {
        self.lift_cooldown_after_failure(purpose, target, flow_id)
            .await?;
        if self
            .send_code(purpose, channel, target, flow_id, settings)
            .await?
        {
            Ok(())
        } else {
            Err(FlowError::RateLimited(RateLimitHit {
                bucket_name: cooldown_bucket.to_string(),
                limit: None,
            }))
        }
    }

    async fn record(&self, purpose: Purpose, target: &str) -> FlowResult<Option<CodeRecord>> {
        let Some(json) = self.store.get(&Self::code_key(purpose, target)).await? else {
            return Ok(None);
        };
        let record: CodeRecord = serde_json::from_str(&json)
            .map_err(|e| FlowError::Unexpected(format!("otp decoding: {e}")))?;
        Ok((record.expires_at > self.clock.now()).then_some(record))
    }

    pub async fn status(
        &self,
        purpose: Purpose,
        target: &str,
        settings: OtpSettings,
    ) -> FlowResult<CodeStatus> {
        let record = self.record(purpose, target).await?;
        let cooldown = chrono::Duration::from_std(settings.cooldown).unwrap_or_default();
        let now = self.clock.now();
        let Some(r) = record else {
            return Ok(CodeStatus {
                can_resend_at: now,
                failed_attempt_rate_limit_exceeded: false,
                delivery: DeliveryStatus::Sent,
            });
        };
        let delivery = self.delivery_of(&r, purpose, target).await?;
        let can_resend_at = match delivery {
            DeliveryStatus::Failed(_) => now,
            _ => r.sent_at + cooldown,
        };
        Ok(CodeStatus {
            can_resend_at,
            failed_attempt_rate_limit_exceeded: self.failures(purpose, target).await?
                >= settings.max_failures,
            delivery,
        })
    }

    /// Check a code; a right one is consumed, a wrong one counted.
    pub async fn check_code(
        &self,
        purpose: Purpose,
        target: &str,
        code: &str,
        settings: OtpSettings,
    ) -> FlowResult<CodeCheck> {
        let key = Self::code_key(purpose, target);
        let Some(record) = self.record(purpose, target).await? else {
            return Ok(CodeCheck::NotFound);
        };
        if self.failures(purpose, target).await? >= settings.max_failures {
            return Ok(CodeCheck::Revoked);
        }
        let matches = token::constant_time_eq(
            token::sha256_hex(code).as_bytes(),
            record.code_hash.as_bytes(),
        );
        if matches {
            // Single use: only the caller that takes the record may succeed.
            return Ok(match self.store.take(&key).await? {
                Some(_) => CodeCheck::Valid,
                None => CodeCheck::NotFound,
            });
        }
        let remaining = (record.expires_at - self.clock.now())
            .to_std()
            .unwrap_or(Duration::from_secs(1));
        self.store
            .incr(&Self::failures_key(purpose, target), 1, remaining)
            .await?;
        Ok(CodeCheck::Wrong)
    }
}
