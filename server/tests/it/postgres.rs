//! PostgreSQL through gRPC.

use dbforge::Backend;

use crate::{
    harness::{TestServer, backend_url},
    sql_servers::{batches_keep_pace_with_single_statements, round},
};

#[tokio::test]
async fn the_sql_round_on_postgres() {
    let Some(url) = backend_url(
        "postgres",
        "DBFORGE_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
    .await
    else {
        return;
    };
    let s = TestServer::with(|mut c| {
        c.postgres_url = Some(url);
        c
    })
    .await;
    round(
        &s,
        Backend::Postgres,
        "SELECT x FROM generate_series(1, $1) AS x",
    )
    .await;
}

#[tokio::test]
async fn a_batch_is_no_slower_than_its_statements_one_by_one() {
    let Some(url) = backend_url(
        "postgres",
        "DBFORGE_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
    .await
    else {
        return;
    };
    let s = TestServer::with(|mut c| {
        c.postgres_url = Some(url);
        c
    })
    .await;
    batches_keep_pace_with_single_statements(&s, Backend::Postgres).await;
}
