//! MySQL and MariaDB: each spawned database is a schema with a user of its own.
//!
//! # Isolation
//!
//! [`Backend::create`] makes a schema and a user `'<name>'@'%'` holding every privilege on that
//! schema and none anywhere else (no `FILE`, `PROCESS`, `SUPER`, `GRANT OPTION` or global
//! rights). The gateway runs the database's statements as that user, so naming another schema
//! is refused by the server with "access denied" (`1142`/`1044` → `Forbidden`), and files,
//! other users' sessions and server settings are out of reach. Statements are always prepared
//! one at a time (no multi-statements, and `LOAD DATA LOCAL` is not offered by the driver).
//!
//! Read grants run as a second user, named as the first with its last `_` written `-`
//! ([`reader_ident`]) and sharing its password, holding only `SELECT, SHOW VIEW` on the schema
//! ([`WithReader`] picks it for calls with `read_only` limits): the server refuses their writes,
//! DDL, temporary tables and routine calls (`1142`, `1044`, `1370` → `Forbidden`). It is made by
//! `create`, or before the first read-only call for a database spawned before it existed, and
//! dropped by `destroy`.
//!
//! Names: `<prefix><name>_<8 hex>`, within MySQL's 32-character limit for user names (the
//! schema has the same name). As on PostgreSQL, the prefix (`dbf_` by default) is what
//! [`Backend::remove_orphans`] sweeps.
//!
//! # Values
//!
//! Results are read from the binary protocol; each Value binds as the type that keeps it.
//! Sessions run with `time_zone = '+00:00'`.
//!
//! | MySQL / MariaDB type | read as | column kind | parameter Value binds as |
//! |---|---|---|---|
//! | `TINYINT(1)` / `BOOLEAN` (by declared width) | `Bool` | Bool | `Bool` → `TINYINT` 1/0 |
//! | `TINYINT` … `BIGINT`, unsigned up to `INT UNSIGNED`, `YEAR`, `BIT(n)` | `Int` | Int | `Int` → `BIGINT` |
//! | `BIGINT UNSIGNED` | `Decimal` (exact text: may exceed i64) | Decimal | — |
//! | `FLOAT`, `DOUBLE` | `Float` | Float | `Float` → `DOUBLE` |
//! | `DECIMAL(p, s)` | `Decimal`, exact text | Decimal | `Decimal` → `DECIMAL`, digit for digit |
//! | `CHAR`, `VARCHAR`, `TEXT` (any size or collation), `ENUM`, `SET` | `Text` | Text | `Text` → string |
//! | `CHAR(36)` holding UUIDs | `Text` | Text | `Uuid` → string |
//! | `UUID` (MariaDB 10.7+) | `Uuid` | Uuid | `Uuid` → string |
//! | `JSON` (MySQL's type; MariaDB's `LONGTEXT` with its `json_valid` check) | `Json` | Json | `Json` → string |
//! | `BINARY`, `VARBINARY`, `BLOB` (any size), `GEOMETRY` | `Bytes` | Bytes | `Bytes` → blob |
//! | `DATE` | `Date` (zero or partial dates: `Text`) | Date | `Date` → `DATE` |
//! | `DATETIME`, `TIMESTAMP` (read as UTC) | `Timestamp` | Timestamp | `Timestamp` → `DATETIME` (µs, UTC) |
//! | `TIME` | `Time`; a duration outside 0–24 h: `Text` (`-838:59:59`) | Time | `Time` → `TIME` |
//! | `NULL` of any type | `Null` | | `Null` |
//! | arrays | — | | refused: MySQL has none |
//!
//! MariaDB's wire metadata cannot tell its `JSON` and `UUID` columns from text, so their
//! declaration is looked up in `information_schema` for columns that come from a table of the
//! database (cached per open database, forgotten after any statement that returns no rows).
//!
//! # Connections and timeouts
//!
//! See [`crate::backend::pool`] for the server-wide cap. MariaDB interrupts any statement
//! past `max_statement_time`; MySQL interrupts `SELECT`s past `max_execution_time`; for the
//! rest, and for dropped calls, the gateway sends `KILL QUERY` from an administrative
//! connection. MySQL commits implicitly before and after DDL (and `LOCK TABLES`, which is
//! refused): a transaction or session containing DDL is not atomic across it.

mod admin;
mod conn;
mod inspect;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use sqlx::mysql::MySqlConnectOptions;

pub use self::conn::classify;
use self::conn::{MysqlTarget, STATEMENT_CACHE, TypeCache};
use super::Capabilities;
use super::sql::provision::{SQL_SERVER, SqlBackend};
use super::sql::{Locator, Relogin, scalar_literal, text::DecimalDigits};
#[cfg(doc)]
use super::{
    Backend,
    reader::{WithReader, reader_ident},
};
use crate::core::{
    error::{Error, Result},
    table::{ColumnType, SqlDialect},
    value::{Statement, Value},
};

pub use super::sql::provision::DEFAULT_PREFIX;
/// MySQL's limit on user names, in characters (schemas may have 64).
const MAX_IDENT: usize = 32;

/// What MySQL and MariaDB before 10.5 support.
const CAPABILITIES: Capabilities = Capabilities {
    last_insert_id: true,
    // CREATE, ALTER, DROP, RENAME, TRUNCATE, GRANT … commit the open transaction.
    transactional_ddl: false,
    ..SQL_SERVER
};

/// MariaDB 10.5+ adds `INSERT … RETURNING` and `DELETE … RETURNING`.
const CAPABILITIES_RETURNING: Capabilities = Capabilities {
    returning: true,
    ..CAPABILITIES
};

/// The MySQL/MariaDB backend: the shared server-engine backend over [`Mysql`]'s provisioning.
pub type MysqlBackend = SqlBackend<Mysql>;

/// How MySQL schemas and users are made and reached (see `admin.rs` for the SQL).
#[derive(Debug)]
pub struct Mysql {
    admin_options: MySqlConnectOptions,
}

impl Mysql {
    /// Connection settings for a spawned database's own user (`user` is `loc.ident`) or its
    /// read-only one, sharing `types`: a table the owner alters is forgotten for both.
    fn target(
        &self,
        loc: &Locator,
        user: &str,
        types: &Arc<TypeCache>,
        relogin: Relogin,
    ) -> MysqlTarget {
        MysqlTarget {
            options: self
                .admin_options
                .clone()
                .username(user)
                .password(&loc.password)
                .database(&loc.ident)
                .statement_cache_capacity(STATEMENT_CACHE),
            schema: loc.ident.clone(),
            types: Arc::clone(types),
            reader: user != loc.ident,
            relogin: Some(relogin),
        }
    }
}

/// MySQL's SQL dialect for TableService.
#[derive(Debug)]
pub struct MysqlDialect;

impl MysqlDialect {
    /// A string as hex bytes converted to text: it reads the same whatever the session's
    /// `sql_mode` says about backslashes and quotes. An expression in parentheses, as MySQL 8
    /// accepts defaults of TEXT and JSON columns only as expressions (and MariaDB re-parses a
    /// `_utf8mb4 X'…'` default printed without escapes, which breaks on quotes).
    fn string(s: &str) -> String {
        if s.is_empty() {
            return "('')".into();
        }
        // Pushed digit by digit: a `format!` per byte was a quarter of a MariaDB backup's CPU.
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = String::with_capacity(s.len() * 2 + 32);
        out.push_str("(CONVERT(X'");
        for b in s.bytes() {
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
        }
        out.push_str("' USING utf8mb4))");
        out
    }
}

impl SqlDialect for MysqlDialect {
    fn quote_ident(&self, name: &str) -> String {
        format!("`{}`", name.replace('`', "``"))
    }

    fn placeholder(&self, _index: usize) -> String {
        "?".into()
    }

    fn column_type(&self, ty: ColumnType) -> &'static str {
        match ty {
            ColumnType::Integer => "BIGINT",
            ColumnType::Float => "DOUBLE",
            ColumnType::Text => "LONGTEXT",
            ColumnType::Bytes => "LONGBLOB",
            ColumnType::Bool => "BOOLEAN",
            // The widest exact decimal MySQL has: 35 digits before the point, 30 after.
            ColumnType::Decimal => "DECIMAL(65, 30)",
            ColumnType::Json => "JSON",
            // Microseconds, like the other engines.
            ColumnType::Timestamp => "DATETIME(6)",
            ColumnType::Date => "DATE",
        }
    }

    fn key_column_type(&self, ty: ColumnType) -> &'static str {
        // MySQL indexes at most 3072 bytes of a key: 255 characters of utf8mb4 fit.
        match ty {
            ColumnType::Text => "VARCHAR(255)",
            ColumnType::Bytes => "VARBINARY(255)",
            other => self.column_type(other),
        }
    }

    fn default_row(&self) -> &'static str {
        " () VALUES ()"
    }

    fn table_exists(&self, table: &str) -> Statement {
        Statement {
            sql: "SELECT 1 FROM information_schema.TABLES \
                  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?"
                .into(),
            params: vec![Value::Text(table.to_owned())],
        }
    }

    fn limit_offset(&self, limit: Option<u64>, offset: Option<u64>) -> (String, Vec<Value>) {
        // Numbers the gateway formats carry no client text; MySQL wants a LIMIT before an
        // OFFSET, and the largest one means "all".
        match (limit, offset) {
            (None, None) => (String::new(), Vec::new()),
            (Some(l), None) => (format!(" LIMIT {l}"), Vec::new()),
            (l, Some(o)) => (
                format!(" LIMIT {} OFFSET {o}", l.unwrap_or(u64::MAX)),
                Vec::new(),
            ),
        }
    }

    fn literal(&self, value: &Value) -> Result<String> {
        Ok(match value {
            Value::Null | Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                scalar_literal(value, "")?
            }
            Value::Text(s) | Value::Json(s) => Self::string(s),
            Value::Decimal(s) => DecimalDigits::parse(s)
                .ok_or_else(|| Error::invalid("default_value", "not a decimal number"))?
                .to_plain(),
            Value::Bytes(b) if b.is_empty() => "('')".into(),
            Value::Bytes(b) => {
                let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
                format!("(X'{hex}')")
            }
            Value::Timestamp(t) => {
                let t = t.to_offset(time::UtcOffset::UTC);
                format!(
                    "'{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}'",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second(),
                    t.microsecond()
                )
            }
            Value::Date(d) => format!(
                "'{:04}-{:02}-{:02}'",
                d.year(),
                u8::from(d.month()),
                d.day()
            ),
            Value::Time(t) => format!(
                "'{:02}:{:02}:{:02}.{:06}'",
                t.hour(),
                t.minute(),
                t.second(),
                t.microsecond()
            ),
            Value::Uuid(u) => format!(
                "'{}'",
                Value::parse_uuid(u)
                    .ok_or_else(|| Error::invalid("default_value", "not a UUID"))?
            ),
            Value::Array(_) => {
                return Err(Error::invalid("default_value", "MySQL has no arrays"));
            }
        })
    }
}
