//! QueryService.Session: interactive transactions on a pinned connection.

use std::time::Duration;

use dbforge::{Code, params, pb};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::harness::{TestServer, assert_code};

async fn count(s: &TestServer, db: &str) -> i64 {
    s.client
        .execute(db, "SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .rows[0]
        .get::<i64>(0)
        .expect("int")
}

async fn setup(s: &TestServer) -> String {
    let db = s.db("sess").await;
    s.client
        .execute(&db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", &[])
        .await
        .expect("ddl");
    db
}

#[tokio::test]
async fn commit_makes_changes_visible_and_rollback_discards() {
    let s = TestServer::start().await;
    let db = setup(&s).await;
    let other = s.connect().await;

    let mut tx = s.client.transaction(&db).await.expect("begin");
    tx.execute("INSERT INTO t VALUES (?, ?)", &params![1, "a"])
        .await
        .expect("insert");
    let inside = tx
        .execute("SELECT count(*) FROM t", &[])
        .await
        .expect("read own write");
    assert_eq!(inside.rows[0].get::<i64>(0).expect("int"), 1);
    // Another client reads the last committed state meanwhile.
    let outside = other
        .execute(&db, "SELECT count(*) FROM t", &[])
        .await
        .expect("read");
    assert_eq!(outside.rows[0].get::<i64>(0).expect("int"), 0);
    tx.commit().await.expect("commit");
    assert_eq!(count(&s, &db).await, 1);

    let mut tx = s.client.transaction(&db).await.expect("begin");
    tx.execute("INSERT INTO t VALUES (2, 'b')", &[])
        .await
        .expect("insert");
    tx.rollback().await.expect("rollback");
    assert_eq!(count(&s, &db).await, 1);
}

#[tokio::test]
async fn dropping_a_transaction_rolls_back_and_frees_the_writer() {
    let s = TestServer::start().await;
    let db = setup(&s).await;
    {
        let mut tx = s.client.transaction(&db).await.expect("begin");
        tx.execute("INSERT INTO t VALUES (1, 'gone')", &[])
            .await
            .expect("insert");
    }
    // A write right after must not wait for the session's idle timeout.
    tokio::time::timeout(
        Duration::from_secs(5),
        s.client
            .execute(&db, "INSERT INTO t VALUES (2, 'kept')", &[]),
    )
    .await
    .expect("the writer was released")
    .expect("insert");
    assert_eq!(count(&s, &db).await, 1);
}

#[tokio::test]
async fn statement_errors_keep_the_transaction_open() {
    let s = TestServer::start().await;
    let db = setup(&s).await;
    let mut tx = s.client.transaction(&db).await.expect("begin");
    tx.execute("INSERT INTO t VALUES (1, 'a')", &[])
        .await
        .expect("insert");
    let e = assert_code(
        tx.execute("INSERT INTO t VALUES (1, 'dup')", &[]).await,
        Code::FailedPrecondition,
    );
    // Inside a session the error keeps its reason and native code, as everywhere else.
    assert_eq!(e.reason().as_deref(), Some("UNIQUE_VIOLATION"));
    assert!(e.metadata("native_code").is_some());
    assert_code(tx.execute("SELEC", &[]).await, Code::InvalidArgument);
    assert_code(tx.execute("COMMIT", &[]).await, Code::InvalidArgument);
    assert_code(
        tx.execute("ATTACH 'x.db' AS x", &[]).await,
        Code::PermissionDenied,
    );
    tx.execute("INSERT INTO t VALUES (2, 'b')", &[])
        .await
        .expect("still open");
    tx.commit().await.expect("commit");
    assert_eq!(count(&s, &db).await, 2);
}

#[tokio::test]
async fn writers_queue_behind_a_session() {
    let s = TestServer::start().await;
    let db = setup(&s).await;
    let mut tx = s.client.transaction(&db).await.expect("begin");
    tx.execute("INSERT INTO t VALUES (1, 'tx')", &[])
        .await
        .expect("insert");
    let writer = {
        let c = s.connect().await;
        let db = db.clone();
        tokio::spawn(async move {
            c.execute(&db, "INSERT INTO t VALUES (2, 'queued')", &[])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!writer.is_finished(), "the write waits for the transaction");
    tx.commit().await.expect("commit");
    writer
        .await
        .expect("join")
        .expect("queued write succeeds, never 'database is locked'");
    assert_eq!(count(&s, &db).await, 2);
}

/// Drives the raw protocol: ordering, in-band errors, idle timeout.
#[tokio::test]
async fn raw_protocol_and_idle_timeout() {
    let s = TestServer::with(|mut c| {
        c.session_idle_timeout = Duration::from_millis(300);
        c
    })
    .await;
    let db = setup(&s).await;
    let mut raw = pb::query_service_client::QueryServiceClient::new(s.client.channel());
    let (tx, rx) = mpsc::channel(8);
    let mut responses = raw
        .session(ReceiverStream::new(rx))
        .await
        .expect("open session")
        .into_inner();
    use pb::{session_request::Kind as Req, session_response::Kind as Resp};
    let send = |k| pb::SessionRequest { kind: Some(k) };
    // A statement before begin is answered in-band.
    tx.send(send(Req::Statement(pb::Statement {
        sql: "SELECT 1".into(),
        params: vec![],
    })))
    .await
    .expect("send");
    match responses.next().await.expect("answer").expect("ok").kind {
        Some(Resp::Error(e)) => {
            assert_eq!(e.code, Code::FailedPrecondition as i32);
            assert!(!e.transaction_active);
        }
        other => panic!("unexpected {other:?}"),
    }
    tx.send(send(Req::Begin(pb::SessionBegin {
        database: db.clone(),
    })))
    .await
    .expect("send");
    assert!(matches!(
        responses.next().await.expect("answer").expect("ok").kind,
        Some(Resp::Begun(_))
    ));
    tx.send(send(Req::Statement(pb::Statement {
        sql: "INSERT INTO t VALUES (1, 'x')".into(),
        params: vec![],
    })))
    .await
    .expect("send");
    assert!(matches!(
        responses.next().await.expect("answer").expect("ok").kind,
        Some(Resp::Result(_))
    ));
    // Now go idle: the server rolls back and ends the stream with DEADLINE_EXCEEDED.
    let end = tokio::time::timeout(Duration::from_secs(5), responses.next())
        .await
        .expect("server ends the idle session")
        .expect("a final status");
    assert_eq!(end.expect_err("idle").code(), Code::DeadlineExceeded);
    assert_eq!(count(&s, &db).await, 0);
    drop(tx);
}
