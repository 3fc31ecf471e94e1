//! Turning text from the command line and from files into typed values: `--param`, `--where`,
//! `--set`, `--column`, `--label`, `--order-by`, and JSON rows for `rows insert`.
//!
//! The typing rules are documented in `dbforge --help` and cli/README.md; the tests below are
//! the examples given there.

use base64::Engine;
use dbforge::{ColumnDef, ColumnType, Filter, Record, Value};
use time::{Date, OffsetDateTime, format_description::well_known::Rfc3339};

/// Parses a parameter: explicit `type:` prefix, or inferred from the text.
pub fn parse_param(s: &str) -> Result<Value, String> {
    if let Some((prefix, rest)) = s.split_once(':')
        && let Some(v) = typed(prefix, rest)
    {
        return v;
    }
    Ok(infer(s))
}

/// A value with an explicit type prefix; `None` when `prefix` names no type (so `http://x`
/// stays text).
fn typed(prefix: &str, rest: &str) -> Option<Result<Value, String>> {
    let bad = |what: &str| Err(format!("{rest:?} is not a valid {what}"));
    Some(match prefix {
        "text" => Ok(Value::Text(rest.to_owned())),
        "int" => rest.parse().map(Value::Int).or_else(|_| bad("int")),
        "float" => match rest.parse::<f64>() {
            Ok(f) => Ok(Value::Float(f)),
            Err(_) => bad("float"),
        },
        "bool" => match rest.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => bad("bool (true or false)"),
        },
        "decimal" => {
            if is_decimal(rest) {
                Ok(Value::Decimal(rest.to_owned()))
            } else {
                bad("decimal")
            }
        }
        "json" => match serde_json::from_str::<serde_json::Value>(rest) {
            Ok(_) => Ok(Value::Json(rest.to_owned())),
            Err(e) => Err(format!("invalid JSON: {e}")),
        },
        "hex" => hex(rest)
            .map(Value::Bytes)
            .ok_or(())
            .or_else(|_| bad("hex string")),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map(Value::Bytes)
            .or_else(|_| bad("base64 string")),
        "timestamp" => OffsetDateTime::parse(rest, &Rfc3339)
            .map(Value::Timestamp)
            .or_else(|_| bad("RFC 3339 timestamp")),
        "date" => Date::parse(
            rest,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map(Value::Date)
        .or_else(|_| bad("date (YYYY-MM-DD)")),
        "uuid" => Ok(Value::Uuid(rest.to_owned())),
        _ => return None,
    })
}

/// Infers a value's type from its text.
fn infer(s: &str) -> Value {
    if s.eq_ignore_ascii_case("null") {
        return Value::Null;
    }
    if s == "true" || s == "false" {
        return Value::Bool(s == "true");
    }
    // A leading zero (007, 0123) is an identifier such as a postcode, not a number: keep it.
    let digits = s.strip_prefix('-').unwrap_or(s);
    let leading_zero = digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.");
    if !leading_zero {
        if let Ok(i) = s.parse::<i64>() {
            return Value::Int(i);
        }
        // An integer beyond 64 bits keeps every digit as a decimal rather than rounding.
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Value::Decimal(s.to_owned());
        }
        // f64's parser also takes "inf" and "NaN"; only decimal notation counts as a number.
        if is_decimal_or_exp(s)
            && let Ok(f) = s.parse::<f64>()
            && f.is_finite()
        {
            return Value::Float(f);
        }
    }
    Value::Text(s.to_owned())
}

fn is_decimal(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let mut parts = body.splitn(2, '.');
    let int = parts.next().unwrap_or_default();
    let frac = parts.next();
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    !body.is_empty()
        && all_digits(int)
        && frac.is_none_or(all_digits)
        && !(int.is_empty() && frac.is_none_or(str::is_empty))
}

fn is_decimal_or_exp(s: &str) -> bool {
    match s.split_once(['e', 'E']) {
        Some((mantissa, exp)) => {
            let exp = exp.strip_prefix(['-', '+']).unwrap_or(exp);
            is_decimal(mantissa) && !exp.is_empty() && exp.bytes().all(|b| b.is_ascii_digit())
        }
        None => is_decimal(s),
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix("\\x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `KEY=VALUE` of `--label`.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Parses `--grant ROLE:TARGET`: a database name, a name pattern (with `*`), or labels
/// `KEY=VALUE[,KEY=VALUE…]` (database names have neither `*` nor `=`, so the forms cannot be
/// confused).
pub fn parse_grant(s: &str) -> Result<dbforge::Grant, String> {
    use dbforge::{Grant, Role};
    let Some((role, target)) = s.split_once(':') else {
        return Err(format!(
            "expected ROLE:TARGET, e.g. read:reports, got {s:?}"
        ));
    };
    let role = match role.trim().to_ascii_lowercase().as_str() {
        "read" => Role::Read,
        "write" => Role::Write,
        "owner" => Role::Owner,
        other => {
            return Err(format!(
                "unknown role {other:?}: expected read, write or owner"
            ));
        }
    };
    let target = target.trim();
    if target.is_empty() {
        return Err(format!("{s:?} names no database, pattern or labels"));
    }
    if target.contains('=') {
        let labels = target
            .split(',')
            .map(parse_label)
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Grant::labels(labels, role));
    }
    if target.contains('*') {
        return Ok(Grant::pattern(target, role));
    }
    Ok(Grant::database(target, role))
}

/// Parses an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> Result<std::time::SystemTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(Into::into)
        .map_err(|_| format!("expected an RFC 3339 time (2030-05-01T12:00:00Z), got {s:?}"))
}

/// Parses a point in time: RFC 3339, or an age before now such as `1h` or `30m`.
pub fn parse_time(s: &str) -> Result<std::time::SystemTime, String> {
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t.into());
    }
    let age = humantime::parse_duration(s).map_err(|_| {
        format!("expected an RFC 3339 time (2024-05-01T12:00:00Z) or an age (1h), got {s:?}")
    })?;
    std::time::SystemTime::now()
        .checked_sub(age)
        .ok_or_else(|| format!("{s:?} reaches before the epoch"))
}

/// `COLUMN=VALUE` of `rows update --set`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assign {
    /// The column.
    pub column: String,
    /// Its new value.
    pub value: Value,
}

/// Parses `--set COLUMN=VALUE`.
pub fn parse_assign(s: &str) -> Result<Assign, String> {
    match s.split_once('=') {
        Some((c, v)) if !c.trim().is_empty() => Ok(Assign {
            column: c.trim().to_owned(),
            value: parse_param(v)?,
        }),
        _ => Err(format!("expected COLUMN=VALUE, got {s:?}")),
    }
}

/// A sort key of `--order-by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey {
    /// The column.
    pub column: String,
    /// Descending.
    pub descending: bool,
}

/// Parses `age`, `age:asc`, `age:desc` or `-age`.
pub fn parse_order(s: &str) -> Result<OrderKey, String> {
    let (column, descending) = if let Some(c) = s.strip_prefix('-') {
        (c, true)
    } else if let Some((c, dir)) = s.rsplit_once(':') {
        match dir.to_ascii_lowercase().as_str() {
            "asc" => (c, false),
            "desc" => (c, true),
            _ => {
                return Err(format!(
                    "expected COLUMN, COLUMN:asc or COLUMN:desc, got {s:?}"
                ));
            }
        }
    } else {
        (s, false)
    };
    if column.is_empty() {
        return Err("the column name is empty".into());
    }
    Ok(OrderKey {
        column: column.to_owned(),
        descending,
    })
}

/// Builds a comparison filter from a column and a value.
type MakeFilter = fn(String, Value) -> Filter;

/// Parses a `--where` condition into a [`Filter`].
pub fn parse_where(s: &str) -> Result<Filter, String> {
    let lower = s.to_ascii_lowercase();
    let column = |end: usize| -> Result<String, String> {
        let c = s.get(..end).unwrap_or_default().trim();
        if c.is_empty() {
            Err(format!("no column name in {s:?}"))
        } else {
            Ok(c.to_owned())
        }
    };
    if let Some(i) = lower.trim_end().strip_suffix(" is not null").map(str::len) {
        return Ok(Filter::is_not_null(column(i)?));
    }
    if let Some(i) = lower.trim_end().strip_suffix(" is null").map(str::len) {
        return Ok(Filter::is_null(column(i)?));
    }
    if let Some(i) = lower.find(" like ") {
        let pattern = s.get(i + 6..).unwrap_or_default().trim_start();
        return Ok(Filter::like(column(i)?, pattern));
    }
    if let Some(i) = lower.find(" in ") {
        let list = s.get(i + 4..).unwrap_or_default().trim();
        let list = list
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .unwrap_or(list);
        let values = list
            .split(',')
            .map(|v| parse_param(v.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Filter::is_in(column(i)?, values));
    }
    let Some(i) = s.find(['=', '!', '<', '>']) else {
        return Err(format!(
            "expected COLUMN OP VALUE (OP one of = != < <= > >= like in, or `is [not] null`), got {s:?}"
        ));
    };
    let rest = s.get(i..).unwrap_or_default();
    let ops: [(&str, MakeFilter); 8] = [
        ("!=", |c, v| Filter::ne(c, v)),
        ("<>", |c, v| Filter::ne(c, v)),
        ("<=", |c, v| Filter::le(c, v)),
        (">=", |c, v| Filter::ge(c, v)),
        ("==", |c, v| Filter::eq(c, v)),
        ("=", |c, v| Filter::eq(c, v)),
        ("<", |c, v| Filter::lt(c, v)),
        (">", |c, v| Filter::gt(c, v)),
    ];
    for (op, make) in ops {
        if let Some(value) = rest.strip_prefix(op) {
            return Ok(make(column(i)?, parse_param(value.trim())?));
        }
    }
    Err(format!("unknown operator in {s:?}"))
}

/// Parses `NAME:TYPE[:pk][:notnull][:unique][:default=VALUE]`.
pub fn parse_column(s: &str) -> Result<ColumnDef, String> {
    let mut parts = s.split(':');
    let name = parts.next().unwrap_or_default();
    if name.is_empty() {
        return Err(format!(
            "expected NAME:TYPE[:pk][:notnull][:unique][:default=VALUE], got {s:?}"
        ));
    }
    let ty = parts
        .next()
        .ok_or_else(|| format!("no type in {s:?}; expected NAME:TYPE"))?;
    let ty = column_type(ty)?;
    let mut col = ColumnDef::new(name, ty);
    // The default's text may itself contain ':' (a timestamp); it is the last flag.
    let flags: Vec<&str> = parts.collect();
    let mut i = 0;
    while let Some(flag) = flags.get(i) {
        match flag.to_ascii_lowercase().as_str() {
            "pk" | "primary_key" | "primarykey" => col = col.primary_key(),
            "notnull" | "not_null" => col = col.not_null(),
            "unique" => col = col.unique(),
            f if f.starts_with("default=") => {
                let text = flags[i..].join(":");
                let value = text.get("default=".len()..).unwrap_or_default();
                col = col.default_value(parse_param(value)?);
                break;
            }
            other => {
                return Err(format!(
                    "unknown column flag {other:?}; expected pk, notnull, unique or default=VALUE"
                ));
            }
        }
        i += 1;
    }
    Ok(col)
}

/// Parses `COLUMN=TYPE` (`import --type`), with the type names of `parse_column`.
pub fn parse_type_override(s: &str) -> Result<(String, ColumnType), String> {
    let (name, ty) = s
        .split_once('=')
        .ok_or_else(|| format!("expected COLUMN=TYPE, got {s:?}"))?;
    if name.is_empty() {
        return Err(format!("no column name in {s:?}; expected COLUMN=TYPE"));
    }
    Ok((name.to_owned(), column_type(ty.trim())?))
}

/// Parses a CSV delimiter: one ASCII character other than a quote or a line break (`\t` and
/// `tab` name the tab, which is awkward to type).
pub fn parse_delimiter(s: &str) -> Result<char, String> {
    let c = match s {
        "\\t" | "tab" => '\t',
        _ => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => c,
                _ => return Err(format!("expected one character, got {s:?}")),
            }
        }
    };
    if !c.is_ascii() || matches!(c, '"' | '\r' | '\n') {
        return Err(format!(
            "{c:?} cannot be a delimiter: use one ASCII character other than a quote or a line break"
        ));
    }
    Ok(c)
}

fn column_type(s: &str) -> Result<ColumnType, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "integer" | "int" | "bigint" => ColumnType::Integer,
        "float" | "real" | "double" => ColumnType::Float,
        "text" | "string" | "varchar" => ColumnType::Text,
        "bytes" | "blob" | "bytea" => ColumnType::Bytes,
        "bool" | "boolean" => ColumnType::Bool,
        "decimal" | "numeric" => ColumnType::Decimal,
        "json" => ColumnType::Json,
        "timestamp" | "datetime" => ColumnType::Timestamp,
        "date" => ColumnType::Date,
        other => {
            return Err(format!(
                "unknown column type {other:?}; expected integer, float, text, bytes, bool, decimal, json, timestamp or date"
            ));
        }
    })
}

/// Parses rows for `rows insert`: a JSON array of objects, or one object per line.
pub fn parse_rows(text: &str) -> Result<Vec<Record>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        rows.into_iter()
            .enumerate()
            .map(|(i, v)| record(v).map_err(|e| format!("row {}: {e}", i + 1)))
            .collect()
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                let v = serde_json::from_str(l)
                    .map_err(|e| format!("line {}: invalid JSON: {e}", i + 1))?;
                record(v).map_err(|e| format!("line {}: {e}", i + 1))
            })
            .collect()
    }
}

fn record(v: serde_json::Value) -> Result<Record, String> {
    match v {
        serde_json::Value::Object(map) => Ok(map.into_iter().map(|(k, v)| (k, value(v))).collect()),
        other => Err(format!("expected an object of column values, got {other}")),
    }
}

/// A JSON value as a typed value: numbers keep integer-ness, documents stay JSON.
fn value(v: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::Int(i),
            // Integers beyond i64 (u64 above 2^63) keep every digit as a decimal.
            (None, _) if n.is_u64() => Value::Decimal(n.to_string()),
            (None, Some(f)) => Value::Float(f),
            (None, None) => Value::Decimal(n.to_string()),
        },
        J::String(s) => Value::Text(s),
        doc @ (J::Array(_) | J::Object(_)) => Value::Json(doc.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_typed_by_their_text() {
        assert_eq!(parse_param("24"), Ok(Value::Int(24)));
        assert_eq!(parse_param("-3"), Ok(Value::Int(-3)));
        assert_eq!(parse_param("2.5"), Ok(Value::Float(2.5)));
        assert_eq!(parse_param("1e3"), Ok(Value::Float(1000.0)));
        assert_eq!(parse_param("true"), Ok(Value::Bool(true)));
        assert_eq!(parse_param("null"), Ok(Value::Null));
        assert_eq!(parse_param("NULL"), Ok(Value::Null));
        assert_eq!(parse_param("bob"), Ok(Value::Text("bob".into())));
        assert_eq!(parse_param("007"), Ok(Value::Text("007".into())));
        assert_eq!(parse_param("0.5"), Ok(Value::Float(0.5)));
        assert_eq!(parse_param("0"), Ok(Value::Int(0)));
        assert_eq!(parse_param("inf"), Ok(Value::Text("inf".into())));
        assert_eq!(parse_param("NaN"), Ok(Value::Text("NaN".into())));
        assert_eq!(parse_param("http://x"), Ok(Value::Text("http://x".into())));
        assert_eq!(
            parse_param("99999999999999999999"),
            Ok(Value::Decimal("99999999999999999999".into()))
        );
    }

    #[test]
    fn prefixes_force_a_type() {
        assert_eq!(parse_param("text:24"), Ok(Value::Text("24".into())));
        assert_eq!(parse_param("int:24"), Ok(Value::Int(24)));
        assert_eq!(parse_param("float:1"), Ok(Value::Float(1.0)));
        assert_eq!(parse_param("bool:false"), Ok(Value::Bool(false)));
        assert_eq!(
            parse_param("decimal:1.10"),
            Ok(Value::Decimal("1.10".into()))
        );
        assert_eq!(parse_param("hex:00ff"), Ok(Value::Bytes(vec![0, 255])));
        assert_eq!(parse_param("base64:AP8="), Ok(Value::Bytes(vec![0, 255])));
        assert_eq!(parse_param("json:[1,2]"), Ok(Value::Json("[1,2]".into())));
        assert_eq!(parse_param("text:int:5"), Ok(Value::Text("int:5".into())));
        assert!(matches!(
            parse_param("timestamp:2024-05-01T12:00:00Z"),
            Ok(Value::Timestamp(_))
        ));
        assert!(matches!(parse_param("date:2024-05-01"), Ok(Value::Date(_))));
        assert!(parse_param("int:abc").is_err_and(|e| e.contains("not a valid int")));
        assert!(parse_param("decimal:1.2.3").is_err());
        assert!(parse_param("hex:0").is_err());
    }

    #[test]
    fn where_conditions() {
        assert_eq!(parse_where("age=24"), Ok(Filter::eq("age", 24)));
        assert_eq!(parse_where("age >= 18"), Ok(Filter::ge("age", 18)));
        assert_eq!(parse_where("age<>3"), Ok(Filter::ne("age", 3)));
        assert_eq!(parse_where("age!=3"), Ok(Filter::ne("age", 3)));
        assert_eq!(parse_where("age<3"), Ok(Filter::lt("age", 3)));
        assert_eq!(parse_where("name like A%"), Ok(Filter::like("name", "A%")));
        assert_eq!(parse_where("name LIKE 'x"), Ok(Filter::like("name", "'x")));
        assert_eq!(
            parse_where("team in red,blue"),
            Ok(Filter::is_in("team", ["red", "blue"]))
        );
        assert_eq!(parse_where("id in (1, 2)"), Ok(Filter::is_in("id", [1, 2])));
        assert_eq!(parse_where("x is null"), Ok(Filter::is_null("x")));
        assert_eq!(parse_where("x IS NOT NULL"), Ok(Filter::is_not_null("x")));
        assert_eq!(parse_where("zip=text:24"), Ok(Filter::eq("zip", "24")));
        assert!(parse_where("age").is_err());
        assert!(parse_where("=3").is_err());
    }

    #[test]
    fn columns_orders_labels_assignments() {
        assert_eq!(
            parse_column("id:integer:pk"),
            Ok(ColumnDef::new("id", ColumnType::Integer).primary_key())
        );
        assert_eq!(
            parse_column("name:text:notnull:unique"),
            Ok(ColumnDef::new("name", ColumnType::Text).not_null().unique())
        );
        assert_eq!(
            parse_column("at:timestamp:default=text:2024-01-01T00:00:00Z"),
            Ok(ColumnDef::new("at", ColumnType::Timestamp).default_value("2024-01-01T00:00:00Z"))
        );
        assert!(parse_column("id").is_err());
        assert!(parse_column("id:nope").is_err());
        assert!(parse_column("id:int:bogus").is_err());
        assert_eq!(
            parse_order("-age"),
            Ok(OrderKey {
                column: "age".into(),
                descending: true
            })
        );
        assert_eq!(
            parse_order("age:desc"),
            Ok(OrderKey {
                column: "age".into(),
                descending: true
            })
        );
        assert_eq!(
            parse_order("age"),
            Ok(OrderKey {
                column: "age".into(),
                descending: false
            })
        );
        assert_eq!(parse_label("env=dev"), Ok(("env".into(), "dev".into())));
        assert!(parse_label("env").is_err());
        assert_eq!(
            parse_assign("name=Bob"),
            Ok(Assign {
                column: "name".into(),
                value: Value::Text("Bob".into())
            })
        );
    }

    #[test]
    fn rows_from_json_array_and_ndjson() {
        let rows = parse_rows(r#"[{"id": 1, "name": "Ada", "tags": ["a"], "x": null, "f": 1.5}]"#)
            .expect("array");
        assert_eq!(rows[0]["id"], Value::Int(1));
        assert_eq!(rows[0]["name"], Value::Text("Ada".into()));
        assert_eq!(rows[0]["tags"], Value::Json("[\"a\"]".into()));
        assert_eq!(rows[0]["x"], Value::Null);
        assert_eq!(rows[0]["f"], Value::Float(1.5));
        let rows = parse_rows("{\"id\": 1}\n\n{\"id\": 9007199254740993}\n").expect("ndjson");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["id"], Value::Int(9_007_199_254_740_993));
        assert!(parse_rows("[1]").is_err_and(|e| e.starts_with("row 1")));
        assert!(parse_rows("{\"a\":1}\n{oops").is_err_and(|e| e.starts_with("line 2")));
    }

    #[test]
    fn grants_name_a_database_a_pattern_or_labels() {
        use dbforge::{Grant, Role};
        assert_eq!(
            parse_grant("read:reports"),
            Ok(Grant::database("reports", Role::Read))
        );
        assert_eq!(
            parse_grant("Owner:agent-42-*"),
            Ok(Grant::pattern("agent-42-*", Role::Owner))
        );
        assert_eq!(
            parse_grant("write:team=search,tier=gold"),
            Ok(Grant::labels(
                [("team", "search"), ("tier", "gold")],
                Role::Write
            ))
        );
        assert!(
            parse_grant("reports")
                .expect_err("no role")
                .contains("ROLE:TARGET")
        );
        assert!(
            parse_grant("admin:x")
                .expect_err("no such role")
                .contains("read, write or owner")
        );
        assert!(parse_grant("read:").is_err());
    }

    #[test]
    fn times_are_rfc_3339_or_an_age() {
        let t = parse_time("2024-05-01T12:00:00Z").expect("rfc 3339");
        assert_eq!(
            t.duration_since(std::time::UNIX_EPOCH)
                .expect("after")
                .as_secs(),
            1_714_564_800
        );
        let hour_ago = parse_time("1h").expect("age");
        let age = std::time::SystemTime::now()
            .duration_since(hour_ago)
            .expect("in the past");
        assert!(age.as_secs() >= 3600 && age.as_secs() < 3700, "{age:?}");
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn type_overrides_and_delimiters() {
        assert_eq!(
            parse_type_override("zip=text"),
            Ok(("zip".to_owned(), ColumnType::Text))
        );
        assert_eq!(
            parse_type_override("n=int"),
            Ok(("n".to_owned(), ColumnType::Integer))
        );
        assert!(parse_type_override("zip").is_err());
        assert!(parse_type_override("=text").is_err());
        assert!(parse_type_override("zip=nope").is_err());
        assert_eq!(parse_delimiter(";"), Ok(';'));
        assert_eq!(parse_delimiter("\\t"), Ok('\t'));
        assert_eq!(parse_delimiter("tab"), Ok('\t'));
        assert!(parse_delimiter("\"").is_err());
        assert!(parse_delimiter(";;").is_err());
        assert!(parse_delimiter("é").is_err());
    }
}
