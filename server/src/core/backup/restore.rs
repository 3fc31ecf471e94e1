//! Restores: a backup replayed into a staging database beside the original, verified, then
//! swapped in (REPLACE) or registered under a new name (NEW).
//!
//! The checksum is checked as the object streams in, so a damaged backup is found at the
//! latest at its end; since everything before that went into the staging database, which is
//! then dropped, the database the caller uses is never touched by a backup that fails the
//! check. An error while replaying (a statement the engine refuses) is followed by reading the
//! rest of the object: when the object turns out damaged the answer is DATA_LOSS, whatever
//! the first error said.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration, time::Instant};

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

use super::{
    BackupRecord, BackupStatus, FORMAT_VERSION, Manifest, Payload, SAFETY_LABEL,
    format::{Unpacker, sha256_hex},
    store::Target,
};
use crate::{
    backend::{Database, Provisioned, StatementLimits},
    core::{
        access::{Principal, Role},
        error::{Error, Result},
        events::{EventKind, Subject},
        forge::{DatabaseInfo, DatabaseSpec, Forge},
        lifecycle::LifecycleSpec,
        names::DatabaseName,
        registry::Entry,
        replay::{self, RawPieces},
    },
    metrics as names,
};

/// How a restore treats the database.
#[derive(Debug, Clone)]
pub enum RestoreMode {
    /// Replace the database the backup came from.
    Replace,
    /// Restore into a new database.
    New {
        /// Its name.
        name: DatabaseName,
        /// Its labels.
        labels: BTreeMap<String, String>,
        /// Its TTL, idle TTL and final backup (ForkDatabase's; RestoreBackup sets none).
        lifecycle: LifecycleSpec,
    },
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The restored database.
    pub database: DatabaseInfo,
    /// REPLACE: the backup taken just before.
    pub safety: Option<BackupRecord>,
    /// Rows (or keys) restored, as the manifest counts them.
    pub rows: u64,
    /// How long it took.
    pub duration: Duration,
}

impl Forge {
    /// Restores backup `id`.
    pub async fn restore_backup(
        &self,
        who: &Principal,
        id: &str,
        mode: RestoreMode,
    ) -> Result<RestoreReport> {
        let cause = format!("backup={id}");
        self.restore_backup_as(who, who.key_id(), &cause, id, mode)
            .await
    }

    /// [`restore_backup`](Self::restore_backup) with its `restored` event credited to
    /// `key_id` with `cause` (the gateway's own restores of damaged databases).
    pub(crate) async fn restore_backup_as(
        &self,
        who: &Principal,
        key_id: &str,
        cause: &str,
        id: &str,
        mode: RestoreMode,
    ) -> Result<RestoreReport> {
        let started = Instant::now();
        let rec = self.visible_backup(who, id, Role::Owner).await?;
        if rec.status != BackupStatus::Completed {
            return Err(Error::FailedPrecondition(format!(
                "backup {id} is {}, not completed: only completed backups can be restored",
                rec.status.as_str()
            )));
        }
        let target = self.backups().targets().get(&rec.target).map_err(|_| {
            Error::FailedPrecondition(format!(
                "backup {id} is in target {:?}, which this server no longer configures",
                rec.target
            ))
        })?;
        let manifest = check_manifest(&rec, &target).await?;
        let mode_name = match mode {
            RestoreMode::Replace => "replace",
            RestoreMode::New { .. } => "new",
        };
        let result = match mode {
            RestoreMode::Replace => self.restore_replace(&rec, &manifest, &target).await,
            RestoreMode::New {
                name,
                labels,
                lifecycle,
            } => {
                let spec = DatabaseSpec {
                    name,
                    backend: rec.backend,
                    if_not_exists: false,
                    lifecycle,
                    labels,
                };
                self.restore_new(who, &rec, &manifest, &target, spec).await
            }
        };
        let outcome = if result.is_ok() {
            "completed"
        } else {
            "failed"
        };
        metrics::counter!(names::RESTORES_TOTAL, "backend" => rec.backend.as_str(), "mode" => mode_name, "outcome" => outcome)
            .increment(1);
        let (entry, safety) = result?;
        self.events()
            .publish(
                EventKind::Restored,
                Subject::of(&entry.record),
                cause.to_owned(),
                key_id,
            )
            .await;
        info!(backup = %rec.id, db = %entry.record.provisioned.name, mode = mode_name, elapsed_ms = started.elapsed().as_millis() as u64, "backup restored");
        Ok(RestoreReport {
            database: entry.info(entry.size().await),
            safety,
            rows: manifest.total_rows,
            duration: started.elapsed(),
        })
    }

    async fn restore_replace(
        &self,
        rec: &BackupRecord,
        manifest: &Manifest,
        target: &Target,
    ) -> Result<(Arc<Entry>, Option<BackupRecord>)> {
        let registry = self.registry();
        let entry = match registry.get(&rec.database) {
            Ok(e) if e.record.backend == rec.backend => e,
            Ok(e) => {
                return Err(Error::FailedPrecondition(format!(
                    "database {:?} is now a {} database, and backup {} is of {}: restore it \
                     with mode NEW",
                    rec.database, e.record.backend, rec.id, rec.backend
                )));
            }
            Err(Error::NotFound { .. }) => {
                return Err(Error::FailedPrecondition(format!(
                    "database {:?} no longer exists: restore backup {} with mode NEW",
                    rec.database, rec.id
                )));
            }
            Err(e) => return Err(e),
        };
        let lock = self.backups().lock(&rec.database);
        let _held = lock.try_lock_owned().map_err(|_| {
            Error::Aborted(format!(
                "a backup or restore of database {:?} is running; retry when it ends",
                rec.database
            ))
        })?;
        entry.check_fence()?;
        // From here until the swap, calls on the database are UNAVAILABLE on every gateway:
        // writes made now would be lost with the storage being replaced.
        let fence = self.fence_everywhere(&entry).await?;
        let result = async {
            let labels = BTreeMap::from([(SAFETY_LABEL.to_owned(), rec.id.clone())]);
            // A damaged database's storage is quarantined: there is nothing to keep.
            let safety = if entry.damage().is_some() {
                None
            } else {
                Some(
                    self.backup_locked(&entry, &rec.target, labels, None)
                        .await
                        .map_err(|e| match e {
                            Error::Unavailable(m) => Error::Unavailable(format!(
                                "the safety backup taken before a restore failed, so nothing \
                                 was restored: {m}"
                            )),
                            other => other,
                        })?,
                )
            };
            let staged = registry
                .stage(rec.backend, &entry.record.provisioned.name)
                .await?;
            if let Err(e) = self.fill(&staged, rec, manifest, target).await {
                registry.unstage(rec.backend, &staged).await;
                return Err(e);
            }
            let control = registry.control().await;
            let swapped = registry.swap(&control, &entry, staged.clone()).await;
            drop(control);
            let (fresh, old) = match swapped {
                Ok(s) => s,
                Err(e) => {
                    registry.unstage(rec.backend, &staged).await;
                    return Err(e);
                }
            };
            // Calls still holding the old handle finish on the old storage; it goes now.
            self.handles().close(&entry.slot);
            registry.unstage(rec.backend, &old).await;
            Ok((fresh, safety))
        }
        .await;
        fence.lift(result.is_ok()).await;
        result
    }

    async fn restore_new(
        &self,
        who: &Principal,
        rec: &BackupRecord,
        manifest: &Manifest,
        target: &Target,
        spec: DatabaseSpec,
    ) -> Result<(Arc<Entry>, Option<BackupRecord>)> {
        let registry = self.registry();
        let name = &spec.name;
        who.require_create(name)?;
        if let Ok(existing) = registry.get(name) {
            return Err(Error::AlreadyExists {
                what: "database",
                name: format!("{name} (backend {})", existing.record.backend),
            });
        }
        who.require_create_quota(|key| registry.owned_by(key))?;
        self.check_policy_limits(who, name.as_str(), &spec.labels)
            .await?;
        // Checked before the copy, so that a bad TTL costs nothing.
        spec.lifecycle.resolve(registry.now_ms())?;
        let staged = registry.stage(rec.backend, name).await?;
        if let Err(e) = self.fill(&staged, rec, manifest, target).await {
            registry.unstage(rec.backend, &staged).await;
            return Err(e);
        }
        let control = registry.control().await;
        match registry
            .adopt(&control, spec, who.owner_id(), staged.clone())
            .await
        {
            Ok(entry) => Ok((entry, None)),
            Err(e) => {
                drop(control);
                registry.unstage(rec.backend, &staged).await;
                Err(e)
            }
        }
    }

    /// Replays the backup into the staging database `staged`, checking the checksum.
    async fn fill(
        &self,
        staged: &Provisioned,
        rec: &BackupRecord,
        manifest: &Manifest,
        target: &Target,
    ) -> Result<()> {
        let backend = self.registry().backend(rec.backend)?;
        let mut stream = target.get(&rec.object).await?;
        let mut unpacker = Unpacker::new()?;
        let result = match manifest.payload {
            Payload::SqliteFile => {
                let path = self
                    .backups()
                    .cfg
                    .scratch_dir
                    .join(format!("{}.restore-{}.sqlite", rec.id, staged.locator));
                let r = write_file(&mut stream, &mut unpacker, &path, rec).await;
                let r = match r {
                    Ok(()) => backend.restore_image(staged, path.clone()).await,
                    Err(e) => Err(e),
                };
                let _ = std::fs::remove_file(&path);
                r
            }
            Payload::SqlScript => {
                let database = backend.open(staged).await?;
                let limits = StatementLimits {
                    timeout: self.limits().transfer_timeout,
                    ..self.limits().whole_result()
                };
                replay_script(&*database, rec, &mut stream, &mut unpacker, limits).await
            }
            Payload::KeyRecords | Payload::Quads => {
                let database = backend.open(staged).await?;
                let limits = self.limits().whole_result();
                replay_records(&*database, &mut stream, &mut unpacker, &limits).await
            }
        };
        match result {
            Ok(()) => unpacker.verify(&rec.sha256, rec.size_bytes),
            Err(e) => {
                // Damage explains any failure: read the rest to know.
                while let Some(Ok(piece)) = stream.next().await {
                    unpacker.hash_only(&piece);
                }
                match unpacker.verify(&rec.sha256, rec.size_bytes) {
                    Err(damage @ Error::DataLoss(_)) => Err(damage),
                    _ => Err(e),
                }
            }
        }
    }
}

type Pieces = BoxStream<'static, Result<Bytes>>;

/// Next raw piece of the backup, or `None` at its end.
async fn next_raw(stream: &mut Pieces, unpacker: &mut Unpacker) -> Result<Option<Vec<u8>>> {
    loop {
        if let Some(raw) = unpacker.next_raw()? {
            return Ok(Some(raw));
        }
        match stream.next().await {
            Some(piece) => unpacker.feed(&piece?),
            None => return Ok(None),
        }
    }
}

async fn write_file(
    stream: &mut Pieces,
    unpacker: &mut Unpacker,
    path: &PathBuf,
    rec: &BackupRecord,
) -> Result<()> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(Error::internal)?;
    while let Some(raw) = next_raw(stream, unpacker).await? {
        file.write_all(&raw).await.map_err(Error::internal)?;
    }
    // The image goes in only when it is the one that was stored.
    unpacker.verify(&rec.sha256, rec.size_bytes)?;
    file.sync_all().await.map_err(Error::internal)?;
    Ok(())
}

/// The raw pieces of a backup, as a stream (decompressed, hashed as they pass).
fn raw_pieces<'a>(stream: &'a mut Pieces, unpacker: &'a mut Unpacker) -> RawPieces<'a> {
    futures::stream::try_unfold((stream, unpacker), |(s, u)| async move {
        Ok(next_raw(s, u).await?.map(|raw| (raw, (s, u))))
    })
    .boxed()
}

async fn replay_script(
    database: &dyn Database,
    rec: &BackupRecord,
    stream: &mut Pieces,
    unpacker: &mut Unpacker,
    limits: StatementLimits,
) -> Result<()> {
    let mut pieces = raw_pieces(stream, unpacker);
    let mut session =
        replay::replay_script(database, rec.backend, &mut pieces, limits, restore_failed).await?;
    drop(pieces);
    // Committed only when the bytes are the ones stored.
    match unpacker.verify(&rec.sha256, rec.size_bytes) {
        Ok(()) => session.commit().await,
        Err(e) => {
            if let Err(rb) = session.rollback().await {
                warn!(error = %rb, "rolling back a failed restore failed");
            }
            Err(e)
        }
    }
}

async fn replay_records(
    database: &dyn Database,
    stream: &mut Pieces,
    unpacker: &mut Unpacker,
    limits: &StatementLimits,
) -> Result<()> {
    replay::replay_records(database, &mut raw_pieces(stream, unpacker), limits).await
}

/// A statement of the backup that the engine refused: the backup cannot be restored here as
/// it is (an engine version that lacks a feature, a full disk). Not the caller's mistake.
fn restore_failed(err: Error, number: usize, line: u64) -> Error {
    match err {
        Error::Query { message, .. } => Error::FailedPrecondition(format!(
            "the engine refused statement {number} (line {line}) of the backup, so nothing was \
             restored: {message}"
        )),
        other => other,
    }
}

/// Reads the manifest and checks it against the catalog: its own hash, and the backup it
/// describes. A manifest of another backup, edited or missing is DATA_LOSS.
async fn check_manifest(rec: &BackupRecord, target: &Target) -> Result<Manifest> {
    let bytes = target.get_all(&rec.manifest_object()).await?;
    let loss = |why: &str| {
        Error::DataLoss(format!(
            "the manifest of backup {} ({}) {why}; nothing was restored",
            rec.id,
            target.location(&rec.manifest_object())
        ))
    };
    if sha256_hex(&bytes) != rec.manifest_sha256 {
        return Err(loss("does not match the checksum the catalog recorded"));
    }
    let m: Manifest =
        serde_json::from_slice(&bytes).map_err(|_| loss("is not a backup manifest"))?;
    if m.backup_id != rec.id
        || m.sha256 != rec.sha256
        || m.size_bytes != rec.size_bytes
        || m.engine != rec.backend.as_str()
    {
        return Err(loss("describes another backup"));
    }
    if m.format_version != FORMAT_VERSION {
        return Err(Error::FailedPrecondition(format!(
            "backup {} is in format version {}, and this gateway reads version {FORMAT_VERSION}",
            rec.id, m.format_version
        )));
    }
    Ok(m)
}
