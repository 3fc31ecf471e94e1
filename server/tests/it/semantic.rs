//! SemanticService (Ask, AskStream) against a scripted OpenAI-compatible model on loopback
//! (`llm_fixture.rs`): the grounding prompt, EXPLAIN validation, repair rounds, read-only
//! execution, budgets, the cache, the API key's handling. SQLite throughout; the run path on
//! PostgreSQL and MySQL too.

use std::time::Duration;

use dbforge::{AskOptions, AskStatus, Backend, Client, Code, CreateOptions, Truncation};
use dbforge_server::core::semantic::model::Secret;
use futures::TryStreamExt;

use crate::{
    harness::{ServerProcess, TestServer, assert_code, mysql_url, postgres_url, unique},
    llm_fixture::FakeLlm,
};

/// The eval set's sample shop: customers, orders, products, order_items, categories.
const SHOP: &str = include_str!("../../../bench/semantic/shop.sql");

const KEY: &str = "sk-fixture-key-7f3a9c1e";

/// A gateway whose model is `llm`, with the API key [`KEY`], and `backend` at `url` if given.
async fn gateway(llm: &FakeLlm, backend: Option<(Backend, String)>) -> TestServer {
    let url = llm.url();
    TestServer::with(move |mut c| {
        c.llm_url = Some(url);
        c.llm_model = Some("fixture-model".into());
        c.llm_timeout = Duration::from_secs(10);
        c.llm_api_key = Some(Secret::new(KEY));
        match backend {
            Some((Backend::Postgres, u)) => c.postgres_url = Some(u),
            Some((Backend::Mysql, u)) => c.mysql_url = Some(u),
            _ => {}
        }
        c
    })
    .await
}

/// A database holding the shop.
async fn shop(client: &Client, backend: Backend) -> String {
    let db = unique("shop");
    client
        .create_database(&db, CreateOptions::default().backend(backend))
        .await
        .expect("create");
    client.import_sql(&db, SHOP).await.expect("import the shop");
    db
}

fn ids(rows: &[dbforge::Row]) -> Vec<i64> {
    rows.iter().map(|r| r.get::<i64>(0).expect("int")).collect()
}

#[tokio::test]
async fn ask_runs_a_grounded_query_and_returns_typed_rows() {
    let llm = FakeLlm::start().await;
    let s = gateway(&llm, None).await;
    let db = shop(&s.client, Backend::Sqlite).await;
    let q = "How many orders has each customer from Germany placed?";
    let sql = "SELECT c.name, COUNT(o.id) AS orders FROM customers c JOIN orders o \
               ON o.customer_id = c.id WHERE c.country = 'DE' GROUP BY c.id, c.name ORDER BY c.name";
    llm.answer(
        q,
        sql,
        "Joins orders to their customers and counts per German customer.",
    );

    let asked = s.client.ask(&db, q, AskOptions::run(0)).await.expect("ask");
    let a = &asked.answer;
    assert_eq!(a.status, AskStatus::Answered, "{a:?}");
    assert_eq!(a.sql, sql);
    assert!(a.rationale.starts_with("Joins orders"), "{a:?}");
    assert!(a.valid && a.validation_error.is_empty(), "{a:?}");
    assert!(!a.plan.is_empty(), "the EXPLAIN plan is reported: {a:?}");
    assert_eq!(
        (a.rounds, a.cached, a.model.as_str()),
        (1, false, "fixture-model")
    );
    let names: Vec<String> = asked.rows.iter().map(|r| r.get(0).expect("name")).collect();
    assert_eq!(names, ["Emmy Noether", "Konrad Zuse"]);
    let counts: Vec<i64> = asked
        .rows
        .iter()
        .map(|r| r.get(1).expect("count"))
        .collect();
    assert_eq!(counts, [4, 1]);
    assert_eq!(asked.columns[1].name, "orders");
    assert_eq!(asked.summary.expect("summary").row_count, 2);

    // The grounding: tables, join paths, sample values of low-cardinality columns.
    let reqs = llm.requests_for(q);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(reqs[0].body["model"], "fixture-model");
    let prompt = reqs[0].system();
    for needle in [
        "CREATE TABLE customers",
        "CREATE TABLE order_items",
        "orders.customer_id = customers.id",
        "order_items.product_id = products.id",
        "- orders.status: ",
        "'delivered'",
        "'cancelled'",
        "- customers.country: ",
        "'DE'",
        "SQLite",
    ] {
        assert!(
            prompt.contains(needle),
            "prompt lacks {needle:?}:\n{prompt}"
        );
    }
    // High-cardinality columns are not sampled.
    assert!(!prompt.contains("- customers.name:"), "{prompt}");
    assert_eq!(reqs[0].last(), q);
}

#[tokio::test]
async fn explain_validates_and_flags_full_scans() {
    let llm = FakeLlm::start().await;
    let s = gateway(&llm, None).await;
    let db = shop(&s.client, Backend::Sqlite).await;
    let q = "Which orders are pending?";
    llm.answer(
        q,
        "SELECT id FROM orders WHERE status = 'pending'",
        "Filters by status.",
    );
    let a = s
        .client
        .ask(&db, q, AskOptions::default())
        .await
        .expect("ask")
        .answer;
    assert!(a.valid, "{a:?}");
    assert_eq!(a.full_scans, ["orders"], "status has no index: {a:?}");
    assert!(a.plan.contains("SCAN"), "{a:?}");

    let q = "Which order has id 3?";
    llm.answer(q, "SELECT id FROM orders WHERE id = 3", "By key.");
    let a = s
        .client
        .ask(&db, q, AskOptions::default())
        .await
        .expect("ask")
        .answer;
    assert!(
        a.valid && a.full_scans.is_empty(),
        "a key lookup scans nothing: {a:?}"
    );
}

#[tokio::test]
async fn an_engine_error_is_sent_back_and_the_repair_succeeds() {
    let llm = FakeLlm::start().await;
    let s = gateway(&llm, None).await;
    let db = shop(&s.client, Backend::Sqlite).await;
    let q = "What is the total number of units sold?";
    llm.answer(
        q,
        "SELECT SUM(qty) FROM order_items",
        "Sums the quantities.",
    );
    llm.answer(
        q,
        "SELECT SUM(quantity) FROM order_items",
        "Sums the quantity column.",
    );
    let asked = s.client.ask(&db, q, AskOptions::run(0)).await.expect("ask");
    assert_eq!(asked.answer.status, AskStatus::Answered);
    assert_eq!(asked.answer.rounds, 2);
    assert_eq!(asked.answer.sql, "SELECT SUM(quantity) FROM order_items");
    assert_eq!(ids(&asked.rows), [133]);

    let reqs = llm.requests_for(q);
    assert_eq!(reqs.len(), 2);
    let repair = reqs[1].last();
    assert!(
        repair.contains("no such column: qty"),
        "the engine's error goes back to the model: {repair}"
    );
    // The second request carries the whole chat: the first answer, then the error.
    let contents = reqs[1].contents();
    assert_eq!(contents.len(), 4);
    assert!(contents[2].contains("SUM(qty)"));
}

#[tokio::test]
async fn ask_gives_up_after_the_repair_rounds_and_says_why() {
    let llm = FakeLlm::start().await;
    let s = gateway(&llm, None).await;
    let db = shop(&s.client, Backend::Sqlite).await;
    let q = "How many widgets are there?";
    for _ in 0..3 {
        llm.answer(q, "SELECT COUNT(*) FROM widgets", "Counts widgets.");
    }
    let asked = s.client.ask(&db, q, AskOptions::run(0)).await.expect("ask");
    let a = asked.answer;
    assert_eq!(a.status, AskStatus::GaveUp);
    assert_eq!(a.rounds, 3);
    assert!(!a.valid);
    assert!(
        a.validation_error.contains("no such table: widgets"),
        "{a:?}"
    );
    assert!(
        a.message.contains("gave up after 3 tries") && a.message.contains("widgets"),
        "{}",
        a.message
    );
    assert!(
        asked.rows.is_empty() && asked.summary.is_none(),
        "nothing ran"
    );
    assert_eq!(llm.requests_for(q).len(), 3, "no fourth call");

    // A model that says the question cannot be answered ends the loop at once.
    let q = "What is the weather tomorrow?";
    llm.answer(q, "", "The database holds no weather data.");
    let a = s
        .client
        .ask(&db, q, AskOptions::default())
        .await
        .expect("ask")
        .answer;
    assert_eq!((a.status, a.rounds), (AskStatus::GaveUp, 1));
    assert!(a.message.contains("no weather data"), "{}", a.message);

    // An answer that is not the JSON asked for is sent back too.
    let q = "Count the categories.";
    llm.script(q, &["I would count them."]);
    llm.answer(q, "SELECT COUNT(*) FROM categories", "Counts rows.");
    let asked = s.client.ask(&db, q, AskOptions::run(0)).await.expect("ask");
    assert_eq!((asked.answer.rounds, ids(&asked.rows)), (2, vec![5]));
    assert!(
        llm.requests_for(q)[1]
            .last()
            .contains("not the JSON object")
    );
}

#[tokio::test]
async fn a_model_answering_drop_table_changes_nothing() {
    let llm = FakeLlm::start().await;
    let s = gateway(&llm, None).await;
    let db = shop(&s.client, Backend::Sqlite).await;
    let q = "Remove the orders please.";
    for sql in [
        "DROP TABLE orders",
        "DELETE FROM orders",
        "SELECT 1; DROP TABLE orders",
    ] {
        llm.answer(q, sql, "Drops it.");
    }
    let asked = s.client.ask(&db, q, AskOptions::run(0)).await.expect("ask");
    let a = asked.answer;
    assert_eq!(a.status, AskStatus::GaveUp, "{a:?}");
    assert!(
        a.message.contains("exactly one statement"),
        "the last try had two statements: {}",
        a.message
    );
    let reqs = llm.requests_for(q);
    assert!(
        reqs[1].last().contains("would change the database"),
        "{}",
        reqs[1].last()
    );
    let n: i64 = s
        .client
        .execute(&db, "SELECT COUNT(*) FROM orders", &[])
        .await
        .expect("the table is still there")
        .rows[0]
        .get(0)
        .expect("count");
    assert_eq!(n, 24);
}

#[tokio::test]
async fn ask_keeps_to_the_row_and_time_budgets() {
    let llm = FakeLlm::start().await;
    let s = gateway(&llm, None).await;
    let db = shop(&s.client, Backend::Sqlite).await;
    let q = "List every order id.";
    llm.answer(q, "SELECT id FROM orders ORDER BY id", "All ids.");
    let asked = s.client.ask(&db, q, AskOptions::run(3)).await.expect("ask");
    assert_eq!(ids(&asked.rows), [1, 2, 3]);
    assert_eq!(
        asked.summary.expect("summary").truncation,
        Truncation::RowLimit
    );
    // Default: 100 rows.
    let asked = s.client.ask(&db, q, AskOptions::run(0)).await.expect("ask");
    assert!(asked.answer.cached);
    assert_eq!(asked.rows.len(), 24);

    let q = "Count to a very large number.";
    llm.answer(
        q,
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000000000) \
         SELECT MAX(x) FROM n",
        "Counts.",
    );
    let started = std::time::Instant::now();
    let err = assert_code(
        s.client
            .ask(
                &db,
                q,
                AskOptions::run(0).timeout(Duration::from_millis(300)),
            )
            .await,
        Code::DeadlineExceeded,
    );
    assert!(err.to_string().contains("time budget of 300 ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_second_identical_question_is_served_from_the_cache() {
    let llm = FakeLlm::start().await;
    let s = gateway(&llm, None).await;
    let db = shop(&s.client, Backend::Sqlite).await;
    let q = "How many products are there?";
    llm.answer(q, "SELECT COUNT(*) FROM products", "Counts products.");
    let first = s.client.ask(&db, q, AskOptions::run(0)).await.expect("ask");
    assert!(!first.answer.cached);
    // Data changes do not change the schema's hash.
    s.client
        .execute(&db, "INSERT INTO categories VALUES (6, 'Music')", &[])
        .await
        .expect("insert");
    let second = s.client.ask(&db, q, AskOptions::run(0)).await.expect("ask");
    assert!(second.answer.cached, "{:?}", second.answer);
    assert_eq!(second.answer.rounds, 0);
    assert_eq!(second.answer.sql, first.answer.sql);
    assert_eq!(ids(&second.rows), [12], "the cached query runs again");
    assert_eq!(llm.requests_for(q).len(), 1, "no second model call");

    // A schema change is a new key.
    s.client
        .execute(&db, "CREATE TABLE suppliers (id INTEGER PRIMARY KEY)", &[])
        .await
        .expect("ddl");
    llm.answer(q, "SELECT COUNT(*) FROM products", "Counts products.");
    let third = s
        .client
        .ask(&db, q, AskOptions::default())
        .await
        .expect("ask");
    assert!(!third.answer.cached);
    assert_eq!(llm.requests_for(q).len(), 2);
}

#[tokio::test]
async fn ask_stream_streams_the_rows_after_the_answer() {
    let llm = FakeLlm::start().await;
    let s = gateway(&llm, None).await;
    let db = shop(&s.client, Backend::Sqlite).await;
    let q = "Which products cost less than 20 dollars?";
    llm.answer(
        q,
        "SELECT id FROM products WHERE price_cents < 2000 ORDER BY id",
        "Filters by price.",
    );
    let (answer, rows) = s
        .client
        .ask_stream(&db, q, AskOptions::run(0))
        .await
        .expect("ask stream");
    assert_eq!(answer.status, AskStatus::Answered);
    let mut rows = rows.expect("rows");
    let got: Vec<dbforge::Row> = (&mut rows).try_collect().await.expect("rows");
    assert_eq!(ids(&got), [3, 4, 8, 12]);
    assert_eq!(rows.summary().expect("summary").row_count, 4);

    // Without `run`, the answer alone.
    let (answer, rows) = s
        .client
        .ask_stream(&db, q, AskOptions::default())
        .await
        .expect("ask stream");
    assert!(answer.cached && rows.is_none());
}

#[tokio::test]
async fn without_a_model_ask_is_failed_precondition_saying_how_to_configure_one() {
    let s = TestServer::start().await;
    let db = shop(&s.client, Backend::Sqlite).await;
    let err = assert_code(
        s.client
            .ask(&db, "How many customers?", AskOptions::default())
            .await,
        Code::FailedPrecondition,
    );
    let text = err.to_string();
    assert!(
        text.contains("--llm-url") && text.contains("--llm-model"),
        "{text}"
    );
    assert!(text.contains("DBFORGE_LLM_API_KEY"), "{text}");
    let err = assert_code(
        s.client.ask(&db, "  ", AskOptions::default()).await,
        Code::InvalidArgument,
    );
    assert!(err.to_string().contains("question"), "{err}");
}

#[tokio::test]
async fn the_api_key_is_sent_as_bearer_and_is_absent_from_logs_and_audit() {
    let llm = FakeLlm::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let url = llm.url();
    let p = ServerProcess::spawn_env(
        dir.path(),
        &["--llm-url", &url, "--llm-model", "fixture-model"],
        &[("DBFORGE_LLM_API_KEY", KEY)],
    );
    let client = p.client().await;
    let db = shop(&client, Backend::Sqlite).await;
    let q = "How many categories are there?";
    llm.answer(q, "SELECT COUNT(*) FROM categories", "Counts.");
    let asked = client.ask(&db, q, AskOptions::run(0)).await.expect("ask");
    assert_eq!(ids(&asked.rows), [5]);
    // An endpoint error reaches the client without the key.
    let err = assert_code(
        client
            .ask(&db, "unscripted question", AskOptions::default())
            .await,
        Code::Unavailable,
    );
    assert!(err.to_string().contains("500"), "{err}");
    assert!(!err.to_string().contains(KEY));

    let reqs = llm.requests_for(q);
    assert_eq!(
        reqs[0].authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    // The audit log has the question and the SQL, never the key.
    let mut events = Vec::new();
    for _ in 0..50 {
        events = client
            .list_audit_events(Default::default())
            .await
            .expect("audit")
            .0;
        if events.iter().filter(|e| e.rpc == "Ask").count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ask = events
        .iter()
        .find(|e| e.rpc == "Ask" && e.outcome == "OK")
        .expect("the Ask is audited");
    assert!(
        ask.statement.contains(q) && ask.statement.contains("SELECT COUNT(*) FROM categories"),
        "{ask:?}"
    );
    assert!(events.iter().all(|e| !e.statement.contains(KEY)));
    let logs = p.logs();
    assert!(logs.contains("Ask uses this language model"), "{logs}");
    assert!(!logs.contains(KEY), "the key leaked into the logs");
}

/// The run path on a server engine: typed rows, the read-only login, the repair round.
async fn run_path_on(backend: Backend, url: String) {
    let llm = FakeLlm::start().await;
    let s = gateway(&llm, Some((backend, url))).await;
    let db = shop(&s.client, backend).await;
    let q = "What is the revenue in cents per country?";
    let sql = "SELECT c.country, SUM(i.quantity * i.unit_price_cents) AS revenue FROM customers c \
               JOIN orders o ON o.customer_id = c.id JOIN order_items i ON i.order_id = o.id \
               GROUP BY c.country ORDER BY c.country";
    llm.answer(
        q,
        "SELECT country, SUM(revenue) FROM sales GROUP BY country",
        "Guess.",
    );
    llm.answer(q, sql, "Joins customers, orders and items.");
    let asked = s.client.ask(&db, q, AskOptions::run(0)).await.expect("ask");
    assert_eq!(
        asked.answer.status,
        AskStatus::Answered,
        "{:?}",
        asked.answer
    );
    assert_eq!(asked.answer.rounds, 2);
    let reqs = llm.requests_for(q);
    assert!(reqs[1].last().contains("sales"), "{}", reqs[1].last());
    let prompt = reqs[0].system();
    assert!(
        prompt.contains("orders.customer_id = customers.id"),
        "{prompt}"
    );
    assert!(prompt.contains("'shipped'"), "{prompt}");
    let countries: Vec<String> = asked.rows.iter().map(|r| r.get(0).expect("c")).collect();
    assert_eq!(countries, ["DE", "FR", "GB", "US"]);
    let revenue: Vec<String> = asked
        .rows
        .iter()
        .map(|r| format!("{:?}", r.values()[1]))
        .collect();
    assert_eq!(revenue.len(), 4, "{revenue:?}");

    let (_, rows) = s
        .client
        .ask_stream(&db, q, AskOptions::run(2))
        .await
        .expect("stream");
    let got: Vec<dbforge::Row> = rows.expect("rows").try_collect().await.expect("rows");
    assert_eq!(got.len(), 2);
}

#[tokio::test]
async fn postgres_runs_answers_read_only_and_keeps_comments_in_the_prompt() {
    let Some(url) = postgres_url().await else {
        return;
    };
    run_path_on(Backend::Postgres, url.clone()).await;

    let llm = FakeLlm::start().await;
    let s = gateway(&llm, Some((Backend::Postgres, url))).await;
    let db = shop(&s.client, Backend::Postgres).await;
    s.client
        .execute(
            &db,
            "COMMENT ON COLUMN orders.status IS 'pending until paid, then shipped'",
            &[],
        )
        .await
        .expect("comment");
    // A data-modifying WITH reads as a query; the read-only login is what refuses it.
    let q = "Delete the cancelled orders' items and count them.";
    for _ in 0..3 {
        llm.answer(
            q,
            "WITH gone AS (DELETE FROM order_items RETURNING order_id) SELECT COUNT(*) FROM gone",
            "Deletes.",
        );
    }
    let a = s
        .client
        .ask(&db, q, AskOptions::run(0))
        .await
        .expect("ask")
        .answer;
    assert_eq!(a.status, AskStatus::GaveUp, "{a:?}");
    assert!(a.validation_error.contains("permission denied"), "{a:?}");
    let n: i64 = s
        .client
        .execute(&db, "SELECT COUNT(*) FROM order_items", &[])
        .await
        .expect("count")
        .rows[0]
        .get(0)
        .expect("n");
    assert_eq!(n, 53, "nothing was deleted");
    let prompt = llm.requests_for(q)[0].system();
    assert!(
        prompt.contains("- orders.status: pending until paid, then shipped"),
        "{prompt}"
    );
}

#[tokio::test]
async fn mysql_runs_answers_read_only() {
    let Some(url) = mysql_url().await else {
        return;
    };
    run_path_on(Backend::Mysql, url).await;
}
