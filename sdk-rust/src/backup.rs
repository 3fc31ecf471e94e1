//! Backups, restores and backup policies over `BackupService`, as the SDK's own types (the same
//! shapes as Python's `dbforge.backup` and TypeScript's `src/backup.ts`).
//!
//! Field names are the proto's; times are [`SystemTime`], durations [`Duration`], a time that
//! may be unset is an `Option`, and the choices the proto writes as `oneof`s are enums:
//! [`RestoreMode`], [`Selector`] and [`Schedule`].
//!
//! ```no_run
//! use std::time::Duration;
//! use dbforge::{BackupFilter, BackupPolicy, Client, CreateBackup, RestoreMode, Schedule, Selector};
//!
//! # async fn demo(client: Client) -> Result<(), dbforge::Error> {
//! // Now, to the server's default target.
//! let backup = client.create_backup("app", CreateBackup::default().label("why", "before-migration")).await?;
//! println!("{} {} bytes sha256={}", backup.id, backup.size_bytes, backup.sha256);
//!
//! // Every backup of `app`, newest first.
//! for b in client.list_backups(BackupFilter::database("app")).await? {
//!     println!("{} {:?} {:?}", b.id, b.status, b.created_at);
//! }
//!
//! // Put `app` back as it was (a safety backup of what it is now is taken first) …
//! let restored = client.restore_backup(&backup.id, RestoreMode::Replace).await?;
//! println!("safety backup: {:?}", restored.safety_backup.map(|b| b.id));
//! // … or restore beside it, into a new database.
//! client.restore_backup(&backup.id, RestoreMode::new("app-yesterday")).await?;
//!
//! // Every 6 hours, keeping the last 10 and everything younger than a week.
//! let policy = BackupPolicy::new("app-6h", Selector::Database("app".into()), Schedule::Every(Duration::from_secs(6 * 3600)))
//!     .keep_last(10)
//!     .keep_within(Duration::from_secs(7 * 86400));
//! let (stored, _created) = client.set_backup_policy(policy).await?;
//! println!("next run {:?}", stored.next_run_at);
//! # Ok(())
//! # }
//! ```

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::{
    Backend, Client, Database, Result,
    admin::{duration, time},
    pb,
};

pub use pb::BackupStatus;

/// A `std` duration as protobuf's; one past protobuf's range saturates.
fn pb_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 999_999_999,
    })
}

fn labels_of(labels: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    labels.into_iter().collect()
}

/// The row (or key) count of one table in a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRowCount {
    /// The table.
    pub table: String,
    /// Rows it held at backup time.
    pub rows: u64,
}

/// What a backup holds, as its manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupManifest {
    /// Version of the backup format.
    pub format_version: u32,
    /// The engine's name.
    pub engine: String,
    /// The version the engine's server reported, e.g. `15.4` or `10.11.6-MariaDB`.
    pub engine_version: String,
    /// The gateway version that wrote it.
    pub gateway_version: String,
    /// Tables at backup time.
    pub tables: u32,
    /// Views at backup time.
    pub views: u32,
    /// Rows per table (SQL engines), in table order.
    pub row_counts: Vec<TableRowCount>,
    /// Rows in all tables, or keys for key-value engines.
    pub total_rows: u64,
    /// Bytes of the backup before compression.
    pub raw_bytes: u64,
}

impl From<pb::BackupManifest> for BackupManifest {
    fn from(m: pb::BackupManifest) -> Self {
        let pb::BackupManifest {
            format_version,
            engine,
            engine_version,
            gateway_version,
            tables,
            views,
            row_counts,
            total_rows,
            raw_bytes,
        } = m;
        BackupManifest {
            format_version,
            engine,
            engine_version,
            gateway_version,
            tables,
            views,
            row_counts: row_counts
                .into_iter()
                .map(|pb::TableRowCount { table, rows }| TableRowCount { table, rows })
                .collect(),
            total_rows,
            raw_bytes,
        }
    }
}

/// One backup.
#[derive(Debug, Clone, PartialEq)]
pub struct Backup {
    /// Its id, e.g. `bk-0192ab34cd56-7f3a09c1`.
    pub id: String,
    /// The database it is a backup of.
    pub database: String,
    /// That database's engine.
    pub backend: Backend,
    /// When it started.
    pub created_at: SystemTime,
    /// Bytes stored (compressed): final once completed, growing while running.
    pub size_bytes: u64,
    /// Lowercase hex SHA-256 of the stored bytes.
    pub sha256: String,
    /// What the stored object holds, e.g. `dbforge-backup/1 sqlite-file zstd`.
    pub format: String,
    /// The server-side target it went to.
    pub target: String,
    /// Where the stored object is, as a URL under the target.
    pub location: String,
    /// Where it stands.
    pub status: BackupStatus,
    /// How long it took (so far, while running).
    pub duration: Duration,
    /// Its labels; scheduled backups carry `dbforge.policy=<policy name>`.
    pub labels: BTreeMap<String, String>,
    /// Why it failed (empty unless [`BackupStatus::Failed`]).
    pub error: String,
    /// The manifest, once completed.
    pub manifest: Option<BackupManifest>,
}

impl From<pb::Backup> for Backup {
    fn from(b: pb::Backup) -> Self {
        let pb::Backup {
            id,
            database,
            backend,
            created_at,
            size_bytes,
            sha256,
            format,
            target,
            location,
            status,
            duration: took,
            labels,
            error,
            manifest,
        } = b;
        Backup {
            id,
            database,
            backend: Backend::try_from(backend).unwrap_or(Backend::Unspecified),
            created_at: time(created_at).unwrap_or(UNIX_EPOCH),
            size_bytes,
            sha256,
            format,
            target,
            location,
            status: BackupStatus::try_from(status).unwrap_or(BackupStatus::Unspecified),
            duration: duration(took),
            labels: labels_of(labels),
            error,
            manifest: manifest.map(Into::into),
        }
    }
}

/// Options of [`Client::create_backup`].
///
/// ```
/// use dbforge::CreateBackup;
/// let nightly = CreateBackup::default().target("s3-archive").label("kind", "nightly");
/// # let _ = nightly;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateBackup {
    /// A target configured on the server (`--backup-target name=url`); empty is the default.
    pub target: String,
    /// Labels of the backup (keys starting with `dbforge.` are reserved).
    pub labels: BTreeMap<String, String>,
}

impl CreateBackup {
    /// Stores it in the server's target named `name`.
    pub fn target(mut self, name: impl Into<String>) -> Self {
        self.target = name.into();
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// Which backups [`Client::list_backups`] returns; the default is every backup the key can see.
///
/// ```
/// use dbforge::{BackupFilter, BackupStatus};
/// let good = BackupFilter::database("app").status(BackupStatus::Completed).label("kind", "nightly");
/// # let _ = good;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupFilter {
    /// Only backups of this database (it may have been deleted since); empty for all.
    pub database: String,
    /// Only backups carrying all of these labels.
    pub labels: BTreeMap<String, String>,
    /// Only backups in this status; `Unspecified` for any.
    pub status: BackupStatus,
}

impl BackupFilter {
    /// The backups of one database.
    pub fn database(name: impl Into<String>) -> Self {
        BackupFilter {
            database: name.into(),
            ..Default::default()
        }
    }

    /// Only those carrying this label too.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Only those in `status`.
    pub fn status(mut self, status: BackupStatus) -> Self {
        self.status = status;
        self
    }
}

/// How [`Client::restore_backup`] treats the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreMode {
    /// Replace the database the backup came from, after a safety backup of it.
    Replace,
    /// Restore into a new database on the same engine, owned by the caller's key; the original
    /// is not touched.
    New {
        /// The new database's name.
        name: String,
        /// The new database's labels.
        labels: BTreeMap<String, String>,
    },
}

impl RestoreMode {
    /// [`RestoreMode::New`] without labels.
    pub fn new(name: impl Into<String>) -> Self {
        RestoreMode::New {
            name: name.into(),
            labels: BTreeMap::new(),
        }
    }
}

/// The answer of [`Client::restore_backup`].
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    /// The restored database.
    pub database: Database,
    /// For [`RestoreMode::Replace`], the backup taken of the database just before it was
    /// replaced: restore it to undo the restore.
    pub safety_backup: Option<Backup>,
    /// Rows (or keys) restored.
    pub rows: u64,
    /// How long the restore took.
    pub duration: Duration,
}

/// Which databases a [`BackupPolicy`] backs up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Exactly this database (the owner role on it suffices).
    Database(String),
    /// Database names matching a pattern where `*` stands for any characters (admin keys).
    Pattern(String),
    /// Databases carrying all of these labels (admin keys).
    Labels(BTreeMap<String, String>),
}

impl Selector {
    /// [`Selector::Labels`] from any pairs.
    pub fn labels<K: Into<String>, V: Into<String>>(
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Selector::Labels(
            labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl From<Selector> for pb::BackupSelector {
    fn from(s: Selector) -> Self {
        use pb::backup_selector::Selector as S;
        let selector = match s {
            Selector::Database(d) => S::Database(d),
            Selector::Pattern(p) => S::Pattern(p),
            Selector::Labels(labels) => S::Labels(pb::LabelSelector {
                labels: labels.into_iter().collect(),
            }),
        };
        pb::BackupSelector {
            selector: Some(selector),
        }
    }
}

/// When a [`BackupPolicy`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// At this interval (at least a minute), counted from the last run.
    Every(Duration),
    /// A cron expression in UTC: 5 fields (minute hour day-of-month month day-of-week), or 6
    /// with seconds first; `"0 3 * * *"` is 03:00 every day.
    Cron(String),
}

/// A schedule of backups with its retention: what [`Client::set_backup_policy`] takes and what
/// the policy calls answer. `updated_at`, `last_run_at`, `next_run_at` and `last_error` are set
/// by the server and ignored when sent.
///
/// ```
/// use std::time::Duration;
/// use dbforge::{BackupPolicy, Schedule, Selector};
/// let nightly = BackupPolicy::new("nightly", Selector::labels([("tier", "prod")]), Schedule::Cron("0 3 * * *".into()))
///     .keep_within(Duration::from_secs(30 * 86400))
///     .target("s3-archive");
/// # let _ = nightly;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BackupPolicy {
    /// Its name: 1 to 63 characters `a-z 0-9 _ -`, starting with a letter.
    pub name: String,
    /// Which databases.
    pub selector: Selector,
    /// When.
    pub schedule: Schedule,
    /// Keep the newest N completed backups of each database this policy made; 0 for no count
    /// rule. With `keep_within` too, a backup is kept when either rule keeps it.
    pub keep_last: u32,
    /// Keep the completed backups younger than this; `None` for no age rule. At least one of
    /// `keep_last` and `keep_within` must be set.
    pub keep_within: Option<Duration>,
    /// The server-side target; empty is the default target.
    pub target: String,
    /// When it was created or last replaced (set by the server).
    pub updated_at: Option<SystemTime>,
    /// When it last ran (set by the server).
    pub last_run_at: Option<SystemTime>,
    /// When it runs next (set by the server).
    pub next_run_at: Option<SystemTime>,
    /// The error of the last run, when it failed (set by the server).
    pub last_error: String,
}

impl BackupPolicy {
    /// A policy without retention yet: add [`keep_last`](Self::keep_last) or
    /// [`keep_within`](Self::keep_within) (the server needs one of them).
    pub fn new(name: impl Into<String>, selector: Selector, schedule: Schedule) -> Self {
        BackupPolicy {
            name: name.into(),
            selector,
            schedule,
            keep_last: 0,
            keep_within: None,
            target: String::new(),
            updated_at: None,
            last_run_at: None,
            next_run_at: None,
            last_error: String::new(),
        }
    }

    /// Keeps the newest `n` backups of each database.
    pub fn keep_last(mut self, n: u32) -> Self {
        self.keep_last = n;
        self
    }

    /// Keeps the backups younger than `age`.
    pub fn keep_within(mut self, age: Duration) -> Self {
        self.keep_within = Some(age);
        self
    }

    /// Stores its backups in the server's target named `name`.
    pub fn target(mut self, name: impl Into<String>) -> Self {
        self.target = name.into();
        self
    }
}

impl From<BackupPolicy> for pb::BackupPolicy {
    fn from(p: BackupPolicy) -> Self {
        let BackupPolicy {
            name,
            selector,
            schedule,
            keep_last,
            keep_within,
            target,
            // Output only: the server sets them.
            updated_at: _,
            last_run_at: _,
            next_run_at: _,
            last_error: _,
        } = p;
        pb::BackupPolicy {
            name,
            selector: Some(selector.into()),
            schedule: Some(match schedule {
                Schedule::Every(d) => pb::backup_policy::Schedule::Every(pb_duration(d)),
                Schedule::Cron(c) => pb::backup_policy::Schedule::Cron(c),
            }),
            keep_last,
            keep_within: keep_within.map(pb_duration),
            target,
            ..Default::default()
        }
    }
}

impl TryFrom<pb::BackupPolicy> for BackupPolicy {
    type Error = crate::Error;

    fn try_from(p: pb::BackupPolicy) -> Result<Self> {
        let pb::BackupPolicy {
            name,
            selector,
            schedule,
            keep_last,
            keep_within,
            target,
            updated_at,
            last_run_at,
            next_run_at,
            last_error,
        } = p;
        use pb::backup_selector::Selector as S;
        let selector = match selector.and_then(|s| s.selector) {
            Some(S::Database(d)) => Selector::Database(d),
            Some(S::Pattern(p)) => Selector::Pattern(p),
            Some(S::Labels(sel)) => Selector::Labels(labels_of(sel.labels)),
            None => {
                return Err(crate::Error::Protocol(format!(
                    "backup policy {name:?} has no selector"
                )));
            }
        };
        let schedule = match schedule {
            Some(pb::backup_policy::Schedule::Every(d)) => Schedule::Every(duration(Some(d))),
            Some(pb::backup_policy::Schedule::Cron(c)) => Schedule::Cron(c),
            None => {
                return Err(crate::Error::Protocol(format!(
                    "backup policy {name:?} has no schedule"
                )));
            }
        };
        Ok(BackupPolicy {
            name,
            selector,
            schedule,
            keep_last,
            keep_within: keep_within.map(|d| duration(Some(d))),
            target,
            updated_at: time(updated_at),
            last_run_at: time(last_run_at),
            next_run_at: time(next_run_at),
            last_error,
        })
    }
}

fn backup(b: Option<pb::Backup>) -> Result<Backup> {
    b.map(Into::into)
        .ok_or_else(|| crate::Error::Protocol("the response carries no backup".into()))
}

impl Client {
    /// Backs `database` up now and returns when the backup is stored (or failed).
    ///
    /// Errors: `PERMISSION_DENIED` without the owner role; `NOT_FOUND` for an unknown database
    /// or target; `UNAVAILABLE` when the target or the database's server cannot be reached (the
    /// failed backup is listed with status `Failed`); `ABORTED` while another backup of the
    /// same database runs. A large database takes a while, and a
    /// [`ClientOptions::timeout`](crate::ClientOptions::timeout) applies to it like to any call.
    pub async fn create_backup(&self, database: &str, opts: CreateBackup) -> Result<Backup> {
        let CreateBackup { target, labels } = opts;
        let resp = self
            .backups
            .clone()
            .create_backup(self.settings.request(pb::CreateBackupRequest {
                database: database.to_owned(),
                target,
                labels: labels.into_iter().collect(),
            }))
            .await?
            .into_inner();
        backup(resp.backup)
    }

    /// Looks a backup up. `NOT_FOUND` when it does not exist or is of a database the key cannot
    /// see.
    pub async fn get_backup(&self, id: &str) -> Result<Backup> {
        let resp = self
            .backups
            .clone()
            .get_backup(
                self.settings
                    .request(pb::GetBackupRequest { id: id.to_owned() }),
            )
            .await?
            .into_inner();
        backup(resp.backup)
    }

    /// Lists every backup that matches, newest first, following pages for you.
    pub async fn list_backups(&self, filter: BackupFilter) -> Result<Vec<Backup>> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let (page, next) = self.list_backups_page(&filter, &token, 0).await?;
            all.extend(page);
            match next {
                Some(t) => token = t,
                None => return Ok(all),
            }
        }
    }

    /// One page of backups (`page_size` 0: the server's default of 100; at most 1000) and the
    /// token of the next page, if any.
    pub async fn list_backups_page(
        &self,
        filter: &BackupFilter,
        page_token: &str,
        page_size: u32,
    ) -> Result<(Vec<Backup>, Option<String>)> {
        let BackupFilter {
            database,
            labels,
            status,
        } = filter.clone();
        let resp = self
            .backups
            .clone()
            .list_backups(self.settings.request(pb::ListBackupsRequest {
                database,
                labels: labels.into_iter().collect(),
                status: status as i32,
                page_size: i32::try_from(page_size).unwrap_or(i32::MAX),
                page_token: page_token.to_owned(),
            }))
            .await?
            .into_inner();
        let next = (!resp.next_page_token.is_empty()).then_some(resp.next_page_token);
        Ok((resp.backups.into_iter().map(Into::into).collect(), next))
    }

    /// Deletes a backup: its stored object, its manifest and its record. `NOT_FOUND` when it
    /// does not exist; `FAILED_PRECONDITION` while it is running.
    pub async fn delete_backup(&self, id: &str) -> Result<()> {
        self.delete_backup_with(id, false).await.map(drop)
    }

    /// Deletes a backup if it exists; returns whether it did.
    pub async fn delete_backup_if_exists(&self, id: &str) -> Result<bool> {
        self.delete_backup_with(id, true).await
    }

    async fn delete_backup_with(&self, id: &str, allow_missing: bool) -> Result<bool> {
        Ok(self
            .backups
            .clone()
            .delete_backup(self.settings.request(pb::DeleteBackupRequest {
                id: id.to_owned(),
                allow_missing,
            }))
            .await?
            .into_inner()
            .deleted)
    }

    /// Restores a completed backup, over the database it came from
    /// ([`RestoreMode::Replace`]: calls on it fail with `UNAVAILABLE` until the restored copy
    /// is swapped in) or into a new database ([`RestoreMode::New`]).
    ///
    /// Errors: `DATA_LOSS` when the stored backup does not match its checksum or manifest
    /// (nothing changed); `FAILED_PRECONDITION` for a backup that is not completed or a restore
    /// onto another engine; `ALREADY_EXISTS` when the new name is taken; `NOT_FOUND` for an
    /// unknown backup; `PERMISSION_DENIED`.
    pub async fn restore_backup(&self, id: &str, mode: RestoreMode) -> Result<Restored> {
        let (mode, new_name, labels) = match mode {
            RestoreMode::Replace => (pb::RestoreMode::Replace, String::new(), BTreeMap::new()),
            RestoreMode::New { name, labels } => (pb::RestoreMode::New, name, labels),
        };
        let pb::RestoreBackupResponse {
            database,
            safety_backup,
            rows,
            duration: took,
        } = self
            .backups
            .clone()
            .restore_backup(self.settings.request(pb::RestoreBackupRequest {
                backup_id: id.to_owned(),
                mode: mode as i32,
                new_name,
                labels: labels.into_iter().collect(),
            }))
            .await?
            .into_inner();
        Ok(Restored {
            database: database
                .map(Into::into)
                .ok_or_else(|| crate::Error::Protocol("the response carries no database".into()))?,
            safety_backup: safety_backup.map(Into::into),
            rows,
            duration: duration(took),
        })
    }

    /// Creates or replaces (by name) a backup policy; returns it as stored (with its next run)
    /// and whether it is new. `INVALID_ARGUMENT` for a bad schedule, selector or retention.
    pub async fn set_backup_policy(&self, policy: BackupPolicy) -> Result<(BackupPolicy, bool)> {
        let resp = self
            .backups
            .clone()
            .set_backup_policy(self.settings.request(pb::SetBackupPolicyRequest {
                policy: Some(policy.into()),
            }))
            .await?
            .into_inner();
        let policy = resp
            .policy
            .ok_or_else(|| crate::Error::Protocol("the response carries no policy".into()))?;
        Ok((policy.try_into()?, resp.created))
    }

    /// The backup policies the key can see, by name.
    pub async fn list_backup_policies(&self) -> Result<Vec<BackupPolicy>> {
        self.backups
            .clone()
            .list_backup_policies(self.settings.request(pb::ListBackupPoliciesRequest {}))
            .await?
            .into_inner()
            .policies
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    /// Deletes a backup policy (its backups stay). `NOT_FOUND` when it does not exist.
    pub async fn delete_backup_policy(&self, name: &str) -> Result<()> {
        self.delete_policy(name, false).await.map(drop)
    }

    /// Deletes a backup policy if it exists; returns whether it did.
    pub async fn delete_backup_policy_if_exists(&self, name: &str) -> Result<bool> {
        self.delete_policy(name, true).await
    }

    async fn delete_policy(&self, name: &str, allow_missing: bool) -> Result<bool> {
        Ok(self
            .backups
            .clone()
            .delete_backup_policy(self.settings.request(pb::DeleteBackupPolicyRequest {
                name: name.to_owned(),
                allow_missing,
            }))
            .await?
            .into_inner()
            .deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_round_trip_through_the_wire_without_their_output_fields() {
        let policy = BackupPolicy::new(
            "nightly",
            Selector::labels([("tier", "prod")]),
            Schedule::Cron("0 3 * * *".into()),
        )
        .keep_last(7)
        .keep_within(Duration::from_secs(86_400))
        .target("archive");
        let mut sent = policy.clone();
        sent.next_run_at = Some(UNIX_EPOCH);
        sent.last_error = "ignored".into();
        let wire = pb::BackupPolicy::from(sent);
        assert_eq!(wire.next_run_at, None, "output-only fields are not sent");
        assert!(wire.last_error.is_empty());
        assert_eq!(wire.keep_within.map(|d| d.seconds), Some(86_400));
        assert_eq!(BackupPolicy::try_from(wire).expect("converts back"), policy);
    }

    #[test]
    fn every_schedules_and_database_selectors_convert_both_ways() {
        let policy = BackupPolicy::new(
            "app",
            Selector::Database("app".into()),
            Schedule::Every(Duration::from_millis(90_500)),
        );
        let wire = pb::BackupPolicy::from(policy.clone());
        assert_eq!(
            wire.schedule,
            Some(pb::backup_policy::Schedule::Every(prost_types::Duration {
                seconds: 90,
                nanos: 500_000_000
            }))
        );
        assert_eq!(wire.keep_within, None, "no age rule is unset, not zero");
        assert_eq!(BackupPolicy::try_from(wire).expect("converts back"), policy);
    }

    #[test]
    fn a_policy_without_selector_or_schedule_is_a_protocol_error() {
        let err = BackupPolicy::try_from(pb::BackupPolicy {
            name: "x".into(),
            ..Default::default()
        })
        .expect_err("no selector");
        assert!(err.to_string().contains("no selector"), "{err}");
    }

    #[test]
    fn backups_convert_with_manifest_times_and_unknown_enums() {
        let b = Backup::from(pb::Backup {
            id: "bk-1".into(),
            database: "app".into(),
            backend: Backend::Sqlite as i32,
            created_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            status: 99,
            duration: Some(prost_types::Duration {
                seconds: 2,
                nanos: 0,
            }),
            manifest: Some(pb::BackupManifest {
                format_version: 1,
                row_counts: vec![pb::TableRowCount {
                    table: "t".into(),
                    rows: 3,
                }],
                total_rows: 3,
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(b.backend, Backend::Sqlite);
        assert_eq!(b.status, BackupStatus::Unspecified, "an unknown status");
        assert_eq!(
            b.created_at,
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert_eq!(b.duration, Duration::from_secs(2));
        let m = b.manifest.expect("manifest");
        assert_eq!(
            m.row_counts[0],
            TableRowCount {
                table: "t".into(),
                rows: 3
            }
        );
    }
}
