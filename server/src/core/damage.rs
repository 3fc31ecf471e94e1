//! Damaged SQLite files: found at the first start after an unclean shutdown, quarantined,
//! reported, and — with `--restore-damaged` — restored from their newest backup.
//!
//! - **Knowing the last run ended badly.** The gateway writes [`RUNNING_MARKER`] in its data
//!   directory when it starts and removes it after a clean shutdown has closed every database.
//!   Finding it at start means the last run was killed, crashed or lost power: only then is
//!   every SQLite database checked (`PRAGMA quick_check`, which reads every page but skips the
//!   index-to-table cross-checks of `integrity_check`: seconds per GiB, run before the gateway
//!   serves). A clean start costs nothing.
//! - **Quarantine, never delete.** A file that fails the check (or is missing) is moved, with
//!   its `-wal` and `-shm`, into `sqlite/quarantine/` under a name that keeps its locator and
//!   adds the time; nothing in the gateway removes that directory. The catalog's `damaged`
//!   table remembers the database as damaged across restarts, so the gateway never opens (and
//!   so never re-creates empty) a quarantined database.
//! - **Reported.** Its status is `DAMAGED`; data-plane calls, backups and forks of it fail with
//!   FAILED_PRECONDITION saying what to do; a `damaged` event names the quarantined file and the
//!   first problem found; `dbforge_damaged_total{outcome}` counts.
//! - **Restored when asked.** With `--restore-damaged` (a server flag: lifecycle policies are a
//!   separate feature), the newest completed backup of the database is restored in place at
//!   once (a `restored` event with `cause` `backup=<id> damaged`); without a backup, or when the
//!   restore fails, the database stays DAMAGED. An owner can restore any backup by hand with
//!   RestoreBackup (mode REPLACE, which skips the safety backup of a damaged database) or
//!   delete it. Either replaces the damaged storage, which ends the DAMAGED state.

use std::{collections::HashMap, path::Path, sync::Arc};

use rusqlite::params;
use tracing::{error, info, warn};

use super::{
    backup::{BackupStatus, RestoreMode},
    engine::BackendKind,
    error::{Error, Result},
    events::{EventKind, Subject},
    forge::Forge,
    lifecycle::GATEWAY_KEY,
    registry::{Entry, blocking},
};
use crate::{backend::Provisioned, core::catalog::Catalog, metrics as names};

/// The file whose presence at start says the last run did not shut down cleanly.
pub const RUNNING_MARKER: &str = "dbforge.running";

/// A database found damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Where its storage was moved.
    pub quarantined: String,
    /// The first problem the check found.
    pub problem: String,
}

impl Damage {
    /// The error of a call on the damaged database `name`.
    pub fn error(&self, name: &str) -> Error {
        Error::FailedPrecondition(format!(
            "database {name:?} is damaged ({}); its file was moved to {} and it cannot be used \
             until it is restored from a backup (RestoreBackup with mode REPLACE) or deleted",
            self.problem, self.quarantined
        ))
    }
}

/// Marks the start of a run in `data_dir`; true when the last run left its marker (it did
/// not shut down cleanly).
pub fn begin_run(data_dir: &Path) -> Result<bool> {
    let path = data_dir.join(RUNNING_MARKER);
    let unclean = path.exists();
    std::fs::write(&path, format!("pid {}\n", std::process::id())).map_err(Error::internal)?;
    Ok(unclean)
}

/// Marks a clean end of the run in `data_dir` (every database closed).
pub fn end_run(data_dir: &Path) {
    if let Err(e) = std::fs::remove_file(data_dir.join(RUNNING_MARKER))
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!(error = %e, "could not remove the running marker: the next start checks every SQLite file");
    }
}

impl Catalog {
    /// Damaged databases: name → (locator, damage).
    fn damaged_load(&self) -> Result<HashMap<String, (String, Damage)>> {
        let node = self.node().to_owned();
        self.with(|c| {
            let rows = c.query_map(
                "SELECT db, locator, quarantined, problem FROM damaged WHERE node = ?1",
                params![node],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        (
                            r.get::<String>(1)?,
                            Damage {
                                quarantined: r.get(2)?,
                                problem: r.get(3)?,
                            },
                        ),
                    ))
                },
            )?;
            Ok(rows.into_iter().collect())
        })
    }

    fn damaged_insert(&self, db: &Provisioned, damage: &Damage, at_ms: i64) -> Result<()> {
        let node = self.node().to_owned();
        self.with(|c| {
            c.execute(
                "INSERT INTO damaged (db, locator, quarantined, problem, at_ms, node) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (db) DO UPDATE SET locator = ?2, quarantined = ?3, problem = ?4, \
                 at_ms = ?5, node = ?6",
                params![
                    db.name.as_str(),
                    db.locator,
                    damage.quarantined,
                    damage.problem,
                    at_ms,
                    node
                ],
            )
            .map(drop)
        })
    }

    fn damaged_remove(&self, db: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM damaged WHERE db = ?1", params![db])
                .map(drop)
        })
    }
}

impl Forge {
    /// At start-up, before serving: marks the databases the catalog knows as damaged; after an
    /// unclean shutdown (`unclean`), checks every SQLite database and quarantines the damaged
    /// ones; restores them from their newest backup when `restore` is set.
    pub(crate) async fn check_damage(&self, unclean: bool, restore: bool) -> Result<()> {
        let cat = self.catalog();
        let known = blocking(move || cat.damaged_load()).await?;
        let registry = self.registry();
        let entries = registry.entries();
        for (name, (locator, damage)) in &known {
            match entries
                .iter()
                .find(|e| e.record.provisioned.name.as_str() == name)
            {
                // Still the damaged storage: still damaged.
                Some(e) if &e.record.provisioned.locator == locator => {
                    e.mark_damaged(damage.clone())
                }
                // Restored (new storage) or deleted since: forget it.
                _ => {
                    let (cat, name) = (self.catalog(), name.clone());
                    blocking(move || cat.damaged_remove(&name)).await?;
                }
            }
        }
        if !unclean {
            return Ok(());
        }
        let sqlite: Vec<&Arc<Entry>> = entries
            .iter()
            .filter(|e| e.record.backend == BackendKind::Sqlite && e.damage().is_none())
            .collect();
        warn!(
            databases = sqlite.len(),
            "the last run did not shut down cleanly: checking every SQLite database (PRAGMA quick_check)"
        );
        for entry in sqlite {
            let backend = entry.backend()?;
            let db = &entry.record.provisioned;
            let problem = match backend.check_integrity(db).await {
                Ok(None) => continue,
                Ok(Some(problem)) => problem,
                Err(e) => {
                    // Not a verdict on the file (it could not be read): leave it as it is.
                    warn!(db = %db.name, error = %e, "could not check the database");
                    continue;
                }
            };
            let quarantined = match backend.quarantine(db).await {
                Ok(q) => q,
                Err(e) => {
                    error!(db = %db.name, %problem, error = %e, "a damaged database could not be quarantined; it stays in place");
                    continue;
                }
            };
            let damage = Damage {
                quarantined,
                problem,
            };
            let (cat, d, dmg, now) = (
                self.catalog(),
                db.clone(),
                damage.clone(),
                registry.now_ms(),
            );
            blocking(move || cat.damaged_insert(&d, &dmg, now)).await?;
            entry.mark_damaged(damage.clone());
            error!(db = %db.name, problem = %damage.problem, quarantined = %damage.quarantined, "database damaged: its file was quarantined");
            metrics::counter!(names::DAMAGED_TOTAL, "outcome" => "quarantined").increment(1);
            self.events()
                .publish(
                    EventKind::Damaged,
                    Subject::of(&entry.record),
                    format!(
                        "quarantined={} problem={}",
                        damage.quarantined, damage.problem
                    ),
                    GATEWAY_KEY,
                )
                .await;
            if restore {
                self.restore_damaged(entry).await;
            }
        }
        Ok(())
    }

    /// Restores the damaged `entry` from its newest completed backup, if it has one.
    async fn restore_damaged(&self, entry: &Entry) {
        let name = entry.record.provisioned.name.to_string();
        let cat = self.catalog();
        let n = name.clone();
        let newest = blocking(move || {
            cat.backup_scan(Some(&n), Some(BackupStatus::Completed), None, 1, |_| true)
        })
        .await;
        let backup = match newest {
            Ok(mut found) if !found.is_empty() => found.remove(0),
            Ok(_) => {
                warn!(db = %name, "no completed backup to restore the damaged database from; it stays DAMAGED");
                metrics::counter!(names::DAMAGED_TOTAL, "outcome" => "restore_failed").increment(1);
                return;
            }
            Err(e) => {
                warn!(db = %name, error = %e, "could not look for backups of the damaged database");
                return;
            }
        };
        match self
            .restore_backup_as(
                &super::access::Principal::Unrestricted,
                GATEWAY_KEY,
                &format!("backup={} damaged", backup.id),
                &backup.id,
                RestoreMode::Replace,
            )
            .await
        {
            Ok(_) => {
                info!(db = %name, backup = %backup.id, "damaged database restored from its newest backup");
                metrics::counter!(names::DAMAGED_TOTAL, "outcome" => "restored").increment(1);
                let cat = self.catalog();
                if let Err(e) = blocking(move || cat.damaged_remove(&name)).await {
                    warn!(error = %e, "could not forget a restored damaged database; the next start does");
                }
            }
            Err(e) => {
                error!(db = %name, backup = %backup.id, error = %e, "restoring the damaged database failed; it stays DAMAGED");
                metrics::counter!(names::DAMAGED_TOTAL, "outcome" => "restore_failed").increment(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_run_that_did_not_end_cleanly_is_reported_unclean() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(!begin_run(dir.path()).expect("first run"), "a new data dir");
        end_run(dir.path());
        assert!(!dir.path().join(RUNNING_MARKER).exists());
        assert!(!begin_run(dir.path()).expect("after a clean end"));
        // Killed: no end_run.
        assert!(begin_run(dir.path()).expect("after a crash"));
        // Ending twice (or without the marker) is harmless.
        end_run(dir.path());
        end_run(dir.path());
    }

    #[test]
    fn a_damaged_database_says_what_happened_and_what_to_do() {
        let d = Damage {
            quarantined: "/data/sqlite/quarantine/a.1.sqlite.2".into(),
            problem: "file is not a database".into(),
        };
        let Error::FailedPrecondition(msg) = d.error("a") else {
            panic!("FAILED_PRECONDITION");
        };
        assert!(msg.contains("file is not a database"), "{msg}");
        assert!(
            msg.contains("/data/sqlite/quarantine/a.1.sqlite.2"),
            "{msg}"
        );
        assert!(msg.contains("RestoreBackup"), "{msg}");
    }
}
