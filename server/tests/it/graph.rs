//! The graph engine through gRPC (servers built with the `graph` feature): SPARQL through
//! Execute and Query, typed rows, triples and booleans; read-only keys; the calls it lacks;
//! GetSchema; dumps, backups, restores and forks; isolation between databases.

use dbforge::{
    Backend, Code, CreateBackup, CreateOptions, ForkOptions, RestoreMode, Role, Value, params,
};
use futures::TryStreamExt;

use crate::harness::{ADMIN_KEY, TestServer, as_key, assert_code, key_for, secured, unique};

const DATA: &str = r#"PREFIX ex: <http://example.com/>
PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>
INSERT DATA {
  ex:alice a ex:Person ; ex:name "Alice" ; ex:age 34 ; ex:knows ex:bob ;
           ex:score "1.50"^^xsd:decimal ; ex:active true .
  ex:bob a ex:Person ; ex:name "Bob" ; ex:age 27 ; ex:knows [ ex:name "anon" ] .
  GRAPH ex:g { ex:carol a ex:Robot }
}"#;

/// Every quad of the store, sorted, as text.
const ALL: &str = "SELECT ?s ?p ?o ?g WHERE { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } } } \
                   ORDER BY ?g ?s ?p ?o";

async fn spawn(s: &TestServer, prefix: &str) -> String {
    let name = unique(prefix);
    let created = s
        .client
        .create_database(&name, CreateOptions::default().backend(Backend::Graph))
        .await
        .expect("spawn a graph database");
    assert_eq!(created.database.backend, Backend::Graph);
    let caps = &created.database.capabilities;
    assert!(caps.sparql && !caps.sql && !caps.sessions && !caps.table_service);
    assert_eq!(caps.placeholder, "$1");
    name
}

async fn rows(s: &TestServer, db: &str, sparql: &str) -> Vec<Vec<Value>> {
    s.client
        .query(db, sparql, &[])
        .await
        .expect("query")
        .try_collect::<Vec<_>>()
        .await
        .expect("rows")
        .into_iter()
        .map(|r| r.values().to_vec())
        .collect()
}

#[tokio::test]
async fn sparql_selects_typed_rows_constructs_triples_and_asks() {
    let s = TestServer::start().await;
    let db = spawn(&s, "graph-sparql").await;
    let c = &s.client;
    c.execute(&db, DATA, &[]).await.expect("INSERT DATA");

    let got = c
        .execute(
            &db,
            "PREFIX ex: <http://example.com/> SELECT ?name ?age ?score ?active ?knows \
             WHERE { ?p ex:name ?name ; ex:age ?age ; ex:knows ?knows \
             OPTIONAL { ?p ex:score ?score } OPTIONAL { ?p ex:active ?active } } ORDER BY ?name",
            &[],
        )
        .await
        .expect("SELECT");
    let names: Vec<&str> = got.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["name", "age", "score", "active", "knows"]);
    assert_eq!(
        got.rows[0].values(),
        &[
            Value::Text("Alice".into()),
            Value::Int(34),
            Value::Decimal("1.5".into()),
            Value::Bool(true),
            Value::Text("http://example.com/bob".into()),
        ]
    );
    assert_eq!(got.rows[1].values()[2], Value::Null, "unbound is null");
    assert!(matches!(&got.rows[1].values()[4], Value::Text(b) if b.starts_with("_:")));

    // Parameters bind to $1, $2, … in queries.
    let older = c
        .execute(
            &db,
            "PREFIX ex: <http://example.com/> SELECT ?name WHERE { ?p ex:age ?a ; ex:name ?name \
             FILTER(?a > $1) }",
            &params![30],
        )
        .await
        .expect("SELECT with a parameter");
    assert_eq!(older.rows.len(), 1);
    assert_eq!(older.rows[0].values(), &[Value::Text("Alice".into())]);

    // CONSTRUCT streams triples.
    let triples = rows(
        &s,
        &db,
        "PREFIX ex: <http://example.com/> CONSTRUCT { ?a ex:friendOf ?b } WHERE { ?b ex:knows ?a }",
    )
    .await;
    assert_eq!(triples.len(), 2);
    assert!(triples.contains(&vec![
        Value::Text("http://example.com/bob".into()),
        Value::Text("http://example.com/friendOf".into()),
        Value::Text("http://example.com/alice".into()),
    ]));

    let ask = c
        .execute(&db, "ASK { ?x a <http://example.com/Person> }", &[])
        .await
        .expect("ASK");
    assert_eq!(ask.rows.len(), 1);
    assert_eq!(ask.rows[0].values(), &[Value::Bool(true)]);

    let e = assert_code(
        c.execute(&db, "SELEKT * {}", &[]).await,
        Code::InvalidArgument,
    );
    assert!(e.message().contains("SPARQL"), "{e}");
    c.delete_database(&db).await.expect("prune");
}

#[tokio::test]
async fn tables_and_sessions_are_unimplemented_and_name_sparql() {
    let s = TestServer::start().await;
    let db = spawn(&s, "graph-unimpl").await;
    let c = &s.client;
    let e = assert_code(
        c.create_table(&db, "t", vec![], false).await,
        Code::Unimplemented,
    );
    assert!(
        e.message().contains("Execute") && e.message().contains("SPARQL"),
        "{e}"
    );
    let e = assert_code(
        c.select_rows(&db, dbforge::Select::from("t"))
            .await
            .map(drop),
        Code::Unimplemented,
    );
    assert!(e.message().contains("SPARQL"), "{e}");
    let e = assert_code(c.transaction(&db).await, Code::Unimplemented);
    assert!(e.grpc_message().contains("ExecuteBatch"), "{e}");
    c.delete_database(&db).await.expect("prune");
}

#[tokio::test]
async fn a_read_only_key_reads_and_its_updates_are_refused() {
    let s = secured(Backend::Sqlite, None).await;
    let admin = as_key(&s, ADMIN_KEY).await;
    let db = unique("graph-ro");
    admin
        .create_database(&db, CreateOptions::default().backend(Backend::Graph))
        .await
        .expect("spawn");
    admin.execute(&db, DATA, &[]).await.expect("insert");
    let reader = key_for(&s, &admin, &db, Role::Read).await;
    let n = reader
        .execute(&db, "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }", &[])
        .await
        .expect("a reader reads");
    assert_eq!(n.rows[0].values(), &[Value::Int(11)]);
    for update in [
        "DELETE WHERE { ?s ?p ?o }",
        "INSERT DATA { <http://example.com/x> <http://example.com/y> 1 }",
        "CLEAR ALL",
    ] {
        let e = assert_code(
            reader.execute(&db, update, &[]).await,
            Code::PermissionDenied,
        );
        assert!(e.message().contains("read-only"), "{update}: {e}");
    }
    let after = admin
        .execute(&db, "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }", &[])
        .await
        .expect("count");
    assert_eq!(after.rows[0].values(), &[Value::Int(11)], "nothing deleted");
    admin.delete_database(&db).await.expect("prune");
}

#[tokio::test]
async fn one_database_cannot_see_another_s_triples() {
    let s = TestServer::start().await;
    let a = spawn(&s, "graph-iso-a").await;
    let b = spawn(&s, "graph-iso-b").await;
    s.client.execute(&a, DATA, &[]).await.expect("insert");
    assert_eq!(rows(&s, &a, ALL).await.len(), 12);
    assert!(rows(&s, &b, ALL).await.is_empty());
    // Pruning removes the store.
    s.client.delete_database(&a).await.expect("prune");
    assert_code(s.client.execute(&a, ALL, &[]).await, Code::NotFound);
    s.client.delete_database(&b).await.expect("prune");
}

#[tokio::test]
async fn get_schema_counts_classes_and_predicates() {
    let s = TestServer::start().await;
    let db = spawn(&s, "graph-schema").await;
    s.client.execute(&db, DATA, &[]).await.expect("insert");
    let schema = s.client.get_schema(&db, None).await.expect("schema");
    let g = schema.graph.expect("graph summary");
    assert_eq!(g.total_quads, 12);
    let classes: Vec<(&str, i64)> = g
        .classes
        .iter()
        .map(|c| (c.iri.as_str(), c.count))
        .collect();
    assert_eq!(
        classes,
        [
            ("http://example.com/Person", 2),
            ("http://example.com/Robot", 1)
        ]
    );
    let name = g
        .predicates
        .iter()
        .find(|p| p.iri == "http://example.com/name")
        .expect("ex:name");
    assert_eq!(name.count, 3);
    assert!(
        schema.text.contains("<http://example.com/Person> 2"),
        "{}",
        schema.text
    );
    s.client.delete_database(&db).await.expect("prune");
}

#[tokio::test]
async fn dumps_backups_restores_and_forks_keep_every_quad() {
    let s = TestServer::start().await;
    let db = spawn(&s, "graph-backup").await;
    let c = &s.client;
    c.execute(&db, DATA, &[]).await.expect("insert");
    let before = rows(&s, &db, ALL).await;

    let dump = c
        .dump_database(&db, false)
        .await
        .expect("dump")
        .bytes()
        .await
        .expect("bytes");
    let text = String::from_utf8(dump).expect("utf-8");
    assert_eq!(text.lines().count(), 12, "{text}");
    assert!(text.contains("<http://example.com/carol> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://example.com/Robot> <http://example.com/g> ."));

    let backup = c
        .create_backup(&db, CreateBackup::default())
        .await
        .expect("backup");
    assert_eq!(backup.backend, Backend::Graph);
    c.execute(&db, "DELETE WHERE { ?s <http://example.com/age> ?o }", &[])
        .await
        .expect("delete");
    c.execute(
        &db,
        "INSERT DATA { <http://example.com/x> <http://example.com/y> 1 }",
        &[],
    )
    .await
    .expect("insert");
    assert_ne!(rows(&s, &db, ALL).await, before);
    c.restore_backup(&backup.id, RestoreMode::Replace)
        .await
        .expect("restore");
    let after = rows(&s, &db, ALL).await;
    // Blank node ids may differ between stores; everything else is as it was.
    let named = |r: &Vec<Vec<Value>>| -> Vec<Vec<Value>> {
        r.iter()
            .filter(|q| {
                !q.iter()
                    .any(|v| matches!(v, Value::Text(t) if t.starts_with("_:")))
            })
            .cloned()
            .collect()
    };
    assert_eq!(after.len(), before.len());
    assert_eq!(named(&after), named(&before));

    let fork = unique("graph-fork");
    c.fork_database(&db, &fork, ForkOptions::default())
        .await
        .expect("fork");
    assert_eq!(rows(&s, &fork, ALL).await.len(), before.len());
    let anon = "SELECT (COUNT(*) AS ?n) WHERE { ?x <http://example.com/knows> ?b . \
                ?b <http://example.com/name> \"anon\" }";
    assert_eq!(rows(&s, &fork, anon).await, vec![vec![Value::Int(1)]]);
    c.delete_database(&fork).await.expect("prune fork");
    c.delete_database(&db).await.expect("prune");
}

#[tokio::test]
async fn rdf_files_round_trip_in_four_formats() {
    use dbforge::RdfFormat;
    let s = TestServer::start().await;
    let c = &s.client;
    let src = spawn(&s, "graph-rdf").await;
    c.execute(&src, DATA, &[]).await.expect("insert");
    let all = rows(&s, &src, ALL).await;
    let default_graph = |r: &[Vec<Value>]| -> Vec<Vec<Value>> {
        r.iter().filter(|q| q[3] == Value::Null).cloned().collect()
    };
    let named = |r: &[Vec<Value>]| -> Vec<Vec<Value>> {
        r.iter()
            .filter(|q| {
                !q.iter()
                    .any(|v| matches!(v, Value::Text(t) if t.starts_with("_:")))
            })
            .cloned()
            .collect()
    };
    for format in [
        RdfFormat::NQuads,
        RdfFormat::NTriples,
        RdfFormat::Turtle,
        RdfFormat::JsonLd,
    ] {
        let file = c
            .dump_rdf(&src, format)
            .await
            .expect("dump")
            .bytes()
            .await
            .expect("bytes");
        let dst = spawn(&s, "graph-rdf-copy").await;
        let quads = c
            .import_rdf(&dst, file, format, None)
            .await
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        // N-Triples and Turtle hold the default graph only.
        let want = if matches!(format, RdfFormat::NQuads | RdfFormat::JsonLd) {
            all.clone()
        } else {
            default_graph(&all)
        };
        assert_eq!(quads as usize, want.len(), "{format:?}");
        let got = rows(&s, &dst, ALL).await;
        assert_eq!(got.len(), want.len(), "{format:?}");
        assert_eq!(named(&got), named(&want), "{format:?}");
        c.delete_database(&dst).await.expect("prune");
    }

    // Triples into a named graph; a bad file loads nothing; other engines refuse.
    let ttl = "@prefix ex: <http://example.com/> . ex:dave ex:name \"Dave\" .";
    c.import_rdf(
        &src,
        ttl.as_bytes().to_vec(),
        RdfFormat::Turtle,
        Some("http://example.com/g2"),
    )
    .await
    .expect("turtle into a graph");
    let ask = "ASK { GRAPH <http://example.com/g2> { <http://example.com/dave> ?p \"Dave\" } }";
    assert_eq!(rows(&s, &src, ask).await, vec![vec![Value::Bool(true)]]);
    let bad =
        "<http://example.com/a> <http://example.com/b> <http://example.com/c> .\nnot rdf at all";
    let e = assert_code(
        c.import_rdf(&src, bad.as_bytes().to_vec(), RdfFormat::NTriples, None)
            .await,
        Code::InvalidArgument,
    );
    assert!(e.message().contains("RDF"), "{e}");
    assert_eq!(
        rows(&s, &src, ALL).await.len(),
        all.len() + 1,
        "nothing of the bad file"
    );
    let lite = unique("graph-rdf-lite");
    c.create_database(&lite, CreateOptions::default())
        .await
        .expect("sqlite");
    assert_code(
        c.import_rdf(&lite, ttl.as_bytes().to_vec(), RdfFormat::Turtle, None)
            .await,
        Code::Unimplemented,
    );
    assert_code(
        c.dump_rdf(&lite, RdfFormat::Turtle).await.map(drop),
        Code::InvalidArgument,
    );
    c.delete_database(&lite).await.expect("prune");
    c.delete_database(&src).await.expect("prune");
}
