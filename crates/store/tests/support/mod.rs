//! Fixtures (one fresh store per test and backend), model builders and the macros
//! that instantiate a generic test once per backend.

// Each test binary uses a different subset of the helpers and macros.
#![allow(dead_code, unused_macros)]

use std::str::FromStr;
use std::time::Duration;

use authflow_core::model::*;
use authflow_core::store::{ChangeSet, Database};
use authflow_store::{PgStore, RedisStateStore, SqliteStore};
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::{Connection, Executor, PgConnection};

pub const POSTGRES_ENV: &str = "AUTHFLOW_TEST_POSTGRES_URL";
pub const REDIS_ENV: &str = "AUTHFLOW_TEST_REDIS_URL";

/// Instantiate `async fn name(&dyn Database)` tests for every SQL backend.
macro_rules! database_tests {
    ($($name:ident),* $(,)?) => {
        mod database { $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let fx = $crate::support::SqliteFixture::new().await;
                    $crate::$name(&fx.store).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(fx) = $crate::support::PgFixture::new().await else { return };
                    $crate::$name(&fx.store).await;
                }
            }
        )* }
    };
}

/// Instantiate `async fn name(&dyn StateStore)` tests for every state backend: both
/// SQL stores (state kept in the database) and Redis.
macro_rules! state_tests {
    ($($name:ident),* $(,)?) => {
        mod state { $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let fx = $crate::support::SqliteFixture::new().await;
                    $crate::$name(&fx.store).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(fx) = $crate::support::PgFixture::new().await else { return };
                    $crate::$name(&fx.store).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() {
                    let Some(store) = $crate::support::redis_store().await else { return };
                    $crate::$name(&store).await;
                }
            }
        )* }
    };
}

// ---- fixtures --------------------------------------------------------------------

/// Pool size for test stores: enough for the concurrency tests to overlap for real.
const MAX_CONNECTIONS: u32 = 8;

pub struct SqliteFixture {
    pub store: SqliteStore,
    _dir: tempfile::TempDir,
}

impl SqliteFixture {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = SqliteStore::connect(&url, MAX_CONNECTIONS).await.unwrap();
        SqliteFixture { store, _dir: dir }
    }
}

/// A PostgreSQL store on a database of its own, dropped with the fixture (also when
/// the test panics).
pub struct PgFixture {
    pub store: PgStore,
    database: TempPgDatabase,
}

impl PgFixture {
    pub async fn new() -> Option<Self> {
        let Some(admin_url) = env_url(POSTGRES_ENV) else {
            eprintln!("skipped: set {POSTGRES_ENV} to run the PostgreSQL variant");
            return None;
        };
        let database = TempPgDatabase::create(&admin_url).await;
        let store = PgStore::connect(&database.url, MAX_CONNECTIONS)
            .await
            .unwrap();
        Some(PgFixture { store, database })
    }

    pub fn url(&self) -> &str {
        &self.database.url
    }
}

pub struct TempPgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl TempPgDatabase {
    pub async fn create(admin_url: &str) -> Self {
        let name = format!("authflow_t_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(admin_url).await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let _ = admin.close().await;
        let mut url = url::Url::from_str(admin_url).unwrap();
        url.set_path(&format!("/{name}"));
        TempPgDatabase {
            admin_url: admin_url.to_string(),
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for TempPgDatabase {
    /// Drop cannot await, and the test's runtime may be unwinding: use a thread with
    /// its own runtime. `WITH (FORCE)` ends the store's still-open pool connections.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin.execute(sqlx::AssertSqlSafe(sql)).await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// A Redis state store with a random key prefix, so parallel tests never share keys.
pub async fn redis_store() -> Option<RedisStateStore> {
    let Some(url) = env_url(REDIS_ENV) else {
        eprintln!("skipped: set {REDIS_ENV} to run the Redis variant");
        return None;
    };
    let prefix = format!("authflow_t_{:016x}:", rand::random::<u64>());
    Some(RedisStateStore::connect(&url, &prefix).await.unwrap())
}

// ---- builders --------------------------------------------------------------------

pub fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Now, at the millisecond precision every backend keeps.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// A fixed instant plus `offset_ms`, for ordering tests that must not depend on the
/// clock advancing between statements.
pub fn at(offset_ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_750_000_000_000 + offset_ms).unwrap()
}

pub async fn commit_ok(db: &dyn Database, changes: ChangeSet) {
    if let Err(e) = db.commit(changes).await {
        panic!("commit failed: {e:?}");
    }
}

pub fn user(org_id: &str) -> User {
    User {
        id: new_id(),
        org_id: org_id.to_string(),
        created_at: now(),
        disabled: false,
        disabled_reason: None,
        name: Some("Test User".into()),
    }
}

pub fn identity(user: &User, key: &str, value: &str) -> Identity {
    let login_id_type = match key {
        "email" => LoginIdType::Email,
        "phone" => LoginIdType::Phone,
        _ => LoginIdType::Username,
    };
    Identity {
        id: new_id(),
        user_id: user.id.clone(),
        org_id: user.org_id.clone(),
        login_id_key: key.to_string(),
        login_id_type,
        original: value.to_string(),
        normalized: value.to_lowercase(),
        unique_key: value.to_lowercase(),
        created_at: now(),
    }
}

pub fn authenticator(
    user: &User,
    authenticator_type: AuthenticatorType,
    data: serde_json::Value,
) -> Authenticator {
    let kind = match authenticator_type {
        AuthenticatorType::Password | AuthenticatorType::Passkey => AuthenticatorKind::Primary,
        _ => AuthenticatorKind::Secondary,
    };
    Authenticator {
        id: new_id(),
        user_id: user.id.clone(),
        kind,
        authenticator_type,
        data,
        created_at: now(),
        updated_at: now(),
    }
}

pub fn history(user: &User, hash: &str, offset_ms: i64) -> PasswordHistoryEntry {
    PasswordHistoryEntry {
        user_id: user.id.clone(),
        password_hash: hash.to_string(),
        created_at: at(offset_ms),
    }
}

pub fn recovery_code(user: &User) -> RecoveryCode {
    RecoveryCode {
        id: new_id(),
        user_id: user.id.clone(),
        code_hash: new_id(),
        created_at: now(),
        consumed_at: None,
    }
}

pub fn session(user: &User, token_hash: &str) -> Session {
    Session {
        id: new_id(),
        user_id: user.id.clone(),
        org_id: user.org_id.clone(),
        kind: SessionKind::Idp,
        token_hash: token_hash.to_string(),
        amr: vec!["pwd".into(), "otp".into()],
        created_at: at(0),
        last_accessed_at: at(0),
        expires_at: now() + Duration::from_secs(3_600),
        revoked_at: None,
    }
}

pub fn org(name: &str) -> Organization {
    Organization {
        id: new_id(),
        name: name.to_string(),
        created_at: now(),
    }
}

pub fn api_key(org_id: &str, offset_ms: i64) -> ApiKey {
    ApiKey {
        id: new_id(),
        org_id: org_id.to_string(),
        key_hash: new_id(),
        created_at: at(offset_ms),
        expires_at: None,
        revoked_at: None,
    }
}

pub fn audit(user: &User, event_type: &str) -> AuditEvent {
    AuditEvent {
        id: new_id(),
        org_id: user.org_id.clone(),
        user_id: Some(user.id.clone()),
        event_type: event_type.to_string(),
        payload: serde_json::json!({"ip": "192.0.2.1", "n": 1}),
        created_at: now(),
    }
}

/// A backend URL from the environment; unset or empty means "not available" (as in
/// `scripts/test`, where empty values select SQLite only).
pub fn env_url(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
