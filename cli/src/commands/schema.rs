//! `dbforge schema` and `dbforge explain`: structure and query plans through SchemaService.
//!
//! Both print text for people by default, whatever stdout is (a schema or a plan is read, not
//! processed row by row); an explicit `--output json|ndjson` prints the structure as JSON.

use std::io::Write;

use dbforge::{PlanNode, Schema, pb::ValueKind};
use serde_json::{Value as Json, json};

use super::{App, stdout};
use crate::{
    cli::{ExplainArgs, Format, SchemaArgs},
    error::Result,
    output::Paint,
    schema::kind_name,
};

/// Whether `--output` asked for JSON; NDJSON prints the same object on one line.
pub(super) fn json_output(app: &App) -> Option<Format> {
    match app.global.format() {
        Some(f @ (Format::Json | Format::Ndjson)) => Some(f),
        _ => None,
    }
}

pub(super) fn write_json(out: &mut dyn Write, value: &Json, format: Format) -> Result<()> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(value),
        _ => serde_json::to_string(value),
    }
    .map_err(std::io::Error::other)?;
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// Runs `dbforge schema`.
pub fn schema(app: &App, args: SchemaArgs) -> Result<()> {
    let schema = app.block_on(async {
        let client = app.connect().await?;
        Ok(client
            .get_schema(&args.database, args.table.as_deref())
            .await?)
    })?;
    let mut out = stdout();
    if let Some(format) = json_output(app) {
        return write_json(&mut out, &schema_json(&schema), format);
    }
    write!(out, "{}", schema.text)?;
    if !schema.text.is_empty() && !schema.text.ends_with('\n') {
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

/// A value kind as the JSON output names it ("int", "text", …).
fn kind(k: ValueKind) -> String {
    k.as_str_name()
        .trim_start_matches("VALUE_KIND_")
        .to_ascii_lowercase()
}

/// The schema as a JSON document; field names follow the proto's.
pub fn schema_json(s: &Schema) -> Json {
    let tables: Vec<Json> = s
        .tables
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "kind": kind_name(t.kind()),
                "columns": t.columns.iter().map(|c| json!({
                    "name": c.name,
                    "declared_type": c.declared_type,
                    "kind": kind(c.kind()),
                    "nullable": c.nullable,
                    "default_expression": c.default_expression,
                    "primary_key": c.primary_key,
                    "auto_increment": c.auto_increment,
                })).collect::<Vec<_>>(),
                "primary_key": t.primary_key,
                "indexes": t.indexes.iter().map(|i| json!({
                    "name": i.name,
                    "columns": i.columns,
                    "unique": i.unique,
                    "primary": i.primary,
                })).collect::<Vec<_>>(),
                "foreign_keys": t.foreign_keys.iter().map(|f| json!({
                    "name": f.name,
                    "columns": f.columns,
                    "referenced_table": f.referenced_table,
                    "referenced_columns": f.referenced_columns,
                    "on_update": f.on_update,
                    "on_delete": f.on_delete,
                })).collect::<Vec<_>>(),
                "uniques": t.uniques.iter().map(|u| json!({
                    "name": u.name,
                    "columns": u.columns,
                })).collect::<Vec<_>>(),
                "checks": t.checks.iter().map(|c| json!({
                    "name": c.name,
                    "expression": c.expression,
                })).collect::<Vec<_>>(),
                "row_estimate": t.row_estimate,
                "definition": t.definition,
            })
        })
        .collect();
    let key_space = s.key_space.as_ref().map(|k| {
        json!({
            "total_keys": k.total_keys,
            "sampled_keys": k.sampled_keys,
            "patterns": k.patterns.iter().map(|p| json!({
                "pattern": p.pattern,
                "type": p.r#type,
                "count": p.count,
                "example": p.example,
                "with_ttl": p.with_ttl,
            })).collect::<Vec<_>>(),
        })
    });
    json!({ "tables": tables, "key_space": key_space, "text": s.text })
}

/// Runs `dbforge explain`.
pub fn explain(app: &App, args: ExplainArgs) -> Result<()> {
    let sql = if args.sql == "-" {
        super::read_stdin(app, "SQL", "pass it as an argument")?
    } else {
        args.sql
    };
    let plan = app.block_on(async {
        let client = app.connect().await?;
        Ok(client
            .explain(&args.database, &sql, &args.params, args.analyze)
            .await?)
    })?;
    let mut out = stdout();
    if let Some(format) = json_output(app) {
        let value = json!({
            "nodes": plan.nodes.iter().map(node_json).collect::<Vec<_>>(),
            "full_scans": plan.full_scans,
            "raw": plan.raw,
        });
        return write_json(&mut out, &value, format);
    }
    let p = app.settings.paint;
    let mut text = String::new();
    render_plan(&plan.nodes, p, &mut text);
    if plan.nodes.is_empty() {
        // Nothing normalized: the backend's own words are all there is.
        text.push_str(&plan.raw);
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    if !plan.full_scans.is_empty() {
        text.push_str(&format!(
            "{}: full scan of {}\n",
            p.warn("warning"),
            plan.full_scans.join(", ")
        ));
    }
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

pub(super) fn node_json(n: &PlanNode) -> Json {
    json!({
        "operation": n.operation,
        "relation": n.relation,
        "detail": n.detail,
        "estimated_rows": n.estimated_rows,
        "estimated_cost": n.estimated_cost,
        "actual_rows": n.actual_rows,
        "full_scan": n.full_scan,
        "children": n.children.iter().map(node_json).collect::<Vec<_>>(),
    })
}

/// The plan as an indented tree, one node a line:
///
/// ```text
/// Hash Join  (rows≈120, cost 35.2)
/// ├─ Seq Scan people  (rows≈1000, cost 15.0)  [full scan]
/// └─ Index Scan orders using orders_pkey
/// ```
pub fn render_plan(nodes: &[PlanNode], p: Paint, out: &mut String) {
    for n in nodes {
        render_node(n, "", "", p, out);
    }
}

fn render_node(n: &PlanNode, first: &str, rest: &str, p: Paint, out: &mut String) {
    out.push_str(first);
    out.push_str(&describe(n));
    let mut figures = Vec::new();
    if let Some(r) = n.estimated_rows {
        figures.push(format!("rows≈{}", number(r)));
    }
    if let Some(c) = n.estimated_cost {
        figures.push(format!("cost {}", number(c)));
    }
    if let Some(a) = n.actual_rows {
        figures.push(format!("actual rows {}", number(a)));
    }
    if !figures.is_empty() {
        out.push_str(&p.dim(&format!("  ({})", figures.join(", "))));
    }
    if n.full_scan {
        out.push_str("  ");
        out.push_str(&p.warn("[full scan]"));
    }
    out.push('\n');
    let last = n.children.len().saturating_sub(1);
    for (i, child) in n.children.iter().enumerate() {
        let (branch, below) = if i == last {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        render_node(
            child,
            &format!("{rest}{branch}"),
            &format!("{rest}{below}"),
            p,
            out,
        );
    }
}

/// A node's words: the operation, the table (unless the detail names it already), the detail.
/// SQLite's detail is the whole EXPLAIN QUERY PLAN line ("SCAN people"), which says it all.
fn describe(n: &PlanNode) -> String {
    let (op, rel, detail) = (n.operation.trim(), n.relation.trim(), n.detail.trim());
    if !op.is_empty() && detail.starts_with(op) {
        return detail.to_owned();
    }
    let mut words: Vec<&str> = Vec::new();
    if !op.is_empty() {
        words.push(op);
    }
    if !rel.is_empty() && !mentions(detail, rel) && !mentions(op, rel) {
        words.push(rel);
    }
    if !detail.is_empty() {
        words.push(detail);
    }
    words.join(" ")
}

/// Whether `text` has `name` as a whole word ("orders" is not in "using orders_pkey").
fn mentions(text: &str, name: &str) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .any(|w| w == name)
}

/// Estimates as people read them: whole numbers without a fraction, others to two places.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, rel: &str, detail: &str) -> PlanNode {
        PlanNode {
            operation: op.to_owned(),
            relation: rel.to_owned(),
            detail: detail.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn plans_render_as_an_indented_tree() {
        let mut join = node("Hash Join", "", "Hash Cond: (o.person = p.id)");
        join.estimated_rows = Some(120.0);
        join.estimated_cost = Some(35.25);
        let mut scan = node("Seq Scan", "people", "");
        scan.full_scan = true;
        scan.estimated_rows = Some(1000.0);
        let mut hash = node("Hash", "", "");
        hash.children = vec![node("Index Scan", "orders", "using orders_pkey")];
        join.children = vec![scan, hash];
        let mut out = String::new();
        render_plan(&[join], Paint::new(false), &mut out);
        assert_eq!(
            out,
            "Hash Join Hash Cond: (o.person = p.id)  (rows≈120, cost 35.25)\n\
             ├─ Seq Scan people  (rows≈1000)  [full scan]\n\
             └─ Hash\n   \
                └─ Index Scan orders using orders_pkey\n"
        );
    }

    #[test]
    fn a_detail_that_repeats_the_operation_stands_alone() {
        assert_eq!(
            describe(&node("SCAN", "people", "SCAN people")),
            "SCAN people"
        );
        assert_eq!(describe(&node("ALL", "t", "")), "ALL t");
        assert_eq!(
            describe(&node(
                "SEARCH",
                "people",
                "people USING INDEX people_name (name=?)"
            )),
            "SEARCH people USING INDEX people_name (name=?)"
        );
        assert_eq!(number(2.0), "2");
        assert_eq!(number(2.5), "2.50");
    }
}
