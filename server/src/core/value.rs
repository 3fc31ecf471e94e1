//! Domain values and results, free of any wire or driver type.

pub mod text;

use std::{fmt, sync::Arc, time::Duration};

use time::{Date, OffsetDateTime, Time};

/// A typed cell or parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// 64-bit integer.
    Int(i64),
    /// 64-bit float.
    Float(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Boolean.
    Bool(bool),
    /// Exact decimal as text.
    Decimal(String),
    /// JSON document as text.
    Json(String),
    /// An instant (UTC).
    Timestamp(OffsetDateTime),
    /// A calendar date.
    Date(Date),
    /// A UUID in canonical lowercase text form.
    Uuid(String),
    /// A time of day.
    Time(Time),
    /// An array.
    Array(Vec<Value>),
}

impl Value {
    /// Parses a UUID in any case, with or without hyphens, into canonical form.
    pub fn parse_uuid(s: &str) -> Option<String> {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        let canonical_hyphens =
            s.len() == 36 && [8, 13, 18, 23].iter().all(|&i| s.as_bytes()[i] == b'-');
        if hex.len() != 32
            || !hex.chars().all(|c| c.is_ascii_hexdigit())
            || !(s.len() == 32 || canonical_hyphens)
        {
            return None;
        }
        let h = hex.to_ascii_lowercase();
        Some(format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        ))
    }

    /// Approximate encoded size, used to cap row batches by bytes without encoding twice.
    /// Inlined: it runs once per streamed cell.
    #[inline]
    pub fn approx_size(&self) -> usize {
        match self {
            Value::Null | Value::Bool(_) => 2,
            Value::Int(_) | Value::Float(_) => 10,
            Value::Text(s) | Value::Decimal(s) | Value::Json(s) => s.len() + 3,
            Value::Bytes(b) => b.len() + 3,
            Value::Timestamp(_) => 14,
            Value::Date(_) | Value::Time(_) => 10,
            Value::Uuid(_) => 38,
            Value::Array(items) => Self::list_size(items),
        }
    }

    /// Kept out of line so that [`Self::approx_size`], which it recurses into, can be inlined.
    #[inline(never)]
    fn list_size(items: &[Value]) -> usize {
        items.iter().map(Value::approx_size).sum::<usize>() + 3
    }
}

/// The Value kind a column yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Each cell says its own kind.
    Unspecified,
    /// Integers.
    Int,
    /// Floats.
    Float,
    /// Text.
    Text,
    /// Bytes.
    Bytes,
    /// Booleans.
    Bool,
    /// Decimals.
    Decimal,
    /// JSON.
    Json,
    /// Timestamps.
    Timestamp,
    /// Dates.
    Date,
    /// UUIDs.
    Uuid,
    /// Times of day.
    Time,
    /// Arrays.
    Array,
}

/// Metadata of a result column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Declared type, empty for expressions.
    pub declared_type: String,
    /// The kind of its cells.
    pub kind: ValueKind,
}

/// One row.
pub type Row = Vec<Value>;

/// One statement with positional parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// SQL text.
    pub sql: String,
    /// Parameters in placeholder order.
    pub params: Vec<Value>,
}

impl Statement {
    /// A statement without parameters.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            params: Vec::new(),
        }
    }
}

/// The whole result of one statement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatementResult {
    /// Rows changed.
    pub rows_affected: u64,
    /// Last inserted row id, when the statement inserted.
    pub last_insert_id: Option<i64>,
    /// Result columns.
    pub columns: Vec<Column>,
    /// Result rows.
    pub rows: Vec<Row>,
}

/// Why a stream stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// Every row was sent.
    None,
    /// The row limit was reached.
    RowLimit,
    /// The byte limit was reached.
    ByteLimit,
}

/// The final message of a streamed result.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Rows sent.
    pub row_count: u64,
    /// Rows changed by a writing statement.
    pub rows_affected: u64,
    /// Time from start to the last row.
    pub elapsed: Duration,
    /// Whether a limit cut the result.
    pub truncation: Truncation,
}

/// One event of a streamed result: `Columns`, then any number of `Rows` or `Encoded` batches,
/// then one `Done`.
#[derive(Debug, Clone, PartialEq)]
pub enum RowEvent {
    /// The column metadata.
    Columns(Vec<Column>),
    /// A batch of rows, capped by count and approximate bytes.
    Rows(Vec<Row>),
    /// A batch written by the stream's [`RowEncoder`], capped like `Rows`.
    Encoded(EncodedRows),
    /// The summary.
    Done(Summary),
}

/// Rows as a [`RowEncoder`] wrote them, one after the other.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncodedRows {
    /// The encoder's output for every row of the batch.
    pub bytes: Vec<u8>,
    /// How many rows `bytes` holds.
    pub rows: usize,
}

/// Writes a row in the form the caller sends it on (the gRPC layer: protobuf).
///
/// A stream given an encoder writes each row as the backend reads it, on the task that read
/// it, and drops the row at once. The allocator then hands the same memory to the next row,
/// instead of a batch of rows being freed in bulk by the task that sends it, on another thread:
/// on a 1,000,000-row stream that cut the gateway's CPU per row by 10–20% (BENCHMARKS.md).
pub trait RowEncoder: Send + Sync + fmt::Debug {
    /// Appends `row` to `out`.
    fn encode(&self, row: &Row, out: &mut Vec<u8>);
}

/// The rows of one streamed batch as a backend gathers them: kept as rows, or encoded as they
/// arrive when the stream has a [`RowEncoder`].
#[derive(Debug, Default)]
pub struct Batch {
    encoder: Option<Arc<dyn RowEncoder>>,
    rows: Vec<Row>,
    encoded: EncodedRows,
    /// Approximate bytes of the rows pushed since the last [`Batch::take`].
    size: usize,
}

impl Batch {
    /// An empty batch that encodes with `encoder`, if given.
    pub fn new(encoder: Option<Arc<dyn RowEncoder>>) -> Self {
        Self {
            encoder,
            ..Self::default()
        }
    }

    /// Adds `row`, whose approximate size is `size`.
    pub fn push(&mut self, row: Row, size: usize) {
        self.size += size;
        match &self.encoder {
            Some(encoder) => {
                encoder.encode(&row, &mut self.encoded.bytes);
                self.encoded.rows += 1;
            }
            None => self.rows.push(row),
        }
    }

    /// Rows pushed since the last take.
    pub fn len(&self) -> usize {
        self.rows.len() + self.encoded.rows
    }

    /// Whether no row was pushed since the last take.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the batch holds `rows` rows or `bytes` approximate bytes.
    pub fn reached(&self, rows: usize, bytes: usize) -> bool {
        self.len() >= rows || self.size >= bytes
    }

    /// The rows pushed since the last take, as one event, or `None` when there are none. The
    /// next batch starts with room for as much as this one held.
    pub fn take(&mut self) -> Option<RowEvent> {
        if self.is_empty() {
            return None;
        }
        self.size = 0;
        Some(if self.encoder.is_some() {
            let capacity = self.encoded.bytes.len();
            RowEvent::Encoded(std::mem::replace(
                &mut self.encoded,
                EncodedRows {
                    bytes: Vec::with_capacity(capacity),
                    rows: 0,
                },
            ))
        } else {
            let capacity = self.rows.len();
            RowEvent::Rows(std::mem::replace(
                &mut self.rows,
                Vec::with_capacity(capacity),
            ))
        })
    }

    /// Forgets the rows pushed since the last take.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.encoded.bytes.clear();
        self.encoded.rows = 0;
        self.size = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::Value;

    #[test]
    fn uuids_are_canonicalized() {
        let canonical = "7d444840-9dc0-11d1-b245-5ffdce74fad2";
        for s in [
            canonical,
            "7D444840-9DC0-11D1-B245-5FFDCE74FAD2",
            "7d4448409dc011d1b2455ffdce74fad2",
        ] {
            assert_eq!(Value::parse_uuid(s).as_deref(), Some(canonical), "{s}");
        }
        for s in [
            "",
            "7d444840-9dc0-11d1-b245",
            "7d444840-9dc0-11d1-b245-5ffdce74fazz",
            "7d44-48409dc0-11d1-b245-5ffdce74fad2",
        ] {
            assert_eq!(Value::parse_uuid(s), None, "{s}");
        }
    }
}
