//! Schema inspection, query plans and dumps of SQLite databases.
//!
//! Everything here runs on a pooled read-only connection, inside one read transaction, so a
//! schema or a dump is a consistent snapshot while writers carry on. The catalog is read with
//! `sqlite_schema` and the inspecting PRAGMAs (`table_list`, `table_xinfo`, `index_list`,
//! `index_info`, `foreign_key_list`), which the connection sandbox already allows to everyone:
//! they only describe the database a connection is confined to. The sandbox is therefore the
//! same for these reads as for any client statement; the only client text that reaches the
//! engine here is the statement given to [`SqliteDatabase::explain_plan`], prepared through the
//! strict, client path.

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use rusqlite::types::ValueRef;
use tokio::{runtime::Handle, sync::mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::{Conn, SqliteDatabase, SqliteDialect, kind_of};
use crate::{
    backend::{DumpStream, ImageSummary, StatementLimits, dump::DumpWriter},
    core::{
        error::{Error, Result},
        schema::{
            CheckSchema, ColumnSchema, ForeignKeySchema, IndexSchema, Plan, PlanNode, Schema,
            TableKind, TableSchema, UniqueSchema,
        },
        table::SqlDialect,
        value::{Statement, Value},
    },
};

/// The first line of every dump.
const DUMP_HEADER: &str = "-- DB-Forge dump of a sqlite database\n";
/// Rows per INSERT of a dump, at most: bounds the statements the importer replays.
const INSERT_ROWS: usize = 500;
/// Approximate bytes per INSERT of a dump, at most (one row larger than this gets its own).
const INSERT_BYTES: usize = 256 << 10;

impl SqliteDatabase {
    /// Describes every table and view, or only `table`; see [`Database::schema`].
    ///
    /// A table's `definition` is its stored CREATE TABLE statement; a view's is only its query
    /// (the text after `AS`), which is what [`Schema::render_text`] expects. Row counts are
    /// exact (`count(*)`), views have none. A rowid alias (a lone `INTEGER PRIMARY KEY`, with
    /// or without AUTOINCREMENT) is reported as `auto_increment`. Hidden columns of virtual
    /// tables are left out; generated columns are listed.
    ///
    /// [`Database::schema`]: crate::backend::Database::schema
    pub(super) async fn read_schema(
        &self,
        table: Option<&str>,
        limits: &StatementLimits,
    ) -> Result<Schema> {
        let timeout = limits.timeout;
        let table = table.map(str::to_owned);
        self.with_reader(move |conn| {
            conn.set_deadline(timeout);
            in_snapshot(conn, |conn| describe(conn, table.as_deref()))
        })
        .await?
    }

    /// `EXPLAIN QUERY PLAN` of `stmt`, raw and as a tree; see [`Database::explain`].
    ///
    /// [`Database::explain`]: crate::backend::Database::explain
    pub(super) async fn explain_plan(
        &self,
        stmt: Statement,
        analyze: bool,
        limits: &StatementLimits,
    ) -> Result<Plan> {
        if analyze {
            // SQLite cannot report actual rows per plan node; running the statement would only
            // pretend to.
            return Err(Error::Unsupported {
                operation: "Explain with analyze",
                backend: "sqlite",
            });
        }
        let timeout = limits.timeout;
        self.with_reader(move |conn| {
            conn.set_deadline(timeout);
            plan_on(conn, stmt)
        })
        .await?
    }

    /// Streams an SQL script that rebuilds this database; see [`Database::dump`] and
    /// [`write_dump`] for its shape.
    ///
    /// [`Database::dump`]: crate::backend::Database::dump
    pub(super) async fn dump_script(
        &self,
        schema_only: bool,
        limits: StatementLimits,
    ) -> Result<DumpStream> {
        let (tx, rx) = mpsc::channel(limits.stream_buffer.max(1));
        let db = SqliteDatabase {
            inner: Arc::clone(&self.inner),
        };
        let rt = Handle::current();
        let deadline = tokio::time::Instant::now() + limits.timeout;
        // As for queries: the producer runs on the blocking pool and the bounded channel paces
        // it at the client's speed; the receiver is returned at once.
        tokio::spawn(async move {
            let err_tx = tx.clone();
            let produced = db
                .with_reader(move |conn| {
                    conn.set_deadline(limits.timeout);
                    let mut out = DumpWriter::new(tx).with_deadline(deadline);
                    let result = in_snapshot(conn, |conn| {
                        match write_dump(conn, schema_only, &rt, &mut out)
                            .and_then(|()| out.flush_blocking(&rt))
                        {
                            // The client went away: there is nobody to tell.
                            Err(_) if out.gone() => Ok(()),
                            r => r,
                        }
                    });
                    tracing::debug!(schema_only, "sqlite dump ended");
                    result
                })
                .await;
            if let Err(e) = produced.and_then(|r| r) {
                let _ = err_tx.send(Err(e)).await;
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

impl SqliteDatabase {
    /// Writes a copy of the database to `dest` with SQLite's online backup API, all pages in
    /// one step on a reader: the step holds one read transaction, so the copy is the snapshot
    /// it began at while writers carry on in the WAL. Then counts the copy's rows per table.
    pub(super) async fn write_image(&self, dest: PathBuf) -> Result<ImageSummary> {
        self.with_reader(move |conn| {
            let mut out = rusqlite::Connection::open(&dest).map_err(|e| conn.classify(e))?;
            // A scratch copy, read once and removed: what must last is the stored backup, so
            // the copy skips the fsyncs of a commit (most of its time on a slow disk).
            out.pragma_update(None, "synchronous", "OFF")
                .map_err(|e| conn.classify(e))?;
            {
                let backup = rusqlite::backup::Backup::new(conn.raw(), &mut out)
                    .map_err(|e| conn.classify(e))?;
                // -1: every page in one step, so no writer can restart the copy midway.
                match backup.step(-1).map_err(|e| conn.classify(e))? {
                    rusqlite::backup::StepResult::Done => {}
                    other => {
                        return Err(Error::Unavailable(format!(
                            "the SQLite online backup did not finish in one step ({other:?}); \
                             retry"
                        )));
                    }
                }
            }
            image_summary(&out).map_err(|e| conn.classify(e))
        })
        .await?
    }
}

/// `EXPLAIN QUERY PLAN` of `stmt` on `conn`, raw and as a tree: what [`Database::explain`] and a
/// session's [`Session::explain`] both run.
///
/// [`Database::explain`]: crate::backend::Database::explain
/// [`Session::explain`]: crate::backend::Session::explain
pub(super) fn plan_on(conn: &Conn, stmt: Statement) -> Result<Plan> {
    let tables: Vec<String> = query_rows(
        conn,
        "SELECT name FROM sqlite_schema WHERE type = 'table'",
        |r| r.get(0),
    )?;
    // The client's statement goes through the client path (strict authorizer, parameter
    // checks), exactly as `execute` would prepare it.
    let stmt_sql = stmt.sql;
    let explain = Statement {
        sql: format!("EXPLAIN QUERY PLAN {stmt_sql}"),
        params: stmt.params,
    };
    let aliases = aliases(&stmt_sql, &tables);
    let mut prepared = conn.prepare(&explain)?;
    let mut rows = prepared.raw_query();
    let mut plan_rows = Vec::new();
    while let Some(row) = rows.next().map_err(|e| conn.classify(e))? {
        let id: i64 = row.get(0).map_err(|e| conn.classify(e))?;
        let parent: i64 = row.get(1).map_err(|e| conn.classify(e))?;
        let detail: String = row.get(3).map_err(|e| conn.classify(e))?;
        plan_rows.push((id, parent, detail));
    }
    Ok(build_plan(&plan_rows, &tables, &aliases))
}

/// Tables with their row counts, and the number of views, of a backup image.
fn image_summary(conn: &rusqlite::Connection) -> rusqlite::Result<ImageSummary> {
    let mut names = conn.prepare(
        "SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let objects: Vec<(String, String)> = names
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut summary = ImageSummary::default();
    for (name, kind) in objects {
        if kind == "view" {
            summary.views += 1;
            continue;
        }
        let rows: i64 =
            conn.query_row(&format!("SELECT count(*) FROM {}", quote(&name)), [], |r| {
                r.get(0)
            })?;
        summary.tables.push((name, rows.max(0) as u64));
    }
    Ok(summary)
}

/// Runs `f` inside a read transaction, so every read it makes sees one snapshot.
fn in_snapshot<T>(conn: &Conn, f: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
    conn.rollback_quietly();
    conn.control("BEGIN")?;
    let out = f(conn);
    conn.rollback_quietly();
    out
}

/// Runs one of the gateway's own catalog queries (fixed text, names bound or quoted).
fn query_rows<T>(
    conn: &Conn,
    sql: &str,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    query_rows_with(conn, sql, [], f)
}

/// [`query_rows`] with bound parameters.
fn query_rows_with<T>(
    conn: &Conn,
    sql: &str,
    params: impl rusqlite::Params,
    mut f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.raw().prepare(sql).map_err(|e| conn.classify(e))?;
    let rows = stmt
        .query_map(params, |r| f(r))
        .map_err(|e| conn.classify(e))?;
    rows.collect::<rusqlite::Result<Vec<T>>>()
        .map_err(|e| conn.classify(e))
}

fn quote(name: &str) -> String {
    SqliteDialect.quote_ident(name)
}

// ---------------------------------------------------------------------------------------------
// Schema

/// A table or view of `main` as `PRAGMA table_list` and `sqlite_schema` describe it.
#[derive(Debug, Clone)]
struct CatalogTable {
    name: String,
    /// "table", "view", "virtual" ("shadow" tables are left out).
    kind: String,
    without_rowid: bool,
    sql: String,
}

/// Tables and views of `main` that a user made, sorted by name. Internal `sqlite_%` tables and
/// the shadow tables of virtual tables are left out.
fn catalog_tables(conn: &Conn) -> Result<Vec<CatalogTable>> {
    let listed = query_rows(
        conn,
        "SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main'",
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)? != 0,
            ))
        },
    )?;
    let sql: HashMap<String, String> = query_rows(
        conn,
        "SELECT name, sql FROM sqlite_schema WHERE type IN ('table', 'view')",
        |r| {
            Ok((
                r.get(0)?,
                r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            ))
        },
    )?
    .into_iter()
    .collect();
    let mut tables: Vec<CatalogTable> = listed
        .into_iter()
        .filter(|(name, kind, _)| !is_internal(name) && kind != "shadow")
        .map(|(name, kind, without_rowid)| CatalogTable {
            sql: sql.get(&name).cloned().unwrap_or_default(),
            name,
            kind,
            without_rowid,
        })
        .collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tables)
}

/// SQLite reserves names starting with `sqlite_` (in any case) for itself.
fn is_internal(name: &str) -> bool {
    name.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("sqlite_"))
}

fn describe(conn: &Conn, table: Option<&str>) -> Result<Schema> {
    let mut tables = catalog_tables(conn)?;
    if let Some(wanted) = table {
        // SQLite resolves names case-insensitively (ASCII); an exact match wins.
        let found = tables.iter().position(|t| t.name == wanted).or_else(|| {
            tables
                .iter()
                .position(|t| t.name.eq_ignore_ascii_case(wanted))
        });
        let Some(i) = found else {
            return Err(Error::NotFound {
                what: "table",
                name: wanted.to_owned(),
            });
        };
        tables = vec![tables.swap_remove(i)];
    }
    let tables = tables
        .iter()
        .map(|t| describe_table(conn, t))
        .collect::<Result<Vec<_>>>()?;
    Ok(Schema {
        tables,
        key_space: None,
        graph: None,
    })
}

/// One row of `PRAGMA table_xinfo`.
#[derive(Debug, Clone)]
struct XColumn {
    name: String,
    declared_type: String,
    not_null: bool,
    default: Option<String>,
    /// 1-based position in the primary key, 0 when not part of it.
    pk: i64,
    /// 0 ordinary, 1 hidden (virtual tables), 2 and 3 generated (virtual, stored).
    hidden: i64,
}

fn table_xinfo(conn: &Conn, table: &str) -> Result<Vec<XColumn>> {
    query_rows(
        conn,
        &format!("PRAGMA table_xinfo({})", quote(table)),
        |r| {
            Ok(XColumn {
                name: r.get(1)?,
                declared_type: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                not_null: r.get::<_, i64>(3)? != 0,
                default: r.get(4)?,
                pk: r.get(5)?,
                hidden: r.get(6)?,
            })
        },
    )
}

/// One row of `PRAGMA index_list`.
#[derive(Debug, Clone)]
struct ListedIndex {
    name: String,
    unique: bool,
    /// "c" (CREATE INDEX), "u" (UNIQUE constraint), "pk" (PRIMARY KEY).
    origin: String,
}

fn index_list(conn: &Conn, table: &str) -> Result<Vec<ListedIndex>> {
    query_rows(conn, &format!("PRAGMA index_list({})", quote(table)), |r| {
        Ok(ListedIndex {
            name: r.get(1)?,
            unique: r.get::<_, i64>(2)? != 0,
            origin: r.get(3)?,
        })
    })
}

/// Primary-key columns in key order.
fn primary_key(columns: &[XColumn]) -> Vec<String> {
    let mut pk: Vec<&XColumn> = columns.iter().filter(|c| c.pk > 0).collect();
    pk.sort_by_key(|c| c.pk);
    pk.into_iter().map(|c| c.name.clone()).collect()
}

/// The column that aliases the rowid, if any: a lone `INTEGER PRIMARY KEY` of a rowid table.
/// Such a key has no index of its own, which also rules out the `INTEGER PRIMARY KEY DESC`
/// quirk (a real key with an index, not an alias).
fn rowid_alias<'a>(
    t: &CatalogTable,
    columns: &'a [XColumn],
    indexes: &[ListedIndex],
) -> Option<&'a XColumn> {
    if t.kind != "table" || t.without_rowid || indexes.iter().any(|i| i.origin == "pk") {
        return None;
    }
    let mut pk = columns.iter().filter(|c| c.pk > 0);
    match (pk.next(), pk.next()) {
        (Some(c), None) if c.declared_type.eq_ignore_ascii_case("INTEGER") => Some(c),
        _ => None,
    }
}

fn describe_table(conn: &Conn, t: &CatalogTable) -> Result<TableSchema> {
    let xcolumns = table_xinfo(conn, &t.name)?;
    let listed = if t.kind == "view" {
        Vec::new()
    } else {
        index_list(conn, &t.name)?
    };
    let alias = rowid_alias(t, &xcolumns, &listed).map(|c| c.name.clone());
    let columns = xcolumns
        .iter()
        .filter(|c| c.hidden != 1)
        .map(|c| {
            let is_alias = alias.as_deref() == Some(c.name.as_str());
            ColumnSchema {
                name: c.name.clone(),
                kind: kind_of(&c.declared_type),
                declared_type: c.declared_type.clone(),
                // A rowid alias is never NULL, nor is a WITHOUT ROWID key column; other
                // PRIMARY KEY columns of rowid tables accept NULL unless declared NOT NULL.
                nullable: !(c.not_null || is_alias || (t.without_rowid && c.pk > 0)),
                default: c.default.clone(),
                primary_key: c.pk > 0,
                auto_increment: is_alias,
                // SQLite keeps no comments apart from the CREATE statement's text.
                comment: None,
            }
        })
        .collect();
    let mut indexes = Vec::new();
    let mut uniques = Vec::new();
    let index_sql: HashMap<String, String> = query_rows_with(
        conn,
        "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL \
         AND tbl_name = ?1",
        [&t.name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?
    .into_iter()
    .collect();
    for ix in &listed {
        let items = index_sql
            .get(&ix.name)
            .map(|sql| index_items(sql))
            .unwrap_or_default();
        let info = query_rows(
            conn,
            &format!("PRAGMA index_info({})", quote(&ix.name)),
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(2)?)),
        )?;
        let cols: Vec<String> = info
            .into_iter()
            .map(|(seq, name)| {
                name.unwrap_or_else(|| {
                    usize::try_from(seq)
                        .ok()
                        .and_then(|s| items.get(s).cloned())
                        .unwrap_or_else(|| "<expression>".into())
                })
            })
            .collect();
        if ix.origin == "u" {
            // SQLite keeps no name for a UNIQUE constraint, only its automatic index.
            uniques.push(UniqueSchema {
                name: String::new(),
                columns: cols.clone(),
            });
        }
        indexes.push(IndexSchema {
            name: ix.name.clone(),
            columns: cols,
            unique: ix.unique,
            primary: ix.origin == "pk",
        });
    }
    indexes.sort_by(|a, b| a.name.cmp(&b.name));
    let foreign_keys = if t.kind == "view" {
        Vec::new()
    } else {
        foreign_keys(conn, &t.name)?
    };
    let (kind, definition, row_estimate) = if t.kind == "view" {
        (TableKind::View, view_body(&t.sql).to_owned(), None)
    } else {
        let count: i64 = conn
            .raw()
            .query_row(
                &format!("SELECT count(*) FROM {}", quote(&t.name)),
                [],
                |r| r.get(0),
            )
            .map_err(|e| conn.classify(e))?;
        (TableKind::Table, t.sql.clone(), Some(count))
    };
    Ok(TableSchema {
        name: t.name.clone(),
        kind,
        primary_key: primary_key(&xcolumns),
        columns,
        indexes,
        foreign_keys,
        uniques,
        checks: checks(&t.sql),
        row_estimate,
        definition,
    })
}

/// Foreign keys in declaration order. A reference without columns names the parent's primary
/// key, which is looked up so that `referenced_columns` is always filled.
fn foreign_keys(conn: &Conn, table: &str) -> Result<Vec<ForeignKeySchema>> {
    let rows = query_rows(
        conn,
        &format!("PRAGMA foreign_key_list({})", quote(table)),
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        },
    )?;
    let mut fks: Vec<(i64, ForeignKeySchema)> = Vec::new();
    let mut implicit = Vec::new();
    for (id, parent, from, to, on_update, on_delete) in rows {
        let i = match fks.iter().position(|(fid, _)| *fid == id) {
            Some(i) => i,
            None => {
                fks.push((
                    id,
                    ForeignKeySchema {
                        name: String::new(),
                        columns: Vec::new(),
                        referenced_table: parent,
                        referenced_columns: Vec::new(),
                        on_update: on_update.to_ascii_uppercase(),
                        on_delete: on_delete.to_ascii_uppercase(),
                    },
                ));
                fks.len() - 1
            }
        };
        fks[i].1.columns.push(from);
        match to {
            Some(to) => fks[i].1.referenced_columns.push(to),
            None => implicit.push(i),
        }
    }
    for i in implicit {
        if fks[i].1.referenced_columns.is_empty() {
            let parent = table_xinfo(conn, &fks[i].1.referenced_table)?;
            fks[i].1.referenced_columns = primary_key(&parent);
        }
    }
    // SQLite numbers foreign keys from the last declared one.
    fks.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    Ok(fks.into_iter().map(|(_, fk)| fk).collect())
}

// ---------------------------------------------------------------------------------------------
// Just enough reading of the CREATE statements SQLite stores to find CHECK constraints, a view's
// query and an index's expressions, on the shared scanner's tokens (quotes and comments honoured).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// A bare word: keyword, identifier or number.
    Word,
    /// A quoted identifier ("…", `…`, […]) or a string literal ('…').
    Quoted,
    Open,
    Close,
    Comma,
    /// Any other punctuation.
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Tok,
    start: usize,
    end: usize,
}

/// Splits `sql` into tokens, skipping blanks and comments, with the shared scanner's SQLite
/// rules. An unterminated quote or comment runs to the end of the text.
fn tokenize(sql: &str) -> Vec<Token> {
    use dbforge_sqlscan::{Dialect, TokenKind, Tokens};
    Tokens::new(sql, Dialect::Sqlite)
        .filter_map(|t| {
            let kind = match t.kind {
                TokenKind::Comment | TokenKind::ExecutableComment | TokenKind::Space => {
                    return None;
                }
                TokenKind::Word => Tok::Word,
                TokenKind::QuotedIdentifier | TokenKind::String => Tok::Quoted,
                TokenKind::Open => Tok::Open,
                TokenKind::Close => Tok::Close,
                TokenKind::Comma => Tok::Comma,
                TokenKind::Placeholder | TokenKind::Semicolon | TokenKind::Other => Tok::Other,
            };
            Some(Token {
                kind,
                start: t.start,
                end: t.end,
            })
        })
        .collect()
}

fn is_word(sql: &str, t: &Token, word: &str) -> bool {
    t.kind == Tok::Word && sql[t.start..t.end].eq_ignore_ascii_case(word)
}

/// The index of the `)` closing the `(` at `open`, or the last token when unbalanced.
fn closing(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.kind {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    tokens.len().saturating_sub(1)
}

/// An identifier as written, without its quotes.
fn unquote(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), text.chars().last()) {
        (Some(q @ ('"' | '`' | '\'')), Some(e)) if e == q && text.len() >= 2 => {
            text[1..text.len() - 1].replace(&format!("{q}{q}"), &q.to_string())
        }
        (Some('['), Some(']')) => text[1..text.len() - 1].to_owned(),
        _ => text.to_owned(),
    }
}

/// The CHECK constraints of a CREATE TABLE statement, column and table constraints alike, with
/// their CONSTRAINT names where given. SQLite keeps no other record of them.
fn checks(sql: &str) -> Vec<CheckSchema> {
    let tokens = tokenize(sql);
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        match t.kind {
            Tok::Open => depth += 1,
            Tok::Close => depth = depth.saturating_sub(1),
            _ if depth >= 1
                && is_word(sql, &t, "CHECK")
                && tokens.get(i + 1).is_some_and(|n| n.kind == Tok::Open) =>
            {
                let close = closing(&tokens, i + 1);
                let body_end = if tokens[close].kind == Tok::Close {
                    tokens[close].start
                } else {
                    sql.len()
                };
                let name = match (
                    i.checked_sub(2).map(|j| tokens[j]),
                    i.checked_sub(1).map(|j| tokens[j]),
                ) {
                    (Some(kw), Some(n)) if is_word(sql, &kw, "CONSTRAINT") => {
                        unquote(&sql[n.start..n.end])
                    }
                    _ => String::new(),
                };
                out.push(CheckSchema {
                    name,
                    expression: sql[tokens[i + 1].end..body_end].trim().to_owned(),
                });
                i = close + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// A view's query: what follows the first AS outside parentheses of its CREATE VIEW (the
/// whole text when there is none).
fn view_body(sql: &str) -> &str {
    let tokens = tokenize(sql);
    let mut depth = 0usize;
    for t in &tokens {
        match t.kind {
            Tok::Open => depth += 1,
            Tok::Close => depth = depth.saturating_sub(1),
            _ if depth == 0 && is_word(sql, t, "AS") => return sql[t.end..].trim(),
            _ => {}
        }
    }
    sql
}

/// The indexed items of a CREATE INDEX, as written (without ASC/DESC), so that expression
/// columns, which the PRAGMAs report without a name, can be shown.
fn index_items(sql: &str) -> Vec<String> {
    let tokens = tokenize(sql);
    let Some(on) = tokens.iter().position(|t| is_word(sql, t, "ON")) else {
        return Vec::new();
    };
    let Some(open) = tokens
        .iter()
        .skip(on)
        .position(|t| t.kind == Tok::Open)
        .map(|p| p + on)
    else {
        return Vec::new();
    };
    let close = closing(&tokens, open);
    if close <= open {
        return Vec::new();
    }
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = tokens[open].end;
    let push = |from: usize, to: usize, items: &mut Vec<String>| {
        let text = sql[from..to].trim();
        let bare = ["ASC", "DESC"].iter().find_map(|s| {
            let cut = text.len().checked_sub(s.len() + 1)?;
            let (head, tail) = text.split_at(cut);
            (tail[1..].eq_ignore_ascii_case(s) && tail.starts_with(char::is_whitespace))
                .then(|| head.trim_end())
        });
        items.push(bare.unwrap_or(text).to_owned());
    };
    for t in &tokens[open + 1..close] {
        match t.kind {
            Tok::Open => depth += 1,
            Tok::Close => depth = depth.saturating_sub(1),
            Tok::Comma if depth == 0 => {
                push(start, t.start, &mut items);
                start = t.end;
            }
            _ => {}
        }
    }
    if tokens[close].kind == Tok::Close {
        push(start, tokens[close].start, &mut items);
    }
    items
}

// ---------------------------------------------------------------------------------------------
// Query plans

/// A plan row with its children, before normalization.
struct RawNode<'a> {
    detail: &'a str,
    children: Vec<RawNode<'a>>,
}

/// Builds the plan from `EXPLAIN QUERY PLAN` rows (id, parent, detail). `tables` are the
/// database's tables: a SCAN counts as a full scan only when it reads one of them (not a
/// subquery or a CTE).
fn build_plan(
    rows: &[(i64, i64, String)],
    tables: &[String],
    aliases: &[(String, String)],
) -> Plan {
    fn children<'a>(rows: &'a [(i64, i64, String)], parent: i64, depth: usize) -> Vec<RawNode<'a>> {
        // Parents precede their children, so the depth never exceeds the row count.
        if depth > rows.len() {
            return Vec::new();
        }
        rows.iter()
            .filter(|(id, p, _)| *p == parent && *id != parent)
            .map(|(id, _, detail)| RawNode {
                detail,
                children: children(rows, *id, depth + 1),
            })
            .collect()
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let mut roots = Vec::new();
    for (id, parent, detail) in rows {
        // Roots hang off 0; a row whose parent is missing is shown as a root too.
        if *parent == 0 || !ids.contains(parent) {
            roots.push(RawNode {
                detail,
                children: children(rows, *id, 0),
            });
        }
    }
    let mut raw = String::from("QUERY PLAN\n");
    render_raw(&roots, "", &mut raw);
    Plan {
        raw,
        nodes: roots
            .iter()
            .map(|n| normalize(n, tables, aliases))
            .collect(),
    }
}

/// The sqlite3 shell's `.eqp` drawing.
fn render_raw(nodes: &[RawNode<'_>], prefix: &str, out: &mut String) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        out.push_str(prefix);
        out.push_str(if last { "`--" } else { "|--" });
        out.push_str(n.detail);
        out.push('\n');
        let deeper = format!("{prefix}{}", if last { "   " } else { "|  " });
        render_raw(&n.children, &deeper, out);
    }
}

/// Leading phrases of plan details, longest first so that the most specific wins.
const OPERATIONS: &[&str] = &[
    "CORRELATED SCALAR SUBQUERY",
    "CORRELATED LIST SUBQUERY",
    "UNION USING TEMP B-TREE",
    "USING ROWID SEARCH ON TABLE",
    "LEFT-MOST SUBQUERY",
    "SCALAR SUBQUERY",
    "USE TEMP B-TREE",
    "COMPOUND QUERY",
    "MULTI-INDEX OR",
    "RECURSIVE STEP",
    "LIST SUBQUERY",
    "BLOOM FILTER ON",
    "MATERIALIZE",
    "CO-ROUTINE",
    "RIGHT-JOIN",
    "INTERSECT",
    "UNION ALL",
    "EXCEPT",
    "SEARCH",
    "SCAN",
    "SETUP",
    "UNION",
    "MERGE",
    "INDEX",
    "USING",
    "LEFT",
    "RIGHT",
];

fn normalize(n: &RawNode<'_>, tables: &[String], aliases: &[(String, String)]) -> PlanNode {
    let detail = n.detail.trim();
    let operation = OPERATIONS
        .iter()
        .find(|op| {
            detail.get(..op.len()).is_some_and(|head| head == **op)
                && detail[op.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| c == ' ' || c == '(')
        })
        .map(|op| (*op).to_owned())
        .unwrap_or_else(|| leading_upper_words(detail));
    let rest = detail[operation.len().min(detail.len())..].trim_start();
    let (mut relation, rest) = if operation == "SCAN" || operation == "SEARCH" {
        split_relation(rest, tables)
    } else {
        (String::new(), rest)
    };
    // SQLite names an aliased table by its alias alone.
    if !tables.iter().any(|t| t.eq_ignore_ascii_case(&relation))
        && let Some((_, table)) = aliases.iter().find(|(a, _)| *a == relation)
    {
        relation.clone_from(table);
    }
    // A SCAN through an index (for ORDER BY, or of a covering index) still reads every row,
    // but it is how an index is meant to be used, so only bare table scans are flagged.
    let indexed = rest.contains("USING INDEX") || rest.contains("USING COVERING INDEX");
    let is_table = tables.iter().any(|t| t.eq_ignore_ascii_case(&relation));
    PlanNode {
        full_scan: operation == "SCAN" && is_table && !indexed,
        operation,
        relation,
        detail: rest.to_owned(),
        estimated_rows: None,
        estimated_cost: None,
        actual_rows: None,
        children: n
            .children
            .iter()
            .map(|c| normalize(c, tables, aliases))
            .collect(),
    }
}

/// `table [AS] alias` pairs of a statement, for the tables of the database: EXPLAIN QUERY PLAN
/// reports an aliased table by its alias only.
fn aliases(sql: &str, tables: &[String]) -> Vec<(String, String)> {
    let tokens = tokenize(sql);
    let text = |t: &Token| unquote(&sql[t.start..t.end]);
    let named = |t: &Token| matches!(t.kind, Tok::Word | Tok::Quoted);
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !named(t) {
            continue;
        }
        let name = text(t);
        let Some(table) = tables.iter().find(|x| x.eq_ignore_ascii_case(&name)) else {
            continue;
        };
        let mut j = i + 1;
        if tokens.get(j).is_some_and(|a| is_word(sql, a, "AS")) {
            j += 1;
        }
        if let Some(a) = tokens.get(j).filter(|a| named(a)) {
            out.push((text(a), table.clone()));
        }
    }
    out
}

/// The leading run of upper-case words of a detail this module does not know.
fn leading_upper_words(detail: &str) -> String {
    let words: Vec<&str> = detail
        .split(' ')
        .take_while(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c == '-' || c == '_')
        })
        .collect();
    words.join(" ")
}

/// Splits what follows SCAN/SEARCH into the table name and the rest. The name is matched
/// against the database's tables first (names may hold spaces), then cut at " AS ", " USING "
/// or " VIRTUAL TABLE ".
fn split_relation<'a>(rest: &'a str, tables: &[String]) -> (String, &'a str) {
    let known = tables
        .iter()
        .filter(|t| {
            rest.get(..t.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(t))
                && rest[t.len()..].chars().next().is_none_or(|c| c == ' ')
        })
        .max_by_key(|t| t.len());
    let end = match known {
        Some(t) => t.len(),
        None => [" AS ", " USING ", " VIRTUAL TABLE "]
            .iter()
            .filter_map(|m| rest.find(m))
            .min()
            .unwrap_or(rest.len()),
    };
    let relation = rest[..end].to_owned();
    let mut tail = rest[end..].trim_start();
    if let Some(after_as) = tail.strip_prefix("AS ") {
        // Drop the alias, keep what follows it.
        tail = after_as
            .split_once(' ')
            .map_or("", |(_, more)| more)
            .trim_start();
    }
    if relation == "CONSTANT ROW" {
        return (String::new(), rest);
    }
    (relation, tail)
}

// ---------------------------------------------------------------------------------------------
// Dumps

/// A schema object of `sqlite_schema`, in creation (rowid) order.
struct Object {
    kind: String,
    name: String,
    sql: Option<String>,
}

/// Writes the dump script. Its shape, each statement ending with `;` and a newline:
///
/// 1. the header comment, then `PRAGMA user_version`/`application_id` when set;
/// 2. `PRAGMA defer_foreign_keys = ON` when foreign keys form a cycle (a table referring to
///    itself included) and there is data: no insertion order satisfies those row by row;
/// 3. every table's stored CREATE statement, parents before children;
/// 4. the rows, as multi-row INSERTs (at most [`INSERT_ROWS`] rows or about [`INSERT_BYTES`]),
///    parents before children, so that they replay with `foreign_keys = ON`; rowid tables
///    without an INTEGER PRIMARY KEY keep their rowids;
/// 5. `sqlite_sequence` as it is, so AUTOINCREMENT tables continue where they were;
/// 6. indexes, views and triggers, in creation order (triggers last, so none fires while the
///    rows are replayed).
///
/// No statement needs more than the database's own sandboxed user may do, and there is no
/// BEGIN/COMMIT: the importer wraps the whole script in one transaction.
fn write_dump(conn: &Conn, schema_only: bool, rt: &Handle, out: &mut DumpWriter) -> Result<()> {
    out.write_blocking(rt, DUMP_HEADER)?;
    for pragma in ["user_version", "application_id"] {
        let v: i64 = conn
            .raw()
            .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
            .map_err(|e| conn.classify(e))?;
        if v != 0 {
            out.write_blocking(rt, &format!("PRAGMA {pragma} = {v};\n"))?;
        }
    }
    let objects = query_rows(
        conn,
        "SELECT type, name, sql FROM sqlite_schema ORDER BY rowid",
        |r| {
            Ok(Object {
                kind: r.get(0)?,
                name: r.get(1)?,
                sql: r.get(2)?,
            })
        },
    )?;
    let catalog = catalog_tables(conn)?;
    let by_name: HashMap<&str, &CatalogTable> = catalog
        .iter()
        .filter(|t| t.kind != "view")
        .map(|t| (t.name.as_str(), t))
        .collect();
    // Tables in creation order, then sorted so that referenced tables come first.
    let created: Vec<&CatalogTable> = objects
        .iter()
        .filter(|o| o.kind == "table")
        .filter_map(|o| by_name.get(o.name.as_str()).copied())
        .collect();
    let mut parents = Vec::with_capacity(created.len());
    for t in &created {
        let fks = foreign_keys(conn, &t.name)?;
        parents.push(
            fks.into_iter()
                .map(|fk| fk.referenced_table)
                .collect::<Vec<_>>(),
        );
    }
    let (order, cyclic) = parents_first(&created, &parents);
    if cyclic && !schema_only {
        out.write_blocking(rt, "PRAGMA defer_foreign_keys = ON;\n")?;
    }
    for &i in &order {
        out.write_blocking(rt, &format!("{};\n", created[i].sql))?;
    }
    if !schema_only {
        for &i in &order {
            dump_rows(conn, created[i], rt, out)?;
        }
        if objects.iter().any(|o| o.name == "sqlite_sequence") {
            dump_sequences(conn, rt, out)?;
        }
    }
    for kind in ["index", "view", "trigger"] {
        for o in objects.iter().filter(|o| o.kind == kind) {
            // Automatic indexes (UNIQUE, PRIMARY KEY) have no SQL: their table recreates them.
            if let Some(sql) = &o.sql {
                out.write_blocking(rt, &format!("{sql};\n"))?;
            }
        }
    }
    Ok(())
}

/// Orders tables so that each comes after the tables it references (stable: creation order
/// otherwise). Tables in a cycle keep their creation order at the end; the flag says whether
/// there was a cycle or a self-reference.
fn parents_first(tables: &[&CatalogTable], parents: &[Vec<String>]) -> (Vec<usize>, bool) {
    let index_of = |name: &str| {
        tables
            .iter()
            .position(|t| t.name.eq_ignore_ascii_case(name))
    };
    let deps: Vec<Vec<usize>> = parents
        .iter()
        .map(|ps| ps.iter().filter_map(|p| index_of(p)).collect())
        .collect();
    let self_ref = deps.iter().enumerate().any(|(i, d)| d.contains(&i));
    let mut placed = vec![false; tables.len()];
    let mut order = Vec::with_capacity(tables.len());
    loop {
        let next =
            (0..tables.len()).find(|&i| !placed[i] && deps[i].iter().all(|&d| d == i || placed[d]));
        match next {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => break,
        }
    }
    let cyclic = order.len() < tables.len();
    order.extend((0..tables.len()).filter(|&i| !placed[i]));
    (order, cyclic || self_ref)
}

/// The name to select a rowid table's rowid by, unless a column already aliases it (then the
/// column carries it) or every spelling is taken by a real column.
fn rowid_column(t: &CatalogTable, columns: &[XColumn], indexes: &[ListedIndex]) -> Option<String> {
    if t.kind != "table" || t.without_rowid || rowid_alias(t, columns, indexes).is_some() {
        return None;
    }
    ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|n| !columns.iter().any(|c| c.name.eq_ignore_ascii_case(n)))
        .map(str::to_owned)
}

fn dump_rows(conn: &Conn, t: &CatalogTable, rt: &Handle, out: &mut DumpWriter) -> Result<()> {
    let xcolumns = table_xinfo(conn, &t.name)?;
    let indexes = index_list(conn, &t.name)?;
    let rowid = rowid_column(t, &xcolumns, &indexes);
    // Generated and hidden columns cannot be inserted; the engine recomputes the former.
    let mut names: Vec<String> = rowid.into_iter().collect();
    names.extend(
        xcolumns
            .iter()
            .filter(|c| c.hidden == 0)
            .map(|c| c.name.clone()),
    );
    if names.is_empty() {
        return Ok(());
    }
    let list = names
        .iter()
        .map(|n| quote(n))
        .collect::<Vec<_>>()
        .join(", ");
    let head = format!("INSERT INTO {} ({list}) VALUES\n", quote(&t.name));
    let select = format!("SELECT {list} FROM {}", quote(&t.name));
    let mut stmt = conn.raw().prepare(&select).map_err(|e| conn.classify(e))?;
    let mut rows = stmt.raw_query();
    let mut in_statement = 0usize;
    let mut statement_bytes = 0usize;
    let mut line = String::new();
    while let Some(row) = rows.next().map_err(|e| conn.classify(e))? {
        line.clear();
        line.push_str(if in_statement == 0 { &head } else { ",\n" });
        line.push('(');
        for i in 0..names.len() {
            if i > 0 {
                line.push_str(", ");
            }
            let cell = row.get_ref(i).map_err(|e| conn.classify(e))?;
            line.push_str(&render(cell)?);
        }
        line.push(')');
        in_statement += 1;
        statement_bytes += line.len();
        // The row counts in the chunk holding its last byte.
        out.write_rows_blocking(rt, &line, 1)?;
        if in_statement >= INSERT_ROWS || statement_bytes >= INSERT_BYTES {
            out.write_blocking(rt, ";\n")?;
            in_statement = 0;
            statement_bytes = 0;
        }
    }
    if in_statement > 0 {
        out.write_blocking(rt, ";\n")?;
    }
    Ok(())
}

/// Restores `sqlite_sequence` exactly: replaying the rows sets it to the largest id, but the
/// counter may be past it (deleted rows), and the next id must continue from there.
fn dump_sequences(conn: &Conn, rt: &Handle, out: &mut DumpWriter) -> Result<()> {
    let seqs = query_rows(conn, "SELECT name, seq FROM sqlite_sequence", |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, rusqlite::types::Value>(1)?,
        ))
    })?;
    out.write_blocking(rt, "DELETE FROM sqlite_sequence;\n")?;
    for (name, seq) in seqs {
        let seq = render(ValueRef::from(&seq))?;
        out.write_blocking(
            rt,
            &format!(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ({}, {seq});\n",
                SqliteDialect.literal(&Value::Text(name))?
            ),
        )?;
    }
    Ok(())
}

/// One stored value as a literal that reads back as the same value of the same storage class.
/// Text that is not valid UTF-8 or holds NUL (possible through casts) goes as a blob cast to
/// text, which keeps its bytes.
fn render(cell: ValueRef<'_>) -> Result<String> {
    let d = &SqliteDialect;
    match cell {
        ValueRef::Null => Ok("NULL".into()),
        ValueRef::Integer(i) => d.literal(&Value::Int(i)),
        // Rust prints the shortest digits that read back as the same double.
        ValueRef::Real(f) if f.is_finite() => d.literal(&Value::Float(f)),
        // SQLite reads an overflowing literal as an infinity; it never stores NaN.
        ValueRef::Real(f) if f > 0.0 => Ok("9e999".into()),
        ValueRef::Real(_) => Ok("-9e999".into()),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) if !s.contains('\0') => d.literal(&Value::Text(s.to_owned())),
            _ => Ok(format!(
                "CAST({} AS TEXT)",
                d.literal(&Value::Bytes(t.to_vec()))?
            )),
        },
        ValueRef::Blob(b) => d.literal(&Value::Bytes(b.to_vec())),
    }
}

#[cfg(test)]
mod scanner_tests {
    use super::*;

    #[test]
    fn checks_ignore_quotes_comments_and_nested_parens() {
        let sql = r#"CREATE TABLE "we(ird" (
            a INTEGER CHECK (a > 0 AND a < (10 * 2)),
            b TEXT DEFAULT 'CHECK (x)' CONSTRAINT "b ""ok""" CHECK (b <> ')' AND b <> 'it''s ('),
            -- CHECK (commented out)
            /* CHECK (also out) */ c TEXT,
            CONSTRAINT [c_len] CHECK (length(c) <= 5),
            CHECK(c != "CHECK(")
        )"#;
        let got = checks(sql);
        assert_eq!(
            got,
            vec![
                CheckSchema {
                    name: String::new(),
                    expression: "a > 0 AND a < (10 * 2)".into()
                },
                CheckSchema {
                    name: "b \"ok\"".into(),
                    expression: "b <> ')' AND b <> 'it''s ('".into()
                },
                CheckSchema {
                    name: "c_len".into(),
                    expression: "length(c) <= 5".into()
                },
                CheckSchema {
                    name: String::new(),
                    expression: "c != \"CHECK(\"".into()
                },
            ]
        );
    }

    #[test]
    fn unterminated_text_does_not_panic() {
        assert!(checks("CREATE TABLE t (a CHECK ('unterminated").len() == 1);
        assert!(checks("CREATE TABLE t (a CHECK (").len() == 1);
        assert!(checks("CREATE TABLE t (a CHECK").is_empty());
        assert_eq!(view_body("CREATE VIEW v"), "CREATE VIEW v");
        assert!(index_items("CREATE INDEX i ON t (").is_empty());
    }

    #[test]
    fn view_body_skips_column_list_and_quoted_as() {
        assert_eq!(
            view_body(r#"CREATE VIEW "x AS y" (a, b) AS SELECT 1 AS a, 2 AS b"#),
            "SELECT 1 AS a, 2 AS b"
        );
    }

    #[test]
    fn index_items_keep_expressions() {
        assert_eq!(
            index_items(
                "CREATE INDEX i ON t (lower(name) DESC, a, substr(b, 1, 2) COLLATE nocase)"
            ),
            vec!["lower(name)", "a", "substr(b, 1, 2) COLLATE nocase"]
        );
    }

    #[test]
    fn plan_tree_and_operations() {
        let rows = vec![
            (2, 0, "SCAN big AS b".to_owned()),
            (5, 0, "SEARCH small USING INDEX small_k (k=?)".to_owned()),
            (9, 0, "SCALAR SUBQUERY 1".to_owned()),
            (12, 9, "SCAN sub".to_owned()),
            (20, 0, "USE TEMP B-TREE FOR ORDER BY".to_owned()),
            (22, 0, "SCAN my table USING COVERING INDEX ix".to_owned()),
        ];
        let tables = vec!["big".into(), "small".into(), "my table".into()];
        let plan = build_plan(&rows, &tables, &[]);
        assert_eq!(
            plan.raw,
            "QUERY PLAN\n|--SCAN big AS b\n|--SEARCH small USING INDEX small_k (k=?)\n\
             |--SCALAR SUBQUERY 1\n|  `--SCAN sub\n|--USE TEMP B-TREE FOR ORDER BY\n\
             `--SCAN my table USING COVERING INDEX ix\n"
        );
        let ops: Vec<(&str, &str, bool)> = plan
            .nodes
            .iter()
            .map(|n| (n.operation.as_str(), n.relation.as_str(), n.full_scan))
            .collect();
        assert_eq!(
            ops,
            vec![
                ("SCAN", "big", true),
                ("SEARCH", "small", false),
                ("SCALAR SUBQUERY", "", false),
                ("USE TEMP B-TREE", "", false),
                ("SCAN", "my table", false),
            ]
        );
        assert_eq!(plan.nodes[1].detail, "USING INDEX small_k (k=?)");
        assert_eq!(plan.nodes[2].children[0].relation, "sub");
        assert!(
            !plan.nodes[2].children[0].full_scan,
            "a subquery is no table"
        );
        assert_eq!(plan.full_scans(), vec!["big".to_owned()]);
    }
}
