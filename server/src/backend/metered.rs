//! Statement metrics for any engine: [`Metered`] wraps an open [`Database`] and records, per
//! backend, how long each statement took and how many rows and bytes each stream carried, so
//! that no engine and no Forge method has to remember to.

use std::{sync::Arc, time::Instant};

use async_trait::async_trait;
use futures::StreamExt;

use super::{BackendKind, Database, DumpStream, RowStream, Session, StatementLimits};
use crate::{
    core::{
        error::{Error, Result},
        schema::{Plan, Schema},
        value::{RowEvent, Statement, StatementResult, Value},
    },
    metrics as names,
};

/// An open database whose calls are metered; see the module docs.
#[derive(Debug)]
pub struct Metered {
    inner: Arc<dyn Database>,
    backend: &'static str,
}

impl Metered {
    /// Wraps `inner`, an open database of the `backend` engine.
    pub fn wrap(inner: Arc<dyn Database>, backend: BackendKind) -> Arc<dyn Database> {
        Arc::new(Metered {
            inner,
            backend: backend.as_str(),
        })
    }
}

/// Counts the rows and bytes a stream carries: encoded bytes when the stream has an encoder
/// (every gRPC stream), approximate ones otherwise.
fn counted(rows: RowStream, backend: &'static str) -> RowStream {
    Box::pin(rows.inspect(move |ev| {
        let (rows, bytes) = match ev {
            Ok(RowEvent::Rows(batch)) => (
                batch.len(),
                batch.iter().flatten().map(Value::approx_size).sum(),
            ),
            Ok(RowEvent::Encoded(batch)) => (batch.rows, batch.bytes.len()),
            _ => return,
        };
        metrics::counter!(names::ROWS_STREAMED_TOTAL, "backend" => backend).increment(rows as u64);
        metrics::counter!(names::BYTES_STREAMED_TOTAL, "backend" => backend)
            .increment(bytes as u64);
    }))
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Database for Metered {
    async fn execute(&self, stmt: Statement, limits: &StatementLimits) -> Result<StatementResult> {
        let started = Instant::now();
        let result = self.inner.execute(stmt, limits).await;
        metrics::histogram!(names::STATEMENT_DURATION_SECONDS, "backend" => self.backend)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn query(&self, stmt: Statement, limits: StatementLimits) -> Result<RowStream> {
        Ok(counted(self.inner.query(stmt, limits).await?, self.backend))
    }

    async fn batch(
        &self,
        stmts: Vec<Statement>,
        transactional: bool,
        limits: &StatementLimits,
    ) -> Result<Vec<StatementResult>> {
        self.inner.batch(stmts, transactional, limits).await
    }

    async fn session(&self, limits: StatementLimits) -> Result<Box<dyn Session>> {
        self.inner.session(limits).await
    }

    async fn schema(&self, table: Option<&str>, limits: &StatementLimits) -> Result<Schema> {
        self.inner.schema(table, limits).await
    }

    async fn explain(
        &self,
        stmt: Statement,
        analyze: bool,
        limits: &StatementLimits,
    ) -> Result<Plan> {
        self.inner.explain(stmt, analyze, limits).await
    }

    async fn dump(&self, schema_only: bool, limits: StatementLimits) -> Result<DumpStream> {
        self.inner.dump(schema_only, limits).await
    }

    async fn backup_dump(&self, limits: StatementLimits) -> Result<DumpStream> {
        self.inner.backup_dump(limits).await
    }

    async fn import_records(&self, data: &[u8], limits: &StatementLimits) -> Result<u64> {
        self.inner.import_records(data, limits).await
    }

    async fn dump_rdf(
        &self,
        format: crate::core::transfer::RdfFormat,
        limits: StatementLimits,
    ) -> Result<DumpStream> {
        self.inner.dump_rdf(format, limits).await
    }

    async fn import_rdf(
        &self,
        spec: crate::core::transfer::RdfImport,
        input: crate::core::transfer::ImportStream,
        limits: &StatementLimits,
    ) -> Result<u64> {
        self.inner.import_rdf(spec, input, limits).await
    }

    async fn restore_records(&self, data: &[u8], limits: &StatementLimits) -> Result<u64> {
        self.inner.restore_records(data, limits).await
    }

    async fn backup_image(&self, dest: std::path::PathBuf) -> Result<crate::backend::ImageSummary> {
        self.inner.backup_image(dest).await
    }

    async fn set_max_bytes(&self, max_bytes: Option<u64>) -> Result<()> {
        self.inner.set_max_bytes(max_bytes).await
    }

    fn engine_name(&self) -> &'static str {
        self.inner.engine_name()
    }

    fn unsupported(&self, operation: &'static str) -> Error {
        self.inner.unsupported(operation)
    }
}
