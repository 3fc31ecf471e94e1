//! One configured SQLite connection: the sandbox (authorizer, limits, defensive mode), the
//! statement deadline, value conversion and error classification.

use std::{
    cell::RefCell,
    collections::{HashMap, hash_map::RandomState},
    hash::BuildHasher,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rusqlite::{
    OpenFlags,
    config::DbConfig,
    ffi,
    hooks::{AuthAction, AuthContext, Authorization},
    limits::Limit,
    types::{ToSqlOutput, ValueRef},
};
use time::OffsetDateTime;

use crate::core::{
    error::{Error, QueryErrorKind, Result},
    value::{Column, Row, Statement, StatementResult, Value, ValueKind, text},
};

/// PRAGMAs that only inspect, whatever their argument (a table or index name, a row limit).
const INSPECTING_PRAGMAS: &[&str] = &[
    "collation_list",
    "data_version",
    "foreign_key_check",
    "foreign_key_list",
    "freelist_count",
    "function_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "module_list",
    "page_count",
    "pragma_list",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
];
/// PRAGMAs that may be read but not set: setting them would weaken durability for everyone on
/// a pooled connection, change the file format, or corrupt the schema.
const READ_ONLY_PRAGMAS: &[&str] = &[
    "application_id",
    "encoding",
    "foreign_keys",
    "journal_mode",
    "page_size",
    "schema_version",
    "user_version",
];
/// PRAGMAs that may be set: header fields reserved for applications, and `defer_foreign_keys`,
/// which only moves the current transaction's foreign-key checks to its COMMIT (SQLite clears
/// it when the transaction ends; dumps with cyclic references need it to replay). Everything
/// not listed (`writable_schema`, `temp_store_directory`, `mmap_size`, `database_list`, …) is
/// refused.
const WRITABLE_PRAGMAS: &[&str] = &["user_version", "application_id", "defer_foreign_keys"];

/// Caps the database file at `max_bytes` on `conn`: the cap is a page count, and past it SQLite
/// answers SQLITE_FULL and rolls the statement back. A count below the file's current size
/// leaves it at that size (SQLite never truncates for it), so a database over a lowered quota
/// can no longer grow. Clients cannot change it: `max_page_count` is on none of the lists the
/// authorizer lets through.
fn cap_size(conn: &rusqlite::Connection, max_bytes: u64) -> Result<()> {
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(classify)?;
    let page_size = u64::try_from(page_size).unwrap_or(4096);
    conn.execute_batch(&format!(
        "PRAGMA max_page_count = {};",
        (max_bytes / page_size.max(512)).max(1)
    ))
    .map_err(classify)
}

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct ConnOptions {
    /// Open read-only (pool readers).
    pub read_only: bool,
    /// Largest string or blob a statement may build, in bytes.
    pub max_value_bytes: i32,
    /// Largest size of the database file, in bytes (via max_page_count).
    pub max_size_bytes: u64,
    /// Page cache per connection, in KiB.
    pub cache_kib: i64,
    /// How long to wait on a lock held by another process (a checkpoint, a backup).
    pub busy_timeout: Duration,
}

/// State shared between a connection and its authorizer and progress callbacks.
#[derive(Default)]
struct Guard {
    /// Set while the gateway itself changes the connection's settings (its size cap, which
    /// the authorizer refuses to every client statement); never while a client's runs.
    gateway: AtomicBool,
    /// Set while a client's statement is being prepared. Actions authorized outside of it come
    /// from inside a running statement (VACUUM attaches its scratch copy that way).
    preparing: AtomicBool,
    /// Why the authorizer refused the last statement, for the error message.
    denial: Mutex<Option<Denial>>,
    /// Actions the authorizer saw while the last statement was prepared (none when the
    /// statement came from the cache).
    prepared_actions: AtomicU64,
    /// Whether the last statement prepared inserts rows itself (not from a trigger).
    prepared_insert: AtomicBool,
    /// Deadline in nanoseconds since `epoch`; 0 means none.
    deadline_nanos: AtomicU64,
    /// End of the budget of a statement run on the async runtime (see [`Conn::set_budget`]),
    /// in nanoseconds since `epoch`; 0 means none.
    budget_nanos: AtomicU64,
    /// Whether the budget interrupted a statement since it was set.
    over_budget: AtomicBool,
    epoch: Option<Instant>,
    /// Whoever waits for the running statement's result: once they are gone, it stops even
    /// before its first row (an aggregate over a huge input).
    waiter: Mutex<Option<Waiter>>,
}

/// Whoever waits for a statement's result on a connection (see [`Conn::set_waiter`]).
#[derive(Debug)]
pub enum Waiter {
    /// The receiver of a stream's rows.
    Stream(tokio::sync::mpsc::Sender<Result<crate::core::value::RowEvent>>),
    /// A call awaiting the whole result (`execute`, `batch`), alive while the `Arc` its future
    /// holds is: a client that cancels drops the future, and with it the `Arc`.
    Call(std::sync::Weak<()>),
}

impl Waiter {
    fn gone(&self) -> bool {
        match self {
            Waiter::Stream(tx) => tx.is_closed(),
            Waiter::Call(alive) => alive.strong_count() == 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Denial {
    kind: QueryErrorKind,
    reason: String,
}

/// A sandboxed SQLite connection.
#[derive(Debug)]
pub struct Conn {
    conn: rusqlite::Connection,
    guard: Arc<Guard>,
    /// Whether each statement prepared here inserts, by a keyed hash of its text (see
    /// [`Conn::inserts`]).
    inserts: RefCell<HashMap<u64, bool>>,
    hasher: RandomState,
}

/// Statements whose kind [`Conn::inserts`] remembers; past this it starts over. Far above the
/// statement cache's 16, so a cached statement is rarely prepared again to be asked.
const REMEMBERED_STATEMENTS: usize = 512;

impl Conn {
    /// Opens and sandboxes a connection to an existing database file.
    pub fn open(path: &Path, opts: &ConnOptions) -> Result<Self> {
        let flags = if opts.read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(classify)?;
        conn.busy_timeout(opts.busy_timeout).map_err(classify)?;
        // query_only on readers: even a temporary table is refused to a read-only caller.
        conn.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -{}; \
             PRAGMA query_only = {};",
            opts.cache_kib,
            i32::from(opts.read_only)
        ))
        .map_err(classify)?;
        cap_size(&conn, opts.max_size_bytes)?;
        // Defensive mode forbids writable_schema tricks and direct page writes; untrusted schema
        // keeps functions with side effects out of views and triggers.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(classify)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)
            .map_err(classify)?;
        // Without this, SQLite reads a double-quoted name that matches no column as a string
        // literal, so a filter on a misspelt (or hostile) column silently matches nothing.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, false)
            .map_err(classify)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)
            .map_err(classify)?;
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, opts.max_value_bytes)
            .map_err(classify)?;
        conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, opts.max_value_bytes)
            .map_err(classify)?;

        let guard = Arc::new(Guard {
            epoch: Some(Instant::now()),
            ..Guard::default()
        });
        let auth_guard = Arc::clone(&guard);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            authorize(&auth_guard, ctx)
        }))
        .map_err(classify)?;
        let progress_guard = Arc::clone(&guard);
        // Checked every 1000 VM steps: cheap, and fine-grained enough to stop within
        // microseconds of the deadline.
        conn.progress_handler(1000, Some(move || progress_guard.should_stop()))
            .map_err(classify)?;
        Ok(Self {
            conn,
            guard,
            inserts: RefCell::default(),
            hasher: RandomState::new(),
        })
    }

    /// Caps the database at `max_bytes` on this connection (see [`cap_size`]). The caller
    /// holds the connection, so no client statement runs meanwhile.
    pub fn cap_size(&self, max_bytes: u64) -> Result<()> {
        self.guard.gateway.store(true, Ordering::Relaxed);
        let capped = cap_size(&self.conn, max_bytes);
        self.guard.gateway.store(false, Ordering::Relaxed);
        capped
    }

    /// The raw connection, for the gateway's own statements.
    pub fn raw(&self) -> &rusqlite::Connection {
        &self.conn
    }

    /// Sets the deadline of the statements that follow.
    pub fn set_deadline(&self, timeout: Duration) {
        let epoch = self.guard.epoch.unwrap_or_else(Instant::now);
        let at = Instant::now() + timeout;
        let nanos = at.saturating_duration_since(epoch).as_nanos();
        self.guard.deadline_nanos.store(
            u64::try_from(nanos).unwrap_or(u64::MAX).max(1),
            Ordering::Relaxed,
        );
    }

    /// Gives the statements that follow `budget` of wall-clock time in all, or takes the budget
    /// away (`None`). A statement still running past it is interrupted, and [`Conn::over_budget`]
    /// says so; the caller then runs it again where it may take its time.
    pub fn set_budget(&self, budget: Option<Duration>) {
        let end = budget.map_or(0, |b| {
            (self
                .guard
                .since_epoch()
                .saturating_add(u64::try_from(b.as_nanos()).unwrap_or(u64::MAX)))
            .max(1)
        });
        self.guard.over_budget.store(false, Ordering::Relaxed);
        self.guard.budget_nanos.store(end, Ordering::Relaxed);
    }

    /// Whether the budget interrupted a statement since it was last set.
    pub fn over_budget(&self) -> bool {
        self.guard.over_budget.load(Ordering::Relaxed)
    }

    /// Ties the statements that follow to `waiter`: when it is gone (the client cancelled),
    /// they are interrupted. `None` unties them, and must follow: a stream's sender kept here
    /// would otherwise hold the stream open.
    pub fn set_waiter(&self, waiter: Option<Waiter>) {
        if let Ok(mut w) = self.guard.waiter.lock() {
            *w = waiter;
        }
    }

    /// Runs transaction control issued by the gateway. It is not prepared as a client's
    /// statement, so the authorizer lets it through.
    pub fn control(&self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(|e| self.classify(e))
    }

    /// Rolls back whatever is open; used on error paths where the rollback's own failure is moot.
    pub fn rollback_quietly(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.control("ROLLBACK");
        }
    }

    /// Prepares a client's SQL (cached), with the authorizer in its strict, prepare-time mode.
    fn prepare_sql(&self, sql: &str) -> Result<rusqlite::CachedStatement<'_>> {
        self.guard.start_preparing();
        let prepared = self.conn.prepare_cached(sql);
        self.guard.preparing.store(false, Ordering::Relaxed);
        let prepared = prepared.map_err(|e| self.classify(e))?;
        self.note_prepared(sql);
        Ok(prepared)
    }

    /// Remembers what the authorizer saw of `sql` if it was just compiled (a statement from
    /// the cache shows it nothing).
    fn note_prepared(&self, sql: &str) {
        if self.guard.prepared_actions.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut inserts = self.inserts.borrow_mut();
        if inserts.len() >= REMEMBERED_STATEMENTS {
            inserts.clear();
        }
        let insert = self.guard.prepared_insert.load(Ordering::Relaxed);
        inserts.insert(self.hasher.hash_one(sql), insert);
    }

    /// Whether `sql` is an insert: SQLite's authorizer saw it insert rows itself, not through a
    /// trigger (a CTE, a leading comment or a line break change nothing, and an UPDATE whose
    /// trigger inserts is no insert). Reading the text instead would miss `WITH … INSERT`.
    /// Answered from what [`Conn::prepare_sql`] noted; a statement the cache kept longer than
    /// the note is compiled once more to be asked.
    fn inserts(&self, sql: &str) -> bool {
        if let Some(insert) = self.inserts.borrow().get(&self.hasher.hash_one(sql)) {
            return *insert;
        }
        self.guard.start_preparing();
        let fresh = self.conn.prepare(sql).map(drop);
        self.guard.preparing.store(false, Ordering::Relaxed);
        if fresh.is_err() {
            // It compiled a moment ago; whatever stops it now is not the client's statement's
            // error, and its reason must not be reported for the next one.
            self.guard.denial.lock().ok().map(|mut d| d.take());
            return false;
        }
        self.note_prepared(sql);
        self.guard.prepared_insert.load(Ordering::Relaxed)
    }

    /// The rowid of the row an insert just added, if `sql` is one and added rows.
    fn last_insert_id(&self, sql: &str, changed: u64) -> Option<i64> {
        (changed > 0 && self.inserts(sql)).then(|| self.conn.last_insert_rowid())
    }

    /// The rows a statement just stepped changed, given `total_changes()` from before it ran.
    /// SQLite's `changes()` keeps the count of the last INSERT, UPDATE or DELETE, so a statement
    /// that changes no rows itself (DDL) would report its predecessor's count; the total, which
    /// only such changes move, tells the two apart.
    pub fn rows_changed(&self, readonly: bool, total_before: u64) -> u64 {
        if readonly || self.conn.total_changes() == total_before {
            0
        } else {
            self.conn.changes()
        }
    }

    /// SQLite's count of rows changed on this connection so far; see [`Self::rows_changed`].
    pub fn total_changes(&self) -> u64 {
        self.conn.total_changes()
    }

    /// Prepares `sql` (cached) and says whether it only reads.
    pub fn is_read_only(&self, sql: &str) -> Result<bool> {
        Ok(self.prepare_sql(sql)?.readonly())
    }

    /// Whether `sql` returns rows (SELECT, or a write with RETURNING).
    pub fn returns_rows(&self, sql: &str) -> Result<bool> {
        Ok(self.prepare_sql(sql)?.column_count() > 0)
    }

    /// Runs one statement for its effect only, stepping through (and dropping) any rows.
    pub fn run_discarding(&self, stmt: &Statement) -> Result<StatementResult> {
        let total_before = self.conn.total_changes();
        let mut prepared = self.prepare(stmt)?;
        {
            let mut rows = prepared.raw_query();
            while rows.next().map_err(|e| self.classify(e))?.is_some() {}
        }
        let changed = self.rows_changed(prepared.readonly(), total_before);
        Ok(StatementResult {
            rows_affected: changed,
            last_insert_id: self.last_insert_id(&stmt.sql, changed),
            columns: Vec::new(),
            rows: Vec::new(),
        })
    }

    /// Runs one statement, collecting at most `max_rows` rows and `max_bytes` bytes.
    pub fn run(&self, stmt: &Statement, max_rows: u64, max_bytes: u64) -> Result<StatementResult> {
        let total_before = self.conn.total_changes();
        let mut prepared = self.prepare(stmt)?;
        let columns = columns_of(&prepared);
        let kinds: Vec<ValueKind> = columns.iter().map(|c| c.kind).collect();
        let mut rows_out = Vec::new();
        let mut bytes = 0u64;
        {
            let mut rows = prepared.raw_query();
            while let Some(row) = rows.next().map_err(|e| self.classify(e))? {
                let values = read_row(row, &kinds)?;
                bytes += values.iter().map(|v| v.approx_size() as u64).sum::<u64>();
                if rows_out.len() as u64 >= max_rows {
                    return Err(Error::LimitExceeded(format!(
                        "the statement returned more than {max_rows} rows; use Query to stream \
                         large results"
                    )));
                }
                if bytes > max_bytes {
                    return Err(Error::LimitExceeded(format!(
                        "the result exceeds {max_bytes} bytes; use Query to stream large results"
                    )));
                }
                rows_out.push(values);
            }
        }
        let changed = self.rows_changed(prepared.readonly(), total_before);
        Ok(StatementResult {
            rows_affected: changed,
            last_insert_id: self.last_insert_id(&stmt.sql, changed),
            columns,
            rows: rows_out,
        })
    }

    /// Prepares (cached) and binds a statement.
    pub fn prepare(&self, stmt: &Statement) -> Result<rusqlite::CachedStatement<'_>> {
        let mut prepared = self.prepare_sql(&stmt.sql)?;
        if stmt.params.iter().any(|p| matches!(p, Value::Array(_))) {
            return Err(Error::invalid(
                "params",
                "SQLite has no arrays; bind the elements separately or as JSON text",
            ));
        }
        let expected = prepared.parameter_count();
        if expected != stmt.params.len() {
            return Err(Error::invalid(
                "params",
                format!(
                    "the statement has {expected} placeholder(s) but {} parameter(s) were given",
                    stmt.params.len()
                ),
            ));
        }
        for (i, value) in stmt.params.iter().enumerate() {
            prepared
                .raw_bind_parameter(i + 1, Param(value))
                .map_err(|e| self.classify(e))?;
        }
        Ok(prepared)
    }

    /// Classifies an error of this connection, using the authorizer's reason for denials.
    pub fn classify(&self, err: rusqlite::Error) -> Error {
        // A denial fails the prepare that asked, with SQLITE_AUTH or (for functions)
        // SQLITE_ERROR; the authorizer left the reason behind.
        let denial = self.guard.denial.lock().ok().and_then(|mut d| d.take());
        if let Some(Denial { kind, reason }) = denial {
            return match kind {
                QueryErrorKind::Forbidden => Error::Query {
                    kind,
                    code: Some("SQLITE_AUTH".into()),
                    message: reason,
                    statement_index: None,
                },
                _ => Error::invalid("sql", reason),
            };
        }
        classify(err)
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("deadline_nanos", &self.deadline_nanos)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// Enters the strict, prepare-time mode and forgets what the last preparation saw.
    fn start_preparing(&self) {
        self.prepared_actions.store(0, Ordering::Relaxed);
        self.prepared_insert.store(false, Ordering::Relaxed);
        self.preparing.store(true, Ordering::Relaxed);
    }

    /// Notes an action of the statement being prepared: an insert into a table of the
    /// database by the statement itself (not a trigger's, nor SQLite's own row in its schema
    /// table that CREATE writes) makes it an insert.
    fn note(&self, ctx: &AuthContext<'_>) {
        self.prepared_actions.fetch_add(1, Ordering::Relaxed);
        if let AuthAction::Insert { table_name } = ctx.action
            && ctx.accessor.is_none()
            && !table_name
                .get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("sqlite_"))
        {
            self.prepared_insert.store(true, Ordering::Relaxed);
        }
    }

    /// Checked by SQLite every 1000 VM steps.
    fn should_stop(&self) -> bool {
        self.past_deadline() || self.past_budget() || self.waiter_gone()
    }

    fn past_budget(&self) -> bool {
        let budget = self.budget_nanos.load(Ordering::Relaxed);
        if budget == 0 || self.since_epoch() <= budget {
            return false;
        }
        self.over_budget.store(true, Ordering::Relaxed);
        true
    }

    fn since_epoch(&self) -> u64 {
        let epoch = self.epoch.unwrap_or_else(Instant::now);
        u64::try_from(Instant::now().saturating_duration_since(epoch).as_nanos())
            .unwrap_or(u64::MAX)
    }

    fn waiter_gone(&self) -> bool {
        self.waiter
            .lock()
            .ok()
            .and_then(|w| w.as_ref().map(Waiter::gone))
            .unwrap_or(false)
    }

    fn past_deadline(&self) -> bool {
        let deadline = self.deadline_nanos.load(Ordering::Relaxed);
        if deadline == 0 {
            return false;
        }
        self.since_epoch() > deadline
    }

    fn deny(&self, kind: QueryErrorKind, reason: String) -> Authorization {
        if let Ok(mut d) = self.denial.lock() {
            *d = Some(Denial { kind, reason });
        }
        Authorization::Deny
    }
}

/// The sandbox: decides, per action of a statement being prepared, whether it may run.
fn authorize(guard: &Guard, ctx: AuthContext<'_>) -> Authorization {
    use QueryErrorKind::Forbidden;
    if guard.gateway.load(Ordering::Relaxed) {
        return Authorization::Allow;
    }
    if guard.preparing.load(Ordering::Relaxed) {
        guard.note(&ctx);
    }
    match ctx.action {
        // VACUUM rebuilds the database through a private scratch database attached as ''
        // while it runs; a client's own ATTACH is always authorized at prepare time.
        AuthAction::Attach { filename }
            if filename.is_empty() && !guard.preparing.load(Ordering::Relaxed) =>
        {
            Authorization::Allow
        }
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => guard.deny(
            Forbidden,
            "ATTACH and DETACH are not allowed: a database cannot reach other files".into(),
        ),
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let name = pragma_name.to_ascii_lowercase();
            let name = name.as_str();
            let allowed = INSPECTING_PRAGMAS.contains(&name)
                || match pragma_value {
                    None => READ_ONLY_PRAGMAS.contains(&name),
                    Some(_) => WRITABLE_PRAGMAS.contains(&name),
                };
            if allowed {
                Authorization::Allow
            } else {
                guard.deny(
                    Forbidden,
                    format!("PRAGMA {pragma_name} is not allowed on a DB-Forge database"),
                )
            }
        }
        AuthAction::Function { function_name }
            if function_name.eq_ignore_ascii_case("load_extension")
                || function_name.eq_ignore_ascii_case("fts3_tokenizer") =>
        {
            guard.deny(
                Forbidden,
                format!("{function_name}() is not allowed: extensions cannot be loaded"),
            )
        }
        // Only a client's own statements are held to this: VACUUM runs BEGIN/COMMIT inside.
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. }
            if guard.preparing.load(Ordering::Relaxed) =>
        {
            guard.deny(
                QueryErrorKind::Syntax,
                "transaction control statements are not accepted here: use ExecuteBatch with \
                 `transaction` or a Session"
                    .into(),
            )
        }
        _ => Authorization::Allow,
    }
}

/// Column metadata of a prepared statement.
pub fn columns_of(stmt: &rusqlite::Statement<'_>) -> Vec<Column> {
    stmt.columns()
        .into_iter()
        .map(|c| {
            let declared_type = c.decl_type().unwrap_or_default().to_string();
            Column {
                name: c.name().to_string(),
                kind: kind_of(&declared_type),
                declared_type,
            }
        })
        .collect()
}

/// The Value kind of a declared type: SQLite's affinity rules, plus the names of the richer kinds.
pub fn kind_of(declared: &str) -> ValueKind {
    let t = declared.to_ascii_uppercase();
    if t.is_empty() {
        ValueKind::Unspecified
    } else if t.contains("BOOL") {
        ValueKind::Bool
    } else if t.starts_with("DECIMAL") || t.starts_with("NUMERIC") {
        ValueKind::Decimal
    } else if t.starts_with("JSON") {
        ValueKind::Json
    } else if t.contains("TIMESTAMP") || t.contains("DATETIME") {
        ValueKind::Timestamp
    } else if t == "DATE" || t.starts_with("DATE ") {
        ValueKind::Date
    } else if t == "UUID" || t.starts_with("UUID ") {
        ValueKind::Uuid
    } else if t == "TIME" || t.starts_with("TIME ") {
        ValueKind::Time
    } else if t.contains("INT") {
        ValueKind::Int
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        ValueKind::Text
    } else if t.contains("BLOB") {
        ValueKind::Bytes
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        ValueKind::Float
    } else {
        ValueKind::Unspecified
    }
}

/// Reads one row, converting each cell by its column's kind.
pub fn read_row(row: &rusqlite::Row<'_>, kinds: &[ValueKind]) -> Result<Row> {
    let mut values = Vec::with_capacity(kinds.len());
    for (i, kind) in kinds.iter().enumerate() {
        let cell = row.get_ref(i).map_err(classify)?;
        values.push(to_value(cell, *kind));
    }
    Ok(values)
}

fn to_value(cell: ValueRef<'_>, kind: ValueKind) -> Value {
    match (cell, kind) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(i), ValueKind::Bool) => Value::Bool(i != 0),
        (ValueRef::Integer(i), ValueKind::Decimal) => Value::Decimal(i.to_string()),
        (ValueRef::Real(f), ValueKind::Decimal) => Value::Decimal(f.to_string()),
        (ValueRef::Integer(i), ValueKind::Json) => Value::Json(i.to_string()),
        (ValueRef::Real(f), ValueKind::Json) => Value::Json(f.to_string()),
        (ValueRef::Integer(i), _) => Value::Int(i),
        (ValueRef::Real(f), _) => Value::Float(f),
        (ValueRef::Blob(b), _) => Value::Bytes(b.to_vec()),
        (ValueRef::Text(t), kind) => match std::str::from_utf8(t) {
            // Text that is not UTF-8 can only come from a cast; bytes keep it intact.
            Err(_) => Value::Bytes(t.to_vec()),
            Ok(s) => match kind {
                ValueKind::Decimal => Value::Decimal(s.to_owned()),
                ValueKind::Json => Value::Json(s.to_owned()),
                ValueKind::Timestamp => text::parse_timestamp(s)
                    .map(Value::Timestamp)
                    .unwrap_or_else(|| Value::Text(s.to_owned())),
                ValueKind::Date => text::parse_date(s)
                    .map(Value::Date)
                    .unwrap_or_else(|| Value::Text(s.to_owned())),
                ValueKind::Uuid => Value::parse_uuid(s)
                    .map(Value::Uuid)
                    .unwrap_or_else(|| Value::Text(s.to_owned())),
                ValueKind::Time => text::parse_time(s)
                    .map(Value::Time)
                    .unwrap_or_else(|| Value::Text(s.to_owned())),
                _ => Value::Text(s.to_owned()),
            },
        },
    }
}

/// Formats a timestamp the way SQLite stores it (RFC 3339, UTC).
pub fn format_timestamp(t: &OffsetDateTime) -> String {
    text::timestamp(t).unwrap_or_default()
}

/// Binds a Value as the SQLite storage class that keeps it intact.
struct Param<'a>(&'a Value);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as Owned;
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Owned(Owned::Null),
            Value::Int(i) => ToSqlOutput::Owned(Owned::Integer(*i)),
            Value::Float(f) => ToSqlOutput::Owned(Owned::Real(*f)),
            Value::Bool(b) => ToSqlOutput::Owned(Owned::Integer(i64::from(*b))),
            Value::Text(s) | Value::Decimal(s) | Value::Json(s) => {
                ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
            }
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Timestamp(t) => ToSqlOutput::Owned(Owned::Text(format_timestamp(t))),
            Value::Date(d) => ToSqlOutput::Owned(Owned::Text(text::date(d))),
            Value::Uuid(u) => ToSqlOutput::Borrowed(ValueRef::Text(u.as_bytes())),
            Value::Time(t) => ToSqlOutput::Owned(Owned::Text(text::time(t))),
            Value::Array(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "arrays cannot be bound on SQLite".into(),
                ));
            }
        })
    }
}

/// Turns a SQLite error into the shared error type, keeping the extended result code.
pub fn classify(err: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    match err {
        rusqlite::Error::SqliteFailure(e, msg) => {
            let message = msg.unwrap_or_else(|| e.to_string());
            let code = Some(format!("SQLITE_{}", e.extended_code));
            let query = |kind| Error::Query {
                kind,
                code: code.clone(),
                message: message.clone(),
                statement_index: None,
            };
            match e.code {
                C::ConstraintViolation => query(match e.extended_code {
                    ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                        QueryErrorKind::UniqueViolation
                    }
                    ffi::SQLITE_CONSTRAINT_FOREIGNKEY => QueryErrorKind::ForeignKey,
                    ffi::SQLITE_CONSTRAINT_NOTNULL => QueryErrorKind::NotNull,
                    _ => QueryErrorKind::Check,
                }),
                C::AuthorizationForStatementDenied => query(QueryErrorKind::Forbidden),
                C::ReadOnly => Error::Query {
                    kind: QueryErrorKind::Forbidden,
                    code: code.clone(),
                    message: format!("read-only access: {message}"),
                    statement_index: None,
                },
                C::OperationInterrupted => {
                    Error::Timeout("the statement ran past its deadline and was interrupted".into())
                }
                C::TypeMismatch => query(QueryErrorKind::DataType),
                C::TooBig => Error::LimitExceeded(format!("{message} (value size limit)")),
                C::DatabaseBusy | C::DatabaseLocked => {
                    Error::Unavailable(format!("the database is busy: {message}"))
                }
                C::Unknown | C::ParameterOutOfRange | C::ApiMisuse => query(QueryErrorKind::Syntax),
                C::DiskFull => Error::LimitExceeded(format!(
                    "{}: {message}",
                    crate::core::quota::SQLITE_FULL_PREFIX
                )),
                _ => Error::internal(format!("sqlite: {message} ({code:?})")),
            }
        }
        rusqlite::Error::MultipleStatement => Error::invalid(
            "sql",
            "only one statement is allowed here; use ExecuteBatch for several",
        ),
        rusqlite::Error::InvalidParameterCount(given, expected) => Error::invalid(
            "params",
            format!(
                "the statement has {expected} placeholder(s) but {given} parameter(s) were given"
            ),
        ),
        rusqlite::Error::NulError(_) => Error::invalid("sql", "the statement contains a NUL byte"),
        rusqlite::Error::InvalidQuery => Error::invalid("sql", "the statement is empty"),
        rusqlite::Error::SqlInputError {
            error, msg, offset, ..
        } => classify(rusqlite::Error::SqliteFailure(
            error,
            Some(format!("{msg} (at offset {offset})")),
        )),
        other => Error::internal(other),
    }
}
