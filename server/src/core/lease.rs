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
//!
//! # Membership
//!
//! With each renewal, every gateway also writes its heartbeat (`nodes`: its node name, the
//! address it listens on, when it started) and reads the others'. A gateway counts as live
//! while its heartbeat is younger than one lease length; a clean shutdown removes its row at
//! once. The count of live gateways is each server engine's divisor: every gateway keeps to
//! `1/N` of `--max-server-connections` ([`Backend::set_replicas`]), so N replicas together
//! stay within the cap the operator gave for the server. When a gateway dies, the others'
//! shares grow back within a lease length plus one renewal period.
//!
//! [`Backend::set_replicas`]: crate::backend::Backend::set_replicas

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tracing::{info, warn};

use super::{
    catalog::NodeInfo,
    forge::Forge,
    registry::{blocking, now_ms},
};

/// The lease's row in the catalog.
pub const SCHEDULERS: &str = "schedulers";

/// Whether this gateway holds the schedulers' lease, and who it is.
#[derive(Debug)]
pub struct Leadership {
    holder: String,
    held: AtomicBool,
    /// When this process started, in ms since the epoch (recorded with its heartbeat).
    started_ms: i64,
    /// The live gateways as the last heartbeat read them (this one included).
    nodes: Mutex<Vec<NodeInfo>>,
    /// How many they are (0 before the first heartbeat), read on every call's path.
    replicas: AtomicUsize,
}

impl Leadership {
    /// A gateway that holds nothing yet, named `<node>/<pid>` after the catalog's node name
    /// (see [`Catalog::node`](super::catalog::Catalog::node)), so that a restarted process
    /// is a new holder.
    pub fn new(node: &str) -> Self {
        Self {
            holder: format!("{node}/{}", std::process::id()),
            held: AtomicBool::new(false),
            started_ms: now_ms(),
            nodes: Mutex::new(Vec::new()),
            replicas: AtomicUsize::new(0),
        }
    }

    /// How many live gateways share the catalog, as of the last heartbeat (this one
    /// included; 0 before the first).
    pub fn replicas(&self) -> usize {
        self.replicas.load(Ordering::Relaxed)
    }

    /// The live gateways sharing the catalog, as of the last heartbeat, by name.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.nodes.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// This gateway's name as a lease holder.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether this gateway runs the schedulers now.
    pub fn held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }
}

/// Free bytes (for an unprivileged writer) on the filesystem of `dir`; 0 when unknown.
fn free_bytes(dir: &std::path::Path) -> i64 {
    match rustix::fs::statvfs(dir) {
        Ok(s) => i64::try_from(s.f_bavail.saturating_mul(s.f_frsize)).unwrap_or(i64::MAX),
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "cannot tell the data directory's free space");
            0
        }
    }
}

/// Where a new SQLite database goes when the call names no gateway: the live one with the
/// most free space, `me` when it has as much as the best within 1 % (no forward for nothing).
pub fn placement<'a>(nodes: &'a [NodeInfo], me: &str) -> Option<&'a NodeInfo> {
    let best = nodes.iter().max_by_key(|n| n.free_bytes)?;
    match nodes.iter().find(|n| n.name == me) {
        Some(mine) if mine.free_bytes >= best.free_bytes - best.free_bytes / 100 => Some(mine),
        _ => Some(best),
    }
}

impl Forge {
    /// Takes or renews the schedulers' lease for `ttl`, and says so when that changes who
    /// holds it. Not knowing (the catalog failed) counts as not holding: another gateway may
    /// take it after expiry.
    pub(crate) async fn renew_lease(&self, ttl: Duration) {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let (cat, holder) = (self.catalog(), self.leadership().holder().to_owned());
        let held = blocking(move || cat.hold_lease(SCHEDULERS, &holder, now_ms(), ttl_ms)).await;
        let now = *held.as_ref().unwrap_or(&false);
        let was = self.leadership().held.swap(now, Ordering::Relaxed);
        let holder = self.leadership().holder();
        match held {
            Ok(true) if !was => {
                info!(
                    holder,
                    "this gateway runs the schedulers (pruner, backup policies, audit retention)"
                )
            }
            Ok(false) if was => warn!(holder, "another gateway took the schedulers' lease"),
            Err(e) => warn!(error = %e, "could not renew the schedulers' lease"),
            _ => {}
        }
    }

    /// Writes this gateway's heartbeat, reads the live gateways (heartbeats younger than
    /// `ttl`) and gives each server engine its share of the connection cap (see the module's
    /// documentation). A catalog that cannot be reached leaves the shares as they were.
    pub(crate) async fn heartbeat(&self, ttl: Duration) {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let (cat, address, started, dir) = (
            self.catalog(),
            self.config().address.clone(),
            self.leadership().started_ms,
            self.config().data_dir.clone(),
        );
        let nodes = blocking(move || {
            let now = now_ms();
            cat.heartbeat(&address, started, now, free_bytes(&dir))?;
            cat.nodes(now.saturating_sub(ttl_ms))
        })
        .await;
        let nodes = match nodes {
            Ok(nodes) => nodes,
            Err(e) => {
                warn!(error = %e, "could not write this gateway's heartbeat");
                return;
            }
        };
        // This gateway counts even if its own row was just removed by a racing shutdown path.
        let replicas = nodes.len().max(1);
        self.leadership()
            .replicas
            .store(replicas, Ordering::Relaxed);
        let before = match self.leadership().nodes.lock() {
            Ok(mut known) => std::mem::replace(&mut *known, nodes).len(),
            Err(_) => return,
        };
        if before != replicas {
            info!(replicas, "gateways sharing the catalog");
        }
        for (_, backend) in self.registry().backends() {
            backend.set_replicas(replicas);
        }
    }

    /// Removes this gateway's heartbeat at shutdown, so the others count it out at once.
    pub(crate) async fn leave(&self) {
        let cat = self.catalog();
        if let Err(e) = blocking(move || cat.leave()).await {
            warn!(error = %e, "could not remove this gateway's heartbeat; it expires by itself");
        }
    }

    /// Gives the lease up at shutdown, so another gateway takes it at its next renewal rather
    /// than after expiry.
    pub(crate) async fn release_lease(&self) {
        if self.leadership().held.swap(false, Ordering::Relaxed) {
            let (cat, holder) = (self.catalog(), self.leadership().holder().to_owned());
            if let Err(e) = blocking(move || cat.release_lease(SCHEDULERS, &holder)).await {
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

    /// Renews the schedulers' lease every third of `ttl` until shutdown (the first attempt
    /// is [`renew_lease`](Self::renew_lease) at start).
    pub(crate) async fn keep_lease(self, ttl: Duration) {
        let period = (ttl / 3).max(Duration::from_millis(50));
        loop {
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                () = self.lease_stopped() => break,
            }
            self.renew_lease(ttl).await;
            self.heartbeat(ttl).await;
        }
    }
}
