//! Questions in natural language over `SemanticService`: the gateway's model writes the SQL,
//! the engine checks it, and (on request) it runs read-only. And SQL databases mapped into graph
//! databases ([`Client::materialize_graph`]).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use tonic::transport::Channel;

use crate::{
    Client, Column, Result, Row, Rows, Summary,
    pb::{self, semantic_service_client::SemanticServiceClient},
    rows::Part,
};

/// What became of a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskStatus {
    /// A read-only query that passed the engine's EXPLAIN (and ran, when asked to).
    Answered,
    /// No valid query after the repair rounds; [`Answer::message`] says why.
    GaveUp,
}

/// The model's query and what the engine made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Answered, or given up.
    pub status: AskStatus,
    /// The query (the model's last try when given up).
    pub sql: String,
    /// The model's explanation, one paragraph.
    pub rationale: String,
    /// One read-only query the engine's EXPLAIN accepted.
    pub valid: bool,
    /// Why not, when not valid.
    pub validation_error: String,
    /// The engine's plan of the query.
    pub plan: String,
    /// Tables the plan reads in full.
    pub full_scans: Vec<String>,
    /// When given up: why.
    pub message: String,
    /// Calls made to the model (0 when cached).
    pub rounds: u32,
    /// Served from the gateway's cache.
    pub cached: bool,
    /// The model that answered.
    pub model: String,
}

impl From<pb::AskAnswer> for Answer {
    fn from(a: pb::AskAnswer) -> Self {
        let v = a.validation.unwrap_or_default();
        Answer {
            status: match pb::AskStatus::try_from(a.status) {
                Ok(pb::AskStatus::Answered) => AskStatus::Answered,
                _ => AskStatus::GaveUp,
            },
            sql: a.sql,
            rationale: a.rationale,
            valid: v.valid,
            validation_error: v.error,
            plan: v.plan,
            full_scans: v.full_scans,
            message: a.message,
            rounds: u32::try_from(a.rounds).unwrap_or_default(),
            cached: a.cached,
            model: a.model,
        }
    }
}

/// An [`Answer`] with the rows, when the query ran ([`AskOptions::run`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Asked {
    /// The query and its validation.
    pub answer: Answer,
    /// The result's columns (empty unless it ran).
    pub columns: Vec<Column>,
    /// The rows, at most [`AskOptions::max_rows`].
    pub rows: Vec<Row>,
    /// Counts, time and truncation, when it ran.
    pub summary: Option<Summary>,
}

/// Options of [`Client::ask`] and [`Client::ask_stream`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AskOptions {
    /// Run the query (on the read-only login) and return its rows.
    pub run: bool,
    /// Rows at most; 0: 100 for `ask`, the server's stream limit for `ask_stream`.
    pub max_rows: u64,
    /// Time the query may run; `None`: the server's statement timeout.
    pub timeout: Option<Duration>,
}

impl AskOptions {
    /// Run the query and return up to `max_rows` rows (0: the default).
    pub fn run(max_rows: u64) -> Self {
        Self {
            run: true,
            max_rows,
            timeout: None,
        }
    }

    /// With a time budget for the query.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
}

/// Options of [`Client::materialize_graph`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaterializeOptions {
    /// The IRI every table, column and row IRI starts with; `None`:
    /// `urn:dbforge:<source>/`.
    pub base_iri: Option<String>,
    /// The named graph the triples go into; `None`: the default graph.
    pub graph: Option<String>,
    /// Clear that graph first, in the same transaction (a refresh); otherwise the triples are
    /// added to what it holds.
    pub replace: bool,
}

/// What one table of a [`Client::materialize_graph`] gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterializedTable {
    /// The table.
    pub table: String,
    /// Rows read.
    pub rows: u64,
    /// Triples written for them.
    pub triples: u64,
}

/// What [`Client::materialize_graph`] loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Materialized {
    /// Per base table, in name order.
    pub tables: Vec<MaterializedTable>,
    /// Triples the graph database loaded.
    pub triples: u64,
    /// The base IRI used.
    pub base_iri: String,
    /// Time the gateway took.
    pub elapsed: Duration,
}

impl From<pb::MaterializeGraphResponse> for Materialized {
    fn from(r: pb::MaterializeGraphResponse) -> Self {
        Self {
            tables: r
                .tables
                .into_iter()
                .map(|t| MaterializedTable {
                    table: t.table,
                    rows: t.rows.unsigned_abs(),
                    triples: t.triples.unsigned_abs(),
                })
                .collect(),
            triples: r.triples.unsigned_abs(),
            base_iri: r.base_iri,
            elapsed: Duration::from_millis(r.elapsed_ms.unsigned_abs()),
        }
    }
}

fn millis(t: Option<Duration>) -> i64 {
    t.map_or(0, |t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
}

impl From<pb::AskStreamResponse> for Option<Part> {
    fn from(r: pb::AskStreamResponse) -> Self {
        use pb::ask_stream_response::Kind;
        r.kind.and_then(|k| match k {
            Kind::Header(h) => Some(Part::Header(h)),
            Kind::Batch(b) => Some(Part::Batch(b)),
            Kind::Summary(s) => Some(Part::Summary(s)),
            // The answer comes first and is taken before the rows.
            Kind::Answer(_) => None,
        })
    }
}

impl Client {
    fn semantic(&self) -> SemanticServiceClient<Channel> {
        SemanticServiceClient::new(self.channel()).max_decoding_message_size(usize::MAX)
    }

    /// Asks a question about a database's data in natural language: the gateway's model
    /// writes one SQL query grounded in the schema, the engine's EXPLAIN checks it (with up to
    /// two repair rounds), and with [`AskOptions::run`] it runs read-only and its rows come
    /// back. FAILED_PRECONDITION when the gateway has no model (`--llm-url`).
    ///
    /// ```no_run
    /// # async fn demo(client: dbforge::Client) -> Result<(), dbforge::Error> {
    /// use dbforge::AskOptions;
    /// let asked = client
    ///     .ask("shop", "Which five customers spent the most?", AskOptions::run(5))
    ///     .await?;
    /// println!("{}\n-- {}", asked.answer.sql, asked.answer.rationale);
    /// for row in &asked.rows {
    ///     println!("{:?}", row.values());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ask(&self, database: &str, question: &str, opts: AskOptions) -> Result<Asked> {
        let r = self
            .semantic()
            .ask(self.settings.request(pb::AskRequest {
                database: database.to_owned(),
                question: question.to_owned(),
                run: opts.run,
                max_rows: i64::try_from(opts.max_rows).unwrap_or(i64::MAX),
                timeout_ms: millis(opts.timeout),
            }))
            .await?
            .into_inner();
        let columns: Arc<[Column]> = r.columns.into_iter().map(Column::from).collect();
        Ok(Asked {
            answer: r.answer.unwrap_or_default().into(),
            rows: r
                .rows
                .into_iter()
                .map(|row| Row::from_pb(&columns, row))
                .collect::<Result<_>>()?,
            columns: columns.to_vec(),
            summary: r.summary.map(Into::into),
        })
    }

    /// Like [`ask`](Self::ask), with the rows streamed as [`query`](Self::query) streams them:
    /// the answer, and the rows when the query ran.
    pub async fn ask_stream(
        &self,
        database: &str,
        question: &str,
        opts: AskOptions,
    ) -> Result<(Answer, Option<Rows>)> {
        let mut stream = self
            .semantic()
            .ask_stream(self.settings.request(pb::AskStreamRequest {
                database: database.to_owned(),
                question: question.to_owned(),
                run: opts.run,
                max_rows: i64::try_from(opts.max_rows).unwrap_or(i64::MAX),
                timeout_ms: millis(opts.timeout),
            }))
            .await?
            .into_inner();
        let answer = match stream.next().await {
            Some(Ok(pb::AskStreamResponse {
                kind: Some(pb::ask_stream_response::Kind::Answer(a)),
            })) => Answer::from(a),
            Some(Err(status)) => return Err(status.into()),
            _ => {
                return Err(crate::Error::Protocol(
                    "the AskStream response did not start with the answer".into(),
                ));
            }
        };
        if !opts.run || answer.status != AskStatus::Answered {
            return Ok((answer, None));
        }
        let rows = Rows::start(stream, self.settings.timeout).await?;
        Ok((answer, Some(rows)))
    }

    /// Maps the SQL database `source` into the graph database `graph_database` by the W3C
    /// Direct Mapping: rows become subjects, columns predicates with typed literals, foreign
    /// keys links between rows. All or nothing, in one transaction on the graph database.
    ///
    /// ```no_run
    /// # async fn demo(client: dbforge::Client) -> Result<(), dbforge::Error> {
    /// use dbforge::MaterializeOptions;
    /// let done = client
    ///     .materialize_graph("shop", "shop-graph", MaterializeOptions { replace: true, ..Default::default() })
    ///     .await?;
    /// println!("{} triples under {}", done.triples, done.base_iri);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn materialize_graph(
        &self,
        source: &str,
        graph_database: &str,
        opts: MaterializeOptions,
    ) -> Result<Materialized> {
        let MaterializeOptions {
            base_iri,
            graph,
            replace,
        } = opts;
        let r = self
            .semantic()
            .materialize_graph(self.settings.request(pb::MaterializeGraphRequest {
                source_database: source.to_owned(),
                graph_database: graph_database.to_owned(),
                base_iri: base_iri.unwrap_or_default(),
                graph: graph.unwrap_or_default(),
                replace,
            }))
            .await?
            .into_inner();
        Ok(r.into())
    }
}
