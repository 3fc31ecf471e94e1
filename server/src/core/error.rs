//! The one error type of the gateway. `api/status.rs` maps it to gRPC status codes.

use std::fmt;

/// What kind of failure a backend reported for a statement, independent of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryErrorKind {
    /// The statement is malformed or names something that does not exist.
    Syntax,
    /// UNIQUE or PRIMARY KEY violated.
    UniqueViolation,
    /// FOREIGN KEY violated.
    ForeignKey,
    /// NOT NULL violated.
    NotNull,
    /// CHECK violated.
    Check,
    /// The transaction lost a serialization conflict; retrying it is safe.
    SerializationFailure,
    /// The engine chose this transaction as a deadlock victim; retrying it is safe.
    Deadlock,
    /// The statement tried to reach outside its database (ATTACH, files, extensions).
    Forbidden,
    /// A value does not fit the column or the parameter.
    DataType,
    /// Anything else the engine reported.
    Other,
}

/// Every error the core and the backends return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The named thing does not exist.
    #[error("{what} {name:?} not found")]
    NotFound {
        /// What kind of thing ("database", "table").
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// The named thing exists already.
    #[error("{what} {name:?} already exists")]
    AlreadyExists {
        /// What kind of thing.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// A request field is invalid.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The offending field.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The request is valid but cannot run in the current state (e.g. backend not configured).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The backend does not support the operation.
    #[error("{operation} is not supported by the {backend} backend")]
    Unsupported {
        /// The operation.
        operation: &'static str,
        /// The backend's name.
        backend: &'static str,
    },
    /// The engine rejected a statement.
    #[error("{message}")]
    Query {
        /// What went wrong, engine-independent.
        kind: QueryErrorKind,
        /// The engine's own error code (SQLSTATE, SQLite extended result code, …).
        code: Option<String>,
        /// The engine's message.
        message: String,
        /// Index of the failing statement in a batch.
        statement_index: Option<usize>,
    },
    /// No valid credentials came with the call.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's key lacks the grant the call needs.
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller sent requests faster than its rate limit.
    #[error("{message}")]
    RateLimited {
        /// What was exceeded.
        message: String,
        /// When the next request would be accepted.
        retry_after: std::time::Duration,
    },
    /// A configured limit was reached.
    #[error("{0}")]
    LimitExceeded(String),
    /// The statement ran out of time and was interrupted.
    #[error("{0}")]
    Timeout(String),
    /// The backend cannot be reached right now.
    #[error("{0}")]
    Unavailable(String),
    /// The call conflicts with one already running on the same object (a second backup of a
    /// database); retrying later may succeed.
    #[error("{0}")]
    Aborted(String),
    /// A position outside what is kept or exists (a WatchDatabases `since` older than the
    /// events kept).
    #[error("{0}")]
    OutOfRange(String),
    /// Stored data is damaged: a backup that no longer matches its checksum or manifest.
    #[error("{0}")]
    DataLoss(String),
    /// A bug or an environment failure; the details are logged, not sent to the client.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Another error with advice on its likely cause (a PostgreSQL syntax error in a statement
    /// written with `?` placeholders); the status is the inner error's, the hint goes into the
    /// message and the ErrorInfo metadata (`hint`).
    #[error("{inner}; hint: {hint}")]
    Hinted {
        /// The error.
        inner: Box<Error>,
        /// What probably caused it and what to do instead.
        hint: String,
    },
}

impl Error {
    /// An `InvalidArgument` for `field`.
    pub fn invalid(field: &'static str, reason: impl fmt::Display) -> Self {
        Error::InvalidArgument {
            field,
            reason: reason.to_string(),
        }
    }

    /// This error with a hint on its likely cause.
    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        Error::Hinted {
            inner: Box::new(self),
            hint: hint.into(),
        }
    }

    /// An `Internal` error from anything displayable.
    pub fn internal(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Internal(err.into())
    }

    /// Rewrites the message of a query error (to say where it happened, or what became of the
    /// call); other errors pass unchanged.
    pub fn map_query_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Error::Hinted { inner, hint } => Error::Hinted {
                inner: Box::new(inner.map_query_message(f)),
                hint,
            },
            Error::Query {
                kind,
                code,
                message,
                statement_index,
            } => Error::Query {
                kind,
                code,
                message: f(message),
                statement_index,
            },
            other => other,
        }
    }

    /// Tags a statement error with its position in a batch.
    pub fn at_statement(self, index: usize) -> Self {
        match self {
            Error::Hinted { inner, hint } => Error::Hinted {
                inner: Box::new(inner.at_statement(index)),
                hint,
            },
            Error::Query {
                kind,
                code,
                message,
                statement_index: None,
            } => Error::Query {
                kind,
                code,
                message: format!("statement {index}: {message}"),
                statement_index: Some(index),
            },
            other => other,
        }
    }
}

/// The gateway's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
