//! A restart finishes what the last run left half done, on a real server engine: a prune the
//! catalog shows in progress is finished (the engine's database and login dropped) and
//! announced with the `deleted` event it never got; the staging database of an interrupted
//! fork or restore is dropped from the engine and forgotten.

use std::time::Duration;

use dbforge::{Backend, CreateOptions, DatabaseEventType, ListFilter, WatchOptions};
use sqlx::Connection as _;

use crate::harness::{TestServer, postgres_url, unique};

async fn gateway(dir: &std::path::Path, url: &str) -> TestServer {
    let (dir, url) = (dir.to_path_buf(), url.to_owned());
    TestServer::with(move |mut cfg| {
        cfg.data_dir = dir;
        cfg.postgres_url = Some(url);
        cfg
    })
    .await
}

async fn pg_database_exists(url: &str, name: &str) -> bool {
    let mut admin = sqlx::PgConnection::connect(url).await.expect("admin");
    sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut admin)
        .await
        .expect("pg_database")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_finishes_half_done_prunes_and_drops_staging_databases_on_postgres() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let s = gateway(dir.path(), &url).await;
    let (dying, staged, kept) = (unique("dying"), unique("staged"), unique("kept"));
    let mut engine_names = Vec::new();
    for name in [&dying, &staged, &kept] {
        s.client
            .create_database(name, CreateOptions::default().backend(Backend::Postgres))
            .await
            .expect("create");
        let r = s
            .client
            .execute(name, "SELECT current_database()", &[])
            .await
            .expect("name");
        match &r.rows[0].values()[0] {
            dbforge::Value::Text(t) => engine_names.push(t.clone()),
            other => panic!("current_database() = {other:?}"),
        }
    }
    s.stop().await;

    // What a crash leaves: a prune marked in the catalog but not done on the engine, and a
    // fork's or restore's staging database that was never adopted.
    let cat = rusqlite::Connection::open(dir.path().join("catalog.db")).expect("catalog");
    cat.execute(
        "UPDATE databases SET state = 'deleting' WHERE name = ?1",
        [&dying],
    )
    .expect("mark deleting");
    cat.execute(
        "INSERT INTO staging (locator, backend, db, created_ms) \
         SELECT locator, backend, name, created_ms FROM databases WHERE name = ?1",
        [&staged],
    )
    .expect("stage");
    cat.execute("DELETE FROM labels WHERE db = ?1", [&staged])
        .expect("labels");
    cat.execute("DELETE FROM databases WHERE name = ?1", [&staged])
        .expect("unregister");
    drop(cat);
    assert!(pg_database_exists(&url, &engine_names[0]).await);
    assert!(pg_database_exists(&url, &engine_names[1]).await);

    let s = gateway(dir.path(), &url).await;
    let names: Vec<String> = s
        .client
        .list_databases(ListFilter::default())
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, std::slice::from_ref(&kept));
    assert!(
        !pg_database_exists(&url, &engine_names[0]).await,
        "the prune was finished on the engine"
    );
    assert!(
        !pg_database_exists(&url, &engine_names[1]).await,
        "the staging database was dropped"
    );
    assert!(pg_database_exists(&url, &engine_names[2]).await);
    let cat = rusqlite::Connection::open(dir.path().join("catalog.db")).expect("catalog");
    let staging: i64 = cat
        .query_row("SELECT count(*) FROM staging", [], |r| r.get(0))
        .expect("count");
    assert_eq!(staging, 0, "the staging row is forgotten");
    drop(cat);

    // The finished prune is announced once, by the gateway.
    let mut w = s
        .client
        .watch_databases(WatchOptions::default().since(0))
        .await
        .expect("watch");
    let mut deleted = Vec::new();
    while let Ok(next) = tokio::time::timeout(Duration::from_millis(500), w.next()).await {
        let e = next.expect("watch").expect("not ended");
        if e.kind == DatabaseEventType::Deleted {
            deleted.push(e);
        }
    }
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0].database, dying);
    assert_eq!(deleted[0].cause, "interrupted_prune_finished_at_start");
    assert_eq!(deleted[0].key_id, "gateway");
    // The names are free again.
    s.client
        .create_database(&dying, CreateOptions::default().backend(Backend::Postgres))
        .await
        .expect("respawn");
    for name in [&dying, &kept] {
        s.client.delete_database(name).await.expect("delete");
    }
}
