//! PostgreSQL: the conformance suite, then what only a server backend has to prove: isolation
//! under attack, every type both ways, the connection cap, bounded memory while streaming a
//! million rows, cancellation on the server, and an outage with recovery.
//!
//! Each test process names its objects `dbft<pid>_…`, so tests running in parallel (nextest runs
//! each in its own process) and other gateways on the same server never sweep each other's
//! databases. The outage test stops the server: it holds a cross-process lock exclusively, the
//! other tests hold it shared.

use std::{
    collections::BTreeSet,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use sqlx::{Connection, Row as _, postgres::PgConnectOptions};

use super::PostgresBackend;
use crate::{
    backend::{
        Backend, ServerBackendConfig, StatementLimits,
        conformance::{self, Hooks},
        sql::testing::{TestDb as Db, kind_of, limits, stmt, stream_measuring},
    },
    core::{
        error::{Error, QueryErrorKind},
        limits::Limits,
        names::DatabaseName,
        value::{RowEvent, Truncation, Value, ValueKind},
    },
};

fn admin_url() -> String {
    std::env::var("DBFORGE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn prefix() -> String {
    format!("dbft{}_", std::process::id())
}

async fn server_lock(exclusive: bool) -> std::fs::File {
    crate::backend::sql::testing::server_lock("postgres", exclusive).await
}

async fn backend_with(
    prefix: &str,
    max_connections: u32,
    per_database: u32,
) -> Option<PostgresBackend> {
    let cfg = ServerBackendConfig {
        url: admin_url(),
        max_connections,
        per_database_connections: per_database,
        idle_timeout: Duration::from_secs(30),
    };
    let b = PostgresBackend::with_prefix(cfg, prefix)
        .await
        .expect("valid configuration");
    if !b.available() {
        conformance::unreachable("postgres", format!("{} unreachable", admin_url()));
        return None;
    }
    Some(b)
}

async fn backend() -> Option<PostgresBackend> {
    backend_with(&prefix(), 16, 4).await
}

fn hooks() -> Hooks {
    Hooks {
        slow_query: "SELECT pg_sleep(60)".into(),
        series_query: "SELECT x, 'row ' || x FROM generate_series(1, $1) AS x".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    conformance::run_all(Arc::new(b), &hooks()).await;
}

/// The role of a spawned database, as the catalog keeps it.
fn locator(b: &PostgresBackend, db: &Db) -> crate::backend::sql::Locator {
    b.locator(&db.provisioned).expect("locator")
}

/// A direct admin connection, for looking at the server from outside the gateway.
async fn admin_conn() -> sqlx::PgConnection {
    let opts = PgConnectOptions::from_str(&admin_url()).expect("url");
    sqlx::PgConnection::connect_with(&opts)
        .await
        .expect("admin connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_attacks_fail() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let a = Db::new(&b, "iso-attacker").await;
    let victim = Db::new(&b, "iso-victim").await;
    victim.ok("CREATE TABLE secret (v text)").await;
    victim.ok("INSERT INTO secret VALUES ('x')").await;
    let victim_ident = locator(&b, &victim).ident;

    let flags = a
        .ok(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls \
             FROM pg_roles WHERE rolname = current_user",
        )
        .await;
    assert_eq!(flags.rows, vec![vec![Value::Bool(false); 5]]);
    for sql in [
        "SELECT * FROM pg_authid",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "CREATE EXTENSION dblink",
        "CREATE EXTENSION postgres_fdw",
        "COPY (SELECT 1) TO PROGRAM 'id'",
        "COPY (SELECT 1) TO '/tmp/dbforge-escape'",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_ls_dir('.')",
        "CREATE DATABASE escape",
        "CREATE ROLE escape",
        "ALTER ROLE postgres PASSWORD 'x'",
        "LOAD 'dblink'",
    ] {
        assert_eq!(
            kind_of(a.exec(sql, vec![]).await),
            QueryErrorKind::Forbidden,
            "{sql}"
        );
    }
    // Another database's tables do not exist here, and cross-database names are refused.
    assert!(matches!(
        a.exec("SELECT * FROM secret", vec![]).await,
        Err(Error::Query { .. })
    ));
    let qualified = format!("SELECT * FROM \"{victim_ident}\".public.secret");
    assert!(matches!(
        a.exec(&qualified, vec![]).await,
        Err(Error::Query { .. })
    ));
    // No superuser session can be signalled.
    match a
        .exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'postgres'",
            vec![],
        )
        .await
    {
        Ok(r) => assert!(r.rows.is_empty(), "{r:?}"),
        Err(e) => assert!(
            matches!(
                e,
                Error::Query {
                    kind: QueryErrorKind::Forbidden,
                    ..
                }
            ),
            "{e:?}"
        ),
    }
    // Even with its own password, the attacker's role cannot log in to the victim's database.
    let creds = locator(&b, &a);
    let opts = PgConnectOptions::from_str(&admin_url())
        .expect("url")
        .username(&creds.ident)
        .password(&creds.password)
        .database(&victim_ident);
    let err = sqlx::PgConnection::connect_with(&opts)
        .await
        .expect_err("no CONNECT on another database");
    assert!(err.to_string().contains("permission denied"), "{err}");
    // Transaction control cannot escape the gateway's transactions.
    for sql in [
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT s",
        "START TRANSACTION",
    ] {
        assert!(
            matches!(
                a.exec(sql, vec![]).await,
                Err(Error::InvalidArgument { field: "sql", .. })
            ),
            "{sql}"
        );
    }
    assert_eq!(
        victim.scalar("SELECT count(*) FROM secret").await,
        Value::Int(1)
    );
    a.drop_in(&b).await;
    victim.drop_in(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let db = Db::new(&b, "types").await;
    db.ok("CREATE TYPE mood AS ENUM ('happy', 'sad')").await;
    db.ok(
        "CREATE TABLE t (i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision, \
         n numeric(40, 10), nn numeric, tx text, vc varchar(10), ch char(3), b bytea, \
         flag boolean, d date, tm time, ts timestamp, tz timestamptz, u uuid, j json, \
         jb jsonb, ia integer[], ta text[], m mood, iv interval, ip inet)",
    )
    .await;
    let ts = time::macros::datetime!(2024-02-29 13:45:01.123456 UTC);
    let uuid = "7d444840-9dc0-11d1-b245-5ffdce74fad2";
    let written = vec![
        Value::Int(-32768),
        Value::Int(2_147_483_647),
        Value::Int(i64::MIN),
        Value::Float(0.1),
        Value::Float(-1e300),
        Value::Decimal("123456789012345678901234567890.0123456789".into()),
        Value::Decimal("NaN".into()),
        Value::Text("héllo ✓ 'q'".into()),
        Value::Text("short".into()),
        Value::Text("abc".into()),
        Value::Bytes(vec![0, 1, 127, 128, 255]),
        Value::Bool(false),
        Value::Date(time::macros::date!(2024 - 02 - 29)),
        Value::Time(time::macros::time!(23:59:59.999999)),
        Value::Timestamp(ts),
        Value::Timestamp(ts),
        Value::Uuid(uuid.into()),
        Value::Json(r#"{"a": [1, 2]}"#.into()),
        Value::Json(r#"{"b": null}"#.into()),
        Value::Array(vec![
            Value::Array(vec![Value::Int(1), Value::Int(2)]),
            Value::Array(vec![Value::Int(3), Value::Null]),
        ]),
        Value::Array(vec![Value::Text("x".into()), Value::Null]),
        Value::Text("sad".into()),
    ];
    let placeholders: Vec<String> = (1..=written.len()).map(|i| format!("${i}")).collect();
    let insert = format!(
        "INSERT INTO t VALUES ({}::mood, '1 day 02:03:04.5', '10.0.0.0/8')",
        placeholders.join(", ")
    );
    let r = db.exec(&insert, written.clone()).await.expect("insert");
    assert_eq!(r.rows_affected, 1);
    let nulls = vec![Value::Null; written.len()];
    db.exec(
        &insert.replace("'1 day 02:03:04.5', '10.0.0.0/8'", "NULL, NULL"),
        nulls,
    )
    .await
    .expect("insert nulls");

    let r = db.ok("SELECT * FROM t WHERE i2 IS NOT NULL").await;
    let mut expected = written.clone();
    expected.push(Value::Text("P1DT2H3M4.5S".into()));
    expected.push(Value::Text("10.0.0.0/8".into()));
    for ((col, want), got) in r.columns.iter().zip(&expected).zip(&r.rows[0]) {
        assert_eq!(got, want, "column {}", col.name);
    }
    let kinds: Vec<ValueKind> = r.columns.iter().map(|c| c.kind).collect();
    use ValueKind as K;
    assert_eq!(
        kinds,
        vec![
            K::Int,
            K::Int,
            K::Int,
            K::Float,
            K::Float,
            K::Decimal,
            K::Decimal,
            K::Text,
            K::Text,
            K::Text,
            K::Bytes,
            K::Bool,
            K::Date,
            K::Time,
            K::Timestamp,
            K::Timestamp,
            K::Uuid,
            K::Json,
            K::Json,
            K::Array,
            K::Array,
            K::Text,
            K::Text,
            K::Text,
        ]
    );
    let declared: Vec<&str> = r.columns.iter().map(|c| c.declared_type.as_str()).collect();
    assert_eq!(&declared[..3], &["INT2", "INT4", "INT8"]);
    assert_eq!(declared[21], "mood");
    let r = db.ok("SELECT * FROM t WHERE i2 IS NULL").await;
    assert!(
        r.rows[0].iter().all(|v| *v == Value::Null),
        "{:?}",
        r.rows[0]
    );

    // Each Value binds as the type it names.
    let params = vec![
        Value::Int(1),
        Value::Float(1.5),
        Value::Text("x".into()),
        Value::Bytes(vec![1]),
        Value::Bool(true),
        Value::Decimal("1.50".into()),
        Value::Json("{}".into()),
        Value::Timestamp(ts),
        Value::Date(time::macros::date!(2024 - 01 - 01)),
        Value::Time(time::macros::time!(12:00)),
        Value::Uuid(uuid.into()),
        Value::Array(vec![Value::Int(1)]),
    ];
    let select: Vec<String> = (1..=params.len())
        .map(|i| format!("pg_typeof(${i})::text"))
        .collect();
    let r = db
        .exec(&format!("SELECT {}", select.join(", ")), params)
        .await
        .expect("typeof");
    let types: Vec<Value> = [
        "bigint",
        "double precision",
        "text",
        "bytea",
        "boolean",
        "numeric",
        "json",
        "timestamp with time zone",
        "date",
        "time without time zone",
        "uuid",
        "bigint[]",
    ]
    .into_iter()
    .map(|s| Value::Text(s.into()))
    .collect();
    assert_eq!(r.rows[0], types);
    // NULL goes unspecified, so the server infers its type from the context.
    let r = db
        .exec(
            "SELECT $1::int + 1, $2 = 'x'",
            vec![Value::Null, Value::Null],
        )
        .await
        .expect("null inference");
    assert_eq!(r.rows[0], vec![Value::Null, Value::Null]);
    let r = db
        .exec(
            "SELECT $1::numeric * 2",
            vec![Value::Decimal("0.1000000000000000000001".into())],
        )
        .await
        .expect("exact arithmetic");
    assert_eq!(
        r.rows[0][0],
        Value::Decimal("0.2000000000000000000002".into())
    );
    assert!(matches!(
        db.exec("SELECT $1", vec![Value::Int(1), Value::Int(2)])
            .await,
        Err(Error::InvalidArgument {
            field: "params",
            ..
        })
    ));
    assert!(matches!(
        db.exec("SELECT $1, $2", vec![Value::Int(1)]).await,
        Err(Error::InvalidArgument {
            field: "params",
            ..
        })
    ));
    db.drop_in(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_apply_whole_and_reads_stop_early() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let db = Db::new(&b, "rw").await;
    db.ok("CREATE TABLE w (v int)").await;
    let insert5 = "INSERT INTO w SELECT g FROM generate_series(1, 5) g RETURNING v";
    let r = db.ok(insert5).await;
    assert_eq!((r.rows.len(), r.rows_affected), (5, 5));
    let r = db.ok("SELECT * FROM w").await;
    assert_eq!(
        (r.rows.len(), r.rows_affected),
        (5, 0),
        "a read changes nothing"
    );

    // A write whose rows exceed the Execute limit is rolled back.
    let small = StatementLimits {
        max_rows: 3,
        ..limits()
    };
    let err = db
        .db
        .execute(stmt(insert5, vec![]), &small)
        .await
        .expect_err("limit");
    assert!(matches!(err, Error::LimitExceeded(_)), "{err:?}");
    assert_eq!(db.scalar("SELECT count(*) FROM w").await, Value::Int(5));

    // A streamed write cut by the row limit still applies whole.
    let mut s = db
        .db
        .query(
            stmt(
                "INSERT INTO w SELECT g FROM generate_series(1, 10) g RETURNING v",
                vec![],
            ),
            Limits::default().stream(2),
        )
        .await
        .expect("query");
    let mut last = None;
    while let Some(ev) = s.next().await {
        last = Some(ev.expect("event"));
    }
    match last {
        Some(RowEvent::Done(sum)) => {
            assert_eq!(sum.truncation, Truncation::RowLimit);
            assert_eq!((sum.row_count, sum.rows_affected), (2, 10));
        }
        other => panic!("expected a summary, got {other:?}"),
    }
    assert_eq!(db.scalar("SELECT count(*) FROM w").await, Value::Int(15));

    // A read cut by the row limit stops at once instead of reading the rest.
    let started = Instant::now();
    let mut s = db
        .db
        .query(
            stmt("SELECT g FROM generate_series(1, 50000000) g", vec![]),
            Limits::default().stream(5),
        )
        .await
        .expect("query");
    let mut last = None;
    while let Some(ev) = s.next().await {
        last = Some(ev.expect("event"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    match last {
        Some(RowEvent::Done(sum)) => {
            assert_eq!(sum.truncation, Truncation::RowLimit);
            assert_eq!((sum.row_count, sum.rows_affected), (5, 0));
        }
        other => panic!("expected a summary, got {other:?}"),
    }
    db.drop_in(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_failed_statements() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let db = Db::new(&b, "sess").await;
    db.ok("CREATE TABLE s (id int PRIMARY KEY)").await;
    let ins = |v: i64| stmt("INSERT INTO s VALUES ($1)", vec![Value::Int(v)]);
    let mut sess = db
        .db
        .session(StatementLimits {
            max_rows: 2,
            ..limits()
        })
        .await
        .expect("session");
    sess.begin().await.expect("begin");
    sess.execute(ins(1)).await.expect("insert");
    assert_eq!(
        kind_of(sess.execute(stmt("SELEC 1", vec![])).await),
        QueryErrorKind::Syntax
    );
    assert!(sess.in_transaction());
    assert_eq!(
        kind_of(sess.execute(ins(1)).await),
        QueryErrorKind::UniqueViolation
    );
    assert!(sess.in_transaction());
    let err = sess
        .execute(stmt("SELECT generate_series(1, 5)", vec![]))
        .await
        .expect_err("row limit");
    assert!(matches!(err, Error::LimitExceeded(_)), "{err:?}");
    assert!(matches!(
        sess.execute(stmt("COMMIT", vec![])).await,
        Err(Error::InvalidArgument { .. })
    ));
    sess.execute(ins(2)).await.expect("insert after errors");
    sess.commit().await.expect("commit");
    assert!(!sess.in_transaction());
    assert_eq!(db.scalar("SELECT count(*) FROM s").await, Value::Int(2));
    drop(sess);
    db.drop_in(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_overdue_statements_stop_on_the_server() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let db = Db::new(&b, "cancel").await;
    let role = locator(&b, &db).ident;
    let mut admin = admin_conn().await;
    let running = |marker: &'static str| {
        sqlx::query(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state = 'active' \
             AND query LIKE $2",
        )
        .bind(role.clone())
        .bind(format!("%{marker}%"))
    };

    let mut s = db
        .db
        .query(
            stmt("SELECT pg_sleep(30) AS drop_marker", vec![]),
            Limits::default().stream(0),
        )
        .await
        .expect("query");
    s.next().await.expect("header").expect("ok");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n: i64 = running("drop_marker")
            .fetch_one(&mut admin)
            .await
            .expect("count")
            .get(0);
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the statement never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let n: i64 = running("drop_marker")
            .fetch_one(&mut admin)
            .await
            .expect("count")
            .get(0);
        if n == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dropped statement kept running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A client that turned the engine's timeout off still meets the gateway's.
    let short = StatementLimits {
        timeout: Duration::from_millis(300),
        ..limits()
    };
    db.db
        .execute(stmt("SET statement_timeout = 0", vec![]), &short)
        .await
        .expect("set");
    let started = Instant::now();
    let err = db
        .db
        .execute(
            stmt("SELECT pg_sleep(30) AS overdue_marker", vec![]),
            &short,
        )
        .await
        .expect_err("times out");
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(3);
    while running("overdue_marker")
        .fetch_one(&mut admin)
        .await
        .expect("count")
        .get::<i64, _>(0)
        > 0
    {
        assert!(
            Instant::now() < deadline,
            "the overdue statement kept running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(db.scalar("SELECT 1").await, Value::Int(1));
    db.drop_in(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_stay_under_the_server_cap() {
    let _lock = server_lock(false).await;
    // 6 connections: 1 for administration, 5 for the data plane; 2 per database.
    let cap = 5;
    let cfg = ServerBackendConfig {
        url: admin_url(),
        max_connections: 6,
        per_database_connections: 2,
        idle_timeout: Duration::from_secs(30),
    };
    let prefix = format!("dbft{}c_", std::process::id());
    let Some(b) = backend_with(&prefix, cfg.max_connections, cfg.per_database_connections).await
    else {
        return;
    };
    let mut dbs = Vec::new();
    for i in 0..8 {
        dbs.push(Db::new(&b, &format!("cap-{i}")).await);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&stop);
        let pattern = crate::backend::sql::text::like_prefix(&prefix);
        tokio::spawn(async move {
            let mut admin = admin_conn().await;
            let mut max = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n: i64 =
                    sqlx::query("SELECT count(*) FROM pg_stat_activity WHERE usename LIKE $1")
                        .bind(&pattern)
                        .fetch_one(&mut admin)
                        .await
                        .expect("count")
                        .get(0);
                max = max.max(n);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            max
        })
    };
    let mut calls = Vec::new();
    for round in 0..3 {
        for db in &dbs {
            let h = Arc::clone(&db.db);
            calls.push(tokio::spawn(async move {
                h.execute(
                    stmt("SELECT pg_sleep(0.2), $1::int8", vec![Value::Int(round)]),
                    &limits(),
                )
                .await
            }));
        }
    }
    for c in calls {
        c.await
            .expect("task")
            .expect("every call succeeds under the cap");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max = sampler.await.expect("sampler");
    assert!(max <= cap, "{max} connections to the server, cap {cap}");
    assert!(max >= 2, "calls ran concurrently ({max})");
    for db in dbs {
        db.drop_in(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_rows_stream_in_bounded_memory() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let db = Db::new(&b, "million").await;
    let n = 1_000_000;
    let query = stmt(&hooks().series_query, vec![Value::Int(n)]);
    let (rows, growth, held) = stream_measuring(db.db.as_ref(), query).await;
    assert_eq!(rows, n as u64);
    assert!(
        growth < held / 4,
        "memory grew by {growth} bytes while streaming a result that takes {held} bytes held"
    );
    db.drop_in(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_and_half_made_databases_are_swept() {
    let _lock = server_lock(false).await;
    let cfg = ServerBackendConfig {
        url: admin_url(),
        max_connections: 8,
        per_database_connections: 2,
        idle_timeout: Duration::from_secs(30),
    };
    let prefix = format!("dbft{}o_", std::process::id());
    let Some(b) = backend_with(&prefix, cfg.max_connections, cfg.per_database_connections).await
    else {
        return;
    };
    let kept = Db::new(&b, "kept").await;
    kept.ok("CREATE TABLE k (v int)").await;
    let lost = Db::new(&b, "lost").await;
    // A spawn that crashed after creating its role only.
    let half = b.locate(&DatabaseName::parse("half").expect("name"));
    let half_ident = b.locator(&half).expect("locator").ident;
    let mut admin = admin_conn().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE \"{half_ident}\" LOGIN"
    )))
    .execute(&mut admin)
    .await
    .expect("half role");
    // destroy tolerates the half state.
    b.destroy(&half).await.expect("destroy half");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE \"{half_ident}\" LOGIN"
    )))
    .execute(&mut admin)
    .await
    .expect("half role again");

    let removed = b
        .remove_orphans(std::slice::from_ref(&kept.provisioned))
        .await
        .expect("sweep");
    assert_eq!(removed, 2, "the lost database and the half-made role");
    let left: BTreeSet<String> = sqlx::query(
        "SELECT datname::text FROM pg_database WHERE datname LIKE $1 \
         UNION SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1",
    )
    .bind(crate::backend::sql::text::like_prefix(&prefix))
    .fetch_all(&mut admin)
    .await
    .expect("list")
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert_eq!(left, BTreeSet::from([locator(&b, &kept).ident]));
    assert_eq!(kept.scalar("SELECT count(*) FROM k").await, Value::Int(0));
    drop(lost.db);
    kept.drop_in(&b).await;
}

/// Restarts the PostgreSQL cluster when dropped, so that a failing test leaves it running.
struct Restart {
    version: String,
}

impl Restart {
    fn ctl(&self, action: &str) -> std::process::ExitStatus {
        std::process::Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &self.version, "main", action])
            .status()
            .expect("pg_ctlcluster")
    }
}

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = self.ctl("start");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_fails_fast_and_recovers() {
    let Some(version) = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
    else {
        conformance::unreachable("postgres", "no local cluster to stop (/etc/postgresql)");
        return;
    };
    let _lock = server_lock(true).await;
    let Some(b) = backend().await else { return };
    let db = Db::new(&b, "outage").await;
    assert_eq!(db.scalar("SELECT 1").await, Value::Int(1));

    let restart = Restart { version };
    assert!(restart.ctl("stop").success(), "pg_ctlcluster stop");
    let started = Instant::now();
    let err = db
        .exec("SELECT 1", vec![])
        .await
        .expect_err("server is down");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.available() {
        assert!(Instant::now() < deadline, "still reported available");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let err = db
        .exec("SELECT 1", vec![])
        .await
        .expect_err("server is down");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(100), "fails fast");

    assert!(restart.ctl("start").success(), "pg_ctlcluster start");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !b.available() {
        assert!(Instant::now() < deadline, "never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(db.scalar("SELECT 1").await, Value::Int(1));
    drop(restart);
    db.drop_in(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_service_statements_run() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    crate::backend::sql::testing::table_service_round_trip(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_while_the_server_is_down() {
    // Nothing listens on port 1: connections are refused at once.
    let cfg = ServerBackendConfig {
        url: "postgres://postgres@127.0.0.1:1/postgres".into(),
        max_connections: 4,
        per_database_connections: 2,
        idle_timeout: Duration::from_secs(30),
    };
    let b = PostgresBackend::with_prefix(cfg, &prefix())
        .await
        .expect("new succeeds without a server");
    assert!(!b.available());
    let p = b.locate(&DatabaseName::parse("down").expect("name"));
    let started = Instant::now();
    assert!(matches!(b.create(&p).await, Err(Error::Unavailable(_))));
    let db = b.open(&p).await.expect("open is lazy");
    assert!(matches!(
        db.execute(stmt("SELECT 1", vec![]), &limits()).await,
        Err(Error::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_millis(500), "fails fast");
}
