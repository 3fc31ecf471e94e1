//! MySQL/MariaDB through gRPC.

use dbforge::Backend;

use crate::{
    harness::{mysql_url, serving},
    sql_servers::{batches_keep_pace_with_single_statements, round},
};

#[tokio::test]
async fn the_sql_round_on_mysql() {
    let Some(url) = mysql_url().await else {
        return;
    };
    let s = serving(Backend::Mysql, url).await;
    round(
        &s,
        Backend::Mysql,
        "SELECT seq FROM seq_1_to_1000000000 WHERE seq <= ?",
    )
    .await;
}

#[tokio::test]
async fn a_batch_is_no_slower_than_its_statements_one_by_one() {
    let Some(url) = mysql_url().await else {
        return;
    };
    let s = serving(Backend::Mysql, url).await;
    batches_keep_pace_with_single_statements(&s, Backend::Mysql).await;
}
