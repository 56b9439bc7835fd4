//! Storage for authflow: implementations of [`authflow_core::store::Database`] and
//! [`authflow_core::store::StateStore`].
//!
//! - [`SqliteStore`]: embedded default, both traits in one file;
//! - [`MemoryStateStore`]: the state store of the SQLite mode: in the server process,
//!   written behind to the SQLite file (one `authflow serve` per file);
//! - [`PgStore`]: PostgreSQL, both traits;
//! - [`RedisStateStore`]: short-lived state in Redis, shared by replicas.
//!
//! [`connect`] picks the backend from the URL, migrates, and pairs the database with
//! Redis when one is configured.
//!
//! Behaviour common to the SQL backends, beyond what the traits state:
//! - timestamps round-trip at millisecond precision (sub-millisecond parts are dropped);
//! - lists are in creation order (`created_at`, then insertion order);
//! - `SetUserDisabled`, `DeleteUser`, `UpdateAuthenticatorData` on a missing row and
//!   `ConsumeRecoveryCode` on a missing or already consumed code fail the change set
//!   with [`StoreError::NotFound`](authflow_core::store::StoreError::NotFound);
//!   `RevokeSession`, `RevokeUserSessions` and `TouchSession` are idempotent;
//! - `AddVerifiedClaim` of a claim the user already has is a no-op;
//! - `DeleteUser` removes the user's identities, authenticators, claims, password
//!   history, recovery codes and sessions; audit events are kept (the trail outlives
//!   the user);
//! - a `burst` of 0 in rate limiting is treated as 1.

use std::sync::Arc;

use authflow_core::store::{Database, StateStore};

mod common;
mod connect;
mod memory_state;
mod postgres;
mod redis;
mod rows;
mod sqlite;

pub use crate::connect::{CONNECT_TIMEOUT, ConnectError, redact_url};
pub use crate::memory_state::{MemoryStateStore, lock_path};
pub use crate::postgres::PgStore;
pub use crate::redis::{DEFAULT_KEY_PREFIX, RedisStateStore};
pub use crate::sqlite::{SqliteStore, SqliteTarget, parse_sqlite_url};

/// The two stores the server runs on.
#[derive(Clone)]
pub struct Stores {
    pub db: Arc<dyn Database>,
    pub state: Arc<dyn StateStore>,
}

/// Connect to `database_url` (`sqlite://...`, `sqlite::memory:`, `postgres://...`),
/// run its migrations, and connect the state store: Redis when `state_store` gives
/// `(redis_url, key_prefix)`; else with PostgreSQL the database itself, and with SQLite a
/// [`MemoryStateStore`] persisted to the file, which takes the file's serve lock (a
/// second server on the same file fails here with [`ConnectError::Locked`]).
pub async fn connect(
    database_url: &str,
    max_connections: u32,
    state_store: Option<(&str, &str)>,
) -> Result<Stores, ConnectError> {
    if database_url.starts_with("sqlite:")
        && let Some((url, prefix)) = state_store
    {
        let db = Arc::new(SqliteStore::connect(database_url, max_connections).await?);
        let state = Arc::new(RedisStateStore::connect(url, prefix).await?);
        return Ok(Stores { db, state });
    }
    if database_url.starts_with("sqlite:") {
        let target = parse_sqlite_url(database_url)
            .map_err(|e| ConnectError::invalid("database", database_url, e))?;
        let store = Arc::new(SqliteStore::connect(database_url, max_connections).await?);
        let state: Arc<dyn StateStore> = match target {
            SqliteTarget::File(path) => {
                Arc::new(MemoryStateStore::open(store.clone(), &path).await?)
            }
            SqliteTarget::Memory => Arc::new(MemoryStateStore::in_memory()),
        };
        return Ok(Stores { db: store, state });
    }
    let (db, sql_state): (Arc<dyn Database>, Arc<dyn StateStore>) =
        if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            let store = Arc::new(PgStore::connect(database_url, max_connections).await?);
            (store.clone(), store)
        } else {
            return Err(ConnectError::UnsupportedUrl {
                url: redact_url(database_url),
            });
        };
    let state = match state_store {
        Some((url, prefix)) => Arc::new(RedisStateStore::connect(url, prefix).await?),
        None => sql_state,
    };
    Ok(Stores { db, state })
}

/// Connect to the durable records of `database_url` only, migrated (for commands such as
/// `authflow org` that run next to a server and need no state store, hence no lock).
pub async fn connect_database(
    database_url: &str,
    max_connections: u32,
) -> Result<Arc<dyn Database>, ConnectError> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqliteStore::connect(database_url, max_connections).await?,
        ))
    } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Arc::new(
            PgStore::connect(database_url, max_connections).await?,
        ))
    } else {
        Err(ConnectError::UnsupportedUrl {
            url: redact_url(database_url),
        })
    }
}
