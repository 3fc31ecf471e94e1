//! `dbforge.v1.QueryService`: SQL statements, streams, batches and sessions.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use super::{
    Call, ResponseStream, caller, convert,
    limits::{KeyLimits, StreamPermit},
    status::remap_decode_error,
    wire::ProtoRows,
};
use crate::{
    backend::Session,
    core::{
        access::Principal,
        error::{Error, Result},
        forge::Forge,
        value::Statement,
    },
    pb::{self, query_service_server::QueryService},
};

/// The QueryService adapter.
#[derive(Debug, Clone)]
pub struct QueryApi {
    forge: Forge,
    limits: Arc<KeyLimits>,
    /// Relays sessions on other gateways' SQLite databases.
    forwarder: Arc<super::forward::Forwarder>,
}

impl QueryApi {
    /// Wraps the Forge; streams and sessions count against `limits`; sessions on other
    /// gateways' databases go through `forwarder`.
    pub fn new(
        forge: Forge,
        limits: Arc<KeyLimits>,
        forwarder: Arc<super::forward::Forwarder>,
    ) -> Self {
        Self {
            forge,
            limits,
            forwarder,
        }
    }
}

#[tonic::async_trait]
impl QueryService for QueryApi {
    type QueryStream = ResponseStream<pb::QueryResponse>;
    type SessionStream = ResponseStream<pb::SessionResponse>;

    async fn execute(
        &self,
        req: Request<pb::ExecuteRequest>,
    ) -> Result<Response<pb::ExecuteResponse>, Status> {
        let who = caller(&req)?;
        let pb::ExecuteRequest {
            database,
            sql,
            params,
        } = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "Execute")
            .database(&database)
            .statement(sql.clone());
        let result = async {
            let stmt = Statement {
                sql,
                params: convert::params(params)?,
            };
            let result = self.forge.execute(&who, &database, stmt).await?;
            Ok(pb::ExecuteResponse {
                result: Some(result.into()),
            })
        }
        .await;
        call.done(result, |r| {
            r.result.as_ref().map(|r| r.rows_affected.unsigned_abs())
        })
        .await
        .map(Response::new)
    }

    async fn query(
        &self,
        req: Request<pb::QueryRequest>,
    ) -> Result<Response<Self::QueryStream>, Status> {
        let who = caller(&req)?;
        let pb::QueryRequest {
            database,
            sql,
            params,
            max_rows,
            summarize,
            read_only,
            max_bytes,
            resumable,
            resume_token,
        } = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "Query")
            .database(&database)
            .statement(sql.clone());
        if resumable || !resume_token.is_empty() {
            let query = (database, sql, params, (max_rows, max_bytes), read_only);
            return self
                .resumable(who, call, query, summarize, resume_token)
                .await;
        }
        if summarize {
            let query = (database, sql, params, (max_rows, max_bytes), read_only);
            return self.summarize(who, call, query).await;
        }
        let started = async {
            let budget = convert::budget(max_rows, max_bytes)?;
            let stmt = Statement {
                sql,
                params: convert::params(params)?,
            };
            let permit = self.limits.open_stream(&who)?;
            let encoder = Some(ProtoRows::shared());
            let rows = if read_only {
                self.forge
                    .query_read_only(&who, &database, stmt, budget, encoder)
                    .await?
            } else {
                self.forge
                    .query(&who, &database, stmt, budget, encoder)
                    .await?
            };
            Ok((rows, permit))
        }
        .await;
        match started {
            Ok((rows, permit)) => {
                let rows = rows.map(|ev| ev.map(pb::QueryResponse::from).map_err(Status::from));
                Ok(Response::new(Box::pin(call.stream(
                    rows,
                    |r: &pb::QueryResponse| match &r.kind {
                        Some(pb::query_response::Kind::Summary(s)) => {
                            Some(s.rows_affected.unsigned_abs())
                        }
                        _ => None,
                    },
                    permit,
                ))))
            }
            Err(e) => Err(call.failed(e).await),
        }
    }

    async fn execute_batch(
        &self,
        req: Request<pb::ExecuteBatchRequest>,
    ) -> Result<Response<pb::ExecuteBatchResponse>, Status> {
        let who = caller(&req)?;
        let pb::ExecuteBatchRequest {
            database,
            statements,
            transaction,
        } = req.into_inner();
        // One record for the batch, its text every statement in order.
        let text = statements
            .iter()
            .map(|s| s.sql.as_str())
            .collect::<Vec<_>>()
            .join(";\n");
        let call = Call::new(self.forge.audit(), &who, "ExecuteBatch")
            .database(&database)
            .statement(text);
        let result = async {
            let stmts = statements
                .into_iter()
                .map(Statement::try_from)
                .collect::<Result<Vec<_>>>()?;
            let results = self
                .forge
                .batch(&who, &database, stmts, transaction)
                .await?;
            Ok(pb::ExecuteBatchResponse {
                results: results.into_iter().map(Into::into).collect(),
            })
        }
        .await;
        call.done(result, |r| {
            Some(
                r.results
                    .iter()
                    .map(|x| x.rows_affected.unsigned_abs())
                    .sum(),
            )
        })
        .await
        .map(Response::new)
    }

    async fn preview(
        &self,
        req: Request<pb::PreviewRequest>,
    ) -> Result<Response<pb::PreviewResponse>, Status> {
        let who = caller(&req)?;
        let pb::PreviewRequest {
            database,
            statements,
            sample_rows,
        } = req.into_inner();
        let text = statements
            .iter()
            .map(|s| s.sql.as_str())
            .collect::<Vec<_>>()
            .join(";\n");
        let call = Call::new(self.forge.audit(), &who, "Preview")
            .database(&database)
            .statement(text);
        let result = async {
            let sample_rows = usize::try_from(sample_rows)
                .map_err(|_| Error::invalid("sample_rows", "must not be negative"))?;
            let stmts = statements
                .into_iter()
                .map(Statement::try_from)
                .collect::<Result<Vec<_>>>()?;
            let previews = self
                .forge
                .preview(&who, &database, stmts, sample_rows)
                .await?;
            Ok(pb::PreviewResponse {
                statements: previews.into_iter().map(Into::into).collect(),
            })
        }
        .await;
        // Nothing a preview does is kept: it changes no rows.
        call.done(result, |_| Some(0)).await.map(Response::new)
    }

    async fn session(
        &self,
        req: Request<Streaming<pb::SessionRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let who = caller(&req)?;
        let permit = self.limits.open_stream(&who)?;
        // For a session on another gateway's database, relayed with the caller's key.
        let metadata = req.metadata().clone();
        let inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(run_session(
            self.forge.clone(),
            Arc::clone(&self.forwarder),
            who,
            (inbound, metadata),
            tx,
            permit,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A Query request's parts a summary needs: database, SQL, parameters, (max_rows, max_bytes),
/// read_only.
type QueryParts = (String, String, Vec<pb::Value>, (i64, i64), bool);

impl QueryApi {
    /// A Query with `summarize`: the rows are read to the end on the caller's side of the
    /// stream (the client waits for one answer, as for Execute), then sent as three messages.
    async fn summarize(
        &self,
        who: Principal,
        call: Call,
        (database, sql, params, (max_rows, max_bytes), read_only): QueryParts,
    ) -> Result<Response<ResponseStream<pb::QueryResponse>>, Status> {
        let result = async {
            let budget = convert::budget(max_rows, max_bytes)?;
            let stmt = Statement {
                sql,
                params: convert::params(params)?,
            };
            let _permit = self.limits.open_stream(&who)?;
            let (columns, summaries, done) = self
                .forge
                .summarize(&who, &database, stmt, budget, read_only)
                .await?;
            Ok(convert::summarized(columns, summaries, done))
        }
        .await;
        let messages = call
            .done(result, |m| match &m[2].kind {
                Some(pb::query_response::Kind::Summary(s)) => Some(s.row_count.unsigned_abs()),
                _ => None,
            })
            .await?;
        Ok(Response::new(Box::pin(futures::stream::iter(
            messages.into_iter().map(Ok),
        ))))
    }
}

impl QueryApi {
    /// A Query with `resumable` or `resume_token`: a page of a resumable stream (see
    /// [`crate::core::resume`]). A resumed page's audit record names the token, not the SQL.
    async fn resumable(
        &self,
        who: Principal,
        call: Call,
        (database, sql, params, (max_rows, max_bytes), read_only): QueryParts,
        summarize: bool,
        resume_token: String,
    ) -> Result<Response<ResponseStream<pb::QueryResponse>>, Status> {
        let started = async {
            if summarize {
                return Err(Error::invalid(
                    "summarize",
                    "a summarized Query is not resumable: it sends one answer",
                ));
            }
            let budget = convert::budget(max_rows, max_bytes)?;
            let permit = self.limits.open_stream(&who)?;
            let pages = if resume_token.is_empty() {
                let stmt = Statement {
                    sql,
                    params: convert::params(params)?,
                };
                self.forge
                    .query_resumable(&who, &database, stmt, budget, read_only)
                    .await?
            } else {
                if !sql.is_empty() || !params.is_empty() {
                    return Err(Error::invalid(
                        "sql",
                        "a Query with resume_token continues a stream: leave sql and params empty",
                    ));
                }
                self.forge
                    .resume_query(&who, &resume_token, &database, budget)
                    .await?
            };
            Ok((pages, permit))
        }
        .await;
        let call = if resume_token.is_empty() {
            call
        } else {
            call.statement(format!("-- resume {resume_token}"))
        };
        match started {
            Ok((pages, permit)) => {
                let rows = pages.map(|ev| ev.map(pb::QueryResponse::from).map_err(Status::from));
                Ok(Response::new(Box::pin(call.stream(
                    rows,
                    |r: &pb::QueryResponse| match &r.kind {
                        Some(pb::query_response::Kind::Summary(s)) => {
                            Some(s.rows_affected.unsigned_abs())
                        }
                        _ => None,
                    },
                    permit,
                ))))
            }
            Err(e) => Err(call.failed(e.into()).await),
        }
    }
}

/// The state of one Session stream.
struct SessionState {
    database: Option<String>,
    session: Option<Box<dyn Session>>,
}

/// Serves one Session stream: one response per request, in order. The backend session is
/// dropped (rolling back any open transaction) when the stream ends, breaks or idles out.
async fn run_session(
    forge: Forge,
    forwarder: Arc<super::forward::Forwarder>,
    who: Principal,
    (mut inbound, metadata): (Streaming<pb::SessionRequest>, tonic::metadata::MetadataMap),
    tx: mpsc::Sender<Result<pb::SessionResponse, Status>>,
    _permit: StreamPermit,
) {
    let idle = forge.limits().session_idle_timeout;
    let _open = super::telemetry::GaugeGuard::new(super::telemetry::Gauge::Sessions);
    let mut state = SessionState {
        database: None,
        session: None,
    };
    loop {
        let msg = match tokio::time::timeout(idle, inbound.message()).await {
            Err(_) => {
                let _ = tx
                    .send(Err(Status::from(Error::Timeout(format!(
                        "the session was idle for {}; its transaction was rolled back",
                        humantime::format_duration(idle)
                    )))))
                    .await;
                break;
            }
            Ok(Err(status)) => {
                debug!(error = %status, "session stream broke; rolling back");
                let _ = tx.send(Err(remap_decode_error(status))).await;
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(msg))) => msg,
        };
        // The first `begin` on another gateway's SQLite database: the owner runs the session.
        if state.database.is_none()
            && let Some(pb::session_request::Kind::Begin(b)) = &msg.kind
            && let Some(owner) = forge.registry().remote_owner(&b.database)
        {
            super::forward::relay_session(&forwarder, &metadata, &owner, msg, inbound, tx).await;
            return;
        }
        let call = audit_message(&forge, &who, &state, &msg);
        let stepped = step(&forge, &who, &mut state, msg)
            .await
            .map_err(Status::from);
        let stepped = call
            .done(stepped, |k| match k {
                pb::session_response::Kind::Result(r) => Some(r.rows_affected.unsigned_abs()),
                _ => None,
            })
            .await;
        let kind = match stepped {
            Ok(kind) => kind,
            Err(status) => {
                let active = state.session.as_ref().is_some_and(|s| s.in_transaction());
                pb::session_response::Kind::Error(convert::status_error(&status, active))
            }
        };
        if tx
            .send(Ok(pb::SessionResponse { kind: Some(kind) }))
            .await
            .is_err()
        {
            break;
        }
    }
}

/// The audit record of one session message: its operation and, for statements, the text.
fn audit_message(
    forge: &Forge,
    who: &Principal,
    state: &SessionState,
    msg: &pb::SessionRequest,
) -> Call {
    use pb::session_request::Kind as Req;
    let call = Call::new(forge.audit(), who, "Session");
    let call = match (&msg.kind, &state.database) {
        (Some(Req::Begin(b)), _) => call.database(&b.database),
        (_, Some(db)) => call.database(db),
        _ => call,
    };
    match &msg.kind {
        Some(Req::Begin(_)) => call.statement("BEGIN"),
        Some(Req::Statement(s)) => call.statement(s.sql.clone()),
        Some(Req::Commit(_)) => call.statement("COMMIT"),
        Some(Req::Rollback(_)) => call.statement("ROLLBACK"),
        None => call,
    }
}

async fn step(
    forge: &Forge,
    who: &Principal,
    state: &mut SessionState,
    msg: pb::SessionRequest,
) -> Result<pb::session_response::Kind> {
    use pb::{session_request::Kind as Req, session_response::Kind as Resp};
    let pb::SessionRequest { kind } = msg;
    let no_tx = || Error::FailedPrecondition("no transaction is open: send begin first".into());
    match kind {
        None => Err(Error::invalid("kind", "the request names no operation")),
        Some(Req::Begin(pb::SessionBegin { database })) => {
            if let Some(current) = state.database.as_ref().filter(|c| **c != database) {
                return Err(Error::FailedPrecondition(format!(
                    "this session is on database {current:?}; open another session for {database:?}"
                )));
            }
            if state.session.is_none() {
                state.session = Some(forge.session(who, &database).await?);
                state.database = Some(database);
            }
            let session = state.session.as_mut().ok_or_else(no_tx)?;
            session.begin().await?;
            Ok(Resp::Begun(pb::SessionBegun {}))
        }
        Some(Req::Statement(stmt)) => {
            let stmt = Statement::try_from(stmt)?;
            let session = state
                .session
                .as_mut()
                .filter(|s| s.in_transaction())
                .ok_or_else(no_tx)?;
            Ok(Resp::Result(session.execute(stmt).await?.into()))
        }
        Some(Req::Commit(pb::SessionCommit {})) => {
            let session = state
                .session
                .as_mut()
                .filter(|s| s.in_transaction())
                .ok_or_else(no_tx)?;
            session.commit().await?;
            Ok(Resp::Committed(pb::SessionCommitted {}))
        }
        Some(Req::Rollback(pb::SessionRollback {})) => {
            let session = state
                .session
                .as_mut()
                .filter(|s| s.in_transaction())
                .ok_or_else(no_tx)?;
            session.rollback().await?;
            Ok(Resp::RolledBack(pb::SessionRolledBack {}))
        }
    }
}
