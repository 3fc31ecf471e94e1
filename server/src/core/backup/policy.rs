//! Backup policies: which databases, when, how many to keep; and the scheduler that runs them.
//!
//! A policy is stored in the catalog with its next run time. The scheduler wakes every
//! [`tick`](super::BackupConfig::tick) (and when a policy changes), and runs each policy whose
//! next run is due: one backup of every database it selects, then retention. The next run is
//! computed from the time the run started, not from the missed ones, so a gateway that was down
//! for ten intervals catches up with exactly one run. A failed run is retried with backoff
//! (30 s, doubling, at most the schedule's interval). Backups of one database never overlap:
//! each takes the database's lock, waiting for one already running (so two policies selecting
//! one database run one after the other).
//!
//! Every decision takes `now` as an argument ([`Forge::run_due_policies`]), so tests drive the
//! scheduler with a clock of their own.
//!
//! Gateways sharing a catalog split a policy's runs: the schedulers' lease holder backs up the
//! server engines' databases (any gateway reaches them) on the policy's own schedule, and every
//! gateway its own SQLite databases (only it reaches their files) on a schedule of its own, in
//! `policy_nodes`, started at the policy's next run. One gateway on its catalog runs all of
//! them on the policy's schedule.

use std::{collections::BTreeMap, str::FromStr, time::Duration};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::{BackupRecord, BackupStatus, POLICY_LABEL};
use crate::{
    core::{
        access::{Principal, Role, glob_match},
        engine::BackendKind,
        error::{Error, Result},
        forge::Forge,
        names::DatabaseName,
        registry::{Entry, blocking, now_ms},
    },
    metrics as names,
};

/// The shortest interval of an `every` schedule.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);
/// The first retry after a failed run; it doubles up to the schedule's interval.
const FIRST_RETRY: Duration = Duration::from_secs(30);

/// When a policy runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// At this interval, in ms.
    Every(u64),
    /// A cron expression (UTC), 5 or 6 fields.
    Cron(String),
}

impl Schedule {
    /// Checks the schedule.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Every(ms) if Duration::from_millis(*ms) < MIN_INTERVAL => Err(Error::invalid(
                "every",
                format!(
                    "{} is shorter than the shortest interval, {}",
                    humantime::format_duration(Duration::from_millis(*ms)),
                    humantime::format_duration(MIN_INTERVAL)
                ),
            )),
            Self::Every(_) => Ok(()),
            Self::Cron(expr) => cron(expr).map(drop),
        }
    }

    /// The first run after `after_ms` (Unix ms).
    pub fn next_after(&self, after_ms: i64) -> i64 {
        match self {
            Self::Every(ms) => after_ms.saturating_add(i64::try_from(*ms).unwrap_or(i64::MAX)),
            Self::Cron(expr) => {
                let next = cron(expr).ok().and_then(|c| {
                    let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(after_ms)?;
                    c.find_next_occurrence(&at, false).ok()
                });
                // A schedule that never fires again (a date in the past) waits a year.
                next.map_or(after_ms.saturating_add(365 * 86_400_000), |t| {
                    t.timestamp_millis()
                })
            }
        }
    }

    /// About how long between runs (for the retry backoff's cap).
    fn interval_ms(&self, now_ms: i64) -> i64 {
        let next = self.next_after(now_ms);
        (self.next_after(next) - next).max(60_000)
    }
}

fn cron(expr: &str) -> Result<croner::Cron> {
    croner::Cron::from_str(expr).map_err(|e| {
        Error::invalid(
            "cron",
            format!("{expr:?} is not a cron expression (minute hour day month weekday): {e}"),
        )
    })
}

/// How many backups a policy keeps. A backup is kept when either rule keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// The newest N; 0 for no count rule.
    pub keep_last: u32,
    /// Younger than this many ms; `None` for no age rule.
    pub keep_within_ms: Option<u64>,
}

impl Retention {
    /// Checks that some rule is set.
    pub fn validate(&self) -> Result<()> {
        if self.keep_last == 0 && self.keep_within_ms.is_none() {
            return Err(Error::invalid(
                "retention",
                "set keep_last, keep_within or both: a policy without retention would keep \
                 every backup forever",
            ));
        }
        Ok(())
    }

    /// Of `backups` (completed, newest first, `(id, created_ms)`), the ids to delete at `now`.
    pub fn expired<'a>(&self, backups: &'a [(String, i64)], now_ms: i64) -> Vec<&'a str> {
        backups
            .iter()
            .enumerate()
            .filter(|(i, (_, created))| {
                let by_count = self.keep_last > 0 && (*i as u64) < u64::from(self.keep_last);
                let by_age = self.keep_within_ms.is_some_and(|w| {
                    now_ms.saturating_sub(*created) < i64::try_from(w).unwrap_or(i64::MAX)
                });
                !(by_count || by_age)
            })
            .map(|(_, (id, _))| id.as_str())
            .collect()
    }
}

/// Which databases a policy backs up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// One name.
    Database(String),
    /// Names matching a `*` pattern.
    Pattern(String),
    /// Databases with all these labels.
    Labels(BTreeMap<String, String>),
}

impl Selector {
    fn covers(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Database(n) => n == name,
            Self::Pattern(p) => glob_match(p, name),
            Self::Labels(sel) => sel.iter().all(|(k, v)| labels.get(k) == Some(v)),
        }
    }
}

/// What a caller sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySpec {
    /// Its name.
    pub name: String,
    /// Which databases.
    pub selector: Selector,
    /// When.
    pub schedule: Schedule,
    /// What to keep.
    pub retention: Retention,
    /// The target's name ("" for the default).
    pub target: String,
}

/// A stored policy with its run history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// What was set.
    pub spec: PolicySpec,
    /// The key that set it.
    pub owner: Option<String>,
    /// When it was set, Unix ms.
    pub updated_ms: i64,
    /// Its last run, Unix ms.
    pub last_run_ms: Option<i64>,
    /// Its next run, Unix ms.
    pub next_run_ms: i64,
    /// The last run's error.
    pub last_error: Option<String>,
    /// Failed runs in a row.
    pub failures: u32,
}

/// Which of a policy's databases a run backs up (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// All of them: one gateway on its catalog.
    All,
    /// The server engines' databases: the schedulers' lease holder on a shared catalog.
    Shared,
    /// This gateway's own SQLite databases: every gateway on a shared catalog.
    Own,
}

impl Forge {
    /// Creates or replaces a policy; whether it was created.
    pub async fn set_backup_policy(
        &self,
        who: &Principal,
        spec: PolicySpec,
    ) -> Result<(Policy, bool)> {
        DatabaseName::parse(&spec.name).map_err(|_| {
            Error::invalid(
                "policy.name",
                format!(
                    "{:?}: 1 to 63 characters a-z 0-9 _ -, starting with a letter",
                    spec.name
                ),
            )
        })?;
        spec.schedule.validate()?;
        spec.retention.validate()?;
        self.backups().targets().get(&spec.target)?;
        match &spec.selector {
            Selector::Database(db) => {
                self.authorized(who, db, Role::Owner)?;
            }
            Selector::Pattern(_) | Selector::Labels(_) => who.require_admin().map_err(|_| {
                Error::PermissionDenied(format!(
                    "key {} may set policies for one database it owns; policies by pattern or \
                     labels select databases not created yet and need an admin key",
                    who.key_id()
                ))
            })?,
        }
        // A replaced policy must be the caller's to replace.
        if let Some(existing) = self
            .policies()
            .await?
            .into_iter()
            .find(|p| p.spec.name == spec.name)
        {
            self.may_manage(who, &existing)?;
        }
        let now = now_ms();
        let policy = Policy {
            next_run_ms: spec.schedule.next_after(now),
            spec,
            owner: who.owner_id(),
            updated_ms: now,
            last_run_ms: None,
            last_error: None,
            failures: 0,
        };
        let (cat, p) = (self.catalog(), policy.clone());
        let created = blocking(move || cat.policy_upsert(&p)).await?;
        self.backups().wake.notify_waiters();
        let stored = self
            .policies()
            .await?
            .into_iter()
            .find(|p| p.spec.name == policy.spec.name)
            .unwrap_or(policy);
        Ok((stored, created))
    }

    /// The policies `who` can see: admin all, others those for a database they own.
    pub async fn list_backup_policies(&self, who: &Principal) -> Result<Vec<Policy>> {
        Ok(self
            .policies()
            .await?
            .into_iter()
            .filter(|p| self.may_manage(who, p).is_ok())
            .collect())
    }

    /// Deletes a policy (its backups stay); false when missing and `allow_missing`.
    pub async fn delete_backup_policy(
        &self,
        who: &Principal,
        name: &str,
        allow_missing: bool,
    ) -> Result<bool> {
        let Some(policy) = self
            .policies()
            .await?
            .into_iter()
            .find(|p| p.spec.name == name)
            .filter(|p| self.may_manage(who, p).is_ok())
        else {
            if allow_missing {
                return Ok(false);
            }
            return Err(Error::NotFound {
                what: "backup policy",
                name: name.to_owned(),
            });
        };
        let (cat, n) = (self.catalog(), policy.spec.name.clone());
        blocking(move || cat.policy_remove(&n)).await
    }

    async fn policies(&self) -> Result<Vec<Policy>> {
        let cat = self.catalog();
        blocking(move || cat.policy_list()).await
    }

    /// Admin, or the owner role on the one database the policy selects.
    fn may_manage(&self, who: &Principal, p: &Policy) -> Result<()> {
        if who.is_admin() {
            return Ok(());
        }
        match &p.spec.selector {
            Selector::Database(db) => self.authorized(who, db, Role::Owner).map(drop),
            _ => Err(Error::PermissionDenied("an admin key is needed".into())),
        }
    }

    /// The scheduler: runs due policies every tick until shutdown, and refreshes the age gauge.
    pub(crate) async fn schedule_backups(self) {
        let tick = self.backups().cfg.tick;
        loop {
            if self.backups().is_stopped() {
                break;
            }
            self.run_due_policies(now_ms()).await;
            self.report_backup_ages(now_ms()).await;
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = self.backups().wake.notified() => {}
            }
        }
        debug!("backup scheduler stopped");
    }

    /// Runs every policy due at `now` (the parts this gateway runs, see the module docs): a
    /// backup of each database it selects (several databases at once, one backup per database
    /// at a time), then its retention. Returns the runs.
    pub async fn run_due_policies(&self, now: i64) -> usize {
        let parts: &[Part] = match (self.catalog().is_shared(), self.runs_schedulers()) {
            (false, true) => &[Part::All],
            (false, false) => &[],
            (true, true) => &[Part::Shared, Part::Own],
            (true, false) => &[Part::Own],
        };
        if parts.is_empty() {
            return 0;
        }
        let policies = match self.policies().await {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "could not read backup policies");
                return 0;
            }
        };
        if policies.is_empty() {
            return 0;
        }
        let own = if parts.contains(&Part::Own) {
            let cat = self.catalog();
            match blocking(move || cat.policy_node_runs()).await {
                Ok(runs) => runs,
                Err(e) => {
                    warn!(error = %e, "could not read this gateway's policy runs");
                    return 0;
                }
            }
        } else {
            Default::default()
        };
        let mut ran = 0;
        for policy in policies {
            for part in parts {
                if self.backups().is_stopped() {
                    return ran;
                }
                let (next, failures) = match part {
                    // A gateway's first run of a policy is the policy's next one.
                    Part::Own => own
                        .get(&policy.spec.name)
                        .copied()
                        .unwrap_or((policy.next_run_ms, 0)),
                    Part::All | Part::Shared => (policy.next_run_ms, policy.failures),
                };
                if next <= now {
                    ran += 1;
                    self.run_policy(&policy, *part, failures, now).await;
                }
            }
        }
        ran
    }

    async fn run_policy(&self, policy: &Policy, part: Part, failures: u32, now: i64) {
        let spec = &policy.spec;
        let selected: Vec<std::sync::Arc<Entry>> = match self.registry().page(
            &crate::core::registry::ListFilter {
                page_size: usize::MAX,
                ..Default::default()
            },
            |r| {
                spec.selector.covers(r.provisioned.name.as_str(), &r.labels)
                    && match part {
                        Part::All => true,
                        Part::Shared => r.backend != BackendKind::Sqlite,
                        Part::Own => r.backend == BackendKind::Sqlite,
                    }
            },
        ) {
            Ok((entries, _)) => entries,
            Err(e) => {
                warn!(policy = %spec.name, error = %e, "could not list databases");
                return;
            }
        };
        let labels = BTreeMap::from([(POLICY_LABEL.to_owned(), spec.name.clone())]);
        let concurrency = self.backups().cfg.concurrency.max(1);
        let results: Vec<(String, Result<BackupRecord>)> = futures::stream::iter(selected)
            .map(|entry| {
                let labels = labels.clone();
                async move {
                    let db = entry.record.provisioned.name.to_string();
                    let r = self
                        .backup_entry(
                            &entry,
                            &spec.target,
                            labels,
                            Some(&spec.name),
                            super::run::Trigger::Wait,
                        )
                        .await;
                    (db, r)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut failed: Vec<String> = Vec::new();
        for (db, r) in &results {
            match r {
                Ok(_) => self.apply_retention(spec, db, now_ms().max(now)).await,
                Err(e) => failed.push(format!("{db}: {e}")),
            }
        }
        let (next, error, failures) = if failed.is_empty() {
            (spec.schedule.next_after(now), None, 0)
        } else {
            let failures = failures.saturating_add(1);
            let backoff = (FIRST_RETRY.as_millis() as i64)
                .saturating_mul(1i64 << (failures - 1).min(20))
                .min(spec.schedule.interval_ms(now));
            (now + backoff, Some(failed.join("; ")), failures)
        };
        if let Some(e) = &error {
            warn!(policy = %spec.name, failures, error = %e, "scheduled backups failed; retrying with backoff");
        } else {
            info!(policy = %spec.name, databases = results.len(), "scheduled backups done");
        }
        let (cat, name) = (self.catalog(), spec.name.clone());
        let own = part == Part::Own;
        let recorded =
            blocking(move || cat.policy_ran(&name, own, now, next, error.as_deref(), failures))
                .await;
        if let Err(e) = recorded {
            warn!(policy = %spec.name, error = %e, "could not record a policy's run");
        }
    }

    /// Deletes the backups of `db` made by the policy that its retention no longer keeps.
    async fn apply_retention(&self, spec: &PolicySpec, db: &str, now: i64) {
        let (cat, d, name) = (self.catalog(), db.to_owned(), spec.name.clone());
        let made = blocking(move || {
            cat.backup_scan(
                Some(&d),
                Some(BackupStatus::Completed),
                None,
                usize::MAX,
                |r| r.policy.as_deref() == Some(name.as_str()),
            )
        })
        .await;
        let made = match made {
            Ok(m) => m,
            Err(e) => {
                warn!(policy = %spec.name, error = %e, "could not read backups for retention");
                return;
            }
        };
        let ages: Vec<(String, i64)> = made.iter().map(|r| (r.id.clone(), r.created_ms)).collect();
        for id in spec.retention.expired(&ages, now) {
            if let Some(rec) = made.iter().find(|r| r.id == id)
                && let Err(e) = self.remove_backup(rec).await
            {
                warn!(backup = %id, error = %e, "could not delete a backup past retention");
            }
        }
    }

    /// Sets the age gauge of the newest completed backup of every database that has one.
    async fn report_backup_ages(&self, now: i64) {
        let cat = self.catalog();
        if let Ok(newest) = blocking(move || cat.newest_backups()).await {
            for (db, created) in newest {
                metrics::gauge!(names::BACKUP_NEWEST_AGE_SECONDS, "database" => db)
                    .set((now - created).max(0) as f64 / 1000.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        backend::{Backend, sqlite::SqliteBackend},
        config::Config,
        core::{access::Principal, backup::BackupFilter, forge::DatabaseSpec},
    };

    /// A Forge on `dir` whose own scheduler stays out of the way: the tests run policies with
    /// a clock of their own, days ahead of the real one.
    async fn forge(dir: &std::path::Path) -> Forge {
        let cfg = Config {
            data_dir: dir.to_path_buf(),
            backup_tick: Duration::from_secs(3600),
            ..Config::default()
        };
        let backends: Vec<Arc<dyn Backend>> =
            vec![Arc::new(SqliteBackend::new(cfg.sqlite()).expect("sqlite"))];
        Forge::open(cfg.forge(), backends).await.expect("forge").0
    }

    async fn spawn(f: &Forge, name: &str) {
        f.create_database(
            &Principal::Unrestricted,
            DatabaseSpec {
                name: DatabaseName::parse(name).expect("name"),
                backend: crate::core::engine::BackendKind::Sqlite,
                if_not_exists: false,
                lifecycle: Default::default(),
                labels: BTreeMap::new(),
            },
        )
        .await
        .expect("spawn");
    }

    fn hourly(name: &str, selector: Selector, keep_last: u32) -> PolicySpec {
        PolicySpec {
            name: name.into(),
            selector,
            schedule: Schedule::Every(HOUR as u64),
            retention: Retention {
                keep_last,
                keep_within_ms: None,
            },
            target: String::new(),
        }
    }

    async fn backups(f: &Forge, db: &str) -> Vec<BackupRecord> {
        f.list_backups(
            &Principal::Unrestricted,
            BackupFilter {
                database: Some(db.into()),
                page_size: 1000,
                ..Default::default()
            },
        )
        .await
        .expect("list")
        .backups
    }

    #[tokio::test]
    async fn retention_keeps_exactly_the_newest_and_a_restart_catches_up_once() {
        let dir = tempfile::tempdir().expect("dir");
        let f = forge(dir.path()).await;
        spawn(&f, "sched").await;
        let who = Principal::Unrestricted;
        let (p, created) = f
            .set_backup_policy(
                &who,
                hourly("hourly", Selector::Database("sched".into()), 3),
            )
            .await
            .expect("policy");
        assert!(created);
        let t0 = p.next_run_ms;
        assert_eq!(f.run_due_policies(t0 - 1).await, 0, "not due yet");
        let mut ids = Vec::new();
        for i in 0..5 {
            assert_eq!(f.run_due_policies(t0 + i * HOUR).await, 1);
            let now: Vec<String> = backups(&f, "sched")
                .await
                .into_iter()
                .map(|b| b.id)
                .collect();
            ids.insert(0, now[0].clone());
            ids.truncate(3);
            assert_eq!(now, ids, "run {i}: the newest three, newest first");
        }
        // The gateway is down for ten intervals: one run catches up, not ten.
        f.shutdown().await;
        drop(f);
        let f = forge(dir.path()).await;
        let late = t0 + 15 * HOUR;
        assert_eq!(f.run_due_policies(late).await, 1);
        assert_eq!(f.run_due_policies(late + MIN).await, 0, "caught up once");
        let policy = &f.list_backup_policies(&who).await.expect("list")[0];
        assert_eq!(policy.last_run_ms, Some(late));
        assert_eq!(policy.next_run_ms, late + HOUR);
        assert_eq!(backups(&f, "sched").await.len(), 3);
    }

    #[tokio::test]
    async fn two_policies_on_one_database_never_overlap() {
        let dir = tempfile::tempdir().expect("dir");
        let f = forge(dir.path()).await;
        spawn(&f, "both").await;
        let who = Principal::Unrestricted;
        let a = f
            .set_backup_policy(
                &who,
                hourly("by-name", Selector::Database("both".into()), 10),
            )
            .await
            .expect("policy")
            .0;
        f.set_backup_policy(
            &who,
            hourly("by-pattern", Selector::Pattern("bo*".into()), 10),
        )
        .await
        .expect("policy");
        // Two scheduler passes at once, each finding both policies due.
        let due = a.next_run_ms + MIN;
        let (x, y) = tokio::join!(f.run_due_policies(due), f.run_due_policies(due));
        assert_eq!(x + y, 4);
        let mut made = backups(&f, "both").await;
        assert_eq!(made.len(), 4);
        made.sort_by_key(|b| b.created_ms);
        for pair in made.windows(2) {
            assert!(
                pair[1].created_ms >= pair[0].finished_ms.expect("finished"),
                "{pair:?}"
            );
        }
        let by: BTreeMap<Option<String>, usize> = made.iter().fold(BTreeMap::new(), |mut m, b| {
            *m.entry(b.policy.clone()).or_default() += 1;
            m
        });
        assert_eq!(by.len(), 2, "{by:?}");
    }

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;

    #[test]
    fn every_runs_one_interval_after_the_last_run() {
        let s = Schedule::Every(6 * HOUR as u64);
        assert_eq!(s.next_after(1_000), 1_000 + 6 * HOUR);
        assert!(Schedule::Every(1_000).validate().is_err());
        s.validate().expect("valid");
    }

    #[test]
    fn cron_runs_at_the_next_matching_minute() {
        let s = Schedule::Cron("0 3 * * *".into());
        s.validate().expect("valid");
        // 2026-01-01T00:00:00Z → 03:00 the same day, then a day later.
        let midnight = 1_767_225_600_000;
        let first = s.next_after(midnight);
        assert_eq!(first, midnight + 3 * HOUR);
        assert_eq!(s.next_after(first), first + DAY);
        assert!(Schedule::Cron("every day".into()).validate().is_err());
        // Seconds first, six fields.
        assert_eq!(
            Schedule::Cron("30 0 3 * * *".into()).next_after(midnight),
            midnight + 3 * HOUR + 30_000
        );
    }

    #[test]
    fn retention_keeps_the_union_of_its_rules() {
        let now = 100 * DAY;
        // Newest first: one a day.
        let backups: Vec<(String, i64)> =
            (0..10).map(|i| (format!("b{i}"), now - i * DAY)).collect();
        let last3 = Retention {
            keep_last: 3,
            keep_within_ms: None,
        };
        assert_eq!(
            last3.expired(&backups, now),
            vec!["b3", "b4", "b5", "b6", "b7", "b8", "b9"]
        );
        let week = Retention {
            keep_last: 0,
            keep_within_ms: Some(7 * DAY as u64 - 1),
        };
        assert_eq!(week.expired(&backups, now), vec!["b7", "b8", "b9"]);
        let both = Retention {
            keep_last: 9,
            keep_within_ms: Some(2 * DAY as u64),
        };
        assert_eq!(both.expired(&backups, now), vec!["b9"]);
        assert!(
            Retention {
                keep_last: 0,
                keep_within_ms: None
            }
            .validate()
            .is_err()
        );
    }
}
