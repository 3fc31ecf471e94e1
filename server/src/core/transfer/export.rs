//! Exports: the rows of a table or statement as CSV, JSON or NDJSON, and dumps.

use base64::Engine as _;
use futures::StreamExt;
use time::Time;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

use super::{CHUNK_BUFFER, CHUNK_BYTES, CsvOptions, ExportFormat, ensure_table, sql_dialect};
use crate::backend::{DumpChunk, DumpStream, StatementLimits};
use crate::core::{
    access::{Principal, Role},
    csv::{self},
    error::{Error, QueryErrorKind, Result},
    forge::Forge,
    names::Identifier,
    value::{Column, RowEvent, Statement, Truncation, Value, text},
};

/// What an export reads.
#[derive(Debug, Clone)]
pub enum ExportSource {
    /// Every row of a table or view.
    Table(Identifier),
    /// The rows of one statement.
    Query(Statement),
}

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
        Some(DumpChunk {
            data,
            rows,
            tables: Vec::new(),
        })
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

/// Appends `v` as JSON: bytes base64, decimals as strings, JSON documents embedded. Also the
/// cells of the MCP tools' results (`mcp/render.rs`).
pub(crate) fn json_value(buf: &mut Vec<u8>, v: &Value) -> Result<()> {
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
    use crate::core::value::ValueKind;

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
}
