//! PostgreSQL: each spawned database is a real database, owned by a login role of its own.
//!
//! # Isolation
//!
//! [`Backend::create`] makes a role with only `LOGIN` (no superuser, `CREATEDB`, `CREATEROLE`,
//! replication or `BYPASSRLS`, and member of no role) and a database it owns, then revokes PUBLIC's
//! `CONNECT` (and every other right) on that database. The gateway runs the database's
//! statements as that role, over connections made with its own password (48 random hex digits,
//! kept with the names in the catalog's locator). So a statement can reach only its own
//! database: other databases are other catalogs, which PostgreSQL never joins; `dblink` and
//! `postgres_fdw` need a superuser to install and a password to connect; `SET ROLE` and
//! `SET SESSION AUTHORIZATION` need membership or superuser; `pg_authid`, server files and
//! programs (`COPY … TO PROGRAM`, `pg_read_file`) need rights the role lacks. What it can still
//! see is what every PostgreSQL login sees: the names of databases and roles in `pg_database`
//! and `pg_roles`.
//!
//! # Read grants
//!
//! Each database also has a read-only login role, named as its own with the last `_` written
//! `-` ([`reader_ident`]), sharing its password. It has CONNECT on the database, USAGE on its
//! schemas, SELECT on every table, view and sequence (and, through the owner's default
//! privileges, on those made later), `default_transaction_read_only`, and nothing else; the
//! large-object creators, which any role may call even in a read-only transaction, are taken
//! from PUBLIC in the database. Calls with [`StatementLimits::read_only`] run as that role
//! ([`WithReader`]), so PostgreSQL refuses their writes (`42501`, `25006` → `Forbidden`). The
//! role is made by `create`, and before the first read-only call of an open database (for
//! databases spawned before it existed); `destroy` drops it.
//!
//! [`StatementLimits::read_only`]: super::StatementLimits::read_only
//!
//! Names: `<prefix><name>_<8 hex>`, with `-` written `_` and the name cut so that the whole
//! stays within PostgreSQL's 63 bytes; the random suffix gives a respawned name fresh objects.
//! The prefix (`dbf_` by default) marks what [`Backend::remove_orphans`] may sweep, so two
//! gateways sharing a server need different prefixes.
//!
//! # Values
//!
//! Results are read in PostgreSQL's binary format and parameters are bound with the type their
//! Value names; nothing is converted through text or floats on the way.
//!
//! | PostgreSQL type | read as | column kind | parameter Value binds as |
//! |---|---|---|---|
//! | `smallint`, `integer`, `bigint`, `oid`, `reg*` | `Int` | Int | `Int` → `bigint` |
//! | `real`, `double precision` | `Float` | Float | `Float` → `double precision` |
//! | `numeric` (any precision, `NaN`, `±Infinity`) | `Decimal`, exact text | Decimal | `Decimal` → `numeric`, digit for digit |
//! | `text`, `varchar`, `char(n)`, `name`, `"char"`, `xml`, `citext` | `Text` | Text | `Text` → `text` |
//! | enum types | `Text` (the label) | Text | `Text` (cast: `$1::mood`) |
//! | `bytea` | `Bytes` | Bytes | `Bytes` → `bytea` |
//! | `boolean` | `Bool` | Bool | `Bool` → `boolean` |
//! | `date` | `Date` (`±infinity`: `Text`) | Date | `Date` → `date` |
//! | `time` | `Time` | Time | `Time` → `time` |
//! | `timestamp` (read as UTC) | `Timestamp` (`±infinity`: `Text`) | Timestamp | — |
//! | `timestamptz` | `Timestamp` | Timestamp | `Timestamp` → `timestamptz` (µs) |
//! | `uuid` | `Uuid` | Uuid | `Uuid` → `uuid` |
//! | `json`, `jsonb` | `Json` | Json | `Json` → `json` |
//! | arrays of the above, any dimensions | `Array` (nested), NULL elements kept | Array | `Array` of one kind → that type's array (empty or all-NULL: `text[]`) |
//! | `interval` | `Text`, ISO 8601 (`P1DT2H`) | Text | — |
//! | `timetz`, `inet`, `cidr`, `macaddr`, `bit`, `varbit`, `jsonpath` | `Text` | Text | — |
//! | domains | as their base type | | |
//! | `NULL` of any type | `Null` | | `Null` → unspecified: the server infers the type |
//!
//! Other types (geometric, ranges, composites, `money`, full-text search) are refused when the
//! statement is prepared, with a hint to cast them to text. Sessions run with `TimeZone=UTC`,
//! so a `timestamp` column written from a `Timestamp` stores and returns UTC.
//!
//! # Connections
//!
//! See [`crate::backend::pool`] for the server-wide cap. Each connection sets
//! `statement_timeout` to the call's timeout (the engine interrupts the statement: `57014` →
//! `Timeout`), and a dropped call sends `pg_cancel_backend` for its statement from an
//! administrative connection before closing its own.

mod admin;
mod codec;
mod conn;
mod copy;
mod inspect;
#[cfg(test)]
mod tests;

pub use admin::credential_is;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, atomic::AtomicU64},
};

use sqlx::postgres::PgConnectOptions;

pub use self::conn::classify;
use self::conn::{PgTarget, STATEMENT_CACHE};
use super::sql::provision::{SQL_SERVER, SqlBackend};
use super::sql::{Locator, Relogin, scalar_literal, text::DecimalDigits};
#[cfg(doc)]
use super::{Backend, reader::WithReader};
use super::{Capabilities, reader::reader_ident};
use crate::core::{
    error::{Error, Result},
    table::{ColumnType, SqlDialect},
    value::{Statement, Value, text},
};

pub use super::sql::provision::DEFAULT_PREFIX;
/// PostgreSQL's identifier limit, in bytes.
const MAX_IDENT: usize = 63;

/// The PostgreSQL backend: the shared server-engine backend over [`Postgres`]' provisioning.
pub type PostgresBackend = SqlBackend<Postgres>;

/// What PostgreSQL supports.
const CAPABILITIES: Capabilities = Capabilities {
    // No implicit row ids: use RETURNING.
    returning: true,
    placeholder: "$1",
    ..SQL_SERVER
};

/// How PostgreSQL databases and roles are made and reached (see `admin.rs` for the SQL).
#[derive(Debug)]
pub struct Postgres {
    admin_options: PgConnectOptions,
    /// Schema epochs by database (see [`Self::epoch`]).
    epochs: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl Postgres {
    /// The schema epoch of a database, shared by every connection to it (see
    /// [`conn::PgTarget`]); one per database for the backend's life, or until it is destroyed.
    fn epoch(&self, ident: &str) -> Arc<AtomicU64> {
        let mut epochs = self.epochs.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(epochs.entry(ident.to_owned()).or_default())
    }

    /// Connection settings for a spawned database's own role.
    fn owner_target(&self, loc: &Locator, relogin: Relogin) -> PgTarget {
        let options = self
            .admin_options
            .clone()
            .username(&loc.ident)
            .password(&loc.password)
            .database(&loc.ident)
            .application_name("dbforge")
            // Notices a vanished gateway during long statements and stops them (PG 14+).
            .options([("client_connection_check_interval", "1000")])
            .statement_cache_capacity(STATEMENT_CACHE);
        PgTarget {
            options,
            epoch: self.epoch(&loc.ident),
            reader: false,
            relogin: Some(relogin),
        }
    }

    /// Connection settings for the database's read-only role (see `admin::ensure_reader`):
    /// its transactions are read-only from the first statement on, whatever the role's
    /// settings say.
    fn reader_target(&self, loc: &Locator, relogin: Relogin) -> PgTarget {
        let options = self
            .admin_options
            .clone()
            .username(&reader_ident(&loc.ident))
            .password(&loc.password)
            .database(&loc.ident)
            .application_name("dbforge-read")
            .options([
                ("client_connection_check_interval", "1000"),
                ("default_transaction_read_only", "on"),
            ])
            .statement_cache_capacity(STATEMENT_CACHE);
        PgTarget {
            options,
            epoch: self.epoch(&loc.ident),
            reader: true,
            relogin: Some(relogin),
        }
    }
}

/// PostgreSQL's SQL dialect for TableService.
#[derive(Debug)]
pub struct PostgresDialect;

impl PostgresDialect {
    /// A string literal that reads the same whatever `standard_conforming_strings` says.
    fn string(s: &str) -> Result<String> {
        if s.contains('\0') {
            return Err(Error::invalid("default_value", "text must not contain NUL"));
        }
        Ok(format!(
            "E'{}'",
            s.replace('\\', "\\\\").replace('\'', "''")
        ))
    }
}

impl SqlDialect for PostgresDialect {
    fn quote_ident(&self, name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    fn placeholder(&self, index: usize) -> String {
        format!("${index}")
    }

    fn column_type(&self, ty: ColumnType) -> &'static str {
        match ty {
            ColumnType::Integer => "BIGINT",
            ColumnType::Float => "DOUBLE PRECISION",
            ColumnType::Text => "TEXT",
            ColumnType::Bytes => "BYTEA",
            ColumnType::Bool => "BOOLEAN",
            ColumnType::Decimal => "NUMERIC",
            ColumnType::Json => "JSONB",
            ColumnType::Timestamp => "TIMESTAMPTZ",
            ColumnType::Date => "DATE",
        }
    }

    fn table_exists(&self, table: &str) -> Statement {
        Statement {
            sql: "SELECT 1 FROM information_schema.tables \
                  WHERE table_schema = current_schema() AND table_name = $1"
                .into(),
            params: vec![Value::Text(table.to_owned())],
        }
    }

    fn limit_offset(&self, limit: Option<u64>, offset: Option<u64>) -> (String, Vec<Value>) {
        // Written as numbers, not placeholders: the dialect cannot know how many placeholders
        // precede the clause, and an integer the gateway formats carries no client text.
        let n = |v: u64| v.min(i64::MAX as u64);
        let mut clause = String::new();
        if let Some(l) = limit {
            clause.push_str(&format!(" LIMIT {}", n(l)));
        }
        if let Some(o) = offset {
            clause.push_str(&format!(" OFFSET {}", n(o)));
        }
        (clause, Vec::new())
    }

    fn literal(&self, value: &Value) -> Result<String> {
        Ok(match value {
            Value::Null | Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                scalar_literal(value, "::float8")?
            }
            Value::Text(s) | Value::Json(s) => Self::string(s)?,
            Value::Decimal(s) => {
                let d = DecimalDigits::parse(s)
                    .ok_or_else(|| Error::invalid("default_value", "not a decimal number"))?;
                format!("{}::numeric", d.to_plain())
            }
            Value::Bytes(b) => {
                format!("decode('{}', 'hex')", text::hex(b))
            }
            Value::Timestamp(t) => format!(
                "'{}'::timestamptz",
                text::timestamp(t).map_err(|e| Error::invalid("default_value", e))?
            ),
            Value::Date(d) => format!("'{}'::date", text::date(d)),
            Value::Time(t) => format!(
                "'{:02}:{:02}:{:02}.{:06}'::time",
                t.hour(),
                t.minute(),
                t.second(),
                t.microsecond()
            ),
            Value::Uuid(u) => {
                let u = Value::parse_uuid(u)
                    .ok_or_else(|| Error::invalid("default_value", "not a UUID"))?;
                format!("'{u}'::uuid")
            }
            Value::Array(items) if items.is_empty() => "'{}'".into(),
            Value::Array(items) => {
                let inner = items
                    .iter()
                    .map(|v| self.literal(v))
                    .collect::<Result<Vec<_>>>()?;
                format!("ARRAY[{}]", inner.join(", "))
            }
        })
    }
}
