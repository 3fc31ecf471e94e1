//! Bulk loads through `COPY … FROM STDIN` in PostgreSQL's text format: the rows an import has
//! already validated go to the server as one data stream instead of multi-row INSERTs, which
//! spares PostgreSQL parsing, planning and binding thousands of parameters per batch.
//!
//! Values are written as PostgreSQL's own input functions read them, so a column gets what a
//! bound parameter of the same value would give it: timestamps in UTC with microseconds (the
//! session runs with `TimeZone=UTC`, so a `timestamp` column stores the UTC wall time), floats
//! in their shortest exact form, bytes as `bytea` hex.

use std::fmt::Write as _;

use sqlx::postgres::PgConnection;
use time::{OffsetDateTime, UtcOffset};

use super::PostgresDialect;
use crate::core::{table::SqlDialect, value::Value};

/// The `COPY` statement for `columns` of `table` (all of them when empty), identifiers quoted.
pub fn statement(table: &str, columns: &[String]) -> String {
    let table = PostgresDialect.quote_ident(table);
    if columns.is_empty() {
        return format!("COPY {table} FROM STDIN");
    }
    let names: Vec<String> = columns
        .iter()
        .map(|c| PostgresDialect.quote_ident(c))
        .collect();
    format!("COPY {table} ({}) FROM STDIN", names.join(", "))
}

/// Encodes `rows` as COPY text data; `None` when a value has no text form here (arrays), so
/// the caller inserts them instead.
pub fn encode(rows: &[&[Value]]) -> Option<Vec<u8>> {
    let mut out = String::with_capacity(rows.len() * 64);
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push('\t');
            }
            field(v, &mut out)?;
        }
        out.push('\n');
    }
    Some(out.into_bytes())
}

fn field(v: &Value, out: &mut String) -> Option<()> {
    match v {
        Value::Null => out.push_str("\\N"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_nan() => out.push_str("NaN"),
        Value::Float(f) if f.is_infinite() => {
            out.push_str(if *f > 0.0 { "Infinity" } else { "-Infinity" });
        }
        // `{:?}` is the shortest text that parses back to the same f64 (exponent form for very
        // large and small magnitudes), which is what float8in reads.
        Value::Float(f) => {
            let _ = write!(out, "{f:?}");
        }
        Value::Text(s) | Value::Json(s) => escape(s, out),
        Value::Decimal(s) | Value::Uuid(s) => out.push_str(s),
        Value::Bytes(b) => {
            // bytea's hex input `\x…`, with its backslash escaped for COPY.
            out.push_str("\\\\x");
            for byte in b {
                let _ = write!(out, "{byte:02x}");
            }
        }
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Timestamp(t) => timestamp(*t, out),
        Value::Date(d) => {
            let _ = write!(
                out,
                "{:04}-{:02}-{:02}",
                d.year(),
                u8::from(d.month()),
                d.day()
            );
        }
        Value::Time(t) => {
            let _ = write!(
                out,
                "{:02}:{:02}:{:02}.{:06}",
                t.hour(),
                t.minute(),
                t.second(),
                t.microsecond()
            );
        }
        Value::Array(_) => return None,
    }
    Some(())
}

/// UTC with microseconds, truncated like the binary parameter encoding.
fn timestamp(t: OffsetDateTime, out: &mut String) {
    let t = t.to_offset(UtcOffset::UTC);
    let year = t.year();
    // PostgreSQL writes years before 1 as `… BC`, year 0 being 1 BC.
    let (shown, era) = if year <= 0 {
        (1 - year, " BC")
    } else {
        (year, "")
    };
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00{era}",
        shown,
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    );
}

/// COPY text escapes: the delimiter, line ends and the backslash itself.
fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Runs `COPY` with `data` on `conn` and returns the rows the server stored. On an error the
/// copy is aborted so the connection leaves copy mode.
pub async fn run(conn: &mut PgConnection, sql: &str, data: &[u8]) -> Result<u64, sqlx::Error> {
    let mut copy = conn.copy_in_raw(sql).await?;
    if let Err(e) = copy.send(data).await {
        // The server's error (if any) is what counts; the abort's own outcome is moot.
        let _ = copy.abort("the gateway stopped the copy").await;
        return Err(e);
    }
    copy.finish().await
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime, time};

    use super::*;

    fn one(v: Value) -> String {
        String::from_utf8(encode(&[&[v]]).expect("encodable")).expect("utf-8")
    }

    #[test]
    fn values_use_postgres_input_syntax() {
        assert_eq!(one(Value::Null), "\\N\n");
        assert_eq!(one(Value::Int(-42)), "-42\n");
        assert_eq!(one(Value::Float(0.1)), "0.1\n");
        assert_eq!(one(Value::Float(1e300)), "1e300\n");
        assert_eq!(one(Value::Float(-0.0)), "-0.0\n");
        assert_eq!(one(Value::Float(f64::NEG_INFINITY)), "-Infinity\n");
        assert_eq!(one(Value::Float(f64::NAN)), "NaN\n");
        assert_eq!(one(Value::Bool(true)), "t\n");
        assert_eq!(one(Value::Bytes(vec![0, 0xab, b'\\'])), "\\\\x00ab5c\n");
        assert_eq!(one(Value::Decimal("-12.3400".into())), "-12.3400\n");
        assert_eq!(
            one(Value::Timestamp(
                datetime!(2024-02-29 13:45:01.1234567 +02:00)
            )),
            "2024-02-29 11:45:01.123456+00\n"
        );
        assert_eq!(
            one(Value::Timestamp(datetime!(-0001-03-01 00:00 UTC))),
            "0002-03-01 00:00:00.000000+00 BC\n"
        );
        assert_eq!(one(Value::Date(date!(0999 - 01 - 02))), "0999-01-02\n");
        assert_eq!(
            one(Value::Time(time!(07:08:09.000010))),
            "07:08:09.000010\n"
        );
        assert!(encode(&[&[Value::Array(vec![])]]).is_none());
    }

    #[test]
    fn text_escapes_the_format_characters_only() {
        assert_eq!(
            one(Value::Text("a\tb\nc\rd\\e \"q\" ü \\N".into())),
            "a\\tb\\nc\\rd\\\\e \"q\" ü \\\\N\n"
        );
        let rows: [&[Value]; 2] = [
            &[Value::Int(1), Value::Text(String::new())],
            &[Value::Int(2), Value::Null],
        ];
        assert_eq!(encode(&rows).expect("ok"), b"1\t\n2\t\\N\n");
    }

    #[test]
    fn the_statement_quotes_identifiers() {
        assert_eq!(
            statement("we\"ird", &["a b".into(), "c".into()]),
            "COPY \"we\"\"ird\" (\"a b\", \"c\") FROM STDIN"
        );
    }
}
