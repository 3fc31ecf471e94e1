//! Splits SQL scripts into statements as they stream in, for ImportSql.
//!
//! The splitter is a lexer that knows only what decides where a statement ends: string literals
//! (with doubled quotes, and backslash escapes on MySQL and in PostgreSQL's `E'…'`), quoted
//! identifiers (`"…"`, MySQL backticks, SQLite brackets), line and block comments (nested on
//! PostgreSQL), PostgreSQL dollar quoting, and the `BEGIN … END` bodies of triggers and routines,
//! whose inner semicolons do not end the statement. It works on a window of the input, so a
//! script of any size is split with memory bounded by the longest statement. (A full SQL
//! tokenizer such as sqlparser's materializes every token of the whole script and cannot be fed
//! in chunks, which a 256 MiB dump rules out.)

use super::{
    engine::BackendKind,
    error::{Error, Result},
};

/// Bytes kept unscanned at the end of the window so that a dollar-quote tag (at most 63 bytes
/// on PostgreSQL) or a doubled quote split across chunks is always seen whole.
const LOOKAHEAD: usize = 72;

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptStatement {
    /// The statement's text without its terminating semicolon.
    pub sql: String,
    /// Its 1-based position in the script.
    pub number: usize,
    /// The 1-based line its first token is on.
    pub line: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Normal,
    /// Inside a string or quoted identifier closed by `close`; `backslash` escapes apply.
    Quoted {
        close: u8,
        backslash: bool,
    },
    LineComment,
    BlockComment {
        depth: u32,
    },
    /// Inside `$tag$ … $tag$`; the tag includes both dollars.
    Dollar {
        tag: String,
    },
}

/// Splits a script fed in chunks; see the module docs.
#[derive(Debug)]
pub struct Splitter {
    kind: BackendKind,
    max_statement_bytes: usize,
    /// Undecoded bytes of a UTF-8 sequence cut by a chunk boundary.
    carry: Vec<u8>,
    /// Text of the current statement onwards.
    buf: String,
    /// Scan position in `buf`.
    pos: usize,
    state: State,
    /// The current line (1-based) at `pos`.
    line: u64,
    /// Line where the current string, comment or dollar quote began, for errors.
    state_line: u64,
    /// Line of the current statement's first token, once seen.
    stmt_line: Option<u64>,
    /// Statements emitted so far.
    number: usize,
    block: Blocks,
}

/// Tracks `BEGIN … END` nesting in statements that define triggers or routines.
#[derive(Debug, Default)]
struct Blocks {
    /// Words of the statement seen so far, up to the first few.
    words_seen: usize,
    first_is_create: bool,
    compound: bool,
    depth: u32,
    /// An END was seen; the next word tells whether it closes a counted block.
    pending_end: bool,
    /// Start of the word being read in `buf`, if any.
    word_start: Option<usize>,
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

    /// Whether a `;` here ends the statement.
    fn at_top(&mut self) -> bool {
        if self.pending_end {
            self.pending_end = false;
            self.depth = self.depth.saturating_sub(1);
        }
        self.depth == 0
    }
}

impl Splitter {
    /// A splitter for `kind`'s lexical rules; a statement longer than `max_statement_bytes` is
    /// [`Error::LimitExceeded`].
    pub fn new(kind: BackendKind, max_statement_bytes: usize) -> Self {
        Self {
            kind,
            max_statement_bytes,
            carry: Vec::new(),
            buf: String::new(),
            pos: 0,
            state: State::Normal,
            line: 1,
            state_line: 1,
            stmt_line: None,
            number: 0,
            block: Blocks::default(),
        }
    }

    /// Feeds the next bytes and returns the statements they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<ScriptStatement>> {
        self.carry.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.carry) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(e) => {
                let line = self.line
                    + self.buf[self.pos..].matches('\n').count() as u64
                    + self.carry[..e.valid_up_to()]
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count() as u64;
                return Err(Error::invalid(
                    "script",
                    format!("line {line}: the script is not valid UTF-8"),
                ));
            }
        };
        let text = std::str::from_utf8(&self.carry[..valid]).unwrap_or_default();
        self.buf.push_str(text);
        self.carry.drain(..valid);
        self.scan(false)
    }

    /// Ends the script: returns the last statement if it lacks a semicolon, or an error when a
    /// string, comment or block is left open.
    pub fn finish(mut self) -> Result<Vec<ScriptStatement>> {
        if !self.carry.is_empty() {
            return Err(Error::invalid(
                "script",
                format!(
                    "line {}: the script ends inside a UTF-8 sequence",
                    self.line
                ),
            ));
        }
        let mut out = self.scan(true)?;
        let what = match &self.state {
            State::Normal | State::LineComment => None,
            State::Quoted { close: b'\'', .. } => Some("string literal"),
            State::Quoted { .. } => Some("quoted identifier"),
            State::BlockComment { .. } => Some("block comment"),
            State::Dollar { .. } => Some("dollar-quoted string"),
        };
        if let Some(what) = what {
            return Err(Error::invalid(
                "script",
                format!(
                    "unterminated {what} starting at line {} (statement {})",
                    self.state_line,
                    self.number + 1
                ),
            ));
        }
        if self.block.depth > 0 && self.stmt_line.is_some() {
            return Err(Error::invalid(
                "script",
                format!(
                    "statement {} starting at line {} ends inside a BEGIN … END block",
                    self.number + 1,
                    self.stmt_line.unwrap_or(self.line)
                ),
            ));
        }
        if let Some(stmt) = self.take(self.buf.len()) {
            out.push(stmt);
        }
        Ok(out)
    }

    fn scan(&mut self, last: bool) -> Result<Vec<ScriptStatement>> {
        let mut out = Vec::new();
        let mysql = self.kind == BackendKind::Mysql;
        let postgres = self.kind == BackendKind::Postgres;
        let sqlite = self.kind == BackendKind::Sqlite;
        loop {
            let limit = if last {
                self.buf.len()
            } else {
                self.buf.len().saturating_sub(LOOKAHEAD)
            };
            if self.pos >= limit {
                break;
            }
            let bytes = self.buf.as_bytes();
            let b = bytes[self.pos];
            let next = bytes.get(self.pos + 1).copied();
            let mut advance = 1;
            match &mut self.state {
                State::Normal => {
                    let word_byte = b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
                    if word_byte {
                        self.block.word_start.get_or_insert(self.pos);
                    } else if let Some(start) = self.block.word_start.take() {
                        let word = self.buf[start..self.pos].to_owned();
                        self.block.word(&word);
                    }
                    let significant = !b.is_ascii_whitespace();
                    match b {
                        b'\'' => {
                            // E'…' (PostgreSQL) takes backslash escapes; MySQL strings always do.
                            let e_prefix = postgres
                                && self.pos > 0
                                && matches!(bytes[self.pos - 1], b'E' | b'e')
                                && !bytes
                                    .get(self.pos.wrapping_sub(2))
                                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
                            self.enter(State::Quoted {
                                close: b'\'',
                                backslash: mysql || e_prefix,
                            });
                        }
                        b'"' => self.enter(State::Quoted {
                            close: b'"',
                            backslash: mysql,
                        }),
                        b'`' if mysql => self.enter(State::Quoted {
                            close: b'`',
                            backslash: false,
                        }),
                        b'[' if sqlite => self.enter(State::Quoted {
                            close: b']',
                            backslash: false,
                        }),
                        b'-' if next == Some(b'-') => {
                            self.enter(State::LineComment);
                            advance = 2;
                        }
                        b'#' if mysql => self.enter(State::LineComment),
                        b'/' if next == Some(b'*') => {
                            self.enter(State::BlockComment { depth: 1 });
                            advance = 2;
                        }
                        b'$' if postgres => {
                            if let Some(tag) = dollar_tag(&bytes[self.pos..]) {
                                advance = tag.len();
                                self.enter(State::Dollar { tag });
                            }
                        }
                        b';' if self.block.at_top() => {
                            let end = self.pos;
                            if let Some(stmt) = self.take(end) {
                                out.push(stmt);
                            }
                            // `take` drained the statement and its semicolon.
                            continue;
                        }
                        _ => {}
                    }
                    let starts_token = significant
                        && !matches!(self.state, State::LineComment | State::BlockComment { .. });
                    if starts_token && self.stmt_line.is_none() {
                        self.stmt_line = Some(self.line);
                    }
                }
                State::Quoted { close, backslash } => {
                    if *backslash && b == b'\\' {
                        advance = 2;
                    } else if b == *close {
                        if next == Some(*close) {
                            advance = 2;
                        } else {
                            self.state = State::Normal;
                        }
                    }
                }
                State::LineComment => {
                    if b == b'\n' {
                        self.state = State::Normal;
                    }
                }
                State::BlockComment { depth } => {
                    if b == b'*' && next == Some(b'/') {
                        *depth -= 1;
                        advance = 2;
                        if *depth == 0 {
                            self.state = State::Normal;
                        }
                    } else if postgres && b == b'/' && next == Some(b'*') {
                        *depth += 1;
                        advance = 2;
                    }
                }
                State::Dollar { tag } => {
                    if b == b'$' && bytes[self.pos..].starts_with(tag.as_bytes()) {
                        advance = tag.len();
                        self.state = State::Normal;
                    }
                }
            }
            let end = (self.pos + advance).min(self.buf.len());
            self.line += self.buf.as_bytes()[self.pos..end]
                .iter()
                .filter(|c| **c == b'\n')
                .count() as u64;
            self.pos = end;
        }
        if self.pos > self.max_statement_bytes {
            return Err(Error::LimitExceeded(format!(
                "statement {} starting at line {} is longer than the import line limit of {} bytes",
                self.number + 1,
                self.stmt_line.unwrap_or(self.line),
                self.max_statement_bytes
            )));
        }
        Ok(out)
    }

    fn enter(&mut self, state: State) {
        self.state_line = self.line;
        self.state = state;
    }

    /// Emits `buf[..end]` as a statement (when it holds a token) and drops it and the byte at
    /// `end` (its semicolon) from the window.
    fn take(&mut self, end: usize) -> Option<ScriptStatement> {
        if let Some(start) = self.block.word_start.take() {
            let word = self.buf[start..end].to_owned();
            self.block.word(&word);
        }
        let stmt = self.stmt_line.take().map(|line| {
            self.number += 1;
            ScriptStatement {
                sql: self.buf[..end].trim().to_owned(),
                number: self.number,
                line,
            }
        });
        let drain = (end + 1).min(self.buf.len());
        self.line += self.buf.as_bytes()[self.pos.min(drain)..drain]
            .iter()
            .filter(|c| **c == b'\n')
            .count() as u64;
        self.buf.drain(..drain);
        self.pos = 0;
        self.block = Blocks::default();
        stmt
    }
}

/// The `$tag$` opening a dollar-quoted string at the start of `bytes`, if there is one. A tag is
/// empty or an identifier that does not start with a digit (so `$1` stays a parameter).
fn dollar_tag(bytes: &[u8]) -> Option<String> {
    let rest = &bytes[1..];
    let len = rest
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c >= 0x80)
        .count();
    if rest.get(len) != Some(&b'$') || rest.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(&bytes[..len + 2])
        .ok()
        .map(str::to_owned)
}

/// Splits a whole script at once.
pub fn split(
    kind: BackendKind,
    script: &str,
    max_statement_bytes: usize,
) -> Result<Vec<ScriptStatement>> {
    let mut s = Splitter::new(kind, max_statement_bytes);
    let mut out = s.push(script.as_bytes())?;
    out.extend(s.finish()?);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sqls(kind: BackendKind, script: &str) -> Vec<String> {
        split(kind, script, 1 << 20)
            .unwrap()
            .into_iter()
            .map(|s| s.sql)
            .collect()
    }

    /// Feeding a script one byte at a time splits it exactly as feeding it whole.
    fn bytewise(kind: BackendKind, script: &str) -> Vec<ScriptStatement> {
        let mut s = Splitter::new(kind, 1 << 20);
        let mut out = Vec::new();
        for b in script.as_bytes() {
            out.extend(s.push(std::slice::from_ref(b)).unwrap());
        }
        out.extend(s.finish().unwrap());
        out
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let script = "CREATE TABLE t (a TEXT);\n\
                      INSERT INTO t VALUES ('a;b'), ('it''s; here');\n\
                      -- a comment; with a semicolon\n\
                      /* block; comment */ INSERT INTO \"we;ird\" VALUES (1);\n\
                      SELECT 1";
        let got = sqls(BackendKind::Sqlite, script);
        assert_eq!(
            got,
            vec![
                "CREATE TABLE t (a TEXT)",
                "INSERT INTO t VALUES ('a;b'), ('it''s; here')",
                "-- a comment; with a semicolon\n/* block; comment */ INSERT INTO \"we;ird\" VALUES (1)",
                "SELECT 1",
            ]
        );
        assert_eq!(
            bytewise(BackendKind::Sqlite, script),
            split(BackendKind::Sqlite, script, 1 << 20).unwrap()
        );
    }

    #[test]
    fn reports_statement_numbers_and_lines() {
        let script = "\n\nSELECT 1;\n-- note\n\nSELECT\n2;";
        let got = split(BackendKind::Postgres, script, 1 << 20).unwrap();
        assert_eq!(
            got.iter().map(|s| (s.number, s.line)).collect::<Vec<_>>(),
            vec![(1, 3), (2, 6)]
        );
        // The comment line belongs to statement 2 but its first token after it is on line 6; the
        // comment itself starts the statement text, which is fine for the engine.
        assert_eq!(bytewise(BackendKind::Postgres, script), got);
    }

    #[test]
    fn dollar_quoting_on_postgres() {
        let script = "CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql;\n\
                      SELECT $$a;b$$, $1;\nSELECT $tag$ $$ ; $tag$;";
        let got = sqls(BackendKind::Postgres, script);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].ends_with("LANGUAGE plpgsql"));
        assert_eq!(got[1], "SELECT $$a;b$$, $1");
        assert_eq!(bytewise(BackendKind::Postgres, script).len(), 3);
    }

    #[test]
    fn trigger_bodies_keep_their_semicolons() {
        let script = "CREATE TABLE t (a INT);\n\
                      CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET a = CASE WHEN a > 1 THEN 1 ELSE 2 END;\n  DELETE FROM t WHERE a = 5;\nEND;\n\
                      INSERT INTO t VALUES (1);";
        let got = sqls(BackendKind::Sqlite, script);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[1].starts_with("CREATE TRIGGER") && got[1].ends_with("END"));
        assert_eq!(bytewise(BackendKind::Sqlite, script).len(), 3);
    }

    #[test]
    fn mysql_routines_backticks_hashes_and_backslashes() {
        let script = "CREATE PROCEDURE p() BEGIN\n  IF 1 THEN SELECT 1; END IF;\n  WHILE 0 DO SELECT 2; END WHILE;\nEND;\n\
                      # hash comment;\nINSERT INTO `a;b` VALUES ('x\\';y');\nSELECT \"q\\\";\"";
        let got = sqls(BackendKind::Mysql, script);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].ends_with("END"));
        assert_eq!(
            got[1],
            "# hash comment;\nINSERT INTO `a;b` VALUES ('x\\';y')"
        );
        assert_eq!(bytewise(BackendKind::Mysql, script).len(), 3);
    }

    #[test]
    fn nested_block_comments_on_postgres_and_e_strings() {
        let got = sqls(
            BackendKind::Postgres,
            "/* outer /* inner; */ still; */ SELECT E'a\\';b';SELECT 'c\\';",
        );
        assert_eq!(
            got,
            vec![
                "/* outer /* inner; */ still; */ SELECT E'a\\';b'",
                "SELECT 'c\\'"
            ]
        );
    }

    #[test]
    fn unterminated_constructs_are_errors_with_lines() {
        for (script, what) in [
            (
                "SELECT 1;\nSELECT 'open",
                "unterminated string literal starting at line 2",
            ),
            (
                "SELECT 1; /* open",
                "unterminated block comment starting at line 1",
            ),
            ("SELECT $x$ open", "unterminated dollar-quoted string"),
        ] {
            let err = split(BackendKind::Postgres, script, 1 << 20).unwrap_err();
            assert!(err.to_string().contains(what), "{script}: {err}");
        }
    }

    #[test]
    fn long_statements_hit_the_limit() {
        let script = format!("INSERT INTO t VALUES ('{}');", "x".repeat(500));
        let err = split(BackendKind::Sqlite, &script, 100).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded(_)), "{err}");
    }

    #[test]
    fn invalid_utf8_is_refused_with_its_line() {
        let mut s = Splitter::new(BackendKind::Sqlite, 1 << 20);
        let err = s.push(b"SELECT 1;\nSELECT '\xff';").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn utf8_cut_by_chunks_is_joined() {
        let script = "SELECT 'héllo; wörld';SELECT 2;";
        let got = bytewise(BackendKind::Sqlite, script);
        assert_eq!(got[0].sql, "SELECT 'héllo; wörld'");
    }
}
