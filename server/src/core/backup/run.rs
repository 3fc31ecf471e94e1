//! Making a backup: the Forge's CreateBackup, GetBackup, ListBackups and DeleteBackup, the
//! pipeline from the engine through [`Packer`] to the target, and start-up recovery.

use std::{collections::BTreeMap, time::Instant};

use futures::StreamExt;
use tokio::{io::AsyncReadExt, sync::mpsc};
use tracing::{info, warn};

use super::{
    BackupFilter, BackupPage, BackupRecord, BackupStatus, FORMAT_VERSION, Manifest, Payload,
    check_id,
    format::{pack_on_thread, sha256_hex},
    new_id,
    records::Finish,
    store::Target,
};
use crate::{
    backend::{Database, StatementLimits},
    core::{
        access::{Principal, Role},
        engine::BackendKind,
        error::{Error, Result},
        events::{EventKind, Subject},
        forge::Forge,
        names::validate_labels,
        registry::{Entry, blocking, now_ms},
        schema::TableKind,
        value::Statement,
    },
    metrics as names,
};

/// Bytes read from a SQLite image per piece.
const IMAGE_PIECE: usize = 256 << 10;

/// Who asked for a backup, which decides how a busy database is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// A caller: a backup already running is ABORTED.
    Call,
    /// A policy or a restore's safety backup: wait for the running one.
    Wait,
}

impl Forge {
    /// Backs up `db` now.
    pub async fn create_backup(
        &self,
        who: &Principal,
        db: &str,
        target: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<BackupRecord> {
        let (entry, _) = self.authorized(who, db, Role::Owner)?;
        validate_labels(&labels)?;
        if let Some(k) = labels.keys().find(|k| k.starts_with("dbforge.")) {
            return Err(Error::invalid(
                "labels",
                format!("label {k:?}: keys starting with \"dbforge.\" are reserved"),
            ));
        }
        entry.check_fence()?;
        let rec = self
            .backup_entry(&entry, target, labels, None, Trigger::Call)
            .await?;
        self.backed_up(&rec, who.key_id()).await;
        Ok(rec)
    }

    /// Publishes the `backed_up` event of `rec`, caused by `key_id`.
    pub(super) async fn backed_up(&self, rec: &BackupRecord, key_id: &str) {
        let cause = match rec.labels.get(super::POLICY_LABEL) {
            Some(policy) => format!("backup={} policy={policy}", rec.id),
            None => format!("backup={}", rec.id),
        };
        self.events()
            .publish(
                EventKind::BackedUp,
                Subject {
                    database: &rec.database,
                    backend: rec.backend,
                    labels: &rec.db_labels,
                    owner: rec.db_owner.as_deref(),
                },
                cause,
                key_id,
            )
            .await;
    }

    /// Backs up `entry` to `target` (the default for ""), holding the database's backup lock.
    pub(crate) async fn backup_entry(
        &self,
        entry: &Entry,
        target: &str,
        labels: BTreeMap<String, String>,
        policy: Option<&str>,
        trigger: Trigger,
    ) -> Result<BackupRecord> {
        let name = entry.record.provisioned.name.as_str().to_owned();
        let lock = self.backups().lock(&name);
        let _held = match trigger {
            Trigger::Call => lock.try_lock_owned().map_err(|_| {
                Error::Aborted(format!(
                    "a backup or restore of database {name:?} is running; retry when it ends"
                ))
            })?,
            Trigger::Wait => lock.lock_owned().await,
        };
        let rec = self.backup_locked(entry, target, labels, policy).await?;
        // The gateway's own backups (policies, final backups before a prune); a caller's are
        // published by CreateBackup with its key.
        if trigger == Trigger::Wait {
            self.backed_up(&rec, crate::core::lifecycle::GATEWAY_KEY)
                .await;
        }
        Ok(rec)
    }

    /// [`backup_entry`](Self::backup_entry) for a caller already holding the lock.
    pub(super) async fn backup_locked(
        &self,
        entry: &Entry,
        target: &str,
        labels: BTreeMap<String, String>,
        policy: Option<&str>,
    ) -> Result<BackupRecord> {
        let target = self.backups().targets().get(target)?;
        let backend = entry.backend()?;
        let kind = backend.kind();
        let started = Instant::now();
        let created_ms = monotonic_ms();
        let id = new_id(created_ms)?;
        let db = entry.record.provisioned.name.as_str();
        let mut rec = BackupRecord {
            id: id.clone(),
            database: db.to_owned(),
            backend: kind,
            db_owner: entry.record.owner.clone(),
            db_labels: entry.record.labels.clone(),
            created_ms,
            finished_ms: None,
            status: BackupStatus::Running,
            target: target.name.clone(),
            object: format!("{db}/{id}.zst"),
            format: Payload::of(kind).format(),
            size_bytes: 0,
            sha256: String::new(),
            manifest: None,
            manifest_sha256: String::new(),
            labels,
            policy: policy.map(str::to_owned),
            error: None,
        };
        let cat = self.catalog();
        let r = rec.clone();
        blocking(move || cat.backup_insert(&r)).await?;
        self.backups().set_progress(&id, Some(0));
        let outcome = self.write_backup(entry, &target, &rec).await;
        self.backups().set_progress(&id, None);
        let elapsed = started.elapsed();
        let finished_ms = now_ms();
        let outcome_name = if outcome.is_ok() {
            "completed"
        } else {
            "failed"
        };
        metrics::counter!(names::BACKUPS_TOTAL, "backend" => kind.as_str(), "outcome" => outcome_name)
            .increment(1);
        metrics::histogram!(names::BACKUP_DURATION_SECONDS, "backend" => kind.as_str(), "outcome" => outcome_name)
            .record(elapsed.as_secs_f64());
        match outcome {
            Ok((manifest, manifest_sha)) => {
                metrics::counter!(names::BACKUP_BYTES_TOTAL, "backend" => kind.as_str())
                    .increment(manifest.size_bytes);
                rec.status = BackupStatus::Completed;
                rec.finished_ms = Some(finished_ms);
                rec.size_bytes = manifest.size_bytes;
                rec.sha256 = manifest.sha256.clone();
                rec.manifest_sha256 = manifest_sha;
                rec.manifest = Some(manifest);
                let (cat, r) = (self.catalog(), rec.clone());
                blocking(move || {
                    cat.backup_finish(
                        &r.id,
                        &Finish {
                            status: BackupStatus::Completed,
                            finished_ms,
                            size_bytes: r.size_bytes,
                            sha256: &r.sha256,
                            manifest: r.manifest.as_ref(),
                            manifest_sha256: &r.manifest_sha256,
                            error: None,
                        },
                    )
                })
                .await?;
                metrics::gauge!(names::BACKUP_NEWEST_AGE_SECONDS, "database" => db.to_owned())
                    .set(0.0);
                info!(
                    db,
                    backup = %rec.id,
                    bytes = rec.size_bytes,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "backup completed"
                );
                Ok(rec)
            }
            Err(err) => {
                // Nothing of a failed backup stays in the target.
                for object in [rec.object.clone(), rec.manifest_object()] {
                    if let Err(e) = target.delete(&object).await {
                        warn!(backup = %rec.id, error = %e, "could not remove a failed backup's object; it is not listed as complete");
                    }
                    target.remove_partials(&object);
                }
                let message = err.to_string();
                let (cat, bid, m) = (self.catalog(), rec.id.clone(), message.clone());
                blocking(move || {
                    cat.backup_finish(
                        &bid,
                        &Finish {
                            status: BackupStatus::Failed,
                            finished_ms,
                            size_bytes: 0,
                            sha256: "",
                            manifest: None,
                            manifest_sha256: "",
                            error: Some(&m),
                        },
                    )
                })
                .await?;
                warn!(db, backup = %rec.id, error = %message, "backup failed");
                Err(err)
            }
        }
    }

    /// Streams the backup of `entry` into `target` and stores its manifest; returns the
    /// manifest and its SHA-256.
    async fn write_backup(
        &self,
        entry: &Entry,
        target: &Target,
        rec: &BackupRecord,
    ) -> Result<(Manifest, String)> {
        let database = self.open_entry(entry).await?;
        let limits = self.limits().transfer();
        let engine_version = engine_version(&*database, rec.backend, &limits).await;
        let mut upload = target.upload(&rec.object).await?;
        let payload = Payload::of(rec.backend);
        // Engine → packing thread → target, the three at once.
        let (raw, stored, packing) = pack_on_thread(self.backups().cfg.compression_level)?;
        let produce = async {
            match payload {
                Payload::SqliteFile => self.read_image(&*database, rec, raw).await,
                Payload::SqlScript | Payload::KeyRecords | Payload::Quads => {
                    read_dump(&*database, raw, &limits).await
                }
            }
        };
        let ship = async {
            // Owned here, so an upload that fails closes the channel and stops the others.
            let mut stored = stored;
            let mut sent = 0u64;
            while let Some(piece) = stored.recv().await {
                upload.write(target, &piece).await?;
                sent += piece.len() as u64;
                self.backups().set_progress(&rec.id, Some(sent));
            }
            Ok::<_, Error>(())
        };
        let (produced, shipped) = tokio::join!(produce, ship);
        let packed = packing.await.map_err(Error::internal).and_then(|r| r);
        // The first cause wins: a side that stopped early makes the others fail only because
        // their channel closed.
        let outcome = match (shipped, packed, produced) {
            (Err(e), _, _) => Err(e),
            (Ok(()), Err(e), _) => Err(e),
            (Ok(()), Ok(_), Err(e)) => Err(e),
            (Ok(()), Ok(packer), Ok(w)) => Ok((packer, w)),
        };
        let (packer, (row_counts, total_rows, views)) = match outcome {
            Ok(o) => o,
            Err(e) => {
                upload.abort().await;
                return Err(e);
            }
        };
        upload.finish(target).await?;
        let tables = match payload {
            Payload::KeyRecords | Payload::Quads => 0,
            _ => row_counts.len() as u32,
        };
        let views = match (payload, views) {
            (Payload::SqlScript, _) => count_views(&*database, &limits).await,
            (_, v) => v,
        };
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            backup_id: rec.id.clone(),
            database: rec.database.clone(),
            engine: rec.backend.as_str().to_owned(),
            engine_version,
            gateway_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_ms: rec.created_ms,
            payload,
            size_bytes: packer.stored_bytes(),
            sha256: packer.sha256(),
            raw_bytes: packer.raw_bytes(),
            tables,
            views,
            row_counts,
            total_rows,
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(Error::internal)?;
        let manifest_sha = sha256_hex(&json);
        target.put(&rec.manifest_object(), json).await?;
        Ok((manifest, manifest_sha))
    }

    /// SQLite: an online-backup copy in the scratch directory, streamed and removed.
    async fn read_image(
        &self,
        database: &dyn Database,
        rec: &BackupRecord,
        raw: mpsc::Sender<Vec<u8>>,
    ) -> Result<(Vec<(String, u64)>, u64, u32)> {
        let path = self
            .backups()
            .cfg
            .scratch_dir
            .join(format!("{}.sqlite", rec.id));
        let _cleanup = RemoveOnDrop(path.clone());
        let summary = database.backup_image(path.clone()).await?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(Error::internal)?;
        loop {
            let mut buf = vec![0u8; IMAGE_PIECE];
            let n = file.read(&mut buf).await.map_err(Error::internal)?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            raw.send(buf).await.map_err(|_| packing_stopped())?;
        }
        let total = summary.tables.iter().map(|(_, n)| n).sum();
        Ok((summary.tables, total, summary.views))
    }

    /// Whether `who` may see backups of the database a record names: by the database's
    /// current grants while it exists, by those it had at backup time once it is gone.
    fn may_see(&self, who: &Principal, rec: &BackupRecord, needed: Role) -> Result<()> {
        let (labels, owner) = match self.registry().get(&rec.database) {
            Ok(e) => (e.record.labels.clone(), e.record.owner.clone()),
            Err(_) => (rec.db_labels.clone(), rec.db_owner.clone()),
        };
        who.require(needed, &rec.database, &labels, owner.as_deref())
            .map(drop)
    }

    /// A backup `who` may see with `needed`; one it may not see is NOT_FOUND, so ids of others'
    /// backups do not leak.
    pub(super) async fn visible_backup(
        &self,
        who: &Principal,
        id: &str,
        needed: Role,
    ) -> Result<BackupRecord> {
        check_id(id)?;
        let (cat, bid) = (self.catalog(), id.to_owned());
        let not_found = || Error::NotFound {
            what: "backup",
            name: id.to_owned(),
        };
        let rec = blocking(move || cat.backup_get(&bid))
            .await?
            .ok_or_else(not_found)?;
        match self.may_see(who, &rec, Role::Read) {
            Ok(()) => {}
            Err(_) => return Err(not_found()),
        }
        self.may_see(who, &rec, needed)?;
        Ok(self.backups().with_progress(rec))
    }

    /// One backup.
    pub async fn get_backup(&self, who: &Principal, id: &str) -> Result<BackupRecord> {
        self.visible_backup(who, id, Role::Read).await
    }

    /// A page of the backups `who` can see, newest first.
    pub async fn list_backups(&self, who: &Principal, filter: BackupFilter) -> Result<BackupPage> {
        let this = self.clone();
        let who = who.clone();
        let page_size = filter.page_size.max(1);
        let backups = blocking(move || {
            let after = filter.after.as_ref().map(|(m, i)| (*m, i.as_str()));
            this.catalog().backup_scan(
                filter.database.as_deref(),
                filter.status,
                after,
                page_size + 1,
                |rec| {
                    filter
                        .labels
                        .iter()
                        .all(|(k, v)| rec.labels.get(k) == Some(v))
                        && this.may_see(&who, rec, Role::Read).is_ok()
                },
            )
        })
        .await?;
        let mut backups: Vec<_> = backups
            .into_iter()
            .map(|r| self.backups().with_progress(r))
            .collect();
        let next = if backups.len() > page_size {
            backups.truncate(page_size);
            backups.last().map(|b| (b.created_ms, b.id.clone()))
        } else {
            None
        };
        Ok(BackupPage { backups, next })
    }

    /// Deletes a backup: its objects, then its record. Returns false when it did not exist and
    /// `allow_missing` is set.
    pub async fn delete_backup(
        &self,
        who: &Principal,
        id: &str,
        allow_missing: bool,
    ) -> Result<bool> {
        let rec = match self.visible_backup(who, id, Role::Owner).await {
            Ok(r) => r,
            Err(Error::NotFound { .. }) if allow_missing => return Ok(false),
            Err(e) => return Err(e),
        };
        if rec.status == BackupStatus::Running {
            return Err(Error::FailedPrecondition(format!(
                "backup {id} is still running; delete it when it ends"
            )));
        }
        self.remove_backup(&rec).await?;
        Ok(true)
    }

    /// Removes a backup's objects and record.
    pub(super) async fn remove_backup(&self, rec: &BackupRecord) -> Result<()> {
        // A target that is no longer configured keeps its objects; the record still goes.
        if let Ok(target) = self.backups().targets().get(&rec.target) {
            target.delete(&rec.object).await?;
            target.delete(&rec.manifest_object()).await?;
        }
        let (cat, id) = (self.catalog(), rec.id.clone());
        blocking(move || cat.backup_remove(&id)).await
    }

    /// At start-up: backups a crash left running are marked failed and their partial objects
    /// removed.
    pub(crate) async fn recover_backups(&self) {
        let cat = self.catalog();
        let running = match blocking(move || {
            cat.backup_scan(None, Some(BackupStatus::Running), None, usize::MAX, |_| {
                true
            })
        })
        .await
        {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "could not read running backups");
                return;
            }
        };
        for rec in running {
            if let Ok(target) = self.backups().targets().get(&rec.target) {
                for object in [rec.object.clone(), rec.manifest_object()] {
                    if let Err(e) = target.delete(&object).await {
                        warn!(backup = %rec.id, error = %e, "could not remove an interrupted backup's object");
                    }
                    target.remove_partials(&object);
                }
            }
            let (cat, id) = (self.catalog(), rec.id.clone());
            let done = blocking(move || {
                cat.backup_finish(
                    &id,
                    &Finish {
                        status: BackupStatus::Failed,
                        finished_ms: now_ms(),
                        size_bytes: 0,
                        sha256: "",
                        manifest: None,
                        manifest_sha256: "",
                        error: Some("interrupted: the gateway stopped during the backup"),
                    },
                )
            })
            .await;
            match done {
                Ok(()) => {
                    warn!(backup = %rec.id, db = %rec.database, "marked a backup the gateway was stopped during as failed")
                }
                Err(e) => {
                    warn!(backup = %rec.id, error = %e, "could not mark an interrupted backup failed")
                }
            }
        }
    }
}

/// The current time in ms, later than any earlier call's: backups sort by it, newest first,
/// and retention counts on that order even for backups started within one millisecond.
fn monotonic_ms() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = now_ms();
    let prev = LAST
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(prev + 1)
}

/// Dump engines: the dump stream, handed to the packing thread as it comes.
async fn read_dump(
    database: &dyn Database,
    raw: mpsc::Sender<Vec<u8>>,
    limits: &StatementLimits,
) -> Result<(Vec<(String, u64)>, u64, u32)> {
    let mut dump = database.backup_dump(limits.clone()).await?;
    let (mut tables, mut total) = (Vec::new(), 0u64);
    while let Some(chunk) = dump.next().await {
        let chunk = chunk?;
        total += chunk.rows;
        if !chunk.tables.is_empty() {
            tables = chunk.tables;
        }
        raw.send(chunk.data).await.map_err(|_| packing_stopped())?;
    }
    Ok((tables, total, 0))
}

/// What a producer reports when the packing thread stopped taking pieces; the packer's or the
/// upload's own error is the one the caller sees.
fn packing_stopped() -> Error {
    Error::Unavailable("the backup's packing stopped".into())
}

/// The engine server's version, or "" when it will not say.
async fn engine_version(
    database: &dyn Database,
    kind: BackendKind,
    limits: &StatementLimits,
) -> String {
    let sql = match kind {
        BackendKind::Sqlite => "SELECT sqlite_version()",
        BackendKind::Postgres => "SHOW server_version",
        BackendKind::Mysql => "SELECT VERSION()",
        BackendKind::Redis | BackendKind::Graph => return String::new(),
    };
    let limits = StatementLimits {
        read_only: true,
        ..limits.clone()
    };
    match database.execute(Statement::new(sql), &limits).await {
        Ok(r) => r
            .rows
            .first()
            .and_then(|row| row.first())
            .map(|v| match v {
                crate::core::value::Value::Text(t) => t.clone(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Views of a SQL database, from its schema ("" engines without one: 0).
async fn count_views(database: &dyn Database, limits: &StatementLimits) -> u32 {
    match database.schema(None, limits).await {
        Ok(s) => s
            .tables
            .iter()
            .filter(|t| t.kind == TableKind::View)
            .count() as u32,
        Err(_) => 0,
    }
}

/// Removes a scratch file when dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}
