//! Email over SMTP with lettre (`messaging.smtp`): modes `plain`, `starttls`, `tls`,
//! optional AUTH, a plain-text and an HTML body.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, Error as SmtpError};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use authflow_core::config::{SmtpConfig, SmtpMode};
use authflow_core::flow::otp::{DeliveryFailure, OutgoingMessage};

use super::templates::Templates;
use super::{Transport, TransportError};

#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    #[error("sender: {0}")]
    Sender(#[from] lettre::address::AddressError),
    #[error("cannot set up TLS for host: {0}")]
    Tls(#[from] SmtpError),
}

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    sender: Mailbox,
    templates: Arc<Templates>,
    timeout: Duration,
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig, templates: Arc<Templates>) -> Result<Self, SmtpSetupError> {
        Ok(SmtpMailer {
            transport: builder(config)?.build(),
            sender: config.sender.parse()?,
            templates,
            timeout: config.timeout,
        })
    }

    fn compose(&self, message: &OutgoingMessage) -> Result<Message, TransportError> {
        let to: Address = message
            .to
            .parse()
            .map_err(|e| permanent(format!("recipient address: {e}")))?;
        let email = self.templates.email(message);
        Message::builder()
            .from(self.sender.clone())
            .to(Mailbox::new(None, to))
            .subject(email.subject)
            .multipart(MultiPart::alternative_plain_html(email.text, email.html))
            .map_err(|e| permanent(format!("cannot build the email: {e}")))
    }
}

fn builder(config: &SmtpConfig) -> Result<AsyncSmtpTransportBuilder, SmtpError> {
    let host = config.host.as_str();
    let builder = match config.mode {
        SmtpMode::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        SmtpMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
        SmtpMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
    };
    let builder = builder.port(config.port).timeout(Some(config.timeout));
    Ok(match (&config.username, &config.password) {
        (Some(user), Some(password)) => builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        )),
        _ => builder,
    })
}

fn permanent(detail: String) -> TransportError {
    TransportError {
        failure: DeliveryFailure::OtpDeliveryUnexpectedError,
        retryable: false,
        detail,
    }
}

/// Permanent (5xx) answers are not retried; network, TLS and 4xx failures are.
fn send_failure(e: &SmtpError) -> TransportError {
    TransportError {
        failure: DeliveryFailure::OtpDeliveryUnexpectedError,
        retryable: !e.is_permanent(),
        detail: format!("SMTP: {e}"),
    }
}

#[async_trait]
impl Transport for SmtpMailer {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn deliver(&self, message: &OutgoingMessage) -> Result<(), TransportError> {
        let email = self.compose(message)?;
        match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Ok(Ok(_response)) => Ok(()),
            Ok(Err(e)) => Err(send_failure(&e)),
            Err(_) => Err(TransportError {
                failure: DeliveryFailure::OtpDeliveryUnexpectedError,
                retryable: true,
                detail: format!("SMTP: no answer within {:?}", self.timeout),
            }),
        }
    }
}
