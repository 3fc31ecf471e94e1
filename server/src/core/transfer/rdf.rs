//! RDF files in and out of graph databases: DumpDatabase in a chosen RDF format, and ImportRdf
//! (all or nothing, streamed to the engine's parser as the chunks arrive).

use futures::StreamExt;

use super::{ImportStream, too_large};
use crate::{
    backend::DumpStream,
    core::{
        access::{Principal, Role},
        error::{Error, Result},
        forge::Forge,
    },
};

/// An RDF serialization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RdfFormat {
    /// N-Quads: every graph.
    NQuads,
    /// N-Triples: one graph.
    NTriples,
    /// Turtle: one graph.
    Turtle,
    /// JSON-LD: every graph.
    JsonLd,
}

impl RdfFormat {
    /// Whether the format names graphs itself (the others hold one graph).
    pub fn has_graphs(self) -> bool {
        matches!(self, Self::NQuads | Self::JsonLd)
    }
}

/// What ImportRdf loads and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdfImport {
    /// The file's format.
    pub format: RdfFormat,
    /// The IRI relative IRIs resolve against.
    pub base_iri: Option<String>,
    /// Single-graph formats: the named graph their triples go into (the default graph if none).
    pub graph: Option<String>,
    /// Single-graph formats: clear that graph first, in the same transaction, so the load
    /// replaces what it held (MaterializeGraph's refresh).
    pub replace: bool,
}

impl Forge {
    /// Streams a dump of a graph database in `format`.
    pub async fn dump_rdf(
        &self,
        who: &Principal,
        db: &str,
        format: RdfFormat,
    ) -> Result<DumpStream> {
        let t = self.transfer_target(who, db, Role::Read).await?;
        if !t.capabilities.sparql {
            return Err(Error::invalid(
                "rdf_format",
                format!("{} databases dump in their own format, not RDF", t.kind),
            ));
        }
        t.database.dump_rdf(format, t.transfer.clone()).await
    }

    /// Loads an RDF file into a graph database, all or nothing; returns the quads read.
    pub async fn import_rdf(
        &self,
        who: &Principal,
        db: &str,
        spec: RdfImport,
        input: ImportStream,
    ) -> Result<u64> {
        let t = self.transfer_target(who, db, Role::Write).await?;
        if !t.capabilities.sparql {
            return Err(Error::Unsupported {
                operation: "ImportRdf",
                backend: t.kind.as_str(),
            });
        }
        if (spec.graph.is_some() || spec.replace) && spec.format.has_graphs() {
            return Err(Error::invalid(
                "graph",
                "N-Quads and JSON-LD name their own graphs; a target graph is for N-Triples and Turtle",
            ));
        }
        // The engine reads as the chunks come; past the size limit the stream fails, and the
        // engine drops its transaction.
        let max = t.limits.max_import_bytes;
        let mut seen = 0u64;
        let counted = input
            .map(move |chunk| {
                let chunk = chunk?;
                seen += chunk.len() as u64;
                if seen > max {
                    return Err(too_large(max));
                }
                Ok(chunk)
            })
            .boxed();
        t.database.import_rdf(spec, counted, &t.transfer).await
    }
}
