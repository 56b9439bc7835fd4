//! Backend-neutral helpers: time conversions, enum codecs, error mapping and the GCRA
//! arithmetic. No SQL here: every statement lives in its backend's module.

use std::time::Duration;

use authflow_core::model::{AuthenticatorKind, AuthenticatorType, LoginIdType, SessionKind};
use authflow_core::store::{StoreError, StoreResult};
use chrono::{DateTime, SubsecRound, Utc};

/// Every backend keeps timestamps at millisecond precision, so a value reads back equal
/// whatever the backend (SQLite stores integer millis, PostgreSQL would keep micros).
pub(crate) fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

pub(crate) fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt("timestamp", &ms.to_string()))
}

/// Current time in microseconds since the epoch (GCRA arithmetic).
pub(crate) fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// Saturating conversion: durations beyond ~292 000 years are not a concern here.
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Expiry instant of a value written now with `ttl`.
pub(crate) fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    now.checked_add_signed(ttl)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A value read from the database that the model cannot represent.
pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Backend(format!("unexpected {what} {value:?} in storage"))
}

/// Map a sqlx error. Unique violations that a statement did not anticipate (a reused
/// id, a duplicate token hash) become [`StoreError::AlreadyExists`]; the rest is a
/// backend failure. Database messages name constraints, never bound values.
pub(crate) fn sql_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.kind() == sqlx::error::ErrorKind::UniqueViolation
    {
        let what = db.constraint().or(db.table()).unwrap_or(db.message());
        return StoreError::AlreadyExists(what.to_string());
    }
    StoreError::Backend(e.to_string())
}

pub(crate) fn authenticator_kind_str(kind: AuthenticatorKind) -> &'static str {
    match kind {
        AuthenticatorKind::Primary => "primary",
        AuthenticatorKind::Secondary => "secondary",
    }
}

pub(crate) fn parse_authenticator_kind(s: &str) -> StoreResult<AuthenticatorKind> {
    match s {
        "primary" => Ok(AuthenticatorKind::Primary),
        "secondary" => Ok(AuthenticatorKind::Secondary),
        _ => Err(corrupt("authenticator kind", s)),
    }
}

pub(crate) fn parse_authenticator_type(s: &str) -> StoreResult<AuthenticatorType> {
    AuthenticatorType::parse(s).ok_or_else(|| corrupt("authenticator type", s))
}

pub(crate) fn parse_login_id_type(s: &str) -> StoreResult<LoginIdType> {
    LoginIdType::parse(s).ok_or_else(|| corrupt("login ID type", s))
}

pub(crate) fn parse_session_kind(s: &str) -> StoreResult<SessionKind> {
    SessionKind::parse(s).ok_or_else(|| corrupt("session kind", s))
}

/// Generic cell rate algorithm over a "theoretical arrival time" (tat, in µs).
/// SQL backends run it inside a transaction; Redis runs the same arithmetic in Lua.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gcra {
    /// `period` in µs.
    period: i64,
    /// Emission interval T = period / burst, in µs.
    interval: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GcraTake {
    /// Store this new tat (it is also the instant the bucket is full again).
    Allowed {
        new_tat: i64,
    },
    Limited {
        retry_after: Duration,
    },
}

impl Gcra {
    /// A zero `burst` is treated as 1: a bucket that can never hold a token would lock
    /// the caller out forever, which is never what a configuration means.
    pub(crate) fn new(period: Duration, burst: u32) -> Self {
        let period = micros(period).max(1);
        let interval = (period / i64::from(burst.max(1))).max(1);
        Gcra { period, interval }
    }

    pub(crate) fn period_micros(self) -> i64 {
        self.period
    }

    pub(crate) fn interval_micros(self) -> i64 {
        self.interval
    }

    /// `stored` is the tat of the bucket if any (expired ones may be passed: a tat in
    /// the past means a full bucket).
    pub(crate) fn take(self, stored: Option<i64>, now: i64) -> GcraTake {
        let tat = stored.unwrap_or(now).max(now);
        // Allowing `burst` tokens at once means tolerating a tat up to period - T ahead.
        let tolerance = self.period - self.interval;
        let ahead = tat - now;
        if ahead > tolerance {
            let wait = u64::try_from(ahead - tolerance).unwrap_or(0);
            GcraTake::Limited {
                retry_after: Duration::from_micros(wait),
            }
        } else {
            GcraTake::Allowed {
                new_tat: tat + self.interval,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_burst_then_limits() {
        let g = Gcra::new(Duration::from_secs(3), 3);
        let now = 1_000_000_000;
        let mut tat = None;
        for _ in 0..3 {
            match g.take(tat, now) {
                GcraTake::Allowed { new_tat } => tat = Some(new_tat),
                GcraTake::Limited { .. } => panic!("limited within burst"),
            }
        }
        assert_eq!(
            g.take(tat, now),
            GcraTake::Limited {
                retry_after: Duration::from_secs(1)
            }
        );
        // One interval later exactly one token is back.
        assert!(matches!(
            g.take(tat, now + 1_000_000),
            GcraTake::Allowed { .. }
        ));
    }

    #[test]
    fn zero_burst_is_one() {
        let g = Gcra::new(Duration::from_secs(1), 0);
        assert_eq!(g.interval_micros(), 1_000_000);
    }
}
