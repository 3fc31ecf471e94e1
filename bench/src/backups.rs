//! Phase 16: BackupService's backup and restore of a 1,000,000-row database next to each
//! engine's own tool on the same data, the gateway's memory meanwhile, and what a running backup
//! does to point queries on the same database.
//!
//! For each engine the bench spawns a database through the gateway and fills it untimed with
//! the engine's own loader (the transfer phase's CSV into a table `t`; on Redis, `rows` string
//! keys SET by redis-rs into the database's key prefix). Then, one timed run per side (a run of
//! a million rows takes seconds, which the machine's noise does not move by much):
//!
//! - backup: `CreateBackup` (unary; it returns when the backup is stored) against `sqlite3
//!   .backup` of the gateway's own file, `pg_dump -Fc` and `mariadb-dump --single-transaction`
//!   of the spawned database (schema), and on Redis a loop in this process that `SCAN`s the
//!   prefix and pipelines `DUMP` and `PTTL` of each batch of keys into a file;
//! - restore: `RestoreBackup` in mode NEW into a fresh database (deleted afterwards) against
//!   `sqlite3 .restore` into a new file, `pg_restore` and `mariadb < dump` into a database made
//!   for it (the `CREATE DATABASE` is timed too, as NEW creates one), and on Redis pipelined
//!   `RESTORE`s of the dumped keys under another prefix;
//! - memory: the gateway's VmRSS, read from `/proc` every 50 ms while each gateway call runs;
//!   the growth is the largest reading minus the one before the call;
//! - interference: sequential point queries by primary key (Redis: GET) through the gateway,
//!   first with nothing else running, then while another connection runs `CreateBackup` of the
//!   same database in a loop (deleting each backup once stored), and, as a baseline, while the
//!   native backup tool runs in a loop instead. Only queries that start and end while a backup
//!   is running count, and each part lasts at least one whole backup;
//! - forks (SQLite and PostgreSQL): `ForkDatabase` into `<db>-f` (deleted afterwards) against
//!   the engine's own copy of the same database: the `sqlite3 .backup` run above, and `CREATE
//!   DATABASE … TEMPLATE` (what `createdb -T` runs) right after the gateway's fork, which closed
//!   the gateway's idle connections to the source.
//!
//! The native tools run as the servers' admin users on loopback, as the transfer phase's do;
//! their times include starting the tool and connecting. Every restore is checked (row or key
//! count) before it counts.

use std::{
    fmt,
    io::{BufReader, BufWriter, Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use dbforge::pb::{self, value};

use crate::{
    BoxError,
    backends::{Available, REDIS_URL, redis_prefix},
    child,
    gateway::{self, Authed, Conn, failed},
    stats::{Latency, Rng, sample},
    transfer::{self, Engine, Run, blocking, timed},
};

/// Target: the gateway's rate at least this share of the native tool's, in percent.
pub const SHARE_MIN: f64 = 50.0;

/// Target: the gateway's RSS grows by at most this much during a backup or a restore, in MB.
pub const RSS_GROWTH_MAX_MB: f64 = 64.0;

/// Target: point-query p99 while a backup runs at most this many times p99 without one.
pub const P99_RATIO_MAX: f64 = 2.0;

/// Target (the lifecycle issue): a fork takes at most this many times the engine's own copy of
/// the same database (`sqlite3 .backup`, `createdb -T`).
pub const FORK_RATIO_MAX: f64 = 1.5;

/// The table of the SQL engines.
const TABLE: &str = "t";

/// How often the gateway's VmRSS is read while a call runs.
const RSS_EVERY: Duration = Duration::from_millis(50);

/// Keys per Redis pipeline: the `SCAN` count and the batch of `DUMP`s or `RESTORE`s, a few
/// hundred KiB per round trip.
const REDIS_BATCH: usize = 1_000;

/// Keys per pipeline when filling Redis (SETs of short values).
const REDIS_FILL_BATCH: u64 = 10_000;

/// The interference phase gives up after this long without a completed backup.
const DURING_MAX: Duration = Duration::from_secs(180);

/// A backend of the gateway, as this phase names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// SQLite, PostgreSQL or MariaDB.
    Sql(Engine),
    /// Redis on 127.0.0.1:6379.
    Redis,
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sql(e) => e.fmt(f),
            Self::Redis => f.write_str("Redis"),
        }
    }
}

impl Store {
    /// Every backend, in report order.
    pub const ALL: [Self; 4] = [
        Self::Sql(Engine::Sqlite),
        Self::Sql(Engine::Postgres),
        Self::Sql(Engine::Mysql),
        Self::Redis,
    ];

    fn backend(self) -> pb::Backend {
        match self {
            Self::Sql(e) => e.backend(),
            Self::Redis => pb::Backend::Redis,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Sql(e) => e.tag(),
            Self::Redis => "redis",
        }
    }

    /// What a row is on this backend, for the report.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Sql(_) => "rows",
            Self::Redis => "keys",
        }
    }

    /// The native backup, as the report names it.
    pub fn backup_tool(self) -> &'static str {
        match self {
            Self::Sql(Engine::Sqlite) => "`sqlite3 .backup`",
            Self::Sql(Engine::Postgres) => "`pg_dump -Fc`",
            Self::Sql(Engine::Mysql) => "`mariadb-dump --single-transaction`",
            Self::Redis => "a pipelined DUMP loop (redis-rs)",
        }
    }

    /// The native restore, as the report names it.
    pub fn restore_tool(self) -> &'static str {
        match self {
            Self::Sql(Engine::Sqlite) => "`sqlite3 .restore`",
            Self::Sql(Engine::Postgres) => "`pg_restore`",
            Self::Sql(Engine::Mysql) => "`mariadb < dump`",
            Self::Redis => "a pipelined RESTORE loop (redis-rs)",
        }
    }

    /// The command-line tools the native side needs.
    fn tools(self) -> &'static [&'static str] {
        match self {
            Self::Sql(Engine::Sqlite) => &["sqlite3"],
            Self::Sql(Engine::Postgres) => &["pg_dump", "pg_restore", "psql"],
            Self::Sql(Engine::Mysql) => &["mariadb-dump", "mariadb"],
            Self::Redis => &[],
        }
    }
}

/// How much work the phase does.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    /// Rows (Redis: keys) of each database.
    pub rows: u64,
    /// Untimed point queries before the ones without a backup.
    pub warmup: usize,
    /// Timed point queries without a backup, and at least as many while backups run.
    pub point_iters: usize,
}

/// One timed gateway call and the gateway's memory meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct GatewayRun {
    /// Wall time and CPU.
    pub run: Run,
    /// VmRSS just before the call, in bytes.
    pub rss_before: u64,
    /// The largest VmRSS read while it ran, in bytes.
    pub rss_peak: u64,
    /// Bytes stored (the backup's `size_bytes`; for a restore, that of the backup read).
    pub bytes: u64,
}

impl GatewayRun {
    /// How much the gateway's RSS grew during the call, in bytes.
    pub fn rss_growth(&self) -> u64 {
        self.rss_peak.saturating_sub(self.rss_before)
    }
}

/// One timed run of the native tool.
#[derive(Debug, Clone, Copy)]
pub struct NativeRun {
    /// Wall time and CPU.
    pub run: Run,
    /// Bytes of the backup file it wrote (for a restore, the one it read).
    pub bytes: u64,
}

/// Point-query latency while backups of the same database ran in a loop.
#[derive(Debug, Clone, Copy)]
pub struct During {
    /// Over the queries that started and ended while a backup ran.
    pub latency: Latency,
    /// Queries that counted.
    pub samples: usize,
    /// Backups completed meanwhile.
    pub backups: usize,
}

/// Point-query latency without and during backups.
#[derive(Debug, Clone)]
pub struct PointEffect {
    /// With nothing else running.
    pub idle: Latency,
    /// While CreateBackup of the same database ran.
    pub gateway: During,
    /// While the native tool backed the same database up (a baseline: what any backup costs
    /// the queries on this machine).
    pub native: Result<During, String>,
}

/// What one backend measured; each part may have failed on its own.
#[derive(Debug, Clone)]
pub struct StoreResult {
    /// Filling the database, untimed in the report but noted.
    pub load: Duration,
    /// CreateBackup.
    pub backup: Result<GatewayRun, String>,
    /// The native backup.
    pub native_backup: Result<NativeRun, String>,
    /// RestoreBackup NEW.
    pub restore: Result<GatewayRun, String>,
    /// The native restore.
    pub native_restore: Result<NativeRun, String>,
    /// Point queries without and during backups.
    pub point: Result<PointEffect, String>,
    /// ForkDatabase of the filled database (SQLite and PostgreSQL, whose forks have a target).
    pub fork: Option<Result<GatewayRun, String>>,
    /// The engine's own copy of the same database: `sqlite3 .backup` (the native backup
    /// above) and `CREATE DATABASE … TEMPLATE` (what `createdb -T` runs).
    pub native_fork: Option<Result<NativeRun, String>>,
}

/// Everything phase 16 measured.
#[derive(Debug)]
pub struct BackupResults {
    /// Rows (keys) per database.
    pub rows: u64,
    /// Per backend, or why it could not run.
    pub stores: Vec<(Store, Result<StoreResult, String>)>,
}

impl BackupResults {
    /// Every backend failed for `why`.
    pub fn failed(rows: u64, why: &str) -> Self {
        Self {
            rows,
            stores: Store::ALL
                .iter()
                .map(|s| (*s, Err(why.to_owned())))
                .collect(),
        }
    }
}

/// The gateway under test, as this phase needs it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The connection the timed calls and the point queries use.
    pub conn: &'a Conn,
    /// A second connection, for the backups that run beside the point queries.
    pub other: &'a Conn,
    /// Its process id, for CPU times and memory.
    pub pid: u32,
    /// Its data directory, where its SQLite files and catalog live.
    pub data_dir: &'a Path,
}

/// Runs phase 16 on every available backend. `csv` holds `n.rows` rows for the SQL engines;
/// native backups go to `dir`, which is created.
pub async fn run(
    gw: Target<'_>,
    available: &Available,
    csv: &Path,
    n: Counts,
    dir: &Path,
) -> BackupResults {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return BackupResults::failed(n.rows, &format!("creating {}: {e}", dir.display()));
    }
    let mut stores = Vec::new();
    for store in Store::ALL {
        let usable = match store {
            Store::Sql(Engine::Sqlite) => Ok(()),
            Store::Sql(Engine::Postgres) => available.postgres.clone(),
            Store::Sql(Engine::Mysql) => available.mysql.clone(),
            Store::Redis => available.redis.clone(),
        };
        let result = match usable {
            Ok(()) => {
                crate::progress(&format!(
                    "16. {store}: backup and restore of {} {}, gateway and {}",
                    n.rows,
                    store.unit(),
                    store.backup_tool()
                ));
                one(gw, store, csv, n, dir).await.map_err(|e| e.to_string())
            }
            Err(why) => Err(why),
        };
        stores.push((store, result));
    }
    BackupResults {
        rows: n.rows,
        stores,
    }
}

/// Spawns the database, measures it, and deletes it whatever happened.
async fn one(
    gw: Target<'_>,
    store: Store,
    csv: &Path,
    n: Counts,
    dir: &Path,
) -> Result<StoreResult, BoxError> {
    let name = format!("bk-{}-{}", std::process::id(), store.tag());
    let mut dbs = gw.conn.databases();
    gateway::create_database(&mut dbs, &name, store.backend()).await?;
    let measured = measure(gw, store, &name, csv, n, dir).await;
    let deleted = gateway::delete_database(&mut dbs, &name).await;
    let result = measured?;
    deleted?;
    Ok(result)
}

async fn measure(
    gw: Target<'_>,
    store: Store,
    db: &str,
    csv: &Path,
    n: Counts,
    dir: &Path,
) -> Result<StoreResult, BoxError> {
    let native = Native::locate(store, gw, db)?;
    let started = Instant::now();
    native.fill(gw.conn, db, csv, n.rows).await?;
    let load = started.elapsed();
    // A full read before anything is timed: it warms every cache (and sets PostgreSQL's hint
    // bits on the fresh rows), which whichever side went first would otherwise pay.
    let counted = native.count().await?;
    if counted != n.rows {
        return Err(format!("{db} holds {counted} of {} {}", n.rows, store.unit()).into());
    }
    let text = |e: BoxError| e.to_string();

    crate::progress(&format!("16. {store}: point queries without a backup"));
    let idle = point_idle(gw.conn, store, db, n).await.map_err(text);

    crate::progress(&format!("16. {store}: CreateBackup"));
    let mut client = gw.conn.backups();
    let backup = watched(gw.pid, async {
        let b = gateway_backup(&mut client, db).await?;
        let bytes = b.size_bytes;
        Ok((b, bytes))
    })
    .await;
    crate::progress(&format!("16. {store}: {}", store.backup_tool()));
    let file = dir.join(format!("native-{}.backup", store.tag()));
    let native_backup = native.backup(gw.pid, &file).await.map_err(text);

    let restore = match &backup {
        Ok((b, _)) => {
            crate::progress(&format!("16. {store}: RestoreBackup (NEW)"));
            gateway_restore(gw, store, db, b, n.rows)
                .await
                .map_err(text)
        }
        Err(e) => Err(format!("no backup to restore: {e}")),
    };
    let native_restore = match &native_backup {
        Ok(b) => {
            crate::progress(&format!("16. {store}: {}", store.restore_tool()));
            native
                .restore(gw.pid, &file, b.bytes, n.rows)
                .await
                .map_err(text)
        }
        Err(e) => Err(format!("no native backup to restore: {e}")),
    };
    // Free the disk before the next engine's copies.
    let _ = std::fs::remove_file(&file);

    let (fork, native_fork) = match &native {
        Native::Sqlite(_) | Native::Server(Engine::Postgres, _) => {
            crate::progress(&format!("16. {store}: ForkDatabase"));
            let fork = gateway_fork(gw, db).await.map_err(text);
            let native_fork = match &native {
                Native::Server(_, name) => {
                    crate::progress(&format!("16. {store}: CREATE DATABASE … TEMPLATE"));
                    template_copy(gw.pid, name).await.map_err(text)
                }
                _ => native_backup.clone(),
            };
            (Some(fork), Some(native_fork))
        }
        _ => (None, None),
    };

    let point = match idle {
        Ok(idle) => {
            crate::progress(&format!("16. {store}: point queries while backups run"));
            match point_during(gw, store, db, n, Background::Gateway(gw.other)).await {
                Ok(gateway) => {
                    crate::progress(&format!(
                        "16. {store}: point queries while {} runs",
                        store.backup_tool()
                    ));
                    let native = point_during(gw, store, db, n, Background::Native(&native, &file))
                        .await
                        .map_err(text);
                    let _ = std::fs::remove_file(&file);
                    Ok(PointEffect {
                        idle,
                        gateway,
                        native,
                    })
                }
                Err(e) => Err(e.to_string()),
            }
        }
        Err(e) => Err(e),
    };
    let backup = match backup {
        Ok((b, run)) => {
            delete_backup(&mut gw.conn.backups(), &b.id).await?;
            Ok(run)
        }
        Err(e) => Err(e.to_string()),
    };
    Ok(StoreResult {
        load,
        backup,
        native_backup,
        restore,
        native_restore,
        point,
        fork,
        native_fork,
    })
}

/// ForkDatabase of `db` as `<db>-f`, timed, then the fork deleted.
async fn gateway_fork(gw: Target<'_>, db: &str) -> Result<GatewayRun, BoxError> {
    let name = format!("{db}-f");
    let call = format!("ForkDatabase {db:?} as {name:?}");
    let req = pb::ForkDatabaseRequest {
        source: db.to_owned(),
        name: name.clone(),
        labels: Default::default(),
        from_backup: String::new(),
        ..Default::default()
    };
    let mut client = gw.conn.databases();
    let forked = watched(gw.pid, async {
        client.fork_database(req).await.map_err(failed(&call))?;
        Ok(((), 0))
    })
    .await;
    let deleted = match &forked {
        Ok(_) => gateway::delete_database(&mut gw.conn.databases(), &name).await,
        Err(_) => Ok(()),
    };
    let ((), run) = forked?;
    deleted?;
    Ok(run)
}

/// `CREATE DATABASE … TEMPLATE` of the PostgreSQL database `name` (what `createdb -T` runs),
/// timed, then the copy dropped. It runs right after the gateway's fork, which closed the
/// gateway's idle connections to the source (PostgreSQL copies only a database nobody uses).
async fn template_copy(gateway_pid: u32, name: &str) -> Result<NativeRun, BoxError> {
    let copy = format!("{name}_tcopy");
    let create = format!("CREATE DATABASE \"{copy}\" TEMPLATE \"{name}\"");
    let ((), run) = timed(
        gateway_pid,
        blocking(move || tool(psql("postgres", &create))),
    )
    .await?;
    let drop = format!("DROP DATABASE IF EXISTS \"{copy}\"");
    blocking(move || tool(psql("postgres", &drop))).await?;
    Ok(NativeRun { run, bytes: 0 })
}

/// CreateBackup of `db` into the default target; the backup it returns, checked COMPLETED.
async fn gateway_backup(
    client: &mut pb::backup_service_client::BackupServiceClient<Authed>,
    db: &str,
) -> Result<pb::Backup, BoxError> {
    let call = format!("CreateBackup of {db:?}");
    let req = pb::CreateBackupRequest {
        database: db.to_owned(),
        target: String::new(),
        labels: Default::default(),
    };
    let backup = client
        .create_backup(req)
        .await
        .map_err(failed(&call))?
        .into_inner()
        .backup
        .ok_or_else(|| format!("{call} returned no backup"))?;
    if backup.status() != pb::BackupStatus::Completed {
        return Err(format!(
            "{call} returned a backup in status {:?} (error {:?})",
            backup.status(),
            backup.error
        )
        .into());
    }
    Ok(backup)
}

/// DeleteBackup of a backup the bench made.
async fn delete_backup(
    client: &mut pb::backup_service_client::BackupServiceClient<Authed>,
    id: &str,
) -> Result<(), BoxError> {
    let req = pb::DeleteBackupRequest {
        id: id.to_owned(),
        allow_missing: false,
    };
    let res = client
        .delete_backup(req)
        .await
        .map_err(failed(format_args!("DeleteBackup {id:?}")))?;
    if !res.into_inner().deleted {
        return Err(format!("DeleteBackup {id:?} answered deleted = false").into());
    }
    Ok(())
}

/// RestoreBackup NEW of `backup` into `<db>-r`, timed and watched; checks what it restored
/// through the gateway, then deletes it.
async fn gateway_restore(
    gw: Target<'_>,
    store: Store,
    db: &str,
    backup: &pb::Backup,
    rows: u64,
) -> Result<GatewayRun, BoxError> {
    let new_name = format!("{db}-r");
    let call = format!("RestoreBackup {:?} (NEW, as {new_name:?})", backup.id);
    let req = pb::RestoreBackupRequest {
        backup_id: backup.id.clone(),
        mode: pb::RestoreMode::New.into(),
        new_name: new_name.clone(),
        labels: Default::default(),
    };
    let mut client = gw.conn.backups();
    let restored = watched(gw.pid, async {
        let res = client
            .restore_backup(req)
            .await
            .map_err(failed(&call))?
            .into_inner();
        Ok((res, backup.size_bytes))
    })
    .await;
    let checked = match &restored {
        Ok((res, _)) => check_restored(gw.conn, store, &new_name, res, rows).await,
        Err(_) => Ok(()),
    };
    // Delete it whatever happened, unless the restore never made it.
    let deleted = match &restored {
        Ok(_) => gateway::delete_database(&mut gw.conn.databases(), &new_name).await,
        Err(_) => Ok(()),
    };
    let (_, run) = restored?;
    checked?;
    deleted?;
    Ok(run)
}

/// A restored database holds what the original did: the count the response reports, and the
/// count (SQL) or a key (Redis) read back through the gateway.
async fn check_restored(
    conn: &Conn,
    store: Store,
    db: &str,
    res: &pb::RestoreBackupResponse,
    rows: u64,
) -> Result<(), BoxError> {
    if res.rows != rows {
        return Err(format!(
            "RestoreBackup into {db:?} reports {} {} restored, expected {rows}",
            res.rows,
            store.unit()
        )
        .into());
    }
    let mut q = conn.query();
    match store {
        Store::Sql(_) => {
            let sql = format!("SELECT count(*) FROM {TABLE}");
            let r = gateway::execute(&mut q, db, &sql, vec![]).await?;
            let counted = one_cell(&r).and_then(|v| match v {
                value::Kind::IntValue(n) => u64::try_from(*n).ok(),
                value::Kind::TextValue(s) => s.parse().ok(),
                _ => None,
            });
            if counted != Some(rows) {
                return Err(format!("{sql} on the restored {db:?} returned {:?}", r.rows).into());
            }
        }
        Store::Redis => {
            let k = rows.div_ceil(2);
            let r = gateway::execute(&mut q, db, "GET", vec![text(format!("k{k}"))]).await?;
            let expected = redis_value(k);
            if !matches!(one_cell(&r), Some(value::Kind::TextValue(v)) if *v == expected) {
                return Err(
                    format!("GET k{k} on the restored {db:?} returned {:?}", r.rows).into(),
                );
            }
        }
    }
    Ok(())
}

/// The single cell of a one-row, one-column result.
fn one_cell(r: &pb::StatementResult) -> Option<&value::Kind> {
    match r.rows.as_slice() {
        [row] => match row.values.as_slice() {
            [v] => v.kind.as_ref(),
            _ => None,
        },
        _ => None,
    }
}

fn int(v: i64) -> pb::Value {
    pb::Value {
        kind: Some(value::Kind::IntValue(v)),
    }
}

fn text(v: String) -> pb::Value {
    pb::Value {
        kind: Some(value::Kind::TextValue(v)),
    }
}

/// The value of Redis key `k<k>`: 20 characters, like the SQL table's `name`.
fn redis_value(k: u64) -> String {
    format!("user_{:015x}", transfer::mix(k) >> 4)
}

/// Times `f` while a thread reads the gateway's VmRSS every [`RSS_EVERY`]. `f` yields its
/// result and the bytes to report.
async fn watched<T>(
    pid: u32,
    f: impl Future<Output = Result<(T, u64), BoxError>>,
) -> Result<(T, GatewayRun), BoxError> {
    let rss_before = child::resident(pid)?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || -> Result<u64, String> {
            let mut peak = rss_before;
            loop {
                let done = stop.load(Ordering::Relaxed);
                peak = peak.max(child::resident(pid).map_err(|e| e.to_string())?);
                if done {
                    return Ok(peak);
                }
                thread::sleep(RSS_EVERY);
            }
        })
    };
    let timed_run = timed(pid, f).await;
    stop.store(true, Ordering::Relaxed);
    let rss_peak = sampler
        .join()
        .map_err(|_| "the RSS sampler panicked")?
        .map_err(|e| format!("reading the gateway's VmRSS: {e}"))?;
    let ((out, bytes), run) = timed_run?;
    Ok((
        out,
        GatewayRun {
            run,
            rss_before,
            rss_peak,
            bytes,
        },
    ))
}

/// One point query by primary key (Redis: GET of a key), checked.
async fn point_query(
    q: &mut pb::query_service_client::QueryServiceClient<Authed>,
    store: Store,
    db: &str,
    id: i64,
) -> Result<(), BoxError> {
    let r = match store {
        Store::Sql(engine) => {
            let sql = match engine {
                Engine::Postgres => "SELECT name FROM t WHERE id = $1",
                _ => "SELECT name FROM t WHERE id = ?",
            };
            gateway::execute(q, db, sql, vec![int(id)]).await?
        }
        Store::Redis => gateway::execute(q, db, "GET", vec![text(format!("k{id}"))]).await?,
    };
    if !matches!(one_cell(&r), Some(value::Kind::TextValue(_))) {
        return Err(format!("point query for {id} on {db:?} returned {:?}", r.rows).into());
    }
    Ok(())
}

/// Sequential point queries with nothing else running.
async fn point_idle(conn: &Conn, store: Store, db: &str, n: Counts) -> Result<Latency, BoxError> {
    let q = conn.query();
    let mut rng = Rng::new(16);
    sample(n.warmup, n.point_iters, |_| {
        let (mut q, id) = (q.clone(), rng.key(n.rows));
        async move { point_query(&mut q, store, db, id).await }
    })
    .await
}

/// What backs the database up in a loop beside the point queries.
enum Background<'a> {
    /// CreateBackup on this (second) connection, each backup deleted once stored.
    Gateway(&'a Conn),
    /// The engine's own tool, into this file.
    Native(&'a Native, &'a Path),
}

/// Sequential point queries while the database is backed up in a loop. Only queries that start
/// and end while a backup runs count; it goes on until at least `n.point_iters` counted and at
/// least one backup completed.
async fn point_during(
    gw: Target<'_>,
    store: Store,
    db: &str,
    n: Counts,
    background: Background<'_>,
) -> Result<During, BoxError> {
    let stop = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicUsize::new(0));
    let looper = {
        let (stop, running, completed) = (
            Arc::clone(&stop),
            Arc::clone(&running),
            Arc::clone(&completed),
        );
        match background {
            Background::Gateway(conn) => {
                let (mut client, db) = (conn.backups(), db.to_owned());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        running.store(true, Ordering::Relaxed);
                        let made = gateway_backup(&mut client, &db).await;
                        running.store(false, Ordering::Relaxed);
                        let made = made?;
                        completed.fetch_add(1, Ordering::Relaxed);
                        delete_backup(&mut client, &made.id).await?;
                    }
                    Ok::<_, BoxError>(())
                })
            }
            Background::Native(native, file) => {
                let (native, file) = (native.clone(), file.to_owned());
                tokio::task::spawn_blocking(move || {
                    while !stop.load(Ordering::Relaxed) {
                        running.store(true, Ordering::Relaxed);
                        let made = native.backup_now(&file);
                        running.store(false, Ordering::Relaxed);
                        made?;
                        completed.fetch_add(1, Ordering::Relaxed);
                        let _ = std::fs::remove_file(&file);
                    }
                    Ok::<_, BoxError>(())
                })
            }
        }
    };
    let mut q = gw.conn.query();
    let mut rng = Rng::new(61);
    let mut samples = Vec::with_capacity(n.point_iters);
    let started = Instant::now();
    let queried = loop {
        let enough = samples.len() >= n.point_iters && completed.load(Ordering::Relaxed) > 0;
        if enough || looper.is_finished() {
            break Ok(());
        }
        if started.elapsed() > DURING_MAX {
            break Err(format!(
                "no backup of {db:?} completed within {} s",
                DURING_MAX.as_secs()
            ));
        }
        let id = rng.key(n.rows);
        let before = running.load(Ordering::Relaxed);
        let t = Instant::now();
        if let Err(e) = point_query(&mut q, store, db, id).await {
            break Err(e.to_string());
        }
        let took = t.elapsed();
        if before && running.load(Ordering::Relaxed) {
            samples.push(took);
        } else if !before {
            // Between backups (or before the first starts): yield a little, so the queries do
            // not race the loop for the gap.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    stop.store(true, Ordering::Relaxed);
    let looped = looper.await?;
    queried?;
    looped?;
    let count = samples.len();
    let latency = Latency::from_samples(samples).ok_or("no point query ran during a backup")?;
    Ok(During {
        latency,
        samples: count,
        backups: completed.load(Ordering::Relaxed),
    })
}

/// The database as the engine's own tools reach it.
#[derive(Debug, Clone)]
enum Native {
    /// The gateway's SQLite file.
    Sqlite(PathBuf),
    /// The database (PostgreSQL) or schema (MariaDB) behind the spawned name.
    Server(Engine, String),
    /// The key prefix of the Redis database.
    Redis(String),
}

impl Native {
    fn locate(store: Store, gw: Target<'_>, db: &str) -> Result<Self, BoxError> {
        let found = |tool: &str| {
            if on_path(tool) {
                Ok(())
            } else {
                Err(format!("{tool} is not installed"))
            }
        };
        for tool in store.tools() {
            found(tool)?;
        }
        Ok(match store {
            Store::Sql(Engine::Sqlite) => {
                Self::Sqlite(transfer::native_target(Engine::Sqlite, gw.data_dir, db)?.into())
            }
            Store::Sql(engine) => {
                Self::Server(engine, transfer::native_target(engine, gw.data_dir, db)?)
            }
            Store::Redis => Self::Redis(redis_prefix(&gw.conn.locator(db)?)?),
        })
    }

    /// The engine's SQL, or Redis.
    fn engine(&self) -> Option<Engine> {
        match self {
            Self::Sqlite(_) => Some(Engine::Sqlite),
            Self::Server(e, _) => Some(*e),
            Self::Redis(_) => None,
        }
    }

    /// The SQLite file or database name the transfer helpers take.
    fn target(&self) -> String {
        match self {
            Self::Sqlite(p) => p.to_string_lossy().into_owned(),
            Self::Server(_, name) | Self::Redis(name) => name.clone(),
        }
    }

    /// Fills the spawned database `db`: the CSV into `t`, or `rows` keys. The table is created
    /// through the gateway, so the database's own role owns it (on PostgreSQL a table the
    /// admin user made would be out of the gateway's reach), and filled by the admin user.
    async fn fill(&self, conn: &Conn, db: &str, csv: &Path, rows: u64) -> Result<(), BoxError> {
        match (self, self.engine()) {
            (Self::Redis(prefix), _) => redis_fill(prefix, rows).await,
            (_, Some(engine)) => {
                gateway::execute(&mut conn.query(), db, &engine.ddl(TABLE), vec![]).await?;
                let target = self.target();
                let csv = csv.to_owned();
                blocking(move || transfer::native_load(engine, &target, &csv, TABLE, rows)).await
            }
            (_, None) => Err("no engine".into()),
        }
    }

    /// Rows in `t`, or keys under the prefix.
    async fn count(&self) -> Result<u64, BoxError> {
        match (self, self.engine()) {
            (Self::Redis(prefix), _) => {
                let prefix = prefix.clone();
                blocking(move || redis_count(&prefix)).await
            }
            (_, Some(engine)) => {
                let target = self.target();
                blocking(move || transfer::native_count(engine, &target, TABLE)).await
            }
            (_, None) => Err("no engine".into()),
        }
    }

    /// The native backup into `file`, timed.
    async fn backup(&self, gateway_pid: u32, file: &Path) -> Result<NativeRun, BoxError> {
        let _ = std::fs::remove_file(file);
        let (this, out) = (self.clone(), file.to_owned());
        let ((), run) = timed(gateway_pid, blocking(move || this.backup_now(&out))).await?;
        let bytes = std::fs::metadata(file)?.len();
        Ok(NativeRun { run, bytes })
    }

    fn backup_now(&self, out: &Path) -> Result<(), BoxError> {
        let path = plain(out)?;
        match self {
            Self::Sqlite(db) => {
                let mut cmd = Command::new("sqlite3");
                cmd.arg("-bail").arg(db).arg(format!(".backup {path}"));
                tool(cmd)
            }
            Self::Server(Engine::Postgres, name) => {
                let mut cmd = Command::new("pg_dump");
                cmd.args([
                    "-Fc",
                    "-w",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    "5432",
                    "-U",
                    "postgres",
                ])
                .args(["-f", path, name]);
                tool(cmd)
            }
            Self::Server(_, name) => {
                let mut cmd = Command::new("mariadb-dump");
                cmd.args(["-h", "127.0.0.1", "-P", "3306", "-u", "root"])
                    .arg("--single-transaction")
                    .arg(format!("--result-file={path}"))
                    .arg(name);
                tool(cmd)
            }
            Self::Redis(prefix) => redis_dump(prefix, out),
        }
    }

    /// The native restore of `file` (`bytes` long) into a new database, timed, then checked
    /// (`rows`) and dropped.
    async fn restore(
        &self,
        gateway_pid: u32,
        file: &Path,
        bytes: u64,
        rows: u64,
    ) -> Result<NativeRun, BoxError> {
        let this = self.clone();
        let dir = file.parent().ok_or("the backup file has no directory")?;
        let into = Restored::new(self, dir);
        let cleanup = into.clone();
        blocking(move || cleanup.drop_it()).await?;
        let (from, to) = (file.to_owned(), into.clone());
        let timed_run = timed(gateway_pid, blocking(move || this.restore_now(&from, &to))).await;
        let checked = match &timed_run {
            Ok(_) => {
                let to = into.clone();
                blocking(move || to.count()).await
            }
            Err(_) => Ok(rows),
        };
        let dropped = blocking(move || into.drop_it()).await;
        let ((), run) = timed_run?;
        let counted = checked?;
        dropped?;
        if counted != rows {
            return Err(format!(
                "{} restored {counted} of {rows}",
                self.store().restore_tool()
            )
            .into());
        }
        Ok(NativeRun { run, bytes })
    }

    fn store(&self) -> Store {
        self.engine().map_or(Store::Redis, Store::Sql)
    }

    fn restore_now(&self, file: &Path, into: &Restored) -> Result<(), BoxError> {
        let path = plain(file)?;
        match (self, into) {
            (Self::Sqlite(_), Restored::Sqlite(new)) => {
                let mut cmd = Command::new("sqlite3");
                cmd.arg("-bail").arg(new).arg(format!(".restore {path}"));
                tool(cmd)
            }
            (Self::Server(Engine::Postgres, _), Restored::Server(_, name)) => {
                tool(psql("postgres", &format!("CREATE DATABASE {name}")))?;
                let mut cmd = Command::new("pg_restore");
                cmd.args(["-w", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres"])
                    .args(["--no-owner", "--no-privileges", "--exit-on-error", "-d"])
                    .args([name, path]);
                tool(cmd)
            }
            (Self::Server(_, _), Restored::Server(_, name)) => {
                tool(mariadb(None, &format!("CREATE DATABASE {name}")))?;
                let mut cmd = Command::new("mariadb");
                cmd.args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", name])
                    .stdin(std::fs::File::open(file)?);
                tool(cmd)
            }
            (Self::Redis(_), Restored::Redis(prefix)) => redis_restore(file, prefix),
            _ => Err("a restore into another kind of database".into()),
        }
    }
}

/// Where a native restore goes: a new SQLite file, a new database (schema) with a name outside
/// the gateway's `dbf_` prefix, or a new Redis key prefix.
#[derive(Debug, Clone)]
enum Restored {
    Sqlite(PathBuf),
    Server(Engine, String),
    Redis(String),
}

impl Restored {
    fn new(from: &Native, dir: &Path) -> Self {
        let pid = std::process::id();
        match from {
            Native::Sqlite(_) => Self::Sqlite(dir.join("native-restored.sqlite")),
            Native::Server(e, _) => Self::Server(*e, format!("bench_restore_{pid}_{}", e.tag())),
            Native::Redis(_) => Self::Redis(format!("bench-restore-{pid}:")),
        }
    }

    /// Rows in `t`, or keys under the prefix.
    fn count(&self) -> Result<u64, BoxError> {
        match self {
            Self::Sqlite(p) => transfer::native_count(Engine::Sqlite, &p.to_string_lossy(), TABLE),
            Self::Server(e, name) => transfer::native_count(*e, name, TABLE),
            Self::Redis(prefix) => redis_count(prefix),
        }
    }

    /// Removes it, if it exists.
    fn drop_it(&self) -> Result<(), BoxError> {
        match self {
            Self::Sqlite(p) => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut file = p.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
                Ok(())
            }
            Self::Server(Engine::Postgres, name) => tool(psql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )),
            Self::Server(_, name) => {
                tool(mariadb(None, &format!("DROP DATABASE IF EXISTS {name}")))
            }
            Self::Redis(prefix) => redis_unlink(prefix),
        }
    }
}

/// psql as postgres on loopback, running `sql` in `db`.
fn psql(db: &str, sql: &str) -> Command {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-w", "-q", "-v", "ON_ERROR_STOP=1"]).args([
        "-h",
        "127.0.0.1",
        "-p",
        "5432",
        "-U",
        "postgres",
        "-d",
        db,
        "-c",
        sql,
    ]);
    cmd
}

/// The mariadb client as root on loopback, running `sql` (in `db` when given).
fn mariadb(db: Option<&str>, sql: &str) -> Command {
    let mut cmd = Command::new("mariadb");
    cmd.args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e", sql]);
    if let Some(db) = db {
        cmd.arg(db);
    }
    cmd
}

/// Runs a tool, failing with its stderr; its stdout is discarded.
fn tool(mut cmd: Command) -> Result<(), BoxError> {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

/// `path` as text the tools take unquoted (the bench's temp dir is plain).
fn plain(path: &Path) -> Result<&str, BoxError> {
    let text = path.to_str().ok_or("a temp path is not UTF-8")?;
    if text.contains(['\'', '"', '\\', ' ']) {
        return Err(format!("the path {text:?} needs quoting; use a plain temp dir").into());
    }
    Ok(text)
}

/// Whether `program` is a file in one of the `PATH` directories.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// `SCAN` pattern of every key under `prefix`, glob characters escaped.
fn under(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

/// A blocking redis-rs connection to the local server, as its default user.
fn redis_conn() -> Result<redis::Connection, BoxError> {
    Ok(redis::Client::open(REDIS_URL)?.get_connection()?)
}

/// Calls `each` with every batch of keys under `prefix` (`SCAN … MATCH … COUNT`).
fn redis_scan(
    c: &mut redis::Connection,
    prefix: &str,
    mut each: impl FnMut(&mut redis::Connection, Vec<Vec<u8>>) -> Result<(), BoxError>,
) -> Result<(), BoxError> {
    let pattern = under(prefix);
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(REDIS_BATCH)
            .query(c)?;
        if !keys.is_empty() {
            each(c, keys)?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Sets `rows` keys `<prefix>k<i>` in pipelines.
async fn redis_fill(prefix: &str, rows: u64) -> Result<(), BoxError> {
    let client = redis::Client::open(REDIS_URL)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    let mut from = 1;
    while from <= rows {
        let to = (from + REDIS_FILL_BATCH - 1).min(rows);
        let mut pipe = redis::pipe();
        for k in from..=to {
            pipe.cmd("SET")
                .arg(format!("{prefix}k{k}"))
                .arg(redis_value(k))
                .ignore();
        }
        pipe.query_async::<()>(&mut c).await?;
        from = to + 1;
    }
    Ok(())
}

/// Keys under `prefix`.
fn redis_count(prefix: &str) -> Result<u64, BoxError> {
    let mut c = redis_conn()?;
    let mut n = 0u64;
    redis_scan(&mut c, prefix, |_, keys| {
        n += keys.len() as u64;
        Ok(())
    })?;
    Ok(n)
}

/// Unlinks every key under `prefix`.
fn redis_unlink(prefix: &str) -> Result<(), BoxError> {
    let mut c = redis_conn()?;
    redis_scan(&mut c, prefix, |c, keys| {
        let () = redis::cmd("UNLINK").arg(keys).query(c)?;
        Ok(())
    })
}

/// The native Redis backup: every key under `prefix`, a batch per `SCAN`, with `DUMP` and
/// `PTTL` of the batch in one pipeline, written to `out` as records of (key length u32, key,
/// PTTL i64, payload length u32, payload), little-endian. Keys are stored without the prefix.
fn redis_dump(prefix: &str, out: &Path) -> Result<(), BoxError> {
    let mut c = redis_conn()?;
    let mut file = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    redis_scan(&mut c, prefix, |c, keys| {
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("DUMP").arg(k).cmd("PTTL").arg(k);
        }
        let replies: Vec<redis::Value> = pipe.query(c)?;
        for (key, pair) in keys.iter().zip(replies.chunks_exact(2)) {
            let [payload, ttl] = pair else {
                return Err("a short pipeline reply".into());
            };
            let payload = match payload {
                redis::Value::BulkString(b) => b,
                // Deleted between SCAN and DUMP: nothing to keep.
                redis::Value::Nil => continue,
                other => return Err(format!("DUMP returned {other:?}").into()),
            };
            let ttl = match ttl {
                redis::Value::Int(t) => *t,
                other => return Err(format!("PTTL returned {other:?}").into()),
            };
            let name = key.strip_prefix(prefix.as_bytes()).unwrap_or(key);
            file.write_all(&u32::try_from(name.len())?.to_le_bytes())?;
            file.write_all(name)?;
            file.write_all(&ttl.to_le_bytes())?;
            file.write_all(&u32::try_from(payload.len())?.to_le_bytes())?;
            file.write_all(payload)?;
        }
        Ok(())
    })?;
    file.flush()?;
    Ok(())
}

/// The native Redis restore: the records of [`redis_dump`] under `prefix`, `RESTORE` with the
/// remaining TTL (0 for none), [`REDIS_BATCH`] per pipeline.
fn redis_restore(file: &Path, prefix: &str) -> Result<(), BoxError> {
    let mut c = redis_conn()?;
    let mut input = BufReader::with_capacity(1 << 20, std::fs::File::open(file)?);
    let mut pipe = redis::pipe();
    let mut queued = 0;
    let mut len = [0u8; 4];
    let mut ttl = [0u8; 8];
    loop {
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let mut key = prefix.as_bytes().to_vec();
        let start = key.len();
        key.resize(start + u32::from_le_bytes(len) as usize, 0);
        input.read_exact(&mut key[start..])?;
        input.read_exact(&mut ttl)?;
        input.read_exact(&mut len)?;
        let mut payload = vec![0u8; u32::from_le_bytes(len) as usize];
        input.read_exact(&mut payload)?;
        let ttl = i64::from_le_bytes(ttl).max(0);
        pipe.cmd("RESTORE").arg(key).arg(ttl).arg(payload).ignore();
        queued += 1;
        if queued == REDIS_BATCH {
            pipe.query::<()>(&mut c)?;
            pipe.clear();
            queued = 0;
        }
    }
    if queued > 0 {
        pipe.query::<()>(&mut c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_patterns_escape_glob_characters() {
        assert_eq!(under("dbforge-db-a1:"), "dbforge-db-a1:*");
        assert_eq!(under("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
    }

    #[test]
    fn rss_growth_never_goes_below_zero() {
        let run = GatewayRun {
            run: Run {
                elapsed: Duration::from_secs(1),
                cpu: transfer::Cpu::default(),
            },
            rss_before: 100,
            rss_peak: 90,
            bytes: 0,
        };
        assert_eq!(run.rss_growth(), 0);
    }
}
