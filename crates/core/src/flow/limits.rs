//! Rate-limit buckets over the state store (shared by replicas when it is Redis).

use std::sync::Arc;

use super::error::{FlowError, FlowResult, RateLimitHit};
use super::settings::Limit;
use crate::store::{RateDecision, StateStore};

/// One bucket: Authgear's bucket name, the scope it counts (IP, user+IP, ...), the limit,
/// and for configurable limits the `(config path, group)` reported in `info`.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub bucket_name: &'static str,
    pub key: String,
    pub limit: Limit,
    pub limit_name: Option<(&'static str, &'static str)>,
}

impl Bucket {
    pub fn new(
        bucket_name: &'static str,
        scope: &str,
        limit: Limit,
        limit_name: Option<(&'static str, &'static str)>,
    ) -> Self {
        Bucket {
            bucket_name,
            key: format!("rl:{bucket_name}:{scope}"),
            limit,
            limit_name,
        }
    }

    fn hit(&self) -> FlowError {
        FlowError::RateLimited(RateLimitHit {
            bucket_name: self.bucket_name.to_string(),
            limit: self.limit_name.map(|(n, g)| (n.to_string(), g.to_string())),
        })
    }
}

#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn StateStore>,
}

impl RateLimiter {
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        RateLimiter { store }
    }

    /// Take a token, or answer `RateLimited` for this bucket.
    pub async fn take(&self, bucket: &Bucket) -> FlowResult<()> {
        match self
            .store
            .take_token(&bucket.key, bucket.limit.period, bucket.limit.burst)
            .await?
        {
            RateDecision::Allowed => Ok(()),
            RateDecision::Limited { .. } => Err(bucket.hit()),
        }
    }

    /// Give a token back: limits that count failures only return it on success.
    pub async fn give_back(&self, bucket: &Bucket) -> FlowResult<()> {
        self.store
            .return_token(&bucket.key, bucket.limit.period, bucket.limit.burst)
            .await?;
        Ok(())
    }

    /// Take from several buckets; on a refusal, return what was already taken.
    pub async fn take_all(&self, buckets: &[Bucket]) -> FlowResult<()> {
        for (i, bucket) in buckets.iter().enumerate() {
            if let Err(e) = self.take(bucket).await {
                for taken in &buckets[..i] {
                    self.give_back(taken).await?;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    pub async fn give_back_all(&self, buckets: &[Bucket]) -> FlowResult<()> {
        for bucket in buckets {
            self.give_back(bucket).await?;
        }
        Ok(())
    }
}
