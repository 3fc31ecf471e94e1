//! Splitting a script into statements as it streams in.

use crate::{
    Dialect, Error, TokenKind,
    lexer::{LOOKAHEAD, Lexer, State},
};

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement's text, trimmed, without its terminating semicolon. Comments before its
    /// first token are part of it.
    pub sql: String,
    /// Its 1-based position in the script.
    pub number: usize,
    /// The 1-based line its first token is on.
    pub line: u64,
}

/// The statements a text completes and what follows the last of them; see [`split_complete`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// Complete statements, ended by their `;`.
    pub statements: Vec<Statement>,
    /// The text after the last statement's `;`: an unfinished statement, or only whitespace
    /// and comments.
    pub rest: String,
    /// Whether `rest` holds no token and leaves nothing (string, comment, block) open.
    pub rest_is_blank: bool,
}

/// Splits a script fed in chunks; see the crate docs.
#[derive(Debug)]
pub struct Splitter {
    lexer: Lexer,
    max_statement_bytes: usize,
    /// Undecoded bytes of a UTF-8 sequence cut by a chunk boundary.
    carry: Vec<u8>,
    /// Text of the current statement onwards.
    buf: String,
    /// Scan position in `buf`.
    pos: usize,
    /// The current line (1-based) at `pos`.
    line: u64,
    /// Line where the current string, comment or dollar quote began, for errors.
    state_line: u64,
    /// Line of the current statement's first token, once seen.
    stmt_line: Option<u64>,
    /// Statements emitted so far.
    number: usize,
    /// Start of the word being read in `buf`, if any.
    word_start: Option<usize>,
    block: Blocks,
    /// Whether a `COPY … FROM STDIN` statement stops the scan (see [`Splitter::with_copy_data`]).
    copy_data: bool,
    /// A `COPY … FROM STDIN` statement was emitted and its data not taken yet.
    in_copy: bool,
}

/// Tracks `BEGIN … END` nesting in statements that define triggers or routines, whose inner
/// semicolons do not end the statement.
#[derive(Debug, Default)]
struct Blocks {
    /// Words of the statement seen so far, up to the first few.
    words_seen: usize,
    first_is_create: bool,
    compound: bool,
    depth: u32,
    /// An END was seen; the next word tells whether it closes a counted block.
    pending_end: bool,
}

impl Blocks {
    fn word(&mut self, word: &str) {
        let upper = word.to_ascii_uppercase();
        if self.pending_end {
            self.pending_end = false;
            // MySQL's END IF / END LOOP / END WHILE / END REPEAT close blocks that were never
            // counted; END CASE closes a counted CASE.
            if matches!(upper.as_str(), "IF" | "LOOP" | "WHILE" | "REPEAT") {
                return;
            }
            self.depth = self.depth.saturating_sub(1);
            if upper == "CASE" {
                return;
            }
        }
        if self.words_seen < 12 {
            if self.words_seen == 0 {
                self.first_is_create = upper == "CREATE";
            } else if self.first_is_create
                && matches!(
                    upper.as_str(),
                    "TRIGGER" | "PROCEDURE" | "FUNCTION" | "EVENT"
                )
            {
                self.compound = true;
            }
            self.words_seen += 1;
        }
        if !self.compound {
            return;
        }
        match upper.as_str() {
            "BEGIN" | "CASE" => self.depth += 1,
            "END" => self.pending_end = true,
            _ => {}
        }
    }

    /// Whether a `;` (or the end of the script) here ends the statement.
    fn at_top(&mut self) -> bool {
        if self.pending_end {
            self.pending_end = false;
            self.depth = self.depth.saturating_sub(1);
        }
        self.depth == 0
    }
}

impl Splitter {
    /// A splitter for `dialect`'s lexical rules; a statement longer than `max_statement_bytes`
    /// is [`Error::TooLong`].
    pub fn new(dialect: Dialect, max_statement_bytes: usize) -> Self {
        Self {
            lexer: Lexer::new(dialect, false),
            max_statement_bytes,
            carry: Vec::new(),
            buf: String::new(),
            pos: 0,
            line: 1,
            state_line: 1,
            stmt_line: None,
            number: 0,
            word_start: None,
            block: Blocks::default(),
            copy_data: false,
            in_copy: false,
        }
    }

    /// Stops after each PostgreSQL `COPY … FROM STDIN` statement, whose data lines (up to a
    /// line `\.`) follow it in the script, as in `pg_dump`'s plain format: [`push`] returns the
    /// statement last, and the caller takes what follows it with
    /// [`take_copy_data`](Self::take_copy_data), reads the data up to its end, and pushes the
    /// rest. Without this, data lines are read as SQL.
    ///
    /// [`push`]: Self::push
    pub fn with_copy_data(mut self) -> Self {
        self.copy_data = self.lexer.dialect == Dialect::Postgres;
        self
    }

    /// After a `COPY … FROM STDIN` statement (see [`with_copy_data`](Self::with_copy_data)):
    /// the bytes fed after its semicolon, which the splitter gives up. `None` otherwise.
    pub fn take_copy_data(&mut self) -> Option<Vec<u8>> {
        if !std::mem::take(&mut self.in_copy) {
            return None;
        }
        let mut data = std::mem::take(&mut self.buf).into_bytes();
        data.append(&mut self.carry);
        self.pos = 0;
        Some(data)
    }

    /// At the end of the input, before [`finish`](Self::finish): the statements still held back
    /// (the last bytes fed wait for more), stopping after a `COPY … FROM STDIN` as
    /// [`push`](Self::push) does. A caller of [`with_copy_data`](Self::with_copy_data) calls it
    /// until no copy data is left to take; others need not.
    pub fn end_of_input(&mut self) -> Result<Vec<Statement>, Error> {
        if self.in_copy {
            return Ok(Vec::new());
        }
        self.scan(true)
    }

    /// Counts `n` lines read by the caller (copy data), so later statements' lines stay right.
    pub fn skip_lines(&mut self, n: u64) {
        self.line += n;
    }

    /// The dialect it splits by.
    pub fn dialect(&self) -> Dialect {
        self.lexer.dialect
    }

    /// Feeds the next bytes and returns the statements they complete. Statements ending in the
    /// last few bytes fed may wait for the next call (or [`Splitter::finish`]).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Statement>, Error> {
        self.carry.extend_from_slice(bytes);
        if self.in_copy {
            // The caller has not taken the copy data yet: keep the bytes for it.
            return Ok(Vec::new());
        }
        let valid = match std::str::from_utf8(&self.carry) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(e) => {
                let line = self.line
                    + count_lines(&self.buf.as_bytes()[self.pos..])
                    + count_lines(&self.carry[..e.valid_up_to()]);
                return Err(Error::InvalidUtf8 { line });
            }
        };
        let text = std::str::from_utf8(&self.carry[..valid]).unwrap_or_default();
        self.buf.push_str(text);
        self.carry.drain(..valid);
        self.scan(false)
    }

    /// Ends the script: returns the last statement if it lacks a semicolon, or an error when a
    /// string, comment or block is left open.
    pub fn finish(mut self) -> Result<Vec<Statement>, Error> {
        if !self.carry.is_empty() {
            return Err(Error::TruncatedUtf8 { line: self.line });
        }
        let mut out = self.scan(true)?;
        if let Some(construct) = self.open_construct() {
            return Err(Error::Unterminated {
                construct,
                line: self.state_line,
                statement: self.number + 1,
            });
        }
        self.end_word();
        if !self.block.at_top() && self.stmt_line.is_some() {
            return Err(Error::OpenBlock {
                statement: self.number + 1,
                line: self.stmt_line.unwrap_or(self.line),
            });
        }
        if let Some(stmt) = self.take(self.buf.len()) {
            out.push(stmt);
        }
        Ok(out)
    }

    /// What string, comment or quote the script is inside, if any.
    fn open_construct(&self) -> Option<Construct> {
        match &self.lexer.state {
            State::Normal | State::Word | State::LineComment => None,
            State::Quoted { close: b'\'', .. } => Some(Construct::StringLiteral),
            State::Quoted { close: b'"', .. } if self.lexer.dialect == Dialect::Mysql => {
                Some(Construct::StringLiteral)
            }
            State::Quoted { .. } => Some(Construct::QuotedIdentifier),
            State::BlockComment { .. } => Some(Construct::BlockComment),
            State::Dollar { .. } => Some(Construct::DollarQuotedString),
        }
    }

    fn end_word(&mut self) {
        if let Some(start) = self.word_start.take() {
            let end = if self.lexer.state == State::Word {
                self.buf.len()
            } else {
                self.pos
            };
            let word = self.buf[start..end].to_owned();
            self.block.word(&word);
        }
    }

    fn scan(&mut self, last: bool) -> Result<Vec<Statement>, Error> {
        let mut out = Vec::new();
        loop {
            let limit = if last {
                self.buf.len()
            } else {
                self.buf.len().saturating_sub(LOOKAHEAD)
            };
            if self.pos >= limit {
                break;
            }
            let step = self.lexer.step(self.buf.as_bytes(), self.pos);
            match step.started {
                Some(TokenKind::Word) => self.word_start = Some(self.pos),
                Some(TokenKind::Semicolon) if self.block.at_top() => {
                    let end = self.pos;
                    if let Some(stmt) = self.take(end) {
                        let copy = self.copy_data
                            && copy_from_stdin(self.lexer.dialect, &stmt.sql).is_some();
                        out.push(stmt);
                        if copy {
                            // What follows is data, not SQL: the caller takes it.
                            self.in_copy = true;
                            return Ok(out);
                        }
                    }
                    // `take` drained the statement and its semicolon.
                    continue;
                }
                Some(TokenKind::String | TokenKind::QuotedIdentifier | TokenKind::Comment) => {
                    self.state_line = self.line;
                }
                _ => {}
            }
            if step.ended && step.advance == 0 {
                // A word ended at this byte, which is read next.
                self.end_word();
            }
            let significant = step.started.is_some_and(|k| {
                !matches!(
                    k,
                    TokenKind::Space | TokenKind::Comment | TokenKind::ExecutableComment
                )
            });
            if significant && self.stmt_line.is_none() {
                self.stmt_line = Some(self.line);
            }
            let end = (self.pos + step.advance).min(self.buf.len());
            self.line += count_lines(&self.buf.as_bytes()[self.pos..end]);
            self.pos = end;
        }
        if self.pos > self.max_statement_bytes {
            return Err(Error::TooLong {
                statement: self.number + 1,
                line: self.stmt_line.unwrap_or(self.line),
                limit: self.max_statement_bytes,
            });
        }
        Ok(out)
    }

    /// Emits `buf[..end]` as a statement (when it holds a token) and drops it and the byte at
    /// `end` (its semicolon) from the window.
    fn take(&mut self, end: usize) -> Option<Statement> {
        let stmt = self.stmt_line.take().map(|line| {
            self.number += 1;
            Statement {
                sql: self.buf[..end].trim().to_owned(),
                number: self.number,
                line,
            }
        });
        let drain = (end + 1).min(self.buf.len());
        self.line += count_lines(&self.buf.as_bytes()[self.pos.min(drain)..drain]);
        self.buf.drain(..drain);
        self.pos = 0;
        self.word_start = None;
        self.block = Blocks::default();
        stmt
    }
}

/// The table and columns of a `COPY table [(column, …)] FROM STDIN` statement with no
/// options; see [`copy_from_stdin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTarget {
    /// The table, unquoted.
    pub table: String,
    /// The columns, unquoted; empty for all of them.
    pub columns: Vec<String>,
}

/// Reads `sql` as PostgreSQL's `COPY table [(column, …)] FROM STDIN` (names bare or quoted, no
/// schema, no options); `None` for any other statement, so a caller can rebuild the statement
/// from the names instead of running the text.
pub fn copy_from_stdin(dialect: Dialect, sql: &str) -> Option<CopyTarget> {
    if dialect != Dialect::Postgres {
        return None;
    }
    let mut tokens = crate::Tokens::new(sql, dialect).filter(|t| t.kind != TokenKind::Comment);
    let name = |t: crate::Token<'_>| match t.kind {
        TokenKind::Word => Some(t.text.to_lowercase()),
        TokenKind::QuotedIdentifier => {
            let inner = t.text.strip_prefix('"')?.strip_suffix('"')?;
            Some(inner.replace("\"\"", "\""))
        }
        _ => None,
    };
    if !tokens.next()?.is_word("COPY") {
        return None;
    }
    let table = name(tokens.next()?)?;
    let mut columns = Vec::new();
    let mut next = tokens.next()?;
    if next.kind == TokenKind::Open {
        loop {
            columns.push(name(tokens.next()?)?);
            match tokens.next()?.kind {
                TokenKind::Comma => {}
                TokenKind::Close => break,
                _ => return None,
            }
        }
        next = tokens.next()?;
    }
    let stdin = tokens.next()?;
    (next.is_word("FROM") && stdin.is_word("STDIN") && tokens.next().is_none())
        .then_some(CopyTarget { table, columns })
}

/// What a script can end inside of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Construct {
    /// `'…'` (and MySQL's `"…"`).
    StringLiteral,
    /// `"…"`, `` `…` `` or `[…]`.
    QuotedIdentifier,
    /// `/* … */`.
    BlockComment,
    /// `$tag$ … $tag$`.
    DollarQuotedString,
}

impl std::fmt::Display for Construct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::StringLiteral => "string literal",
            Self::QuotedIdentifier => "quoted identifier",
            Self::BlockComment => "block comment",
            Self::DollarQuotedString => "dollar-quoted string",
        })
    }
}

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

/// Splits a whole script at once, as [`Splitter`] does when fed in chunks.
pub fn split(
    dialect: Dialect,
    script: &str,
    max_statement_bytes: usize,
) -> Result<Vec<Statement>, Error> {
    let mut s = Splitter::new(dialect, max_statement_bytes);
    let mut out = s.push(script.as_bytes())?;
    out.extend(s.finish()?);
    Ok(out)
}

/// Splits `text` at the semicolons that end statements and keeps what follows the last one,
/// for input that is still being typed: an interactive shell asks whether more lines are
/// needed, and a client runs an unterminated last statement as it is. Never fails: nothing
/// left open is an error here, only part of [`Split::rest`].
pub fn split_complete(dialect: Dialect, text: &str) -> Split {
    let mut s = Splitter::new(dialect, usize::MAX);
    s.buf.push_str(text);
    let statements = s.scan(true).unwrap_or_default();
    let rest_is_blank = s.stmt_line.is_none() && s.open_construct().is_none();
    Split {
        statements,
        rest: s.buf,
        rest_is_blank,
    }
}

/// Whether `text` holds no statement: only whitespace and comments, nothing left open.
pub fn is_blank(dialect: Dialect, text: &str) -> bool {
    let split = split_complete(dialect, text);
    split.statements.is_empty() && split.rest_is_blank
}
