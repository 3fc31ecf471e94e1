//! `dbforge key create|list|revoke`, `whoami`, `audit list|verify` and `stats` against a live
//! gateway (AccessService and OperationsService, admin key).

use predicates::prelude::*;

use crate::harness::{Server, stderr, stdout};

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

#[test]
fn a_key_is_created_with_its_secret_once_listed_used_and_revoked() {
    let s = Server::start();
    let created = json(
        &s.cmd()
            .args(["key", "create", "agent 42", "--can-create", "--quota", "3"])
            .args(["--grant", "owner:agent-42-*", "--grant", "read:reports"])
            .args(["--grant", "write:team=search", "--expires-in", "30d"])
            .args(["-o", "json"])
            .output()
            .expect("run"),
    );
    let id = created["id"].as_str().expect("id").to_owned();
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with(&format!("dbf_{id}_")), "{created}");
    assert_eq!(created["name"], "agent 42");
    assert_eq!(created["admin"], false);
    assert_eq!(created["can_create"], true);
    assert_eq!(created["create_quota"], 3);
    assert_eq!(
        created["grants"],
        serde_json::json!([
            {"role": "owner", "pattern": "agent-42-*"},
            {"role": "read", "database": "reports"},
            {"role": "write", "labels": {"team": "search"}}
        ])
    );
    assert!(created["expires_at"].is_string(), "{created}");
    assert!(created["revoked_at"].is_null(), "{created}");

    // The new key describes itself; the listing shows it without the secret.
    let me = json(
        &s.cmd()
            .env("DBFORGE_API_KEY", &secret)
            .args(["whoami", "-o", "json"])
            .output()
            .expect("run"),
    );
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["name"], "agent 42");
    let out = s
        .cmd()
        .args([
            "key", "list", "-o", "table", "--color", "never", "--width", "200",
        ])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.contains("│ id "), "{table}");
    assert!(table.contains(&id), "{table}");
    assert!(
        table.contains("owner:agent-42-*, read:reports, write:team=search"),
        "{table}"
    );
    assert!(!table.contains(&secret), "{table}");
    let out = s
        .cmd()
        .args(["whoami", "-o", "table", "--color", "never"])
        .output()
        .expect("run");
    assert!(
        stdout(&out).contains("admin         true"),
        "{}",
        stdout(&out)
    );

    // Table format says the secret is shown once.
    s.cmd()
        .args([
            "key", "create", "ops", "--admin", "-o", "table", "--color", "never",
        ])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("created key ops (id "))
        .stdout(predicate::str::contains("\nsecret  dbf_"))
        .stdout(predicate::str::contains(
            "store the secret now: it is not shown again",
        ));

    // Revoked: the key stops working at once; a second revoke says so.
    let revoked = json(
        &s.cmd()
            .args(["key", "revoke", &id, "-o", "json"])
            .output()
            .expect("run"),
    );
    assert_eq!(revoked, serde_json::json!({"id": id, "revoked": true}));
    s.cmd()
        .env("DBFORGE_API_KEY", &secret)
        .args(["whoami"])
        .assert()
        .code(6);
    s.cmd()
        .args(["key", "revoke", &id, "-o", "table", "--color", "never"])
        .assert()
        .success()
        .stdout(format!("key {id} was revoked already\n"));
    let listed = s
        .cmd()
        .args(["key", "list", "-o", "ndjson"])
        .output()
        .expect("run");
    assert!(!stdout(&listed).contains(&id), "{}", stdout(&listed));
    let listed = s
        .cmd()
        .args(["key", "list", "--all", "-o", "ndjson"])
        .output()
        .expect("run");
    let line = stdout(&listed)
        .lines()
        .find(|l| l.contains(&id))
        .map(str::to_owned)
        .expect("the revoked key with --all");
    let key: serde_json::Value = serde_json::from_str(&line).expect("ndjson");
    assert!(key["revoked_at"].is_string(), "{key}");

    // Bad grants are usage errors.
    s.cmd()
        .args(["key", "create", "x", "--grant", "admin:db"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected read, write or owner"));
}

#[test]
fn audit_lists_and_verifies_what_was_done_and_stats_count_calls() {
    let s = Server::start();
    let db = s.db("audited");
    s.cmd()
        .args([
            "sql",
            &db,
            "CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1)",
        ])
        .assert()
        .success();
    let out = s
        .cmd()
        .args(["audit", "list", "--database", &db, "-o", "ndjson"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("ndjson"))
        .collect();
    let statements: Vec<&str> = events
        .iter()
        .filter_map(|e| e["statement"].as_str())
        .collect();
    assert!(
        statements.contains(&"INSERT INTO t VALUES (1)"),
        "{events:?}"
    );
    assert!(
        events.iter().all(|e| e["database"] == db.as_str()),
        "{events:?}"
    );
    assert!(events.iter().all(|e| e["outcome"] == "OK"), "{events:?}");
    let seqs: Vec<i64> = events
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // --limit cuts the listing; a filter that matches nothing lists nothing.
    let out = s
        .cmd()
        .args(["audit", "list", "--limit", "1", "-o", "ndjson"])
        .output()
        .expect("run");
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    s.cmd()
        .args([
            "audit",
            "list",
            "--outcome",
            "not_found",
            "--database",
            &db,
            "-o",
            "json",
        ])
        .assert()
        .success()
        .stdout("[]\n");
    s.cmd()
        .args([
            "audit", "list", "--since", "1h", "--limit", "2", "-o", "table",
        ])
        .args(["--color", "never", "--width", "200"])
        .assert()
        .success()
        .stdout(predicate::str::contains("│ seq │ time"))
        .stdout(predicate::str::contains("2 rows"));

    let verified = json(
        &s.cmd()
            .args(["audit", "verify", "-o", "json"])
            .output()
            .expect("run"),
    );
    assert_eq!(verified["ok"], true);
    assert!(
        verified["checked"].as_i64().expect("checked") >= 2,
        "{verified}"
    );
    s.cmd()
        .args(["audit", "verify", "-o", "table", "--color", "never"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("audit log intact: "));

    let stats = json(&s.cmd().args(["stats", "-o", "json"]).output().expect("run"));
    assert!(
        stats["databases"].as_i64().expect("databases") >= 1,
        "{stats}"
    );
    let rpcs = stats["rpcs"].as_array().expect("rpcs");
    let query = rpcs
        .iter()
        .find(|r| r["rpc"].as_str().is_some_and(|n| n.ends_with("Query")))
        .unwrap_or_else(|| panic!("no Query calls in {stats}"));
    assert!(query["calls"].as_i64().expect("calls") >= 2, "{stats}");
    s.cmd()
        .args(["stats", "-o", "table", "--color", "never", "--width", "200"])
        .assert()
        .success()
        .stdout(predicate::str::contains("active_connections"))
        .stdout(predicate::str::contains("│ rpc "));

    // A key without admin rights is refused.
    let created = json(
        &s.cmd()
            .args([
                "key",
                "create",
                "reader",
                "--grant",
                &format!("read:{db}"),
                "-o",
                "json",
            ])
            .output()
            .expect("run"),
    );
    let secret = created["secret"].as_str().expect("secret");
    for args in [vec!["stats"], vec!["audit", "verify"], vec!["key", "list"]] {
        s.cmd()
            .env("DBFORGE_API_KEY", secret)
            .args(&args)
            .assert()
            .code(6);
    }
}
