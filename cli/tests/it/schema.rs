//! `dbforge schema` and `dbforge explain` against a live gateway (SQLite databases).

use crate::harness::{Server, stderr, stdout};

fn app(s: &Server) -> String {
    let db = s.db("schema");
    s.exec(
        &db,
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER DEFAULT 0)",
    );
    s.exec(
        &db,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, person INTEGER REFERENCES people (id), \
         total REAL)",
    );
    s.exec(&db, "CREATE INDEX orders_person ON orders (person)");
    s.exec(
        &db,
        "INSERT INTO people (name, age) VALUES ('Ada', 36), ('Alan', 41)",
    );
    db
}

#[test]
fn schema_prints_the_gateway_rendering_with_the_columns() {
    let s = Server::start();
    let db = app(&s);
    let out = s.cmd().args(["schema", &db]).output().expect("run schema");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // Text even when stdout is a pipe: a schema is read, not processed row by row.
    assert!(text.contains("CREATE TABLE people ("), "{text}");
    assert!(text.contains("  id INTEGER PRIMARY KEY"), "{text}");
    assert!(text.contains("  name TEXT NOT NULL"), "{text}");
    assert!(text.contains("  age INTEGER DEFAULT 0"), "{text}");
    assert!(text.contains("CREATE TABLE orders ("), "{text}");
    assert!(
        text.contains("FOREIGN KEY (person) REFERENCES people (id)"),
        "{text}"
    );
    assert!(
        text.contains("CREATE INDEX orders_person ON orders (person);"),
        "{text}"
    );

    // One table only.
    let out = s
        .cmd()
        .args(["schema", &db, "people"])
        .output()
        .expect("run schema");
    let text = stdout(&out);
    assert!(text.contains("CREATE TABLE people ("), "{text}");
    assert!(!text.contains("orders"), "{text}");

    s.cmd()
        .args(["schema", &db, "nope", "--color", "never"])
        .assert()
        .code(3);
}

#[test]
fn schema_as_json_has_the_structure() {
    let s = Server::start();
    let db = app(&s);
    let out = s
        .cmd()
        .args(["schema", &db, "-o", "json"])
        .output()
        .expect("run schema");
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let tables = v["tables"].as_array().expect("tables");
    let names: Vec<&str> = tables.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["orders", "people"]);
    let people = &tables[1];
    assert_eq!(people["kind"], "table");
    assert_eq!(people["primary_key"], serde_json::json!(["id"]));
    assert_eq!(people["row_estimate"], 2);
    let columns: Vec<(&str, &str, bool)> = people["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default(),
                c["kind"].as_str().unwrap_or_default(),
                c["nullable"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("id", "int", false),
            ("name", "text", false),
            ("age", "int", true)
        ]
    );
    assert_eq!(people["columns"][2]["default_expression"], "0");
    let fk = &tables[0]["foreign_keys"][0];
    assert_eq!(fk["referenced_table"], "people");
    assert_eq!(fk["columns"], serde_json::json!(["person"]));
    assert!(
        v["text"]
            .as_str()
            .is_some_and(|t| t.contains("CREATE TABLE"))
    );
}

#[test]
fn explain_prints_the_plan_and_warns_about_full_scans() {
    let s = Server::start();
    let db = app(&s);
    let out = s
        .cmd()
        .args([
            "explain",
            &db,
            "SELECT * FROM people WHERE name = ?",
            "-p",
            "Ada",
        ])
        .args(["--color", "never"])
        .output()
        .expect("run explain");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("SCAN people"), "{text}");
    assert!(text.contains("[full scan]"), "{text}");
    assert!(text.ends_with("warning: full scan of people\n"), "{text}");

    // An index lookup is no full scan.
    let out = s
        .cmd()
        .args(["explain", &db, "SELECT * FROM orders WHERE person = 1"])
        .args(["--color", "never"])
        .output()
        .expect("run explain");
    let text = stdout(&out);
    assert!(text.contains("orders_person"), "{text}");
    assert!(!text.contains("warning"), "{text}");

    // A join nests; JSON carries the tree and the list.
    let out = s
        .cmd()
        .args([
            "explain",
            &db,
            "SELECT p.name, o.total FROM people p JOIN orders o ON o.person = p.id",
            "-o",
            "json",
        ])
        .output()
        .expect("run explain");
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert!(v["nodes"].as_array().is_some_and(|n| !n.is_empty()), "{v}");
    assert!(v["raw"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
    assert!(
        v["full_scans"]
            .as_array()
            .is_some_and(|f| f.iter().any(|t| t == "people" || t == "orders")),
        "{v}"
    );

    // Bad SQL is the gateway's message; --analyze is not available on SQLite.
    let out = s
        .cmd()
        .args(["explain", &db, "SELEC 1", "--color", "never"])
        .output()
        .expect("run explain");
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("syntax error"), "{}", stderr(&out));
    s.cmd()
        .args(["explain", &db, "SELECT 1", "--analyze"])
        .assert()
        .code(10);
}
