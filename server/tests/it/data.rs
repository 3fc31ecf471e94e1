//! QueryService Execute and ExecuteBatch: typed values, results and errors.

use dbforge::{Code, Statement, Value, params};
use time::macros::{date, datetime};

use crate::harness::{TestServer, assert_code};

#[tokio::test]
async fn typed_values_round_trip() {
    let s = TestServer::start().await;
    let db = s.db("types").await;
    s.client
        .execute(
            &db,
            "CREATE TABLE t (i INTEGER, f REAL, s TEXT, b BLOB, flag BOOLEAN, d DECIMAL TEXT, \
             j JSON TEXT, ts TIMESTAMP TEXT, day DATE TEXT, n INTEGER)",
            &[],
        )
        .await
        .expect("ddl");
    let values = vec![
        Value::Int(-9_007_199_254_740_993),
        Value::Float(2.5e-10),
        Value::Text("héllo\n'\"; --".into()),
        Value::Bytes(vec![0, 1, 254, 255]),
        Value::Bool(true),
        Value::Decimal("12345678901234567890.123456789".into()),
        Value::Json(r#"{"a":[1,2]}"#.into()),
        Value::Timestamp(datetime!(2024-02-29 13:45:01.123456 UTC)),
        Value::Date(date!(2024 - 02 - 29)),
        Value::Null,
    ];
    let res = s
        .client
        .execute(
            &db,
            "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &values,
        )
        .await
        .expect("insert");
    assert_eq!(res.rows_affected, 1);
    assert_eq!(res.last_insert_id, Some(1));

    let res = s
        .client
        .execute(&db, "SELECT * FROM t", &[])
        .await
        .expect("select");
    assert_eq!(res.rows.len(), 1);
    assert_eq!(res.rows[0].values(), values.as_slice());
    let kinds: Vec<_> = res.columns.iter().map(|c| c.kind).collect();
    use dbforge::pb::ValueKind as K;
    assert_eq!(
        kinds,
        [
            K::Int,
            K::Float,
            K::Text,
            K::Bytes,
            K::Bool,
            K::Decimal,
            K::Json,
            K::Timestamp,
            K::Date,
            K::Int
        ]
    );
    assert_eq!(res.columns[5].declared_type, "DECIMAL TEXT");

    // Expressions have no declared type: each cell carries its own kind.
    let res = s
        .client
        .execute(&db, "SELECT 1, 1.5, 'x', x'00', NULL", &[])
        .await
        .expect("expressions");
    assert_eq!(
        res.rows[0].values(),
        &[
            Value::Int(1),
            Value::Float(1.5),
            Value::Text("x".into()),
            Value::Bytes(vec![0]),
            Value::Null
        ]
    );
}

#[tokio::test]
async fn rows_affected_and_last_insert_id() {
    let s = TestServer::start().await;
    let db = s.db("affected").await;
    s.client
        .execute(
            &db,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)",
            &[],
        )
        .await
        .expect("ddl");
    for v in 0..5 {
        let r = s
            .client
            .execute(&db, "INSERT INTO t (v) VALUES (?)", &params![v])
            .await
            .expect("insert");
        assert_eq!(r.last_insert_id, Some(v + 1));
    }
    let r = s
        .client
        .execute(&db, "UPDATE t SET v = v + 1 WHERE v >= ?", &params![2])
        .await
        .expect("update");
    assert_eq!(r.rows_affected, 3);
    assert_eq!(r.last_insert_id, None);
    let r = s
        .client
        .execute(&db, "DELETE FROM t WHERE id = ? RETURNING v", &params![5])
        .await
        .expect("delete returning");
    assert_eq!(r.rows_affected, 1);
    assert_eq!(r.rows[0].get::<i64>(0).expect("int"), 5);
}

#[tokio::test]
async fn sql_errors_have_codes_and_reasons() {
    let s = TestServer::start().await;
    let db = s.db("errs").await;
    s.client
        .execute(
            &db,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, CHECK (id > 0))",
            &[],
        )
        .await
        .expect("ddl");
    s.client
        .execute(&db, "INSERT INTO t VALUES (1, 'a')", &[])
        .await
        .expect("insert");

    let e = assert_code(
        s.client.execute(&db, "SELEC 1", &[]).await,
        Code::InvalidArgument,
    );
    assert!(e.message().contains("syntax error"), "{e}");
    assert_eq!(e.reason().as_deref(), Some("SQL_ERROR"));

    let e = assert_code(
        s.client
            .execute(&db, "INSERT INTO t VALUES (1, 'b')", &[])
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(e.reason().as_deref(), Some("UNIQUE_VIOLATION"));
    assert!(e.metadata("native_code").is_some());
    let e = assert_code(
        s.client
            .execute(&db, "INSERT INTO t VALUES (2, NULL)", &[])
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(e.reason().as_deref(), Some("NOT_NULL_VIOLATION"));
    let e = assert_code(
        s.client
            .execute(&db, "INSERT INTO t VALUES (-1, 'x')", &[])
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(e.reason().as_deref(), Some("CHECK_VIOLATION"));

    let e = assert_code(
        s.client.execute(&db, "SELECT ?", &[]).await,
        Code::InvalidArgument,
    );
    assert!(e.message().contains("placeholder"), "{e}");
    let e = assert_code(
        s.client.execute(&db, "SELECT 1; SELECT 2", &[]).await,
        Code::InvalidArgument,
    );
    assert!(e.grpc_message().contains("ExecuteBatch"), "{e}");
    for tx in ["BEGIN", "COMMIT", "SAVEPOINT x", "ROLLBACK"] {
        let e = assert_code(s.client.execute(&db, tx, &[]).await, Code::InvalidArgument);
        assert!(e.grpc_message().contains("transaction"), "{tx}: {e}");
    }
    assert_code(s.client.execute(&db, "", &[]).await, Code::InvalidArgument);
    // The connection is still fine after every error.
    let r = s
        .client
        .execute(&db, "SELECT count(*) FROM t", &[])
        .await
        .expect("count");
    assert_eq!(r.rows[0].get::<i64>(0).expect("int"), 1);
}

#[tokio::test]
async fn execute_row_limit_is_resource_exhausted_and_rolls_back() {
    let s = TestServer::with(|mut c| {
        c.max_execute_rows = 10;
        c
    })
    .await;
    let db = s.db("limit").await;
    let e = assert_code(
        s.client
            .execute(&db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 11) SELECT x FROM c", &[])
            .await,
        Code::ResourceExhausted,
    );
    assert!(e.grpc_message().contains("Query"), "hint at streaming: {e}");
    s.client
        .execute(&db, "CREATE TABLE t (x)", &[])
        .await
        .expect("ddl");
    assert_code(
        s.client
            .execute(
                &db,
                "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20) SELECT x FROM c RETURNING x",
                &[],
            )
            .await,
        Code::ResourceExhausted,
    );
    let r = s
        .client
        .execute(&db, "SELECT count(*) FROM t", &[])
        .await
        .expect("count");
    assert_eq!(
        r.rows[0].get::<i64>(0).expect("int"),
        0,
        "the write was rolled back"
    );
}

#[tokio::test]
async fn statement_timeout_interrupts() {
    let s = TestServer::with(|mut c| {
        c.statement_timeout = std::time::Duration::from_millis(200);
        c
    })
    .await;
    let db = s.db("slow").await;
    let e = assert_code(
        s.client
            .execute(&db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", &[])
            .await,
        Code::DeadlineExceeded,
    );
    assert!(e.message().contains("deadline"), "{e}");
    s.client
        .execute(&db, "SELECT 1", &[])
        .await
        .expect("usable afterwards");
}

#[tokio::test]
async fn transactional_batch_is_all_or_nothing() {
    let s = TestServer::start().await;
    let db = s.db("batch").await;
    s.client
        .execute(&db, "CREATE TABLE t (id INTEGER PRIMARY KEY)", &[])
        .await
        .expect("ddl");
    let stmts = |ids: &[i64]| {
        ids.iter()
            .map(|id| Statement::new("INSERT INTO t VALUES (?)", params![*id]))
            .collect::<Vec<_>>()
    };
    let e = assert_code(
        s.client.batch(&db, stmts(&[1, 2, 1]), true).await,
        Code::FailedPrecondition,
    );
    assert_eq!(e.metadata("statement_index").as_deref(), Some("2"));
    assert!(e.message().starts_with("statement 2"), "{e}");
    let count = |r: dbforge::ExecResult| r.rows[0].get::<i64>(0).expect("int");
    let r = s
        .client
        .execute(&db, "SELECT count(*) FROM t", &[])
        .await
        .expect("count");
    assert_eq!(count(r), 0, "nothing of the failed transaction stays");

    let e = assert_code(
        s.client.batch(&db, stmts(&[1, 2, 1, 3]), false).await,
        Code::FailedPrecondition,
    );
    assert_eq!(e.metadata("statement_index").as_deref(), Some("2"));
    let r = s
        .client
        .execute(&db, "SELECT count(*) FROM t", &[])
        .await
        .expect("count");
    assert_eq!(
        count(r),
        2,
        "without a transaction, statements before the failure stay"
    );

    let results = s
        .client
        .batch(&db, stmts(&[10, 11]), true)
        .await
        .expect("ok batch");
    assert_eq!(results.len(), 2);
    assert_eq!(results[1].last_insert_id, Some(11));

    // Transaction control inside a batch cannot commit half of it.
    let mut with_commit = stmts(&[20]);
    with_commit.push(Statement::new("COMMIT", vec![]));
    with_commit.extend(stmts(&[1]));
    assert_code(
        s.client.batch(&db, with_commit, true).await,
        Code::InvalidArgument,
    );
    let r = s
        .client
        .execute(&db, "SELECT count(*) FROM t WHERE id = 20", &[])
        .await
        .expect("count");
    assert_eq!(count(r), 0);
}

#[tokio::test]
async fn batch_statement_limit() {
    let s = TestServer::start().await;
    let db = s.db("many").await;
    let stmts = vec![Statement::new("SELECT 1", vec![]); 10_001];
    assert_code(
        s.client.batch(&db, stmts, false).await,
        Code::ResourceExhausted,
    );
}

#[tokio::test]
async fn uuid_and_time_round_trip_and_arrays_are_refused() {
    let s = TestServer::start().await;
    let db = s.db("uuid").await;
    s.client
        .execute(&db, "CREATE TABLE t (id UUID, at TIME)", &[])
        .await
        .expect("ddl");
    let id = Value::Uuid("7d444840-9dc0-11d1-b245-5ffdce74fad2".into());
    let at = Value::Time(time::macros::time!(13:05:09.25));
    s.client
        .execute(
            &db,
            "INSERT INTO t VALUES (?, ?)",
            &[id.clone(), at.clone()],
        )
        .await
        .expect("insert");
    let r = s
        .client
        .execute(&db, "SELECT id, at FROM t", &[])
        .await
        .expect("select");
    assert_eq!(r.rows[0].values(), &[id, at]);
    assert_code(
        s.client
            .execute(&db, "SELECT ?", &[Value::Uuid("not-a-uuid".into())])
            .await,
        Code::InvalidArgument,
    );
    let e = assert_code(
        s.client
            .execute(&db, "SELECT ?", &[Value::Array(vec![Value::Int(1)])])
            .await,
        Code::InvalidArgument,
    );
    assert!(e.message().contains("arrays"), "{e}");
}
