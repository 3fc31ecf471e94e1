//! The same gRPC round through each SQL server backend (PostgreSQL, MySQL): spawn, statements,
//! streams, batches, sessions, tables, prune.

use dbforge::{
    Backend, Code, ColumnDef, ColumnType, CreateOptions, Filter, Select, Statement, Value, params,
    record,
};
use std::time::{Duration, Instant};

use futures::TryStreamExt;

use crate::harness::{TestServer, assert_code, unique};

/// Rewrites `?` into `$1, $2, …` for PostgreSQL.
fn sql(backend: Backend, text: &str) -> String {
    if backend != Backend::Postgres {
        return text.to_owned();
    }
    let mut n = 0;
    text.chars()
        .map(|c| {
            if c == '?' {
                n += 1;
                format!("${n}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Runs the round on a gateway configured for `backend`; `series` yields N rows of (x) for
/// parameter 1.
pub async fn round(s: &TestServer, backend: Backend, series: &str) {
    let c = &s.client;
    let db = unique("srv");
    let created = c
        .create_database(&db, CreateOptions::default().backend(backend))
        .await
        .expect("spawn");
    let caps = created.database.capabilities;
    assert!(caps.sql && caps.transactions && caps.sessions && caps.table_service);
    assert!(
        caps.read_only_grants,
        "read grants are enforced by the engine (a read-only role or user)"
    );
    let q = |t: &str| sql(backend, t);

    c.execute(
        &db,
        &q("CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL)"),
        &[],
    )
    .await
    .expect("ddl");
    let r = c
        .execute(
            &db,
            &q("INSERT INTO people (id, name) VALUES (?, ?)"),
            &params![1, "Ada"],
        )
        .await
        .expect("insert");
    assert_eq!(r.rows_affected, 1);
    let e = assert_code(
        c.execute(
            &db,
            &q("INSERT INTO people (id, name) VALUES (?, ?)"),
            &params![1, "dup"],
        )
        .await,
        Code::FailedPrecondition,
    );
    assert_eq!(e.reason().as_deref(), Some("UNIQUE_VIOLATION"));
    assert_code(c.execute(&db, "SELEC 1", &[]).await, Code::InvalidArgument);
    let r = c
        .execute(&db, &q("SELECT name FROM people WHERE id = ?"), &params![1])
        .await
        .expect("select");
    assert_eq!(r.rows[0].values(), &[Value::Text("Ada".into())]);

    let rows: Vec<_> = c
        .query(&db, series, &params![10_000])
        .await
        .expect("stream")
        .try_collect()
        .await
        .expect("rows");
    assert_eq!(rows.len(), 10_000);

    let ins = |id: i64| {
        Statement::new(
            q("INSERT INTO people (id, name) VALUES (?, ?)"),
            params![id, "b"],
        )
    };
    let e = assert_code(
        c.batch(&db, vec![ins(2), ins(3), ins(2)], true).await,
        Code::FailedPrecondition,
    );
    assert_eq!(e.metadata("statement_index").as_deref(), Some("2"));
    let count = |r: dbforge::ExecResult| r.rows[0].get::<i64>(0).expect("count");
    let n = count(
        c.execute(&db, "SELECT COUNT(*) FROM people", &[])
            .await
            .expect("count"),
    );
    assert_eq!(n, 1, "the failed transaction left nothing");

    let mut tx = c.transaction(&db).await.expect("begin");
    tx.execute(
        &q("INSERT INTO people (id, name) VALUES (?, ?)"),
        &params![7, "tx"],
    )
    .await
    .expect("in tx");
    tx.rollback().await.expect("rollback");
    let mut tx = c.transaction(&db).await.expect("begin");
    tx.execute(
        &q("INSERT INTO people (id, name) VALUES (?, ?)"),
        &params![8, "kept"],
    )
    .await
    .expect("in tx");
    tx.commit().await.expect("commit");
    let n = count(
        c.execute(&db, "SELECT COUNT(*) FROM people", &[])
            .await
            .expect("count"),
    );
    assert_eq!(n, 2);

    let table = "odd \"name\"; --";
    c.create_table(
        &db,
        table,
        vec![
            ColumnDef::new("k", ColumnType::Text).primary_key(),
            ColumnDef::new("v", ColumnType::Integer).default_value(5),
        ],
        false,
    )
    .await
    .expect("create table");
    c.insert_rows(
        &db,
        table,
        vec![
            record([("k", Value::from("a"))]),
            record([("k", Value::from("b")), ("v", 9.into())]),
        ],
    )
    .await
    .expect("insert rows");
    let got: Vec<_> = c
        .select_rows(&db, Select::from(table).filter(Filter::gt("v", 6)))
        .await
        .expect("select rows")
        .try_collect()
        .await
        .expect("rows");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].get_by_name::<String>("k").expect("k"), "b");

    c.delete_database(&db).await.expect("prune");
    assert_code(c.execute(&db, "SELECT 1", &[]).await, Code::NotFound);
}

/// How long 100 single-row INSERTs take: as one batch without a transaction, as one batch
/// with one, and as 100 separate Execute calls (the best of three rounds each).
pub struct Pace {
    pub batch: Duration,
    pub batch_in_transaction: Duration,
    pub one_by_one: Duration,
}

/// Measures [`Pace`] on a fresh database of `backend`.
pub async fn insert_pace(s: &TestServer, backend: Backend) -> Pace {
    let c = &s.client;
    let db = unique("pace");
    c.create_database(&db, CreateOptions::default().backend(backend))
        .await
        .expect("spawn");
    let db = db.as_str();
    c.execute(
        db,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v VARCHAR(20))",
        &[],
    )
    .await
    .expect("ddl");
    let insert = sql(backend, "INSERT INTO t (id, v) VALUES (?, ?)");
    let batch = |from: i64| {
        (from..from + 100)
            .map(|id| Statement::new(insert.clone(), params![id, "x"]))
            .collect::<Vec<_>>()
    };
    let batched = |from: i64, transaction: bool| {
        let stmts = batch(from);
        async move {
            let started = Instant::now();
            let r = c.batch(db, stmts, transaction).await.expect("batch");
            assert_eq!(r.len(), 100);
            assert!(r.iter().all(|r| r.rows_affected == 1));
            started.elapsed()
        }
    };
    let one_by_one = |from: i64| {
        let stmts = batch(from);
        async move {
            let started = Instant::now();
            for s in stmts {
                let r = c.execute(db, &s.sql, &s.params).await.expect("execute");
                assert_eq!(r.rows_affected, 1);
            }
            started.elapsed()
        }
    };
    // Warm-up: connections, prepared statements.
    batched(1_000, false).await;
    batched(2_000, true).await;
    one_by_one(3_000).await;
    let mut pace = Pace {
        batch: Duration::MAX,
        batch_in_transaction: Duration::MAX,
        one_by_one: Duration::MAX,
    };
    for round in 0..3 {
        pace.batch = pace.batch.min(batched(10_000 + round * 1_000, false).await);
        pace.batch_in_transaction = pace
            .batch_in_transaction
            .min(batched(20_000 + round * 1_000, true).await);
        pace.one_by_one = pace
            .one_by_one
            .min(one_by_one(30_000 + round * 1_000).await);
    }
    eprintln!(
        "{backend:?}, 100 INSERTs: batch {:?}, batch in a transaction {:?}, one Execute each {:?}",
        pace.batch, pace.batch_in_transaction, pace.one_by_one
    );
    c.delete_database(db).await.expect("prune");
    pace
}

/// A batch does less than the same statements sent one Execute at a time (one RPC instead of
/// 100, no per-statement transaction), so it must not take longer, with or without a
/// transaction: a stall per statement, such as a delayed ACK after a packet the server does not
/// answer (~44 ms each on MySQL with sqlx 0.9.0, 4.4 s for the batch), shows up as a batch many
/// times slower than the separate calls.
pub async fn batches_keep_pace_with_single_statements(s: &TestServer, backend: Backend) {
    let pace = insert_pace(s, backend).await;
    // Generous: the bound is about a stall per statement, not about noise.
    let bound = pace.one_by_one * 2 + Duration::from_millis(100);
    assert!(
        pace.batch < bound && pace.batch_in_transaction < bound,
        "{backend:?}: a batch of 100 took {:?} ({:?} in a transaction), 100 Execute calls {:?}",
        pace.batch,
        pace.batch_in_transaction,
        pace.one_by_one
    );
}
