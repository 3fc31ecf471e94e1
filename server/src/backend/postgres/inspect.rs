//! PostgreSQL introspection: the schema from `pg_catalog` (the database's own schema, `public`
//! in a spawned database, read as `current_schema()`), plans from `EXPLAIN (FORMAT JSON)`, and a
//! dump that replays as the database's own role.
//!
//! # Dump order
//!
//! User-defined types (enums, domains with their defaults and checks, composite types; in
//! creation order, so each comes after the types it is built on), functions (with
//! `SET LOCAL check_function_bodies = false`, so bodies may name tables created later),
//! free-standing sequences, tables with their columns, defaults, identity, `NOT NULL`,
//! primary key, `UNIQUE`, `CHECK` and exclusion constraints, `ALTER SEQUENCE … OWNED BY`, the
//! rows as batched `INSERT`s, `setval` for every sequence (identity ones included), foreign
//! keys (after the rows, so their order does not matter), views and materialized views in
//! dependency order, the remaining indexes, and triggers. Every statement ends with `;` and a
//! newline. Not dumped: column collations, view options, comments, grants, partitioned tables'
//! partitioning, range and base types. A database with tables, views or sequences in another
//! schema is refused (FAILED_PRECONDITION naming the schemas) rather than dumped in part: a
//! backup that silently leaves data out would only be found out at restore time.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use super::{
    PostgresDialect,
    conn::{PgConn, PgEngine},
};
use crate::{
    backend::sql::inspect::{
        DumpWriter, Inspect, Json, describe_columns, dump_header, dump_select, float, int,
        opt_text, query_rows, text, texts,
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

/// A relation of the schema, as the catalog says.
struct Rel {
    oid: i64,
    name: String,
    relkind: String,
    reltuples: Option<f64>,
    columns: Vec<Col>,
    constraints: Vec<Con>,
    indexes: Vec<Idx>,
    viewdef: String,
}

struct Col {
    name: String,
    ty: String,
    not_null: bool,
    default: Option<String>,
    /// `a` (ALWAYS), `d` (BY DEFAULT) or empty.
    identity: String,
    /// `s` (stored generated) or empty.
    generated: String,
    kind: ValueKind,
    /// Options of the identity's sequence, as CREATE SEQUENCE clauses.
    identity_options: Option<String>,
    /// COMMENT ON COLUMN.
    comment: Option<String>,
}

struct Con {
    name: String,
    contype: String,
    columns: Vec<String>,
    ref_table: String,
    ref_columns: Vec<String>,
    on_update: String,
    on_delete: String,
    def: String,
    check: Option<String>,
}

struct Idx {
    name: String,
    unique: bool,
    primary: bool,
    columns: Vec<String>,
    def: String,
    backs_constraint: bool,
}

fn q(name: &str) -> String {
    PostgresDialect.quote_ident(name)
}

fn lit(s: &str) -> String {
    // Catalog text never holds NUL, so this cannot fail; fall back to a harmless empty string.
    PostgresDialect
        .literal(&Value::Text(s.to_owned()))
        .unwrap_or_else(|_| "''".into())
}

fn action(code: &str) -> String {
    match code {
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        _ => "NO ACTION",
    }
    .into()
}

/// The database's user-defined types that a dump recreates: name, `typtype`, the body (enum
/// labels as literals, a domain's base type, a composite's attribute list), a domain's NOT NULL,
/// default and CHECK constraints. Oid order is creation order: a domain over an enum or a
/// composite of domains comes after what it uses.
const TYPES: &str = "SELECT t.typname::text, t.typtype::text, \
     CASE t.typtype \
       WHEN 'e' THEN (SELECT coalesce(string_agg(quote_literal(e.enumlabel), ', ' \
         ORDER BY e.enumsortorder), '') FROM pg_enum e WHERE e.enumtypid = t.oid) \
       WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod) \
       ELSE (SELECT coalesce(string_agg(quote_ident(a.attname) || ' ' \
         || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum), '') \
         FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 \
         AND NOT a.attisdropped) END, \
     t.typnotnull, t.typdefault, \
     (SELECT string_agg('CONSTRAINT ' || quote_ident(c.conname) || ' ' \
       || pg_get_constraintdef(c.oid), ' ' ORDER BY c.conname) \
      FROM pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c') \
     FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
     WHERE n.nspname = current_schema() \
     AND (t.typtype IN ('e', 'd') \
       OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')) \
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e') \
     ORDER BY t.oid";

/// Schemas other than the database's own that hold tables, views or sequences, with how many:
/// what a dump of the database's schema would leave out.
const OTHER_SCHEMAS: &str = "SELECT n.nspname::text, count(*)::int8 \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname <> current_schema() \
     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
     AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%' \
     AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') \
     GROUP BY n.nspname ORDER BY n.nspname";

const RELATIONS: &str = "SELECT c.oid::int8, c.relname::text, c.relkind::text, c.reltuples::float8, \
     CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid, true) ELSE '' END \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
     AND ($1::text IS NULL OR c.relname = $1::text)";

const COLUMNS: &str = "SELECT a.attrelid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod), \
     a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text, \
     (SELECT format('START WITH %s INCREMENT BY %s MINVALUE %s MAXVALUE %s CACHE %s %s', \
        s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, \
        CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END) \
      FROM pg_depend dep JOIN pg_sequence s ON s.seqrelid = dep.objid \
      WHERE dep.refobjid = a.attrelid AND dep.refobjsubid = a.attnum AND dep.deptype = 'i' \
        AND dep.classid = 'pg_class'::regclass LIMIT 1), \
     col_description(a.attrelid, a.attnum) \
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
     AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum";

const CONSTRAINTS: &str = "SELECT con.conrelid::int8, con.conname::text, con.contype::text, \
     ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o) \
       JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o), \
     coalesce(fc.relname::text, ''), \
     ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o) \
       JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o), \
     con.confupdtype::text, con.confdeltype::text, pg_get_constraintdef(con.oid), \
     pg_get_expr(con.conbin, con.conrelid) \
     FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_class fc ON fc.oid = con.confrelid \
     WHERE n.nspname = current_schema() ORDER BY con.conrelid, con.conname";

const INDEXES: &str = "SELECT i.indrelid::int8, ic.relname::text, i.indisunique, i.indisprimary, \
     ARRAY(SELECT CASE WHEN i.indkey[k - 1] <> 0 THEN \
         (SELECT a.attname::text FROM pg_attribute a \
          WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[k - 1]) \
       ELSE pg_get_indexdef(i.indexrelid, k, true) END \
       FROM generate_series(1, i.indnkeyatts::int) k ORDER BY k), \
     pg_get_indexdef(i.indexrelid), \
     EXISTS(SELECT 1 FROM pg_constraint x WHERE x.conindid = i.indexrelid \
       AND x.conrelid = i.indrelid AND x.contype IN ('p', 'u', 'x')) \
     FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
     JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = current_schema() ORDER BY i.indrelid, ic.relname";

/// Reads the relations (all, or the one named `only`) with everything the schema and the dump
/// need.
async fn load(conn: &mut PgConn, only: Option<&str>) -> Result<Vec<Rel>> {
    let param = only.map_or(Value::Null, |t| Value::Text(t.to_owned()));
    let mut rels: Vec<Rel> = query_rows(conn, RELATIONS, vec![param])
        .await?
        .into_iter()
        .map(|r| Rel {
            oid: int(&r[0]).unwrap_or_default(),
            name: text(&r[1]),
            relkind: text(&r[2]),
            // -1 (PostgreSQL 14+): never analyzed or vacuumed, so unknown.
            reltuples: float(&r[3]).filter(|n| *n >= 0.0),
            columns: Vec::new(),
            constraints: Vec::new(),
            indexes: Vec::new(),
            viewdef: text(&r[4]),
        })
        .collect();
    if let Some(t) = only
        && rels.is_empty()
    {
        return Err(Error::NotFound {
            what: "table",
            name: t.to_owned(),
        });
    }
    rels.sort_by(|a, b| a.name.cmp(&b.name));
    let index: BTreeMap<i64, usize> = rels.iter().enumerate().map(|(i, r)| (r.oid, i)).collect();
    for r in query_rows(conn, COLUMNS, vec![]).await? {
        let Some(&i) = int(&r[0]).and_then(|oid| index.get(&oid)) else {
            continue;
        };
        rels[i].columns.push(Col {
            name: text(&r[1]),
            ty: text(&r[2]),
            not_null: matches!(r[3], Value::Bool(true)),
            default: opt_text(&r[4]),
            identity: text(&r[5]),
            generated: text(&r[6]),
            kind: ValueKind::Unspecified,
            identity_options: opt_text(&r[7]),
            comment: opt_text(&r[8]),
        });
    }
    for r in query_rows(conn, CONSTRAINTS, vec![]).await? {
        let Some(&i) = int(&r[0]).and_then(|oid| index.get(&oid)) else {
            continue;
        };
        rels[i].constraints.push(Con {
            name: text(&r[1]),
            contype: text(&r[2]),
            columns: texts(&r[3]),
            ref_table: text(&r[4]),
            ref_columns: texts(&r[5]),
            on_update: action(&text(&r[6])),
            on_delete: action(&text(&r[7])),
            def: text(&r[8]),
            check: opt_text(&r[9]),
        });
    }
    for r in query_rows(conn, INDEXES, vec![]).await? {
        let Some(&i) = int(&r[0]).and_then(|oid| index.get(&oid)) else {
            continue;
        };
        rels[i].indexes.push(Idx {
            name: text(&r[1]),
            unique: matches!(r[2], Value::Bool(true)),
            primary: matches!(r[3], Value::Bool(true)),
            columns: texts(&r[4]),
            def: text(&r[5]),
            backs_constraint: matches!(r[6], Value::Bool(true)),
        });
    }
    for rel in &mut rels {
        kinds(conn, rel).await?;
    }
    Ok(rels)
}

/// Fills in each column's kind by describing a query over it, so the kinds are exactly those
/// the data plane returns (see `codec.rs`). A column of a type the data plane cannot return
/// stays `Unspecified`.
async fn kinds(conn: &mut PgConn, rel: &mut Rel) -> Result<()> {
    let all = format!("SELECT * FROM {} LIMIT 0", q(&rel.name));
    if let Ok(cols) = describe_columns(conn, all).await
        && cols.len() == rel.columns.len()
    {
        for (c, d) in rel.columns.iter_mut().zip(cols) {
            c.kind = d.kind;
        }
        return Ok(());
    }
    for c in &mut rel.columns {
        let one = format!("SELECT {} FROM {} LIMIT 0", q(&c.name), q(&rel.name));
        match describe_columns(conn, one).await {
            Ok(cols) => c.kind = cols.first().map_or(ValueKind::Unspecified, |d| d.kind),
            Err(Error::InvalidArgument { .. }) => c.kind = ValueKind::Unspecified,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn to_schema(rel: &Rel) -> TableSchema {
    let primary_key = rel
        .constraints
        .iter()
        .find(|c| c.contype == "p")
        .map(|c| c.columns.clone())
        .unwrap_or_default();
    let view = matches!(rel.relkind.as_str(), "v" | "m");
    TableSchema {
        name: rel.name.clone(),
        kind: if view {
            TableKind::View
        } else {
            TableKind::Table
        },
        columns: rel
            .columns
            .iter()
            .map(|c| ColumnSchema {
                name: c.name.clone(),
                declared_type: c.ty.clone(),
                kind: c.kind,
                nullable: !c.not_null,
                default: c.default.clone().filter(|_| c.generated.is_empty()),
                primary_key: primary_key.contains(&c.name),
                auto_increment: !c.identity.is_empty()
                    || c.default
                        .as_deref()
                        .is_some_and(|d| d.starts_with("nextval(")),
                comment: c.comment.clone(),
            })
            .collect(),
        primary_key,
        indexes: rel
            .indexes
            .iter()
            .map(|i| IndexSchema {
                name: i.name.clone(),
                columns: i.columns.clone(),
                unique: i.unique,
                primary: i.primary,
            })
            .collect(),
        foreign_keys: rel
            .constraints
            .iter()
            .filter(|c| c.contype == "f")
            .map(|c| ForeignKeySchema {
                name: c.name.clone(),
                columns: c.columns.clone(),
                referenced_table: c.ref_table.clone(),
                referenced_columns: c.ref_columns.clone(),
                on_update: c.on_update.clone(),
                on_delete: c.on_delete.clone(),
            })
            .collect(),
        uniques: rel
            .constraints
            .iter()
            .filter(|c| c.contype == "u")
            .map(|c| UniqueSchema {
                name: c.name.clone(),
                columns: c.columns.clone(),
            })
            .collect(),
        checks: rel
            .constraints
            .iter()
            .filter(|c| c.contype == "c")
            .map(|c| CheckSchema {
                name: c.name.clone(),
                expression: c.check.clone().unwrap_or_else(|| c.def.clone()),
            })
            .collect(),
        row_estimate: if view {
            None
        } else {
            rel.reltuples.map(|n| n.round() as i64)
        },
        definition: if view {
            rel.viewdef.trim().to_owned()
        } else {
            String::new()
        },
    }
}

/// One node of `EXPLAIN (FORMAT JSON)` output, normalized.
fn plan_node(p: &Json) -> PlanNode {
    let mut detail = Vec::new();
    for key in [
        "Join Type",
        "Index Name",
        "Index Cond",
        "Recheck Cond",
        "Hash Cond",
        "Merge Cond",
        "Join Filter",
        "Filter",
        "Sort Key",
        "Group Key",
        "Strategy",
        "CTE Name",
        "Subplan Name",
    ] {
        if let Some(v) = p.text(key) {
            detail.push(format!("{key}: {v}"));
        }
    }
    let operation = p.str("Node Type").unwrap_or_default().to_owned();
    let children = match p.get("Plans") {
        Some(Json::Arr(items)) => items.iter().map(plan_node).collect(),
        _ => Vec::new(),
    };
    PlanNode {
        full_scan: operation == "Seq Scan",
        operation,
        relation: p.str("Relation Name").unwrap_or_default().to_owned(),
        detail: detail.join("; "),
        estimated_rows: p.num("Plan Rows"),
        estimated_cost: p.num("Total Cost"),
        actual_rows: p.num("Actual Rows"),
        children,
    }
}

/// Renders a row of the dump. Values go through the dialect's `literal()`, except where it
/// cannot say them exactly: non-finite floats and numerics (`'NaN'`, `'Infinity'`), and arrays,
/// which are cast to the column's type so that enum and domain elements keep theirs.
fn render_row(row: &[Value], types: &[String]) -> Result<String> {
    let mut out = String::from("(");
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let ty = types.get(i).map(String::as_str).unwrap_or("text");
        out.push_str(&render_value(v, ty)?);
    }
    out.push(')');
    Ok(out)
}

fn render_value(v: &Value, ty: &str) -> Result<String> {
    Ok(match v {
        Value::Float(f) if f.is_nan() => "'NaN'::float8".into(),
        Value::Float(f) if f.is_infinite() => {
            format!("'{}Infinity'::float8", if *f < 0.0 { "-" } else { "" })
        }
        // literal() writes -0.0 as `-0.0::float8`, i.e. -(0.0), which is +0 in PostgreSQL.
        Value::Float(f) if *f == 0.0 && f.is_sign_negative() => "'-0'::float8".into(),
        Value::Decimal(d)
            if d.chars()
                .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            format!("{}::numeric", lit(d))
        }
        Value::Array(_) => format!("{}::{ty}", PostgresDialect.literal(v)?),
        other => PostgresDialect.literal(other)?,
    })
}

/// Views and materialized views ordered so that each comes after those it reads.
async fn view_order(conn: &mut PgConn, rels: &[Rel]) -> Result<Vec<usize>> {
    let views: BTreeMap<i64, usize> = rels
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.relkind.as_str(), "v" | "m"))
        .map(|(i, r)| (r.oid, i))
        .collect();
    let mut deps: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    let edges = query_rows(
        conn,
        "SELECT DISTINCT r.ev_class::int8, d.refobjid::int8 FROM pg_rewrite r \
         JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass \
         WHERE d.refobjid <> r.ev_class AND d.refclassid = 'pg_class'::regclass",
        vec![],
    )
    .await?;
    for e in edges {
        if let (Some(v), Some(on)) = (int(&e[0]), int(&e[1]))
            && views.contains_key(&v)
            && views.contains_key(&on)
        {
            deps.entry(v).or_default().insert(on);
        }
    }
    let mut done = BTreeSet::new();
    let mut order = Vec::new();
    while order.len() < views.len() {
        let before = order.len();
        for (&oid, &i) in &views {
            if !done.contains(&oid) && deps.get(&oid).is_none_or(|d| d.is_subset(&done)) {
                done.insert(oid);
                order.push(i);
            }
        }
        if order.len() == before {
            // A cycle cannot happen between views; keep the rest in name order regardless.
            order.extend(
                views
                    .iter()
                    .filter(|(o, _)| !done.contains(*o))
                    .map(|(_, i)| *i),
            );
            break;
        }
    }
    Ok(order)
}

/// Constraints that build an index (primary keys, unique, exclusion): a backup adds them after
/// its rows, as `pg_dump` does, so the rows load without maintaining the index row by row.
fn builds_index(con: &Con) -> bool {
    matches!(con.contype.as_str(), "p" | "u" | "x")
}

fn create_table(rel: &Rel, keys_later: bool) -> String {
    let mut lines: Vec<String> = rel
        .columns
        .iter()
        .map(|c| {
            let mut line = format!("    {} {}", q(&c.name), c.ty);
            if c.generated == "s" {
                if let Some(expr) = &c.default {
                    line.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"));
                }
            } else if !c.identity.is_empty() {
                let when = if c.identity == "a" {
                    "ALWAYS"
                } else {
                    "BY DEFAULT"
                };
                line.push_str(&format!(" GENERATED {when} AS IDENTITY"));
                if let Some(opts) = &c.identity_options {
                    line.push_str(&format!(" ({opts})"));
                }
            } else if let Some(d) = &c.default {
                line.push_str(&format!(" DEFAULT {d}"));
            }
            if c.not_null {
                line.push_str(" NOT NULL");
            }
            line
        })
        .collect();
    for con in rel
        .constraints
        .iter()
        .filter(|c| matches!(c.contype.as_str(), "p" | "u" | "c" | "x"))
        .filter(|c| !(keys_later && builds_index(c)))
    {
        lines.push(format!("    CONSTRAINT {} {}", q(&con.name), con.def));
    }
    format!("CREATE TABLE {} (\n{}\n)", q(&rel.name), lines.join(",\n"))
}

/// The script of the database. With `copy` (a backup's), rows go as `COPY … FROM stdin` blocks
/// in the server's own text format and index-building constraints come after them: loading
/// is then PostgreSQL's bulk path (a 1,000,000-row table restored about 4× faster than from
/// INSERTs), and the script still replays with `psql` as `pg_dump`'s plain format does.
async fn dump(
    conn: &mut PgConn,
    schema_only: bool,
    copy: bool,
    out: &mut DumpWriter,
) -> Result<()> {
    // Every catalog read and every table read below sees the same snapshot: the caller's
    // read-only transaction is REPEATABLE READ (see `Control::BeginReadOnly`).
    refuse_other_schemas(conn).await?;
    out.write(&dump_header("PostgreSQL", schema_only)).await?;
    let rels = load(conn, None).await?;

    for t in query_rows(conn, TYPES, vec![]).await? {
        out.statement(&create_type(&t)).await?;
    }

    let functions = query_rows(
        conn,
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc p \
         JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = current_schema() AND p.prokind IN ('f', 'p') \
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') \
         ORDER BY p.oid",
        vec![],
    )
    .await?;
    if !functions.is_empty() {
        out.statement("SET LOCAL check_function_bodies = false")
            .await?;
        for f in &functions {
            out.statement(&text(&f[0])).await?;
        }
    }

    let sequences = query_rows(
        conn,
        "SELECT c.relname::text, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, \
         s.seqmin, s.seqmax, s.seqcache, s.seqcycle, \
         (SELECT t.relname::text FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid \
          WHERE d.objid = c.oid AND d.deptype = 'a' AND d.refclassid = 'pg_class'::regclass LIMIT 1), \
         (SELECT a.attname::text FROM pg_depend d JOIN pg_attribute a \
            ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
          WHERE d.objid = c.oid AND d.deptype = 'a' AND d.refclassid = 'pg_class'::regclass LIMIT 1) \
         FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() \
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'i') \
         ORDER BY c.relname",
        vec![],
    )
    .await?;
    for s in &sequences {
        let n = |i: usize| int(&s[i]).unwrap_or_default();
        out.statement(&format!(
            "CREATE SEQUENCE {} AS {} INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} \
             CACHE {} {}",
            q(&text(&s[0])),
            text(&s[1]),
            n(3),
            n(4),
            n(5),
            n(2),
            n(6),
            if matches!(s[7], Value::Bool(true)) {
                "CYCLE"
            } else {
                "NO CYCLE"
            }
        ))
        .await?;
    }

    let tables: Vec<&Rel> = rels.iter().filter(|r| r.relkind == "r").collect();
    for rel in &tables {
        out.statement(&create_table(rel, copy)).await?;
    }
    for s in &sequences {
        if let (Some(t), Some(c)) = (opt_text(&s[8]), opt_text(&s[9])) {
            out.statement(&format!(
                "ALTER SEQUENCE {} OWNED BY {}.{}",
                q(&text(&s[0])),
                q(&t),
                q(&c)
            ))
            .await?;
        }
    }

    if !schema_only {
        for rel in &tables {
            out.begin_table(&rel.name);
            if copy {
                copy_rows(conn, rel, out).await?;
            } else {
                dump_rows(conn, rel, out).await?;
            }
        }
        for s in &sequences {
            let name = q(&text(&s[0]));
            let state = query_rows(
                conn,
                &format!("SELECT last_value, is_called FROM {name}"),
                vec![],
            )
            .await?;
            if let Some(row) = state.first() {
                out.statement(&format!(
                    "SELECT pg_catalog.setval({}, {}, {})",
                    lit(&name),
                    int(&row[0]).unwrap_or(1),
                    matches!(row[1], Value::Bool(true))
                ))
                .await?;
            }
        }
        for rel in &tables {
            for c in rel.columns.iter().filter(|c| !c.identity.is_empty()) {
                let state = query_rows(
                    conn,
                    "SELECT last_value FROM pg_sequences \
                     WHERE schemaname = current_schema() AND sequencename = \
                     (parse_ident(pg_get_serial_sequence($1, $2)))[2]",
                    vec![Value::Text(q(&rel.name)), Value::Text(c.name.clone())],
                )
                .await?;
                // last_value is NULL until the sequence is first used: nothing to restore.
                if let Some(row) = state.first()
                    && let Some(last) = int(&row[0])
                {
                    out.statement(&format!(
                        "SELECT pg_catalog.setval(pg_get_serial_sequence({}, {}), {last}, true)",
                        lit(&q(&rel.name)),
                        lit(&c.name)
                    ))
                    .await?;
                }
            }
        }
    }

    // Keys before the foreign keys that reference them.
    if copy {
        add_constraints(&tables, builds_index, out).await?;
    }
    add_constraints(&tables, |c| c.contype == "f", out).await?;
    for i in view_order(conn, &rels).await? {
        let v = &rels[i];
        let body = v.viewdef.trim().trim_end_matches(';');
        let sql = if v.relkind == "m" {
            let data = if schema_only { "NO DATA" } else { "DATA" };
            format!(
                "CREATE MATERIALIZED VIEW {} AS\n{body}\nWITH {data}",
                q(&v.name)
            )
        } else {
            format!("CREATE VIEW {} AS\n{body}", q(&v.name))
        };
        out.statement(&sql).await?;
    }
    for rel in &rels {
        for i in rel.indexes.iter().filter(|i| !i.backs_constraint) {
            out.statement(&i.def).await?;
        }
    }
    let triggers = query_rows(
        conn,
        "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND NOT t.tgisinternal ORDER BY c.relname, t.tgname",
        vec![],
    )
    .await?;
    for t in &triggers {
        out.statement(&text(&t[0])).await?;
    }
    Ok(())
}

/// FAILED_PRECONDITION when relations live outside the database's own schema: the dump (and so
/// a backup, or a fork that falls back to one) covers that schema only.
async fn refuse_other_schemas(conn: &mut PgConn) -> Result<()> {
    let others = query_rows(conn, OTHER_SCHEMAS, vec![]).await?;
    if others.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = others
        .iter()
        .map(|r| format!("{} ({})", text(&r[0]), int(&r[1]).unwrap_or_default()))
        .collect();
    Err(Error::FailedPrecondition(format!(
        "the database has tables, views or sequences outside its own schema, which a dump \
         does not carry: {}; move them into the database's schema (only a ForkDatabase \
         that uses the engine's TEMPLATE copy carries other schemas)",
        listed.join(", ")
    )))
}

/// The `CREATE TYPE` / `CREATE DOMAIN` of one row of [`TYPES`].
fn create_type(t: &[Value]) -> String {
    let (name, body) = (q(&text(&t[0])), text(&t[2]));
    match text(&t[1]).as_str() {
        "e" => format!("CREATE TYPE {name} AS ENUM ({body})"),
        "d" => {
            let mut sql = format!("CREATE DOMAIN {name} AS {body}");
            if let Some(default) = opt_text(&t[4]) {
                sql.push_str(&format!(" DEFAULT {default}"));
            }
            if matches!(t[3], Value::Bool(true)) {
                sql.push_str(" NOT NULL");
            }
            if let Some(checks) = opt_text(&t[5]) {
                sql.push(' ');
                sql.push_str(&checks);
            }
            sql
        }
        _ => format!("CREATE TYPE {name} AS ({body})"),
    }
}

/// `ALTER TABLE … ADD CONSTRAINT` for the constraints of `tables` that `pick` chooses.
async fn add_constraints(
    tables: &[&Rel],
    pick: impl Fn(&Con) -> bool,
    out: &mut DumpWriter,
) -> Result<()> {
    for rel in tables {
        for con in rel.constraints.iter().filter(|c| pick(c)) {
            out.statement(&format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {}",
                q(&rel.name),
                q(&con.name),
                con.def
            ))
            .await?;
        }
    }
    Ok(())
}

/// Streams one table's rows as a `COPY … FROM stdin` block: the statement, the server's COPY
/// text as it sends it (one line per row), and the `\.` line that ends the data.
async fn copy_rows(conn: &mut PgConn, rel: &Rel, out: &mut DumpWriter) -> Result<()> {
    use futures::StreamExt;
    let names: Vec<String> = rel
        .columns
        .iter()
        .filter(|c| c.generated.is_empty())
        .map(|c| q(&c.name))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let target = format!("{} ({})", q(&rel.name), names.join(", "));
    out.write(&format!("COPY {target} FROM stdin;\n")).await?;
    // A table's own rows only (not its inheritance children'), like `SELECT … FROM ONLY`.
    let mut data = conn.copy_out(&format!("COPY {target} TO STDOUT")).await?;
    while let Some(piece) = data.next().await {
        let piece = piece?;
        let rows = piece.iter().filter(|b| **b == b'\n').count() as u64;
        out.buf_mut().extend_from_slice(&piece);
        out.end_rows(rows);
        if out.full() {
            out.send_full().await?;
        }
    }
    drop(data);
    out.write("\\.\n").await
}

/// Streams one table's rows into batched INSERTs.
async fn dump_rows(conn: &mut PgConn, rel: &Rel, out: &mut DumpWriter) -> Result<()> {
    let cols: Vec<&Col> = rel
        .columns
        .iter()
        .filter(|c| c.generated.is_empty())
        .collect();
    if cols.is_empty() {
        return Ok(());
    }
    // Columns of a type the data plane cannot return are read as their text form, which the
    // column's input function reads back exactly.
    let select: Vec<String> = cols
        .iter()
        .map(|c| {
            if c.kind == ValueKind::Unspecified {
                format!("{}::text", q(&c.name))
            } else {
                q(&c.name)
            }
        })
        .collect();
    let names: Vec<String> = cols.iter().map(|c| q(&c.name)).collect();
    let overriding = if cols.iter().any(|c| c.identity == "a") {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    let head = format!(
        "INSERT INTO {} ({}){overriding} VALUES",
        q(&rel.name),
        names.join(", ")
    );
    let types: Vec<String> = cols.iter().map(|c| c.ty.clone()).collect();
    let render = move |row: &[Value]| render_row(row, &types);
    let select = format!("SELECT {} FROM ONLY {}", select.join(", "), q(&rel.name));
    dump_select(conn, select, head, &render, out).await
}

#[async_trait]
impl Inspect for PgEngine {
    async fn schema(conn: &mut PgConn, table: Option<&str>) -> Result<Schema> {
        let rels = load(conn, table).await?;
        Ok(Schema {
            tables: rels.iter().map(to_schema).collect(),
            key_space: None,
            graph: None,
        })
    }

    fn check_analyze(_stmt: &Statement) -> Result<()> {
        // PostgreSQL's DDL is transactional: whatever the statement does is rolled back.
        Ok(())
    }

    async fn explain(conn: &mut PgConn, stmt: &Statement, analyze: bool) -> Result<Plan> {
        let options = if analyze {
            "ANALYZE, FORMAT JSON"
        } else {
            "FORMAT JSON"
        };
        let explain = Statement {
            sql: format!("EXPLAIN ({options}) {}", stmt.sql),
            params: stmt.params.clone(),
        };
        let rows = query_rows(conn, &explain.sql, explain.params).await?;
        let raw: String = rows
            .iter()
            .map(|r| text(&r[0]))
            .collect::<Vec<_>>()
            .join("\n");
        let json = Json::parse(&raw)?;
        let nodes = match &json {
            Json::Arr(items) => items
                .iter()
                .filter_map(|i| i.get("Plan"))
                .map(plan_node)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Plan { raw, nodes })
    }

    async fn dump(conn: &mut PgConn, schema_only: bool, out: &mut DumpWriter) -> Result<()> {
        dump(conn, schema_only, false, out).await
    }

    async fn backup_dump(conn: &mut PgConn, out: &mut DumpWriter) -> Result<()> {
        dump(conn, false, true, out).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_values_are_exact() {
        assert_eq!(
            render_value(&Value::Float(0.1), "double precision").expect("ok"),
            "0.1::float8"
        );
        assert_eq!(
            render_value(&Value::Float(f64::NEG_INFINITY), "real").expect("ok"),
            "'-Infinity'::float8"
        );
        assert_eq!(
            render_value(&Value::Float(-0.0), "real").expect("ok"),
            "'-0'::float8"
        );
        assert_eq!(
            render_value(&Value::Decimal("NaN".into()), "numeric").expect("ok"),
            "E'NaN'::numeric"
        );
        assert_eq!(
            render_value(&Value::Array(vec![Value::Text("a".into())]), "mood[]").expect("ok"),
            "ARRAY[E'a']::mood[]"
        );
    }
}
