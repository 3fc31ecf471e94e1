//! The one mapping from core errors to gRPC statuses. Errors are logged here, once.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::{debug, error};

use crate::core::error::{Error, QueryErrorKind};

/// The ErrorInfo domain of every DB-Forge error.
pub const ERROR_DOMAIN: &str = "dbforge.v1";

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let mut meta = HashMap::new();
        // A hint rides along: the code and reason are the inner error's (the outermost hint
        // wins).
        let (mut err, mut hint) = (err, None);
        while let Error::Hinted { inner, hint: h } = err {
            hint.get_or_insert(h);
            err = *inner;
        }
        if let Some(hint) = &hint {
            meta.insert("hint".to_owned(), hint.clone());
        }
        let (code, reason) = match &err {
            Error::NotFound { .. } => (Code::NotFound, "NOT_FOUND"),
            Error::AlreadyExists { .. } => (Code::AlreadyExists, "ALREADY_EXISTS"),
            Error::InvalidArgument { field, .. } => {
                meta.insert("field".to_owned(), (*field).to_owned());
                (Code::InvalidArgument, "INVALID_ARGUMENT")
            }
            Error::FailedPrecondition(_) => (Code::FailedPrecondition, "FAILED_PRECONDITION"),
            Error::Unsupported { backend, .. } => {
                meta.insert("backend".to_owned(), (*backend).to_owned());
                (Code::Unimplemented, "UNSUPPORTED")
            }
            Error::Query {
                kind,
                code,
                statement_index,
                ..
            } => {
                if let Some(c) = code {
                    meta.insert("native_code".to_owned(), c.clone());
                }
                if let Some(i) = statement_index {
                    meta.insert("statement_index".to_owned(), i.to_string());
                }
                match kind {
                    QueryErrorKind::Syntax => (Code::InvalidArgument, "SQL_ERROR"),
                    QueryErrorKind::DataType => (Code::InvalidArgument, "DATA_TYPE"),
                    QueryErrorKind::Other => (Code::InvalidArgument, "SQL_ERROR"),
                    QueryErrorKind::UniqueViolation => {
                        (Code::FailedPrecondition, "UNIQUE_VIOLATION")
                    }
                    QueryErrorKind::ForeignKey => {
                        (Code::FailedPrecondition, "FOREIGN_KEY_VIOLATION")
                    }
                    QueryErrorKind::NotNull => (Code::FailedPrecondition, "NOT_NULL_VIOLATION"),
                    QueryErrorKind::Check => (Code::FailedPrecondition, "CHECK_VIOLATION"),
                    QueryErrorKind::SerializationFailure => {
                        (Code::Aborted, "SERIALIZATION_FAILURE")
                    }
                    QueryErrorKind::Deadlock => (Code::Aborted, "DEADLOCK"),
                    QueryErrorKind::Forbidden => (Code::PermissionDenied, "FORBIDDEN"),
                }
            }
            Error::Unauthenticated(_) => (Code::Unauthenticated, "UNAUTHENTICATED"),
            Error::PermissionDenied(_) => (Code::PermissionDenied, "PERMISSION_DENIED"),
            Error::LimitExceeded(_) => (Code::ResourceExhausted, "LIMIT_EXCEEDED"),
            Error::RateLimited { .. } => (Code::ResourceExhausted, "RATE_LIMITED"),
            Error::Timeout(_) => (Code::DeadlineExceeded, "TIMEOUT"),
            Error::Unavailable(_) => (Code::Unavailable, "UNAVAILABLE"),
            Error::Aborted(_) => (Code::Aborted, "ABORTED"),
            Error::OutOfRange(_) => (Code::OutOfRange, "OUT_OF_RANGE"),
            Error::DataLoss(_) => (Code::DataLoss, "DATA_LOSS"),
            Error::Internal(_) => (Code::Internal, "INTERNAL"),
            // Cannot happen: unwrapped above.
            Error::Hinted { .. } => (Code::Internal, "INTERNAL"),
        };
        let message = match &err {
            Error::Unsupported { operation, backend } => {
                format!("{err}; {}", alternative(operation, backend))
            }
            Error::Internal(source) => {
                error!(error = ?source, "internal error");
                "internal error; the gateway's log has the details".to_owned()
            }
            other => {
                debug!(code = ?code, error = %other, "request failed");
                other.to_string()
            }
        };
        let message = match &hint {
            Some(hint) => format!("{message}; hint: {hint}"),
            None => message,
        };
        let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, meta);
        if let Error::RateLimited { retry_after, .. } = &err {
            details.set_retry_info(Some(*retry_after));
        }
        Status::with_error_details(code, message, details)
    }
}

/// What to use instead of an operation a backend lacks.
fn alternative(operation: &str, backend: &str) -> &'static str {
    if backend == "graph" {
        // The graph engine has neither tables nor SQL: everything goes through SPARQL.
        return match operation {
            "Session" => {
                "graph databases have no sessions: each SPARQL update given to \
                 QueryService.Execute is atomic, and ExecuteBatch with `transaction` groups several"
            }
            _ => {
                "graph databases have no tables: use QueryService.Execute and Query with SPARQL \
                 (SELECT, CONSTRUCT, ASK, INSERT DATA, DELETE WHERE) instead"
            }
        };
    }
    match operation {
        "Session" => "group statements atomically with ExecuteBatch and `transaction` instead",
        "CreateTable" | "InsertRows" | "SelectRows" | "UpdateRows" | "DeleteRows" => {
            "use QueryService.Execute with the backend's own commands instead (on Redis: \
             HSET/HGETALL/HSCAN for records)"
        }
        _ => "see the database's capabilities for what it supports",
    }
}

/// The status tonic gives a request above the message size limit is OUT_OF_RANGE; the gRPC
/// spec (and every other server) says RESOURCE_EXHAUSTED. Used where tonic hands the error to
/// our code (client streams); `server::remap_oversize` does the same for unary requests.
pub fn remap_decode_error(status: Status) -> Status {
    if is_oversize(status.code(), status.message()) {
        oversize(status.message())
    } else {
        status
    }
}

/// RESOURCE_EXHAUSTED with reason `LIMIT_EXCEEDED` for a message above the size limit, as the
/// server's own limits answer, naming the setting and what to do instead.
/// Metadata `limit` (`max_message_size`), and `message_bytes` and `limit_bytes` when the
/// transport's message says them ("found N bytes, the limit is: M bytes"), as the SDKs give for
/// a message their own client refuses.
pub fn oversize(transport_message: &str) -> Status {
    let message = format!(
        "the message is larger than the server's message size limit (--max-message-size) \
         ({transport_message}); send large values in parts, or load files with ImportCsv or \
         ImportSql, which stream"
    );
    let numbers: Vec<&str> = transport_message
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .collect();
    let mut meta = HashMap::from([("limit".to_owned(), "max_message_size".to_owned())]);
    if let [size, limit] = numbers[..] {
        meta.insert("message_bytes".to_owned(), size.to_owned());
        meta.insert("limit_bytes".to_owned(), limit.to_owned());
    }
    debug!(message, "request above the message size limit");
    Status::with_error_details(
        Code::ResourceExhausted,
        message,
        ErrorDetails::with_error_info("LIMIT_EXCEEDED", ERROR_DOMAIN, meta),
    )
}

/// Whether a status is tonic's "message too large" decode or encode error.
pub fn is_oversize(code: Code, message: &str) -> bool {
    code == Code::OutOfRange && message.contains("message length too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(err: Error) -> Code {
        Status::from(err).code()
    }

    #[test]
    fn every_error_has_its_code() {
        let q = |kind| Error::Query {
            kind,
            code: None,
            message: "m".into(),
            statement_index: None,
        };
        assert_eq!(
            code_of(Error::NotFound {
                what: "database",
                name: "x".into()
            }),
            Code::NotFound
        );
        assert_eq!(
            code_of(Error::AlreadyExists {
                what: "database",
                name: "x".into()
            }),
            Code::AlreadyExists
        );
        assert_eq!(
            code_of(Error::invalid("name", "bad")),
            Code::InvalidArgument
        );
        assert_eq!(code_of(q(QueryErrorKind::Syntax)), Code::InvalidArgument);
        assert_eq!(
            code_of(q(QueryErrorKind::UniqueViolation)),
            Code::FailedPrecondition
        );
        assert_eq!(
            code_of(q(QueryErrorKind::NotNull)),
            Code::FailedPrecondition
        );
        assert_eq!(
            code_of(q(QueryErrorKind::Forbidden)),
            Code::PermissionDenied
        );
        assert_eq!(code_of(q(QueryErrorKind::Deadlock)), Code::Aborted);
        assert_eq!(
            code_of(Error::LimitExceeded("x".into())),
            Code::ResourceExhausted
        );
        assert_eq!(code_of(Error::Timeout("x".into())), Code::DeadlineExceeded);
        assert_eq!(code_of(Error::Unavailable("x".into())), Code::Unavailable);
        assert_eq!(code_of(Error::OutOfRange("x".into())), Code::OutOfRange);
        assert_eq!(
            code_of(Error::Unsupported {
                operation: "Session",
                backend: "redis"
            }),
            Code::Unimplemented
        );
    }

    #[test]
    fn a_hint_keeps_the_inner_code_and_goes_into_message_and_metadata() {
        let err = Error::Query {
            kind: QueryErrorKind::Syntax,
            code: Some("42601".into()),
            message: "syntax error at or near \",\"".into(),
            statement_index: None,
        }
        .with_hint("use $1")
        .at_statement(3);
        let status = Status::from(err);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "statement 3: syntax error at or near \",\"; hint: use $1"
        );
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(info.reason, "SQL_ERROR");
        assert_eq!(
            info.metadata.get("hint").map(String::as_str),
            Some("use $1")
        );
        assert_eq!(
            info.metadata.get("statement_index").map(String::as_str),
            Some("3")
        );
    }

    #[test]
    fn internal_errors_hide_details() {
        let status = Status::from(Error::internal("disk on fire at /secret/path"));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("/secret/path"));
    }

    #[test]
    fn query_errors_carry_error_info() {
        let status = Status::from(
            Error::Query {
                kind: QueryErrorKind::UniqueViolation,
                code: Some("SQLITE_2067".into()),
                message: "UNIQUE constraint failed: t.id".into(),
                statement_index: None,
            }
            .at_statement(3),
        );
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(info.reason, "UNIQUE_VIOLATION");
        assert_eq!(
            info.metadata.get("native_code").map(String::as_str),
            Some("SQLITE_2067")
        );
        assert_eq!(
            info.metadata.get("statement_index").map(String::as_str),
            Some("3")
        );
        assert!(status.message().starts_with("statement 3: "));
    }
}
