//! The threads that hash passwords: one per core, fed from one queue.
//!
//! argon2id takes a core for tens of milliseconds and ~19 MiB of memory. Running it on
//! tokio's blocking pool let a burst start hundreds of hashes at once (and as many buffers),
//! and a semaphore in front of it cost an extra hand-off between tasks for every hash, during
//! which a core sat idle. Here a fixed set of threads takes jobs straight from the queue: a
//! thread that finishes one hash starts the next waiting one without a wake-up in between,
//! and memory stays bounded by the number of threads.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// Why a hashing job produced no result.
#[derive(Debug, thiserror::Error)]
pub enum HashJobError {
    #[error("the hashing threads are gone")]
    PoolGone,
    #[error("the hashing job panicked")]
    Panicked,
}

/// A fixed pool of hashing threads. [`run`] uses the process-wide one.
pub struct HashPool {
    jobs: Sender<Job>,
}

impl HashPool {
    /// Starts `threads` (at least one) named `authflow-hash-N`.
    pub fn new(threads: usize) -> std::io::Result<HashPool> {
        let threads = threads.max(1);
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("authflow-hash-{n}"))
                .spawn(move || work_through(&queue))?;
        }
        Ok(HashPool { jobs })
    }

    /// Runs `work` on a hashing thread once one is free. A job whose caller has gone away
    /// (the request was dropped) before a thread reached it is skipped.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashJobError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if done.is_closed() {
                return;
            }
            let _ = done.send(catch_unwind(AssertUnwindSafe(work)));
        });
        self.jobs.send(job).map_err(|_| HashJobError::PoolGone)?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(HashJobError::Panicked),
            Err(_) => Err(HashJobError::PoolGone),
        }
    }
}

/// Takes jobs until the pool's sender is dropped. The lock is held only while waiting, so
/// exactly one idle thread waits on the queue and the others wait for the lock.
fn work_through(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let queue = queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            queue.recv()
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Runs `work` on the process-wide pool: one thread per available core.
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashJobError> {
    static POOL: OnceLock<Option<HashPool>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        HashPool::new(cores).ok()
    });
    match pool {
        Some(pool) => pool.run(work).await,
        None => Err(HashJobError::PoolGone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Starts `work` on `pool` as its own task, so several jobs wait in the queue at once.
    fn start<T: Send + 'static>(
        pool: &Arc<HashPool>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> tokio::task::JoinHandle<Result<T, HashJobError>> {
        let pool = pool.clone();
        tokio::spawn(async move { pool.run(work).await })
    }

    #[tokio::test]
    async fn runs_jobs_and_returns_their_results() {
        let pool = Arc::new(HashPool::new(2).unwrap());
        let jobs: Vec<_> = (0..10).map(|n| start(&pool, move || n * n)).collect();
        let mut values = Vec::new();
        for job in jobs {
            values.push(job.await.unwrap().unwrap());
        }
        assert_eq!(values, (0..10).map(|n| n * n).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_runs_more_jobs_at_once_than_threads() {
        let pool = Arc::new(HashPool::new(2).unwrap());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..8)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                start(&pool, move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for job in jobs {
            job.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_thread_lives_on() {
        let pool = HashPool::new(1).unwrap();
        let failed = pool.run(|| -> u8 { panic!("a job that panics") }).await;
        assert!(matches!(failed, Err(HashJobError::Panicked)));
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_job_whose_caller_left_is_skipped() {
        let pool = Arc::new(HashPool::new(1).unwrap());
        let (started, busy_now) = tokio::sync::oneshot::channel();
        let (release, blocker) = std::sync::mpsc::channel::<()>();
        let busy = start(&pool, move || {
            let _ = started.send(());
            blocker.recv().ok()
        });
        busy_now.await.unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = ran.clone();
        // Queued behind the busy job, then abandoned when the timeout drops it.
        let waited = tokio::time::timeout(
            Duration::from_millis(50),
            pool.run(move || counter.fetch_add(1, Ordering::SeqCst)),
        )
        .await;
        assert!(waited.is_err(), "the only thread is busy");
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        // The queue is FIFO: the abandoned job was reached (and skipped) before this one.
        assert_eq!(pool.run(|| 1).await.unwrap(), 1);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}
