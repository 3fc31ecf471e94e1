//! `dbforge table create` and `dbforge rows insert|select|update|delete`.

use predicates::prelude::*;

use crate::harness::{Server, stdout, without_time};

fn tasks(s: &Server) -> String {
    let db = s.db("tasks");
    s.cmd()
        .args(["table", "create", &db, "tasks"])
        .args([
            "--column",
            "id:integer:pk",
            "--column",
            "title:text:notnull",
        ])
        .args([
            "-c",
            "done:bool:default=false",
            "-c",
            "prio:int",
            "-o",
            "table",
            "--color",
            "never",
        ])
        .assert()
        .success()
        .stdout("created table tasks\n");
    db
}

#[test]
fn table_create_and_rows_round_trip() {
    let s = Server::start();
    let db = tasks(&s);
    s.cmd()
        .args([
            "table",
            "create",
            &db,
            "tasks",
            "-c",
            "id:integer",
            "--if-not-exists",
            "-o",
            "ndjson",
        ])
        .assert()
        .success()
        .stdout("{\"table\":\"tasks\",\"created\":false}\n");
    s.cmd()
        .args(["table", "create", &db, "tasks", "-c", "id:integer"])
        .assert()
        .code(4);

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rows.json");
    std::fs::write(
        &file,
        r#"[{"title": "write docs", "prio": 2},
            {"title": "ship", "done": true, "prio": 1},
            {"title": "celebrate", "prio": 3}]"#,
    )
    .expect("write rows");
    s.cmd()
        .args(["rows", "insert", &db, "tasks", "--json"])
        .arg(&file)
        .args(["-o", "table", "--color", "never"])
        .assert()
        .success()
        .stdout("inserted 3 rows into tasks\n");

    let select = |args: &[&str]| {
        let out = s
            .cmd()
            .args([
                "rows", "select", &db, "tasks", "-o", "table", "--color", "never",
            ])
            .args(args)
            .output()
            .expect("run");
        assert!(out.status.success());
        without_time(&stdout(&out))
    };
    assert_eq!(
        select(&["--where", "done=false", "--order-by", "-prio"]),
        "\
┌────┬────────────┬───────┬──────┐
│ id │ title      │ done  │ prio │
├────┼────────────┼───────┼──────┤
│  3 │ celebrate  │ false │    3 │
│  1 │ write docs │ false │    2 │
└────┴────────────┴───────┴──────┘
2 rows
"
    );
    assert_eq!(
        select(&[
            "-w",
            "title like %s%",
            "-w",
            "prio >= 2",
            "-c",
            "title,prio"
        ]),
        "\
┌────────────┬──────┐
│ title      │ prio │
├────────────┼──────┤
│ write docs │    2 │
└────────────┴──────┘
1 row
"
    );
    s.cmd()
        .args([
            "rows",
            "select",
            &db,
            "tasks",
            "--order-by",
            "prio:asc",
            "--limit",
            "2",
        ])
        .args(["--offset", "1", "-c", "id", "-o", "csv"])
        .assert()
        .success()
        .stdout("id\r\n1\r\n3\r\n");

    s.cmd()
        .args([
            "rows",
            "update",
            &db,
            "tasks",
            "--set",
            "done=true",
            "--set",
            "prio=0",
        ])
        .args(["--where", "id in 1,3", "-o", "table", "--color", "never"])
        .assert()
        .success()
        .stdout("updated 2 rows\n");
    s.cmd()
        .args([
            "rows", "select", &db, "tasks", "-w", "prio=0", "-c", "id", "-o", "ndjson",
        ])
        .assert()
        .success()
        .stdout("{\"id\":1}\n{\"id\":3}\n");
    s.cmd()
        .args([
            "rows",
            "delete",
            &db,
            "tasks",
            "--where",
            "prio is not null",
            "-w",
            "prio<1",
        ])
        .args(["-o", "ndjson"])
        .assert()
        .success()
        .stdout("{\"rows_affected\":2}\n");
    s.cmd()
        .args([
            "rows",
            "update",
            &db,
            "tasks",
            "--set",
            "title=text:42",
            "--all",
            "-o",
            "ndjson",
        ])
        .assert()
        .success()
        .stdout("{\"rows_affected\":1}\n");
    s.cmd()
        .args([
            "rows", "select", &db, "tasks", "-c", "title", "-o", "ndjson",
        ])
        .assert()
        .success()
        .stdout("{\"title\":\"42\"}\n");
    s.cmd()
        .args(["rows", "delete", &db, "tasks", "--all", "-o", "ndjson"])
        .assert()
        .success()
        .stdout("{\"rows_affected\":1}\n");
}

#[test]
fn insert_reads_ndjson_from_stdin_in_batches() {
    let s = Server::start();
    let db = tasks(&s);
    let ndjson: String = (1..=5)
        .map(|i| format!("{{\"title\": \"t{i}\", \"prio\": {i}}}\n"))
        .collect();
    s.cmd()
        .args([
            "rows",
            "insert",
            &db,
            "tasks",
            "--batch-size",
            "2",
            "-o",
            "ndjson",
        ])
        .write_stdin(ndjson)
        .assert()
        .success()
        .stdout("{\"rows_inserted\":5}\n");
    assert_eq!(
        s.scalar(&db, "SELECT sum(prio) FROM tasks"),
        dbforge::Value::Int(15)
    );
    // A failing batch: the earlier ones stay, and the user is told so.
    let bad = "{\"title\": \"ok\"}\n{\"title\": \"ok2\"}\n{\"title\": null}\n";
    s.cmd()
        .args(["rows", "insert", &db, "tasks", "--batch-size", "2"])
        .write_stdin(bad)
        .assert()
        .code(8)
        .stderr(predicate::str::contains(
            "2 rows were inserted by earlier batches",
        ))
        .stderr(predicate::str::contains("[NOT_NULL_VIOLATION]"));
    assert_eq!(
        s.scalar(&db, "SELECT count(*) FROM tasks"),
        dbforge::Value::Int(7)
    );
}

#[test]
fn bad_rows_and_missing_filters_are_refused() {
    let s = Server::start();
    let db = tasks(&s);
    s.cmd()
        .args(["rows", "insert", &db, "tasks"])
        .write_stdin("{\"title\": \"a\"}\n{not json\n")
        .assert()
        .code(5)
        .stderr(predicate::str::starts_with("error: line 2: invalid JSON"));
    s.cmd()
        .args([
            "rows",
            "insert",
            &db,
            "tasks",
            "--json",
            "/nonexistent/rows.json",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot read /nonexistent/rows.json",
        ));
    // Update and delete need --where or --all, and not both.
    s.cmd()
        .args(["rows", "delete", &db, "tasks"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("<--where <COND>|--all>"));
    s.cmd()
        .args([
            "rows", "update", &db, "tasks", "--set", "prio=1", "--all", "-w", "id=1",
        ])
        .assert()
        .code(2);
    s.cmd()
        .args(["rows", "select", &db, "tasks", "--where", "prio"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected COLUMN OP VALUE"));
    s.cmd()
        .args(["table", "create", &db, "t2", "-c", "id:uuidish"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown column type"));
    // A table the database lacks is the server's INVALID_ARGUMENT.
    s.cmd()
        .args(["rows", "select", &db, "no_such_table"])
        .assert()
        .code(5);
}
