//! The catalog: which databases exist, on which backend, where, since when. An embedded SQLite
//! file in the data directory; the source of truth across restarts.

use std::{
    collections::BTreeMap,
    ops::ControlFlow,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use rusqlite::params;

use super::engine::BackendKind;
use super::{
    access::{Grant, KeyInfo, decode_grant, encode_grant},
    audit::{Query as AuditQuery, Record as AuditRecord, chain_after},
    error::{Error, Result},
    events::{DbEvent, EventKind},
    lifecycle::Lifecycle,
    names::DatabaseName,
};
use crate::backend::Provisioned;

mod fences;
mod sql;

pub use fences::FenceRow;

pub(crate) use sql::{Row, SqlError, SqlResult, Tx};

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
    /// The gateway that spawned it (see [`Catalog::node`]): a SQLite database lives on its
    /// disk, and only it finishes the record's interrupted spawn or prune. `None` in catalogs
    /// from before nodes, until a gateway claims them at start.
    pub node: Option<String>,
}

/// The catalog store: the embedded SQLite file (one node) or a PostgreSQL database
/// (`--catalog-url`). Calls block briefly (one small transaction); callers run them on the
/// blocking pool. The PostgreSQL store drives its statements with the runtime's handle from
/// the calling thread, so on a `current_thread` runtime it must be called from a blocking
/// thread.
#[derive(Debug, Clone)]
pub struct Catalog {
    store: Arc<Store>,
    /// This gateway's name among those sharing the catalog.
    node: Arc<str>,
}

/// The node name of a catalog opened without a data directory (tests, `catalog migrate`).
const LOCAL_NODE: &str = "local";

/// The file in the data directory that holds the gateway's node name.
pub const NODE_FILE: &str = "node.id";

enum Store {
    Sqlite(Mutex<rusqlite::Connection>),
    Postgres {
        pool: sqlx::PgPool,
        runtime: CatalogRuntime,
        /// Where it is, without the password (for logs and errors).
        shown: String,
    },
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(_) => f.write_str("Store::Sqlite"),
            Self::Postgres { shown, .. } => write!(f, "Store::Postgres({shown})"),
        }
    }
}

/// The runtime that drives the PostgreSQL catalog's connections, on a thread of its own.
///
/// A connection's readiness is delivered by the runtime it was opened on, so on the gateway's
/// runtime a catalog call would wait for a free worker to poll the IO driver. When its caller
/// held a lock that request tasks wait for on the workers (the keyring's, during a reload),
/// every worker blocked on it, the call never completed and the gateway hung (a CI run,
/// 2026-12-07). On this thread, a catalog call completes whatever the workers are doing.
struct CatalogRuntime {
    handle: tokio::runtime::Handle,
    /// Dropped with the last clone of the catalog: the thread then ends and drops the runtime
    /// (which must not be dropped on a runtime's thread).
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl CatalogRuntime {
    fn start() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("catalog runtime: {e}")))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("dbforge-catalog".into())
            .spawn(move || {
                // Only the thread in `block_on` polls a current-thread runtime's IO and timers;
                // `Handle::block_on` elsewhere relies on it.
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| Error::internal(format!("catalog thread: {e}")))?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }
}

/// Version 1 of the catalog schema, in SQLite's words ([`pg_ddl`] gives PostgreSQL's).
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
CREATE TABLE IF NOT EXISTS damaged (
    db TEXT PRIMARY KEY,
    locator TEXT NOT NULL,
    quarantined TEXT NOT NULL,
    problem TEXT NOT NULL,
    at_ms INTEGER NOT NULL
) STRICT;
";

/// Columns the `databases` table gained after its first version, in the order they came:
/// catalogs written before keys existed lack the owner, before lifecycles the last three.
const ADDED_COLUMNS: [(&str, &str); 4] = [
    ("owner_key", "TEXT"),
    ("expire_ms", "INTEGER"),
    ("idle_ttl_ms", "INTEGER"),
    ("backup_before_prune", "INTEGER NOT NULL DEFAULT 0"),
];

/// The catalog schema version this build writes: 1 is every table up to the lifecycle
/// columns, 2 adds the schedulers' leases, 3 the owning node of databases, staging databases
/// and damage records, 4 the gateways sharing the catalog (`nodes`), 5 the restore fences
/// (`fences`, `fence_acks`) and each gateway's runs of backup policies on its own SQLite
/// databases (`policy_nodes`).
pub const SCHEMA_VERSION: i64 = 5;

/// The steps after version 1: `MIGRATIONS[i]` brings a catalog from version `i + 1` to
/// `i + 2`, in the shared dialect ([`sql`]; `INTEGER`/`BLOB` become `BIGINT`/`BYTEA` on
/// PostgreSQL).
const MIGRATIONS: [&str; 4] = [
    // 2: leases, so that one gateway of those sharing a catalog runs the schedulers.
    "CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
    ) STRICT;",
    // 3: which gateway owns a database (its SQLite file, its interrupted work).
    "ALTER TABLE databases ADD COLUMN node TEXT;
     ALTER TABLE staging ADD COLUMN node TEXT;
     ALTER TABLE damaged ADD COLUMN node TEXT;",
    // 4: the gateways sharing the catalog, each renewing its row while it runs; not copied by
    // `catalog migrate` (a moved catalog's gateways register again when they start).
    "CREATE TABLE IF NOT EXISTS nodes (
        name TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        heartbeat_ms INTEGER NOT NULL,
        free_bytes INTEGER NOT NULL
    ) STRICT;",
    // 5: restore fences across gateways (`fences.rs`), transient; and each gateway's runs of
    // backup policies on its own SQLite databases. Neither is copied by `catalog migrate`.
    "CREATE TABLE IF NOT EXISTS fences (
        db TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        token TEXT NOT NULL,
        until_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE IF NOT EXISTS fence_acks (
        db TEXT NOT NULL,
        token TEXT NOT NULL,
        node TEXT NOT NULL,
        PRIMARY KEY (db, token, node)
    ) STRICT;
    CREATE TABLE IF NOT EXISTS policy_nodes (
        policy TEXT NOT NULL,
        node TEXT NOT NULL,
        last_run_ms INTEGER,
        next_run_ms INTEGER NOT NULL,
        last_error TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (policy, node)
    ) STRICT;",
];

/// The advisory lock that serialises the migrations of gateways starting at once on one
/// PostgreSQL catalog (an arbitrary constant: "dbforge" in ASCII).
const MIGRATION_LOCK: i64 = 0x0064_6266_6f72_6765;

/// The advisory lock that serialises audit appends on a PostgreSQL catalog ("dbfaudit").
const AUDIT_LOCK: i64 = 0x6462_6661_7564_6974;

/// The advisory lock that serialises lifecycle event appends ("dbfevent").
const EVENTS_LOCK: i64 = 0x6462_6665_7665_6e74;

/// The channel a PostgreSQL catalog notifies when keys are created, revoked or replaced.
pub const KEYS_CHANNEL: &str = "dbforge_keys";

/// The channel a PostgreSQL catalog notifies when a database's record changes (spawned,
/// ready, updated, retired, removed, restored onto new storage).
pub const DATABASES_CHANNEL: &str = "dbforge_databases";

/// Every table of the catalog, in an order the foreign keys allow to fill.
pub const TABLES: [&str; 12] = [
    "databases",
    "labels",
    "database_quotas",
    "api_keys",
    "key_grants",
    "audit",
    "backups",
    "backup_policies",
    "staging",
    "events",
    "lifecycle_policies",
    "damaged",
];

/// SQLite DDL as PostgreSQL takes it: 64-bit integers, `BYTEA`, no `STRICT`.
fn pg_ddl(ddl: &str) -> String {
    ddl.replace(") STRICT;", ");")
        .replace("INTEGER", "BIGINT")
        .replace("BLOB", "BYTEA")
}

fn db_err(e: SqlError) -> Error {
    Error::internal(format!("catalog: {e}"))
}

fn too_new(found: i64) -> Error {
    Error::FailedPrecondition(format!(
        "the catalog has schema version {found}, newer than this gateway's {SCHEMA_VERSION}: a \
         newer gateway wrote it; run that version (or newer)"
    ))
}

impl Catalog {
    /// Opens (creating if needed) the SQLite catalog at `path`, migrating it to
    /// [`SCHEMA_VERSION`].
    pub fn open(path: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let sq = |e: rusqlite::Error| db_err(SqlError::Sqlite(e));
        let mut conn = rusqlite::Connection::open(path).map_err(sq)?;
        // The catalog holds key hashes and the passwords of per-database roles: owner only.
        // SQLite gives its -wal and -shm files the database file's mode.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(Error::internal)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sq)?;
        // NORMAL in WAL mode: a power loss may lose the last commits but never corrupts; the
        // start-up reconciliation then removes storage the catalog no longer knows.
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(sq)?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sq)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sq)?;
        if version > SCHEMA_VERSION {
            return Err(too_new(version));
        }
        if version < 1 {
            // Catalogs from before versioning hold some of version 1 already: every step is
            // idempotent.
            tx.execute_batch(SCHEMA).map_err(sq)?;
            for (column, ty) in ADDED_COLUMNS {
                let present: bool = tx
                    .query_row(
                        "SELECT count(*) FROM pragma_table_info('databases') WHERE name = ?1",
                        [column],
                        |r| r.get::<_, i64>(0),
                    )
                    .map_err(sq)?
                    > 0;
                if !present {
                    tx.execute_batch(&format!("ALTER TABLE databases ADD COLUMN {column} {ty}"))
                        .map_err(sq)?;
                }
            }
        }
        for step in MIGRATIONS
            .iter()
            .skip(usize::try_from(version.max(1) - 1).unwrap_or(0))
        {
            tx.execute_batch(step).map_err(sq)?;
        }
        // PRAGMA takes no parameters; the value is this build's constant.
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(sq)?;
        tx.commit().map_err(sq)?;
        Ok(Self {
            store: Arc::new(Store::Sqlite(Mutex::new(conn))),
            node: Arc::from(LOCAL_NODE),
        })
    }

    /// Connects to the PostgreSQL catalog at `url` (`postgres://…`), creating and migrating
    /// its tables under an advisory lock, so gateways starting at once do not race.
    pub async fn connect(url: &str) -> Result<Self> {
        let runtime = CatalogRuntime::start()?;
        let url = url.to_owned();
        let (pool, shown) = runtime
            .handle
            .spawn(async move { Self::connect_pool(&url).await })
            .await
            .map_err(|e| Error::internal(format!("catalog connect task: {e}")))??;
        Ok(Self {
            store: Arc::new(Store::Postgres {
                pool,
                runtime,
                shown,
            }),
            node: Arc::from(LOCAL_NODE),
        })
    }

    /// Connects and migrates (on the catalog's runtime, which then owns the connections):
    /// the pool and the URL as shown in logs.
    async fn connect_pool(url: &str) -> Result<(sqlx::PgPool, String)> {
        let options: sqlx::postgres::PgConnectOptions = url
            .parse()
            .map_err(|e| Error::invalid("--catalog-url", format!("not a PostgreSQL URL: {e}")))?;
        let shown = format!(
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        let unavailable = |e: sqlx::Error| Error::Unavailable(format!("catalog at {shown}: {e}"));
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.application_name("dbforge-catalog"))
            .await
            .map_err(unavailable)?;
        let mut tx = pool.begin().await.map_err(unavailable)?;
        let step = |e: sqlx::Error| Error::internal(format!("catalog migration at {shown}: {e}"));
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(step)?;
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(step)?;
        let version: i64 = sqlx::query_scalar("SELECT max(version) FROM schema_version")
            .fetch_one(&mut *tx)
            .await
            .map(|v: Option<i64>| v.unwrap_or(0))
            .map_err(step)?;
        if version > SCHEMA_VERSION {
            return Err(too_new(version));
        }
        let mut ddl = String::new();
        if version < 1 {
            ddl.push_str(&pg_ddl(SCHEMA));
            for (column, ty) in ADDED_COLUMNS {
                ddl.push_str(&pg_ddl(&format!(
                    "ALTER TABLE databases ADD COLUMN IF NOT EXISTS {column} {ty};\n"
                )));
            }
        }
        for step in MIGRATIONS
            .iter()
            .skip(usize::try_from(version.max(1) - 1).unwrap_or(0))
        {
            ddl.push_str(&pg_ddl(step));
        }
        if version < SCHEMA_VERSION {
            sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
                .execute(&mut *tx)
                .await
                .map_err(step)?;
            sqlx::query("DELETE FROM schema_version")
                .execute(&mut *tx)
                .await
                .map_err(step)?;
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(SCHEMA_VERSION)
                .execute(&mut *tx)
                .await
                .map_err(step)?;
        }
        tx.commit().await.map_err(step)?;
        if version < SCHEMA_VERSION {
            tracing::info!(catalog = %shown, from = version, to = SCHEMA_VERSION, "catalog schema migrated");
        }
        Ok((pool, shown))
    }

    /// Opens the catalog a gateway is configured with: PostgreSQL at `url`, else the SQLite
    /// file `catalog.db` in `data_dir`; its node name is `data_dir`'s ([`node_name`]).
    pub async fn from_config(url: Option<&str>, data_dir: &Path) -> Result<Self> {
        let node = node_name(data_dir)?;
        let catalog = match url {
            Some(url) => Self::connect(url).await?,
            None => {
                let path = data_dir.join("catalog.db");
                tokio::task::spawn_blocking(move || Self::open(&path))
                    .await
                    .map_err(|e| Error::internal(format!("blocking task failed: {e}")))??
            }
        };
        Ok(Self {
            node: Arc::from(node),
            ..catalog
        })
    }

    /// This gateway's name among those sharing the catalog: the owner it records for the
    /// databases it spawns.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Makes this gateway the owner of the records (databases, staging, damage) that have
    /// none: those of a catalog from before nodes. A SQLite catalog has one gateway, which
    /// owns every record whatever name wrote it (a data directory copied elsewhere, a
    /// `node.id` removed); on PostgreSQL the first gateway to start on an unowned catalog
    /// (moved there by `catalog migrate`, which keeps the owners) takes those records.
    pub fn claim_unowned(&self) -> Result<u64> {
        let node = self.node.clone();
        self.with(|c| {
            let only_unowned = c.is_postgres();
            let mut n = 0;
            for table in ["databases", "staging", "damaged"] {
                let filter = if only_unowned {
                    "node IS NULL"
                } else {
                    "node IS NULL OR node <> ?1"
                };
                n += c.execute(
                    &format!("UPDATE {table} SET node = ?1 WHERE {filter}"),
                    params![&*node],
                )?;
            }
            Ok(n)
        })
    }

    /// Whether other gateways may share it (a PostgreSQL catalog).
    pub fn is_shared(&self) -> bool {
        matches!(&*self.store, Store::Postgres { .. })
    }

    /// Where the catalog is, for logs: a path's file name or the PostgreSQL URL without
    /// its password.
    pub fn describe(&self) -> String {
        match &*self.store {
            Store::Sqlite(_) => "sqlite (catalog.db)".to_owned(),
            Store::Postgres { shown, .. } => shown.clone(),
        }
    }

    /// Runs `f` in one transaction on the catalog (one caller at a time on SQLite).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> SqlResult<T>) -> Result<T> {
        match &*self.store {
            Store::Sqlite(conn) => {
                let mut conn = conn
                    .lock()
                    .map_err(|_| Error::internal("catalog lock poisoned"))?;
                let tx = conn.transaction().map_err(|e| db_err(e.into()))?;
                let out = f(&mut Tx::sqlite(&tx)).map_err(db_err)?;
                tx.commit().map_err(|e| db_err(e.into()))?;
                Ok(out)
            }
            // On a runtime worker the statements run in place of the worker (its other tasks
            // move to another thread); on a blocking thread this is a plain call.
            Store::Postgres {
                pool,
                runtime,
                shown,
            } => tokio::task::block_in_place(|| {
                // What sqlx spawns meanwhile (a connection's return to the pool) runs there too.
                let _in = runtime.handle.enter();
                let rt = &runtime.handle;
                let mut tx = rt
                    .block_on(pool.begin())
                    .map_err(|e| Error::Unavailable(format!("catalog at {shown}: {e}")))?;
                match f(&mut Tx::postgres(&mut tx, rt)) {
                    Ok(out) => {
                        rt.block_on(tx.commit()).map_err(|e| db_err(e.into()))?;
                        Ok(out)
                    }
                    Err(e) => {
                        // Dropping the transaction would roll it back too, but only when its
                        // connection is next used.
                        let _ = rt.block_on(tx.rollback());
                        Err(db_err(e))
                    }
                }
            }),
        }
    }

    /// Every record.
    pub fn load(&self) -> Result<Vec<Record>> {
        self.with(|c| {
            let mut labels: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            for (db, k, v) in c.query_map("SELECT db, key, value FROM labels", &[], |r| {
                Ok((r.get::<String>(0)?, r.get(1)?, r.get(2)?))
            })? {
                labels.entry(db).or_default().insert(k, v);
            }
            let rows = c.query_map(
                "SELECT name, backend, locator, state, created_ms, last_accessed_ms, owner_key,
                        expire_ms, idle_ttl_ms, backup_before_prune, node
                 FROM databases",
                &[],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                        r.get::<i64>(4)?,
                        r.get::<i64>(5)?,
                        r.get::<Option<String>>(6)?,
                        Lifecycle {
                            expire_ms: r.get(7)?,
                            idle_ttl: r
                                .get::<Option<i64>>(8)?
                                .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
                            backup_before_prune: r.get(9)?,
                        },
                        r.get::<Option<String>>(10)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for (
                name,
                backend,
                locator,
                state,
                created_ms,
                last_accessed_ms,
                owner,
                lifecycle,
                node,
            ) in rows
            {
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
                    node,
                });
            }
            Ok(out)
        })
    }

    /// Records a spawn about to start (state `Provisioning`).
    pub fn insert(&self, rec: &Record) -> Result<()> {
        self.with(|c| insert_record(c, rec, rec.state))
    }

    /// Moves a record to `state`.
    pub fn set_state(&self, name: &DatabaseName, state: RecordState) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE databases SET state = ?2 WHERE name = ?1",
                params![name.as_str(), state.as_str()],
            )?;
            databases_changed(c)
        })
    }

    /// Stores a record's labels and lifecycle settings (UpdateDatabase), in one transaction.
    pub fn update_database(&self, rec: &Record) -> Result<()> {
        let name = rec.provisioned.name.as_str();
        self.with(|c| {
            c.execute(
                "UPDATE databases SET expire_ms = ?2, idle_ttl_ms = ?3, backup_before_prune = ?4
                 WHERE name = ?1",
                params![
                    name,
                    rec.lifecycle.expire_ms,
                    idle_ms(&rec.lifecycle),
                    rec.lifecycle.backup_before_prune
                ],
            )?;
            c.execute("DELETE FROM labels WHERE db = ?1", params![name])?;
            for (k, v) in &rec.labels {
                c.execute(
                    "INSERT INTO labels (db, key, value) VALUES (?1, ?2, ?3)",
                    params![name, k, v],
                )?;
            }
            databases_changed(c)
        })
    }

    /// Removes a record and its labels.
    pub fn remove(&self, name: &DatabaseName) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM databases WHERE name = ?1",
                params![name.as_str()],
            )?;
            databases_changed(c)
        })
    }

    /// Stores last-access times in one transaction.
    pub fn touch(&self, updates: &[(DatabaseName, i64)]) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        self.with(|c| {
            for (name, ms) in updates {
                c.execute(
                    "UPDATE databases SET last_accessed_ms = ?2 WHERE name = ?1 AND last_accessed_ms < ?2",
                    params![name.as_str(), ms],
                )?;
            }
            Ok(())
        })
    }

    /// Every API key with the hash of its secret.
    pub fn load_keys(&self) -> Result<Vec<(KeyInfo, [u8; 32])>> {
        self.with(|c| {
            let mut grants: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
            let rows = c.query_map(
                "SELECT key_id, kind, role, target FROM key_grants ORDER BY key_id, position",
                &[],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                    ))
                },
            )?;
            for (key, kind, role, target) in rows {
                match decode_grant(&kind, &role, &target) {
                    Some(g) => grants.entry(key).or_default().push(g),
                    None => tracing::warn!(key = %key, "skipping a grant that does not parse"),
                }
            }
            let rows = c.query_map(
                "SELECT id, name, hash, admin, can_create, create_quota, created_ms, expires_ms, revoked_ms
                 FROM api_keys",
                &[],
                |r| {
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
                        r.get::<Vec<u8>>(2)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for (mut info, hash) in rows {
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
        self.with(|c| store_key(c, info, hash, false))
    }

    /// Stores a key and its grants, replacing one with the same id (the environment's admin
    /// key, registered again at every start, by every gateway sharing the catalog).
    pub fn replace_key(&self, info: &KeyInfo, hash: &[u8; 32]) -> Result<()> {
        self.with(|c| store_key(c, info, hash, true))
    }

    /// Marks a key revoked; false when it was revoked already (by another gateway, say).
    pub fn revoke_key(&self, id: &str, at_ms: i64) -> Result<bool> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE api_keys SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id, at_ms],
            )?;
            keys_changed(c)?;
            Ok(n > 0)
        })
    }

    /// The last audit record's sequence number and hash (0 and zeros when empty).
    pub fn audit_head(&self) -> Result<(i64, String)> {
        self.with(|c| {
            c.query_opt(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map(|head| head.unwrap_or((0, "0".repeat(64))))
        })
    }

    /// Appends audit records in one transaction, linked after the chain's head as stored: on
    /// PostgreSQL under an advisory lock held to the commit, so the appends of every gateway
    /// sharing the catalog make one chain (each batch relinked by `audit::chain_after`).
    pub fn audit_append(&self, records: &mut [AuditRecord]) -> Result<()> {
        self.with(|c| {
            if c.is_postgres() {
                c.execute("SELECT pg_advisory_xact_lock(?1)", params![AUDIT_LOCK])?;
            }
            let head = c
                .query_opt(
                    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                    &[],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .unwrap_or((0, "0".repeat(64)));
            chain_after(records, head);
            for r in records.iter() {
                c.execute(
                    "INSERT INTO audit (seq, at_ms, key_id, rpc, database, statement, statement_hash,
                         rows_affected, outcome, duration_us, prev_hash, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    params![
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
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// Audit records matching a query, oldest first.
    pub fn audit_list(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        self.with(|c| {
            c.query_map(
                "SELECT seq, at_ms, key_id, rpc, database, statement, statement_hash, rows_affected,
                        outcome, duration_us, prev_hash, hash
                 FROM audit
                 WHERE seq > ?1
                   AND (CAST(?2 AS TEXT) IS NULL OR key_id = ?2)
                   AND (CAST(?3 AS TEXT) IS NULL OR database = ?3)
                   AND (CAST(?4 AS TEXT) IS NULL OR outcome = ?4)
                   AND (CAST(?5 AS BIGINT) IS NULL OR at_ms >= ?5)
                   AND (CAST(?6 AS BIGINT) IS NULL OR at_ms < ?6)
                 ORDER BY seq LIMIT ?7",
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
            )
        })
    }

    /// Calls `visit` with every audit record in chain order until it returns `Break`. The
    /// records are read one at a time, so a long log is walked in bounded memory.
    pub fn audit_each(&self, mut visit: impl FnMut(AuditRecord) -> ControlFlow<()>) -> Result<()> {
        self.with(|c| {
            c.each(
                "SELECT seq, at_ms, key_id, rpc, database, statement, statement_hash, rows_affected,
                        outcome, duration_us, prev_hash, hash
                 FROM audit ORDER BY seq",
                &[],
                |r| Ok(visit(audit_row(r)?)),
            )
        })
    }

    /// Deletes audit records older than `before_ms`.
    pub fn audit_prune(&self, before_ms: i64) -> Result<usize> {
        self.with(|c| c.execute("DELETE FROM audit WHERE at_ms < ?1", params![before_ms]))
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The last lifecycle event's sequence number (0 when none was ever stored).
    pub fn events_head(&self) -> Result<i64> {
        self.with(|c| {
            c.query_one("SELECT coalesce(max(seq), 0) FROM events", &[], |r| {
                r.get(0)
            })
        })
    }

    /// The oldest lifecycle event kept, if any.
    pub fn events_oldest(&self) -> Result<Option<i64>> {
        self.with(|c| c.query_one("SELECT min(seq) FROM events", &[], |r| r.get(0)))
    }

    /// Stores a lifecycle event and deletes those more than `keep` before it, in one
    /// transaction. Renumbers it after the newest stored event when another gateway sharing
    /// the catalog stored one since (under an advisory lock on PostgreSQL), so no event is
    /// lost to a duplicate number.
    pub fn event_append(&self, e: &mut DbEvent, keep: i64) -> Result<()> {
        let labels = serde_json::to_string(&e.labels).unwrap_or_else(|_| "{}".to_owned());
        self.with(|c| {
            if c.is_postgres() {
                c.execute("SELECT pg_advisory_xact_lock(?1)", params![EVENTS_LOCK])?;
            }
            let newest: i64 =
                c.query_one("SELECT coalesce(max(seq), 0) FROM events", &[], |r| r.get(0))?;
            e.seq = e.seq.max(newest + 1);
            c.execute(
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
            c.execute("DELETE FROM events WHERE seq <= ?1", params![e.seq - keep])?;
            Ok(())
        })
    }

    /// At most `limit` lifecycle events after sequence `after`, in order.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<DbEvent>> {
        self.with(|c| {
            let rows = c.query_map(
                "SELECT seq, at_ms, kind, db, backend, cause, key_id, labels, owner_key
                 FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                params![after, limit as i64],
                |r| {
                    Ok((
                        r.get::<i64>(0)?,
                        r.get::<i64>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                        r.get::<String>(4)?,
                        r.get::<String>(5)?,
                        r.get::<String>(6)?,
                        r.get::<String>(7)?,
                        r.get::<Option<String>>(8)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for (seq, at_ms, kind, db, backend, cause, key_id, labels, owner) in rows {
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
        let node = self.node.clone();
        self.with(|c| {
            c.execute(
                "INSERT INTO staging (locator, backend, db, created_ms, node) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![db.locator, backend.as_str(), db.name.as_str(), now_ms, &*node],
            )
            .map(drop)
        })
    }

    /// Forgets a staging database whose storage is gone.
    pub fn stage_remove(&self, locator: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM staging WHERE locator = ?1", params![locator])
                .map(drop)
        })
    }

    /// Every staging database of this gateway.
    pub fn stage_list(&self) -> Result<Vec<(BackendKind, Provisioned)>> {
        let node = self.node.clone();
        self.with(|c| {
            let rows = c.query_map(
                "SELECT backend, db, locator FROM staging WHERE node = ?1",
                params![&*node],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for (backend, name, locator) in rows {
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
        let node = self.node.clone();
        self.with(|c| {
            c.execute(
                "UPDATE databases SET locator = ?2 WHERE name = ?1",
                params![name.as_str(), new],
            )?;
            c.execute("DELETE FROM staging WHERE locator = ?1", params![new])?;
            c.execute(
                "INSERT INTO staging (locator, backend, db, created_ms, node) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![old, backend.as_str(), name.as_str(), now_ms, &*node],
            )?;
            databases_changed(c)
        })
    }

    /// Registers the staging storage of `rec` as a ready database, in one transaction.
    pub fn adopt(&self, rec: &Record) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM staging WHERE locator = ?1",
                params![rec.provisioned.locator],
            )?;
            insert_record(c, rec, RecordState::Ready)
        })
    }

    /// Whether a record exists (used by tests of crash recovery).
    pub fn contains(&self, name: &DatabaseName) -> Result<bool> {
        self.with(|c| {
            c.query_opt(
                "SELECT 1 FROM databases WHERE name = ?1",
                params![name.as_str()],
                |_| Ok(()),
            )
            .map(|r| r.is_some())
        })
    }

    /// Takes or renews the lease `name` for `holder` until `now_ms + ttl_ms`: whether
    /// `holder` has it now (false: another holder's lease has not expired).
    pub fn hold_lease(&self, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "INSERT INTO leases (name, holder, expires_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET holder = ?2, expires_ms = ?3
                 WHERE leases.holder = ?2 OR leases.expires_ms < ?4",
                params![name, holder, now_ms.saturating_add(ttl_ms), now_ms],
            )
            .map(|n| n == 1)
        })
    }

    /// Records that this gateway (its [`node`](Self::node) name) runs, reachable at
    /// `address`, with `free_bytes` free for its data, as of `now_ms`: its row in `nodes`,
    /// which the others read with [`nodes`](Self::nodes).
    pub fn heartbeat(
        &self,
        address: &str,
        started_ms: i64,
        now_ms: i64,
        free_bytes: i64,
    ) -> Result<()> {
        let node = self.node.to_string();
        self.with(|c| {
            c.execute(
                "INSERT INTO nodes (name, address, started_ms, heartbeat_ms, free_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (name) DO UPDATE
                 SET address = ?2, started_ms = ?3, heartbeat_ms = ?4, free_bytes = ?5",
                params![node, address, started_ms, now_ms, free_bytes],
            )
            .map(drop)
        })
    }

    /// The gateways whose last heartbeat is at `since_ms` or later, by name.
    pub fn nodes(&self, since_ms: i64) -> Result<Vec<NodeInfo>> {
        self.with(|c| {
            c.query_map(
                "SELECT name, address, started_ms, heartbeat_ms, free_bytes FROM nodes
                 WHERE heartbeat_ms >= ?1 ORDER BY name",
                params![since_ms],
                |r| {
                    Ok(NodeInfo {
                        name: r.get(0)?,
                        address: r.get(1)?,
                        started_ms: r.get(2)?,
                        heartbeat_ms: r.get(3)?,
                        free_bytes: r.get(4)?,
                    })
                },
            )
        })
    }

    /// Removes this gateway's row (a clean shutdown), so the others stop counting it at once.
    pub fn leave(&self) -> Result<()> {
        let node = self.node.to_string();
        self.with(|c| {
            c.execute("DELETE FROM nodes WHERE name = ?1", params![node])
                .map(drop)
        })
    }

    /// Gives up the lease `name` if `holder` has it.
    pub fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
                params![name, holder],
            )
            .map(drop)
        })
    }

    /// On a PostgreSQL catalog, calls `changed` whenever a gateway sharing it notifies
    /// `channel` ([`KEYS_CHANNEL`], [`DATABASES_CHANNEL`]; LISTEN/NOTIFY: within milliseconds
    /// of the commit), and after (re)connecting, for changes made while not listening; the
    /// task ends when `changed` returns false. `None` for SQLite, which has one gateway.
    pub fn watch(
        &self,
        channel: &'static str,
        changed: impl Fn() -> bool + Send + 'static,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let Store::Postgres {
            pool,
            shown,
            runtime,
        } = &*self.store
        else {
            return None;
        };
        let (pool, shown) = (pool.clone(), shown.clone());
        // The listener runs on the catalog's runtime; `changed` on the caller's. One pending
        // signal is enough: the call it causes reads what every earlier notification changed.
        let (signal, mut signals) = tokio::sync::mpsc::channel::<()>(1);
        // Ends the listener when the caller's task ends (aborted at shutdown).
        let unwatched = signal.clone();
        let listen = async move {
            loop {
                let listening = async {
                    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    listener.listen(channel).await?;
                    Ok::<_, sqlx::Error>(listener)
                };
                let mut listener = match listening.await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(catalog = %shown, channel, error = %e, "cannot listen for catalog changes; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                loop {
                    if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) =
                        signal.try_send(())
                    {
                        return;
                    }
                    // `Ok(None)`: the connection was lost and made again; what changed in
                    // between was not notified, so it counts as a change.
                    if let Err(e) = listener.try_recv().await {
                        tracing::warn!(catalog = %shown, channel, error = %e, "lost a catalog listener; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        break;
                    }
                }
            }
        };
        runtime.handle.spawn(async move {
            tokio::select! {
                () = listen => {}
                () = unwatched.closed() => {}
            }
        });
        Some(tokio::spawn(async move {
            while signals.recv().await.is_some() {
                if !changed() {
                    return;
                }
            }
        }))
    }

    /// Copies every row of every table of `self` into `to`, whose tables must be empty: the
    /// move of a catalog to another store (`dbforge-server catalog migrate`). Returns the
    /// rows copied per table. Both catalogs must be at [`SCHEMA_VERSION`] (opening them
    /// does that).
    pub fn copy_to(&self, to: &Catalog) -> Result<Vec<(&'static str, u64)>> {
        let mut counts = Vec::new();
        for table in TABLES {
            let n = to.with(|c| {
                c.query_one(&format!("SELECT count(*) FROM {table}"), &[], |r| {
                    r.get::<i64>(0)
                })
            })?;
            if n > 0 {
                return Err(Error::FailedPrecondition(format!(
                    "the target catalog ({}) already holds {n} rows in {table}: move a catalog only \
                     into an empty one",
                    to.describe()
                )));
            }
        }
        for table in TABLES {
            let columns: Vec<String> = self.with(|c| {
                let sql = if c.is_postgres() {
                    "SELECT column_name::text FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = ?1
                     ORDER BY ordinal_position"
                } else {
                    "SELECT name FROM pragma_table_info(?1) ORDER BY cid"
                };
                c.query_map(sql, params![table], |r| r.get(0))
            })?;
            let list = columns.join(", ");
            let marks = (1..=columns.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let insert = format!("INSERT INTO {table} ({list}) VALUES ({marks})");
            let select = format!("SELECT {list} FROM {table}");
            // Rows move in bounded batches, each batch one transaction on the target.
            let mut copied = 0u64;
            let mut batch: Vec<Vec<rusqlite::types::Value>> = Vec::new();
            let flush = |batch: &mut Vec<Vec<rusqlite::types::Value>>| -> Result<()> {
                to.with(|c| {
                    for row in batch.iter() {
                        let params: Vec<&dyn rusqlite::ToSql> =
                            row.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
                        c.execute(&insert, &params)?;
                    }
                    Ok(())
                })?;
                batch.clear();
                Ok(())
            };
            let mut failed = None;
            self.with(|c| {
                c.each(&select, &[], |r| {
                    batch.push(r.into_values());
                    copied += 1;
                    if batch.len() >= 1000
                        && let Err(e) = flush(&mut batch)
                    {
                        failed = Some(e);
                        return Ok(ControlFlow::Break(()));
                    }
                    Ok(ControlFlow::Continue(()))
                })
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
            flush(&mut batch)?;
            counts.push((table, copied));
        }
        Ok(counts)
    }
}

fn store_key(c: &mut Tx<'_>, info: &KeyInfo, hash: &[u8; 32], replace: bool) -> SqlResult<()> {
    let upsert = if replace {
        c.execute("DELETE FROM key_grants WHERE key_id = ?1", params![info.id])?;
        "ON CONFLICT (id) DO UPDATE SET name = ?2, hash = ?3, admin = ?4, can_create = ?5,
             create_quota = ?6, created_ms = ?7, expires_ms = ?8, revoked_ms = ?9"
    } else {
        ""
    };
    c.execute(
        &format!(
            "INSERT INTO api_keys (id, name, hash, admin, can_create, create_quota, created_ms,
                                   expires_ms, revoked_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) {upsert}"
        ),
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
        c.execute(
            "INSERT INTO key_grants (key_id, position, kind, role, target) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![info.id, i as i64, kind, role, target],
        )?;
    }
    keys_changed(c)
}

/// Tells the other gateways on a PostgreSQL catalog that the keys changed (delivered when the
/// transaction commits; see [`Catalog::watch`]).
fn keys_changed(c: &mut Tx<'_>) -> SqlResult<()> {
    notify(c, KEYS_CHANNEL)
}

/// Tells the other gateways on a PostgreSQL catalog that a database's record changed.
fn databases_changed(c: &mut Tx<'_>) -> SqlResult<()> {
    notify(c, DATABASES_CHANNEL)
}

fn notify(c: &mut Tx<'_>, channel: &str) -> SqlResult<()> {
    if c.is_postgres() {
        c.execute(&format!("SELECT pg_notify('{channel}', '')"), &[])?;
    }
    Ok(())
}

fn insert_record(c: &mut Tx<'_>, rec: &Record, state: RecordState) -> SqlResult<()> {
    c.execute(
        "INSERT INTO databases (name, backend, locator, state, created_ms, last_accessed_ms, owner_key,
                                expire_ms, idle_ttl_ms, backup_before_prune, node)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            rec.provisioned.name.as_str(),
            rec.backend.as_str(),
            rec.provisioned.locator,
            state.as_str(),
            rec.created_ms,
            rec.last_accessed_ms,
            rec.owner,
            rec.lifecycle.expire_ms,
            idle_ms(&rec.lifecycle),
            rec.lifecycle.backup_before_prune,
            rec.node
        ],
    )?;
    for (k, v) in &rec.labels {
        c.execute(
            "INSERT INTO labels (db, key, value) VALUES (?1, ?2, ?3)",
            params![rec.provisioned.name.as_str(), k, v],
        )?;
    }
    databases_changed(c)
}

fn idle_ms(l: &Lifecycle) -> Option<i64> {
    l.idle_ttl
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn audit_row(r: Row) -> SqlResult<AuditRecord> {
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

/// A gateway sharing the catalog, as its last heartbeat left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its node name ([`node_name`]).
    pub name: String,
    /// Where it listens for gRPC, as it advertises it.
    pub address: String,
    /// When its process started, in ms since the epoch.
    pub started_ms: i64,
    /// Its last heartbeat, in ms since the epoch.
    pub heartbeat_ms: i64,
    /// Free bytes on its data directory's filesystem, as of that heartbeat.
    pub free_bytes: i64,
}

/// The node name of the gateway on `data_dir`: the first line of its `node.id`, written with
/// a random name at the first start (an operator may write a name of their own there before
/// it). Tied to the data directory, as the SQLite files a node owns are.
pub fn node_name(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(NODE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let name = text.lines().next().unwrap_or_default().trim().to_owned();
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                return Err(Error::FailedPrecondition(format!(
                    "{} must hold this gateway's node name: 1 to 128 printable characters on its first line",
                    path.display()
                )));
            }
            Ok(name)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut salt = [0u8; 6];
            getrandom::fill(&mut salt)
                .map_err(|e| Error::internal(format!("no randomness: {e}")))?;
            let name: String = salt.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::create_dir_all(data_dir).map_err(Error::internal)?;
            std::fs::write(&path, format!("{name}\n")).map_err(Error::internal)?;
            Ok(name)
        }
        Err(e) => Err(Error::internal(format!("{}: {e}", path.display()))),
    }
}

/// `dbforge-server catalog migrate`: copies the catalog a gateway is configured with (PostgreSQL
/// at `from_url`, else `catalog.db` in `data_dir`) into `to` (a `postgres://` URL, or the path
/// of a SQLite catalog file that does not exist yet), whose tables must be empty. Returns the
/// rows copied per table.
pub async fn migrate(
    from_url: Option<&str>,
    data_dir: &Path,
    to: &str,
) -> Result<Vec<(&'static str, u64)>> {
    let to_postgres = crate::config::is_postgres_url(to);
    if from_url.is_some() && to_postgres {
        return Err(Error::FailedPrecondition(
            "both catalogs are in PostgreSQL: copy the database with pg_dump and pg_restore".into(),
        ));
    }
    if from_url.is_none() && !data_dir.join("catalog.db").exists() {
        return Err(Error::FailedPrecondition(format!(
            "there is no catalog to move: {} does not exist (set --data-dir, or --catalog-url \
             for a catalog in PostgreSQL)",
            data_dir.join("catalog.db").display()
        )));
    }
    let target = if to_postgres {
        Catalog::connect(to).await?
    } else {
        let path = std::path::PathBuf::from(to);
        if path.exists() {
            return Err(Error::FailedPrecondition(format!(
                "{to} exists: name a new file for the SQLite catalog"
            )));
        }
        tokio::task::spawn_blocking(move || Catalog::open(&path))
            .await
            .map_err(|e| Error::internal(format!("blocking task failed: {e}")))??
    };
    let source = Catalog::from_config(from_url, data_dir).await?;
    tokio::task::spawn_blocking(move || source.copy_to(&target))
        .await
        .map_err(|e| Error::internal(format!("blocking task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A catalog from before versioning (and before keys and lifecycles) is brought to the
    /// current version with its rows; one from a newer gateway is refused.
    #[test]
    fn old_catalogs_are_migrated_and_newer_ones_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("catalog.db");
        {
            let c = rusqlite::Connection::open(&path).expect("open");
            c.execute_batch(
                "CREATE TABLE databases (name TEXT PRIMARY KEY, backend TEXT NOT NULL,
                     locator TEXT NOT NULL, state TEXT NOT NULL, created_ms INTEGER NOT NULL,
                     last_accessed_ms INTEGER NOT NULL) STRICT;
                 INSERT INTO databases VALUES ('old', 'sqlite', 'old.db', 'ready', 1, 2);",
            )
            .expect("a first-version catalog");
        }
        let cat = Catalog::open(&path).expect("migrates");
        let records = cat.load().expect("load");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].provisioned.name.as_str(), "old");
        assert_eq!(records[0].owner, None);
        assert!(!records[0].lifecycle.backup_before_prune);
        assert!(cat.load_keys().expect("keys table made").is_empty());
        drop(cat);
        let version: i64 = rusqlite::Connection::open(&path)
            .expect("open")
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        // Opening again changes nothing.
        assert_eq!(
            Catalog::open(&path)
                .expect("reopen")
                .load()
                .expect("load")
                .len(),
            1
        );

        rusqlite::Connection::open(&path)
            .expect("open")
            .execute_batch("PRAGMA user_version = 99")
            .expect("pretend a newer gateway");
        match Catalog::open(&path) {
            Err(Error::FailedPrecondition(why)) => assert!(why.contains("99"), "{why}"),
            other => panic!("expected FailedPrecondition, got {other:?}"),
        }
    }

    /// The node name is written once and read back; a SQLite catalog's gateway owns every
    /// record, whichever name wrote it.
    #[test]
    fn a_sqlite_catalogs_gateway_owns_every_record() {
        let dir = tempfile::tempdir().expect("dir");
        let name = node_name(dir.path()).expect("made");
        assert_eq!(node_name(dir.path()).expect("read"), name);
        std::fs::write(dir.path().join(NODE_FILE), "\n").expect("write");
        assert!(matches!(
            node_name(dir.path()),
            Err(Error::FailedPrecondition(_))
        ));

        let cat = Catalog::open(&dir.path().join("catalog.db")).expect("open");
        let rec = Record {
            provisioned: Provisioned {
                name: DatabaseName::parse("elsewhere").expect("name"),
                locator: "elsewhere.db".into(),
            },
            backend: BackendKind::Sqlite,
            state: RecordState::Ready,
            created_ms: 1,
            last_accessed_ms: 1,
            labels: BTreeMap::new(),
            owner: None,
            lifecycle: Lifecycle::default(),
            node: Some("a-copied-data-dir".into()),
        };
        cat.insert(&rec).expect("insert");
        assert_eq!(cat.claim_unowned().expect("claim"), 1);
        let loaded = cat.load().expect("load");
        assert_eq!(loaded[0].node.as_deref(), Some(LOCAL_NODE));
    }
}
