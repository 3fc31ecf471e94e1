//! SemanticService: questions in natural language answered with SQL.
//!
//! The rules this module keeps:
//!
//! - **Grounded.** The model sees the schema as GetSchema renders it ([`Schema::render_text`]),
//!   the foreign keys as join conditions, column comments, and the values of low-cardinality
//!   text columns, taken from the column summaries (`core/summary.rs`) of at most
//!   [`SAMPLE_ROWS`] rows of at most [`SAMPLE_TABLES`] tables, read on the read-only login.
//! - **Checked by the engine.** A statement that is not one query (as `sqlparser` reads it) is
//!   sent back at once; one that is, must pass the engine's EXPLAIN (the SchemaService path,
//!   `Database::explain`, on the read-only login). On either failure the reason goes back to the
//!   model, for at most [`MAX_REPAIR_ROUNDS`] rounds; then the answer says it gave up and why.
//! - **Run read-only.** The query runs through [`Forge::query_read_only`], the login a read
//!   grant uses, so a statement that writes is refused by the engine itself whatever the text
//!   check missed (PostgreSQL's data-modifying WITH, say), within the request's row and time
//!   budgets.
//! - **Cached.** Answers are kept in a bounded LRU keyed by the schema's hash (structure only,
//!   not row counts), the engine, the model and the question: the same question about an
//!   unchanged schema costs no model call.
//! - **Secret.** The API key lives in [`model::Secret`]; questions and SQL may be audited
//!   (by the adapter), the key never is.

pub mod materialize;
pub mod model;
pub mod prompt;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tracing::debug;

use self::{
    model::{ChatMessage, ChatModel, ChatRole},
    prompt::ColumnSamples,
};
use super::{
    access::{Principal, Role},
    engine::BackendKind,
    error::{Error, Result},
    forge::Forge,
    limits::Budget,
    schema::{Plan, Schema, TableKind},
    table::SqlDialect,
    value::{Column, Row, RowEncoder, RowEvent, Statement, Summary},
};
use crate::{
    backend::{RowStream, StatementLimits},
    metrics as names,
};

/// Repair rounds after the first answer: the engine's error goes back to the model this many
/// times at most.
pub const MAX_REPAIR_ROUNDS: u32 = 2;
/// Rows read per table for the sample values.
pub const SAMPLE_ROWS: u64 = 1000;
/// Tables sampled at most; a larger schema is still described whole, with fewer samples.
pub const SAMPLE_TABLES: usize = 30;
/// Characters of a question, at most.
pub const MAX_QUESTION_CHARS: usize = 4000;
/// Answers kept in the cache.
pub const CACHE_ENTRIES: usize = 512;
/// Rows an Ask returns when the request does not say.
pub const DEFAULT_ASK_ROWS: u64 = 100;

/// What became of a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskStatus {
    /// A valid read-only query.
    Answered,
    /// No valid query after the repair rounds.
    GaveUp,
}

/// The engine's verdict on a generated query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Validation {
    /// One read-only query the engine's EXPLAIN accepted.
    pub valid: bool,
    /// Why not.
    pub error: String,
    /// The plan as the engine wrote it.
    pub plan: String,
    /// Tables read in full.
    pub full_scans: Vec<String>,
}

/// The answer to a question.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Answered or given up.
    pub status: AskStatus,
    /// The query (the last try when given up).
    pub sql: String,
    /// The model's explanation.
    pub rationale: String,
    /// The engine's verdict.
    pub validation: Validation,
    /// Why it gave up.
    pub message: String,
    /// Model calls made: 1 plus the repair rounds; 0 when cached.
    pub rounds: u32,
    /// Served from the cache.
    pub cached: bool,
    /// The model's name.
    pub model: String,
}

/// The rows of a query run as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows.
    pub rows: Vec<Row>,
    /// Counts, time and truncation.
    pub summary: Summary,
}

type CacheKey = ([u8; 32], BackendKind, String, String);

/// A bounded LRU of answers: a map with a use counter per entry; eviction scans for the least
/// recently used, which at [`CACHE_ENTRIES`] entries costs microseconds against the seconds a
/// model call takes.
#[derive(Debug, Default)]
struct AnswerCache {
    entries: HashMap<CacheKey, (Answer, u64)>,
    tick: u64,
    capacity: usize,
}

impl AnswerCache {
    fn get(&mut self, key: &CacheKey) -> Option<Answer> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(a, used)| {
            *used = tick;
            a.clone()
        })
    }

    fn put(&mut self, key: CacheKey, answer: Answer) {
        self.tick += 1;
        if self.entries.len() >= self.capacity
            && !self.entries.contains_key(&key)
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        self.entries.insert(key, (answer, self.tick));
    }
}

/// The semantic layer over the Forge: grounding, the model, validation, repair, cache.
#[derive(Debug, Clone)]
pub struct Semantic {
    forge: Forge,
    model: Option<Arc<dyn ChatModel>>,
    cache: Arc<Mutex<AnswerCache>>,
}

impl Semantic {
    /// The layer over `forge`, asking `model` (the gateway's own, when configured).
    pub fn new(forge: Forge, model: Option<Arc<dyn ChatModel>>) -> Self {
        Self {
            forge,
            model,
            cache: Arc::new(Mutex::new(AnswerCache {
                capacity: CACHE_ENTRIES,
                ..AnswerCache::default()
            })),
        }
    }

    /// Whether the gateway has a model of its own (`--llm-url`).
    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }

    /// The Forge.
    pub fn forge(&self) -> &Forge {
        &self.forge
    }

    /// Answers `question` about database `db` with a validated query, asking `model` when
    /// given (an MCP client's), else the gateway's own.
    pub async fn answer(
        &self,
        who: &Principal,
        db: &str,
        question: &str,
        model: Option<Arc<dyn ChatModel>>,
    ) -> Result<Answer> {
        let question = question.trim();
        if question.is_empty() {
            return Err(Error::invalid("question", "must not be empty"));
        }
        if question.chars().count() > MAX_QUESTION_CHARS {
            return Err(Error::invalid(
                "question",
                format!("must be at most {MAX_QUESTION_CHARS} characters"),
            ));
        }
        let t = self.forge.transfer_target(who, db, Role::Read).await?;
        let dialect = match (t.kind, t.dialect) {
            (BackendKind::Redis, _) => {
                return Err(Error::Unsupported {
                    operation: "Ask (it writes SQL; on Redis, read GetSchema's key-space summary \
                                and run Redis commands with Execute)",
                    backend: t.kind.as_str(),
                });
            }
            (_, None) => {
                return Err(Error::Unsupported {
                    operation: "Ask (it writes SQL; on a graph database, read GetSchema's class \
                                and predicate summary and run SPARQL with Execute or Query)",
                    backend: t.kind.as_str(),
                });
            }
            (_, Some(d)) => d,
        };
        let model = model.or_else(|| self.model.clone()).ok_or_else(|| {
            Error::FailedPrecondition(
                "this gateway has no language model for Ask: start dbforge-server with \
                 --llm-url (an OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1) and \
                 --llm-model, the key (if any) in DBFORGE_LLM_API_KEY; over MCP, a client that \
                 offers sampling needs neither"
                    .into(),
            )
        })?;
        let ro = StatementLimits {
            read_only: true,
            ..t.whole.clone()
        };
        let schema = t.database.schema(None, &ro).await?;
        let key: CacheKey = (
            schema_hash(&schema),
            t.kind,
            model.name(),
            question.to_owned(),
        );
        let hit = self.cache.lock().expect("cache lock").get(&key);
        if let Some(mut a) = hit {
            metrics::counter!(names::ASK_CACHE_HITS_TOTAL).increment(1);
            a.cached = true;
            a.rounds = 0;
            return Ok(a);
        }
        let samples = self.samples(who, db, &schema, dialect).await;
        let mut messages = vec![
            ChatMessage::new(
                ChatRole::System,
                prompt::system_prompt(t.kind, &schema, &samples),
            ),
            ChatMessage::new(ChatRole::User, question),
        ];
        let mut last = prompt::ModelAnswer {
            sql: String::new(),
            rationale: String::new(),
        };
        let mut rounds = 0;
        let error = loop {
            rounds += 1;
            metrics::counter!(names::ASK_MODEL_CALLS_TOTAL).increment(1);
            let text = model.complete(&messages).await?;
            messages.push(ChatMessage::new(ChatRole::Assistant, text.clone()));
            let error = match prompt::parse_answer(&text) {
                Err(why) => why,
                Ok(a) if a.sql.is_empty() => {
                    let answer = self.gave_up(
                        &a,
                        rounds,
                        &model,
                        format!(
                            "the model says the question cannot be answered from this \
                             database: {}",
                            a.rationale
                        ),
                        String::new(),
                    );
                    return Ok(answer);
                }
                Ok(a) => {
                    last = a;
                    match self.validate(&t.database, t.kind, &last.sql, &ro).await? {
                        Ok(plan) => {
                            let answer = Answer {
                                status: AskStatus::Answered,
                                sql: last.sql,
                                rationale: last.rationale,
                                validation: Validation {
                                    valid: true,
                                    error: String::new(),
                                    full_scans: plan.full_scans(),
                                    plan: plan.raw,
                                },
                                message: String::new(),
                                rounds,
                                cached: false,
                                model: model.name(),
                            };
                            metrics::counter!(names::ASK_TOTAL, "outcome" => "answered")
                                .increment(1);
                            self.cache
                                .lock()
                                .expect("cache lock")
                                .put(key, answer.clone());
                            return Ok(answer);
                        }
                        Err(why) => why,
                    }
                }
            };
            debug!(db, rounds, error = %error, "the model's query was rejected");
            if rounds > MAX_REPAIR_ROUNDS {
                break error;
            }
            messages.push(ChatMessage::new(
                ChatRole::User,
                prompt::repair_prompt(&error),
            ));
        };
        let message = format!(
            "gave up after {rounds} tries (the first and {MAX_REPAIR_ROUNDS} repair rounds) \
             without a valid read-only query; the last one was rejected: {error}"
        );
        Ok(self.gave_up(&last, rounds, &model, message, error))
    }

    fn gave_up(
        &self,
        last: &prompt::ModelAnswer,
        rounds: u32,
        model: &Arc<dyn ChatModel>,
        message: String,
        error: String,
    ) -> Answer {
        metrics::counter!(names::ASK_TOTAL, "outcome" => "gave_up").increment(1);
        Answer {
            status: AskStatus::GaveUp,
            sql: last.sql.clone(),
            rationale: last.rationale.clone(),
            validation: Validation {
                valid: false,
                error,
                ..Validation::default()
            },
            message,
            rounds,
            cached: false,
            model: model.name(),
        }
    }

    /// `Ok(Ok(plan))` when `sql` is one query the engine can plan; `Ok(Err(why))` to send back
    /// to the model; `Err` for failures a new query would not fix (the engine is down).
    async fn validate(
        &self,
        db: &Arc<dyn crate::backend::Database>,
        kind: BackendKind,
        sql: &str,
        ro: &StatementLimits,
    ) -> Result<std::result::Result<Plan, String>> {
        if let Err(why) = super::preview::read_only_query(sql, kind) {
            return Ok(Err(why));
        }
        let stmt = Statement {
            sql: sql.to_owned(),
            params: Vec::new(),
        };
        match db.explain(stmt, false, ro).await {
            Ok(plan) => Ok(Ok(plan)),
            Err(e @ (Error::Unavailable(_) | Error::Timeout(_) | Error::Internal(_))) => Err(e),
            Err(e) => Ok(Err(e.to_string())),
        }
    }

    /// The sample values of low-cardinality text columns; a table that cannot be read is
    /// skipped (samples help the model, their absence does not stop it).
    async fn samples(
        &self,
        who: &Principal,
        db: &str,
        schema: &Schema,
        dialect: &'static dyn SqlDialect,
    ) -> Vec<ColumnSamples> {
        let mut out = Vec::new();
        let tables = schema
            .tables
            .iter()
            .filter(|t| t.kind == TableKind::Table)
            .take(SAMPLE_TABLES);
        for t in tables {
            let stmt = Statement {
                sql: format!("SELECT * FROM {}", dialect.quote_ident(&t.name)),
                params: Vec::new(),
            };
            let budget = Budget {
                rows: SAMPLE_ROWS,
                bytes: 4 << 20,
            };
            match self.forge.summarize(who, db, stmt, budget, true).await {
                Ok((_, summaries, _)) => {
                    let kinds: Vec<_> =
                        t.columns.iter().map(|c| (c.name.clone(), c.kind)).collect();
                    out.extend(prompt::samples_of(&t.name, &kinds, &summaries));
                }
                Err(e) => debug!(db, table = %t.name, error = %e, "no samples of a table"),
            }
        }
        out
    }

    /// Runs an answered query read-only and collects its rows, within `budget` and `timeout`.
    pub async fn run(
        &self,
        who: &Principal,
        db: &str,
        sql: &str,
        budget: Budget,
        timeout: Option<Duration>,
    ) -> Result<Ran> {
        let mut rows = self.stream(who, db, sql, budget, timeout, None).await?;
        let mut columns = Vec::new();
        let mut out = Vec::new();
        while let Some(ev) = rows.next().await {
            match ev? {
                RowEvent::Columns(c) => columns = c,
                RowEvent::Rows(batch) => out.extend(batch),
                RowEvent::Encoded(_) => {
                    return Err(Error::internal("a collected stream has no encoder"));
                }
                RowEvent::Done(summary) => {
                    return Ok(Ran {
                        columns,
                        rows: out,
                        summary,
                    });
                }
            }
        }
        Err(Error::internal("the stream ended without its summary"))
    }

    /// Streams an answered query's rows, read-only, within `budget` and `timeout` (capped by
    /// the statement timeout): past it the stream ends with DEADLINE_EXCEEDED and the
    /// statement is cancelled (the stream is dropped).
    pub async fn stream(
        &self,
        who: &Principal,
        db: &str,
        sql: &str,
        budget: Budget,
        timeout: Option<Duration>,
        encoder: Option<Arc<dyn RowEncoder>>,
    ) -> Result<RowStream> {
        let stmt = Statement {
            sql: sql.to_owned(),
            params: Vec::new(),
        };
        let rows = self
            .forge
            .query_read_only(who, db, stmt, budget, encoder)
            .await?;
        let cap = self.forge.limits().statement_timeout;
        let limit = timeout.map_or(cap, |t| t.min(cap));
        Ok(within_time(rows, limit))
    }
}

/// `rows` ended with [`Error::Timeout`] once `limit` has passed; dropping the inner stream
/// cancels the statement.
fn within_time(rows: RowStream, limit: Duration) -> RowStream {
    let deadline = tokio::time::Instant::now() + limit;
    let state = Some(rows);
    Box::pin(futures::stream::unfold(state, move |state| async move {
        let mut rows = state?;
        tokio::select! {
            next = rows.next() => next.map(|ev| (ev, Some(rows))),
            () = tokio::time::sleep_until(deadline) => Some((
                Err(Error::Timeout(format!(
                    "the query ran past its time budget of {} ms and was cancelled",
                    limit.as_millis()
                ))),
                None,
            )),
        }
    }))
}

/// The hash of a schema's structure: its rendering without row estimates, and its comments.
fn schema_hash(schema: &Schema) -> [u8; 32] {
    let mut s = schema.clone();
    for t in &mut s.tables {
        t.row_estimate = None;
    }
    let mut h = Sha256::new();
    h.update(s.render_text().as_bytes());
    for t in &s.tables {
        for c in &t.columns {
            if let Some(comment) = &c.comment {
                h.update(format!("{}.{}:{comment}\n", t.name, c.name).as_bytes());
            }
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(sql: &str) -> Answer {
        Answer {
            status: AskStatus::Answered,
            sql: sql.into(),
            rationale: String::new(),
            validation: Validation::default(),
            message: String::new(),
            rounds: 1,
            cached: false,
            model: "m".into(),
        }
    }

    #[test]
    fn the_cache_evicts_the_least_recently_used_answer() {
        let mut c = AnswerCache {
            capacity: 2,
            ..AnswerCache::default()
        };
        let key = |q: &str| ([0; 32], BackendKind::Sqlite, "m".to_owned(), q.to_owned());
        c.put(key("a"), answer("A"));
        c.put(key("b"), answer("B"));
        assert!(c.get(&key("a")).is_some()); // a is now newer than b
        c.put(key("c"), answer("C"));
        assert!(c.get(&key("b")).is_none(), "b was the least recently used");
        assert_eq!(c.get(&key("a")).expect("a").sql, "A");
        assert_eq!(c.get(&key("c")).expect("c").sql, "C");
    }
}
