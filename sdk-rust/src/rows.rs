//! Results: columns, rows, whole results and row streams.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::{Future, Stream, StreamExt};

use crate::{Error, FromValue, Result, Value, pb};

/// Metadata of a result column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Declared type as the backend reports it; empty for expressions.
    pub declared_type: String,
    /// The Value kind the column yields.
    pub kind: pb::ValueKind,
}

impl From<pb::Column> for Column {
    fn from(c: pb::Column) -> Self {
        Column {
            kind: pb::ValueKind::try_from(c.kind).unwrap_or(pb::ValueKind::Unspecified),
            name: c.name,
            declared_type: c.declared_type,
        }
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Arc<[Column]>,
    values: Vec<Value>,
}

impl Row {
    pub(crate) fn from_pb(columns: &Arc<[Column]>, row: pb::Row) -> Result<Self> {
        Ok(Row {
            columns: Arc::clone(columns),
            values: row
                .values
                .into_iter()
                .map(Value::try_from)
                .collect::<Result<_>>()?,
        })
    }

    /// The cells, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Takes the cells.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// The columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The cell at `index`, converted.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T> {
        let v = self
            .values
            .get(index)
            .ok_or_else(|| Error::NoSuchColumn(index.to_string()))?;
        T::from_value(v.clone())
    }

    /// The cell of the column named `name`, converted.
    pub fn get_by_name<T: FromValue>(&self, name: &str) -> Result<T> {
        let index = self
            .columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| Error::NoSuchColumn(name.to_owned()))?;
        self.get(index)
    }
}

/// The result of a statement run as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecResult {
    /// Rows inserted, updated or deleted.
    pub rows_affected: u64,
    /// The id of the last inserted row, when the statement inserted one.
    pub last_insert_id: Option<i64>,
    /// Result columns (empty for statements that return no rows).
    pub columns: Vec<Column>,
    /// Result rows.
    pub rows: Vec<Row>,
}

impl TryFrom<pb::StatementResult> for ExecResult {
    type Error = Error;
    fn try_from(r: pb::StatementResult) -> Result<Self> {
        let columns: Arc<[Column]> = r.columns.into_iter().map(Column::from).collect();
        Ok(ExecResult {
            rows_affected: u64::try_from(r.rows_affected).unwrap_or_default(),
            last_insert_id: r.last_insert_id,
            rows: r
                .rows
                .into_iter()
                .map(|row| Row::from_pb(&columns, row))
                .collect::<Result<_>>()?,
            columns: columns.to_vec(),
        })
    }
}

/// Why a stream ended early.
pub use pb::Truncation;

/// The end of a stream: counts, timing, truncation.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Rows sent.
    pub row_count: u64,
    /// Rows changed by a writing statement.
    pub rows_affected: u64,
    /// Server-side time from start to the last row.
    pub elapsed: Duration,
    /// Whether a limit cut the result, and which.
    pub truncation: Truncation,
    /// On a resumable stream a budget cut while rows remain: the token that fetches the next
    /// page ([`Client::resume_query`](crate::Client::resume_query)).
    pub resume_token: Option<String>,
}

impl From<pb::ResultSummary> for Summary {
    fn from(s: pb::ResultSummary) -> Self {
        Summary {
            row_count: u64::try_from(s.row_count).unwrap_or_default(),
            rows_affected: u64::try_from(s.rows_affected).unwrap_or_default(),
            elapsed: s
                .elapsed
                .and_then(|d| Duration::try_from(d).ok())
                .unwrap_or_default(),
            truncation: Truncation::try_from(s.truncation).unwrap_or(Truncation::Unspecified),
            resume_token: Some(s.resume_token).filter(|t| !t.is_empty()),
        }
    }
}

/// A part of a streamed result, common to Query and SelectRows.
pub(crate) enum Part {
    Header(pb::ResultHeader),
    Batch(pb::RowBatch),
    Summary(pb::ResultSummary),
}

impl From<pb::QueryResponse> for Option<Part> {
    fn from(r: pb::QueryResponse) -> Self {
        use pb::query_response::Kind;
        r.kind.and_then(|k| match k {
            Kind::Header(h) => Some(Part::Header(h)),
            Kind::Batch(b) => Some(Part::Batch(b)),
            Kind::Summary(s) => Some(Part::Summary(s)),
            // Only a summarized Query sends these, and `Rows` never asks for one.
            Kind::ColumnSummaries(_) => None,
        })
    }
}

impl From<pb::SelectRowsResponse> for Option<Part> {
    fn from(r: pb::SelectRowsResponse) -> Self {
        use pb::select_rows_response::Kind;
        r.kind.map(|k| match k {
            Kind::Header(h) => Part::Header(h),
            Kind::Batch(b) => Part::Batch(b),
            Kind::Summary(s) => Part::Summary(s),
        })
    }
}

pub(crate) type PartStream =
    Pin<Box<dyn Stream<Item = Result<Option<Part>, tonic::Status>> + Send>>;

/// Continues a resumable stream after a transport error: given the token and the rows the
/// page may still send (0: the server's limit), the resumed stream (header first).
pub(crate) type Resumer = Arc<dyn Fn(String, u64) -> Resuming + Send + Sync>;

/// A resume call on its way.
type Resuming = Pin<Box<dyn Future<Output = Result<PartStream>> + Send>>;

/// How many times a resumable [`Rows`] resumes after transport errors before it gives up.
const AUTO_RESUMES: u32 = 3;

/// Auto-resume state of a resumable [`Rows`].
struct AutoResume {
    resume: Resumer,
    /// The page's row budget (0: the server's).
    max_rows: u64,
    left: u32,
    /// The resume in progress, and the error that started it (returned if it fails).
    pending: Option<(Resuming, Error)>,
}

/// A streamed result: a [`Stream`] of [`Row`]s that reads from the server as it is polled.
/// Dropping it cancels the query on the server.
///
/// The columns are known as soon as the stream is returned; the [`Summary`] once it has ended.
pub struct Rows {
    columns: Arc<[Column]>,
    parts: PartStream,
    buffered: VecDeque<pb::Row>,
    summary: Option<Summary>,
    finished: bool,
    timeout: Option<Duration>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// On a resumable stream: the stream id and the rows received, from the last batch's token.
    position: Option<(String, u64)>,
    /// Rows handed to the caller.
    yielded: u64,
    auto: Option<AutoResume>,
}

fn deadline_exceeded(t: Duration) -> Error {
    Error::Status(tonic::Status::deadline_exceeded(format!(
        "the result did not arrive within the client's timeout of {t:?}"
    )))
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("columns", &self.columns)
            .field("buffered", &self.buffered.len())
            .field("summary", &self.summary)
            .finish()
    }
}

impl Rows {
    /// Waits for the header and returns the stream.
    /// With `timeout`, the whole stream must end within it: the server's `grpc-timeout` only
    /// bounds the call until its response starts.
    pub(crate) async fn start<S, M>(stream: S, timeout: Option<Duration>) -> Result<Self>
    where
        S: Stream<Item = Result<M, tonic::Status>> + Send + 'static,
        M: Into<Option<Part>> + 'static,
    {
        let mut parts: PartStream = Box::pin(stream.map(|m| m.map(Into::into)));
        let deadline = timeout.map(|t| Box::pin(tokio::time::sleep(t)));
        let first = match timeout {
            Some(t) => tokio::time::timeout(t, parts.next())
                .await
                .map_err(|_| deadline_exceeded(t))?,
            None => parts.next().await,
        };
        let columns = match first {
            Some(Ok(Some(Part::Header(h)))) => h.columns.into_iter().map(Column::from).collect(),
            Some(Ok(_)) => {
                return Err(Error::Protocol(
                    "the stream did not start with a header".into(),
                ));
            }
            Some(Err(status)) => return Err(status.into()),
            None => return Err(Error::Protocol("the stream ended before its header".into())),
        };
        Ok(Rows {
            columns,
            parts,
            buffered: VecDeque::new(),
            summary: None,
            finished: false,
            timeout,
            deadline,
            position: None,
            yielded: 0,
            auto: None,
        })
    }

    /// Resumes after transport errors (a dropped connection) with `resume`, within a page
    /// budget of `max_rows`.
    pub(crate) fn auto_resume(mut self, resume: Resumer, max_rows: u64) -> Self {
        self.auto = Some(AutoResume {
            resume,
            max_rows,
            left: AUTO_RESUMES,
            pending: None,
        });
        self
    }

    /// On a resumable stream ([`QueryOptions::resumable`](crate::QueryOptions::resumable)): the
    /// token that resumes at the first row this `Rows` has not yielded yet, with
    /// [`Client::resume_query`](crate::Client::resume_query) — after an error, or after a budget
    /// cut the page. `None` on other streams and once the whole result was read.
    pub fn resume_token(&self) -> Option<String> {
        if let Some(s) = &self.summary {
            // The summary comes after every batch was yielded.
            return s.resume_token.clone();
        }
        let (id, received) = self.position.as_ref()?;
        Some(format!("{id}.{}", received - self.buffered.len() as u64))
    }

    /// Whether `status` is the transport failing (rather than the server answering), which a
    /// resume may repair.
    fn is_transport_error(status: &tonic::Status) -> bool {
        // A server's own INTERNAL or UNAVAILABLE closes its cursor too: the resume then finds
        // nothing and the original error is returned, one round trip later.
        matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
        )
    }

    /// Starts a resume after `status` broke the stream, if this stream may; gives the status
    /// back otherwise.
    fn try_resume(&mut self, status: tonic::Status) -> Option<Error> {
        let token = self.resume_token();
        let yielded = self.yielded;
        let Some(auto) = self.auto.as_mut() else {
            return Some(status.into());
        };
        let Some(token) = token.filter(|_| auto.left > 0 && Self::is_transport_error(&status))
        else {
            return Some(status.into());
        };
        let max_rows = match auto.max_rows {
            0 => 0,
            n if n > yielded => n - yielded,
            _ => return Some(status.into()),
        };
        auto.left -= 1;
        auto.pending = Some(((auto.resume)(token, max_rows), status.into()));
        None
    }

    /// The result columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The summary, once the stream has ended.
    pub fn summary(&self) -> Option<&Summary> {
        self.summary.as_ref()
    }

    /// Reads every remaining row.
    pub async fn collect_rows(&mut self) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        while let Some(row) = self.next().await {
            out.push(row?);
        }
        Ok(out)
    }
}

impl Stream for Rows {
    type Item = Result<Row>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(row) = self.buffered.pop_front() {
                self.yielded += 1;
                return Poll::Ready(Some(Row::from_pb(&self.columns, row)));
            }
            if self.finished {
                return Poll::Ready(None);
            }
            if let Some(auto) = self.auto.as_mut()
                && let Some((resuming, _)) = auto.pending.as_mut()
            {
                match resuming.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(parts)) => {
                        auto.pending = None;
                        self.parts = parts;
                    }
                    Poll::Ready(Err(_)) => {
                        // The first failure is the one to report: the resume's own error
                        // (say, the window expired) would hide why the stream broke.
                        let (_, broke) = auto.pending.take().expect("a pending resume");
                        self.finished = true;
                        return Poll::Ready(Some(Err(broke)));
                    }
                }
            }
            if let Some(deadline) = self.deadline.as_mut()
                && deadline.as_mut().poll(cx).is_ready()
            {
                self.finished = true;
                let t = self.timeout.unwrap_or_default();
                return Poll::Ready(Some(Err(deadline_exceeded(t))));
            }
            match self.parts.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.finished = true;
                    if self.summary.is_none() {
                        return Poll::Ready(Some(Err(Error::Protocol(
                            "the stream ended without a summary".into(),
                        ))));
                    }
                }
                Poll::Ready(Some(Err(status))) => {
                    if let Some(e) = self.try_resume(status) {
                        self.finished = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                Poll::Ready(Some(Ok(Some(Part::Batch(batch))))) => {
                    if let Some((id, offset)) = batch.resume_token.split_once('.')
                        && let Ok(offset) = offset.parse()
                    {
                        self.position = Some((id.to_owned(), offset));
                    }
                    self.buffered = batch.rows.into();
                }
                Poll::Ready(Some(Ok(Some(Part::Summary(s))))) => {
                    self.summary = Some(s.into());
                }
                Poll::Ready(Some(Ok(_))) => {}
            }
        }
    }
}
