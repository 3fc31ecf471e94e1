//! Introspection shared by the SQL server backends: the [`Inspect`] half of an engine (schema,
//! plans, dumps), catalog queries run through the engine's own data-plane connection, batched
//! `INSERT`s into the shared [`DumpWriter`], and the plans engines write as
//! JSON, read with serde_json into a small tree that keeps members in document order.
//!
//! Everything runs on a connection of the spawned database's own pool, so it sees exactly what
//! the database's user sees and nothing of the server beyond it.

use async_trait::async_trait;

use super::{Engine, RowSink, SqlConn};
pub use crate::backend::dump::DumpWriter;
use crate::core::{
    error::{Error, Result},
    schema::{Plan, Schema},
    value::{Column, Row, Statement, Value},
};

/// Rows per `INSERT` of a dump, at most.
pub const INSERT_ROWS: usize = 500;
/// Approximate bytes per `INSERT` of a dump: a statement is closed once it grows past this (a
/// single larger row still makes one statement of its own).
pub const INSERT_BYTES: usize = 256 * 1024;
/// Rows a catalog query may return. Catalogs of spawned databases are small; this only keeps a
/// pathological one (a million tables) from growing the gateway's memory without bound.
const MAX_CATALOG_ROWS: usize = 200_000;

/// What an engine adds to the shared data plane to describe itself: its schema, its plans and
/// a dump of its contents. Each call gets a connection of the database's own pool, with the
/// statement timeout already set; [`explain`](Self::explain) with `analyze` and
/// [`dump`](Self::dump) run inside a transaction the caller opens (read-write and read-only) and
/// always rolls back.
#[async_trait]
pub trait Inspect: Engine {
    /// Tables and views of the database's schema, or only `table` (missing: `NotFound`).
    async fn schema(conn: &mut Self::Conn, table: Option<&str>) -> Result<Schema>;
    /// Refuses, before anything runs, a statement whose analyze could not be rolled back
    /// (MySQL commits implicitly around DDL).
    fn check_analyze(stmt: &Statement) -> Result<()>;
    /// The plan of `stmt`; with `analyze` the statement runs (inside the caller's transaction).
    async fn explain(conn: &mut Self::Conn, stmt: &Statement, analyze: bool) -> Result<Plan>;
    /// Writes a replayable script of the whole database to `out`.
    async fn dump(conn: &mut Self::Conn, schema_only: bool, out: &mut DumpWriter) -> Result<()>;
    /// Writes the script a backup stores (see [`Database::backup_dump`]): [`dump`](Self::dump)
    /// of everything unless the engine has a faster form for its own restore.
    ///
    /// [`Database::backup_dump`]: crate::backend::Database::backup_dump
    async fn backup_dump(conn: &mut Self::Conn, out: &mut DumpWriter) -> Result<()> {
        Self::dump(conn, false, out).await
    }
}

/// Collects a catalog query's rows, up to [`MAX_CATALOG_ROWS`].
#[derive(Default)]
struct CollectRows {
    rows: Vec<Row>,
    too_many: bool,
}

#[async_trait]
impl RowSink for CollectRows {
    async fn columns(&mut self, _columns: Vec<Column>) -> Result<()> {
        Ok(())
    }

    fn row(&mut self, row: Row) -> Result<bool> {
        if self.rows.len() >= MAX_CATALOG_ROWS {
            self.too_many = true;
            return Ok(false);
        }
        self.rows.push(row);
        Ok(true)
    }

    fn stopped(&self) -> bool {
        self.too_many
    }
}

/// Runs a catalog query through the engine's own prepare-and-decode path and returns its rows.
pub async fn query_rows<C: SqlConn>(
    conn: &mut C,
    sql: &str,
    params: Vec<Value>,
) -> Result<Vec<Row>> {
    let stmt = Statement {
        sql: sql.to_owned(),
        params,
    };
    let prepared = conn.describe(&stmt).await?;
    let mut sink = CollectRows::default();
    conn.run(&prepared, &stmt, &mut sink).await?;
    if sink.too_many {
        return Err(Error::LimitExceeded(format!(
            "the catalog query returned more than {MAX_CATALOG_ROWS} rows"
        )));
    }
    Ok(sink.rows)
}

/// The columns `sql` would return, as the data plane describes them (kinds included).
pub async fn describe_columns<C: SqlConn>(conn: &mut C, sql: String) -> Result<Vec<Column>> {
    let stmt = Statement {
        sql,
        params: Vec::new(),
    };
    let prepared = conn.describe(&stmt).await?;
    Ok(C::columns(&prepared).to_vec())
}

/// A catalog cell as text (`""` for NULL); engines return names as text, or as bytes when the
/// catalog column is binary.
pub fn text(v: &Value) -> String {
    opt_text(v).unwrap_or_default()
}

/// A catalog cell as text, `None` for NULL.
pub fn opt_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Text(s) | Value::Json(s) | Value::Decimal(s) | Value::Uuid(s) => Some(s.clone()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// A catalog cell as an integer, `None` for NULL or anything not a whole number.
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Decimal(s) | Value::Text(s) => s.trim().parse().ok(),
        Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}

/// A catalog cell as a float.
pub fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Float(f) => Some(*f),
        Value::Int(i) => Some(*i as f64),
        Value::Decimal(s) | Value::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A catalog cell as a boolean (MySQL reports them as numbers or `YES`/`NO`).
pub fn boolean(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Text(s) => matches!(s.as_str(), "YES" | "yes" | "1" | "t" | "true"),
        _ => false,
    }
}

/// A catalog array cell as a list of texts.
pub fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().map(text).collect(),
        Value::Null => Vec::new(),
        other => vec![text(other)],
    }
}

/// Runs `select` (a table's rows) on `conn` and writes its rows to `out` as batched INSERTs
/// headed by `head`, each row rendered by `render`.
pub async fn dump_select<C: SqlConn>(
    conn: &mut C,
    select: String,
    head: String,
    render: RenderRow<'_>,
    out: &mut DumpWriter,
) -> Result<()> {
    let stmt = Statement {
        sql: select,
        params: Vec::new(),
    };
    let prepared = conn.describe(&stmt).await?;
    let mut sink = InsertSink::new(out, head, render);
    conn.run(&prepared, &stmt, &mut sink).await?;
    sink.finish().await?;
    if out.gone() {
        return Err(Error::Unavailable(
            "the client stopped reading the dump".into(),
        ));
    }
    Ok(())
}

/// Renders one row of a table as the parenthesized list of its literals.
pub type RenderRow<'a> = &'a (dyn Fn(&[Value]) -> Result<String> + Send + Sync);

/// A row sink that writes a table's rows as multi-row `INSERT`s of at most [`INSERT_ROWS`] rows
/// and about [`INSERT_BYTES`] bytes each, straight into a [`DumpWriter`]: the table is never held
/// in memory.
pub struct InsertSink<'a> {
    out: &'a mut DumpWriter,
    head: String,
    render: RenderRow<'a>,
    stmt: String,
    in_stmt: usize,
    /// Rows written.
    pub rows: u64,
    error: Option<Error>,
}

impl<'a> InsertSink<'a> {
    /// A sink writing `head` (`INSERT INTO t (a, b) VALUES`) before each batch of rows.
    pub fn new(out: &'a mut DumpWriter, head: String, render: RenderRow<'a>) -> Self {
        Self {
            out,
            head,
            render,
            stmt: String::new(),
            in_stmt: 0,
            rows: 0,
            error: None,
        }
    }

    async fn end_statement(&mut self) -> Result<()> {
        if self.in_stmt == 0 {
            return Ok(());
        }
        self.stmt.push_str(";\n");
        let stmt = std::mem::take(&mut self.stmt);
        let rows = self.in_stmt as u64;
        self.in_stmt = 0;
        self.out.write_rows(&stmt, rows).await
    }

    /// Writes the last statement; returns the first error a row ran into.
    pub async fn finish(mut self) -> Result<u64> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.end_statement().await?;
        Ok(self.rows)
    }
}

#[async_trait]
impl RowSink for InsertSink<'_> {
    async fn columns(&mut self, _columns: Vec<Column>) -> Result<()> {
        Ok(())
    }

    fn row(&mut self, row: Row) -> Result<bool> {
        let rendered = match (self.render)(&row) {
            Ok(r) => r,
            Err(e) => {
                self.error = Some(e);
                return Ok(false);
            }
        };
        if self.in_stmt == 0 {
            self.stmt.push_str(&self.head);
            self.stmt.push('\n');
        } else {
            self.stmt.push_str(",\n");
        }
        self.stmt.push_str(&rendered);
        self.in_stmt += 1;
        self.rows += 1;
        Ok(true)
    }

    fn pending(&self) -> bool {
        self.in_stmt >= INSERT_ROWS || self.stmt.len() >= INSERT_BYTES
    }

    async fn send(&mut self) -> Result<bool> {
        if let Err(e) = self.end_statement().await {
            self.error = Some(e);
            return Ok(false);
        }
        Ok(true)
    }

    fn stopped(&self) -> bool {
        self.error.is_some()
    }
}

/// The first line of every dump: what it is and how to replay it.
pub fn dump_header(engine: &str, schema_only: bool) -> String {
    let what = if schema_only {
        "schema only"
    } else {
        "schema and data"
    };
    format!(
        "-- DB-Forge dump of a {engine} database ({what}). Replay it statement by statement, in \
         one transaction, as the target database's own user.\n"
    )
}

/// A parsed JSON value, enough to read the plans engines write.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in document order.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// Parses a whole document.
    pub fn parse(s: &str) -> Result<Json> {
        let mut de = serde_json::Deserializer::from_str(s);
        // The depth is bounded by the seed instead (plans of deep joins nest past serde_json's
        // default of 128).
        de.disable_recursion_limit();
        let v = serde::de::DeserializeSeed::deserialize(Depth(0), &mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(|e| Error::internal(format!("the engine's plan is not valid JSON ({e})")))?;
        Ok(v)
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A string member's text.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A numeric member, also when written as a string (MySQL's `cost_info`).
    pub fn num(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Json::Num(n) => Some(*n),
            Json::Str(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// A member rendered as short text: strings as they are, arrays joined with `, `.
    pub fn text(&self, key: &str) -> Option<String> {
        fn render(v: &Json) -> String {
            match v {
                Json::Str(s) => s.clone(),
                Json::Num(n) => n.to_string(),
                Json::Bool(b) => b.to_string(),
                Json::Null => "null".into(),
                Json::Arr(items) => items.iter().map(render).collect::<Vec<_>>().join(", "),
                Json::Obj(_) => "{…}".into(),
            }
        }
        self.get(key).map(render)
    }
}

/// Nesting a plan may reach; deeper documents are refused rather than recursed into.
const MAX_JSON_DEPTH: usize = 512;

/// Reads a [`Json`] at a nesting depth, keeping objects' members in document order (the
/// order MySQL's plans list their steps in).
struct Depth(usize);

impl<'de> serde::de::DeserializeSeed<'de> for Depth {
    type Value = Json;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Json, D::Error> {
        if self.0 > MAX_JSON_DEPTH {
            return Err(serde::de::Error::custom("nested too deeply"));
        }
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Depth {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> std::result::Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, b: bool) -> std::result::Result<Json, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> std::result::Result<Json, E> {
        Ok(Json::Num(n as f64))
    }

    fn visit_u64<E>(self, n: u64) -> std::result::Result<Json, E> {
        Ok(Json::Num(n as f64))
    }

    fn visit_f64<E>(self, n: f64) -> std::result::Result<Json, E> {
        Ok(Json::Num(n))
    }

    fn visit_str<E>(self, s: &str) -> std::result::Result<Json, E> {
        Ok(Json::Str(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> std::result::Result<Json, E> {
        Ok(Json::Str(s))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Depth(self.0 + 1))? {
            items.push(v);
        }
        Ok(Json::Arr(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            members.push((k, map.next_value_seed(Depth(self.0 + 1))?));
        }
        Ok(Json::Obj(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_reads_plans() {
        let j = Json::parse(
            r#"[{"Plan": {"Node Type": "Seq Scan", "Plan Rows": 12.5, "Plans": [], "s": "a\"\u00e9\ud83d\ude00\n"}}]"#,
        )
        .expect("parses");
        let Json::Arr(items) = &j else { panic!() };
        let plan = items[0].get("Plan").expect("parses");
        assert_eq!(plan.str("Node Type"), Some("Seq Scan"));
        assert_eq!(plan.num("Plan Rows"), Some(12.5));
        assert_eq!(plan.str("s"), Some("a\"é😀\n"));
        assert!(Json::parse("[1,").is_err());
        assert!(Json::parse("{} x").is_err());
        assert_eq!(
            Json::parse(r#"{"b": 1, "a": [true, null, -2]}"#).expect("parses"),
            Json::Obj(vec![
                ("b".into(), Json::Num(1.0)),
                (
                    "a".into(),
                    Json::Arr(vec![Json::Bool(true), Json::Null, Json::Num(-2.0)])
                ),
            ]),
            "members keep their order"
        );
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(
            Json::parse(&deep(400)).is_ok(),
            "deeper than serde_json's default"
        );
        assert!(Json::parse(&deep(600)).is_err());
    }
}
