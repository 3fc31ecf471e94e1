//! `dbforge materialize SRC GRAPH_DB`: SemanticService.MaterializeGraph, a SQL database mapped
//! into a graph database. One line for people (triples, tables, base IRI, time), or the record
//! with a per-table list in the machine formats.

use dbforge::{MaterializeOptions, Value};
use serde_json::json;

use super::{App, int, millis, stdout};
use crate::{cli::MaterializeArgs, error::Result, output};

/// Runs `dbforge materialize`.
pub fn materialize(app: &App, args: MaterializeArgs) -> Result<()> {
    let MaterializeArgs {
        source,
        graph_database,
        base_iri,
        graph,
        replace,
    } = args;
    let opts = MaterializeOptions {
        base_iri,
        graph: graph.clone(),
        replace,
    };
    let done = app.block_on(async {
        let client = app.connect().await?;
        Ok(client
            .materialize_graph(&source, &graph_database, opts)
            .await?)
    })?;
    let p = app.settings.paint;
    let per_table = done
        .tables
        .iter()
        .map(|t| format!("{} {}", t.table, output::plural(t.rows, "row", "rows")))
        .collect::<Vec<_>>()
        .join(", ");
    let human = format!(
        "{} {} into {}{}: {} from {} ({per_table}) under <{}>, {}",
        p.ok(if replace { "replaced" } else { "materialized" }),
        p.name(&source),
        p.name(&graph_database),
        graph
            .as_deref()
            .map(|g| format!(" graph <{g}>"))
            .unwrap_or_default(),
        output::plural(done.triples, "triple", "triples"),
        output::plural(done.tables.len() as u64, "table", "tables"),
        done.base_iri,
        output::elapsed(done.elapsed),
    );
    let tables = done
        .tables
        .iter()
        .map(|t| json!({"table": t.table, "rows": t.rows, "triples": t.triples}))
        .collect::<Vec<_>>();
    let fields = [
        ("source", Value::Text(source.clone())),
        ("graph_database", Value::Text(graph_database.clone())),
        ("graph", graph.map_or(Value::Null, Value::Text)),
        ("base_iri", Value::Text(done.base_iri.clone())),
        ("triples", int(done.triples)),
        (
            "tables",
            Value::Json(serde_json::Value::Array(tables).to_string()),
        ),
        ("duration_ms", Value::Float(millis(done.elapsed))),
    ];
    output::record(&app.settings, &mut stdout(), &human, &fields)?;
    Ok(())
}
