//! `dbforge chart DB SQL --bar|--hbar|--line|--pie`: a two-column result as a terminal chart.

use std::io::Write;

use futures::TryStreamExt;

use super::{App, stdout};
use crate::{
    chart,
    cli::ChartArgs,
    error::{CliError, Result},
};

/// Charts are drawn this wide when the width is unknown (output to a file).
const DEFAULT_WIDTH: usize = 80;

/// Runs `dbforge chart`.
pub fn run(app: &App, args: ChartArgs) -> Result<()> {
    let sql = if args.sql == "-" {
        super::read_stdin(app, "SQL", "pass it as the argument")?
    } else {
        args.sql.clone()
    };
    let rows = app.block_on(async {
        let client = app.connect().await?;
        // One row more than allowed tells "too many" apart from "exactly enough".
        let rows: Vec<dbforge::Row> = client
            .query_limited(&args.database, &sql, &args.params, args.max_rows + 1)
            .await?
            .try_collect()
            .await?;
        Ok(rows)
    })?;
    if rows.len() as u64 > args.max_rows {
        return Err(CliError::Invalid(format!(
            "the query returned more than {} rows; aggregate it (GROUP BY, LIMIT) or raise --max-rows",
            args.max_rows
        )));
    }
    if let Some(first) = rows.first()
        && first.values().len() != 2
    {
        return Err(CliError::Invalid(format!(
            "the query returned {} columns; a chart needs two: a label and a value",
            first.values().len()
        )));
    }
    let values: Vec<Vec<dbforge::Value>> = rows.into_iter().map(|r| r.into_values()).collect();
    let data = chart::data(&values).map_err(CliError::Invalid)?;
    let width = app.settings.width.unwrap_or(DEFAULT_WIDTH);
    let height = usize::from(args.height);
    let paint = app.settings.paint;
    let text = if data.is_empty() {
        Ok(format!("{}\n", paint.dim("no rows to chart")))
    } else if args.hbar {
        chart::hbar(&data, width, paint)
    } else if args.bar {
        chart::bar(&data, width, height, paint)
    } else if args.line {
        chart::line(&data, width, height, paint)
    } else {
        chart::pie(&data, width, paint)
    }
    .map_err(CliError::Invalid)?;
    let mut out = stdout();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
