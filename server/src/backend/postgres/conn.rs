//! PostgreSQL connections: preparing, binding and running client statements, gateway
//! transaction control, and error classification.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use futures::TryStreamExt;
use sqlx::{
    Arguments, AssertSqlSafe, Column as _, Connection, Either, Executor, Row as _, SqlSafeStr,
    Statement as _, TypeInfo, ValueRef,
    postgres::{PgArguments, PgConnectOptions, PgConnection, PgDatabaseError, PgRow, PgTypeInfo},
};

use super::{
    codec::{Decoder, Param},
    copy,
};
use crate::{
    backend::{
        BackendKind,
        sql::{
            self, Control, CopySource, Engine, Flavor, Outcome, Relogin, RowSink, SAVEPOINT,
            SqlConn,
            exec::query_error,
            text::{first_word, highest_placeholder},
        },
    },
    core::{
        error::{Error, QueryErrorKind, Result},
        value::{Column, Row, Statement, Value},
    },
};

/// Prepared statements sqlx keeps per connection: more than [`CACHE_CLEAR_AT`], so it never
/// evicts one on its own (see [`PgConn::describe`]).
pub const STATEMENT_CACHE: usize = 64;
/// Prepared statements per connection that trigger closing them all, in one round trip, before
/// the next prepare.
const CACHE_CLEAR_AT: usize = 48;

/// Where a pool connects: a role's login, and the schema epoch of its database.
#[derive(Debug, Clone)]
pub struct PgTarget {
    /// Connection settings.
    pub options: PgConnectOptions,
    /// Bumped by every statement that may change the schema, on any connection of the
    /// database (its owner's and its reader's pools share it): statements prepared before are
    /// not reused after.
    pub epoch: Arc<AtomicU64>,
    /// The login is a read grant's, whose connections start and stay read-only
    /// (`default_transaction_read_only` in `options`).
    pub reader: bool,
    /// Resets the login's credentials when the server refuses them (none for the admin).
    pub relogin: Option<Relogin>,
}

impl PgTarget {
    /// A target with an epoch of its own (the admin connections).
    pub fn new(options: PgConnectOptions) -> Self {
        Self {
            options,
            epoch: Arc::default(),
            reader: false,
            relogin: None,
        }
    }
}

/// Whether the server refused the login itself (a wrong password, a missing role).
fn login_refused(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|c| c == "28P01" || c == "28000")
}

/// Whether a statement may change what other statements mean (so prepared statements must not
/// be reused past it): anything but the statements known to leave tables, types, functions and
/// name resolution alone. A wrong "yes" costs a prepare.
fn may_change_schema(sql: &str) -> bool {
    !matches!(
        first_word(sql, Flavor::Postgres).as_deref(),
        Some(
            "SELECT"
                | "INSERT"
                | "UPDATE"
                | "DELETE"
                | "MERGE"
                | "WITH"
                | "VALUES"
                | "TABLE"
                | "SHOW"
        )
    )
}

/// A client statement prepared on one connection: the same text with the same parameter types
/// under the same schema epoch is the same prepared statement.
type StatementKey = (u64, String, Vec<u32>);

/// The PostgreSQL engine for the shared data plane.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgEngine;

/// One PostgreSQL connection.
pub struct PgConn {
    conn: PgConnection,
    pid: i32,
    timeout: Option<Duration>,
    counter: u64,
    /// The number in the text of each statement prepared here (see [`PgConn::describe`]).
    statements: HashMap<StatementKey, u64>,
    epoch: Arc<AtomicU64>,
    broken: bool,
    /// The session's `default_transaction_read_only`, as last set by the gateway.
    read_only: bool,
    /// A read grant's login: never made read-write, and every call runs in a guard transaction
    /// that is rolled back (see [`READER_GUARD`]).
    reader: bool,
    /// A transaction opened through [`SqlConn::control`] is open.
    in_tx: bool,
}

/// How a read grant's login starts every call: a read-only transaction that has already taken
/// its snapshot. PostgreSQL lets any role change its own password and settings (`ALTER ROLE
/// CURRENT_USER …`) and lets a session make itself read-write (`set_config`,
/// `SET transaction_read_only`); inside this transaction the first is refused as a write
/// (25006), and the second is refused once a snapshot exists ("must be set before any query").
/// The gateway ends it with `ROLLBACK`, never `COMMIT`, so whatever session state a statement
/// changed inside (`set_config(…, false)`, `SET`, `RESET ALL`) is undone with it and the pooled
/// connection goes to the next read key as it came.
///
/// It is `REPEATABLE READ`: one statement sees the same either way, and a read-only session or
/// a dump sees one snapshot throughout (nothing can set the level once the snapshot exists).
const READER_GUARD: &str = "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1";

/// A prepared client statement.
#[derive(Debug)]
pub struct PgPrepared {
    /// The text sent, with its unique prefix.
    sql: String,
    columns: Vec<Column>,
    decoders: Vec<Decoder>,
}

/// Turns a sqlx error into the shared error type, keeping the SQLSTATE.
pub fn classify(err: sqlx::Error) -> Error {
    sql::classify(err, "postgres", |db| {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        let mut message = db.message().to_owned();
        if let Some(detail) = db
            .try_downcast_ref::<PgDatabaseError>()
            .and_then(|e| e.detail())
        {
            message = format!("{message} ({detail})");
        }
        by_sqlstate(&code, message)
    })
}

/// The shared error for a SQLSTATE.
fn by_sqlstate(code: &str, message: String) -> Error {
    use QueryErrorKind as K;
    let q = |kind| query_error(kind, code, message.clone());
    match code {
        "23505" => q(K::UniqueViolation),
        "23503" | "23001" => q(K::ForeignKey),
        "23502" => q(K::NotNull),
        "23514" | "23P01" => q(K::Check),
        "40001" => q(K::SerializationFailure),
        "40P01" => q(K::Deadlock),
        "42501" => q(K::Forbidden),
        // A write in a read-only transaction: what a read grant's role meets.
        "25006" => q(K::Forbidden),
        // query_canceled: statement_timeout, or the gateway cancelling a dropped call.
        "57014" => Error::Timeout(format!("{message}: the statement ran past its deadline")),
        "55P03" => Error::Timeout(message),
        // A Bind that does not match the statement's placeholders.
        "08P01" => Error::invalid("params", message),
        "57P01" | "57P02" | "57P03" | "53300" | "3D000" => Error::Unavailable(message),
        c if c.starts_with("08") => Error::Unavailable(message),
        c if c.starts_with("28") => q(K::Forbidden),
        c if c.starts_with("53") || c.starts_with("54") => Error::LimitExceeded(message),
        c if c.starts_with("42") => q(K::Syntax),
        c if c.starts_with("22") => q(K::DataType),
        _ => q(K::Other),
    }
}

/// Errors while logging in are the gateway's trouble, not the client's.
fn classify_connect(err: sqlx::Error) -> Error {
    match classify(err) {
        Error::Query {
            kind: QueryErrorKind::Forbidden,
            message,
            ..
        } => Error::Unavailable(format!("the database's login was refused: {message}")),
        other => other,
    }
}

/// Whether a sqlx error leaves the connection in an unknown state.
fn breaks_connection(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        sqlx::Error::Encode(_)
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::TypeNotFound { .. } => false,
        _ => true,
    }
}

impl PgConn {
    /// Runs `COPY … TO STDOUT` and streams its data, one row per piece. An error ends the
    /// stream; the caller then drops the connection mid-copy, which closes it.
    pub(super) async fn copy_out(
        &mut self,
        sql: &str,
    ) -> Result<futures::stream::BoxStream<'_, Result<bytes::Bytes>>> {
        use futures::StreamExt;
        // Errors are classified without `fail`: the stream borrows the connection, and the
        // caller drops a connection whose dump failed anyway.
        let stream = self.conn.copy_out_raw(sql).await.map_err(classify)?;
        Ok(stream.map(|r| r.map_err(classify)).boxed())
    }

    /// Classifies an error and remembers whether it broke the connection.
    pub(super) fn fail(&mut self, err: sqlx::Error) -> Error {
        if breaks_connection(&err) {
            self.broken = true;
        }
        let err = classify(err);
        if let Error::Query { code: Some(c), .. } = &err
            && c == "0A000"
        {
            // "cached plan must not change result type": the schema changed in a way the
            // epoch did not see (DDL inside a function, or another connection's DDL committed
            // while this statement was prepared). Prepare afresh from now on.
            self.bump_epoch();
        }
        err
    }

    fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// The connection, for administrative statements.
    pub(super) fn raw(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Runs an administrative statement given as text (names quoted, no values).
    pub(super) async fn admin_exec(&mut self, sql: String) -> Result<()> {
        match sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut self.conn)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn arguments(params: &[Value]) -> Result<PgArguments> {
        let mut args = PgArguments::default();
        for p in params {
            args.add(Param::new(p)?)
                .map_err(|e| Error::invalid("params", e))?;
        }
        Ok(args)
    }
}

fn decode_row(row: &PgRow, decoders: &[Decoder]) -> Result<Row> {
    let mut values = Vec::with_capacity(decoders.len());
    for (i, d) in decoders.iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(classify)?;
        if raw.is_null() {
            values.push(Value::Null);
            continue;
        }
        let bytes = raw.as_bytes().map_err(Error::internal)?;
        values.push(d.decode(bytes)?);
    }
    Ok(values)
}

#[async_trait]
impl SqlConn for PgConn {
    type Prepared = PgPrepared;
    const COPY_IN: bool = true;

    fn server_id(&self) -> u64 {
        u64::try_from(self.pid).unwrap_or_default()
    }

    fn is_broken(&self) -> bool {
        self.broken
    }

    async fn ping(&mut self) -> Result<()> {
        match self.conn.ping().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn close(self) {
        let _ = self.conn.close().await;
    }

    async fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        if self.timeout == Some(timeout) {
            return Ok(());
        }
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
        self.admin_exec(format!("SET statement_timeout = {ms}"))
            .await?;
        self.timeout = Some(timeout);
        Ok(())
    }

    async fn set_read_only(&mut self, on: bool) -> Result<()> {
        if self.read_only == on || self.reader {
            return Ok(());
        }
        let value = if on { "on" } else { "off" };
        self.admin_exec(format!("SET default_transaction_read_only = {value}"))
            .await?;
        self.read_only = on;
        Ok(())
    }

    async fn control(&mut self, op: Control) -> Result<()> {
        let sql = match op {
            // A read grant's transactions are the guard (see READER_GUARD): read-only with a
            // snapshot, and rolled back at the end even when the caller commits.
            Control::Begin | Control::BeginReadOnly if self.reader => READER_GUARD.to_owned(),
            Control::Commit | Control::Rollback if self.reader => {
                // Settings changed inside were undone with the transaction, ours too.
                self.timeout = None;
                "ROLLBACK".to_owned()
            }
            Control::Begin => "BEGIN READ WRITE".to_owned(),
            // One snapshot for everything the transaction reads (a dump's catalog and tables).
            Control::BeginReadOnly => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY".to_owned(),
            Control::Commit => "COMMIT".to_owned(),
            Control::Rollback => "ROLLBACK".to_owned(),
            Control::Savepoint => format!("SAVEPOINT {SAVEPOINT}"),
            Control::RollbackToSavepoint => format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"),
            Control::ReleaseSavepoint => format!("RELEASE SAVEPOINT {SAVEPOINT}"),
        };
        self.admin_exec(sql).await?;
        match op {
            Control::Begin | Control::BeginReadOnly => self.in_tx = true,
            Control::Commit | Control::Rollback => self.in_tx = false,
            _ => {}
        }
        Ok(())
    }

    async fn describe(&mut self, stmt: &Statement) -> Result<PgPrepared> {
        let (sql, types) = self.statement_text(stmt).await?;
        let prepared = match (&mut self.conn)
            .prepare_with(AssertSqlSafe(sql.clone()).into_sql_str(), &types)
            .await
        {
            Ok(p) => p,
            Err(e) => return Err(self.fail(e)),
        };
        let described = match prepared.parameters() {
            Some(Either::Left(types)) => types.len(),
            Some(Either::Right(n)) => n,
            None => stmt.params.len(),
        };
        // The server also counts parameters that were given a type but that the text never
        // uses; those are found in the text.
        let given = stmt.params.len();
        let expected = if described > given {
            described
        } else {
            highest_placeholder(&stmt.sql).min(given)
        };
        if expected != given {
            return Err(Error::invalid(
                "params",
                format!(
                    "the statement has {expected} placeholder(s) but {} parameter(s) were given",
                    stmt.params.len()
                ),
            ));
        }
        let mut columns = Vec::with_capacity(prepared.columns().len());
        let mut decoders = Vec::with_capacity(prepared.columns().len());
        for c in prepared.columns() {
            let ty = c.type_info();
            let (decoder, kind) = Decoder::for_type(ty).ok_or_else(|| {
                Error::invalid(
                    "sql",
                    format!(
                        "column {:?} has type {}, which DB-Forge cannot return; cast it, e.g. \
                         {}::text",
                        c.name(),
                        ty.name(),
                        c.name()
                    ),
                )
            })?;
            columns.push(Column {
                name: c.name().to_owned(),
                declared_type: ty.name().to_owned(),
                kind,
            });
            decoders.push(decoder);
        }
        Ok(PgPrepared {
            sql,
            columns,
            decoders,
        })
    }

    fn columns(prepared: &PgPrepared) -> &[Column] {
        &prepared.columns
    }

    async fn run(
        &mut self,
        prepared: &PgPrepared,
        stmt: &Statement,
        sink: &mut dyn RowSink,
    ) -> Result<Outcome> {
        let guarded = self.guard().await?;
        let r = self.run_statement(prepared, stmt, sink).await;
        // A sink that stopped early leaves results unread: the pool abandons the connection.
        if guarded && !sink.stopped() {
            self.unguard().await?;
        }
        r
    }

    async fn run_discarding(&mut self, stmt: &Statement) -> Result<Outcome> {
        let guarded = self.guard().await?;
        let r = self.run_discarding_statement(stmt).await;
        if guarded {
            self.unguard().await?;
        }
        r
    }

    async fn copy_in(
        &mut self,
        table: &str,
        columns: &[String],
        rows: CopySource<'_>,
    ) -> Result<Option<u64>> {
        let encoded;
        let data = match rows {
            CopySource::Values(rows) => match copy::encode(rows) {
                Some(d) => {
                    encoded = d;
                    &encoded[..]
                }
                None => return Ok(None),
            },
            CopySource::Text(text) => text,
        };
        let guarded = self.guard().await?;
        let r = match copy::run(&mut self.conn, &copy::statement(table, columns), data).await {
            Ok(n) => Ok(Some(n)),
            Err(e) => Err(self.fail(e)),
        };
        if guarded {
            self.unguard().await?;
        }
        r
    }
}

impl PgConn {
    /// Opens the guard transaction of a read grant's call outside a transaction of the
    /// gateway's; `true` when it did (see [`READER_GUARD`]).
    async fn guard(&mut self) -> Result<bool> {
        if !self.reader || self.in_tx {
            return Ok(false);
        }
        self.admin_exec(READER_GUARD.to_owned()).await?;
        Ok(true)
    }

    /// Rolls the guard transaction back; a connection that cannot is closed, not reused.
    async fn unguard(&mut self) -> Result<()> {
        if self.broken {
            return Ok(());
        }
        let r = self.admin_exec("ROLLBACK".to_owned()).await;
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    async fn run_statement(
        &mut self,
        prepared: &PgPrepared,
        stmt: &Statement,
        sink: &mut dyn RowSink,
    ) -> Result<Outcome> {
        let args = Self::arguments(&stmt.params)?;
        if may_change_schema(&stmt.sql) {
            // After the statement too: a prepare that raced with it must not be reused.
            self.bump_epoch();
        }
        let mut rows_affected = 0;
        let mut failed = None;
        let mut decode_error = None;
        {
            let query = sqlx::query_with(AssertSqlSafe(prepared.sql.clone()), args);
            let mut results = (&mut self.conn).fetch_many(query);
            loop {
                match results.try_next().await {
                    Ok(Some(Either::Left(done))) => rows_affected += done.rows_affected(),
                    Ok(Some(Either::Right(row))) => {
                        let values = match decode_row(&row, &prepared.decoders) {
                            Ok(v) => v,
                            Err(e) => {
                                decode_error = Some(e);
                                break;
                            }
                        };
                        if !sql::feed(sink, values).await? {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        if may_change_schema(&stmt.sql) {
            self.bump_epoch();
        }
        if let Some(e) = decode_error {
            // The rest of the result is unread.
            self.broken = true;
            return Err(e);
        }
        if let Some(e) = failed {
            return Err(self.fail(e));
        }
        Ok(Outcome {
            rows_affected,
            last_insert_id: None,
        })
    }

    /// The text under which `stmt` is prepared on this connection, and its parameter types:
    /// the same statement bound the same way under the same schema epoch gets the same text.
    async fn statement_text(&mut self, stmt: &Statement) -> Result<(String, Vec<PgTypeInfo>)> {
        let params = stmt
            .params
            .iter()
            .map(Param::new)
            .collect::<Result<Vec<_>>>()?;
        let types: Vec<_> = params.iter().map(Param::type_info).collect();
        let key: StatementKey = (
            self.epoch.load(Ordering::Relaxed),
            stmt.sql.clone(),
            params.iter().map(Param::oid).collect(),
        );
        // sqlx caches prepared statements by their text alone, so the text carries a number per
        // (epoch, text, parameter types): the same statement bound the same way is prepared
        // once per connection and then runs in one round trip, while other parameter types or
        // a schema change since ("cached plan must not change result type") get a statement of
        // their own.
        let id = match self.statements.get(&key) {
            Some(id) => *id,
            None => {
                if self.statements.len() >= CACHE_CLEAR_AT {
                    self.statements.clear();
                    if let Err(e) = self.conn.clear_cached_statements().await {
                        return Err(self.fail(e));
                    }
                }
                self.counter += 1;
                self.statements.insert(key, self.counter);
                self.counter
            }
        };
        Ok((format!("/* dbforge {id} */ {}", stmt.sql), types))
    }

    async fn run_discarding_statement(&mut self, stmt: &Statement) -> Result<Outcome> {
        let args = Self::arguments(&stmt.params)?;
        let result = if may_change_schema(&stmt.sql) {
            // Unnamed and unprepared beforehand: nothing is cached, so nothing can go stale.
            let query = sqlx::query_with(AssertSqlSafe(stmt.sql.clone()), args).persistent(false);
            (&mut self.conn).execute(query).await
        } else {
            // Prepared once per connection (see `statement_text`), so a batch that repeats a
            // statement runs each repetition in one round trip instead of parse-and-run.
            let (sql, _) = self.statement_text(stmt).await?;
            (&mut self.conn)
                .execute(sqlx::query_with(AssertSqlSafe(sql), args))
                .await
        };
        if may_change_schema(&stmt.sql) {
            self.bump_epoch();
        }
        match result {
            Ok(done) => Ok(Outcome {
                rows_affected: done.rows_affected(),
                last_insert_id: None,
            }),
            Err(e) => Err(self.fail(e)),
        }
    }
}

#[async_trait]
impl Engine for PgEngine {
    type Conn = PgConn;
    type Target = PgTarget;
    const KIND: BackendKind = BackendKind::Postgres;
    const FLAVOR: Flavor = Flavor::Postgres;
    const SAVEPOINT_EVERY_STATEMENT: bool = true;
    const DESCRIBES_RESULTS: bool = true;

    async fn connect(&self, target: &PgTarget) -> Result<PgConn> {
        let mut conn = Relogin::connect(
            target.relogin.as_ref(),
            target.options.get_username(),
            login_refused,
            classify_connect,
            || PgConnection::connect_with(&target.options),
        )
        .await?;
        let row = sqlx::query("SELECT pg_backend_pid()")
            .persistent(false)
            .fetch_one(&mut conn)
            .await
            .map_err(classify)?;
        let pid: i32 = row.try_get(0).map_err(classify)?;
        Ok(PgConn {
            conn,
            pid,
            timeout: None,
            counter: 0,
            statements: HashMap::new(),
            epoch: Arc::clone(&target.epoch),
            broken: false,
            read_only: target.reader,
            reader: target.reader,
            in_tx: false,
        })
    }

    async fn cancel(admin: &mut PgConn, server_id: u64) -> Result<()> {
        let pid = i32::try_from(server_id).map_err(Error::internal)?;
        let r = sqlx::query("SELECT pg_cancel_backend($1)")
            .bind(pid)
            .persistent(false)
            .execute(admin.raw())
            .await;
        r.map(|_| ()).map_err(|e| admin.fail(e))
    }

    fn is_read_only_violation(err: &Error) -> bool {
        matches!(err, Error::Query { code: Some(c), .. } if c == "25006")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_that_leave_the_schema_alone() {
        for sql in [
            "SELECT 1",
            "  -- note\n select * from t",
            "/* hint */ WITH x AS (SELECT 1) SELECT * FROM x",
            "(SELECT 1) UNION (SELECT 2)",
            "INSERT INTO t VALUES (1)",
            "update t set a = 1",
            "DELETE FROM t",
            "MERGE INTO t USING s ON true WHEN MATCHED THEN DO NOTHING",
            "VALUES (1)",
            "TABLE t",
            "SHOW search_path",
        ] {
            assert!(!may_change_schema(sql), "{sql}");
        }
        for sql in [
            "CREATE TABLE t (a int)",
            "ALTER TABLE t ADD b int",
            "DROP TABLE t",
            "SET search_path = other",
            "DEALLOCATE ALL",
            "DISCARD ALL",
            "DO $$ BEGIN END $$",
            "CALL p()",
            "/* unterminated",
            "",
        ] {
            assert!(may_change_schema(sql), "{sql}");
        }
    }

    #[test]
    fn sqlstates_map_to_error_kinds() {
        use QueryErrorKind as K;
        let kind = |code: &str| match by_sqlstate(code, "m".into()) {
            Error::Query { kind, code: c, .. } => {
                assert_eq!(c.as_deref(), Some(code), "the native code is kept");
                Some(kind)
            }
            _ => None,
        };
        for (code, want) in [
            ("23505", K::UniqueViolation),
            ("23503", K::ForeignKey),
            ("23502", K::NotNull),
            ("23514", K::Check),
            ("40001", K::SerializationFailure),
            ("40P01", K::Deadlock),
            ("42501", K::Forbidden),
            ("25006", K::Forbidden),
            ("42601", K::Syntax),
            ("42P01", K::Syntax),
            ("22003", K::DataType),
            ("XX000", K::Other),
        ] {
            assert_eq!(kind(code), Some(want), "{code}");
        }
        assert!(matches!(
            by_sqlstate("57014", "m".into()),
            Error::Timeout(_)
        ));
        assert!(matches!(
            by_sqlstate("08006", "m".into()),
            Error::Unavailable(_)
        ));
        assert!(matches!(
            by_sqlstate("57P01", "m".into()),
            Error::Unavailable(_)
        ));
        assert!(matches!(
            by_sqlstate("08P01", "m".into()),
            Error::InvalidArgument {
                field: "params",
                ..
            }
        ));
    }
}
