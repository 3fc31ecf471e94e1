//! The CLI's error type and the one mapping from errors to exit codes and hints.
//!
//! Every failure ends up here: the server's status (through [`dbforge::Error::code`]), a bad
//! argument found after clap, an unreadable input file, a broken pipe, Ctrl-C. [`CliError::exit_code`]
//! is one match over gRPC codes so that the table in `--help` and the README cannot drift from
//! what the binary does; `exit_codes_match_the_documented_table` checks them against each other.

use std::{fmt, io};

use dbforge::Code;

/// Exit codes, as documented in `dbforge --help` and cli/README.md.
pub mod code {
    /// Success.
    pub const OK: u8 = 0;
    /// Any other error: internal server errors, local I/O, protocol errors.
    pub const OTHER: u8 = 1;
    /// Usage: bad flags or arguments, an unreadable config file or input file.
    pub const USAGE: u8 = 2;
    /// The database, table or other named thing does not exist.
    pub const NOT_FOUND: u8 = 3;
    /// The name is taken.
    pub const ALREADY_EXISTS: u8 = 4;
    /// The server refused the SQL or an argument (syntax errors, bad names, bad values).
    pub const INVALID: u8 = 5;
    /// Not allowed: authentication failed or the statement reaches outside its database.
    pub const PERMISSION: u8 = 6;
    /// The gateway or its backend cannot be reached, or the call ran past its deadline.
    pub const UNAVAILABLE: u8 = 7;
    /// A constraint was violated, a transaction conflicted, or the gateway is not in a state to
    /// do it (e.g. the backend is not configured).
    pub const CONFLICT: u8 = 8;
    /// A size or row limit of the gateway was exceeded.
    pub const LIMIT: u8 = 9;
    /// The database's backend does not support the operation.
    pub const UNSUPPORTED: u8 = 10;
    /// Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: u8 = 130;
}

/// The exit-code table shown after `dbforge --help` (and copied into cli/README.md).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
    0    success
    1    other error (internal server error, local I/O, audit verify finding a break)
    2    usage error (bad flags or arguments, unreadable config or input file)
    3    not found (NOT_FOUND)
    4    already exists (ALREADY_EXISTS)
    5    invalid SQL or argument (INVALID_ARGUMENT, OUT_OF_RANGE)
    6    permission or authentication (PERMISSION_DENIED, UNAUTHENTICATED)
    7    unavailable or timed out (UNAVAILABLE, DEADLINE_EXCEEDED, cannot connect)
    8    constraint violation or conflict (FAILED_PRECONDITION, ABORTED)
    9    limit exceeded (RESOURCE_EXHAUSTED)
    10   not supported by the backend (UNIMPLEMENTED)
    130  interrupted (Ctrl-C)";

/// Everything a command can fail with.
#[derive(Debug)]
pub enum CliError {
    /// A call to the gateway failed; `endpoint` is where we were talking to, for the hint.
    Sdk {
        /// The SDK's error.
        error: dbforge::Error,
        /// The gateway's address.
        endpoint: String,
    },
    /// Bad usage found after clap: conflicting arguments, an unreadable file, a bad config.
    Usage(String),
    /// Input the CLI itself refused (a rows file that is not JSON, a non-numeric chart value).
    Invalid(String),
    /// Writing the output or reading the terminal failed.
    Io(io::Error),
    /// No answer within `--timeout`.
    Timeout(std::time::Duration),
    /// The user pressed Ctrl-C.
    Interrupted,
    /// The user answered no to a confirmation.
    Declined(String),
    /// A check the command ran found a problem (`audit verify`); the output says what.
    CheckFailed(String),
    /// The gateway ended an open transaction's session and rolled the transaction back; the
    /// text says why (the session's idle timeout, when the gateway said so).
    RolledBack(String),
}

impl CliError {
    /// Wraps an SDK error with the endpoint it happened on.
    pub fn sdk(error: dbforge::Error, endpoint: &str) -> Self {
        CliError::Sdk {
            error,
            endpoint: endpoint.to_owned(),
        }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Sdk { error, .. } => exit_code_of(error.code()),
            CliError::Usage(_) => code::USAGE,
            CliError::Invalid(_) => code::INVALID,
            // The reader of our output went away: not a failure of ours.
            CliError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe => code::OK,
            CliError::Io(_) | CliError::Declined(_) | CliError::CheckFailed(_) => code::OTHER,
            CliError::Timeout(_) | CliError::RolledBack(_) => code::UNAVAILABLE,
            CliError::Interrupted => code::INTERRUPTED,
        }
    }

    /// A suggestion printed under the message, where one helps.
    pub fn hint(&self) -> Option<String> {
        let (error, endpoint) = match self {
            CliError::Sdk { error, endpoint } => (error, endpoint),
            CliError::Timeout(_) => {
                return Some("raise --timeout, or the gateway's --statement-timeout".to_owned());
            }
            _ => return None,
        };
        let message = error.message();
        let reason = error.reason().unwrap_or_default();
        let hint = match error.code() {
            Code::NotFound if message.starts_with("database") => {
                "`dbforge db list` shows the databases there are".to_owned()
            }
            Code::NotFound if message.starts_with("backup policy") => {
                "`dbforge backup policy list` shows the policies there are".to_owned()
            }
            Code::NotFound if message.starts_with("backup") => {
                "`dbforge backup list` shows the backups there are".to_owned()
            }
            Code::AlreadyExists if message.starts_with("database") => {
                "pass --if-not-exists to use the existing database".to_owned()
            }
            Code::AlreadyExists if message.starts_with("table") => {
                "pass --if-not-exists to keep the existing table".to_owned()
            }
            Code::InvalidArgument if message.contains("no such table") => {
                "`.tables` in `dbforge shell DB` lists the tables".to_owned()
            }
            Code::Unavailable if matches!(error, dbforge::Error::Transport(_)) => format!(
                "is the gateway running at {endpoint}? Set it with --endpoint or DBFORGE_ENDPOINT"
            ),
            Code::Unauthenticated => {
                "pass an API key with --api-key or DBFORGE_API_KEY (or a profile)".to_owned()
            }
            Code::PermissionDenied if reason == "FORBIDDEN" => {
                "statements cannot reach outside their own database".to_owned()
            }
            Code::DeadlineExceeded => {
                "raise --timeout, or the gateway's --statement-timeout".to_owned()
            }
            _ => return None,
        };
        Some(hint)
    }
}

/// Prints an error (and its hint) on stderr, one line each. A broken pipe is not reported: the
/// reader went away (`dbforge … | head`), which is how pipelines end.
pub fn report(e: &CliError, paint: crate::output::Paint) {
    if let CliError::Io(io) = e
        && io.kind() == io::ErrorKind::BrokenPipe
    {
        return;
    }
    eprintln!("{}: {e}", paint.error("error"));
    if let Some(h) = e.hint() {
        eprintln!("{}: {h}", paint.dim("hint"));
    }
}

/// The exit code of a gRPC status code; the one place that decides it.
pub fn exit_code_of(c: Code) -> u8 {
    match c {
        Code::Ok => code::OK,
        Code::NotFound => code::NOT_FOUND,
        Code::AlreadyExists => code::ALREADY_EXISTS,
        Code::InvalidArgument | Code::OutOfRange => code::INVALID,
        Code::PermissionDenied | Code::Unauthenticated => code::PERMISSION,
        Code::Unavailable | Code::DeadlineExceeded => code::UNAVAILABLE,
        Code::FailedPrecondition | Code::Aborted => code::CONFLICT,
        Code::ResourceExhausted => code::LIMIT,
        Code::Unimplemented => code::UNSUPPORTED,
        Code::Cancelled | Code::Unknown | Code::Internal | Code::DataLoss => code::OTHER,
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Sdk { error, .. } => {
                // The SDK's Display already says "CODE: message"; say the reason when the server
                // gave a more precise one (UNIQUE_VIOLATION rather than FAILED_PRECONDITION).
                // The server's own words (the SDK's message names SDK methods), in the CLI's.
                let mut text = cli_words(&one_line(&error.grpc_message()));
                if let dbforge::Error::Transport(_) = error {
                    // tonic's transport error says only "transport error"; the cause is in its
                    // sources, several of which repeat their parent's words.
                    let mut source = std::error::Error::source(error);
                    while let Some(s) = source {
                        let part = s.to_string();
                        if !text.contains(&part) {
                            text.push_str(": ");
                            text.push_str(&part);
                        }
                        source = s.source();
                    }
                }
                f.write_str(&text)?;
                match error.reason() {
                    Some(reason) => write!(f, " [{reason}]"),
                    None => write!(f, " [{}]", code_name(error.code())),
                }
            }
            CliError::Usage(m)
            | CliError::Invalid(m)
            | CliError::Declined(m)
            | CliError::CheckFailed(m) => f.write_str(&one_line(m)),
            CliError::Io(e) => write!(f, "{e}"),
            CliError::Timeout(t) => write!(
                f,
                "no answer within {} (--timeout) [DEADLINE_EXCEEDED]",
                humantime::format_duration(*t)
            ),
            CliError::Interrupted => f.write_str("interrupted"),
            CliError::RolledBack(why) => write!(f, "the transaction was rolled back: {why}"),
        }
    }
}

/// The gateway's messages name RPCs ("use ExecuteBatch with `transaction`…"), which is right
/// for SDK users; a CLI user knows commands and flags. Each pair is the gateway's words and the
/// CLI's, replaced in order (a longer phrase before any phrase it contains). The gateway's
/// messages are in server/src (api/status.rs `alternative`, the backends' limit and
/// transaction-control refusals, core/error.rs `Unsupported`).
const CLI_WORDS: &[(&str, &str)] = &[
    (
        "use ExecuteBatch with `transaction` or a Session",
        "use `dbforge sql --transaction`, or BEGIN … COMMIT in `dbforge shell`",
    ),
    (
        "use ExecuteBatch with `transaction` for MULTI/EXEC",
        "use `dbforge sql --transaction` for MULTI/EXEC",
    ),
    (
        "group statements atomically with ExecuteBatch and `transaction` instead",
        "group statements atomically with `dbforge sql --transaction` instead",
    ),
    (
        "use ExecuteBatch for several",
        "run several with `dbforge sql`, separated by `;`",
    ),
    (
        "KEYS is not available in ExecuteBatch (the gateway emulates it with SCAN): use \
         Execute or Query, or SCAN",
        "KEYS is not available with --transaction (the gateway emulates it with SCAN): run it \
         without --transaction, or use SCAN",
    ),
    (
        "use Query to stream large results",
        "run it outside a transaction, where results stream",
    ),
    (
        "use Query (it streams) or SCAN",
        "run it outside a transaction, where results stream, or use SCAN",
    ),
    (
        "use Query, or a ranged or SCAN command, for large results",
        "run it outside a transaction, where results stream, or use a ranged or SCAN command",
    ),
    (
        "(use `transaction` for all-or-nothing)",
        "(use --transaction for all-or-nothing)",
    ),
    (
        "use QueryService.Execute with the backend's own commands instead",
        "use `dbforge sql` with the backend's own commands instead",
    ),
    (
        "InsertRows takes at most",
        "`dbforge rows insert` takes at most (--batch-size)",
    ),
    (
        "Session is not supported",
        "BEGIN … COMMIT (a Session) is not supported",
    ),
    ("CreateTable is not", "`dbforge table create` is not"),
    ("InsertRows is not", "`dbforge rows insert` is not"),
    ("SelectRows is not", "`dbforge rows select` is not"),
    ("UpdateRows is not", "`dbforge rows update` is not"),
    ("DeleteRows is not", "`dbforge rows delete` is not"),
    ("ExportTable is not", "`dbforge export --table` is not"),
    ("ExportQuery is not", "`dbforge export --query` is not"),
    ("DumpDatabase is not", "`dbforge dump` is not"),
    (
        "DumpDatabase of keys of module types is not",
        "`dbforge dump` of keys of module types is not",
    ),
    ("ImportCsv is not", "`dbforge import --csv` is not"),
    ("ImportSql is not", "`dbforge import --sql` is not"),
    ("ImportNdjson is not", "`dbforge import --ndjson` is not"),
    ("GetSchema is not", "`dbforge schema` is not"),
    (
        "Explain with analyze is not",
        "`dbforge explain --analyze` is not",
    ),
    ("Explain is not", "`dbforge explain` is not"),
];

/// `message` in the CLI's words: RPC names replaced by the commands and flags that use them.
fn cli_words(message: &str) -> String {
    CLI_WORDS
        .iter()
        .fold(message.to_owned(), |m, (rpc, cli)| m.replace(rpc, cli))
}

/// Server messages may span lines (an engine's message with context); errors stay on one.
fn one_line(m: &str) -> String {
    m.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical name of a gRPC code, for messages.
pub fn code_name(c: Code) -> &'static str {
    match c {
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

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        CliError::Io(e)
    }
}

/// The CLI's result type.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, message: &str) -> CliError {
        CliError::sdk(
            dbforge::Error::Status(tonic::Status::new(code, message)),
            "http://x",
        )
    }

    #[test]
    fn exit_codes_match_the_documented_table() {
        // Each documented line "    N    meaning (CODES…)" names the gRPC codes that map to N.
        let all = [
            Code::Ok,
            Code::Cancelled,
            Code::Unknown,
            Code::InvalidArgument,
            Code::DeadlineExceeded,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unimplemented,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
            Code::Unauthenticated,
        ];
        for c in all {
            let n = exit_code_of(c);
            let documented = EXIT_CODES_HELP.lines().any(|l| {
                let mut parts = l.split_whitespace();
                parts.next() == Some(&n.to_string()) && l.contains(code_name(c))
            });
            let other = n == code::OTHER || c == Code::Ok;
            assert!(documented || other, "{c:?} → {n} is not in the help table");
        }
    }

    #[test]
    fn hints_point_to_the_next_step() {
        let e = status(Code::NotFound, "database \"nope\" not found");
        assert_eq!(e.exit_code(), 3);
        assert!(e.hint().expect("hint").contains("dbforge db list"));
        let e = status(Code::AlreadyExists, "database \"x\" already exists");
        assert_eq!(e.exit_code(), 4);
        assert!(e.hint().expect("hint").contains("--if-not-exists"));
        let e = status(Code::Internal, "internal error");
        assert_eq!(e.exit_code(), 1);
        assert_eq!(e.hint(), None);
    }

    #[test]
    fn gateway_messages_name_cli_commands_and_flags_not_rpcs() {
        let cases = [
            (
                "transaction control (BEGIN …) is not accepted here: use ExecuteBatch with \
                 `transaction` or a Session",
                "transaction control (BEGIN …) is not accepted here: use `dbforge sql \
                 --transaction`, or BEGIN … COMMIT in `dbforge shell`",
            ),
            (
                "MULTI is not accepted here: use ExecuteBatch with `transaction` for MULTI/EXEC",
                "MULTI is not accepted here: use `dbforge sql --transaction` for MULTI/EXEC",
            ),
            (
                "Session is not supported by the redis backend; group statements atomically \
                 with ExecuteBatch and `transaction` instead",
                "BEGIN … COMMIT (a Session) is not supported by the redis backend; group \
                 statements atomically with `dbforge sql --transaction` instead",
            ),
            (
                "the statement returned more than 10000 rows; use Query to stream large results",
                "the statement returned more than 10000 rows; run it outside a transaction, \
                 where results stream",
            ),
            (
                "SelectRows is not supported by the redis backend; use QueryService.Execute \
                 with the backend's own commands instead (on Redis: HSET/HGETALL/HSCAN for \
                 records)",
                "`dbforge rows select` is not supported by the redis backend; use `dbforge sql` \
                 with the backend's own commands instead (on Redis: HSET/HGETALL/HSCAN for \
                 records)",
            ),
            (
                "Explain is not supported by the redis backend",
                "`dbforge explain` is not supported by the redis backend",
            ),
            (
                "Explain with analyze is not supported by the sqlite backend",
                "`dbforge explain --analyze` is not supported by the sqlite backend",
            ),
            (
                "DumpDatabase of keys of module types is not supported by the redis backend",
                "`dbforge dump` of keys of module types is not supported by the redis backend",
            ),
        ];
        for (server, cli) in cases {
            let e = status(Code::InvalidArgument, server);
            assert_eq!(e.to_string(), format!("{cli} [INVALID_ARGUMENT]"));
        }
        // Every replacement leaves no RPC name behind.
        for (_, cli) in CLI_WORDS {
            for rpc in [
                "ExecuteBatch",
                "QueryService",
                "Query ",
                "Execute ",
                "Session ",
            ] {
                assert!(!cli.contains(rpc), "{cli}");
            }
        }
    }

    #[test]
    fn messages_stay_on_one_line() {
        let e = status(Code::InvalidArgument, "near \"SELEC\":\n  syntax error");
        assert_eq!(
            e.to_string(),
            "near \"SELEC\": syntax error [INVALID_ARGUMENT]"
        );
    }
}
