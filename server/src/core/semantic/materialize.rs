//! MaterializeGraph: a SQL database mapped into a graph database by the W3C Direct Mapping
//! ([`crate::core::direct_mapping`]), so that an agent traverses joins as graph paths.
//!
//! The rules it keeps:
//!
//! - **All or nothing.** The source's tables are read one after another (each one `SELECT` on
//!   read-only access, with the export limits) and their triples stream, as N-Triples, into one
//!   ImportRdf transaction on the graph database: a failed read, a row cut by a limit, the
//!   import's byte limit or its deadline commit nothing.
//! - **Bounded.** At most a few chunks of [`CHUNK_BYTES`] wait between the reader and the
//!   loader; the loader's pace holds the reader back.
//! - **Refreshable.** With `replace`, the target graph is cleared in the same transaction, so a
//!   second run leaves exactly the source's current rows.
//! - Tables are read in turn, not in one snapshot: rows written meanwhile may be seen in one table
//!   and not another. A fork of the source ([`Forge::fork_database`]) is one snapshot to map.

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    backend::StatementLimits,
    core::{
        access::{Principal, Role},
        direct_mapping::{BaseIri, TableMapping},
        error::{Error, Result},
        forge::Forge,
        schema::TableKind,
        table::SqlDialect,
        transfer::{CHUNK_BYTES, RdfFormat, RdfImport},
        value::{RowEvent, Statement, Truncation},
    },
};

/// Chunks in flight between the reader of the source and the loader.
const CHUNKS_IN_FLIGHT: usize = 4;

/// What MaterializeGraph maps and where it loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterializeSpec {
    /// The SQL database read.
    pub source: String,
    /// The graph database loaded.
    pub target: String,
    /// The IRI every table, column and row IRI starts with (`urn:dbforge:<source>/` if none).
    pub base_iri: Option<BaseIri>,
    /// The named graph the triples go into (the default graph if none).
    pub graph: Option<String>,
    /// Clear that graph first, in the same transaction.
    pub replace: bool,
}

/// What one table gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterializedTable {
    /// The table.
    pub table: String,
    /// Rows read.
    pub rows: u64,
    /// Triples written for them.
    pub triples: u64,
}

/// What MaterializeGraph did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Materialized {
    /// Per table, in the schema's order (views are not mapped).
    pub tables: Vec<MaterializedTable>,
    /// Triples the graph database loaded.
    pub triples: u64,
    /// The base IRI used.
    pub base_iri: String,
    /// Time taken, reading and loading.
    pub elapsed: Duration,
}

impl Forge {
    /// Maps the base tables of a SQL database into a graph database (see the module's rules).
    /// Needs read access to the source and write access to the graph database.
    pub async fn materialize_graph(
        &self,
        who: &Principal,
        spec: MaterializeSpec,
    ) -> Result<Materialized> {
        let started = Instant::now();
        let MaterializeSpec {
            source,
            target,
            base_iri,
            graph,
            replace,
        } = spec;
        let src = self.transfer_target(who, &source, Role::Read).await?;
        let dialect = src.dialect.ok_or(Error::Unsupported {
            operation: "Mapping into a graph (the source must be a SQL database: SQLite, \
                        PostgreSQL or MySQL)",
            backend: src.kind.as_str(),
        })?;
        // The target is checked before anything is read.
        let dst = self.transfer_target(who, &target, Role::Write).await?;
        if !dst.capabilities.sparql {
            return Err(Error::invalid(
                "graph_database",
                format!(
                    "{target:?} is a {} database; MaterializeGraph loads into a graph database \
                     (BACKEND_GRAPH)",
                    dst.kind
                ),
            ));
        }
        let base = base_iri.unwrap_or_else(|| BaseIri::for_database(&source));
        let read = StatementLimits {
            read_only: true,
            ..src.transfer.clone()
        };
        let schema = src.database.schema(None, &read).await?;
        let mappings = schema
            .tables
            .iter()
            .filter(|t| t.kind == TableKind::Table)
            .map(|t| Ok((t.name.clone(), TableMapping::new(&base, t)?)))
            .collect::<Result<Vec<_>>>()?;

        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let reader = tokio::spawn(read_tables(
            src.database.clone(),
            dialect,
            mappings,
            read,
            tx,
        ));
        let import = RdfImport {
            format: RdfFormat::NTriples,
            base_iri: None,
            graph,
            replace,
        };
        let loaded = self
            .import_rdf(who, &target, import, ReceiverStream::new(rx).boxed())
            .await;
        // The reader's own failure reached the loader through the stream and is `loaded`'s
        // error; a loader that failed first made the reader stop at its next send.
        let tables = reader
            .await
            .map_err(|e| Error::internal(format!("the reader of {source:?} failed: {e}")));
        let triples = loaded?;
        Ok(Materialized {
            tables: tables?,
            triples,
            base_iri: base.as_str().to_owned(),
            elapsed: started.elapsed(),
        })
    }
}

/// Reads each table whole and sends its rows' triples as N-Triples chunks. A failure goes down
/// the stream, so the loader commits nothing; the counts are what was sent.
async fn read_tables(
    database: std::sync::Arc<dyn crate::backend::Database>,
    dialect: &'static dyn SqlDialect,
    mappings: Vec<(String, TableMapping)>,
    limits: StatementLimits,
    tx: mpsc::Sender<Result<Vec<u8>>>,
) -> Vec<MaterializedTable> {
    let mut out = Vec::with_capacity(mappings.len());
    let mut buf = String::with_capacity(CHUNK_BYTES * 2);
    // Blank nodes (rows without a primary key) are numbered across the whole document: the
    // parser reads one document, where `_:r7` of two tables would be the same node.
    let mut row_number = 0u64;
    for (table, mapping) in mappings {
        let columns = mapping
            .columns()
            .iter()
            .map(|c| dialect.quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let stmt = Statement::new(format!(
            "SELECT {columns} FROM {}",
            dialect.quote_ident(&table)
        ));
        let mut done = MaterializedTable {
            table,
            rows: 0,
            triples: 0,
        };
        let step = async {
            let mut rows = database.query(stmt, limits.clone()).await?;
            while let Some(event) = rows.next().await {
                match event? {
                    RowEvent::Columns(_) => {}
                    RowEvent::Rows(batch) => {
                        for row in &batch {
                            row_number += 1;
                            done.triples += mapping.write_row(row, row_number, &mut buf)?;
                            done.rows += 1;
                        }
                        if buf.len() >= CHUNK_BYTES && !send(&tx, &mut buf).await {
                            return Ok(false);
                        }
                    }
                    RowEvent::Encoded(_) => {
                        return Err(Error::internal("a table read came already encoded"));
                    }
                    RowEvent::Done(summary) if summary.truncation != Truncation::None => {
                        return Err(Error::LimitExceeded(format!(
                            "table {:?} has more rows or bytes than one export may read; \
                             nothing was loaded",
                            done.table
                        )));
                    }
                    RowEvent::Done(_) => {}
                }
            }
            Ok(true)
        };
        let result = step.await;
        match result {
            Ok(true) => out.push(done),
            // The loader is gone: its error is the answer.
            Ok(false) => return out,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return out;
            }
        }
    }
    send(&tx, &mut buf).await;
    out
}

/// Sends what `buf` holds (if anything); false when the loader is gone.
async fn send(tx: &mpsc::Sender<Result<Vec<u8>>>, buf: &mut String) -> bool {
    if buf.is_empty() {
        return true;
    }
    let chunk = std::mem::replace(buf, String::with_capacity(CHUNK_BYTES * 2));
    tx.send(Ok(chunk.into_bytes())).await.is_ok()
}
