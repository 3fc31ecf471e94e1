//! Splits SQL scripts into statements as they stream in, for ImportSql: the gateway's side of
//! the shared scanner, [`dbforge_sqlscan`] (the CLI splits `dbforge sql -f` with the same one).
//! That crate's docs say what the splitter knows and why it is not sqlparser; this module picks
//! the dialect from the backend and words its errors as the gateway's.

use dbforge_sqlscan::Dialect;

use super::{
    engine::BackendKind,
    error::{Error, Result},
};

/// One statement of a script.
pub use dbforge_sqlscan::Statement as ScriptStatement;

/// The lexical rules of `kind`'s statements.
pub fn dialect(kind: BackendKind) -> Dialect {
    match kind {
        BackendKind::Sqlite => Dialect::Sqlite,
        BackendKind::Postgres => Dialect::Postgres,
        BackendKind::Mysql => Dialect::Mysql,
        // Redis takes no SQL scripts (ImportSql is refused before splitting); its commands
        // quote like SQLite's statements, which is all a split needs.
        BackendKind::Redis => Dialect::Sqlite,
        // Nor does the graph engine (SPARQL, no scripts); the same reasoning holds.
        BackendKind::Graph => Dialect::Sqlite,
    }
}

/// The gateway's error for a script the scanner cannot split: an oversized statement is
/// [`Error::LimitExceeded`], anything else an invalid `script`.
fn error(err: dbforge_sqlscan::Error) -> Error {
    match err {
        dbforge_sqlscan::Error::TooLong {
            statement,
            line,
            limit,
        } => Error::LimitExceeded(format!(
            "statement {statement} starting at line {line} is longer than the import line limit \
             of {limit} bytes"
        )),
        other => Error::invalid("script", other.to_string()),
    }
}

/// Splits a script fed in chunks; see the module docs.
#[derive(Debug)]
pub struct Splitter(dbforge_sqlscan::Splitter);

impl Splitter {
    /// A splitter for `kind`'s lexical rules; a statement longer than `max_statement_bytes` is
    /// [`Error::LimitExceeded`].
    pub fn new(kind: BackendKind, max_statement_bytes: usize) -> Self {
        Self(dbforge_sqlscan::Splitter::new(
            dialect(kind),
            max_statement_bytes,
        ))
    }

    /// Stops after PostgreSQL's `COPY … FROM STDIN` statements so the caller reads their data
    /// (see [`dbforge_sqlscan::Splitter::with_copy_data`]); backups' restores use it.
    pub fn with_copy_data(self) -> Self {
        Self(self.0.with_copy_data())
    }

    /// Feeds the next bytes and returns the statements they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<ScriptStatement>> {
        self.0.push(bytes).map_err(error)
    }

    /// After a `COPY … FROM STDIN` statement: the bytes fed after it, which hold its data.
    pub fn take_copy_data(&mut self) -> Option<Vec<u8>> {
        self.0.take_copy_data()
    }

    /// At the end of the input: the statements still held back, stopping after a COPY.
    pub fn end_of_input(&mut self) -> Result<Vec<ScriptStatement>> {
        self.0.end_of_input().map_err(error)
    }

    /// Counts lines the caller read itself (copy data).
    pub fn skip_lines(&mut self, n: u64) {
        self.0.skip_lines(n);
    }

    /// Ends the script: returns the last statement if it lacks a semicolon, or an error when a
    /// string, comment or block is left open.
    pub fn finish(self) -> Result<Vec<ScriptStatement>> {
        self.0.finish().map_err(error)
    }
}

/// The table and columns of a `COPY table (columns) FROM STDIN` statement of `kind`'s dialect.
pub fn copy_target(kind: BackendKind, sql: &str) -> Option<dbforge_sqlscan::CopyTarget> {
    dbforge_sqlscan::copy_from_stdin(dialect(kind), sql)
}

/// Splits a whole script at once.
pub fn split(
    kind: BackendKind,
    script: &str,
    max_statement_bytes: usize,
) -> Result<Vec<ScriptStatement>> {
    dbforge_sqlscan::split(dialect(kind), script, max_statement_bytes).map_err(error)
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

    /// ImportSql splits the shared table of scripts as the scanner's own tests (and the CLI's)
    /// say.
    #[test]
    fn the_shared_table_splits_alike_on_the_import_path() {
        for case in dbforge_sqlscan::cases::CASES {
            for kind in [
                BackendKind::Sqlite,
                BackendKind::Postgres,
                BackendKind::Mysql,
            ] {
                let want = case.expected(dialect(kind));
                assert_eq!(sqls(kind, case.script), want, "{} on {kind:?}", case.name);
                let got: Vec<String> = bytewise(kind, case.script)
                    .into_iter()
                    .map(|s| s.sql)
                    .collect();
                assert_eq!(got, want, "{} on {kind:?}, bytewise", case.name);
            }
        }
    }

    #[test]
    fn utf8_cut_by_chunks_is_joined() {
        let script = "SELECT 'héllo; wörld';SELECT 2;";
        let got = bytewise(BackendKind::Sqlite, script);
        assert_eq!(got[0].sql, "SELECT 'héllo; wörld'");
    }
}
