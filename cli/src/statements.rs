//! Splitting SQL text into statements at `;`, the way the database's engine reads it: the
//! gateway's own scanner (`dbforge-sqlscan`, which also splits `dbforge import --sql` on the
//! server), under the dialect of the database's backend from GetDatabase. So a MySQL script with
//! `#` comments or backslash escapes splits the same whether it is run with `dbforge sql -f` or
//! imported.
//!
//! `dbforge sql` uses it to run a file of statements one by one, and the shell to know when a
//! statement typed over several lines is complete.

use dbforge::Backend;
pub use dbforge_sqlscan::Dialect;

/// The lexical rules for a database of `backend`. Redis commands are not SQL; they split by
/// SQLite's rules (quotes and comments), as they did before the CLI knew dialects.
pub fn dialect(backend: Backend) -> Dialect {
    match backend {
        Backend::Postgres => Dialect::Postgres,
        Backend::Mysql => Dialect::Mysql,
        // SPARQL quotes and comments close enough to SQLite's for a split on `;` (which SPARQL
        // updates use between operations: a graph script is best sent whole).
        Backend::Sqlite | Backend::Redis | Backend::Graph | Backend::Unspecified => Dialect::Sqlite,
    }
}

/// The result of [`split`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Complete statements, trimmed, without their `;`.
    pub statements: Vec<String>,
    /// Text after the last `;`: an unfinished statement, or only whitespace and comments.
    pub rest: String,
    rest_is_blank: bool,
}

impl Split {
    /// Whether the text after the last `;` is only whitespace and comments.
    pub fn rest_is_empty(&self) -> bool {
        self.rest_is_blank
    }
}

/// Whether `sql` holds no statement: only whitespace and comments.
pub fn is_blank(dialect: Dialect, sql: &str) -> bool {
    dbforge_sqlscan::is_blank(dialect, sql)
}

/// Splits `sql` at the semicolons that end statements.
pub fn split(dialect: Dialect, sql: &str) -> Split {
    let split = dbforge_sqlscan::split_complete(dialect, sql);
    Split {
        statements: split.statements.into_iter().map(|s| s.sql).collect(),
        rest: split.rest,
        rest_is_blank: split.rest_is_blank,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmts(sql: &str) -> Vec<String> {
        split(Dialect::Sqlite, sql).statements
    }

    #[test]
    fn splits_at_semicolons_outside_quotes_and_comments() {
        assert_eq!(stmts("SELECT 1; SELECT 2;"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(stmts("SELECT ';'; SELECT 'it''s;'"), ["SELECT ';'"]);
        assert_eq!(
            split(Dialect::Sqlite, "SELECT ';'; SELECT 'it''s;'").rest,
            " SELECT 'it''s;'"
        );
        assert_eq!(stmts("SELECT \"a;b\" FROM t;"), ["SELECT \"a;b\" FROM t"]);
        assert_eq!(stmts("SELECT 1 -- no; split\n;"), ["SELECT 1 -- no; split"]);
        assert_eq!(stmts("SELECT /* ; */ 1;"), ["SELECT /* ; */ 1"]);
        assert_eq!(stmts("SELECT [a;b] FROM t;"), ["SELECT [a;b] FROM t"]);
        assert_eq!(stmts(";;  ; -- only comments\n;"), Vec::<String>::new());
        let pg = |sql| split(Dialect::Postgres, sql).statements;
        assert_eq!(pg("SELECT $$a;b$$, $1;"), ["SELECT $$a;b$$, $1"]);
        assert_eq!(pg("SELECT $x$ ; $x$;"), ["SELECT $x$ ; $x$"]);
    }

    #[test]
    fn unfinished_statements_stay_in_rest() {
        let s = split(Dialect::Sqlite, "SELECT 1;\nSELECT 'open;");
        assert_eq!(s.statements, ["SELECT 1"]);
        assert_eq!(s.rest, "\nSELECT 'open;");
        assert!(!s.rest_is_empty());
        assert!(split(Dialect::Sqlite, "SELECT 1; -- done\n").rest_is_empty());
        assert!(!split(Dialect::Sqlite, "SELECT 1 /* open ;").rest_is_empty());
    }

    #[test]
    fn trigger_bodies_end_at_end() {
        let sql = "CREATE TEMP TRIGGER t AFTER INSERT ON a BEGIN UPDATE b SET n = n + 1; \
                   DELETE FROM c; END; SELECT 1;";
        let s = stmts(sql);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].ends_with("END"));
        assert_eq!(s[1], "SELECT 1");
        let open = "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1;";
        assert!(!split(Dialect::Sqlite, open).rest_is_empty());
    }
}
