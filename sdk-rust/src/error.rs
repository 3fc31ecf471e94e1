//! The SDK's error type.
//!
//! The gateway's messages name its RPCs ("use ExecuteBatch with `transaction` or a Session");
//! [`Error`]'s `Display` and [`Error::message`] say them with this SDK's methods instead ("use
//! `client.batch(database, statements, true)` or `client.transaction(database)`"), and
//! [`Error::grpc_message`] (or the [`tonic::Status`] in [`Error::Status`]) keeps the server's text.

use tonic::Code;
use tonic_types::StatusExt;

/// Everything a DB-Forge call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error status (as the server sent it; `Display` says the
    /// message in this SDK's words).
    #[error("{}: {}", code_name(.0.code()), sdk_words(.0.message()))]
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

/// The gateway's messages name RPCs ("use ExecuteBatch with `transaction`…"); a user of this SDK
/// knows its methods and arguments. Each pair is the gateway's words and this SDK's, replaced in
/// order (a longer phrase before any phrase it contains). The gateway's messages are in
/// server/src (api/status.rs `alternative`, the backends' limit and transaction-control refusals,
/// core/error.rs `Unsupported`); cli/src/error.rs `CLI_WORDS` does the same for the CLI.
const SDK_WORDS: &[(&str, &str)] = &[
    (
        "use ExecuteBatch with `transaction` or a Session",
        "use `client.batch(database, statements, true)` or `client.transaction(database)`",
    ),
    (
        "use ExecuteBatch with `transaction` for MULTI/EXEC",
        "use `client.batch(database, statements, true)` for MULTI/EXEC",
    ),
    (
        "group statements atomically with ExecuteBatch and `transaction` instead",
        "group statements atomically with `client.batch(database, statements, true)` instead",
    ),
    (
        "use ExecuteBatch for several",
        "use `client.batch()` for several",
    ),
    (
        "KEYS is not available in ExecuteBatch (the gateway emulates it with SCAN): use \
         Execute or Query, or SCAN",
        "KEYS is not available in `batch()` (the gateway emulates it with SCAN): use \
         `execute()` or `query()`, or SCAN",
    ),
    (
        "use Query to stream large results",
        "use `query()` to stream large results",
    ),
    (
        "use Query (it streams) or SCAN",
        "use `query()` (it streams) or SCAN",
    ),
    (
        "use Query, or a ranged or SCAN command, for large results",
        "use `query()`, or a ranged or SCAN command, for large results",
    ),
    (
        "(use `transaction` for all-or-nothing)",
        "(make it `batch(database, statements, true)` for all-or-nothing)",
    ),
    (
        "use QueryService.Execute with the backend's own commands instead",
        "use `execute()` with the backend's own commands instead",
    ),
    ("InsertRows takes at most", "`insert_rows()` takes at most"),
    (
        "Session is not supported",
        "`transaction()` is not supported",
    ),
    ("CreateTable is not", "`create_table()` is not"),
    ("InsertRows is not", "`insert_rows()` is not"),
    ("SelectRows is not", "`select_rows()` is not"),
    ("UpdateRows is not", "`update_rows()` is not"),
    ("DeleteRows is not", "`delete_rows()` is not"),
    ("ExportTable is not", "`export_table()` is not"),
    ("ExportQuery is not", "`export_query()` is not"),
    (
        "DumpDatabase of keys of module types is not",
        "`dump_database()` of keys of module types is not",
    ),
    ("DumpDatabase is not", "`dump_database()` is not"),
    ("ImportCsv is not", "`import_csv()` is not"),
    ("ImportSql is not", "`import_sql()` is not"),
    ("ImportNdjson is not", "`import_ndjson()` is not"),
    ("GetSchema is not", "`get_schema()` is not"),
    (
        "Explain with analyze is not",
        "`explain(database, sql, params, true)` (analyze) is not",
    ),
    ("Explain is not", "`explain()` is not"),
];

/// `message` in this SDK's words: the gateway's RPC names replaced by the methods and arguments
/// that call them.
fn sdk_words(message: &str) -> String {
    SDK_WORDS
        .iter()
        .fold(message.to_owned(), |m, (rpc, sdk)| m.replace(rpc, sdk))
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

    /// The server's message in this SDK's words (the gateway's RPC names replaced by the
    /// methods that call them), or this error's description.
    pub fn message(&self) -> String {
        match self {
            Error::Status(s) => sdk_words(s.message()),
            other => other.to_string(),
        }
    }

    /// The server's message as it sent it (naming the gateway's RPCs); for errors that are not a
    /// server status, the same as [`message`](Self::message).
    pub fn grpc_message(&self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `text` names one of the gateway's RPCs (or its `transaction` field).
    fn names_an_rpc(text: &str) -> bool {
        const RPCS: &[&str] = &[
            "ExecuteBatch",
            "QueryService",
            "`transaction`",
            "CreateTable",
            "InsertRows",
            "SelectRows",
            "UpdateRows",
            "DeleteRows",
            "ExportTable",
            "ExportQuery",
            "DumpDatabase",
            "ImportCsv",
            "ImportSql",
            "ImportNdjson",
            "ImportRdf",
            "GetSchema",
        ];
        let words = text
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| matches!(w, "Query" | "Execute" | "Session" | "Explain"));
        words || RPCS.iter().any(|rpc| text.contains(rpc))
    }

    #[test]
    fn every_gateway_phrase_is_said_in_the_sdks_words() {
        assert!(SDK_WORDS.len() >= 25);
        for (server, sdk) in SDK_WORDS {
            assert!(names_an_rpc(server), "{server}"); // each phrase names an RPC…
            assert!(!names_an_rpc(sdk), "{sdk}"); // …and its replacement none
            let said = sdk_words(&format!("something failed; {server} (more)"));
            assert_eq!(said, format!("something failed; {sdk} (more)"));
            assert!(!names_an_rpc(&said), "{said}");
            let e = Error::from(tonic::Status::invalid_argument(*server));
            assert_eq!(e.message(), *sdk);
            assert_eq!(e.to_string(), format!("INVALID_ARGUMENT: {sdk}"));
            assert_eq!(e.grpc_message(), *server);
        }
        let cases = [
            (
                "transaction control (BEGIN …) is not accepted here: use ExecuteBatch with \
                 `transaction` or a Session",
                "transaction control (BEGIN …) is not accepted here: use `client.batch(database, \
                 statements, true)` or `client.transaction(database)`",
            ),
            (
                "Session is not supported by the redis backend; group statements atomically \
                 with ExecuteBatch and `transaction` instead",
                "`transaction()` is not supported by the redis backend; group statements \
                 atomically with `client.batch(database, statements, true)` instead",
            ),
            (
                "InsertRows takes at most 10000 rows per call, got 10001",
                "`insert_rows()` takes at most 10000 rows per call, got 10001",
            ),
            (
                "Explain with analyze is not supported by the sqlite backend",
                "`explain(database, sql, params, true)` (analyze) is not supported by the sqlite \
                 backend",
            ),
            (
                "SelectRows is not supported by the redis backend; use QueryService.Execute \
                 with the backend's own commands instead (on Redis: HSET/HGETALL/HSCAN for \
                 records)",
                "`select_rows()` is not supported by the redis backend; use `execute()` with \
                 the backend's own commands instead (on Redis: HSET/HGETALL/HSCAN for records)",
            ),
        ];
        for (server, sdk) in cases {
            assert_eq!(sdk_words(server), sdk);
        }
        // A message without those phrases is left as it is.
        assert_eq!(sdk_words("no such table: Query"), "no such table: Query");
    }
}
