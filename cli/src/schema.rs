//! What the shell knows about a database's tables, from the gateway's SchemaService: names for
//! `.tables` and completion, columns for completion, and the rendering `.schema` prints. The
//! gateway introspects every backend, so the shell no longer reads engine catalogs itself.

use dbforge::{Client, TableKind};

/// Introspection for one database.
#[derive(Debug, Clone)]
pub struct Schema {
    client: Client,
    database: String,
}

/// Table and column names, for completion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Tables and views, in name order.
    pub tables: Vec<String>,
    /// (table, column) pairs, in table order then column order.
    pub columns: Vec<(String, String)>,
}

impl Catalog {
    /// The names in a schema, sorted by table name (the gateway sends them so already, but
    /// completion must not depend on it).
    pub fn of(schema: &dbforge::Schema) -> Self {
        let mut tables: Vec<&dbforge::TableSchema> = schema.tables.iter().collect();
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        Catalog {
            tables: tables.iter().map(|t| t.name.clone()).collect(),
            columns: tables
                .iter()
                .flat_map(|t| t.columns.iter().map(|c| (t.name.clone(), c.name.clone())))
                .collect(),
        }
    }
}

impl Schema {
    /// Introspection of `database`.
    pub fn new(client: Client, database: &str) -> Self {
        Schema {
            client,
            database: database.to_owned(),
        }
    }

    /// The gateway's rendering of `table` (CREATE statements with row estimates), or of the
    /// whole database (on Redis, its key patterns). NOT_FOUND for an unknown table.
    pub async fn text(&self, table: Option<&str>) -> Result<String, dbforge::Error> {
        Ok(self.client.get_schema(&self.database, table).await?.text)
    }

    /// Every table's and view's columns, for completion.
    pub async fn catalog(&self) -> Result<Catalog, dbforge::Error> {
        let schema = self.client.get_schema(&self.database, None).await?;
        Ok(Catalog::of(&schema))
    }
}

/// "table" or "view", as the JSON output spells it.
pub fn kind_name(kind: TableKind) -> &'static str {
    match kind {
        TableKind::View => "view",
        TableKind::Table | TableKind::Unspecified => "table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, columns: &[&str]) -> dbforge::TableSchema {
        dbforge::TableSchema {
            name: name.to_owned(),
            kind: TableKind::Table as i32,
            columns: columns
                .iter()
                .map(|c| dbforge::ColumnSchema {
                    name: (*c).to_owned(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_catalog_lists_tables_then_their_columns_in_order() {
        let schema = dbforge::Schema {
            tables: vec![table("people", &["id", "name"]), table("orders", &["id"])],
            ..Default::default()
        };
        let catalog = Catalog::of(&schema);
        assert_eq!(catalog.tables, ["orders", "people"]);
        assert_eq!(
            catalog.columns,
            [
                ("orders".to_owned(), "id".to_owned()),
                ("people".to_owned(), "id".to_owned()),
                ("people".to_owned(), "name".to_owned()),
            ]
        );
        assert_eq!(Catalog::of(&dbforge::Schema::default()), Catalog::default());
    }
}
