//! `dbforge export`, `import` and `dump` against a live gateway (SQLite databases).

use predicates::prelude::*;

use crate::harness::{Pty, Server, stderr, stdout};

/// Rows that CSV must carry intact: NULL next to empty text, quotes, the delimiter, a line
/// break inside a field, and text outside ASCII.
const PEOPLE: &str =
    "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, note TEXT, score REAL)";
const PEOPLE_ROWS: &str = "INSERT INTO people VALUES \
    (1, 'Ada \"the first\" Lovelace', NULL, 1.5), \
    (2, 'Zoë, 東京', 'line one\nline two', NULL), \
    (3, '', 'plain', 2.25), \
    (4, NULL, '🦀 crab', -7.0)";

fn people(s: &Server) -> String {
    let db = s.db("people");
    s.exec(&db, PEOPLE);
    s.exec(&db, PEOPLE_ROWS);
    db
}

/// Every row of `sql` as NDJSON, through `dbforge export --query`: typed values, so NULL, empty
/// text and numbers are told apart.
fn ndjson(s: &Server, db: &str, sql: &str) -> String {
    let out = s
        .cmd()
        .args(["export", db, "--query", sql, "--format", "ndjson"])
        .output()
        .expect("run export");
    assert!(out.status.success(), "export failed: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn csv_export_and_import_round_trip_nulls_unicode_quotes_and_newlines() {
    let s = Server::start();
    let db = people(&s);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("people.csv");

    // To stdout, and to a file with a summary on stderr: the same bytes.
    let out = s
        .cmd()
        .args(["export", &db, "--table", "people", "--format", "csv"])
        .output()
        .expect("run export");
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = stdout(&out);
    s.cmd()
        .args(["export", &db, "--table", "people", "--out"])
        .arg(&file)
        .args(["--color", "never"])
        .assert()
        .success()
        .stdout("")
        .stderr(format!("exported 4 rows to {}\n", file.display()));
    assert_eq!(std::fs::read_to_string(&file).expect("read export"), csv);

    // RFC 4180: CRLF line ends, quotes doubled, fields with a delimiter or a line break quoted,
    // empty text quoted so it differs from NULL (an empty field).
    assert!(csv.starts_with("id,name,note,score\r\n"), "{csv}");
    assert!(
        csv.contains("1,\"Ada \"\"the first\"\" Lovelace\",,1.5\r\n"),
        "{csv}"
    );
    assert!(
        csv.contains("2,\"Zoë, 東京\",\"line one\nline two\",\r\n"),
        "{csv}"
    );
    assert!(csv.contains("3,\"\",plain,2.25\r\n"), "{csv}");
    assert_eq!(csv.matches("\r\n").count(), 5, "{csv}");

    // Into an empty table of the same shape: the same typed rows come back.
    let copy = s.db("people-copy");
    s.exec(&copy, PEOPLE);
    s.cmd()
        .args(["import", &copy, "--csv"])
        .arg(&file)
        .args(["--table", "people", "-o", "table", "--color", "never"])
        .assert()
        .success()
        .stdout("read 4 rows: 4 inserted, 0 rejected\n");
    let all = "SELECT * FROM people ORDER BY id";
    let original = ndjson(&s, &db, all);
    assert_eq!(original.lines().count(), 4);
    assert_eq!(ndjson(&s, &copy, all), original);

    // A NULL marker and another delimiter survive the trip the same way.
    let tsv = dir.path().join("people.tsv");
    s.cmd()
        .args(["export", &db, "-t", "people", "--delimiter", "tab"])
        .args(["--null-text", "\\N", "--out"])
        .arg(&tsv)
        .assert()
        .success();
    let text = std::fs::read_to_string(&tsv).expect("read tsv");
    assert!(text.starts_with("id\tname\tnote\tscore\r\n"), "{text}");
    assert!(text.contains("4\t\\N\t🦀 crab\t"), "{text}");
    let third = s.db("people-tsv");
    s.exec(&third, PEOPLE);
    s.cmd()
        .args(["import", &third, "--csv"])
        .arg(&tsv)
        .args([
            "--table",
            "people",
            "--delimiter",
            "\\t",
            "--null-text",
            "\\N",
        ])
        .assert()
        .success();
    assert_eq!(ndjson(&s, &third, all), original);

    // --create infers the types; --type overrides one.
    let created = s.db("people-created");
    let out = s
        .cmd()
        .args(["import", &created, "--csv"])
        .arg(&file)
        .args(["--table", "people", "--create", "--type", "note=text"])
        .args(["-o", "json"])
        .output()
        .expect("run import");
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json report");
    assert_eq!(report["table_created"], true);
    assert_eq!(report["rows_inserted"], 4);
    assert_eq!(report["rejected"], serde_json::json!([]));
    assert_eq!(
        s.scalar(&created, "SELECT count(*) FROM people WHERE name IS NULL"),
        dbforge::Value::Int(1)
    );
    assert_eq!(
        s.scalar(&created, "SELECT name FROM people WHERE id = 3"),
        dbforge::Value::Text(String::new())
    );
    assert_eq!(
        s.scalar(&created, "SELECT note FROM people WHERE id = 2"),
        dbforge::Value::Text("line one\nline two".into())
    );
}

#[test]
fn export_of_a_query_takes_parameters_and_writes_json() {
    let s = Server::start();
    let db = people(&s);
    s.cmd()
        .args([
            "export",
            &db,
            "--query",
            "SELECT id, name FROM people WHERE id <= ? ORDER BY id",
        ])
        .args(["-p", "2", "--format", "json"])
        .assert()
        .success()
        .stdout(predicate::function(|out: &str| {
            let v: serde_json::Value = serde_json::from_str(out).expect("one JSON array");
            v == serde_json::json!([
                {"id": 1, "name": "Ada \"the first\" Lovelace"},
                {"id": 2, "name": "Zoë, 東京"},
            ])
        }));
}

#[test]
fn export_errors_say_what_the_gateway_said_and_leave_no_file() {
    let s = Server::start();
    let db = people(&s);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("nope.csv");
    let out = s
        .cmd()
        .args(["export", &db, "--table", "nope", "--out"])
        .arg(&file)
        .args(["--color", "never"])
        .output()
        .expect("run export");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
    assert!(!file.exists(), "a failed export left {}", file.display());
    s.cmd()
        .args(["export", "no-such-db", "--table", "people"])
        .assert()
        .code(3);
}

#[test]
fn import_with_skip_bad_rows_lists_the_rejected_lines() {
    let s = Server::start();
    let db = s.db("bad-rows");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("counts.csv");
    // Line 4 does not fit the INTEGER inferred from the first two rows; line 6 has a field too
    // many.
    std::fs::write(&file, "id,n\n1,10\n2,20\n3,abc\n4,40\n5,50,extra\n6,60\n").expect("write");

    // All or nothing by default: the bad line is named and nothing is inserted.
    let out = s
        .cmd()
        .args(["import", &db, "--csv"])
        .arg(&file)
        .args([
            "--table",
            "counts",
            "--create",
            "--sample-rows",
            "2",
            "--color",
            "never",
        ])
        .output()
        .expect("run import");
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("line 4"), "{}", stderr(&out));

    let out = s
        .cmd()
        .args(["import", &db, "--csv"])
        .arg(&file)
        .args(["--table", "counts", "--create", "--sample-rows", "2"])
        .args(["--skip-bad-rows", "-o", "table", "--color", "never"])
        .output()
        .expect("run import");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "created table counts", "{text}");
    assert_eq!(lines[1], "read 6 rows: 4 inserted, 2 rejected", "{text}");
    assert!(lines[2].starts_with("  line 4: "), "{text}");
    assert!(lines[3].starts_with("  line 6: "), "{text}");
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        s.scalar(
            &db,
            "SELECT group_concat(n, ',') FROM (SELECT n FROM counts ORDER BY id)"
        ),
        dbforge::Value::Text("10,20,40,60".into())
    );

    // The same in JSON, for programs.
    let again = s.db("bad-rows-json");
    let out = s
        .cmd()
        .args(["import", &again, "--csv"])
        .arg(&file)
        .args([
            "--table",
            "counts",
            "--create",
            "--sample-rows",
            "2",
            "--skip-bad-rows",
        ])
        .args(["-o", "json"])
        .output()
        .expect("run import");
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(report["rows_rejected"], 2);
    assert_eq!(report["rejected"][0]["line"], 4);
    assert_eq!(report["rejected"][1]["line"], 6);
}

#[test]
fn import_sql_runs_a_script_from_a_file_or_stdin_all_or_nothing() {
    let s = Server::start();
    let db = s.db("script");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("script.sql");
    std::fs::write(
        &file,
        "-- a comment; with a semicolon\n\
         CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n\
         INSERT INTO notes (body) VALUES ('a; b'), ('it''s');\n\
         UPDATE notes SET body = body || '!' WHERE id = 2;\n",
    )
    .expect("write script");
    s.cmd()
        .args(["import", &db, "--sql"])
        .arg(&file)
        .args(["-o", "table", "--color", "never"])
        .assert()
        .success()
        .stdout("ran 3 statements, 3 rows affected\n");
    assert_eq!(
        s.scalar(&db, "SELECT group_concat(body, '|') FROM notes"),
        dbforge::Value::Text("a; b|it's!".into())
    );

    s.cmd()
        .args(["import", &db, "--sql", "-", "-o", "ndjson"])
        .write_stdin("INSERT INTO notes (body) VALUES ('from stdin');")
        .assert()
        .success()
        .stdout("{\"statements\":1,\"rows_affected\":1}\n");

    // A failing statement rolls the whole script back (SQLite) and is reported.
    let out = s
        .cmd()
        .args(["import", &db, "--sql", "-", "--color", "never"])
        .write_stdin("CREATE TABLE more (x INTEGER);\nINSERT INTO nope VALUES (1);\n")
        .output()
        .expect("run import");
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
    assert_eq!(
        s.scalar(
            &db,
            "SELECT count(*) FROM sqlite_schema WHERE name = 'more'"
        ),
        dbforge::Value::Int(0)
    );
    s.cmd()
        .args(["import", &db, "--sql", "/no/such/file.sql"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read /no/such/file.sql"));
}

#[test]
fn dump_replays_into_a_fresh_database_with_the_same_rows() {
    let s = Server::start();
    let db = people(&s);
    s.exec(&db, "CREATE INDEX people_name ON people (name)");
    s.exec(
        &db,
        "CREATE TABLE visits (id INTEGER PRIMARY KEY AUTOINCREMENT, \
         person INTEGER NOT NULL REFERENCES people (id), at TEXT DEFAULT 'now', data BLOB)",
    );
    s.exec(
        &db,
        "INSERT INTO visits (person, data) VALUES (1, x'00ff10'), (2, NULL), (1, x'')",
    );
    s.exec(&db, "DELETE FROM visits WHERE id = 3");
    s.exec(
        &db,
        "CREATE VIEW busy AS SELECT person, count(*) AS n FROM visits GROUP BY person",
    );

    let out = s.cmd().args(["dump", &db]).output().expect("run dump");
    assert!(out.status.success(), "{}", stderr(&out));
    let dump = stdout(&out);
    assert!(dump.contains("CREATE TABLE"), "{dump}");
    assert!(dump.contains("INSERT INTO"), "{dump}");
    assert!(!dump.to_uppercase().contains("BEGIN TRANSACTION"), "{dump}");

    let copy = s.db("people-restored");
    s.cmd()
        .args(["import", &copy, "--sql", "-", "-o", "json"])
        .write_stdin(dump.clone())
        .assert()
        .success();
    for sql in [
        "SELECT * FROM people ORDER BY id",
        "SELECT * FROM visits ORDER BY id",
        "SELECT * FROM busy ORDER BY person",
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND name NOT LIKE 'sqlite%'",
    ] {
        assert_eq!(ndjson(&s, &copy, sql), ndjson(&s, &db, sql), "{sql}");
    }
    // The autoincrement state came along: the next id is 4, not 3.
    s.exec(&copy, "INSERT INTO visits (person) VALUES (2)");
    assert_eq!(
        s.scalar(&copy, "SELECT max(id) FROM visits"),
        dbforge::Value::Int(4)
    );

    // --schema-only: the structure, no rows.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("schema.sql");
    s.cmd()
        .args(["dump", &db, "--schema-only", "--out"])
        .arg(&file)
        .assert()
        .success();
    let schema = std::fs::read_to_string(&file).expect("read dump");
    assert!(schema.contains("CREATE TABLE"), "{schema}");
    assert!(!schema.contains("INSERT INTO"), "{schema}");
    let empty = s.db("people-empty");
    s.cmd()
        .args(["import", &empty, "--sql"])
        .arg(&file)
        .assert()
        .success();
    assert_eq!(
        s.scalar(&empty, "SELECT count(*) FROM people"),
        dbforge::Value::Int(0)
    );
}

#[test]
fn export_progress_counts_rows_on_a_terminal_stderr_only() {
    let s = Server::start();
    let db = s.db("export-progress");
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 300000) \
               SELECT x, 'padding padding padding' AS p FROM c";
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("big.csv");
    // Both streams on the terminal, the file elsewhere: the counter shows on stderr.
    let mut cmd = s.std_cmd();
    cmd.args(["export", &db, "--query", sql, "--color", "never", "--out"])
        .arg(&file);
    let mut pty = Pty::spawn(cmd);
    let seen = pty.expect_eof();
    assert!(seen.contains("rows exported"), "{seen:?}");
    assert!(seen.contains("exported 300000 rows to"), "{seen:?}");
    assert_eq!(pty.exit_code(), 0);
    let csv = std::fs::read_to_string(&file).expect("csv written");
    assert_eq!(csv.lines().count(), 300_001);
    // In a pipe there is no indicator at all.
    let out = s
        .cmd()
        .args(["export", &db, "--query", sql])
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out), csv);
}

/// `-o PATH` names the file of an export or a dump (`dbforge export DB --table T --format csv
/// -o out.csv`); elsewhere, and next to `--out`, a path is a usage error, and a misspelt format
/// stays one.
#[test]
fn dash_o_with_a_path_writes_the_export_file() {
    let s = Server::start();
    let db = people(&s);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("out.csv");
    s.cmd()
        .args(["export", &db, "--table", "people", "--format", "csv", "-o"])
        .arg(&file)
        .args(["--color", "never"])
        .assert()
        .success()
        .stdout("")
        .stderr(format!("exported 4 rows to {}\n", file.display()));
    assert!(
        std::fs::read_to_string(&file)
            .expect("read export")
            .starts_with("id,name,note,score\r\n")
    );
    let dump = dir.path().join("dump.sql");
    s.cmd()
        .args(["dump", &db, "-o"])
        .arg(&dump)
        .assert()
        .success()
        .stdout("");
    assert!(
        std::fs::read_to_string(&dump)
            .expect("read dump")
            .contains("CREATE TABLE")
    );
    s.cmd()
        .args(["sql", &db, "SELECT 1", "-o", "x.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("only for export and dump"));
    s.cmd()
        .args([
            "export", &db, "--table", "people", "-o", "a.csv", "--out", "b.csv",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("give the file once"));
    s.cmd()
        .args(["sql", &db, "SELECT 1", "-o", "jsn"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected one of table, json"));
}

/// `-o json` on an export names the file format (the output of an export is the file), so it is
/// taken as `--format json`, never a silent CSV; a format the file cannot have, a second format
/// that disagrees, and a format word on `dump` (which writes a script) are usage errors naming
/// the flag meant.
#[test]
fn dash_o_with_a_format_word_sets_the_export_format_or_names_the_flag() {
    let s = Server::start();
    let db = people(&s);
    let out = s
        .cmd()
        .args(["export", &db, "--table", "people", "-o", "json"])
        .output()
        .expect("run export");
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("a JSON document");
    assert_eq!(rows.as_array().map(Vec::len), Some(4), "{rows}");
    let out = s
        .cmd()
        .args(["export", &db, "--table", "people", "-o", "ndjson"])
        .output()
        .expect("run export");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 4);
    for line in stdout(&out).lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("an NDJSON line");
    }
    // The same format twice is no conflict.
    s.cmd()
        .args(["export", &db, "-t", "people", "-F", "csv", "-o", "csv"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("id,name,note,score\r\n"));
    s.cmd()
        .args(["export", &db, "--table", "people", "-o", "table"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("--format csv|json|ndjson"));
    s.cmd()
        .args([
            "export", &db, "-t", "people", "--format", "csv", "-o", "json",
        ])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("--format csv and -o json"));
    s.cmd()
        .args(["dump", &db, "-o", "json"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("--out"));
}
