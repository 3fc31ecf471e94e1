//! Raw SQL on SQLite cannot leave its own database: the authorizer and limits refuse it.

use dbforge::{Code, Statement};

use crate::harness::{TestServer, assert_code};

#[tokio::test]
async fn escapes_are_permission_denied() {
    let s = TestServer::start().await;
    let db = s.db("jail").await;
    let victim = s.db("victim").await;
    s.client
        .execute(&victim, "CREATE TABLE secrets (s TEXT)", &[])
        .await
        .expect("ddl");
    let outside = s.data_dir().join("escaped.db");
    let outside = outside.to_string_lossy();
    let victim_file = std::fs::read_dir(s.data_dir().join("sqlite"))
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.to_string_lossy().contains(&victim) && p.extension().is_some_and(|e| e == "sqlite")
        })
        .expect("victim file");
    let victim_file = victim_file.to_string_lossy();
    let attempts = [
        format!("ATTACH '{victim_file}' AS v"),
        format!("ATTACH '{outside}' AS x"),
        "ATTACH ':memory:' AS m".to_string(),
        "DETACH main".to_string(),
        format!("VACUUM INTO '{outside}'"),
        "SELECT load_extension('/usr/lib/x86_64-linux-gnu/libm.so.6')".to_string(),
        "PRAGMA writable_schema = ON".to_string(),
        "PRAGMA journal_mode = DELETE".to_string(),
        "PRAGMA synchronous = OFF".to_string(),
        "PRAGMA foreign_keys = OFF".to_string(),
        "PRAGMA database_list".to_string(),
        "PRAGMA temp_store_directory = '/tmp'".to_string(),
        "PRAGMA main.cache_size = 1000000".to_string(),
        "PRAGMA mmap_size = 1000000000".to_string(),
    ];
    for sql in &attempts {
        let e = assert_code(
            s.client.execute(&db, sql, &[]).await,
            Code::PermissionDenied,
        );
        assert_eq!(e.reason().as_deref(), Some("FORBIDDEN"), "{sql}");
        assert!(!e.message().is_empty());
        // The same through a batch and a stream.
        assert_code(
            s.client
                .batch(&db, vec![Statement::new(sql.clone(), vec![])], false)
                .await,
            Code::PermissionDenied,
        );
        let streamed = match s.client.query(&db, sql, &[]).await {
            Ok(mut rows) => rows.collect_rows().await,
            Err(e) => Err(e),
        };
        assert_code(streamed, Code::PermissionDenied);
    }
    assert!(
        !std::path::Path::new(&*outside).exists(),
        "no file was written outside"
    );
    // Reading schema information stays possible.
    for ok in [
        "PRAGMA table_info('secrets')",
        "PRAGMA index_list('secrets')",
        "PRAGMA user_version = 7",
        "PRAGMA user_version",
        "PRAGMA integrity_check",
        "SELECT * FROM pragma_table_info('secrets')",
    ] {
        s.client
            .execute(&db, ok, &[])
            .await
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    // Plain VACUUM rewrites the database in place and is fine.
    s.client.execute(&db, "VACUUM", &[]).await.expect("vacuum");
}

#[tokio::test]
async fn schema_corruption_is_refused() {
    let s = TestServer::start().await;
    let db = s.db("defensive").await;
    s.client
        .execute(&db, "CREATE TABLE t (x)", &[])
        .await
        .expect("ddl");
    // Defensive mode: sqlite_schema cannot be written even by a statement that gets that far.
    let e = s
        .client
        .execute(
            &db,
            "UPDATE sqlite_schema SET sql = 'garbage' WHERE name = 't'",
            &[],
        )
        .await
        .expect_err("schema write refused");
    assert!(
        matches!(e.code(), Code::PermissionDenied | Code::InvalidArgument),
        "{e}"
    );
    s.client
        .execute(&db, "SELECT * FROM t", &[])
        .await
        .expect("table intact");
}
