//! Audit log, metrics and server stats after a known workload.

use std::time::Duration;

use dbforge::{
    ApiKeySpec, AuditEvent, AuditFilter, Backend, Client, ClientOptions, Code, CreateOptions,
    Grant, Role, params,
};

use crate::harness::{
    TestServer, assert_code, mysql_url, postgres_url, redis_url, scrape_metrics, unique,
};

const ADMIN: &str = "ops-admin-key-0123456789abcdefgh";

async fn secured() -> (TestServer, Client) {
    let s = TestServer::with(|mut c| {
        c.insecure_no_auth = false;
        c.admin_key = Some(ADMIN.into());
        c
    })
    .await;
    let admin = key_client(&s, ADMIN).await;
    (s, admin)
}

async fn key_client(s: &TestServer, key: &str) -> Client {
    Client::connect_with(ClientOptions::new(format!("http://{}", s.addr)).api_key(key))
        .await
        .expect("connect")
}

/// The value of one series (exact label text) in a scrape, 0 when absent.
fn series(scrape: &str, name_and_labels: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn all_events(admin: &Client, filter: AuditFilter) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let (page, next) = admin
            .list_audit_events(AuditFilter {
                page_token: token.clone(),
                page_size: 2,
                ..filter.clone()
            })
            .await
            .expect("list");
        assert!(page.len() <= 2);
        out.extend(page);
        match next {
            Some(t) => token = t,
            None => return out,
        }
    }
}

#[tokio::test]
async fn audit_records_every_call_without_secrets_and_detects_tampering() {
    let (s, admin) = secured().await;
    admin
        .create_database("audited", CreateOptions::default())
        .await
        .expect("create");
    admin
        .execute("audited", "CREATE TABLE t (v TEXT)", &[])
        .await
        .expect("ddl");
    admin
        .execute(
            "audited",
            "INSERT INTO t VALUES (?)",
            &params!["param-secret-value"],
        )
        .await
        .expect("insert");
    let (info, reader_key) = admin
        .create_api_key(ApiKeySpec::new("reader").grant(Grant::database("audited", Role::Read)))
        .await
        .expect("key");
    let reader = key_client(&s, &reader_key).await;
    assert_code(
        reader.execute("audited", "DELETE FROM t", &[]).await,
        Code::PermissionDenied,
    );
    let mut rows = reader
        .query("audited", "SELECT * FROM t", &[])
        .await
        .expect("query");
    rows.collect_rows().await.expect("rows");

    // The stream's record is written when it ends, asynchronously.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = all_events(
        &admin,
        AuditFilter {
            database: "audited".into(),
            ..Default::default()
        },
    )
    .await;
    let summary: Vec<(String, String, String)> = events
        .iter()
        .map(|e| (e.rpc.clone(), e.outcome.clone(), e.key_id.clone()))
        .collect();
    let admin_id = "env-admin".to_string();
    assert_eq!(
        summary,
        [
            ("CreateDatabase".into(), "OK".into(), admin_id.clone()),
            ("Execute".into(), "OK".into(), admin_id.clone()),
            ("Execute".into(), "OK".into(), admin_id),
            (
                "Execute".into(),
                "PERMISSION_DENIED".into(),
                info.id.clone()
            ),
            ("Query".into(), "OK".into(), info.id.clone()),
        ]
    );
    let insert = &events[2];
    assert_eq!(insert.statement, "INSERT INTO t VALUES (?)");
    assert_eq!(insert.statement_hash.len(), 64);
    assert_eq!(insert.rows_affected, Some(1));
    let by_reader = all_events(
        &admin,
        AuditFilter {
            key_id: info.id.clone(),
            outcome: "PERMISSION_DENIED".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_reader.len(), 1);
    // Grant changes are audited, secrets and parameters are not.
    let all = all_events(&admin, Default::default()).await;
    assert!(
        all.iter()
            .any(|e| e.rpc == "CreateApiKey" && e.statement.contains(&info.id))
    );
    for e in &all {
        for secret in [reader_key.as_str(), ADMIN, "param-secret-value"] {
            assert!(
                !e.statement.contains(secret),
                "secret in audit record {}",
                e.seq
            );
        }
    }
    // Non-admins cannot read the log.
    assert_code(reader.verify_audit_log().await, Code::PermissionDenied);

    let v = admin.verify_audit_log().await.expect("verify");
    assert!(v.ok, "{v:?}");
    assert!(v.checked >= all.len() as u64);

    // Edit one record behind the server's back: the chain breaks there.
    let target = insert.seq;
    // The catalog stores it as SQLite's INTEGER.
    let row = i64::try_from(target).expect("a small seq");
    let cat = rusqlite::Connection::open(s.data_dir().join("catalog.db")).expect("catalog");
    cat.execute(
        "UPDATE audit SET statement = 'SELECT 1' WHERE seq = ?1",
        [row],
    )
    .expect("tamper");
    let v = admin.verify_audit_log().await.expect("verify");
    assert!(!v.ok);
    assert_eq!(v.first_broken_seq, Some(target));
    assert!(v.problem.contains("edited"), "{}", v.problem);
    // Deleting instead of editing is caught too.
    cat.execute(
        "UPDATE audit SET statement = ?2 WHERE seq = ?1",
        rusqlite::params![row, insert.statement],
    )
    .expect("restore");
    assert!(admin.verify_audit_log().await.expect("verify").ok);
    cat.execute("DELETE FROM audit WHERE seq = ?1", [row])
        .expect("delete");
    let v = admin.verify_audit_log().await.expect("verify");
    assert!(!v.ok);
    assert_eq!(v.first_broken_seq, Some(target + 1));
    assert!(v.problem.contains("deleted"), "{}", v.problem);
}

#[tokio::test]
async fn metrics_and_stats_count_a_known_workload() {
    let (s, admin) = secured().await;
    admin
        .create_database("metered", CreateOptions::default())
        .await
        .expect("create");
    let before = scrape_metrics(&s).await;
    for i in 0..7 {
        admin
            .execute("metered", "SELECT ?", &params![i])
            .await
            .expect("select");
    }
    for _ in 0..3 {
        assert_code(
            admin.execute("metered", "SELEC", &[]).await,
            Code::InvalidArgument,
        );
    }
    let anonymous = s.client.clone();
    for _ in 0..2 {
        assert_code(
            anonymous.execute("metered", "SELECT 1", &[]).await,
            Code::Unauthenticated,
        );
    }
    let mut rows = admin
        .query(
            "metered",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500) SELECT x FROM c",
            &[],
        )
        .await
        .expect("query");
    assert_eq!(rows.collect_rows().await.expect("rows").len(), 500);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = scrape_metrics(&s).await;
    let delta = |series_text: &str| series(&after, series_text) - series(&before, series_text);
    assert_eq!(
        delta(r#"dbforge_rpc_requests_total{rpc="Execute",code="OK"}"#),
        7.0
    );
    assert_eq!(
        delta(r#"dbforge_rpc_requests_total{rpc="Execute",code="INVALID_ARGUMENT"}"#),
        3.0
    );
    assert_eq!(
        delta(r#"dbforge_rejected_requests_total{reason="UNAUTHENTICATED"}"#),
        2.0
    );
    assert_eq!(
        delta(r#"dbforge_rows_streamed_total{backend="sqlite"}"#),
        500.0
    );
    // Bytes as sent: a one-integer row is at least 6 bytes of protobuf.
    assert!(delta(r#"dbforge_bytes_streamed_total{backend="sqlite"}"#) >= 500.0 * 6.0);
    assert!(after.contains("dbforge_rpc_duration_seconds_bucket{rpc=\"Execute\""));
    assert!(after.contains("dbforge_statement_duration_seconds_count{backend=\"sqlite\"}"));
    assert!(after.contains("dbforge_active_connections"));

    let stats = admin.server_stats().await.expect("stats");
    assert!(stats.active_connections >= 2, "{stats:?}");
    assert_eq!(stats.databases, 1);
    let execute = stats
        .rpcs
        .iter()
        .find(|r| r.rpc == "Execute")
        .expect("Execute stats");
    assert!(execute.calls >= 10 && execute.errors >= 3, "{execute:?}");
    assert!(stats.error_rate > 0.0 && stats.error_rate < 1.0);
    let reader_key = admin
        .create_api_key(ApiKeySpec::new("r").grant(Grant::database("metered", Role::Read)))
        .await
        .expect("key")
        .1;
    assert_code(
        key_client(&s, &reader_key).await.server_stats().await,
        Code::PermissionDenied,
    );
}

/// The pool gauge belongs to the shared server-engine pool, so PostgreSQL, MySQL and Redis all
/// report it: a connection an open transaction holds counts, and the series stays in /metrics
/// once the connection is back in the pool.
#[tokio::test]
async fn pool_gauge_is_reported_for_every_server_engine() {
    let (Some(pg), Some(my), Some(rd)) =
        (postgres_url().await, mysql_url().await, redis_url().await)
    else {
        return;
    };
    let s = TestServer::with(move |mut c| {
        c.postgres_url = Some(pg);
        c.mysql_url = Some(my);
        c.redis_url = Some(rd);
        c
    })
    .await;
    let c = &s.client;
    for (backend, label, statement) in [
        (Backend::Postgres, "postgres", "SELECT 1"),
        (Backend::Mysql, "mysql", "SELECT 1"),
        (Backend::Redis, "redis", "PING"),
    ] {
        let gauge = format!(r#"dbforge_pool_connections_in_use{{backend="{label}"}}"#);
        let db = unique("gauge");
        c.create_database(&db, CreateOptions::default().backend(backend))
            .await
            .expect("create");
        if backend != Backend::Redis {
            let mut tx = c.transaction(&db).await.expect("begin");
            tx.execute(statement, &[])
                .await
                .expect("statement in a transaction");
            let during = scrape_metrics(&s).await;
            assert!(series(&during, &gauge) >= 1.0, "{label}: {during}");
            tx.commit().await.expect("commit");
        }
        c.execute(&db, statement, &[]).await.expect(statement);
        let after = scrape_metrics(&s).await;
        assert!(
            after.lines().any(|l| l.starts_with(&gauge)),
            "{label}: {after}"
        );
        c.delete_database(&db).await.expect("delete");
    }
}
