//! Thin gRPC adapters: each method converts the request, calls the Forge and converts back.

pub mod access;
pub mod auth;
pub mod backup;
pub mod control;
pub mod convert;
pub mod data;
pub mod forward;
pub mod limits;
pub mod operations;
pub mod schema;
pub mod semantic;
pub mod status;
pub mod table;
pub mod telemetry;
pub mod transfer;
pub mod wire;

use std::pin::Pin;

use std::{
    task::{Context, Poll},
    time::Instant,
};

use futures::Stream;
use tonic::{Code, Request, Status};

use crate::core::{
    access::Principal,
    audit::{AuditLog, Event},
};

/// A boxed response stream.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The caller, as the authentication interceptor recorded it. A request without one never got
/// past the interceptor, so its absence is a wiring bug, answered as INTERNAL.
pub fn caller<T>(req: &Request<T>) -> Result<Principal, Status> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::internal("request reached a service without authentication"))
}

/// The gRPC name of a code, as audit records spell outcomes.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One call on its way to the audit log: what it was, who made it, since when.
#[derive(Debug)]
pub struct Call {
    audit: AuditLog,
    event: Event,
    started: Instant,
}

impl Call {
    /// Starts auditing an RPC made by `who`.
    pub fn new(audit: &AuditLog, who: &Principal, rpc: &'static str) -> Self {
        Call {
            audit: audit.clone(),
            event: Event {
                key_id: who.key_id().to_owned(),
                rpc,
                database: None,
                statement: None,
                rows_affected: None,
                outcome: "OK",
                duration: Default::default(),
            },
            started: Instant::now(),
        }
    }

    /// The targeted database.
    pub fn database(mut self, db: &str) -> Self {
        self.event.database = Some(db.to_owned());
        self
    }

    /// The statement or operation text.
    pub fn statement(mut self, text: impl Into<String>) -> Self {
        self.event.statement = Some(text.into());
        self
    }

    /// Records how the call ended and passes its result on.
    pub async fn done<T>(
        mut self,
        result: Result<T, Status>,
        rows: impl FnOnce(&T) -> Option<u64>,
    ) -> Result<T, Status> {
        self.event.outcome = match &result {
            Ok(v) => {
                self.event.rows_affected = rows(v);
                "OK"
            }
            Err(s) => code_name(s.code()),
        };
        self.event.duration = self.started.elapsed();
        telemetry::telemetry().rpc(self.event.rpc, self.event.outcome, self.event.duration);
        self.audit.record(self.event).await;
        result
    }

    /// Records a call that failed before it produced anything, and passes the status on.
    pub async fn failed(self, status: Status) -> Status {
        match self.done(Err::<(), _>(status), |_| None).await {
            Err(status) => status,
            Ok(()) => Status::internal("audit passed an error through as success"),
        }
    }

    /// Audits a response stream: recorded when it ends, fails, or is dropped by the client.
    /// The stream holds `permit`, its slot among the key's open streams, until it ends.
    pub fn stream<T, S>(
        self,
        inner: S,
        rows_of: fn(&T) -> Option<u64>,
        permit: limits::StreamPermit,
    ) -> AuditedStream<S, T>
    where
        S: Stream<Item = Result<T, Status>> + Unpin,
    {
        AuditedStream {
            inner,
            call: Some(self),
            rows_of,
            rows: None,
            _permit: permit,
            _active: telemetry::GaugeGuard::new(telemetry::Gauge::Streams),
        }
    }
}

/// A response stream that records its call in the audit log when it finishes.
pub struct AuditedStream<S, T> {
    inner: S,
    call: Option<Call>,
    rows_of: fn(&T) -> Option<u64>,
    rows: Option<u64>,
    _active: telemetry::GaugeGuard,
    _permit: limits::StreamPermit,
}

impl<S, T> AuditedStream<S, T> {
    fn finish(&mut self, outcome: &'static str) {
        if let Some(mut call) = self.call.take() {
            call.event.outcome = outcome;
            call.event.rows_affected = self.rows;
            call.event.duration = call.started.elapsed();
            telemetry::telemetry().rpc(call.event.rpc, outcome, call.event.duration);
            // Drop cannot await: the record goes through a task.
            tokio::spawn(async move { call.audit.record(call.event).await });
        }
    }
}

impl<S, T> Stream for AuditedStream<S, T>
where
    S: Stream<Item = Result<T, Status>> + Unpin,
{
    type Item = Result<T, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(item))) => {
                if let Some(n) = (self.rows_of)(item) {
                    self.rows = Some(n);
                }
            }
            Poll::Ready(Some(Err(status))) => self.finish(code_name(status.code())),
            Poll::Ready(None) => self.finish("OK"),
            Poll::Pending => {}
        }
        polled
    }
}

impl<S, T> Drop for AuditedStream<S, T> {
    fn drop(&mut self) {
        self.finish("CANCELLED");
    }
}
