//! SQLite: one file per database in the data directory, in WAL mode.
//!
//! Each open database has one writer connection behind an async mutex (writes queue there
//! instead of failing with SQLITE_BUSY, and each write transaction begins IMMEDIATE) and a small
//! pool of read-only connections that read concurrently from WAL snapshots. A statement is routed
//! by what the engine says about it after preparing it (`sqlite3_stmt_readonly`), not by its text.
//! Connections run on tokio's blocking pool, except that an Execute that only reads starts on the
//! calling task and moves to the pool if it outruns a small budget (`INLINE_BUDGET`); streams
//! send from the pool into a bounded channel.

mod conn;
mod inspect;

use crate::metrics as names;
use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use tokio::{
    runtime::Handle,
    sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, mpsc},
};
use tokio_stream::wrappers::ReceiverStream;

use self::conn::{Conn, Waiter, classify, columns_of, format_timestamp, read_row};
pub use self::conn::{ConnOptions, kind_of};
use super::{
    Backend, BackendKind, Capabilities, Database, DumpStream, Provisioned, RowStream, Session,
    StatementLimits,
};
use crate::core::{
    error::{Error, Result},
    names::DatabaseName,
    schema::{Plan, Schema},
    table::{ColumnType, SqlDialect},
    value::{Batch, RowEvent, Statement, StatementResult, Summary, Truncation, Value},
};

const FILE_SUFFIX: &str = ".sqlite";
/// Where damaged files are moved (inside the SQLite directory); see `core/damage.rs`.
const QUARANTINE_DIR: &str = "quarantine";

/// Settings of the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// Directory holding one file per database.
    pub dir: PathBuf,
    /// Read-only connections per open database, at most.
    pub max_readers: usize,
    /// Page cache per connection, in KiB.
    pub cache_kib: i64,
    /// Largest string or blob a statement may build, in bytes.
    pub max_value_bytes: i32,
    /// Largest size of one database file, in bytes.
    pub max_size_bytes: u64,
}

/// The SQLite backend.
#[derive(Debug)]
pub struct SqliteBackend {
    cfg: Arc<SqliteConfig>,
    caps: Capabilities,
}

impl SqliteBackend {
    /// Creates the backend, making its directory if needed.
    pub fn new(cfg: SqliteConfig) -> Result<Self> {
        std::fs::create_dir_all(&cfg.dir).map_err(Error::internal)?;
        Ok(Self {
            cfg: Arc::new(cfg),
            caps: Capabilities {
                sql: true,
                transactions: true,
                sessions: true,
                typed_params: true,
                table_service: true,
                key_value: false,
                last_insert_id: true,
                returning: true,
                placeholder: "?",
                transactional_ddl: true,
                sparql: false,
            },
        })
    }

    fn path(&self, db: &Provisioned) -> Result<PathBuf> {
        // Locators are made by `locate` from a validated name, but the catalog is a file on disk:
        // refuse anything that could step outside the directory.
        let ok = db.locator.ends_with(FILE_SUFFIX)
            && !db.locator.contains('/')
            && !db.locator.contains('\\')
            && !db.locator.starts_with('.');
        if !ok {
            return Err(Error::internal(format!(
                "bad sqlite locator {:?}",
                db.locator
            )));
        }
        Ok(self.cfg.dir.join(&db.locator))
    }

    fn conn_options(&self, read_only: bool) -> ConnOptions {
        ConnOptions {
            read_only,
            max_size_bytes: self.cfg.max_size_bytes,
            max_value_bytes: self.cfg.max_value_bytes,
            cache_kib: self.cfg.cache_kib,
            busy_timeout: Duration::from_secs(5),
        }
    }

    /// Opens a database with its writer connection (readers open on first use).
    async fn open_database(&self, db: &Provisioned) -> Result<SqliteDatabase> {
        let path = self.path(db)?;
        let writer_opts = self.conn_options(false);
        let reader_opts = self.conn_options(true);
        let max_readers = self.cfg.max_readers.max(1);
        let p = path.clone();
        let writer = blocking(move || {
            if !p.exists() {
                return Err(Error::Unavailable(format!(
                    "the database file {} is missing",
                    p.display()
                )));
            }
            Conn::open(&p, &writer_opts)
        })
        .await?;
        Ok(SqliteDatabase {
            inner: Arc::new(Inner {
                path,
                reader_opts,
                quota: Default::default(),
                writer: Arc::new(tokio::sync::Mutex::new(writer)),
                readers: Mutex::new(Vec::new()),
                reader_slots: Arc::new(Semaphore::new(max_readers)),
                inline_budget: INLINE_BUDGET,
            }),
        })
    }
}

fn sidecars(path: &Path) -> [PathBuf; 3] {
    let s = path.as_os_str().to_owned();
    let mut wal = s.clone();
    wal.push("-wal");
    let mut shm = s;
    shm.push("-shm");
    [path.to_path_buf(), PathBuf::from(wal), PathBuf::from(shm)]
}

/// Runs `f` when dropped, also when the owner unwinds.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("sqlite task failed: {e}")))?
}

#[async_trait]
impl Backend for SqliteBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn dialect(&self) -> Option<&'static dyn SqlDialect> {
        Some(&SqliteDialect)
    }

    fn locate(&self, name: &DatabaseName) -> Provisioned {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Provisioned {
            name: name.clone(),
            locator: format!("{name}.{nanos:x}{FILE_SUFFIX}"),
        }
    }

    async fn create(&self, db: &Provisioned) -> Result<()> {
        let path = self.path(db)?;
        blocking(move || {
            let conn = rusqlite::Connection::open(&path).map_err(classify)?;
            // WAL is a property of the file: set once here, every later connection inherits it.
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn destroy(&self, db: &Provisioned) -> Result<()> {
        let path = self.path(db)?;
        blocking(move || {
            for file in sidecars(&path) {
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::internal(e)),
                }
            }
            Ok(())
        })
        .await
    }

    async fn open(&self, db: &Provisioned) -> Result<Arc<dyn Database>> {
        Ok(Arc::new(self.open_database(db).await?))
    }

    async fn size_bytes(&self, db: &Provisioned) -> Result<Option<u64>> {
        let path = self.path(db)?;
        blocking(move || {
            let [file, wal, _] = sidecars(&path);
            let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            Ok(Some(size(&file) + size(&wal)))
        })
        .await
    }

    fn enforces_read_only(&self) -> bool {
        true
    }

    fn owns_storage(&self) -> bool {
        true
    }

    async fn check_integrity(&self, db: &Provisioned) -> Result<Option<String>> {
        let path = self.path(db)?;
        blocking(move || {
            if !path.exists() {
                return Ok(Some("its file is missing".to_owned()));
            }
            // Never create: a file that vanished meanwhile is not replaced by an empty one.
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let damaged = |e: &rusqlite::Error| {
                matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
                )
            };
            let conn = match rusqlite::Connection::open_with_flags(&path, flags) {
                Ok(c) => c,
                Err(e) if damaged(&e) => return Ok(Some(e.to_string())),
                Err(e) => return Err(classify(e)),
            };
            // quick_check lists up to N problems, or the single row `ok`.
            let first: rusqlite::Result<String> =
                conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0));
            match first {
                Ok(verdict) if verdict == "ok" => Ok(None),
                Ok(problem) => Ok(Some(problem)),
                Err(e) if damaged(&e) => Ok(Some(e.to_string())),
                Err(e) => Err(classify(e)),
            }
        })
        .await
    }

    async fn quarantine(&self, db: &Provisioned) -> Result<String> {
        let path = self.path(db)?;
        let dir = self.cfg.dir.join(QUARANTINE_DIR);
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        blocking(move || {
            std::fs::create_dir_all(&dir).map_err(Error::internal)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Outside the data directory's top level, so start-up's orphan sweep never sees it.
            let dest = dir.join(format!("{name}.{stamp}"));
            for (from, to) in sidecars(&path).iter().zip(sidecars(&dest)) {
                match std::fs::rename(from, &to) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::internal(e)),
                }
            }
            Ok(dest.display().to_string())
        })
        .await
    }

    async fn restore_image(&self, db: &Provisioned, image: PathBuf) -> Result<()> {
        let path = self.path(db)?;
        blocking(move || {
            // The image is a whole database file in WAL mode (its header says so); the staging
            // database's own empty file and sidecars give way to it.
            for file in sidecars(&path) {
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::internal(e)),
                }
            }
            if std::fs::rename(&image, &path).is_err() {
                // Another file system: copy, then drop the image.
                std::fs::copy(&image, &path).map_err(Error::internal)?;
                std::fs::remove_file(&image).map_err(Error::internal)?;
            }
            // A file that is not a database fails here, before anyone opens it.
            let conn = rusqlite::Connection::open(&path).map_err(classify)?;
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn remove_orphans(&self, known: &[Provisioned]) -> Result<usize> {
        let dir = self.cfg.dir.clone();
        let known: HashSet<String> = known.iter().map(|p| p.locator.clone()).collect();
        blocking(move || {
            let mut removed = 0;
            for entry in std::fs::read_dir(&dir).map_err(Error::internal)? {
                let entry = entry.map_err(Error::internal)?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let base = name
                    .strip_suffix("-wal")
                    .or_else(|| name.strip_suffix("-shm"))
                    .unwrap_or(&name);
                if base.ends_with(FILE_SUFFIX) && !known.contains(base) {
                    std::fs::remove_file(entry.path()).map_err(Error::internal)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    reader_opts: ConnOptions,
    /// The database's size quota (`Database::set_max_bytes`), bytes; 0: only the gateway's cap.
    quota: std::sync::atomic::AtomicU64,
    writer: Arc<tokio::sync::Mutex<Conn>>,
    readers: Mutex<Vec<Conn>>,
    reader_slots: Arc<Semaphore>,
    /// How long a read may run on the calling task ([`INLINE_BUDGET`]; tests change it).
    inline_budget: Duration,
}

impl Inner {
    /// The settings of a new reader: the gateway's, with the size cap lowered to the quota.
    fn reader_opts(&self) -> ConnOptions {
        let quota = self.quota.load(std::sync::atomic::Ordering::Relaxed);
        let mut opts = self.reader_opts.clone();
        if quota > 0 {
            opts.max_size_bytes = opts.max_size_bytes.min(quota);
        }
        opts
    }
}

/// An open SQLite database.
#[derive(Debug)]
pub struct SqliteDatabase {
    inner: Arc<Inner>,
}

/// What a reader found when it prepared a statement.
enum Routed<T> {
    Done(T),
    NeedsWriter,
}

/// How long a read may run on the calling task before it moves to the blocking pool.
///
/// Most reads take microseconds: less than handing them to a blocking thread and back, which
/// on a 2-core VM was a sixth of a SQLite point query's latency through the gateway, and
/// under load a third of the gateway's CPU went to threads parking and waking. A read still
/// running after this long is interrupted and run again on the pool, so a runtime worker is
/// never held much longer than this.
const INLINE_BUDGET: Duration = Duration::from_micros(200);

impl SqliteDatabase {
    /// Runs `f` on a pooled read-only connection: on the calling task when one is free, for at
    /// most [`INLINE_BUDGET`], and on the blocking pool otherwise or when that ran out. `f` may
    /// thus run twice; it only reads, so the first run leaves nothing behind.
    async fn read<T: Send + 'static>(
        &self,
        f: impl Fn(&Conn) -> T + Send + Sync + 'static,
    ) -> Result<T> {
        let (permit, pooled) = self.checkout().await?;
        // Opening a connection touches the disk: the pool does that.
        let Some(conn) = pooled else {
            return self.on_pool(permit, None, f).await;
        };
        let in_use = metrics::gauge!(names::POOL_CONNECTIONS_IN_USE, "backend" => "sqlite");
        in_use.increment(1.0);
        conn.set_budget(Some(self.inner.inline_budget));
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&conn)));
        let over = conn.over_budget();
        conn.set_budget(None);
        in_use.decrement(1.0);
        let out = out.map_err(|_| Error::internal("a sqlite read panicked"))?;
        if over {
            return self.on_pool(permit, Some(conn), f).await;
        }
        if let Ok(mut readers) = self.inner.readers.lock() {
            readers.push(conn);
        }
        Ok(out)
    }

    /// Runs `f` on a pooled read-only connection on the blocking pool.
    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Conn) -> T + Send + 'static,
    ) -> Result<T> {
        let (permit, pooled) = self.checkout().await?;
        self.on_pool(permit, pooled, f).await
    }

    /// A reader slot and, when one is idle, its connection.
    async fn checkout(&self) -> Result<(OwnedSemaphorePermit, Option<Conn>)> {
        let permit = Arc::clone(&self.inner.reader_slots)
            .acquire_owned()
            .await
            .map_err(Error::internal)?;
        let pooled = self.inner.readers.lock().ok().and_then(|mut r| r.pop());
        Ok((permit, pooled))
    }

    /// Runs `f` on the blocking pool with the reader `pooled` (opened there when `None`), then
    /// puts the connection back.
    async fn on_pool<T: Send + 'static>(
        &self,
        permit: OwnedSemaphorePermit,
        pooled: Option<Conn>,
        f: impl FnOnce(&Conn) -> T + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        let in_use = metrics::gauge!(names::POOL_CONNECTIONS_IN_USE, "backend" => "sqlite");
        in_use.increment(1.0);
        // The blocking task outlives a cancelled call: dropping this future drops `caller`, and
        // the statement is interrupted instead of running on to its deadline.
        let caller = Arc::new(());
        let waiter = Waiter::Call(Arc::downgrade(&caller));
        let out = blocking(move || {
            let _permit = permit;
            let _in_use = scopeguard(move || in_use.decrement(1.0));
            let conn = match pooled {
                Some(c) => c,
                None => Conn::open(&inner.path, &inner.reader_opts())?,
            };
            conn.set_waiter(Some(waiter));
            let out = f(&conn);
            conn.set_waiter(None);
            if let Ok(mut readers) = inner.readers.lock() {
                readers.push(conn);
            }
            Ok(out)
        })
        .await;
        drop(caller);
        out
    }

    /// Waits (up to `timeout`) for the writer connection.
    async fn lock_writer(&self, timeout: Duration) -> Result<OwnedMutexGuard<Conn>> {
        tokio::time::timeout(timeout, Arc::clone(&self.inner.writer).lock_owned())
            .await
            .map_err(|_| {
                Error::Timeout(format!(
                    "waited {} for the database's write lock, held by another transaction",
                    humantime::format_duration(timeout)
                ))
            })
    }

    /// Runs one writing statement on the writer. A statement that returns rows runs in a
    /// transaction so that hitting the row limit undoes it; any other is atomic on its own and
    /// runs in autocommit mode, which VACUUM requires.
    async fn write_one(
        &self,
        stmt: Statement,
        limits: &StatementLimits,
    ) -> Result<StatementResult> {
        let guard = self.lock_writer(limits.timeout).await?;
        let (max_rows, max_bytes, timeout) = (limits.max_rows, limits.max_bytes, limits.timeout);
        blocking(move || {
            let conn = &*guard;
            conn.rollback_quietly();
            conn.set_deadline(timeout);
            if !conn.returns_rows(&stmt.sql)? {
                return conn.run_discarding(&stmt);
            }
            conn.control("BEGIN IMMEDIATE")?;
            let result = conn
                .run(&stmt, max_rows, max_bytes)
                .and_then(|r| conn.control("COMMIT").map(|()| r));
            result.inspect_err(|_| conn.rollback_quietly())
        })
        .await
    }

    /// Runs `f` inside a write transaction (BEGIN IMMEDIATE … COMMIT) on the writer connection.
    async fn write<T: Send + 'static>(
        &self,
        limits: &StatementLimits,
        f: impl FnOnce(&Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let guard = self.lock_writer(limits.timeout).await?;
        let timeout = limits.timeout;
        blocking(move || {
            let conn = &*guard;
            conn.rollback_quietly();
            conn.set_deadline(timeout);
            conn.control("BEGIN IMMEDIATE")?;
            match f(conn) {
                Ok(out) => match conn.control("COMMIT") {
                    Ok(()) => Ok(out),
                    Err(e) => {
                        conn.rollback_quietly();
                        Err(e)
                    }
                },
                Err(e) => {
                    conn.rollback_quietly();
                    Err(e)
                }
            }
        })
        .await
    }
}

impl SqliteDatabase {
    /// Streams `stmt` into `tx`: from a reader when the statement only reads, otherwise from the
    /// writer inside a write transaction that commits after the last row.
    async fn produce(
        &self,
        stmt: Statement,
        limits: StatementLimits,
        tx: mpsc::Sender<Result<RowEvent>>,
    ) -> Result<()> {
        let started = Instant::now();
        let rt = Handle::current();
        let deadline = tokio::time::Instant::now() + limits.timeout;
        let (reader_limits, reader_tx, reader_rt) = (limits.clone(), tx.clone(), rt.clone());
        let (stmt, routed) = self
            .with_reader(move |conn| {
                conn.set_deadline(reader_limits.timeout);
                match conn.is_read_only(&stmt.sql) {
                    // A read-only caller's writes stay here too, where the engine refuses them.
                    Ok(only_reads) if only_reads || reader_limits.read_only => {
                        let sink = Sink {
                            tx: &reader_tx,
                            rt: &reader_rt,
                            deadline,
                        };
                        match stream_rows(conn, &stmt, &reader_limits, &sink, started) {
                            Ok(Some(summary)) => sink.send(Ok(RowEvent::Done(summary))),
                            Ok(None) => false,
                            Err(e) => sink.send(Err(e)),
                        };
                        (stmt, Routed::Done(Ok(())))
                    }
                    Ok(_) => (stmt, Routed::NeedsWriter),
                    Err(e) => (stmt, Routed::Done(Err(e))),
                }
            })
            .await?;
        match routed {
            Routed::Done(result) => return result,
            Routed::NeedsWriter => {}
        }
        let guard = self.lock_writer(limits.timeout).await?;
        blocking(move || {
            let conn = &*guard;
            let sink = Sink {
                tx: &tx,
                rt: &rt,
                deadline,
            };
            conn.rollback_quietly();
            conn.set_deadline(limits.timeout);
            // As in `write_one`: a transaction only when rows come back (so a client that
            // leaves mid-stream undoes the write); otherwise autocommit, which VACUUM needs.
            let in_tx = conn.returns_rows(&stmt.sql)?;
            if in_tx {
                conn.control("BEGIN IMMEDIATE")?;
            }
            match stream_rows(conn, &stmt, &limits, &sink, started) {
                Ok(Some(summary)) => {
                    if in_tx {
                        conn.control("COMMIT")
                            .inspect_err(|_| conn.rollback_quietly())?;
                    }
                    sink.send(Ok(RowEvent::Done(summary)));
                    Ok(())
                }
                Ok(None) => {
                    conn.rollback_quietly();
                    Ok(())
                }
                Err(e) => {
                    conn.rollback_quietly();
                    Err(e)
                }
            }
        })
        .await
    }
}

#[async_trait]
impl Database for SqliteDatabase {
    fn engine_name(&self) -> &'static str {
        "sqlite"
    }

    async fn set_max_bytes(&self, max_bytes: Option<u64>) -> Result<()> {
        let inner = &self.inner;
        inner
            .quota
            .store(max_bytes.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
        let cap = inner.reader_opts().max_size_bytes;
        // Idle readers go; the next ones open with the new cap.
        if let Ok(mut readers) = inner.readers.lock() {
            readers.clear();
        }
        let writer = Arc::clone(&inner.writer).lock_owned().await;
        blocking(move || writer.cap_size(cap)).await
    }

    async fn execute(&self, stmt: Statement, limits: &StatementLimits) -> Result<StatementResult> {
        let (max_rows, max_bytes, timeout) = (limits.max_rows, limits.max_bytes, limits.timeout);
        if limits.read_only {
            // Read-only connections (SQLITE_OPEN_READ_ONLY, query_only): the engine refuses
            // every write, whatever the statement looks like.
            return self
                .read(move |conn| {
                    conn.set_deadline(timeout);
                    conn.run(&stmt, max_rows, max_bytes)
                })
                .await?;
        }
        let stmt = Arc::new(stmt);
        let reading = Arc::clone(&stmt);
        let routed = self
            .read(move |conn| {
                conn.set_deadline(timeout);
                match conn.is_read_only(&reading.sql) {
                    Ok(true) => Routed::Done(conn.run(&reading, max_rows, max_bytes)),
                    Ok(false) => Routed::NeedsWriter,
                    Err(e) => Routed::Done(Err(e)),
                }
            })
            .await?;
        match routed {
            Routed::Done(result) => result,
            Routed::NeedsWriter => self.write_one(Arc::unwrap_or_clone(stmt), limits).await,
        }
    }

    async fn query(&self, stmt: Statement, limits: StatementLimits) -> Result<RowStream> {
        let (tx, rx) = mpsc::channel(limits.stream_buffer.max(1));
        let db = SqliteDatabase {
            inner: Arc::clone(&self.inner),
        };
        // The producer runs on its own so that the receiver is returned at once: the bounded
        // channel then paces the engine at the client's speed.
        tokio::spawn(async move {
            let err_tx = tx.clone();
            if let Err(e) = db.produce(stmt, limits, tx).await {
                let _ = err_tx.send(Err(e)).await;
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn batch(
        &self,
        stmts: Vec<Statement>,
        transactional: bool,
        limits: &StatementLimits,
    ) -> Result<Vec<StatementResult>> {
        let timeout = limits.timeout;
        if limits.read_only {
            return self
                .with_reader(move |conn| {
                    conn.set_deadline(timeout);
                    if transactional {
                        conn.control("BEGIN")?;
                    }
                    let results = stmts
                        .iter()
                        .enumerate()
                        .map(|(i, s)| conn.run_discarding(s).map_err(|e| e.at_statement(i)))
                        .collect::<Result<Vec<_>>>();
                    conn.rollback_quietly();
                    results
                })
                .await?;
        }
        if transactional {
            return self
                .write(limits, move |conn| {
                    stmts
                        .iter()
                        .enumerate()
                        .map(|(i, s)| conn.run_discarding(s).map_err(|e| e.at_statement(i)))
                        .collect()
                })
                .await;
        }
        let guard = self.lock_writer(timeout).await?;
        blocking(move || {
            let conn = &*guard;
            conn.rollback_quietly();
            conn.set_deadline(timeout);
            // Each statement is atomic on its own in autocommit mode; the first failure stops.
            stmts
                .iter()
                .enumerate()
                .map(|(i, s)| conn.run_discarding(s).map_err(|e| e.at_statement(i)))
                .collect()
        })
        .await
    }

    async fn session(&self, limits: StatementLimits) -> Result<Box<dyn Session>> {
        Ok(Box::new(SqliteSession {
            db: SqliteDatabase {
                inner: Arc::clone(&self.inner),
            },
            guard: None,
            limits,
        }))
    }

    async fn schema(&self, table: Option<&str>, limits: &StatementLimits) -> Result<Schema> {
        self.read_schema(table, limits).await
    }

    async fn explain(
        &self,
        stmt: Statement,
        analyze: bool,
        limits: &StatementLimits,
    ) -> Result<Plan> {
        self.explain_plan(stmt, analyze, limits).await
    }

    async fn dump(&self, schema_only: bool, limits: StatementLimits) -> Result<DumpStream> {
        self.dump_script(schema_only, limits).await
    }

    async fn backup_image(&self, dest: PathBuf) -> Result<super::ImageSummary> {
        self.write_image(dest).await
    }
}

/// Where a blocking producer sends row events, with backpressure and the stream's deadline.
struct Sink<'a> {
    tx: &'a mpsc::Sender<Result<RowEvent>>,
    rt: &'a Handle,
    deadline: tokio::time::Instant,
}

impl Sink<'_> {
    /// Sends one event, waiting while the client is slow. False when the client has gone or the
    /// deadline passed (then the client gets DEADLINE_EXCEEDED).
    fn send(&self, ev: Result<RowEvent>) -> bool {
        let sent = self
            .rt
            .block_on(tokio::time::timeout_at(self.deadline, self.tx.send(ev)));
        match sent {
            Ok(Ok(())) => true,
            Ok(Err(_)) => {
                tracing::debug!("client went away; stopping the statement");
                false
            }
            Err(_) => {
                let _ = self.tx.try_send(Err(Error::Timeout(
                    "the stream ran past its deadline while the client was not reading".into(),
                )));
                false
            }
        }
    }
}

/// Streams the rows of `stmt` into `sink` in batches. Returns the summary when every row was
/// read, or `None` when the client went away.
fn stream_rows(
    conn: &Conn,
    stmt: &Statement,
    limits: &StatementLimits,
    sink: &Sink<'_>,
    started: Instant,
) -> Result<Option<Summary>> {
    // A client that leaves while the statement computes (before any row) interrupts it.
    conn.set_waiter(Some(Waiter::Stream(sink.tx.clone())));
    let _untie = scopeguard(|| conn.set_waiter(None));
    let total_before = conn.total_changes();
    let mut prepared = conn.prepare(stmt)?;
    let columns = columns_of(&prepared);
    let kinds: Vec<_> = columns.iter().map(|c| c.kind).collect();
    let readonly = prepared.readonly();
    if !sink.send(Ok(RowEvent::Columns(columns))) {
        return Ok(None);
    }
    let mut batch = Batch::new(limits.encoder.clone());
    let mut row_count = 0u64;
    let mut total_bytes = 0u64;
    let mut truncation = Truncation::None;
    {
        let mut rows = prepared.raw_query();
        while let Some(row) = rows.next().map_err(|e| conn.classify(e))? {
            if truncation != Truncation::None {
                // A writing statement is stepped to its end so that it applies whole.
                continue;
            }
            if row_count >= limits.max_rows {
                truncation = Truncation::RowLimit;
                if readonly {
                    break;
                }
                continue;
            }
            let values = read_row(row, &kinds)?;
            let size: usize = values.iter().map(Value::approx_size).sum::<usize>() + 2;
            if total_bytes + size as u64 > limits.max_bytes {
                truncation = Truncation::ByteLimit;
                if readonly {
                    break;
                }
                continue;
            }
            row_count += 1;
            total_bytes += size as u64;
            batch.push(values, size);
            if batch.reached(limits.batch_rows, limits.batch_bytes)
                && let Some(full) = batch.take()
                && !sink.send(Ok(full))
            {
                return Ok(None);
            }
        }
    }
    if let Some(last) = batch.take()
        && !sink.send(Ok(last))
    {
        return Ok(None);
    }
    Ok(Some(Summary {
        row_count,
        rows_affected: conn.rows_changed(readonly, total_before),
        elapsed: started.elapsed(),
        truncation,
    }))
}

/// The connection a session's transaction runs on.
#[derive(Debug)]
enum Pinned {
    /// The writer, locked from `begin` to `commit`/`rollback`: other writers queue behind it.
    Writer(OwnedMutexGuard<Conn>),
    /// A read-only connection of the session's own, for read-only callers.
    Reader(Box<Conn>),
}

/// A transaction nobody finished is rolled back before its connection is released: a session
/// dropped between statements, or a statement whose caller went away while it ran on the blocking
/// pool (the guard then comes back to a dropped task handle). Without this the writer would go
/// back to the lock with the transaction open, and later writes would land inside it.
impl Drop for Pinned {
    fn drop(&mut self) {
        // Rolling back an uncommitted WAL transaction only discards pages in memory.
        self.rollback_quietly();
    }
}

impl std::ops::Deref for Pinned {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        match self {
            Pinned::Writer(g) => g,
            Pinned::Reader(c) => c,
        }
    }
}

/// An interactive transaction pinned to one connection.
#[derive(Debug)]
struct SqliteSession {
    db: SqliteDatabase,
    guard: Option<Pinned>,
    limits: StatementLimits,
}

impl SqliteSession {
    async fn on_writer<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let guard = self.guard.take().ok_or_else(|| {
            Error::FailedPrecondition("no transaction is open: send begin first".into())
        })?;
        let timeout = self.limits.timeout;
        let (guard, out) = tokio::task::spawn_blocking(move || {
            guard.set_deadline(timeout);
            let out = f(&guard);
            (guard, out)
        })
        .await
        .map_err(|e| Error::internal(format!("sqlite task failed: {e}")))?;
        // The engine may have ended the transaction itself (some errors roll back); then the
        // writer is released for others.
        if !guard.raw().is_autocommit() {
            self.guard = Some(guard);
        }
        out
    }
}

#[async_trait]
impl Session for SqliteSession {
    async fn begin(&mut self) -> Result<()> {
        if self.guard.is_some() {
            return Err(Error::FailedPrecondition(
                "a transaction is already open in this session".into(),
            ));
        }
        let pinned = if self.limits.read_only {
            let (path, opts) = (self.db.inner.path.clone(), self.db.inner.reader_opts());
            blocking(move || {
                let conn = Conn::open(&path, &opts)?;
                conn.control("BEGIN")?;
                Ok(Pinned::Reader(Box::new(conn)))
            })
            .await?
        } else {
            let guard = self.db.lock_writer(self.limits.timeout).await?;
            blocking(move || {
                guard.rollback_quietly();
                guard.control("BEGIN IMMEDIATE")?;
                Ok(Pinned::Writer(guard))
            })
            .await?
        };
        self.guard = Some(pinned);
        Ok(())
    }

    async fn execute(&mut self, stmt: Statement) -> Result<StatementResult> {
        let (max_rows, max_bytes) = (self.limits.max_rows, self.limits.max_bytes);
        self.on_writer(move |conn| conn.run(&stmt, max_rows, max_bytes))
            .await
    }

    async fn commit(&mut self) -> Result<()> {
        self.on_writer(|conn| {
            conn.control("COMMIT")
                .inspect_err(|_| conn.rollback_quietly())
        })
        .await
    }

    async fn rollback(&mut self) -> Result<()> {
        self.on_writer(|conn| conn.control("ROLLBACK")).await
    }

    fn in_transaction(&self) -> bool {
        self.guard.is_some()
    }

    async fn explain(&mut self, stmt: Statement) -> Result<Plan> {
        self.on_writer(move |conn| inspect::plan_on(conn, stmt))
            .await
    }
}

/// SQLite's SQL dialect for TableService.
#[derive(Debug)]
pub struct SqliteDialect;

impl SqlDialect for SqliteDialect {
    fn quote_ident(&self, name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    fn placeholder(&self, _index: usize) -> String {
        "?".into()
    }

    fn column_type(&self, ty: ColumnType) -> &'static str {
        // The TEXT in the richer types' names gives them TEXT affinity, so SQLite stores decimals
        // and JSON digit for digit instead of converting them to numbers.
        match ty {
            ColumnType::Integer => "INTEGER",
            ColumnType::Float => "REAL",
            ColumnType::Text => "TEXT",
            ColumnType::Bytes => "BLOB",
            ColumnType::Bool => "BOOLEAN",
            ColumnType::Decimal => "DECIMAL TEXT",
            ColumnType::Json => "JSON TEXT",
            ColumnType::Timestamp => "TIMESTAMP TEXT",
            ColumnType::Date => "DATE TEXT",
        }
    }

    fn table_exists(&self, table: &str) -> Statement {
        Statement {
            sql: "SELECT 1 FROM sqlite_schema WHERE type IN ('table', 'view') AND name = ?".into(),
            params: vec![Value::Text(table.to_owned())],
        }
    }

    fn limit_offset(&self, limit: Option<u64>, offset: Option<u64>) -> (String, Vec<Value>) {
        match (limit, offset) {
            (None, None) => (String::new(), Vec::new()),
            (limit, offset) => (
                " LIMIT ? OFFSET ?".into(),
                vec![
                    Value::Int(limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX))),
                    Value::Int(offset.map_or(0, |o| i64::try_from(o).unwrap_or(i64::MAX))),
                ],
            ),
        }
    }

    fn literal(&self, value: &Value) -> Result<String> {
        let quote = |s: &str| -> Result<String> {
            if s.contains('\0') {
                return Err(Error::invalid("default_value", "text must not contain NUL"));
            }
            Ok(format!("'{}'", s.replace('\'', "''")))
        };
        Ok(match value {
            Value::Null => "NULL".into(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) if f.is_finite() => format!("{f:?}"),
            Value::Float(_) => {
                return Err(Error::invalid("default_value", "must be a finite number"));
            }
            Value::Bool(b) => i64::from(*b).to_string(),
            Value::Text(s) | Value::Decimal(s) | Value::Json(s) => quote(s)?,
            Value::Bytes(b) => {
                let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
                format!("X'{hex}'")
            }
            Value::Timestamp(t) => quote(&format_timestamp(t))?,
            Value::Date(d) => quote(&crate::core::value::text::date(d))?,
            Value::Uuid(u) => quote(u)?,
            Value::Time(t) => quote(&crate::core::value::text::time(t))?,
            Value::Array(_) => {
                return Err(Error::invalid("default_value", "SQLite has no arrays"));
            }
        })
    }
}

#[cfg(test)]
mod tests;
