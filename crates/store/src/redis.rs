//! Redis backend for [`StateStore`]: short-lived state shared by every replica.
//!
//! Keys are `<prefix>kv:<key>` for values and `<prefix>rate:<key>` for rate-limit
//! buckets, so a caller's key can never collide with a bucket (as in the SQL backends,
//! where they are separate tables). Every key carries an expiry. Multi-step operations
//! are Lua scripts, which Redis runs atomically; rate limiting reads Redis' own clock
//! (`TIME`) so replicas with skewed clocks agree. Requires Redis 5 or later.

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncConnectionConfig, Client, RedisError, Script};
use async_trait::async_trait;
use authflow_core::store::{RateDecision, StateStore, StoreError, StoreResult};

use crate::common::Gcra;
use crate::connect::{CONNECT_TIMEOUT, ConnectError};

/// Key prefix when the configuration names none.
pub const DEFAULT_KEY_PREFIX: &str = "authflow:";

/// A command that takes longer than this fails instead of stalling a request.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Read and delete in one step: at most one caller gets the value.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return v
",
    )
});

/// INCRBY that sets the expiry only when it created the counter.
static INCR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local created = redis.call('EXISTS', KEYS[1]) == 0
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if created then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
",
    )
});

/// Shared Lua prelude: the server clock in µs, and integer formatting. Lua numbers are
/// doubles, exact for µs timestamps until the 23rd century; `%.0f` keeps Redis from
/// receiving them in exponent notation.
const LUA_PRELUDE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function int(x) return string.format('%.0f', x) end
local function store(tat)
  local px = math.max(1, math.ceil((tat - now) / 1000))
  redis.call('SET', KEYS[1], int(tat), 'PX', int(px))
end
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
";

/// GCRA take. ARGV: period µs, emission interval µs. Returns 0 when allowed, else the
/// µs until a token is available (state unchanged).
static TAKE_TOKEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LUA_PRELUDE}{}",
        r"
local period = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tat = math.max(stored, now)
local tolerance = period - interval
if tat - now > tolerance then return tat - now - tolerance end
store(tat + interval)
return 0
"
    ))
});

/// GCRA give-back. ARGV: emission interval µs. The tat steps back one interval but
/// never below now (a tat at or before now is already a full bucket).
static RETURN_TOKEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LUA_PRELUDE}{}",
        r"
if stored <= now then return 0 end
local tat = math.max(stored - tonumber(ARGV[1]), now)
if tat <= now then redis.call('DEL', KEYS[1]) else store(tat) end
return 0
"
    ))
});

/// Redis implementation of [`StateStore`].
#[derive(Clone)]
pub struct RedisStateStore {
    conn: ConnectionManager,
    prefix: String,
}

fn redis_err(e: RedisError) -> StoreError {
    StoreError::Backend(format!("redis: {e}"))
}

/// Milliseconds for `PX`/`PEXPIRE`, which reject 0: a zero ttl becomes 1 ms.
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// One direct connection and a PING first: the manager retries a refused connection
/// with backoff, so a failure would surface only as a timeout without its cause.
async fn probe(url: &str, client: &Client) -> Result<(), ConnectError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(CONNECT_TIMEOUT));
    let attempt = async {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        ::redis::cmd("PING").query_async::<()>(&mut conn).await
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| ConnectError::state_store(url, "timed out"))?
        .map_err(|e| ConnectError::state_store(url, e))
}

impl RedisStateStore {
    /// Connect to `url` (`redis://[:password@]host[:port][/db]`); keys get `prefix`
    /// (e.g. [`DEFAULT_KEY_PREFIX`]). `rediss://` (TLS) would need one of the redis
    /// crate's TLS features, which this workspace does not enable.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, ConnectError> {
        let client = Client::open(url).map_err(|e| ConnectError::invalid("state store", url, e))?;
        probe(url, &client).await?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let manager = tokio::time::timeout(
            CONNECT_TIMEOUT,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| ConnectError::state_store(url, "timed out"))?
        .map_err(|e| ConnectError::state_store(url, e))?;
        Ok(Self::new(manager, prefix))
    }

    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        RedisStateStore {
            conn,
            prefix: prefix.into(),
        }
    }

    fn kv_key(&self, key: &str) -> String {
        format!("{}kv:{key}", self.prefix)
    }

    fn bucket_key(&self, key: &str) -> String {
        format!("{}rate:{key}", self.prefix)
    }

    /// The manager is a cheap handle onto one multiplexed connection that reconnects
    /// by itself; each call works on its own clone.
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

#[async_trait]
impl StateStore for RedisStateStore {
    async fn ping(&self) -> StoreResult<()> {
        ::redis::cmd("PING")
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(redis_err)
    }

    async fn put(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<()> {
        ::redis::cmd("SET")
            .arg(self.kv_key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_millis(ttl))
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(redis_err)
    }

    async fn put_if_absent(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<bool> {
        // SET NX is atomic by itself; an expired key is absent to Redis too.
        let reply: Option<String> = ::redis::cmd("SET")
            .arg(self.kv_key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_millis(ttl))
            .arg("NX")
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(reply.is_some())
    }

    async fn get(&self, key: &str) -> StoreResult<Option<String>> {
        ::redis::cmd("GET")
            .arg(self.kv_key(key))
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)
    }

    async fn take(&self, key: &str) -> StoreResult<Option<String>> {
        TAKE.key(self.kv_key(key))
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        ::redis::cmd("DEL")
            .arg(self.kv_key(key))
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(redis_err)
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> StoreResult<i64> {
        INCR.key(self.kv_key(key))
            .arg(delta)
            .arg(ttl_millis(ttl))
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)
    }

    async fn take_token(
        &self,
        key: &str,
        period: Duration,
        burst: u32,
    ) -> StoreResult<RateDecision> {
        let gcra = Gcra::new(period, burst);
        let wait_micros: i64 = TAKE_TOKEN
            .key(self.bucket_key(key))
            .arg(gcra.period_micros())
            .arg(gcra.interval_micros())
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(match u64::try_from(wait_micros) {
            Ok(micros) if micros > 0 => RateDecision::Limited {
                retry_after: Duration::from_micros(micros),
            },
            _ => RateDecision::Allowed,
        })
    }

    async fn return_token(&self, key: &str, period: Duration, burst: u32) -> StoreResult<()> {
        let gcra = Gcra::new(period, burst);
        RETURN_TOKEN
            .key(self.bucket_key(key))
            .arg(gcra.interval_micros())
            .invoke_async::<()>(&mut self.conn())
            .await
            .map_err(redis_err)
    }
}
