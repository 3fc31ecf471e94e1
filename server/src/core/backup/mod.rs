//! Backups and restores: on demand and on schedules, to a directory or object storage,
//! compressed, checksummed, and verified before anything is restored.
//!
//! # What a backup is
//!
//! One object `<database>/<id>.zst` in a target (`store.rs`), and its manifest
//! `<database>/<id>.manifest.json` beside it. The object is one zstd frame ([`format`]) over the
//! engine's own bytes: SQLite's file copied with the online backup API
//! ([`Database::backup_image`](crate::backend::Database::backup_image)), PostgreSQL's and
//! MySQL's dump script read in one REPEATABLE READ read-only transaction, Redis' NDJSON key
//! records ([`Database::dump`](crate::backend::Database::dump)). The catalog keeps the SHA-256 and
//! size of the object and the SHA-256 of the manifest; a restore checks the manifest against
//! its hash and the backup it names, and the object against its hash as it streams it. Any
//! mismatch is [`Error::DataLoss`], and the restore is dropped before anyone sees it.
//!
//! # The life of a backup
//!
//! The catalog row is written `running` before the first byte is uploaded and `completed` only
//! after the object and the manifest are stored. A failure removes what was uploaded and marks
//! the row `failed` with its error. A gateway killed mid-backup leaves a `running` row: the next
//! start marks it failed and removes the partial object (`Forge::recover_backups`). One lock
//! per database name (`Backups::lock`) keeps two backups (or a backup and a restore) of one
//! database from running at once.
//!
//! # Restores
//!
//! A restore never writes into a database anyone uses: it builds a new database of the same
//! engine beside the original (a *staging* database, recorded in the catalog so that a crash
//! removes it), replays the backup into it, checks the checksum at the end, and only then either
//! swaps it in under the original's name (REPLACE, after a safety backup of the original) or
//! registers it under its new name (NEW). See `restore.rs`.
//!
//! Files: `format.rs` (zstd and SHA-256), `store.rs` (targets), `records.rs` (catalog rows),
//! `run.rs` (making a backup), `restore.rs`, `policy.rs` (schedules, retention, the scheduler).

mod format;
mod policy;
mod records;
mod restore;
mod run;
mod store;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub use policy::{Policy, PolicySpec, Retention, Schedule, Selector};
pub use restore::{RestoreMode, RestoreReport};
pub(crate) use run::Trigger;
pub use store::{DEFAULT_TARGET, Targets};

use super::{
    engine::BackendKind,
    error::{Error, Result},
};

/// The version of the backup format this gateway writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Settings of backups.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// Named targets (`name`, `url`); `local` defaults to `default_dir`.
    pub targets: Vec<(String, String)>,
    /// The directory of the default target.
    pub default_dir: PathBuf,
    /// Scratch space for SQLite images and restores (on the data directory's file system).
    pub scratch_dir: PathBuf,
    /// How often the scheduler looks for due policies.
    pub tick: Duration,
    /// Scheduled backups running at once, at most (of different databases).
    pub concurrency: usize,
    /// The zstd level of new backups (`--backup-compression-level`).
    pub compression_level: i32,
}

/// Where a backup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupStatus {
    /// Being written.
    Running,
    /// Stored and verified.
    Completed,
    /// Did not complete.
    Failed,
}

impl BackupStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(Self::Running),
            "completed" => Some(Self::Completed),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// What an engine's backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Payload {
    /// A SQLite database file.
    SqliteFile,
    /// A SQL script (DumpDatabase's), replayed in one transaction.
    SqlScript,
    /// NDJSON key records (DumpDatabase's for key-value engines).
    KeyRecords,
    /// N-Quads (the graph engine's DumpDatabase), loaded line batch by line batch like key
    /// records.
    Quads,
}

impl Payload {
    fn of(kind: BackendKind) -> Self {
        match kind {
            BackendKind::Sqlite => Self::SqliteFile,
            BackendKind::Redis => Self::KeyRecords,
            BackendKind::Graph => Self::Quads,
            BackendKind::Postgres | BackendKind::Mysql => Self::SqlScript,
        }
    }

    /// The `format` string of a backup.
    pub fn format(self) -> String {
        let what = match self {
            Self::SqliteFile => "sqlite-file",
            Self::SqlScript => "sql-script",
            Self::KeyRecords => "redis-ndjson",
            Self::Quads => "graph-nquads",
        };
        format!("dbforge-backup/{FORMAT_VERSION} {what} zstd")
    }
}

/// The manifest stored beside a backup (JSON) and kept in its catalog row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The backup it describes.
    pub backup_id: String,
    /// The database's name.
    pub database: String,
    /// The engine (`sqlite`, `postgres`, `mysql`, `redis`).
    pub engine: String,
    /// The engine server's version.
    pub engine_version: String,
    /// The gateway's version.
    pub gateway_version: String,
    /// When the backup started, Unix ms.
    pub created_ms: i64,
    /// What the object holds.
    pub payload: Payload,
    /// Stored bytes of the object.
    pub size_bytes: u64,
    /// SHA-256 of the object.
    pub sha256: String,
    /// Bytes before compression.
    pub raw_bytes: u64,
    /// Tables.
    pub tables: u32,
    /// Views.
    pub views: u32,
    /// Rows per table, in dump order.
    pub row_counts: Vec<(String, u64)>,
    /// Rows in all tables, or keys.
    pub total_rows: u64,
}

/// One backup, as the catalog keeps it.
#[derive(Debug, Clone)]
pub struct BackupRecord {
    /// Its id.
    pub id: String,
    /// The database's name (which may since have been deleted).
    pub database: String,
    /// The database's engine.
    pub backend: BackendKind,
    /// The key that owned the database then, for access checks after it is gone.
    pub db_owner: Option<String>,
    /// The database's labels then, for access checks after it is gone.
    pub db_labels: BTreeMap<String, String>,
    /// Start, Unix ms.
    pub created_ms: i64,
    /// End, Unix ms.
    pub finished_ms: Option<i64>,
    /// Where it stands.
    pub status: BackupStatus,
    /// The target's name.
    pub target: String,
    /// The object's name under the target.
    pub object: String,
    /// Format string.
    pub format: String,
    /// Stored bytes (so far, while running).
    pub size_bytes: u64,
    /// SHA-256 of the object, once completed.
    pub sha256: String,
    /// The manifest, once completed.
    pub manifest: Option<Manifest>,
    /// SHA-256 of the stored manifest.
    pub manifest_sha256: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The policy that made it.
    pub policy: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl BackupRecord {
    /// The manifest's object name.
    pub fn manifest_object(&self) -> String {
        manifest_object(&self.object)
    }
}

fn manifest_object(object: &str) -> String {
    let stem = object.strip_suffix(".zst").unwrap_or(object);
    format!("{stem}.manifest.json")
}

/// The label scheduled backups carry: the policy's name.
pub const POLICY_LABEL: &str = "dbforge.policy";
/// The label a safety backup carries: the id of the backup whose restore it preceded.
pub const SAFETY_LABEL: &str = "dbforge.safety-before-restore-of";

/// A ListBackups request.
#[derive(Debug, Clone, Default)]
pub struct BackupFilter {
    /// Only this database.
    pub database: Option<String>,
    /// Only backups with all these labels.
    pub labels: BTreeMap<String, String>,
    /// Only this status.
    pub status: Option<BackupStatus>,
    /// Page size (already capped).
    pub page_size: usize,
    /// Continue after this (created_ms, id), newest first.
    pub after: Option<(i64, String)>,
}

/// One page of backups.
#[derive(Debug, Clone)]
pub struct BackupPage {
    /// Newest first.
    pub backups: Vec<BackupRecord>,
    /// Where the next page starts, when there is one.
    pub next: Option<(i64, String)>,
}

/// The state backups share: targets, the lock per database, progress of running backups.
#[derive(Debug)]
pub struct Backups {
    cfg: BackupConfig,
    targets: Targets,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Stored bytes of running backups, by id.
    progress: Mutex<HashMap<String, u64>>,
    /// Wakes the scheduler when policies change or at shutdown.
    wake: tokio::sync::Notify,
    stopped: std::sync::atomic::AtomicBool,
}

impl Backups {
    /// Scratch space on the data directory's file system (SQLite images; forks use it too).
    pub(crate) fn scratch_dir(&self) -> &std::path::Path {
        &self.cfg.scratch_dir
    }

    /// Opens the targets.
    pub fn open(cfg: BackupConfig) -> Result<Self> {
        std::fs::create_dir_all(&cfg.scratch_dir).map_err(Error::internal)?;
        Ok(Self {
            targets: Targets::open(&cfg.targets, &cfg.default_dir)?,
            cfg,
            locks: Mutex::default(),
            progress: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            stopped: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Stops the scheduler (at shutdown).
    pub fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_waiters();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// Where a backup's object is, for people ("" when its target is no longer configured).
    pub fn location(&self, rec: &BackupRecord) -> String {
        self.targets
            .get(&rec.target)
            .map(|t| t.location(&rec.object))
            .unwrap_or_default()
    }

    /// The lock that keeps one backup or restore per database name at a time.
    fn lock(&self, database: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Forget locks nobody holds, so the map stays as small as the work in progress.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        Arc::clone(locks.entry(database.to_owned()).or_default())
    }

    fn set_progress(&self, id: &str, bytes: Option<u64>) {
        let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        match bytes {
            Some(b) => {
                p.insert(id.to_owned(), b);
            }
            None => {
                p.remove(id);
            }
        }
    }

    /// A running backup's stored bytes so far, into its record.
    fn with_progress(&self, mut rec: BackupRecord) -> BackupRecord {
        if rec.status == BackupStatus::Running
            && let Some(b) = self
                .progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&rec.id)
        {
            rec.size_bytes = *b;
        }
        rec
    }
}

/// A new backup id: `bk-` and 12 hex digits of the start time in ms (so ids sort by time),
/// then 8 random hex digits.
pub(crate) fn new_id(now_ms: i64) -> Result<String> {
    let mut r = [0u8; 4];
    getrandom::fill(&mut r).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    Ok(format!("bk-{:012x}-{}", now_ms.max(0), format::hex(&r)))
}

/// Whether `id` could be a backup id (so that a malformed one is INVALID_ARGUMENT, not a
/// lookup).
fn check_id(id: &str) -> Result<()> {
    let ok = id.len() == 24
        && id.starts_with("bk-")
        && id.as_bytes()[15] == b'-'
        && id[3..15].bytes().all(|b| b.is_ascii_hexdigit())
        && id[16..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "id",
            format!("{id:?} is not a backup id (bk-<12 hex>-<8 hex>)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_parse() {
        let a = new_id(1_000).expect("id");
        let b = new_id(2_000).expect("id");
        assert!(a < b);
        check_id(&a).expect("valid");
        assert!(check_id("bk-xyz").is_err());
        assert!(check_id("../../etc/passwd").is_err());
        assert_eq!(
            manifest_object("db/bk-1.zst"),
            "db/bk-1.manifest.json".to_owned()
        );
    }
}
