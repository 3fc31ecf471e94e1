//! MySQL/MariaDB through gRPC.

use dbforge::Backend;

use crate::{
    harness::{TestServer, backend_url},
    sql_servers::{batches_keep_pace_with_single_statements, round},
};

#[tokio::test]
async fn the_sql_round_on_mysql() {
    let Some(url) = backend_url(
        "mysql",
        "DBFORGE_TEST_MYSQL_URL",
        "mysql://root@127.0.0.1:3306",
    )
    .await
    else {
        return;
    };
    let s = TestServer::with(|mut c| {
        c.mysql_url = Some(url);
        c
    })
    .await;
    round(
        &s,
        Backend::Mysql,
        "SELECT seq FROM seq_1_to_1000000000 WHERE seq <= ?",
    )
    .await;
}

#[tokio::test]
async fn a_batch_is_no_slower_than_its_statements_one_by_one() {
    let Some(url) = backend_url(
        "mysql",
        "DBFORGE_TEST_MYSQL_URL",
        "mysql://root@127.0.0.1:3306",
    )
    .await
    else {
        return;
    };
    let s = TestServer::with(|mut c| {
        c.mysql_url = Some(url);
        c
    })
    .await;
    batches_keep_pace_with_single_statements(&s, Backend::Mysql).await;
}
