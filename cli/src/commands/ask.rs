//! `dbforge ask DB "question"`: SemanticService.Ask. The gateway's model writes the SQL; the
//! command shows it with its rationale and the engine's verdict on stderr-free stdout, and with
//! `--run` the rows as `dbforge sql` shows them.

use std::{io::Write, time::Instant};

use dbforge::{AskOptions, AskStatus, Truncation};
use serde_json::json;

use super::{App, schema::json_output, schema::write_json, stdout, write_exec};
use crate::{
    cli::AskArgs,
    error::{CliError, Result},
    output::{self, render},
};

/// Runs `dbforge ask`.
pub fn ask(app: &App, args: AskArgs) -> Result<()> {
    let opts = AskOptions {
        run: args.run,
        max_rows: args.max_rows,
        timeout: None,
    };
    let started = Instant::now();
    let asked = app.block_on(async {
        let client = app.connect().await?;
        Ok(client.ask(&args.database, &args.question, opts).await?)
    })?;
    let a = &asked.answer;
    let mut out = stdout();
    if let Some(format) = json_output(app) {
        let value = json!({
            "status": if a.status == AskStatus::Answered { "answered" } else { "gave_up" },
            "sql": a.sql,
            "rationale": a.rationale,
            "valid": a.valid,
            "validation_error": a.validation_error,
            "full_scans": a.full_scans,
            "message": a.message,
            "rounds": a.rounds,
            "cached": a.cached,
            "model": a.model,
            "columns": asked.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            "rows": asked
                .rows
                .iter()
                .map(|r| r.values().iter().map(render::json).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
        });
        write_json(&mut out, &value, format)?;
    } else {
        let p = app.settings.paint;
        let mut text = String::new();
        for line in a.rationale.lines().filter(|l| !l.trim().is_empty()) {
            text.push_str(&p.dim(&format!("-- {line}")));
            text.push('\n');
        }
        if !a.sql.is_empty() {
            text.push_str(&a.sql);
            text.push_str(";\n");
        }
        let how = if a.cached {
            "cached".to_owned()
        } else {
            output::plural(u64::from(a.rounds), "model call", "model calls")
        };
        text.push_str(&p.dim(&format!("-- {}, {how}", a.model)));
        text.push('\n');
        if !a.full_scans.is_empty() {
            text.push_str(&format!(
                "{}: full scan of {}\n",
                p.warn("warning"),
                a.full_scans.join(", ")
            ));
        }
        out.write_all(text.as_bytes())?;
        if args.run && a.status == AskStatus::Answered {
            writeln!(out)?;
            let result = dbforge::ExecResult {
                rows_affected: 0,
                last_insert_id: None,
                columns: asked.columns.clone(),
                rows: asked.rows.clone(),
            };
            let mut sink = output::sink(&app.settings, &mut out);
            let end = write_exec(&result, sink.as_mut(), started)?;
            let cut = asked.summary.as_ref().map(|s| s.truncation);
            if cut == Some(Truncation::RowLimit) {
                app.warn(&format!(
                    "the result was cut at {} rows (--max-rows)",
                    end.rows
                ));
            }
        }
        out.flush()?;
    }
    if a.status == AskStatus::GaveUp {
        return Err(CliError::CheckFailed(a.message.clone()));
    }
    Ok(())
}
