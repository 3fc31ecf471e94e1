//! How one value is shown: as a table cell (text, alignment, colour class), as typed JSON, and
//! as a CSV field. Every format goes through here so that, say, a timestamp reads the same in a
//! table and in CSV.

use std::fmt::Write as _;

use base64::Engine;
use dbforge::{Value, pb::ValueKind};
use time::format_description::well_known::Rfc3339;

/// What kind of thing a cell shows, for alignment and colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// NULL.
    Null,
    /// Ints, floats, decimals: right-aligned.
    Number,
    /// true/false.
    Bool,
    /// Bytes, shown as `\x` + hex.
    Bytes,
    /// Everything else.
    Text,
}

/// Whether a column of this kind holds numbers (so its header is right-aligned too).
pub fn numeric_kind(kind: ValueKind) -> bool {
    matches!(kind, ValueKind::Int | ValueKind::Float | ValueKind::Decimal)
}

/// The plain text of a value, as tables and CSV show it (`null` for NULL's text).
pub fn text(v: &Value, null: &str) -> (String, Class) {
    match v {
        Value::Null => (null.to_owned(), Class::Null),
        Value::Int(i) => (i.to_string(), Class::Number),
        Value::Float(f) => (float(*f), Class::Number),
        Value::Decimal(d) => (d.clone(), Class::Number),
        Value::Bool(b) => (b.to_string(), Class::Bool),
        Value::Bytes(b) => {
            let mut s = String::with_capacity(2 + 2 * b.len());
            s.push_str("\\x");
            for byte in b {
                let _ = write!(s, "{byte:02x}");
            }
            (s, Class::Bytes)
        }
        Value::Text(s) | Value::Json(s) | Value::Uuid(s) => (s.clone(), Class::Text),
        Value::Timestamp(t) => (
            t.format(&Rfc3339).unwrap_or_else(|_| t.to_string()),
            Class::Text,
        ),
        Value::Date(d) => (d.to_string(), Class::Text),
        Value::Time(t) => (time_of_day(*t), Class::Text),
        Value::Array(_) => (json(v).to_string(), Class::Text),
    }
}

/// Floats in their shortest exact form, keeping a ".0" so 3.0 does not read as the int 3, and
/// using exponents for very large or small magnitudes (Rust's `{:?}`).
fn float(f: f64) -> String {
    format!("{f:?}")
}

fn time_of_day(t: time::Time) -> String {
    let mut s = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    if t.nanosecond() != 0 {
        let frac = format!("{:09}", t.nanosecond());
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s
}

/// A value as typed JSON: ints as numbers (exact up to i64; JavaScript readers lose precision
/// beyond 2^53), floats as numbers (non-finite ones as strings), bytes as base64, decimals as
/// strings (no rounding), JSON documents embedded, times as RFC 3339 strings.
pub fn json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .unwrap_or_else(|| J::String(float(*f))),
        Value::Bool(b) => J::Bool(*b),
        Value::Text(s) | Value::Decimal(s) | Value::Uuid(s) => J::String(s.clone()),
        Value::Bytes(b) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Json(doc) => serde_json::from_str(doc).unwrap_or_else(|_| J::String(doc.clone())),
        Value::Timestamp(_) | Value::Date(_) | Value::Time(_) => J::String(text(v, "").0),
        Value::Array(items) => J::Array(items.iter().map(json).collect()),
    }
}

/// Makes text safe and one-line for a terminal: control characters (newlines, tabs, escape
/// sequences a value could use to rewrite the screen) become visible escapes.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.into()
}

/// One CSV field (RFC 4180): NULL is an empty field; text that is empty or contains a comma,
/// quote, CR or LF is quoted, with quotes doubled. Quoting empty text keeps it apart from NULL
/// (the convention PostgreSQL's COPY uses).
pub fn csv_field(v: &Value, out: &mut String) {
    if v.is_null() {
        return;
    }
    let (s, _) = text(v, "");
    if s.is_empty() || s.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&s);
    }
}

/// A CSV header field.
pub fn csv_name(name: &str, out: &mut String) {
    csv_field(&Value::Text(name.to_owned()), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_by_kind() {
        assert_eq!(text(&Value::Null, "NULL"), ("NULL".into(), Class::Null));
        assert_eq!(text(&Value::Int(-4), ""), ("-4".into(), Class::Number));
        assert_eq!(text(&Value::Float(3.0), ""), ("3.0".into(), Class::Number));
        assert_eq!(text(&Value::Float(1e300), "").0, "1e300");
        assert_eq!(text(&Value::Bytes(vec![0, 0xab]), "").0, "\\x00ab");
        assert_eq!(
            text(&Value::Decimal("1.10".into()), ""),
            ("1.10".into(), Class::Number)
        );
        let ts = time::macros::datetime!(2024-05-01 12:00:00.5 UTC);
        assert_eq!(text(&Value::Timestamp(ts), "").0, "2024-05-01T12:00:00.5Z");
        assert_eq!(
            text(&Value::Time(time::macros::time!(9:05:00)), "").0,
            "09:05:00"
        );
        assert_eq!(
            text(&Value::Array(vec![Value::Int(1), Value::Null]), "").0,
            "[1,null]"
        );
    }

    #[test]
    fn typed_json() {
        assert_eq!(
            json(&Value::Int(i64::MAX)).to_string(),
            "9223372036854775807"
        );
        assert_eq!(json(&Value::Float(f64::NAN)).to_string(), "\"NaN\"");
        assert_eq!(json(&Value::Bytes(b"hi".to_vec())).to_string(), "\"aGk=\"");
        assert_eq!(json(&Value::Decimal("0.10".into())).to_string(), "\"0.10\"");
        assert_eq!(
            json(&Value::Json("{\"a\":1}".into())).to_string(),
            "{\"a\":1}"
        );
        assert_eq!(
            json(&Value::Json("not json".into())).to_string(),
            "\"not json\""
        );
    }

    #[test]
    fn csv_quoting() {
        let field = |v: Value| {
            let mut s = String::new();
            csv_field(&v, &mut s);
            s
        };
        assert_eq!(field(Value::Null), "");
        assert_eq!(field(Value::Text(String::new())), "\"\"");
        assert_eq!(field(Value::Text("a,b".into())), "\"a,b\"");
        assert_eq!(
            field(Value::Text("say \"hi\"".into())),
            "\"say \"\"hi\"\"\""
        );
        assert_eq!(field(Value::Text("two\nlines".into())), "\"two\nlines\"");
        assert_eq!(field(Value::Int(5)), "5");
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(escape_controls("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(escape_controls("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(escape_controls("plain"), "plain");
    }
}
