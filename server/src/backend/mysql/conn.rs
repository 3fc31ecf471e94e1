//! MySQL/MariaDB connections: preparing, binding and running client statements, reading values
//! from the binary protocol, gateway transaction control, and error classification.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use futures::TryStreamExt;
use sqlx::{
    Arguments, AssertSqlSafe, Column as _, ColumnOrigin, Connection, Decode, Either, Encode,
    Executor, MySql, Row as _, SqlSafeStr, Statement as _, Type, TypeInfo, ValueRef,
    encode::IsNull,
    error::BoxDynError,
    mysql::{
        MySqlArguments, MySqlColumn, MySqlConnectOptions, MySqlConnection, MySqlDatabaseError,
        MySqlRow, MySqlTypeInfo, MySqlValueRef,
    },
    types::BigDecimal,
};
use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

use crate::{
    backend::{
        BackendKind,
        sql::{
            self, Control, Engine, Flavor, Outcome, Relogin, RowSink, SAVEPOINT, SqlConn,
            exec::query_error,
            text::{DecimalDigits, first_word},
        },
    },
    core::{
        error::{Error, QueryErrorKind, Result},
        value::{Column, Row, Statement, Value, ValueKind},
    },
};

/// Prepared statements kept per connection; evicting one costs no round trip on MySQL.
pub const STATEMENT_CACHE: usize = 32;

/// Which server answers, learnt at the first connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFlavor {
    /// MariaDB rather than MySQL.
    pub mariadb: bool,
    /// `INSERT … RETURNING` exists (MariaDB 10.5+).
    pub returning: bool,
}

impl ServerFlavor {
    fn from_version(version: &str) -> Self {
        let mariadb = version.contains("MariaDB");
        let mut parts = version
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse::<u32>().ok());
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        Self {
            mariadb,
            returning: mariadb && (major, minor) >= (10, 5),
        }
    }
}

/// The MySQL engine for the shared data plane.
#[derive(Debug, Default)]
pub struct MysqlEngine {
    flavor: OnceLock<ServerFlavor>,
}

impl MysqlEngine {
    /// The server's flavor, once a connection has told it.
    pub fn flavor(&self) -> Option<ServerFlavor> {
        self.flavor.get().copied()
    }
}

/// Declared types of a spawned database's columns, for what MariaDB's wire metadata cannot
/// tell: a JSON column is a LONGTEXT with a `json_valid` CHECK, a UUID column looks like text.
/// Looked up in `information_schema` per table on first use and forgotten whenever a statement
/// that returns no rows (DDL among them) runs on the database.
#[derive(Debug, Default)]
pub struct TypeCache {
    tables: Mutex<HashMap<String, Arc<HashMap<String, Declared>>>>,
    /// Bumped by every statement that may change the schema, on any connection of the
    /// database; part of every prepared statement's text, so a statement prepared before such a
    /// change is never reused after it.
    epoch: AtomicU64,
}

#[derive(Debug, Clone)]
struct Declared {
    column_type: String,
    data_type: String,
    json: bool,
}

impl TypeCache {
    fn get(&self, table: &str) -> Option<Arc<HashMap<String, Declared>>> {
        self.tables.lock().ok()?.get(table).cloned()
    }

    fn put(&self, table: String, columns: HashMap<String, Declared>) {
        if let Ok(mut t) = self.tables.lock() {
            t.insert(table, Arc::new(columns));
        }
    }

    fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut t) = self.tables.lock() {
            t.clear();
        }
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }
}

/// A statement's first keyword in upper case, comments skipped; `None` when it has none or
/// holds an executable comment (`/*! … */`, `/*M! … */`), whose code depends on the server's
/// version and so counts as unknown.
pub(super) fn first_keyword(sql: &str) -> Option<String> {
    if sql.contains("/*!") || sql.contains("/*M!") {
        return None;
    }
    first_word(sql, Flavor::Mysql)
}

/// Whether `sql` may change the schema (so cached declarations and prepared statements must be
/// dropped): anything but the statements known to leave it alone. A wrong "yes" costs a prepare;
/// text the check cannot read (an executable `/*! … */` comment) counts as a change.
fn may_change_schema(sql: &str) -> bool {
    !matches!(
        first_keyword(sql).as_deref(),
        Some(
            "SELECT"
                | "INSERT"
                | "UPDATE"
                | "DELETE"
                | "REPLACE"
                | "WITH"
                | "VALUES"
                | "TABLE"
                | "SHOW"
                | "EXPLAIN"
                | "ANALYZE"
                | "DESCRIBE"
                | "DESC"
                | "DO"
                | "SET"
                | "SAVEPOINT"
                | "RELEASE"
                | "ROLLBACK"
                | "COMMIT"
                | "BEGIN"
                | "START"
        )
    )
}

/// Where a pool connects.
#[derive(Debug)]
pub struct MysqlTarget {
    /// Connection settings.
    pub options: MySqlConnectOptions,
    /// The schema of the spawned database (empty for the admin pool).
    pub schema: String,
    /// Declared column types of that schema.
    pub types: Arc<TypeCache>,
    /// The login is a read grant's: its sessions are read-only for good (see
    /// [`MyConn::refuse_session_change`]).
    pub reader: bool,
    /// Resets the login's credentials when the server refuses them (none for the admin).
    pub relogin: Option<Relogin>,
}

/// Whether the server refused the login itself (1045: access denied for the user).
fn login_refused(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.try_downcast_ref::<MySqlDatabaseError>())
        .is_some_and(|e| e.number() == 1045)
}

/// One MySQL connection.
pub struct MyConn {
    conn: MySqlConnection,
    id: u64,
    flavor: ServerFlavor,
    timeout: Option<Duration>,
    broken: bool,
    schema: String,
    types: Arc<TypeCache>,
    /// The session's transaction access mode, as last set by the gateway.
    read_only: bool,
    /// A read grant's login: read-only from connect on, never made read-write.
    reader: bool,
}

/// A prepared client statement.
#[derive(Debug)]
pub struct MyPrepared {
    sql: String,
    columns: Vec<Column>,
    decoders: Vec<Decoder>,
}

/// How to read one column of the binary protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    Bool,
    Signed,
    Unsigned,
    /// BIGINT UNSIGNED: may exceed i64, so exact text.
    U64,
    Float,
    Double,
    Decimal,
    Text,
    Bytes,
    Json,
    Uuid,
    Date,
    DateTime,
    Time,
    Bit,
    Null,
}

impl Decoder {
    fn kind(self) -> ValueKind {
        match self {
            Decoder::Bool => ValueKind::Bool,
            Decoder::Signed | Decoder::Unsigned | Decoder::Bit => ValueKind::Int,
            Decoder::U64 | Decoder::Decimal => ValueKind::Decimal,
            Decoder::Float | Decoder::Double => ValueKind::Float,
            Decoder::Text => ValueKind::Text,
            Decoder::Bytes => ValueKind::Bytes,
            Decoder::Json => ValueKind::Json,
            Decoder::Uuid => ValueKind::Uuid,
            Decoder::Date => ValueKind::Date,
            Decoder::DateTime => ValueKind::Timestamp,
            Decoder::Time => ValueKind::Time,
            Decoder::Null => ValueKind::Unspecified,
        }
    }

    /// The decoder of a column from what the wire says (sqlx's type name, and whether its
    /// collation makes it text).
    fn for_type(ty: &MySqlTypeInfo) -> Decoder {
        let name = ty.name();
        match name {
            "BOOLEAN" => Decoder::Bool,
            "BIGINT UNSIGNED" => Decoder::U64,
            n if n.ends_with(" UNSIGNED") || n == "YEAR" => Decoder::Unsigned,
            "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => Decoder::Signed,
            "FLOAT" => Decoder::Float,
            "DOUBLE" => Decoder::Double,
            "DECIMAL" => Decoder::Decimal,
            "DATE" => Decoder::Date,
            "DATETIME" | "TIMESTAMP" => Decoder::DateTime,
            "TIME" => Decoder::Time,
            "JSON" => Decoder::Json,
            "BIT" => Decoder::Bit,
            "NULL" => Decoder::Null,
            "GEOMETRY" => Decoder::Bytes,
            // Strings and blobs: the collation, not the name, says which (a `_bin` text column
            // carries the BINARY flag too).
            _ if <str as Type<MySql>>::compatible(ty) => Decoder::Text,
            _ => Decoder::Bytes,
        }
    }

    fn decode(self, b: &[u8]) -> Result<Value> {
        Ok(match self {
            Decoder::Null => Value::Null,
            Decoder::Bool => Value::Bool(b.iter().any(|x| *x != 0)),
            Decoder::Signed => Value::Int(match b.len() {
                1 => i8::from_le_bytes(fixed(b)?).into(),
                2 => i16::from_le_bytes(fixed(b)?).into(),
                4 => i32::from_le_bytes(fixed(b)?).into(),
                _ => i64::from_le_bytes(fixed(b)?),
            }),
            Decoder::Unsigned => Value::Int(match b.len() {
                1 => u8::from_le_bytes(fixed(b)?).into(),
                2 => u16::from_le_bytes(fixed(b)?).into(),
                4 => u32::from_le_bytes(fixed(b)?).into(),
                _ => i64::try_from(u64::from_le_bytes(fixed(b)?)).map_err(bad)?,
            }),
            Decoder::U64 => Value::Decimal(u64::from_le_bytes(fixed(b)?).to_string()),
            Decoder::Float => {
                // Through the shortest text of the f32, so 0.1 reads as 0.1, not 0.100000001.
                let f = f32::from_le_bytes(fixed(b)?);
                Value::Float(f.to_string().parse::<f64>().unwrap_or(f64::from(f)))
            }
            Decoder::Double => Value::Float(f64::from_le_bytes(fixed(b)?)),
            Decoder::Decimal => Value::Decimal(utf8(b)?),
            Decoder::Text => match std::str::from_utf8(b) {
                Ok(s) => Value::Text(s.to_owned()),
                Err(_) => Value::Bytes(b.to_vec()),
            },
            Decoder::Bytes => Value::Bytes(b.to_vec()),
            Decoder::Json => Value::Json(utf8(b)?),
            Decoder::Uuid => {
                let s = utf8(b)?;
                Value::parse_uuid(&s).map_or(Value::Text(s), Value::Uuid)
            }
            Decoder::Date | Decoder::DateTime => decode_datetime(self == Decoder::Date, b)?,
            Decoder::Time => decode_time(b)?,
            Decoder::Bit => {
                let n = b.iter().fold(0u128, |acc, x| (acc << 8) | u128::from(*x));
                i64::try_from(n).map_or_else(|_| Value::Decimal(n.to_string()), Value::Int)
            }
        })
    }
}

fn short() -> Error {
    Error::internal("a mysql value is shorter than its type")
}

fn bad(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("a mysql value is malformed: {e}"))
}

fn fixed<const N: usize>(b: &[u8]) -> Result<[u8; N]> {
    b.get(..N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(short)
}

fn utf8(b: &[u8]) -> Result<String> {
    String::from_utf8(b.to_vec()).map_err(bad)
}

/// DATE, DATETIME and TIMESTAMP in the binary protocol: a length byte, then year (2 bytes),
/// month, day, and optionally hour, minute, second and microseconds (4 bytes). Zero dates and
/// other values no calendar has come back as text.
fn decode_datetime(date_only: bool, b: &[u8]) -> Result<Value> {
    let (&len, rest) = b.split_first().ok_or_else(short)?;
    let rest = rest.get(..usize::from(len)).ok_or_else(short)?;
    let get = |i: usize| rest.get(i).copied().unwrap_or(0);
    let year = u16::from_le_bytes([get(0), get(1)]);
    let (month, day, hour, minute, second) = (get(2), get(3), get(4), get(5), get(6));
    let micros = u32::from_le_bytes([get(7), get(8), get(9), get(10)]);
    let as_text = || {
        let date = format!("{year:04}-{month:02}-{day:02}");
        if date_only {
            date
        } else {
            format!("{date} {hour:02}:{minute:02}:{second:02}")
        }
    };
    let date = Month::try_from(month)
        .ok()
        .and_then(|m| Date::from_calendar_date(i32::from(year), m, day).ok());
    let Some(date) = date else {
        return Ok(Value::Text(as_text()));
    };
    if date_only {
        return Ok(Value::Date(date));
    }
    let time = Time::from_hms_micro(hour, minute, second, micros).map_err(bad)?;
    // The session's time zone is UTC, so DATETIME and TIMESTAMP both read as UTC.
    Ok(Value::Timestamp(
        PrimitiveDateTime::new(date, time).assume_offset(UtcOffset::UTC),
    ))
}

/// TIME in the binary protocol: a length byte, then sign, days (4 bytes), hour, minute, second
/// and optionally microseconds. MySQL's TIME is a duration (-838:59:59 to 838:59:59); only a
/// time of day reads as `Time`, the rest as text.
fn decode_time(b: &[u8]) -> Result<Value> {
    let (&len, rest) = b.split_first().ok_or_else(short)?;
    let rest = rest.get(..usize::from(len)).ok_or_else(short)?;
    let get = |i: usize| rest.get(i).copied().unwrap_or(0);
    let negative = get(0) != 0;
    let days = u32::from_le_bytes([get(1), get(2), get(3), get(4)]);
    let (hour, minute, second) = (get(5), get(6), get(7));
    let micros = u32::from_le_bytes([get(8), get(9), get(10), get(11)]);
    if !negative && days == 0 {
        return Ok(Value::Time(
            Time::from_hms_micro(hour, minute, second, micros).map_err(bad)?,
        ));
    }
    let hours = u64::from(days) * 24 + u64::from(hour);
    let sign = if negative { "-" } else { "" };
    let frac = if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    };
    Ok(Value::Text(format!(
        "{sign}{hours:02}:{minute:02}:{second:02}{frac}"
    )))
}

/// A decimal bound as MySQL's NEWDECIMAL, written in plain notation so that the server reads
/// every digit (sqlx's BigDecimal would print large exponents in scientific notation).
struct DecimalParam(String);

impl Type<MySql> for DecimalParam {
    fn type_info() -> MySqlTypeInfo {
        <BigDecimal as Type<MySql>>::type_info()
    }
}

impl Encode<'_, MySql> for DecimalParam {
    fn encode_by_ref(&self, buf: &mut Vec<u8>) -> Result<IsNull, BoxDynError> {
        // A length-encoded string.
        let len = self.0.len();
        if len < 251 {
            buf.push(len as u8);
        } else if len < 1 << 16 {
            buf.push(0xFC);
            buf.extend_from_slice(&(len as u16).to_le_bytes());
        } else {
            buf.push(0xFE);
            buf.extend_from_slice(&(len as u64).to_le_bytes());
        }
        buf.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

/// Binds each Value as the MySQL type that keeps it intact.
fn arguments(params: &[Value]) -> Result<MySqlArguments> {
    let mut args = MySqlArguments::default();
    for p in params {
        let added = match p {
            Value::Null => args.add(None::<&str>),
            Value::Int(i) => args.add(*i),
            Value::Float(f) => args.add(*f),
            Value::Text(s) | Value::Json(s) => args.add(s.as_str()),
            Value::Uuid(u) => args.add(Value::parse_uuid(u).unwrap_or_else(|| u.clone())),
            Value::Bytes(b) => args.add(b.as_slice()),
            Value::Bool(b) => args.add(*b),
            Value::Decimal(s) => {
                let d = DecimalDigits::parse(s).ok_or_else(|| {
                    Error::invalid("params", format!("{s:?} is not a decimal number"))
                })?;
                args.add(DecimalParam(d.to_plain()))
            }
            Value::Timestamp(t) => {
                let utc = t.to_offset(UtcOffset::UTC);
                args.add(PrimitiveDateTime::new(utc.date(), utc.time()))
            }
            Value::Date(d) => args.add(*d),
            Value::Time(t) => args.add(*t),
            Value::Array(_) => {
                return Err(Error::invalid(
                    "params",
                    "MySQL has no arrays; bind the elements separately or as JSON",
                ));
            }
        };
        added.map_err(|e| Error::invalid("params", e))?;
    }
    Ok(args)
}

/// Turns a sqlx error into the shared error type, keeping the MySQL error number.
pub fn classify(err: sqlx::Error) -> Error {
    sql::classify(err, "mysql", |db| {
        let message = db.message().to_owned();
        match db.try_downcast_ref::<MySqlDatabaseError>() {
            Some(e) => by_number(e.number(), e.code().unwrap_or_default(), message),
            None => query_error(QueryErrorKind::Other, "", message),
        }
    })
}

/// The shared error for a MySQL/MariaDB error number (SQLSTATE as a fallback).
fn by_number(number: u16, sqlstate: &str, message: String) -> Error {
    use QueryErrorKind as K;
    let q = |kind| query_error(kind, number.to_string(), message.clone());
    match number {
        1062 | 1586 => q(K::UniqueViolation),
        1451 | 1452 | 1216 | 1217 => q(K::ForeignKey),
        1048 | 1364 => q(K::NotNull),
        4025 | 3819 => q(K::Check),
        1213 => q(K::Deadlock),
        // Table, database, column, routine and administrative access denied.
        1044 | 1045 | 1095 | 1142 | 1143 | 1227 | 1370 | 1410 | 1698 => q(K::Forbidden),
        // max_execution_time, KILL QUERY, max_statement_time; lock wait timeout.
        3024 | 1317 | 1969 => {
            Error::Timeout(format!("{message}: the statement ran past its deadline"))
        }
        1205 => Error::Timeout(message),
        1040 | 1053 | 1152 | 1158..=1161 | 1927 | 2002 | 2003 | 2006 | 2013 => {
            Error::Unavailable(message)
        }
        // A write in a read-only session or transaction: what a read grant's login meets.
        1792 => q(K::Forbidden),
        1041 | 1114 | 1135 | 1153 => Error::LimitExceeded(message),
        1064 | 1046 | 1049 | 1050 | 1051 | 1054 | 1060 | 1061 | 1091 | 1096 | 1109 | 1146
        | 1149 | 1166 | 1210 | 1241 | 1295 | 1305 | 1630 => q(K::Syntax),
        1138 | 1264 | 1265 | 1292 | 1365 | 1366 | 1367 | 1406 | 1411 | 1416 | 1690 | 3140
        | 4038 => q(K::DataType),
        _ => match sqlstate.get(..2) {
            Some("22") => q(K::DataType),
            Some("23") => q(K::Check),
            Some("40") => q(K::SerializationFailure),
            Some("42") => q(K::Syntax),
            Some("08") => Error::Unavailable(message),
            _ => q(K::Other),
        },
    }
}

/// Errors while logging in are the gateway's trouble, not the client's.
fn classify_connect(err: sqlx::Error) -> Error {
    match classify(err) {
        Error::Query {
            kind: QueryErrorKind::Forbidden | QueryErrorKind::Syntax,
            message,
            ..
        } => Error::Unavailable(format!("the database's login was refused: {message}")),
        other => other,
    }
}

/// Whether a sqlx error is the server refusing a write in a read-only transaction (1792).
fn is_read_only_refusal(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.try_downcast_ref::<MySqlDatabaseError>())
        .is_some_and(|e| e.number() == 1792)
}

/// Whether a sqlx error leaves the connection in an unknown state.
fn breaks_connection(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .is_some_and(|e| matches!(e.number(), 1053 | 1927 | 2006 | 2013)),
        sqlx::Error::Encode(_)
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::TypeNotFound { .. } => false,
        _ => true,
    }
}

fn raw_bytes<'r>(value: MySqlValueRef<'r>) -> Result<&'r [u8]> {
    <&[u8] as Decode<MySql>>::decode(value).map_err(Error::internal)
}

fn decode_row(row: &MySqlRow, decoders: &[Decoder]) -> Result<Row> {
    let mut values = Vec::with_capacity(decoders.len());
    for (i, d) in decoders.iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(classify)?;
        if raw.is_null() {
            values.push(Value::Null);
            continue;
        }
        values.push(d.decode(raw_bytes(raw)?)?);
    }
    Ok(values)
}

/// The `schema.table` a column comes from, when it comes from a table.
fn origin(c: &MySqlColumn) -> Option<(String, String)> {
    match c.origin() {
        ColumnOrigin::Table(t) => {
            let (schema, table) = t.table.split_once('.')?;
            Some((format!("{schema}.{table}"), t.name.to_string()))
        }
        _ => None,
    }
}

/// The columns and decoders of rows as they arrive, keeping what [`MyConn::describe`] learnt
/// from the declarations (JSON, UUID, declared type names) where the column is the same.
fn arrived(columns: &[MySqlColumn], prepared: &MyPrepared) -> (Vec<Column>, Vec<Decoder>) {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut decoder = Decoder::for_type(c.type_info());
            let mut declared_type = c.type_info().name().to_owned();
            let described = prepared
                .columns
                .get(i)
                .zip(prepared.decoders.get(i))
                .filter(|(d, _)| d.name == c.name());
            if let Some((column, &known)) = described {
                if decoder == Decoder::Text && matches!(known, Decoder::Json | Decoder::Uuid) {
                    decoder = known;
                }
                if decoder == known {
                    declared_type = column.declared_type.clone();
                }
            }
            let column = Column {
                name: c.name().to_owned(),
                declared_type,
                kind: decoder.kind(),
            };
            (column, decoder)
        })
        .unzip()
}

impl MyConn {
    /// Refuses `SET` on a read grant's login. Its session is read-only, which is what makes
    /// the server refuse `SET PASSWORD` from it; every statement that could turn that off
    /// (`SET SESSION TRANSACTION READ WRITE`, `SET tx_read_only`, `SET STATEMENT … FOR`) is a
    /// `SET`, since the login may run no routine and `PREPARE`/`EXECUTE IMMEDIATE` cannot be
    /// prepared. Executable comments are read as code (see [`first_word`]).
    fn refuse_session_change(&self, sql: &str) -> Result<()> {
        if self.reader && first_word(sql, Flavor::Mysql).as_deref() == Some("SET") {
            return Err(Error::Query {
                kind: QueryErrorKind::Forbidden,
                code: None,
                message: "a read key cannot change session settings or credentials (SET …)".into(),
                statement_index: None,
            });
        }
        Ok(())
    }

    /// Classifies an error and remembers whether it broke the connection.
    pub(super) fn fail(&mut self, err: sqlx::Error) -> Error {
        if breaks_connection(&err) {
            self.broken = true;
        }
        classify(err)
    }

    /// Runs an administrative statement given as text (names quoted, no values).
    pub(super) async fn admin_exec(&mut self, sql: String) -> Result<()> {
        match sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut self.conn)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Declared types of the columns of `table` (`schema.table`) in this connection's schema.
    async fn declared(&mut self, table: &str) -> Result<Arc<HashMap<String, Declared>>> {
        if let Some(found) = self.types.get(table) {
            return Ok(found);
        }
        let (schema, name) = table.split_once('.').unwrap_or(("", table));
        let rows = sqlx::query(
            "SELECT c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, EXISTS (SELECT 1 \
               FROM information_schema.CHECK_CONSTRAINTS k \
               WHERE k.CONSTRAINT_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME \
               AND k.CHECK_CLAUSE = CONCAT('json_valid(`', REPLACE(c.COLUMN_NAME, '`', '``'), '`)')) \
             FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ?",
        )
        .bind(schema)
        .bind(name)
        .persistent(false)
        .fetch_all(&mut self.conn)
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => return Err(self.fail(e)),
        };
        let mut columns = HashMap::new();
        for row in &rows {
            let decoders: Vec<Decoder> = row
                .columns()
                .iter()
                .map(|c| Decoder::for_type(c.type_info()))
                .collect();
            let values = decode_row(row, &decoders)?;
            let text = |v: &Value| match v {
                Value::Text(s) => s.clone(),
                Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            };
            let json = matches!(values.get(3), Some(Value::Int(n)) if *n != 0)
                || matches!(values.get(3), Some(Value::Bool(true)));
            columns.insert(
                text(&values[0]),
                Declared {
                    data_type: text(&values[1]).to_ascii_lowercase(),
                    column_type: text(&values[2]).to_ascii_uppercase(),
                    json,
                },
            );
        }
        self.types.put(table.to_owned(), columns);
        Ok(self.types.get(table).unwrap_or_default())
    }
}

#[async_trait]
impl SqlConn for MyConn {
    type Prepared = MyPrepared;

    fn server_id(&self) -> u64 {
        self.id
    }

    fn is_broken(&self) -> bool {
        self.broken
    }

    async fn ping(&mut self) -> Result<()> {
        match self.conn.ping().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn close(self) {
        let _ = self.conn.close().await;
    }

    async fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        if self.timeout == Some(timeout) {
            return Ok(());
        }
        let sql = if self.flavor.mariadb {
            // Seconds, all statements.
            format!(
                "SET SESSION max_statement_time = {:.3}",
                timeout.as_secs_f64().max(0.001)
            )
        } else {
            // Milliseconds, SELECT only: writes are left to the gateway's own deadline.
            format!(
                "SET SESSION max_execution_time = {}",
                timeout.as_millis().clamp(1, u32::MAX as u128)
            )
        };
        self.admin_exec(sql).await?;
        self.timeout = Some(timeout);
        Ok(())
    }

    async fn set_read_only(&mut self, on: bool) -> Result<()> {
        if self.read_only == on || self.reader {
            return Ok(());
        }
        let mode = if on { "READ ONLY" } else { "READ WRITE" };
        self.admin_exec(format!("SET SESSION TRANSACTION {mode}"))
            .await?;
        self.read_only = on;
        Ok(())
    }

    async fn control(&mut self, op: Control) -> Result<()> {
        // Transactions are opened by turning autocommit off rather than with START
        // TRANSACTION: MySQL commits implicitly around DDL, and with autocommit off the
        // statements after such a commit still belong to a transaction the session ends.
        // They inherit the session's access mode, so a read-only one is turned back first, in
        // the same round trip.
        let sql = match op {
            // A read grant's transactions stay read-only and end without committing.
            Control::Begin | Control::BeginReadOnly if self.reader => {
                "SET autocommit = 0".to_owned()
            }
            Control::Commit | Control::Rollback if self.reader => {
                "ROLLBACK; SET autocommit = 1".to_owned()
            }
            Control::Begin if self.read_only => {
                "SET SESSION TRANSACTION READ WRITE; SET autocommit = 0".to_owned()
            }
            Control::Begin => "SET autocommit = 0".to_owned(),
            Control::BeginReadOnly => "START TRANSACTION READ ONLY".to_owned(),
            Control::Commit => "COMMIT; SET autocommit = 1".to_owned(),
            Control::Rollback => "ROLLBACK; SET autocommit = 1".to_owned(),
            Control::Savepoint => format!("SAVEPOINT {SAVEPOINT}"),
            Control::RollbackToSavepoint => format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"),
            Control::ReleaseSavepoint => format!("RELEASE SAVEPOINT {SAVEPOINT}"),
        };
        self.admin_exec(sql).await?;
        if op == Control::Begin && !self.reader {
            self.read_only = false;
        }
        Ok(())
    }

    async fn describe(&mut self, stmt: &Statement) -> Result<MyPrepared> {
        self.refuse_session_change(&stmt.sql)?;
        // The schema epoch in the text: sqlx reuses a prepared statement (no round trip, and no
        // COM_STMT_CLOSE of an evicted one) until a statement that may change a table runs;
        // after that its column list could be stale, so the text changes.
        let sql = format!("/* dbforge {} */ {}", self.types.epoch(), stmt.sql);
        let mut retried = false;
        let prepared = loop {
            match (&mut self.conn)
                .prepare_with(AssertSqlSafe(sql.clone()).into_sql_str(), &[])
                .await
            {
                Ok(p) => break p,
                // MariaDB refuses even to prepare a write while the session is read-only (the
                // last call read): the statement is about to run read-write anyway.
                Err(e) if self.read_only && !retried && is_read_only_refusal(&e) => {
                    self.set_read_only(false).await?;
                    retried = true;
                }
                Err(e) => return Err(self.fail(e)),
            }
        };
        let expected = match prepared.parameters() {
            Some(Either::Left(types)) => types.len(),
            Some(Either::Right(n)) => n,
            None => stmt.params.len(),
        };
        if expected != stmt.params.len() {
            return Err(Error::invalid(
                "params",
                format!(
                    "the statement has {expected} placeholder(s) but {} parameter(s) were given",
                    stmt.params.len()
                ),
            ));
        }
        let mut columns = Vec::with_capacity(prepared.columns().len());
        let mut decoders = Vec::with_capacity(prepared.columns().len());
        for c in prepared.columns() {
            let mut decoder = Decoder::for_type(c.type_info());
            let mut declared_type = c.type_info().name().to_owned();
            // MariaDB's JSON and UUID columns need their declaration to be told apart.
            let own = origin(c).filter(|(table, _)| {
                table.split_once('.').map(|(s, _)| s) == Some(self.schema.as_str())
            });
            if let (true, Decoder::Text, Some((table, column))) =
                (self.flavor.mariadb, decoder, own)
                && let Some(d) = self.declared(&table).await?.get(&column)
            {
                declared_type = d.column_type.clone();
                if d.json {
                    decoder = Decoder::Json;
                    declared_type = "JSON".into();
                } else if d.data_type == "uuid" {
                    decoder = Decoder::Uuid;
                }
            }
            columns.push(Column {
                name: c.name().to_owned(),
                declared_type,
                kind: decoder.kind(),
            });
            decoders.push(decoder);
        }
        Ok(MyPrepared {
            sql,
            columns,
            decoders,
        })
    }

    fn columns(prepared: &MyPrepared) -> &[Column] {
        &prepared.columns
    }

    async fn run(
        &mut self,
        prepared: &MyPrepared,
        stmt: &Statement,
        sink: &mut dyn RowSink,
    ) -> Result<Outcome> {
        if prepared.columns.is_empty() && may_change_schema(&stmt.sql) {
            // Possibly DDL: what was learnt about column declarations may be stale.
            self.types.clear();
        }
        let args = arguments(&stmt.params)?;
        let mut outcome = Outcome::default();
        let mut failed = None;
        let mut local_error = None;
        // Decoded by the columns the rows arrive under: MariaDB's description at prepare time
        // can miss them (RETURNING) or guess their types (expressions over parameters).
        let mut decoders: Option<Vec<Decoder>> = None;
        {
            let query = sqlx::query_with(AssertSqlSafe(prepared.sql.clone()), args);
            let mut results = (&mut self.conn).fetch_many(query);
            loop {
                match results.try_next().await {
                    Ok(Some(Either::Left(done))) => {
                        outcome.rows_affected += done.rows_affected();
                        if done.last_insert_id() != 0 {
                            outcome.last_insert_id = i64::try_from(done.last_insert_id()).ok();
                        }
                    }
                    Ok(Some(Either::Right(row))) => {
                        let width = row.columns().len();
                        if decoders.as_ref().is_none_or(|d| d.len() != width) {
                            if decoders.is_some() {
                                local_error = Some(Error::invalid(
                                    "sql",
                                    "the statement returned result sets of different shapes",
                                ));
                                break;
                            }
                            let (columns, found) = arrived(row.columns(), prepared);
                            if columns != prepared.columns
                                && let Err(e) = sink.columns(columns).await
                            {
                                local_error = Some(e);
                                break;
                            }
                            decoders = Some(found);
                        }
                        let values = match decode_row(&row, decoders.as_deref().unwrap_or(&[])) {
                            Ok(v) => v,
                            Err(e) => {
                                local_error = Some(e);
                                break;
                            }
                        };
                        if !sql::feed(sink, values).await? {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(e) = local_error {
            // The rest of the result is unread.
            self.broken = true;
            return Err(e);
        }
        if let Some(e) = failed {
            return Err(self.fail(e));
        }
        Ok(outcome)
    }

    async fn run_discarding(&mut self, stmt: &Statement) -> Result<Outcome> {
        self.refuse_session_change(&stmt.sql)?;
        if may_change_schema(&stmt.sql) {
            self.types.clear();
        }
        let args = arguments(&stmt.params)?;
        // Through the statement cache under the schema epoch, as `describe` does: a repeated
        // statement is one round trip (EXECUTE) instead of PREPARE, EXECUTE and CLOSE.
        let sql = format!("/* dbforge {} */ {}", self.types.epoch(), stmt.sql);
        let query = sqlx::query_with(AssertSqlSafe(sql), args);
        match (&mut self.conn).execute(query).await {
            Ok(done) => Ok(Outcome {
                rows_affected: done.rows_affected(),
                last_insert_id: i64::try_from(done.last_insert_id())
                    .ok()
                    .filter(|id| *id != 0),
            }),
            Err(e) => Err(self.fail(e)),
        }
    }
}

#[async_trait]
impl Engine for MysqlEngine {
    type Conn = MyConn;
    type Target = MysqlTarget;
    const KIND: BackendKind = BackendKind::Mysql;
    const FLAVOR: Flavor = Flavor::Mysql;
    const SAVEPOINT_EVERY_STATEMENT: bool = false;
    const DESCRIBES_RESULTS: bool = false;

    async fn connect(&self, target: &MysqlTarget) -> Result<MyConn> {
        let mut conn = Relogin::connect(
            target.relogin.as_ref(),
            target.options.get_username(),
            login_refused,
            classify_connect,
            || MySqlConnection::connect_with(&target.options),
        )
        .await?;
        let row = sqlx::query("SELECT CONNECTION_ID(), VERSION()")
            .persistent(false)
            .fetch_one(&mut conn)
            .await
            .map_err(classify)?;
        let id: u64 = row.try_get(0).map_err(classify)?;
        let version: String = row.try_get(1).map_err(classify)?;
        let flavor = *self
            .flavor
            .get_or_init(|| ServerFlavor::from_version(&version));
        let mut conn = MyConn {
            conn,
            id,
            flavor,
            timeout: None,
            broken: false,
            schema: target.schema.clone(),
            types: Arc::clone(&target.types),
            read_only: false,
            reader: target.reader,
        };
        if target.reader {
            // MariaDB and MySQL let every account change its own password (`SET PASSWORD`), and
            // refuse it only in a read-only session: a read grant's session is one from the start.
            conn.admin_exec("SET SESSION TRANSACTION READ ONLY".to_owned())
                .await?;
            conn.read_only = true;
        }
        Ok(conn)
    }

    async fn cancel(admin: &mut MyConn, server_id: u64) -> Result<()> {
        // KILL takes no placeholder; the id is a number the server gave us.
        admin.admin_exec(format!("KILL QUERY {server_id}")).await
    }

    fn is_read_only_violation(err: &Error) -> bool {
        matches!(err, Error::Query { code: Some(c), .. } if c == "1792")
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn schema_changes_are_recognized_conservatively() {
        for sql in [
            "SELECT 1",
            " /* c */ insert into t values (1)",
            "-- x\nUPDATE t SET a = 1",
            "with x as (select 1) select * from x",
            "SAVEPOINT s",
        ] {
            assert!(!super::may_change_schema(sql), "{sql}");
        }
        for sql in [
            "CREATE TABLE t (a INT)",
            "alter table t add b int",
            "/*!50000 SELECT */ 1",
            "DROP VIEW v",
            "CALL p()",
            "",
        ] {
            assert!(super::may_change_schema(sql), "{sql}");
        }
    }
    use super::*;

    #[test]
    fn temporal_values_read_from_the_binary_protocol() {
        let dt = [11, 0xE8, 0x07, 2, 29, 13, 45, 1, 0x40, 0xE2, 0x01, 0x00];
        assert_eq!(
            decode_datetime(false, &dt).expect("datetime"),
            Value::Timestamp(time::macros::datetime!(2024-02-29 13:45:01.123456 UTC))
        );
        assert_eq!(
            decode_datetime(true, &[4, 0xE8, 0x07, 2, 29]).expect("date"),
            Value::Date(time::macros::date!(2024 - 02 - 29))
        );
        assert_eq!(
            decode_datetime(true, &[0]).expect("zero date"),
            Value::Text("0000-00-00".into())
        );
        assert_eq!(
            decode_time(&[8, 1, 1, 0, 0, 0, 2, 3, 4]).expect("negative"),
            Value::Text("-26:03:04".into())
        );
        assert_eq!(
            decode_time(&[8, 0, 0, 0, 0, 0, 23, 59, 59]).expect("time"),
            Value::Time(time::macros::time!(23:59:59))
        );
    }

    #[test]
    fn flavors_are_told_apart() {
        assert_eq!(
            ServerFlavor::from_version("10.11.19-MariaDB-0+deb12u1"),
            ServerFlavor {
                mariadb: true,
                returning: true
            }
        );
        assert_eq!(
            ServerFlavor::from_version("8.0.36"),
            ServerFlavor {
                mariadb: false,
                returning: false
            }
        );
        assert!(!ServerFlavor::from_version("10.4.2-MariaDB").returning);
    }

    #[test]
    fn error_numbers_map_to_error_kinds() {
        use QueryErrorKind as K;
        let kind = |n: u16| match by_number(n, "HY000", "m".into()) {
            Error::Query { kind, code, .. } => {
                assert_eq!(code, Some(n.to_string()), "the native code is kept");
                Some(kind)
            }
            _ => None,
        };
        for (n, want) in [
            (1062, K::UniqueViolation),
            (1451, K::ForeignKey),
            (1452, K::ForeignKey),
            (1048, K::NotNull),
            (4025, K::Check),
            (3819, K::Check),
            (1213, K::Deadlock),
            (1142, K::Forbidden),
            (1044, K::Forbidden),
            (1045, K::Forbidden),
            (1143, K::Forbidden),
            (1064, K::Syntax),
            (1146, K::Syntax),
            (1054, K::Syntax),
            (1366, K::DataType),
        ] {
            assert_eq!(kind(n), Some(want), "{n}");
        }
        for n in [3024, 1317, 1969] {
            assert!(
                matches!(by_number(n, "70100", "m".into()), Error::Timeout(_)),
                "{n}"
            );
        }
        assert!(matches!(
            by_number(2013, "HY000", "m".into()),
            Error::Unavailable(_)
        ));
        assert!(matches!(
            by_number(9999, "22007", "m".into()),
            Error::Query {
                kind: K::DataType,
                ..
            }
        ));
    }

    #[test]
    fn integers_keep_their_sign_and_width() {
        assert_eq!(Decoder::Signed.decode(&[0xFF]).expect("i8"), Value::Int(-1));
        assert_eq!(
            Decoder::Unsigned.decode(&[0xFF]).expect("u8"),
            Value::Int(255)
        );
        assert_eq!(
            Decoder::U64.decode(&u64::MAX.to_le_bytes()).expect("u64"),
            Value::Decimal(u64::MAX.to_string())
        );
        assert_eq!(Decoder::Bit.decode(&[1, 0]).expect("bit"), Value::Int(256));
    }
}
