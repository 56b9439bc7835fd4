//! Connecting, migrating and backend-specific behaviour (the shared behaviour of the
//! stores is in `conformance.rs`).

mod support;

use std::time::{Duration, Instant};

use authflow_core::model::DEFAULT_ORG_ID;
use authflow_core::store::{Change, StateStore};
use authflow_store::{ConnectError, RedisStateStore, SqliteStore, connect};

use support::*;

/// Startup must fail fast; the documented budget is about 5 s per attempt.
const FAIL_FAST: Duration = Duration::from_secs(8);

#[tokio::test]
async fn sqlite_file_is_created_migrated_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested-name.db");
    let url = format!("sqlite://{}", path.display());
    let u = user(DEFAULT_ORG_ID);
    {
        let stores = connect(&url, 4, None).await.unwrap();
        commit_ok(stores.db.as_ref(), vec![Change::CreateUser(u.clone())]).await;
        stores
            .state
            .put("k", "v", Duration::from_secs(60))
            .await
            .unwrap();
    }
    assert!(path.exists());
    // Reopening runs the (already applied) migrations again and keeps the data.
    let stores = connect(&url, 4, None).await.unwrap();
    assert_eq!(stores.db.get_user(&u.id).await.unwrap(), Some(u));
    assert_eq!(stores.state.get("k").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn sqlite_memory_works_for_both_traits() {
    let stores = connect("sqlite::memory:", 4, None).await.unwrap();
    let u = user(DEFAULT_ORG_ID);
    commit_ok(stores.db.as_ref(), vec![Change::CreateUser(u.clone())]).await;
    assert_eq!(stores.db.get_user(&u.id).await.unwrap(), Some(u));
    assert_eq!(
        stores
            .state
            .incr("n", 2, Duration::from_secs(9))
            .await
            .unwrap(),
        2
    );
    // Two memory stores are two databases.
    let other = connect("sqlite::memory:", 4, None).await.unwrap();
    assert_eq!(other.state.get("n").await.unwrap(), None);
}

#[tokio::test]
async fn unsupported_url_is_refused_without_password() {
    let err = connect("mysql://app:hunter2@db/x", 4, None)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ConnectError::UnsupportedUrl { .. }));
    let message = err.to_string();
    assert!(message.contains("mysql://app:***@db/x"), "{message}");
    assert!(!message.contains("hunter2"));
}

#[tokio::test]
async fn refused_postgres_fails_fast_with_one_redacted_line() {
    let started = Instant::now();
    let err = connect("postgres://app:hunter2@127.0.0.1:1/x", 4, None)
        .await
        .err()
        .unwrap();
    assert!(started.elapsed() < FAIL_FAST);
    let message = err.to_string();
    assert!(
        message.starts_with("cannot connect to database postgres://app:***@127.0.0.1:1/x: "),
        "{message}"
    );
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(!message.contains("hunter2") && !message.contains('\n'));
}

#[tokio::test]
async fn unreachable_postgres_does_not_hang() {
    // A non-routable address: either an immediate network error or the timeout.
    let started = Instant::now();
    let result = connect("postgres://app:pw@10.255.255.1:5432/x", 4, None).await;
    assert!(result.is_err());
    assert!(
        started.elapsed() < FAIL_FAST,
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refused_redis_fails_fast_with_one_redacted_line() {
    let started = Instant::now();
    let err = connect(
        "sqlite::memory:",
        1,
        Some(("redis://:hunter2@127.0.0.1:1", "p:")),
    )
    .await
    .err()
    .unwrap();
    assert!(started.elapsed() < FAIL_FAST);
    let message = err.to_string();
    assert!(
        message.starts_with("cannot connect to state store redis://:***@127.0.0.1:1: "),
        "{message}"
    );
    assert!(!message.contains("hunter2") && !message.contains('\n'));
}

#[tokio::test]
async fn postgres_with_redis_state() {
    let (Some(_), Some(redis_url)) = (support::env_url(POSTGRES_ENV), support::env_url(REDIS_ENV))
    else {
        eprintln!("skipped: set {POSTGRES_ENV} and {REDIS_ENV}");
        return;
    };
    let fx = PgFixture::new().await.unwrap();
    let prefix = format!("authflow_t_{:016x}:", rand::random::<u64>());
    let stores = connect(fx.url(), 4, Some((&redis_url, &prefix)))
        .await
        .unwrap();
    stores.db.ping().await.unwrap();
    stores
        .state
        .put("k", "v", Duration::from_secs(60))
        .await
        .unwrap();
    // The value went to Redis under the prefix, not into the database's state table.
    let direct = RedisStateStore::connect(&redis_url, &prefix).await.unwrap();
    assert_eq!(direct.get("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(StateStore::get(&fx.store, "k").await.unwrap(), None);
}

#[tokio::test]
async fn redis_prefixes_isolate_stores() {
    let Some(a) = redis_store().await else { return };
    let Some(b) = redis_store().await else { return };
    a.put("k", "a", Duration::from_secs(60)).await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), None);
    assert!(
        b.put_if_absent("k", "b", Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some("a"));
}

async fn expire_some(state: &dyn StateStore) {
    for n in 0..5 {
        let key = format!("gone-{n}");
        state
            .put(&key, "v", Duration::from_millis(1))
            .await
            .unwrap();
    }
    state
        .put("kept", "v", Duration::from_secs(60))
        .await
        .unwrap();
    state
        .take_token("bucket", Duration::from_millis(10), 1)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn sqlite_sweep_deletes_only_expired_rows() {
    let fx = SqliteFixture::new().await;
    expire_some(&fx.store).await;
    // 5 values and the refilled bucket; the first put may already have swept some.
    let swept = fx.store.sweep_expired().await.unwrap();
    assert!(swept >= 1, "swept {swept}");
    assert_eq!(fx.store.sweep_expired().await.unwrap(), 0);
    assert_eq!(
        StateStore::get(&fx.store, "kept").await.unwrap().as_deref(),
        Some("v")
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM ephemeral")
        .fetch_one(fx.store.pool())
        .await
        .unwrap();
    assert_eq!(left, 1);
}

#[tokio::test]
async fn postgres_sweep_deletes_only_expired_rows() {
    let Some(fx) = PgFixture::new().await else {
        return;
    };
    expire_some(&fx.store).await;
    assert!(fx.store.sweep_expired().await.unwrap() >= 1);
    assert_eq!(fx.store.sweep_expired().await.unwrap(), 0);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM ephemeral")
        .fetch_one(fx.store.pool())
        .await
        .unwrap();
    assert_eq!(left, 1);
}

#[tokio::test]
async fn sqlite_store_reopens_over_a_raw_pool() {
    // `from_pool` + `migrate` is the path for callers that build their own pool.
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let store = SqliteStore::from_pool(pool);
    store.migrate().await.unwrap();
    authflow_core::store::Database::ping(&store).await.unwrap();
}
