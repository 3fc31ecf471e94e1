//! Moving data in and out: exports and dumps as streams of file chunks, and imports of CSV files,
//! SQL scripts and NDJSON key dumps from any byte source, over `TransferService`.

use std::{
    collections::BTreeMap,
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use futures::{Future, Stream, StreamExt, stream::BoxStream};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    sync::oneshot,
};

use crate::{Client, ColumnType, Error, Result, Value, client::values, pb};

pub use pb::{ExportFormat, RdfFormat};

/// The size of the chunks an import sends: large enough that per-message overhead is
/// negligible, small enough that a slow server never has much of the file in flight.
pub const IMPORT_CHUNK_BYTES: usize = 64 * 1024;

/// Options of [`Client::export_table`] and [`Client::export_query`].
///
/// ```
/// use dbforge::{ExportFormat, ExportOptions};
/// let csv = ExportOptions::csv().delimiter(';').null_text("\\N");
/// let lines = ExportOptions::new(ExportFormat::Ndjson);
/// # let _ = (csv, lines);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// The file format.
    pub format: ExportFormat,
    /// CSV field delimiter; `,` when unset. Ignored by the JSON formats.
    pub delimiter: Option<char>,
    /// CSV text written for NULL; the empty field when unset. Ignored by the JSON formats.
    pub null_text: Option<String>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self::csv()
    }
}

impl ExportOptions {
    /// Exports in `format` with default CSV settings.
    pub fn new(format: ExportFormat) -> Self {
        ExportOptions {
            format,
            delimiter: None,
            null_text: None,
        }
    }

    /// RFC 4180 CSV with a header row.
    pub fn csv() -> Self {
        Self::new(ExportFormat::Csv)
    }

    /// Separates CSV fields with `d` (one ASCII character other than a quote or line break).
    pub fn delimiter(mut self, d: char) -> Self {
        self.delimiter = Some(d);
        self
    }

    /// Writes NULL as `text` in CSV, so that it differs from the empty string.
    pub fn null_text(mut self, text: impl Into<String>) -> Self {
        self.null_text = Some(text.into());
        self
    }

    fn csv_pb(&self) -> pb::CsvOptions {
        pb::CsvOptions {
            delimiter: self.delimiter.map(String::from).unwrap_or_default(),
            null_text: self.null_text.clone().unwrap_or_default(),
            no_header: false,
        }
    }
}

/// One piece of an exported file or dump.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// The next bytes of the file; concatenating every chunk's data in order gives the file.
    pub data: Vec<u8>,
    /// Rows (or keys) written so far, this chunk's included.
    pub rows: u64,
    /// Set on the last chunk.
    pub done: bool,
}

impl From<pb::FileChunk> for Chunk {
    fn from(c: pb::FileChunk) -> Self {
        Chunk {
            data: c.data,
            rows: u64::try_from(c.rows).unwrap_or_default(),
            done: c.done,
        }
    }
}

/// An export or dump in progress: a [`Stream`] of [`Chunk`]s read from the server as it is
/// polled, so a file of any size passes through bounded memory. Dropping it cancels the export
/// on the server. The stream fails if it ends without the server's last chunk, so a cut
/// connection never passes for a complete file.
pub struct Export {
    chunks: BoxStream<'static, Result<pb::FileChunk, tonic::Status>>,
    rows: u64,
    finished: bool,
    timeout: Option<Duration>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("rows", &self.rows)
            .field("finished", &self.finished)
            .finish()
    }
}

impl Export {
    fn start<S, M>(stream: S, timeout: Option<Duration>) -> Self
    where
        S: Stream<Item = Result<M, tonic::Status>> + Send + 'static,
        M: Into<Option<pb::FileChunk>> + 'static,
    {
        let chunks = stream
            .map(|m| {
                m.and_then(|m| {
                    m.into()
                        .ok_or_else(|| tonic::Status::internal("a message without a chunk"))
                })
            })
            .boxed();
        Export {
            chunks,
            rows: 0,
            finished: false,
            timeout,
            // The call's grpc-timeout bounds only its start; the whole stream is bounded here.
            deadline: timeout.map(|t| Box::pin(tokio::time::sleep(t))),
        }
    }

    /// Rows (or keys) received so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the whole file to `out` and returns the number of rows (or keys) in it.
    ///
    /// ```no_run
    /// # async fn demo(client: dbforge::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut file = tokio::fs::File::create("people.csv").await?;
    /// let export = client.export_table("app", "people", dbforge::ExportOptions::csv()).await?;
    /// let rows = export.write_to(&mut file).await?;
    /// println!("{rows} rows");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_to<W>(mut self, out: &mut W) -> Result<u64>
    where
        W: tokio::io::AsyncWrite + Unpin + ?Sized,
    {
        use tokio::io::AsyncWriteExt;
        while let Some(chunk) = self.next().await {
            out.write_all(&chunk?.data).await.map_err(Error::Io)?;
        }
        out.flush().await.map_err(Error::Io)?;
        Ok(self.rows)
    }

    /// Collects the whole file in memory (for small exports and tests).
    pub async fn bytes(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next().await {
            out.extend_from_slice(&chunk?.data);
        }
        Ok(out)
    }
}

impl Stream for Export {
    type Item = Result<Chunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            self.finished = true;
            let t = self.timeout.unwrap_or_default();
            return Poll::Ready(Some(Err(Error::Status(tonic::Status::deadline_exceeded(
                format!("the export did not finish within the client's timeout of {t:?}"),
            )))));
        }
        match self.chunks.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.finished = true;
                Poll::Ready(Some(Err(Error::Protocol(
                    "the export ended before its last chunk".into(),
                ))))
            }
            Poll::Ready(Some(Err(status))) => {
                self.finished = true;
                Poll::Ready(Some(Err(status.into())))
            }
            Poll::Ready(Some(Ok(chunk))) => {
                let chunk = Chunk::from(chunk);
                self.rows = chunk.rows;
                self.finished = chunk.done;
                Poll::Ready(Some(Ok(chunk)))
            }
        }
    }
}

impl From<pb::ExportTableResponse> for Option<pb::FileChunk> {
    fn from(r: pb::ExportTableResponse) -> Self {
        r.chunk
    }
}

impl From<pb::ExportQueryResponse> for Option<pb::FileChunk> {
    fn from(r: pb::ExportQueryResponse) -> Self {
        r.chunk
    }
}

impl From<pb::DumpDatabaseResponse> for Option<pb::FileChunk> {
    fn from(r: pb::DumpDatabaseResponse) -> Self {
        r.chunk
    }
}

/// The bytes of a file to import: in memory, from an [`AsyncRead`] (a file, stdin, a socket), or
/// from a stream or iterator of byte buffers. Whatever the source, the file goes to the server in
/// chunks of at most [`IMPORT_CHUNK_BYTES`], read only as fast as the server takes them.
///
/// ```
/// use dbforge::ImportSource;
/// # async fn demo() -> std::io::Result<()> {
/// let inline = ImportSource::from("id,name\n1,Ada\n");
/// let parts = ImportSource::iter([b"id,name\n".to_vec(), b"1,Ada\n".to_vec()]);
/// let file = ImportSource::from(tokio::fs::File::open("people.csv").await?);
/// # let _ = (inline, parts, file);
/// # Ok(())
/// # }
/// ```
pub struct ImportSource(BoxStream<'static, io::Result<Vec<u8>>>);

impl std::fmt::Debug for ImportSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ImportSource")
    }
}

impl ImportSource {
    /// Reads `reader` to its end.
    pub fn reader(reader: impl AsyncRead + Send + 'static) -> Self {
        let reader = Box::pin(reader);
        ImportSource(
            futures::stream::try_unfold(reader, |mut reader| async move {
                let mut buf = vec![0; IMPORT_CHUNK_BYTES];
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf.truncate(n);
                Ok(Some((buf, reader)))
            })
            .boxed(),
        )
    }

    /// Takes the buffers of `stream` in order; an error aborts the import.
    pub fn stream<B>(stream: impl Stream<Item = io::Result<B>> + Send + 'static) -> Self
    where
        B: Into<Vec<u8>>,
    {
        ImportSource(stream.map(|b| b.map(Into::into)).boxed())
    }

    /// Takes the buffers of `iter` in order.
    pub fn iter<B>(iter: impl IntoIterator<Item = B, IntoIter: Send + 'static>) -> Self
    where
        B: Into<Vec<u8>>,
    {
        ImportSource(futures::stream::iter(iter.into_iter().map(|b| Ok(b.into()))).boxed())
    }

    /// The source cut into chunks the server takes; large buffers are split, empty ones dropped.
    fn chunks(self) -> BoxStream<'static, io::Result<Vec<u8>>> {
        self.0
            .flat_map(|item| {
                let parts: Vec<io::Result<Vec<u8>>> = match item {
                    Ok(buf) if buf.len() <= IMPORT_CHUNK_BYTES => vec![Ok(buf)],
                    Ok(buf) => buf
                        .chunks(IMPORT_CHUNK_BYTES)
                        .map(|c| Ok(c.to_vec()))
                        .collect(),
                    Err(e) => vec![Err(e)],
                };
                futures::stream::iter(parts)
            })
            .filter(|item| futures::future::ready(!matches!(item, Ok(b) if b.is_empty())))
            .boxed()
    }
}

impl From<Vec<u8>> for ImportSource {
    fn from(b: Vec<u8>) -> Self {
        ImportSource::iter([b])
    }
}

impl From<&[u8]> for ImportSource {
    fn from(b: &[u8]) -> Self {
        ImportSource::from(b.to_vec())
    }
}

impl From<String> for ImportSource {
    fn from(s: String) -> Self {
        ImportSource::from(s.into_bytes())
    }
}

impl From<&str> for ImportSource {
    fn from(s: &str) -> Self {
        ImportSource::from(s.as_bytes())
    }
}

impl From<tokio::fs::File> for ImportSource {
    fn from(f: tokio::fs::File) -> Self {
        ImportSource::reader(f)
    }
}

/// Options of [`Client::import_csv`].
///
/// ```
/// use dbforge::{ColumnType, ImportCsvOptions};
/// // Into an existing table; report bad rows instead of failing.
/// let into = ImportCsvOptions::default().skip_bad_rows();
/// // Create the table; `zip` stays text even if every sampled value is a number.
/// let create = ImportCsvOptions::default()
///     .create()
///     .column_type("zip", ColumnType::Text)
///     .sample_rows(1000)
///     .delimiter(';')
///     .null_text("NULL");
/// # let _ = (into, create);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportCsvOptions {
    /// The field delimiter; `,` when unset.
    pub delimiter: Option<char>,
    /// The text read as NULL; the empty field when unset. A quoted empty field is always the
    /// empty string.
    pub null_text: Option<String>,
    /// The file has no header row: fields map to the table's columns in order.
    pub no_header: bool,
    /// Create the table (ALREADY_EXISTS when it exists) from the header and sampled values.
    pub create: bool,
    /// With `create`: types to use instead of the inferred ones, by header name.
    pub column_types: BTreeMap<String, ColumnType>,
    /// With `create`: rows sampled to infer types (the server's default of 100 when unset).
    pub sample_rows: Option<u32>,
    /// Insert the good rows and report the bad ones, instead of failing on the first.
    pub skip_bad_rows: bool,
}

impl ImportCsvOptions {
    /// Separates fields with `d`.
    pub fn delimiter(mut self, d: char) -> Self {
        self.delimiter = Some(d);
        self
    }

    /// Reads `text` as NULL.
    pub fn null_text(mut self, text: impl Into<String>) -> Self {
        self.null_text = Some(text.into());
        self
    }

    /// The file has no header row.
    pub fn no_header(mut self) -> Self {
        self.no_header = true;
        self
    }

    /// Creates the table from the file.
    pub fn create(mut self) -> Self {
        self.create = true;
        self
    }

    /// Creates column `name` with type `ty` instead of the inferred one (implies `create`).
    pub fn column_type(mut self, name: impl Into<String>, ty: ColumnType) -> Self {
        self.create = true;
        self.column_types.insert(name.into(), ty);
        self
    }

    /// Infers types from the first `n` rows (implies `create`).
    pub fn sample_rows(mut self, n: u32) -> Self {
        self.create = true;
        self.sample_rows = Some(n);
        self
    }

    /// Inserts the good rows and reports the bad ones.
    pub fn skip_bad_rows(mut self) -> Self {
        self.skip_bad_rows = true;
        self
    }

    fn header(self, database: &str, table: &str) -> pb::ImportCsvHeader {
        let ImportCsvOptions {
            delimiter,
            null_text,
            no_header,
            create,
            column_types,
            sample_rows,
            skip_bad_rows,
        } = self;
        pb::ImportCsvHeader {
            database: database.to_owned(),
            table: table.to_owned(),
            csv: Some(pb::CsvOptions {
                delimiter: delimiter.map(String::from).unwrap_or_default(),
                null_text: null_text.unwrap_or_default(),
                no_header,
            }),
            create: create.then(|| pb::CsvCreateTable {
                column_types: column_types
                    .into_iter()
                    .map(|(k, v)| (k, v as i32))
                    .collect(),
                sample_rows: sample_rows.unwrap_or(0),
            }),
            skip_bad_rows,
        }
    }
}

/// A row [`Client::import_csv`] rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    /// The 1-based line of the file the row starts on.
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// What [`Client::import_csv`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportCsvReport {
    /// Data rows read (the header excluded).
    pub rows_read: u64,
    /// Rows inserted.
    pub rows_inserted: u64,
    /// Rows rejected (with `skip_bad_rows`).
    pub rows_rejected: u64,
    /// The first 1 000 rejected rows.
    pub rejected: Vec<RejectedRow>,
    /// Whether the import created the table.
    pub table_created: bool,
}

impl From<pb::ImportCsvResponse> for ImportCsvReport {
    fn from(r: pb::ImportCsvResponse) -> Self {
        let pb::ImportCsvResponse {
            rows_read,
            rows_inserted,
            rows_rejected,
            rejected,
            table_created,
        } = r;
        ImportCsvReport {
            rows_read: count(rows_read),
            rows_inserted: count(rows_inserted),
            rows_rejected: count(rows_rejected),
            rejected: rejected
                .into_iter()
                .map(|r| RejectedRow {
                    line: count(r.line),
                    reason: r.reason,
                })
                .collect(),
            table_created,
        }
    }
}

/// What [`Client::import_sql`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportSqlReport {
    /// Statements run.
    pub statements: u64,
    /// Rows changed, summed over the statements.
    pub rows_affected: u64,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

/// The messages of a client-streaming import: `header`, then the source's chunks. When the
/// source fails, its error goes to `failed` and the stream stays open without ending, so the
/// caller can cancel the call: a request stream that simply ended would look like a complete
/// file and be applied.
fn import_messages<M: Send + 'static>(
    header: M,
    source: ImportSource,
    chunk: fn(Vec<u8>) -> M,
    failed: oneshot::Sender<io::Error>,
) -> impl Stream<Item = M> + Send + 'static {
    let failed = Arc::new(Mutex::new(Some(failed)));
    let chunks = source.chunks().filter_map(move |item| {
        let failed = Arc::clone(&failed);
        async move {
            match item {
                Ok(buf) => Some(chunk(buf)),
                Err(e) => {
                    let tx = failed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take();
                    if let Some(tx) = tx {
                        let _ = tx.send(e);
                    }
                    futures::future::pending::<Option<M>>().await
                }
            }
        }
    });
    futures::stream::once(futures::future::ready(header)).chain(chunks)
}

/// Runs an import call, or cancels it when the source fails first.
async fn run_import<T>(
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    failed: oneshot::Receiver<io::Error>,
) -> Result<T> {
    let failed = async {
        match failed.await {
            Ok(e) => e,
            // The source ended (or the call finished) without an error: wait for the call.
            Err(_) => futures::future::pending().await,
        }
    };
    tokio::select! {
        r = call => Ok(r?.into_inner()),
        // Dropping the call resets the stream: the server sees a cancelled import and applies
        // none of it.
        e = failed => Err(Error::Io(e)),
    }
}

impl Client {
    /// Streams a table's (or view's) rows as a file in `opts.format`.
    ///
    /// ```no_run
    /// use dbforge::{Client, ExportFormat, ExportOptions};
    /// use futures::TryStreamExt;
    ///
    /// # async fn demo(client: Client) -> Result<(), dbforge::Error> {
    /// let mut export = client.export_table("app", "people", ExportOptions::new(ExportFormat::Ndjson)).await?;
    /// while let Some(chunk) = export.try_next().await? {
    ///     // chunk.data: the next bytes of the file; chunk.rows: rows so far
    ///     eprintln!("{} rows", chunk.rows);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn export_table(
        &self,
        database: &str,
        table: &str,
        opts: ExportOptions,
    ) -> Result<Export> {
        let stream = self
            .transfer
            .clone()
            .export_table(self.settings.request(pb::ExportTableRequest {
                database: database.to_owned(),
                table: table.to_owned(),
                format: opts.format as i32,
                csv: Some(opts.csv_pb()),
            }))
            .await?
            .into_inner();
        Ok(Export::start(stream, self.settings.timeout))
    }

    /// Streams the rows of one read statement as a file in `opts.format`.
    pub async fn export_query(
        &self,
        database: &str,
        sql: &str,
        params: &[Value],
        opts: ExportOptions,
    ) -> Result<Export> {
        let stream = self
            .transfer
            .clone()
            .export_query(self.settings.request(pb::ExportQueryRequest {
                database: database.to_owned(),
                statement: Some(pb::Statement {
                    sql: sql.to_owned(),
                    params: values(params),
                }),
                format: opts.format as i32,
                csv: Some(opts.csv_pb()),
            }))
            .await?
            .into_inner();
        Ok(Export::start(stream, self.settings.timeout))
    }

    /// Streams a dump of the whole database: an SQL script in the backend's dialect that
    /// [`import_sql`](Self::import_sql) replays into a database of the same backend (Redis:
    /// NDJSON key records for [`import_ndjson`](Self::import_ndjson)).
    ///
    /// ```no_run
    /// # async fn demo(client: dbforge::Client) -> Result<(), dbforge::Error> {
    /// let script = client.dump_database("app", false).await?.bytes().await?;
    /// client.create_database("app-copy", dbforge::CreateOptions::default()).await?;
    /// client.import_sql("app-copy", script).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn dump_database(&self, database: &str, schema_only: bool) -> Result<Export> {
        let stream = self
            .transfer
            .clone()
            .dump_database(self.settings.request(pb::DumpDatabaseRequest {
                database: database.to_owned(),
                schema_only,
                rdf_format: pb::RdfFormat::Unspecified as i32,
            }))
            .await?
            .into_inner();
        Ok(Export::start(stream, self.settings.timeout))
    }

    /// Streams a graph database's quads as an RDF file in `format` (N-Triples and Turtle hold
    /// the default graph only).
    ///
    /// ```no_run
    /// # async fn demo(client: dbforge::Client) -> Result<(), dbforge::Error> {
    /// let turtle = client.dump_rdf("kb", dbforge::RdfFormat::Turtle).await?.bytes().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn dump_rdf(&self, database: &str, format: pb::RdfFormat) -> Result<Export> {
        let stream = self
            .transfer
            .clone()
            .dump_database(self.settings.request(pb::DumpDatabaseRequest {
                database: database.to_owned(),
                schema_only: false,
                rdf_format: format as i32,
            }))
            .await?
            .into_inner();
        Ok(Export::start(stream, self.settings.timeout))
    }

    /// Loads an RDF file in `format` into a graph database, all or nothing; returns the quads
    /// read. `graph` (N-Triples and Turtle only) names the graph its triples go into.
    ///
    /// ```no_run
    /// # async fn demo(client: dbforge::Client) -> Result<(), dbforge::Error> {
    /// let ttl = "@prefix ex: <http://example.com/> . ex:a ex:b ex:c .";
    /// client.import_rdf("kb", ttl.as_bytes().to_vec(), dbforge::RdfFormat::Turtle, None).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn import_rdf(
        &self,
        database: &str,
        source: impl Into<ImportSource>,
        format: pb::RdfFormat,
        graph: Option<&str>,
    ) -> Result<u64> {
        use pb::import_rdf_request::Message;
        let (tx, rx) = oneshot::channel();
        let header = pb::ImportRdfRequest {
            message: Some(Message::Header(pb::ImportRdfHeader {
                database: database.to_owned(),
                format: format as i32,
                base_iri: String::new(),
                graph: graph.unwrap_or_default().to_owned(),
            })),
        };
        let messages = import_messages(
            header,
            source.into(),
            |b| pb::ImportRdfRequest {
                message: Some(Message::Chunk(b)),
            },
            tx,
        );
        let mut client = self.transfer.clone();
        let resp = run_import(client.import_rdf(self.settings.request(messages)), rx).await?;
        Ok(count(resp.quads))
    }

    /// Imports a CSV file into `table`. Without `skip_bad_rows` it is all or nothing: a bad row
    /// fails the call with INVALID_ARGUMENT naming its line.
    ///
    /// ```no_run
    /// use dbforge::{ColumnType, ImportCsvOptions};
    /// # async fn demo(client: dbforge::Client) -> Result<(), dbforge::Error> {
    /// let file = tokio::fs::File::open("people.csv").await.map_err(dbforge::Error::Io)?;
    /// let report = client
    ///     .import_csv("app", "people", file, ImportCsvOptions::default().create().column_type("zip", ColumnType::Text).skip_bad_rows())
    ///     .await?;
    /// println!("{} of {} rows inserted", report.rows_inserted, report.rows_read);
    /// for bad in &report.rejected {
    ///     eprintln!("line {}: {}", bad.line, bad.reason);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn import_csv(
        &self,
        database: &str,
        table: &str,
        source: impl Into<ImportSource>,
        opts: ImportCsvOptions,
    ) -> Result<ImportCsvReport> {
        use pb::import_csv_request::Message;
        let (tx, rx) = oneshot::channel();
        let header = pb::ImportCsvRequest {
            message: Some(Message::Header(opts.header(database, table))),
        };
        let messages = import_messages(
            header,
            source.into(),
            |b| pb::ImportCsvRequest {
                message: Some(Message::Chunk(b)),
            },
            tx,
        );
        let mut client = self.transfer.clone();
        let resp = run_import(client.import_csv(self.settings.request(messages)), rx).await?;
        Ok(resp.into())
    }

    /// Runs a multi-statement SQL script, such as a [`dump_database`](Self::dump_database)
    /// output. On SQLite and PostgreSQL it applies entirely or not at all.
    ///
    /// ```no_run
    /// # async fn demo(client: dbforge::Client) -> Result<(), dbforge::Error> {
    /// let report = client
    ///     .import_sql("app", "CREATE TABLE t (a INTEGER);\nINSERT INTO t VALUES (1), (2);\n")
    ///     .await?;
    /// assert_eq!((report.statements, report.rows_affected), (2, 2));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn import_sql(
        &self,
        database: &str,
        source: impl Into<ImportSource>,
    ) -> Result<ImportSqlReport> {
        use pb::import_sql_request::Message;
        let (tx, rx) = oneshot::channel();
        let header = pb::ImportSqlRequest {
            message: Some(Message::Header(pb::ImportSqlHeader {
                database: database.to_owned(),
            })),
        };
        let messages = import_messages(
            header,
            source.into(),
            |b| pb::ImportSqlRequest {
                message: Some(Message::Chunk(b)),
            },
            tx,
        );
        let mut client = self.transfer.clone();
        let resp = run_import(client.import_sql(self.settings.request(messages)), rx).await?;
        Ok(ImportSqlReport {
            statements: count(resp.statements),
            rows_affected: count(resp.rows_affected),
        })
    }

    /// Imports NDJSON key records (a Redis [`dump_database`](Self::dump_database)) atomically;
    /// returns how many keys it wrote.
    pub async fn import_ndjson(
        &self,
        database: &str,
        source: impl Into<ImportSource>,
    ) -> Result<u64> {
        use pb::import_ndjson_request::Message;
        let (tx, rx) = oneshot::channel();
        let header = pb::ImportNdjsonRequest {
            message: Some(Message::Header(pb::ImportNdjsonHeader {
                database: database.to_owned(),
            })),
        };
        let messages = import_messages(
            header,
            source.into(),
            |b| pb::ImportNdjsonRequest {
                message: Some(Message::Chunk(b)),
            },
            tx,
        );
        let mut client = self.transfer.clone();
        let resp = run_import(client.import_ndjson(self.settings.request(messages)), rx).await?;
        Ok(count(resp.records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(source: ImportSource) -> Vec<Vec<u8>> {
        source
            .chunks()
            .map(|c| c.expect("chunk"))
            .collect::<Vec<_>>()
            .await
    }

    #[tokio::test]
    async fn sources_are_cut_into_bounded_chunks() {
        let big = vec![b'x'; IMPORT_CHUNK_BYTES * 2 + 10];
        let sizes: Vec<usize> = collect(ImportSource::from(big.clone()))
            .await
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [IMPORT_CHUNK_BYTES, IMPORT_CHUNK_BYTES, 10]);

        let reader = ImportSource::reader(std::io::Cursor::new(big.clone()));
        let chunks = collect(reader).await;
        assert!(chunks.iter().all(|c| c.len() <= IMPORT_CHUNK_BYTES));
        assert_eq!(chunks.concat(), big);

        let parts = ImportSource::iter([b"a".to_vec(), Vec::new(), b"bc".to_vec()]);
        assert_eq!(collect(parts).await, [b"a".to_vec(), b"bc".to_vec()]);
    }

    #[tokio::test]
    async fn a_failing_source_reports_and_never_ends_the_request() {
        let (tx, mut rx) = oneshot::channel();
        let source = ImportSource::stream(futures::stream::iter([
            Ok(b"1,2\n".to_vec()),
            Err(io::Error::other("disk gone")),
        ]));
        let mut messages = Box::pin(import_messages(0usize, source, |b| b.len(), tx));
        assert_eq!(messages.next().await, Some(0));
        assert_eq!(messages.next().await, Some(4));
        // The stream must stay open: ending it would commit a truncated file.
        let next = tokio::time::timeout(Duration::from_millis(50), messages.next()).await;
        assert!(next.is_err(), "the request stream ended after a read error");
        assert_eq!(
            rx.try_recv().expect("error reported").to_string(),
            "disk gone"
        );
    }

    #[test]
    fn csv_options_fill_the_header() {
        let h = ImportCsvOptions::default()
            .delimiter(';')
            .null_text("\\N")
            .column_type("zip", ColumnType::Text)
            .sample_rows(5)
            .skip_bad_rows()
            .header("db", "t");
        assert_eq!(h.csv.as_ref().map(|c| c.delimiter.as_str()), Some(";"));
        assert_eq!(h.csv.as_ref().map(|c| c.null_text.as_str()), Some("\\N"));
        let create = h.create.expect("create");
        assert_eq!(create.sample_rows, 5);
        assert_eq!(create.column_types["zip"], ColumnType::Text as i32);
        assert!(h.skip_bad_rows);
        assert!(
            ImportCsvOptions::default()
                .header("db", "t")
                .create
                .is_none()
        );
    }
}
