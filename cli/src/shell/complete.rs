//! Tab completion in the shell: dot-commands and their arguments, SQL keywords, table names
//! (alone after FROM, JOIN, INTO, UPDATE, TABLE) and column names (only the table's after
//! `table.`). Names that are not plain identifiers are completed in double quotes.

use std::sync::{Arc, Mutex};

use rustyline::{
    Context, Helper, Highlighter, Hinter, Validator,
    completion::{Completer, Pair},
};

use crate::schema::Catalog;

/// The dot-commands, for completion and `.help`.
pub const DOT_COMMANDS: &[(&str, &str)] = &[
    (".help", "show this list"),
    (".tables", "list the tables and views"),
    (".schema", "[TABLE] show the CREATE statements"),
    (".mode", "table|csv|json|ndjson  set the output format"),
    (".timer", "on|off  show how long each statement took"),
    (".quit", "leave the shell (also .exit, Ctrl-D)"),
    (".exit", "leave the shell"),
];

/// Output modes of `.mode`.
pub const MODES: &[&str] = &["table", "csv", "json", "ndjson"];

const KEYWORDS: &[&str] = &[
    "ALTER",
    "AND",
    "AS",
    "ASC",
    "AVG",
    "BEGIN",
    "BETWEEN",
    "BY",
    "CASE",
    "COMMIT",
    "COUNT",
    "CREATE",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DISTINCT",
    "DROP",
    "ELSE",
    "END",
    "EXISTS",
    "FROM",
    "GROUP",
    "HAVING",
    "IN",
    "INDEX",
    "INNER",
    "INSERT",
    "INTEGER",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LEFT",
    "LIKE",
    "LIMIT",
    "MAX",
    "MIN",
    "NOT",
    "NULL",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "PRIMARY",
    "REAL",
    "RETURNING",
    "ROLLBACK",
    "SELECT",
    "SET",
    "SUM",
    "TABLE",
    "TEXT",
    "THEN",
    "UNION",
    "UNIQUE",
    "UPDATE",
    "VALUES",
    "VIEW",
    "WHEN",
    "WHERE",
    "WITH",
];

/// Keywords after which only a table name makes sense.
const TABLE_CONTEXT: &[&str] = &["FROM", "JOIN", "INTO", "UPDATE", "TABLE"];

/// The rustyline helper: completion from a catalog the shell refreshes after DDL.
#[derive(Helper, Hinter, Highlighter, Validator)]
pub struct ShellHelper {
    /// Table and column names.
    pub catalog: Arc<Mutex<Catalog>>,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        // A poisoned lock only means a refresh panicked; the names are still usable.
        let catalog = self
            .catalog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (start, words) = candidates(&catalog, line, pos);
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: w,
                })
                .collect(),
        ))
    }
}

fn is_plain(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A name as it must be typed.
fn quoted(name: &str) -> String {
    if is_plain(name) {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn matches(name: &str, prefix: &str) -> bool {
    name.to_lowercase().starts_with(&prefix.to_lowercase())
}

/// Where the completed word starts, and what it may become.
pub fn candidates(catalog: &Catalog, line: &str, pos: usize) -> (usize, Vec<String>) {
    let before = line.get(..pos).unwrap_or(line);
    let trimmed = before.trim_start();
    if trimmed.starts_with('.') {
        let offset = before.len() - trimmed.len();
        return match trimmed.split_once(' ') {
            // Commands that take an argument complete with a space, ready for it.
            None => (
                offset,
                DOT_COMMANDS
                    .iter()
                    .map(|(c, _)| *c)
                    .filter(|c| c.starts_with(trimmed))
                    .map(|c| match c {
                        ".schema" | ".mode" | ".timer" => format!("{c} "),
                        _ => c.to_owned(),
                    })
                    .collect(),
            ),
            Some((cmd, arg)) => {
                let arg = arg.trim_start();
                let start = pos - arg.len();
                let options: Vec<String> = match cmd {
                    ".schema" => catalog.tables.iter().map(|t| quoted(t)).collect(),
                    ".mode" => MODES.iter().map(|m| (*m).to_owned()).collect(),
                    ".timer" => vec!["on".into(), "off".into()],
                    _ => Vec::new(),
                };
                let arg = arg.trim_start_matches('"');
                (
                    start,
                    options
                        .into_iter()
                        .filter(|o| matches(o.trim_start_matches('"'), arg))
                        .collect(),
                )
            }
        };
    }
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '"'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &before[start..];
    let prefix = word.trim_start_matches('"');
    let head = &before[..start];

    // `table.` → that table's columns.
    if let Some(qualified) = head.strip_suffix('.') {
        let table_start = qualified
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '"'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let table = qualified[table_start..].trim_matches('"');
        let cols = catalog
            .columns
            .iter()
            .filter(|(t, c)| t.eq_ignore_ascii_case(table) && matches(c, prefix))
            .map(|(_, c)| quoted(c))
            .collect();
        return (start, cols);
    }

    let previous = head
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .rfind(|w| !w.is_empty())
        .unwrap_or_default()
        .to_ascii_uppercase();
    let tables = catalog
        .tables
        .iter()
        .filter(|t| matches(t, prefix))
        .map(|t| quoted(t));
    if TABLE_CONTEXT.contains(&previous.as_str()) {
        return (start, tables.collect());
    }
    let mut out: Vec<String> = tables.collect();
    for (_, c) in &catalog.columns {
        let q = quoted(c);
        if matches(c, prefix) && !out.contains(&q) {
            out.push(q);
        }
    }
    if !prefix.is_empty() && !word.starts_with('"') {
        let lower = prefix.chars().any(char::is_lowercase);
        out.extend(KEYWORDS.iter().filter(|k| matches(k, prefix)).map(|k| {
            if lower {
                k.to_lowercase()
            } else {
                (*k).to_owned()
            }
        }));
    }
    (start, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog {
            tables: vec!["people".into(), "pets".into(), "my table".into()],
            columns: vec![
                ("people".into(), "id".into()),
                ("people".into(), "name".into()),
                ("pets".into(), "id".into()),
                ("pets".into(), "owner".into()),
                ("my table".into(), "x".into()),
            ],
        }
    }

    fn complete(line: &str) -> (usize, Vec<String>) {
        candidates(&catalog(), line, line.len())
    }

    #[test]
    fn dot_commands_and_arguments() {
        assert_eq!(complete(".ta"), (0, vec![".tables".to_owned()]));
        assert_eq!(complete(".t").1, [".tables", ".timer "]);
        assert_eq!(complete(".sc").1, [".schema "]);
        assert_eq!(
            complete(".schema pe"),
            (8, vec!["people".into(), "pets".into()])
        );
        assert_eq!(complete(".mode c"), (6, vec!["csv".into()]));
    }

    #[test]
    fn tables_after_from_and_columns_after_a_dot() {
        assert_eq!(
            complete("SELECT * FROM pe"),
            (14, vec!["people".into(), "pets".into()])
        );
        assert_eq!(
            complete("select * from my"),
            (14, vec!["\"my table\"".into()])
        );
        assert_eq!(complete("SELECT people.n"), (14, vec!["name".into()]));
        assert_eq!(
            complete("SELECT pets."),
            (12, vec!["id".into(), "owner".into()])
        );
    }

    #[test]
    fn keywords_follow_the_case_typed() {
        let (_, words) = complete("sel");
        assert_eq!(words, ["select"]);
        let (_, words) = complete("SELECT * FROM people WH");
        assert_eq!(words, ["WHEN", "WHERE"]);
        let (_, words) = complete("SELECT o");
        assert_eq!(words, ["owner", "offset", "on", "or", "order"]);
    }
}
