//! The Redis backend through gRPC: commands as statements, namespaces, refusals.

use dbforge::{Backend, Code, CreateOptions, Statement, Value, params};
use futures::TryStreamExt;

use crate::harness::{TestServer, assert_code, redis_url, unique};

async fn server() -> Option<TestServer> {
    let url = redis_url().await?;
    Some(crate::harness::serving(Backend::Redis, url).await)
}

async fn spawn(s: &TestServer, prefix: &str) -> String {
    let name = unique(prefix);
    let created = s
        .client
        .create_database(&name, CreateOptions::default().backend(Backend::Redis))
        .await
        .expect("spawn on redis");
    assert_eq!(created.database.backend, Backend::Redis);
    let caps = &created.database.capabilities;
    assert!(caps.key_value && !caps.sql && !caps.sessions && !caps.table_service);
    name
}

#[tokio::test]
async fn commands_namespaces_and_refusals() {
    let Some(s) = server().await else { return };
    let a = spawn(&s, "redis-a").await;
    let b = spawn(&s, "redis-b").await;
    let c = &s.client;
    c.execute(&a, "SET greeting 'hello world'", &[])
        .await
        .expect("set");
    c.execute(&b, "SET", &params!["greeting", "hej"])
        .await
        .expect("set as args");
    let got = c
        .execute(&a, "GET", &params!["greeting"])
        .await
        .expect("get");
    assert_eq!(got.rows[0].values(), &[Value::Text("hello world".into())]);
    let got = c.execute(&b, "GET greeting", &[]).await.expect("get");
    assert_eq!(got.rows[0].values(), &[Value::Text("hej".into())]);

    for i in 0..25 {
        c.execute(&a, "SET", &params![format!("k{i}"), i])
            .await
            .expect("set");
    }
    let keys: Vec<_> = c
        .query(&a, "SCAN 0 MATCH k*", &[])
        .await
        .expect("scan")
        .try_collect()
        .await
        .expect("keys");
    assert_eq!(keys.len(), 25, "prefix stripped, other namespace invisible");
    assert!(
        keys.iter()
            .all(|r| r.get::<String>(0).expect("key").starts_with('k'))
    );

    let results = c
        .batch(
            &a,
            vec![
                Statement::new("INCR counter", vec![]),
                Statement::new("INCR counter", vec![]),
                Statement::new("INCRBY", params!["counter", 10]),
            ],
            true,
        )
        .await
        .expect("MULTI/EXEC");
    assert_eq!(results.len(), 3);
    let got = c.execute(&a, "GET counter", &[]).await.expect("get");
    assert_eq!(got.rows[0].values(), &[Value::Text("12".into())]);

    for refused in [
        "FLUSHALL",
        "CONFIG GET *",
        "KEYS",
        "EVAL 'return 1' 0",
        "SHUTDOWN",
        "SELECT 1",
    ] {
        let e = c.execute(&a, refused, &[]).await.expect_err(refused);
        assert!(
            matches!(e.code(), Code::PermissionDenied | Code::InvalidArgument),
            "{refused}: {e}"
        );
    }
    assert_code(c.execute(&a, "FLUSHDB", &[]).await, Code::PermissionDenied);
    let e = assert_code(c.transaction(&a).await, Code::Unimplemented);
    assert!(e.grpc_message().contains("ExecuteBatch"), "{e}");
    let e = assert_code(
        c.create_table(&a, "t", vec![], false).await,
        Code::Unimplemented,
    );
    assert!(e.message().contains("HSET"), "{e}");

    // Pruning removes the namespace's keys.
    c.delete_database(&a).await.expect("delete");
    assert_code(c.execute(&a, "GET greeting", &[]).await, Code::NotFound);
    let got = c
        .execute(&b, "GET greeting", &[])
        .await
        .expect("b untouched");
    assert_eq!(got.rows[0].values(), &[Value::Text("hej".into())]);
    c.delete_database(&b).await.expect("delete");
}
