//! `dbforge policy set|list|delete`, `db update --max-bytes` and `fork --ttl` against a live
//! gateway (SQLite databases, no authentication).

use crate::harness::{Server, stderr, stdout, unique};

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

#[test]
fn policies_are_set_listed_and_deleted_and_quotas_shown() {
    let s = Server::start();
    let name = unique("clipol");
    let set = json(
        &s.cmd()
            .args([
                "policy",
                "set",
                &name,
                "--pattern",
                &format!("{name}-*"),
                "--max-age",
                "1d",
                "--idle-ttl",
                "1h",
                "--max-bytes",
                "1048576",
                "-o",
                "json",
            ])
            .output()
            .expect("run"),
    );
    assert_eq!(set["created"], true, "{set}");
    assert_eq!(set["max_age"], "1day", "{set}");
    assert_eq!(set["max_bytes"], 1_048_576, "{set}");
    let listed = s
        .cmd()
        .args(["policy", "list", "-o", "ndjson"])
        .output()
        .expect("run");
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(stdout(&listed).contains(&name), "{}", stdout(&listed));
    // A policy without rules is a usage error before any call.
    let bad = s
        .cmd()
        .args(["policy", "set", "x", "--pattern", "x-*"])
        .output()
        .expect("run");
    assert!(!bad.status.success());

    let db = s.db("quota");
    let shown = json(
        &s.cmd()
            .args(["db", "update", &db, "--max-bytes", "200000", "-o", "json"])
            .output()
            .expect("run"),
    );
    assert_eq!(
        (
            &shown["max_bytes"],
            &shown["quota_source"],
            &shown["over_quota"]
        ),
        (
            &serde_json::json!(200000),
            &serde_json::json!("database"),
            &serde_json::json!(false)
        ),
        "{shown}"
    );
    let fork = unique("clifork");
    let forked = json(
        &s.cmd()
            .args([
                "fork",
                &db,
                &fork,
                "--ttl",
                "2h",
                "--idle-ttl",
                "20m",
                "-o",
                "json",
            ])
            .output()
            .expect("run"),
    );
    assert!(!forked["expire_at"].is_null(), "{forked}");

    let deleted = json(
        &s.cmd()
            .args(["policy", "delete", &name, "-o", "json"])
            .output()
            .expect("run"),
    );
    assert_eq!(deleted["deleted"], true);
    let missing = s
        .cmd()
        .args(["policy", "delete", &name])
        .output()
        .expect("run");
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("not found"),
        "{}",
        stderr(&missing)
    );
}
