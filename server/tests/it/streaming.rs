//! QueryService.Query and the stream contract: header, batches, summary, limits, cancellation,
//! bounded memory.

use std::time::Duration;

use dbforge::{Code, Truncation, Value, params};
use futures::{StreamExt, TryStreamExt};

use crate::harness::{ServerProcess, TestServer, assert_code};

const SERIES: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT x, 'row ' || x AS label FROM c";

#[tokio::test]
async fn header_batches_summary() {
    let s = TestServer::start().await;
    let db = s.db("stream").await;
    let mut rows = s
        .client
        .query(&db, SERIES, &params![10_000])
        .await
        .expect("query");
    let names: Vec<_> = rows.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["x", "label"]);
    let mut expected = 1;
    while let Some(row) = rows.next().await {
        let row = row.expect("row");
        assert_eq!(row.get::<i64>(0).expect("x"), expected);
        assert_eq!(
            row.get::<String>(1).expect("label"),
            format!("row {expected}")
        );
        expected += 1;
    }
    assert_eq!(expected, 10_001);
    let summary = rows.summary().expect("summary after the last row");
    assert_eq!(summary.row_count, 10_000);
    assert_eq!(summary.truncation, Truncation::Unspecified);
}

#[tokio::test]
async fn row_limits_truncate_with_a_summary() {
    let s = TestServer::with(|mut c| {
        c.max_rows = 500;
        c
    })
    .await;
    let db = s.db("trunc").await;
    let mut rows = s
        .client
        .query_limited(&db, SERIES, &params![1000], 100)
        .await
        .expect("query");
    assert_eq!(rows.collect_rows().await.expect("rows").len(), 100);
    assert_eq!(
        rows.summary().expect("summary").truncation,
        Truncation::RowLimit
    );
    // The request cannot raise the server's limit.
    let mut rows = s
        .client
        .query_limited(&db, SERIES, &params![1000], 10_000)
        .await
        .expect("query");
    assert_eq!(rows.collect_rows().await.expect("rows").len(), 500);
    assert_eq!(
        rows.summary().expect("summary").truncation,
        Truncation::RowLimit
    );
}

#[tokio::test]
async fn byte_limit_truncates() {
    let s = TestServer::with(|mut c| {
        c.max_stream_bytes = 100_000;
        c
    })
    .await;
    let db = s.db("bytes").await;
    let mut rows = s
        .client
        .query(&db, SERIES, &params![100_000])
        .await
        .expect("query");
    let n = rows.collect_rows().await.expect("rows").len();
    assert!(n > 1000 && n < 100_000, "cut by bytes after {n} rows");
    assert_eq!(
        rows.summary().expect("summary").truncation,
        Truncation::ByteLimit
    );
}

#[tokio::test]
async fn writing_query_streams_returning_rows_and_commits() {
    let s = TestServer::start().await;
    let db = s.db("wq").await;
    s.client
        .execute(&db, "CREATE TABLE t (x INTEGER)", &[])
        .await
        .expect("ddl");
    let rows: Vec<_> = s
        .client
        .query(&db, "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50) SELECT x FROM c RETURNING x", &[])
        .await
        .expect("query")
        .try_collect()
        .await
        .expect("rows");
    assert_eq!(rows.len(), 50);
    let r = s
        .client
        .execute(&db, "SELECT count(*) FROM t", &[])
        .await
        .expect("count");
    assert_eq!(r.rows[0].values(), &[Value::Int(50)]);
}

#[tokio::test]
async fn errors_mid_stream_and_before_rows() {
    let s = TestServer::start().await;
    let db = s.db("serr").await;
    assert_code(
        s.client.query(&db, "SELECT * FROM nowhere", &[]).await,
        Code::InvalidArgument,
    );
    assert_code(
        s.client.query(&db, "ATTACH 'x' AS y", &[]).await,
        Code::PermissionDenied,
    );
}

#[tokio::test]
async fn cancelling_a_stream_stops_the_query() {
    // One reader connection: if the cancelled query kept running it would hold it.
    let s = TestServer::with(|mut c| {
        c.sqlite_readers = 1;
        c.statement_timeout = Duration::from_secs(60);
        c
    })
    .await;
    let db = s.db("cancel").await;
    let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c";
    let mut rows = s.client.query(&db, endless, &[]).await.expect("query");
    rows.next().await.expect("a row").expect("ok");
    drop(rows);
    let next = tokio::time::timeout(
        Duration::from_secs(10),
        s.client.execute(&db, "SELECT 42", &[]),
    )
    .await
    .expect("the reader was released by the cancellation")
    .expect("query");
    assert_eq!(next.rows[0].values(), &[Value::Int(42)]);
}

/// The server streams a result far larger than its memory budget while a client reads it; its
/// peak RSS stays bounded by the stream buffer, not the result size.
#[tokio::test]
async fn million_row_stream_keeps_server_memory_bounded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::spawn(dir.path(), &[]);
    let client = server.client().await;
    client
        .create_database("big", Default::default())
        .await
        .expect("create");
    let baseline = server.memory_kib("VmRSS");
    // ~230 MB of row data: 1,000,000 rows with a 200-byte text each.
    let mut rows = client
        .query(
            "big",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) \
             SELECT x, printf('%0200d', x) FROM c",
            &[],
        )
        .await
        .expect("query");
    let mut n = 0u64;
    let mut bytes = 0usize;
    while let Some(row) = rows.next().await {
        let row = row.expect("row");
        if let Value::Text(t) = &row.values()[1] {
            bytes += t.len();
        }
        n += 1;
    }
    assert_eq!(n, 1_000_000);
    assert_eq!(rows.summary().expect("summary").row_count, 1_000_000);
    assert!(bytes >= 200_000_000);
    let peak = server.memory_kib("VmHWM");
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    eprintln!(
        "server RSS baseline {} MiB, peak {} MiB",
        baseline / 1024,
        peak / 1024
    );
    assert!(
        growth_mib < 64,
        "server memory grew by {growth_mib} MiB while streaming ~200 MiB"
    );
    assert!(server.terminate().await, "graceful exit");
}

/// The client's timeout bounds the whole stream, not only the call until it starts.
#[tokio::test]
async fn the_client_timeout_bounds_the_whole_stream() {
    let s = TestServer::start().await;
    let db = s.db("deadline").await;
    let client = dbforge::Client::connect_with(
        dbforge::ClientOptions::new(format!("http://{}", s.addr))
            .timeout(Duration::from_millis(300)),
    )
    .await
    .expect("connect");
    let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c";
    let started = std::time::Instant::now();
    let mut rows = client.query(&db, endless, &[]).await.expect("query starts");
    let err = loop {
        match rows.next().await {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break e,
            None => panic!("an endless result ended"),
        }
    };
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A client that cancels while the statement is still computing its first row stops it too.
#[tokio::test]
async fn cancelling_before_the_first_row_stops_the_statement() {
    let s = TestServer::with(|mut c| {
        c.sqlite_readers = 1;
        c.statement_timeout = Duration::from_secs(60);
        c
    })
    .await;
    let db = s.db("agg").await;
    let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT count(*) FROM c";
    let client = s.client.clone();
    let db2 = db.clone();
    let pending = tokio::spawn(async move {
        let mut rows = client.query(&db2, slow, &[]).await?;
        rows.next().await.transpose()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    pending.abort();
    let next = tokio::time::timeout(
        Duration::from_secs(10),
        s.client.execute(&db, "SELECT 7", &[]),
    )
    .await
    .expect("the only reader was freed by the cancellation")
    .expect("query");
    assert_eq!(next.rows[0].values(), &[Value::Int(7)]);
}

/// `max_bytes` cuts a stream by the size of its rows, and the summary says so; `read_only`
/// runs on the read-only login, so the engine refuses a write. On every engine.
async fn byte_budget_and_read_only(s: &TestServer, backend: dbforge::Backend, series: &str) {
    use dbforge::{CreateOptions, QueryOptions};
    let c = &s.client;
    let db = crate::harness::unique("budget");
    c.create_database(&db, CreateOptions::default().backend(backend))
        .await
        .expect("spawn");
    let opts = QueryOptions {
        max_bytes: 2_000,
        ..QueryOptions::default()
    };
    let mut rows = c.query_with(&db, series, &[], opts).await.expect("query");
    let mut n = 0u64;
    while let Some(row) = rows.next().await {
        row.expect("row");
        n += 1;
    }
    let summary = rows.summary().expect("summary").clone();
    assert_eq!(summary.truncation, Truncation::ByteLimit, "{summary:?}");
    assert!(n > 10 && n < 1_000, "{n} rows within 2,000 bytes");
    assert_eq!(summary.row_count, n);
    if backend != dbforge::Backend::Redis {
        c.execute(&db, "CREATE TABLE t (a INT)", &[])
            .await
            .expect("create");
        let read_only = QueryOptions {
            read_only: true,
            ..QueryOptions::default()
        };
        let mut write = c
            .query_with(&db, "INSERT INTO t (a) VALUES (1)", &[], read_only)
            .await;
        if let Ok(rows) = &mut write {
            while rows.next().await.is_some_and(|r| r.is_ok()) {}
            assert!(rows.summary().is_none(), "a read-only query wrote");
        }
        let left = c
            .execute(&db, "SELECT count(*) FROM t", &[])
            .await
            .expect("count");
        assert_eq!(left.rows[0].values(), &[Value::Int(0)]);
    }
}

#[tokio::test]
async fn byte_budgets_and_read_only_queries_on_every_engine() {
    let s = TestServer::start().await;
    let series = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) \
                  SELECT x, 'row ' || x AS label FROM c";
    byte_budget_and_read_only(&s, dbforge::Backend::Sqlite, series).await;
    if let Some(url) = crate::harness::postgres_url().await {
        let s = crate::harness::serving(dbforge::Backend::Postgres, url).await;
        let pg = "SELECT x, 'row ' || x AS label FROM generate_series(1, 10000) AS x";
        byte_budget_and_read_only(&s, dbforge::Backend::Postgres, pg).await;
    }
    if let Some(url) = crate::harness::mysql_url().await {
        let s = crate::harness::serving(dbforge::Backend::Mysql, url).await;
        let my = "SELECT seq AS x, CONCAT('row ', seq) AS label FROM seq_1_to_10000";
        byte_budget_and_read_only(&s, dbforge::Backend::Mysql, my).await;
    }
    if let Some(url) = crate::harness::redis_url().await {
        let s = crate::harness::serving(dbforge::Backend::Redis, url).await;
        let c = &s.client;
        // One list of 2,000 items to stream back.
        let db = crate::harness::unique("budgetr");
        c.create_database(
            &db,
            dbforge::CreateOptions::default().backend(dbforge::Backend::Redis),
        )
        .await
        .expect("spawn");
        let items: Vec<String> = (0..2000).map(|i| format!("item-{i}")).collect();
        c.execute(&db, &format!("RPUSH l {}", items.join(" ")), &[])
            .await
            .expect("rpush");
        let opts = dbforge::QueryOptions {
            max_bytes: 2_000,
            ..dbforge::QueryOptions::default()
        };
        let mut rows = c
            .query_with(&db, "LRANGE l 0 -1", &[], opts)
            .await
            .expect("query");
        let mut n = 0;
        while let Some(r) = rows.next().await {
            r.expect("row");
            n += 1;
        }
        assert_eq!(
            rows.summary().expect("summary").truncation,
            Truncation::ByteLimit
        );
        assert!(n > 10 && n < 2000, "{n}");
    }
}
