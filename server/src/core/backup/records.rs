//! Backup records and policies in the catalog (tables `backups` and `backup_policies`, made
//! by `core/catalog`).

use std::{
    collections::{BTreeMap, HashMap},
    ops::ControlFlow,
};

use rusqlite::params;

use super::{BackupRecord, BackupStatus, Manifest, policy::Policy};
use crate::core::{
    catalog::{Catalog, Row, SqlResult},
    engine::BackendKind,
    error::Result,
};

const COLUMNS: &str = "id, db, backend, db_owner, db_labels, created_ms, finished_ms, status, \
                       target, object, format, size_bytes, sha256, manifest, manifest_sha256, \
                       labels, policy, error";

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

fn record(r: &Row) -> SqlResult<Option<BackupRecord>> {
    let backend: String = r.get(2)?;
    let status: String = r.get(7)?;
    let (Some(backend), Some(status)) =
        (BackendKind::parse(&backend), BackupStatus::parse(&status))
    else {
        return Ok(None);
    };
    let labels = |i: usize| -> SqlResult<BTreeMap<String, String>> {
        Ok(serde_json::from_str(&r.get::<String>(i)?).unwrap_or_default())
    };
    let manifest: Option<String> = r.get(13)?;
    Ok(Some(BackupRecord {
        id: r.get(0)?,
        database: r.get(1)?,
        backend,
        db_owner: r.get(3)?,
        db_labels: labels(4)?,
        created_ms: r.get(5)?,
        finished_ms: r.get(6)?,
        status,
        target: r.get(8)?,
        object: r.get(9)?,
        format: r.get(10)?,
        size_bytes: r.get::<i64>(11)?.max(0) as u64,
        sha256: r.get(12)?,
        manifest: manifest.and_then(|m| serde_json::from_str::<Manifest>(&m).ok()),
        manifest_sha256: r.get(14)?,
        labels: labels(15)?,
        policy: r.get(16)?,
        error: r.get(17)?,
    }))
}

fn policy(r: &Row) -> SqlResult<Option<Policy>> {
    let spec: String = r.get(1)?;
    let Ok(spec) = serde_json::from_str(&spec) else {
        return Ok(None);
    };
    Ok(Some(Policy {
        spec,
        owner: r.get(2)?,
        updated_ms: r.get(3)?,
        last_run_ms: r.get(4)?,
        next_run_ms: r.get(5)?,
        last_error: r.get(6)?,
        failures: r.get::<i64>(7)?.clamp(0, i64::from(u32::MAX)) as u32,
    }))
}

/// How a finished backup ends in the catalog.
#[derive(Debug, Clone)]
pub struct Finish<'a> {
    /// Completed or failed.
    pub status: BackupStatus,
    /// Unix ms.
    pub finished_ms: i64,
    /// Stored bytes.
    pub size_bytes: u64,
    /// SHA-256 of the object.
    pub sha256: &'a str,
    /// The manifest.
    pub manifest: Option<&'a Manifest>,
    /// SHA-256 of the stored manifest.
    pub manifest_sha256: &'a str,
    /// Why it failed.
    pub error: Option<&'a str>,
}

impl Catalog {
    /// Records a backup about to start.
    pub fn backup_insert(&self, b: &BackupRecord) -> Result<()> {
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO backups ({COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
                ),
                params![
                    b.id,
                    b.database,
                    b.backend.as_str(),
                    b.db_owner,
                    json(&b.db_labels),
                    b.created_ms,
                    b.finished_ms,
                    b.status.as_str(),
                    b.target,
                    b.object,
                    b.format,
                    b.size_bytes as i64,
                    b.sha256,
                    b.manifest.as_ref().map(json),
                    b.manifest_sha256,
                    json(&b.labels),
                    b.policy,
                    b.error
                ],
            )
            .map(drop)
        })
    }

    /// Records how a backup ended.
    pub fn backup_finish(&self, id: &str, f: &Finish<'_>) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE backups SET status = ?2, finished_ms = ?3, size_bytes = ?4, sha256 = ?5, \
                 manifest = ?6, manifest_sha256 = ?7, error = ?8 WHERE id = ?1",
                params![
                    id,
                    f.status.as_str(),
                    f.finished_ms,
                    f.size_bytes as i64,
                    f.sha256,
                    f.manifest.map(json),
                    f.manifest_sha256,
                    f.error
                ],
            )
            .map(drop)
        })
    }

    /// One backup.
    pub fn backup_get(&self, id: &str) -> Result<Option<BackupRecord>> {
        self.with(|c| {
            c.query_opt(
                &format!("SELECT {COLUMNS} FROM backups WHERE id = ?1"),
                params![id],
                |r| record(&r),
            )
            .map(Option::flatten)
        })
    }

    /// Backups newest first, of `database` (all when `None`) in `status` (any when `None`),
    /// starting after `after`; `keep` decides which are returned, and the scan stops after
    /// `limit` kept ones.
    pub fn backup_scan(
        &self,
        database: Option<&str>,
        status: Option<BackupStatus>,
        after: Option<(i64, &str)>,
        limit: usize,
        mut keep: impl FnMut(&BackupRecord) -> bool,
    ) -> Result<Vec<BackupRecord>> {
        self.with(|c| {
            let (after_ms, after_id) = after.map_or((None, None), |(m, i)| (Some(m), Some(i)));
            let mut out = Vec::new();
            c.each(
                &format!(
                    "SELECT {COLUMNS} FROM backups
                     WHERE (CAST(?1 AS TEXT) IS NULL OR db = ?1)
                       AND (CAST(?2 AS TEXT) IS NULL OR status = ?2)
                       AND (CAST(?3 AS BIGINT) IS NULL OR created_ms < ?3
                            OR (created_ms = ?3 AND id < ?4))
                     ORDER BY created_ms DESC, id DESC"
                ),
                params![
                    database,
                    status.map(BackupStatus::as_str),
                    after_ms,
                    after_id
                ],
                |row| {
                    if out.len() >= limit {
                        return Ok(ControlFlow::Break(()));
                    }
                    if let Some(rec) = record(&row)?
                        && keep(&rec)
                    {
                        out.push(rec);
                    }
                    Ok(ControlFlow::Continue(()))
                },
            )?;
            Ok(out)
        })
    }

    /// Removes a backup's record.
    pub fn backup_remove(&self, id: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM backups WHERE id = ?1", params![id])
                .map(drop)
        })
    }

    /// The newest completed backup's start of each database, Unix ms.
    pub fn newest_backups(&self) -> Result<Vec<(String, i64)>> {
        self.with(|c| {
            c.query_map(
                "SELECT db, max(created_ms) FROM backups WHERE status = 'completed' GROUP BY db",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
    }

    /// Stores a policy; whether it is new (false: it replaced one of the same name, whose run
    /// history is kept).
    pub fn policy_upsert(&self, p: &Policy) -> Result<bool> {
        self.with(|c| {
            let existed = c
                .query_opt(
                    "SELECT 1 FROM backup_policies WHERE name = ?1",
                    params![p.spec.name],
                    |_| Ok(()),
                )?
                .is_some();
            c.execute(
                "INSERT INTO backup_policies (name, spec, owner_key, updated_ms, last_run_ms, \
                 next_run_ms, last_error, failures) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (name) DO UPDATE SET spec = ?2, owner_key = ?3, updated_ms = ?4, \
                 next_run_ms = ?6, last_error = NULL, failures = 0",
                params![
                    p.spec.name,
                    json(&p.spec),
                    p.owner,
                    p.updated_ms,
                    p.last_run_ms,
                    p.next_run_ms,
                    p.last_error,
                    i64::from(p.failures)
                ],
            )?;
            // A replaced policy starts over on every gateway's own databases too.
            c.execute(
                "DELETE FROM policy_nodes WHERE policy = ?1",
                params![p.spec.name],
            )?;
            Ok(!existed)
        })
    }

    /// Every policy, by name.
    pub fn policy_list(&self) -> Result<Vec<Policy>> {
        self.with(|c| {
            let rows = c.query_map(
                "SELECT name, spec, owner_key, updated_ms, last_run_ms, next_run_ms, last_error, \
                 failures FROM backup_policies ORDER BY name",
                &[],
                |r| policy(&r),
            )?;
            let mut out = Vec::new();
            for p in rows {
                match p {
                    Some(p) => out.push(p),
                    None => tracing::warn!("skipping a backup policy that does not parse"),
                }
            }
            Ok(out)
        })
    }

    /// Removes a policy; whether it existed.
    pub fn policy_remove(&self, name: &str) -> Result<bool> {
        // The policy first: it waits for a run being recorded, whose row the second delete,
        // a statement later, then sees.
        self.with(|c| {
            let existed =
                c.execute("DELETE FROM backup_policies WHERE name = ?1", params![name])? > 0;
            c.execute("DELETE FROM policy_nodes WHERE policy = ?1", params![name])?;
            Ok(existed)
        })
    }

    /// This gateway's runs of each policy on its own SQLite databases (a shared catalog): the
    /// next run, Unix ms, and the failed runs in a row, by policy.
    pub fn policy_node_runs(&self) -> Result<HashMap<String, (i64, u32)>> {
        let node = self.node().to_owned();
        self.with(|c| {
            c.query_map(
                "SELECT policy, next_run_ms, failures FROM policy_nodes WHERE node = ?1",
                params![node],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        (
                            r.get::<i64>(1)?,
                            u32::try_from(r.get::<i64>(2)?).unwrap_or(u32::MAX),
                        ),
                    ))
                },
            )
            .map(|rows| rows.into_iter().collect())
        })
    }

    /// Records a policy's run: when it ran, when it runs next, and how it went. `own` is this
    /// gateway's run on its own SQLite databases (a shared catalog), kept in `policy_nodes`
    /// unless the policy was deleted meanwhile (its runs went with it).
    pub fn policy_ran(
        &self,
        name: &str,
        own: bool,
        last_run_ms: i64,
        next_run_ms: i64,
        error: Option<&str>,
        failures: u32,
    ) -> Result<()> {
        let node = self.node().to_owned();
        self.with(|c| {
            if !own {
                return c
                    .execute(
                        "UPDATE backup_policies SET last_run_ms = ?2, next_run_ms = ?3, \
                         last_error = ?4, failures = ?5 WHERE name = ?1",
                        params![name, last_run_ms, next_run_ms, error, i64::from(failures)],
                    )
                    .map(drop);
            }
            // On PostgreSQL the row lock makes a concurrent delete wait for this commit, and
            // then remove what it recorded (see `policy_remove`).
            let check = if c.is_postgres() {
                "SELECT 1 FROM backup_policies WHERE name = ?1 FOR UPDATE"
            } else {
                "SELECT 1 FROM backup_policies WHERE name = ?1"
            };
            let exists = c.query_opt(check, params![name], |_| Ok(()))?.is_some();
            if !exists {
                return Ok(());
            }
            c.execute(
                "INSERT INTO policy_nodes (policy, node, last_run_ms, next_run_ms, last_error, \
                 failures) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (policy, node) DO UPDATE SET last_run_ms = ?3, next_run_ms = ?4, \
                 last_error = ?5, failures = ?6",
                params![
                    name,
                    node,
                    last_run_ms,
                    next_run_ms,
                    error,
                    i64::from(failures)
                ],
            )
            .map(drop)
        })
    }
}
