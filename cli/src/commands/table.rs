//! `dbforge table create`: tables without SQL, through TableService.

use dbforge::Value;

use super::{App, stdout};
use crate::{cli::TableCommand, error::Result, output};

/// Runs a `table` subcommand.
pub fn run(app: &App, command: TableCommand) -> Result<()> {
    match command {
        TableCommand::Create {
            database,
            table,
            columns,
            if_not_exists,
        } => {
            let created = app.block_on(async {
                let client = app.connect().await?;
                Ok(client
                    .create_table(&database, &table, columns, if_not_exists)
                    .await?)
            })?;
            let p = app.settings.paint;
            let human = if created {
                format!("{} table {}", p.ok("created"), p.name(&table))
            } else {
                format!("table {} exists already", p.name(&table))
            };
            output::record(
                &app.settings,
                &mut stdout(),
                &human,
                &[
                    ("table", Value::Text(table)),
                    ("created", Value::Bool(created)),
                ],
            )?;
            Ok(())
        }
    }
}
