//! Message delivery (flow-config.md 4.4, authentication-flow-api.md 13): email over SMTP,
//! SMS and WhatsApp through an HTTP webhook, the development outbox for channels without a
//! transport. Real transports run off the request path in a bounded queue with retries;
//! each message's outcome is kept in the state store (`delivery_status`).
//!
//! No code or secret is logged here: only the development outbox logs codes.

mod queue;
mod sms;
mod smtp;
pub mod templates;

use std::sync::Arc;

use async_trait::async_trait;

use authflow_core::config::MessagingConfig;
use authflow_core::flow::def::Channel;
use authflow_core::flow::otp::{
    DeliveryFailure, DeliveryLog, DeliveryStatus, Messenger, OutgoingMessage,
};
use authflow_core::store::StateStore;

pub use queue::RetryPolicy;
pub use sms::{SIGNATURE_HEADER, WebhookSetupError};
pub use smtp::SmtpSetupError;
pub use templates::{TemplateError, Templates};

use crate::outbox::DevOutbox;
use queue::DeliveryQueue;

#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    #[error("messaging.smtp: {0}")]
    Smtp(#[from] SmtpSetupError),
    #[error("messaging.sms.webhook: {0}")]
    Webhook(#[from] WebhookSetupError),
    #[error("messaging.templates_dir: {0}")]
    Templates(#[from] TemplateError),
}

/// Why one attempt to deliver a message failed.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct TransportError {
    /// Reported in the state if this is the last attempt.
    pub failure: DeliveryFailure,
    /// Whether another attempt may succeed (timeouts, 5xx) or not (a rejected number).
    pub retryable: bool,
    /// For the log: never contains a code or a secret.
    pub detail: String,
}

/// A way out of the server for messages of some channels.
#[async_trait]
pub trait Transport: Send + Sync {
    /// For logs: `smtp`, `sms_webhook`.
    fn name(&self) -> &'static str;
    async fn deliver(&self, message: &OutgoingMessage) -> Result<(), TransportError>;
}

/// Where messages of one channel go.
#[derive(Clone)]
enum Route {
    Transport(Arc<dyn Transport>),
    Outbox(Arc<DevOutbox>),
    /// No transport and the outbox is disabled: every message fails.
    Nowhere,
}

/// The [`Messenger`] of the server: picks the route of each message's channel.
pub struct MessageRouter {
    email: Route,
    phone: Route,
    queue: Option<DeliveryQueue>,
}

impl Messenger for MessageRouter {
    fn send(&self, message: OutgoingMessage) -> DeliveryStatus {
        let route = match message.channel {
            Channel::Email => &self.email,
            Channel::Sms | Channel::Whatsapp => &self.phone,
        };
        match (route, &self.queue) {
            (Route::Transport(transport), Some(queue)) => queue.enqueue(transport.clone(), message),
            (Route::Outbox(outbox), _) => outbox.send(message),
            (Route::Transport(_), None) | (Route::Nowhere, _) => {
                tracing::warn!(
                    channel = channel_name(message.channel),
                    delivery_id = %message.delivery_id,
                    "no transport for this channel and the development outbox is disabled: message not sent"
                );
                DeliveryStatus::Failed(DeliveryFailure::OtpDeliveryUnexpectedError)
            }
        }
    }
}

/// The messenger and, while some channel uses it, the development outbox.
pub struct Messaging {
    pub messenger: Arc<dyn Messenger>,
    pub outbox: Option<Arc<DevOutbox>>,
}

/// Channels whose messages go to the development outbox (`serve` warns about them).
pub fn outbox_channels(config: &MessagingConfig) -> Vec<&'static str> {
    if !config.dev_outbox.enabled {
        return Vec::new();
    }
    let mut channels = Vec::new();
    if config.smtp.is_none() {
        channels.push("email");
    }
    if config.sms.webhook.is_none() {
        channels.extend(["sms", "whatsapp"]);
    }
    channels
}

/// Builds the transports of `config` and starts the delivery queue (needs a Tokio runtime).
pub fn start(
    config: &MessagingConfig,
    app_name: String,
    state_store: Arc<dyn StateStore>,
    retry: RetryPolicy,
) -> Result<Messaging, MessagingError> {
    let templates = Arc::new(Templates::load(
        app_name.clone(),
        config.templates_dir.as_deref(),
    )?);
    let outbox = (!outbox_channels(config).is_empty()).then(|| {
        Arc::new(DevOutbox::new(
            app_name,
            config.dev_outbox.max_messages as usize,
        ))
    });
    let fallback = match &outbox {
        Some(outbox) => Route::Outbox(outbox.clone()),
        None => Route::Nowhere,
    };
    let email = match &config.smtp {
        Some(smtp) => Route::Transport(Arc::new(smtp::SmtpMailer::new(smtp, templates.clone())?)),
        None => fallback.clone(),
    };
    let phone = match &config.sms.webhook {
        Some(webhook) => Route::Transport(Arc::new(sms::Webhook::new(webhook, templates)?)),
        None => fallback,
    };
    let uses_queue = [&email, &phone]
        .iter()
        .any(|r| matches!(r, Route::Transport(_)));
    let queue = uses_queue.then(|| DeliveryQueue::start(DeliveryLog::new(state_store), retry));
    let router = MessageRouter {
        email,
        phone,
        queue,
    };
    Ok(Messaging {
        messenger: Arc::new(router),
        outbox,
    })
}

pub fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Whatsapp => "whatsapp",
    }
}
