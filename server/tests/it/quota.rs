//! Size quotas through gRPC, on every engine with real data crossing a small quota: SQLite
//! refuses the growing write itself; PostgreSQL, MySQL and Redis are measured (a pass run on
//! demand) and then refuse writes on the read-only login; RESOURCE_EXHAUSTED names the quota
//! and the size; quota_exceeded / quota_cleared events; a policy's quota; getting back under.

use std::time::Duration;

use dbforge::{
    Backend, Client, Code, CreateOptions, DatabaseEventType, DatabaseEvents, LifecyclePolicy,
    UpdateOptions, Value, WatchOptions,
};
use dbforge_server::core::quota::QuotaTrigger;

use crate::{
    harness::{
        TestServer, assert_code, metric_value, mysql_url, postgres_url, redis_url, scrape_metrics,
        unique,
    },
    lifecycle::{backend_name, next_event},
};

/// A gateway serving `backend` whose quota measurements run only when asked.
async fn lab(backend: Backend, url: Option<String>) -> (TestServer, QuotaTrigger) {
    let trigger = QuotaTrigger::new();
    let t = trigger.clone();
    let s = TestServer::with(move |mut c| {
        c.quota_trigger = Some(t);
        c.quota_interval = Duration::from_secs(24 * 3600);
        match backend {
            Backend::Postgres => c.postgres_url = url,
            Backend::Mysql => c.mysql_url = url,
            Backend::Redis => c.redis_url = url,
            _ => {}
        }
        c
    })
    .await;
    (s, trigger)
}

/// The next event that is not `updated` (UpdateDatabase's own).
async fn next_quota_event(w: &mut DatabaseEvents) -> dbforge::DatabaseEvent {
    loop {
        let e = next_event(w).await;
        if e.kind != DatabaseEventType::Updated {
            return e;
        }
    }
}

/// Writes about `bytes` of incompressible data in one statement per call.
async fn write_some(
    c: &Client,
    db: &str,
    backend: Backend,
    n: usize,
) -> Result<(), dbforge::Error> {
    match backend {
        Backend::Redis => c
            .execute(db, &format!("SET k{n} {}", "z".repeat(4000)), &[])
            .await
            .map(drop),
        Backend::Postgres => c
            .execute(
                db,
                "INSERT INTO t (v) SELECT string_agg(md5(random()::text || g::text), '') \
                 FROM generate_series(1, 2000) g",
                &[],
            )
            .await
            .map(drop),
        Backend::Mysql => c
            .execute(
                db,
                "INSERT INTO t (v) VALUES (REPEAT(MD5(RAND()), 2000))",
                &[],
            )
            .await
            .map(drop),
        _ => c
            .execute(db, "INSERT INTO t (v) VALUES (randomblob(8000))", &[])
            .await
            .map(drop),
    }
}

async fn size_of(c: &Client, db: &str) -> u64 {
    c.get_database(db).await.expect("get").size_bytes
}

async fn quota_round(backend: Backend, url: Option<String>) {
    let (s, quota) = lab(backend, url).await;
    let c = &s.client;
    let db = unique("quota");
    c.create_database(&db, CreateOptions::default().backend(backend))
        .await
        .expect("create");
    let table = match backend {
        Backend::Redis => None,
        Backend::Mysql => Some("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v LONGTEXT)"),
        Backend::Postgres => Some("CREATE TABLE t (id serial PRIMARY KEY, v text)"),
        _ => Some("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"),
    };
    if let Some(sql) = table {
        c.execute(&db, sql, &[]).await.expect("table");
    }
    write_some(c, &db, backend, 0).await.expect("a first write");
    if backend == Backend::Mysql {
        // InnoDB's sizes in information_schema are statistics, refreshed in the background.
        c.execute(&db, "ANALYZE TABLE t", &[])
            .await
            .expect("analyze");
    }
    let base = size_of(c, &db).await;
    assert!(base > 0, "{backend:?} measures its databases");
    let margin: u64 = match backend {
        Backend::Redis => 20_000,
        Backend::Sqlite => 64 * 1024,
        _ => 1 << 20,
    };
    let max = base + margin;
    let mut w = c
        .watch_databases(WatchOptions::default())
        .await
        .expect("watch");
    let shown = c
        .update_database(&db, UpdateOptions::default().max_bytes(max))
        .await
        .expect("set a quota");
    assert_eq!(shown.max_bytes, Some(max));
    assert_eq!(shown.own_max_bytes, Some(max));
    assert_eq!(shown.quota_source, "database");
    assert!(!shown.over_quota);

    // Real data crosses the quota.
    let mut refused = None;
    for n in 1..2000 {
        match write_some(c, &db, backend, n).await {
            Ok(()) => {}
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
        if backend == Backend::Mysql && n % 20 == 0 {
            c.execute(&db, "ANALYZE TABLE t", &[])
                .await
                .expect("analyze");
        }
        if backend != Backend::Sqlite && n % 10 == 0 {
            // The server engines are measured: each pass may find it over.
            let report = quota.run().await;
            if report.exceeded.contains(&db) {
                continue;
            }
        }
    }
    let e = refused.expect("writes past the quota are refused");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("size quota of {max} bytes")) && text.contains("its own setting"),
        "{text}"
    );
    if backend == Backend::Sqlite {
        // The engine refused it: a pass then reports the crossing.
        quota.run().await;
    }
    let exceeded = next_quota_event(&mut w).await;
    assert_eq!(
        (
            exceeded.kind,
            exceeded.database.as_str(),
            exceeded.key_id.as_str()
        ),
        (DatabaseEventType::QuotaExceeded, db.as_str(), "gateway")
    );
    assert!(
        exceeded
            .cause
            .starts_with(&format!("max_bytes={max} size=")),
        "{}",
        exceeded.cause
    );
    let now = c.get_database(&db).await.expect("get");
    assert!(now.over_quota);
    // Reads still work.
    let probe = if backend == Backend::Redis {
        "GET k0"
    } else {
        "SELECT count(*) FROM t"
    };
    c.query(&db, probe, &[])
        .await
        .expect("reads while over")
        .collect_rows()
        .await
        .expect("rows");
    // Every route of writing is refused the same way.
    // On the server engines any write is refused; SQLite refuses what does not fit.
    let write = match backend {
        Backend::Redis => "SET other 1",
        Backend::Sqlite => "INSERT INTO t (v) VALUES (randomblob(200000))",
        _ => "INSERT INTO t (v) VALUES ('x')",
    };
    let e = assert_code(
        c.batch(&db, vec![dbforge::Statement::new(write, vec![])], true)
            .await,
        Code::ResourceExhausted,
    );
    assert!(e.to_string().contains("size quota"), "{e}");
    if backend != Backend::Redis {
        let outcome = match c.transaction(&db).await {
            Ok(mut tx) => match tx.execute(write, &[]).await {
                Ok(_) => tx.commit().await.map(drop),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        assert_code(outcome, Code::ResourceExhausted);
    }

    // Getting back under: the owner raises the quota.
    let raised = c
        .update_database(&db, UpdateOptions::default().max_bytes(max * 100))
        .await
        .expect("raise");
    assert!(!raised.over_quota);
    let cleared = next_quota_event(&mut w).await;
    assert_eq!(
        (cleared.kind, cleared.database.as_str()),
        (DatabaseEventType::QuotaCleared, db.as_str())
    );
    write_some(c, &db, backend, 9999)
        .await
        .expect("writes again under the raised quota");
    let text = scrape_metrics(&s).await;
    for event in ["quota_exceeded", "quota_cleared"] {
        assert_eq!(
            metric_value(
                &text,
                "dbforge_quota_events_total{",
                &[
                    &format!("backend=\"{}\"", backend_name(backend)),
                    &format!("event=\"{event}\""),
                ],
            )
            .as_deref(),
            Some("1"),
            "{event}: {text}"
        );
    }
    c.delete_database(&db).await.expect("clean up");
}

#[tokio::test]
async fn sqlite_refuses_writes_past_a_size_quota_by_itself() {
    quota_round(Backend::Sqlite, None).await;
}

#[tokio::test]
async fn postgres_refuses_writes_once_measured_over_a_size_quota() {
    let Some(url) = postgres_url().await else {
        return;
    };
    quota_round(Backend::Postgres, Some(url)).await;
}

#[tokio::test]
async fn mysql_refuses_writes_once_measured_over_a_size_quota() {
    let Some(url) = mysql_url().await else {
        return;
    };
    quota_round(Backend::Mysql, Some(url)).await;
}

#[tokio::test]
async fn redis_refuses_writes_once_measured_over_a_size_quota() {
    let Some(url) = redis_url().await else {
        return;
    };
    quota_round(Backend::Redis, Some(url)).await;
}

#[tokio::test]
async fn a_tenant_cannot_raise_its_sqlite_page_limit() {
    let (s, _quota) = lab(Backend::Sqlite, None).await;
    let c = &s.client;
    let db = unique("hostile");
    c.create_database(&db, CreateOptions::default())
        .await
        .expect("create");
    c.execute(&db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)", &[])
        .await
        .expect("table");
    c.update_database(&db, UpdateOptions::default().max_bytes(64 * 1024))
        .await
        .expect("quota");
    for sql in [
        "PRAGMA max_page_count = 1000000",
        "PRAGMA main.max_page_count = 1000000",
        "SELECT * FROM pragma_max_page_count(1000000)",
    ] {
        let e = c.execute(&db, sql, &[]).await.expect_err(sql);
        assert!(
            matches!(e.code(), Code::PermissionDenied | Code::InvalidArgument),
            "{sql}: {e}"
        );
    }
    let mut refused = false;
    for _ in 0..40 {
        if let Err(e) = c
            .execute(
                &db,
                "INSERT INTO t (v) VALUES (?)",
                &[Value::Bytes(vec![7; 8000])],
            )
            .await
        {
            assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
            refused = true;
            break;
        }
    }
    assert!(refused, "the quota still holds");
    assert!(
        size_of(c, &db).await <= 64 * 1024 + 512 * 1024,
        "file and WAL stay small"
    );
}

#[tokio::test]
async fn a_policy_quota_applies_and_the_smaller_one_wins() {
    let (s, quota) = lab(Backend::Sqlite, None).await;
    let c = &s.client;
    c.set_lifecycle_policy(LifecyclePolicy::pattern("small", "small-*").max_bytes(48 * 1024))
        .await
        .expect("policy");
    let db = format!("small-{}", std::process::id());
    let created = c
        .create_database(&db, CreateOptions::default())
        .await
        .expect("create")
        .database;
    let got = c.get_database(&db).await.expect("get");
    assert_eq!(got.max_bytes, Some(48 * 1024), "{created:?}");
    assert_eq!(got.quota_source, "policy=small");
    // A larger own quota does not lift the policy's; a smaller one wins.
    let shown = c
        .update_database(&db, UpdateOptions::default().max_bytes(1 << 30))
        .await
        .expect("update");
    assert_eq!(
        (
            shown.max_bytes,
            shown.quota_source.as_str(),
            shown.own_max_bytes
        ),
        (Some(48 * 1024), "policy=small", Some(1 << 30))
    );
    let shown = c
        .update_database(&db, UpdateOptions::default().max_bytes(40 * 1024))
        .await
        .expect("update");
    assert_eq!(
        (shown.max_bytes, shown.quota_source.as_str()),
        (Some(40 * 1024), "database")
    );
    c.execute(&db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)", &[])
        .await
        .expect("table");
    let mut refused = None;
    for _ in 0..40 {
        if let Err(e) = c
            .execute(&db, "INSERT INTO t (v) VALUES (randomblob(8000))", &[])
            .await
        {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("refused");
    assert_eq!(e.code(), Code::ResourceExhausted);
    // Cleared own quota: the policy's applies again, naming the policy.
    let shown = c
        .update_database(&db, UpdateOptions::default().clear_max_bytes())
        .await
        .expect("clear");
    assert_eq!(shown.quota_source, "policy=small");
    // Deleting the policy lifts the quota (after its pass).
    c.delete_lifecycle_policy("small").await.expect("delete");
    quota.run().await;
    let got = c.get_database(&db).await.expect("get");
    assert_eq!((got.max_bytes, got.over_quota), (None, false));
    c.execute(&db, "INSERT INTO t (v) VALUES (randomblob(8000))", &[])
        .await
        .expect("no quota any more");
    assert_code(
        c.update_database(&db, UpdateOptions::default().max_bytes(0))
            .await,
        Code::InvalidArgument,
    );
}
