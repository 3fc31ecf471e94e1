//! Lifecycle: a database's TTL (an absolute expiry time), its idle TTL (a longest time without
//! a data-plane call) and whether a final backup precedes its prune; UpdateDatabase, which
//! changes them and the labels; and the pruner, the gateway's background task that prunes
//! what expired or went idle.
//!
//! Rules the pruner keeps:
//!
//! - **Time is the [`Clock`](super::clock::Clock)'s.** Expiry and idleness are decided on the
//!   gateway's clock, so tests move a manual clock instead of sleeping; the interval between
//!   passes (`--prune-interval`, default 30 s) is real time, and a test runs a pass on demand
//!   through a [`PruneTrigger`].
//! - **Activity is the last data-plane call.** Each call stores the time in the registry's
//!   entry (an atomic, no I/O); housekeeping writes changed times to the catalog every few
//!   seconds, so after a restart a database's idle time counts from at most that much before
//!   its real last call.
//! - **A final backup or nothing.** With `backup_before_prune`, the database is backed up to
//!   the default target first (waiting for a backup already running); if that fails, the
//!   database is kept, the failure is logged at error and audited (outcome `ABORTED`), and the
//!   next pass tries again.
//! - **Decided twice.** A database found due is checked again under the spawn-and-prune lock
//!   just before it is pruned: a call or an UpdateDatabase in the meantime saves it.
//! - **Said where it is looked for.** Every prune is an audit record (RPC `Prune`, key
//!   [`GATEWAY_KEY`], statement `cause=expired` or `cause=idle`, plus `policy=<name>` when a
//!   lifecycle policy's rule made it due) and a sample of
//!   `dbforge_prunes_total{backend,cause,outcome}` (and of
//!   `dbforge_policy_actions_total{policy,action}` for a policy).
//! - **Policies too.** [`policy`] rules apply in the same pass; the first deadline reached,
//!   the database's own or a policy's, prunes it.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use tracing::{error, info, instrument, warn};

use super::{
    access::{Principal, Role},
    audit::Event,
    backup::Trigger,
    error::{Error, Result},
    events::{EventKind, Subject},
    forge::{DatabaseInfo, Forge},
    names::validate_labels,
    policy::{self, Due, LifecyclePolicy},
    registry::Entry,
    trigger::PassTrigger,
};
use crate::metrics as names;

/// The key id audit records and events carry for what the gateway did on its own.
pub const GATEWAY_KEY: &str = "gateway";

/// The label a final backup before a prune carries, with the cause as its value.
pub const PRUNE_LABEL: &str = "dbforge.final-before-prune";

/// A database's lifecycle settings, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifecycle {
    /// When it expires (Unix ms); `None`: no TTL.
    pub expire_ms: Option<i64>,
    /// Prune after this long without a data-plane call; `None`: no idle TTL.
    pub idle_ttl: Option<Duration>,
    /// Back up before a TTL or idle prune.
    pub backup_before_prune: bool,
}

impl Lifecycle {
    /// Why a database last used at `last_accessed_ms` is due for pruning at `now_ms`, if it is.
    /// An expiry wins over idleness when both hold.
    pub fn due(&self, now_ms: i64, last_accessed_ms: i64) -> Option<PruneCause> {
        if self.expire_ms.is_some_and(|at| at <= now_ms) {
            return Some(PruneCause::Expired);
        }
        let idle = self.idle_ttl.map(millis)?;
        (now_ms.saturating_sub(last_accessed_ms) >= idle).then_some(PruneCause::Idle)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A TTL as a request gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// At this time (Unix ms).
    At(i64),
    /// This long from now.
    After(Duration),
}

impl Ttl {
    /// The expiry time it means at `now_ms`: INVALID_ARGUMENT when not in the future.
    pub fn resolve(self, now_ms: i64) -> Result<i64> {
        match self {
            Ttl::At(at) if at > now_ms => Ok(at),
            Ttl::At(_) => Err(Error::invalid("expire_at", "must be in the future")),
            Ttl::After(d) if !d.is_zero() => Ok(now_ms.saturating_add(millis(d))),
            Ttl::After(_) => Err(Error::invalid("expire_after", "must be positive")),
        }
    }
}

/// Lifecycle settings of a CreateDatabase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifecycleSpec {
    /// The TTL.
    pub ttl: Option<Ttl>,
    /// The idle TTL.
    pub idle_ttl: Option<Duration>,
    /// Back up before a TTL or idle prune.
    pub backup_before_prune: bool,
}

impl LifecycleSpec {
    /// The settings it means at `now_ms`, validated.
    pub fn resolve(self, now_ms: i64) -> Result<Lifecycle> {
        Ok(Lifecycle {
            expire_ms: self.ttl.map(|t| t.resolve(now_ms)).transpose()?,
            idle_ttl: self.idle_ttl.map(check_idle).transpose()?,
            backup_before_prune: self.backup_before_prune,
        })
    }
}

fn check_idle(d: Duration) -> Result<Duration> {
    if d.is_zero() {
        return Err(Error::invalid("idle_ttl", "must be positive"));
    }
    Ok(d)
}

/// A change to one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<T> {
    /// Set it to this.
    Set(T),
    /// Remove it.
    Clear,
}

/// An UpdateDatabase: `None` fields keep their values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseUpdate {
    /// The database.
    pub name: String,
    /// Replaces every label.
    pub labels: Option<BTreeMap<String, String>>,
    /// The TTL.
    pub ttl: Option<Change<Ttl>>,
    /// The idle TTL.
    pub idle_ttl: Option<Change<Duration>>,
    /// Back up before a TTL or idle prune.
    pub backup_before_prune: Option<bool>,
    /// The database's own size quota, bytes.
    pub max_bytes: Option<Change<u64>>,
}

impl DatabaseUpdate {
    /// What it sets, as an event's cause: `labels ttl idle_ttl backup_before_prune` (those set).
    fn changed(&self) -> String {
        [
            ("labels", self.labels.is_some()),
            ("ttl", self.ttl.is_some()),
            ("idle_ttl", self.idle_ttl.is_some()),
            ("backup_before_prune", self.backup_before_prune.is_some()),
            ("max_bytes", self.max_bytes.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// `old` with this update applied at `now_ms`, validated.
    fn apply(&self, old: Lifecycle, now_ms: i64) -> Result<Lifecycle> {
        let mut new = old;
        match self.ttl {
            Some(Change::Set(ttl)) => new.expire_ms = Some(ttl.resolve(now_ms)?),
            Some(Change::Clear) => new.expire_ms = None,
            None => {}
        }
        match self.idle_ttl {
            Some(Change::Set(d)) => new.idle_ttl = Some(check_idle(d)?),
            Some(Change::Clear) => new.idle_ttl = None,
            None => {}
        }
        if let Some(b) = self.backup_before_prune {
            new.backup_before_prune = b;
        }
        Ok(new)
    }
}

/// Why the pruner pruned a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PruneCause {
    /// Its TTL ran out.
    Expired,
    /// No data-plane call for longer than its idle TTL.
    Idle,
}

impl PruneCause {
    /// Its name in audit records, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PruneCause::Expired => "expired",
            PruneCause::Idle => "idle",
        }
    }
}

/// What one pass of the pruner did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Databases pruned, with the cause.
    pub pruned: Vec<(String, PruneCause)>,
    /// Databases due but kept, with the reason (a failed final backup, a failed drop).
    pub kept: Vec<(String, String)>,
}

/// Runs a pruner pass on demand and waits for its report (see [`PassTrigger`]).
pub type PruneTrigger = PassTrigger<PruneReport>;

impl Forge {
    /// UpdateDatabase: changes the labels and lifecycle settings of `update.name` (owner only).
    #[instrument(skip_all, fields(db = %update.name))]
    pub async fn update_database(
        &self,
        who: &Principal,
        update: DatabaseUpdate,
    ) -> Result<DatabaseInfo> {
        if let Some(labels) = &update.labels {
            validate_labels(labels)?;
        }
        let registry = self.registry();
        let control = registry.control().await;
        let (entry, _) = self.authorized(who, &update.name, Role::Owner)?;
        entry.check_fence()?;
        let lifecycle = update.apply(entry.record.lifecycle, registry.now_ms())?;
        let changed = update.changed();
        if let Some(change) = update.max_bytes {
            let max = match change {
                Change::Set(m) => Some(m),
                Change::Clear => None,
            };
            self.set_own_quota(&entry, max).await?;
        }
        let entry = registry
            .update(&control, &entry, update.labels, lifecycle)
            .await?;
        self.events()
            .publish(
                EventKind::Updated,
                Subject::of(&entry.record),
                changed,
                who.key_id(),
            )
            .await;
        drop(control);
        info!("database updated");
        // New labels may bring the database under a policy's quota, or out of one.
        self.refresh_quota(&entry).await;
        Ok(entry.info(entry.size().await))
    }

    /// The pruner: a pass every `interval`, or when `trigger` asks, until shutdown.
    pub(crate) async fn prune_loop(self, interval: Duration, trigger: Option<PruneTrigger>) {
        let mut requests = trigger.and_then(|t| t.take());
        loop {
            let asked = tokio::select! {
                _ = tokio::time::sleep(interval) => None,
                Some(reply) = async {
                    match requests.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => Some(reply),
                _ = self.pruner_stopped() => break,
            };
            let report = self.prune_pass().await;
            if let Some(reply) = asked {
                let _ = reply.send(report);
            }
        }
    }

    /// One pass: prunes every database whose TTL ran out or that was idle past its idle TTL,
    /// by its own settings or a lifecycle policy's (the stricter wins: see [`policy`]).
    pub async fn prune_pass(&self) -> PruneReport {
        let policies = match self.lifecycle_policies().await {
            Ok(p) => p,
            Err(e) => {
                // Databases' own settings still apply; the next pass reads the policies again.
                error!(error = %e, "could not read lifecycle policies");
                Vec::new()
            }
        };
        let now = self.registry().now_ms();
        let mut due: Vec<(Arc<Entry>, Due)> = self
            .registry()
            .entries()
            .into_iter()
            .filter(|e| self.prunes(e))
            .filter_map(|e| policy::due(&e, now, &policies).map(|d| (e, d)))
            .collect();
        due.sort_by(|a, b| {
            a.0.record
                .provisioned
                .name
                .cmp(&b.0.record.provisioned.name)
        });
        let mut report = PruneReport::default();
        for (entry, due) in due {
            let name = entry.record.provisioned.name.to_string();
            let cause = due.cause;
            match self.prune_one(&entry, due, &policies).await {
                Ok(true) => report.pruned.push((name, cause)),
                Ok(false) => {}
                Err(e) => report.kept.push((name, e.to_string())),
            }
        }
        report
    }

    /// Prunes `entry` for `due` (after its final backup when it asks for one). False when
    /// it was no longer due on the second look.
    #[instrument(skip_all, fields(db = %entry.record.provisioned.name, cause = due.cause.as_str(), policy = due.policy.as_deref()))]
    async fn prune_one(
        &self,
        entry: &Arc<Entry>,
        due: Due,
        policies: &[LifecyclePolicy],
    ) -> Result<bool> {
        let started = Instant::now();
        let cause = due.cause;
        let kind = entry.record.backend;
        // A database on an engine this gateway lacks stays, as DeleteDatabase leaves it.
        entry.backend()?;
        let mut statement = format!("cause={}", cause.as_str());
        if let Some(p) = &due.policy {
            statement.push_str(&format!(" policy={p}"));
        }
        if entry.record.lifecycle.backup_before_prune {
            let labels = BTreeMap::from([(PRUNE_LABEL.to_owned(), cause.as_str().to_owned())]);
            match self
                .backup_entry(entry, "", labels, None, Trigger::Wait)
                .await
            {
                Ok(backup) => statement.push_str(&format!(" backup={}", backup.id)),
                Err(e) => {
                    error!(error = %e, "the final backup before a prune failed: the database is kept, the next pass tries again");
                    metrics::counter!(names::PRUNES_TOTAL, "backend" => kind.as_str(), "cause" => cause.as_str(), "outcome" => "backup_failed")
                        .increment(1);
                    self.audit_prune(
                        entry,
                        format!("{statement} final backup failed: {e}"),
                        "ABORTED",
                        started,
                    )
                    .await;
                    return Err(e);
                }
            }
        }
        let registry = self.registry();
        let control = registry.control().await;
        let current = match registry.get(entry.record.provisioned.name.as_str()) {
            Ok(current) if Arc::ptr_eq(&current, entry) => current,
            // Deleted, replaced or updated meanwhile: the next pass looks at it afresh.
            _ => return Ok(false),
        };
        if policy::due(&current, registry.now_ms(), policies).as_ref() != Some(&due) {
            return Ok(false);
        }
        current.check_fence()?;
        if let Err(e) = self.remove(&control, &current).await {
            warn!(error = %e, "could not prune the database; the next pass tries again");
            metrics::counter!(names::PRUNES_TOTAL, "backend" => kind.as_str(), "cause" => cause.as_str(), "outcome" => "failed")
                .increment(1);
            self.audit_prune(
                entry,
                format!("{statement} drop failed: {e}"),
                "ABORTED",
                started,
            )
            .await;
            return Err(e);
        }
        let kind_of_event = match cause {
            PruneCause::Expired => EventKind::Expired,
            PruneCause::Idle => EventKind::PrunedIdle,
        };
        self.events()
            .publish(
                kind_of_event,
                Subject::of(&current.record),
                due.event_cause(),
                GATEWAY_KEY,
            )
            .await;
        if let Some(p) = &due.policy {
            let action = match cause {
                PruneCause::Expired => "pruned_expired",
                PruneCause::Idle => "pruned_idle",
            };
            metrics::counter!(names::POLICY_ACTIONS_TOTAL, "policy" => p.clone(), "action" => action)
                .increment(1);
        }
        drop(control);
        info!("database pruned by its lifecycle");
        metrics::counter!(names::PRUNES_TOTAL, "backend" => kind.as_str(), "cause" => cause.as_str(), "outcome" => "pruned")
            .increment(1);
        self.audit_prune(entry, statement, "OK", started).await;
        Ok(true)
    }

    async fn audit_prune(
        &self,
        entry: &Entry,
        statement: String,
        outcome: &'static str,
        started: Instant,
    ) {
        self.audit()
            .record(Event {
                key_id: GATEWAY_KEY.to_owned(),
                rpc: "Prune",
                database: Some(entry.record.provisioned.name.to_string()),
                statement: Some(statement),
                rows_affected: None,
                outcome,
                duration: started.elapsed(),
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn expiry_wins_over_idleness_and_both_are_inclusive() {
        let l = Lifecycle {
            expire_ms: Some(10 * MIN),
            idle_ttl: Some(Duration::from_secs(300)),
            backup_before_prune: false,
        };
        assert_eq!(l.due(MIN, MIN), None);
        assert_eq!(l.due(6 * MIN, MIN), Some(PruneCause::Idle));
        assert_eq!(l.due(10 * MIN, 9 * MIN), Some(PruneCause::Expired));
        assert_eq!(Lifecycle::default().due(i64::MAX, 0), None);
    }

    #[test]
    fn ttls_must_lie_in_the_future() {
        assert_eq!(
            Ttl::After(Duration::from_secs(60)).resolve(1_000).ok(),
            Some(61_000)
        );
        assert_eq!(Ttl::At(2_000).resolve(1_000).ok(), Some(2_000));
        assert!(matches!(
            Ttl::At(1_000).resolve(1_000),
            Err(Error::InvalidArgument {
                field: "expire_at",
                ..
            })
        ));
        assert!(Ttl::After(Duration::ZERO).resolve(0).is_err());
    }

    #[test]
    fn an_update_changes_only_what_it_names() {
        let old = Lifecycle {
            expire_ms: Some(5),
            idle_ttl: Some(Duration::from_secs(1)),
            backup_before_prune: true,
        };
        let keep = DatabaseUpdate::default();
        assert_eq!(keep.apply(old, 0).ok(), Some(old));
        let clear = DatabaseUpdate {
            ttl: Some(Change::Clear),
            idle_ttl: Some(Change::Set(Duration::from_secs(9))),
            backup_before_prune: Some(false),
            ..Default::default()
        };
        assert_eq!(
            clear.apply(old, 0).ok(),
            Some(Lifecycle {
                expire_ms: None,
                idle_ttl: Some(Duration::from_secs(9)),
                backup_before_prune: false,
            })
        );
    }
}
