//! Splitting SQL text into statements at `;`, the way the engines read it: not inside quotes
//! ('text', "ident", `ident`, [ident]), comments (-- and /* */), PostgreSQL dollar quotes
//! ($tag$…$tag$), or the body of a CREATE TRIGGER (which ends at `END;`).
//!
//! `dbforge sql` uses it to run a file of statements one by one, and the shell to know when a
//! statement typed over several lines is complete.

/// The result of [`split`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Complete statements, trimmed, without their `;`.
    pub statements: Vec<String>,
    /// Text after the last `;`: an unfinished statement, or only whitespace and comments.
    pub rest: String,
}

impl Split {
    /// Whether the text after the last `;` is only whitespace and comments.
    pub fn rest_is_empty(&self) -> bool {
        is_blank(&self.rest)
    }
}

/// Whether `sql` holds no statement: only whitespace and comments.
pub fn is_blank(sql: &str) -> bool {
    let mut lexer = Lexer::new(sql);
    while let Some(tok) = lexer.next_token() {
        if !matches!(tok, Token::Space | Token::Comment) {
            return false;
        }
    }
    true
}

/// Splits `sql` at the semicolons that end statements.
pub fn split(sql: &str) -> Split {
    let mut out = Split::default();
    let mut lexer = Lexer::new(sql);
    let mut start = 0;
    // Words of the current statement, up to the first few, to spot CREATE TRIGGER.
    let mut words: Vec<String> = Vec::new();
    let mut last_word = String::new();
    while let Some(tok) = lexer.next_token() {
        match tok {
            Token::Word(w) => {
                if words.len() < 4 {
                    words.push(w.to_ascii_uppercase());
                }
                last_word = w.to_ascii_uppercase();
            }
            Token::Semicolon => {
                let in_trigger = is_trigger(&words) && last_word != "END";
                if !in_trigger {
                    let stmt = &sql[start..lexer.pos - 1];
                    if !is_blank(stmt) {
                        out.statements.push(stmt.trim().to_owned());
                    }
                    start = lexer.pos;
                    words.clear();
                }
                last_word.clear();
            }
            Token::Other => last_word.clear(),
            Token::Space | Token::Comment | Token::Quoted => {}
            Token::Unterminated => break,
        }
    }
    out.rest = sql[start..].to_owned();
    out
}

fn is_trigger(words: &[String]) -> bool {
    match words {
        [create, rest @ ..] if create == "CREATE" => {
            let rest: Vec<&str> = rest
                .iter()
                .map(String::as_str)
                .filter(|w| !matches!(*w, "TEMP" | "TEMPORARY"))
                .collect();
            rest.first() == Some(&"TRIGGER")
        }
        _ => false,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    Space,
    Comment,
    Quoted,
    Word(&'a str),
    Semicolon,
    Other,
    /// An unclosed quote or comment: the rest of the text belongs to it.
    Unterminated,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    /// Moves past the first `end` in the rest of the text, or to the end if there is none.
    fn skip_past(&mut self, end: &str) -> bool {
        match self.rest().find(end) {
            Some(i) => {
                self.pos += i + end.len();
                true
            }
            None => {
                self.pos = self.src.len();
                false
            }
        }
    }

    fn next_token(&mut self) -> Option<Token<'a>> {
        let rest = self.rest();
        let c = rest.chars().next()?;
        let start = self.pos;
        let tok = match c {
            c if c.is_whitespace() => {
                self.pos += rest
                    .find(|c: char| !c.is_whitespace())
                    .unwrap_or(rest.len());
                Token::Space
            }
            '-' if rest.starts_with("--") => {
                self.skip_past("\n");
                Token::Comment
            }
            '/' if rest.starts_with("/*") => {
                self.pos += 2;
                if self.skip_past("*/") {
                    Token::Comment
                } else {
                    Token::Unterminated
                }
            }
            '\'' | '"' | '`' => {
                // A doubled quote inside is an escaped quote; scanning pairs handles it.
                self.pos += 1;
                let q = c.to_string();
                if self.skip_past(&q) {
                    Token::Quoted
                } else {
                    Token::Unterminated
                }
            }
            '[' => {
                self.pos += 1;
                if self.skip_past("]") {
                    Token::Quoted
                } else {
                    Token::Unterminated
                }
            }
            '$' => match dollar_tag(rest) {
                Some(tag) => {
                    self.pos += tag.len();
                    if self.skip_past(tag) {
                        Token::Quoted
                    } else {
                        Token::Unterminated
                    }
                }
                None => {
                    self.pos += 1;
                    Token::Other
                }
            },
            ';' => {
                self.pos += 1;
                Token::Semicolon
            }
            c if c.is_alphanumeric() || c == '_' => {
                let len = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                    .unwrap_or(rest.len());
                self.pos += len;
                Token::Word(&self.src[start..self.pos])
            }
            c => {
                self.pos += c.len_utf8();
                Token::Other
            }
        };
        Some(tok)
    }
}

/// `$$` or `$tag$` at the start of `s` (PostgreSQL dollar quoting); `$1` is a parameter.
fn dollar_tag(s: &str) -> Option<&str> {
    let body = s.get(1..)?;
    let end = body.find('$')?;
    let tag = &body[..end];
    let valid = tag.is_empty()
        || (tag.chars().all(|c| c.is_alphanumeric() || c == '_')
            && !tag.starts_with(|c: char| c.is_ascii_digit()));
    valid.then(|| &s[..end + 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmts(sql: &str) -> Vec<String> {
        split(sql).statements
    }

    #[test]
    fn splits_at_semicolons_outside_quotes_and_comments() {
        assert_eq!(stmts("SELECT 1; SELECT 2;"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(stmts("SELECT ';'; SELECT 'it''s;'"), ["SELECT ';'"]);
        assert_eq!(
            split("SELECT ';'; SELECT 'it''s;'").rest,
            " SELECT 'it''s;'"
        );
        assert_eq!(stmts("SELECT \"a;b\" FROM t;"), ["SELECT \"a;b\" FROM t"]);
        assert_eq!(stmts("SELECT 1 -- no; split\n;"), ["SELECT 1 -- no; split"]);
        assert_eq!(stmts("SELECT /* ; */ 1;"), ["SELECT /* ; */ 1"]);
        assert_eq!(stmts("SELECT [a;b] FROM t;"), ["SELECT [a;b] FROM t"]);
        assert_eq!(stmts("SELECT $$a;b$$, $1;"), ["SELECT $$a;b$$, $1"]);
        assert_eq!(stmts("SELECT $x$ ; $x$;"), ["SELECT $x$ ; $x$"]);
        assert_eq!(stmts(";;  ; -- only comments\n;"), Vec::<String>::new());
    }

    #[test]
    fn unfinished_statements_stay_in_rest() {
        let s = split("SELECT 1;\nSELECT 'open;");
        assert_eq!(s.statements, ["SELECT 1"]);
        assert_eq!(s.rest, "\nSELECT 'open;");
        assert!(!s.rest_is_empty());
        assert!(split("SELECT 1; -- done\n").rest_is_empty());
        assert!(!split("SELECT 1 /* open ;").rest_is_empty());
    }

    #[test]
    fn trigger_bodies_end_at_end() {
        let sql = "CREATE TEMP TRIGGER t AFTER INSERT ON a BEGIN UPDATE b SET n = n + 1; \
                   DELETE FROM c; END; SELECT 1;";
        let s = stmts(sql);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].ends_with("END"));
        assert_eq!(s[1], "SELECT 1");
        assert!(!split("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1;").rest_is_empty());
    }
}
