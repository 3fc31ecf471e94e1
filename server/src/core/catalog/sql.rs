//! The catalog's SQL, written once and run on either store: the embedded SQLite file or a
//! PostgreSQL database (`--catalog-url`).
//!
//! Statements are written in the dialect both engines share (`?N` parameters, `ON CONFLICT`
//! upserts, no engine-specific functions). PostgreSQL must be able to infer every parameter's
//! type: one only tested with `IS NULL` is written `CAST(?N AS TEXT) IS NULL` (or `BIGINT`). Parameters are rusqlite's [`ToSql`] values (so
//! `params![]` works for both) and rows are read back as rusqlite [`Value`]s, so a column is
//! decoded the same way whichever store it came from. On PostgreSQL `?N` becomes `$N` and each
//! value is bound as the type PostgreSQL inferred for its parameter when it prepared the
//! statement (statements are prepared once per connection and cached by sqlx).
//!
//! Every [`Catalog::with`](super::Catalog::with) call is one transaction.

use std::ops::ControlFlow;

use rusqlite::{
    ToSql,
    types::{FromSql, Value, ValueRef},
};
use sqlx::{Arguments, Column, Executor, Row as _, Statement, TypeInfo, ValueRef as _};
use tokio::runtime::Handle;

/// A catalog statement's failure, from either store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqlError {
    /// From the SQLite catalog.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// From the PostgreSQL catalog.
    #[error("{0}")]
    Postgres(#[from] sqlx::Error),
    /// A value that does not fit its column or parameter.
    #[error("{0}")]
    Type(String),
}

impl From<rusqlite::types::FromSqlError> for SqlError {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        Self::Type(e.to_string())
    }
}

/// What a catalog statement returns.
pub(crate) type SqlResult<T> = std::result::Result<T, SqlError>;

/// Parameters of one statement.
pub(crate) type Params<'a> = &'a [&'a dyn ToSql];

/// One result row, decoded.
#[derive(Debug)]
pub(crate) struct Row(Vec<Value>);

impl Row {
    /// Column `i` as `T` (`Option<T>` for a nullable column).
    pub(crate) fn get<T: FromSql>(&self, i: usize) -> SqlResult<T> {
        let v = self
            .0
            .get(i)
            .ok_or_else(|| SqlError::Type(format!("no column {i}")))?;
        T::column_result(ValueRef::from(v)).map_err(|e| SqlError::Type(format!("column {i}: {e}")))
    }

    /// The row's values, in column order.
    pub(crate) fn into_values(self) -> Vec<Value> {
        self.0
    }
}

/// One transaction on the catalog store.
pub(crate) struct Tx<'a> {
    inner: Inner<'a>,
}

enum Inner<'a> {
    Sqlite(&'a rusqlite::Transaction<'a>),
    Postgres {
        conn: &'a mut sqlx::PgConnection,
        rt: &'a Handle,
    },
}

impl<'a> Tx<'a> {
    pub(super) fn sqlite(tx: &'a rusqlite::Transaction<'a>) -> Self {
        Self {
            inner: Inner::Sqlite(tx),
        }
    }

    /// `rt` drives the statements: the caller is a blocking thread, never a runtime worker.
    pub(super) fn postgres(conn: &'a mut sqlx::PgConnection, rt: &'a Handle) -> Self {
        Self {
            inner: Inner::Postgres { conn, rt },
        }
    }

    /// Whether this is the PostgreSQL store (for the few statements whose text differs).
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.inner, Inner::Postgres { .. })
    }

    /// Runs one statement; the number of rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, params: Params<'_>) -> SqlResult<u64> {
        match &mut self.inner {
            Inner::Sqlite(tx) => {
                let mut stmt = tx.prepare_cached(sql)?;
                Ok(stmt.execute(params)? as u64)
            }
            Inner::Postgres { conn, rt } => rt.block_on(async {
                let (sql, args) = pg_bind(conn, sql, params).await?;
                let done = sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                    .execute(&mut **conn)
                    .await?;
                Ok(done.rows_affected())
            }),
        }
    }

    /// Calls `visit` with each row in turn until it returns `Break`; rows are read one at a
    /// time, so a long result is walked in bounded memory.
    pub(crate) fn each(
        &mut self,
        sql: &str,
        params: Params<'_>,
        mut visit: impl FnMut(Row) -> SqlResult<ControlFlow<()>>,
    ) -> SqlResult<()> {
        match &mut self.inner {
            Inner::Sqlite(tx) => {
                let mut stmt = tx.prepare_cached(sql)?;
                let columns = stmt.column_count();
                let mut rows = stmt.query(params)?;
                while let Some(r) = rows.next()? {
                    let values = (0..columns)
                        .map(|i| r.get::<_, Value>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    if visit(Row(values))?.is_break() {
                        break;
                    }
                }
                Ok(())
            }
            Inner::Postgres { conn, rt } => rt.block_on(async {
                use futures::TryStreamExt;
                let (sql, args) = pg_bind(conn, sql, params).await?;
                let mut rows = sqlx::query_with(sqlx::AssertSqlSafe(sql), args).fetch(&mut **conn);
                while let Some(r) = rows.try_next().await? {
                    if visit(pg_row(&r)?)?.is_break() {
                        break;
                    }
                }
                Ok(())
            }),
        }
    }

    /// Every row, each mapped by `f`.
    pub(crate) fn query_map<T>(
        &mut self,
        sql: &str,
        params: Params<'_>,
        mut f: impl FnMut(Row) -> SqlResult<T>,
    ) -> SqlResult<Vec<T>> {
        let mut out = Vec::new();
        self.each(sql, params, |r| {
            out.push(f(r)?);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// The first row mapped by `f`, if there is one.
    pub(crate) fn query_opt<T>(
        &mut self,
        sql: &str,
        params: Params<'_>,
        f: impl FnOnce(Row) -> SqlResult<T>,
    ) -> SqlResult<Option<T>> {
        let mut first = None;
        self.each(sql, params, |r| {
            first = Some(r);
            Ok(ControlFlow::Break(()))
        })?;
        first.map(f).transpose()
    }

    /// The first row mapped by `f`; an error when there is none.
    pub(crate) fn query_one<T>(
        &mut self,
        sql: &str,
        params: Params<'_>,
        f: impl FnOnce(Row) -> SqlResult<T>,
    ) -> SqlResult<T> {
        self.query_opt(sql, params, f)?
            .ok_or_else(|| SqlError::Type("the statement returned no row".into()))
    }
}

/// `?N` → `$N`, outside quoted strings and identifiers.
fn pg_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '?') => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Prepares `sql` (cached per connection) and binds `params` as the types PostgreSQL
/// inferred for them.
async fn pg_bind(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    params: Params<'_>,
) -> SqlResult<(String, sqlx::postgres::PgArguments)> {
    let sql = pg_placeholders(sql);
    let stmt = (&mut *conn)
        .prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
            sql.clone(),
        )))
        .await?;
    let types: Vec<String> = match stmt.parameters() {
        Some(sqlx::Either::Left(types)) => types.iter().map(|t| t.name().to_owned()).collect(),
        _ => Vec::new(),
    };
    if types.len() != params.len() {
        return Err(SqlError::Type(format!(
            "{} parameters for a statement that takes {}",
            params.len(),
            types.len()
        )));
    }
    let mut args = sqlx::postgres::PgArguments::default();
    for (i, (p, ty)) in params.iter().zip(&types).enumerate() {
        let out = p.to_sql()?;
        let v = match &out {
            rusqlite::types::ToSqlOutput::Borrowed(v) => *v,
            rusqlite::types::ToSqlOutput::Owned(v) => ValueRef::from(v),
            _ => {
                return Err(SqlError::Type(format!(
                    "parameter {}: unsupported value",
                    i + 1
                )));
            }
        };
        let bad = || SqlError::Type(format!("parameter {}: {v:?} does not fit {ty}", i + 1));
        let added = match (ty.as_str(), v) {
            ("INT8", ValueRef::Null) => args.add(None::<i64>),
            ("INT8", ValueRef::Integer(n)) => args.add(n),
            ("INT4", ValueRef::Null) => args.add(None::<i32>),
            ("INT4", ValueRef::Integer(n)) => args.add(i32::try_from(n).map_err(|_| bad())?),
            ("BOOL", ValueRef::Null) => args.add(None::<bool>),
            ("BOOL", ValueRef::Integer(n)) => args.add(n != 0),
            ("FLOAT8", ValueRef::Null) => args.add(None::<f64>),
            ("FLOAT8", ValueRef::Real(f)) => args.add(f),
            ("BYTEA", ValueRef::Null) => args.add(None::<Vec<u8>>),
            ("BYTEA", ValueRef::Blob(b)) => args.add(b.to_vec()),
            ("TEXT" | "VARCHAR" | "BPCHAR" | "NAME", ValueRef::Null) => args.add(None::<String>),
            ("TEXT" | "VARCHAR" | "BPCHAR" | "NAME", ValueRef::Text(t)) => {
                args.add(std::str::from_utf8(t).map_err(|_| bad())?.to_owned())
            }
            _ => return Err(bad()),
        };
        added.map_err(|e| SqlError::Type(format!("parameter {}: {e}", i + 1)))?;
    }
    Ok((sql, args))
}

/// A PostgreSQL row as the values SQLite would have returned.
fn pg_row(r: &sqlx::postgres::PgRow) -> SqlResult<Row> {
    let mut out = Vec::with_capacity(r.columns().len());
    for (i, col) in r.columns().iter().enumerate() {
        if r.try_get_raw(i)?.is_null() {
            out.push(Value::Null);
            continue;
        }
        let v = match col.type_info().name() {
            "INT8" => Value::Integer(r.try_get::<i64, _>(i)?),
            "INT4" => Value::Integer(i64::from(r.try_get::<i32, _>(i)?)),
            "INT2" => Value::Integer(i64::from(r.try_get::<i16, _>(i)?)),
            "BOOL" => Value::Integer(i64::from(r.try_get::<bool, _>(i)?)),
            "FLOAT8" => Value::Real(r.try_get::<f64, _>(i)?),
            "BYTEA" => Value::Blob(r.try_get::<Vec<u8>, _>(i)?),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => Value::Text(r.try_get::<String, _>(i)?),
            other => {
                return Err(SqlError::Type(format!(
                    "column {} has type {other}, which the catalog does not use",
                    col.name()
                )));
            }
        };
        out.push(v);
    }
    Ok(Row(out))
}

#[cfg(test)]
mod tests {
    use super::pg_placeholders;

    #[test]
    fn placeholders_outside_quotes_become_numbered_dollars() {
        assert_eq!(
            pg_placeholders("SELECT '?1', \"a?\" FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', \"a?\" FROM t WHERE a = $1 AND b = $12"
        );
    }
}
