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
        min_database_connections: 0,
        demand_half_life: Duration::from_secs(10),
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
        ping: "SELECT 1".into(),
        slow_setup: None,
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

/// A statement is prepared once per connection and reused, and never past a change it could
/// be stale after: DDL on another connection, DDL hidden in a function, other parameter types,
/// a client's DEALLOCATE ALL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_are_reused_until_the_schema_changes() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let db = Db::new(&b, "reuse").await;
    db.ok("CREATE TABLE t (a int)").await;
    db.ok("INSERT INTO t VALUES (1)").await;
    let mut s = db.db.session(limits()).await.expect("session");
    s.begin().await.expect("begin");
    for _ in 0..5 {
        let r = s
            .execute(stmt("SELECT a + $1 FROM t", vec![Value::Int(1)]))
            .await
            .expect("select");
        assert_eq!(r.rows, vec![vec![Value::Int(2)]]);
    }
    let prepared = s
        .execute(stmt(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%SELECT a + $1 FROM t'",
            vec![],
        ))
        .await
        .expect("count");
    assert_eq!(prepared.rows, vec![vec![Value::Int(1)]], "prepared once");
    // The same text with a parameter of another type is another statement.
    let r = s
        .execute(stmt(
            "SELECT $1::text || a FROM t",
            vec![Value::Text("x".into())],
        ))
        .await
        .expect("text");
    assert_eq!(r.rows, vec![vec![Value::Text("x1".into())]]);
    let r = s
        .execute(stmt("SELECT $1::text || a FROM t", vec![Value::Int(7)]))
        .await
        .expect("int");
    assert_eq!(r.rows, vec![vec![Value::Text("71".into())]]);
    // A client's DEALLOCATE ALL drops the connection's statements; the next ones prepare anew.
    s.execute(stmt("DEALLOCATE ALL", vec![]))
        .await
        .expect("deallocate");
    s.execute(stmt("SELECT a + $1 FROM t", vec![Value::Int(1)]))
        .await
        .expect("after DEALLOCATE ALL");
    s.commit().await.expect("commit");
    drop(s);

    // DDL through other calls (other connections of the pool): SELECT * sees the new column.
    let star = || stmt("SELECT * FROM t", vec![]);
    assert_eq!(
        db.db
            .execute(star(), &limits())
            .await
            .expect("star")
            .columns
            .len(),
        1
    );
    db.ok("ALTER TABLE t ADD COLUMN b text DEFAULT 'x'").await;
    for _ in 0..4 {
        let r = db
            .db
            .execute(star(), &limits())
            .await
            .expect("star after DDL");
        assert_eq!(r.columns.len(), 2);
        assert_eq!(r.rows, vec![vec![Value::Int(1), Value::Text("x".into())]]);
    }
    // DDL inside a function is invisible to the gateway: at worst one call reports the change
    // (PostgreSQL's "cached plan must not change result type"), and the next one prepares anew.
    db.ok("CREATE FUNCTION widen() RETURNS int LANGUAGE plpgsql AS \
         $$ BEGIN ALTER TABLE t ADD COLUMN c int DEFAULT 3; RETURN 1; END $$")
        .await;
    db.exec("SELECT * FROM t", vec![]).await.expect("prime");
    db.exec("SELECT widen()", vec![]).await.expect("widen");
    let (mut last, mut stale) = (None, 0);
    for _ in 0..6 {
        match db.db.execute(star(), &limits()).await {
            Ok(r) => last = Some(r),
            Err(Error::Query { code: Some(c), .. }) if c == "0A000" => stale += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert!(
        stale <= 1,
        "{stale} calls failed: the first failure re-prepares everywhere"
    );
    let last = last.expect("later calls succeed");
    assert_eq!(last.columns.len(), 3);
    db.drop_in(&b).await;
}

/// COPY stores what a bound INSERT of the same values stores, format characters and edge
/// values included; a refused COPY undoes only itself and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_insert_stores_what_insert_stores() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let db = Db::new(&b, "copy").await;
    let columns = "id bigint PRIMARY KEY, i4 integer, f8 double precision, f4 real, n numeric, \
                   tx text, bt bytea, flag boolean, d date, tm time, ts timestamp, tz timestamptz, \
                   u uuid, j json, jb jsonb";
    db.ok(&format!("CREATE TABLE a ({columns})")).await;
    db.ok(&format!("CREATE TABLE b ({columns})")).await;
    let names: Vec<String> = [
        "id", "i4", "f8", "f4", "n", "tx", "bt", "flag", "d", "tm", "ts", "tz", "u", "j", "jb",
    ]
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<Value>> = vec![
        vec![
            Value::Int(1),
            Value::Int(-2_147_483_648),
            Value::Float(0.1),
            Value::Float(1.5),
            Value::Decimal("-123456789012345678901234567890.000000000001".into()),
            Value::Text("tab\there\nline\r\\ back \\N quote\" ü ✓".into()),
            Value::Bytes((0..=255).collect()),
            Value::Bool(true),
            Value::Date(time::macros::date!(0001 - 01 - 01)),
            Value::Time(time::macros::time!(00:00:00.000001)),
            Value::Timestamp(time::macros::datetime!(-0044-03-15 12:00:00.5 UTC)),
            Value::Timestamp(time::macros::datetime!(9999-12-31 23:59:59.999999 +05:30)),
            Value::Uuid("7d444840-9dc0-11d1-b245-5ffdce74fad2".into()),
            Value::Json("{\"k\": \"a\\tb\"}".into()),
            Value::Json("[1, 2.50, null]".into()),
        ],
        vec![
            Value::Int(2),
            Value::Null,
            Value::Float(f64::NEG_INFINITY),
            Value::Float(f64::NAN),
            Value::Decimal("NaN".into()),
            Value::Text(String::new()),
            Value::Bytes(Vec::new()),
            Value::Bool(false),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ],
        vec![
            Value::Int(3),
            Value::Int(7),
            Value::Float(5e-324),
            Value::Float(-0.0),
            Value::Decimal("0.10".into()),
            Value::Text("\\N".into()),
            Value::Bytes(b"\\x00".to_vec()),
            Value::Null,
            Value::Date(time::macros::date!(2024 - 02 - 29)),
            Value::Time(time::macros::time!(23:59:59.999999)),
            Value::Timestamp(time::macros::datetime!(1970-01-01 00:00 UTC)),
            Value::Timestamp(time::macros::datetime!(2024-02-29 13:45:01.123456789 -08:00)),
            Value::Uuid("00000000-0000-0000-0000-000000000000".into()),
            Value::Json("\"\\\\\"".into()),
            Value::Json("{}".into()),
        ],
    ];
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    for r in &rows {
        db.exec(
            &format!("INSERT INTO a VALUES ({})", placeholders.join(", ")),
            r.clone(),
        )
        .await
        .expect("insert");
    }
    let mut sess = db.db.session(limits()).await.expect("session");
    sess.begin().await.expect("begin");
    let refs: Vec<&[Value]> = rows.iter().map(Vec::as_slice).collect();
    assert_eq!(
        sess.bulk_insert("b", &names, &refs).await.expect("copy"),
        Some(3)
    );
    // A duplicate key fails the whole COPY, which undoes only itself.
    match sess.bulk_insert("b", &names, &refs[..1]).await {
        Err(Error::Query { kind, .. }) => assert_eq!(kind, QueryErrorKind::UniqueViolation),
        other => panic!("expected a unique violation, got {other:?}"),
    }
    assert!(sess.in_transaction());
    sess.execute(stmt("INSERT INTO b (id) VALUES (4)", vec![]))
        .await
        .expect("the session goes on");
    sess.commit().await.expect("commit");
    drop(sess);
    // Compared as text, so NaN equals NaN and every digit counts.
    let text = |t: &str| format!("SELECT {t}::text FROM {t} WHERE id < 4 ORDER BY id");
    let (a, b_rows) = (db.ok(&text("a")).await, db.ok(&text("b")).await);
    assert_eq!(a.rows.len(), 3);
    assert_eq!(a.rows, b_rows.rows);
    assert_eq!(db.scalar("SELECT count(*) FROM b").await, Value::Int(4));
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
        min_database_connections: 0,
        demand_half_life: Duration::from_secs(10),
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
        min_database_connections: 0,
        demand_half_life: Duration::from_secs(10),
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
    // Read-only roles carry the prefix with its last `_` written `-` (see `reader_ident`).
    let left: BTreeSet<String> = sqlx::query(
        "SELECT datname::text FROM pg_database WHERE datname LIKE $1 \
         UNION SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1 OR rolname LIKE $2",
    )
    .bind(crate::backend::sql::text::like_prefix(&prefix))
    .bind(crate::backend::sql::text::like_prefix(
        &crate::backend::reader::reader_ident(&prefix),
    ))
    .fetch_all(&mut admin)
    .await
    .expect("list")
    .iter()
    .map(|r| r.get(0))
    .collect();
    let kept_ident = locator(&b, &kept).ident;
    let kept_reader = crate::backend::reader::reader_ident(&kept_ident);
    assert_eq!(
        left,
        BTreeSet::from([kept_ident, kept_reader]),
        "the lost database's read-only role went with it"
    );
    assert_eq!(kept.scalar("SELECT count(*) FROM k").await, Value::Int(0));
    drop(lost.db);
    kept.drop_in(&b).await;
}

/// Listens on a local port and forwards each connection to `target` after `delay`: the real
/// server behind a slow link. Returns the address to connect to.
async fn slow_link(target: String, delay: Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(mut up) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                }
            });
        }
    });
    addr
}

/// The start-up probe waits briefly for a busy administrative connection, but a connect that is
/// merely slow (a loaded server) must not make the server count as down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_connect_is_not_an_outage() {
    let _lock = server_lock(false).await;
    if backend().await.is_none() {
        return;
    }
    let url = admin_url();
    let opts = PgConnectOptions::from_str(&url).expect("url");
    let direct = format!("{}:{}", opts.get_host(), opts.get_port());
    assert!(url.contains(&direct), "cannot route {url} through a proxy");
    let proxy = slow_link(direct.clone(), Duration::from_millis(500)).await;
    let cfg = ServerBackendConfig {
        url: url.replacen(&direct, &proxy.to_string(), 1),
        max_connections: 4,
        per_database_connections: 2,
        min_database_connections: 0,
        demand_half_life: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
    };
    let b = PostgresBackend::with_prefix(cfg, &prefix())
        .await
        .expect("valid configuration");
    assert!(b.available(), "a 500 ms connect counted as an outage");
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
        min_database_connections: 0,
        demand_half_life: Duration::from_secs(10),
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

/// A table name that breaks naive quoting.
const HOSTILE: &str = "we\"ird; DROP TABLE x; --";

async fn inspect_fixture(db: &Db) {
    for sql in [
        "CREATE TABLE parent (a int, b text, PRIMARY KEY (b, a))",
        "CREATE TABLE child (id serial PRIMARY KEY, pa int NOT NULL, pb text NOT NULL, \
         code text CONSTRAINT child_code_key UNIQUE, qty int CONSTRAINT qty_positive CHECK (qty > 0), \
         CONSTRAINT child_parent FOREIGN KEY (pb, pa) REFERENCES parent (b, a) ON DELETE CASCADE)",
        "CREATE INDEX child_qty ON child (qty)",
        "CREATE VIEW big AS SELECT id, qty FROM child WHERE qty > 10",
        "CREATE VIEW bigger AS SELECT id FROM big WHERE qty > 20",
        "CREATE TABLE vals (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, t text, \
         f float8, d numeric, ts timestamptz, j jsonb, arr int[], blob bytea)",
        "CREATE TABLE \"we\"\"ird; DROP TABLE x; --\" (\"co`l\"\"\" int, note text)",
        "INSERT INTO parent SELECT x, 'p' || x FROM generate_series(1, 2000) x",
        "INSERT INTO child (pa, pb, code, qty) SELECT x, 'p' || x, 'c' || x, x FROM generate_series(1, 2000) x",
        "INSERT INTO \"we\"\"ird; DROP TABLE x; --\" VALUES (1, 'semi; colon'), (NULL, NULL)",
        "ANALYZE",
    ] {
        db.ok(sql).await;
    }
    let blob: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let ts = time::OffsetDateTime::from_unix_timestamp_nanos(1_709_210_096_789_012_000)
        .expect("timestamp");
    let rows = vec![
        vec![
            Value::Text("it's \"quoted\"\nline 2\tünïcødé 😀 \\ back'".into()),
            Value::Float(0.1),
            Value::Decimal("123456789012345678901234567890.123456789012345678901234567890".into()),
            Value::Timestamp(ts),
            Value::Json(r#"{"a": [1, "x\"y"], "é": null}"#.into()),
            Value::Array(vec![Value::Int(1), Value::Null, Value::Int(3)]),
            Value::Bytes(blob),
        ],
        vec![
            Value::Text(String::new()),
            Value::Float(1e308),
            Value::Decimal("0.000000000000000000000000000001".into()),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Bytes(vec![0, 39, 92, 255]),
        ],
        vec![Value::Null; 7],
    ];
    for r in rows {
        db.exec(
            "INSERT INTO vals (t, f, d, ts, j, arr, blob) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            r,
        )
        .await
        .expect("insert vals");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_explain_and_dump_round_trip() {
    use crate::core::schema::{ForeignKeySchema, TableKind};
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let src = Db::new(&b, "insp-src").await;
    inspect_fixture(&src).await;

    // Schema.
    let schema = src.db.schema(None, &limits()).await.expect("schema");
    let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["big", "bigger", "child", "parent", "vals", HOSTILE]
    );
    let parent = &schema.tables[3];
    assert_eq!(parent.primary_key, vec!["b", "a"]);
    assert_eq!(parent.row_estimate, Some(2000));
    let child = src
        .db
        .schema(Some("child"), &limits())
        .await
        .expect("one table")
        .tables
        .remove(0);
    assert_eq!(child.kind, TableKind::Table);
    let id = &child.columns[0];
    assert_eq!(
        (
            id.declared_type.as_str(),
            id.kind,
            id.nullable,
            id.primary_key,
            id.auto_increment
        ),
        ("integer", ValueKind::Int, false, true, true)
    );
    assert_eq!(
        id.default.as_deref(),
        Some("nextval('child_id_seq'::regclass)")
    );
    assert_eq!(child.columns[2].kind, ValueKind::Text);
    assert!(child.columns[3].nullable);
    assert_eq!(
        child.foreign_keys,
        vec![ForeignKeySchema {
            name: "child_parent".into(),
            columns: vec!["pb".into(), "pa".into()],
            referenced_table: "parent".into(),
            referenced_columns: vec!["b".into(), "a".into()],
            on_update: "NO ACTION".into(),
            on_delete: "CASCADE".into(),
        }]
    );
    assert_eq!(child.uniques.len(), 1);
    assert_eq!(child.uniques[0].columns, vec!["code"]);
    assert_eq!(child.checks.len(), 1);
    assert_eq!(child.checks[0].name, "qty_positive");
    assert_eq!(child.checks[0].expression, "(qty > 0)");
    let idx: Vec<(&str, bool, bool)> = child
        .indexes
        .iter()
        .map(|i| (i.name.as_str(), i.unique, i.primary))
        .collect();
    assert_eq!(
        idx,
        vec![
            ("child_code_key", true, false),
            ("child_pkey", true, true),
            ("child_qty", false, false)
        ]
    );
    assert_eq!(child.indexes[2].columns, vec!["qty"]);
    let big = &schema.tables[0];
    assert_eq!(big.kind, TableKind::View);
    assert!(big.definition.contains("qty > 10"), "{}", big.definition);
    assert_eq!(big.row_estimate, None);
    let vals = &schema.tables[4];
    let kinds: Vec<ValueKind> = vals.columns.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ValueKind::Int,
            ValueKind::Text,
            ValueKind::Float,
            ValueKind::Decimal,
            ValueKind::Timestamp,
            ValueKind::Json,
            ValueKind::Array,
            ValueKind::Bytes
        ]
    );
    assert!(vals.columns[0].auto_increment);
    assert!(matches!(
        src.db.schema(Some("nope"), &limits()).await,
        Err(Error::NotFound { .. })
    ));

    // Explain: a filter on an unindexed column reads the table, the key does not.
    let plan = src
        .db
        .explain(
            stmt(
                "SELECT * FROM child WHERE pb = $1",
                vec![Value::Text("p7".into())],
            ),
            false,
            &limits(),
        )
        .await
        .expect("explain");
    assert_eq!(plan.full_scans(), vec!["child"]);
    assert!(plan.raw.contains("\"Node Type\""));
    assert_eq!(plan.nodes[0].operation, "Seq Scan");
    assert!(
        plan.nodes[0].detail.contains("Filter"),
        "{:?}",
        plan.nodes[0]
    );
    assert!(plan.nodes[0].estimated_rows.is_some() && plan.nodes[0].estimated_cost.is_some());
    let plan = src
        .db
        .explain(
            stmt("SELECT * FROM child WHERE id = $1", vec![Value::Int(7)]),
            false,
            &limits(),
        )
        .await
        .expect("explain");
    assert!(plan.full_scans().is_empty(), "{plan:?}");
    assert!(
        plan.nodes[0].operation.contains("Index"),
        "{:?}",
        plan.nodes[0]
    );
    assert!(plan.nodes[0].detail.contains("child_pkey"));

    // Analyze runs the statement and undoes it.
    let plan = src
        .db
        .explain(stmt("UPDATE child SET qty = 99", vec![]), true, &limits())
        .await
        .expect("analyze");
    assert_eq!(plan.nodes[0].operation, "ModifyTable");
    assert_eq!(plan.nodes[0].children[0].actual_rows, Some(2000.0));
    assert_eq!(
        src.scalar("SELECT count(*) FROM child WHERE qty = 99")
            .await,
        Value::Int(1)
    );
    let plan = src
        .db
        .explain(stmt("DELETE FROM parent", vec![]), true, &limits())
        .await
        .expect("analyze delete");
    assert!(plan.nodes[0].actual_rows.is_some());
    assert_eq!(
        src.scalar("SELECT count(*) FROM child").await,
        Value::Int(2000)
    );

    // Chunks are bounded and count the rows; a schema-only dump has no rows; dropping a dump
    // stops it and leaves the database usable.
    let mut stream = src.db.dump(false, limits()).await.expect("dump");
    let (mut chunks, mut rows) = (0, 0);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        assert!(chunk.data.len() <= 64 * 1024);
        chunks += 1;
        rows += chunk.rows;
    }
    assert!(chunks > 32, "the 1 MiB blob alone spans 32 chunks");
    assert_eq!(rows, 2000 + 2000 + 3 + 2);
    let mut schema_only = src.db.dump(true, limits()).await.expect("dump");
    let mut text = Vec::new();
    while let Some(chunk) = schema_only.next().await {
        let chunk = chunk.expect("chunk");
        assert_eq!(chunk.rows, 0);
        text.extend(chunk.data);
    }
    let text = String::from_utf8(text).expect("utf-8");
    assert!(text.contains("CREATE TABLE") && !text.contains("INSERT INTO"));
    let mut dropped = src.db.dump(false, limits()).await.expect("dump");
    dropped.next().await.expect("first chunk").expect("chunk");
    drop(dropped);
    assert_eq!(src.scalar("SELECT count(*) FROM vals").await, Value::Int(3));

    // Dump and replay into a fresh database.
    let dump = src.dump_text().await;
    assert!(dump.starts_with("-- DB-Forge dump"));
    assert!(!dump.contains("OWNER TO") && !dump.contains("COPY "));
    let dst = Db::new(&b, "insp-dst").await;
    dst.replay(crate::backend::BackendKind::Postgres, &dump)
        .await;
    assert_eq!(
        src.schema_without_estimates().await,
        dst.schema_without_estimates().await
    );
    for table in ["parent", "child", "vals"] {
        let sql = format!("SELECT * FROM {table} ORDER BY 1, 2");
        assert_eq!(src.ok(&sql).await.rows, dst.ok(&sql).await.rows, "{table}");
    }
    let hostile = "SELECT * FROM \"we\"\"ird; DROP TABLE x; --\" ORDER BY 1";
    assert_eq!(src.ok(hostile).await.rows, dst.ok(hostile).await.rows);
    let row = dst
        .ok("SELECT f, d::text FROM vals WHERE id = 2")
        .await
        .rows;
    assert_eq!(row[0][0], Value::Float(1e308));
    assert_eq!(
        row[0][1],
        Value::Text("0.000000000000000000000000000001".into())
    );
    // Sequences continue where they were.
    assert_eq!(
        dst.scalar("INSERT INTO child (pa, pb) VALUES (1, 'p1') RETURNING id")
            .await,
        Value::Int(2001)
    );
    assert_eq!(
        dst.scalar("INSERT INTO vals (t) VALUES ('next') RETURNING id")
            .await,
        Value::Int(4)
    );
    // Foreign keys came back: deleting a parent cascades.
    dst.ok("DELETE FROM parent WHERE a = 5").await;
    assert_eq!(
        dst.scalar("SELECT count(*) FROM child WHERE pa = 5").await,
        Value::Int(0)
    );
    src.drop_in(&b).await;
    dst.drop_in(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dumps_carry_user_types_and_refuse_other_schemas() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let src = Db::new(&b, "types-src").await;
    for sql in [
        "CREATE TYPE mood AS ENUM ('happy', 'it''s sad')",
        "CREATE DOMAIN cents AS integer DEFAULT 1 NOT NULL CONSTRAINT positive CHECK (VALUE > 0)",
        "CREATE DOMAIN feeling AS mood",
        "CREATE TYPE pair AS (a cents, \"B c\" text)",
        "CREATE TABLE typed (id int PRIMARY KEY, m feeling, p cents, pr pair)",
        "INSERT INTO typed VALUES (1, 'it''s sad', 5, ROW(2, 'x')), (2, NULL, 7, NULL)",
    ] {
        src.ok(sql).await;
    }
    let dump = src.dump_text().await;
    let dst = Db::new(&b, "types-dst").await;
    dst.replay(crate::backend::BackendKind::Postgres, &dump)
        .await;
    let sql = "SELECT id, m::text, p, pr::text FROM typed ORDER BY id";
    assert_eq!(src.ok(sql).await.rows, dst.ok(sql).await.rows);
    // The domain came back with its default and its rules.
    dst.ok("INSERT INTO typed (id) VALUES (3)").await;
    assert_eq!(
        dst.scalar("SELECT p FROM typed WHERE id = 3").await,
        Value::Int(1)
    );
    assert_eq!(
        kind_of(
            dst.exec("INSERT INTO typed (id, p) VALUES (4, 0)", vec![])
                .await
        ),
        QueryErrorKind::Check
    );
    assert_eq!(
        dst.scalar("SELECT enum_range(NULL::mood)::text").await,
        Value::Text("{happy,\"it's sad\"}".into())
    );

    // A table in another schema would be left out: the dump says so instead.
    src.ok("CREATE SCHEMA side").await;
    src.ok("CREATE TABLE side.kept (v int)").await;
    for dump in [
        src.db.dump(false, limits()).await,
        src.db.backup_dump(limits()).await,
    ] {
        // The refusal comes before any statement of the dump.
        let first = match dump {
            Ok(mut stream) => stream.next().await.expect("a first item").err(),
            Err(e) => Some(e),
        };
        match first {
            Some(Error::FailedPrecondition(m)) => assert!(m.contains("side (1)"), "{m}"),
            other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
        }
    }
    src.drop_in(&b).await;
    dst.drop_in(&b).await;
}

/// Read-only access through the database's read-only role.
fn read_only() -> StatementLimits {
    StatementLimits {
        read_only: true,
        ..limits()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_role_reads_only_its_own_database() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let a = Db::new(&b, "ro-own").await;
    let other = Db::new(&b, "ro-other").await;
    a.ok("CREATE SCHEMA extra").await;
    a.ok("CREATE TABLE extra.t (v bigint)").await;
    a.ok("INSERT INTO extra.t VALUES (7)").await;
    a.ok("CREATE SEQUENCE s").await;
    other.ok("CREATE TABLE secret (v text)").await;
    other.ok("INSERT INTO secret VALUES ('x')").await;
    let ro_limits = read_only();
    let ro = |sql: &str| a.db.execute(stmt(sql, vec![]), &ro_limits);

    let r = ro("SELECT v FROM extra.t").await.expect("another schema");
    assert_eq!(r.rows, vec![vec![Value::Int(7)]]);
    let r = ro("SELECT current_user::text, current_setting('transaction_read_only')")
        .await
        .expect("who");
    let ident = locator(&b, &a).ident;
    assert_eq!(
        r.rows,
        vec![vec![
            Value::Text(crate::backend::reader::reader_ident(&ident)),
            Value::Text("on".into())
        ]]
    );
    // Writes no privilege covers, and a read-only default the client switches off.
    for sql in [
        "SELECT nextval('s')",
        "SELECT lo_create(0)",
        "CREATE TEMP TABLE tmp (x int)",
        "CREATE SCHEMA mine",
        "ALTER TABLE extra.t ADD COLUMN w int",
    ] {
        assert_eq!(kind_of(ro(sql).await), QueryErrorKind::Forbidden, "{sql}");
    }
    assert!(
        matches!(
            ro("SET default_transaction_read_only = off").await,
            Err(Error::InvalidArgument { .. })
        ),
        "the gateway keeps the access mode to itself"
    );
    ro("SELECT set_config('default_transaction_read_only', 'off', false)")
        .await
        .expect("a session setting is not a write");
    assert_eq!(
        kind_of(ro("INSERT INTO extra.t VALUES (1)").await),
        QueryErrorKind::Forbidden,
        "privileges refuse it anyway"
    );
    assert_eq!(
        a.ok("SELECT count(*) FROM extra.t").await.rows,
        vec![vec![Value::Int(1)]]
    );

    // The read-only role of one database cannot even connect to another.
    let loc = locator(&b, &a);
    let other_ident = locator(&b, &other).ident;
    let opts = PgConnectOptions::from_str(&admin_url())
        .expect("url")
        .username(&crate::backend::reader::reader_ident(&loc.ident))
        .password(&loc.password)
        .database(&other_ident);
    let err = sqlx::PgConnection::connect_with(&opts)
        .await
        .expect_err("no CONNECT on another database");
    assert!(err.to_string().contains("permission denied"), "{err}");

    // A database spawned before read-only roles existed gets one when it is opened.
    drop(a.db);
    let reader = crate::backend::reader::reader_ident(&loc.ident);
    let in_db = PgConnectOptions::from_str(&admin_url())
        .expect("url")
        .database(&loc.ident);
    let mut admin = sqlx::PgConnection::connect_with(&in_db)
        .await
        .expect("admin in the spawned database");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP OWNED BY \"{reader}\"; DROP ROLE \"{reader}\""
    )))
    .execute(&mut admin)
    .await
    .expect("forget the read-only role");
    let reopened = b.open(&a.provisioned).await.expect("open");
    let r = reopened
        .execute(
            stmt("SELECT v FROM extra.t ORDER BY v", vec![]),
            &read_only(),
        )
        .await
        .expect("read after reopen");
    assert_eq!(r.rows.len(), 1);
    drop(reopened);

    drop(admin);
    b.destroy(&a.provisioned).await.expect("destroy");
    let mut admin = admin_conn().await;
    let left: Option<i64> = sqlx::query_scalar("SELECT 1::int8 FROM pg_roles WHERE rolname = $1")
        .bind(&reader)
        .fetch_optional(&mut admin)
        .await
        .expect("roles");
    assert_eq!(left, None, "destroy drops the read-only role too");
    b.destroy(&other.provisioned).await.expect("destroy");
}
