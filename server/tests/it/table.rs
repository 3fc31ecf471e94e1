//! TableService: structured access with quoted identifiers and bound values.

use dbforge::{Code, ColumnDef, ColumnType, Filter, Select, Value, record};
use futures::TryStreamExt;

use crate::harness::{TestServer, assert_code};

const HOSTILE: &str = "people\"; DROP TABLE victims; --";

async fn people(s: &TestServer) -> String {
    let db = s.db("tables").await;
    s.client
        .execute(&db, "CREATE TABLE victims (x)", &[])
        .await
        .expect("ddl");
    let created = s
        .client
        .create_table(
            &db,
            HOSTILE,
            vec![
                ColumnDef::new("id", ColumnType::Integer).primary_key(),
                ColumnDef::new("na'me\"", ColumnType::Text).not_null(),
                ColumnDef::new("age", ColumnType::Integer),
                ColumnDef::new("active", ColumnType::Bool).default_value(true),
            ],
            false,
        )
        .await
        .expect("create table");
    assert!(created);
    let rows = vec![
        record([
            ("id", Value::from(1)),
            ("na'me\"", "Ada".into()),
            ("age", 36.into()),
        ]),
        record([
            ("id", Value::from(2)),
            ("na'me\"", "Alan".into()),
            ("age", 41.into()),
        ]),
        record([
            ("id", Value::from(3)),
            ("na'me\"", "Grace".into()),
            ("age", Value::Null),
        ]),
        record([
            ("id", Value::from(4)),
            ("na'me\"", "Ann".into()),
            ("age", 24.into()),
            ("active", false.into()),
        ]),
    ];
    assert_eq!(
        s.client
            .insert_rows(&db, HOSTILE, rows)
            .await
            .expect("insert"),
        4
    );
    db
}

async fn ids(s: &TestServer, db: &str, select: Select) -> Vec<i64> {
    let rows: Vec<_> = s
        .client
        .select_rows(db, select.columns(["id"]))
        .await
        .expect("select")
        .try_collect()
        .await
        .expect("rows");
    rows.iter().map(|r| r.get::<i64>(0).expect("id")).collect()
}

#[tokio::test]
async fn filters_order_and_paging() {
    let s = TestServer::start().await;
    let db = people(&s).await;
    let t = || Select::from(HOSTILE).order_by("id");
    assert_eq!(ids(&s, &db, t()).await, [1, 2, 3, 4]);
    assert_eq!(ids(&s, &db, t().filter(Filter::eq("age", 36))).await, [1]);
    assert_eq!(
        ids(&s, &db, t().filter(Filter::ne("age", 36))).await,
        [2, 4]
    );
    assert_eq!(ids(&s, &db, t().filter(Filter::lt("age", 36))).await, [4]);
    assert_eq!(
        ids(&s, &db, t().filter(Filter::le("age", 36))).await,
        [1, 4]
    );
    assert_eq!(ids(&s, &db, t().filter(Filter::gt("age", 36))).await, [2]);
    assert_eq!(
        ids(&s, &db, t().filter(Filter::ge("age", 36))).await,
        [1, 2]
    );
    assert_eq!(
        ids(&s, &db, t().filter(Filter::like("na'me\"", "A%"))).await,
        [1, 2, 4]
    );
    assert_eq!(
        ids(&s, &db, t().filter(Filter::is_in("id", [2, 3, 9]))).await,
        [2, 3]
    );
    assert_eq!(
        ids(&s, &db, t().filter(Filter::is_in("id", Vec::<i64>::new()))).await,
        Vec::<i64>::new()
    );
    assert_eq!(ids(&s, &db, t().filter(Filter::is_null("age"))).await, [3]);
    assert_eq!(
        ids(&s, &db, t().filter(Filter::is_not_null("age"))).await,
        [1, 2, 4]
    );
    assert_eq!(
        ids(
            &s,
            &db,
            t().filter(Filter::like("na'me\"", "A%"))
                .filter(Filter::gt("age", 30))
        )
        .await,
        [1, 2]
    );
    let by_age = Select::from(HOSTILE).order_by_desc("age").order_by("id");
    assert_eq!(ids(&s, &db, by_age).await, [2, 1, 4, 3]);
    assert_eq!(ids(&s, &db, t().limit(2).offset(1)).await, [2, 3]);
    assert_eq!(ids(&s, &db, t().offset(3)).await, [4]);
    // A value that looks like SQL is only a value.
    assert_eq!(
        ids(&s, &db, t().filter(Filter::eq("na'me\"", "x' OR '1'='1"))).await,
        Vec::<i64>::new()
    );
    // Defaults and booleans come back typed.
    let rows: Vec<_> = s
        .client
        .select_rows(&db, t().columns(["active"]))
        .await
        .expect("select")
        .try_collect()
        .await
        .expect("rows");
    let active: Vec<bool> = rows.iter().map(|r| r.get(0).expect("bool")).collect();
    assert_eq!(active, [true, true, true, false]);
    // The hostile name created exactly one table; the other is untouched.
    s.client
        .execute(&db, "SELECT * FROM victims", &[])
        .await
        .expect("victims intact");
}

#[tokio::test]
async fn update_and_delete_need_a_scope() {
    let s = TestServer::start().await;
    let db = people(&s).await;
    let set = record([("age", Value::from(50))]);
    let e = assert_code(
        s.client
            .update_rows(&db, HOSTILE, set.clone(), vec![])
            .await,
        Code::InvalidArgument,
    );
    assert!(e.message().contains("all"), "{e}");
    assert_code(
        s.client.delete_rows(&db, HOSTILE, vec![]).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        s.client
            .update_rows(&db, HOSTILE, set.clone(), vec![Filter::is_null("age")])
            .await
            .expect("update"),
        1
    );
    assert_eq!(
        ids(&s, &db, Select::from(HOSTILE).filter(Filter::eq("age", 50))).await,
        [3]
    );
    assert_eq!(
        s.client
            .update_all_rows(&db, HOSTILE, set)
            .await
            .expect("update all"),
        4
    );
    assert_eq!(
        s.client
            .delete_rows(&db, HOSTILE, vec![Filter::gt("id", 2)])
            .await
            .expect("delete"),
        2
    );
    assert_eq!(
        s.client
            .delete_all_rows(&db, HOSTILE)
            .await
            .expect("delete all"),
        2
    );
}

#[tokio::test]
async fn create_table_errors() {
    let s = TestServer::start().await;
    let db = people(&s).await;
    let cols = || vec![ColumnDef::new("x", ColumnType::Text)];
    assert_code(
        s.client.create_table(&db, HOSTILE, cols(), false).await,
        Code::AlreadyExists,
    );
    assert!(
        !s.client
            .create_table(&db, HOSTILE, cols(), true)
            .await
            .expect("if_not_exists")
    );
    assert_code(
        s.client.create_table(&db, "empty", vec![], false).await,
        Code::InvalidArgument,
    );
    assert_code(
        s.client
            .create_table(
                &db,
                "dup",
                vec![
                    ColumnDef::new("a", ColumnType::Text),
                    ColumnDef::new("a", ColumnType::Text),
                ],
                false,
            )
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        s.client.create_table(&db, "", cols(), false).await,
        Code::InvalidArgument,
    );
    assert_code(
        s.client.create_table(&db, "nul\0", cols(), false).await,
        Code::InvalidArgument,
    );
    assert_code(
        s.client
            .create_table(
                &db,
                "d",
                vec![ColumnDef::new("f", ColumnType::Float).default_value(f64::NAN)],
                false,
            )
            .await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn insert_rows_is_all_or_nothing() {
    let s = TestServer::start().await;
    let db = people(&s).await;
    let rows = vec![
        record([("id", Value::from(10)), ("na'me\"", "New".into())]),
        record([("id", Value::from(1)), ("na'me\"", "Duplicate".into())]),
    ];
    let e = assert_code(
        s.client.insert_rows(&db, HOSTILE, rows).await,
        Code::FailedPrecondition,
    );
    assert_eq!(e.reason().as_deref(), Some("UNIQUE_VIOLATION"));
    assert_eq!(
        ids(&s, &db, Select::from(HOSTILE).filter(Filter::eq("id", 10))).await,
        Vec::<i64>::new()
    );
    assert_code(
        s.client
            .insert_rows(
                &db,
                HOSTILE,
                vec![record([("no such column", Value::from(1))])],
            )
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        s.client
            .select_rows(
                &db,
                Select::from(HOSTILE).filter(Filter::eq("age", Value::Null)),
            )
            .await,
        Code::InvalidArgument,
    );
    // A column that does not exist is an error, not a string literal that matches nothing.
    let e = assert_code(
        s.client
            .select_rows(&db, Select::from(HOSTILE).filter(Filter::eq("nope", 1)))
            .await,
        Code::InvalidArgument,
    );
    assert!(e.message().contains("no such column"), "{e}");
}
