//! Read grants on server engines: one open database reached through two logins, its own
//! read-write one and a read-only one that the engine itself confines to reading (a PostgreSQL
//! role with SELECT only, a MySQL user with SELECT and SHOW VIEW only, a Redis ACL user with
//! read commands only). [`WithReader`] sends every call whose limits say
//! [`read_only`](StatementLimits::read_only) to the read-only login, so a write from a read
//! grant is refused by the engine's own privilege check, never by looking at the statement.

use std::fmt;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::OnceCell;

use super::{Database, DumpStream, RowStream, Session, StatementLimits};
use crate::core::{
    error::{Error, Result},
    schema::{Plan, Schema},
    value::{Statement, StatementResult},
};

/// The name of the read-only login that goes with the login `ident` of a spawned database:
/// `ident` with its last `_` (the one before the random suffix) written `-`. It is as long as
/// `ident`, so it fits every engine's name limit that `ident` fits; it differs from every
/// generated `ident` (those hold only `[a-z0-9_]`), so orphan sweeps never take it for a
/// database of its own; and no two databases share it.
pub fn reader_ident(ident: &str) -> String {
    match ident.rfind('_') {
        Some(i) => format!("{}-{}", &ident[..i], &ident[i + 1..]),
        None => format!("{ident}-ro"),
    }
}

/// Creates (or completes) a database's read-only login; idempotent.
pub type EnsureReader = Box<dyn Fn() -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// An open database with a second handle that logs in read-only: calls with
/// [`StatementLimits::read_only`] go to `reader`, every other call to `writer`.
///
/// Before the first read-only call, `ensure` makes sure the read-only login exists and may read
/// everything: databases spawned before read-only logins existed get one then, and opening
/// stays lazy (it reaches no server). A failure is returned to that call and tried again on
/// the next one.
pub struct WithReader<D> {
    writer: D,
    reader: D,
    ensure: EnsureReader,
    ensured: OnceCell<()>,
}

impl<D: fmt::Debug> fmt::Debug for WithReader<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithReader")
            .field("writer", &self.writer)
            .field("reader", &self.reader)
            .field("ensured", &self.ensured.initialized())
            .finish_non_exhaustive()
    }
}

impl<D: Database> WithReader<D> {
    /// Pairs the database's own handle with its read-only one.
    pub fn new(writer: D, reader: D, ensure: EnsureReader) -> Self {
        Self {
            writer,
            reader,
            ensure,
            ensured: OnceCell::new(),
        }
    }

    async fn pick(&self, limits: &StatementLimits) -> Result<&D> {
        if !limits.read_only {
            return Ok(&self.writer);
        }
        self.ensured.get_or_try_init(|| (self.ensure)()).await?;
        Ok(&self.reader)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<D: Database> Database for WithReader<D> {
    async fn execute(&self, stmt: Statement, limits: &StatementLimits) -> Result<StatementResult> {
        self.pick(limits).await?.execute(stmt, limits).await
    }

    async fn query(&self, stmt: Statement, limits: StatementLimits) -> Result<RowStream> {
        self.pick(&limits).await?.query(stmt, limits).await
    }

    async fn batch(
        &self,
        stmts: Vec<Statement>,
        transactional: bool,
        limits: &StatementLimits,
    ) -> Result<Vec<StatementResult>> {
        self.pick(limits)
            .await?
            .batch(stmts, transactional, limits)
            .await
    }

    async fn session(&self, limits: StatementLimits) -> Result<Box<dyn Session>> {
        self.pick(&limits).await?.session(limits).await
    }

    async fn schema(&self, table: Option<&str>, limits: &StatementLimits) -> Result<Schema> {
        self.pick(limits).await?.schema(table, limits).await
    }

    async fn explain(
        &self,
        stmt: Statement,
        analyze: bool,
        limits: &StatementLimits,
    ) -> Result<Plan> {
        self.pick(limits)
            .await?
            .explain(stmt, analyze, limits)
            .await
    }

    async fn dump(&self, schema_only: bool, limits: StatementLimits) -> Result<DumpStream> {
        self.pick(&limits).await?.dump(schema_only, limits).await
    }

    async fn backup_dump(&self, limits: StatementLimits) -> Result<DumpStream> {
        self.pick(&limits).await?.backup_dump(limits).await
    }

    async fn import_records(&self, data: &[u8], limits: &StatementLimits) -> Result<u64> {
        self.pick(limits).await?.import_records(data, limits).await
    }

    async fn dump_rdf(
        &self,
        format: crate::core::transfer::RdfFormat,
        limits: StatementLimits,
    ) -> Result<DumpStream> {
        self.pick(&limits).await?.dump_rdf(format, limits).await
    }

    async fn import_rdf(
        &self,
        spec: crate::core::transfer::RdfImport,
        input: crate::core::transfer::ImportStream,
        limits: &StatementLimits,
    ) -> Result<u64> {
        self.pick(limits)
            .await?
            .import_rdf(spec, input, limits)
            .await
    }

    async fn restore_records(&self, data: &[u8], limits: &StatementLimits) -> Result<u64> {
        self.writer.restore_records(data, limits).await
    }

    async fn backup_image(&self, dest: std::path::PathBuf) -> Result<crate::backend::ImageSummary> {
        self.writer.backup_image(dest).await
    }

    async fn set_max_bytes(&self, max_bytes: Option<u64>) -> Result<()> {
        self.writer.set_max_bytes(max_bytes).await?;
        self.reader.set_max_bytes(max_bytes).await
    }

    fn engine_name(&self) -> &'static str {
        self.writer.engine_name()
    }

    fn unsupported(&self, operation: &'static str) -> Error {
        self.writer.unsupported(operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_names_keep_the_length_and_leave_the_generated_shape() {
        let r = reader_ident("dbf_orders_1a2b3c4d");
        assert_eq!(r, "dbf_orders-1a2b3c4d");
        assert_eq!(r.len(), "dbf_orders_1a2b3c4d".len());
        assert_ne!(
            reader_ident("dbf_a_b_00000000"),
            reader_ident("dbf_a_b_00000001")
        );
        assert_eq!(reader_ident("plain"), "plain-ro");
    }
}
