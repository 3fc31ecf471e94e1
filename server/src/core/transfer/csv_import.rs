//! CSV into a table: header matching, type inference for a new table, batched inserts (or
//! the engine's bulk load) in one transaction, and a report of rejected rows.

use std::collections::HashSet;

use base64::Engine as _;
use futures::StreamExt;
use tracing::{debug, warn};

use super::{CsvOptions, ImportStream, sql_dialect, table_columns, table_exists, too_large};
use crate::backend::Session;
use crate::core::{
    access::{Principal, Role},
    csv::{CsvParser, Record},
    error::{Error, Result},
    forge::{Forge, TransferTarget},
    names::Identifier,
    table::{self, ColumnSpec, ColumnType, SqlDialect, TableSpec},
    value::{Statement, Value, ValueKind, text},
};

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

impl Forge {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
