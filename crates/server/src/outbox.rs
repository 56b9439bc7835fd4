//! The development outbox: where messages go while no SMTP server or SMS gateway is
//! configured. Kept in memory, logged one line each, listed at `GET /authflow/outbox`
//! for loopback clients. Not for production: `serve` warns at start.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use authflow_core::flow::def::Channel;
use authflow_core::flow::otp::{DeliveryStatus, Messenger, OutgoingMessage, Purpose};

use crate::AppState;
use crate::error::ApiError;

#[derive(Debug, Clone, Serialize)]
pub struct OutboxEntry {
    pub channel: &'static str,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub code: String,
    /// Login and recovery links (the code is inside).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    pub purpose: &'static str,
    pub sent_at: DateTime<Utc>,
}

pub struct DevOutbox {
    app_name: String,
    max_messages: usize,
    entries: Mutex<VecDeque<OutboxEntry>>,
}

impl DevOutbox {
    pub fn new(app_name: String, max_messages: usize) -> Self {
        DevOutbox {
            app_name,
            max_messages: max_messages.max(1),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    pub fn entries(&self) -> Vec<OutboxEntry> {
        self.entries
            .lock()
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Whatsapp => "whatsapp",
    }
}

impl Messenger for DevOutbox {
    fn send(&self, m: OutgoingMessage) -> DeliveryStatus {
        let (purpose, what) = match (m.purpose, m.link.is_some()) {
            (Purpose::Verification, _) => ("verification", "verification code"),
            (Purpose::Authentication, false) => ("authentication", "login code"),
            (Purpose::Authentication, true) => ("authentication", "login link"),
            (Purpose::AccountRecovery, false) => ("account_recovery", "account recovery code"),
            (Purpose::AccountRecovery, true) => ("account_recovery", "account recovery link"),
        };
        let subject = format!("Your {} {what}", self.app_name);
        let secret = m.link.clone().unwrap_or_else(|| m.code.clone());
        let body = format!(
            "Your {} {what} is {secret}. It is valid for {} minutes. If you did not ask for it, ignore this message.",
            self.app_name, m.valid_minutes
        );
        // The outbox is the one place codes may be logged (flow-config.md 4.4).
        tracing::info!(channel = channel_name(m.channel), to = %m.to, code = %secret, "dev outbox message");
        let entry = OutboxEntry {
            channel: channel_name(m.channel),
            to: m.to,
            subject,
            body,
            code: m.code,
            link: m.link,
            purpose,
            sent_at: Utc::now(),
        };
        if let Ok(mut entries) = self.entries.lock() {
            entries.push_back(entry);
            while entries.len() > self.max_messages {
                entries.pop_front();
            }
        }
        DeliveryStatus::Sent
    }
}

/// `GET /authflow/outbox`: the newest messages last; loopback clients only.
pub async fn list(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    match (&app.outbox, peer.ip().is_loopback()) {
        (Some(outbox), true) => {
            Json(serde_json::json!({"messages": outbox.entries()})).into_response()
        }
        _ => ApiError::not_found().into_response(),
    }
}
