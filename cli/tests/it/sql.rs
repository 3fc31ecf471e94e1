//! `dbforge sql`: streamed results, parameters, SQL from files and stdin, several statements,
//! transactions.

use predicates::prelude::*;

use crate::harness::{Pty, Server, stderr, stdout, without_time};

/// A table with a value of every common kind, NULLs and text that needs quoting.
pub fn people(s: &Server) -> String {
    let db = s.db("people");
    s.exec(
        &db,
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, score REAL, \
         note TEXT, data BLOB)",
    );
    s.exec(
        &db,
        "INSERT INTO people (name, age, score, note, data) VALUES \
         ('Ada', 36, 9.5, NULL, x'00ff'), \
         ('Alan', 41, 7.0, 'a,b \"q\"', NULL), \
         ('Grace', NULL, NULL, '', NULL)",
    );
    db
}

#[test]
fn sql_prints_an_aligned_table() {
    let s = Server::start();
    let db = people(&s);
    let out = s
        .cmd()
        .args(["sql", &db, "SELECT * FROM people ORDER BY id"])
        .args(["-o", "table", "--color", "never", "--width", "80"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        without_time(&stdout(&out)),
        "\
┌────┬───────┬──────┬───────┬─────────┬────────┐
│ id │ name  │  age │ score │ note    │ data   │
├────┼───────┼──────┼───────┼─────────┼────────┤
│  1 │ Ada   │   36 │   9.5 │ NULL    │ \\x00ff │
│  2 │ Alan  │   41 │   7.0 │ a,b \"q\" │ NULL   │
│  3 │ Grace │ NULL │  NULL │         │ NULL   │
└────┴───────┴──────┴───────┴─────────┴────────┘
3 rows
"
    );
    // The footer carries the elapsed time.
    let last = stdout(&out).lines().last().unwrap_or_default().to_owned();
    assert!(
        last.starts_with("3 rows (") && last.ends_with(" ms)"),
        "{last}"
    );
}

#[test]
fn params_are_typed_by_their_text_or_a_prefix() {
    let s = Server::start();
    let db = s.db("params");
    s.cmd()
        .args([
            "sql",
            &db,
            "SELECT typeof(?) AS a, typeof(?) AS b, typeof(?) AS c, typeof(?) AS d, typeof(?) AS e, typeof(?) AS f, typeof(?) AS g",
        ])
        .args(["-p", "24", "-p", "2.5", "-p", "true", "-p", "null", "-p", "bob"])
        .args(["-p", "text:24", "-p", "007", "-o", "csv"])
        .assert()
        .success()
        .stdout("a,b,c,d,e,f,g\r\ninteger,real,integer,null,text,text,text\r\n");
    s.cmd()
        .args([
            "sql",
            &db,
            "SELECT ? * 2 AS doubled",
            "--param",
            "-21",
            "-o",
            "ndjson",
        ])
        .assert()
        .success()
        .stdout("{\"doubled\":-42}\n");
}

#[test]
fn sql_from_a_file_and_from_stdin_runs_each_statement() {
    let s = Server::start();
    let db = s.db("files");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("setup.sql");
    std::fs::write(
        &file,
        "-- a schema; with a comment\nCREATE TABLE t (x INTEGER, y TEXT);\n\
         INSERT INTO t VALUES (1, 'a;b'), (2, 'c');\nSELECT count(*) AS n FROM t;\n",
    )
    .expect("write sql");
    s.cmd()
        .args(["sql", &db, "--file"])
        .arg(&file)
        .args(["-o", "ndjson"])
        .assert()
        .success()
        .stdout("{\"rows_affected\":0}\n{\"rows_affected\":2}\n{\"n\":2}\n");
    // Stdin, with `-` and without it; the last statement may lack its `;`.
    s.cmd()
        .args(["sql", &db, "-", "-o", "csv"])
        .write_stdin("SELECT y FROM t WHERE x = 1")
        .assert()
        .success()
        .stdout("y\r\na;b\r\n");
    s.cmd()
        .args(["sql", &db, "-o", "csv"])
        .write_stdin("SELECT x FROM t ORDER BY x;")
        .assert()
        .success()
        .stdout("x\r\n1\r\n2\r\n");
}

#[test]
fn writes_report_the_rows_they_changed() {
    let s = Server::start();
    let db = people(&s);
    let out = s
        .cmd()
        .args([
            "sql",
            &db,
            "UPDATE people SET age = 50 WHERE age IS NOT NULL",
        ])
        .args(["-o", "table", "--color", "never"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(without_time(&stdout(&out)), "2 rows affected\n");
    s.cmd()
        .args(["sql", &db, "DELETE FROM people WHERE id = 1"])
        .args(["-o", "json"])
        .assert()
        .success()
        .stdout("{\"rows_affected\":1}\n");
}

#[test]
fn transaction_is_all_or_nothing() {
    let s = Server::start();
    let db = s.db("tx");
    s.exec(&db, "CREATE TABLE t (id INTEGER PRIMARY KEY)");
    s.cmd()
        .args(["sql", &db, "--transaction", "-o", "ndjson"])
        .arg("INSERT INTO t VALUES (1); INSERT INTO t VALUES (1);")
        .assert()
        .code(8)
        .stderr(predicate::str::contains(
            "statement 2 of 2 failed; the transaction was rolled back",
        ))
        // A Session reports the code but not the reason (SessionError has no ErrorInfo).
        .stderr(predicate::str::contains("UNIQUE constraint failed: t.id"));
    assert_eq!(
        s.scalar(&db, "SELECT count(*) FROM t"),
        dbforge::Value::Int(0)
    );
    s.cmd()
        .args(["sql", &db, "--transaction", "-o", "ndjson"])
        .arg("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2) RETURNING id;")
        .assert()
        .success()
        .stdout("{\"rows_affected\":1}\n{\"id\":2}\n");
    assert_eq!(
        s.scalar(&db, "SELECT count(*) FROM t"),
        dbforge::Value::Int(2)
    );
}

#[test]
fn max_rows_cuts_the_result_and_says_so() {
    let s = Server::start();
    let db = s.db("cut");
    let sql =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10) SELECT x FROM c";
    let out = s
        .cmd()
        .args([
            "sql",
            &db,
            sql,
            "--max-rows",
            "3",
            "-o",
            "table",
            "--color",
            "never",
        ])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = without_time(&stdout(&out));
    assert!(
        text.ends_with("│ 3 │\n└───┘\n3 rows, cut at the row limit\n"),
        "{text}"
    );
    s.cmd()
        .args(["sql", &db, sql, "--max-rows", "2", "-o", "ndjson"])
        .assert()
        .success()
        .stdout("{\"x\":1}\n{\"x\":2}\n")
        .stderr("warning: the result was cut at the row limit after 2 rows\n");
}

#[test]
fn output_is_ndjson_when_piped_and_params_need_one_statement() {
    let s = Server::start();
    let db = people(&s);
    s.cmd()
        .args([
            "sql",
            &db,
            "SELECT name FROM people WHERE age > ?",
            "-p",
            "40",
        ])
        .assert()
        .success()
        .stdout("{\"name\":\"Alan\"}\n");
    s.cmd()
        .args(["sql", &db, "SELECT 1; SELECT ?", "-p", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--param binds to a single statement",
        ));
    s.cmd()
        .args(["sql", &db, " ; /* nothing */ ;"])
        .assert()
        .code(2)
        .stderr("error: no SQL statement given\n");
}

#[test]
fn no_sql_on_a_terminal_is_a_usage_error_not_a_wait() {
    let s = Server::start();
    let db = s.db("nosql");
    let mut cmd = s.std_cmd();
    cmd.env("NO_COLOR", "1").args(["sql", &db]);
    let mut pty = Pty::spawn(cmd);
    pty.expect("error: no SQL given: pass it as an argument or with --file, or pipe it to stdin");
    pty.expect_eof();
    assert_eq!(pty.exit_code(), 2);
}

/// `-o json` prints one JSON document whatever the number of statements: one statement, its
/// rows' array as before; several, an array with one entry per statement (its rows' array, or
/// its `{"rows_affected":N}`), with and without --transaction. NDJSON stays one line per row.
#[test]
fn json_output_of_several_statements_is_one_document() {
    let s = Server::start();
    let db = s.db("json-doc");
    let sql = "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2); \
               SELECT x FROM t ORDER BY x; SELECT x FROM t WHERE x > 5";
    let parse = |out: &std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", stderr(out));
        serde_json::from_str(&stdout(out))
            .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", stdout(out)))
    };
    let expected = serde_json::json!([
        {"rows_affected": 0},
        {"rows_affected": 2},
        [{"x": 1}, {"x": 2}],
        []
    ]);
    let out = s
        .cmd()
        .args(["sql", &db, sql, "-o", "json"])
        .output()
        .expect("run");
    assert_eq!(parse(&out), expected);
    let db2 = s.db("json-doc-tx");
    let out = s
        .cmd()
        .args(["sql", &db2, "--transaction", sql, "-o", "json"])
        .output()
        .expect("run");
    assert_eq!(parse(&out), expected);
    // One statement: its array of rows, unchanged.
    let out = s
        .cmd()
        .args(["sql", &db, "SELECT x FROM t ORDER BY x", "-o", "json"])
        .output()
        .expect("run");
    assert_eq!(parse(&out), serde_json::json!([{"x": 1}, {"x": 2}]));
}

/// On Redis, `--transaction` runs the commands as one MULTI/EXEC batch (Redis has no
/// interactive sessions), so they apply together.
#[test]
fn transaction_on_redis_runs_one_multi_exec_batch() {
    let Some(s) = Server::with_redis() else {
        return;
    };
    let db = s.db_on("redis-tx", dbforge::Backend::Redis);
    let out = s
        .cmd()
        .args(["sql", &db, "--transaction", "SET a 1; INCR a", "-o", "json"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one document");
    assert_eq!(doc, serde_json::json!([[{"value": "OK"}], [{"value": 2}]]));
    assert_eq!(s.scalar(&db, "GET a"), dbforge::Value::Text("2".into()));
}

/// A MySQL script with `#` comments and backslash escapes runs the same through `dbforge sql -f`
/// as through `dbforge import --sql`: the CLI asks GetDatabase for the engine and splits by
/// MySQL's rules, with the gateway's own scanner.
#[test]
fn a_mysql_script_runs_with_sql_file_as_import_runs_it() {
    let Some(s) = Server::with_mysql() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("script.sql");
    std::fs::write(
        &file,
        "CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT);\n\
         # a comment; with a semicolon\n\
         INSERT INTO notes (body) VALUES ('it\\'s; here');\n\
         INSERT INTO notes (body) VALUES (\"a;b\");\n",
    )
    .expect("write script");
    let via_sql = s.db_on("mysql-sql-file", dbforge::Backend::Mysql);
    let via_import = s.db_on("mysql-import", dbforge::Backend::Mysql);
    let out = s
        .cmd()
        .args(["sql", &via_sql, "-f"])
        .arg(&file)
        .output()
        .expect("run");
    let ran = out.status.success();
    let err = stderr(&out);
    s.cmd()
        .args(["import", &via_import, "--sql"])
        .arg(&file)
        .assert()
        .success();
    let q = "SELECT GROUP_CONCAT(body ORDER BY id SEPARATOR '|') FROM notes";
    let (got_sql, got_import) = (s.scalar(&via_sql, q), s.scalar(&via_import, q));
    for db in [&via_sql, &via_import] {
        s.cmd().args(["db", "rm", db, "--yes"]).assert().success();
    }
    assert!(ran, "{err}");
    assert_eq!(got_sql, dbforge::Value::Text("it's; here|a;b".into()));
    assert_eq!(got_import, got_sql);
}
