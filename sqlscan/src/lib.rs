//! DB-Forge's SQL scanner: one lexer for the gateway and its command-line client.
//!
//! It knows only what decides where a token or a statement ends, per [`Dialect`]: string
//! literals (with doubled quotes, and backslash escapes on MySQL and in PostgreSQL's `E'…'`),
//! quoted identifiers (`"…"`, backticks on MySQL and SQLite, SQLite's brackets), line comments
//! (`--`, and `#` on MySQL), block comments (nested on PostgreSQL), MySQL's executable
//! comments (`/*! … */`, read as code), PostgreSQL dollar quoting (`$tag$ … $tag$`), and the
//! `BEGIN … END` bodies of triggers and routines, whose inner semicolons do not end the
//! statement.
//!
//! Two views of the same lexer:
//! - [`Splitter`] splits a script into [`Statement`]s as it is fed in chunks (ImportSql reads
//!   a stream), with memory bounded by the longest statement, statement numbers and lines for
//!   errors, a limit on a statement's size, and UTF-8 sequences cut by chunk boundaries joined.
//!   [`split`] splits a whole script; [`split_complete`] keeps the unfinished rest of text
//!   still being typed (the CLI's shell).
//! - [`Tokens`] iterates over the tokens of one statement, for code that reads its words.
//!
//! ```
//! use dbforge_sqlscan::{Dialect, Splitter};
//!
//! let mut splitter = Splitter::new(Dialect::Mysql, 1 << 20);
//! let mut statements = Vec::new();
//! for chunk in [&b"INSERT INTO t VALUES ('a;"[..], b"b'); # done;\nSELECT 1"] {
//!     statements.extend(splitter.push(chunk)?);
//! }
//! statements.extend(splitter.finish()?);
//! let sql: Vec<&str> = statements.iter().map(|s| s.sql.as_str()).collect();
//! assert_eq!(sql, ["INSERT INTO t VALUES ('a;b')", "# done;\nSELECT 1"]);
//! assert_eq!(statements[1].line, 2);
//! # Ok::<(), dbforge_sqlscan::Error>(())
//! ```
//!
//! Why not sqlparser: a full SQL parser materializes every token of the whole script and
//! cannot be fed in chunks, which a 256 MiB dump rules out; it also rejects statements the
//! engines accept, while a splitter only has to find the semicolons that end them.

#![warn(missing_docs)]

pub mod cases;
mod lexer;
mod split;
mod tokens;

pub use split::{
    Construct, CopyTarget, Split, Splitter, Statement, copy_from_stdin, is_blank, split,
    split_complete,
};
pub use tokens::{Token, TokenKind, Tokens};

/// Whose lexical rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite: `"…"`, `` `…` `` and `[…]` names.
    Sqlite,
    /// PostgreSQL: nested block comments, `E'…'` escapes, dollar quoting, `$1` parameters.
    Postgres,
    /// MySQL and MariaDB: `#` comments, backslash escapes, backtick names, `"…"` strings,
    /// executable comments.
    Mysql,
}

impl Dialect {
    /// Every dialect.
    pub const ALL: [Dialect; 3] = [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql];
}

/// Why a script cannot be split. Lines are 1-based, statements numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A byte sequence that is not UTF-8.
    #[error("line {line}: the script is not valid UTF-8")]
    InvalidUtf8 {
        /// Where it is.
        line: u64,
    },
    /// The script ends in the middle of a UTF-8 sequence.
    #[error("line {line}: the script ends inside a UTF-8 sequence")]
    TruncatedUtf8 {
        /// The last line.
        line: u64,
    },
    /// The script ends inside a string, quoted name, comment or dollar quote.
    #[error("unterminated {construct} starting at line {line} (statement {statement})")]
    Unterminated {
        /// What is left open.
        construct: Construct,
        /// Where it starts.
        line: u64,
        /// The statement it is in.
        statement: usize,
    },
    /// The script ends inside a trigger's or routine's `BEGIN … END` body.
    #[error("statement {statement} starting at line {line} ends inside a BEGIN … END block")]
    OpenBlock {
        /// The statement.
        statement: usize,
        /// Where it starts.
        line: u64,
    },
    /// A statement is longer than the splitter's limit.
    #[error("statement {statement} starting at line {line} is longer than {limit} bytes")]
    TooLong {
        /// The statement.
        statement: usize,
        /// Where it starts.
        line: u64,
        /// The limit, in bytes.
        limit: usize,
    },
}

#[cfg(test)]
mod tests;
