//! The data plane of the SQL server backends, written once over [`Engine`]: execute, streamed
//! query, batch and session, with the limits, timeouts and transaction rules of the backend
//! contract. See the table in [`super`] for how each call uses transactions.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

use super::{
    Control, CopySource, DbPool, Engine, Outcome, Prepared, RowSink, SqlConn,
    inspect::{DumpWriter, Inspect},
    pool::Pooled,
    text::refuse_transaction_control,
};
use crate::{
    backend::{Database, DumpStream, RowStream, Session, StatementLimits},
    core::{
        error::{Error, QueryErrorKind, Result},
        schema::{Plan, Schema},
        value::{
            Batch, Column, Row, RowEvent, Statement, StatementResult, Summary, Truncation, Value,
        },
    },
};

/// How long after the statement timeout the gateway gives up on the engine itself: the engine's
/// own timeout (PostgreSQL `statement_timeout`, MariaDB `max_statement_time`) normally fires
/// first and answers cleanly; this catches statements it does not cover (MySQL writes) and
/// clients who turned it off in their session.
const BACKSTOP_GRACE: Duration = Duration::from_millis(500);
/// How long a failed stream waits for the client to take its error.
const ERROR_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `fut` under the statement timeout (plus a grace period). When it runs out, `fut` is
/// dropped, which cancels its statement on the server (see [`Pooled`]).
async fn within<T>(timeout: Duration, fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(timeout + BACKSTOP_GRACE, fut)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout(format!(
                "the statement ran past its {} deadline and was interrupted",
                humantime::format_duration(timeout)
            )))
        })
}

/// A query error of `kind` with the engine's code and message.
pub fn query_error(kind: QueryErrorKind, code: impl Into<String>, message: String) -> Error {
    Error::Query {
        kind,
        code: Some(code.into()),
        message,
        statement_index: None,
    }
}

/// Turns a sqlx error into the shared error type. Errors the server reported go to `database`
/// (the backend's own classification of SQLSTATEs or error numbers); the rest are classified
/// here the same way for both engines.
pub fn classify(
    err: sqlx::Error,
    backend: &str,
    database: impl FnOnce(&dyn sqlx::error::DatabaseError) -> Error,
) -> Error {
    match err {
        sqlx::Error::Database(e) => database(e.as_ref()),
        sqlx::Error::Io(e) => {
            Error::Unavailable(format!("the {backend} server connection failed: {e}"))
        }
        sqlx::Error::Tls(e) => {
            Error::Unavailable(format!("TLS with the {backend} server failed: {e}"))
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            Error::Unavailable(format!("the {backend} server cannot be reached"))
        }
        // The server answered in a way the driver cannot follow, e.g. COPY … FROM STDIN, which
        // needs a data stream the gateway does not offer.
        sqlx::Error::Protocol(m) => Error::invalid(
            "sql",
            format!("the statement cannot run through the gateway ({m})"),
        ),
        sqlx::Error::Encode(e) => Error::invalid("params", e),
        sqlx::Error::Decode(e) => query_error(QueryErrorKind::DataType, "decode", e.to_string()),
        sqlx::Error::ColumnDecode { index, source } => query_error(
            QueryErrorKind::DataType,
            "decode",
            format!("column {index}: {source}"),
        ),
        other => Error::internal(other),
    }
}

/// Whether an error ends the engine's transaction by itself (the engine rolled it back, or
/// retrying the transaction is the only way on).
fn ends_transaction(err: &Error) -> bool {
    matches!(
        err,
        Error::Query {
            kind: QueryErrorKind::SerializationFailure | QueryErrorKind::Deadlock,
            ..
        }
    )
}

/// Tags a refusal of statement `index` in a batch.
fn at_statement(err: Error, index: usize) -> Error {
    match err {
        Error::InvalidArgument { field, reason } => Error::InvalidArgument {
            field,
            reason: format!("statement {index}: {reason}"),
        },
        other => other.at_statement(index),
    }
}

/// An open database on a SQL server.
pub struct SqlDatabase<E: Engine> {
    pool: Arc<DbPool<E>>,
}

impl<E: Engine> SqlDatabase<E> {
    /// A database handle over its pool.
    pub fn new(pool: DbPool<E>) -> Self {
        Self {
            pool: Arc::new(pool),
        }
    }
}

impl<E: Engine> fmt::Debug for SqlDatabase<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlDatabase")
            .field("pool", &self.pool)
            .finish()
    }
}

/// A sink that can start over when a read-only attempt turns out to be a write.
trait Retry: RowSink {
    /// Whether nothing has left the gateway yet.
    fn can_retry(&self) -> bool;
    /// Forgets what the read-only attempt collected; rows past a limit are now read and dropped.
    fn reset_for_write(&mut self);
    /// Rows the statement returned so far, kept or not.
    fn rows_seen(&self) -> u64;
}

/// Opens a transaction, runs the statement and commits, or rolls back on failure. When the
/// sink stopped early the connection is abandoned instead, which rolls back on the server.
async fn in_transaction<E: Engine>(
    conn: &mut Pooled<E>,
    prepared: &Prepared<E>,
    stmt: &Statement,
    sink: &mut dyn RowSink,
    begin: Control,
) -> Result<Outcome> {
    conn.control(begin).await?;
    let result = conn.run(prepared, stmt, sink).await;
    if !conn.usable() {
        return result;
    }
    match result {
        Ok(outcome) => {
            conn.control(Control::Commit).await?;
            Ok(outcome)
        }
        Err(e) => {
            // A failed rollback marks the connection for closing, which rolls back as well.
            let _ = conn.control(Control::Rollback).await;
            Err(e)
        }
    }
}

/// Runs a statement that returns rows read-only (on its own: the engine's implicit transaction
/// is the whole statement), and again in a read-write transaction when the engine refuses it
/// there. A read reports no rows affected.
async fn read_then_write<E: Engine>(
    conn: &mut Pooled<E>,
    prepared: &Prepared<E>,
    stmt: &Statement,
    sink: &mut dyn Retry,
) -> Result<Outcome> {
    match conn.run_read_only(prepared, stmt, &mut *sink).await {
        Ok(_) => Ok(Outcome::default()),
        Err(e) if E::is_read_only_violation(&e) && sink.can_retry() && conn.usable() => {
            sink.reset_for_write();
            let mut outcome =
                in_transaction(conn, prepared, stmt, &mut *sink, Control::Begin).await?;
            // MariaDB reports no count for INSERT/DELETE … RETURNING; each row it returns is
            // one it changed.
            if outcome.rows_affected == 0 {
                outcome.rows_affected = sink.rows_seen();
            }
            Ok(outcome)
        }
        Err(e) if E::is_read_only_violation(&e) => Err(Error::invalid(
            "sql",
            "the statement wrote to the database after it had streamed rows; run it with \
             Execute or in a Session",
        )),
        Err(e) => Err(e),
    }
}

/// Runs a statement the engine did not describe as returning rows, in a transaction: it may
/// still return some (see [`Engine::DESCRIBES_RESULTS`]), and a limit must be able to undo it.
async fn write_in_transaction<E: Engine>(
    conn: &mut Pooled<E>,
    prepared: &Prepared<E>,
    stmt: &Statement,
    sink: &mut dyn Retry,
) -> Result<Outcome> {
    let mut outcome = in_transaction(conn, prepared, stmt, &mut *sink, Control::Begin).await?;
    if outcome.rows_affected == 0 {
        outcome.rows_affected = sink.rows_seen();
    }
    Ok(outcome)
}

#[async_trait]
impl<E: Inspect> Database for SqlDatabase<E> {
    fn engine_name(&self) -> &'static str {
        E::KIND.as_str()
    }

    async fn execute(&self, stmt: Statement, limits: &StatementLimits) -> Result<StatementResult> {
        refuse_transaction_control(&stmt.sql, E::FLAVOR)?;
        let pool = Arc::clone(&self.pool);
        let limits = limits.clone();
        within(limits.timeout, async move {
            let mut conn = pool.acquire(Instant::now() + limits.timeout).await?;
            conn.set_timeout(limits.timeout).await?;
            let prepared = conn.describe(&stmt).await?;
            let mut columns = E::Conn::columns(&prepared).to_vec();
            let mut sink = Collect::new(&limits, OnLimit::Fail);
            let outcome = if !columns.is_empty() {
                read_then_write(&mut conn, &prepared, &stmt, &mut sink).await?
            } else if E::DESCRIBES_RESULTS {
                conn.run(&prepared, &stmt, &mut sink).await?
            } else {
                write_in_transaction(&mut conn, &prepared, &stmt, &mut sink).await?
            };
            if let Some(late) = sink.late_columns.take() {
                columns = late;
            }
            Ok(StatementResult {
                rows_affected: outcome.rows_affected,
                last_insert_id: outcome.last_insert_id,
                columns,
                rows: sink.rows,
            })
        })
        .await
    }

    async fn query(&self, stmt: Statement, limits: StatementLimits) -> Result<RowStream> {
        refuse_transaction_control(&stmt.sql, E::FLAVOR)?;
        let (tx, rx) = mpsc::channel(limits.stream_buffer.max(1));
        let pool = Arc::clone(&self.pool);
        // The producer runs on its own so that the receiver is returned at once: the bounded
        // channel then paces the server at the client's speed.
        tokio::spawn(async move {
            let err_tx = tx.clone();
            let timeout = limits.timeout;
            let produced = tokio::select! {
                r = within(timeout, produce::<E>(pool, stmt, limits, tx)) => r,
                // Dropping the producer drops its connection mid-statement: cancelled, closed.
                () = err_tx.closed() => {
                    debug!("client went away; stopping the statement");
                    Ok(())
                }
            };
            if let Err(e) = produced {
                let _ = tokio::time::timeout(ERROR_SEND_TIMEOUT, err_tx.send(Err(e))).await;
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
        for (i, s) in stmts.iter().enumerate() {
            refuse_transaction_control(&s.sql, E::FLAVOR).map_err(|e| at_statement(e, i))?;
        }
        let pool = Arc::clone(&self.pool);
        let timeout = limits.timeout;
        within(timeout, async move {
            let mut conn = pool.acquire(Instant::now() + timeout).await?;
            conn.set_timeout(timeout).await?;
            if transactional {
                conn.control(Control::Begin).await?;
            }
            let mut results = Vec::with_capacity(stmts.len());
            for (i, s) in stmts.iter().enumerate() {
                match conn.run_discarding(s).await {
                    Ok(o) => results.push(StatementResult {
                        rows_affected: o.rows_affected,
                        last_insert_id: o.last_insert_id,
                        ..StatementResult::default()
                    }),
                    Err(e) => {
                        if transactional && conn.usable() {
                            let _ = conn.control(Control::Rollback).await;
                        }
                        return Err(e.at_statement(i));
                    }
                }
            }
            if transactional {
                conn.control(Control::Commit).await?;
            }
            Ok(results)
        })
        .await
    }

    async fn session(&self, limits: StatementLimits) -> Result<Box<dyn Session>> {
        Ok(Box::new(SqlSession::<E> {
            pool: Arc::clone(&self.pool),
            conn: None,
            limits,
        }))
    }

    async fn schema(&self, table: Option<&str>, limits: &StatementLimits) -> Result<Schema> {
        let pool = Arc::clone(&self.pool);
        let timeout = limits.timeout;
        let table = table.map(str::to_owned);
        within(timeout, async move {
            let mut conn = pool.acquire(Instant::now() + timeout).await?;
            conn.set_timeout(timeout).await?;
            let c = conn.begin_use()?;
            let r = E::schema(c, table.as_deref()).await;
            conn.end_use(&r);
            r
        })
        .await
    }

    async fn explain(
        &self,
        stmt: Statement,
        analyze: bool,
        limits: &StatementLimits,
    ) -> Result<Plan> {
        refuse_transaction_control(&stmt.sql, E::FLAVOR)?;
        if analyze {
            E::check_analyze(&stmt)?;
        }
        let pool = Arc::clone(&self.pool);
        let timeout = limits.timeout;
        within(timeout, async move {
            let mut conn = pool.acquire(Instant::now() + timeout).await?;
            conn.set_timeout(timeout).await?;
            // An analyzed statement really runs: whatever it writes is rolled back below, or by
            // the connection's drop (which rolls back an open transaction) on any failure.
            if analyze {
                conn.control(Control::Begin).await?;
            } else {
                conn.read_write().await?;
            }
            let c = conn.begin_use()?;
            let r = E::explain(c, &stmt, analyze).await;
            conn.end_use(&r);
            if analyze && conn.usable() {
                conn.control(Control::Rollback).await?;
            }
            r
        })
        .await
    }

    async fn dump(&self, schema_only: bool, limits: StatementLimits) -> Result<DumpStream> {
        let style = if schema_only {
            DumpStyle::SchemaOnly
        } else {
            DumpStyle::Full
        };
        Ok(spawn_dump::<E>(Arc::clone(&self.pool), style, limits))
    }

    async fn backup_dump(&self, limits: StatementLimits) -> Result<DumpStream> {
        Ok(spawn_dump::<E>(
            Arc::clone(&self.pool),
            DumpStyle::Backup,
            limits,
        ))
    }
}

/// Which dump [`dump_into`] writes.
#[derive(Debug, Clone, Copy)]
enum DumpStyle {
    Full,
    SchemaOnly,
    Backup,
}

/// Runs [`dump_into`] on its own task; the stream's bounded channel paces it.
fn spawn_dump<E: Inspect>(
    pool: Arc<DbPool<E>>,
    style: DumpStyle,
    limits: StatementLimits,
) -> DumpStream {
    let (tx, rx) = mpsc::channel(limits.stream_buffer.max(1));
    // As for `query`: the producer runs on its own and the bounded channel paces it.
    tokio::spawn(async move {
        let err_tx = tx.clone();
        let timeout = limits.timeout;
        let produced = tokio::select! {
            r = within(timeout, dump_into::<E>(pool, style, timeout, tx)) => r,
            () = err_tx.closed() => {
                debug!("client went away; stopping the dump");
                Ok(())
            }
        };
        if let Err(e) = produced
            && !err_tx.is_closed()
        {
            let _ = tokio::time::timeout(ERROR_SEND_TIMEOUT, err_tx.send(Err(e))).await;
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// Writes the dump of the database behind `pool` into `tx`, from one read-only transaction (a
/// consistent snapshot where the engine gives one), which is rolled back at the end.
async fn dump_into<E: Inspect>(
    pool: Arc<DbPool<E>>,
    style: DumpStyle,
    timeout: Duration,
    tx: mpsc::Sender<Result<crate::backend::DumpChunk>>,
) -> Result<()> {
    let mut conn = pool.acquire(Instant::now() + timeout).await?;
    conn.set_timeout(timeout).await?;
    conn.control(Control::BeginReadOnly).await?;
    let mut out = DumpWriter::new(tx);
    let c = conn.begin_use()?;
    let r = match style {
        DumpStyle::Full => E::dump(c, false, &mut out).await,
        DumpStyle::SchemaOnly => E::dump(c, true, &mut out).await,
        DumpStyle::Backup => E::backup_dump(c, &mut out).await,
    };
    // On failure the connection may hold an unread result: returning before `end_use` leaves it
    // marked busy, so its drop cancels the statement and closes it.
    r?;
    conn.end_use(&Ok::<(), Error>(()));
    out.flush().await?;
    conn.control(Control::Rollback).await
}

/// Streams `stmt` into `tx`: the header right after preparing, then batches, then the summary.
async fn produce<E: Engine>(
    pool: Arc<DbPool<E>>,
    stmt: Statement,
    limits: StatementLimits,
    tx: mpsc::Sender<Result<RowEvent>>,
) -> Result<()> {
    let started = std::time::Instant::now();
    let mut conn = pool.acquire(Instant::now() + limits.timeout).await?;
    conn.set_timeout(limits.timeout).await?;
    let prepared = conn.describe(&stmt).await?;
    let columns = E::Conn::columns(&prepared).to_vec();
    let returns_rows = !columns.is_empty();
    let mut sink = StreamSink::new(tx, &limits);
    if E::DESCRIBES_RESULTS {
        // The header goes out at once, before the statement has produced anything.
        if !sink.announce(columns).await {
            return Ok(());
        }
    } else {
        // The header waits for the first row, which brings the columns the engine really used.
        sink.defer_header(columns);
    }
    let outcome = if returns_rows {
        read_then_write(&mut conn, &prepared, &stmt, &mut sink).await?
    } else if E::DESCRIBES_RESULTS {
        conn.run(&prepared, &stmt, &mut sink).await?
    } else {
        sink.drain = true;
        write_in_transaction(&mut conn, &prepared, &stmt, &mut sink).await?
    };
    if sink.client_gone {
        debug!("client went away; the statement was stopped");
        return Ok(());
    }
    drop(conn);
    sink.finish(outcome.rows_affected, started.elapsed()).await;
    Ok(())
}

/// What [`Collect`] does when a result exceeds its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnLimit {
    /// Stop reading at once (the connection is abandoned, which also rolls back).
    Fail,
    /// Read the rest and drop it, then fail: the connection stays usable, so a session can
    /// roll back to its savepoint.
    Drain,
}

/// Collects a whole result for `execute` and session statements (the graph engine's too).
#[derive(Debug)]
pub(crate) struct Collect {
    max_rows: u64,
    max_bytes: u64,
    on_limit: OnLimit,
    rows: Vec<Row>,
    bytes: u64,
    seen: u64,
    exceeded: Option<String>,
    stopped: bool,
    late_columns: Option<Vec<Column>>,
}

impl Collect {
    pub(crate) fn new(limits: &StatementLimits, on_limit: OnLimit) -> Self {
        Self {
            max_rows: limits.max_rows,
            max_bytes: limits.max_bytes,
            on_limit,
            rows: Vec::new(),
            bytes: 0,
            seen: 0,
            exceeded: None,
            stopped: false,
            late_columns: None,
        }
    }

    fn exceed(&mut self, message: String) -> Result<bool> {
        self.rows = Vec::new();
        match self.on_limit {
            OnLimit::Fail => {
                self.stopped = true;
                Err(Error::LimitExceeded(message))
            }
            OnLimit::Drain => {
                self.exceeded = Some(message);
                Ok(true)
            }
        }
    }

    /// The limit error a draining collection ran into, if any.
    fn finish(&mut self) -> Result<()> {
        match self.exceeded.take() {
            Some(m) => Err(Error::LimitExceeded(m)),
            None => Ok(()),
        }
    }

    /// The rows collected, or the limit error a draining collection ran into.
    #[cfg(feature = "graph")]
    pub(crate) fn into_rows(mut self) -> Result<Vec<Row>> {
        self.finish()?;
        Ok(self.rows)
    }
}

#[async_trait]
impl RowSink for Collect {
    async fn columns(&mut self, columns: Vec<Column>) -> Result<()> {
        self.late_columns = Some(columns);
        Ok(())
    }

    fn row(&mut self, row: Row) -> Result<bool> {
        self.seen += 1;
        if self.exceeded.is_some() {
            return Ok(true);
        }
        if self.rows.len() as u64 >= self.max_rows {
            let max = self.max_rows;
            return self.exceed(format!(
                "the statement returned more than {max} rows; use Query to stream large results"
            ));
        }
        self.bytes += row.iter().map(|v| v.approx_size() as u64).sum::<u64>();
        if self.bytes > self.max_bytes {
            let max = self.max_bytes;
            return self.exceed(format!(
                "the result exceeds {max} bytes; use Query to stream large results"
            ));
        }
        self.rows.push(row);
        Ok(true)
    }

    fn stopped(&self) -> bool {
        self.stopped
    }
}

impl Retry for Collect {
    fn can_retry(&self) -> bool {
        true
    }

    fn reset_for_write(&mut self) {
        self.rows.clear();
        self.bytes = 0;
        self.seen = 0;
        self.late_columns = None;
    }

    fn rows_seen(&self) -> u64 {
        self.seen
    }
}

/// Sends a streamed result in batches capped by rows and bytes, and cuts it at the stream's
/// row and byte limits. Shared with the graph engine, whose producer runs on a blocking thread.
pub(crate) struct StreamSink {
    tx: mpsc::Sender<Result<RowEvent>>,
    /// A header not sent yet (see [`Engine::DESCRIBES_RESULTS`]).
    header: Option<Vec<Column>>,
    /// How many columns the header sent announced.
    announced: Option<usize>,
    max_rows: u64,
    max_bytes: u64,
    batch_rows: usize,
    batch_bytes: usize,
    batch: Batch,
    row_count: u64,
    seen: u64,
    total_bytes: u64,
    truncation: Truncation,
    /// The statement writes: rows past a limit are read and dropped so that it applies whole.
    drain: bool,
    flushed: bool,
    stopped: bool,
    client_gone: bool,
}

impl StreamSink {
    pub(crate) fn new(tx: mpsc::Sender<Result<RowEvent>>, limits: &StatementLimits) -> Self {
        Self {
            tx,
            header: None,
            announced: None,
            max_rows: limits.max_rows,
            max_bytes: limits.max_bytes,
            batch_rows: limits.batch_rows.max(1),
            batch_bytes: limits.batch_bytes.max(1),
            batch: Batch::new(limits.encoder.clone()),
            row_count: 0,
            seen: 0,
            total_bytes: 0,
            truncation: Truncation::None,
            drain: false,
            flushed: false,
            stopped: false,
            client_gone: false,
        }
    }

    /// Whether the client went away (a send failed) and the statement was stopped.
    #[cfg(feature = "graph")]
    pub(crate) fn client_gone(&self) -> bool {
        self.client_gone
    }

    /// Whether the receiving side is gone, before any send says so (a producer that computes
    /// many rows between sends checks it as it goes).
    #[cfg(feature = "graph")]
    pub(crate) fn receiver_gone(&self) -> bool {
        self.tx.is_closed()
    }

    /// Sends the header now; false when the client has gone.
    pub(crate) async fn announce(&mut self, columns: Vec<Column>) -> bool {
        self.announced = Some(columns.len());
        if self.tx.send(Ok(RowEvent::Columns(columns))).await.is_err() {
            self.client_gone = true;
            self.stopped = true;
            return false;
        }
        true
    }

    /// Keeps the header until the first row (or the end).
    fn defer_header(&mut self, columns: Vec<Column>) {
        self.header = Some(columns);
    }

    /// Sends a deferred header, if any; false when the client has gone.
    async fn send_header(&mut self) -> bool {
        match self.header.take() {
            Some(columns) => self.announce(columns).await,
            None => true,
        }
    }

    fn batch_full(&self) -> bool {
        self.batch.reached(self.batch_rows, self.batch_bytes)
    }

    /// Sends the current batch; false when the client has gone.
    async fn flush(&mut self) -> bool {
        let Some(batch) = self.batch.take() else {
            return true;
        };
        self.flushed = true;
        if self.tx.send(Ok(batch)).await.is_err() {
            self.client_gone = true;
            self.stopped = true;
            return false;
        }
        true
    }

    fn past_limit(&mut self, truncation: Truncation) -> bool {
        if self.truncation == Truncation::None {
            self.truncation = truncation;
        }
        if self.drain {
            return true;
        }
        self.stopped = true;
        false
    }

    /// Sends the last batch and the summary.
    pub(crate) async fn finish(mut self, rows_affected: u64, elapsed: Duration) {
        if !self.send_header().await || !self.flush().await {
            return;
        }
        let summary = Summary {
            row_count: self.row_count,
            rows_affected,
            elapsed,
            truncation: self.truncation,
        };
        let _ = self.tx.send(Ok(RowEvent::Done(summary))).await;
    }
}

#[async_trait]
impl RowSink for StreamSink {
    async fn columns(&mut self, columns: Vec<Column>) -> Result<()> {
        if self.header.is_some() {
            self.header = Some(columns);
            return Ok(());
        }
        if self.announced == Some(columns.len()) {
            // Same shape; only the kinds the header guessed were off.
            return Ok(());
        }
        Err(Error::invalid(
            "sql",
            "the statement returned rows its description did not announce (a procedure's \
             result set); run it with Execute",
        ))
    }

    fn row(&mut self, row: Row) -> Result<bool> {
        self.seen += 1;
        if self.truncation != Truncation::None {
            return Ok(self.past_limit(self.truncation));
        }
        if self.row_count >= self.max_rows {
            return Ok(self.past_limit(Truncation::RowLimit));
        }
        let size = row.iter().map(Value::approx_size).sum::<usize>() + 2;
        if self.total_bytes + size as u64 > self.max_bytes {
            return Ok(self.past_limit(Truncation::ByteLimit));
        }
        self.row_count += 1;
        self.total_bytes += size as u64;
        self.batch.push(row, size);
        Ok(true)
    }

    /// A deferred header goes out at the first row; rows go out in full batches.
    fn pending(&self) -> bool {
        self.header.is_some() || self.batch_full()
    }

    async fn send(&mut self) -> Result<bool> {
        if !self.send_header().await {
            return Ok(false);
        }
        if self.batch_full() {
            return Ok(self.flush().await);
        }
        Ok(true)
    }

    fn stopped(&self) -> bool {
        self.stopped
    }
}

impl Retry for StreamSink {
    fn can_retry(&self) -> bool {
        !self.flushed
    }

    fn reset_for_write(&mut self) {
        self.batch.clear();
        self.row_count = 0;
        self.seen = 0;
        self.total_bytes = 0;
        self.truncation = Truncation::None;
        self.drain = true;
    }

    fn rows_seen(&self) -> u64 {
        self.seen
    }
}

/// An interactive transaction on a connection pinned from `begin` to `commit`/`rollback`;
/// between transactions the session holds no connection.
struct SqlSession<E: Engine> {
    pool: Arc<DbPool<E>>,
    conn: Option<Pooled<E>>,
    limits: StatementLimits,
}

impl<E: Engine> fmt::Debug for SqlSession<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlSession")
            .field("pool", &self.pool)
            .field("conn", &self.conn)
            .finish()
    }
}

impl<E: Engine> SqlSession<E> {
    fn no_transaction() -> Error {
        Error::FailedPrecondition("no transaction is open: send begin first".into())
    }

    /// Ends the transaction with `op` and gives the connection back (or closes it, when the
    /// control failed or ran out of time).
    async fn finish(&mut self, op: Control) -> Result<()> {
        let mut conn = self.conn.take().ok_or_else(Self::no_transaction)?;
        within(self.limits.timeout, conn.control(op)).await
    }
}

/// Runs one session statement under a savepoint when the engine needs one.
async fn session_statement<E: Engine>(
    conn: &mut Pooled<E>,
    stmt: &Statement,
    limits: &StatementLimits,
) -> Result<StatementResult> {
    let mut savepoint = false;
    if E::SAVEPOINT_EVERY_STATEMENT {
        conn.control(Control::Savepoint).await?;
        savepoint = true;
    }
    let result = statement_in_session(conn, stmt, limits, &mut savepoint).await;
    match &result {
        Ok(_) if savepoint => conn.control(Control::ReleaseSavepoint).await?,
        Err(e) if savepoint && conn.usable() && !ends_transaction(e) => {
            conn.control(Control::RollbackToSavepoint).await?;
        }
        _ => {}
    }
    result
}

async fn statement_in_session<E: Engine>(
    conn: &mut Pooled<E>,
    stmt: &Statement,
    limits: &StatementLimits,
    savepoint: &mut bool,
) -> Result<StatementResult> {
    let prepared = conn.describe(stmt).await?;
    let mut columns = E::Conn::columns(&prepared).to_vec();
    if !*savepoint && !columns.is_empty() {
        conn.control(Control::Savepoint).await?;
        *savepoint = true;
    }
    let mut sink = Collect::new(limits, OnLimit::Drain);
    let outcome = conn.run(&prepared, stmt, &mut sink).await?;
    sink.finish()?;
    if let Some(late) = sink.late_columns.take() {
        columns = late;
    }
    Ok(StatementResult {
        rows_affected: outcome.rows_affected,
        last_insert_id: outcome.last_insert_id,
        columns,
        rows: sink.rows,
    })
}

#[async_trait]
impl<E: Inspect> Session for SqlSession<E> {
    async fn begin(&mut self) -> Result<()> {
        if self.conn.is_some() {
            return Err(Error::FailedPrecondition(
                "a transaction is already open in this session".into(),
            ));
        }
        let pool = Arc::clone(&self.pool);
        let timeout = self.limits.timeout;
        let conn = within(timeout, async move {
            let mut conn = pool.acquire(Instant::now() + timeout).await?;
            conn.set_timeout(timeout).await?;
            conn.control(Control::Begin).await?;
            Ok(conn)
        })
        .await?;
        self.conn = Some(conn);
        Ok(())
    }

    async fn execute(&mut self, stmt: Statement) -> Result<StatementResult> {
        refuse_transaction_control(&stmt.sql, E::FLAVOR)?;
        let limits = self.limits.clone();
        let conn = self.conn.as_mut().ok_or_else(Self::no_transaction)?;
        let result = within(limits.timeout, session_statement(conn, &stmt, &limits)).await;
        self.settle(result).await
    }

    async fn explain(&mut self, stmt: Statement) -> Result<Plan> {
        refuse_transaction_control(&stmt.sql, E::FLAVOR)?;
        let timeout = self.limits.timeout;
        let conn = self.conn.as_mut().ok_or_else(Self::no_transaction)?;
        let result = within(timeout, async {
            // A failed EXPLAIN aborts a PostgreSQL transaction; the savepoint keeps the rest.
            conn.control(Control::Savepoint).await?;
            let c = conn.begin_use()?;
            let r = E::explain(c, &stmt, false).await;
            conn.end_use(&r);
            match &r {
                Ok(_) => conn.control(Control::ReleaseSavepoint).await?,
                Err(e) if conn.usable() && !ends_transaction(e) => {
                    conn.control(Control::RollbackToSavepoint).await?;
                }
                Err(_) => {}
            }
            r
        })
        .await;
        self.settle(result).await
    }

    async fn commit(&mut self) -> Result<()> {
        self.finish(Control::Commit).await
    }

    async fn rollback(&mut self) -> Result<()> {
        self.finish(Control::Rollback).await
    }

    fn in_transaction(&self) -> bool {
        self.conn.is_some()
    }

    async fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[String],
        rows: &[&[Value]],
    ) -> Result<Option<u64>> {
        self.copy(table, columns, CopySource::Values(rows)).await
    }

    async fn copy_text(
        &mut self,
        table: &str,
        columns: &[String],
        lines: &[u8],
    ) -> Result<Option<u64>> {
        self.copy(table, columns, CopySource::Text(lines)).await
    }
}

impl<E: Engine> SqlSession<E> {
    /// A bulk load inside the transaction, in a savepoint of its own.
    async fn copy(
        &mut self,
        table: &str,
        columns: &[String],
        rows: CopySource<'_>,
    ) -> Result<Option<u64>> {
        if !<E::Conn as SqlConn>::COPY_IN {
            return Ok(None);
        }
        let timeout = self.limits.timeout;
        let conn = self.conn.as_mut().ok_or_else(Self::no_transaction)?;
        let result = within(timeout, async {
            // A failed COPY aborts a PostgreSQL transaction; the savepoint keeps the rest.
            conn.control(Control::Savepoint).await?;
            let r = conn.copy_in(table, columns, rows).await;
            match &r {
                Ok(_) => conn.control(Control::ReleaseSavepoint).await?,
                Err(e) if conn.usable() && !ends_transaction(e) => {
                    conn.control(Control::RollbackToSavepoint).await?;
                }
                Err(_) => {}
            }
            r
        })
        .await;
        self.settle(result).await
    }

    /// After a call inside the transaction: a connection that was interrupted or broke is
    /// dropped (which cancels what runs and rolls back), and one whose transaction the engine
    /// ended is rolled back and given back, so the session says no transaction is open.
    async fn settle<T>(&mut self, result: Result<T>) -> Result<T> {
        if let (Err(e), Some(conn)) = (&result, self.conn.as_mut()) {
            if conn.interrupted() || !conn.usable() {
                self.conn = None;
            } else if ends_transaction(e) {
                let _ = within(self.limits.timeout, conn.control(Control::Rollback)).await;
                self.conn = None;
            }
        }
        result
    }
}
