//! Query with `summarize` through gRPC on every engine: per column count, NULLs, distinct,
//! min, max and top values, exact under the bound and estimated past it, and limits that cut
//! the rows summarized said so.

use dbforge::{Backend, Client, ColumnSummary, CreateOptions, Truncation, Value};

use crate::harness::{TestServer, mysql_url, postgres_url, redis_url, serving, unique};

async fn exec(c: &Client, db: &str, sql: &str) {
    c.execute(db, sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{db}: {sql}: {e}"));
}

fn column<'a>(s: &'a [ColumnSummary], name: &str) -> &'a ColumnSummary {
    s.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column {name} in {s:?}"))
}

/// A table of 1,000 rows: `k` cycles through 0..7, `g` is NULL on every tenth row, `t` names
/// the row's k; then a series past the exact bound.
async fn round(s: &TestServer, backend: Backend, series: &str) {
    let c = &s.client;
    let db = unique("sum");
    c.create_database(&db, CreateOptions::default().backend(backend))
        .await
        .expect("spawn");
    exec(
        c,
        &db,
        "CREATE TABLE m (id INT PRIMARY KEY, k INT, g INT, t VARCHAR(10))",
    )
    .await;
    let values: Vec<String> = (0..1000)
        .map(|i| {
            let g = if i % 10 == 0 {
                "NULL".to_owned()
            } else {
                (i % 100).to_string()
            };
            format!("({i}, {}, {g}, 'k{}')", i % 7, i % 7)
        })
        .collect();
    exec(
        c,
        &db,
        &format!("INSERT INTO m (id, k, g, t) VALUES {}", values.join(", ")),
    )
    .await;

    let got = c
        .summarize(&db, "SELECT id, k, g, t FROM m", &[], 0, false)
        .await
        .expect("summarize");
    assert_eq!(got.summary.row_count, 1000);
    assert_eq!(got.summary.truncation, Truncation::Unspecified);
    let names: Vec<_> = got.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "k", "g", "t"]);
    let id = column(&got.summaries, "id");
    assert_eq!(
        (id.count, id.nulls, id.distinct, id.distinct_exact),
        (1000, 0, 1000, true)
    );
    assert_eq!(
        (id.min.clone(), id.max.clone()),
        (Some(Value::Int(0)), Some(Value::Int(999)))
    );
    let k = column(&got.summaries, "k");
    assert_eq!((k.distinct, k.top_values.len()), (7, 5));
    // 1000 = 7 × 142 + 6: k = 0..5 occur 143 times, 6 occurs 142 times; ties by value.
    assert_eq!(k.top_values[0], (Value::Int(0), 143));
    assert!(k.top_values_exact);
    let g = column(&got.summaries, "g");
    assert_eq!((g.count, g.nulls, g.distinct), (900, 100, 90));
    let t = column(&got.summaries, "t");
    assert_eq!(
        (t.min.clone(), t.max.clone()),
        (
            Some(Value::Text("k0".into())),
            Some(Value::Text("k6".into()))
        )
    );

    // max_rows bounds what is read, and the summary says the result was cut.
    let cut = c
        .summarize(&db, "SELECT id FROM m ORDER BY id", &[], 10, true)
        .await
        .expect("summarize");
    assert_eq!(cut.summary.truncation, Truncation::RowLimit);
    assert_eq!(column(&cut.summaries, "id").max, Some(Value::Int(9)));

    // read_only runs on the read-only login: the engine refuses a write, nothing changes.
    if backend != Backend::Redis {
        let refused = c
            .summarize(&db, "DELETE FROM m RETURNING id", &[], 0, true)
            .await;
        assert!(refused.is_err(), "a read-only summarize wrote: {refused:?}");
        let left = c
            .summarize(&db, "SELECT id FROM m", &[], 0, true)
            .await
            .expect("read");
        assert_eq!(left.summary.row_count, 1000);
    }

    // Past the exact bound: estimated, within a few percent.
    let many = c
        .summarize(&db, series, &[], 0, false)
        .await
        .expect("series");
    let x = &many.summaries[0];
    assert_eq!(x.count, 50_000);
    assert!(!x.distinct_exact && !x.top_values_exact, "{x:?}");
    let error = (x.distinct as f64 - 50_000.0).abs() / 50_000.0;
    assert!(error < 0.05, "estimated {} distinct of 50000", x.distinct);
}

const RECURSIVE: &str = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 50000) SELECT x FROM n";

#[tokio::test]
async fn summaries_on_sqlite() {
    let s = TestServer::start().await;
    round(&s, Backend::Sqlite, RECURSIVE).await;
}

#[tokio::test]
async fn summaries_on_postgres() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = serving(Backend::Postgres, url).await;
    round(
        &s,
        Backend::Postgres,
        "SELECT x FROM generate_series(1, 50000) AS x",
    )
    .await;
}

#[tokio::test]
async fn summaries_on_mysql() {
    let Some(url) = mysql_url().await else { return };
    let s = serving(Backend::Mysql, url).await;
    // MariaDB caps recursion at cte_max_recursion_depth (1000 by default): a cross join instead.
    round(
        &s,
        Backend::Mysql,
        "SELECT a.seq * 1000 + b.seq AS x FROM seq_0_to_49 a, seq_0_to_999 b",
    )
    .await;
}

#[tokio::test]
async fn summaries_on_redis() {
    let Some(url) = redis_url().await else { return };
    let s = serving(Backend::Redis, url).await;
    let c = &s.client;
    let db = unique("sumr");
    c.create_database(&db, CreateOptions::default().backend(Backend::Redis))
        .await
        .expect("spawn");
    exec(c, &db, "RPUSH q a b a c a").await;
    let got = c
        .summarize(&db, "LRANGE q 0 -1", &[], 0, false)
        .await
        .expect("summarize");
    let col = &got.summaries[0];
    assert_eq!((col.count, col.distinct), (5, 3));
    assert_eq!(col.top_values[0].1, 3);
}
