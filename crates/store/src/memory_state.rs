//! In-process [`StateStore`] for the single-machine SQLite mode.
//!
//! With SQLite every state operation was a statement handed to sqlx's SQLite worker thread
//! (a context switch each way), and a flow step does several. Here the state lives in
//! sharded maps in the server process; every operation is atomic under its shard's lock
//! (`take`, `incr`, GCRA, `put_if_absent` need no transaction), and expiry is checked on
//! every read exactly as the SQL stores do.
//!
//! Durability: values (flow states, flow markers, OTP records, counters, codes) are
//! written behind to the `ephemeral` table of the SQLite file in batched transactions, so a
//! restart keeps live flows. Writes that add or replace (`put`, `put_if_absent`, `incr`)
//! return at once and reach the file within a few milliseconds; writes that consume
//! (`take`, `delete`) return only once their batch is committed, so a crash can lose a
//! recent step (the client sees `AuthenticationFlowNotFound` or repeats a step) but never
//! bring back a consumed single-use token or a finished flow. Rate-limit buckets are kept
//! in memory only: a restart refills them.
//!
//! Because the state is process-local, one SQLite file serves exactly one `authflow serve`
//! process: [`MemoryStateStore::open`] takes an exclusive lock on `<database>-serve.lock`
//! and fails with [`ConnectError::Locked`] if another process holds it. Replicas need
//! PostgreSQL + Redis.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use authflow_core::store::{RateDecision, StateStore, StoreError, StoreResult};

use crate::common::{Gcra, GcraTake, micros, now_micros};
use crate::connect::ConnectError;
use crate::sqlite::{SqliteStore, StateWrite};

/// Independent locks, so concurrent requests rarely wait for each other.
const SHARDS: usize = 16;
/// Batches of pure additions are at least this far apart (consuming writes do not wait).
const FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// A consuming write fails if its batch is not committed within this time.
const DURABLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed batch before retrying it.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Expired rows are deleted from the file this often.
const FILE_SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Expired entries removed from memory per operation at most, so no request pays for a
/// large sweep (expiry is checked on read anyway; this only frees memory).
const SWEEP_PER_OPERATION: usize = 64;
/// How long `open` waits for a serve lock that a store of this process, just dropped, is
/// still releasing (its writer flushes first); another server holds it for good.
const LOCK_PATIENCE: Duration = Duration::from_secs(3);

/// See the module documentation.
pub struct MemoryStateStore {
    shared: Arc<Shared>,
    flusher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Shared {
    hasher: RandomState,
    shards: Vec<Mutex<Shard>>,
    /// Whether writes are recorded for the file.
    persistent: bool,
    /// Number of the batch now collecting writes.
    open_batch: AtomicU64,
    /// Highest batch number whose writes are committed.
    committed: tokio::sync::watch::Sender<u64>,
    /// Wakes the flusher: writes are pending.
    wake: tokio::sync::Notify,
    /// A consuming write waits: flush without the interval.
    urgent: AtomicBool,
    closed: AtomicBool,
}

#[derive(Default)]
struct Shard {
    values: HashMap<String, Entry>,
    /// GCRA theoretical arrival time (µs) per bucket; a tat in the past is a full bucket.
    buckets: HashMap<String, i64>,
    /// Garbage collection only: (instant in µs, which map, key). An item may be early (the
    /// entry was extended; it is pushed again) or stale (the entry is gone; it is dropped).
    expiries: BinaryHeap<Reverse<(i64, Slot, String)>>,
    /// Writes not yet in the file, the last one per key.
    pending: HashMap<String, StateWrite>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Value,
    Bucket,
}

struct Entry {
    value: String,
    /// Expiry instant in µs since the epoch.
    expires_at: i64,
}

impl Entry {
    fn live(&self, now: i64) -> bool {
        self.expires_at > now
    }
}

impl Shard {
    fn sweep(&mut self, now: i64) {
        for _ in 0..SWEEP_PER_OPERATION {
            match self.expiries.peek() {
                Some(Reverse((at, _, _))) if *at <= now => {}
                _ => return,
            }
            let Some(Reverse((_, slot, key))) = self.expiries.pop() else {
                return;
            };
            let later = match slot {
                Slot::Value => match self.values.get(&key) {
                    Some(entry) if entry.live(now) => Some(entry.expires_at),
                    Some(_) => {
                        self.values.remove(&key);
                        None
                    }
                    None => None,
                },
                Slot::Bucket => match self.buckets.get(&key) {
                    Some(&tat) if tat > now => Some(tat),
                    Some(_) => {
                        self.buckets.remove(&key);
                        None
                    }
                    None => None,
                },
            };
            if let Some(at) = later {
                self.expiries.push(Reverse((at, slot, key)));
            }
        }
    }

    fn live_value(&self, key: &str, now: i64) -> Option<&Entry> {
        self.values.get(key).filter(|entry| entry.live(now))
    }

    /// Insert or replace; a key new to the map gets an expiry item.
    fn set_value(&mut self, key: &str, value: String, expires_at: i64) {
        match self.values.get_mut(key) {
            Some(entry) => {
                entry.value = value;
                entry.expires_at = expires_at;
            }
            None => {
                self.values
                    .insert(key.to_owned(), Entry { value, expires_at });
                self.expiries
                    .push(Reverse((expires_at, Slot::Value, key.to_owned())));
            }
        }
    }

    fn set_bucket(&mut self, key: &str, tat: i64) {
        if let Some(stored) = self.buckets.get_mut(key) {
            *stored = tat;
        } else {
            self.buckets.insert(key.to_owned(), tat);
            self.expiries
                .push(Reverse((tat, Slot::Bucket, key.to_owned())));
        }
    }
}

/// Expiry instant (µs) of a value written at `now` with `ttl`.
fn expiry(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(micros(ttl))
}

fn upsert(entry: &Entry) -> StateWrite {
    StateWrite::Upsert {
        value: entry.value.clone(),
        expires_at_ms: entry.expires_at.div_euclid(1000),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a critical section leaves the maps consistent (every operation
    // mutates them last), so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn new(persistent: bool) -> Shared {
        Shared {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            persistent,
            open_batch: AtomicU64::new(1),
            committed: tokio::sync::watch::Sender::new(0),
            wake: tokio::sync::Notify::new(),
            urgent: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    /// Run `operation` on the shard of `key` under its lock, after a bounded sweep.
    fn with_shard<R>(&self, key: &str, operation: impl FnOnce(&mut Shard, i64) -> R) -> R {
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        let mut shard = lock(&self.shards[index]);
        let now = now_micros();
        shard.sweep(now);
        operation(&mut shard, now)
    }

    /// Record a write for the file (inside the shard lock, so per-key order is kept) and
    /// return the batch it belongs to.
    fn record(&self, shard: &mut Shard, key: &str, write: StateWrite) -> u64 {
        if !self.persistent {
            return 0;
        }
        // Read under the shard lock: the flusher bumps the number before draining the
        // shards, so a write recorded with batch b is drained into batch b at the latest.
        let batch = self.open_batch.load(Ordering::Acquire);
        shard.pending.insert(key.to_owned(), write);
        batch
    }

    fn wake_flusher(&self, urgent: bool) {
        if !self.persistent {
            return;
        }
        if urgent {
            self.urgent.store(true, Ordering::Release);
        }
        self.wake.notify_one();
    }

    /// Wait until `batch` is committed to the file.
    async fn durable(&self, batch: u64) -> StoreResult<()> {
        if !self.persistent {
            return Ok(());
        }
        self.wake_flusher(true);
        let mut committed = self.committed.subscribe();
        match tokio::time::timeout(DURABLE_TIMEOUT, committed.wait_for(|&c| c >= batch)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(StoreError::Backend(
                "state store closed before the write was saved".into(),
            )),
            Err(_) => Err(StoreError::Backend(format!(
                "state write not saved to the database within {}s",
                DURABLE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Take every pending write of every shard.
    fn drain(&self) -> (u64, Vec<(String, StateWrite)>) {
        let batch = self.open_batch.fetch_add(1, Ordering::AcqRel);
        let mut writes = Vec::new();
        for shard in &self.shards {
            writes.extend(lock(shard).pending.drain());
        }
        (batch, writes)
    }

    /// Put back writes of a failed batch, unless a newer write of the key came meanwhile.
    fn requeue(&self, writes: Vec<(String, StateWrite)>) {
        for (key, write) in writes {
            let index = (self.hasher.hash_one(key.as_str()) % SHARDS as u64) as usize;
            lock(&self.shards[index])
                .pending
                .entry(key)
                .or_insert(write);
        }
    }

    fn load(&self, rows: Vec<(String, String, i64)>) {
        for (key, value, expires_at_ms) in rows {
            let expires_at = expires_at_ms.saturating_mul(1000);
            self.with_shard(&key, |shard, _| shard.set_value(&key, value, expires_at));
        }
    }
}

/// Writes pending batches to the file until the store is closed, then writes the rest.
async fn flush_loop(shared: Arc<Shared>, db: Arc<SqliteStore>, lock_file: File) {
    let mut last_flush = Instant::now();
    let mut last_sweep = Instant::now();
    loop {
        let closing = shared.closed.load(Ordering::Acquire);
        if !closing {
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(FILE_SWEEP_EVERY) => {}
            }
            if !shared.urgent.load(Ordering::Acquire) {
                // Gather the additions of concurrent requests into one transaction.
                let due = last_flush + FLUSH_INTERVAL;
                tokio::select! {
                    () = tokio::time::sleep_until(due.into()) => {}
                    () = urgent_or_closed(&shared) => {}
                }
            }
        }
        shared.urgent.store(false, Ordering::Release);
        let (batch, writes) = shared.drain();
        last_flush = Instant::now();
        if !writes.is_empty()
            && let Err(e) = db.write_state_batch(&writes).await
        {
            tracing::warn!(error = %e, rows = writes.len(), "saving flow state to SQLite failed; retrying");
            shared.requeue(writes);
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        }
        shared.committed.send_replace(batch);
        if last_sweep.elapsed() >= FILE_SWEEP_EVERY {
            last_sweep = Instant::now();
            if let Err(e) = db.sweep_expired_state().await {
                tracing::warn!(error = %e, "sweeping expired state from SQLite failed");
            }
        }
        if closing {
            break;
        }
    }
    drop(lock_file);
}

/// Resolves when a consuming write waits or the store closes (polled at the flush tick).
async fn urgent_or_closed(shared: &Shared) {
    loop {
        shared.wake.notified().await;
        if shared.urgent.load(Ordering::Acquire) || shared.closed.load(Ordering::Acquire) {
            return;
        }
    }
}

impl MemoryStateStore {
    /// State in memory only (for `sqlite::memory:` databases and tests): nothing survives
    /// the process, and no lock is taken.
    pub fn in_memory() -> MemoryStateStore {
        MemoryStateStore {
            shared: Arc::new(Shared::new(false)),
            flusher: Mutex::new(None),
        }
    }

    /// State of the SQLite database at `database_path`, persisted to its `ephemeral` table.
    /// Takes the exclusive serve lock (see the module documentation), loads the live
    /// entries, and starts the background writer (needs a Tokio runtime).
    pub async fn open(
        db: Arc<SqliteStore>,
        database_path: &Path,
    ) -> Result<MemoryStateStore, ConnectError> {
        let lock_file = lock_with_patience(database_path).await?;
        let rows = db
            .load_live_state()
            .await
            .map_err(|e| ConnectError::database(&database_path.display().to_string(), e))?;
        let shared = Arc::new(Shared::new(true));
        shared.load(rows);
        let flusher = tokio::spawn(flush_loop(shared.clone(), db, lock_file));
        Ok(MemoryStateStore {
            shared,
            flusher: Mutex::new(Some(flusher)),
        })
    }

    /// Wait until every write made so far is in the file.
    pub async fn flush(&self) -> StoreResult<()> {
        let batch = self.shared.open_batch.load(Ordering::Acquire);
        self.shared.durable(batch).await
    }

    /// Write everything pending, stop the writer and release the lock. Dropping the store
    /// does the same in the background.
    pub async fn close(self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        let flusher = lock(&self.flusher).take();
        if let Some(flusher) = flusher {
            let _ = flusher.await;
        }
    }
}

impl Drop for MemoryStateStore {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

async fn lock_with_patience(database_path: &Path) -> Result<File, ConnectError> {
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match lock_database(database_path) {
            Err(ConnectError::Locked { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// The path of the serve lock of a database file.
pub fn lock_path(database_path: &Path) -> PathBuf {
    let mut name = database_path.as_os_str().to_owned();
    name.push("-serve.lock");
    PathBuf::from(name)
}

/// An exclusive advisory lock (flock) on `<database>-serve.lock`, held for the life of the
/// returned file. A separate file, because closing any descriptor of the database file
/// itself would drop SQLite's own POSIX locks in this process.
fn lock_database(database_path: &Path) -> Result<File, ConnectError> {
    let path = lock_path(database_path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ConnectError::Lock {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ConnectError::Locked {
            database: database_path.display().to_string(),
            lock: path.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(ConnectError::Lock {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn put(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<()> {
        let shared = &self.shared;
        shared.with_shard(key, |shard, now| {
            let expires_at = expiry(now, ttl);
            shard.set_value(key, value.to_owned(), expires_at);
            if shared.persistent {
                let write = StateWrite::Upsert {
                    value: value.to_owned(),
                    expires_at_ms: expires_at.div_euclid(1000),
                };
                shared.record(shard, key, write);
            }
        });
        shared.wake_flusher(false);
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<bool> {
        let shared = &self.shared;
        let inserted = shared.with_shard(key, |shard, now| {
            if shard.live_value(key, now).is_some() {
                return false;
            }
            let expires_at = expiry(now, ttl);
            shard.set_value(key, value.to_owned(), expires_at);
            if shared.persistent {
                let write = StateWrite::Upsert {
                    value: value.to_owned(),
                    expires_at_ms: expires_at.div_euclid(1000),
                };
                shared.record(shard, key, write);
            }
            true
        });
        if inserted {
            shared.wake_flusher(false);
        }
        Ok(inserted)
    }

    async fn get(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(self.shared.with_shard(key, |shard, now| {
            shard.live_value(key, now).map(|entry| entry.value.clone())
        }))
    }

    async fn take(&self, key: &str) -> StoreResult<Option<String>> {
        let shared = &self.shared;
        let taken = shared.with_shard(key, |shard, now| {
            let entry = shard.values.remove(key)?;
            if !entry.live(now) {
                // Expired: absent for everyone; the file's row is expired too.
                return None;
            }
            let batch = shared.record(shard, key, StateWrite::Delete);
            Some((entry.value, batch))
        });
        match taken {
            Some((value, batch)) => {
                shared.durable(batch).await?;
                Ok(Some(value))
            }
            None => Ok(None),
        }
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let shared = &self.shared;
        let batch = shared.with_shard(key, |shard, _| {
            shard.values.remove(key);
            shared.record(shard, key, StateWrite::Delete)
        });
        shared.durable(batch).await
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> StoreResult<i64> {
        let shared = &self.shared;
        let value = shared.with_shard(key, |shard, now| {
            let (value, expires_at) = match shard.live_value(key, now) {
                // A value that is no integer counts as 0, as SQL's CAST does.
                Some(entry) => (
                    entry
                        .value
                        .parse::<i64>()
                        .unwrap_or(0)
                        .saturating_add(delta),
                    entry.expires_at,
                ),
                // An expired counter restarts from zero with a fresh ttl.
                None => (delta, expiry(now, ttl)),
            };
            shard.set_value(key, value.to_string(), expires_at);
            if shared.persistent {
                let write = upsert(&shard.values[key]);
                shared.record(shard, key, write);
            }
            value
        });
        shared.wake_flusher(false);
        Ok(value)
    }

    async fn take_token(
        &self,
        key: &str,
        period: Duration,
        burst: u32,
    ) -> StoreResult<RateDecision> {
        let gcra = Gcra::new(period, burst);
        Ok(self.shared.with_shard(key, |shard, now| {
            match gcra.take(shard.buckets.get(key).copied(), now) {
                GcraTake::Allowed { new_tat } => {
                    shard.set_bucket(key, new_tat);
                    RateDecision::Allowed
                }
                GcraTake::Limited { retry_after } => RateDecision::Limited { retry_after },
            }
        }))
    }

    async fn return_token(&self, key: &str, period: Duration, burst: u32) -> StoreResult<()> {
        let interval = Gcra::new(period, burst).interval_micros();
        self.shared.with_shard(key, |shard, now| {
            // Step the tat back by one interval, never below now (a tat at or before now
            // is already a full bucket), as the SQL stores do.
            if let Some(tat) = shard.buckets.get_mut(key)
                && *tat > now
            {
                *tat = (*tat - interval).max(now);
            }
        });
        Ok(())
    }
}
