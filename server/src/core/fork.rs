//! Forks: a new, independent database holding another one's data as it is now (or as one of
//! its backups holds it).
//!
//! A live fork copies through the same staging protocol as a restore into a new name
//! (`core/backup/restore.rs`): the copy is made in a staging database beside everything
//! (`Registry::stage`, recorded in the catalog first so that a crash leaves nothing unnamed),
//! then registered under the fork's name (`Registry::adopt`), owned by the calling key. A
//! failure at any step removes the staging database, so a failed fork leaves nothing behind.
//!
//! What the copy is, per engine (the fastest honest path the trait offers today):
//!
//! - SQLite: [`Database::backup_image`] (the online backup API) writes a consistent copy of the
//!   source's file while its writers keep running; [`Backend::restore_image`] moves it into
//!   place as the fork's file.
//! - PostgreSQL: the engine's own copy, [`Backend::create_copy`] (`CREATE DATABASE …
//!   TEMPLATE`, then everything in the copy handed over to the fork's role), after the gateway
//!   closed its idle connections to the source. PostgreSQL copies only a database nobody is
//!   connected to: when the source is in use (a statement running, a session open, another
//!   client), or the admin login may not copy it, the fork falls back to the dump below.
//! - PostgreSQL (fallback) and MySQL: the source's [`Database::backup_dump`] (PostgreSQL's rows
//!   as COPY data), read in one REPEATABLE READ read-only transaction (a snapshot no concurrent
//!   write can tear), replayed into the fork in one transaction on the fork's own login, so
//!   every object belongs to the fork's role (`core/replay.rs`, shared with restores).
//! - Redis: the records of the source's dump (each key with its type, value and remaining TTL)
//!   written into the fork's namespace by [`Database::restore_records`], in batches.
//!
//! [`Backend::restore_image`]: crate::backend::Backend::restore_image
//! [`Backend::create_copy`]: crate::backend::Backend::create_copy

use std::{collections::BTreeMap, sync::Arc, time::Duration, time::Instant};

use futures::StreamExt;
use tracing::{info, instrument};

use super::{
    access::{Principal, Role},
    backup::RestoreMode,
    engine::BackendKind,
    error::{Error, Result},
    events::{EventKind, Subject},
    forge::{DatabaseInfo, DatabaseSpec, Forge},
    lifecycle::LifecycleSpec,
    names::{DatabaseName, validate_labels},
    registry::Entry,
    replay::{self, RawPieces},
};
use crate::{
    backend::{Database, DumpStream, Provisioned},
    metrics as names,
};

/// What to fork.
#[derive(Debug, Clone)]
pub struct ForkSpec {
    /// The database forked.
    pub source: DatabaseName,
    /// The new database's name.
    pub name: DatabaseName,
    /// The new database's labels.
    pub labels: BTreeMap<String, String>,
    /// A backup of `source` to fork from instead of its current data.
    pub from_backup: Option<String>,
    /// The new database's TTL, idle TTL and final backup.
    pub lifecycle: LifecycleSpec,
}

/// How a fork copied the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkMethod {
    /// SQLite's online backup API into a new file.
    SqliteBackupApi,
    /// The engine's own copy (PostgreSQL's `CREATE DATABASE … TEMPLATE`).
    Template,
    /// The source's SQL dump replayed into the fork.
    DumpReplay,
    /// The source's key records imported into the fork's namespace.
    KeyRecords,
    /// The source's N-Quads dump loaded into the fork's store (graph engine).
    Quads,
    /// A restore of one of the source's backups.
    Backup,
}

impl ForkMethod {
    /// Its name in responses, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ForkMethod::SqliteBackupApi => "sqlite-backup-api",
            ForkMethod::Template => "template",
            ForkMethod::DumpReplay => "dump-replay",
            ForkMethod::KeyRecords => "key-records",
            ForkMethod::Quads => "n-quads",
            ForkMethod::Backup => "backup",
        }
    }

    /// The live-copy method of an engine.
    fn of(kind: BackendKind) -> Self {
        match kind {
            BackendKind::Sqlite => ForkMethod::SqliteBackupApi,
            BackendKind::Postgres | BackendKind::Mysql => ForkMethod::DumpReplay,
            BackendKind::Redis => ForkMethod::KeyRecords,
            BackendKind::Graph => ForkMethod::Quads,
        }
    }
}

/// What a fork made.
#[derive(Debug, Clone)]
pub struct ForkReport {
    /// The new database.
    pub database: DatabaseInfo,
    /// How the data was copied.
    pub method: ForkMethod,
    /// How long the fork took.
    pub duration: Duration,
}

impl Forge {
    /// Forks `spec.source` into the new database `spec.name`, owned by `who`.
    #[instrument(skip_all, fields(db = %spec.name, source = %spec.source))]
    pub async fn fork_database(&self, who: &Principal, spec: ForkSpec) -> Result<ForkReport> {
        let started = Instant::now();
        validate_labels(&spec.labels)?;
        if spec.name == spec.source {
            return Err(Error::invalid(
                "name",
                "must differ from source: a fork is a new database",
            ));
        }
        // The source first: a key that cannot see it learns nothing about the new name.
        let needed = match spec.from_backup {
            Some(_) => Role::Owner,
            None => Role::Read,
        };
        let (source, _) = self.authorized(who, spec.source.as_str(), needed)?;
        let kind = source.record.backend;
        let cause = match &spec.from_backup {
            Some(id) => format!("source={} backup={id}", spec.source),
            None => format!("source={}", spec.source),
        };
        let result = match spec.from_backup.clone() {
            Some(id) => self.fork_from_backup(who, &spec, &id).await,
            None => self.fork_live(who, &source, spec).await,
        };
        let method = match &result {
            Ok((_, m)) => *m,
            Err(_) if needed == Role::Owner => ForkMethod::Backup,
            Err(_) => ForkMethod::of(kind),
        };
        let outcome = if result.is_ok() {
            "completed"
        } else {
            "failed"
        };
        metrics::counter!(names::FORKS_TOTAL, "backend" => kind.as_str(), "method" => method.as_str(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(names::FORK_DURATION_SECONDS, "backend" => kind.as_str(), "method" => method.as_str())
            .record(started.elapsed().as_secs_f64());
        let (database, method) = result?;
        let owner = who.owner_id();
        self.events()
            .publish(
                EventKind::Forked,
                Subject {
                    database: database.name.as_str(),
                    backend: database.backend,
                    labels: &database.labels,
                    owner: owner.as_deref(),
                },
                cause,
                who.key_id(),
            )
            .await;
        // A policy's size quota holds on the fork from its first call.
        if let Ok(entry) = self.registry().get(database.name.as_str()) {
            self.refresh_quota(&entry).await;
        }
        info!(
            method = method.as_str(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "database forked"
        );
        Ok(ForkReport {
            database,
            method,
            duration: started.elapsed(),
        })
    }

    /// A restore of backup `id` of the source into the new name (RestoreBackup NEW, after
    /// checking the backup is the source's).
    async fn fork_from_backup(
        &self,
        who: &Principal,
        spec: &ForkSpec,
        id: &str,
    ) -> Result<(DatabaseInfo, ForkMethod)> {
        let rec = self.get_backup(who, id).await?;
        if rec.database != spec.source.as_str() {
            return Err(Error::FailedPrecondition(format!(
                "backup {id} is a backup of database {:?}, not of {:?}",
                rec.database,
                spec.source.as_str()
            )));
        }
        let report = self
            .restore_backup(
                who,
                id,
                RestoreMode::New {
                    name: spec.name.clone(),
                    labels: spec.labels.clone(),
                    lifecycle: spec.lifecycle,
                },
            )
            .await?;
        Ok((report.database, ForkMethod::Backup))
    }

    /// A copy of the source's current data, made in a staging database and adopted.
    async fn fork_live(
        &self,
        who: &Principal,
        source: &Arc<Entry>,
        spec: ForkSpec,
    ) -> Result<(DatabaseInfo, ForkMethod)> {
        let registry = self.registry();
        who.require_create(&spec.name)?;
        if let Ok(existing) = registry.get(spec.name.as_str()) {
            return Err(Error::AlreadyExists {
                what: "database",
                name: format!("{} (backend {})", spec.name, existing.record.backend),
            });
        }
        who.require_create_quota(|key| registry.owned_by(key))?;
        self.check_policy_limits(who, spec.name.as_str(), &spec.labels)
            .await?;
        // Checked before the copy, so that a bad TTL costs nothing.
        spec.lifecycle.resolve(registry.now_ms())?;
        source.check_fence()?;
        source.check_damage()?;
        let kind = source.record.backend;
        let mut method = ForkMethod::of(kind);
        let copied = match method {
            ForkMethod::DumpReplay => {
                match registry
                    .stage_copy(kind, &spec.name, &source.record.provisioned)
                    .await
                {
                    Ok(staged) => Some(staged),
                    Err(Error::Unsupported { .. }) => None,
                    Err(e @ Error::Unavailable(_)) => return Err(e),
                    Err(e) => {
                        info!(error = %e, "the engine could not copy the source; copying it through a dump");
                        None
                    }
                }
            }
            _ => None,
        };
        let staged = match copied {
            Some(staged) => {
                method = ForkMethod::Template;
                staged
            }
            None => {
                let database = self.open_entry(source).await?;
                let staged = registry.stage(kind, &spec.name).await?;
                if let Err(e) = self.copy_into(&*database, kind, method, &staged).await {
                    registry.unstage(kind, &staged).await;
                    return Err(e);
                }
                staged
            }
        };
        let control = registry.control().await;
        let new = DatabaseSpec {
            name: spec.name,
            backend: kind,
            if_not_exists: false,
            lifecycle: spec.lifecycle,
            labels: spec.labels,
        };
        match registry
            .adopt(&control, new, who.owner_id(), staged.clone())
            .await
        {
            Ok(entry) => Ok((entry.info(entry.size().await), method)),
            Err(e) => {
                drop(control);
                registry.unstage(kind, &staged).await;
                Err(e)
            }
        }
    }

    /// Copies the open `source` into the staging database `staged` by `method`.
    async fn copy_into(
        &self,
        source: &dyn Database,
        kind: BackendKind,
        method: ForkMethod,
        staged: &Provisioned,
    ) -> Result<()> {
        let backend = self.registry().backend(kind)?;
        let limits = self.limits().transfer();
        match method {
            ForkMethod::SqliteBackupApi => {
                let path = self
                    .backups()
                    .scratch_dir()
                    .join(format!("fork-{}", staged.locator));
                let result = match source.backup_image(path.clone()).await {
                    Ok(_) => backend.restore_image(staged, path.clone()).await,
                    Err(e) => Err(e),
                };
                // Gone already when restore_image moved it in place.
                let _ = std::fs::remove_file(&path);
                result
            }
            // The dump a backup stores: PostgreSQL's rows go as COPY data.
            ForkMethod::DumpReplay => {
                let mut dump = pieces(source.backup_dump(limits.clone()).await?);
                let fork = backend.open(staged).await?;
                let mut session =
                    replay::replay_script(&*fork, kind, &mut dump, limits, copy_failed).await?;
                session.commit().await
            }
            // N-Quads are line records too: the same batches of whole lines.
            ForkMethod::KeyRecords | ForkMethod::Quads => {
                let mut dump = pieces(source.backup_dump(limits.clone()).await?);
                let fork = backend.open(staged).await?;
                replay::replay_records(&*fork, &mut dump, &self.limits().whole_result()).await
            }
            ForkMethod::Template | ForkMethod::Backup => {
                Err(Error::internal("not a copy through an open database"))
            }
        }
    }
}

/// A dump's bytes as replay reads them.
fn pieces(dump: DumpStream) -> RawPieces<'static> {
    dump.map(|chunk| chunk.map(|c| c.data)).boxed()
}

/// A statement of the source's dump that the engine refused in the fork (a full disk, an
/// object the dump cannot express): not the caller's mistake.
fn copy_failed(err: Error, number: usize, line: u64) -> Error {
    match err {
        Error::Query { message, .. } => Error::FailedPrecondition(format!(
            "the engine refused statement {number} (line {line}) of the source's dump while \
             copying it into the fork, so no fork was made: {message}"
        )),
        other => other,
    }
}
