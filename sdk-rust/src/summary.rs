//! Column summaries of a query's result (`Query` with `summarize`): what an agent reads
//! instead of the rows when the rows would not fit its context.

use crate::{Client, Column, Error, Result, Summary, Value, client::values, pb};

/// One column of a result, summarized by [`Client::summarize`].
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSummary {
    /// The column's name.
    pub name: String,
    /// Values that are not NULL.
    pub count: u64,
    /// NULLs.
    pub nulls: u64,
    /// Distinct non-NULL values.
    pub distinct: u64,
    /// Whether `distinct` is exact (false past 10,000 distinct values: a HyperLogLog++
    /// estimate).
    pub distinct_exact: bool,
    /// The smallest value (numbers < text < bytes; none for JSON).
    pub min: Option<Value>,
    /// The largest value.
    pub max: Option<Value>,
    /// The most frequent values with their counts, most frequent first (at most 5).
    pub top_values: Vec<(Value, u64)>,
    /// Whether the counts of `top_values` are exact.
    pub top_values_exact: bool,
}

/// A summarized result: its columns, one summary per column, and the stream's summary (rows
/// read, and whether a limit cut them).
#[derive(Debug, Clone, PartialEq)]
pub struct Summarized {
    /// The result's columns.
    pub columns: Vec<Column>,
    /// One summary per column, in order.
    pub summaries: Vec<ColumnSummary>,
    /// Rows read and time taken; `truncation` says whether a limit cut the rows summarized.
    pub summary: Summary,
}

fn value(v: Option<pb::Value>) -> Result<Option<Value>> {
    v.map(Value::try_from).transpose()
}

impl TryFrom<pb::ColumnSummary> for ColumnSummary {
    type Error = Error;
    fn try_from(c: pb::ColumnSummary) -> Result<Self> {
        let pb::ColumnSummary {
            name,
            count,
            nulls,
            distinct,
            distinct_exact,
            min,
            max,
            top_values,
            top_values_exact,
        } = c;
        let n = |x: i64| u64::try_from(x).unwrap_or_default();
        Ok(ColumnSummary {
            name,
            count: n(count),
            nulls: n(nulls),
            distinct: n(distinct),
            distinct_exact,
            min: value(min)?,
            max: value(max)?,
            top_values: top_values
                .into_iter()
                .map(|t| Ok((value(t.value)?.unwrap_or(Value::Null), n(t.count))))
                .collect::<Result<_>>()?,
            top_values_exact,
        })
    }
}

impl Client {
    /// Runs one statement and returns a summary of each result column instead of its rows:
    /// count, NULLs, distinct values, minimum, maximum, most frequent values. The gateway reads
    /// every row (at most `max_rows`; 0 means the server's limit) in one pass, in bounded
    /// memory. With `read_only` the statement runs on the read-only login whatever the key's
    /// role, so the engine refuses any write.
    pub async fn summarize(
        &self,
        database: &str,
        sql: &str,
        params: &[Value],
        max_rows: u64,
        read_only: bool,
    ) -> Result<Summarized> {
        use pb::query_response::Kind;
        let mut stream = self
            .queries
            .clone()
            .query(self.settings.request(pb::QueryRequest {
                database: database.to_owned(),
                sql: sql.to_owned(),
                params: values(params),
                max_rows: i64::try_from(max_rows).unwrap_or(i64::MAX),
                summarize: true,
                read_only,
                max_bytes: 0,
                resumable: false,
                resume_token: String::new(),
            }))
            .await?
            .into_inner();
        let (mut columns, mut summaries) = (Vec::new(), Vec::new());
        while let Some(msg) = stream.message().await? {
            match msg.kind {
                Some(Kind::Header(h)) => {
                    columns = h.columns.into_iter().map(Column::from).collect()
                }
                Some(Kind::ColumnSummaries(s)) => {
                    summaries = s
                        .columns
                        .into_iter()
                        .map(ColumnSummary::try_from)
                        .collect::<Result<_>>()?;
                }
                Some(Kind::Summary(s)) => {
                    return Ok(Summarized {
                        columns,
                        summaries,
                        summary: s.into(),
                    });
                }
                Some(Kind::Batch(_)) | None => {}
            }
        }
        Err(Error::Protocol(
            "the summarized stream ended without its summary".into(),
        ))
    }
}
