//! Tokens of a whole statement, for code that reads words (statement classification, a
//! table's CHECK constraints) rather than splitting.

use crate::{
    Dialect,
    lexer::{Lexer, State},
};

/// What a [`Token`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A run of whitespace bytes (one token per byte; [`Tokens`] skips them).
    Space,
    /// A bare word: keyword, identifier or number (`$` continues a word, as engines allow).
    Word,
    /// A quoted name: `"…"` (not on MySQL), `` `…` `` (not on PostgreSQL), `[…]` (SQLite).
    QuotedIdentifier,
    /// A string literal: `'…'`, PostgreSQL's `E'…'` and `$tag$…$tag$`, MySQL's `"…"`.
    String,
    /// A parameter mark: `?`, or PostgreSQL's `$1`.
    Placeholder,
    /// A comment: `-- …`, `/* … */`, MySQL's `# …`.
    Comment,
    /// The opening marker of a MySQL executable comment (`/*!50001`, `/*M!100100`) or its
    /// closing `*/`; what lies between is read as code, as the server does.
    ExecutableComment,
    /// `;`
    Semicolon,
    /// `(`
    Open,
    /// `)`
    Close,
    /// `,`
    Comma,
    /// Any other punctuation or operator byte.
    Other,
}

/// One token of a text: its kind and its byte range in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// What it is.
    pub kind: TokenKind,
    /// Its text, quotes and comment markers included.
    pub text: &'a str,
    /// Byte offset of its first byte.
    pub start: usize,
    /// Byte offset just past it.
    pub end: usize,
}

impl Token<'_> {
    /// Whether it is the bare word `word`, ignoring ASCII case.
    pub fn is_word(&self, word: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(word)
    }
}

/// The tokens of a text under a dialect's rules, whitespace skipped. A quote or comment left
/// open runs to the end of the text.
///
/// ```
/// use dbforge_sqlscan::{Dialect, TokenKind, Tokens};
///
/// let words: Vec<&str> = Tokens::new("SELECT 'a;b' /* c */ FROM `t`", Dialect::Mysql)
///     .filter(|t| t.kind == TokenKind::Word)
///     .map(|t| t.text)
///     .collect();
/// assert_eq!(words, ["SELECT", "FROM"]);
/// ```
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    text: &'a str,
    pos: usize,
    lexer: Lexer,
}

impl<'a> Tokens<'a> {
    /// The tokens of `text` under `dialect`'s rules.
    pub fn new(text: &'a str, dialect: Dialect) -> Self {
        Self {
            text,
            pos: 0,
            lexer: Lexer::new(dialect, true),
        }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() {
            let start = self.pos;
            let step = self.lexer.step(bytes, start);
            let kind = step.started?;
            self.pos = (start + step.advance).min(bytes.len());
            if !step.ended {
                while self.pos < bytes.len() {
                    let step = self.lexer.step(bytes, self.pos);
                    self.pos = (self.pos + step.advance).min(bytes.len());
                    if step.ended {
                        break;
                    }
                }
                // The text ended inside the token: the next text starts afresh.
                self.lexer.state = State::Normal;
            }
            if kind == TokenKind::Space {
                continue;
            }
            // Token boundaries fall on ASCII bytes, so this never fails; an empty text is the
            // fallback rather than a panic.
            let text = self.text.get(start..self.pos).unwrap_or_default();
            return Some(Token {
                kind,
                text,
                start,
                end: self.pos,
            });
        }
        None
    }
}
