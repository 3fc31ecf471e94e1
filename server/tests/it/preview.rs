//! QueryService.Preview through gRPC on every engine: per statement the rows affected, the
//! samples before and after, the plan and the engine's error; nothing is ever committed and a
//! concurrent reader never sees a previewed row; MySQL refuses DDL and Redis refuses previews
//! before anything runs.

use std::time::Duration;

use dbforge::{Backend, Client, Code, CreateOptions, Role, Statement, StatementPreview, Value};

use crate::harness::{
    ADMIN_KEY, TestServer, as_key, assert_code, key_for, mysql_url, postgres_url, redis_url,
    secured, serving, unique,
};

async fn exec(c: &Client, db: &str, sql: &str) {
    c.execute(db, sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{db}: {sql}: {e}"));
}

async fn rows(c: &Client, db: &str, sql: &str) -> Vec<Vec<Value>> {
    c.execute(db, sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{db}: {sql}: {e}"))
        .rows
        .into_iter()
        .map(|r| r.into_values())
        .collect()
}

fn values(rows: &[dbforge::Row]) -> Vec<Vec<Value>> {
    rows.iter().map(|r| r.clone().into_values()).collect()
}

fn account(id: i64, owner: &str, balance: i64) -> Vec<Value> {
    vec![
        Value::Int(id),
        Value::Text(owner.into()),
        Value::Int(balance),
    ]
}

fn stmt(sql: &str) -> Statement {
    Statement::new(sql, vec![])
}

/// The `n`th placeholder in `backend`'s style.
fn ph(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Postgres => format!("${n}"),
        _ => "?".into(),
    }
}

async fn accounts_db(c: &Client, backend: Backend) -> String {
    let db = unique("pv");
    c.create_database(&db, CreateOptions::default().backend(backend))
        .await
        .expect("spawn");
    exec(
        c,
        &db,
        "CREATE TABLE acct (id INT PRIMARY KEY, owner VARCHAR(20), balance INT)",
    )
    .await;
    exec(
        c,
        &db,
        "INSERT INTO acct (id, owner, balance) VALUES (1, 'ann', 100), (2, 'bob', 50), (3, 'cy', 0)",
    )
    .await;
    db
}

const ALL: &str = "SELECT id, owner, balance FROM acct ORDER BY id";

/// UPDATE (before and after matched by key), DELETE, INSERT, a SELECT that sees the previewed
/// state, a failing statement that the rest survive; then the table is as it was.
async fn sql_round(s: &TestServer, backend: Backend) {
    let c = &s.client;
    let db = accounts_db(c, backend).await;
    let original = rows(c, &db, ALL).await;
    let p = |n| ph(backend, n);
    let previews = c
        .preview(
            &db,
            vec![
                Statement::new(
                    format!(
                        "UPDATE acct SET balance = balance + {} WHERE balance < {}",
                        p(1),
                        p(2)
                    ),
                    vec![Value::Int(10), Value::Int(60)],
                ),
                stmt("DELETE FROM acct WHERE id = 1"),
                stmt("INSERT INTO acct (id, owner, balance) VALUES (4, 'dee', 7)"),
                stmt("SELECT owner FROM acct ORDER BY id"),
                stmt("INSERT INTO acct (id, owner, balance) VALUES (2, 'dup', 0)"),
                stmt("SELECT count(*) FROM acct"),
            ],
        )
        .await
        .expect("preview");
    assert_eq!(previews.len(), 6);

    let update = &previews[0];
    assert_eq!((update.kind.as_str(), update.rows_affected), ("UPDATE", 2));
    assert!(update.error.is_none(), "{update:?}");
    assert_eq!(update.sample_note, "", "{update:?}");
    let mut pairs: Vec<_> = values(&update.before)
        .into_iter()
        .zip(values(&update.after))
        .collect();
    pairs.sort_by_key(|(b, _)| format!("{:?}", b[0]));
    assert_eq!(
        pairs,
        vec![
            (account(2, "bob", 50), account(2, "bob", 60)),
            (account(3, "cy", 0), account(3, "cy", 10)),
        ],
        "before and after, row by row"
    );
    assert!(update.plan.is_some(), "a plan: {update:?}");
    let names: Vec<_> = update.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "owner", "balance"]);

    let delete = &previews[1];
    assert_eq!((delete.kind.as_str(), delete.rows_affected), ("DELETE", 1));
    assert_eq!(values(&delete.before), vec![account(1, "ann", 100)]);
    assert!(delete.after.is_empty());

    let insert = &previews[2];
    assert_eq!((insert.kind.as_str(), insert.rows_affected), ("INSERT", 1));
    assert_eq!(
        values(&insert.after),
        vec![account(4, "dee", 7)],
        "{insert:?}"
    );

    let select = &previews[3];
    assert_eq!(select.kind, "SELECT");
    assert_eq!(
        values(&select.after),
        vec![
            vec![Value::Text("bob".into())],
            vec![Value::Text("cy".into())],
            vec![Value::Text("dee".into())],
        ],
        "the query sees the previewed state"
    );

    let failed = &previews[4];
    let err = failed.error.as_ref().expect("a duplicate key fails");
    assert_eq!(err.code, Code::FailedPrecondition, "{err:?}");
    assert_eq!(err.reason, "UNIQUE_VIOLATION");
    assert!(err.transaction_active);
    assert_eq!(failed.rows_affected, 0);

    let count = &previews[5];
    assert!(!count.skipped && count.error.is_none(), "{count:?}");
    assert_eq!(values(&count.after), vec![vec![Value::Int(3)]]);

    assert_eq!(rows(c, &db, ALL).await, original, "nothing was committed");
}

/// A reader polling while a preview holds an inserted row open never sees it.
async fn concurrent_reader_sees_nothing(s: &TestServer, backend: Backend, slow: &str) {
    let c = &s.client;
    let db = accounts_db(c, backend).await;
    let previewing = {
        let (c, db) = (c.clone(), db.clone());
        let slow = slow.to_owned();
        tokio::spawn(async move {
            c.preview(
                &db,
                vec![
                    stmt("INSERT INTO acct (id, owner, balance) VALUES (99, 'ghost', 1)"),
                    stmt(&slow),
                ],
            )
            .await
        })
    };
    let mut polls = 0;
    while !previewing.is_finished() {
        assert_eq!(
            rows(c, &db, "SELECT count(*) FROM acct WHERE id = 99").await,
            vec![vec![Value::Int(0)]],
            "a reader saw a previewed row"
        );
        polls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let previews = previewing.await.expect("task").expect("preview");
    assert_eq!(previews[0].rows_affected, 1);
    assert!(previews[1].error.is_none(), "{:?}", previews[1]);
    assert!(
        polls > 2,
        "the reader polled while the preview ran ({polls} polls)"
    );
    assert_eq!(
        rows(c, &db, "SELECT count(*) FROM acct").await,
        vec![vec![Value::Int(3)]]
    );
}

/// Engines with transactional DDL preview it: a table created, filled and read, then gone.
async fn ddl_rolls_back(s: &TestServer, backend: Backend) {
    let c = &s.client;
    let db = accounts_db(c, backend).await;
    let previews = c
        .preview(
            &db,
            vec![
                stmt("CREATE TABLE scratch (a INT PRIMARY KEY, b INT)"),
                stmt("INSERT INTO scratch (a, b) VALUES (1, 2)"),
                stmt("UPDATE scratch SET b = 3"),
                stmt("SELECT a, b FROM scratch"),
            ],
        )
        .await
        .expect("preview");
    assert_eq!(previews[0].kind, "OTHER");
    assert!(previews.iter().all(|p| p.error.is_none()), "{previews:?}");
    assert_eq!(previews[2].rows_affected, 1);
    assert_eq!(
        values(&previews[2].before),
        vec![vec![Value::Int(1), Value::Int(2)]]
    );
    // The table is new, so no committed key to match rows by: the note says so.
    assert!(previews[2].after.is_empty() || backend == Backend::Sqlite);
    assert_eq!(
        values(&previews[3].after),
        vec![vec![Value::Int(1), Value::Int(3)]]
    );
    let tables = c.get_schema(&db, None).await.expect("schema").tables;
    assert!(
        tables.iter().all(|t| t.name != "scratch"),
        "the previewed table was rolled back"
    );
}

/// Bad requests and samples the preview cannot take.
async fn edges(s: &TestServer, backend: Backend) {
    let c = &s.client;
    let db = accounts_db(c, backend).await;
    assert_code(
        c.preview_sampled(&db, vec![stmt("SELECT 1")], 101).await,
        Code::InvalidArgument,
    );
    if backend == Backend::Mysql {
        // Not a statement MySQL can preview at all: refused before anything runs.
        assert_code(
            c.preview(&db, vec![stmt("COMMIT")]).await,
            Code::FailedPrecondition,
        );
    } else {
        let commit = c.preview(&db, vec![stmt("COMMIT")]).await.expect("preview");
        let err = commit[0]
            .error
            .as_ref()
            .expect("transaction control is refused");
        assert_eq!(err.code, Code::InvalidArgument);
        assert!(err.transaction_active, "the preview's transaction goes on");
    }
    assert_code(
        c.preview("no-such-db", vec![stmt("SELECT 1")]).await,
        Code::NotFound,
    );
    // Samples are capped; a syntax error is the statement's, not the call's.
    let previews = c
        .preview_sampled(
            &db,
            vec![
                stmt("UPDATE acct SET owner = owner"),
                stmt("SELECT FROM WHERE"),
                stmt("SELECT id FROM acct ORDER BY id"),
            ],
            2,
        )
        .await
        .expect("preview");
    assert_eq!(previews[0].rows_affected, 3);
    assert_eq!(previews[0].before.len(), 2);
    let err = previews[1].error.as_ref().expect("syntax error");
    assert_eq!(err.code, Code::InvalidArgument);
    assert_eq!(
        values(&previews[2].after),
        vec![vec![Value::Int(1)], vec![Value::Int(2)]]
    );
}

#[tokio::test]
async fn previews_report_and_roll_back_on_sqlite() {
    let s = TestServer::start().await;
    sql_round(&s, Backend::Sqlite).await;
    ddl_rolls_back(&s, Backend::Sqlite).await;
    edges(&s, Backend::Sqlite).await;
    concurrent_reader_sees_nothing(
        &s,
        Backend::Sqlite,
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000) \
         SELECT count(*) FROM n",
    )
    .await;
}

#[tokio::test]
async fn previews_report_and_roll_back_on_postgres() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = serving(Backend::Postgres, url).await;
    sql_round(&s, Backend::Postgres).await;
    ddl_rolls_back(&s, Backend::Postgres).await;
    edges(&s, Backend::Postgres).await;
    concurrent_reader_sees_nothing(&s, Backend::Postgres, "SELECT pg_sleep(0.6)").await;
}

#[tokio::test]
async fn previews_report_and_roll_back_on_mysql() {
    let Some(url) = mysql_url().await else { return };
    let s = serving(Backend::Mysql, url).await;
    sql_round(&s, Backend::Mysql).await;
    edges(&s, Backend::Mysql).await;
    concurrent_reader_sees_nothing(&s, Backend::Mysql, "SELECT SLEEP(0.6)").await;

    // DDL would commit implicitly: refused before anything runs.
    let c = &s.client;
    let db = accounts_db(c, Backend::Mysql).await;
    let before = rows(c, &db, ALL).await;
    let e = assert_code(
        c.preview(
            &db,
            vec![
                stmt("DELETE FROM acct"),
                stmt("/* why */ CREATE TABLE scratch (a INT)"),
            ],
        )
        .await,
        Code::FailedPrecondition,
    );
    assert!(e.to_string().contains("statement 1 (CREATE)"), "{e}");
    assert_eq!(rows(c, &db, ALL).await, before, "nothing ran");
    let tables = c.get_schema(&db, None).await.expect("schema").tables;
    assert!(tables.iter().all(|t| t.name != "scratch"));
}

#[tokio::test]
async fn previews_are_refused_on_redis() {
    let Some(url) = redis_url().await else { return };
    let s = serving(Backend::Redis, url).await;
    let c = &s.client;
    let db = unique("pvr");
    c.create_database(&db, CreateOptions::default().backend(Backend::Redis))
        .await
        .expect("spawn");
    let e = assert_code(
        c.preview(&db, vec![stmt("SET a 1")]).await,
        Code::FailedPrecondition,
    );
    assert!(e.to_string().contains("rolled back"), "{e}");
    let got = c.execute(&db, "EXISTS a", &[]).await.expect("exists");
    assert_eq!(values(&got.rows), vec![vec![Value::Int(0)]]);
}

/// A read key previews on its read-only login: the engine refuses its writes, reported per
/// statement, and its queries run.
#[tokio::test]
async fn read_keys_preview_on_the_read_only_login() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = secured(Backend::Postgres, Some(url)).await;
    let admin = as_key(&s, ADMIN_KEY).await;
    let db = accounts_db(&admin, Backend::Postgres).await;
    let reader = key_for(&s, &admin, &db, Role::Read).await;
    let previews: Vec<StatementPreview> = reader
        .preview(
            &db,
            vec![
                stmt("UPDATE acct SET balance = 0"),
                stmt("SELECT count(*) FROM acct"),
            ],
        )
        .await
        .expect("preview");
    let err = previews[0]
        .error
        .as_ref()
        .expect("the engine refuses the write");
    assert_eq!(err.code, Code::PermissionDenied, "{err:?}");
    assert_eq!(values(&previews[1].after), vec![vec![Value::Int(3)]]);
}
