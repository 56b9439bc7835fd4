//! Time and randomness come in from outside so the engine is deterministic in tests.

use chrono::{DateTime, Utc};
use rand::RngCore;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Source of secret randomness. Production uses `rand`'s thread-local CSPRNG
/// (ChaCha12, seeded and periodically reseeded from the OS).
pub trait SecureRandom: Send + Sync {
    fn fill(&self, buf: &mut [u8]);
}

#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl SecureRandom for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        rand::rng().fill_bytes(buf);
    }
}
