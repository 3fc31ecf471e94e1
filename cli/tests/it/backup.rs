//! `dbforge backup create|list|show|restore|rm` and `backup policy set|list|rm` against a live
//! gateway (SQLite databases, the default `local` target in its data directory).

use predicates::prelude::*;

use crate::harness::{Pty, Server, stderr, stdout, unique};

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

/// A database with three notes.
fn notes(s: &Server, prefix: &str) -> String {
    let db = s.db(prefix);
    s.exec(
        &db,
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
    );
    s.exec(
        &db,
        "INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    );
    db
}

fn count(s: &Server, db: &str) -> dbforge::Value {
    s.scalar(db, "SELECT count(*) FROM notes")
}

#[test]
fn a_backup_is_created_listed_shown_restored_in_place_and_deleted() {
    let s = Server::start();
    let db = notes(&s, "bk");
    let backup = json(
        &s.cmd()
            .args(["backup", "create", &db, "--label", "why=test", "-o", "json"])
            .output()
            .expect("run"),
    );
    let id = backup["id"].as_str().expect("id").to_owned();
    assert_eq!(backup["database"], db.as_str());
    assert_eq!(backup["backend"], "sqlite");
    assert_eq!(backup["status"], "completed");
    assert_eq!(backup["rows"], 3);
    assert_eq!(backup["labels"], serde_json::json!({"why": "test"}));
    assert!(backup["size_bytes"].as_i64().expect("size") > 0, "{backup}");
    assert!(backup["error"].is_null(), "{backup}");

    let shown = json(
        &s.cmd()
            .args(["backup", "show", &id, "-o", "json"])
            .output()
            .expect("run"),
    );
    assert_eq!(shown["sha256"].as_str().map(str::len), Some(64), "{shown}");
    assert_eq!(shown["row_counts"], serde_json::json!({"notes": 3}));
    assert_eq!(shown["tables"], 1);

    let listed = json(
        &s.cmd()
            .args(["backup", "list", "--database", &db, "-o", "json"])
            .output()
            .expect("run"),
    );
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], id.as_str());
    let failed = json(
        &s.cmd()
            .args(["backup", "ls", "--database", &db, "--status", "failed"])
            .args(["-o", "json"])
            .output()
            .expect("run"),
    );
    assert_eq!(failed, serde_json::json!([]));

    s.exec(&db, "DELETE FROM notes WHERE id = 2");
    let restored = json(
        &s.cmd()
            .args(["backup", "restore", &id, "--replace", "-o", "json"])
            .output()
            .expect("run"),
    );
    assert_eq!(count(&s, &db), dbforge::Value::Int(3), "the row is back");
    assert_eq!(restored["database"], db.as_str());
    assert_eq!(restored["backup"], id.as_str());
    assert_eq!(restored["rows"], 3);
    let safety = restored["safety_backup"]
        .as_str()
        .expect("REPLACE names its safety backup")
        .to_owned();
    let ids: Vec<String> = json(
        &s.cmd()
            .args(["backup", "list", "--database", &db, "-o", "json"])
            .output()
            .expect("run"),
    )
    .as_array()
    .expect("array")
    .iter()
    .map(|b| b["id"].as_str().expect("id").to_owned())
    .collect();
    assert_eq!(ids, [safety.clone(), id.clone()], "newest first");

    // In a table, one line per backup under the headers.
    let out = s
        .cmd()
        .args(["backup", "list", "--database", &db])
        .args(["-o", "table", "--color", "never", "--width", "250"])
        .output()
        .expect("run");
    let table = stdout(&out);
    assert!(table.contains("│ id "), "{table}");
    assert!(table.contains(&safety) && table.contains(&id), "{table}");
    assert!(table.contains("why=test"), "{table}");
    assert!(table.contains("2 rows"), "{table}");

    // Deleting asks first, and refuses without a terminal to ask on.
    s.cmd()
        .args(["backup", "rm", &id])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pass --yes"));
    s.cmd()
        .args(["backup", "rm", &id, "--yes", "--color", "never"])
        .args(["-o", "table"])
        .assert()
        .success()
        .stdout(format!("deleted backup {id}\n"));
    s.cmd()
        .args(["backup", "show", &id])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("[NOT_FOUND]"));
    s.cmd()
        .args(["backup", "rm", &id, "--yes", "--if-exists", "-o", "json"])
        .assert()
        .success()
        .stdout(format!("{{\"id\":\"{id}\",\"deleted\":false}}\n"));
}

#[test]
fn a_backup_restores_into_a_new_database() {
    let s = Server::start();
    let db = notes(&s, "bk-new");
    let copy = unique("bk-copy");
    let id = json(
        &s.cmd()
            .args(["backup", "create", &db, "-o", "json"])
            .output()
            .expect("run"),
    )["id"]
        .as_str()
        .expect("id")
        .to_owned();
    s.exec(&db, "DELETE FROM notes");
    s.cmd()
        .args([
            "backup", "restore", &id, "--new", &copy, "--label", "from=cli",
        ])
        .args(["-o", "table", "--color", "never"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!(
            "restored backup {id} into new database {copy} (3 rows in "
        )));
    assert_eq!(count(&s, &copy), dbforge::Value::Int(3));
    assert_eq!(
        count(&s, &db),
        dbforge::Value::Int(0),
        "the original is untouched"
    );
    let shown = json(
        &s.cmd()
            .args(["db", "show", &copy, "-o", "json"])
            .output()
            .expect("run"),
    );
    assert_eq!(shown["labels"], serde_json::json!({"from": "cli"}));

    // The name is taken now; --label needs --new; one mode only.
    s.cmd()
        .args(["backup", "restore", &id, "--new", &copy])
        .assert()
        .code(4);
    s.cmd()
        .args(["backup", "restore", &id, "--replace", "--label", "a=b"])
        .assert()
        .code(2);
    s.cmd()
        .args(["backup", "restore", &id, "--replace", "--new", "x"])
        .assert()
        .code(2);
}

#[test]
fn policies_are_set_listed_and_removed() {
    let s = Server::start();
    let db = s.db("bk-policy");
    let set = json(
        &s.cmd()
            .args(["backup", "policy", "set", "app-6h", "--database", &db])
            .args(["--every", "6h", "--keep-last", "10", "--keep-within", "7d"])
            .args(["-o", "json"])
            .output()
            .expect("run"),
    );
    assert_eq!(set["name"], "app-6h");
    assert_eq!(set["created"], true);
    assert_eq!(set["selector"], serde_json::json!({"database": db}));
    assert_eq!(set["schedule"], serde_json::json!({"every": "6h"}));
    assert_eq!(set["keep_last"], 10);
    assert_eq!(set["keep_within"], "7days");
    assert!(set["next_run_at"].is_string(), "{set}");

    s.cmd()
        .args(["backup", "policy", "set", "nightly", "--pattern", "bk-*"])
        .args(["--cron", "0 3 * * *", "--keep-within", "30d"])
        .args(["-o", "table", "--color", "never"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "created policy nightly: pattern bk-* cron 0 3 * * *, keep within 30days",
        ));
    s.cmd()
        .args(["backup", "policy", "set", "app-6h", "--database", &db])
        .args([
            "--every",
            "6h",
            "--keep-last",
            "3",
            "-o",
            "table",
            "--color",
            "never",
        ])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!(
            "replaced policy app-6h: database {db} every 6h, keep last 3"
        )));

    let listed = json(
        &s.cmd()
            .args(["backup", "policy", "list", "-o", "json"])
            .output()
            .expect("run"),
    );
    let names: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["app-6h", "nightly"], "by name");
    assert_eq!(listed[0]["keep_last"], 3);
    assert!(listed[0]["keep_within"].is_null(), "{listed}");
    assert_eq!(
        listed[1]["schedule"],
        serde_json::json!({"cron": "0 3 * * *"})
    );
    let out = s
        .cmd()
        .args(["backup", "policy", "ls", "-o", "table", "--color", "never"])
        .args(["--width", "250"])
        .output()
        .expect("run");
    let table = stdout(&out);
    assert!(table.contains(&format!("database {db}")), "{table}");
    assert!(table.contains("cron 0 3 * * *"), "{table}");

    s.cmd()
        .args([
            "backup", "policy", "rm", "nightly", "-o", "table", "--color", "never",
        ])
        .assert()
        .success()
        .stdout("deleted policy nightly (its backups stay)\n");
    s.cmd()
        .args(["backup", "policy", "rm", "nightly"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("`dbforge backup policy list`"));
    s.cmd()
        .args([
            "backup",
            "policy",
            "rm",
            "nightly",
            "--if-exists",
            "-o",
            "json",
        ])
        .assert()
        .success()
        .stdout("{\"name\":\"nightly\",\"deleted\":false}\n");

    // A selector and a schedule are required; the gateway wants a retention rule.
    s.cmd()
        .args([
            "backup",
            "policy",
            "set",
            "x",
            "--every",
            "1h",
            "--keep-last",
            "1",
        ])
        .assert()
        .code(2);
    s.cmd()
        .args([
            "backup",
            "policy",
            "set",
            "x",
            "--database",
            &db,
            "--keep-last",
            "1",
        ])
        .assert()
        .code(2);
    s.cmd()
        .args([
            "backup",
            "policy",
            "set",
            "x",
            "--database",
            &db,
            "--every",
            "1h",
        ])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("[INVALID_ARGUMENT]"));
}

#[test]
fn an_unknown_backup_is_not_found() {
    let s = Server::start();
    s.cmd()
        .args(["backup", "restore", "bk-000000000000-00000000", "--replace"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("[NOT_FOUND]"))
        .stderr(predicate::str::contains("`dbforge backup list`"));
    s.cmd()
        .args(["backup", "create", "no-such-database"])
        .assert()
        .code(3);
}

#[test]
fn backup_and_restore_show_a_spinner_on_a_terminal() {
    let s = Server::start();
    let db = notes(&s, "bk-tty");
    let mut cmd = s.std_cmd();
    cmd.args(["backup", "create", &db]).env("NO_COLOR", "1");
    let mut pty = Pty::spawn(cmd);
    pty.expect(&format!("backing up {db}:"));
    let rest = pty.expect_eof();
    assert!(rest.contains("created backup bk"), "{rest}");
    assert_eq!(pty.exit_code(), 0);
    let id = rest
        .split("created backup ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the id")
        .to_owned();

    let mut cmd = s.std_cmd();
    cmd.args(["backup", "restore", &id, "--replace"])
        .env("NO_COLOR", "1");
    let mut pty = Pty::spawn(cmd);
    pty.expect(&format!("restoring {id}"));
    let rest = pty.expect_eof();
    assert!(
        rest.contains(&format!("restored {db} from backup {id}")),
        "{rest}"
    );
    assert!(rest.contains("undoes this"), "{rest}");
    assert_eq!(pty.exit_code(), 0);
}
