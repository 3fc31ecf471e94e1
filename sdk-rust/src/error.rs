//! The SDK's error type.

use tonic::Code;
use tonic_types::StatusExt;

/// Everything a DB-Forge call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error status.
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Status(tonic::Status),
    /// The connection could not be made.
    #[error("cannot connect: {}", causes(.0))]
    Transport(#[from] tonic::transport::Error),
    /// A value did not convert to the requested Rust type.
    #[error("expected a {expected} value, found {found}")]
    Type {
        /// What was asked for.
        expected: &'static str,
        /// What the value was.
        found: &'static str,
    },
    /// A column name or index that the result does not have.
    #[error("no column {0} in the result")]
    NoSuchColumn(String),
    /// The client's own configuration is unusable (an unreadable CA file, a key that is not
    /// ASCII).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The server sent something this SDK does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Reading an import's source or writing an export's destination failed; an import whose
    /// source failed was cancelled, so the server applied none of it.
    #[error("{0}")]
    Io(#[source] std::io::Error),
}

/// An error and its sources, so "transport error" says what went wrong underneath
/// ("Connection refused", a TLS failure).
fn causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn code_name(code: Code) -> &'static str {
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

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::Status(s)
    }
}

impl Error {
    /// The gRPC code: the server's, UNAVAILABLE for connection failures, INVALID_ARGUMENT for
    /// local conversion errors, INTERNAL for protocol errors and UNKNOWN for local I/O errors.
    pub fn code(&self) -> Code {
        match self {
            Error::Status(s) => s.code(),
            Error::Transport(_) => Code::Unavailable,
            Error::Type { .. } | Error::NoSuchColumn(_) | Error::Config(_) => Code::InvalidArgument,
            Error::Protocol(_) => Code::Internal,
            Error::Io(_) => Code::Unknown,
        }
    }

    /// The server's message, or this error's description.
    pub fn message(&self) -> String {
        match self {
            Error::Status(s) => s.message().to_owned(),
            other => other.to_string(),
        }
    }

    /// The machine-readable reason from the server's `google.rpc.ErrorInfo`
    /// (`UNIQUE_VIOLATION`, `SQL_ERROR`, `FORBIDDEN`, …).
    pub fn reason(&self) -> Option<String> {
        match self {
            Error::Status(s) => s.get_details_error_info().map(|i| i.reason),
            _ => None,
        }
    }

    /// A metadata entry of the server's ErrorInfo: `native_code` (the engine's error code),
    /// `statement_index` (in batches), `field` (for invalid arguments).
    pub fn metadata(&self, key: &str) -> Option<String> {
        match self {
            Error::Status(s) => s
                .get_details_error_info()
                .and_then(|mut i| i.metadata.remove(key)),
            _ => None,
        }
    }
}

/// The SDK's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
