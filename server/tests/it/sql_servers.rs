//! The same gRPC round through each SQL server backend (PostgreSQL, MySQL): spawn, statements,
//! streams, batches, sessions, tables, prune.

use dbforge::{
    Backend, Code, ColumnDef, ColumnType, CreateOptions, Filter, Select, Statement, Value, params,
    record,
};
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
