//! `dbforge db create|list|show|rm`.

use predicates::prelude::*;

use crate::harness::{Pty, Server, stdout, unique, without_time};

#[test]
fn create_list_show_and_remove() {
    let s = Server::start();
    let name = unique("life");
    s.cmd()
        .args([
            "db", "create", &name, "--label", "env=test", "-l", "team=cli",
        ])
        .args(["-o", "table", "--color", "never"])
        .assert()
        .success()
        .stdout(format!("created database {name} (sqlite)\n"));
    // Again: ALREADY_EXISTS, unless --if-not-exists.
    s.cmd()
        .args(["db", "create", &name])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("hint: pass --if-not-exists"));
    s.cmd()
        .args([
            "db",
            "create",
            &name,
            "--if-not-exists",
            "-o",
            "table",
            "--color",
            "never",
        ])
        .assert()
        .success()
        .stdout(format!("database {name} exists already (sqlite)\n"));
    let other = s.db("other");

    // Listing filters by label; machine formats carry every field.
    let out = s
        .cmd()
        .args(["db", "list", "--label", "env=test", "-o", "ndjson"])
        .output()
        .expect("run");
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["name"], name.as_str());
    assert_eq!(lines[0]["backend"], "sqlite");
    assert_eq!(lines[0]["status"], "ready");
    assert_eq!(
        lines[0]["labels"],
        serde_json::json!({"env": "test", "team": "cli"})
    );
    assert!(lines[0]["size_bytes"].is_i64());
    assert!(
        lines[0]["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    let out = s
        .cmd()
        .args([
            "db",
            "list",
            "--backend",
            "sqlite",
            "-o",
            "table",
            "--color",
            "never",
        ])
        .output()
        .expect("run");
    let table = without_time(&stdout(&out));
    assert!(table.contains(&format!("│ {name} ")) && table.contains(&format!("│ {other} ")));
    assert!(table.contains("env=test, team=cli"), "{table}");
    assert!(table.ends_with("2 rows\n"), "{table}");
    s.cmd()
        .args(["db", "ls", "--backend", "postgres", "-o", "csv"])
        .assert()
        .success()
        .stdout("name,backend,status,size_bytes,created_at,last_accessed_at,labels\r\n");

    let out = s
        .cmd()
        .args(["db", "show", &name, "-o", "table", "--color", "never"])
        .output()
        .expect("run");
    let shown = stdout(&out);
    assert!(
        shown.starts_with(&format!(
            "name                 {name}\nbackend              sqlite\nstatus               ready\n"
        )),
        "{shown}"
    );
    assert!(
        shown.contains("\nlabels               env=test, team=cli\nexpire_at            NULL\nidle_ttl_seconds     NULL\nbackup_before_prune  false\n"),
        "{shown}"
    );
    assert!(
        shown.contains("\ncapabilities         sql, transactions, sessions,"),
        "{shown}"
    );
    assert!(shown.ends_with("\nplaceholder          ?\n"), "{shown}");
    let out = s
        .cmd()
        .args(["db", "show", &name, "-o", "json"])
        .output()
        .expect("run");
    let obj: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(obj["capabilities"]["sql"], true);
    assert_eq!(obj["capabilities"]["key_value"], false);

    s.cmd()
        .args([
            "db", "rm", &name, "--yes", "-o", "table", "--color", "never",
        ])
        .assert()
        .success()
        .stdout(format!("deleted database {name}\n"));
    assert!(!s.exists(&name));
    s.cmd()
        .args(["db", "rm", &name, "--yes"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("dbforge db list"));
    s.cmd()
        .args(["db", "rm", &name, "--yes", "--if-exists", "-o", "ndjson"])
        .assert()
        .success()
        .stdout(format!("{{\"name\":\"{name}\",\"deleted\":false}}\n"));
}

#[test]
fn rm_without_a_terminal_needs_yes() {
    let s = Server::start();
    let name = s.db("keep");
    s.cmd()
        .args(["db", "rm", &name])
        .write_stdin("y\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "stdin is not a terminal; pass --yes",
        ));
    assert!(s.exists(&name));
}

#[test]
fn rm_asks_on_a_terminal() {
    let s = Server::start();
    let name = s.db("ask");
    let mut cmd = s.std_cmd();
    cmd.env("NO_COLOR", "1").args(["db", "rm", &name]);
    let mut pty = Pty::spawn(cmd);
    pty.expect(&format!("Delete database {name} and all its data? [y/N] "));
    pty.line("n");
    pty.expect(&format!("error: database {name} not deleted"));
    pty.expect_eof();
    assert_eq!(pty.exit_code(), 1);
    assert!(s.exists(&name));

    let mut cmd = s.std_cmd();
    cmd.env("NO_COLOR", "1").args(["db", "rm", &name]);
    let mut pty = Pty::spawn(cmd);
    pty.expect("[y/N] ");
    pty.line("yes");
    pty.expect(&format!("deleted database {name}"));
    pty.expect_eof();
    assert_eq!(pty.exit_code(), 0);
    assert!(!s.exists(&name));
}

#[test]
fn fork_copies_a_database_that_then_goes_its_own_way() {
    let s = Server::start();
    let src = s.db("fork-src");
    s.exec(&src, "CREATE TABLE t (x INTEGER)");
    s.exec(&src, "INSERT INTO t VALUES (1), (2)");
    let copy = unique("fork-copy");
    s.cmd()
        .args(["fork", &src, &copy, "--label", "why=test"])
        .args(["-o", "table", "--color", "never"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!(
            "forked {src} into new database {copy} (sqlite, sqlite-backup-api, "
        )));
    s.exec(&src, "INSERT INTO t VALUES (3)");
    assert_eq!(
        s.scalar(&copy, "SELECT count(*) FROM t"),
        dbforge::Value::Int(2)
    );
    let out = s
        .cmd()
        .args(["db", "show", &copy, "-o", "json"])
        .output()
        .expect("run");
    let shown: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(shown["labels"], serde_json::json!({"why": "test"}));

    // Machine formats carry the source and the method.
    let again = unique("fork-json");
    let out = s
        .cmd()
        .args(["fork", &src, &again, "-o", "json"])
        .output()
        .expect("run");
    let forked: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(forked["name"], again.as_str());
    assert_eq!(forked["source"], src.as_str());
    assert_eq!(forked["method"], "sqlite-backup-api");

    // The name is taken now (ALREADY_EXISTS exits 4); an unknown source is NOT_FOUND.
    s.cmd().args(["fork", &src, &copy]).assert().code(4);
    s.cmd()
        .args(["fork", &unique("nope"), &unique("fork-x")])
        .assert()
        .failure()
        .stderr(predicate::str::contains("not found"));
}

#[test]
fn create_with_ttls_then_update_them() {
    let s = Server::start();
    let name = unique("ttl");
    s.cmd()
        .args([
            "db",
            "create",
            &name,
            "--ttl",
            "1h",
            "--idle-ttl",
            "30m",
            "--backup-before-prune",
        ])
        .assert()
        .success();
    let show = |s: &Server| {
        let out = s
            .cmd()
            .args(["db", "show", &name, "-o", "json"])
            .output()
            .expect("run");
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).expect("json")
    };
    let obj = show(&s);
    assert!(obj["expire_at"].is_string(), "{obj}");
    assert_eq!(obj["idle_ttl_seconds"], 1800);
    assert_eq!(obj["backup_before_prune"], true);
    let out = s
        .cmd()
        .args([
            "db",
            "update",
            &name,
            "--clear-ttl",
            "--idle-ttl",
            "2h",
            "--backup-before-prune",
            "false",
            "--label",
            "team=a",
            "-o",
            "json",
        ])
        .output()
        .expect("run");
    let obj: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert!(obj["expire_at"].is_null(), "{obj}");
    assert_eq!(obj["idle_ttl_seconds"], 7200);
    assert_eq!(obj["backup_before_prune"], false);
    assert_eq!(obj["labels"], serde_json::json!({"team": "a"}));
    assert_eq!(show(&s)["idle_ttl_seconds"], 7200);
    // Conflicting flags are a usage error; a TTL in the past is the server's INVALID_ARGUMENT.
    s.cmd()
        .args(["db", "update", &name, "--ttl", "1h", "--clear-ttl"])
        .assert()
        .code(2);
    s.cmd()
        .args(["db", "update", &name, "--expire-at", "2000-01-01T00:00:00Z"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("expire_at"));
}

#[test]
fn watch_prints_events_and_resumes_from_a_sequence() {
    let s = Server::start();
    let (a, b) = (unique("wa"), unique("wb"));
    for n in [&a, &b] {
        s.cmd()
            .args(["db", "create", n, "--label", "w=cli"])
            .assert()
            .success();
    }
    // From the start of the log: both creates, in order, with consecutive sequences.
    let out = s
        .cmd()
        .args([
            "watch", "--since", "0", "--label", "w=cli", "--count", "2", "-o", "ndjson",
        ])
        .output()
        .expect("run");
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["type"], "created");
    assert_eq!(events[0]["database"], a.as_str());
    assert_eq!(events[1]["database"], b.as_str());
    let first = events[0]["sequence"].as_i64().expect("sequence");
    assert_eq!(events[1]["sequence"].as_i64(), Some(first + 1));
    // Resuming after the first gives the second.
    let out = s
        .cmd()
        .args([
            "watch",
            "--since",
            &first.to_string(),
            "--label",
            "w=cli",
            "--count",
            "1",
            "-o",
            "ndjson",
        ])
        .output()
        .expect("run");
    let again: serde_json::Value =
        serde_json::from_str(stdout(&out).trim()).expect("one json line");
    assert_eq!(again["database"], b.as_str());
}

#[test]
fn materialize_maps_a_sql_database_into_a_graph_database() {
    let s = Server::start();
    let Some(kb) = s.graph_db("mat-kb") else {
        return;
    };
    let src = s.db("mat-src");
    s.exec(
        &src,
        "CREATE TABLE dept (id INTEGER PRIMARY KEY, name TEXT)",
    );
    s.exec(
        &src,
        "CREATE TABLE emp (id INTEGER PRIMARY KEY, dept_id INTEGER REFERENCES dept (id))",
    );
    s.exec(&src, "INSERT INTO dept VALUES (1, 'R&D')");
    s.exec(&src, "INSERT INTO emp VALUES (7, 1)");
    // dept: type, id, name; emp: type, id, dept_id, the link.
    s.cmd()
        .args(["materialize", &src, &kb, "-o", "table", "--color", "never"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!(
            "materialized {src} into {kb}: 7 triples from 2 tables (dept 1 row, emp 1 row) \
             under <urn:dbforge:{src}/>, "
        )));
    let link = format!(
        "SELECT (COUNT(*) AS ?n) WHERE {{ <urn:dbforge:{src}/emp/id=7> \
         <urn:dbforge:{src}/emp#ref-dept_id> <urn:dbforge:{src}/dept/id=1> }}"
    );
    assert_eq!(s.scalar(&kb, &link), dbforge::Value::Int(1));

    let out = s
        .cmd()
        .args([
            "materialize",
            &src,
            &kb,
            "--replace",
            "--graph",
            "http://example.com/g",
        ])
        .args(["--base-iri", "http://example.com/", "-o", "json"])
        .output()
        .expect("run");
    let done: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(done["triples"], 7);
    assert_eq!(done["base_iri"], "http://example.com/");
    assert_eq!(done["graph"], "http://example.com/g");
    assert_eq!(
        done["tables"],
        serde_json::json!([
            {"table": "dept", "rows": 1, "triples": 3},
            {"table": "emp", "rows": 1, "triples": 4}
        ])
    );
    // A SQL database is no target: INVALID_ARGUMENT exits 5.
    s.cmd().args(["materialize", &src, &src]).assert().code(5);
}
