//! Scripts and how each dialect splits them: the table that every user of the splitter (the
//! gateway's ImportSql, the CLI's `dbforge sql -f` and shell) runs in its tests, so that the
//! same script splits the same way wherever it goes.

use crate::Dialect;

/// A script and its statements under each dialect.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// What it exercises.
    pub name: &'static str,
    /// The script.
    pub script: &'static str,
    /// Its statements on SQLite.
    pub sqlite: &'static [&'static str],
    /// Its statements on PostgreSQL.
    pub postgres: &'static [&'static str],
    /// Its statements on MySQL.
    pub mysql: &'static [&'static str],
}

impl Case {
    /// The statements `dialect` splits the script into.
    pub fn expected(&self, dialect: Dialect) -> &'static [&'static str] {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
            Dialect::Mysql => self.mysql,
        }
    }
}

/// Two statements, whatever the dialect.
const TWO: &[&str] = &["SELECT 'it''s; here'", "SELECT 2"];

/// The table.
pub const CASES: &[Case] = &[
    Case {
        name: "doubled quotes",
        script: "SELECT 'it''s; here'; SELECT 2",
        sqlite: TWO,
        postgres: TWO,
        mysql: TWO,
    },
    Case {
        name: "doubled double quotes",
        script: "SELECT \"we\"\";ird\" FROM t;\nSELECT 2;",
        sqlite: &["SELECT \"we\"\";ird\" FROM t", "SELECT 2"],
        postgres: &["SELECT \"we\"\";ird\" FROM t", "SELECT 2"],
        mysql: &["SELECT \"we\"\";ird\" FROM t", "SELECT 2"],
    },
    Case {
        name: "dash-dash comments",
        script: "SELECT 1 -- no; split\n; -- only a comment;\n; SELECT 2",
        sqlite: &["SELECT 1 -- no; split", "SELECT 2"],
        postgres: &["SELECT 1 -- no; split", "SELECT 2"],
        mysql: &["SELECT 1 -- no; split", "SELECT 2"],
    },
    Case {
        name: "hash comments on MySQL only",
        script: "SELECT 1 # a; b\n; SELECT 2",
        sqlite: &["SELECT 1 # a", "b", "SELECT 2"],
        postgres: &["SELECT 1 # a", "b", "SELECT 2"],
        mysql: &["SELECT 1 # a; b", "SELECT 2"],
    },
    Case {
        name: "block comments, nested on PostgreSQL",
        script: "/* a /* b; */ c; */ SELECT 1; SELECT 2",
        sqlite: &["/* a /* b; */ c", "*/ SELECT 1", "SELECT 2"],
        postgres: &["/* a /* b; */ c; */ SELECT 1", "SELECT 2"],
        mysql: &["/* a /* b; */ c", "*/ SELECT 1", "SELECT 2"],
    },
    Case {
        name: "dollar quoting on PostgreSQL",
        script: "SELECT $t$ a; $$ b $t$, $1;\nSELECT $$;$$",
        sqlite: &["SELECT $t$ a", "$$ b $t$, $1", "SELECT $$", "$$"],
        postgres: &["SELECT $t$ a; $$ b $t$, $1", "SELECT $$;$$"],
        mysql: &["SELECT $t$ a", "$$ b $t$, $1", "SELECT $$", "$$"],
    },
    Case {
        name: "backslash escapes on MySQL",
        script: "SELECT 'a\\' ; SELECT 1 -- ';\n",
        sqlite: &["SELECT 'a\\'", "SELECT 1 -- ';"],
        postgres: &["SELECT 'a\\'", "SELECT 1 -- ';"],
        mysql: &["SELECT 'a\\' ; SELECT 1 -- '"],
    },
    Case {
        name: "E strings on PostgreSQL",
        script: "SELECT E'a\\' ; SELECT 1 -- ';\n",
        sqlite: &["SELECT E'a\\'", "SELECT 1 -- ';"],
        postgres: &["SELECT E'a\\' ; SELECT 1 -- '"],
        mysql: &["SELECT E'a\\' ; SELECT 1 -- '"],
    },
    Case {
        name: "backticks on MySQL and SQLite, brackets on SQLite",
        script: "SELECT `a;b` FROM t; SELECT [c;d] FROM t;",
        sqlite: &["SELECT `a;b` FROM t", "SELECT [c;d] FROM t"],
        postgres: &["SELECT `a", "b` FROM t", "SELECT [c", "d] FROM t"],
        mysql: &["SELECT `a;b` FROM t", "SELECT [c", "d] FROM t"],
    },
    Case {
        name: "trigger bodies",
        script: "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET a = CASE WHEN a > 1 \
                 THEN 1 ELSE 2 END;\n  DELETE FROM t WHERE a = 5;\nEND;\nINSERT INTO t VALUES (1);",
        sqlite: TRIGGER,
        postgres: TRIGGER,
        mysql: TRIGGER,
    },
    Case {
        name: "MySQL routines",
        script: "CREATE PROCEDURE p() BEGIN\n  IF 1 THEN SELECT 1; END IF;\n  WHILE 0 DO SELECT 2; \
                 END WHILE;\n  CASE x WHEN 1 THEN SELECT 3; END CASE;\nEND;\nSELECT 4",
        sqlite: ROUTINE,
        postgres: ROUTINE,
        mysql: ROUTINE,
    },
    Case {
        name: "a last statement without its semicolon, blank statements",
        script: ";;\n;SELECT 1;\n\nCREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
        sqlite: LAST,
        postgres: LAST,
        mysql: LAST,
    },
];

const TRIGGER: &[&str] = &[
    "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET a = CASE WHEN a > 1 THEN 1 \
     ELSE 2 END;\n  DELETE FROM t WHERE a = 5;\nEND",
    "INSERT INTO t VALUES (1)",
];

const ROUTINE: &[&str] = &[
    "CREATE PROCEDURE p() BEGIN\n  IF 1 THEN SELECT 1; END IF;\n  WHILE 0 DO SELECT 2; END \
     WHILE;\n  CASE x WHEN 1 THEN SELECT 3; END CASE;\nEND",
    "SELECT 4",
];

const LAST: &[&str] = &[
    "SELECT 1",
    "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
];
