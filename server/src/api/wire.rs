//! `dbforge.v1.RowBatch`, encoded straight from core rows.
//!
//! A streamed result is almost all RowBatch bytes. Building the generated `pb::Row`s first
//! costs a vector per row, a conversion per cell and prost's repeated length walks over the
//! nested messages: about a third of the gateway's CPU per row beyond the driver on a
//! 1,000,000-row stream. `build.rs` maps the message to [`RowBatch`] (`extern_path`), which
//! holds its rows already encoded: [`ProtoRows`] writes each one as the backend reads it, byte
//! for byte what prost writes for the same row (a test compares them), so clients see no
//! difference.

use prost::{
    DecodeError, Message,
    bytes::{Buf, BufMut},
    encoding::{self, DecodeContext, WireType, encode_varint, encoded_len_varint},
};

use std::sync::{Arc, LazyLock};

use super::convert;
use crate::core::value::{Row, RowEncoder, Value};

/// The field number of `RowBatch.rows`, `Row.values` and `ValueList.values`: all three are
/// `repeated … = 1`, so a row and an array share one encoding.
const ITEMS: u32 = 1;

/// A `dbforge.v1.RowBatch` whose rows are already encoded.
#[derive(Clone, PartialEq, Default)]
pub struct RowBatch {
    /// The `rows` fields, as [`ProtoRows`] writes them (or as a decoded batch received them).
    encoded: Vec<u8>,
}

impl RowBatch {
    /// A batch of `rows`, for a stream that came without an encoder.
    pub fn from_rows(rows: Vec<Row>) -> Self {
        let mut encoded = Vec::new();
        rows.iter().for_each(|r| ProtoRows.encode(r, &mut encoded));
        Self::from_encoded(encoded)
    }

    /// A batch of rows that [`ProtoRows`] wrote.
    pub fn from_encoded(encoded: Vec<u8>) -> Self {
        Self { encoded }
    }

    /// Appends the batch's `resume_token` (a resumable stream's): the field after the rows.
    pub fn with_resume_token(mut self, token: &str) -> Self {
        if !token.is_empty() {
            encoding::string::encode(RESUME_TOKEN, &token.to_owned(), &mut self.encoded);
        }
        self
    }
}

/// The field number of `RowBatch.resume_token`.
const RESUME_TOKEN: u32 = 2;

/// Writes each row as a `RowBatch.rows` field, so that a stream's batches are ready to send
/// when they leave the backend (see [`RowEncoder`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProtoRows;

impl ProtoRows {
    /// The encoder the gRPC streams hand to the backends.
    pub fn shared() -> Arc<dyn RowEncoder> {
        static SHARED: LazyLock<Arc<dyn RowEncoder>> = LazyLock::new(|| Arc::new(ProtoRows));
        Arc::clone(&SHARED)
    }
}

impl RowEncoder for ProtoRows {
    fn encode(&self, row: &Row, out: &mut Vec<u8>) {
        write_list(ITEMS, row, out);
    }
}

impl std::fmt::Debug for RowBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowBatch")
            .field("encoded_len", &self.encoded.len())
            .finish()
    }
}

impl Message for RowBatch {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.encoded);
    }

    /// Keeps each `rows` field as it came (the gateway never reads a RowBatch; this exists so
    /// the type is a whole prost message).
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag == RESUME_TOKEN {
            let mut token = String::new();
            encoding::string::merge(wire_type, &mut token, buf, ctx)?;
            encoding::string::encode(RESUME_TOKEN, &token, &mut self.encoded);
            return Ok(());
        }
        if tag != ITEMS {
            return encoding::skip_field(wire_type, tag, buf, ctx);
        }
        let mut row = Vec::new();
        encoding::bytes::merge(wire_type, &mut row, buf, ctx)?;
        encoding::encode_key(ITEMS, WireType::LengthDelimited, &mut self.encoded);
        encode_varint(row.len() as u64, &mut self.encoded);
        self.encoded.extend_from_slice(&row);
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.encoded.len()
    }

    fn clear(&mut self) {
        self.encoded.clear();
    }
}

/// Key, length prefix and body of a length-delimited field numbered below 16.
fn item_len(body: usize) -> usize {
    1 + encoded_len_varint(body as u64) + body
}

/// The body of a `Row` or `ValueList`: one `Value` message per item.
fn list_len(values: &[Value]) -> usize {
    values.iter().map(|v| item_len(value_len(v))).sum()
}

fn write_list(tag: u32, values: &[Value], buf: &mut impl BufMut) {
    key(tag, WireType::LengthDelimited, buf);
    varint(list_len(values) as u64, buf);
    for v in values {
        key(ITEMS, WireType::LengthDelimited, buf);
        varint(value_len(v) as u64, buf);
        write_value(v, buf);
    }
}

/// The body of a `Value` message: its one `kind` field. Field numbers follow types.proto;
/// a oneof field is written even when it holds its type's default.
fn value_len(v: &Value) -> usize {
    match v {
        Value::Null => 2,
        Value::Int(i) => 1 + encoded_len_varint(*i as u64),
        Value::Float(_) => 9,
        Value::Bool(_) => 2,
        Value::Text(s) | Value::Decimal(s) | Value::Json(s) | Value::Uuid(s) => item_len(s.len()),
        Value::Bytes(b) => item_len(b.len()),
        Value::Timestamp(t) => encoding::message::encoded_len(9, &convert::instant(t)),
        Value::Date(d) => encoding::message::encoded_len(10, &convert::date(d)),
        Value::Time(t) => encoding::message::encoded_len(12, &convert::time_of_day(t)),
        Value::Array(items) => item_len(list_len(items)),
    }
}

fn write_value(v: &Value, buf: &mut impl BufMut) {
    match v {
        Value::Null => {
            key(1, WireType::Varint, buf);
            buf.put_u8(0);
        }
        Value::Int(i) => {
            key(2, WireType::Varint, buf);
            varint(*i as u64, buf);
        }
        Value::Float(f) => {
            key(3, WireType::SixtyFourBit, buf);
            buf.put_f64_le(*f);
        }
        Value::Text(s) => write_bytes(4, s.as_bytes(), buf),
        Value::Bytes(b) => write_bytes(5, b, buf),
        Value::Bool(b) => {
            key(6, WireType::Varint, buf);
            buf.put_u8(u8::from(*b));
        }
        Value::Decimal(s) => write_bytes(7, s.as_bytes(), buf),
        Value::Json(s) => write_bytes(8, s.as_bytes(), buf),
        Value::Timestamp(t) => encoding::message::encode(9, &convert::instant(t), buf),
        Value::Date(d) => encoding::message::encode(10, &convert::date(d), buf),
        Value::Uuid(s) => write_bytes(11, s.as_bytes(), buf),
        Value::Time(t) => encoding::message::encode(12, &convert::time_of_day(t), buf),
        Value::Array(items) => write_list(13, items, buf),
    }
}

fn write_bytes(tag: u32, b: &[u8], buf: &mut impl BufMut) {
    key(tag, WireType::LengthDelimited, buf);
    varint(b.len() as u64, buf);
    buf.put_slice(b);
}

/// The key of a field numbered below 16: one byte. Written inline, as are the one-byte varints
/// below: prost's out-of-line `encode_varint` alone was ~4% of the gateway's CPU on a stream.
#[inline]
fn key(tag: u32, wire_type: WireType, buf: &mut impl BufMut) {
    debug_assert!(tag < 16);
    buf.put_u8(((tag << 3) | wire_type as u32) as u8);
}

/// A varint; lengths of short cells and small integers take the one-byte path.
#[inline]
fn varint(v: u64, buf: &mut impl BufMut) {
    if v < 0x80 {
        buf.put_u8(v as u8);
    } else {
        encode_varint(v, buf);
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime, time};

    use super::*;
    use crate::pb;

    /// What prost writes for the same rows through the generated types.
    fn prost_bytes(rows: &[Row]) -> Vec<u8> {
        let mut buf = Vec::new();
        for row in rows {
            let row = pb::Row {
                values: row.iter().cloned().map(pb::Value::from).collect(),
            };
            encoding::message::encode(ITEMS, &row, &mut buf);
        }
        buf
    }

    fn every_kind() -> Vec<Row> {
        let text = |s: &str| Value::Text(s.to_owned());
        vec![
            vec![
                Value::Null,
                Value::Int(0),
                Value::Int(-1),
                Value::Int(i64::MAX),
            ],
            vec![Value::Int(i64::MIN), Value::Float(0.0), Value::Float(-0.5)],
            vec![
                Value::Float(f64::NAN),
                Value::Float(f64::INFINITY),
                Value::Bool(false),
            ],
            vec![
                Value::Bool(true),
                text(""),
                text("héllo"),
                text(&"x".repeat(300)),
            ],
            vec![Value::Bytes(vec![]), Value::Bytes(vec![0, 255, 7])],
            vec![
                Value::Decimal("-12.3400".into()),
                Value::Json(r#"{"a":[1]}"#.into()),
            ],
            vec![
                Value::Uuid("7d444840-9dc0-11d1-b245-5ffdce74fad2".into()),
                Value::Timestamp(datetime!(1970-01-01 0:00 UTC)),
                Value::Timestamp(datetime!(1969-12-31 23:59:59.5 UTC)),
                Value::Timestamp(datetime!(2026-11-26 07:15:42.123456789 UTC)),
            ],
            vec![
                Value::Date(date!(2024 - 02 - 29)),
                Value::Date(date!(0001 - 01 - 01)),
            ],
            vec![
                Value::Time(time!(0:00)),
                Value::Time(time!(23:59:59.999999)),
            ],
            vec![
                Value::Array(vec![]),
                Value::Array(vec![Value::Null, Value::Int(3)]),
            ],
            vec![Value::Array(vec![
                Value::Array(vec![text("a"), Value::Null]),
                Value::Array(vec![Value::Array(vec![Value::Float(1.5)])]),
            ])],
            vec![],
        ]
    }

    #[test]
    fn rows_encode_exactly_as_prost_does() {
        let rows = every_kind();
        let batch = RowBatch::from_rows(rows.clone());
        let bytes = batch.encode_to_vec();
        assert_eq!(bytes, prost_bytes(&rows));
        assert_eq!(batch.encoded_len(), bytes.len());
        assert_eq!(RowBatch::from_rows(Vec::new()).encoded_len(), 0);
    }

    #[test]
    fn rows_encoded_as_they_arrive_are_the_same_bytes() {
        let rows = every_kind();
        let mut encoded = Vec::new();
        rows.iter().for_each(|r| ProtoRows.encode(r, &mut encoded));
        let batch = RowBatch::from_encoded(encoded);
        let bytes = batch.encode_to_vec();
        assert_eq!(bytes, prost_bytes(&rows));
        assert_eq!(batch.encoded_len(), bytes.len());
    }

    #[test]
    fn a_response_decodes_with_the_generated_row_type() {
        let rows = every_kind();
        let response = pb::QueryResponse {
            kind: Some(pb::query_response::Kind::Batch(RowBatch::from_rows(
                rows.clone(),
            ))),
        };
        let bytes = response.encode_to_vec();
        // Decoding through the extern type keeps every row as it came…
        let decoded = pb::QueryResponse::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(decoded.encoded_len(), bytes.len());
        assert_eq!(decoded.encode_to_vec(), bytes);
        // …and reading them as pb::Rows, as every client does, gives back the values.
        let Some(pb::query_response::Kind::Batch(batch)) = decoded.kind else {
            panic!("not a batch");
        };
        let mut raw = batch.encoded.as_slice();
        let mut back = Vec::new();
        while raw.has_remaining() {
            let (tag, wire_type) = encoding::decode_key(&mut raw).expect("key");
            assert_eq!((tag, wire_type), (ITEMS, WireType::LengthDelimited));
            let mut row = pb::Row::default();
            encoding::message::merge(wire_type, &mut row, &mut raw, DecodeContext::default())
                .expect("row");
            let values: Vec<Value> = row
                .values
                .into_iter()
                .map(|v| Value::try_from(v).expect("value"))
                .collect();
            back.push(values);
        }
        // NaN never equals itself; compare the encodings instead.
        assert_eq!(prost_bytes(&back), prost_bytes(&rows));
    }

    #[test]
    fn unknown_fields_are_skipped_and_a_short_row_is_refused() {
        let mut buf = Vec::new();
        encoding::int64::encode(7, &5, &mut buf);
        assert_eq!(
            RowBatch::decode(buf.as_slice()).expect("skips"),
            RowBatch::default()
        );
        let short = [0x0a, 0x05, 0x0a];
        assert!(RowBatch::decode(short.as_slice()).is_err());
    }
}
