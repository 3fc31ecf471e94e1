//! `dbforge.v1.TransferService`: exports, dumps and imports.

use std::sync::Arc;

use futures::{Stream, StreamExt, stream};
use tonic::{Request, Response, Status, Streaming};

use super::{Call, ResponseStream, caller, convert, limits::KeyLimits};
use crate::{
    backend::DumpStream,
    core::{
        error::Error,
        forge::Forge,
        names::Identifier,
        transfer::{CsvOptions, ExportFormat, ExportSource, ImportStream},
        value::Statement,
    },
    pb::{self, transfer_service_server::TransferService},
};

/// The TransferService adapter.
#[derive(Debug, Clone)]
pub struct TransferApi {
    forge: Forge,
    limits: Arc<KeyLimits>,
}

impl TransferApi {
    /// Wraps the Forge; exports count against `limits` like other streams.
    pub fn new(forge: Forge, limits: Arc<KeyLimits>) -> Self {
        Self { forge, limits }
    }

    /// Starts an export or dump stream and audits it until it ends.
    async fn stream<T: Send + 'static>(
        &self,
        call: Call,
        who: &crate::core::access::Principal,
        started: impl Future<Output = Result<DumpStream, Error>>,
        wrap: fn(pb::FileChunk) -> T,
        rows_of: fn(&T) -> Option<u64>,
    ) -> Result<Response<ResponseStream<T>>, Status> {
        let permit = match self.limits.open_stream(who) {
            Ok(p) => p,
            Err(e) => return Err(call.failed(e.into()).await),
        };
        match started.await {
            Ok(chunks) => Ok(Response::new(Box::pin(call.stream(
                Box::pin(file_chunks(chunks, wrap)),
                rows_of,
                permit,
            )))),
            Err(e) => Err(call.failed(e.into()).await),
        }
    }
}

/// The chunks of a file with a running row count, then a last empty chunk marked `done`.
fn file_chunks<T>(
    chunks: DumpStream,
    wrap: fn(pb::FileChunk) -> T,
) -> impl Stream<Item = Result<T, Status>> + Send
where
    T: Send + 'static,
{
    stream::unfold((Some(chunks), 0i64), move |(chunks, rows)| async move {
        let mut chunks = chunks?;
        match chunks.next().await {
            Some(Ok(c)) => {
                let rows = rows + c.rows as i64;
                let msg = wrap(pb::FileChunk {
                    data: c.data,
                    rows,
                    done: false,
                });
                Some((Ok(msg), (Some(chunks), rows)))
            }
            Some(Err(e)) => Some((Err(Status::from(e)), (None, rows))),
            None => Some((
                Ok(wrap(pb::FileChunk {
                    data: Vec::new(),
                    rows,
                    done: true,
                })),
                (None, rows),
            )),
        }
    })
}

/// The rows count of a finished file, for the audit record.
fn done_rows(c: Option<&pb::FileChunk>) -> Option<u64> {
    c.filter(|c| c.done).map(|c| c.rows.unsigned_abs())
}

/// A message of an import stream: its header (first message only) or a chunk of the file.
trait ImportMessage: Send + 'static {
    /// The header's type.
    type Header;
    /// Splits the message into its header or its chunk; `None` when it carries neither.
    fn split(self) -> Option<Result<Self::Header, Vec<u8>>>;
}

macro_rules! import_message {
    ($msg:ty, $header:ty, $oneof:path) => {
        impl ImportMessage for $msg {
            type Header = $header;
            fn split(self) -> Option<Result<$header, Vec<u8>>> {
                use $oneof as M;
                match self.message? {
                    M::Header(h) => Some(Ok(h)),
                    M::Chunk(c) => Some(Err(c)),
                }
            }
        }
    };
}

import_message!(
    pb::ImportCsvRequest,
    pb::ImportCsvHeader,
    pb::import_csv_request::Message
);
import_message!(
    pb::ImportSqlRequest,
    pb::ImportSqlHeader,
    pb::import_sql_request::Message
);
import_message!(
    pb::ImportNdjsonRequest,
    pb::ImportNdjsonHeader,
    pb::import_ndjson_request::Message
);
import_message!(
    pb::ImportRdfRequest,
    pb::ImportRdfHeader,
    pb::import_rdf_request::Message
);

/// Reads an import's header and returns it with the stream of the chunks after it. A second
/// header is INVALID_ARGUMENT, and so is a broken client stream: either rolls the import back.
async fn header_and_chunks<M: ImportMessage>(
    mut stream: Streaming<M>,
) -> Result<(M::Header, ImportStream), Status> {
    let header = match stream.message().await?.and_then(M::split) {
        Some(Ok(h)) => h,
        Some(Err(_)) | None => {
            return Err(Error::invalid("header", "the first message must be the header").into());
        }
    };
    let chunks = stream
        .map(|m| match m.map(M::split) {
            Ok(Some(Err(chunk))) => Ok(chunk),
            Ok(Some(Ok(_))) => Err(Error::invalid(
                "header",
                "only the first message may carry the header; the import was rolled back",
            )),
            Ok(None) => Ok(Vec::new()),
            Err(status) => Err(Error::invalid(
                "chunk",
                format!("the client's stream failed: {}", status.message()),
            )),
        })
        .boxed();
    Ok((header, chunks))
}

#[tonic::async_trait]
impl TransferService for TransferApi {
    type ExportTableStream = ResponseStream<pb::ExportTableResponse>;
    type ExportQueryStream = ResponseStream<pb::ExportQueryResponse>;
    type DumpDatabaseStream = ResponseStream<pb::DumpDatabaseResponse>;

    async fn export_table(
        &self,
        req: Request<pb::ExportTableRequest>,
    ) -> Result<Response<Self::ExportTableStream>, Status> {
        let who = caller(&req)?;
        let pb::ExportTableRequest {
            database,
            table,
            format,
            csv,
        } = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "ExportTable")
            .database(&database)
            .statement(format!("table {table:?}"));
        let started = async {
            let source = ExportSource::Table(Identifier::parse("table", &table)?);
            let (format, csv) = export_options(format, csv)?;
            self.forge
                .export(&who, &database, source, format, csv)
                .await
        };
        self.stream(
            call,
            &who,
            started,
            |c| pb::ExportTableResponse { chunk: Some(c) },
            |r| done_rows(r.chunk.as_ref()),
        )
        .await
    }

    async fn export_query(
        &self,
        req: Request<pb::ExportQueryRequest>,
    ) -> Result<Response<Self::ExportQueryStream>, Status> {
        let who = caller(&req)?;
        let pb::ExportQueryRequest {
            database,
            statement,
            format,
            csv,
        } = req.into_inner();
        let statement = statement.unwrap_or_default();
        let call = Call::new(self.forge.audit(), &who, "ExportQuery")
            .database(&database)
            .statement(statement.sql.clone());
        let started = async {
            let source = ExportSource::Query(Statement::try_from(statement)?);
            let (format, csv) = export_options(format, csv)?;
            self.forge
                .export(&who, &database, source, format, csv)
                .await
        };
        self.stream(
            call,
            &who,
            started,
            |c| pb::ExportQueryResponse { chunk: Some(c) },
            |r| done_rows(r.chunk.as_ref()),
        )
        .await
    }

    async fn dump_database(
        &self,
        req: Request<pb::DumpDatabaseRequest>,
    ) -> Result<Response<Self::DumpDatabaseStream>, Status> {
        let who = caller(&req)?;
        let pb::DumpDatabaseRequest {
            database,
            schema_only,
            rdf_format,
        } = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "DumpDatabase").database(&database);
        let started = async {
            match convert::rdf_format(rdf_format)? {
                Some(format) => self.forge.dump_rdf(&who, &database, format).await,
                None => self.forge.dump(&who, &database, schema_only).await,
            }
        };
        self.stream(
            call,
            &who,
            started,
            |c| pb::DumpDatabaseResponse { chunk: Some(c) },
            |r| done_rows(r.chunk.as_ref()),
        )
        .await
    }

    async fn import_csv(
        &self,
        req: Request<Streaming<pb::ImportCsvRequest>>,
    ) -> Result<Response<pb::ImportCsvResponse>, Status> {
        let who = caller(&req)?;
        let (header, chunks) = header_and_chunks(req.into_inner()).await?;
        let call = Call::new(self.forge.audit(), &who, "ImportCsv")
            .database(&header.database)
            .statement(format!("table {:?}", header.table));
        let result = async {
            let (database, spec) = <(String, _)>::try_from(header)?;
            let report = self.forge.import_csv(&who, &database, spec, chunks).await?;
            Ok(pb::ImportCsvResponse::from(report))
        }
        .await;
        call.done(result, |r| Some(r.rows_inserted.unsigned_abs()))
            .await
            .map(Response::new)
    }

    async fn import_sql(
        &self,
        req: Request<Streaming<pb::ImportSqlRequest>>,
    ) -> Result<Response<pb::ImportSqlResponse>, Status> {
        let who = caller(&req)?;
        let (pb::ImportSqlHeader { database }, chunks) =
            header_and_chunks(req.into_inner()).await?;
        let call = Call::new(self.forge.audit(), &who, "ImportSql").database(&database);
        let result = async {
            let report = self.forge.import_sql(&who, &database, chunks).await?;
            Ok(pb::ImportSqlResponse {
                statements: report.statements as i64,
                rows_affected: report.rows_affected as i64,
            })
        }
        .await;
        call.done(result, |r| Some(r.rows_affected.unsigned_abs()))
            .await
            .map(Response::new)
    }

    async fn import_ndjson(
        &self,
        req: Request<Streaming<pb::ImportNdjsonRequest>>,
    ) -> Result<Response<pb::ImportNdjsonResponse>, Status> {
        let who = caller(&req)?;
        let (pb::ImportNdjsonHeader { database }, chunks) =
            header_and_chunks(req.into_inner()).await?;
        let call = Call::new(self.forge.audit(), &who, "ImportNdjson").database(&database);
        let result = async {
            let records = self.forge.import_ndjson(&who, &database, chunks).await?;
            Ok(pb::ImportNdjsonResponse {
                records: records as i64,
            })
        }
        .await;
        call.done(result, |r| Some(r.records.unsigned_abs()))
            .await
            .map(Response::new)
    }

    async fn import_rdf(
        &self,
        req: Request<Streaming<pb::ImportRdfRequest>>,
    ) -> Result<Response<pb::ImportRdfResponse>, Status> {
        let who = caller(&req)?;
        let (header, chunks) = header_and_chunks(req.into_inner()).await?;
        let call = Call::new(self.forge.audit(), &who, "ImportRdf").database(&header.database);
        let result = async {
            let (database, spec) = <(String, _)>::try_from(header)?;
            let quads = self.forge.import_rdf(&who, &database, spec, chunks).await?;
            Ok(pb::ImportRdfResponse {
                quads: quads as i64,
            })
        }
        .await;
        call.done(result, |r| Some(r.quads.unsigned_abs()))
            .await
            .map(Response::new)
    }
}

fn export_options(
    format: i32,
    csv: Option<pb::CsvOptions>,
) -> Result<(ExportFormat, CsvOptions), Error> {
    Ok((convert::export_format(format)?, CsvOptions::try_from(csv)?))
}
