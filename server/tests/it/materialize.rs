//! SemanticService.MaterializeGraph (servers built with the `graph` feature): a SQL database of
//! each engine mapped into a graph database by the W3C Direct Mapping, joins traversed as graph
//! paths, refreshes with `replace`, all-or-nothing loads, and the errors.

use dbforge::{Backend, Client, Code, CreateOptions, MaterializeOptions, Role, Value, params};
use futures::TryStreamExt;

use crate::harness::{
    ADMIN_KEY, TestServer, as_key, assert_code, key_for, mysql_url, postgres_url, secured, serving,
    unique,
};

/// Departments, employees with a foreign key to their department and one to their boss (a
/// self-reference), and notes without a primary key; NULLs where a triple must be left out.
const SCHEMA: [&str; 6] = [
    "CREATE TABLE dept (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL)",
    "CREATE TABLE emp (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL, salary INTEGER, \
     dept_id INTEGER, boss_id INTEGER, \
     FOREIGN KEY (dept_id) REFERENCES dept (id), FOREIGN KEY (boss_id) REFERENCES emp (id))",
    "CREATE TABLE note (body VARCHAR(100))",
    "INSERT INTO dept VALUES (1, 'R&D'), (2, 'Sales')",
    "INSERT INTO emp VALUES (1, 'Ada', 100, 1, NULL), (2, 'Bob', NULL, 1, 1), \
     (3, 'Cy', 80, 2, 1)",
    "INSERT INTO note VALUES ('x y'), ('<z>')",
];

/// dept: 2 × (type, id, name); emp: Ada 6 (no boss), Bob 7 (no salary), Cy 8; note: 2 × 2.
const TRIPLES: u64 = 6 + 21 + 4;

async fn spawn(c: &Client, prefix: &str, backend: Backend) -> String {
    let name = unique(prefix);
    c.create_database(&name, CreateOptions::default().backend(backend))
        .await
        .expect("spawn");
    name
}

async fn source(c: &Client, backend: Backend) -> String {
    let db = spawn(c, "mat-src", backend).await;
    for stmt in SCHEMA {
        c.execute(&db, stmt, &[]).await.expect(stmt);
    }
    db
}

async fn select(c: &Client, db: &str, sparql: &str) -> Vec<Vec<Value>> {
    c.query(db, sparql, &[])
        .await
        .expect("query")
        .try_collect::<Vec<_>>()
        .await
        .expect("rows")
        .into_iter()
        .map(|r| r.values().to_vec())
        .collect()
}

async fn count(c: &Client, db: &str, pattern: &str) -> i64 {
    let rows = select(
        c,
        db,
        &format!("SELECT (COUNT(*) AS ?n) WHERE {{ {pattern} }}"),
    )
    .await;
    match rows[0][0] {
        Value::Int(n) => n,
        ref other => panic!("count: {other:?}"),
    }
}

/// Maps a fresh source of `backend` and checks the triples, a two-hop join and typed values.
async fn maps_and_joins(s: &TestServer, backend: Backend) {
    let c = &s.client;
    let src = source(c, backend).await;
    let kb = spawn(c, "mat-kb", Backend::Graph).await;
    let done = c
        .materialize_graph(&src, &kb, MaterializeOptions::default())
        .await
        .expect("materialize");
    let b = format!("urn:dbforge:{src}/");
    assert_eq!(done.base_iri, b);
    assert_eq!(done.triples, TRIPLES, "{backend:?}");
    let tables: Vec<(&str, u64, u64)> = done
        .tables
        .iter()
        .map(|t| (t.table.as_str(), t.rows, t.triples))
        .collect();
    assert_eq!(tables, [("dept", 2, 6), ("emp", 3, 21), ("note", 2, 4)]);
    assert_eq!(count(c, &kb, "?s ?p ?o").await, TRIPLES as i64);

    // Who works for a boss in R&D: two foreign keys followed as a path.
    let names = select(
        c,
        &kb,
        &format!(
            "SELECT ?name WHERE {{ ?e <{b}emp#ref-boss_id> / <{b}emp#ref-dept_id> ?d . \
             ?d <{b}dept#name> \"R&D\" . ?e <{b}emp#name> ?name }} ORDER BY ?name"
        ),
    )
    .await;
    assert_eq!(
        names,
        [
            vec![Value::Text("Bob".into())],
            vec![Value::Text("Cy".into())]
        ]
    );
    // Rows are subjects named by their key, typed by their table; integers stay integers.
    let ada = select(
        c,
        &kb,
        &format!(
            "SELECT ?id ?salary WHERE {{ <{b}emp/id=1> a <{b}emp> ; <{b}emp#id> ?id ; \
             <{b}emp#salary> ?salary }}"
        ),
    )
    .await;
    assert_eq!(ada, [vec![Value::Int(1), Value::Int(100)]]);
    // NULL is no triple; rows without a key are blank nodes; text is kept as it was.
    assert_eq!(
        count(c, &kb, &format!("<{b}emp/id=2> <{b}emp#salary> ?x")).await,
        0
    );
    assert_eq!(
        count(c, &kb, &format!("<{b}emp/id=1> <{b}emp#ref-boss_id> ?x")).await,
        0
    );
    let notes = select(
        c,
        &kb,
        &format!("SELECT ?body WHERE {{ ?n a <{b}note> ; <{b}note#body> ?body FILTER isBlank(?n) }} ORDER BY ?body"),
    )
    .await;
    assert_eq!(
        notes,
        [
            vec![Value::Text("<z>".into())],
            vec![Value::Text("x y".into())]
        ]
    );
}

#[tokio::test]
async fn sqlite_tables_map_to_triples_and_foreign_keys_to_paths() {
    let s = TestServer::start().await;
    maps_and_joins(&s, Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_tables_map_the_same() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = serving(Backend::Postgres, url).await;
    maps_and_joins(&s, Backend::Postgres).await;
}

#[tokio::test]
async fn mysql_tables_map_the_same() {
    let Some(url) = mysql_url().await else {
        return;
    };
    let s = serving(Backend::Mysql, url).await;
    maps_and_joins(&s, Backend::Mysql).await;
}

#[tokio::test]
async fn replace_refreshes_one_named_graph_and_leaves_the_rest() {
    let s = TestServer::start().await;
    let c = &s.client;
    let src = source(c, Backend::Sqlite).await;
    let kb = spawn(c, "mat-kb", Backend::Graph).await;
    c.execute(
        &kb,
        "INSERT DATA { <http://example.com/mine> <http://example.com/says> \"kept\" }",
        &[],
    )
    .await
    .expect("the graph's own triple");
    let into = |replace| MaterializeOptions {
        base_iri: Some("http://example.com/hr/".into()),
        graph: Some("http://example.com/g/hr".into()),
        replace,
    };
    let first = c
        .materialize_graph(&src, &kb, into(true))
        .await
        .expect("first");
    assert_eq!(first.base_iri, "http://example.com/hr/");
    let in_graph = "GRAPH <http://example.com/g/hr> { ?s ?p ?o }";
    assert_eq!(count(c, &kb, in_graph).await, TRIPLES as i64);
    assert_eq!(
        count(c, &kb, "<http://example.com/hr/dept/id=1> ?p ?o").await,
        0,
        "the default graph holds none of the mapping"
    );

    // Cy and one note leave the source: a refresh leaves exactly what is there now.
    c.execute(&src, "DELETE FROM emp WHERE id = 3", &[])
        .await
        .expect("delete");
    c.execute(&src, "DELETE FROM note WHERE body = ?", &params!["x y"])
        .await
        .expect("delete");
    let second = c
        .materialize_graph(&src, &kb, into(true))
        .await
        .expect("refresh");
    assert_eq!(second.triples, TRIPLES - 8 - 2);
    assert_eq!(count(c, &kb, in_graph).await, (TRIPLES - 8 - 2) as i64);
    assert_eq!(
        count(c, &kb, "<http://example.com/mine> ?p \"kept\"").await,
        1,
        "the default graph was not touched"
    );

    // Without replace the rows are added: keyed rows are the same triples again, rows without
    // a key are new blank nodes.
    c.materialize_graph(&src, &kb, into(false))
        .await
        .expect("add");
    assert_eq!(count(c, &kb, in_graph).await, (TRIPLES - 8 - 2 + 2) as i64);
}

#[tokio::test]
async fn a_load_past_the_import_limit_leaves_the_graph_as_it_was() {
    // 64 KiB of N-Triples at most: the source below writes far more.
    let s = TestServer::with(|mut c| {
        c.max_import_size = 64 << 10;
        c
    })
    .await;
    let c = &s.client;
    let src = spawn(c, "mat-big", Backend::Sqlite).await;
    c.execute(&src, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", &[])
        .await
        .expect("create");
    c.execute(
        &src,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) \
         INSERT INTO t SELECT i, printf('value %d', i) FROM n",
        &[],
    )
    .await
    .expect("rows");
    let kb = spawn(c, "mat-kb", Backend::Graph).await;
    c.execute(&kb, "INSERT DATA { <urn:a> <urn:b> <urn:c> }", &[])
        .await
        .expect("a triple");
    let e = assert_code(
        c.materialize_graph(
            &src,
            &kb,
            MaterializeOptions {
                replace: true,
                ..MaterializeOptions::default()
            },
        )
        .await,
        Code::ResourceExhausted,
    );
    assert!(e.message().contains("import"), "{e}");
    // Neither the clear nor any row was committed.
    assert_eq!(count(c, &kb, "?s ?p ?o").await, 1);
}

#[tokio::test]
async fn wrong_engines_bad_iris_and_missing_access_are_refused() {
    let s = secured(Backend::Sqlite, None).await;
    let admin = as_key(&s, ADMIN_KEY).await;
    let src = source(&admin, Backend::Sqlite).await;
    let kb = spawn(&admin, "mat-kb", Backend::Graph).await;
    let other = spawn(&admin, "mat-sql", Backend::Sqlite).await;
    let opts = MaterializeOptions::default;

    // A graph database is no source; a SQL database is no target.
    assert_code(
        admin.materialize_graph(&kb, &kb, opts()).await,
        Code::Unimplemented,
    );
    let e = assert_code(
        admin.materialize_graph(&src, &other, opts()).await,
        Code::InvalidArgument,
    );
    assert!(e.message().contains("graph database"), "{e}");
    for (base_iri, graph) in [
        (Some("no-scheme/"), None),
        (Some("http://example.com/a b/"), None),
        (None, Some("not an iri")),
    ] {
        let bad = MaterializeOptions {
            base_iri: base_iri.map(Into::into),
            graph: graph.map(Into::into),
            replace: false,
        };
        assert_code(
            admin.materialize_graph(&src, &kb, bad).await,
            Code::InvalidArgument,
        );
    }
    assert_code(
        admin.materialize_graph(&src, "no-such-db", opts()).await,
        Code::NotFound,
    );
    assert_eq!(
        count(&admin, &kb, "?s ?p ?o").await,
        0,
        "nothing was loaded"
    );

    // Reading the source is not writing the graph, and the other way round.
    let reader_of_both = {
        let (_, key) = admin
            .create_api_key(
                dbforge::ApiKeySpec::new("reads both")
                    .grant(dbforge::Grant::database(&src, Role::Read))
                    .grant(dbforge::Grant::database(&kb, Role::Read)),
            )
            .await
            .expect("key");
        as_key(&s, &key).await
    };
    assert_code(
        reader_of_both.materialize_graph(&src, &kb, opts()).await,
        Code::PermissionDenied,
    );
    let writer_of_graph = key_for(&s, &admin, &kb, Role::Write).await;
    assert_code(
        writer_of_graph.materialize_graph(&src, &kb, opts()).await,
        Code::PermissionDenied,
    );
    let both = {
        let (_, key) = admin
            .create_api_key(
                dbforge::ApiKeySpec::new("reads one, writes the other")
                    .grant(dbforge::Grant::database(&src, Role::Read))
                    .grant(dbforge::Grant::database(&kb, Role::Write)),
            )
            .await
            .expect("key");
        as_key(&s, &key).await
    };
    let done = both
        .materialize_graph(&src, &kb, opts())
        .await
        .expect("read and write grants are enough");
    assert_eq!(done.triples, TRIPLES);
}
