//! The data plane of one spawned Redis database: Execute, Query (with cursor streams) and
//! batches (pipelines and MULTI/EXEC), all over the database's own ACL user.

use std::{collections::HashSet, sync::Arc, time::Instant as StdInstant};

use async_trait::async_trait;
use futures::stream;
use redis::Value as Resp;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

use super::{
    Shared,
    command::{self, Cursor, Plan, SCAN_COUNT, Shape},
    namespace::Namespace,
    pool::{Deadline, Slot},
    reply, transfer,
};
use crate::{
    backend::{Database, DumpStream, RowStream, Session, StatementLimits},
    core::{
        error::{Error, Result},
        schema::Schema,
        value::{
            Batch, Column, Row, RowEvent, Statement, StatementResult, Summary, Truncation, Value,
            ValueKind,
        },
    },
};

/// What every call of an open database needs; shared with its streams' producer tasks.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) shared: Arc<Shared>,
    pub(super) ns: Namespace,
    slot: Arc<Slot>,
}

/// An open Redis database: a key namespace reached through its own ACL user.
#[derive(Debug)]
pub struct RedisDatabase {
    inner: Arc<Inner>,
}

impl RedisDatabase {
    pub(super) fn new(shared: Arc<Shared>, ns: Namespace) -> Self {
        let slot = shared.pool.user_slot(ns.clone());
        Self {
            inner: Arc::new(Inner { shared, ns, slot }),
        }
    }
}

fn cmd_of(args: &[Vec<u8>]) -> redis::Cmd {
    let mut cmd = redis::Cmd::new();
    for a in args {
        cmd.arg(a.as_slice());
    }
    cmd
}

/// Tags an error with its statement's position in a batch; usage errors carry it in their
/// reason, since only query errors have a field for it.
fn at(err: Error, index: usize) -> Error {
    match err {
        Error::InvalidArgument { field, reason } => Error::InvalidArgument {
            field,
            reason: format!("statement {index}: {reason}"),
        },
        other => other.at_statement(index),
    }
}

/// Appends what the client needs to know about the rest of a batch to a query error.
fn note(err: Error, text: &str) -> Error {
    err.map_query_message(|m| format!("{m}; {text}"))
}

impl Inner {
    /// The same database on a connection of its own, for long pipelines (a dump) that would
    /// otherwise hold up every call sharing this handle's multiplexed connection.
    pub(super) fn with_own_connection(&self) -> Arc<Inner> {
        Arc::new(Inner {
            shared: Arc::clone(&self.shared),
            ns: self.ns.clone(),
            slot: self.shared.pool.user_slot(self.ns.clone()),
        })
    }

    fn prefix(&self) -> &[u8] {
        self.ns.prefix.as_bytes()
    }

    async fn plan(&self, stmt: &Statement, deadline: Deadline) -> Result<Plan> {
        let argv = reply::argv(stmt)?;
        let table = self.shared.commands(deadline).await?;
        let plan = command::plan(&table, argv, self.prefix())?;
        debug!(user = %self.ns.user, command = %plan.name, "redis command");
        Ok(plan)
    }

    /// Sends one command as the database's user; an error reply is an error.
    pub(super) async fn call(&self, args: &[Vec<u8>], deadline: Deadline) -> Result<Resp> {
        let cmd = cmd_of(args);
        let reply = self
            .shared
            .pool
            .run(&self.slot, deadline, |mut c| async move {
                c.send_packed_command(&cmd).await
            })
            .await?;
        reply::check(reply)
    }

    /// Sends commands in one pipeline and returns every reply, errors included.
    pub(super) async fn pipeline(
        &self,
        pipe: redis::Pipeline,
        deadline: Deadline,
    ) -> Result<Vec<Resp>> {
        let count = pipe.len();
        self.shared
            .pool
            .run(&self.slot, deadline, |mut c| async move {
                c.send_packed_commands(&pipe, 0, count).await
            })
            .await
    }

    /// KEYS for Execute: SCAN with the confined pattern to the end, duplicates removed.
    async fn keys(
        &self,
        pattern: Vec<u8>,
        limits: &StatementLimits,
        deadline: Deadline,
    ) -> Result<StatementResult> {
        let mut args = scan_args(pattern);
        let mut seen = HashSet::new();
        let mut rows = Vec::new();
        let mut bytes = 0u64;
        loop {
            let reply = self.call(&args, deadline).await?;
            let (next, page) = reply::cursor_page(reply, Cursor::Keys, self.prefix())?;
            for row in page {
                if !seen.insert(key_bytes(&row[0])) {
                    continue;
                }
                bytes += row.iter().map(|v| v.approx_size() as u64).sum::<u64>();
                if rows.len() as u64 >= limits.max_rows || bytes > limits.max_bytes {
                    return Err(Error::LimitExceeded(format!(
                        "KEYS matches more than {} keys or {} bytes; use Query (it streams) or \
                         SCAN",
                        limits.max_rows, limits.max_bytes
                    )));
                }
                rows.push(row);
            }
            if next == b"0" {
                break;
            }
            args[1] = next;
        }
        Ok(StatementResult {
            rows_affected: 0,
            last_insert_id: None,
            columns: reply::columns(&["value"], &rows),
            rows,
        })
    }

    /// Streams a cursor command page by page into `tx`.
    async fn produce_cursor(
        &self,
        mut args: Vec<Vec<u8>>,
        cursor: Cursor,
        names: &[&str],
        limits: StatementLimits,
        deadline: Deadline,
        tx: &mpsc::Sender<Result<RowEvent>>,
    ) -> Result<()> {
        let started = StdInstant::now();
        let columns = names
            .iter()
            .map(|n| Column {
                name: (*n).to_owned(),
                declared_type: String::new(),
                kind: if *n == "score" {
                    ValueKind::Float
                } else {
                    // A key, member or value is text or bytes, cell by cell.
                    ValueKind::Unspecified
                },
            })
            .collect();
        if !send(tx, Ok(RowEvent::Columns(columns)), deadline).await {
            return Ok(());
        }
        let at_cursor = cursor.cursor_index();
        if !args[at_cursor + 1..]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(b"COUNT"))
        {
            args.push(b"COUNT".to_vec());
            args.push(SCAN_COUNT.to_vec());
        }
        let mut batcher = Batcher::new(&limits);
        loop {
            let reply = self.call(&args, deadline).await?;
            let (next, page) = reply::cursor_page(reply, cursor, self.prefix())?;
            for row in page {
                match batcher.push(row) {
                    Pushed::Added => {}
                    Pushed::Full(batch) => {
                        if !send(tx, Ok(batch), deadline).await {
                            return Ok(());
                        }
                    }
                    Pushed::Truncated => break,
                }
            }
            // Each page ends a batch, so the client sees rows as soon as Redis hands them over.
            if let Some(batch) = batcher.flush()
                && !send(tx, Ok(batch), deadline).await
            {
                return Ok(());
            }
            if batcher.truncation != Truncation::None || next == b"0" {
                break;
            }
            args[at_cursor] = next;
        }
        send(tx, Ok(RowEvent::Done(batcher.summary(started))), deadline).await;
        Ok(())
    }

    /// A non-transactional batch: one pipeline. Statements up to the first refused one are
    /// sent; that one's error is reported after theirs.
    async fn run_pipeline(
        &self,
        plans: Vec<Plan>,
        refused: Option<Error>,
        limits: &StatementLimits,
        deadline: Deadline,
    ) -> Result<Vec<StatementResult>> {
        if plans.is_empty() {
            return refused.map_or(Ok(Vec::new()), Err);
        }
        let mut pipe = redis::pipe();
        for p in &plans {
            pipe.add_command(cmd_of(&p.args));
        }
        let replies = self.pipeline(pipe, deadline).await?;
        let sent = plans.len();
        let mut results = Vec::with_capacity(sent);
        let mut budget = Budget::new(limits, self.prefix());
        for (i, (reply, plan)) in replies.into_iter().zip(&plans).enumerate() {
            let reply = reply::check(reply).map_err(|e| {
                let later = sent - i - 1;
                let e = at(e, i);
                if later > 0 {
                    note(
                        e,
                        &format!(
                            "the {later} command(s) after it were pipelined with it and ran \
                             (use `transaction` for all-or-nothing)"
                        ),
                    )
                } else {
                    e
                }
            })?;
            results.push(budget.take(reply, plan).map_err(|e| at(e, i))?);
        }
        refused.map_or(Ok(results), Err)
    }

    /// A transactional batch: MULTI, the commands and EXEC in one pipeline.
    async fn run_transaction(
        &self,
        plans: Vec<Plan>,
        limits: &StatementLimits,
        deadline: Deadline,
    ) -> Result<Vec<StatementResult>> {
        let mut pipe = redis::pipe();
        pipe.cmd("MULTI");
        for p in &plans {
            pipe.add_command(cmd_of(&p.args));
        }
        pipe.cmd("EXEC");
        let mut replies = self.pipeline(pipe, deadline).await?;
        let n = plans.len();
        let exec = replies.pop().unwrap_or(Resp::Nil);
        let mut replies = replies.into_iter();
        // The user is granted MULTI, so this only fails if someone changed its ACL; then the
        // commands ran one by one, which the client must know.
        if let Some(multi) = replies.next() {
            reply::check(multi).map_err(|e| {
                note(
                    e,
                    "MULTI was refused, so the commands ran one by one, not as a transaction",
                )
            })?;
        }
        // Replies 1..=n answer the queueing: an error there (unknown command, wrong arity,
        // NOPERM) makes Redis discard the whole transaction at EXEC.
        for (i, queued) in replies.enumerate() {
            reply::check(queued).map_err(|e| {
                note(
                    at(e, i),
                    "the transaction was discarded (EXECABORT): nothing was applied",
                )
            })?;
        }
        let Resp::Array(items) = exec else {
            return Err(match reply::check(exec) {
                Err(e) => note(e, "the transaction was discarded: nothing was applied"),
                Ok(other) => Error::internal(format!("unexpected EXEC reply {other:?}")),
            });
        };
        if items.len() != n {
            return Err(Error::internal(
                "EXEC returned a reply per command it did not get",
            ));
        }
        let mut budget = Budget::new(limits, self.prefix());
        let mut results = Vec::with_capacity(n);
        for (i, (item, plan)) in items.into_iter().zip(&plans).enumerate() {
            let reply = reply::check(item).map_err(|e| {
                note(
                    at(e, i),
                    "Redis still applied the transaction's other commands: MULTI/EXEC does not \
                     roll back a command that fails while running",
                )
            })?;
            results.push(budget.take(reply, plan).map_err(|e| at(e, i))?);
        }
        Ok(results)
    }
}

/// The row and byte limits shared by the replies of one batch.
struct Budget<'a> {
    max_rows: u64,
    bytes_left: u64,
    prefix: &'a [u8],
}

impl<'a> Budget<'a> {
    fn new(limits: &StatementLimits, prefix: &'a [u8]) -> Self {
        Self {
            max_rows: limits.max_rows,
            bytes_left: limits.max_bytes,
            prefix,
        }
    }

    fn take(&mut self, mut reply: Resp, plan: &Plan) -> Result<StatementResult> {
        reply::strip_keys(&mut reply, plan.reply_keys, self.prefix);
        let r = reply::result(reply, self.max_rows, self.bytes_left, plan.writes)?;
        let used: u64 = r
            .rows
            .iter()
            .flatten()
            .map(|v| v.approx_size() as u64)
            .sum();
        self.bytes_left = self.bytes_left.saturating_sub(used);
        Ok(r)
    }
}

fn scan_args(pattern: Vec<u8>) -> Vec<Vec<u8>> {
    vec![
        b"SCAN".to_vec(),
        b"0".to_vec(),
        b"MATCH".to_vec(),
        pattern,
        b"COUNT".to_vec(),
        SCAN_COUNT.to_vec(),
    ]
}

fn key_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::Text(s) => s.as_bytes().to_vec(),
        Value::Bytes(b) => b.clone(),
        other => format!("{other:?}").into_bytes(),
    }
}

/// Sends one event, waiting while the client is slow. False when the client has gone or the
/// deadline passed (then the client gets DEADLINE_EXCEEDED).
async fn send(
    tx: &mpsc::Sender<Result<RowEvent>>,
    ev: Result<RowEvent>,
    deadline: Deadline,
) -> bool {
    match tokio::time::timeout_at(deadline.at, tx.send(ev)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => {
            debug!("client went away; stopping the cursor");
            false
        }
        Err(_) => {
            let _ = tx.try_send(Err(Error::Timeout(
                "the stream ran past its deadline while the client was not reading".into(),
            )));
            false
        }
    }
}

enum Pushed {
    Added,
    Full(RowEvent),
    Truncated,
}

/// Packs rows into batches capped by count and approximate bytes, and cuts the stream at the
/// row and byte limits.
struct Batcher {
    max_rows: u64,
    max_bytes: u64,
    batch_rows: usize,
    batch_bytes: usize,
    batch: Batch,
    row_count: u64,
    total_bytes: u64,
    truncation: Truncation,
}

impl Batcher {
    fn new(limits: &StatementLimits) -> Self {
        Self {
            max_rows: limits.max_rows,
            max_bytes: limits.max_bytes,
            batch_rows: limits.batch_rows.max(1),
            batch_bytes: limits.batch_bytes.max(1),
            batch: Batch::new(limits.encoder.clone()),
            row_count: 0,
            total_bytes: 0,
            truncation: Truncation::None,
        }
    }

    fn push(&mut self, row: Row) -> Pushed {
        if self.truncation != Truncation::None {
            return Pushed::Truncated;
        }
        if self.row_count >= self.max_rows {
            self.truncation = Truncation::RowLimit;
            return Pushed::Truncated;
        }
        let size = row.iter().map(Value::approx_size).sum::<usize>() + 2;
        if self.total_bytes + size as u64 > self.max_bytes {
            self.truncation = Truncation::ByteLimit;
            return Pushed::Truncated;
        }
        self.row_count += 1;
        self.total_bytes += size as u64;
        self.batch.push(row, size);
        if self.batch.reached(self.batch_rows, self.batch_bytes)
            && let Some(full) = self.batch.take()
        {
            return Pushed::Full(full);
        }
        Pushed::Added
    }

    fn flush(&mut self) -> Option<RowEvent> {
        self.batch.take()
    }

    fn summary(&self, started: StdInstant) -> Summary {
        Summary {
            row_count: self.row_count,
            rows_affected: 0,
            elapsed: started.elapsed(),
            truncation: self.truncation,
        }
    }
}

/// A whole reply as stream events: header, batches, summary.
fn events(
    columns: Vec<Column>,
    rows: Vec<Row>,
    limits: &StatementLimits,
    started: StdInstant,
) -> Vec<Result<RowEvent>> {
    let mut out = vec![Ok(RowEvent::Columns(columns))];
    let mut batcher = Batcher::new(limits);
    for row in rows {
        match batcher.push(row) {
            Pushed::Added => {}
            Pushed::Full(batch) => out.push(Ok(batch)),
            Pushed::Truncated => break,
        }
    }
    if let Some(batch) = batcher.flush() {
        out.push(Ok(batch));
    }
    out.push(Ok(RowEvent::Done(batcher.summary(started))));
    out
}

#[async_trait]
impl Database for RedisDatabase {
    fn engine_name(&self) -> &'static str {
        "redis"
    }

    async fn execute(&self, stmt: Statement, limits: &StatementLimits) -> Result<StatementResult> {
        let inner = &self.inner;
        let deadline = Deadline::after(limits.timeout);
        inner.shared.pool.ensure_available()?;
        let run = async {
            let plan = inner.plan(&stmt, deadline).await?;
            match plan.shape {
                Shape::Keys(pattern) => inner.keys(pattern, limits, deadline).await,
                _ => {
                    let mut reply = inner.call(&plan.args, deadline).await?;
                    reply::strip_keys(&mut reply, plan.reply_keys, inner.prefix());
                    reply::result(reply, limits.max_rows, limits.max_bytes, plan.writes)
                }
            }
        };
        run.await
            .map_err(|e| reply::strip_message(e, &inner.ns.prefix))
    }

    async fn query(&self, stmt: Statement, limits: StatementLimits) -> Result<RowStream> {
        let inner = Arc::clone(&self.inner);
        let started = StdInstant::now();
        let deadline = Deadline::after(limits.timeout);
        inner.shared.pool.ensure_available()?;
        let plan = inner
            .plan(&stmt, deadline)
            .await
            .map_err(|e| reply::strip_message(e, &inner.ns.prefix))?;
        let (args, cursor, names) = match plan.shape {
            Shape::Plain => {
                let mut reply = inner
                    .call(&plan.args, deadline)
                    .await
                    .map_err(|e| reply::strip_message(e, &inner.ns.prefix))?;
                reply::strip_keys(&mut reply, plan.reply_keys, inner.prefix());
                let (columns, rows) =
                    reply::rows(reply).map_err(|e| reply::strip_message(e, &inner.ns.prefix))?;
                return Ok(Box::pin(stream::iter(events(
                    columns, rows, &limits, started,
                ))));
            }
            Shape::Cursor(c) => (plan.args, c, c.columns()),
            // KEYS keeps its Execute shape (one `value` column) but streams SCAN's pages.
            Shape::Keys(pattern) => (scan_args(pattern), Cursor::Keys, &["value"][..]),
        };
        let (tx, rx) = mpsc::channel(limits.stream_buffer.max(1));
        // The producer runs on its own so that the receiver is returned at once: the bounded
        // channel then paces the cursor at the client's speed.
        tokio::spawn(async move {
            if let Err(e) = inner
                .produce_cursor(args, cursor, names, limits, deadline, &tx)
                .await
            {
                let _ = tx
                    .send(Err(reply::strip_message(e, &inner.ns.prefix)))
                    .await;
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
        let inner = &self.inner;
        let deadline = Deadline::after(limits.timeout);
        inner.shared.pool.ensure_available()?;
        let run =
            async {
                let mut plans = Vec::with_capacity(stmts.len());
                let mut refused = None;
                for (i, stmt) in stmts.iter().enumerate() {
                    let planned = inner.plan(stmt, deadline).await.and_then(|p| match p.shape {
                    Shape::Keys(_) => Err(Error::invalid(
                        "sql",
                        "KEYS is not available in ExecuteBatch (the gateway emulates it with \
                         SCAN): use Execute or Query, or SCAN",
                    )),
                    _ => Ok(p),
                });
                    match planned {
                        Ok(p) => plans.push(p),
                        // Nothing of a transaction is sent before every statement is accepted.
                        Err(e) if transactional => return Err(at(e, i)),
                        Err(e) => {
                            refused = Some(at(e, i));
                            break;
                        }
                    }
                }
                if transactional {
                    inner.run_transaction(plans, limits, deadline).await
                } else {
                    inner.run_pipeline(plans, refused, limits, deadline).await
                }
            };
        run.await
            .map_err(|e| reply::strip_message(e, &inner.ns.prefix))
    }

    async fn session(&self, _limits: StatementLimits) -> Result<Box<dyn Session>> {
        Err(Error::Unsupported {
            operation: "Session",
            backend: "redis",
        })
    }

    /// The key-space summary; the format is described in the Redis backend's `transfer.rs`.
    async fn schema(&self, table: Option<&str>, limits: &StatementLimits) -> Result<Schema> {
        transfer::schema(&self.inner, table, limits).await
    }

    /// NDJSON records, one per key; the format is described in the Redis backend's `transfer.rs`.
    async fn dump(&self, schema_only: bool, limits: StatementLimits) -> Result<DumpStream> {
        transfer::dump(Arc::clone(&self.inner), schema_only, limits)
    }

    /// Replays [`dump`](Database::dump) records in one MULTI/EXEC.
    async fn import_records(&self, data: &[u8], limits: &StatementLimits) -> Result<u64> {
        transfer::import(&self.inner, data, limits, transfer::ImportInto::Live).await
    }

    async fn restore_records(&self, data: &[u8], limits: &StatementLimits) -> Result<u64> {
        transfer::import(&self.inner, data, limits, transfer::ImportInto::Empty).await
    }
}
