//! The graph engine: embedded [Oxigraph](https://oxigraph.org), one RocksDB store (a
//! directory) per database under `<data-dir>/graph`, queried and updated with SPARQL 1.1.
//!
//! - **Statements.** `Execute`, `Query` and `ExecuteBatch` take SPARQL. A statement is
//!   classified by parsing it with Oxigraph's own SPARQL parser: a query (SELECT, CONSTRUCT,
//!   DESCRIBE, ASK) is evaluated through the query evaluator, which has no way to write, and
//!   an update through the update evaluator. No text is inspected.
//! - **Results.** SELECT: one column per projected variable, values typed as `terms.rs` tabulates.
//!   CONSTRUCT and DESCRIBE: the columns `subject`, `predicate`, `object`. ASK: one row with one
//!   bool column, `result`. An update returns no rows; `rows_affected` is 0 (Oxigraph does not
//!   count the quads an update changes).
//! - **Parameters** bind positionally to the variables `$1`, `$2`, … (the same as `?1`, `?2`) of
//!   a query (Oxigraph's variable substitution); updates take none.
//! - **Read-only access** ([`StatementLimits::read_only`]) refuses every update as `Forbidden`
//!   before it runs: the parse says what a statement is, and queries run on an evaluator that
//!   cannot write.
//! - **Isolation.** Each database is its own store; nothing in SPARQL reaches another one.
//!   `SERVICE` is disabled (no service handler) and `LOAD` of a URL fails (the server is built
//!   without Oxigraph's HTTP client), so a statement reaches neither other stores nor the network.
//! - **Atomicity.** Each update runs in one Oxigraph transaction; `ExecuteBatch` with
//!   `transaction` runs every statement in one. Writes to a database queue on one lock (like
//!   SQLite's writer) so that transactions never conflict; reads never wait for it.
//! - **Blocking work** (Oxigraph's API is synchronous) runs on tokio's blocking pool. Streams
//!   send through the shared `StreamSink` (`backend/sql/exec.rs`) into a bounded channel, so backpressure and the
//!   row and byte limits are those of the SQL engines. A statement's deadline, or the client
//!   dropping the stream, cancels the evaluation through Oxigraph's cancellation token, which
//!   Oxigraph checks as it reads quads; streams also check the deadline at every row, and a
//!   read that computes past it without reading (a product of VALUES blocks) is answered with
//!   Timeout a second later while it finishes in the background (`BACKSTOP_GRACE`).
//! - **Dumps and backups** are N-Quads (every named graph included), one quad a line, loaded
//!   back by [`Database::import_records`] a batch of lines at a time; blank node ids are kept
//!   as written, so a blank node split across batches stays one node.
//! - **No sessions, tables or SQL**: those calls are [`Error::Unsupported`], and the API says to
//!   use SPARQL through Execute and Query instead (`api/status.rs`).

mod terms;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use futures::StreamExt;
use oxigraph::{
    io::{JsonLdProfile, RdfFormat, RdfParseError, RdfParser, RdfSerializer},
    model::{GraphName, GraphNameRef, NamedNode},
    sparql::{
        CancellationToken, PreparedSparqlQuery, PreparedSparqlUpdate, QueryEvaluationError,
        QueryResults, SparqlEvaluator, SparqlSyntaxError, UpdateEvaluationError, Variable,
    },
    store::{StorageError, Store},
};
use tokio::{runtime::Handle, sync::mpsc, task::JoinHandle};
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

use self::terms::{column_kind, term_of, value_of};
use super::{
    Backend, BackendKind, Capabilities, Database, DumpStream, Provisioned, RowStream, Session,
    StatementLimits,
    dump::DumpWriter,
    sql::{
        RowSink,
        exec::{Collect, OnLimit, StreamSink},
    },
};
use crate::core::{
    error::{Error, QueryErrorKind, Result},
    names::DatabaseName,
    schema::{GraphSummary, Schema},
    table::SqlDialect,
    transfer::{ImportStream, RdfImport},
    value::{Column, Row, Statement, StatementResult, Value},
};

/// The suffix of a store's directory, which tells `remove_orphans` what is the engine's.
const DIR_SUFFIX: &str = ".oxigraph";

/// How many classes, predicates and named graphs GetSchema lists, at most.
const SUMMARY_ENTRIES: usize = 100;

/// Settings of the graph backend.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// Directory holding one store directory per database.
    pub dir: PathBuf,
}

/// The graph backend.
#[derive(Debug)]
pub struct GraphBackend {
    cfg: GraphConfig,
    caps: Capabilities,
    /// The stores open in this process, by path: RocksDB locks a store's directory, so a
    /// second open while a stream still holds the first would fail; it shares the first instead.
    open: Mutex<HashMap<PathBuf, Weak<Inner>>>,
}

impl GraphBackend {
    /// Creates the backend, making its directory if needed.
    pub fn new(cfg: GraphConfig) -> Result<Self> {
        std::fs::create_dir_all(&cfg.dir).map_err(Error::internal)?;
        Ok(Self {
            cfg,
            caps: Capabilities {
                sql: false,
                transactions: true,
                sessions: false,
                typed_params: true,
                table_service: false,
                key_value: false,
                last_insert_id: false,
                returning: false,
                placeholder: "$1",
                transactional_ddl: false,
                sparql: true,
            },
            open: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, db: &Provisioned) -> Result<PathBuf> {
        // Locators come from `locate`, but the catalog is a file on disk: refuse anything that
        // could step outside the directory.
        let ok = db.locator.ends_with(DIR_SUFFIX)
            && !db.locator.contains('/')
            && !db.locator.contains('\\')
            && !db.locator.starts_with('.');
        if !ok {
            return Err(Error::internal(format!(
                "bad graph locator {:?}",
                db.locator
            )));
        }
        Ok(self.cfg.dir.join(&db.locator))
    }

    /// The open store at `path`, or a newly opened one.
    async fn store(&self, path: PathBuf) -> Result<Arc<Inner>> {
        if let Some(inner) = self.shared(&path) {
            return Ok(inner);
        }
        let p = path.clone();
        let store = blocking(move || {
            if !p.exists() {
                return Err(Error::Unavailable(format!(
                    "the graph store {} is missing",
                    p.display()
                )));
            }
            Store::open(&p).map_err(storage)
        })
        .await?;
        let mut open = self
            .open
            .lock()
            .map_err(|_| Error::internal("the graph store map was poisoned"))?;
        // Another call may have opened it meanwhile; RocksDB would have refused the second
        // open, so whichever is in the map is the one.
        if let Some(inner) = open.get(&path).and_then(Weak::upgrade) {
            return Ok(inner);
        }
        open.retain(|_, w| w.strong_count() > 0);
        let inner = Arc::new(Inner {
            store,
            writes: Mutex::new(()),
        });
        open.insert(path, Arc::downgrade(&inner));
        Ok(inner)
    }

    fn shared(&self, path: &Path) -> Option<Arc<Inner>> {
        self.open.lock().ok()?.get(path).and_then(Weak::upgrade)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("graph task failed: {e}")))?
}

/// How long past a read's deadline the caller waits for the engine before it answers Timeout
/// anyway. Oxigraph checks its cancellation token only as it reads quads, so a query that reads
/// none (a product of VALUES blocks) runs on, on its blocking thread, until it ends.
const BACKSTOP_GRACE: Duration = Duration::from_secs(1);

/// [`blocking`] for work that only reads, answered with Timeout at most [`BACKSTOP_GRACE`] past
/// `timeout` (never for writes: an update abandoned this way could still commit).
async fn reading<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::time::timeout(timeout + BACKSTOP_GRACE, blocking(f))
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout(format!(
                "the SPARQL query ran past its deadline ({timeout:?})"
            )))
        })
}

#[async_trait]
impl Backend for GraphBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Graph
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn dialect(&self) -> Option<&'static dyn SqlDialect> {
        None
    }

    fn locate(&self, name: &DatabaseName) -> Provisioned {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Provisioned {
            name: name.clone(),
            locator: format!("{name}.{nanos:x}{DIR_SUFFIX}"),
        }
    }

    async fn create(&self, db: &Provisioned) -> Result<()> {
        let path = self.path(db)?;
        if self.shared(&path).is_some() {
            return Ok(());
        }
        // Opening makes the directory and RocksDB's files; closing at once leaves an empty
        // store that `open` finds.
        blocking(move || Store::open(&path).map(drop).map_err(storage)).await
    }

    async fn destroy(&self, db: &Provisioned) -> Result<()> {
        let path = self.path(db)?;
        if let Ok(mut open) = self.open.lock() {
            open.remove(&path);
        }
        blocking(move || {
            // A handle still draining a cancelled statement keeps RocksDB open for a moment,
            // and its background threads may add a file while the directory goes: try again.
            for attempt in 0.. {
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && attempt < 50 => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(e) => return Err(Error::internal(e)),
                }
            }
            Ok(())
        })
        .await
    }

    async fn open(&self, db: &Provisioned) -> Result<Arc<dyn Database>> {
        let inner = self.store(self.path(db)?).await?;
        Ok(Arc::new(GraphDatabase { inner }))
    }

    async fn size_bytes(&self, db: &Provisioned) -> Result<Option<u64>> {
        let path = self.path(db)?;
        blocking(move || Ok(Some(dir_size(&path)))).await
    }

    async fn remove_orphans(&self, known: &[Provisioned]) -> Result<usize> {
        let dir = self.cfg.dir.clone();
        let known: std::collections::HashSet<String> =
            known.iter().map(|p| p.locator.clone()).collect();
        blocking(move || {
            let mut removed = 0;
            for entry in std::fs::read_dir(&dir).map_err(Error::internal)? {
                let entry = entry.map_err(Error::internal)?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(DIR_SUFFIX) && !known.contains(&name) {
                    std::fs::remove_dir_all(entry.path()).map_err(Error::internal)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }

    fn enforces_read_only(&self) -> bool {
        true
    }

    fn owns_storage(&self) -> bool {
        true
    }
}

/// Bytes of the files under `path` (0 when it is missing).
fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// One open store, shared by every handle on it.
struct Inner {
    store: Store,
    /// Held by every write: one writer at a time per store.
    writes: Mutex<()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
}

impl Inner {
    fn write_lock(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.writes
            .lock()
            .map_err(|_| Error::internal("a graph write panicked"))
    }
}

/// An open graph database.
#[derive(Debug)]
pub struct GraphDatabase {
    inner: Arc<Inner>,
}

/// A statement as Oxigraph's parser read it.
enum Parsed {
    /// A query, and how many parameter columns were added at the end of its projection.
    Query(Box<PreparedSparqlQuery>, usize),
    Update(Box<PreparedSparqlUpdate>),
}

/// Adds the variables `1..=n` to the projection of a SELECT that lacks them, returning how many
/// it added. Oxigraph substitutes a variable only where the query's top level sees it, and a
/// SELECT's projection hides the rest (`FILTER(?age > $1)` with `SELECT ?name`); projected, the
/// parameter is a constant column, which changes no row and is cut from the results.
fn project_parameters(query: &mut spargebra::Query, n: usize) -> usize {
    use spargebra::algebra::GraphPattern as P;
    let spargebra::Query::Select { pattern, .. } = query else {
        return 0;
    };
    let mut p = pattern;
    loop {
        match p {
            P::Distinct { inner }
            | P::Reduced { inner }
            | P::Slice { inner, .. }
            | P::OrderBy { inner, .. } => p = &mut **inner,
            P::Project { variables, .. } => {
                let mut added = 0;
                for i in 1..=n {
                    let v = Variable::new_unchecked(i.to_string());
                    if !variables.contains(&v) {
                        variables.push(v);
                        added += 1;
                    }
                }
                return added;
            }
            _ => return 0,
        }
    }
}

impl Parsed {
    /// Reads `stmt` as a query, else as an update; binds its parameters to `?1`, `?2`, ….
    fn new(stmt: &Statement, token: &CancellationToken) -> Result<Self> {
        // Built without Oxigraph's HTTP client, the evaluator has no service handler: SERVICE
        // clauses fail instead of reaching other endpoints.
        let evaluator = || SparqlEvaluator::new().with_cancellation_token(token.clone());
        let query_error = match spargebra::SparqlParser::new().parse_query(&stmt.sql) {
            Ok(mut query) => {
                let hidden = project_parameters(&mut query, stmt.params.len());
                let mut query = evaluator().for_query(query);
                for (i, value) in stmt.params.iter().enumerate() {
                    if let Some(term) = term_of(value)? {
                        query = query.substitute_variable(
                            Variable::new_unchecked((i + 1).to_string()),
                            term,
                        );
                    }
                }
                return Ok(Self::Query(Box::new(query), hidden));
            }
            Err(e) => e,
        };
        match evaluator().parse_update(&stmt.sql) {
            Ok(update) if stmt.params.is_empty() => Ok(Self::Update(Box::new(update))),
            Ok(_) => Err(Error::invalid(
                "params",
                "parameters bind only in SPARQL queries; write the values into the update",
            )),
            Err(update_error) => Err(syntax(&query_error, &update_error)),
        }
    }

    fn is_update(&self) -> bool {
        matches!(self, Self::Update(_))
    }
}

/// The error for a statement that is neither a query nor an update.
fn syntax(query: &SparqlSyntaxError, update: &SparqlSyntaxError) -> Error {
    Error::Query {
        kind: QueryErrorKind::Syntax,
        code: Some("SPARQL_SYNTAX".into()),
        message: format!("not a SPARQL query ({query}) nor a SPARQL update ({update})"),
        statement_index: None,
    }
}

/// Refuses an update under read-only access.
fn refuse_write(parsed: &Parsed, limits: &StatementLimits) -> Result<()> {
    if parsed.is_update() && limits.read_only {
        return Err(Error::Query {
            kind: QueryErrorKind::Forbidden,
            code: Some("READ_ONLY".into()),
            message: "read-only access: a SPARQL update writes, and this key may only read".into(),
            statement_index: None,
        });
    }
    Ok(())
}

fn storage(e: StorageError) -> Error {
    match e {
        StorageError::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
            Error::LimitExceeded(format!("the disk is full: {io}"))
        }
        other => Error::internal(other),
    }
}

/// A statement's deadline and its cancellation: the token is cancelled when the deadline
/// passes or (for streams) the client goes away, and Oxigraph's evaluation then stops.
struct Deadline {
    token: CancellationToken,
    passed: Arc<AtomicBool>,
    timeout: Duration,
    tasks: Vec<JoinHandle<()>>,
}

impl Deadline {
    /// Arms the timer; must run on the runtime.
    fn arm(timeout: Duration) -> Self {
        let token = CancellationToken::new();
        let passed = Arc::new(AtomicBool::new(false));
        let timer = {
            let (token, passed) = (token.clone(), Arc::clone(&passed));
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                passed.store(true, Ordering::SeqCst);
                token.cancel();
            })
        };
        Self {
            token,
            passed,
            timeout,
            tasks: vec![timer],
        }
    }

    /// Also cancels when the receiver of `tx` is dropped (a stream the client left while the
    /// engine was still computing, before any row was due).
    fn watch<T: Send + 'static>(&mut self, tx: &mpsc::Sender<T>) {
        let (token, tx) = (self.token.clone(), tx.clone());
        self.tasks.push(tokio::spawn(async move {
            tx.closed().await;
            token.cancel();
        }));
    }

    fn query_error(&self, e: QueryEvaluationError) -> Error {
        match e {
            QueryEvaluationError::Cancelled => self.cancelled(),
            QueryEvaluationError::Dataset(inner) => Error::internal(inner),
            other => evaluation(other.to_string()),
        }
    }

    fn update_error(&self, e: UpdateEvaluationError) -> Error {
        match e {
            UpdateEvaluationError::Storage(s) => storage(s),
            UpdateEvaluationError::Unexpected(inner)
                if matches!(
                    inner.downcast_ref::<QueryEvaluationError>(),
                    Some(QueryEvaluationError::Cancelled)
                ) =>
            {
                self.cancelled()
            }
            other => evaluation(other.to_string()),
        }
    }

    fn cancelled(&self) -> Error {
        if self.passed.load(Ordering::SeqCst) {
            Error::Timeout(format!(
                "the SPARQL statement ran past its deadline ({:?}) and was cancelled",
                self.timeout
            ))
        } else {
            Error::Aborted("the SPARQL statement was cancelled".into())
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        // The watcher holds a sender: abort it so that the stream can end.
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

fn evaluation(message: String) -> Error {
    Error::Query {
        kind: QueryErrorKind::Other,
        code: Some("SPARQL_EVALUATION".into()),
        message,
        statement_index: None,
    }
}

type Rows<'a> = Box<dyn Iterator<Item = std::result::Result<Row, QueryEvaluationError>> + 'a>;

/// The columns and rows of a query's results (see the module docs for their shapes), without
/// the last `hidden` columns of a SELECT (the parameters [`project_parameters`] added).
fn shape(results: QueryResults<'_>, hidden: usize) -> (Vec<Column>, Rows<'_>) {
    let column = |name: &str, declared: &str, always_bool: bool| Column {
        name: name.to_owned(),
        declared_type: declared.to_owned(),
        kind: column_kind(always_bool),
    };
    match results {
        QueryResults::Solutions(solutions) => {
            let shown = solutions.variables().len().saturating_sub(hidden);
            let columns = solutions.variables()[..shown]
                .iter()
                .map(|v| column(v.as_str(), "rdf term", false))
                .collect();
            let rows = solutions.map(move |s| {
                s.map(|solution| {
                    let values = solution.values();
                    (0..shown)
                        .map(|i| value_of(values.get(i).and_then(Option::as_ref)))
                        .collect()
                })
            });
            (columns, Box::new(rows))
        }
        QueryResults::Graph(triples) => {
            let columns = vec![
                column("subject", "iri or blank node", false),
                column("predicate", "iri", false),
                column("object", "rdf term", false),
            ];
            let rows = triples.map(|t| {
                t.map(|t| {
                    vec![
                        value_of(Some(&t.subject.into())),
                        Value::Text(t.predicate.into_string()),
                        value_of(Some(&t.object)),
                    ]
                })
            });
            (columns, Box::new(rows))
        }
        QueryResults::Boolean(b) => (
            vec![column("result", "boolean", true)],
            Box::new(std::iter::once(Ok(vec![Value::Bool(b)]))),
        ),
    }
}

/// Collects a query's whole result under `limits` (too many rows or bytes: LimitExceeded).
fn collect(
    results: QueryResults<'_>,
    hidden: usize,
    limits: &StatementLimits,
    deadline: &Deadline,
) -> Result<StatementResult> {
    let (columns, rows) = shape(results, hidden);
    let mut sink = Collect::new(limits, OnLimit::Fail);
    for row in rows {
        if !sink.row(row.map_err(|e| deadline.query_error(e))?)? {
            break;
        }
    }
    Ok(StatementResult {
        columns,
        rows: sink.into_rows()?,
        ..StatementResult::default()
    })
}

impl Inner {
    /// Runs one parsed statement on its own (an update in its own transaction).
    fn run(
        &self,
        parsed: Parsed,
        limits: &StatementLimits,
        deadline: &Deadline,
    ) -> Result<StatementResult> {
        refuse_write(&parsed, limits)?;
        match parsed {
            Parsed::Query(query, hidden) => {
                let results = query
                    .on_store(&self.store)
                    .execute()
                    .map_err(|e| deadline.query_error(e))?;
                collect(results, hidden, limits, deadline)
            }
            Parsed::Update(update) => {
                let _writer = self.write_lock()?;
                update
                    .on_store(&self.store)
                    .execute()
                    .map_err(|e| deadline.update_error(e))?;
                Ok(StatementResult::default())
            }
        }
    }

    /// Runs every statement in one transaction: all are applied or none.
    fn run_in_transaction(
        &self,
        parsed: Vec<Parsed>,
        limits: &StatementLimits,
        deadline: &Deadline,
    ) -> Result<Vec<StatementResult>> {
        for (i, p) in parsed.iter().enumerate() {
            refuse_write(p, limits).map_err(|e| e.at_statement(i))?;
        }
        let _writer = self.write_lock()?;
        let mut transaction = self.store.start_transaction().map_err(storage)?;
        let mut results = Vec::with_capacity(parsed.len());
        for (i, p) in parsed.into_iter().enumerate() {
            let result = match p {
                Parsed::Query(query, hidden) => query
                    .on_transaction(&transaction)
                    .execute()
                    .map_err(|e| deadline.query_error(e))
                    .and_then(|r| collect(r, hidden, limits, deadline)),
                Parsed::Update(update) => update
                    .on_transaction(&mut transaction)
                    .execute()
                    .map(|()| StatementResult::default())
                    .map_err(|e| deadline.update_error(e)),
            };
            // Dropping the transaction without commit discards its writes.
            results.push(result.map_err(|e| e.at_statement(i))?);
        }
        transaction.commit().map_err(storage)?;
        Ok(results)
    }

    /// Streams one statement into `sink` from a blocking thread.
    fn produce(
        &self,
        parsed: Parsed,
        mut sink: StreamSink,
        rt: &Handle,
        deadline: &Deadline,
        limits: &StatementLimits,
    ) -> Result<()> {
        let started = Instant::now();
        refuse_write(&parsed, limits)?;
        let (query, hidden) = match parsed {
            Parsed::Query(query, hidden) => (query, hidden),
            Parsed::Update(update) => {
                {
                    let _writer = self.write_lock()?;
                    update
                        .on_store(&self.store)
                        .execute()
                        .map_err(|e| deadline.update_error(e))?;
                }
                if rt.block_on(sink.announce(Vec::new())) {
                    rt.block_on(sink.finish(0, started.elapsed()));
                }
                return Ok(());
            }
        };
        let results = query
            .on_store(&self.store)
            .execute()
            .map_err(|e| deadline.query_error(e))?;
        let (columns, rows) = shape(results, hidden);
        if !rt.block_on(sink.announce(columns)) {
            return Ok(());
        }
        for row in rows {
            let row = match row {
                Ok(row) => row,
                // The client left and the watcher cancelled: nobody reads an error.
                Err(QueryEvaluationError::Cancelled) if sink.client_gone() => return Ok(()),
                Err(e) => return Err(deadline.query_error(e)),
            };
            // Oxigraph checks its token only as it reads quads; rows computed without reading
            // (VALUES, BIND) check the deadline and the client here.
            if deadline.passed.load(Ordering::Relaxed) {
                return Err(deadline.cancelled());
            }
            if sink.receiver_gone() {
                debug!("client went away; the SPARQL query was stopped");
                return Ok(());
            }
            // `row` says false past a row or byte limit: the summary tells the truncation.
            if !sink.row(row)? {
                break;
            }
            if sink.pending() && !rt.block_on(sink.send())? {
                break;
            }
        }
        if sink.client_gone() {
            debug!("client went away; the SPARQL query was stopped");
            return Ok(());
        }
        rt.block_on(sink.finish(0, started.elapsed()));
        Ok(())
    }

    /// Counts what GetSchema reports.
    fn summary(&self, deadline: &Deadline) -> Result<GraphSummary> {
        let counts = |sparql: &str| -> Result<Vec<(String, i64)>> {
            let results = SparqlEvaluator::new()
                .with_cancellation_token(deadline.token.clone())
                .parse_query(sparql)
                .map_err(Error::internal)?
                .on_store(&self.store)
                .execute()
                .map_err(|e| deadline.query_error(e))?;
            let (_, rows) = shape(results, 0);
            let mut out = Vec::new();
            for row in rows {
                let row = row.map_err(|e| deadline.query_error(e))?;
                if let [Value::Text(iri), Value::Int(n)] = row.as_slice() {
                    out.push((iri.clone(), *n));
                }
            }
            Ok(out)
        };
        // Every graph counts: the default graph and the named ones.
        let per = |what: &str, pattern: &str| {
            format!(
                "SELECT ?x (COUNT(*) AS ?n) WHERE {{ {{ {pattern} }} UNION {{ GRAPH ?g {{ {pattern} }} }} \
                 FILTER(isIRI(?x)) }} GROUP BY ?x ORDER BY DESC(?n) ?x LIMIT {SUMMARY_ENTRIES} # {what}"
            )
        };
        Ok(GraphSummary {
            total_quads: i64::try_from(self.store.len().map_err(storage)?).unwrap_or(i64::MAX),
            classes: counts(&per(
                "classes",
                "?s <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> ?x",
            ))?,
            predicates: counts(&per("predicates", "?s ?x ?o"))?,
            named_graphs: counts(&format!(
                "SELECT ?x (COUNT(*) AS ?n) WHERE {{ GRAPH ?x {{ ?s ?p ?o }} FILTER(isIRI(?x)) }} \
                 GROUP BY ?x ORDER BY DESC(?n) ?x LIMIT {SUMMARY_ENTRIES}"
            ))?,
        })
    }

    /// Writes every quad as one N-Quads line.
    fn dump(&self, out: &mut DumpWriter, rt: &Handle) -> Result<()> {
        for quad in self.store.iter() {
            let quad = quad.map_err(storage)?;
            // oxrdf writes terms in N-Triples syntax; a quad plus " ." is one N-Quads line.
            out.write_rows_blocking(rt, &format!("{quad} .\n"), 1)?;
            if out.gone() {
                return Ok(());
            }
        }
        out.flush_blocking(rt)
    }

    /// Writes the store in `format` (single-graph formats: the default graph only).
    fn dump_as(&self, format: RdfFormat, out: &mut DumpWriter, rt: &Handle) -> Result<()> {
        let mut serializer = RdfSerializer::from_format(format).for_writer(DumpSink { out, rt });
        let graph = (!format.supports_datasets()).then_some(GraphNameRef::DefaultGraph);
        for quad in self.store.quads_for_pattern(None, None, None, graph) {
            let quad = quad.map_err(storage)?;
            let written = if graph.is_some() {
                serializer.serialize_triple(quad.as_ref())
            } else {
                serializer.serialize_quad(&quad)
            };
            written.map_err(written_error)?;
        }
        let sink = serializer.finish().map_err(written_error)?;
        sink.out.flush_blocking(rt)
    }

    /// Loads an RDF file atomically as its chunks come (on a blocking thread, from `chunks`).
    fn load(
        &self,
        spec: &RdfImport,
        chunks: mpsc::Receiver<Result<Option<Vec<u8>>>>,
    ) -> Result<u64> {
        let mut parser = RdfParser::from_format(rdf_format(spec.format)).rename_blank_nodes();
        if let Some(base) = &spec.base_iri {
            parser = parser
                .with_base_iri(base.as_str())
                .map_err(|e| Error::invalid("base_iri", e.to_string()))?;
        }
        let target = match &spec.graph {
            Some(graph) => {
                let graph = NamedNode::new(graph.as_str())
                    .map_err(|e| Error::invalid("graph", e.to_string()))?;
                parser = parser.with_default_graph(graph.clone());
                GraphName::NamedNode(graph)
            }
            None => GraphName::DefaultGraph,
        };
        let mut reader = ChunkReader {
            chunks,
            current: Vec::new(),
            at: 0,
            failed: None,
            ended: false,
        };
        let _writer = self.write_lock()?;
        let mut transaction = self.store.start_transaction().map_err(storage)?;
        if spec.replace {
            transaction.clear_graph(&target).map_err(storage)?;
        }
        let mut n = 0u64;
        for quad in parser.for_reader(&mut reader) {
            match quad {
                Ok(quad) => transaction.insert(&quad),
                // The input's own failure (too large, the client gone) explains the I/O error.
                Err(RdfParseError::Io(_)) if reader.failed.is_some() => {
                    return Err(reader
                        .failed
                        .take()
                        .unwrap_or_else(|| Error::internal("input")));
                }
                Err(RdfParseError::Io(e)) => return Err(Error::internal(e)),
                Err(RdfParseError::Syntax(e)) => {
                    return Err(Error::invalid("data", format!("bad RDF: {e}")));
                }
            }
            n += 1;
        }
        transaction.commit().map_err(storage)?;
        Ok(n)
    }

    /// Loads N-Quads atomically, keeping blank node ids as written.
    fn load_quads(&self, data: &[u8]) -> Result<u64> {
        let _writer = self.write_lock()?;
        let mut transaction = self.store.start_transaction().map_err(storage)?;
        let mut n = 0u64;
        for quad in RdfParser::from_format(RdfFormat::NQuads).for_slice(data) {
            let quad = quad.map_err(|e| Error::invalid("data", format!("bad N-Quads: {e}")))?;
            transaction.insert(&quad);
            n += 1;
        }
        transaction.commit().map_err(storage)?;
        Ok(n)
    }
}

#[async_trait]
impl Database for GraphDatabase {
    async fn execute(&self, stmt: Statement, limits: &StatementLimits) -> Result<StatementResult> {
        let deadline = Deadline::arm(limits.timeout);
        let parsed = Parsed::new(&stmt, &deadline.token)?;
        let (inner, timeout) = (Arc::clone(&self.inner), limits.timeout);
        let writes = parsed.is_update();
        let limits = limits.clone();
        let run = move || inner.run(parsed, &limits, &deadline);
        if writes {
            blocking(run).await
        } else {
            reading(timeout, run).await
        }
    }

    async fn query(&self, stmt: Statement, limits: StatementLimits) -> Result<RowStream> {
        let mut deadline = Deadline::arm(limits.timeout);
        let parsed = Parsed::new(&stmt, &deadline.token)?;
        let (tx, rx) = mpsc::channel(limits.stream_buffer.max(1));
        deadline.watch(&tx);
        let (inner, rt) = (Arc::clone(&self.inner), Handle::current());
        tokio::task::spawn_blocking(move || {
            let errors = tx.clone();
            let sink = StreamSink::new(tx, &limits);
            if let Err(e) = inner.produce(parsed, sink, &rt, &deadline, &limits) {
                let _ = errors.blocking_send(Err(e));
            }
            drop(deadline);
        });
        Ok(ReceiverStream::new(rx).boxed())
    }

    async fn batch(
        &self,
        stmts: Vec<Statement>,
        transactional: bool,
        limits: &StatementLimits,
    ) -> Result<Vec<StatementResult>> {
        let deadline = Deadline::arm(limits.timeout);
        let parsed = stmts
            .iter()
            .enumerate()
            .map(|(i, s)| Parsed::new(s, &deadline.token).map_err(|e| e.at_statement(i)))
            .collect::<Result<Vec<_>>>()?;
        let (inner, limits) = (Arc::clone(&self.inner), limits.clone());
        let (writes, timeout) = (parsed.iter().any(Parsed::is_update), limits.timeout);
        let run = move || {
            if transactional {
                return inner.run_in_transaction(parsed, &limits, &deadline);
            }
            parsed
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    inner
                        .run(p, &limits, &deadline)
                        .map_err(|e| e.at_statement(i))
                })
                .collect()
        };
        if writes {
            blocking(run).await
        } else {
            reading(timeout, run).await
        }
    }

    async fn session(&self, _limits: StatementLimits) -> Result<Box<dyn Session>> {
        Err(self.unsupported("Session"))
    }

    async fn schema(&self, table: Option<&str>, limits: &StatementLimits) -> Result<Schema> {
        if table.is_some() {
            return Err(self.unsupported("GetSchema of a table"));
        }
        let deadline = Deadline::arm(limits.timeout);
        let inner = Arc::clone(&self.inner);
        let graph = reading(limits.timeout, move || inner.summary(&deadline)).await?;
        Ok(Schema {
            graph: Some(graph),
            ..Schema::default()
        })
    }

    async fn dump(&self, schema_only: bool, limits: StatementLimits) -> Result<DumpStream> {
        let (tx, rx) = mpsc::channel(limits.stream_buffer.max(1));
        let deadline = tokio::time::Instant::now() + limits.timeout;
        let (inner, rt) = (Arc::clone(&self.inner), Handle::current());
        tokio::task::spawn_blocking(move || {
            let errors = tx.clone();
            let mut out = DumpWriter::new(tx).with_deadline(deadline);
            // A graph has no schema apart from its quads: a schema-only dump is empty.
            let r = if schema_only {
                out.flush_blocking(&rt)
            } else {
                inner.dump(&mut out, &rt)
            };
            if let Err(e) = r
                && !out.gone()
            {
                drop(out);
                let _ = errors.blocking_send(Err(e));
            }
        });
        Ok(ReceiverStream::new(rx).boxed())
    }

    async fn import_records(&self, data: &[u8], limits: &StatementLimits) -> Result<u64> {
        if limits.read_only {
            return Err(Error::Query {
                kind: QueryErrorKind::Forbidden,
                code: Some("READ_ONLY".into()),
                message: "read-only access: loading quads writes".into(),
                statement_index: None,
            });
        }
        let (inner, data) = (Arc::clone(&self.inner), data.to_vec());
        blocking(move || inner.load_quads(&data)).await
    }

    async fn dump_rdf(
        &self,
        format: crate::core::transfer::RdfFormat,
        limits: StatementLimits,
    ) -> Result<DumpStream> {
        let (tx, rx) = mpsc::channel(limits.stream_buffer.max(1));
        let deadline = tokio::time::Instant::now() + limits.timeout;
        let (inner, rt) = (Arc::clone(&self.inner), Handle::current());
        tokio::task::spawn_blocking(move || {
            let errors = tx.clone();
            let mut out = DumpWriter::new(tx).with_deadline(deadline);
            // N-Quads keep the backup's form (rows counted a quad a line).
            let r = match format {
                crate::core::transfer::RdfFormat::NQuads => inner.dump(&mut out, &rt),
                other => inner.dump_as(rdf_format(other), &mut out, &rt),
            };
            if let Err(e) = r
                && !out.gone()
            {
                drop(out);
                let _ = errors.blocking_send(Err(e));
            }
        });
        Ok(ReceiverStream::new(rx).boxed())
    }

    async fn import_rdf(
        &self,
        spec: RdfImport,
        mut input: ImportStream,
        limits: &StatementLimits,
    ) -> Result<u64> {
        if limits.read_only {
            return Err(Error::Query {
                kind: QueryErrorKind::Forbidden,
                code: Some("READ_ONLY".into()),
                message: "read-only access: loading RDF writes".into(),
                statement_index: None,
            });
        }
        // A few chunks in flight: the parser reads at its own pace, the client waits for it.
        let (tx, rx) = mpsc::channel(4);
        let inner = Arc::clone(&self.inner);
        let load = tokio::task::spawn_blocking(move || inner.load(&spec, rx));
        let feed = async {
            while let Some(chunk) = input.next().await {
                let failed = chunk.is_err();
                if tx.send(chunk.map(Some)).await.is_err() || failed {
                    return;
                }
            }
            // Only this marks the end: a feed stopped any other way (an error, the deadline)
            // closes the channel without it, and the loader commits nothing.
            let _ = tx.send(Ok(None)).await;
        };
        let timeout = limits.timeout;
        let (_, loaded) = tokio::time::timeout(timeout, async { tokio::join!(feed, load) })
            .await
            .map_err(|_| {
                Error::Timeout(format!("the import ran past its deadline ({timeout:?})"))
            })?;
        loaded.map_err(|e| Error::internal(format!("graph task failed: {e}")))?
    }

    fn engine_name(&self) -> &'static str {
        "graph"
    }
}

/// The parser's and serializer's name for a format.
fn rdf_format(format: crate::core::transfer::RdfFormat) -> RdfFormat {
    use crate::core::transfer::RdfFormat as F;
    match format {
        F::NQuads => RdfFormat::NQuads,
        F::NTriples => RdfFormat::NTriples,
        F::Turtle => RdfFormat::Turtle,
        F::JsonLd => RdfFormat::JsonLd {
            profile: JsonLdProfile::Expanded.into(),
        },
    }
}

/// A serializer's output, handed to the dump's writer chunk by chunk.
struct DumpSink<'a> {
    out: &'a mut DumpWriter,
    rt: &'a Handle,
}

impl std::io::Write for DumpSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.buf_mut().extend_from_slice(buf);
        if self.out.full() {
            self.rt
                .block_on(self.out.send_full())
                .map_err(std::io::Error::other)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A failed write of a dump: the writer's own error (the client gone, the deadline) if it was one.
fn written_error(e: std::io::Error) -> Error {
    match e.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(ours)) => *ours,
        Some(Err(other)) => Error::internal(other),
        None => Error::internal("the dump could not be written"),
    }
}

/// The chunks of an import as a `Read` for the parser, on a blocking thread. The file ends at
/// an explicit `Ok(None)`; a channel closed before it is a failed input.
struct ChunkReader {
    chunks: mpsc::Receiver<Result<Option<Vec<u8>>>>,
    current: Vec<u8>,
    at: usize,
    /// Why the input stopped early, if it did: reported instead of the parser's I/O error.
    failed: Option<Error>,
    /// The end marker came: every later read is the end too.
    ended: bool,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            match self.chunks.blocking_recv() {
                Some(Ok(Some(chunk))) => (self.current, self.at) = (chunk, 0),
                Some(Ok(None)) => self.ended = true,
                Some(Err(e)) => {
                    self.failed = Some(e);
                    return Err(std::io::Error::other("the import's input failed"));
                }
                None => {
                    self.failed = Some(Error::Aborted(
                        "the import's input stopped before its end; nothing was loaded".into(),
                    ));
                    return Err(std::io::Error::other("the import's input stopped"));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The stream of a graph database as rows, for tests and the bench: the same events a client
/// gets from Query.
#[cfg(test)]
pub(crate) async fn read_all(mut stream: RowStream) -> Result<(Vec<Column>, Vec<Row>)> {
    use crate::core::value::RowEvent;
    let (mut columns, mut rows) = (Vec::new(), Vec::new());
    while let Some(ev) = stream.next().await {
        match ev? {
            RowEvent::Columns(c) => columns = c,
            RowEvent::Rows(r) => rows.extend(r),
            RowEvent::Encoded(_) | RowEvent::Done(_) => {}
        }
    }
    Ok((columns, rows))
}
