//! MySQL/MariaDB introspection: the schema from `information_schema` (the database's own
//! schema, `DATABASE()`), plans from `EXPLAIN FORMAT=JSON` / MariaDB's `ANALYZE FORMAT=JSON`,
//! and a dump that replays as the database's own user.
//!
//! # Dump
//!
//! `SET FOREIGN_KEY_CHECKS=0` (a session variable any user may set), each table's
//! `SHOW CREATE TABLE` (with `AUTO_INCREMENT=N`, so the counter continues where it was), its
//! rows as batched `INSERT`s, views from `SHOW CREATE VIEW` and triggers from
//! `SHOW CREATE TRIGGER` with their `DEFINER` and `SQL SECURITY` clauses and the schema's own
//! name removed, then `SET FOREIGN_KEY_CHECKS=1`. MySQL commits implicitly around DDL, so a
//! replay is not atomic across its `CREATE` statements: a failed replay leaves the tables made
//! so far.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{
    MysqlDialect,
    conn::{MyConn, MysqlEngine, first_keyword},
};
use crate::{
    backend::sql::inspect::{
        DumpWriter, Inspect, Json, describe_columns, dump_header, dump_select, int, opt_text,
        query_rows, text,
    },
    core::{
        error::{Error, Result},
        schema::{
            CheckSchema, ColumnSchema, ForeignKeySchema, IndexSchema, Plan, PlanNode, Schema,
            TableKind, TableSchema, UniqueSchema,
        },
        table::SqlDialect,
        value::{Statement, Value, ValueKind},
    },
};

fn q(name: &str) -> String {
    MysqlDialect.quote_ident(name)
}

/// A column as `information_schema.COLUMNS` describes it.
struct Col {
    name: String,
    column_type: String,
    generated: bool,
}

/// The current schema's name, used to drop its qualification from view and trigger texts.
async fn schema_name(conn: &mut MyConn) -> Result<String> {
    let rows = query_rows(conn, "SELECT DATABASE()", vec![]).await?;
    Ok(rows.first().map(|r| text(&r[0])).unwrap_or_default())
}

async fn load(conn: &mut MyConn, only: Option<&str>) -> Result<Vec<TableSchema>> {
    let param = only.map_or(Value::Null, |t| Value::Text(t.to_owned()));
    let rows = query_rows(
        conn,
        "SELECT TABLE_NAME, TABLE_TYPE, TABLE_ROWS FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND (? IS NULL OR TABLE_NAME = ?)",
        vec![param.clone(), param],
    )
    .await?;
    let mut tables: Vec<TableSchema> = rows
        .iter()
        .map(|r| {
            let view = text(&r[1]) == "VIEW";
            TableSchema {
                name: text(&r[0]),
                kind: if view {
                    TableKind::View
                } else {
                    TableKind::Table
                },
                columns: Vec::new(),
                primary_key: Vec::new(),
                indexes: Vec::new(),
                foreign_keys: Vec::new(),
                uniques: Vec::new(),
                checks: Vec::new(),
                row_estimate: if view { None } else { int(&r[2]) },
                definition: String::new(),
            }
        })
        .collect();
    if let Some(t) = only
        && tables.is_empty()
    {
        return Err(Error::NotFound {
            what: "table",
            name: t.to_owned(),
        });
    }
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let at: BTreeMap<String, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let find = |v: &Value| at.get(&text(v)).copied();

    for r in query_rows(
        conn,
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, \
         COLUMN_COMMENT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
         ORDER BY TABLE_NAME, ORDINAL_POSITION",
        vec![],
    )
    .await?
    {
        let Some(i) = find(&r[0]) else { continue };
        let extra = text(&r[5]).to_ascii_lowercase();
        // MariaDB writes a NULL default as the text NULL; MySQL as NULL.
        let default = opt_text(&r[4]).filter(|d| d != "NULL");
        tables[i].columns.push(ColumnSchema {
            name: text(&r[1]),
            declared_type: text(&r[2]),
            kind: ValueKind::Unspecified,
            nullable: text(&r[3]) == "YES",
            default,
            primary_key: false,
            auto_increment: extra.contains("auto_increment"),
            comment: opt_text(&r[6]).filter(|c| !c.is_empty()),
        });
    }

    let mut indexes: BTreeMap<(usize, String), IndexSchema> = BTreeMap::new();
    for r in query_rows(
        conn,
        "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        vec![],
    )
    .await?
    {
        let Some(i) = find(&r[0]) else { continue };
        let name = text(&r[1]);
        let entry = indexes
            .entry((i, name.clone()))
            .or_insert_with(|| IndexSchema {
                primary: name == "PRIMARY",
                unique: int(&r[2]) == Some(0),
                name,
                columns: Vec::new(),
            });
        entry.columns.push(text(&r[3]));
    }
    for ((i, _), idx) in indexes {
        if idx.primary {
            tables[i].primary_key = idx.columns.clone();
        }
        tables[i].indexes.push(idx);
    }

    let mut fks: BTreeMap<(usize, String), ForeignKeySchema> = BTreeMap::new();
    for r in query_rows(
        conn,
        "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, \
         k.REFERENCED_COLUMN_NAME, r.UPDATE_RULE, r.DELETE_RULE \
         FROM information_schema.KEY_COLUMN_USAGE k \
         JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
           ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
           AND r.TABLE_NAME = k.TABLE_NAME \
         WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL \
         ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        vec![],
    )
    .await?
    {
        let Some(i) = find(&r[0]) else { continue };
        let fk = fks
            .entry((i, text(&r[1])))
            .or_insert_with(|| ForeignKeySchema {
                name: text(&r[1]),
                columns: Vec::new(),
                referenced_table: text(&r[3]),
                referenced_columns: Vec::new(),
                on_update: text(&r[5]),
                on_delete: text(&r[6]),
            });
        fk.columns.push(text(&r[2]));
        fk.referenced_columns.push(text(&r[4]));
    }
    for ((i, _), fk) in fks {
        tables[i].foreign_keys.push(fk);
    }

    let mut uniques: BTreeMap<(usize, String), UniqueSchema> = BTreeMap::new();
    for r in query_rows(
        conn,
        "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME \
         FROM information_schema.TABLE_CONSTRAINTS t \
         JOIN information_schema.KEY_COLUMN_USAGE k \
           ON k.CONSTRAINT_SCHEMA = t.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = t.CONSTRAINT_NAME \
           AND k.TABLE_NAME = t.TABLE_NAME \
         WHERE t.TABLE_SCHEMA = DATABASE() AND t.CONSTRAINT_TYPE = 'UNIQUE' \
         ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        vec![],
    )
    .await?
    {
        let Some(i) = find(&r[0]) else { continue };
        uniques
            .entry((i, text(&r[1])))
            .or_insert_with(|| UniqueSchema {
                name: text(&r[1]),
                columns: Vec::new(),
            })
            .columns
            .push(text(&r[2]));
    }
    for ((i, _), u) in uniques {
        tables[i].uniques.push(u);
    }

    // MariaDB's CHECK_CONSTRAINTS names the table (check names are unique per table there);
    // MySQL's does not (they are unique per schema).
    let checks = match query_rows(
        conn,
        "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = DATABASE() ORDER BY TABLE_NAME, CONSTRAINT_NAME",
        vec![],
    )
    .await
    {
        Ok(rows) => rows,
        Err(Error::Query { .. }) => {
            query_rows(
                conn,
                "SELECT t.TABLE_NAME, t.CONSTRAINT_NAME, c.CHECK_CLAUSE \
                 FROM information_schema.TABLE_CONSTRAINTS t \
                 JOIN information_schema.CHECK_CONSTRAINTS c \
                   ON c.CONSTRAINT_SCHEMA = t.CONSTRAINT_SCHEMA \
                   AND c.CONSTRAINT_NAME = t.CONSTRAINT_NAME \
                 WHERE t.TABLE_SCHEMA = DATABASE() AND t.CONSTRAINT_TYPE = 'CHECK' \
                 ORDER BY t.TABLE_NAME, t.CONSTRAINT_NAME",
                vec![],
            )
            .await?
        }
        Err(e) => return Err(e),
    };
    for r in checks {
        let Some(i) = find(&r[0]) else { continue };
        tables[i].checks.push(CheckSchema {
            name: text(&r[1]),
            expression: text(&r[2]),
        });
    }

    for t in &mut tables {
        let pk = t.primary_key.clone();
        for c in &mut t.columns {
            c.primary_key = pk.contains(&c.name);
        }
        kinds(conn, t).await?;
        t.definition = match t.kind {
            TableKind::Table => {
                let rows =
                    query_rows(conn, &format!("SHOW CREATE TABLE {}", q(&t.name)), vec![]).await?;
                rows.first().map(|r| text(&r[1])).unwrap_or_default()
            }
            TableKind::View => {
                let rows = query_rows(
                    conn,
                    "SELECT VIEW_DEFINITION FROM information_schema.VIEWS \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                    vec![Value::Text(t.name.clone())],
                )
                .await?;
                // Written without the schema's own name, which is the spawned database's
                // server-side name and means nothing to the client.
                let own = format!("{}.", q(&schema_name(conn).await?));
                rows.first()
                    .map(|r| text(&r[0]).replace(&own, ""))
                    .unwrap_or_default()
            }
        };
    }
    Ok(tables)
}

/// Fills in the columns' kinds from the data plane's own description of `SELECT *`.
async fn kinds(conn: &mut MyConn, t: &mut TableSchema) -> Result<()> {
    let cols = describe_columns(conn, format!("SELECT * FROM {} LIMIT 0", q(&t.name))).await?;
    for c in &mut t.columns {
        if let Some(d) = cols.iter().find(|d| d.name == c.name) {
            c.kind = d.kind;
        }
    }
    Ok(())
}

/// Normalizes the objects of a MySQL/MariaDB JSON plan: each `table` becomes a node (its
/// access type the operation), and blocks that wrap others (`query_block`, `filesort`,
/// `temporary_table`, `nested_loop`, subqueries…) become nodes named after their key, or are
/// flattened when they are plain lists.
fn plan_nodes(v: &Json) -> Vec<PlanNode> {
    match v {
        Json::Arr(items) => items.iter().flat_map(plan_nodes).collect(),
        Json::Obj(members) => {
            let mut out = Vec::new();
            for (k, child) in members {
                match (k.as_str(), child) {
                    ("table", Json::Obj(_)) => out.push(table_node(child)),
                    ("nested_loop" | "subqueries" | "query_specifications", _) => {
                        out.extend(plan_nodes(child))
                    }
                    // Blocks without a table below them (statistics, timings) are not steps.
                    (_, Json::Obj(_)) => {
                        let children = plan_nodes(child);
                        if !children.is_empty() {
                            out.push(PlanNode {
                                operation: k.clone(),
                                estimated_cost: cost(child),
                                children,
                                ..PlanNode::default()
                            });
                        }
                    }
                    (_, Json::Arr(items)) if items.iter().any(|i| matches!(i, Json::Obj(_))) => {
                        out.extend(plan_nodes(child))
                    }
                    _ => {}
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

fn cost(v: &Json) -> Option<f64> {
    v.num("cost").or_else(|| {
        let info = v.get("cost_info")?;
        info.num("prefix_cost").or_else(|| info.num("query_cost"))
    })
}

fn table_node(t: &Json) -> PlanNode {
    let mut detail = Vec::new();
    for key in [
        "key",
        "used_key_parts",
        "ref",
        "attached_condition",
        "using_index",
    ] {
        if let Some(v) = t.text(key) {
            detail.push(format!("{key}: {v}"));
        }
    }
    let operation = t.str("access_type").unwrap_or_default().to_owned();
    // What a table reads from (a materialized subquery) nests inside it.
    let children = t.get("materialized").map(plan_nodes).unwrap_or_default();
    PlanNode {
        full_scan: operation == "ALL",
        operation,
        relation: t.str("table_name").unwrap_or_default().to_owned(),
        detail: detail.join("; "),
        estimated_rows: t.num("rows"),
        estimated_cost: cost(t),
        actual_rows: t.num("r_rows"),
        children,
    }
}

/// Strips `DEFINER=…` and `SQL SECURITY …` from a view's or trigger's CREATE text, and the
/// schema's own qualification (`` `db`. ``) so that it replays into another schema.
fn portable(create: &str, schema: &str) -> String {
    let mut out = create.to_owned();
    if let Some(start) = out.find("DEFINER=") {
        // DEFINER=`user`@`host`: two quoted names joined by @, then a space.
        let rest = &out[start + "DEFINER=".len()..];
        let mut end = 0;
        let mut quoted = false;
        for (i, c) in rest.char_indices() {
            match c {
                '`' => quoted = !quoted,
                ' ' if !quoted => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
            end = i + c.len_utf8();
        }
        out.replace_range(start..start + "DEFINER=".len() + end, "");
    }
    for clause in ["SQL SECURITY DEFINER ", "SQL SECURITY INVOKER "] {
        out = out.replacen(clause, "", 1);
    }
    if !schema.is_empty() {
        out = out.replace(&format!("{}.", q(schema)), "");
    }
    out
}

/// Renders a row with the dialect's `literal()`, except floats, written in scientific notation
/// so that MySQL reads them as doubles (a plain `0.1` is a DECIMAL literal first), and the
/// temporal columns (`temporal[i]`), read as the server's own text and written back as plain
/// quoted strings when they hold only the characters of a date or time.
fn render_row(row: &[Value], temporal: &[bool]) -> Result<String> {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(16 * row.len() + 2);
    out.push('(');
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match v {
            Value::Text(t)
                if temporal.get(i).copied().unwrap_or(false)
                    && t.bytes()
                        .all(|b| b.is_ascii_digit() || b" -:.".contains(&b)) =>
            {
                out.push('\'');
                out.push_str(t);
                out.push('\'');
            }
            Value::Float(f) if f.is_finite() => {
                let _ = write!(out, "{f:e}");
            }
            other => out.push_str(&MysqlDialect.literal(other)?),
        }
    }
    out.push(')');
    Ok(out)
}

/// Whether a column of this `COLUMN_TYPE` is a date or time. A dump reads those as text
/// (`CAST(… AS CHAR)`): it is the server's exact form (fractional digits, zero dates), and
/// sqlx 0.9.1 formats the column's whole description at every binary temporal value it reads
/// (an eager `ok_or` in `BinaryRow::decode_with`), which was a sixth of a backup's CPU.
fn is_temporal(column_type: &str) -> bool {
    ["date", "time", "datetime", "timestamp"]
        .iter()
        .any(|t| column_type == *t || column_type.starts_with(&format!("{t}(")))
}

async fn dump(conn: &mut MyConn, schema_only: bool, out: &mut DumpWriter) -> Result<()> {
    out.write(&dump_header("MySQL/MariaDB", schema_only))
        .await?;
    let schema = schema_name(conn).await?;
    let mut columns: BTreeMap<String, Vec<Col>> = BTreeMap::new();
    for r in query_rows(
        conn,
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, GENERATION_EXPRESSION \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
         ORDER BY TABLE_NAME, ORDINAL_POSITION",
        vec![],
    )
    .await?
    {
        columns.entry(text(&r[0])).or_default().push(Col {
            name: text(&r[1]),
            column_type: text(&r[2]).to_ascii_lowercase(),
            generated: opt_text(&r[3]).is_some_and(|g| !g.is_empty()),
        });
    }
    let tables = query_rows(
        conn,
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME",
        vec![],
    )
    .await?;
    let (views, bases): (Vec<_>, Vec<_>) = tables
        .iter()
        .map(|r| (text(&r[0]), text(&r[1]) == "VIEW"))
        .partition(|(_, view)| *view);

    out.statement("SET FOREIGN_KEY_CHECKS=0").await?;
    for (t, _) in &bases {
        let rows = query_rows(conn, &format!("SHOW CREATE TABLE {}", q(t)), vec![]).await?;
        if let Some(r) = rows.first() {
            out.statement(&text(&r[1])).await?;
        }
    }
    if !schema_only {
        for (t, _) in &bases {
            out.begin_table(t);
            dump_rows(conn, t, columns.get(t).map_or(&[][..], Vec::as_slice), out).await?;
        }
    }

    // Views in an order where each comes after the views its text names.
    let mut creates: Vec<(String, String)> = Vec::new();
    for (v, _) in &views {
        let rows = query_rows(conn, &format!("SHOW CREATE VIEW {}", q(v)), vec![]).await?;
        if let Some(r) = rows.first() {
            creates.push((v.clone(), portable(&text(&r[1]), &schema)));
        }
    }
    let mut done: Vec<String> = Vec::new();
    while done.len() < creates.len() {
        let before = done.len();
        for (name, sql) in &creates {
            if done.contains(name) {
                continue;
            }
            let waits = creates.iter().any(|(other, _)| {
                other != name && !done.contains(other) && sql.contains(&q(other))
            });
            if !waits {
                out.statement(sql).await?;
                done.push(name.clone());
            }
        }
        if done.len() == before {
            for (name, sql) in &creates {
                if !done.contains(name) {
                    out.statement(sql).await?;
                    done.push(name.clone());
                }
            }
        }
    }

    let triggers = query_rows(
        conn,
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS \
         WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER",
        vec![],
    )
    .await?;
    for t in &triggers {
        let rows = query_rows(
            conn,
            &format!("SHOW CREATE TRIGGER {}", q(&text(&t[0]))),
            vec![],
        )
        .await?;
        if let Some(r) = rows.first() {
            out.statement(&portable(&text(&r[2]), &schema)).await?;
        }
    }
    out.statement("SET FOREIGN_KEY_CHECKS=1").await?;
    Ok(())
}

/// Streams one table's rows into batched INSERTs (generated columns left out).
async fn dump_rows(
    conn: &mut MyConn,
    table: &str,
    cols: &[Col],
    out: &mut DumpWriter,
) -> Result<()> {
    let cols: Vec<&Col> = cols.iter().filter(|c| !c.generated).collect();
    if cols.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = cols.iter().map(|c| q(&c.name)).collect();
    let temporal: Vec<bool> = cols.iter().map(|c| is_temporal(&c.column_type)).collect();
    // TINYINT(1) reads as a boolean; read its number so that values other than 0 and 1 survive.
    let select: Vec<String> = cols
        .iter()
        .zip(&temporal)
        .map(|(c, &temporal)| {
            if c.column_type.starts_with("tinyint(1)") {
                format!("{} + 0", q(&c.name))
            } else if temporal {
                format!("CAST({} AS CHAR)", q(&c.name))
            } else {
                q(&c.name)
            }
        })
        .collect();
    let head = format!("INSERT INTO {} ({}) VALUES", q(table), names.join(", "));
    let select = format!("SELECT {} FROM {}", select.join(", "), q(table));
    let render = move |row: &[Value]| render_row(row, &temporal);
    dump_select(conn, select, head, &render, out).await
}

#[async_trait]
impl Inspect for MysqlEngine {
    async fn schema(conn: &mut MyConn, table: Option<&str>) -> Result<Schema> {
        Ok(Schema {
            tables: load(conn, table).await?,
            key_space: None,
            graph: None,
        })
    }

    fn check_analyze(stmt: &Statement) -> Result<()> {
        match first_keyword(&stmt.sql).as_deref() {
            Some(
                "SELECT" | "WITH" | "UPDATE" | "DELETE" | "INSERT" | "REPLACE" | "VALUES" | "TABLE",
            ) => Ok(()),
            _ => Err(Error::invalid(
                "analyze",
                "only SELECT, INSERT, UPDATE, DELETE and REPLACE can be analyzed: other \
                 statements commit implicitly on MySQL, so their effect could not be rolled back",
            )),
        }
    }

    async fn explain(conn: &mut MyConn, stmt: &Statement, analyze: bool) -> Result<Plan> {
        let verb = if analyze {
            "ANALYZE FORMAT=JSON"
        } else {
            "EXPLAIN FORMAT=JSON"
        };
        let rows = query_rows(conn, &format!("{verb} {}", stmt.sql), stmt.params.clone()).await?;
        let raw: String = rows
            .iter()
            .map(|r| text(&r[0]))
            .collect::<Vec<_>>()
            .join("\n");
        let json = Json::parse(&raw)?;
        Ok(Plan {
            nodes: plan_nodes(&json),
            raw,
        })
    }

    async fn dump(conn: &mut MyConn, schema_only: bool, out: &mut DumpWriter) -> Result<()> {
        dump(conn, schema_only, out).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definer_and_schema_are_stripped() {
        let v = "CREATE ALGORITHM=UNDEFINED DEFINER=`u`@`%` SQL SECURITY DEFINER VIEW `v` AS \
                 select `db`.`t`.`a` AS `a` from `db`.`t`";
        assert_eq!(
            portable(v, "db"),
            "CREATE ALGORITHM=UNDEFINED VIEW `v` AS select `t`.`a` AS `a` from `t`"
        );
    }

    #[test]
    fn only_dml_is_analyzed() {
        assert_eq!(
            first_keyword(" /* x */ -- y\n (select 1)").as_deref(),
            Some("SELECT")
        );
        let st = |s: &str| Statement {
            sql: s.into(),
            params: vec![],
        };
        assert!(MysqlEngine::check_analyze(&st("UPDATE t SET a = 1")).is_ok());
        assert!(MysqlEngine::check_analyze(&st("DROP TABLE t")).is_err());
        assert!(MysqlEngine::check_analyze(&st("/*!50000 DROP TABLE t */")).is_err());
    }

    #[test]
    fn floats_are_written_as_doubles() {
        assert_eq!(
            render_row(&[Value::Float(0.1), Value::Float(1e308)], &[]).expect("ok"),
            "(1e-1, 1e308)"
        );
    }

    #[test]
    fn temporal_text_is_written_plain_and_anything_else_as_a_string() {
        assert!(is_temporal("datetime(6)") && is_temporal("date") && is_temporal("time(3)"));
        assert!(!is_temporal("timestampish") && !is_temporal("year") && !is_temporal("text"));
        let temporal = [true, true, false];
        assert_eq!(
            render_row(
                &[
                    Value::Text("2024-02-29 23:59:59.123456".into()),
                    Value::Text("1' OR '1".into()),
                    Value::Text("-838:59:59".into()),
                ],
                &temporal
            )
            .expect("ok"),
            format!(
                "('2024-02-29 23:59:59.123456', {}, {})",
                MysqlDialect::string("1' OR '1"),
                MysqlDialect::string("-838:59:59")
            )
        );
    }
}
