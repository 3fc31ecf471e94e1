//! Errors shared by every data-plane RPC: unknown databases, bad names, bad values, sizes.

use dbforge::{Code, Filter, Select, Value, pb};

use crate::harness::{TestServer, assert_code, unique};

#[tokio::test]
async fn unknown_database_is_not_found_everywhere() {
    let s = TestServer::start().await;
    let c = &s.client;
    let db = unique("missing");
    assert_code(c.execute(&db, "SELECT 1", &[]).await, Code::NotFound);
    assert_code(c.query(&db, "SELECT 1", &[]).await, Code::NotFound);
    assert_code(c.batch(&db, vec![], true).await, Code::NotFound);
    assert_code(c.transaction(&db).await, Code::NotFound);
    assert_code(
        c.create_table(&db, "t", vec![], false).await,
        Code::NotFound,
    );
    assert_code(c.insert_rows(&db, "t", vec![]).await, Code::NotFound);
    assert_code(c.select_rows(&db, Select::from("t")).await, Code::NotFound);
    assert_code(
        c.delete_rows(&db, "t", vec![Filter::is_null("x")]).await,
        Code::NotFound,
    );
    assert_code(
        c.execute("../../etc/passwd", "SELECT 1", &[]).await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn bad_values_are_invalid_arguments() {
    let s = TestServer::start().await;
    let db = s.db("vals").await;
    assert_code(
        s.client
            .execute(&db, "SELECT ?", &[Value::Decimal("1.2.3".into())])
            .await,
        Code::InvalidArgument,
    );
    let mut raw = pb::query_service_client::QueryServiceClient::new(s.client.channel());
    let bad_date = pb::Value {
        kind: Some(pb::value::Kind::DateValue(pb::Date {
            year: 2023,
            month: 13,
            day: 1,
        })),
    };
    let status = raw
        .execute(pb::ExecuteRequest {
            database: db.clone(),
            sql: "SELECT ?".into(),
            params: vec![bad_date],
        })
        .await
        .expect_err("bad date");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = raw
        .query(pb::QueryRequest {
            database: db,
            sql: "SELECT 1".into(),
            params: vec![],
            max_rows: -1,
            summarize: false,
            read_only: false,
            max_bytes: 0,
            resumable: false,
            resume_token: String::new(),
        })
        .await
        .expect_err("negative max_rows");
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn oversized_requests_are_resource_exhausted() {
    let s = TestServer::with(|mut c| {
        c.max_message_size = 64 << 10;
        c
    })
    .await;
    let db = s.db("big").await;
    let big = format!("SELECT '{}'", "x".repeat(100 << 10));
    let e = assert_code(
        s.client.execute(&db, &big, &[]).await,
        Code::ResourceExhausted,
    );
    assert!(e.message().contains("too large"), "{e}");
    assert!(e.message().contains("--max-message-size"), "{e}");
    assert_eq!(e.reason().as_deref(), Some("LIMIT_EXCEEDED"), "{e}");
    let e = assert_code(
        s.client.query(&db, &big, &[]).await,
        Code::ResourceExhausted,
    );
    assert_eq!(e.reason().as_deref(), Some("LIMIT_EXCEEDED"), "{e}");
    // A value that would not fit in a response cannot be built either.
    let e = assert_code(
        s.client.execute(&db, "SELECT zeroblob(1000000)", &[]).await,
        Code::ResourceExhausted,
    );
    assert!(!e.message().is_empty());
    // The connection survived.
    s.client
        .execute(&db, "SELECT 1", &[])
        .await
        .expect("still usable");
}
