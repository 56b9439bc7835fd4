//! PostgreSQL backend: durable records and, when no Redis is configured, the
//! short-lived state, for deployments with several replicas.
//!
//! Timestamps are `timestamptz` written at millisecond precision so they read back
//! equal whatever the backend; JSON is `jsonb`; lists order by `(created_at, seq)`.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use authflow_core::model::*;
use authflow_core::store::{
    Change, ChangeSet, Database, RateDecision, StateStore, StoreError, StoreResult,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgQueryResult, PgRow};
use sqlx::{Connection, Row};

use crate::common::{
    Gcra, GcraTake, authenticator_kind_str, expiry, now_micros, sql_err, truncate_ms,
};
use crate::connect::{CONNECT_TIMEOUT, ConnectError, sqlx_reason};
use crate::rows::{self, RowExt};

/// Pool acquisition under load; connecting at startup is bounded by `CONNECT_TIMEOUT`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Expired state is swept on one put out of this many (cheap, bounded by index).
const SWEEP_EVERY: u64 = 64;
/// Rows removed per sweep, so a sweep stays a short statement.
const SWEEP_BATCH: i64 = 500;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// PostgreSQL implementation of [`Database`] and [`StateStore`].
pub struct PgStore {
    pool: PgPool,
    puts: AtomicU64,
}

/// One direct connection first: the pool would retry a refused connection until its
/// timeout and then report only "timed out", hiding the cause from the operator.
async fn probe(url: &str, options: &PgConnectOptions) -> Result<(), ConnectError> {
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options))
        .await
        .map_err(|_| ConnectError::timed_out(url))?
        .map_err(|e| ConnectError::database(url, sqlx_reason(&e)))?;
    // Closing politely is a courtesy to the server; failure changes nothing.
    let _ = conn.close().await;
    Ok(())
}

impl PgStore {
    /// Connect and migrate. Migrations take an advisory lock, so replicas starting
    /// together do not race.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, ConnectError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| ConnectError::invalid("database", url, e))?
            .application_name("authflow");
        probe(url, &options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options);
        let pool = tokio::time::timeout(CONNECT_TIMEOUT, pool)
            .await
            .map_err(|_| ConnectError::timed_out(url))?
            .map_err(|e| ConnectError::database(url, sqlx_reason(&e)))?;
        let store = Self::from_pool(pool);
        store
            .migrate()
            .await
            .map_err(|e| ConnectError::migrate(url, e))?;
        Ok(store)
    }

    /// Wrap an existing pool. The caller runs [`PgStore::migrate`].
    pub fn from_pool(pool: PgPool) -> Self {
        PgStore {
            pool,
            puts: AtomicU64::new(0),
        }
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Delete up to a batch of expired state rows; returns how many went. Called
    /// opportunistically by `put`; a caller may also run it periodically.
    pub async fn sweep_expired(&self) -> StoreResult<u64> {
        let now = Utc::now();
        let ephemeral = sqlx::query(
            "DELETE FROM ephemeral WHERE key IN \
             (SELECT key FROM ephemeral WHERE expires_at <= $1 LIMIT $2)",
        )
        .bind(truncate_ms(now))
        .bind(SWEEP_BATCH)
        .execute(&self.pool)
        .await
        .map_err(sql_err)?;
        let buckets = sqlx::query(
            "DELETE FROM rate_buckets WHERE key IN \
             (SELECT key FROM rate_buckets WHERE tat <= $1 LIMIT $2)",
        )
        .bind(now.timestamp_micros())
        .bind(SWEEP_BATCH)
        .execute(&self.pool)
        .await
        .map_err(sql_err)?;
        Ok(ephemeral.rows_affected() + buckets.rows_affected())
    }

    async fn maybe_sweep(&self) {
        if self
            .puts
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            // Best effort: a failed sweep only delays garbage collection.
            if let Err(e) = self.sweep_expired().await {
                tracing::warn!(error = %e, "sweeping expired state failed");
            }
        }
    }

    async fn fetch_all(&self, sql: &'static str, id: &str) -> StoreResult<Vec<PgRow>> {
        sqlx::query(sql)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(sql_err)
    }

    async fn fetch_one(&self, sql: &'static str, id: &str) -> StoreResult<Option<PgRow>> {
        sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(sql_err)
    }
}

impl RowExt for PgRow {
    fn text(&self, col: &str) -> StoreResult<String> {
        self.try_get(col).map_err(sql_err)
    }

    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        self.try_get(col).map_err(sql_err)
    }

    fn flag(&self, col: &str) -> StoreResult<bool> {
        self.try_get(col).map_err(sql_err)
    }

    fn time(&self, col: &str) -> StoreResult<DateTime<Utc>> {
        self.try_get(col).map_err(sql_err)
    }

    fn opt_time(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.try_get(col).map_err(sql_err)
    }

    fn json(&self, col: &str) -> StoreResult<serde_json::Value> {
        self.try_get(col).map_err(sql_err)
    }

    fn strings(&self, col: &str) -> StoreResult<Vec<String>> {
        self.try_get(col).map_err(sql_err)
    }
}

/// An UPDATE/DELETE that must hit a row: zero rows is [`StoreError::NotFound`].
fn expect_row(result: PgQueryResult, what: impl FnOnce() -> String) -> StoreResult<()> {
    if result.rows_affected() == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}

/// Apply one change inside the commit transaction.
async fn apply(c: &mut PgConnection, change: &Change) -> StoreResult<()> {
    match change {
        Change::CreateUser(u) => insert_user(c, u).await,
        Change::SetUserDisabled {
            user_id,
            disabled,
            reason,
        } => set_user_disabled(c, user_id, *disabled, reason.as_deref()).await,
        Change::DeleteUser { user_id } => delete_user(c, user_id).await,
        Change::CreateIdentity(i) => insert_identity(c, i).await,
        Change::CreateAuthenticator(a) => insert_authenticator(c, a).await,
        Change::UpdateAuthenticatorData {
            authenticator_id,
            data,
            updated_at,
        } => update_authenticator_data(c, authenticator_id, data, *updated_at).await,
        Change::AddVerifiedClaim(v) => insert_verified_claim(c, v).await,
        Change::AddPasswordHistory(p) => insert_password_history(c, p).await,
        Change::CreateRecoveryCodes(codes) => insert_recovery_codes(c, codes).await,
        Change::ConsumeRecoveryCode {
            recovery_code_id,
            at,
        } => consume_recovery_code(c, recovery_code_id, *at).await,
        Change::CreateSession(s) => insert_session(c, s).await,
        Change::RevokeUserSessions {
            user_id,
            except,
            at,
        } => revoke_user_sessions(c, user_id, except.as_deref(), *at).await,
        Change::RevokeSession { session_id, at } => revoke_session(c, session_id, *at).await,
        Change::TouchSession { session_id, at } => touch_session(c, session_id, *at).await,
        Change::AuditEvent(e) => insert_audit_event(c, e).await,
    }
}

async fn insert_user(c: &mut PgConnection, u: &User) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (id, org_id, created_at, disabled, disabled_reason, name) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&u.id)
    .bind(&u.org_id)
    .bind(truncate_ms(u.created_at))
    .bind(u.disabled)
    .bind(&u.disabled_reason)
    .bind(&u.name)
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

async fn set_user_disabled(
    c: &mut PgConnection,
    user_id: &str,
    disabled: bool,
    reason: Option<&str>,
) -> StoreResult<()> {
    let result = sqlx::query("UPDATE users SET disabled = $1, disabled_reason = $2 WHERE id = $3")
        .bind(disabled)
        .bind(reason)
        .bind(user_id)
        .execute(c)
        .await
        .map_err(sql_err)?;
    expect_row(result, || format!("user {user_id}"))
}

/// Everything of the user goes with it through `ON DELETE CASCADE`; audit events stay.
async fn delete_user(c: &mut PgConnection, user_id: &str) -> StoreResult<()> {
    let result = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(user_id)
        .execute(c)
        .await
        .map_err(sql_err)?;
    expect_row(result, || format!("user {user_id}"))
}

/// `ON CONFLICT DO NOTHING` on the login-ID constraint turns a taken login ID into "no
/// row inserted", which is unambiguous (unlike parsing a constraint error message).
async fn insert_identity(c: &mut PgConnection, i: &Identity) -> StoreResult<()> {
    let result = sqlx::query(
        "INSERT INTO identities (id, user_id, org_id, login_id_key, login_id_type, original, \
         normalized, unique_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (org_id, login_id_key, unique_key) DO NOTHING",
    )
    .bind(&i.id)
    .bind(&i.user_id)
    .bind(&i.org_id)
    .bind(&i.login_id_key)
    .bind(i.login_id_type.as_str())
    .bind(&i.original)
    .bind(&i.normalized)
    .bind(&i.unique_key)
    .bind(truncate_ms(i.created_at))
    .execute(c)
    .await
    .map_err(sql_err)?;
    if result.rows_affected() == 0 {
        return Err(StoreError::DuplicateIdentity {
            login_id_key: i.login_id_key.clone(),
        });
    }
    Ok(())
}

async fn insert_authenticator(c: &mut PgConnection, a: &Authenticator) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO authenticators (id, user_id, kind, authenticator_type, data, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&a.id)
    .bind(&a.user_id)
    .bind(authenticator_kind_str(a.kind))
    .bind(a.authenticator_type.as_str())
    .bind(&a.data)
    .bind(truncate_ms(a.created_at))
    .bind(truncate_ms(a.updated_at))
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

async fn update_authenticator_data(
    c: &mut PgConnection,
    id: &str,
    data: &serde_json::Value,
    updated_at: DateTime<Utc>,
) -> StoreResult<()> {
    let result = sqlx::query("UPDATE authenticators SET data = $1, updated_at = $2 WHERE id = $3")
        .bind(data)
        .bind(truncate_ms(updated_at))
        .bind(id)
        .execute(c)
        .await
        .map_err(sql_err)?;
    expect_row(result, || format!("authenticator {id}"))
}

async fn insert_verified_claim(c: &mut PgConnection, v: &VerifiedClaim) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO verified_claims (user_id, name, value, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, name, value) DO NOTHING",
    )
    .bind(&v.user_id)
    .bind(&v.name)
    .bind(&v.value)
    .bind(truncate_ms(v.created_at))
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

async fn insert_password_history(
    c: &mut PgConnection,
    p: &PasswordHistoryEntry,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO password_history (user_id, password_hash, created_at) VALUES ($1, $2, $3)",
    )
    .bind(&p.user_id)
    .bind(&p.password_hash)
    .bind(truncate_ms(p.created_at))
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

async fn insert_recovery_codes(c: &mut PgConnection, codes: &[RecoveryCode]) -> StoreResult<()> {
    for code in codes {
        sqlx::query(
            "INSERT INTO recovery_codes (id, user_id, code_hash, created_at, consumed_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&code.id)
        .bind(&code.user_id)
        .bind(&code.code_hash)
        .bind(truncate_ms(code.created_at))
        .bind(code.consumed_at.map(truncate_ms))
        .execute(&mut *c)
        .await
        .map_err(sql_err)?;
    }
    Ok(())
}

/// Only an unused code can be consumed: two logins racing with one code cannot both win.
async fn consume_recovery_code(
    c: &mut PgConnection,
    id: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let result = sqlx::query(
        "UPDATE recovery_codes SET consumed_at = $1 WHERE id = $2 AND consumed_at IS NULL",
    )
    .bind(truncate_ms(at))
    .bind(id)
    .execute(c)
    .await
    .map_err(sql_err)?;
    expect_row(result, || format!("unused recovery code {id}"))
}

async fn insert_session(c: &mut PgConnection, s: &Session) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, org_id, kind, token_hash, amr, created_at, \
         last_accessed_at, expires_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&s.id)
    .bind(&s.user_id)
    .bind(&s.org_id)
    .bind(s.kind.as_str())
    .bind(&s.token_hash)
    .bind(&s.amr)
    .bind(truncate_ms(s.created_at))
    .bind(truncate_ms(s.last_accessed_at))
    .bind(truncate_ms(s.expires_at))
    .bind(s.revoked_at.map(truncate_ms))
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

/// Live sessions only: an earlier revocation time is kept, expired ones are left alone.
async fn revoke_user_sessions(
    c: &mut PgConnection,
    user_id: &str,
    except: Option<&str>,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
         AND expires_at > $1 AND ($3 IS NULL OR id <> $3)",
    )
    .bind(truncate_ms(at))
    .bind(user_id)
    .bind(except)
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

/// Idempotent: revoking a revoked or unknown session is not an error (double logout).
async fn revoke_session(c: &mut PgConnection, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(truncate_ms(at))
        .bind(id)
        .execute(c)
        .await
        .map_err(sql_err)?;
    Ok(())
}

/// Never moves `last_accessed_at` backwards when concurrent requests touch a session;
/// touching a vanished session is not an error (it must not fail the whole change set).
async fn touch_session(c: &mut PgConnection, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query(
        "UPDATE sessions SET last_accessed_at = GREATEST(last_accessed_at, $1) WHERE id = $2",
    )
    .bind(truncate_ms(at))
    .bind(id)
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

async fn insert_audit_event(c: &mut PgConnection, e: &AuditEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, org_id, user_id, event_type, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&e.id)
    .bind(&e.org_id)
    .bind(&e.user_id)
    .bind(&e.event_type)
    .bind(&e.payload)
    .bind(truncate_ms(e.created_at))
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

#[async_trait]
impl Database for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(sql_err)?;
        Ok(())
    }

    async fn commit(&self, changes: ChangeSet) -> StoreResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(sql_err)?;
        for change in &changes {
            if let Err(e) = apply(&mut tx, change).await {
                // Roll back now rather than on drop: the write lock is released at once.
                tx.rollback().await.map_err(sql_err)?;
                return Err(e);
            }
        }
        tx.commit().await.map_err(sql_err)
    }

    async fn get_user(&self, user_id: &str) -> StoreResult<Option<User>> {
        let row = self
            .fetch_one("SELECT * FROM users WHERE id = $1", user_id)
            .await?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn list_users(&self, org_id: &str, limit: u32, offset: u32) -> StoreResult<Vec<User>> {
        let found = sqlx::query(
            "SELECT * FROM users WHERE org_id = $1 ORDER BY created_at, seq LIMIT $2 OFFSET $3",
        )
        .bind(org_id)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(sql_err)?;
        rows::all(&found, rows::user)
    }

    async fn find_identity(
        &self,
        org_id: &str,
        login_id_key: &str,
        unique_key: &str,
    ) -> StoreResult<Option<Identity>> {
        let row = sqlx::query(
            "SELECT * FROM identities WHERE org_id = $1 AND login_id_key = $2 AND unique_key = $3",
        )
        .bind(org_id)
        .bind(login_id_key)
        .bind(unique_key)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql_err)?;
        row.as_ref().map(rows::identity).transpose()
    }

    async fn list_identities(&self, user_id: &str) -> StoreResult<Vec<Identity>> {
        let found = self
            .fetch_all(
                "SELECT * FROM identities WHERE user_id = $1 ORDER BY created_at, seq",
                user_id,
            )
            .await?;
        rows::all(&found, rows::identity)
    }

    async fn list_authenticators(&self, user_id: &str) -> StoreResult<Vec<Authenticator>> {
        let found = self
            .fetch_all(
                "SELECT * FROM authenticators WHERE user_id = $1 ORDER BY created_at, seq",
                user_id,
            )
            .await?;
        rows::all(&found, rows::authenticator)
    }

    async fn list_verified_claims(&self, user_id: &str) -> StoreResult<Vec<VerifiedClaim>> {
        let found = self
            .fetch_all(
                "SELECT * FROM verified_claims WHERE user_id = $1 ORDER BY created_at, seq",
                user_id,
            )
            .await?;
        rows::all(&found, rows::verified_claim)
    }

    async fn list_password_history(
        &self,
        user_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<PasswordHistoryEntry>> {
        let found = sqlx::query(
            "SELECT * FROM password_history WHERE user_id = $1 \
             ORDER BY created_at DESC, seq DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(sql_err)?;
        rows::all(&found, rows::password_history)
    }

    async fn list_recovery_codes(&self, user_id: &str) -> StoreResult<Vec<RecoveryCode>> {
        let found = self
            .fetch_all(
                "SELECT * FROM recovery_codes WHERE user_id = $1 ORDER BY created_at, seq",
                user_id,
            )
            .await?;
        rows::all(&found, rows::recovery_code)
    }

    async fn get_session(&self, session_id: &str) -> StoreResult<Option<Session>> {
        let row = self
            .fetch_one("SELECT * FROM sessions WHERE id = $1", session_id)
            .await?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn find_session_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Session>> {
        let row = self
            .fetch_one("SELECT * FROM sessions WHERE token_hash = $1", token_hash)
            .await?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn list_user_sessions(&self, user_id: &str) -> StoreResult<Vec<Session>> {
        let found = self
            .fetch_all(
                "SELECT * FROM sessions WHERE user_id = $1 ORDER BY created_at, seq",
                user_id,
            )
            .await?;
        rows::all(&found, rows::session)
    }

    async fn create_organization(&self, org: Organization) -> StoreResult<()> {
        // A conflict on either the id or the name means "already exists".
        let result = sqlx::query(
            "INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&org.id)
        .bind(&org.name)
        .bind(truncate_ms(org.created_at))
        .execute(&self.pool)
        .await
        .map_err(sql_err)?;
        if result.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "organization {:?}",
                org.name
            )));
        }
        Ok(())
    }

    async fn get_organization(&self, org_id: &str) -> StoreResult<Option<Organization>> {
        let row = self
            .fetch_one("SELECT * FROM organizations WHERE id = $1", org_id)
            .await?;
        row.as_ref().map(rows::organization).transpose()
    }

    async fn find_organization_by_name(&self, name: &str) -> StoreResult<Option<Organization>> {
        let row = self
            .fetch_one("SELECT * FROM organizations WHERE name = $1", name)
            .await?;
        row.as_ref().map(rows::organization).transpose()
    }

    async fn list_organizations(&self) -> StoreResult<Vec<Organization>> {
        let found = sqlx::query("SELECT * FROM organizations ORDER BY created_at, seq")
            .fetch_all(&self.pool)
            .await
            .map_err(sql_err)?;
        rows::all(&found, rows::organization)
    }

    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, key_hash, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(&key.org_id)
        .bind(&key.key_hash)
        .bind(truncate_ms(key.created_at))
        .bind(key.expires_at.map(truncate_ms))
        .bind(key.revoked_at.map(truncate_ms))
        .execute(&self.pool)
        .await
        .map_err(sql_err)?;
        Ok(())
    }

    async fn get_api_key(&self, key_id: &str) -> StoreResult<Option<ApiKey>> {
        let row = self
            .fetch_one("SELECT * FROM api_keys WHERE id = $1", key_id)
            .await?;
        row.as_ref().map(rows::api_key).transpose()
    }

    async fn list_api_keys(&self, org_id: &str) -> StoreResult<Vec<ApiKey>> {
        let found = self
            .fetch_all(
                "SELECT * FROM api_keys WHERE org_id = $1 ORDER BY created_at, seq",
                org_id,
            )
            .await?;
        rows::all(&found, rows::api_key)
    }

    async fn update_api_key(&self, key: ApiKey) -> StoreResult<()> {
        let result =
            sqlx::query("UPDATE api_keys SET expires_at = $1, revoked_at = $2 WHERE id = $3")
                .bind(key.expires_at.map(truncate_ms))
                .bind(key.revoked_at.map(truncate_ms))
                .bind(&key.id)
                .execute(&self.pool)
                .await
                .map_err(sql_err)?;
        expect_row(result, || format!("API key {}", key.id))
    }

    async fn get_or_insert_server_secret(&self, name: &str, value: &str) -> StoreResult<String> {
        // Insert-or-keep, then read back: whoever inserted first wins for everyone.
        sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .bind(truncate_ms(Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(sql_err)?;
        sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(sql_err)
    }

    async fn list_audit_events(&self, user_id: &str) -> StoreResult<Vec<AuditEvent>> {
        let found = self
            .fetch_all(
                "SELECT * FROM audit_events WHERE user_id = $1 ORDER BY created_at, seq",
                user_id,
            )
            .await?;
        rows::all(&found, rows::audit_event)
    }
}

#[async_trait]
impl StateStore for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        Database::ping(self).await
    }

    async fn put(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<()> {
        let now = Utc::now();
        sqlx::query(
            "INSERT INTO ephemeral (key, value, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
             expires_at = excluded.expires_at",
        )
        .bind(key)
        .bind(value)
        .bind(truncate_ms(expiry(now, ttl)))
        .execute(&self.pool)
        .await
        .map_err(sql_err)?;
        self.maybe_sweep().await;
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<bool> {
        let now = Utc::now();
        // The conditional upsert replaces an expired row and leaves a live one alone.
        let result = sqlx::query(
            "INSERT INTO ephemeral (key, value, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
             expires_at = excluded.expires_at WHERE ephemeral.expires_at <= $4",
        )
        .bind(key)
        .bind(value)
        .bind(truncate_ms(expiry(now, ttl)))
        .bind(truncate_ms(now))
        .execute(&self.pool)
        .await
        .map_err(sql_err)?;
        self.maybe_sweep().await;
        Ok(result.rows_affected() == 1)
    }

    async fn get(&self, key: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT value FROM ephemeral WHERE key = $1 AND expires_at > $2")
            .bind(key)
            .bind(truncate_ms(Utc::now()))
            .fetch_optional(&self.pool)
            .await
            .map_err(sql_err)
    }

    async fn take(&self, key: &str) -> StoreResult<Option<String>> {
        // One statement: the row is gone for everyone once one caller got it. An expired
        // row is left for the sweep and reported absent.
        sqlx::query_scalar(
            "DELETE FROM ephemeral WHERE key = $1 AND expires_at > $2 RETURNING value",
        )
        .bind(key)
        .bind(truncate_ms(Utc::now()))
        .fetch_optional(&self.pool)
        .await
        .map_err(sql_err)
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM ephemeral WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(sql_err)?;
        Ok(())
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> StoreResult<i64> {
        let now = Utc::now();
        // An expired counter restarts from zero with a fresh ttl; a live one keeps its
        // expiry. The row lock taken by ON CONFLICT makes concurrent increments queue.
        sqlx::query_scalar(
            "INSERT INTO ephemeral (key, value, expires_at) VALUES ($1, $2::text, $3) \
             ON CONFLICT (key) DO UPDATE SET \
             value = CASE WHEN ephemeral.expires_at <= $4 THEN excluded.value \
                     ELSE (ephemeral.value::bigint + $2)::text END, \
             expires_at = CASE WHEN ephemeral.expires_at <= $4 THEN excluded.expires_at \
                          ELSE ephemeral.expires_at END \
             RETURNING value::bigint",
        )
        .bind(key)
        .bind(delta)
        .bind(truncate_ms(expiry(now, ttl)))
        .bind(truncate_ms(now))
        .fetch_one(&self.pool)
        .await
        .map_err(sql_err)
    }

    async fn take_token(
        &self,
        key: &str,
        period: Duration,
        burst: u32,
    ) -> StoreResult<RateDecision> {
        let gcra = Gcra::new(period, burst);
        let mut tx = self.pool.begin().await.map_err(sql_err)?;
        let stored = lock_bucket(&mut tx, key).await?;
        match gcra.take(stored, now_micros()) {
            GcraTake::Limited { retry_after } => {
                tx.rollback().await.map_err(sql_err)?;
                Ok(RateDecision::Limited { retry_after })
            }
            GcraTake::Allowed { new_tat } => {
                store_tat(&mut tx, key, new_tat).await?;
                tx.commit().await.map_err(sql_err)?;
                Ok(RateDecision::Allowed)
            }
        }
    }

    async fn return_token(&self, key: &str, period: Duration, burst: u32) -> StoreResult<()> {
        let interval = Gcra::new(period, burst).interval_micros();
        // One statement, so atomic: step the tat back by one interval, never below now
        // (a tat at or before now is already a full bucket).
        sqlx::query(
            "UPDATE rate_buckets SET tat = GREATEST(tat - $1, $2) WHERE key = $3 AND tat > $2",
        )
        .bind(interval)
        .bind(now_micros())
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(sql_err)?;
        Ok(())
    }
}

/// Read the bucket's tat under a row lock held until the transaction ends, so
/// concurrent takers of one bucket queue instead of both reading the same tat. The
/// placeholder row (tat 0 = full bucket) gives a missing bucket a row to lock.
async fn lock_bucket(c: &mut PgConnection, key: &str) -> StoreResult<Option<i64>> {
    sqlx::query("INSERT INTO rate_buckets (key, tat) VALUES ($1, 0) ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .execute(&mut *c)
        .await
        .map_err(sql_err)?;
    sqlx::query_scalar("SELECT tat FROM rate_buckets WHERE key = $1 FOR UPDATE")
        .bind(key)
        .fetch_optional(c)
        .await
        .map_err(sql_err)
}

async fn store_tat(c: &mut PgConnection, key: &str, tat: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO rate_buckets (key, tat) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
    )
    .bind(key)
    .bind(tat)
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}
