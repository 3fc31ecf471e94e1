//! `dbforge.v1.SemanticService`: questions in natural language, answered with SQL.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use tonic::{Request, Response, Status};

use super::{Call, ResponseStream, caller, convert, limits::KeyLimits, wire::ProtoRows};
use crate::{
    core::{
        error::{Error, Result},
        limits::Budget,
        semantic::{Answer, AskStatus, DEFAULT_ASK_ROWS, Semantic, materialize::MaterializeSpec},
    },
    pb::{self, semantic_service_server::SemanticService},
};

/// The SemanticService adapter.
#[derive(Debug, Clone)]
pub struct SemanticApi {
    semantic: Semantic,
    limits: Arc<KeyLimits>,
}

impl SemanticApi {
    /// Wraps the semantic layer; streams count against `limits`.
    pub fn new(semantic: Semantic, limits: Arc<KeyLimits>) -> Self {
        Self { semantic, limits }
    }
}

/// The time budget of a request: `timeout_ms` 0 means the server's statement timeout.
fn time_budget(timeout_ms: i64) -> Result<Option<Duration>> {
    match u64::try_from(timeout_ms) {
        Ok(0) => Ok(None),
        Ok(ms) => Ok(Some(Duration::from_millis(ms))),
        Err(_) => Err(Error::invalid("timeout_ms", "must not be negative")),
    }
}

/// What the audit log keeps of an Ask: the question as a comment, then the SQL when there is
/// one (the model's key is never part of either).
pub fn audit_text(question: &str, answer: Option<&Answer>) -> String {
    let q = question.replace(['\n', '\r'], " ");
    match answer {
        Some(a) if !a.sql.is_empty() => format!("-- {q}\n{}", a.sql),
        _ => format!("-- {q}"),
    }
}

#[tonic::async_trait]
impl SemanticService for SemanticApi {
    type AskStreamStream = ResponseStream<pb::AskStreamResponse>;

    async fn ask(&self, req: Request<pb::AskRequest>) -> Result<Response<pb::AskResponse>, Status> {
        let who = caller(&req)?;
        let pb::AskRequest {
            database,
            question,
            run,
            max_rows,
            timeout_ms,
        } = req.into_inner();
        let call = Call::new(self.semantic.forge().audit(), &who, "Ask").database(&database);
        let mut answered = None;
        let result = async {
            let rows = match u64::try_from(max_rows) {
                Ok(0) => DEFAULT_ASK_ROWS,
                Ok(n) => n,
                Err(_) => return Err(Error::invalid("max_rows", "must not be negative")),
            };
            let limits = self.semantic.forge().limits().whole_result();
            let budget = Budget {
                rows: rows.min(limits.max_rows),
                bytes: limits.max_bytes,
            };
            let timeout = time_budget(timeout_ms)?;
            let answer = self
                .semantic
                .answer(&who, &database, &question, None)
                .await?;
            answered = Some(answer.clone());
            let ran = if run && answer.status == AskStatus::Answered {
                Some(
                    self.semantic
                        .run(&who, &database, &answer.sql, budget, timeout)
                        .await?,
                )
            } else {
                None
            };
            Ok(convert::semantic::ask_response(answer, ran))
        }
        .await;
        call.statement(audit_text(&question, answered.as_ref()))
            .done(result.map_err(Status::from), |_| Some(0))
            .await
            .map(Response::new)
    }

    async fn ask_stream(
        &self,
        req: Request<pb::AskStreamRequest>,
    ) -> Result<Response<Self::AskStreamStream>, Status> {
        let who = caller(&req)?;
        let pb::AskStreamRequest {
            database,
            question,
            run,
            max_rows,
            timeout_ms,
        } = req.into_inner();
        let call = Call::new(self.semantic.forge().audit(), &who, "AskStream").database(&database);
        let mut answered = None;
        let started = async {
            let budget = convert::budget(max_rows, 0)?;
            let timeout = time_budget(timeout_ms)?;
            let permit = self.limits.open_stream(&who)?;
            let answer = self
                .semantic
                .answer(&who, &database, &question, None)
                .await?;
            answered = Some(answer.clone());
            let rows = if run && answer.status == AskStatus::Answered {
                Some(
                    self.semantic
                        .stream(
                            &who,
                            &database,
                            &answer.sql,
                            budget,
                            timeout,
                            Some(ProtoRows::shared()),
                        )
                        .await?,
                )
            } else {
                None
            };
            Ok::<_, Error>((answer, rows, permit))
        }
        .await;
        let call = call.statement(audit_text(&question, answered.as_ref()));
        match started {
            Ok((answer, rows, permit)) => {
                let first = pb::AskStreamResponse {
                    kind: Some(pb::ask_stream_response::Kind::Answer(answer.into())),
                };
                let rows = rows.map(|rows| {
                    rows.map(|ev| ev.map(pb::AskStreamResponse::from).map_err(Status::from))
                });
                let all = futures::stream::iter([Ok(first)])
                    .chain(futures::stream::iter(rows).flatten())
                    .boxed();
                Ok(Response::new(Box::pin(call.stream(
                    all,
                    |_: &pb::AskStreamResponse| Some(0),
                    permit,
                ))))
            }
            Err(e) => Err(call.failed(Status::from(e)).await),
        }
    }

    async fn materialize_graph(
        &self,
        req: Request<pb::MaterializeGraphRequest>,
    ) -> Result<Response<pb::MaterializeGraphResponse>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let call = Call::new(self.semantic.forge().audit(), &who, "MaterializeGraph")
            .database(&req.graph_database)
            .statement(format!(
                "source={} base_iri={} graph={} replace={}",
                req.source_database, req.base_iri, req.graph, req.replace
            ));
        let result = async {
            let spec = MaterializeSpec::try_from(req)?;
            let done = self.semantic.forge().materialize_graph(&who, spec).await?;
            Ok::<_, Error>(pb::MaterializeGraphResponse::from(done))
        }
        .await
        .map_err(Status::from);
        call.done(result, |r| Some(r.triples.unsigned_abs()))
            .await
            .map(Response::new)
    }
}
