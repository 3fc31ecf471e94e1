//! The open handles of spawned databases: opened on first use, shared by concurrent calls,
//! closed when idle or when too many are open, so thousands of spawned databases cost only
//! their catalog rows.
//!
//! Each database has a [`Slot`]; a hit is one uncontended lock of that slot. The cache keeps
//! the list of slots holding a handle, and the count of open databases is that list's length,
//! so opening, closing, eviction and shutdown cannot disagree about it.

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use tracing::debug;

use super::error::Result;
use crate::backend::Database;

/// Where one database's open handle lives.
#[derive(Debug, Default)]
pub struct Slot {
    handle: Mutex<Option<Arc<dyn Database>>>,
    /// Serializes opening, so concurrent first calls open the database once.
    opening: tokio::sync::Mutex<()>,
    /// Milliseconds since the cache started, for idle and LRU decisions.
    last_used: AtomicI64,
}

impl Slot {
    fn cached(&self) -> Option<Arc<dyn Database>> {
        self.handle.lock().ok().and_then(|h| h.clone())
    }
}

/// The open handles; see the module docs.
#[derive(Debug)]
pub struct HandleCache {
    /// The slots that hold a handle.
    open: Mutex<Vec<Arc<Slot>>>,
    max_open: usize,
    started: Instant,
}

impl HandleCache {
    /// A cache that keeps at most `max_open` databases open (at least one).
    pub fn new(max_open: usize) -> Self {
        Self {
            open: Mutex::new(Vec::new()),
            max_open: max_open.max(1),
            started: Instant::now(),
        }
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// The handle in `slot`, opened with `open` on first use. Opening one database more than
    /// `max_open` closes the least recently used tenth of the open ones, so the scan it costs
    /// is paid once per many opens.
    pub async fn get<F>(&self, slot: &Arc<Slot>, open: F) -> Result<Arc<dyn Database>>
    where
        F: Future<Output = Result<Arc<dyn Database>>>,
    {
        slot.last_used.store(self.now_ms(), Ordering::Relaxed);
        if let Some(h) = slot.cached() {
            return Ok(h);
        }
        let _opening = slot.opening.lock().await;
        if let Some(h) = slot.cached() {
            return Ok(h);
        }
        let h = open.await?;
        let Ok(mut list) = self.open.lock() else {
            return Ok(h);
        };
        if let Ok(mut held) = slot.handle.lock() {
            *held = Some(Arc::clone(&h));
        }
        list.push(Arc::clone(slot));
        if list.len() > self.max_open {
            let target = self.max_open * 9 / 10;
            let excess = list.len() - target;
            list.select_nth_unstable_by_key(excess - 1, |s| s.last_used.load(Ordering::Relaxed));
            for s in list.drain(..excess) {
                take(&s);
            }
            debug!(closed = excess, "closed least recently used databases");
        }
        Ok(h)
    }

    /// The handle in `slot` if it is open, without opening it or counting a use.
    pub fn peek(&self, slot: &Arc<Slot>) -> Option<Arc<dyn Database>> {
        slot.cached()
    }

    /// Closes the handle in `slot`, if open. Calls holding it finish normally.
    pub fn close(&self, slot: &Arc<Slot>) -> bool {
        self.take(slot).is_some()
    }

    /// Closes the handle in `slot` and returns it, if open: its strong count then says how
    /// many calls still hold it (a restore's fence waits for them).
    pub fn take(&self, slot: &Arc<Slot>) -> Option<Arc<dyn Database>> {
        let mut list = self.open.lock().ok()?;
        let handle = slot.handle.lock().ok().and_then(|mut h| h.take());
        if handle.is_some() {
            list.retain(|s| !Arc::ptr_eq(s, slot));
        }
        handle
    }

    /// Closes the handles unused for `idle`; returns how many.
    pub fn close_idle(&self, idle: Duration) -> usize {
        let cutoff = self.now_ms() - i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        let Ok(mut list) = self.open.lock() else {
            return 0;
        };
        let before = list.len();
        list.retain(|s| s.last_used.load(Ordering::Relaxed) >= cutoff || !take(s));
        before - list.len()
    }

    /// Closes every handle.
    pub fn close_all(&self) {
        if let Ok(mut list) = self.open.lock() {
            for s in list.drain(..) {
                take(&s);
            }
        }
    }

    /// Databases with an open handle.
    pub fn open_count(&self) -> usize {
        self.open.lock().map(|l| l.len()).unwrap_or_default()
    }
}

/// Empties a slot; whether it held a handle.
fn take(slot: &Slot) -> bool {
    slot.handle.lock().ok().and_then(|mut h| h.take()).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        backend::{RowStream, Session, StatementLimits},
        core::value::{Statement, StatementResult},
    };

    /// A handle that is never used: the cache only stores and drops handles.
    #[derive(Debug)]
    struct NoDatabase;

    #[async_trait::async_trait]
    impl Database for NoDatabase {
        async fn execute(&self, _: Statement, _: &StatementLimits) -> Result<StatementResult> {
            Err(self.unsupported("Execute"))
        }
        async fn query(&self, _: Statement, _: StatementLimits) -> Result<RowStream> {
            Err(self.unsupported("Query"))
        }
        async fn batch(
            &self,
            _: Vec<Statement>,
            _: bool,
            _: &StatementLimits,
        ) -> Result<Vec<StatementResult>> {
            Err(self.unsupported("Batch"))
        }
        async fn session(&self, _: StatementLimits) -> Result<Box<dyn Session>> {
            Err(self.unsupported("Session"))
        }
        fn engine_name(&self) -> &'static str {
            "none"
        }
    }

    async fn opener() -> Result<Arc<dyn Database>> {
        Ok(Arc::new(NoDatabase))
    }

    #[tokio::test]
    async fn a_handle_is_opened_once_and_counted_once() {
        let cache = HandleCache::new(4);
        let slot = Arc::new(Slot::default());
        let a = cache.get(&slot, opener()).await.expect("opens");
        let b = cache
            .get(&slot, async { panic!("opened twice") })
            .await
            .expect("cached");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.open_count(), 1);
        assert!(cache.close(&slot));
        assert!(!cache.close(&slot), "closing twice closes nothing");
        assert_eq!(cache.open_count(), 0);
    }

    #[tokio::test]
    async fn opening_past_the_cap_closes_the_least_recently_used_tenth() {
        let cache = HandleCache::new(10);
        let slots: Vec<_> = (0..11).map(|_| Arc::new(Slot::default())).collect();
        for (i, s) in slots.iter().enumerate() {
            cache.get(s, opener()).await.expect("opens");
            // Older than any use to come, in opening order.
            s.last_used.store(i as i64 - 1_000, Ordering::Relaxed);
        }
        assert_eq!(cache.open_count(), 9);
        assert!(slots[0].cached().is_none() && slots[1].cached().is_none());
        assert!(slots[2..].iter().all(|s| s.cached().is_some()));
    }

    #[tokio::test]
    async fn idle_handles_close_and_shutdown_closes_the_rest() {
        let cache = HandleCache::new(8);
        let (old, fresh) = (Arc::new(Slot::default()), Arc::new(Slot::default()));
        cache.get(&old, opener()).await.expect("opens");
        cache.get(&fresh, opener()).await.expect("opens");
        old.last_used.store(-10_000, Ordering::Relaxed);
        assert_eq!(cache.close_idle(Duration::from_secs(1)), 1);
        assert!(old.cached().is_none() && fresh.cached().is_some());
        cache.close_all();
        assert_eq!(cache.open_count(), 0);
        assert!(fresh.cached().is_none());
    }
}
