//! Moving data in and out: exports (CSV, JSON, NDJSON), dumps, imports (CSV, SQL scripts,
//! NDJSON key records), and the schema and plan inspection that goes with them.
//!
//! Exports stream: rows are encoded as they arrive into chunks of about [`CHUNK_BYTES`], and a
//! full channel holds the query back. Imports run inside one transaction on a pinned session,
//! statement by statement as the client's chunks arrive, so memory stays bounded by the longest
//! record or statement (capped by the line limit) and one insert batch.
//!
//! One file per direction: `export.rs` (rows as CSV, JSON or NDJSON, and whole-database dumps),
//! `csv_import.rs`, `sql_import.rs` (SQL scripts, split by [`script`](super::script)),
//! `ndjson_import.rs` (key records), `rdf.rs` (RDF dumps and imports of graph databases), and
//! `inspect.rs` (schema and plans).

mod csv_import;
mod export;
mod inspect;
mod ndjson_import;
mod rdf;
mod sql_import;

pub use csv_import::{CreateFromCsv, CsvImport, CsvImportReport};
pub use export::ExportSource;
pub(crate) use export::json_value;
pub use rdf::{RdfFormat, RdfImport};
pub use sql_import::ScriptReport;

use futures::stream::BoxStream;

use super::{
    error::{Error, Result},
    forge::TransferTarget,
    names::Identifier,
    table::SqlDialect,
    value::{Statement, ValueKind},
};

/// Bytes of an export chunk, about: small enough to keep a stream's memory low (with the
/// channel's few chunks), large enough that per-message costs vanish.
pub const CHUNK_BYTES: usize = 64 << 10;

/// Chunks buffered between an export's encoder and the client.
const CHUNK_BUFFER: usize = 4;

/// A row export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// CSV options of an export or import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Field delimiter.
    pub delimiter: u8,
    /// Text standing for NULL: written unquoted on export; an unquoted field equal to it reads
    /// as NULL on import (a quoted one never does).
    pub null_text: String,
    /// Import: no header row; fields are the table's columns in order.
    pub no_header: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            null_text: String::new(),
            no_header: false,
        }
    }
}

/// The bytes of an import as the client sends them.
pub type ImportStream = BoxStream<'static, Result<Vec<u8>>>;

fn too_large(max: u64) -> Error {
    Error::LimitExceeded(format!(
        "the import is larger than the server's limit of {max} bytes; nothing was imported"
    ))
}

fn sql_dialect(t: &TransferTarget, operation: &'static str) -> Result<&'static dyn SqlDialect> {
    t.dialect
        .filter(|_| t.capabilities.table_service)
        .ok_or(Error::Unsupported {
            operation,
            backend: t.kind.as_str(),
        })
}

async fn table_exists(t: &TransferTarget, d: &dyn SqlDialect, table: &Identifier) -> Result<bool> {
    let found = t
        .database
        .execute(d.table_exists(table.as_str()), &t.whole)
        .await?;
    Ok(!found.rows.is_empty())
}

async fn ensure_table(t: &TransferTarget, d: &dyn SqlDialect, table: &Identifier) -> Result<()> {
    if table_exists(t, d, table).await? {
        Ok(())
    } else {
        Err(Error::NotFound {
            what: "table",
            name: table.as_str().to_owned(),
        })
    }
}

/// The table's columns and the kinds its cells take, from an empty SELECT.
async fn table_columns(
    t: &TransferTarget,
    d: &dyn SqlDialect,
    table: &Identifier,
) -> Result<Vec<(String, ValueKind)>> {
    let (limit, params) = d.limit_offset(Some(0), None);
    let stmt = Statement {
        sql: format!("SELECT * FROM {}{limit}", d.quote_ident(table.as_str())),
        params,
    };
    let result = t.database.execute(stmt, &t.whole).await?;
    Ok(result
        .columns
        .into_iter()
        .map(|c| (c.name, c.kind))
        .collect())
}
