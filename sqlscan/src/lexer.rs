//! The one lexer: a state machine that reads a window of bytes and says where each token starts
//! and ends. [`crate::Tokens`] runs it over a whole text, [`crate::Splitter`] over a window
//! that chunks refill.

use crate::{Dialect, TokenKind};

/// Bytes the machine may look at past the position it scans: a dollar-quote tag (at most 63
/// bytes on PostgreSQL), a doubled quote, `E'` or an executable comment's marker. A caller
/// feeding chunks keeps this much unscanned at the end of its window until the input ends.
pub(crate) const LOOKAHEAD: usize = 72;

/// Where the machine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    /// Between tokens.
    Normal,
    /// Inside a bare word (or a `$n` placeholder).
    Word,
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

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// Bytes consumed (0 when a word ends before the byte that ends it).
    pub advance: usize,
    /// The kind of token that starts at the scanned byte, if one does.
    pub started: Option<TokenKind>,
    /// The current token ends after the consumed bytes.
    pub ended: bool,
}

impl Step {
    /// A token of `kind` starts and takes `advance` bytes; `ended` when that is all of it.
    fn start(kind: TokenKind, advance: usize, ended: bool) -> Self {
        Self {
            advance,
            started: Some(kind),
            ended,
        }
    }

    /// The current token goes on for `advance` bytes, and ends there when `ended`.
    fn go_on(advance: usize, ended: bool) -> Self {
        Self {
            advance,
            started: None,
            ended,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Lexer {
    pub dialect: Dialect,
    pub state: State,
    /// Whether MySQL's executable comments are read as the code they hold (tokens) or as
    /// comments (splitting: a script's `/*!40101 SET … */;` stays a comment-only statement,
    /// which is not run, as before there was one scanner).
    exec_as_code: bool,
    /// Inside a MySQL executable comment (`/*! … */`, `/*M! … */`), whose contents are code.
    exec: bool,
}

/// A byte that continues a bare word. `$` continues identifiers on every engine.
pub(crate) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl Lexer {
    pub fn new(dialect: Dialect, exec_as_code: bool) -> Self {
        Self {
            dialect,
            state: State::Normal,
            exec_as_code,
            exec: false,
        }
    }

    /// Reads at `bytes[pos]`. `bytes` must hold [`LOOKAHEAD`] bytes past `pos` unless it is the
    /// end of the input.
    pub fn step(&mut self, bytes: &[u8], pos: usize) -> Step {
        let b = bytes[pos];
        let next = bytes.get(pos + 1).copied();
        let mysql = self.dialect == Dialect::Mysql;
        let postgres = self.dialect == Dialect::Postgres;
        let single = |kind| Step::start(kind, 1, true);
        match &mut self.state {
            State::Normal => {
                let enter = |lexer: &mut Self, state, advance, kind| {
                    lexer.state = state;
                    Step::start(kind, advance, false)
                };
                match b {
                    _ if b.is_ascii_whitespace() => single(TokenKind::Space),
                    // E'…' (PostgreSQL) takes backslash escapes; MySQL strings always do.
                    b'E' | b'e' if postgres && next == Some(b'\'') => {
                        let state = State::Quoted {
                            close: b'\'',
                            backslash: true,
                        };
                        enter(self, state, 2, TokenKind::String)
                    }
                    b'\'' => {
                        let state = State::Quoted {
                            close: b'\'',
                            backslash: mysql,
                        };
                        enter(self, state, 1, TokenKind::String)
                    }
                    b'"' => {
                        let state = State::Quoted {
                            close: b'"',
                            backslash: mysql,
                        };
                        // MySQL reads "…" as a string (unless ANSI_QUOTES), the others as a name.
                        let kind = if mysql {
                            TokenKind::String
                        } else {
                            TokenKind::QuotedIdentifier
                        };
                        enter(self, state, 1, kind)
                    }
                    // SQLite takes MySQL's backticks too.
                    b'`' if !postgres => {
                        let state = State::Quoted {
                            close: b'`',
                            backslash: false,
                        };
                        enter(self, state, 1, TokenKind::QuotedIdentifier)
                    }
                    b'[' if self.dialect == Dialect::Sqlite => {
                        let state = State::Quoted {
                            close: b']',
                            backslash: false,
                        };
                        enter(self, state, 1, TokenKind::QuotedIdentifier)
                    }
                    b'-' if next == Some(b'-') => {
                        enter(self, State::LineComment, 2, TokenKind::Comment)
                    }
                    b'#' if mysql => enter(self, State::LineComment, 1, TokenKind::Comment),
                    b'/' if next == Some(b'*') => {
                        let marker = match (bytes.get(pos + 2), bytes.get(pos + 3)) {
                            (Some(b'!'), _) => Some(3),
                            (Some(b'M'), Some(b'!')) => Some(4),
                            _ => None,
                        };
                        match marker {
                            // `/*!50001 … */` and MariaDB's `/*M!100100 … */` run their
                            // contents: read on as code, version digits skipped.
                            Some(marker) if mysql && self.exec_as_code && !self.exec => {
                                let digits = bytes[pos + marker..]
                                    .iter()
                                    .take_while(|c| c.is_ascii_digit())
                                    .count();
                                self.exec = true;
                                Step::start(TokenKind::ExecutableComment, marker + digits, true)
                            }
                            _ => enter(
                                self,
                                State::BlockComment { depth: 1 },
                                2,
                                TokenKind::Comment,
                            ),
                        }
                    }
                    b'*' if self.exec && next == Some(b'/') => {
                        self.exec = false;
                        Step::start(TokenKind::ExecutableComment, 2, true)
                    }
                    b'$' if postgres => match dollar_tag(&bytes[pos..]) {
                        Some(tag) => {
                            let advance = tag.len();
                            enter(self, State::Dollar { tag }, advance, TokenKind::String)
                        }
                        None if next.is_some_and(|c| c.is_ascii_digit()) => {
                            enter(self, State::Word, 1, TokenKind::Placeholder)
                        }
                        None => single(TokenKind::Other),
                    },
                    b'?' => single(TokenKind::Placeholder),
                    b';' => single(TokenKind::Semicolon),
                    b'(' => single(TokenKind::Open),
                    b')' => single(TokenKind::Close),
                    b',' => single(TokenKind::Comma),
                    _ if is_word_byte(b) => enter(self, State::Word, 1, TokenKind::Word),
                    _ => single(TokenKind::Other),
                }
            }
            State::Word => {
                if is_word_byte(b) {
                    Step::go_on(1, false)
                } else {
                    self.state = State::Normal;
                    Step::go_on(0, true)
                }
            }
            State::Quoted { close, backslash } => {
                let mut advance = 1;
                let mut ended = false;
                if *backslash && b == b'\\' {
                    advance = 2;
                } else if b == *close {
                    if next == Some(*close) {
                        advance = 2;
                    } else {
                        ended = true;
                    }
                }
                if ended {
                    self.state = State::Normal;
                }
                Step::go_on(advance, ended)
            }
            State::LineComment => {
                let ended = b == b'\n';
                if ended {
                    self.state = State::Normal;
                }
                Step::go_on(1, ended)
            }
            State::BlockComment { depth } => {
                let mut advance = 1;
                let mut ended = false;
                if b == b'*' && next == Some(b'/') {
                    *depth -= 1;
                    advance = 2;
                    ended = *depth == 0;
                } else if postgres && b == b'/' && next == Some(b'*') {
                    // Only PostgreSQL nests block comments.
                    *depth += 1;
                    advance = 2;
                }
                if ended {
                    self.state = State::Normal;
                }
                Step::go_on(advance, ended)
            }
            State::Dollar { tag } => {
                if b == b'$' && bytes[pos..].starts_with(tag.as_bytes()) {
                    let advance = tag.len();
                    self.state = State::Normal;
                    Step::go_on(advance, true)
                } else {
                    Step::go_on(1, false)
                }
            }
        }
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
