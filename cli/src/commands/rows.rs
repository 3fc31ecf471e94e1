//! `dbforge rows insert|select|update|delete`: rows without SQL, through TableService.

use std::time::Instant;

use dbforge::{Record, Select, Value};

use super::{App, stdout, stream, warn_truncated};
use crate::{
    cli::RowsCommand,
    error::{CliError, Result},
    input,
    output::{self, plural},
    progress::Progress,
};

/// Runs a `rows` subcommand.
pub fn run(app: &App, command: RowsCommand) -> Result<()> {
    let p = app.settings.paint;
    match command {
        RowsCommand::Insert {
            database,
            table,
            json,
            batch_size,
        } => {
            let text = match json.as_deref() {
                Some(path) if path.as_os_str() != "-" => std::fs::read_to_string(path)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?,
                _ => super::read_stdin(app, "rows", "pass a JSON file with --json")?,
            };
            let rows = input::parse_rows(&text).map_err(CliError::Invalid)?;
            let inserted = app.block_on(insert(app, &database, &table, rows, batch_size))?;
            let human = format!(
                "{} {} into {}",
                p.ok("inserted"),
                plural(inserted, "row", "rows"),
                p.name(&table)
            );
            output::record(
                &app.settings,
                &mut stdout(),
                &human,
                &[("rows_inserted", Value::Int(count(inserted)))],
            )?;
            Ok(())
        }
        RowsCommand::Select {
            database,
            table,
            columns,
            filters,
            order_by,
            limit,
            offset,
        } => {
            let mut select = Select::from(table);
            if !columns.is_empty() {
                select = select.columns(columns);
            }
            for f in filters {
                select = select.filter(f);
            }
            for key in order_by {
                select = if key.descending {
                    select.order_by_desc(key.column)
                } else {
                    select.order_by(key.column)
                };
            }
            if let Some(n) = limit {
                select = select.limit(n);
            }
            if let Some(n) = offset {
                select = select.offset(n);
            }
            app.block_on(async {
                let client = app.connect().await?;
                let started = Instant::now();
                let rows = client.select_rows(&database, select).await?;
                let mut out = stdout();
                let mut sink = output::sink(&app.settings, &mut out);
                let progress = Progress::rows(app.show_progress);
                let end = stream(rows, sink.as_mut(), started, &progress).await?;
                warn_truncated(app, &end);
                Ok(())
            })
        }
        RowsCommand::Update {
            database,
            table,
            set,
            filters,
            all,
        } => {
            let set: Record = set.into_iter().map(|a| (a.column, a.value)).collect();
            let n = app.block_on(async {
                let client = app.connect().await?;
                Ok(if all {
                    client.update_all_rows(&database, &table, set).await?
                } else {
                    client.update_rows(&database, &table, set, filters).await?
                })
            })?;
            let human = format!("{} {}", p.ok("updated"), plural(n, "row", "rows"));
            output::record(
                &app.settings,
                &mut stdout(),
                &human,
                &[("rows_affected", Value::Int(count(n)))],
            )?;
            Ok(())
        }
        RowsCommand::Delete {
            database,
            table,
            filters,
            all,
        } => {
            let n = app.block_on(async {
                let client = app.connect().await?;
                Ok(if all {
                    client.delete_all_rows(&database, &table).await?
                } else {
                    client.delete_rows(&database, &table, filters).await?
                })
            })?;
            let human = format!("{} {}", p.ok("deleted"), plural(n, "row", "rows"));
            output::record(
                &app.settings,
                &mut stdout(),
                &human,
                &[("rows_affected", Value::Int(count(n)))],
            )?;
            Ok(())
        }
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Inserts in batches, each one transaction; says how many went in before a failure.
async fn insert(
    app: &App,
    database: &str,
    table: &str,
    rows: Vec<Record>,
    batch_size: u64,
) -> Result<u64> {
    let client = app.connect().await?;
    let total = rows.len() as u64;
    let progress = Progress::bar(app.show_progress && total > batch_size, total, "rows");
    let mut inserted = 0;
    let mut rows = rows.into_iter().peekable();
    let size = usize::try_from(batch_size).unwrap_or(usize::MAX);
    while rows.peek().is_some() {
        let batch: Vec<Record> = rows.by_ref().take(size).collect();
        match client.insert_rows(database, table, batch).await {
            Ok(n) => {
                inserted += n;
                progress.inc(n);
            }
            Err(e) => {
                if inserted > 0 {
                    app.warn(&format!(
                        "{} inserted by earlier batches stay in {table}; the failing batch of up to {batch_size} was rolled back",
                        plural(inserted, "row was", "rows were")
                    ));
                }
                return Err(e.into());
            }
        }
    }
    progress.finish();
    Ok(inserted)
}
