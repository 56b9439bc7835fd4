//! SQLite backend: the embedded default. One file holds durable records and, when no
//! Redis is configured, the short-lived state.
//!
//! Timestamps are integer unix milliseconds; JSON is text. Write transactions start with
//! `BEGIN IMMEDIATE`: a deferred transaction that reads and then writes can fail with
//! SQLITE_BUSY when another writer commits in between (the busy timeout does not help
//! there), while an immediate one simply queues on the write lock.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use authflow_core::model::*;
use authflow_core::store::{
    Change, ChangeSet, Database, RateDecision, StateStore, StoreError, StoreResult,
};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteRow, SqliteSynchronous,
};

use crate::common::{
    Gcra, GcraTake, authenticator_kind_str, corrupt, expiry, from_millis, now_micros, sql_err,
    to_millis,
};
use crate::connect::{CONNECT_TIMEOUT, ConnectError, sqlx_reason};
use crate::rows::{self, RowExt};

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pool acquisition: generous, since SQLite writers queue on one lock.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Expired state is swept on one put out of this many (cheap, bounded by index).
const SWEEP_EVERY: u64 = 64;
/// Rows removed per sweep, so a sweep never holds the write lock for long.
const SWEEP_BATCH: i64 = 500;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite implementation of [`Database`] and [`StateStore`].
pub struct SqliteStore {
    pool: SqlitePool,
    puts: AtomicU64,
    /// One writer at a time, queued in-process: SQLite allows a single writer anyway, and
    /// waiting here avoids its busy-handler sleeps (milliseconds each) under contention.
    writes: tokio::sync::Mutex<()>,
}

/// Where a `sqlite:` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteTarget {
    /// `sqlite::memory:`: private to this process, gone when the store is dropped.
    Memory,
    File(PathBuf),
}

/// Parse `sqlite://./relative.db`, `sqlite:///abs/path.db`, `sqlite:relative.db` and
/// `sqlite::memory:`. Done by hand because sqlx reads `sqlite://./x.db` differently.
/// Query parameters are refused rather than silently ignored.
pub fn parse_sqlite_url(url: &str) -> Result<SqliteTarget, String> {
    let rest = url
        .strip_prefix("sqlite:")
        .ok_or_else(|| "not a sqlite: URL".to_string())?;
    if rest == ":memory:" || rest == "//:memory:" {
        return Ok(SqliteTarget::Memory);
    }
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.contains('?') {
        return Err("query parameters are not supported".to_string());
    }
    if path.is_empty() {
        return Err("missing file path".to_string());
    }
    Ok(SqliteTarget::File(PathBuf::from(path)))
}

fn connect_options(target: &SqliteTarget) -> Result<SqliteConnectOptions, sqlx::Error> {
    let options = match target {
        // sqlx gives each `:memory:` URL a unique shared-cache name, so all connections
        // of this pool see one database.
        SqliteTarget::Memory => SqliteConnectOptions::from_str("sqlite::memory:")?,
        SqliteTarget::File(path) => SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal),
    };
    Ok(options
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true))
}

fn pool_options(target: &SqliteTarget, max_connections: u32) -> SqlitePoolOptions {
    // An in-process SQLite connection cannot go stale: a ping before each use would only
    // add a round trip to the connection's worker thread.
    let options = SqlitePoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false);
    match target {
        // Shared-cache connections lock whole tables without honouring the busy
        // timeout, and the database vanishes with its last connection: keep exactly one.
        SqliteTarget::Memory => options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None),
        SqliteTarget::File(_) => options.max_connections(max_connections.max(1)),
    }
}

impl SqliteStore {
    /// Open (creating the file if missing) and migrate.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, ConnectError> {
        let target =
            parse_sqlite_url(url).map_err(|e| ConnectError::invalid("database", url, e))?;
        let options = connect_options(&target).map_err(|e| ConnectError::database(url, e))?;
        let pool = pool_options(&target, max_connections).connect_with(options);
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

    /// Wrap an existing pool. The caller runs [`SqliteStore::migrate`].
    pub fn from_pool(pool: SqlitePool) -> Self {
        SqliteStore {
            pool,
            puts: AtomicU64::new(0),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Delete up to a batch of expired state rows; returns how many went. Called
    /// opportunistically by `put`; a caller may also run it periodically.
    pub async fn sweep_expired(&self) -> StoreResult<u64> {
        let _write = self.writes.lock().await;
        let now = Utc::now();
        let ephemeral = sqlx::query(
            "DELETE FROM ephemeral WHERE key IN \
             (SELECT key FROM ephemeral WHERE expires_at <= $1 LIMIT $2)",
        )
        .bind(to_millis(now))
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

    async fn fetch_all(&self, sql: &'static str, id: &str) -> StoreResult<Vec<SqliteRow>> {
        sqlx::query(sql)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(sql_err)
    }

    async fn fetch_one(&self, sql: &'static str, id: &str) -> StoreResult<Option<SqliteRow>> {
        sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(sql_err)
    }
}

impl RowExt for SqliteRow {
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
        from_millis(self.try_get(col).map_err(sql_err)?)
    }

    fn opt_time(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let ms: Option<i64> = self.try_get(col).map_err(sql_err)?;
        ms.map(from_millis).transpose()
    }

    fn json(&self, col: &str) -> StoreResult<serde_json::Value> {
        let text = self.text(col)?;
        serde_json::from_str(&text).map_err(|_| corrupt("JSON in column", col))
    }

    fn strings(&self, col: &str) -> StoreResult<Vec<String>> {
        let text = self.text(col)?;
        serde_json::from_str(&text).map_err(|_| corrupt("string list in column", col))
    }
}

/// An UPDATE/DELETE that must hit a row: zero rows is [`StoreError::NotFound`].
fn expect_row(result: SqliteQueryResult, what: impl FnOnce() -> String) -> StoreResult<()> {
    if result.rows_affected() == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}

/// Apply one change inside the commit transaction.
async fn apply(c: &mut SqliteConnection, change: &Change) -> StoreResult<()> {
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

async fn insert_user(c: &mut SqliteConnection, u: &User) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (id, org_id, created_at, disabled, disabled_reason, name) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&u.id)
    .bind(&u.org_id)
    .bind(to_millis(u.created_at))
    .bind(u.disabled)
    .bind(&u.disabled_reason)
    .bind(&u.name)
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

async fn set_user_disabled(
    c: &mut SqliteConnection,
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
async fn delete_user(c: &mut SqliteConnection, user_id: &str) -> StoreResult<()> {
    let result = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(user_id)
        .execute(c)
        .await
        .map_err(sql_err)?;
    expect_row(result, || format!("user {user_id}"))
}

/// `ON CONFLICT DO NOTHING` on the login-ID constraint turns a taken login ID into "no
/// row inserted", which is unambiguous (unlike parsing a constraint error message).
async fn insert_identity(c: &mut SqliteConnection, i: &Identity) -> StoreResult<()> {
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
    .bind(to_millis(i.created_at))
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

async fn insert_authenticator(c: &mut SqliteConnection, a: &Authenticator) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO authenticators (id, user_id, kind, authenticator_type, data, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&a.id)
    .bind(&a.user_id)
    .bind(authenticator_kind_str(a.kind))
    .bind(a.authenticator_type.as_str())
    .bind(a.data.to_string())
    .bind(to_millis(a.created_at))
    .bind(to_millis(a.updated_at))
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

async fn update_authenticator_data(
    c: &mut SqliteConnection,
    id: &str,
    data: &serde_json::Value,
    updated_at: DateTime<Utc>,
) -> StoreResult<()> {
    let result = sqlx::query("UPDATE authenticators SET data = $1, updated_at = $2 WHERE id = $3")
        .bind(data.to_string())
        .bind(to_millis(updated_at))
        .bind(id)
        .execute(c)
        .await
        .map_err(sql_err)?;
    expect_row(result, || format!("authenticator {id}"))
}

async fn insert_verified_claim(c: &mut SqliteConnection, v: &VerifiedClaim) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO verified_claims (user_id, name, value, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, name, value) DO NOTHING",
    )
    .bind(&v.user_id)
    .bind(&v.name)
    .bind(&v.value)
    .bind(to_millis(v.created_at))
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

async fn insert_password_history(
    c: &mut SqliteConnection,
    p: &PasswordHistoryEntry,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO password_history (user_id, password_hash, created_at) VALUES ($1, $2, $3)",
    )
    .bind(&p.user_id)
    .bind(&p.password_hash)
    .bind(to_millis(p.created_at))
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

async fn insert_recovery_codes(
    c: &mut SqliteConnection,
    codes: &[RecoveryCode],
) -> StoreResult<()> {
    for code in codes {
        sqlx::query(
            "INSERT INTO recovery_codes (id, user_id, code_hash, created_at, consumed_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&code.id)
        .bind(&code.user_id)
        .bind(&code.code_hash)
        .bind(to_millis(code.created_at))
        .bind(code.consumed_at.map(to_millis))
        .execute(&mut *c)
        .await
        .map_err(sql_err)?;
    }
    Ok(())
}

/// Only an unused code can be consumed: two logins racing with one code cannot both win.
async fn consume_recovery_code(
    c: &mut SqliteConnection,
    id: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let result = sqlx::query(
        "UPDATE recovery_codes SET consumed_at = $1 WHERE id = $2 AND consumed_at IS NULL",
    )
    .bind(to_millis(at))
    .bind(id)
    .execute(c)
    .await
    .map_err(sql_err)?;
    expect_row(result, || format!("unused recovery code {id}"))
}

async fn insert_session(c: &mut SqliteConnection, s: &Session) -> StoreResult<()> {
    let amr = serde_json::to_string(&s.amr).map_err(|e| StoreError::Backend(e.to_string()))?;
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
    .bind(amr)
    .bind(to_millis(s.created_at))
    .bind(to_millis(s.last_accessed_at))
    .bind(to_millis(s.expires_at))
    .bind(s.revoked_at.map(to_millis))
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

/// Live sessions only: an earlier revocation time is kept, expired ones are left alone.
async fn revoke_user_sessions(
    c: &mut SqliteConnection,
    user_id: &str,
    except: Option<&str>,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
         AND expires_at > $1 AND ($3 IS NULL OR id <> $3)",
    )
    .bind(to_millis(at))
    .bind(user_id)
    .bind(except)
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

/// Idempotent: revoking a revoked or unknown session is not an error (double logout).
async fn revoke_session(c: &mut SqliteConnection, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(to_millis(at))
        .bind(id)
        .execute(c)
        .await
        .map_err(sql_err)?;
    Ok(())
}

/// Never moves `last_accessed_at` backwards when concurrent requests touch a session;
/// touching a vanished session is not an error (it must not fail the whole change set).
async fn touch_session(c: &mut SqliteConnection, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET last_accessed_at = MAX(last_accessed_at, $1) WHERE id = $2")
        .bind(to_millis(at))
        .bind(id)
        .execute(c)
        .await
        .map_err(sql_err)?;
    Ok(())
}

async fn insert_audit_event(c: &mut SqliteConnection, e: &AuditEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, org_id, user_id, event_type, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&e.id)
    .bind(&e.org_id)
    .bind(&e.user_id)
    .bind(&e.event_type)
    .bind(e.payload.to_string())
    .bind(to_millis(e.created_at))
    .execute(c)
    .await
    .map_err(sql_err)?;
    Ok(())
}

#[async_trait]
impl Database for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(sql_err)?;
        Ok(())
    }

    async fn commit(&self, changes: ChangeSet) -> StoreResult<()> {
        let _write = self.writes.lock().await;
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql_err)?;
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
            "SELECT * FROM users WHERE org_id = $1 ORDER BY created_at, rowid LIMIT $2 OFFSET $3",
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
                "SELECT * FROM identities WHERE user_id = $1 ORDER BY created_at, rowid",
                user_id,
            )
            .await?;
        rows::all(&found, rows::identity)
    }

    async fn list_authenticators(&self, user_id: &str) -> StoreResult<Vec<Authenticator>> {
        let found = self
            .fetch_all(
                "SELECT * FROM authenticators WHERE user_id = $1 ORDER BY created_at, rowid",
                user_id,
            )
            .await?;
        rows::all(&found, rows::authenticator)
    }

    async fn list_verified_claims(&self, user_id: &str) -> StoreResult<Vec<VerifiedClaim>> {
        let found = self
            .fetch_all(
                "SELECT * FROM verified_claims WHERE user_id = $1 ORDER BY created_at, rowid",
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
             ORDER BY created_at DESC, rowid DESC LIMIT $2",
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
                "SELECT * FROM recovery_codes WHERE user_id = $1 ORDER BY created_at, rowid",
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
                "SELECT * FROM sessions WHERE user_id = $1 ORDER BY created_at, rowid",
                user_id,
            )
            .await?;
        rows::all(&found, rows::session)
    }

    async fn create_organization(&self, org: Organization) -> StoreResult<()> {
        let _write = self.writes.lock().await;
        // A conflict on either the id or the name means "already exists".
        let result = sqlx::query(
            "INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&org.id)
        .bind(&org.name)
        .bind(to_millis(org.created_at))
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
        let found = sqlx::query("SELECT * FROM organizations ORDER BY created_at, rowid")
            .fetch_all(&self.pool)
            .await
            .map_err(sql_err)?;
        rows::all(&found, rows::organization)
    }

    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()> {
        let _write = self.writes.lock().await;
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, key_hash, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(&key.org_id)
        .bind(&key.key_hash)
        .bind(to_millis(key.created_at))
        .bind(key.expires_at.map(to_millis))
        .bind(key.revoked_at.map(to_millis))
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
                "SELECT * FROM api_keys WHERE org_id = $1 ORDER BY created_at, rowid",
                org_id,
            )
            .await?;
        rows::all(&found, rows::api_key)
    }

    async fn update_api_key(&self, key: ApiKey) -> StoreResult<()> {
        let _write = self.writes.lock().await;
        let result =
            sqlx::query("UPDATE api_keys SET expires_at = $1, revoked_at = $2 WHERE id = $3")
                .bind(key.expires_at.map(to_millis))
                .bind(key.revoked_at.map(to_millis))
                .bind(&key.id)
                .execute(&self.pool)
                .await
                .map_err(sql_err)?;
        expect_row(result, || format!("API key {}", key.id))
    }

    async fn get_or_insert_server_secret(&self, name: &str, value: &str) -> StoreResult<String> {
        let _write = self.writes.lock().await;
        // Insert-or-keep, then read back: whoever inserted first wins for everyone.
        sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .bind(to_millis(Utc::now()))
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
                "SELECT * FROM audit_events WHERE user_id = $1 ORDER BY created_at, rowid",
                user_id,
            )
            .await?;
        rows::all(&found, rows::audit_event)
    }
}

/// One write of [`crate::MemoryStateStore`]'s write-behind to the `ephemeral` table: the
/// last write of a key in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StateWrite {
    Upsert { value: String, expires_at_ms: i64 },
    Delete,
}

/// One `INSERT … ON CONFLICT DO UPDATE` of `(key, value, expires_at)` rows.
fn upsert_state_rows(rows: &[(&str, &str, i64)]) -> sqlx::QueryBuilder<sqlx::Sqlite> {
    let mut insert =
        sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO ephemeral (key, value, expires_at) ");
    insert.push_values(rows, |mut row, (key, value, expires_at)| {
        row.push_bind(*key).push_bind(*value).push_bind(*expires_at);
    });
    insert.push(
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
         expires_at = excluded.expires_at",
    );
    insert
}

/// Rows per multi-row statement of [`SqliteStore::write_state_batch`] (3 variables each,
/// well under SQLite's limit of 32766).
const STATE_ROWS_PER_STATEMENT: usize = 500;

impl SqliteStore {
    /// Every live row of the `ephemeral` table: `(key, value, expires_at in ms)`.
    pub(crate) async fn load_live_state(&self) -> StoreResult<Vec<(String, String, i64)>> {
        sqlx::query_as("SELECT key, value, expires_at FROM ephemeral WHERE expires_at > $1")
            .bind(to_millis(Utc::now()))
            .fetch_all(&self.pool)
            .await
            .map_err(sql_err)
    }

    /// Apply a batch of state writes (at most one per key) atomically: one statement per few
    /// hundred rows (each statement is a hand-off to the SQLite thread), in a transaction
    /// only when it takes more than one.
    pub(crate) async fn write_state_batch(
        &self,
        writes: &[(String, StateWrite)],
    ) -> StoreResult<()> {
        // A delete is written as an expired row (a tombstone): every read and the restart
        // load skip expired rows and the sweep removes them, so a batch of additions and
        // removals is one statement, which SQLite applies atomically without a
        // BEGIN/COMMIT round trip each.
        let rows: Vec<(&str, &str, i64)> = writes
            .iter()
            .map(|(key, write)| match write {
                StateWrite::Upsert {
                    value,
                    expires_at_ms,
                } => (key.as_str(), value.as_str(), *expires_at_ms),
                StateWrite::Delete => (key.as_str(), "", 0),
            })
            .collect();
        let _write = self.writes.lock().await;
        if rows.len() <= STATE_ROWS_PER_STATEMENT {
            let mut upsert = upsert_state_rows(&rows);
            upsert.build().execute(&self.pool).await.map_err(sql_err)?;
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql_err)?;
        for chunk in rows.chunks(STATE_ROWS_PER_STATEMENT) {
            let mut upsert = upsert_state_rows(chunk);
            upsert.build().execute(&mut *tx).await.map_err(sql_err)?;
        }
        tx.commit().await.map_err(sql_err)
    }

    /// Delete expired `ephemeral` rows in batches (each a short write transaction), until
    /// none is left or a bound is reached.
    pub(crate) async fn sweep_expired_state(&self) -> StoreResult<u64> {
        let mut removed = 0;
        for _ in 0..1000 {
            let _write = self.writes.lock().await;
            let result = sqlx::query(
                "DELETE FROM ephemeral WHERE key IN \
                 (SELECT key FROM ephemeral WHERE expires_at <= $1 LIMIT $2)",
            )
            .bind(to_millis(Utc::now()))
            .bind(SWEEP_BATCH)
            .execute(&self.pool)
            .await
            .map_err(sql_err)?;
            removed += result.rows_affected();
            if result.rows_affected() < SWEEP_BATCH as u64 {
                break;
            }
        }
        Ok(removed)
    }
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        Database::ping(self).await
    }

    async fn put(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<()> {
        let _write = self.writes.lock().await;
        let now = Utc::now();
        sqlx::query(
            "INSERT INTO ephemeral (key, value, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
             expires_at = excluded.expires_at",
        )
        .bind(key)
        .bind(value)
        .bind(to_millis(expiry(now, ttl)))
        .execute(&self.pool)
        .await
        .map_err(sql_err)?;
        drop(_write);
        self.maybe_sweep().await;
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<bool> {
        let _write = self.writes.lock().await;
        let now = Utc::now();
        // The conditional upsert replaces an expired row and leaves a live one alone.
        let result = sqlx::query(
            "INSERT INTO ephemeral (key, value, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
             expires_at = excluded.expires_at WHERE ephemeral.expires_at <= $4",
        )
        .bind(key)
        .bind(value)
        .bind(to_millis(expiry(now, ttl)))
        .bind(to_millis(now))
        .execute(&self.pool)
        .await
        .map_err(sql_err)?;
        drop(_write);
        self.maybe_sweep().await;
        Ok(result.rows_affected() == 1)
    }

    async fn get(&self, key: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT value FROM ephemeral WHERE key = $1 AND expires_at > $2")
            .bind(key)
            .bind(to_millis(Utc::now()))
            .fetch_optional(&self.pool)
            .await
            .map_err(sql_err)
    }

    async fn take(&self, key: &str) -> StoreResult<Option<String>> {
        let _write = self.writes.lock().await;
        // One statement: the row is gone for everyone once one caller got it. An expired
        // row is left for the sweep and reported absent.
        sqlx::query_scalar(
            "DELETE FROM ephemeral WHERE key = $1 AND expires_at > $2 RETURNING value",
        )
        .bind(key)
        .bind(to_millis(Utc::now()))
        .fetch_optional(&self.pool)
        .await
        .map_err(sql_err)
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let _write = self.writes.lock().await;
        sqlx::query("DELETE FROM ephemeral WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(sql_err)?;
        Ok(())
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> StoreResult<i64> {
        let _write = self.writes.lock().await;
        let now = Utc::now();
        // An expired counter restarts from zero with a fresh ttl; a live one keeps its
        // expiry. Unqualified columns in DO UPDATE are the existing row's.
        sqlx::query_scalar(
            "INSERT INTO ephemeral (key, value, expires_at) VALUES ($1, CAST($2 AS TEXT), $3) \
             ON CONFLICT (key) DO UPDATE SET \
             value = CASE WHEN expires_at <= $4 THEN excluded.value \
                     ELSE CAST(CAST(value AS INTEGER) + $2 AS TEXT) END, \
             expires_at = CASE WHEN expires_at <= $4 THEN excluded.expires_at \
                          ELSE expires_at END \
             RETURNING CAST(value AS INTEGER)",
        )
        .bind(key)
        .bind(delta)
        .bind(to_millis(expiry(now, ttl)))
        .bind(to_millis(now))
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
        let now = now_micros();
        let _write = self.writes.lock().await;
        // One statement, so one round trip and atomic: the upsert only happens when a
        // token is available (the GCRA test of `Gcra::take`); no row back = limited.
        let taken: Option<i64> = sqlx::query_scalar(
            "INSERT INTO rate_buckets (key, tat) VALUES ($1, $2 + $3) \
             ON CONFLICT (key) DO UPDATE SET tat = MAX(rate_buckets.tat, $2) + $3 \
             WHERE MAX(rate_buckets.tat, $2) - $2 <= $4 - $3 \
             RETURNING tat",
        )
        .bind(key)
        .bind(now)
        .bind(gcra.interval_micros())
        .bind(gcra.period_micros())
        .fetch_optional(&self.pool)
        .await
        .map_err(sql_err)?;
        if taken.is_some() {
            return Ok(RateDecision::Allowed);
        }
        let stored: Option<i64> = sqlx::query_scalar("SELECT tat FROM rate_buckets WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(sql_err)?;
        Ok(match gcra.take(stored, now) {
            GcraTake::Limited { retry_after } => RateDecision::Limited { retry_after },
            // The bucket refilled between the two statements: still report the refusal
            // the upsert decided, with no wait.
            GcraTake::Allowed { .. } => RateDecision::Limited {
                retry_after: Duration::ZERO,
            },
        })
    }

    async fn return_token(&self, key: &str, period: Duration, burst: u32) -> StoreResult<()> {
        let _write = self.writes.lock().await;
        let interval = Gcra::new(period, burst).interval_micros();
        // One statement, so atomic: step the tat back by one interval, never below now
        // (a tat at or before now is already a full bucket).
        sqlx::query("UPDATE rate_buckets SET tat = MAX(tat - $1, $2) WHERE key = $3 AND tat > $2")
            .bind(interval)
            .bind(now_micros())
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(sql_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_url_forms() {
        let file = |p: &str| Ok(SqliteTarget::File(PathBuf::from(p)));
        assert_eq!(
            parse_sqlite_url("sqlite://./authflow.db"),
            file("./authflow.db")
        );
        assert_eq!(
            parse_sqlite_url("sqlite:///abs/path.db"),
            file("/abs/path.db")
        );
        assert_eq!(parse_sqlite_url("sqlite:data/a.db"), file("data/a.db"));
        assert_eq!(
            parse_sqlite_url("sqlite::memory:"),
            Ok(SqliteTarget::Memory)
        );
        assert_eq!(
            parse_sqlite_url("sqlite://:memory:"),
            Ok(SqliteTarget::Memory)
        );
    }

    #[test]
    fn refuses_what_it_would_misread() {
        assert!(parse_sqlite_url("sqlite://").is_err());
        assert!(parse_sqlite_url("sqlite://x.db?mode=ro").is_err());
        assert!(parse_sqlite_url("postgres://db/x").is_err());
    }
}
