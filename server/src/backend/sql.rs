//! What the PostgreSQL and MySQL/MariaDB backends share: both speak sqlx, so the [`Backend`]
//! impl over a per-engine provisioning trait ([`provision`]), what a connection does on the
//! shared pool with its server-wide cap ([`pool`], over [`crate::backend::pool`]), the data
//! plane (execute, stream, batch, session over any [`SqlConn`], in [`exec`]), the
//! transaction-control rule, exact decimals and generated names ([`text`]) live here once. An
//! engine supplies a connection type ([`SqlConn`]) that prepares, binds, runs and decodes, a
//! few facts about itself ([`Engine`]), and the SQL of provisioning
//! ([`Provisioner`](provision::Provisioner)).
//!
//! [`Backend`]: crate::backend::Backend
//!
//! How a statement runs, whatever the engine:
//!
//! | call | transaction | on a limit | on drop |
//! |---|---|---|---|
//! | `execute`, returning no rows | autocommit | — | cancelled, connection closed |
//! | `execute`, returning rows | autocommit `READ ONLY` first; a write is refused by the engine and rerun in a read-write transaction | `LimitExceeded`, nothing written | cancelled, rolled back |
//! | `query` (stream) | as `execute` | reads stop at once; a write is read to its end and committed | cancelled, rolled back |
//! | `batch` | one transaction, or autocommit each | — | cancelled, rolled back |
//! | session statement | the session's, under a savepoint (PostgreSQL always, MySQL when it returns rows) | `LimitExceeded`, back to the savepoint | rolled back |
//!
//! The read-only first attempt is how the engine, not the gateway, says whether a statement
//! writes: a read reports no rows affected and may be cut short when a limit is reached, while a
//! write must apply whole or not at all. The attempt runs on its own (autocommit) with the
//! connection's session default set to read-only ([`SqlConn::set_read_only`]), not inside
//! `BEGIN READ ONLY` … `COMMIT`: same guarantee, one round trip instead of three. The default
//! stays as the last call left it, so reads in a row pay nothing for it; statements that run
//! outside a transaction for their effect set it back first, and the gateway's own read-write
//! transactions say `READ WRITE` explicitly.

pub mod credentials;
pub mod exec;
pub mod inspect;
pub mod pool;
pub mod provision;
#[cfg(test)]
pub mod testing;
pub mod text;

use std::{fmt, time::Duration};

use async_trait::async_trait;

pub use self::{
    exec::{SqlDatabase, classify},
    inspect::Inspect,
    pool::{DbPool, PoolSizes, Server},
    text::{Flavor, Locator},
};
use super::BackendKind;
use crate::core::{
    error::{Error, Result},
    value::{Column, Row, Statement, Value},
};

/// The SQL literal of a NULL, an integer, a finite float (followed by `float_cast`) or a
/// boolean, which both dialects write alike in DEFAULT clauses.
pub fn scalar_literal(value: &Value, float_cast: &str) -> Result<String> {
    match value {
        Value::Null => Ok("NULL".into()),
        Value::Int(i) => Ok(i.to_string()),
        Value::Float(f) if f.is_finite() => Ok(format!("{f:?}{float_cast}")),
        Value::Float(_) => Err(Error::invalid("default_value", "must be a finite number")),
        Value::Bool(b) => Ok(if *b { "TRUE" } else { "FALSE" }.into()),
        other => Err(Error::internal(format!("{other:?} has no scalar literal"))),
    }
}

/// Transaction control issued by the gateway itself (never by clients: see
/// [`text::refuse_transaction_control`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Opens a read-write transaction.
    Begin,
    /// Opens a read-only transaction in which every read sees one snapshot (PostgreSQL
    /// `REPEATABLE READ`, InnoDB's consistent read): the engine refuses writes in it.
    BeginReadOnly,
    /// Commits.
    Commit,
    /// Rolls back.
    Rollback,
    /// Sets the statement savepoint.
    Savepoint,
    /// Undoes the statement since its savepoint; the transaction stays open.
    RollbackToSavepoint,
    /// Forgets the statement savepoint.
    ReleaseSavepoint,
}

/// The name of the savepoint that guards one session statement.
pub const SAVEPOINT: &str = "dbforge_statement";

/// What a statement did, besides its rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Rows changed, as the engine counts them.
    pub rows_affected: u64,
    /// The auto-increment id of the last inserted row (MySQL).
    pub last_insert_id: Option<i64>,
}

/// Where an engine sends the rows of a statement while it runs.
#[async_trait]
pub trait RowSink: Send {
    /// The columns rows actually arrive under, when they differ from the statement's
    /// description (a MySQL `CALL` whose procedure returns a result set, MariaDB's `RETURNING`,
    /// an expression whose type depends on its parameters). Called before such rows.
    async fn columns(&mut self, columns: Vec<Column>) -> Result<()>;
    /// Takes one row, without waiting: engines call it for every row, so it must not cost a
    /// future of its own. `Ok(false)`: stop reading (the rest of the result is abandoned).
    fn row(&mut self, row: Row) -> Result<bool>;
    /// Whether what [`Self::row`] took must be handed on (awaiting [`Self::send`]) before the
    /// engine reads on.
    fn pending(&self) -> bool {
        false
    }
    /// Hands on what [`Self::row`] gathered (a batch to the client, a statement to a dump).
    /// `Ok(false)`: stop reading.
    async fn send(&mut self) -> Result<bool> {
        Ok(true)
    }
    /// Whether the sink stopped reading before the end of the result.
    fn stopped(&self) -> bool;
}

/// Gives `row` to `sink`, and awaits only when the sink has something to hand on. `Ok(false)`:
/// stop reading.
pub async fn feed(sink: &mut dyn RowSink, row: Row) -> Result<bool> {
    if !sink.row(row)? {
        return Ok(false);
    }
    if sink.pending() {
        return sink.send().await;
    }
    Ok(true)
}

/// The prepared form of a statement on an engine's connection.
pub type Prepared<E> = <<E as Engine>::Conn as SqlConn>::Prepared;

/// One data-plane (or administrative) connection of an engine.
#[async_trait]
pub trait SqlConn: Send + 'static {
    /// What [`Self::describe`] makes and [`Self::run`] takes.
    type Prepared: Send + Sync;
    /// Whether [`Self::copy_in`] has a bulk-load path to offer.
    const COPY_IN: bool = false;

    /// The server's id of this connection, used to cancel its statement from another one.
    fn server_id(&self) -> u64;
    /// Whether the connection is in an unknown state (I/O or protocol error) and must be closed.
    fn is_broken(&self) -> bool;
    /// Checks that the server answers.
    async fn ping(&mut self) -> Result<()>;
    /// Closes the connection politely.
    async fn close(self);
    /// Makes the engine interrupt statements running longer than `timeout` (a no-op when it
    /// already does).
    async fn set_timeout(&mut self, timeout: Duration) -> Result<()>;
    /// Makes the statements this connection runs outside a transaction read-only (`on`) or
    /// read-write by default; a no-op when they already are. A read-only login (a read grant's
    /// connection) stays read-only whatever is asked. [`Control::Begin`] opens a read-write
    /// transaction whatever the default (on a read-write login).
    async fn set_read_only(&mut self, on: bool) -> Result<()>;
    /// Runs gateway transaction control.
    async fn control(&mut self, op: Control) -> Result<()>;
    /// Prepares a client statement, checks its parameters and describes its columns.
    async fn describe(&mut self, stmt: &Statement) -> Result<Self::Prepared>;
    /// The result columns of a prepared statement (empty when it returns no rows).
    fn columns(prepared: &Self::Prepared) -> &[Column];
    /// Runs a prepared statement with `stmt`'s parameters, handing each row to `sink`.
    async fn run(
        &mut self,
        prepared: &Self::Prepared,
        stmt: &Statement,
        sink: &mut dyn RowSink,
    ) -> Result<Outcome>;
    /// Runs a statement for its effect, discarding any rows.
    async fn run_discarding(&mut self, stmt: &Statement) -> Result<Outcome>;
    /// Appends rows to `columns` of `table` through the engine's bulk-load path (PostgreSQL
    /// `COPY … FROM STDIN`) and returns how many rows it stored; `Ok(None)` when the engine has
    /// no such path or it cannot carry these values, and the caller inserts instead. A failure
    /// leaves the transaction as a failed statement does (the caller runs it in a savepoint).
    async fn copy_in(
        &mut self,
        _table: &str,
        _columns: &[String],
        _rows: CopySource<'_>,
    ) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// What a bulk load ([`SqlConn::copy_in`]) carries.
#[derive(Debug, Clone, Copy)]
pub enum CopySource<'a> {
    /// Rows of values, which the engine encodes.
    Values(&'a [&'a [Value]]),
    /// Whole lines in the engine's own bulk text format (PostgreSQL's `COPY` text), as a
    /// backup stored them.
    Text(&'a [u8]),
}

/// Sets a spawned database's login back to the credentials in the catalog, through the
/// administrative pool. PostgreSQL and MySQL let every login change its own password (`ALTER
/// ROLE CURRENT_USER PASSWORD`, `SET PASSWORD`, also from a routine), which no privilege the
/// gateway can withhold prevents for a login that may write. The catalog's credentials stay
/// authoritative: when the server refuses a login, the engine's `connect` runs this once and
/// tries again, so a changed password never locks the gateway out of the database.
#[derive(Clone)]
pub struct Relogin(
    std::sync::Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<()>> + Send + Sync>,
);

impl Relogin {
    /// A relogin that runs `f`.
    pub fn new(
        f: impl Fn() -> futures::future::BoxFuture<'static, Result<()>> + Send + Sync + 'static,
    ) -> Self {
        Self(std::sync::Arc::new(f))
    }

    /// Resets the credentials.
    pub async fn run(&self) -> Result<()> {
        (self.0)().await
    }

    /// Connects with `connect`. When the server refuses the login (`refused` says which driver
    /// errors mean that) and `relogin` is given, resets the credentials of `login` and connects
    /// once more. Other errors, and a second refusal, go to `classify`.
    pub async fn connect<C, F, Fut>(
        relogin: Option<&Relogin>,
        login: &str,
        refused: fn(&sqlx::Error) -> bool,
        classify: fn(sqlx::Error) -> Error,
        connect: F,
    ) -> Result<C>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = std::result::Result<C, sqlx::Error>>,
    {
        match connect().await {
            Ok(conn) => Ok(conn),
            Err(e) if refused(&e) && relogin.is_some() => {
                tracing::warn!(
                    login,
                    error = %e,
                    "a database's login was refused; resetting it to the catalog's credentials"
                );
                if let Some(relogin) = relogin {
                    relogin.run().await?;
                }
                connect().await.map_err(classify)
            }
            Err(e) => Err(classify(e)),
        }
    }
}

impl fmt::Debug for Relogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Relogin")
    }
}

/// What the shared data plane needs to know about an engine.
#[async_trait]
pub trait Engine: Send + Sync + fmt::Debug + 'static {
    /// Its connections.
    type Conn: SqlConn;
    /// Where a pool connects: a spawned database with its own login, or the admin database.
    type Target: Send + Sync + fmt::Debug + 'static;
    /// Which backend this is.
    const KIND: BackendKind;
    /// Whose lexical rules the transaction-control rule follows.
    const FLAVOR: Flavor;
    /// Whether every session statement runs under a savepoint. PostgreSQL needs it (any failed
    /// statement aborts the whole transaction otherwise); MySQL rolls a failed statement back on
    /// its own and needs one only to undo a statement whose rows exceeded a limit.
    const SAVEPOINT_EVERY_STATEMENT: bool;
    /// Whether preparing a statement says for sure which columns it returns. PostgreSQL's does;
    /// MariaDB announces none for `INSERT … RETURNING` and guesses the types of expressions
    /// over parameters, so there a statement that announces no rows still runs in a
    /// transaction (its rows may exceed a limit) and a stream's header waits for the first row.
    const DESCRIBES_RESULTS: bool;

    /// Opens a connection.
    async fn connect(&self, target: &Self::Target) -> Result<Self::Conn>;
    /// Interrupts the statement running on connection `server_id`, using `admin`.
    async fn cancel(admin: &mut Self::Conn, server_id: u64) -> Result<()>;
    /// Whether `err` is the engine refusing a write inside a read-only transaction.
    fn is_read_only_violation(err: &Error) -> bool;
}
