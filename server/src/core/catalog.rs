//! The catalog: which databases exist, on which backend, where, since when. An embedded SQLite
//! file in the data directory; the source of truth across restarts.

use std::{
    collections::BTreeMap,
    ops::ControlFlow,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use rusqlite::{OptionalExtension, params};

use super::engine::BackendKind;
use super::{
    access::{Grant, KeyInfo, decode_grant, encode_grant},
    audit::{Query as AuditQuery, Record as AuditRecord},
    error::{Error, Result},
    events::{DbEvent, EventKind},
    lifecycle::Lifecycle,
    names::DatabaseName,
};
use crate::backend::Provisioned;

/// Where a spawn or prune stands. A record in `Provisioning` or `Deleting` at start-up belongs
/// to an operation a crash interrupted; start-up finishes the prune or undoes the spawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    /// Storage may be partly created.
    Provisioning,
    /// Usable.
    Ready,
    /// Storage may be partly dropped.
    Deleting,
}

impl RecordState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Ready => "ready",
            Self::Deleting => "deleting",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "provisioning" => Some(Self::Provisioning),
            "ready" => Some(Self::Ready),
            "deleting" => Some(Self::Deleting),
            _ => None,
        }
    }
}

/// One catalog row.
#[derive(Debug, Clone)]
pub struct Record {
    /// Where the backend keeps it.
    pub provisioned: Provisioned,
    /// The backend.
    pub backend: BackendKind,
    /// Spawn or prune progress.
    pub state: RecordState,
    /// Spawn time, Unix milliseconds.
    pub created_ms: i64,
    /// Last data-plane use, Unix milliseconds.
    pub last_accessed_ms: i64,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The API key that created it (and so owns it), if any.
    pub owner: Option<String>,
    /// TTL, idle TTL and final backup.
    pub lifecycle: Lifecycle,
}

/// The catalog store. Calls block briefly (one small SQLite transaction); callers run them on
/// the blocking pool.
#[derive(Debug, Clone)]
pub struct Catalog {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS databases (
    name TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    locator TEXT NOT NULL,
    state TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    last_accessed_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash BLOB NOT NULL,
    admin INTEGER NOT NULL,
    can_create INTEGER NOT NULL,
    create_quota INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    revoked_ms INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS key_grants (
    key_id TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    role TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (key_id, position)
) STRICT;
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    rpc TEXT NOT NULL,
    database TEXT,
    statement TEXT,
    statement_hash TEXT,
    rows_affected INTEGER,
    outcome TEXT NOT NULL,
    duration_us INTEGER NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ms);
CREATE TABLE IF NOT EXISTS backups (
    id TEXT PRIMARY KEY,
    db TEXT NOT NULL,
    backend TEXT NOT NULL,
    db_owner TEXT,
    db_labels TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    status TEXT NOT NULL,
    target TEXT NOT NULL,
    object TEXT NOT NULL,
    format TEXT NOT NULL,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL DEFAULT '',
    manifest TEXT,
    manifest_sha256 TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL,
    policy TEXT,
    error TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS backups_db ON backups (db, created_ms);
CREATE TABLE IF NOT EXISTS backup_policies (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    owner_key TEXT,
    updated_ms INTEGER NOT NULL,
    last_run_ms INTEGER,
    next_run_ms INTEGER NOT NULL,
    last_error TEXT,
    failures INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE IF NOT EXISTS staging (
    locator TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    db TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    db TEXT NOT NULL,
    backend TEXT NOT NULL,
    cause TEXT NOT NULL,
    key_id TEXT NOT NULL,
    labels TEXT NOT NULL,
    owner_key TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS lifecycle_policies (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    updated_by TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS database_quotas (
    db TEXT PRIMARY KEY REFERENCES databases(name) ON DELETE CASCADE,
    max_bytes INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS labels (
    db TEXT NOT NULL REFERENCES databases(name) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (db, key)
) STRICT;
";

fn db_err(e: rusqlite::Error) -> Error {
    Error::internal(format!("catalog: {e}"))
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let conn = rusqlite::Connection::open(path).map_err(db_err)?;
        // The catalog holds key hashes and the passwords of per-database roles: owner only.
        // SQLite gives its -wal and -shm files the database file's mode.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(Error::internal)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        // NORMAL in WAL mode: a power loss may lose the last commits but never corrupts; the
        // start-up reconciliation then removes storage the catalog no longer knows.
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        // Columns added after the table's first version, in the order they came: catalogs
        // written before keys existed lack the owner, before lifecycles the last three.
        for (column, ddl) in [
            (
                "owner_key",
                "ALTER TABLE databases ADD COLUMN owner_key TEXT",
            ),
            (
                "expire_ms",
                "ALTER TABLE databases ADD COLUMN expire_ms INTEGER",
            ),
            (
                "idle_ttl_ms",
                "ALTER TABLE databases ADD COLUMN idle_ttl_ms INTEGER",
            ),
            (
                "backup_before_prune",
                "ALTER TABLE databases ADD COLUMN backup_before_prune INTEGER NOT NULL DEFAULT 0",
            ),
        ] {
            let present: bool = conn
                .query_row(
                    "SELECT count(*) FROM pragma_table_info('databases') WHERE name = ?1",
                    [column],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(db_err)?
                > 0;
            if !present {
                conn.execute_batch(ddl).map_err(db_err)?;
            }
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the catalog's connection (one caller at a time).
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| Error::internal("catalog lock poisoned"))?;
        f(&mut conn).map_err(db_err)
    }

    /// Every record.
    pub fn load(&self) -> Result<Vec<Record>> {
        self.with(|c| {
            let mut labels: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            let mut stmt = c.prepare("SELECT db, key, value FROM labels")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))?;
            for row in rows {
                let (db, k, v) = row?;
                labels.entry(db).or_default().insert(k, v);
            }
            let mut stmt = c.prepare(
                "SELECT name, backend, locator, state, created_ms, last_accessed_ms, owner_key,
                        expire_ms, idle_ttl_ms, backup_before_prune
                 FROM databases",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    Lifecycle {
                        expire_ms: r.get(7)?,
                        idle_ttl: r
                            .get::<_, Option<i64>>(8)?
                            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
                        backup_before_prune: r.get(9)?,
                    },
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (name, backend, locator, state, created_ms, last_accessed_ms, owner, lifecycle) =
                    row?;
                let (Ok(parsed), Some(backend), Some(state)) = (
                    DatabaseName::parse(&name),
                    BackendKind::parse(&backend),
                    RecordState::parse(&state),
                ) else {
                    tracing::warn!(db = %name, "skipping a catalog row that does not parse");
                    continue;
                };
                out.push(Record {
                    labels: labels.remove(&name).unwrap_or_default(),
                    provisioned: Provisioned {
                        name: parsed,
                        locator,
                    },
                    backend,
                    state,
                    created_ms,
                    last_accessed_ms,
                    owner,
                    lifecycle,
                });
            }
            Ok(out)
        })
    }

    /// Records a spawn about to start (state `Provisioning`).
    pub fn insert(&self, rec: &Record) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO databases (name, backend, locator, state, created_ms, last_accessed_ms, owner_key,
                                        expire_ms, idle_ttl_ms, backup_before_prune)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    rec.provisioned.name.as_str(),
                    rec.backend.as_str(),
                    rec.provisioned.locator,
                    rec.state.as_str(),
                    rec.created_ms,
                    rec.last_accessed_ms,
                    rec.owner,
                    rec.lifecycle.expire_ms,
                    idle_ms(&rec.lifecycle),
                    rec.lifecycle.backup_before_prune
                ],
            )?;
            for (k, v) in &rec.labels {
                tx.execute(
                    "INSERT INTO labels (db, key, value) VALUES (?1, ?2, ?3)",
                    params![rec.provisioned.name.as_str(), k, v],
                )?;
            }
            tx.commit()
        })
    }

    /// Moves a record to `state`.
    pub fn set_state(&self, name: &DatabaseName, state: RecordState) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE databases SET state = ?2 WHERE name = ?1",
                params![name.as_str(), state.as_str()],
            )
            .map(drop)
        })
    }

    /// Stores a record's labels and lifecycle settings (UpdateDatabase), in one transaction.
    pub fn update_database(&self, rec: &Record) -> Result<()> {
        let name = rec.provisioned.name.as_str();
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE databases SET expire_ms = ?2, idle_ttl_ms = ?3, backup_before_prune = ?4
                 WHERE name = ?1",
                params![
                    name,
                    rec.lifecycle.expire_ms,
                    idle_ms(&rec.lifecycle),
                    rec.lifecycle.backup_before_prune
                ],
            )?;
            tx.execute("DELETE FROM labels WHERE db = ?1", [name])?;
            for (k, v) in &rec.labels {
                tx.execute(
                    "INSERT INTO labels (db, key, value) VALUES (?1, ?2, ?3)",
                    params![name, k, v],
                )?;
            }
            tx.commit()
        })
    }

    /// Removes a record and its labels.
    pub fn remove(&self, name: &DatabaseName) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM databases WHERE name = ?1", [name.as_str()])
                .map(drop)
        })
    }

    /// Stores last-access times in one transaction.
    pub fn touch(&self, updates: &[(DatabaseName, i64)]) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE databases SET last_accessed_ms = ?2 WHERE name = ?1 AND last_accessed_ms < ?2",
                )?;
                for (name, ms) in updates {
                    stmt.execute(params![name.as_str(), ms])?;
                }
            }
            tx.commit()
        })
    }

    /// Every API key with the hash of its secret.
    pub fn load_keys(&self) -> Result<Vec<(KeyInfo, [u8; 32])>> {
        self.with(|c| {
            let mut grants: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
            let mut stmt =
                c.prepare("SELECT key_id, kind, role, target FROM key_grants ORDER BY key_id, position")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
            for row in rows {
                let (key, kind, role, target) = row?;
                match decode_grant(&kind, &role, &target) {
                    Some(g) => grants.entry(key).or_default().push(g),
                    None => tracing::warn!(key = %key, "skipping a grant that does not parse"),
                }
            }
            let mut stmt = c.prepare(
                "SELECT id, name, hash, admin, can_create, create_quota, created_ms, expires_ms, revoked_ms
                 FROM api_keys",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    KeyInfo {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        admin: r.get(3)?,
                        can_create: r.get(4)?,
                        create_quota: r.get(5)?,
                        grants: Vec::new(),
                        created_ms: r.get(6)?,
                        expires_ms: r.get(7)?,
                        revoked_ms: r.get(8)?,
                    },
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (mut info, hash) = row?;
                let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) else {
                    tracing::warn!(key = %info.id, "skipping a key with a malformed hash");
                    continue;
                };
                info.grants = grants.remove(&info.id).unwrap_or_default();
                out.push((info, hash));
            }
            Ok(out)
        })
    }

    /// Stores a new key and its grants.
    pub fn insert_key(&self, info: &KeyInfo, hash: &[u8; 32]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO api_keys (id, name, hash, admin, can_create, create_quota, created_ms, expires_ms, revoked_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    info.id,
                    info.name,
                    hash.as_slice(),
                    info.admin,
                    info.can_create,
                    info.create_quota,
                    info.created_ms,
                    info.expires_ms,
                    info.revoked_ms
                ],
            )?;
            for (i, g) in info.grants.iter().enumerate() {
                let (kind, role, target) = encode_grant(g);
                tx.execute(
                    "INSERT INTO key_grants (key_id, position, kind, role, target) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![info.id, i as i64, kind, role, target],
                )?;
            }
            tx.commit()
        })
    }

    /// Marks a key revoked.
    pub fn revoke_key(&self, id: &str, at_ms: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE api_keys SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id, at_ms],
            )
            .map(drop)
        })
    }

    /// Removes a key (used when the environment's admin key is rotated).
    pub fn delete_key(&self, id: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM api_keys WHERE id = ?1", [id])
                .map(drop)
        })
    }

    /// The last audit record's sequence number and hash (0 and zeros when empty).
    pub fn audit_head(&self) -> Result<(i64, String)> {
        self.with(|c| {
            c.query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map(|head| head.unwrap_or((0, "0".repeat(64))))
        })
    }

    /// Appends audit records in one transaction.
    pub fn audit_append(&self, records: &[AuditRecord]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO audit (seq, at_ms, key_id, rpc, database, statement, statement_hash,
                         rows_affected, outcome, duration_us, prev_hash, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )?;
                for r in records {
                    stmt.execute(params![
                        r.seq,
                        r.at_ms,
                        r.key_id,
                        r.rpc,
                        r.database,
                        r.statement,
                        r.statement_hash,
                        r.rows_affected,
                        r.outcome,
                        r.duration_us,
                        r.prev_hash,
                        r.hash
                    ])?;
                }
            }
            tx.commit()
        })
    }

    /// Audit records matching a query, oldest first.
    pub fn audit_list(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, at_ms, key_id, rpc, database, statement, statement_hash, rows_affected,
                        outcome, duration_us, prev_hash, hash
                 FROM audit
                 WHERE seq > ?1
                   AND (?2 IS NULL OR key_id = ?2)
                   AND (?3 IS NULL OR database = ?3)
                   AND (?4 IS NULL OR outcome = ?4)
                   AND (?5 IS NULL OR at_ms >= ?5)
                   AND (?6 IS NULL OR at_ms < ?6)
                 ORDER BY seq LIMIT ?7",
            )?;
            let rows = stmt.query_map(
                params![
                    q.after_seq,
                    q.key_id,
                    q.database,
                    q.outcome,
                    q.since_ms,
                    q.until_ms,
                    q.limit as i64
                ],
                audit_row,
            )?;
            rows.collect()
        })
    }

    /// Calls `visit` with every audit record in chain order until it returns `Break`. The
    /// records are read one at a time, so a long log is walked in bounded memory.
    pub fn audit_each(&self, mut visit: impl FnMut(AuditRecord) -> ControlFlow<()>) -> Result<()> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT seq, at_ms, key_id, rpc, database, statement, statement_hash, rows_affected,
                        outcome, duration_us, prev_hash, hash
                 FROM audit ORDER BY seq",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                if visit(audit_row(row)?).is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Deletes audit records older than `before_ms`.
    pub fn audit_prune(&self, before_ms: i64) -> Result<usize> {
        self.with(|c| c.execute("DELETE FROM audit WHERE at_ms < ?1", [before_ms]))
    }

    /// The last lifecycle event's sequence number (0 when none was ever stored).
    pub fn events_head(&self) -> Result<i64> {
        self.with(|c| c.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0)))
    }

    /// The oldest lifecycle event kept, if any.
    pub fn events_oldest(&self) -> Result<Option<i64>> {
        self.with(|c| c.query_row("SELECT min(seq) FROM events", [], |r| r.get(0)))
    }

    /// Stores a lifecycle event and deletes those more than `keep` before it, in one
    /// transaction.
    pub fn event_append(&self, e: &DbEvent, keep: i64) -> Result<()> {
        let labels = serde_json::to_string(&e.labels).unwrap_or_else(|_| "{}".to_owned());
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO events (seq, at_ms, kind, db, backend, cause, key_id, labels, owner_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    e.seq,
                    e.at_ms,
                    e.kind.as_str(),
                    e.database,
                    e.backend.as_str(),
                    e.cause,
                    e.key_id,
                    labels,
                    e.owner
                ],
            )?;
            tx.execute("DELETE FROM events WHERE seq <= ?1", [e.seq - keep])?;
            tx.commit()
        })
    }

    /// At most `limit` lifecycle events after sequence `after`, in order.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<DbEvent>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, at_ms, kind, db, backend, cause, key_id, labels, owner_key
                 FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, at_ms, kind, db, backend, cause, key_id, labels, owner) = row?;
                // A row this version cannot read still holds its place in the order: the
                // watcher skips it (its sequence still counts as seen).
                let (Some(kind), Some(backend)) =
                    (EventKind::parse(&kind), BackendKind::parse(&backend))
                else {
                    tracing::warn!(seq, "skipping a lifecycle event that does not parse");
                    continue;
                };
                out.push(DbEvent {
                    seq,
                    kind,
                    database: db,
                    backend,
                    at_ms,
                    cause,
                    key_id,
                    labels: serde_json::from_str(&labels).unwrap_or_default(),
                    owner,
                });
            }
            Ok(out)
        })
    }

    /// Records a staging database (a restore's) before its storage is created, so that a
    /// crash leaves a row the next start removes together with the storage.
    pub fn stage_insert(&self, backend: BackendKind, db: &Provisioned, now_ms: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO staging (locator, backend, db, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![db.locator, backend.as_str(), db.name.as_str(), now_ms],
            )
            .map(drop)
        })
    }

    /// Forgets a staging database whose storage is gone.
    pub fn stage_remove(&self, locator: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM staging WHERE locator = ?1", [locator])
                .map(drop)
        })
    }

    /// Every staging database.
    pub fn stage_list(&self) -> Result<Vec<(BackendKind, Provisioned)>> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT backend, db, locator FROM staging")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (backend, name, locator) = row?;
                if let (Some(backend), Ok(name)) =
                    (BackendKind::parse(&backend), DatabaseName::parse(&name))
                {
                    out.push((backend, Provisioned { name, locator }));
                }
            }
            Ok(out)
        })
    }

    /// Makes the staging storage `new` the storage of database `name`, and its old storage
    /// `old` a staging one to remove, in one transaction.
    pub fn swap_locator(
        &self,
        name: &DatabaseName,
        backend: BackendKind,
        old: &str,
        new: &str,
        now_ms: i64,
    ) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE databases SET locator = ?2 WHERE name = ?1",
                params![name.as_str(), new],
            )?;
            tx.execute("DELETE FROM staging WHERE locator = ?1", [new])?;
            tx.execute(
                "INSERT INTO staging (locator, backend, db, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![old, backend.as_str(), name.as_str(), now_ms],
            )?;
            tx.commit()
        })
    }

    /// Registers the staging storage of `rec` as a ready database, in one transaction.
    pub fn adopt(&self, rec: &Record) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM staging WHERE locator = ?1",
                [&rec.provisioned.locator],
            )?;
            tx.execute(
                "INSERT INTO databases (name, backend, locator, state, created_ms, last_accessed_ms, owner_key,
                                        expire_ms, idle_ttl_ms, backup_before_prune)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    rec.provisioned.name.as_str(),
                    rec.backend.as_str(),
                    rec.provisioned.locator,
                    RecordState::Ready.as_str(),
                    rec.created_ms,
                    rec.last_accessed_ms,
                    rec.owner,
                    rec.lifecycle.expire_ms,
                    idle_ms(&rec.lifecycle),
                    rec.lifecycle.backup_before_prune
                ],
            )?;
            for (k, v) in &rec.labels {
                tx.execute(
                    "INSERT INTO labels (db, key, value) VALUES (?1, ?2, ?3)",
                    params![rec.provisioned.name.as_str(), k, v],
                )?;
            }
            tx.commit()
        })
    }

    /// Whether a record exists (used by tests of crash recovery).
    pub fn contains(&self, name: &DatabaseName) -> Result<bool> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM databases WHERE name = ?1",
                [name.as_str()],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
        })
    }
}

fn idle_ms(l: &Lifecycle) -> Option<i64> {
    l.idle_ttl
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.get(0)?,
        at_ms: r.get(1)?,
        key_id: r.get(2)?,
        rpc: r.get(3)?,
        database: r.get(4)?,
        statement: r.get(5)?,
        statement_hash: r.get(6)?,
        rows_affected: r.get(7)?,
        outcome: r.get(8)?,
        duration_us: r.get(9)?,
        prev_hash: r.get(10)?,
        hash: r.get(11)?,
    })
}
