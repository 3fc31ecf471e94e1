//! `dbforge export`, `import` and `dump`: files in and out through TransferService.
//!
//! Exports and dumps stream to stdout or a file chunk by chunk, so a file of any size passes
//! through bounded memory; imports stream the file to the gateway in 64 KiB chunks.

use std::{
    io::{self, IsTerminal, Write},
    path::Path,
};

use dbforge::{Export, ImportCsvOptions, ImportSource, Value};
use futures::TryStreamExt;

use super::{App, stdout};
use crate::{
    cli::{DumpArgs, ExportArgs, ExportFormatArg, ImportArgs},
    error::{CliError, Result},
    output::{self, plural},
    progress::Progress,
};

/// Runs `dbforge export`.
pub fn export(app: &App, args: ExportArgs) -> Result<()> {
    let query = match args.query {
        Some(q) if q == "-" => Some(super::read_stdin(app, "SQL", "pass it with --query")?),
        q => q,
    };
    let opts = dbforge::ExportOptions {
        format: args.format.unwrap_or(ExportFormatArg::Csv).into(),
        delimiter: args.delimiter,
        null_text: args.null_text,
    };
    let database = args.database;
    let progress = Progress::counter(progress_shown(args.out.as_deref()), "rows exported");
    app.block_on(async {
        let client = app.connect().await?;
        let export = match (&args.table, &query) {
            (Some(table), _) => client.export_table(&database, table, opts).await?,
            (None, Some(sql)) => {
                client
                    .export_query(&database, sql, &args.params, opts)
                    .await?
            }
            (None, None) => {
                return Err(CliError::Usage("pass --table or --query".into()));
            }
        };
        let rows = write(export, args.out.as_deref(), &progress).await?;
        if let Some(path) = &args.out {
            summary(app, rows, "exported", path);
        }
        Ok(())
    })
}

/// Runs `dbforge dump`.
pub fn dump(app: &App, args: DumpArgs) -> Result<()> {
    let progress = Progress::counter(progress_shown(args.out.as_deref()), "rows dumped");
    app.block_on(async {
        let client = app.connect().await?;
        let export = client
            .dump_database(&args.database, args.schema_only)
            .await?;
        let rows = write(export, args.out.as_deref(), &progress).await?;
        if let Some(path) = &args.out {
            summary(app, rows, "dumped", path);
        }
        Ok(())
    })
}

/// A progress line goes on stderr when it is a terminal and the file does not go there too.
fn progress_shown(out: Option<&Path>) -> bool {
    io::stderr().is_terminal() && (out.is_some() || !io::stdout().is_terminal())
}

/// "exported 3 rows to people.csv", on stderr: stdout may be the file's neighbour in a pipe.
fn summary(app: &App, rows: u64, verb: &str, path: &Path) {
    let p = app.err_paint;
    eprintln!(
        "{} {} to {}",
        p.ok(verb),
        plural(rows, "row", "rows"),
        p.name(&path.display().to_string())
    );
}

/// Writes an export to `out` (stdout when `None`) and returns its row count. A file is created
/// only once the gateway has accepted the export, and removed again when the stream fails, so
/// a failed export leaves no truncated file behind.
async fn write(mut export: Export, out: Option<&Path>, progress: &Progress) -> Result<u64> {
    let mut sink: Box<dyn Write> = match out {
        Some(path) => Box::new(io::BufWriter::with_capacity(
            64 * 1024,
            std::fs::File::create(path)
                .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))?,
        )),
        None => Box::new(stdout()),
    };
    let copied: Result<()> = async {
        while let Some(chunk) = export.try_next().await? {
            sink.write_all(&chunk.data)?;
            progress.set(chunk.rows);
            if chunk.done {
                break;
            }
        }
        sink.flush()?;
        Ok(())
    }
    .await;
    progress.finish();
    if let Err(e) = copied {
        drop(sink);
        if let Some(path) = out {
            let _ = std::fs::remove_file(path);
        }
        return Err(e);
    }
    Ok(export.rows())
}

/// Runs `dbforge import`.
pub fn import(app: &App, args: ImportArgs) -> Result<()> {
    let p = app.settings.paint;
    if let Some(path) = &args.csv {
        let table = args
            .table
            .clone()
            .ok_or_else(|| CliError::Usage("--csv needs --table".into()))?;
        let opts = ImportCsvOptions {
            delimiter: args.delimiter,
            null_text: args.null_text.clone(),
            no_header: args.no_header,
            create: args.create,
            column_types: args.types.iter().cloned().collect(),
            sample_rows: args.sample_rows,
            skip_bad_rows: args.skip_bad_rows,
        };
        let report = app.block_on(async {
            let source = source(app, path).await?;
            let client = app.connect().await?;
            Ok(client
                .import_csv(&args.database, &table, source, opts)
                .await?)
        })?;
        let mut human = String::new();
        if report.table_created {
            human.push_str(&format!("{} table {}\n", p.ok("created"), p.name(&table)));
        }
        human.push_str(&format!(
            "read {}: {} {}, {} {}",
            plural(report.rows_read, "row", "rows"),
            report.rows_inserted,
            p.ok("inserted"),
            report.rows_rejected,
            if report.rows_rejected > 0 {
                p.warn("rejected")
            } else {
                "rejected".to_owned()
            }
        ));
        for r in &report.rejected {
            human.push_str(&format!("\n  line {}: {}", r.line, r.reason));
        }
        if report.rows_rejected > report.rejected.len() as u64 {
            human.push_str(&format!(
                "\n  … and {} more",
                report.rows_rejected - report.rejected.len() as u64
            ));
        }
        let rejected: Vec<serde_json::Value> = report
            .rejected
            .iter()
            .map(|r| serde_json::json!({ "line": r.line, "reason": r.reason }))
            .collect();
        output::record(
            &app.settings,
            &mut stdout(),
            &human,
            &[
                ("table", Value::Text(table)),
                ("table_created", Value::Bool(report.table_created)),
                ("rows_read", Value::Int(int(report.rows_read))),
                ("rows_inserted", Value::Int(int(report.rows_inserted))),
                ("rows_rejected", Value::Int(int(report.rows_rejected))),
                (
                    "rejected",
                    Value::Json(serde_json::Value::Array(rejected).to_string()),
                ),
            ],
        )?;
        return Ok(());
    }
    if let Some(path) = &args.sql {
        let report = app.block_on(async {
            let source = source(app, path).await?;
            let client = app.connect().await?;
            Ok(client.import_sql(&args.database, source).await?)
        })?;
        let human = format!(
            "{} {}, {} affected",
            p.ok("ran"),
            plural(report.statements, "statement", "statements"),
            plural(report.rows_affected, "row", "rows")
        );
        output::record(
            &app.settings,
            &mut stdout(),
            &human,
            &[
                ("statements", Value::Int(int(report.statements))),
                ("rows_affected", Value::Int(int(report.rows_affected))),
            ],
        )?;
        return Ok(());
    }
    if let Some(path) = &args.ndjson {
        let records = app.block_on(async {
            let source = source(app, path).await?;
            let client = app.connect().await?;
            Ok(client.import_ndjson(&args.database, source).await?)
        })?;
        let human = format!("{} {}", p.ok("imported"), plural(records, "key", "keys"));
        output::record(
            &app.settings,
            &mut stdout(),
            &human,
            &[("records", Value::Int(int(records)))],
        )?;
        return Ok(());
    }
    Err(CliError::Usage("pass --csv, --sql or --ndjson".into()))
}

/// The file to import: `-` is stdin (refused on a terminal, where nobody announced typing a
/// file), anything else a path opened before connecting, so a typo fails fast.
async fn source(app: &App, path: &Path) -> Result<ImportSource> {
    if path.as_os_str() == "-" {
        if app.stdin_tty {
            return Err(CliError::Usage(
                "no file given: pass a path instead of -, or pipe the file to stdin".into(),
            ));
        }
        return Ok(ImportSource::reader(tokio::io::stdin()));
    }
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(ImportSource::reader(file))
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
