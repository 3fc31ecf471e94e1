//! `dbforge sql DB [SQL]`: run statements and stream their results.

use std::{io::Write, time::Instant};

use dbforge::{Client, Statement, StatementPreview, Value};
use serde_json::{Value as Json, json};

use super::{App, schema, stdout, stream, warn_truncated, write_exec};
use crate::{
    cli::SqlArgs,
    error::{CliError, Result},
    output::{self, render},
    progress::Progress,
    statements,
};

/// Runs `dbforge sql`.
pub fn run(app: &App, args: SqlArgs) -> Result<()> {
    let sql = match (&args.sql, &args.file) {
        (Some(s), _) if s != "-" => s.clone(),
        (_, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?,
        _ => super::read_stdin(app, "SQL", "pass it as an argument or with --file")?,
    };
    app.block_on(async {
        let client = app.connect().await?;
        // The database's engine decides how its SQL splits (MySQL's `#` comments and
        // backslash escapes, PostgreSQL's dollar quotes) and whether a batch can be atomic.
        let db = client.get_database(&args.database).await?;
        let stmts = split(statements::dialect(db.backend), &sql);
        if stmts.is_empty() {
            return Err(CliError::Usage("no SQL statement given".into()));
        }
        if !args.params.is_empty() && stmts.len() > 1 {
            return Err(CliError::Usage(format!(
                "--param binds to a single statement, but the SQL has {} statements",
                stmts.len()
            )));
        }
        if args.preview {
            return preview(app, &client, &args.database, &stmts, &args.params).await;
        }
        let mut out = stdout();
        let mut results = output::Results::new(&app.settings, &mut out, stmts.len() > 1);
        if args.transaction {
            // Engines without interactive sessions (Redis) make a batch atomic instead
            // (MULTI/EXEC).
            let capabilities = db.capabilities;
            if !capabilities.sessions && capabilities.transactions {
                atomic_batch(&client, &args.database, &stmts, &args.params, &mut results).await?;
            } else {
                let db = &args.database;
                transaction(app, &client, db, &stmts, &args.params, &mut results).await?;
            }
        } else {
            for stmt in &stmts {
                let mut sink = results.next()?;
                query(
                    app,
                    &client,
                    &args.database,
                    stmt,
                    &args.params,
                    args.max_rows,
                    sink.as_mut(),
                )
                .await?;
            }
        }
        results.finish()?;
        Ok(())
    })
}

/// The statements of `sql` under `dialect`'s rules; the last may lack its `;`.
pub fn split(dialect: statements::Dialect, sql: &str) -> Vec<String> {
    let split = statements::split(dialect, sql);
    let complete = split.rest_is_empty();
    let mut stmts = split.statements;
    if !complete {
        stmts.push(split.rest.trim().to_owned());
    }
    stmts
}

/// Runs one statement as a streamed query, writing the result into `sink` as it arrives.
async fn query(
    app: &App,
    client: &Client,
    database: &str,
    sql: &str,
    params: &[Value],
    max_rows: Option<u64>,
    sink: &mut dyn output::Sink,
) -> Result<()> {
    let started = Instant::now();
    let rows = client
        .query_limited(database, sql, params, max_rows.unwrap_or(0))
        .await?;
    let progress = Progress::rows(app.show_progress);
    let end = stream(rows, sink, started, &progress).await?;
    warn_truncated(app, &end);
    Ok(())
}

/// `--preview`: the statements run in a transaction that is rolled back; per statement what it
/// did, its samples as tables (JSON with `--format json`), and its error.
async fn preview(
    app: &App,
    client: &Client,
    database: &str,
    stmts: &[String],
    params: &[Value],
) -> Result<()> {
    let batch = stmts
        .iter()
        .map(|sql| Statement::new(sql.clone(), params.to_vec()))
        .collect();
    let previews = client.preview(database, batch).await?;
    let mut out = stdout();
    if let Some(format) = schema::json_output(app) {
        let value: Vec<Json> = previews.iter().map(preview_json).collect();
        return schema::write_json(&mut out, &Json::Array(value), format);
    }
    let p = app.settings.paint;
    for (i, (sql, pv)) in stmts.iter().zip(&previews).enumerate() {
        let what = if pv.skipped {
            p.warn("not run: an earlier failure ended the transaction")
        } else if pv.error.is_some() {
            p.error("failed")
        } else {
            output::plural(pv.rows_affected, "row affected", "rows affected")
        };
        writeln!(out, "-- {} {}: {} ({what})", i + 1, pv.kind, one_line(sql))?;
        for (label, rows) in [("before", &pv.before), ("after", &pv.after)] {
            if rows.is_empty() {
                continue;
            }
            writeln!(out, "{label}:")?;
            let result = dbforge::ExecResult {
                rows_affected: 0,
                last_insert_id: None,
                columns: pv.columns.clone(),
                rows: rows.clone(),
            };
            write_exec(
                &result,
                output::sink(&app.settings, &mut out).as_mut(),
                Instant::now(),
            )?;
        }
        if let Some(plan) = pv.plan.as_ref().filter(|pl| !pl.full_scans.is_empty()) {
            writeln!(
                out,
                "{}: full scan of {}",
                p.warn("plan"),
                plan.full_scans.join(", ")
            )?;
        }
        if !pv.sample_note.is_empty() {
            writeln!(out, "{}: {}", p.dim("note"), pv.sample_note)?;
        }
        if let Some(e) = &pv.error {
            writeln!(out, "{}: {}", p.error("error"), e.message)?;
        }
    }
    writeln!(out, "{}", p.dim("rolled back: nothing was committed"))?;
    out.flush()?;
    Ok(())
}

/// A statement on one line, shortened for a heading.
fn one_line(sql: &str) -> String {
    let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}

fn preview_json(pv: &StatementPreview) -> Json {
    let rows = |rows: &[dbforge::Row]| -> Vec<Json> {
        rows.iter()
            .map(|r| Json::Array(r.values().iter().map(render::json).collect()))
            .collect()
    };
    json!({
        "kind": pv.kind,
        "rows_affected": pv.rows_affected,
        "columns": pv.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        "before": rows(&pv.before),
        "after": rows(&pv.after),
        "sample_note": pv.sample_note,
        "plan": pv.plan.as_ref().map(|pl| json!({
            "nodes": pl.nodes.iter().map(schema::node_json).collect::<Vec<_>>(),
            "full_scans": pl.full_scans,
        })),
        "error": pv.error.as_ref().map(|e| json!({
            "code": format!("{:?}", e.code),
            "message": e.message,
            "reason": e.reason,
        })),
        "skipped": pv.skipped,
    })
}

/// Runs the statements as one all-or-nothing ExecuteBatch (on Redis: MULTI, the commands,
/// EXEC), then writes each statement's result.
async fn atomic_batch(
    client: &Client,
    database: &str,
    stmts: &[String],
    params: &[Value],
    results: &mut output::Results<'_>,
) -> Result<()> {
    let started = Instant::now();
    let batch = stmts
        .iter()
        .map(|sql| Statement::new(sql.clone(), params.to_vec()))
        .collect();
    for result in client.batch(database, batch, true).await? {
        let mut sink = results.next()?;
        write_exec(&result, sink.as_mut(), started)?;
    }
    Ok(())
}

/// Runs the statements in one interactive transaction; any failure rolls all of them back.
async fn transaction(
    app: &App,
    client: &Client,
    database: &str,
    stmts: &[String],
    params: &[Value],
    results: &mut output::Results<'_>,
) -> Result<()> {
    let mut tx = client.transaction(database).await?;
    for (i, stmt) in stmts.iter().enumerate() {
        let started = Instant::now();
        let result = match tx.execute(stmt, params).await {
            Ok(r) => r,
            Err(e) => {
                // Dropping the transaction ends the session, which rolls it back.
                drop(tx);
                app.warn(&format!(
                    "statement {} of {} failed; the transaction was rolled back",
                    i + 1,
                    stmts.len()
                ));
                return Err(e.into());
            }
        };
        let mut sink = results.next()?;
        write_exec(&result, sink.as_mut(), started)?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dbforge sql -f` splits the shared table of scripts exactly as the gateway's ImportSql
    /// does (both run it; see `dbforge_sqlscan::cases`).
    #[test]
    fn scripts_split_as_the_gateway_imports_them() {
        for case in dbforge_sqlscan::cases::CASES {
            for dialect in statements::Dialect::ALL {
                assert_eq!(
                    split(dialect, case.script),
                    case.expected(dialect),
                    "{} on {dialect:?}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn each_backend_splits_by_its_own_dialect() {
        use dbforge::Backend;
        let script = "SELECT 1 # a; b\n; SELECT 'c\\'; d'";
        assert_eq!(
            split(statements::dialect(Backend::Mysql), script),
            ["SELECT 1 # a; b", "SELECT 'c\\'; d'"]
        );
        assert_eq!(
            split(statements::dialect(Backend::Sqlite), script),
            ["SELECT 1 # a", "b", "SELECT 'c\\'", "d'"]
        );
    }
}
