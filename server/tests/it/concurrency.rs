//! Many clients writing one database at once: no "database is locked", no lost rows.

use dbforge::{Statement, params};

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_writers_lose_nothing() {
    let s = TestServer::start().await;
    let db = s.db("busy").await;
    s.client
        .execute(
            &db,
            "CREATE TABLE t (client INTEGER, n INTEGER, PRIMARY KEY (client, n))",
            &[],
        )
        .await
        .expect("ddl");
    let mut tasks = Vec::new();
    for client_id in 0..50i64 {
        let c = s.connect().await;
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..20i64 {
                match n % 4 {
                    // Single statements, batches, sessions and reads interleave.
                    0 | 1 => {
                        c.execute(&db, "INSERT INTO t VALUES (?, ?)", &params![client_id, n])
                            .await?;
                    }
                    2 => {
                        c.batch(
                            &db,
                            vec![Statement::new(
                                "INSERT INTO t VALUES (?, ?)",
                                params![client_id, n],
                            )],
                            true,
                        )
                        .await?;
                    }
                    _ => {
                        let mut tx = c.transaction(&db).await?;
                        tx.execute("INSERT INTO t VALUES (?, ?)", &params![client_id, n])
                            .await?;
                        tx.commit().await?;
                    }
                }
                c.execute(
                    &db,
                    "SELECT count(*) FROM t WHERE client = ?",
                    &params![client_id],
                )
                .await?;
            }
            Ok::<_, dbforge::Error>(())
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("every write succeeds");
    }
    let r = s
        .client
        .execute(&db, "SELECT count(*) FROM t", &[])
        .await
        .expect("count");
    assert_eq!(r.rows[0].get::<i64>(0).expect("int"), 1000);
}
