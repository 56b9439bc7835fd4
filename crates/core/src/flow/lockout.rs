//! Account lockout (`authentication.lockout`): failures of counted kinds within
//! `history_duration` lock the user (or the user from one IP) for a growing duration.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::{FlowError, FlowResult};
use crate::clock::Clock;
use crate::config::{LockoutConfig, LockoutKind, LockoutType};
use crate::store::StateStore;

/// How long the count of past lockouts (which drives the backoff) is remembered.
const LOCKOUT_COUNT_MEMORY: Duration = Duration::from_secs(24 * 3600);

pub struct Lockout {
    config: LockoutConfig,
    store: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
}

impl Lockout {
    pub fn new(config: LockoutConfig, store: Arc<dyn StateStore>, clock: Arc<dyn Clock>) -> Self {
        Lockout {
            config,
            store,
            clock,
        }
    }

    fn scope(&self, user_id: &str, ip: &str) -> String {
        match self.config.lockout_type {
            Some(LockoutType::PerUserPerIp) => format!("{user_id}:{ip}"),
            _ => user_id.to_string(),
        }
    }

    /// Refuse any attempt of a counted kind while the lockout runs.
    pub async fn ensure_unlocked(
        &self,
        kind: LockoutKind,
        user_id: &str,
        ip: &str,
    ) -> FlowResult<()> {
        if !self.config.counts(kind) {
            return Ok(());
        }
        let key = format!("lockout:{}", self.scope(user_id, ip));
        let Some(until) = self.store.get(&key).await? else {
            return Ok(());
        };
        match DateTime::parse_from_rfc3339(&until) {
            Ok(until) if until.with_timezone(&Utc) > self.clock.now() => {
                Err(FlowError::AccountLockout {
                    until: until.with_timezone(&Utc),
                })
            }
            _ => Ok(()),
        }
    }

    /// Count a failure; the one that reaches `max_attempts` starts a lockout (the caller
    /// still answers that failure with its own error).
    pub async fn record_failure(
        &self,
        kind: LockoutKind,
        user_id: &str,
        ip: &str,
    ) -> FlowResult<()> {
        if !self.config.counts(kind) {
            return Ok(());
        }
        let scope = self.scope(user_id, ip);
        let window = self
            .config
            .history_duration
            .unwrap_or(Duration::from_secs(60));
        let failures_key = format!("lockoutfail:{scope}");
        let failures = self.store.incr(&failures_key, 1, window).await?;
        if failures < i64::from(self.config.max_attempts) {
            return Ok(());
        }
        self.store.delete(&failures_key).await?;
        let n = self
            .store
            .incr(&format!("lockoutcount:{scope}"), 1, LOCKOUT_COUNT_MEMORY)
            .await?;
        let duration = self
            .config
            .duration_of(u32::try_from(n).unwrap_or(u32::MAX));
        let until = self.clock.now() + chrono::Duration::from_std(duration).unwrap_or_default();
        self.store
            .put(
                &format!("lockout:{scope}"),
                &until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                duration.max(Duration::from_secs(1)),
            )
            .await?;
        Ok(())
    }
}
