//! Moving data in and out: exports (CSV, JSON, NDJSON), dumps, imports (CSV, SQL scripts,
//! NDJSON key records), and the schema and plan inspection that goes with them.
//!
//! Exports stream: rows are encoded as they arrive into chunks of about [`CHUNK_BYTES`], and a
//! full channel holds the query back. Imports run inside one transaction on a pinned session,
//! statement by statement as the client's chunks arrive, so memory stays bounded by the longest
//! record or statement (capped by the line limit) and one insert batch.

use std::collections::HashSet;

use base64::Engine as _;
use futures::{StreamExt, stream::BoxStream};
use time::Time;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use super::{
    access::{Principal, Role},
    csv::{self, CsvParser, Record},
    error::{Error, QueryErrorKind, Result},
    forge::{Forge, TransferTarget},
    names::Identifier,
    schema::{Plan, Schema},
    script::Splitter,
    table::{self, ColumnSpec, ColumnType, SqlDialect, TableSpec},
    value::{Column, RowEvent, Statement, Truncation, Value, ValueKind, text},
};
use crate::backend::{DumpChunk, DumpStream, Session, StatementLimits};

/// Bytes of an export chunk, about: small enough to keep a stream's memory low (with the
/// channel's few chunks), large enough that per-message costs vanish.
pub const CHUNK_BYTES: usize = 64 << 10;

/// Chunks buffered between an export's encoder and the client.
const CHUNK_BUFFER: usize = 4;

/// Rejected rows listed in an import report, at most; the count covers all of them.
const MAX_REJECTED_LISTED: usize = 1000;

/// Parameters per insert statement, at most: under SQLite's 32 766 and the 65 535 of PostgreSQL
/// and MySQL.
const MAX_PARAMS: usize = 30_000;

/// Rows per insert statement, at most.
const MAX_BATCH_ROWS: usize = 1000;

/// Rows per bulk load (PostgreSQL COPY), at most: larger batches mean fewer round trips, and a
/// batch the engine refuses is retried row by row to find the culprit, so not much larger.
const MAX_BULK_ROWS: usize = 10_000;

/// Bytes of field text a batch collects before it is sent, whatever its row count, so that
/// wide rows do not pile up in memory.
const MAX_BATCH_BYTES: usize = 8 << 20;

/// A row export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// CSV options of an export or import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Field delimiter.
    pub delimiter: u8,
    /// Text standing for NULL: written unquoted on export; an unquoted field equal to it reads
    /// as NULL on import (a quoted one never does).
    pub null_text: String,
    /// Import: no header row; fields are the table's columns in order.
    pub no_header: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            null_text: String::new(),
            no_header: false,
        }
    }
}

/// What an export reads.
#[derive(Debug, Clone)]
pub enum ExportSource {
    /// Every row of a table or view.
    Table(Identifier),
    /// The rows of one statement.
    Query(Statement),
}

/// How ImportCsv creates its table.
#[derive(Debug, Clone, Default)]
pub struct CreateFromCsv {
    /// Types to use instead of the inferred ones, by header name.
    pub column_types: Vec<(String, ColumnType)>,
    /// Rows sampled for inference.
    pub sample_rows: usize,
}

/// An ImportCsv request.
#[derive(Debug, Clone)]
pub struct CsvImport {
    /// Target table.
    pub table: Identifier,
    /// CSV options.
    pub csv: CsvOptions,
    /// Create the table from the file.
    pub create: Option<CreateFromCsv>,
    /// Report bad rows instead of failing.
    pub skip_bad_rows: bool,
}

/// What an ImportCsv did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvImportReport {
    /// Data rows read.
    pub rows_read: u64,
    /// Rows inserted.
    pub rows_inserted: u64,
    /// Rows rejected.
    pub rows_rejected: u64,
    /// The first rejected rows: line and reason.
    pub rejected: Vec<(u64, String)>,
    /// The table was created.
    pub table_created: bool,
}

/// What an ImportSql did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptReport {
    /// Statements run.
    pub statements: u64,
    /// Rows changed in total.
    pub rows_affected: u64,
}

/// The bytes of an import as the client sends them.
pub type ImportStream = BoxStream<'static, Result<Vec<u8>>>;

/// An export's statement that the engine refused as a write is the caller's mistake: exports
/// take one read statement.
fn export_refusal(err: Error) -> Error {
    match err {
        Error::Query {
            kind: QueryErrorKind::Forbidden,
            message,
            ..
        } => Error::invalid(
            "sql",
            format!(
                "an export takes one read statement; the engine refused this one as a write, and \
                 nothing changed ({message})"
            ),
        ),
        other => other,
    }
}

impl Forge {
    /// Streams the rows of a table or statement in `format`.
    pub async fn export(
        &self,
        who: &Principal,
        db: &str,
        source: ExportSource,
        format: ExportFormat,
        csv: CsvOptions,
    ) -> Result<DumpStream> {
        let t = self.transfer_target(who, db, Role::Read).await?;
        let stmt = match source {
            ExportSource::Query(stmt) => stmt,
            ExportSource::Table(table) => {
                let d = sql_dialect(&t, "ExportTable")?;
                ensure_table(&t, d, &table).await?;
                Statement::new(format!("SELECT * FROM {}", d.quote_ident(table.as_str())))
            }
        };
        // An export reads: its statement runs with read-only access whatever the caller's role,
        // so the engine refuses a write (DELETE … RETURNING) before it changes anything.
        let limits = StatementLimits {
            read_only: true,
            ..t.transfer.clone()
        };
        let rows = t
            .database
            .query(stmt, limits)
            .await
            .map_err(export_refusal)?;
        let (tx, rx) = mpsc::channel(CHUNK_BUFFER);
        tokio::spawn(async move {
            let mut rows = rows;
            let mut enc = Encoder::new(format, csv);
            while let Some(event) = rows.next().await {
                let step = match event {
                    Ok(RowEvent::Columns(columns)) => {
                        enc.header(&columns);
                        Ok(())
                    }
                    Ok(RowEvent::Rows(batch)) => batch.iter().try_for_each(|r| enc.row(r)),
                    // The transfer limits carry no encoder.
                    Ok(RowEvent::Encoded(_)) => {
                        Err(Error::internal("an export stream came already encoded"))
                    }
                    Ok(RowEvent::Done(summary)) => match summary.truncation {
                        Truncation::None => {
                            enc.finish();
                            Ok(())
                        }
                        _ => Err(Error::LimitExceeded(
                            "the export was cut by a row or byte limit".into(),
                        )),
                    },
                    Err(e) => Err(export_refusal(e)),
                };
                if let Err(e) = step {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                while let Some(chunk) = enc.take(false) {
                    if tx.send(Ok(chunk)).await.is_err() {
                        debug!("export stopped: the client went away");
                        return;
                    }
                }
            }
            if let Some(chunk) = enc.take(true) {
                let _ = tx.send(Ok(chunk)).await;
            }
        });
        Ok(ReceiverStream::new(rx).boxed())
    }

    /// Streams a dump of the whole database (see [`crate::backend::Database::dump`]).
    pub async fn dump(&self, who: &Principal, db: &str, schema_only: bool) -> Result<DumpStream> {
        let t = self.transfer_target(who, db, Role::Read).await?;
        t.database.dump(schema_only, t.transfer.clone()).await
    }

    /// Describes the database's tables, or one of them.
    pub async fn schema(
        &self,
        who: &Principal,
        db: &str,
        table: Option<Identifier>,
    ) -> Result<Schema> {
        let t = self.transfer_target(who, db, Role::Read).await?;
        t.database
            .schema(table.as_ref().map(Identifier::as_str), &t.whole)
            .await
    }

    /// The plan of a statement. `analyze` runs it (rolled back), so it needs write access.
    pub async fn explain(
        &self,
        who: &Principal,
        db: &str,
        stmt: Statement,
        analyze: bool,
    ) -> Result<Plan> {
        let needed = if analyze { Role::Write } else { Role::Read };
        let t = self.transfer_target(who, db, needed).await?;
        t.database.explain(stmt, analyze, &t.whole).await
    }

    /// Imports NDJSON key records into a key-value database, all or nothing.
    pub async fn import_ndjson(
        &self,
        who: &Principal,
        db: &str,
        mut input: ImportStream,
    ) -> Result<u64> {
        let t = self.transfer_target(who, db, Role::Write).await?;
        if !t.capabilities.key_value {
            return Err(Error::Unsupported {
                operation: "ImportNdjson",
                backend: t.kind.as_str(),
            });
        }
        let mut data = Vec::new();
        while let Some(chunk) = input.next().await {
            let chunk = chunk?;
            if (data.len() + chunk.len()) as u64 > t.limits.max_import_bytes {
                return Err(too_large(t.limits.max_import_bytes));
            }
            data.extend_from_slice(&chunk);
        }
        let max_line = t.limits.max_import_line_bytes;
        if let Some((i, _)) = data
            .split(|b| *b == b'\n')
            .enumerate()
            .find(|(_, l)| l.len() > max_line)
        {
            return Err(Error::LimitExceeded(format!(
                "line {} is longer than the import line limit of {max_line} bytes",
                i + 1
            )));
        }
        t.database.import_records(&data, &t.whole).await
    }

    /// Runs an SQL script in one transaction (see TransferService.ImportSql for MySQL's DDL).
    pub async fn import_sql(
        &self,
        who: &Principal,
        db: &str,
        mut input: ImportStream,
    ) -> Result<ScriptReport> {
        let t = self.transfer_target(who, db, Role::Write).await?;
        if !(t.capabilities.sql && t.capabilities.sessions) {
            return Err(Error::Unsupported {
                operation: "ImportSql",
                backend: t.kind.as_str(),
            });
        }
        let mut splitter = Splitter::new(t.kind, t.limits.max_import_line_bytes);
        let mut session = t.database.session(t.whole.clone()).await?;
        session.begin().await?;
        let mut report = ScriptReport::default();
        let mut total = 0u64;
        let outcome: Result<()> = async {
            loop {
                let stmts = match input.next().await {
                    Some(chunk) => {
                        let chunk = chunk?;
                        total += chunk.len() as u64;
                        if total > t.limits.max_import_bytes {
                            return Err(too_large(t.limits.max_import_bytes));
                        }
                        splitter.push(&chunk)?
                    }
                    None => break,
                };
                run_script(&mut *session, stmts, &mut report).await?;
            }
            let rest = std::mem::replace(&mut splitter, Splitter::new(t.kind, 0)).finish()?;
            run_script(&mut *session, rest, &mut report).await
        }
        .await;
        match outcome {
            Ok(()) => {
                session.commit().await?;
                Ok(report)
            }
            Err(e) => {
                if let Err(rb) = session.rollback().await {
                    warn!(error = %rb, "rolling back a failed SQL import failed");
                }
                Err(e)
            }
        }
    }

    /// Imports a CSV file into a table, in one transaction.
    pub async fn import_csv(
        &self,
        who: &Principal,
        db: &str,
        spec: CsvImport,
        input: ImportStream,
    ) -> Result<CsvImportReport> {
        let t = self.transfer_target(who, db, Role::Write).await?;
        let d = sql_dialect(&t, "ImportCsv")?;
        if !t.capabilities.sessions {
            return Err(Error::Unsupported {
                operation: "ImportCsv",
                backend: t.kind.as_str(),
            });
        }
        let mut reader = CsvInput::new(input, &spec.csv, &t);
        let header = if spec.csv.no_header {
            None
        } else {
            match reader.next().await? {
                Some(r) => Some(header_names(r)?),
                None => {
                    return Err(Error::invalid(
                        "chunk",
                        "the file is empty: a header row was expected",
                    ));
                }
            }
        };
        let mut sample = Vec::new();
        let mut report = CsvImportReport::default();
        let columns: Vec<(String, ValueKind)> = if let Some(create) = &spec.create {
            let Some(names) = &header else {
                return Err(Error::invalid(
                    "csv.no_header",
                    "creating a table needs a header row to name its columns",
                ));
            };
            if table_exists(&t, d, &spec.table).await? {
                return Err(Error::AlreadyExists {
                    what: "table",
                    name: spec.table.as_str().to_owned(),
                });
            }
            let want = create.sample_rows.max(1);
            while sample.len() < want {
                match reader.next().await? {
                    Some(r) => sample.push(r),
                    None => break,
                }
            }
            let types = infer_types(names, &sample, &spec.csv, &create.column_types)?;
            let table_spec = TableSpec {
                table: spec.table.clone(),
                columns: names
                    .iter()
                    .zip(&types)
                    .map(|(n, ty)| {
                        Ok(ColumnSpec {
                            name: Identifier::parse("header", n)?,
                            ty: *ty,
                            primary_key: false,
                            not_null: false,
                            unique: false,
                            default: None,
                        })
                    })
                    .collect::<Result<_>>()?,
                if_not_exists: false,
            };
            t.database
                .execute(table::create_table(d, &table_spec)?, &t.whole)
                .await?;
            report.table_created = true;
            names
                .iter()
                .cloned()
                .zip(types.into_iter().map(kind_of))
                .collect()
        } else {
            if !table_exists(&t, d, &spec.table).await? {
                return Err(Error::NotFound {
                    what: "table",
                    name: spec.table.as_str().to_owned(),
                });
            }
            let table_columns = table_columns(&t, d, &spec.table).await?;
            match &header {
                None => table_columns,
                Some(names) => match_header(names, &table_columns)?,
            }
        };
        let mut session = t.database.session(t.whole.clone()).await?;
        let result = async {
            session.begin().await?;
            let mut insert = Inserter::new(d, &spec.table, &columns, spec.skip_bad_rows);
            for r in sample.drain(..) {
                insert
                    .record(&mut *session, r, &spec.csv, &mut report)
                    .await?;
            }
            while let Some(r) = reader.next().await? {
                insert
                    .record(&mut *session, r, &spec.csv, &mut report)
                    .await?;
            }
            insert.flush(&mut *session, &mut report).await?;
            session.commit().await
        }
        .await;
        match result {
            Ok(()) => Ok(report),
            Err(e) => {
                if let Err(rb) = session.rollback().await {
                    debug!(error = %rb, "rollback after a failed CSV import");
                }
                drop(session);
                if report.table_created {
                    let drop_table = Statement::new(format!(
                        "DROP TABLE {}",
                        d.quote_ident(spec.table.as_str())
                    ));
                    if let Err(de) = t.database.execute(drop_table, &t.whole).await {
                        warn!(error = %de, "could not drop the table a failed CSV import created");
                    }
                }
                Err(e)
            }
        }
    }
}

fn too_large(max: u64) -> Error {
    Error::LimitExceeded(format!(
        "the import is larger than the server's limit of {max} bytes; nothing was imported"
    ))
}

fn sql_dialect(t: &TransferTarget, operation: &'static str) -> Result<&'static dyn SqlDialect> {
    t.dialect
        .filter(|_| t.capabilities.table_service)
        .ok_or(Error::Unsupported {
            operation,
            backend: t.kind.as_str(),
        })
}

async fn table_exists(t: &TransferTarget, d: &dyn SqlDialect, table: &Identifier) -> Result<bool> {
    let found = t
        .database
        .execute(d.table_exists(table.as_str()), &t.whole)
        .await?;
    Ok(!found.rows.is_empty())
}

async fn ensure_table(t: &TransferTarget, d: &dyn SqlDialect, table: &Identifier) -> Result<()> {
    if table_exists(t, d, table).await? {
        Ok(())
    } else {
        Err(Error::NotFound {
            what: "table",
            name: table.as_str().to_owned(),
        })
    }
}

/// The table's columns and the kinds its cells take, from an empty SELECT.
async fn table_columns(
    t: &TransferTarget,
    d: &dyn SqlDialect,
    table: &Identifier,
) -> Result<Vec<(String, ValueKind)>> {
    let (limit, params) = d.limit_offset(Some(0), None);
    let stmt = Statement {
        sql: format!("SELECT * FROM {}{limit}", d.quote_ident(table.as_str())),
        params,
    };
    let result = t.database.execute(stmt, &t.whole).await?;
    Ok(result
        .columns
        .into_iter()
        .map(|c| (c.name, c.kind))
        .collect())
}

/// Runs split statements on the import's session, naming the failing one.
async fn run_script(
    session: &mut dyn Session,
    stmts: Vec<super::script::ScriptStatement>,
    report: &mut ScriptReport,
) -> Result<()> {
    for s in stmts {
        let result = session
            .execute(Statement::new(s.sql))
            .await
            .map_err(|e| at_statement(e, s.number, s.line))?;
        report.statements += 1;
        report.rows_affected += result.rows_affected;
    }
    Ok(())
}

/// Prefixes an error's message with where in the script it happened.
fn at_statement(err: Error, number: usize, line: u64) -> Error {
    let place = format!("statement {number} (line {line})");
    match err {
        Error::Query {
            kind,
            code,
            message,
            ..
        } => Error::Query {
            kind,
            code,
            message: format!("{place}: {message}"),
            statement_index: Some(number - 1),
        },
        Error::InvalidArgument { field, reason } => Error::InvalidArgument {
            field,
            reason: format!("{place}: {reason}"),
        },
        Error::PermissionDenied(m) => Error::PermissionDenied(format!("{place}: {m}")),
        Error::LimitExceeded(m) => Error::LimitExceeded(format!("{place}: {m}")),
        Error::Timeout(m) => Error::Timeout(format!("{place}: {m}")),
        other => other,
    }
}

/// CSV records read from the client's chunks, with the import's size limit.
struct CsvInput {
    input: ImportStream,
    parser: CsvParser,
    pending: std::collections::VecDeque<Record>,
    total: u64,
    max_total: u64,
    ended: bool,
}

impl CsvInput {
    fn new(input: ImportStream, csv: &CsvOptions, t: &TransferTarget) -> Self {
        Self {
            input,
            parser: CsvParser::new(csv.delimiter, t.limits.max_import_line_bytes),
            pending: Default::default(),
            total: 0,
            max_total: t.limits.max_import_bytes,
            ended: false,
        }
    }

    async fn next(&mut self) -> Result<Option<Record>> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Ok(Some(r));
            }
            if self.ended {
                return Ok(None);
            }
            let mut out = Vec::new();
            match self.input.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    self.total += chunk.len() as u64;
                    if self.total > self.max_total {
                        return Err(too_large(self.max_total));
                    }
                    self.parser.push(&chunk, &mut out)?;
                }
                None => {
                    self.parser.finish(&mut out);
                    self.ended = true;
                }
            }
            self.pending.extend(out);
        }
    }
}

fn header_names(r: Record) -> Result<Vec<String>> {
    if let Some(e) = r.error {
        return Err(Error::invalid("chunk", format!("header row: {e}")));
    }
    let mut seen = HashSet::new();
    r.fields
        .into_iter()
        .map(|f| {
            let name = String::from_utf8(f.bytes)
                .map_err(|_| Error::invalid("chunk", "the header row is not valid UTF-8"))?;
            if !seen.insert(name.clone()) {
                return Err(Error::invalid(
                    "chunk",
                    format!("the header names column {name:?} twice"),
                ));
            }
            Ok(name)
        })
        .collect()
}

fn match_header(
    names: &[String],
    table: &[(String, ValueKind)],
) -> Result<Vec<(String, ValueKind)>> {
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !table.iter().any(|(c, _)| c == *n))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(Error::invalid(
            "chunk",
            format!(
                "the header names columns the table does not have: {}",
                unknown.join(", ")
            ),
        ));
    }
    Ok(names
        .iter()
        .map(|n| {
            let kind = table
                .iter()
                .find(|(c, _)| c == n)
                .map_or(ValueKind::Unspecified, |(_, k)| *k);
            (n.clone(), kind)
        })
        .collect())
}

fn kind_of(ty: ColumnType) -> ValueKind {
    match ty {
        ColumnType::Integer => ValueKind::Int,
        ColumnType::Float => ValueKind::Float,
        ColumnType::Text => ValueKind::Text,
        ColumnType::Bytes => ValueKind::Bytes,
        ColumnType::Bool => ValueKind::Bool,
        ColumnType::Decimal => ValueKind::Decimal,
        ColumnType::Json => ValueKind::Json,
        ColumnType::Timestamp => ValueKind::Timestamp,
        ColumnType::Date => ValueKind::Date,
    }
}

/// Column types from sampled values: the narrowest type every non-NULL value fits.
fn infer_types(
    names: &[String],
    sample: &[Record],
    csv: &CsvOptions,
    overrides: &[(String, ColumnType)],
) -> Result<Vec<ColumnType>> {
    if let Some((unknown, _)) = overrides.iter().find(|(n, _)| !names.contains(n)) {
        return Err(Error::invalid(
            "create.column_types",
            format!("{unknown:?} is not a column of the file's header"),
        ));
    }
    const ORDER: [ColumnType; 5] = [
        ColumnType::Integer,
        ColumnType::Float,
        ColumnType::Bool,
        ColumnType::Date,
        ColumnType::Timestamp,
    ];
    Ok(names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if let Some((_, ty)) = overrides.iter().find(|(n, _)| n == name) {
                return *ty;
            }
            let values: Vec<&str> = sample
                .iter()
                .filter(|r| r.error.is_none() && r.fields.len() == names.len())
                .filter_map(|r| {
                    let f = &r.fields[i];
                    let text = std::str::from_utf8(&f.bytes).ok()?;
                    (f.quoted || text != csv.null_text).then_some(text)
                })
                .collect();
            if values.is_empty() {
                return ColumnType::Text;
            }
            ORDER
                .into_iter()
                .find(|ty| {
                    values.iter().all(|v| match ty {
                        ColumnType::Bool => matches!(*v, "true" | "false" | "TRUE" | "FALSE"),
                        _ => parse_cell(kind_of(*ty), v).is_ok(),
                    })
                })
                .unwrap_or(ColumnType::Text)
        })
        .collect())
}

/// A CSV cell as a value of `kind`; the error is the reason a row is rejected.
fn parse_cell(kind: ValueKind, text: &str) -> std::result::Result<Value, String> {
    let bad = |what: &str| format!("{text:?} is not {what}");
    Ok(match kind {
        ValueKind::Unspecified | ValueKind::Text => Value::Text(text.to_owned()),
        ValueKind::Int => Value::Int(text.parse().map_err(|_| bad("an integer"))?),
        ValueKind::Float => Value::Float(match text {
            "NaN" => f64::NAN,
            "Infinity" | "inf" => f64::INFINITY,
            "-Infinity" | "-inf" => f64::NEG_INFINITY,
            _ => {
                let ok = text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
                if !ok {
                    return Err(bad("a number"));
                }
                text.parse().map_err(|_| bad("a number"))?
            }
        }),
        ValueKind::Bool => Value::Bool(match text.to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" | "y" => true,
            "false" | "f" | "0" | "no" | "n" => false,
            _ => return Err(bad("a boolean")),
        }),
        ValueKind::Decimal => {
            if !text::is_decimal(text) {
                return Err(bad("a decimal number"));
            }
            Value::Decimal(text.to_owned())
        }
        ValueKind::Json => {
            serde_json::from_str::<&serde_json::value::RawValue>(text)
                .map_err(|e| format!("invalid JSON: {e}"))?;
            Value::Json(text.to_owned())
        }
        ValueKind::Bytes => Value::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| bad("base64"))?,
        ),
        ValueKind::Timestamp => Value::Timestamp(
            text::parse_timestamp(text).ok_or_else(|| bad("an RFC 3339 timestamp"))?,
        ),
        ValueKind::Date => {
            Value::Date(text::parse_date(text).ok_or_else(|| bad("a date (YYYY-MM-DD)"))?)
        }
        ValueKind::Time => {
            Value::Time(text::parse_time(text).ok_or_else(|| bad("a time (HH:MM:SS)"))?)
        }
        ValueKind::Uuid => Value::Uuid(Value::parse_uuid(text).ok_or_else(|| bad("a UUID"))?),
        ValueKind::Array => {
            return Err("array columns cannot be imported from CSV".into());
        }
    })
}

/// Buffers converted rows and inserts them in multi-row statements.
struct Inserter<'a> {
    d: &'a dyn SqlDialect,
    table: String,
    names: Vec<String>,
    prefix: String,
    columns: &'a [(String, ValueKind)],
    batch_rows: usize,
    skip_bad_rows: bool,
    /// Whether the session may have a bulk-load path; cleared when it answers that it has none.
    bulk: bool,
    /// Rows waiting, with their lines.
    rows: Vec<(u64, Vec<Value>)>,
    /// Field bytes of the rows waiting.
    bytes: usize,
    /// The SQL of a full batch, built once.
    full_sql: Option<String>,
}

impl<'a> Inserter<'a> {
    fn new(
        d: &'a dyn SqlDialect,
        table: &Identifier,
        columns: &'a [(String, ValueKind)],
        skip_bad_rows: bool,
    ) -> Self {
        let quoted: Vec<String> = columns.iter().map(|(n, _)| d.quote_ident(n)).collect();
        Self {
            d,
            table: table.as_str().to_owned(),
            names: columns.iter().map(|(n, _)| n.clone()).collect(),
            prefix: format!(
                "INSERT INTO {} ({}) VALUES ",
                d.quote_ident(table.as_str()),
                quoted.join(", ")
            ),
            columns,
            batch_rows: (MAX_PARAMS / columns.len().max(1)).clamp(1, MAX_BATCH_ROWS),
            skip_bad_rows,
            bulk: true,
            rows: Vec::new(),
            bytes: 0,
            full_sql: None,
        }
    }

    async fn record(
        &mut self,
        session: &mut dyn Session,
        r: Record,
        csv: &CsvOptions,
        report: &mut CsvImportReport,
    ) -> Result<()> {
        report.rows_read += 1;
        match self.convert(&r, csv) {
            Ok(values) => {
                self.bytes += r.fields.iter().map(|f| f.bytes.len()).sum::<usize>();
                self.rows.push((r.line, values));
                let rows_cap = if self.bulk {
                    MAX_BULK_ROWS
                } else {
                    self.batch_rows
                };
                if self.rows.len() >= rows_cap || self.bytes >= MAX_BATCH_BYTES {
                    self.flush(session, report).await?;
                }
                Ok(())
            }
            Err(reason) => self.reject(r.line, reason, report),
        }
    }

    fn convert(&self, r: &Record, csv: &CsvOptions) -> std::result::Result<Vec<Value>, String> {
        if let Some(e) = &r.error {
            return Err(e.clone());
        }
        if r.fields.len() != self.columns.len() {
            return Err(format!(
                "expected {} fields, found {}",
                self.columns.len(),
                r.fields.len()
            ));
        }
        r.fields
            .iter()
            .zip(self.columns)
            .map(|(f, (name, kind))| {
                let text = std::str::from_utf8(&f.bytes)
                    .map_err(|_| format!("column {name:?}: invalid UTF-8"))?;
                if !f.quoted && text == csv.null_text {
                    return Ok(Value::Null);
                }
                parse_cell(*kind, text).map_err(|e| format!("column {name:?}: {e}"))
            })
            .collect()
    }

    fn reject(&self, line: u64, reason: String, report: &mut CsvImportReport) -> Result<()> {
        if !self.skip_bad_rows {
            return Err(Error::invalid(
                "chunk",
                format!("line {line}: {reason}; nothing was imported"),
            ));
        }
        report.rows_rejected += 1;
        if report.rejected.len() < MAX_REJECTED_LISTED {
            report.rejected.push((line, reason));
        }
        Ok(())
    }

    fn statement(&mut self, rows: Vec<Vec<Value>>) -> Statement {
        let width = self.columns.len();
        let tuples = |n: usize, d: &dyn SqlDialect| {
            let mut sql = String::new();
            for r in 0..n {
                if r > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                for c in 0..width {
                    if c > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&d.placeholder(r * width + c + 1));
                }
                sql.push(')');
            }
            sql
        };
        let n = rows.len();
        let sql = if n == self.batch_rows {
            let d = self.d;
            let prefix = &self.prefix;
            self.full_sql
                .get_or_insert_with(|| format!("{prefix}{}", tuples(n, d)))
                .clone()
        } else {
            format!("{}{}", self.prefix, tuples(n, self.d))
        };
        Statement {
            sql,
            params: rows.into_iter().flatten().collect(),
        }
    }

    async fn flush(
        &mut self,
        session: &mut dyn Session,
        report: &mut CsvImportReport,
    ) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        self.bytes = 0;
        if self.bulk {
            let refs: Vec<&[Value]> = rows.iter().map(|(_, v)| v.as_slice()).collect();
            match session.bulk_insert(&self.table, &self.names, &refs).await {
                Ok(Some(n)) => {
                    report.rows_inserted += n;
                    return Ok(());
                }
                Ok(None) => self.bulk = false,
                // A row the engine refuses undid the whole load: find and report it.
                Err(Error::Query { .. }) => return self.row_by_row(session, rows, report).await,
                Err(e) => return Err(e),
            }
        }
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let batch: Vec<(u64, Vec<Value>)> = rows.by_ref().take(self.batch_rows).collect();
            let stmt = self.statement(batch.iter().map(|(_, v)| v.clone()).collect());
            match session.execute(stmt).await {
                Ok(r) => report.rows_inserted += r.rows_affected.max(batch.len() as u64),
                // A row the engine refuses (a constraint, a type it will not coerce): the failed
                // statement undid itself, so insert row by row to find and report it.
                Err(Error::Query { .. }) => self.row_by_row(session, batch, report).await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn row_by_row(
        &mut self,
        session: &mut dyn Session,
        rows: Vec<(u64, Vec<Value>)>,
        report: &mut CsvImportReport,
    ) -> Result<()> {
        for (line, values) in rows {
            let stmt = self.statement(vec![values]);
            match session.execute(stmt).await {
                Ok(_) => report.rows_inserted += 1,
                Err(Error::Query {
                    kind,
                    code,
                    message,
                    ..
                }) => {
                    if !self.skip_bad_rows {
                        return Err(Error::Query {
                            kind,
                            code,
                            message: format!("line {line}: {message}; nothing was imported"),
                            statement_index: None,
                        });
                    }
                    self.reject(line, message, report)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Encodes rows into export chunks.
struct Encoder {
    format: ExportFormat,
    csv: CsvOptions,
    /// Column names, pre-encoded as JSON object keys (`"name":`).
    keys: Vec<Vec<u8>>,
    buf: Vec<u8>,
    rows: u64,
    first: bool,
    started: bool,
}

impl Encoder {
    fn new(format: ExportFormat, csv: CsvOptions) -> Self {
        Self {
            format,
            csv,
            keys: Vec::new(),
            buf: Vec::with_capacity(CHUNK_BYTES + 4096),
            rows: 0,
            first: true,
            started: false,
        }
    }

    fn header(&mut self, columns: &[Column]) {
        self.started = true;
        match self.format {
            ExportFormat::Csv => {
                for (i, c) in columns.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(self.csv.delimiter);
                    }
                    csv::write_field(&mut self.buf, c.name.as_bytes(), self.csv.delimiter, false);
                }
                self.buf.extend_from_slice(b"\r\n");
            }
            ExportFormat::Json => self.buf.push(b'['),
            ExportFormat::Ndjson => {}
        }
        self.keys = columns
            .iter()
            .map(|c| {
                let mut k = serde_json::to_vec(&c.name).unwrap_or_default();
                k.push(b':');
                k
            })
            .collect();
    }

    fn row(&mut self, row: &[Value]) -> Result<()> {
        self.rows += 1;
        match self.format {
            ExportFormat::Csv => {
                for (i, v) in row.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(self.csv.delimiter);
                    }
                    self.csv_cell(v)?;
                }
                self.buf.extend_from_slice(b"\r\n");
            }
            ExportFormat::Json | ExportFormat::Ndjson => {
                if self.format == ExportFormat::Json {
                    self.buf
                        .extend_from_slice(if self.first { b"\n" } else { b",\n" });
                }
                self.first = false;
                self.buf.push(b'{');
                for (i, v) in row.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(b',');
                    }
                    self.buf.extend_from_slice(&self.keys[i]);
                    json_value(&mut self.buf, v)?;
                }
                self.buf.push(b'}');
                if self.format == ExportFormat::Ndjson {
                    self.buf.push(b'\n');
                }
            }
        }
        Ok(())
    }

    fn csv_cell(&mut self, v: &Value) -> Result<()> {
        let d = self.csv.delimiter;
        let text = match v {
            Value::Null => {
                // NULL is the only unquoted field equal to the NULL text.
                self.buf.extend_from_slice(self.csv.null_text.as_bytes());
                return Ok(());
            }
            Value::Text(s) | Value::Decimal(s) | Value::Json(s) | Value::Uuid(s) => {
                let force = *s == self.csv.null_text;
                csv::write_field(&mut self.buf, s.as_bytes(), d, force);
                return Ok(());
            }
            other => cell_text(other)?,
        };
        let force = text == self.csv.null_text;
        csv::write_field(&mut self.buf, text.as_bytes(), d, force);
        Ok(())
    }

    fn finish(&mut self) {
        if self.format == ExportFormat::Json {
            if !self.started {
                self.buf.push(b'[');
            }
            self.buf
                .extend_from_slice(if self.first { b"]\n" } else { b"\n]\n" });
        }
    }

    /// The next chunk of at most [`CHUNK_BYTES`]: a full one, or with `last` whatever is left.
    /// Rows are counted in the chunk that ends them.
    fn take(&mut self, last: bool) -> Option<DumpChunk> {
        if self.buf.is_empty() || (!last && self.buf.len() < CHUNK_BYTES) {
            return None;
        }
        let data = if self.buf.len() > CHUNK_BYTES {
            let rest = self.buf.split_off(CHUNK_BYTES);
            std::mem::replace(&mut self.buf, rest)
        } else {
            std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES + 4096))
        };
        // Rows go with the last piece of the buffer they were encoded into.
        let rows = if self.buf.is_empty() {
            std::mem::take(&mut self.rows)
        } else {
            0
        };
        Some(DumpChunk { data, rows })
    }
}

/// A non-text cell as CSV text.
fn cell_text(v: &Value) -> Result<String> {
    Ok(match v {
        Value::Null => String::new(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => float_text(*f),
        Value::Bool(b) => b.to_string(),
        Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
        Value::Text(s) | Value::Decimal(s) | Value::Json(s) | Value::Uuid(s) => s.clone(),
        Value::Timestamp(t) => text::timestamp(t).map_err(Error::internal)?,
        Value::Date(d) => text::date(d),
        Value::Time(t) => time_text(t),
        Value::Array(_) => {
            let mut buf = Vec::new();
            json_value(&mut buf, v)?;
            String::from_utf8(buf).map_err(Error::internal)?
        }
    })
}

/// The shortest text that parses back to the same float; non-finite values by name.
fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        serde_json::to_string(&f).unwrap_or_else(|_| format!("{f:?}"))
    }
}

fn time_text(t: &Time) -> String {
    let base = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    match t.microsecond() {
        0 => base,
        us => format!("{base}.{us:06}"),
    }
}

/// Appends `v` as JSON: bytes base64, decimals as strings, JSON documents embedded.
fn json_value(buf: &mut Vec<u8>, v: &Value) -> Result<()> {
    let string =
        |buf: &mut Vec<u8>, s: &str| serde_json::to_writer(&mut *buf, s).map_err(Error::internal);
    match v {
        Value::Null => buf.extend_from_slice(b"null"),
        Value::Int(i) => buf.extend_from_slice(i.to_string().as_bytes()),
        Value::Float(f) if f.is_finite() => buf.extend_from_slice(float_text(*f).as_bytes()),
        Value::Float(f) => string(buf, &float_text(*f))?,
        Value::Bool(b) => buf.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Text(s) | Value::Decimal(s) | Value::Uuid(s) => string(buf, s)?,
        Value::Json(s) => match serde_json::from_str::<&serde_json::value::RawValue>(s) {
            Ok(raw) => buf.extend_from_slice(raw.get().as_bytes()),
            Err(_) => string(buf, s)?,
        },
        Value::Bytes(b) => string(buf, &base64::engine::general_purpose::STANDARD.encode(b))?,
        Value::Timestamp(t) => string(buf, &text::timestamp(t).map_err(Error::internal)?)?,
        Value::Date(d) => string(buf, &text::date(d))?,
        Value::Time(t) => string(buf, &time_text(t))?,
        Value::Array(items) => {
            buf.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                json_value(buf, item)?;
            }
            buf.push(b']');
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn encode(format: ExportFormat, rows: &[Vec<Value>]) -> String {
        let mut e = Encoder::new(format, CsvOptions::default());
        let columns = ["a", "b"]
            .iter()
            .map(|n| Column {
                name: (*n).into(),
                declared_type: String::new(),
                kind: ValueKind::Unspecified,
            })
            .collect::<Vec<_>>();
        e.header(&columns);
        for r in rows {
            e.row(r).unwrap();
        }
        e.finish();
        String::from_utf8(e.take(true).unwrap().data).unwrap()
    }

    #[test]
    fn csv_distinguishes_null_from_empty_text() {
        let out = encode(
            ExportFormat::Csv,
            &[
                vec![Value::Null, Value::Text(String::new())],
                vec![Value::Text("a,\"b\"\nc".into()), Value::Bytes(vec![0, 255])],
            ],
        );
        assert_eq!(out, "a,b\r\n,\"\"\r\n\"a,\"\"b\"\"\nc\",AP8=\r\n");
    }

    #[test]
    fn json_keeps_precision_and_types() {
        let out = encode(
            ExportFormat::Json,
            &[
                vec![
                    Value::Decimal("12345678901234567890.123".into()),
                    Value::Float(0.1),
                ],
                vec![
                    Value::Json("{\"k\": [1]}".into()),
                    Value::Float(f64::INFINITY),
                ],
            ],
        );
        assert_eq!(
            out,
            "[\n{\"a\":\"12345678901234567890.123\",\"b\":0.1},\n{\"a\":{\"k\": [1]},\"b\":\"Infinity\"}\n]\n"
        );
        assert_eq!(encode(ExportFormat::Json, &[]), "[]\n");
        assert_eq!(
            encode(
                ExportFormat::Ndjson,
                &[vec![Value::Int(i64::MAX), Value::Bool(true)]]
            ),
            "{\"a\":9223372036854775807,\"b\":true}\n"
        );
    }

    #[test]
    fn chunks_stay_under_the_chunk_size_and_count_every_row() {
        let mut e = Encoder::new(ExportFormat::Ndjson, CsvOptions::default());
        e.header(&[Column {
            name: "v".into(),
            declared_type: String::new(),
            kind: ValueKind::Text,
        }]);
        let wide = "x".repeat(3000);
        let mut chunks = Vec::new();
        for _ in 0..100 {
            e.row(&[Value::Text(wide.clone())]).unwrap();
        }
        while let Some(c) = e.take(false) {
            chunks.push(c);
        }
        e.finish();
        chunks.extend(e.take(true));
        assert!(chunks.len() >= 4);
        assert!(chunks.iter().all(|c| c.data.len() <= CHUNK_BYTES));
        assert_eq!(chunks.iter().map(|c| c.rows).sum::<u64>(), 100);
    }

    #[test]
    fn cells_parse_by_kind() {
        assert_eq!(parse_cell(ValueKind::Int, "42"), Ok(Value::Int(42)));
        assert!(
            parse_cell(ValueKind::Int, "4.2")
                .unwrap_err()
                .contains("not an integer")
        );
        assert_eq!(parse_cell(ValueKind::Bool, "TRUE"), Ok(Value::Bool(true)));
        assert_eq!(
            parse_cell(ValueKind::Bytes, "AP8="),
            Ok(Value::Bytes(vec![0, 255]))
        );
        assert!(parse_cell(ValueKind::Decimal, "1.5e3").is_ok());
        assert!(parse_cell(ValueKind::Decimal, "1.5x").is_err());
        assert!(parse_cell(ValueKind::Json, "{oops").is_err());
        assert!(parse_cell(ValueKind::Timestamp, "2024-02-03T04:05:06.5Z").is_ok());
        assert!(parse_cell(ValueKind::Timestamp, "2024-02-03 04:05:06").is_ok());
        assert!(parse_cell(ValueKind::Date, "2024-02-30").is_err());
        assert_eq!(
            parse_cell(ValueKind::Float, "1e308"),
            Ok(Value::Float(1e308))
        );
        assert!(parse_cell(ValueKind::Float, "0x10").is_err());
    }

    #[test]
    fn inference_picks_the_narrowest_type() {
        let mut p = CsvParser::new(b',', 1 << 20);
        let mut recs = Vec::new();
        p.push(
            b"1,1.5,true,2024-01-02,x,\n2,3,false,2024-01-03,2,\n",
            &mut recs,
        )
        .unwrap();
        let names: Vec<String> = ["i", "f", "b", "d", "t", "n"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let types = infer_types(&names, &recs, &CsvOptions::default(), &[]).unwrap();
        assert_eq!(
            types,
            vec![
                ColumnType::Integer,
                ColumnType::Float,
                ColumnType::Bool,
                ColumnType::Date,
                ColumnType::Text,
                ColumnType::Text
            ]
        );
        let err = infer_types(
            &names,
            &recs,
            &CsvOptions::default(),
            &[("zz".into(), ColumnType::Text)],
        );
        assert!(err.is_err());
    }
}
