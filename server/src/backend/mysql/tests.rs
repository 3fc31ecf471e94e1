//! MySQL/MariaDB: the conformance suite, then what only a server backend has to prove: isolation
//! under attack, every type both ways, the connection cap, bounded memory while streaming a
//! million rows, cancellation on the server, and an outage with recovery.
//!
//! Each test process names its objects `dbft<pid>_…`, so parallel tests and other gateways on
//! the same server never sweep each other's. The outage test stops the server: it holds a
//! cross-process lock exclusively, the other tests hold it shared.

use std::{
    collections::BTreeSet,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use sqlx::{Connection, Row as _, mysql::MySqlConnectOptions};

use super::MysqlBackend;
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
    std::env::var("DBFORGE_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

fn prefix() -> String {
    format!("dbft{}_", std::process::id())
}

async fn server_lock(exclusive: bool) -> std::fs::File {
    crate::backend::sql::testing::server_lock("mysql", exclusive).await
}

async fn backend_with(
    prefix: &str,
    max_connections: u32,
    per_database: u32,
) -> Option<MysqlBackend> {
    let cfg = ServerBackendConfig {
        url: admin_url(),
        max_connections,
        per_database_connections: per_database,
        min_database_connections: 0,
        demand_half_life: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
    };
    let b = MysqlBackend::with_prefix(cfg, prefix)
        .await
        .expect("valid configuration");
    if !b.available() {
        conformance::unreachable("mysql", format!("{} unreachable", admin_url()));
        return None;
    }
    Some(b)
}

async fn backend() -> Option<MysqlBackend> {
    backend_with(&prefix(), 16, 4).await
}

fn hooks() -> Hooks {
    Hooks {
        slow_query: "SELECT SLEEP(60)".into(),
        // MariaDB's sequence engine streams a range without materializing it (a recursive CTE
        // would build the whole series first, and stops at max_recursive_iterations).
        series_query: "SELECT CAST(seq AS SIGNED) AS x, CONCAT('row ', seq) \
                       FROM seq_1_to_1000000000 WHERE seq <= ?"
            .into(),
        ping: "SELECT 1".into(),
        slow_setup: None,
    }
}

/// The schema and user of a spawned database.
fn locator(b: &MysqlBackend, db: &Db) -> crate::backend::sql::Locator {
    b.locator(&db.provisioned).expect("locator")
}

/// A direct admin connection, for looking at the server from outside the gateway.
async fn admin_conn() -> sqlx::MySqlConnection {
    let opts = MySqlConnectOptions::from_str(&admin_url()).expect("url");
    sqlx::MySqlConnection::connect_with(&opts)
        .await
        .expect("admin connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    conformance::run_all(Arc::new(b), &hooks()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_attacks_fail() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let a = Db::new(&b, "iso-attacker").await;
    let victim = Db::new(&b, "iso-victim").await;
    victim.ok("CREATE TABLE secret (v TEXT)").await;
    victim.ok("INSERT INTO secret VALUES ('x')").await;
    let victim_schema = locator(&b, &victim).ident;
    let mut admin = admin_conn().await;
    let admin_id: u64 = sqlx::query("SELECT CONNECTION_ID()")
        .fetch_one(&mut admin)
        .await
        .expect("id")
        .get(0);

    for sql in [
        format!("SELECT * FROM `{victim_schema}`.secret"),
        format!("INSERT INTO `{victim_schema}`.secret VALUES ('y')"),
        "SELECT * FROM mysql.user".to_owned(),
        "CREATE DATABASE escape".to_owned(),
        "CREATE USER 'escape'@'%'".to_owned(),
        "GRANT ALL PRIVILEGES ON *.* TO CURRENT_USER".to_owned(),
        "SET GLOBAL max_connections = 1".to_owned(),
        "SELECT 1 INTO OUTFILE '/tmp/dbforge-escape'".to_owned(),
        format!("KILL {admin_id}"),
    ] {
        assert_eq!(
            kind_of(a.exec(&sql, vec![]).await),
            QueryErrorKind::Forbidden,
            "{sql}"
        );
    }
    // Without FILE, the server's files read as NULL.
    assert_eq!(
        a.scalar("SELECT LOAD_FILE('/etc/passwd')").await,
        Value::Null
    );
    // Client-side files cannot be requested either.
    assert!(matches!(
        a.exec("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t", vec![])
            .await,
        Err(Error::Query { .. })
    ));
    let visible = a.ok("SHOW DATABASES").await;
    assert!(
        !visible
            .rows
            .iter()
            .any(|r| r[0] == Value::Text(victim_schema.clone())),
        "{visible:?}"
    );
    // Even with its own password, the attacker cannot open the victim's schema.
    let creds = locator(&b, &a);
    let opts = MySqlConnectOptions::from_str(&admin_url())
        .expect("url")
        .username(&creds.ident)
        .password(&creds.password)
        .database(&victim_schema);
    let err = sqlx::MySqlConnection::connect_with(&opts)
        .await
        .expect_err("no access to another schema");
    assert!(err.to_string().contains("denied"), "{err}");
    for sql in [
        "BEGIN",
        "COMMIT",
        "START TRANSACTION",
        "SET autocommit = 0",
        "LOCK TABLES secret WRITE",
        "XA START 'x'",
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
        victim.scalar("SELECT COUNT(*) FROM secret").await,
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
    db.ok(
        "CREATE TABLE t (flag BOOLEAN, ti TINYINT, si SMALLINT, mi MEDIUMINT, i INT, bi BIGINT, \
         ubi BIGINT UNSIGNED, ui INT UNSIGNED, f FLOAT, d DOUBLE, dc DECIMAL(40, 10), \
         c CHAR(36), vc VARCHAR(20), tx TEXT, lt LONGTEXT COLLATE utf8mb4_bin, \
         vb VARBINARY(10), bl BLOB, j JSON, u UUID, dt DATE, dtm DATETIME(6), \
         ts TIMESTAMP(6) NULL, tm TIME(6), y YEAR, e ENUM('a', 'b'), bt BIT(9))",
    )
    .await;
    let ts = time::macros::datetime!(2024-02-29 13:45:01.123456 UTC);
    let uuid = "7d444840-9dc0-11d1-b245-5ffdce74fad2";
    let written = vec![
        Value::Bool(true),
        Value::Int(-128),
        Value::Int(-32768),
        Value::Int(-8_388_608),
        Value::Int(i32::MIN.into()),
        Value::Int(i64::MIN),
        Value::Decimal("18446744073709551615".into()),
        Value::Int(4_294_967_295),
        Value::Float(0.1),
        Value::Float(-1e300),
        Value::Decimal("123456789012345678901234567890.0123456789".into()),
        Value::Text(uuid.into()),
        Value::Text("héllo ✓".into()),
        Value::Text("'quoted' \\ text".into()),
        Value::Text("binary collation is still text".into()),
        Value::Bytes(vec![0, 1, 127, 128, 255]),
        Value::Bytes(vec![9; 300]),
        Value::Json(r#"{"a": [1, 2]}"#.into()),
        Value::Uuid(uuid.into()),
        Value::Date(time::macros::date!(2024 - 02 - 29)),
        Value::Timestamp(ts),
        Value::Timestamp(ts),
        Value::Time(time::macros::time!(23:59:59.999999)),
        Value::Int(2024),
        Value::Text("b".into()),
        Value::Int(257),
    ];
    let insert = format!(
        "INSERT INTO t VALUES ({})",
        vec!["?"; written.len()].join(", ")
    );
    let r = db.exec(&insert, written.clone()).await.expect("insert");
    assert_eq!(r.rows_affected, 1);
    db.exec(&insert, vec![Value::Null; written.len()])
        .await
        .expect("insert nulls");

    let r = db.ok("SELECT * FROM t WHERE flag IS NOT NULL").await;
    for ((col, want), got) in r.columns.iter().zip(&written).zip(&r.rows[0]) {
        let same = match (want, got) {
            // The server normalizes JSON text.
            (Value::Json(a), Value::Json(b)) => a.replace(' ', "") == b.replace(' ', ""),
            _ => want == got,
        };
        assert!(same, "column {}: wrote {want:?}, read {got:?}", col.name);
    }
    use ValueKind as K;
    let kinds: Vec<ValueKind> = r.columns.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        vec![
            K::Bool,
            K::Int,
            K::Int,
            K::Int,
            K::Int,
            K::Int,
            K::Decimal,
            K::Int,
            K::Float,
            K::Float,
            K::Decimal,
            K::Text,
            K::Text,
            K::Text,
            K::Text,
            K::Bytes,
            K::Bytes,
            K::Json,
            K::Uuid,
            K::Date,
            K::Timestamp,
            K::Timestamp,
            K::Time,
            K::Int,
            K::Text,
            K::Int,
        ]
    );
    let declared = |name: &str| {
        r.columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.declared_type.clone())
            .expect("column")
    };
    assert_eq!(declared("flag"), "BOOLEAN");
    assert_eq!(declared("j"), "JSON");
    assert_eq!(declared("u"), "UUID");
    assert_eq!(declared("c"), "CHAR(36)");
    let r = db.ok("SELECT * FROM t WHERE flag IS NULL").await;
    assert!(
        r.rows[0].iter().all(|v| *v == Value::Null),
        "{:?}",
        r.rows[0]
    );

    // Decimals bind as DECIMAL and keep every digit through arithmetic.
    let r = db
        .exec(
            "SELECT ? * 2",
            vec![Value::Decimal("0.1000000000000000000001".into())],
        )
        .await
        .expect("exact arithmetic");
    assert_eq!(
        r.rows[0][0],
        Value::Decimal("0.2000000000000000000002".into())
    );
    let r = db
        .exec("SELECT ?, ?", vec![Value::Timestamp(ts), Value::Int(7)])
        .await
        .expect("typed parameters");
    assert_eq!(r.rows[0], vec![Value::Timestamp(ts), Value::Int(7)]);
    assert_eq!(
        db.scalar("SELECT CAST('-26:03:04' AS TIME)").await,
        Value::Text("-26:03:04".into())
    );
    assert!(matches!(
        db.exec("SELECT ?", vec![Value::Array(vec![Value::Int(1)])])
            .await,
        Err(Error::InvalidArgument {
            field: "params",
            ..
        })
    ));
    assert!(matches!(
        db.exec("SELECT ?", vec![Value::Int(1), Value::Int(2)])
            .await,
        Err(Error::InvalidArgument {
            field: "params",
            ..
        })
    ));
    // The JSON check MariaDB puts on a JSON column is enforced.
    assert_eq!(
        kind_of(
            db.exec(
                "INSERT INTO t (j) VALUES (?)",
                vec![Value::Json("{not json".into())]
            )
            .await
        ),
        QueryErrorKind::Check
    );
    db.drop_in(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_apply_whole_and_reads_stop_early() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    assert!(b.capabilities().returning, "MariaDB 10.5+ has RETURNING");
    let db = Db::new(&b, "rw").await;
    db.ok("CREATE TABLE w (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT)")
        .await;
    let r = db
        .exec("INSERT INTO w (v) VALUES (?)", vec![Value::Int(1)])
        .await
        .expect("insert");
    assert_eq!((r.rows_affected, r.last_insert_id), (1, Some(1)));
    let insert4 = "INSERT INTO w (v) SELECT seq FROM seq_1_to_4 RETURNING v";
    let r = db.ok(insert4).await;
    assert_eq!((r.rows.len(), r.rows_affected), (4, 4));
    let r = db.ok("SELECT * FROM w").await;
    assert_eq!(
        (r.rows.len(), r.rows_affected),
        (5, 0),
        "a read changes nothing"
    );

    let small = StatementLimits {
        max_rows: 3,
        ..limits()
    };
    let err = db
        .db
        .execute(stmt(insert4, vec![]), &small)
        .await
        .expect_err("limit");
    assert!(matches!(err, Error::LimitExceeded(_)), "{err:?}");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM w").await, Value::Int(5));

    let mut s = db
        .db
        .query(
            stmt(
                "INSERT INTO w (v) SELECT seq FROM seq_1_to_10 RETURNING v",
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
    assert_eq!(db.scalar("SELECT COUNT(*) FROM w").await, Value::Int(15));

    let started = Instant::now();
    let mut s = db
        .db
        .query(
            stmt(&hooks().series_query, vec![Value::Int(50_000_000)]),
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
    db.ok("CREATE TABLE s (id INT PRIMARY KEY)").await;
    let ins = |v: i64| stmt("INSERT INTO s VALUES (?)", vec![Value::Int(v)]);
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
    assert_eq!(
        kind_of(sess.execute(ins(1)).await),
        QueryErrorKind::UniqueViolation
    );
    let err = sess
        .execute(stmt("SELECT seq FROM seq_1_to_5", vec![]))
        .await
        .expect_err("row limit");
    assert!(matches!(err, Error::LimitExceeded(_)), "{err:?}");
    assert!(sess.in_transaction());
    sess.execute(ins(2)).await.expect("insert after errors");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM s").await, Value::Int(0));
    sess.commit().await.expect("commit");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM s").await, Value::Int(2));

    // DDL commits implicitly (MySQL), but what follows it stays in the session's transaction.
    sess.begin().await.expect("begin");
    sess.execute(ins(3)).await.expect("insert");
    sess.execute(stmt("CREATE TABLE other (v INT)", vec![]))
        .await
        .expect("ddl");
    sess.execute(ins(4)).await.expect("insert");
    sess.rollback().await.expect("rollback");
    let r = db.ok("SELECT id FROM s ORDER BY id").await;
    assert_eq!(
        r.rows,
        vec![
            vec![Value::Int(1)],
            vec![Value::Int(2)],
            vec![Value::Int(3)]
        ]
    );
    drop(sess);
    db.drop_in(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_overdue_statements_stop_on_the_server() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let db = Db::new(&b, "cancel").await;
    let user = locator(&b, &db).ident;
    let mut admin = admin_conn().await;
    let running = |marker: &'static str| {
        sqlx::query(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE USER = ? AND COMMAND = 'Execute' AND INFO LIKE ?",
        )
        .bind(user.clone())
        .bind(format!("%{marker}%"))
    };
    // The header waits for the first row on MySQL, so the stream is dropped unread.
    let s = db
        .db
        .query(
            stmt("SELECT SLEEP(30) AS drop_marker", vec![]),
            Limits::default().stream(0),
        )
        .await
        .expect("query");
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
        .execute(stmt("SET SESSION max_statement_time = 0", vec![]), &short)
        .await
        .expect("set");
    let started = Instant::now();
    let err = db
        .db
        .execute(stmt("SELECT SLEEP(30) AS overdue_marker", vec![]), &short)
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
    let prefix = format!("dbft{}c_", std::process::id());
    let Some(b) = backend_with(&prefix, 6, 2).await else {
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
                let n: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER LIKE ?",
                )
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
                    stmt("SELECT SLEEP(0.2), ?", vec![Value::Int(round)]),
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
    let prefix = format!("dbft{}o_", std::process::id());
    let Some(b) = backend_with(&prefix, 8, 2).await else {
        return;
    };
    let kept = Db::new(&b, "kept").await;
    kept.ok("CREATE TABLE k (v INT)").await;
    let lost = Db::new(&b, "lost").await;
    // A spawn that crashed after creating its user only.
    let half = b.locate(&DatabaseName::parse("half").expect("name"));
    let half_ident = b.locator(&half).expect("locator").ident;
    let mut admin = admin_conn().await;
    let create_half = format!("CREATE USER '{half_ident}'@'%'");
    sqlx::raw_sql(sqlx::AssertSqlSafe(create_half.clone()))
        .execute(&mut admin)
        .await
        .expect("half user");
    b.destroy(&half)
        .await
        .expect("destroy tolerates the half state");
    sqlx::raw_sql(sqlx::AssertSqlSafe(create_half))
        .execute(&mut admin)
        .await
        .expect("half user again");

    let removed = b
        .remove_orphans(std::slice::from_ref(&kept.provisioned))
        .await
        .expect("sweep");
    assert_eq!(removed, 2, "the lost database and the half-made user");
    let pattern = crate::backend::sql::text::like_prefix(&prefix);
    // Read-only users carry the prefix with its last `_` written `-` (see `reader_ident`).
    let readers =
        crate::backend::sql::text::like_prefix(&crate::backend::reader::reader_ident(&prefix));
    let left: BTreeSet<String> = sqlx::query(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ? \
         UNION SELECT User FROM mysql.user WHERE User LIKE ? OR User LIKE ?",
    )
    .bind(&pattern)
    .bind(&pattern)
    .bind(&readers)
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
        "the lost database's read-only user went with it"
    );
    assert_eq!(kept.scalar("SELECT COUNT(*) FROM k").await, Value::Int(0));
    drop(lost.db);
    kept.drop_in(&b).await;
}

/// Starts MariaDB when dropped (and waits until it answers), so that a failing test leaves it
/// running.
struct Restart;

impl Restart {
    fn start(&self) {
        let _ = std::process::Command::new("start-stop-daemon")
            .args([
                "--start",
                "--oknodo",
                "--background",
                "--exec",
                "/usr/sbin/mariadbd",
            ])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ping = std::process::Command::new("mariadb-admin")
                .args(["-uroot", "ping"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            if ping.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Restart {
    fn drop(&mut self) {
        self.start();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_fails_fast_and_recovers() {
    if !std::path::Path::new("/usr/sbin/mariadbd").exists() {
        conformance::unreachable("mysql", "no local MariaDB to stop (/usr/sbin/mariadbd)");
        return;
    }
    let _lock = server_lock(true).await;
    let Some(b) = backend().await else { return };
    let db = Db::new(&b, "outage").await;
    assert_eq!(db.scalar("SELECT 1").await, Value::Int(1));

    let restart = Restart;
    let stopped = std::process::Command::new("mariadb-admin")
        .args(["-uroot", "shutdown"])
        .status()
        .expect("mariadb-admin");
    assert!(stopped.success(), "mariadb-admin shutdown");
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

    tokio::task::spawn_blocking(move || restart.start())
        .await
        .expect("start");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !b.available() {
        assert!(Instant::now() < deadline, "never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(db.scalar("SELECT 1").await, Value::Int(1));
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
        url: "mysql://root@127.0.0.1:1".into(),
        max_connections: 4,
        per_database_connections: 2,
        min_database_connections: 0,
        demand_half_life: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
    };
    let b = MysqlBackend::with_prefix(cfg, &prefix())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_explain_and_dump_round_trip() {
    use crate::core::schema::{ForeignKeySchema, TableKind};
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let src = Db::new(&b, "insp-src").await;
    for sql in [
        "CREATE TABLE parent (a INT, b VARCHAR(20), PRIMARY KEY (b, a))",
        "CREATE TABLE child (id INT AUTO_INCREMENT PRIMARY KEY, pa INT NOT NULL, \
         pb VARCHAR(20) NOT NULL, code VARCHAR(20), qty INT, \
         CONSTRAINT child_code UNIQUE (code), CONSTRAINT qty_positive CHECK (qty > 0), \
         CONSTRAINT child_parent FOREIGN KEY (pb, pa) REFERENCES parent (b, a) ON DELETE CASCADE, \
         INDEX child_qty (qty))",
        "CREATE VIEW big AS SELECT id, qty FROM child WHERE qty > 10",
        "CREATE VIEW bigger AS SELECT id FROM big WHERE qty > 20",
        "CREATE TABLE vals (id BIGINT AUTO_INCREMENT PRIMARY KEY, t LONGTEXT, f DOUBLE, \
         d DECIMAL(65, 30), ts DATETIME(6), j JSON, blob_ LONGBLOB, flag TINYINT(1))",
        "CREATE TABLE `we\"ird; DROP TABLE x; --` (`co``l\"` INT, note TEXT)",
        "CREATE TABLE `back``tick` (v INT)",
        "INSERT INTO `back``tick` VALUES (7)",
        "INSERT INTO `we\"ird; DROP TABLE x; --` VALUES (1, 'semi; colon'), (NULL, NULL)",
        "CREATE TRIGGER child_bi BEFORE INSERT ON child FOR EACH ROW \
         BEGIN IF NEW.code IS NULL THEN SET NEW.code = CONCAT('auto', NEW.pa); END IF; END",
    ] {
        src.ok(sql).await;
    }
    // MariaDB's sequence engine; the rows the PostgreSQL test makes with generate_series.
    src.ok("INSERT INTO parent SELECT seq, CONCAT('p', seq) FROM seq_1_to_300")
        .await;
    src.ok("INSERT INTO child (pa, pb, code, qty) \
         SELECT seq, CONCAT('p', seq), CONCAT('c', seq), seq FROM seq_1_to_300")
        .await;
    src.ok("ANALYZE TABLE parent, child").await;
    let blob: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let ts = time::OffsetDateTime::from_unix_timestamp_nanos(1_709_210_096_789_012_000)
        .expect("timestamp");
    for r in [
        vec![
            Value::Text("it's \"quoted\"\nline 2\tünïcødé 😀 \\ back'".into()),
            Value::Float(0.1),
            Value::Decimal("12345678901234567890.123456789012345678901234567890".into()),
            Value::Timestamp(ts),
            Value::Json(r#"{"a": [1, "x\"y"], "é": null}"#.into()),
            Value::Bytes(blob),
            Value::Int(5),
        ],
        vec![
            Value::Text(String::new()),
            Value::Float(1e308),
            Value::Decimal("0.000000000000000000000000000001".into()),
            Value::Null,
            Value::Null,
            Value::Bytes(vec![0, 39, 92, 255]),
            Value::Int(0),
        ],
        vec![Value::Null; 7],
    ] {
        src.exec(
            "INSERT INTO vals (t, f, d, ts, j, blob_, flag) VALUES (?, ?, ?, ?, ?, ?, ?)",
            r,
        )
        .await
        .expect("insert vals");
    }

    // Schema.
    let schema = src.db.schema(None, &limits()).await.expect("schema");
    let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "back`tick",
            "big",
            "bigger",
            "child",
            "parent",
            "vals",
            HOSTILE
        ]
    );
    assert_eq!(schema.tables[4].primary_key, vec!["b", "a"]);
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
        ("int(11)", ValueKind::Int, false, true, true)
    );
    assert_eq!(
        child.foreign_keys,
        vec![ForeignKeySchema {
            name: "child_parent".into(),
            columns: vec!["pb".into(), "pa".into()],
            referenced_table: "parent".into(),
            referenced_columns: vec!["b".into(), "a".into()],
            on_update: "RESTRICT".into(),
            on_delete: "CASCADE".into(),
        }]
    );
    assert_eq!(child.uniques.len(), 1);
    assert_eq!(child.uniques[0].columns, vec!["code"]);
    assert_eq!(child.checks.len(), 1);
    assert_eq!(child.checks[0].name, "qty_positive");
    assert_eq!(child.checks[0].expression, "`qty` > 0");
    assert!(child.definition.starts_with("CREATE TABLE `child`"));
    let idx: Vec<(&str, bool, bool)> = child
        .indexes
        .iter()
        .map(|i| (i.name.as_str(), i.unique, i.primary))
        .collect();
    assert!(idx.contains(&("PRIMARY", true, true)), "{idx:?}");
    assert!(idx.contains(&("child_code", true, false)), "{idx:?}");
    assert!(idx.contains(&("child_qty", false, false)), "{idx:?}");
    assert_eq!(child.row_estimate, Some(300));
    let big = &schema.tables[1];
    assert_eq!(big.kind, TableKind::View);
    assert!(big.definition.contains("> 10"), "{}", big.definition);
    let vals = &schema.tables[5];
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
            ValueKind::Bytes,
            ValueKind::Bool
        ]
    );
    assert!(matches!(
        src.db.schema(Some("nope"), &limits()).await,
        Err(Error::NotFound { .. })
    ));

    // Explain.
    let plan = src
        .db
        .explain(
            stmt("SELECT * FROM child WHERE qty + 0 = ?", vec![Value::Int(7)]),
            false,
            &limits(),
        )
        .await
        .expect("explain");
    assert_eq!(plan.full_scans(), vec!["child"], "{}", plan.raw);
    let plan = src
        .db
        .explain(
            stmt("SELECT * FROM child WHERE id = ?", vec![Value::Int(7)]),
            false,
            &limits(),
        )
        .await
        .expect("explain");
    assert!(plan.full_scans().is_empty(), "{}", plan.raw);
    let plan = src
        .db
        .explain(
            stmt("SELECT * FROM child WHERE qty BETWEEN 5 AND 6", vec![]),
            false,
            &limits(),
        )
        .await
        .expect("explain");
    let node = &plan.nodes[0].children[0];
    assert_eq!(
        (node.operation.as_str(), node.relation.as_str()),
        ("range", "child"),
        "{}",
        plan.raw
    );
    assert!(node.detail.contains("child_qty"));

    // Analyze runs the statement and undoes it; DDL is refused.
    let plan = src
        .db
        .explain(stmt("UPDATE child SET qty = 99", vec![]), true, &limits())
        .await
        .expect("analyze");
    assert_eq!(plan.nodes[0].children[0].relation, "child", "{}", plan.raw);
    assert_eq!(
        plan.nodes[0].children[0].actual_rows,
        Some(300.0),
        "{}",
        plan.raw
    );
    assert_eq!(
        src.scalar("SELECT count(*) FROM child WHERE qty = 99")
            .await,
        Value::Int(1)
    );
    assert!(matches!(
        src.db
            .explain(stmt("DROP TABLE child", vec![]), true, &limits())
            .await,
        Err(Error::InvalidArgument { .. })
    ));

    // Dump and replay into a fresh database.
    let dump = src.dump_text().await;
    assert!(dump.starts_with("-- DB-Forge dump"));
    assert!(
        dump.contains("SET FOREIGN_KEY_CHECKS=0;\n")
            && dump.ends_with("SET FOREIGN_KEY_CHECKS=1;\n")
    );
    assert!(!dump.contains("DEFINER"));
    let dst = Db::new(&b, "insp-dst").await;
    dst.replay(crate::backend::BackendKind::Mysql, &dump).await;
    assert_eq!(
        src.schema_without_estimates().await,
        dst.schema_without_estimates().await
    );
    for table in [
        "parent",
        "child",
        "vals",
        "`back``tick`",
        "`we\"ird; DROP TABLE x; --`",
    ] {
        let sql = format!("SELECT * FROM {table} ORDER BY 1");
        assert_eq!(src.ok(&sql).await.rows, dst.ok(&sql).await.rows, "{table}");
    }
    let row = dst
        .ok("SELECT f, CAST(d AS CHAR), flag + 0 FROM vals WHERE id = 1")
        .await
        .rows;
    assert_eq!(row[0][0], Value::Float(0.1));
    assert_eq!(row[0][2], Value::Int(5));
    let row = dst.ok("SELECT f FROM vals WHERE id = 2").await.rows;
    assert_eq!(row[0][0], Value::Float(1e308));
    // AUTO_INCREMENT continues where it was (InnoDB reserves ids in blocks for bulk inserts,
    // so "where it was" is the source's counter, not max(id) + 1); the trigger came back.
    let insert = "INSERT INTO child (pa, pb) VALUES (1, 'p1')";
    let next = dst
        .exec(insert, vec![])
        .await
        .expect("insert")
        .last_insert_id;
    let want = src
        .exec(insert, vec![])
        .await
        .expect("insert")
        .last_insert_id;
    assert!(next.is_some_and(|n| n > 300));
    assert_eq!(next, want);
    assert_eq!(
        dst.scalar("SELECT code FROM child ORDER BY id DESC LIMIT 1")
            .await,
        Value::Text("auto1".into())
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

/// Read-only access through the database's read-only user.
fn read_only() -> crate::backend::StatementLimits {
    crate::backend::StatementLimits {
        read_only: true,
        ..limits()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_user_reads_only_its_own_schema() {
    let _lock = server_lock(false).await;
    let Some(b) = backend().await else { return };
    let a = Db::new(&b, "ro-own").await;
    let other = Db::new(&b, "ro-other").await;
    a.ok("CREATE TABLE t (v BIGINT)").await;
    a.ok("INSERT INTO t VALUES (7)").await;
    a.ok("CREATE VIEW tv AS SELECT v * 2 AS w FROM t").await;
    a.ok("CREATE PROCEDURE bump() MODIFIES SQL DATA INSERT INTO t VALUES (8)")
        .await;
    other.ok("CREATE TABLE secret (v TEXT)").await;
    other.ok("INSERT INTO secret VALUES ('x')").await;
    let limits = read_only();
    let ro = |sql: String| a.db.execute(stmt(&sql, vec![]), &limits);

    let r = ro("SELECT v FROM t".into()).await.expect("read");
    assert_eq!(r.rows, vec![vec![Value::Int(7)]]);
    let r = ro("SELECT w FROM tv".into()).await.expect("a view");
    assert_eq!(r.rows, vec![vec![Value::Int(14)]]);
    let ident = locator(&b, &a).ident;
    let r = ro("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)".into())
        .await
        .expect("who");
    assert_eq!(
        r.rows,
        vec![vec![Value::Text(crate::backend::reader::reader_ident(
            &ident
        ))]]
    );
    let other_ident = locator(&b, &other).ident;
    for sql in [
        "CALL bump()".to_owned(),
        "CREATE TEMPORARY TABLE tmp (x INT)".to_owned(),
        "SELECT v FROM t INTO OUTFILE '/tmp/dbforge-ro-escape'".to_owned(),
        "GRANT SELECT ON t TO CURRENT_USER".to_owned(),
        format!("SELECT * FROM `{other_ident}`.secret"),
        format!("INSERT INTO `{other_ident}`.secret VALUES ('y')"),
    ] {
        assert_eq!(
            kind_of(ro(sql.clone()).await),
            QueryErrorKind::Forbidden,
            "{sql}"
        );
    }
    assert_eq!(a.scalar("SELECT COUNT(*) FROM t").await, Value::Int(1));
    assert_eq!(
        other.scalar("SELECT COUNT(*) FROM secret").await,
        Value::Int(1)
    );

    // A database spawned before read-only users existed gets one on its first read-only call.
    let reader = crate::backend::reader::reader_ident(&ident);
    drop(a.db);
    let mut admin = admin_conn().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP USER '{reader}'@'%'")))
        .execute(&mut admin)
        .await
        .expect("forget the read-only user");
    let reopened = b.open(&a.provisioned).await.expect("open");
    let r = reopened
        .execute(stmt("SELECT v FROM t", vec![]), &read_only())
        .await
        .expect("read after reopen");
    assert_eq!(r.rows, vec![vec![Value::Int(7)]]);
    drop(reopened);

    b.destroy(&a.provisioned).await.expect("destroy");
    let left: Vec<String> = sqlx::query_scalar("SELECT User FROM mysql.user WHERE User = ?")
        .bind(&reader)
        .fetch_all(&mut admin)
        .await
        .expect("users");
    assert!(left.is_empty(), "destroy drops the read-only user too");
    b.destroy(&other.provisioned).await.expect("destroy");
}
