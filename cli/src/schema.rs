//! What the shell knows about a database's tables: names for `.tables` and completion, columns
//! for completion, and the CREATE statements for `.schema`.
//!
//! There is no schema RPC yet, so on SQLite this reads `sqlite_schema` and `pragma_table_info`
//! through ordinary queries (both are allowed by the gateway's authorizer). Other backends say
//! "not available for this backend yet". When the SchemaService lands, this module is the one
//! to replace; its callers only see [`Schema`] and [`Catalog`].

use dbforge::{Backend, Client, Value};
use futures::TryStreamExt;

/// Introspection for one database.
#[derive(Debug, Clone)]
pub struct Schema {
    client: Client,
    database: String,
    backend: Backend,
}

/// Table and column names, for completion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Tables and views, in name order.
    pub tables: Vec<String>,
    /// (table, column) pairs, in table order then column order.
    pub columns: Vec<(String, String)>,
}

/// Why introspection gave nothing.
#[derive(Debug)]
pub enum SchemaError {
    /// The backend has no introspection in this client yet.
    Unsupported(Backend),
    /// The query failed.
    Sdk(dbforge::Error),
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaError::Unsupported(b) => write!(
                f,
                "not available for this backend yet ({})",
                crate::commands::backend_name(*b)
            ),
            SchemaError::Sdk(e) => write!(f, "{e}"),
        }
    }
}

impl From<dbforge::Error> for SchemaError {
    fn from(e: dbforge::Error) -> Self {
        SchemaError::Sdk(e)
    }
}

impl Schema {
    /// Introspection of `database`, whose engine is `backend`.
    pub fn new(client: Client, database: &str, backend: Backend) -> Self {
        Schema {
            client,
            database: database.to_owned(),
            backend,
        }
    }

    fn sqlite(&self) -> Result<(), SchemaError> {
        match self.backend {
            Backend::Sqlite => Ok(()),
            other => Err(SchemaError::Unsupported(other)),
        }
    }

    async fn texts(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<String>>, SchemaError> {
        let rows: Vec<dbforge::Row> = self
            .client
            .query(&self.database, sql, params)
            .await?
            .try_collect()
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                r.into_values()
                    .into_iter()
                    .map(|v| match v {
                        Value::Text(s) => s,
                        other => crate::output::render::text(&other, "").0,
                    })
                    .collect()
            })
            .collect())
    }

    /// Tables and views, in name order (SQLite's own tables left out).
    pub async fn tables(&self) -> Result<Vec<String>, SchemaError> {
        self.sqlite()?;
        let rows = self
            .texts(
                "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                &[],
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect())
    }

    /// The CREATE statements of `table` (with its indexes and triggers), or of every table.
    pub async fn ddl(&self, table: Option<&str>) -> Result<Vec<String>, SchemaError> {
        self.sqlite()?;
        let filter = if table.is_some() {
            "AND tbl_name = ?"
        } else {
            ""
        };
        let sql = format!(
            "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' {filter} \
             ORDER BY tbl_name, type <> 'table', name"
        );
        let params: Vec<Value> = table.map(Value::from).into_iter().collect();
        let rows = self.texts(&sql, &params).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect())
    }

    /// Every table's and view's columns, for completion.
    pub async fn catalog(&self) -> Result<Catalog, SchemaError> {
        self.sqlite()?;
        let rows = self
            .texts(
                "SELECT m.name, p.name FROM sqlite_schema AS m, pragma_table_info(m.name) AS p \
                 WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 ORDER BY m.name, p.cid",
                &[],
            )
            .await?;
        let mut catalog = Catalog::default();
        for row in rows {
            let mut it = row.into_iter();
            if let (Some(t), Some(c)) = (it.next(), it.next()) {
                if catalog.tables.last() != Some(&t) {
                    catalog.tables.push(t.clone());
                }
                catalog.columns.push((t, c));
            }
        }
        Ok(catalog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn other_backends_are_not_available_yet() {
        // Never connected: the check happens before any call.
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let schema = Schema::new(Client::from_channel(channel), "db", Backend::Postgres);
        let err = schema.tables().await.expect_err("unsupported");
        assert_eq!(
            err.to_string(),
            "not available for this backend yet (postgres)"
        );
        assert!(matches!(
            schema.catalog().await,
            Err(SchemaError::Unsupported(Backend::Postgres))
        ));
        assert!(matches!(
            schema.ddl(Some("t")).await,
            Err(SchemaError::Unsupported(Backend::Postgres))
        ));
    }
}
