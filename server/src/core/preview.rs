//! QueryService.Preview: statements run inside one transaction that is always rolled back, each
//! reported with what it did (rows affected, samples before and after, plan, error).
//!
//! The engine runs every statement exactly as the client wrote it (an INSERT … VALUES gains a
//! `RETURNING *` at its end, nothing else changes), so what the preview reports is what the
//! engine would do. The samples come from extra SELECTs in the same transaction, built from the
//! statement as [`sqlparser`] reads it: the affected rows before an UPDATE or DELETE (its table
//! and WHERE), and after an UPDATE the same rows again by primary key (SQLite: rowid). A
//! statement the parser cannot read, or a shape the sampling does not cover (joins, USING,
//! named parameters), still runs; its preview says why it has no sample. sqlparser is only
//! the reader here: the engines stay the judges of what is valid.
//!
//! MySQL commits implicitly around DDL, so on engines without
//! [`Capabilities::transactional_ddl`] every statement must start with a DML or query word, checked
//! on the shared scanner's tokens before anything runs.

use std::ops::ControlFlow;

use dbforge_sqlscan::{TokenKind, Tokens};
use sqlparser::{
    ast::{
        self, AssignmentTarget, Expr, FromTable, SetExpr, TableFactor, TableWithJoins,
        visit_expressions_mut,
    },
    dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect},
    parser::Parser,
};

use super::{
    engine::BackendKind,
    error::{Error, Result},
    schema::Plan,
    script,
    table::SqlDialect,
    value::{Column, Row, Statement, Value},
};
use crate::backend::{Capabilities, Database, Session, StatementLimits};

/// Rows per sample when the request does not say.
pub const DEFAULT_SAMPLE_ROWS: usize = 5;
/// The most rows per sample a request may ask for.
pub const MAX_SAMPLE_ROWS: usize = 100;
/// The most VALUES rows an INSERT may have for its new rows to be sampled through RETURNING
/// (all of them come back, so the row limit of a whole result must hold them).
const MAX_RETURNED_INSERT_ROWS: usize = 1_000;
/// The words a statement may start with where DDL would commit the preview's transaction.
const DML_WORDS: [&str; 8] = [
    "SELECT", "INSERT", "REPLACE", "UPDATE", "DELETE", "WITH", "VALUES", "TABLE",
];

/// What a statement is, as the preview reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewKind {
    /// A query: its first rows are the sample.
    Select,
    /// New rows.
    Insert,
    /// Changed rows: before and after.
    Update,
    /// Removed rows: before.
    Delete,
    /// DDL and anything else: run, no sample.
    Other,
}

impl PreviewKind {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Select => "SELECT",
            Self::Insert => "INSERT",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Other => "OTHER",
        }
    }
}

/// A statement's failure inside the preview.
#[derive(Debug)]
pub struct PreviewError {
    /// What the engine (or the gateway) said.
    pub error: Error,
    /// Whether the transaction was still open afterwards.
    pub transaction_active: bool,
}

/// What one statement would do.
#[derive(Debug)]
pub struct StatementPreview {
    /// What it is.
    pub kind: PreviewKind,
    /// Rows it changed.
    pub rows_affected: u64,
    /// Columns of `before` and `after`.
    pub columns: Vec<Column>,
    /// UPDATE, DELETE: sampled rows before it.
    pub before: Vec<Row>,
    /// UPDATE: the same rows after it; INSERT: new rows; SELECT: first rows.
    pub after: Vec<Row>,
    /// Why a sample is missing or partial.
    pub sample_note: String,
    /// Its plan, when the engine gave one.
    pub plan: Option<Plan>,
    /// Its failure.
    pub error: Option<PreviewError>,
    /// Not run: the transaction had ended.
    pub skipped: bool,
}

impl StatementPreview {
    fn new(kind: PreviewKind) -> Self {
        Self {
            kind,
            rows_affected: 0,
            columns: Vec::new(),
            before: Vec::new(),
            after: Vec::new(),
            sample_note: String::new(),
            plan: None,
            error: None,
            skipped: false,
        }
    }

    fn note(&mut self, why: impl Into<String>) {
        if self.sample_note.is_empty() {
            self.sample_note = why.into();
        }
    }
}

/// What the preview needs to know of the engine.
pub struct Engine<'a> {
    /// Which one.
    pub kind: BackendKind,
    /// What it supports.
    pub capabilities: &'a Capabilities,
    /// Its quoting and placeholders.
    pub dialect: &'static dyn SqlDialect,
}

/// Previews `stmts` on `db`: checks them all, then runs them in one transaction that is
/// rolled back at the end (or by the session's drop, on any early return).
pub async fn preview(
    db: &dyn Database,
    engine: &Engine<'_>,
    stmts: Vec<Statement>,
    sample_rows: usize,
    limits: StatementLimits,
) -> Result<Vec<StatementPreview>> {
    if !engine.capabilities.transactional_ddl {
        for (i, stmt) in stmts.iter().enumerate() {
            refuse_implicit_commit(engine.kind, i, &stmt.sql)?;
        }
    }
    let plans: Vec<Planned> = stmts
        .into_iter()
        .map(|stmt| Planned::new(engine, stmt, sample_rows))
        .collect();
    // Keys are read before the transaction: the committed table is the one whose rows the
    // samples pick out (a table created by the preview itself has no sample after).
    let mut keys = Vec::with_capacity(plans.len());
    for p in &plans {
        keys.push(match &p.sample {
            Sample::Changed {
                table,
                update: true,
                ..
            } => row_key(db, engine, table, &limits).await,
            _ => None,
        });
    }
    let mut session = db.session(limits).await?;
    session.begin().await?;
    let mut out = Vec::with_capacity(plans.len());
    for (p, key) in plans.into_iter().zip(keys) {
        out.push(run_one(session.as_mut(), engine, p, key, sample_rows).await);
    }
    if session.in_transaction() {
        session.rollback().await?;
    }
    Ok(out)
}

/// MySQL's implicit commits: only statements that start with a DML or query word may run.
fn refuse_implicit_commit(kind: BackendKind, index: usize, sql: &str) -> Result<()> {
    let first = Tokens::new(sql, script::dialect(kind))
        .find(|t| !matches!(t.kind, TokenKind::Comment | TokenKind::ExecutableComment))
        .filter(|t| t.kind == TokenKind::Word)
        .map(|t| t.text.to_ascii_uppercase());
    match first {
        Some(w) if DML_WORDS.contains(&w.as_str()) => Ok(()),
        other => Err(Error::FailedPrecondition(format!(
            "statement {index} ({}) cannot be previewed on {}: only statements starting with \
             {} can, because the engine commits the transaction implicitly around DDL and \
             administrative statements and the preview's rollback could not undo them",
            other.as_deref().unwrap_or("no statement"),
            kind.as_str(),
            DML_WORDS.join(", ")
        ))),
    }
}

/// How a statement's rows are sampled.
enum Sample {
    /// None; the note says why when there is a reason worth telling.
    None(Option<String>),
    /// A query: run wrapped, its first rows kept.
    Query(Statement),
    /// An INSERT: run with `RETURNING *` appended.
    Returning(Statement),
    /// An UPDATE or DELETE of one table: `before` selects the rows it will change.
    Changed {
        /// The table's name as the engine knows it (unquoted).
        table: String,
        /// How the SELECTs name it (quoted as written).
        table_sql: String,
        /// The rows before.
        before: Statement,
        /// An UPDATE (the rows are looked up again after it).
        update: bool,
        /// Columns the UPDATE assigns, unquoted.
        assigned: Vec<String>,
    },
}

/// One statement and how it will be sampled.
struct Planned {
    stmt: Statement,
    kind: PreviewKind,
    sample: Sample,
}

impl Planned {
    fn new(engine: &Engine<'_>, stmt: Statement, n: usize) -> Self {
        let parsed = Parser::parse_sql(parser_dialect(engine.kind), &stmt.sql)
            .ok()
            .filter(|s| s.len() == 1)
            .and_then(|mut s| s.pop());
        let Some(ast) = parsed else {
            return Self {
                stmt,
                kind: PreviewKind::Other,
                sample: Sample::None(Some(
                    "the preview's SQL reader does not understand this statement, so it ran \
                     without a sample"
                        .into(),
                )),
            };
        };
        let (kind, sample) = match sample_of(engine, &stmt, ast, n) {
            Ok(ks) => ks,
            Err(why) => (
                kind_of_text(&stmt.sql, engine.kind),
                Sample::None(Some(why)),
            ),
        };
        Self { stmt, kind, sample }
    }
}

/// A statement's kind from its first word, for statements whose sample could not be planned.
fn kind_of_text(sql: &str, kind: BackendKind) -> PreviewKind {
    let first = Tokens::new(sql, script::dialect(kind))
        .find(|t| t.kind == TokenKind::Word)
        .map(|t| t.text.to_ascii_uppercase());
    match first.as_deref() {
        Some("SELECT" | "WITH" | "VALUES" | "TABLE") => PreviewKind::Select,
        Some("INSERT" | "REPLACE") => PreviewKind::Insert,
        Some("UPDATE") => PreviewKind::Update,
        Some("DELETE") => PreviewKind::Delete,
        _ => PreviewKind::Other,
    }
}

/// `Ok` when `sql` is one query (SELECT, WITH … SELECT, VALUES) as `sqlparser` reads it, or
/// when `sqlparser` cannot read it (the engine judges then); otherwise why not, in a sentence
/// for a model to act on (SemanticService's check before EXPLAIN). Advisory only: what keeps a
/// generated statement from writing is the read-only login it runs on.
pub fn read_only_query(sql: &str, kind: BackendKind) -> std::result::Result<(), String> {
    let Ok(stmts) = Parser::parse_sql(parser_dialect(kind), sql) else {
        return Ok(());
    };
    match stmts.as_slice() {
        [ast::Statement::Query(_)] => Ok(()),
        [] => Err("the answer holds no statement".into()),
        [one] => {
            let text = one.to_string();
            let words: Vec<&str> = text.split_whitespace().take(2).collect();
            Err(format!(
                "only a read-only query (SELECT or WITH ... SELECT) may be written, not {}:                  this statement would change the database",
                words.join(" ")
            ))
        }
        many => Err(format!(
            "exactly one statement must be written, not {}",
            many.len()
        )),
    }
}

fn parser_dialect(kind: BackendKind) -> &'static dyn Dialect {
    match kind {
        BackendKind::Postgres => &PostgreSqlDialect {},
        BackendKind::Mysql => &MySqlDialect {},
        BackendKind::Sqlite | BackendKind::Redis | BackendKind::Graph => &SQLiteDialect {},
    }
}

/// The kind and sampling of a parsed statement; `Err` says why it has no sample.
fn sample_of(
    engine: &Engine<'_>,
    stmt: &Statement,
    mut ast: ast::Statement,
    n: usize,
) -> std::result::Result<(PreviewKind, Sample), String> {
    match &ast {
        ast::Statement::Query(q) => {
            // A PostgreSQL data-modifying WITH cannot sit in a subquery; it runs as written.
            if q.with.as_ref().is_some_and(|w| {
                w.cte_tables
                    .iter()
                    .any(|c| !matches!(*c.query.body, SetExpr::Select(_) | SetExpr::Query(_)))
            }) {
                return Ok((PreviewKind::Select, Sample::None(None)));
            }
            let sql = format!(
                "SELECT * FROM ({}) AS dbforge_preview LIMIT {n}",
                statement_text(&stmt.sql, engine.kind)
            );
            Ok((
                PreviewKind::Select,
                Sample::Query(Statement {
                    sql,
                    params: stmt.params.clone(),
                }),
            ))
        }
        ast::Statement::Insert(ins) => {
            if ins.returning.is_some() {
                // The statement returns its rows itself.
                return Ok((PreviewKind::Insert, Sample::None(None)));
            }
            if !engine.capabilities.returning {
                return Err(format!(
                    "{} has no INSERT … RETURNING, so the new rows are not sampled",
                    engine.kind.as_str()
                ));
            }
            let rows = match ins.source.as_deref().map(|q| &*q.body) {
                Some(SetExpr::Values(v)) => v.rows.len(),
                _ => {
                    return Err("new rows are sampled for INSERT … VALUES only".into());
                }
            };
            if rows > MAX_RETURNED_INSERT_ROWS {
                return Err(format!(
                    "new rows are sampled for INSERTs of at most {MAX_RETURNED_INSERT_ROWS} rows"
                ));
            }
            if engine.kind == BackendKind::Mysql && ins.on.is_some() {
                return Err("new rows are not sampled for INSERT … ON DUPLICATE KEY UPDATE".into());
            }
            Ok((
                PreviewKind::Insert,
                Sample::Returning(Statement {
                    sql: format!("{} RETURNING *", statement_text(&stmt.sql, engine.kind)),
                    params: stmt.params.clone(),
                }),
            ))
        }
        ast::Statement::Update(_) | ast::Statement::Delete(_) => {
            let update = matches!(ast, ast::Statement::Update(_));
            let kind = if update {
                PreviewKind::Update
            } else {
                PreviewKind::Delete
            };
            number_placeholders(&mut ast)?;
            let (target, selection, order_by, limit, assigned) = match &ast {
                ast::Statement::Update(u) => {
                    if u.from.is_some() {
                        return Err("UPDATE … FROM is previewed without a sample".into());
                    }
                    let assigned = u
                        .assignments
                        .iter()
                        .flat_map(|a| match &a.target {
                            AssignmentTarget::ColumnName(c) => vec![c],
                            AssignmentTarget::Tuple(cs) => cs.iter().collect(),
                        })
                        .filter_map(last_ident)
                        .collect();
                    (
                        single_table(&u.table)?,
                        &u.selection,
                        &u.order_by,
                        &u.limit,
                        assigned,
                    )
                }
                ast::Statement::Delete(d) => {
                    let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) =
                        &d.from;
                    if !d.tables.is_empty() || d.using.is_some() || from.len() != 1 {
                        return Err(
                            "a DELETE of several tables or with USING is previewed without a \
                             sample"
                                .into(),
                        );
                    }
                    (
                        single_table(&from[0])?,
                        &d.selection,
                        &d.order_by,
                        &d.limit,
                        Vec::new(),
                    )
                }
                _ => unreachable!("matched above"),
            };
            let (table, table_sql, relation) = target;
            let mut sql = format!("SELECT * FROM {relation}");
            if let Some(w) = selection {
                sql.push_str(&format!(" WHERE {w}"));
            }
            if !order_by.is_empty() {
                let order: Vec<String> = order_by.iter().map(ToString::to_string).collect();
                sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
            }
            let take = match limit {
                None => n,
                Some(Expr::Value(v)) => match &v.value {
                    ast::Value::Number(l, _) => l.parse::<usize>().map_or(n, |l| l.min(n)),
                    _ => return Err("a LIMIT given as a parameter leaves no sample".into()),
                },
                Some(_) => return Err("a computed LIMIT leaves no sample".into()),
            };
            sql.push_str(&format!(" LIMIT {take}"));
            let before = bind_piece(engine, &sql, &stmt.params)?;
            Ok((
                kind,
                Sample::Changed {
                    table,
                    table_sql,
                    before,
                    update,
                    assigned,
                },
            ))
        }
        _ => Ok((PreviewKind::Other, Sample::None(None))),
    }
}

/// The one table an UPDATE or DELETE changes: its unquoted name, its name as written, and the
/// relation as written (with its alias).
fn single_table(t: &TableWithJoins) -> std::result::Result<(String, String, String), String> {
    if !t.joins.is_empty() {
        return Err("a statement over joined tables is previewed without a sample".into());
    }
    match &t.relation {
        TableFactor::Table { name, .. } => {
            let table = last_ident(name).ok_or("the table's name is not a plain name")?;
            Ok((table, name.to_string(), t.relation.to_string()))
        }
        _ => Err("only a statement on a named table has a sample".into()),
    }
}

fn last_ident(name: &ast::ObjectName) -> Option<String> {
    name.0
        .last()
        .and_then(ast::ObjectNamePart::as_ident)
        .map(|i| i.value.clone())
}

/// Gives every `?` its position (`?1`, `?2`, … in the order they are written, which is the order
/// they bind), so that a SELECT cut from the statement can say which parameters it uses.
/// PostgreSQL's `$n` and SQLite's `?n` already say it; named parameters are not sampled.
fn number_placeholders(ast: &mut ast::Statement) -> std::result::Result<(), String> {
    let mut next = 0usize;
    let mut numbered = false;
    let mut bad = false;
    let _ = visit_expressions_mut(ast, |e| {
        if let Expr::Value(v) = e
            && let ast::Value::Placeholder(p) = &mut v.value
        {
            if p == "?" {
                next += 1;
                *p = format!("?{next}");
            } else if position(p).is_some() {
                numbered = true;
            } else {
                bad = true;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if bad || (numbered && next > 0) {
        return Err(
            "statements with named or mixed parameters are previewed without a sample".into(),
        );
    }
    Ok(())
}

/// The 1-based parameter a numbered placeholder (`$3`, `?3`) binds.
fn position(p: &str) -> Option<usize> {
    p.strip_prefix('$')
        .or_else(|| p.strip_prefix('?'))?
        .parse()
        .ok()
        .filter(|&n| n > 0)
}

/// A SELECT cut from a statement whose placeholders are numbered: each one becomes the engine's
/// next placeholder, bound to the statement's parameter it named.
fn bind_piece(
    engine: &Engine<'_>,
    sql: &str,
    params: &[Value],
) -> std::result::Result<Statement, String> {
    let not_read = || "the preview could not build the sample's SELECT".to_owned();
    let mut parsed = Parser::parse_sql(parser_dialect(engine.kind), sql).map_err(|_| not_read())?;
    let mut ast = parsed
        .pop()
        .filter(|_| parsed.is_empty())
        .ok_or_else(not_read)?;
    let mut bound = Vec::new();
    let mut missing = false;
    let _ = visit_expressions_mut(&mut ast, |e| {
        if let Expr::Value(v) = e
            && let ast::Value::Placeholder(p) = &mut v.value
        {
            match position(p).and_then(|i| params.get(i - 1)) {
                Some(value) => {
                    bound.push(value.clone());
                    *p = engine.dialect.placeholder(bound.len());
                }
                None => missing = true,
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if missing {
        // The engine will say what is wrong with the statement's parameters when it runs.
        return Err("the statement's parameters do not match its placeholders".into());
    }
    Ok(Statement {
        sql: ast.to_string(),
        params: bound,
    })
}

/// The statement's text up to its last token: without a trailing `;` or comment, so that it
/// can be wrapped or extended.
fn statement_text(sql: &str, kind: BackendKind) -> &str {
    let end = Tokens::new(sql, script::dialect(kind))
        .filter(|t| !matches!(t.kind, TokenKind::Comment | TokenKind::Semicolon))
        .last()
        .map_or(0, |t| t.end);
    &sql[..end]
}

/// How rows of a table are found again after an UPDATE.
enum RowKey {
    /// By these primary key columns.
    Primary(Vec<String>),
    /// By SQLite's rowid.
    Rowid,
}

/// The key of `table` in the committed database, or `None` when it has none (or is not there).
async fn row_key(
    db: &dyn Database,
    engine: &Engine<'_>,
    table: &str,
    limits: &StatementLimits,
) -> Option<RowKey> {
    let schema = db.schema(Some(table), limits).await.ok()?;
    let t = schema.tables.into_iter().find(|t| t.name == table)?;
    if !t.primary_key.is_empty() {
        Some(RowKey::Primary(t.primary_key))
    } else if engine.kind == BackendKind::Sqlite {
        // Only rowid tables lack a primary key (WITHOUT ROWID tables must declare one).
        Some(RowKey::Rowid)
    } else {
        None
    }
}

/// Runs one statement of the preview with its samples.
async fn run_one(
    session: &mut dyn Session,
    engine: &Engine<'_>,
    p: Planned,
    key: Option<RowKey>,
    n: usize,
) -> StatementPreview {
    let Planned { stmt, kind, sample } = p;
    let mut out = StatementPreview::new(kind);
    if !session.in_transaction() {
        out.skipped = true;
        return out;
    }
    if let Sample::None(Some(why)) = &sample {
        out.note(why.clone());
    }
    if kind != PreviewKind::Other {
        // A statement the engine cannot plan fails below with the engine's own words.
        out.plan = session.explain(stmt.clone()).await.ok();
    }
    if !session.in_transaction() {
        out.skipped = true;
        return out;
    }
    let mut keyed: Vec<Vec<Value>> = Vec::new();
    if let Sample::Changed {
        before,
        update,
        assigned,
        ..
    } = &sample
    {
        let before = match (&key, *update) {
            (Some(RowKey::Rowid), true) => Statement {
                sql: before.sql.replacen("SELECT *", "SELECT rowid, *", 1),
                params: before.params.clone(),
            },
            _ => before.clone(),
        };
        match session.execute(before).await {
            Ok(r) => {
                out.columns = r.columns;
                out.before = r.rows;
                if let (true, Some(key)) = (*update, &key) {
                    keyed = key_values(key, &mut out, assigned);
                } else if *update {
                    out.note(
                        "the table has no primary key, so its rows cannot be found again after \
                         the UPDATE: no after sample",
                    );
                }
            }
            Err(e) => out.note(format!("the before sample failed: {e}")),
        }
    }
    let run = match &sample {
        Sample::Query(q) => q.clone(),
        Sample::Returning(r) => r.clone(),
        _ => stmt,
    };
    match session.execute(run).await {
        Ok(r) => {
            out.rows_affected = r.rows_affected;
            if matches!(sample, Sample::Returning(_)) {
                // RETURNING gives one row per row inserted, and MariaDB counts no rows
                // affected for a statement that returns rows.
                out.rows_affected = out.rows_affected.max(r.rows.len() as u64);
            }
            if matches!(sample, Sample::Query(_) | Sample::Returning(_)) {
                out.columns = r.columns;
                out.after = r.rows.into_iter().take(n).collect();
            }
        }
        Err(error) => {
            out.error = Some(PreviewError {
                error,
                transaction_active: session.in_transaction(),
            });
            return out;
        }
    }
    if let (Sample::Changed { table_sql, .. }, Some(key)) = (&sample, &key)
        && !keyed.is_empty()
    {
        match session
            .execute(after_select(engine, table_sql, key, &keyed))
            .await
        {
            Ok(r) => match_after(&mut out, key, &keyed, r.columns, r.rows),
            Err(e) => out.note(format!("the after sample failed: {e}")),
        }
    }
    out
}

/// The key of every sampled row, in sample order; SQLite's rowid column is taken off the rows.
/// Empty (with a note) when the UPDATE assigns a key column.
fn key_values(key: &RowKey, out: &mut StatementPreview, assigned: &[String]) -> Vec<Vec<Value>> {
    match key {
        RowKey::Rowid => {
            if !out.columns.is_empty() {
                out.columns.remove(0);
            }
            out.before
                .iter_mut()
                .map(|row| {
                    if row.is_empty() {
                        Vec::new()
                    } else {
                        vec![row.remove(0)]
                    }
                })
                .collect()
        }
        RowKey::Primary(cols) => {
            if cols
                .iter()
                .any(|c| assigned.iter().any(|a| a.eq_ignore_ascii_case(c)))
            {
                out.note(
                    "the UPDATE changes the primary key, so its rows are not matched after it",
                );
                return Vec::new();
            }
            let Some(at): Option<Vec<usize>> = cols
                .iter()
                .map(|c| out.columns.iter().position(|col| &col.name == c))
                .collect()
            else {
                out.note("the primary key is not among the selected columns: no after sample");
                return Vec::new();
            };
            out.before
                .iter()
                .map(|row| at.iter().map(|&i| row[i].clone()).collect())
                .collect()
        }
    }
}

/// The SELECT of the sampled rows by key, after the UPDATE.
fn after_select(
    engine: &Engine<'_>,
    table_sql: &str,
    key: &RowKey,
    keyed: &[Vec<Value>],
) -> Statement {
    let d = engine.dialect;
    let mut params = Vec::new();
    let (cols, select): (Vec<String>, &str) = match key {
        RowKey::Rowid => (vec!["rowid".into()], "SELECT rowid, *"),
        RowKey::Primary(cols) => (cols.iter().map(|c| d.quote_ident(c)).collect(), "SELECT *"),
    };
    let mut alternatives = Vec::with_capacity(keyed.len());
    for values in keyed {
        let terms: Vec<String> = cols
            .iter()
            .zip(values)
            .map(|(c, v)| {
                params.push(v.clone());
                format!("{c} = {}", d.placeholder(params.len()))
            })
            .collect();
        alternatives.push(format!("({})", terms.join(" AND ")));
    }
    Statement {
        sql: format!(
            "{select} FROM {table_sql} WHERE {}",
            alternatives.join(" OR ")
        ),
        params,
    }
}

/// Puts the rows read after the UPDATE in the order of the rows sampled before it.
fn match_after(
    out: &mut StatementPreview,
    key: &RowKey,
    keyed: &[Vec<Value>],
    columns: Vec<Column>,
    mut rows: Vec<Row>,
) {
    let at: Vec<usize> = match key {
        // The after SELECT put the rowid first.
        RowKey::Rowid => vec![0],
        RowKey::Primary(cols) => cols
            .iter()
            .filter_map(|c| columns.iter().position(|col| &col.name == c))
            .collect(),
    };
    let mut missing = false;
    for values in keyed {
        let found = rows
            .iter()
            .position(|row| at.iter().zip(values).all(|(&i, v)| row.get(i) == Some(v)));
        match found {
            Some(i) => {
                let mut row = rows.swap_remove(i);
                if matches!(key, RowKey::Rowid) && !row.is_empty() {
                    row.remove(0);
                }
                out.after.push(row);
            }
            None => missing = true,
        }
    }
    if missing {
        out.note("some sampled rows were not found after the UPDATE (a trigger or a cascade removed them)");
        out.after.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_commits_are_refused_by_first_word() {
        assert!(
            refuse_implicit_commit(BackendKind::Mysql, 0, "/* x */ update t set a = 1").is_ok()
        );
        assert!(
            refuse_implicit_commit(
                BackendKind::Mysql,
                0,
                "WITH x AS (SELECT 1) SELECT * FROM x"
            )
            .is_ok()
        );
        let err = refuse_implicit_commit(BackendKind::Mysql, 3, "CREATE TABLE t (a INT)")
            .expect_err("DDL is refused");
        assert!(
            matches!(&err, Error::FailedPrecondition(m) if m.contains("statement 3 (CREATE)")),
            "{err}"
        );
        assert!(refuse_implicit_commit(BackendKind::Mysql, 0, "-- nothing").is_err());
    }

    #[test]
    fn statement_text_drops_trailing_semicolons_and_comments() {
        assert_eq!(
            statement_text("SELECT 1; -- done\n", BackendKind::Sqlite),
            "SELECT 1"
        );
        assert_eq!(
            statement_text("SELECT ';' /* x */", BackendKind::Postgres),
            "SELECT ';'"
        );
    }
}
