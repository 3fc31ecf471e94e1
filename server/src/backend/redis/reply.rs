//! Statements in, rows out: command lines and typed parameters become Redis arguments, replies
//! become the documented row shape (see the module docs of `redis`), and Redis errors become
//! the shared error type.

use redis::{ErrorKind, RedisError, Value as Resp};

use super::command::{Cursor, ReplyKeys};
use crate::core::{
    error::{Error, QueryErrorKind, Result},
    value::{Column, Row, Statement, StatementResult, Value, ValueKind, text},
};

/// The arguments of a statement: the words of `sql` (split like a POSIX shell line, quotes
/// respected), followed by the parameters.
pub(super) fn argv(stmt: &Statement) -> Result<Vec<Vec<u8>>> {
    let mut args: Vec<Vec<u8>> = split_line(&stmt.sql)?
        .into_iter()
        .map(String::into_bytes)
        .collect();
    for p in &stmt.params {
        args.push(to_arg(p)?);
    }
    if args.is_empty() {
        return Err(Error::invalid(
            "sql",
            "empty command: write a Redis command, e.g. `GET key`, or its name with the \
             arguments in `params`",
        ));
    }
    Ok(args)
}

/// Splits a command line with shlex (POSIX shell rules: single quotes are literal, double
/// quotes allow `\"` and `\\`, a backslash outside quotes escapes the next character).
/// shlex would also treat a word starting with `#` as a comment and drop the rest of the line;
/// on a Redis line `#` is an ordinary argument (`HSET tags #rust 1`), so such a `#` is escaped
/// before splitting.
pub(super) fn split_line(line: &str) -> Result<Vec<String>> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut escaped = String::with_capacity(line.len() + 4);
    let mut state = Quote::None;
    let mut word_start = true;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match state {
            Quote::None => {
                if c == '#' && word_start {
                    escaped.push('\\');
                }
                word_start = c.is_whitespace();
                escaped.push(c);
                match c {
                    '\\' => escaped.extend(chars.next()),
                    '\'' => state = Quote::Single,
                    '"' => state = Quote::Double,
                    _ => {}
                }
            }
            Quote::Single => {
                escaped.push(c);
                if c == '\'' {
                    state = Quote::None;
                }
            }
            Quote::Double => {
                escaped.push(c);
                match c {
                    '\\' => escaped.extend(chars.next()),
                    '"' => state = Quote::None,
                    _ => {}
                }
            }
        }
    }
    shlex::split(&escaped).ok_or_else(|| {
        Error::invalid(
            "sql",
            "the command line has an unterminated quote or a trailing backslash",
        )
    })
}

/// One parameter as a Redis argument: text and bytes as they are, numbers in decimal, booleans
/// as 1/0, and the richer kinds in their canonical text form (RFC 3339 timestamps, ISO dates
/// and times). NULL and arrays have no Redis form and are refused.
pub(super) fn to_arg(v: &Value) -> Result<Vec<u8>> {
    Ok(match v {
        Value::Text(s) | Value::Decimal(s) | Value::Json(s) | Value::Uuid(s) => {
            s.clone().into_bytes()
        }
        Value::Bytes(b) => b.clone(),
        Value::Int(i) => i.to_string().into_bytes(),
        Value::Float(f) if f.is_nan() => {
            return Err(Error::invalid("params", "NaN has no Redis form"));
        }
        // Rust prints the shortest form that reads back to the same double, and `inf`/`-inf`,
        // all of which Redis parses.
        Value::Float(f) => f.to_string().into_bytes(),
        Value::Bool(b) => if *b { b"1" } else { b"0" }.to_vec(),
        Value::Timestamp(t) => text::timestamp(t)
            .map_err(|e| Error::invalid("params", e))?
            .into_bytes(),
        Value::Date(d) => text::date(d).into_bytes(),
        Value::Time(t) => {
            let base = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
            match t.nanosecond() {
                0 => base.into_bytes(),
                n => format!("{base}.{}", format!("{n:09}").trim_end_matches('0')).into_bytes(),
            }
        }
        Value::Null => {
            return Err(Error::invalid(
                "params",
                "Redis commands take no NULL arguments; leave the argument out",
            ));
        }
        Value::Array(_) => {
            return Err(Error::invalid(
                "params",
                "Redis commands take no array arguments; pass the elements as separate params",
            ));
        }
    })
}

/// Fails with the reply's error when it is one.
pub(super) fn check(reply: Resp) -> Result<Resp> {
    match reply {
        Resp::ServerError(e) => Err(classify(e.into())),
        other => Ok(other),
    }
}

/// One reply value as a cell: bulk strings are text when they are UTF-8 and bytes otherwise,
/// nested arrays and sets are arrays, nested maps are arrays of `[field, value]` pairs.
pub(super) fn to_value(reply: Resp) -> Result<Value> {
    Ok(match reply {
        Resp::Nil => Value::Null,
        Resp::Int(i) => Value::Int(i),
        Resp::BulkString(b) => bytes_value(b),
        Resp::SimpleString(s) => Value::Text(s),
        Resp::Okay => Value::Text("OK".into()),
        Resp::VerbatimString { text, .. } => Value::Text(text),
        Resp::Double(f) => Value::Float(f),
        Resp::Boolean(b) => Value::Bool(b),
        Resp::BigNumber(n) => Value::Decimal(n.to_string()),
        Resp::Array(items) | Resp::Set(items) | Resp::Push { data: items, .. } => {
            Value::Array(items.into_iter().map(to_value).collect::<Result<_>>()?)
        }
        Resp::Map(entries) => Value::Array(
            entries
                .into_iter()
                .map(|(k, v)| Ok(Value::Array(vec![to_value(k)?, to_value(v)?])))
                .collect::<Result<_>>()?,
        ),
        Resp::Attribute { data, .. } => to_value(*data)?,
        Resp::ServerError(e) => return Err(classify(e.into())),
        other => Value::Text(format!("{other:?}")),
    })
}

fn bytes_value(b: Vec<u8>) -> Value {
    match String::from_utf8(b) {
        Ok(s) => Value::Text(s),
        Err(e) => Value::Bytes(e.into_bytes()),
    }
}

/// The kind a column of these cells yields: theirs when all non-null cells agree.
fn kind_of<'a>(cells: impl Iterator<Item = &'a Value>) -> ValueKind {
    let mut kind = None;
    for v in cells {
        let k = match v {
            Value::Null => continue,
            Value::Int(_) => ValueKind::Int,
            Value::Float(_) => ValueKind::Float,
            Value::Text(_) => ValueKind::Text,
            Value::Bytes(_) => ValueKind::Bytes,
            Value::Bool(_) => ValueKind::Bool,
            Value::Decimal(_) => ValueKind::Decimal,
            Value::Array(_) => ValueKind::Array,
            _ => ValueKind::Unspecified,
        };
        match kind {
            None => kind = Some(k),
            Some(prev) if prev != k => return ValueKind::Unspecified,
            Some(_) => {}
        }
    }
    kind.unwrap_or(ValueKind::Unspecified)
}

/// Column metadata for `names`, with each column's kind taken from the rows.
pub(super) fn columns(names: &[&str], rows: &[Row]) -> Vec<Column> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| Column {
            name: (*name).to_owned(),
            declared_type: String::new(),
            kind: kind_of(rows.iter().filter_map(|r| r.get(i))),
        })
        .collect()
}

/// A reply in the documented row shape: a map gives `field`,`value` rows; an array or set one
/// `value` row per element; anything else one `value` row.
pub(super) fn rows(reply: Resp) -> Result<(Vec<Column>, Vec<Row>)> {
    let (names, rows): (&[&str], Vec<Row>) = match reply {
        Resp::Map(entries) => (
            &["field", "value"],
            entries
                .into_iter()
                .map(|(k, v)| Ok(vec![to_value(k)?, to_value(v)?]))
                .collect::<Result<_>>()?,
        ),
        Resp::Array(items) | Resp::Set(items) | Resp::Push { data: items, .. } => (
            &["value"],
            items
                .into_iter()
                .map(|v| Ok(vec![to_value(v)?]))
                .collect::<Result<_>>()?,
        ),
        Resp::Attribute { data, .. } => return rows(*data),
        scalar => (&["value"], vec![vec![to_value(scalar)?]]),
    };
    Ok((columns(names, &rows), rows))
}

/// A whole reply as the result of `Execute`, held to the row and byte limits. Redis cannot take
/// a command back, so a writing command over a limit has still been applied; the message says so.
pub(super) fn result(
    reply: Resp,
    max_rows: u64,
    max_bytes: u64,
    writes: bool,
) -> Result<StatementResult> {
    let (columns, rows) = rows(reply)?;
    let applied = if writes {
        " (the command was applied: Redis cannot undo it)"
    } else {
        ""
    };
    if rows.len() as u64 > max_rows {
        return Err(Error::LimitExceeded(format!(
            "the reply has more than {max_rows} rows{applied}; use Query, or a ranged or SCAN \
             command, for large results"
        )));
    }
    let bytes: usize = rows.iter().flatten().map(Value::approx_size).sum();
    if bytes as u64 > max_bytes {
        return Err(Error::LimitExceeded(format!(
            "the reply exceeds {max_bytes} bytes{applied}; use Query, or a ranged or SCAN \
             command, for large results"
        )));
    }
    Ok(StatementResult {
        rows_affected: 0,
        last_insert_id: None,
        columns,
        rows,
    })
}

fn strip(b: &mut Vec<u8>, prefix: &[u8]) {
    if b.starts_with(prefix) {
        b.drain(..prefix.len());
    }
}

fn strip_key(v: &mut Resp, prefix: &[u8]) {
    if let Resp::BulkString(b) = v {
        strip(b, prefix);
    }
}

/// Removes the namespace prefix from the key names a reply carries.
pub(super) fn strip_keys(reply: &mut Resp, rule: ReplyKeys, prefix: &[u8]) {
    match (rule, reply) {
        (ReplyKeys::None, _) => {}
        (ReplyKeys::ScanPage, Resp::Array(page)) => {
            if let Some(Resp::Array(keys) | Resp::Set(keys)) = page.get_mut(1) {
                keys.iter_mut().for_each(|k| strip_key(k, prefix));
            }
        }
        (ReplyKeys::First, Resp::Array(items)) => {
            if let Some(k) = items.first_mut() {
                strip_key(k, prefix);
            }
        }
        (ReplyKeys::Streams, Resp::Map(entries)) => {
            entries.iter_mut().for_each(|(k, _)| strip_key(k, prefix));
        }
        (ReplyKeys::Streams, Resp::Array(streams)) => {
            for s in streams {
                if let Resp::Array(pair) = s
                    && let Some(k) = pair.first_mut()
                {
                    strip_key(k, prefix);
                }
            }
        }
        _ => {}
    }
}

/// One page of a cursor command: the next cursor and the page's rows in the cursor's columns,
/// key names stripped of the prefix.
pub(super) fn cursor_page(
    reply: Resp,
    cursor: Cursor,
    prefix: &[u8],
) -> Result<(Vec<u8>, Vec<Row>)> {
    let bad = || Error::internal("unexpected reply to a SCAN-family command");
    let Resp::Array(mut page) = reply else {
        return Err(bad());
    };
    if page.len() != 2 {
        return Err(bad());
    }
    let items = match page.pop() {
        Some(Resp::Array(items) | Resp::Set(items)) => items,
        _ => return Err(bad()),
    };
    let next = match page.pop() {
        Some(Resp::BulkString(c)) => c,
        Some(Resp::SimpleString(c)) => c.into_bytes(),
        Some(Resp::Int(c)) => c.to_string().into_bytes(),
        _ => return Err(bad()),
    };
    let width = cursor.columns().len();
    let mut rows = Vec::with_capacity(items.len() / width);
    let mut items = items.into_iter();
    while let Some(mut first) = items.next() {
        if cursor == Cursor::Keys {
            strip_key(&mut first, prefix);
        }
        let mut row = vec![to_value(first)?];
        if width == 2 {
            let second = to_value(items.next().ok_or_else(bad)?)?;
            row.push(match (cursor, second) {
                // ZSCAN sends scores as strings even in RESP3; the column is documented Float.
                (Cursor::SortedSet, Value::Text(s)) => {
                    s.parse::<f64>().map(Value::Float).unwrap_or(Value::Text(s))
                }
                (_, v) => v,
            });
        }
        rows.push(row);
    }
    Ok((next, rows))
}

/// Turns a Redis error into the shared error type, keeping the error prefix (`ERR`,
/// `WRONGTYPE`, `NOPERM`, …) as the native code.
pub fn classify(err: RedisError) -> Error {
    if err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || matches!(
            err.kind(),
            ErrorKind::Parse | ErrorKind::AuthenticationFailed
        )
    {
        return Error::Unavailable(format!("the Redis server cannot be reached: {err}"));
    }
    let Some(code) = err.code().map(str::to_owned) else {
        return match err.kind() {
            ErrorKind::Client => Error::invalid("sql", err),
            _ => Error::internal(err),
        };
    };
    let detail = err.detail().unwrap_or_default().to_owned();
    let message = format!("{code} {detail}").trim_end().to_owned();
    let lower = detail.to_ascii_lowercase();
    let kind = match code.as_str() {
        "NOPERM" => QueryErrorKind::Forbidden,
        "WRONGTYPE" => QueryErrorKind::DataType,
        "ERR" | "EXECABORT"
            if lower.contains("syntax")
                || lower.contains("unknown command")
                || lower.contains("unknown subcommand")
                || lower.contains("wrong number of arguments") =>
        {
            QueryErrorKind::Syntax
        }
        "ERR"
            if lower.contains("not an integer")
                || lower.contains("not a valid float")
                || lower.contains("not a float")
                || lower.contains("not a number") =>
        {
            QueryErrorKind::DataType
        }
        "OOM" => return Error::LimitExceeded(message),
        "MOVED" | "ASK" => {
            // The database's slot is on another node now (a failover or resharding of a Redis
            // Cluster): the command did not run, and the next call goes to the new node.
            return Error::Unavailable(format!(
                "the Redis Cluster moved this database's keys to another node; retry: {message}"
            ));
        }
        "LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN" | "READONLY"
        | "WRONGPASS" => {
            return Error::Unavailable(format!("the Redis server refused the call: {message}"));
        }
        _ => QueryErrorKind::Other,
    };
    Error::Query {
        kind,
        code: Some(code),
        message,
        statement_index: None,
    }
}

/// Removes every occurrence of the prefix from an error message, so that a tenant sees its own
/// key names in Redis' messages.
pub(super) fn strip_message(err: Error, prefix: &str) -> Error {
    err.map_query_message(|m| m.replace(prefix, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(line: &str) -> RedisError {
        match redis::parse_redis_value(format!("-{line}\r\n").as_bytes()) {
            Ok(Resp::ServerError(e)) => e.into(),
            other => panic!("not an error reply: {other:?}"),
        }
    }

    fn kind(err: Error) -> (QueryErrorKind, Option<String>) {
        match err {
            Error::Query { kind, code, .. } => (kind, code),
            other => panic!("expected a query error, got {other:?}"),
        }
    }

    #[test]
    fn errors_are_classified_by_prefix() {
        let cases = [
            (
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                QueryErrorKind::DataType,
                "WRONGTYPE",
            ),
            (
                "NOPERM this user has no permissions to run the 'flushall' command",
                QueryErrorKind::Forbidden,
                "NOPERM",
            ),
            ("ERR syntax error", QueryErrorKind::Syntax, "ERR"),
            (
                "ERR unknown command 'FOO', with args beginning with: ",
                QueryErrorKind::Syntax,
                "ERR",
            ),
            (
                "ERR wrong number of arguments for 'get' command",
                QueryErrorKind::Syntax,
                "ERR",
            ),
            (
                "ERR value is not an integer or out of range",
                QueryErrorKind::DataType,
                "ERR",
            ),
            ("ERR no such key", QueryErrorKind::Other, "ERR"),
        ];
        for (line, expected, code) in cases {
            let (k, c) = kind(classify(server_error(line)));
            assert_eq!(k, expected, "{line}");
            assert_eq!(c.as_deref(), Some(code), "{line}");
        }
        assert!(matches!(
            classify(server_error("OOM command not allowed")),
            Error::LimitExceeded(_)
        ));
        assert!(matches!(
            classify(server_error(
                "LOADING Redis is loading the dataset in memory"
            )),
            Error::Unavailable(_)
        ));
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(classify(io), Error::Unavailable(_)));
    }

    #[test]
    fn command_lines_split_with_quotes() {
        let split = |s: &str| split_line(s).expect(s);
        assert_eq!(split("SET k v"), ["SET", "k", "v"]);
        assert_eq!(
            split(r#"SET "my key" 'it''s' "a \"q\" \\ b""#),
            ["SET", "my key", "its", r#"a "q" \ b"#]
        );
        assert_eq!(split("SET 'a b' \"c 'd'\""), ["SET", "a b", "c 'd'"]);
        assert_eq!(
            split("SORT l GET # #x a#b"),
            ["SORT", "l", "GET", "#", "#x", "a#b"]
        );
        assert_eq!(split("SET '#k' \"#v\""), ["SET", "#k", "#v"]);
        assert_eq!(split("  HSET  h\tf  v \n"), ["HSET", "h", "f", "v"]);
        assert_eq!(split("SET k ''"), ["SET", "k", ""]);
        assert_eq!(split("SET héllo ✓"), ["SET", "héllo", "✓"]);
        assert!(split_line("SET 'unterminated").is_err());
        assert!(split_line("SET \"unterminated").is_err());
    }

    #[test]
    fn params_become_arguments() {
        let stmt = Statement {
            sql: "HSET h".into(),
            params: vec![
                Value::Text("f".into()),
                Value::Int(-5),
                Value::Float(0.25),
                Value::Bool(true),
                Value::Bytes(vec![0, 255]),
            ],
        };
        assert_eq!(
            argv(&stmt).expect("argv"),
            [
                b"HSET".to_vec(),
                b"h".to_vec(),
                b"f".to_vec(),
                b"-5".to_vec(),
                b"0.25".to_vec(),
                b"1".to_vec(),
                vec![0, 255]
            ]
        );
        assert!(to_arg(&Value::Null).is_err());
        assert!(to_arg(&Value::Float(f64::NAN)).is_err());
        assert_eq!(to_arg(&Value::Float(f64::INFINITY)).expect("inf"), b"inf");
        assert!(argv(&Statement::new("   ")).is_err());
    }

    #[test]
    fn replies_take_the_documented_shape() {
        let (cols, got) = rows(Resp::BulkString(b"hi".to_vec())).expect("scalar");
        assert_eq!(cols[0].name, "value");
        assert_eq!(cols[0].kind, ValueKind::Text);
        assert_eq!(got, vec![vec![Value::Text("hi".into())]]);

        let (cols, got) = rows(Resp::Nil).expect("nil");
        assert_eq!((cols.len(), got), (1, vec![vec![Value::Null]]));

        let (cols, got) = rows(Resp::Array(vec![
            Resp::Int(1),
            Resp::BulkString(vec![0xff]),
            Resp::Array(vec![Resp::Int(2)]),
        ]))
        .expect("array");
        assert_eq!(cols[0].kind, ValueKind::Unspecified);
        assert_eq!(
            got,
            vec![
                vec![Value::Int(1)],
                vec![Value::Bytes(vec![0xff])],
                vec![Value::Array(vec![Value::Int(2)])]
            ]
        );

        let (cols, got) = rows(Resp::Map(vec![(
            Resp::BulkString(b"f".to_vec()),
            Resp::Double(1.5),
        )]))
        .expect("map");
        assert_eq!(
            cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["field", "value"]
        );
        assert_eq!(cols[1].kind, ValueKind::Float);
        assert_eq!(got, vec![vec![Value::Text("f".into()), Value::Float(1.5)]]);
    }

    #[test]
    fn prefixes_are_stripped_from_replies() {
        let mut page = Resp::Array(vec![
            Resp::BulkString(b"0".to_vec()),
            Resp::Array(vec![Resp::BulkString(b"p:a".to_vec())]),
        ]);
        strip_keys(&mut page, ReplyKeys::ScanPage, b"p:");
        let (next, rows) = cursor_page(page.clone(), Cursor::Keys, b"p:").expect("page");
        assert_eq!(next, b"0");
        assert_eq!(rows, vec![vec![Value::Text("a".into())]]);
        let mut streams = Resp::Map(vec![(Resp::BulkString(b"p:s".to_vec()), Resp::Nil)]);
        strip_keys(&mut streams, ReplyKeys::Streams, b"p:");
        assert_eq!(
            streams,
            Resp::Map(vec![(Resp::BulkString(b"s".to_vec()), Resp::Nil)])
        );
    }
}
