//! Per-key request rate and stream limits, and the SQLite size cap.

use std::time::Duration;

use dbforge::{ApiKeySpec, Client, ClientOptions, Code, CreateOptions, Grant, Role, params};
use futures::StreamExt;
use tonic_types::StatusExt;

use crate::harness::{TestServer, assert_code};

const ADMIN: &str = "limits-admin-key-0123456789abcdef";

async fn client(s: &TestServer, key: &str) -> Client {
    Client::connect_with(ClientOptions::new(format!("http://{}", s.addr)).api_key(key))
        .await
        .expect("connect")
}

#[tokio::test]
async fn a_rate_limited_key_does_not_slow_others() {
    let s = TestServer::with(|mut c| {
        c.insecure_no_auth = false;
        c.admin_key = Some(ADMIN.into());
        c.rate_limit = 5;
        c.rate_burst = Some(5);
        c
    })
    .await;
    let admin = client(&s, ADMIN).await;
    admin
        .create_database("shared", CreateOptions::default())
        .await
        .expect("create");
    let mut keys = Vec::new();
    for name in ["greedy", "polite"] {
        let (_, key) = admin
            .create_api_key(ApiKeySpec::new(name).grant(Grant::database("shared", Role::Write)))
            .await
            .expect("key");
        keys.push(client(&s, &key).await);
    }
    // Let the admin's own calls above age out of nothing: buckets are per key.
    let (greedy, polite) = (&keys[0], &keys[1]);
    let mut limited = None;
    for _ in 0..20 {
        if let Err(e) = greedy.execute("shared", "SELECT 1", &[]).await {
            limited = Some(e);
            break;
        }
    }
    let e = limited.expect("the greedy key hits its rate");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
    assert_eq!(e.reason().as_deref(), Some("RATE_LIMITED"));
    let dbforge::Error::Status(status) = &e else {
        panic!("a server status expected");
    };
    let retry = status.get_details_retry_info().expect("retry info");
    assert!(
        retry
            .retry_delay
            .is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(1))
    );
    for _ in 0..3 {
        polite
            .execute("shared", "SELECT 1", &[])
            .await
            .expect("other keys are unaffected");
    }
    tokio::time::sleep(retry.retry_delay.unwrap_or_default() + Duration::from_millis(50)).await;
    greedy
        .execute("shared", "SELECT 1", &[])
        .await
        .expect("allowed again after waiting");
}

#[tokio::test]
async fn open_streams_per_key_are_capped() {
    let s = TestServer::with(|mut c| {
        c.insecure_no_auth = false;
        c.admin_key = Some(ADMIN.into());
        c.max_streams_per_key = 2;
        c
    })
    .await;
    let admin = client(&s, ADMIN).await;
    admin
        .create_database("streams", CreateOptions::default())
        .await
        .expect("create");
    let (_, key) = admin
        .create_api_key(ApiKeySpec::new("s").grant(Grant::database("streams", Role::Write)))
        .await
        .expect("key");
    let c = client(&s, &key).await;
    let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c";
    let mut first = c.query("streams", endless, &[]).await.expect("1");
    let tx = c
        .transaction("streams")
        .await
        .expect("2: sessions count too");
    assert_code(
        c.query("streams", endless, &[]).await,
        Code::ResourceExhausted,
    );
    assert_code(c.transaction("streams").await, Code::ResourceExhausted);
    admin
        .query("streams", "SELECT 1", &[])
        .await
        .expect("another key is not affected");
    first.next().await.expect("row").expect("ok");
    drop(first);
    drop(tx);
    // The slots come back once the server sees the streams end.
    let mut reopened = None;
    for _ in 0..50 {
        match c.query("streams", "SELECT 1", &params![]).await {
            Ok(rows) => {
                reopened = Some(rows);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(reopened.is_some(), "slots were released");
}

#[tokio::test]
async fn sqlite_databases_stop_growing_at_their_cap() {
    let s = TestServer::with(|mut c| {
        c.sqlite_max_size = 1 << 20;
        c
    })
    .await;
    let db = s.db("capped").await;
    s.client
        .execute(&db, "CREATE TABLE blobs (b BLOB)", &[])
        .await
        .expect("ddl");
    let mut inserted = 0;
    let err = loop {
        match s
            .client
            .execute(&db, "INSERT INTO blobs VALUES (randomblob(100000))", &[])
            .await
        {
            Ok(_) => inserted += 1,
            Err(e) => break e,
        }
        assert!(inserted < 50, "the cap never hit");
    };
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(err.message().contains("size limit"), "{err}");
    assert!(inserted >= 5);
    let r = s
        .client
        .execute(&db, "SELECT count(*) FROM blobs", &[])
        .await
        .expect("still readable");
    assert_eq!(r.rows[0].get::<i64>(0).expect("int"), inserted);
    s.client
        .execute(&db, "DELETE FROM blobs", &[])
        .await
        .expect("room can be made");
}
