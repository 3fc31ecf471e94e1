//! PostgreSQL through gRPC.

use dbforge::{Backend, Code, CreateOptions, Statement, params};

use crate::{
    harness::{assert_code, postgres_url, serving, unique},
    sql_servers::{batches_keep_pace_with_single_statements, round},
};

#[tokio::test]
async fn the_sql_round_on_postgres() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = serving(Backend::Postgres, url).await;
    round(
        &s,
        Backend::Postgres,
        "SELECT x FROM generate_series(1, $1) AS x",
    )
    .await;
}

#[tokio::test]
async fn a_batch_is_no_slower_than_its_statements_one_by_one() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = serving(Backend::Postgres, url).await;
    batches_keep_pace_with_single_statements(&s, Backend::Postgres).await;
}

#[tokio::test]
async fn question_mark_placeholders_get_a_hint() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = serving(Backend::Postgres, url).await;
    let c = &s.client;
    let db = unique("hint");
    c.create_database(&db, CreateOptions::default().backend(Backend::Postgres))
        .await
        .expect("spawn");
    c.execute(&db, "CREATE TABLE t (a INTEGER, b TEXT)", &[])
        .await
        .expect("ddl");
    let written_for_sqlite = "INSERT INTO t (a, b) VALUES (?, ?)";
    let hinted = |e: dbforge::Error| {
        assert!(e.message().contains("PostgreSQL takes $1, $2"), "{e}");
        let hint = e.metadata("hint").expect("hint in ErrorInfo");
        assert!(hint.contains("$1"), "{hint}");
        assert_eq!(e.reason().as_deref(), Some("SQL_ERROR"));
    };
    hinted(assert_code(
        c.execute(&db, written_for_sqlite, &params![1, "x"]).await,
        Code::InvalidArgument,
    ));
    let batch = vec![
        Statement::new("INSERT INTO t (a, b) VALUES ($1, $2)", params![1, "x"]),
        Statement::new(written_for_sqlite, params![2, "y"]),
    ];
    for transaction in [false, true] {
        let e = assert_code(
            c.batch(&db, batch.clone(), transaction).await,
            Code::InvalidArgument,
        );
        assert_eq!(e.metadata("statement_index").as_deref(), Some("1"));
        hinted(e);
    }
    // A syntax error without parameters, or with `?` only in a literal, is only that.
    for (sql, p) in [
        ("INSERT INTO t (a, b) VALUES (1,, 2)", vec![]),
        ("SELECT '?' FROM t WHERE a = $1 AND AND", params![1]),
    ] {
        let e = assert_code(c.execute(&db, sql, &p).await, Code::InvalidArgument);
        assert!(e.metadata("hint").is_none(), "{e}");
        assert!(!e.message().contains("hint"), "{e}");
    }
    c.delete_database(&db).await.expect("prune");
}
