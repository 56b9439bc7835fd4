//! One-time codes sent to an email address or phone number: issue, cooldown, check.
//! Only a SHA-256 hash of a code is stored, in the state store with its expiry.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::def::Channel;
use super::error::{FlowError, FlowResult};
use crate::clock::{Clock, SecureRandom};
use crate::credentials::token;
use crate::store::{StateStore, StoreResult};

/// What a code is for; codes of different purposes never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Proving a claim (email, phone) belongs to the user.
    Verification,
    /// Logging in (or passing a second factor) with a code or link.
    Authentication,
    /// Resetting a password.
    AccountRecovery,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Verification => "verification",
            Purpose::Authentication => "authentication",
            Purpose::AccountRecovery => "account_recovery",
        }
    }
}

/// A code sent as a link to a page of authflow (`otp_form: link`).
#[derive(Debug, Clone)]
pub struct LinkSpec {
    /// The page the link opens, without query (`<public_origin>/authflow/v2/verify_login_link`).
    pub page_url: String,
    /// The WebSocket channel told when the link is approved.
    pub ws_channel: String,
}

/// What the link index knows of a link code.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LinkIndex {
    purpose: Purpose,
    target: String,
    ws_channel: String,
}

/// A link approved on the link page.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovedLink {
    pub ws_channel: String,
    pub purpose: Purpose,
    pub target: String,
}

/// A message for a person; the code is a secret, so `Debug` hides it.
#[derive(Clone)]
pub struct OutgoingMessage {
    pub channel: Channel,
    pub to: String,
    pub purpose: Purpose,
    pub code: String,
    /// The whole link (with the code) when the code is sent as a link.
    pub link: Option<String>,
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
            .field("link", &self.link.as_ref().map(|_| "***"))
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
    /// Link form: set when the link page approved it.
    #[serde(default)]
    approved: bool,
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
    /// Link form: the link was approved, `{"check": true}` will succeed.
    pub approved: bool,
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

    /// Index from a link code to its target; only the hash of the code names it.
    fn link_key(code: &str) -> String {
        format!("otplink:{}", token::sha256_hex(code))
    }

    fn failures_key(purpose: Purpose, target: &str) -> String {
        format!("otpfail:{}:{target}", purpose.as_str())
    }

    async fn failures(&self, purpose: Purpose, target: &str) -> FlowResult<u32> {
        let n = self.store.get(&Self::failures_key(purpose, target)).await?;
        Ok(n.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// A wrong code for a target that has none (account recovery of an unknown login ID):
    /// counted like a real one, so `failed_attempt_rate_limit_exceeded` turns true alike.
    pub async fn count_phantom_failure(
        &self,
        purpose: Purpose,
        target: &str,
        settings: OtpSettings,
    ) -> FlowResult<bool> {
        let n = self
            .store
            .incr(&Self::failures_key(purpose, target), 1, settings.code_valid)
            .await?;
        Ok(n > i64::from(settings.max_failures))
    }

    fn cooldown_keys(purpose: Purpose, target: &str, flow_id: &str) -> [String; 2] {
        [
            format!("otpcd:{}:{target}", purpose.as_str()),
            format!("otpcd:{}:{flow_id}:{target}", purpose.as_str()),
        ]
    }

    /// When the per-target cooldown ends (now when none runs).
    async fn target_cooldown_end(
        &self,
        purpose: Purpose,
        target: &str,
    ) -> FlowResult<DateTime<Utc>> {
        let [per_target, _] = Self::cooldown_keys(purpose, target, "");
        let end = self.store.get(&per_target).await?.and_then(|v| {
            DateTime::parse_from_rfc3339(&v)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        });
        Ok(end.unwrap_or_else(|| self.clock.now()))
    }

    /// Whether a cooldown for this target or flow runs (no code would be sent).
    pub async fn in_cooldown(
        &self,
        purpose: Purpose,
        target: &str,
        flow_id: &str,
    ) -> FlowResult<bool> {
        for key in Self::cooldown_keys(purpose, target, flow_id) {
            if self.store.get(&key).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
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
        self.send(purpose, channel, target, flow_id, settings, None)
            .await
    }

    /// Start the cooldowns of a send (per target, per flow); false when one already runs.
    async fn claim_send_slot(
        &self,
        purpose: Purpose,
        target: &str,
        flow_id: &str,
        settings: OtpSettings,
    ) -> FlowResult<bool> {
        let [per_target, per_flow] = Self::cooldown_keys(purpose, target, flow_id);
        if self.store.get(&per_flow).await?.is_some() {
            return Ok(false);
        }
        // The value is the cooldown's end, so that a state shows it even when the code of
        // another flow (already used) started it.
        let until = (self.clock.now()
            + chrono::Duration::from_std(settings.cooldown).unwrap_or_default())
        .to_rfc3339();
        if !self
            .store
            .put_if_absent(&per_target, &until, settings.cooldown)
            .await?
        {
            return Ok(false);
        }
        self.store.put(&per_flow, &until, settings.cooldown).await?;
        Ok(true)
    }

    /// Everything a send does but the message: the cooldowns start as for a real one.
    /// For destinations that must look as if they exist (account recovery, unknown user).
    pub async fn pretend_send(
        &self,
        purpose: Purpose,
        target: &str,
        flow_id: &str,
        settings: OtpSettings,
    ) -> FlowResult<bool> {
        self.claim_send_slot(purpose, target, flow_id, settings)
            .await
    }

    /// [`OtpService::send_code`], as a code or (with `link`) as a link.
    pub async fn send(
        &self,
        purpose: Purpose,
        channel: Channel,
        target: &str,
        flow_id: &str,
        settings: OtpSettings,
        link: Option<&LinkSpec>,
    ) -> FlowResult<bool> {
        if !self
            .claim_send_slot(purpose, target, flow_id, settings)
            .await?
        {
            return Ok(false);
        }
        let now = self.clock.now();
        let code = match link {
            Some(_) => token::link_code(&*self.rng),
            None => token::otp_code_digits(&*self.rng, 6),
        };
        let delivery_id = token::random_id(&*self.rng);
        let record = CodeRecord {
            code_hash: token::sha256_hex(&code),
            expires_at: now + chrono::Duration::from_std(settings.code_valid).unwrap_or_default(),
            sent_at: now,
            delivery_id: Some(delivery_id.clone()),
            approved: false,
        };
        if let Some(spec) = link {
            let index = LinkIndex {
                purpose,
                target: target.to_string(),
                ws_channel: spec.ws_channel.clone(),
            };
            let json = serde_json::to_string(&index)
                .map_err(|e| FlowError::Unexpected(format!("link encoding: {e}")))?;
            self.store
                .put(&Self::link_key(&code), &json, settings.code_valid)
                .await?;
        }
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
            link: link.map(|spec| format!("{}?code={code}", spec.page_url)),
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
    pub async fn lift_cooldown_after_failure(
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
                can_resend_at: self.target_cooldown_end(purpose, target).await?.max(now),
                approved: false,
                // Counted even without a code (see `count_phantom_failure`).
                failed_attempt_rate_limit_exceeded: self.failures(purpose, target).await?
                    >= settings.max_failures,
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
            approved: r.approved,
            failed_attempt_rate_limit_exceeded: self.failures(purpose, target).await?
                >= settings.max_failures,
            delivery,
        })
    }

    /// Check a code without consuming a right one (account recovery spends it at finish
    /// with [`OtpService::consume_code`]); a wrong one is counted.
    pub async fn check_code_kept(
        &self,
        purpose: Purpose,
        target: &str,
        code: &str,
        settings: OtpSettings,
    ) -> FlowResult<CodeCheck> {
        let Some(record) = self.record(purpose, target).await? else {
            return Ok(CodeCheck::NotFound);
        };
        if self.failures(purpose, target).await? >= settings.max_failures {
            return Ok(CodeCheck::Revoked);
        }
        let hash = token::sha256_hex(code);
        if token::constant_time_eq(hash.as_bytes(), record.code_hash.as_bytes()) {
            return Ok(CodeCheck::Valid);
        }
        let remaining = (record.expires_at - self.clock.now())
            .to_std()
            .unwrap_or(Duration::from_secs(1));
        self.store
            .incr(&Self::failures_key(purpose, target), 1, remaining)
            .await?;
        Ok(CodeCheck::Wrong)
    }

    /// Spend the current code of `target` if it is still `code`: true for exactly one caller.
    pub async fn consume_code(
        &self,
        purpose: Purpose,
        target: &str,
        code: &str,
    ) -> FlowResult<bool> {
        let Some(record) = self.record(purpose, target).await? else {
            return Ok(false);
        };
        let hash = token::sha256_hex(code);
        if !token::constant_time_eq(hash.as_bytes(), record.code_hash.as_bytes()) {
            return Ok(false);
        }
        Ok(self
            .store
            .take(&Self::code_key(purpose, target))
            .await?
            .is_some())
    }

    /// Check a code; a right one is consumed, a wrong one counted.
    pub async fn check_code(
        &self,
        purpose: Purpose,
        target: &str,
        code: &str,
        settings: OtpSettings,
    ) -> FlowResult<CodeCheck> {
        match self
            .check_code_kept(purpose, target, code, settings)
            .await?
        {
            // Single use: only the caller that takes the record may succeed.
            CodeCheck::Valid => Ok(
                match self.store.take(&Self::code_key(purpose, target)).await? {
                    Some(_) => CodeCheck::Valid,
                    None => CodeCheck::NotFound,
                },
            ),
            other => Ok(other),
        }
    }

    /// The link page's approval: marks the current link code of its target approved.
    /// `None` when the code is unknown, expired, replaced by a newer one or used.
    pub async fn approve_link(&self, code: &str) -> FlowResult<Option<ApprovedLink>> {
        let Some(json) = self.store.get(&Self::link_key(code)).await? else {
            return Ok(None);
        };
        let index: LinkIndex = serde_json::from_str(&json)
            .map_err(|e| FlowError::Unexpected(format!("link decoding: {e}")))?;
        let Some(mut record) = self.record(index.purpose, &index.target).await? else {
            return Ok(None);
        };
        let hash = token::sha256_hex(code);
        if !token::constant_time_eq(hash.as_bytes(), record.code_hash.as_bytes()) {
            return Ok(None);
        }
        let remaining = (record.expires_at - self.clock.now())
            .to_std()
            .unwrap_or(Duration::from_secs(1));
        record.approved = true;
        let json = serde_json::to_string(&record)
            .map_err(|e| FlowError::Unexpected(format!("otp encoding: {e}")))?;
        self.store
            .put(
                &Self::code_key(index.purpose, &index.target),
                &json,
                remaining,
            )
            .await?;
        Ok(Some(ApprovedLink {
            ws_channel: index.ws_channel,
            purpose: index.purpose,
            target: index.target,
        }))
    }

    /// The target of a live link code of `purpose` (its record still holds this code).
    pub async fn link_target(&self, purpose: Purpose, code: &str) -> FlowResult<Option<String>> {
        let Some(json) = self.store.get(&Self::link_key(code)).await? else {
            return Ok(None);
        };
        let index: LinkIndex = serde_json::from_str(&json)
            .map_err(|e| FlowError::Unexpected(format!("link decoding: {e}")))?;
        if index.purpose != purpose {
            return Ok(None);
        }
        let Some(record) = self.record(purpose, &index.target).await? else {
            return Ok(None);
        };
        let hash = token::sha256_hex(code);
        Ok(
            token::constant_time_eq(hash.as_bytes(), record.code_hash.as_bytes())
                .then_some(index.target),
        )
    }

    /// `{"check": true}`: succeeds once, after the link was approved.
    pub async fn check_link(&self, purpose: Purpose, target: &str) -> FlowResult<CodeCheck> {
        let Some(record) = self.record(purpose, target).await? else {
            return Ok(CodeCheck::NotFound);
        };
        if !record.approved {
            return Ok(CodeCheck::Wrong);
        }
        Ok(
            match self.store.take(&Self::code_key(purpose, target)).await? {
                Some(_) => CodeCheck::Valid,
                None => CodeCheck::NotFound,
            },
        )
    }
}
