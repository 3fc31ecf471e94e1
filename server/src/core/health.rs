//! Engine failures as the control plane reports them: when a database server stops answering,
//! every database on it is reported `UNAVAILABLE` (GetDatabase, ListDatabases) and an
//! `unavailable` event is published for each, with the cause; when it answers again, a
//! `recovered` event follows, without a restart of the gateway.
//!
//! What this rests on, and where it lives:
//!
//! - **Noticing.** Each server engine's pool probes its server about once a second, and at once
//!   when a call sees a broken connection ([`crate::backend::pool`]); a probe that fails (or
//!   takes longer than its timeout, as a server that accepts connections but never answers
//!   does) marks the server down. [`crate::backend::Backend::availability`] reads that cached
//!   answer. This module only looks at it, every [`WATCH_EVERY`], and reports changes.
//! - **Recovering.** While a server is down its calls fail fast with UNAVAILABLE, idle
//!   connections are dropped and connections made before the outage are never reused; the
//!   probe retries with backoff and the first answer brings the databases back. Nothing here
//!   needs to act: recovery is the pools' and reporting it is this module's.
//! - **Connections, not servers.** A single connection killed from the server side
//!   (`pg_terminate_backend`, MySQL `KILL`, Redis `CLIENT KILL`) fails only the call on it, with
//!   UNAVAILABLE; the connection is broken, so it is closed rather than returned to its pool,
//!   and the probe looks at the server at once (finding it up, no event is sent). A connection
//!   that stops answering is cut by the call's deadline: the call fails with
//!   DEADLINE_EXCEEDED, its statement is cancelled on the server, and the connection is closed.
//!
//! Events are sent per database (the gateway's key `gateway`), in name order, so a watcher
//! filtering by label or backend sees the databases it cares about. A server found down when
//! the gateway starts is reported the same way, since nothing said so before.

use std::{collections::HashMap, time::Duration};

use tracing::{info, warn};

use super::{
    engine::BackendKind,
    events::{EventKind, Subject},
    forge::Forge,
    lifecycle::GATEWAY_KEY,
};

/// How often the availability of each server is looked at (a cached flag: no I/O). A change is
/// reported within this of the probe noticing it.
pub const WATCH_EVERY: Duration = Duration::from_millis(250);

/// The last availability seen of each server engine; see the module docs.
#[derive(Debug, Default)]
pub struct AvailabilityWatch {
    /// Servers seen down, with when (the gateway's clock, Unix ms).
    down: HashMap<BackendKind, i64>,
}

impl AvailabilityWatch {
    /// Nothing seen yet: every server counts as up until a look says otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks at every configured engine once and publishes `unavailable` / `recovered` events
    /// for the databases of those whose availability changed since the last look.
    pub async fn tick(&mut self, forge: &Forge) {
        let registry = forge.registry();
        for (kind, backend) in registry.backends() {
            let now = registry.now_ms();
            let (kind_of_event, cause) = match (backend.availability(), self.down.get(&kind)) {
                (Err(e), None) => {
                    self.down.insert(kind, now);
                    (EventKind::Unavailable, e.to_string())
                }
                (Ok(()), Some(since)) => {
                    let down_for = Duration::from_millis(now.saturating_sub(*since).max(0) as u64);
                    self.down.remove(&kind);
                    let secs = Duration::from_secs(down_for.as_secs());
                    (
                        EventKind::Recovered,
                        format!("down_for={}", humantime::format_duration(secs)),
                    )
                }
                _ => continue,
            };
            let mut entries: Vec<_> = registry
                .entries()
                .into_iter()
                .filter(|e| e.record.backend == kind)
                .collect();
            entries.sort_by(|a, b| a.record.provisioned.name.cmp(&b.record.provisioned.name));
            match kind_of_event {
                EventKind::Unavailable => warn!(
                    backend = %kind,
                    databases = entries.len(),
                    %cause,
                    "its databases are unavailable until the server answers again"
                ),
                _ => {
                    info!(backend = %kind, databases = entries.len(), %cause, "its databases recovered")
                }
            }
            metrics::counter!(crate::metrics::AVAILABILITY_CHANGES_TOTAL, "backend" => kind.as_str(), "to" => kind_of_event.as_str())
                .increment(1);
            for e in entries {
                forge
                    .events()
                    .publish(
                        kind_of_event,
                        Subject::of(&e.record),
                        cause.clone(),
                        GATEWAY_KEY,
                    )
                    .await;
            }
        }
    }
}
