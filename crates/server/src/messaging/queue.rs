//! The bounded in-process delivery queue (authentication-flow-api.md 13): the request path
//! only enqueues; a background task delivers with retries and records each outcome in the
//! [`DeliveryLog`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

use authflow_core::flow::otp::{DeliveryFailure, DeliveryLog, DeliveryStatus, OutgoingMessage};

use super::{Transport, TransportError, channel_name};

/// Messages waiting for a worker; beyond that a message fails at once.
const QUEUE_CAPACITY: usize = 1024;
/// Messages delivered at the same time (a slow gateway does not hold up the others).
const CONCURRENT_DELIVERIES: usize = 16;

/// Pauses between attempts: up to 3 attempts, 2 s then 8 s apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub delays: Vec<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            delays: vec![Duration::from_secs(2), Duration::from_secs(8)],
        }
    }
}

impl RetryPolicy {
    fn attempts(&self) -> usize {
        self.delays.len() + 1
    }
}

struct Job {
    transport: Arc<dyn Transport>,
    message: OutgoingMessage,
}

/// The sending side of the queue.
pub struct DeliveryQueue {
    jobs: mpsc::Sender<Job>,
}

impl DeliveryQueue {
    /// Spawns the worker on the current Tokio runtime.
    pub fn start(log: DeliveryLog, retry: RetryPolicy) -> Self {
        let (jobs, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(drain(receiver, log, Arc::new(retry)));
        DeliveryQueue { jobs }
    }

    /// `Sending` once queued; `Failed` when the queue is full.
    pub fn enqueue(
        &self,
        transport: Arc<dyn Transport>,
        message: OutgoingMessage,
    ) -> DeliveryStatus {
        let delivery_id = message.delivery_id.clone();
        match self.jobs.try_send(Job { transport, message }) {
            Ok(()) => DeliveryStatus::Sending,
            Err(e) => {
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "delivery queue is full",
                    mpsc::error::TrySendError::Closed(_) => "delivery queue is closed",
                };
                tracing::error!(%delivery_id, "{why}: message not sent");
                DeliveryStatus::Failed(DeliveryFailure::OtpDeliveryUnexpectedError)
            }
        }
    }
}

async fn drain(mut receiver: mpsc::Receiver<Job>, log: DeliveryLog, retry: Arc<RetryPolicy>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    while let Some(job) = receiver.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (log, retry) = (log.clone(), retry.clone());
        tokio::spawn(async move {
            let status = deliver_with_retries(&job, &retry).await;
            if let Err(e) = log.record(&job.message, status).await {
                tracing::error!(delivery_id = %job.message.delivery_id, error = %e, "cannot record delivery status");
            }
            drop(slot);
        });
    }
}

/// The final status of a job after up to `retry.attempts()` attempts.
async fn deliver_with_retries(job: &Job, retry: &RetryPolicy) -> DeliveryStatus {
    let mut attempt = 1;
    loop {
        let error = match job.transport.deliver(&job.message).await {
            Ok(()) => {
                log_delivered(job, attempt);
                return DeliveryStatus::Sent;
            }
            Err(error) => error,
        };
        let last = !error.retryable || attempt >= retry.attempts();
        log_failed_attempt(job, attempt, &error, last);
        if last {
            return DeliveryStatus::Failed(error.failure);
        }
        tokio::time::sleep(retry.delays[attempt - 1]).await;
        attempt += 1;
    }
}

fn log_delivered(job: &Job, attempt: usize) {
    tracing::info!(
        transport = job.transport.name(),
        channel = channel_name(job.message.channel),
        delivery_id = %job.message.delivery_id,
        attempt,
        "message delivered"
    );
}

fn log_failed_attempt(job: &Job, attempt: usize, error: &TransportError, last: bool) {
    tracing::warn!(
        transport = job.transport.name(),
        channel = channel_name(job.message.channel),
        delivery_id = %job.message.delivery_id,
        attempt,
        reason = error.failure.reason(),
        error = %error.detail,
        "{}",
        if last {
            "message delivery failed"
        } else {
            "message delivery attempt failed; retrying"
        }
    );
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use authflow_core::flow::def::Channel;
    use authflow_core::flow::otp::Purpose;

    use super::*;

    /// Fails the first `failures` attempts with `error`, then succeeds.
    struct Flaky {
        failures: usize,
        retryable: bool,
        calls: AtomicUsize,
        seen: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Transport for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }

        async fn deliver(&self, message: &OutgoingMessage) -> Result<(), TransportError> {
            self.seen.lock().unwrap().push(message.delivery_id.clone());
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
                return Err(TransportError {
                    failure: DeliveryFailure::SmsGatewayDeliveryRejected,
                    retryable: self.retryable,
                    detail: "HTTP 500".into(),
                });
            }
            Ok(())
        }
    }

    fn job(failures: usize, retryable: bool) -> (Job, Arc<Flaky>) {
        let transport = Arc::new(Flaky {
            failures,
            retryable,
            calls: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let message = OutgoingMessage {
            channel: Channel::Sms,
            to: "+85251001234".into(),
            purpose: Purpose::Verification,
            code: "123456".into(),
            link: None,
            valid_minutes: 5,
            delivery_id: "d1".into(),
        };
        let job = Job {
            transport: transport.clone(),
            message,
        };
        (job, transport)
    }

    fn quick() -> RetryPolicy {
        RetryPolicy {
            delays: vec![Duration::from_millis(1), Duration::from_millis(1)],
        }
    }

    #[tokio::test]
    async fn retries_until_delivered_within_three_attempts() {
        let (job, transport) = job(2, true);
        assert_eq!(
            deliver_with_retries(&job, &quick()).await,
            DeliveryStatus::Sent
        );
        assert_eq!(transport.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn fails_after_three_attempts() {
        let (job, transport) = job(5, true);
        assert_eq!(
            deliver_with_retries(&job, &quick()).await,
            DeliveryStatus::Failed(DeliveryFailure::SmsGatewayDeliveryRejected)
        );
        assert_eq!(transport.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_not_retried() {
        let (job, transport) = job(5, false);
        assert!(matches!(
            deliver_with_retries(&job, &quick()).await,
            DeliveryStatus::Failed(_)
        ));
        assert_eq!(transport.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_default_policy_is_the_spec_one() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.attempts(), 3);
        assert_eq!(
            policy.delays,
            [Duration::from_secs(2), Duration::from_secs(8)]
        );
    }
}
