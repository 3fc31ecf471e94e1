//! Which gateway runs the schedulers: the TTL pruner, the backup scheduler and the audit log's
//! retention. Gateways sharing a catalog would otherwise each run them, and prune or back up
//! the same databases twice. The lease holder prunes every database it serves; every gateway
//! prunes its own SQLite databases (only it can reach their files). Quotas are measured by
//! every gateway for the databases it serves, because each enforces them on its own calls. One lease in the catalog (`leases`,
//! row `schedulers`) names the gateway that runs them until it expires; its holder renews it
//! every third of its length, and gives it up at a clean shutdown. A holder that dies (kill -9,
//! power loss) stops renewing, and another gateway takes the lease once it has expired: within
//! one lease length (`--scheduler-lease`) plus one renewal period.
//!
//! With the SQLite catalog there is one gateway, which always holds the lease.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use tracing::{info, warn};

use super::{
    forge::Forge,
    registry::{blocking, now_ms},
};

/// The lease's row in the catalog.
pub const SCHEDULERS: &str = "schedulers";

/// Whether this gateway holds the schedulers' lease, and who it is.
#[derive(Debug)]
pub struct Leadership {
    node: String,
    held: AtomicBool,
}

impl Leadership {
    /// A gateway that holds nothing yet, named `<host>/<pid>/<random>` so that a restarted
    /// process is a new holder.
    pub fn new() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "gateway".to_owned());
        let mut salt = [0u8; 4];
        // Without randomness the pid still tells processes of one host apart.
        let _ = getrandom::fill(&mut salt);
        let salt: String = salt.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            node: format!("{host}/{}/{salt}", std::process::id()),
            held: AtomicBool::new(false),
        }
    }

    /// This gateway's name as a lease holder.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether this gateway runs the schedulers now.
    pub fn held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }
}

impl Default for Leadership {
    fn default() -> Self {
        Self::new()
    }
}

impl Forge {
    /// Tries once to take the schedulers' lease (at start, before the schedulers' first pass).
    pub(crate) async fn take_lease(&self, ttl: Duration) {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let (cat, node) = (self.catalog(), self.leadership().node().to_owned());
        match blocking(move || cat.hold_lease(SCHEDULERS, &node, now_ms(), ttl_ms)).await {
            Ok(held) => self.leadership().held.store(held, Ordering::Relaxed),
            Err(e) => warn!(error = %e, "could not take the schedulers' lease"),
        }
    }

    /// Gives the lease up at shutdown, so another gateway takes it at its next renewal rather
    /// than after expiry.
    pub(crate) async fn release_lease(&self) {
        if self.leadership().held.swap(false, Ordering::Relaxed) {
            let (cat, node) = (self.catalog(), self.leadership().node().to_owned());
            if let Err(e) = blocking(move || cat.release_lease(SCHEDULERS, &node)).await {
                warn!(error = %e, "could not give up the schedulers' lease; it expires by itself");
            }
        }
    }

    /// Whether this gateway runs the schedulers (see the module's documentation).
    pub fn runs_schedulers(&self) -> bool {
        self.leadership().held()
    }

    /// Whether this gateway's pruner acts on `entry`: every database for the lease holder,
    /// its own SQLite databases for every gateway (it loads no other node's).
    pub(crate) fn prunes(&self, entry: &super::registry::Entry) -> bool {
        self.runs_schedulers() || entry.record.backend == super::engine::BackendKind::Sqlite
    }

    /// Takes and renews the schedulers' lease every third of `ttl` until shutdown.
    pub(crate) async fn keep_lease(self, ttl: Duration) {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let period = (ttl / 3).max(Duration::from_millis(50));
        loop {
            let (cat, node) = (self.catalog(), self.leadership().node().to_owned());
            let held = blocking(move || cat.hold_lease(SCHEDULERS, &node, now_ms(), ttl_ms)).await;
            let was = self.leadership().held();
            match held {
                Ok(held) => {
                    self.leadership().held.store(held, Ordering::Relaxed);
                    if held && !was {
                        info!(node = %self.leadership().node(), "this gateway runs the schedulers (pruner, quotas, backups, audit retention)");
                    } else if !held && was {
                        warn!(node = %self.leadership().node(), "another gateway took the schedulers' lease");
                    }
                }
                Err(e) => {
                    // Not knowing is not holding: another gateway may take it after expiry.
                    self.leadership().held.store(false, Ordering::Relaxed);
                    warn!(error = %e, "could not renew the schedulers' lease");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                () = self.lease_stopped() => break,
            }
        }
    }
}
