//! The backend contract: how the core spawns, prunes and uses databases without naming an engine.
//!
//! # Contract
//!
//! - **Isolation.** A database handed out by [`Backend::open`] can reach only its own data. The
//!   engine enforces this (SQLite: authorizer and limits on every connection; server engines: a
//!   role or user per database), never a check on SQL text.
//! - **Atomicity.** [`Database::execute`] runs one statement atomically: a statement that fails
//!   or exceeds a limit changes nothing. [`Database::batch`] with `transactional` commits all
//!   statements or none. Without it, each statement commits on its own and the first failure
//!   stops the batch; the error carries the statement's index.
//! - **Cancellation.** Dropping the stream returned by [`Database::query`] stops the statement,
//!   and so does dropping a reading [`Database::execute`] call before it answers (SQLite
//!   interrupts it, PostgreSQL and MySQL cancel it on the server); dropping a [`Session`] with
//!   an open transaction rolls it back.
//! - **Errors.** A statement the engine rejects is [`Error::Query`] with the engine's code and
//!   message; running past the statement timeout is [`Error::Timeout`]; reaching a row or byte
//!   limit in `execute` is [`Error::LimitExceeded`]; an engine that cannot be reached is
//!   [`Error::Unavailable`]; an operation the engine lacks is [`Error::Unsupported`].
//! - **Provisioning.** [`Backend::create`] and [`Backend::destroy`] are idempotent: the core
//!   records a spawn before `create` and a prune before `destroy`, and repeats either after a
//!   crash.

#[cfg(test)]
pub mod conformance;
pub mod dump;
#[cfg(feature = "graph")]
pub mod graph;
pub mod metered;
pub mod mysql;
pub mod pool;
pub mod postgres;
pub mod probe;
pub mod reader;
pub mod redis;
pub mod share;
pub mod sql;
pub mod sqlite;

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use futures::stream::BoxStream;

pub use crate::core::{engine::BackendKind, limits::StatementLimits};
use crate::core::{
    error::{Error, Result},
    names::DatabaseName,
    schema::{Plan, Schema},
    table::SqlDialect,
    value::{RowEvent, Statement, StatementResult, Value},
};

/// What a backend supports; reported to clients in every Database message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Accepts SQL.
    pub sql: bool,
    /// All-or-nothing batches.
    pub transactions: bool,
    /// Interactive sessions.
    pub sessions: bool,
    /// Parameters keep their kind.
    pub typed_params: bool,
    /// TableService works.
    pub table_service: bool,
    /// Key-value commands instead of SQL.
    pub key_value: bool,
    /// Reports last insert ids.
    pub last_insert_id: bool,
    /// RETURNING clauses.
    pub returning: bool,
    /// Placeholder style, `?` or `$1`.
    pub placeholder: &'static str,
    /// DDL runs inside a transaction and rolls back with it (MySQL commits implicitly before
    /// and after it instead).
    pub transactional_ddl: bool,
    /// Takes SPARQL queries and updates instead of SQL (the graph engine).
    pub sparql: bool,
}

/// Where a backend keeps one database: chosen by the backend at spawn, stored in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The public name.
    pub name: DatabaseName,
    /// Backend-private location (a file name, a database and role name, a key prefix).
    pub locator: String,
}

/// A stream of row events; see [`RowEvent`] for the order.
pub type RowStream = BoxStream<'static, Result<RowEvent>>;

/// A piece of a dump: the next bytes of the file and how many rows (or keys) they hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpChunk {
    /// The next bytes of the dump.
    pub data: Vec<u8>,
    /// Rows or keys written in `data`.
    pub rows: u64,
    /// On the last chunk of a dump: the rows written per table, in dump order (engines with
    /// tables; empty otherwise). Backups put it in their manifest.
    pub tables: Vec<(String, u64)>,
}

/// What a backup image holds, told by [`Database::backup_image`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSummary {
    /// Rows per table, by table name.
    pub tables: Vec<(String, u64)>,
    /// Views.
    pub views: u32,
}

/// A dump streamed in chunks; see [`Database::dump`].
pub type DumpStream = BoxStream<'static, Result<DumpChunk>>;

/// An engine that can spawn, prune and open databases.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// Which engine this is.
    fn kind(&self) -> BackendKind;
    /// What it supports.
    fn capabilities(&self) -> &Capabilities;
    /// The SQL dialect TableService uses, or `None` for engines without SQL.
    fn dialect(&self) -> Option<&'static dyn SqlDialect>;
    /// Chooses where a new database named `name` will live. Pure: nothing is created.
    fn locate(&self, name: &DatabaseName) -> Provisioned;
    /// Creates the database's storage and access (idempotent).
    async fn create(&self, db: &Provisioned) -> Result<()>;
    /// Drops the database and everything it holds (idempotent: missing is fine).
    async fn destroy(&self, db: &Provisioned) -> Result<()>;
    /// Opens a handle for data-plane calls. Handles are cached by the core and dropped when idle.
    async fn open(&self, db: &Provisioned) -> Result<Arc<dyn Database>>;
    /// Bytes the database takes, where the engine can tell.
    async fn size_bytes(&self, db: &Provisioned) -> Result<Option<u64>>;
    /// Removes storage this backend holds that is not among `known` (left by a crash).
    async fn remove_orphans(&self, known: &[Provisioned]) -> Result<usize>;
    /// The databases the catalog holds on this backend, told once at start-up: a server engine
    /// watches their logins from then on, so that a credential changed from inside a database
    /// is reset even before the gateway opens it again (see `backend/sql/credentials.rs`).
    fn recognize(&self, known: &[Provisioned]) {
        let _ = known;
    }
    /// Whether the gateway may call [`remove_orphans`](Self::remove_orphans) at start-up: only
    /// when this gateway owns the storage alone (SQLite's data directory). A database server
    /// may be shared by several gateways, each knowing only its own databases, so cleaning it
    /// up from one catalog would delete the others'. The spawn and prune protocol (catalog
    /// record before create, after destroy) leaves no orphans behind without this.
    fn owns_storage(&self) -> bool {
        false
    }
    /// Whether the engine can be reached right now. A cheap, cached answer: server engines
    /// probe in the background and flip it when the server goes away or comes back; while it
    /// is false, their calls fail fast with [`Error::Unavailable`](crate::core::error::Error).
    fn available(&self) -> bool {
        true
    }
    /// Why the engine cannot be reached right now (the [`Error::Unavailable`] its calls fail
    /// with), or `Ok` while [`available`](Self::available). Cached like it.
    fn availability(&self) -> Result<()> {
        Ok(())
    }
    /// Each open database's share of the server's connections ([`share`]), by name. Engines
    /// without a shared connection cap (SQLite) or with a fixed one (Redis) have none.
    fn connection_shares(&self) -> Vec<share::ShareStats> {
        Vec::new()
    }
    /// Makes this gateway one of `replicas` gateways sharing the engine's server (one
    /// catalog): a server engine keeps its connections within `1/replicas` of its cap
    /// ([`pool::Pool::set_replicas`]). Engines without a server do nothing.
    fn set_replicas(&self, _replicas: usize) {}
    /// Data-plane connections this gateway may open to the engine's server now (its share of
    /// the cap), and those open; `None` for engines without a server.
    fn connection_cap(&self) -> Option<(usize, usize)> {
        None
    }
    /// Whether [`StatementLimits::read_only`] is enforced by the engine itself (read-only
    /// connections, read-only transactions, a role without write privileges). A backend that
    /// cannot enforce it keeps the default `false`, and the core refuses read-only grants on it
    /// rather than trusting SQL text.
    fn enforces_read_only(&self) -> bool {
        false
    }
    /// Creates `db` (its storage and logins, as [`create`](Self::create) does) as a copy of
    /// `source` made by the engine itself in one step (PostgreSQL's `CREATE DATABASE …
    /// TEMPLATE`). [`Error::Unsupported`] means nothing was made: the engine has no such copy,
    /// and the core copies through a dump instead. Any other error may leave part of `db`
    /// behind for the caller to [`destroy`](Self::destroy), and the core falls back the same
    /// way (a busy source, for one, cannot be a template).
    async fn create_copy(&self, source: &Provisioned, db: &Provisioned) -> Result<()> {
        let _ = (source, db);
        Err(Error::Unsupported {
            operation: "CreateCopy",
            backend: self.kind().as_str(),
        })
    }
    /// Ends every session of `db`'s logins on its server, whichever gateway opened it, and
    /// this gateway's idle connections to it: a restore's fence
    /// ([`crate::core::fence`]), so that no transaction begun before it commits behind the
    /// safety backup. New connections are still accepted. Engines whose databases only this
    /// process opens (SQLite, graphs) keep the default, which does nothing.
    async fn disconnect(&self, db: &Provisioned) -> Result<()> {
        let _ = db;
        Ok(())
    }
    /// File engines: checks the storage of `db` (SQLite: `PRAGMA quick_check`). `Some` names
    /// the first problem found (a missing file is one); `None` means it is sound. An error
    /// means it could not be checked, which says nothing about the file. Other engines keep
    /// the default: their servers look after their own storage.
    async fn check_integrity(&self, db: &Provisioned) -> Result<Option<String>> {
        let _ = db;
        Ok(None)
    }
    /// File engines: moves the storage of `db` aside, never deleting it, and returns where it
    /// went. The database must be closed.
    async fn quarantine(&self, db: &Provisioned) -> Result<String> {
        let _ = db;
        Err(Error::Unsupported {
            operation: "Quarantine",
            backend: self.kind().as_str(),
        })
    }
    /// File engines: moves the backup image at `image` (written by
    /// [`Database::backup_image`]) into place as the storage of `db`, which was created and
    /// never opened. Engines whose backups are dumps keep the default, Unsupported.
    async fn restore_image(&self, db: &Provisioned, image: std::path::PathBuf) -> Result<()> {
        let _ = (db, image);
        Err(Error::Unsupported {
            operation: "RestoreImage",
            backend: self.kind().as_str(),
        })
    }
}

/// Settings shared by the engines that run as servers (PostgreSQL, MySQL, Redis).
#[derive(Debug, Clone)]
pub struct ServerBackendConfig {
    /// Admin URL: a user that may create databases and roles/users.
    pub url: String,
    /// Connections to this server across all its spawned databases, at most.
    pub max_connections: u32,
    /// Connections per spawned database, at most (the maximum of its share).
    pub per_database_connections: u32,
    /// Connections each open database keeps as its share even when idle, when the cap
    /// allows (the minimum of its share).
    pub min_database_connections: u32,
    /// How fast a database's share follows a drop in its demand: the estimate halves every
    /// this long.
    pub demand_half_life: Duration,
    /// Close a pooled connection after this long unused.
    pub idle_timeout: Duration,
}

impl ServerBackendConfig {
    /// Where the server is, for messages and logs (the URL without its password).
    pub fn location(&self) -> probe::Location {
        probe::Location::from_url(&self.url)
    }
}

/// An open database.
#[async_trait]
pub trait Database: Send + Sync + fmt::Debug {
    /// Runs one statement atomically and returns its whole result.
    async fn execute(&self, stmt: Statement, limits: &StatementLimits) -> Result<StatementResult>;
    /// Runs one statement and streams its rows with backpressure.
    async fn query(&self, stmt: Statement, limits: StatementLimits) -> Result<RowStream>;
    /// Runs statements in order, in one transaction when `transactional`.
    async fn batch(
        &self,
        stmts: Vec<Statement>,
        transactional: bool,
        limits: &StatementLimits,
    ) -> Result<Vec<StatementResult>>;
    /// Opens an interactive session on a pinned connection.
    async fn session(&self, limits: StatementLimits) -> Result<Box<dyn Session>>;
    /// Describes the tables and views, or only `table` ([`Error::NotFound`] when it does not
    /// exist), sorted by name. Key-value engines fill [`Schema::key_space`] from a bounded sample.
    async fn schema(&self, table: Option<&str>, limits: &StatementLimits) -> Result<Schema> {
        let _ = (table, limits);
        Err(self.unsupported("GetSchema"))
    }
    /// The plan of `stmt`. With `analyze` the statement runs inside a transaction that is rolled
    /// back, so nothing it writes is kept.
    async fn explain(
        &self,
        stmt: Statement,
        analyze: bool,
        limits: &StatementLimits,
    ) -> Result<Plan> {
        let _ = (stmt, analyze, limits);
        Err(self.unsupported("Explain"))
    }
    /// The dump a backup stores: [`dump`](Self::dump) of everything by default. An engine may
    /// write rows in its bulk format instead (PostgreSQL: `COPY … FROM STDIN` blocks with
    /// their keys added after the rows, as `pg_dump` does), which a backup's restore reads and
    /// ImportSql does not.
    async fn backup_dump(&self, limits: StatementLimits) -> Result<DumpStream> {
        self.dump(false, limits).await
    }
    /// Streams a dump of the whole database that the same engine replays into an identical one:
    /// an SQL script for SQL engines (run with the script importer), NDJSON records for
    /// key-value engines (read by [`import_records`](Self::import_records)). Dropping the stream
    /// stops it.
    async fn dump(&self, schema_only: bool, limits: StatementLimits) -> Result<DumpStream> {
        let _ = (schema_only, limits);
        Err(self.unsupported("DumpDatabase"))
    }
    /// Key-value engines: writes the NDJSON records of `data` (the [`dump`](Self::dump) format)
    /// atomically, replacing keys of the same name, and returns how many there were. A bad record
    /// is [`Error::InvalidArgument`] naming its line, and nothing is written.
    async fn import_records(&self, data: &[u8], limits: &StatementLimits) -> Result<u64> {
        let _ = (data, limits);
        Err(self.unsupported("ImportNdjson"))
    }
    /// Key-value engines: [`import_records`](Self::import_records) into a database known to
    /// be empty and unseen by anyone (a restore's staging database), which may skip what an
    /// import into a live one needs: Redis neither deletes each key first nor wraps a batch in
    /// MULTI, since a failed restore throws the whole staging database away.
    async fn restore_records(&self, data: &[u8], limits: &StatementLimits) -> Result<u64> {
        self.import_records(data, limits).await
    }
    /// Graph engines: streams every quad in `format` (single-graph formats: the default graph
    /// only). Dropping the stream stops it.
    async fn dump_rdf(
        &self,
        format: crate::core::transfer::RdfFormat,
        limits: StatementLimits,
    ) -> Result<DumpStream> {
        let _ = (format, limits);
        Err(self.unsupported("DumpDatabase in an RDF format"))
    }
    /// Graph engines: loads the RDF file `input` as its chunks arrive, atomically, and returns
    /// the quads read. A syntax error is [`Error::InvalidArgument`] naming its position, and a
    /// failed `input` (too large, the client gone) loads nothing either.
    async fn import_rdf(
        &self,
        spec: crate::core::transfer::RdfImport,
        input: crate::core::transfer::ImportStream,
        limits: &StatementLimits,
    ) -> Result<u64> {
        let _ = (spec, input, limits);
        Err(self.unsupported("ImportRdf"))
    }
    /// File engines: writes a consistent copy of the whole database to the new file `dest`
    /// while writers keep running (SQLite's online backup API), and says what it holds.
    /// Engines whose backups are [`dump`](Self::dump)s keep the default, Unsupported.
    async fn backup_image(&self, dest: std::path::PathBuf) -> Result<ImageSummary> {
        let _ = dest;
        Err(self.unsupported("BackupImage"))
    }
    /// Holds the database to at most `max_bytes` (`None`: only the gateway's own cap) on every
    /// connection it has open and opens later, where the engine enforces a size cap itself
    /// (SQLite's `max_page_count`). Engines that cannot keep the default, which does nothing:
    /// the core measures those and moves their writes to the read-only login instead.
    async fn set_max_bytes(&self, max_bytes: Option<u64>) -> Result<()> {
        let _ = max_bytes;
        Ok(())
    }
    /// The engine's name for [`Error::Unsupported`].
    fn engine_name(&self) -> &'static str;
    /// An [`Error::Unsupported`] for `operation` on this engine.
    fn unsupported(&self, operation: &'static str) -> Error {
        Error::Unsupported {
            operation,
            backend: self.engine_name(),
        }
    }
}

/// An interactive transaction on one pinned connection. Dropped with a transaction open, it
/// rolls back.
#[async_trait]
pub trait Session: Send + fmt::Debug {
    /// Begins a transaction.
    async fn begin(&mut self) -> Result<()>;
    /// Runs a statement inside the transaction.
    async fn execute(&mut self, stmt: Statement) -> Result<StatementResult>;
    /// Commits.
    async fn commit(&mut self) -> Result<()>;
    /// Rolls back.
    async fn rollback(&mut self) -> Result<()>;
    /// Whether a transaction is open.
    fn in_transaction(&self) -> bool;
    /// The plan of `stmt` as the open transaction sees it (tables it created included), without
    /// running the statement; a failure undoes nothing else. Engines without plans keep the
    /// default, Unsupported.
    async fn explain(&mut self, stmt: Statement) -> Result<crate::core::schema::Plan> {
        let _ = stmt;
        Err(Error::Unsupported {
            operation: "Explain in a session",
            backend: "this engine",
        })
    }
    /// Appends `rows` to `columns` of `table` inside the transaction through the engine's
    /// bulk-load path, returning the rows stored; `Ok(None)` when there is none (the caller
    /// inserts). A failure undoes only this call, like a failed statement.
    async fn bulk_insert(
        &mut self,
        _table: &str,
        _columns: &[String],
        _rows: &[&[Value]],
    ) -> Result<Option<u64>> {
        Ok(None)
    }
    /// Appends lines of the engine's own bulk text format (PostgreSQL's `COPY` text, whole
    /// lines, as a backup stored them) to `columns` of `table` (all when empty) inside the
    /// transaction; returns the rows stored, or `Ok(None)` when the engine has no such format.
    /// A failure undoes only this call, like a failed statement.
    async fn copy_text(
        &mut self,
        _table: &str,
        _columns: &[String],
        _lines: &[u8],
    ) -> Result<Option<u64>> {
        Ok(None)
    }
}
