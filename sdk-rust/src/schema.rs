//! Structure and query plans over `SchemaService`: what an agent reads before it writes SQL.

use crate::{Client, Result, Value, client::values, pb};

pub use pb::{
    CheckSchema, ColumnSchema, ForeignKeySchema, GraphSummary, GraphTermCount, IndexSchema,
    KeyPattern, KeySpaceSummary, PlanNode, TableKind, TableSchema, UniqueSchema,
};

/// A database's structure, as [`Client::get_schema`] returns it.
///
/// The parts are the generated messages (their enum fields have typed accessors, such as
/// [`TableSchema::kind`] and [`ColumnSchema::kind`]), so every field the server sends is here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    /// Tables and views, by name.
    pub tables: Vec<TableSchema>,
    /// Redis only: the key patterns of a bounded sample of keys.
    pub key_space: Option<KeySpaceSummary>,
    /// The server's compact rendering: CREATE statements (SQL) or a key-pattern outline (Redis),
    /// meant for people and for a language model's prompt.
    pub text: String,
    /// Graph databases only: their classes, predicates and named graphs with counts.
    pub graph: Option<GraphSummary>,
}

impl Schema {
    /// The table or view named `name`.
    pub fn table(&self, name: &str) -> Option<&TableSchema> {
        self.tables.iter().find(|t| t.name == name)
    }
}

impl From<pb::GetSchemaResponse> for Schema {
    fn from(r: pb::GetSchemaResponse) -> Self {
        let pb::GetSchemaResponse {
            tables,
            key_space,
            text,
            graph,
        } = r;
        Schema {
            tables,
            key_space,
            text,
            graph,
        }
    }
}

/// A statement's query plan, as [`Client::explain`] returns it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The plan as the backend wrote it (JSON on PostgreSQL and MySQL, EXPLAIN QUERY PLAN rows
    /// on SQLite).
    pub raw: String,
    /// The normalized plan's root nodes.
    pub nodes: Vec<PlanNode>,
    /// Tables read by a full scan, each once: the first thing to look at in a slow query.
    pub full_scans: Vec<String>,
}

impl From<pb::ExplainResponse> for Plan {
    fn from(r: pb::ExplainResponse) -> Self {
        let pb::ExplainResponse {
            raw,
            nodes,
            full_scans,
        } = r;
        Plan {
            raw,
            nodes,
            full_scans,
        }
    }
}

impl Client {
    /// Describes the whole database, or only `table`: columns, keys, indexes, constraints and
    /// row estimates (on Redis, a key-pattern summary). NOT_FOUND for an unknown table.
    ///
    /// ```no_run
    /// # async fn demo(client: dbforge::Client) -> Result<(), dbforge::Error> {
    /// let schema = client.get_schema("app", Some("people")).await?;
    /// for column in &schema.tables[0].columns {
    ///     println!("{} {} nullable={}", column.name, column.declared_type, column.nullable);
    /// }
    /// println!("{}", schema.text); // CREATE TABLE people (…)
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_schema(&self, database: &str, table: Option<&str>) -> Result<Schema> {
        Ok(self
            .schema
            .clone()
            .get_schema(self.settings.request(pb::GetSchemaRequest {
                database: database.to_owned(),
                table: table.unwrap_or_default().to_owned(),
            }))
            .await?
            .into_inner()
            .into())
    }

    /// The query plan of a statement. With `analyze` (PostgreSQL, MariaDB) the statement runs,
    /// in a transaction that is rolled back, and the plan carries actual row counts.
    ///
    /// ```no_run
    /// # async fn demo(client: dbforge::Client) -> Result<(), dbforge::Error> {
    /// let plan = client
    ///     .explain("app", "SELECT * FROM people WHERE name = ?", &dbforge::params!["Ada"], false)
    ///     .await?;
    /// if !plan.full_scans.is_empty() {
    ///     eprintln!("full scans of {}: consider an index", plan.full_scans.join(", "));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn explain(
        &self,
        database: &str,
        sql: &str,
        params: &[Value],
        analyze: bool,
    ) -> Result<Plan> {
        let resp = self
            .schema
            .clone()
            .explain(self.settings.request(pb::ExplainRequest {
                database: database.to_owned(),
                statement: Some(pb::Statement {
                    sql: sql.to_owned(),
                    params: values(params),
                }),
                analyze,
            }))
            .await?
            .into_inner();
        Ok(resp.into())
    }
}
