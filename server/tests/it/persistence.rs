//! Restarts keep every database; interrupted spawns and prunes are finished at start-up.

use dbforge::{CreateOptions, ListFilter, Value, params};

use crate::harness::{ServerProcess, TestServer};

#[tokio::test]
async fn sigterm_then_restart_keeps_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::spawn(dir.path(), &[]);
    let c = server.client().await;
    c.create_database("keep", CreateOptions::default().label("env", "test"))
        .await
        .expect("create");
    c.execute("keep", "CREATE TABLE t (x TEXT)", &[])
        .await
        .expect("ddl");
    c.execute("keep", "INSERT INTO t VALUES (?)", &params!["durable"])
        .await
        .expect("insert");
    c.create_database("gone", CreateOptions::default())
        .await
        .expect("create");
    c.delete_database("gone").await.expect("delete");
    drop(c);
    assert!(server.terminate().await, "SIGTERM exits cleanly");

    let server = ServerProcess::spawn(dir.path(), &[]);
    let c = server.client().await;
    let dbs = c.list_databases(ListFilter::default()).await.expect("list");
    assert_eq!(
        dbs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["keep"]
    );
    assert_eq!(dbs[0].labels.get("env").map(String::as_str), Some("test"));
    let r = c
        .execute("keep", "SELECT x FROM t", &[])
        .await
        .expect("select");
    assert_eq!(r.rows[0].values(), &[Value::Text("durable".into())]);
    assert!(server.terminate().await);
}

#[tokio::test]
async fn interrupted_spawns_and_orphans_are_cleaned_at_start() {
    let s = TestServer::start().await;
    s.db("survivor").await;
    let data = s.data_dir().to_path_buf();
    let dir = s.stop().await.expect("owns its dir");

    // Simulate a crash in the middle of a spawn and of a prune, plus a stray file.
    let sqlite = data.join("sqlite");
    std::fs::write(sqlite.join("half.1.sqlite"), b"").expect("half file");
    std::fs::write(sqlite.join("stray.2.sqlite"), b"").expect("stray file");
    std::fs::write(sqlite.join("stray.2.sqlite-wal"), b"").expect("stray wal");
    std::fs::write(sqlite.join("unrelated.txt"), b"keep me").expect("unrelated");
    let cat = rusqlite::Connection::open(data.join("catalog.db")).expect("catalog");
    cat.execute_batch(
        "INSERT INTO databases (name, backend, locator, state, created_ms, last_accessed_ms, owner_key)
             VALUES ('half', 'sqlite', 'half.1.sqlite', 'provisioning', 0, 0, NULL);
         INSERT INTO databases (name, backend, locator, state, created_ms, last_accessed_ms, owner_key)
             VALUES ('dying', 'sqlite', 'dying.3.sqlite', 'deleting', 0, 0, NULL);",
    )
    .expect("fake records");
    drop(cat);

    let s = TestServer::on_dir(&data).await;
    let names: Vec<_> = s
        .client
        .list_databases(ListFilter::default())
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with("survivor"));
    let mut files: Vec<_> = std::fs::read_dir(&sqlite)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("survivor") || f == "unrelated.txt"),
        "{files:?}"
    );
    assert!(files.contains(&"unrelated.txt".to_string()));
    // The interrupted name can be spawned again.
    s.client
        .create_database("half", CreateOptions::default())
        .await
        .expect("respawn");
    s.stop().await;
    drop(dir);
}
