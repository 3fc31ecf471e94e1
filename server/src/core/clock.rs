//! The time the lifecycle reads: when a database was last used, when its TTL runs out, when a
//! prune happened. It is a trait so that tests move time by hand ([`ManualClock`]) instead of
//! sleeping through real TTLs; the gateway runs on [`SystemClock`].
//!
//! Only the lifecycle's decisions go through the clock (creation and last-access times of
//! databases, expiry, idle time, lifecycle events). Timeouts, backoffs and the prune interval
//! itself stay on tokio's timer: they measure how long the gateway waits, not what a database's
//! age is.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// A source of the current time, in Unix milliseconds.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or_default()
    }
}

/// A clock that moves only when told to: it starts at the system's time and then stands still
/// until [`advance`](Self::advance) or [`set`](Self::set).
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    /// A clock standing at the system's current time.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            now_ms: AtomicI64::new(SystemClock.now_ms()),
        })
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `ms` (Unix milliseconds).
    pub fn set(&self, ms: i64) {
        self.now_ms.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// The clock of a gateway, shared by everything that reads it.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new();
        let t0 = c.now_ms();
        assert_eq!(c.now_ms(), t0);
        c.advance(Duration::from_secs(90));
        assert_eq!(c.now_ms(), t0 + 90_000);
        c.set(5);
        assert_eq!(c.now_ms(), 5);
    }
}
