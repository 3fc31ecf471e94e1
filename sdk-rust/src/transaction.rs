//! Interactive transactions over `QueryService.Session`.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::{Error, ExecResult, Result, Value, pb};

/// An open transaction on a connection the server pins to it. Statements see each other's
/// effects; nothing is visible to others until [`commit`](Self::commit). Dropping it without
/// committing rolls back (the server sees the stream end).
#[derive(Debug)]
pub struct Transaction {
    requests: mpsc::Sender<pb::SessionRequest>,
    responses: Streaming<pb::SessionResponse>,
}

impl Transaction {
    pub(crate) async fn begin(
        mut client: pb::query_service_client::QueryServiceClient<tonic::transport::Channel>,
        settings: &crate::client::CallSettings,
        database: &str,
    ) -> Result<Self> {
        let (requests, rx) = mpsc::channel(4);
        let begin = pb::SessionRequest {
            kind: Some(pb::session_request::Kind::Begin(pb::SessionBegin {
                database: database.to_owned(),
            })),
        };
        requests
            .send(begin)
            .await
            .map_err(|_| Error::Protocol("session closed".into()))?;
        let responses = client
            .session(settings.request(ReceiverStream::new(rx)))
            .await?
            .into_inner();
        let mut tx = Transaction {
            requests,
            responses,
        };
        match tx.next_response().await? {
            pb::session_response::Kind::Begun(_) => Ok(tx),
            other => Err(unexpected(other)),
        }
    }

    async fn call(
        &mut self,
        kind: pb::session_request::Kind,
    ) -> Result<pb::session_response::Kind> {
        if self
            .requests
            .send(pb::SessionRequest { kind: Some(kind) })
            .await
            .is_err()
        {
            // The server ended the session (after its idle timeout, say) and its status says
            // why; that is the error, not the closed request stream.
            return Err(match self.responses.message().await {
                Err(status) => status.into(),
                Ok(_) => Error::Protocol("the session has ended".into()),
            });
        }
        self.next_response().await
    }

    async fn next_response(&mut self) -> Result<pb::session_response::Kind> {
        match self.responses.message().await? {
            Some(pb::SessionResponse {
                kind: Some(pb::session_response::Kind::Error(e)),
            }) => Err(Error::Status(session_status(e))),
            Some(pb::SessionResponse { kind: Some(kind) }) => Ok(kind),
            Some(_) => Err(Error::Protocol("empty session response".into())),
            None => Err(Error::Protocol("the session ended unexpectedly".into())),
        }
    }

    /// Runs a statement inside the transaction.
    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<ExecResult> {
        let stmt = pb::Statement {
            sql: sql.to_owned(),
            params: params.iter().cloned().map(Into::into).collect(),
        };
        match self
            .call(pb::session_request::Kind::Statement(stmt))
            .await?
        {
            pb::session_response::Kind::Result(r) => ExecResult::try_from(r),
            other => Err(unexpected(other)),
        }
    }

    /// Commits.
    pub async fn commit(mut self) -> Result<()> {
        match self
            .call(pb::session_request::Kind::Commit(pb::SessionCommit {}))
            .await?
        {
            pb::session_response::Kind::Committed(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Rolls back.
    pub async fn rollback(mut self) -> Result<()> {
        match self
            .call(pb::session_request::Kind::Rollback(pb::SessionRollback {}))
            .await?
        {
            pb::session_response::Kind::RolledBack(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(kind: pb::session_response::Kind) -> Error {
    Error::Protocol(format!("unexpected session response {kind:?}"))
}

/// A session's in-band error as the status the same failure gets elsewhere, with its ErrorInfo,
/// so `Error::reason` and `Error::metadata` work the same inside a transaction.
fn session_status(e: pb::SessionError) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let code = tonic::Code::from(e.code);
    if e.reason.is_empty() {
        return tonic::Status::new(code, e.message);
    }
    let metadata: std::collections::HashMap<_, _> = e.metadata.into_iter().collect();
    tonic::Status::with_error_details(
        code,
        e.message,
        ErrorDetails::with_error_info(e.reason, "dbforge.v1", metadata),
    )
}
