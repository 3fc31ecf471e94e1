//! The conformance suite on the graph engine (the cases without tables: spawn and prune,
//! streaming, encoded streams, cancellation, timeouts), then what only a graph does.

use std::sync::Arc;

use super::{GraphBackend, GraphConfig, read_all};
use crate::{
    backend::{
        Backend, Database, Provisioned, StatementLimits,
        conformance::{self, Hooks},
    },
    core::{
        error::{Error, QueryErrorKind},
        limits::Limits,
        names::DatabaseName,
        value::{Statement, Value, ValueKind},
    },
};
use futures::StreamExt;

/// Ten digits, the building block of the series below.
const DIGITS: &str = "0 1 2 3 4 5 6 7 8 9";

/// The numbers `0..n` (`n` the one parameter, at most 10^6) with a text each, made from six
/// digit VALUES blocks without any data, filtered at the top (where a substituted parameter is
/// bound). Variables are written `$x` because the suite rewrites `?` into the placeholder `$1`.
fn series_query() -> String {
    let values: String = (0..6)
        .map(|d| format!("VALUES $d{d} {{ {DIGITS} }} "))
        .collect();
    let sum = (0..6)
        .map(|d| format!("$d{d} * {}", 10u64.pow(d)))
        .collect::<Vec<_>>()
        .join(" + ");
    format!(
        "SELECT $x $t WHERE {{ {values}BIND({sum} AS $x) BIND(CONCAT(\"row \", STR($x)) AS $t) \
         FILTER($x < ?) }}"
    )
}

/// 1,000 triples for [`slow_query`] to read.
fn slow_setup() -> String {
    format!(
        "INSERT {{ $s <http://example.com/p> $a }} WHERE {{ VALUES $a {{ {DIGITS} }} \
         VALUES $b {{ {DIGITS} }} VALUES $c {{ {DIGITS} }} \
         BIND(IRI(CONCAT(\"http://example.com/s\", STR($a), STR($b), STR($c))) AS $s) }}"
    )
}

/// A count over 10^11 combinations of those triples that share an object (100 subjects each),
/// joined by looking each one up (where Oxigraph checks its cancellation token, as it reads
/// quads): far more than ten seconds of work.
fn slow_query() -> String {
    let patterns: String = (0..5)
        .map(|i| format!("$s{i} <http://example.com/p> $o . "))
        .collect();
    format!("SELECT (COUNT(*) AS $n) WHERE {{ {patterns}}}")
}

fn backend() -> (tempfile::TempDir, Arc<GraphBackend>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = GraphBackend::new(GraphConfig {
        dir: dir.path().to_owned(),
    })
    .expect("backend");
    (dir, Arc::new(backend))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let (_dir, backend) = backend();
    let hooks = Hooks {
        slow_query: slow_query(),
        series_query: series_query(),
        ping: "ASK {}".into(),
        slow_setup: Some(slow_setup()),
    };
    conformance::run_all(backend, &hooks).await;
}

/// A spawned database, pruned on [`Db::drop_now`].
struct Db {
    backend: Arc<GraphBackend>,
    provisioned: Provisioned,
    db: Arc<dyn Database>,
}

impl Db {
    async fn new(backend: &Arc<GraphBackend>, name: &str) -> Self {
        let provisioned = backend.locate(&DatabaseName::parse(name).expect("name"));
        backend.create(&provisioned).await.expect("create");
        let db = backend.open(&provisioned).await.expect("open");
        Self {
            backend: Arc::clone(backend),
            provisioned,
            db,
        }
    }

    async fn exec(&self, sparql: &str) -> crate::core::error::Result<Vec<Vec<Value>>> {
        self.db
            .execute(Statement::new(sparql), &limits())
            .await
            .map(|r| r.rows)
    }

    async fn drop_now(self) {
        drop(self.db);
        self.backend
            .destroy(&self.provisioned)
            .await
            .expect("destroy");
    }
}

fn limits() -> StatementLimits {
    Limits::default().whole_result()
}

fn read_only() -> StatementLimits {
    StatementLimits {
        read_only: true,
        ..limits()
    }
}

const DATA: &str = r#"PREFIX ex: <http://example.com/>
PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>
INSERT DATA {
  ex:alice a ex:Person ; ex:name "Alice" ; ex:age 34 ; ex:knows ex:bob ;
           ex:score "1.50"^^xsd:decimal ; ex:active true ; ex:born "1990-01-02T03:04:05Z"^^xsd:dateTime .
  ex:bob a ex:Person ; ex:name "Bob"@en ; ex:ratio 0.5e0 ; ex:friend [ ex:name "anon" ] .
  GRAPH ex:g { ex:carol a ex:Robot }
}"#;

#[tokio::test]
async fn select_rows_carry_typed_values() {
    let (_dir, b) = backend();
    let db = Db::new(&b, "g-types").await;
    db.exec(DATA).await.expect("insert");
    let r = db
        .db
        .execute(
            Statement::new(
                "PREFIX ex: <http://example.com/> SELECT ?name ?age ?score ?active ?born ?knows ?missing \
                 WHERE { ex:alice ex:name ?name ; ex:age ?age ; ex:score ?score ; ex:active ?active ; \
                 ex:born ?born ; ex:knows ?knows OPTIONAL { ex:alice ex:nothing ?missing } }",
            ),
            &limits(),
        )
        .await
        .expect("select");
    let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["name", "age", "score", "active", "born", "knows", "missing"]
    );
    let row = &r.rows[0];
    assert_eq!(row[0], Value::Text("Alice".into()));
    assert_eq!(row[1], Value::Int(34));
    assert_eq!(row[2], Value::Decimal("1.5".into()));
    assert_eq!(row[3], Value::Bool(true));
    assert!(matches!(row[4], Value::Timestamp(t) if t.unix_timestamp() == 631_249_445));
    assert_eq!(row[5], Value::Text("http://example.com/bob".into()));
    assert_eq!(row[6], Value::Null);
    db.drop_now().await;
}

#[tokio::test]
async fn construct_gives_triples_and_ask_one_bool() {
    let (_dir, b) = backend();
    let db = Db::new(&b, "g-construct").await;
    db.exec(DATA).await.expect("insert");
    let r = db
        .db
        .execute(
            Statement::new(
                "PREFIX ex: <http://example.com/> CONSTRUCT { ?s ex:label ?n } WHERE { ?s ex:name ?n } ORDER BY ?n",
            ),
            &limits(),
        )
        .await
        .expect("construct");
    let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["subject", "predicate", "object"]);
    assert_eq!(r.rows.len(), 3);
    assert!(
        r.rows
            .iter()
            .any(|t| t[0] == Value::Text("http://example.com/alice".into())
                && t[1] == Value::Text("http://example.com/label".into())
                && t[2] == Value::Text("Alice".into()))
    );
    // The anonymous friend's subject is a blank node, written `_:id`.
    assert!(
        r.rows
            .iter()
            .any(|t| matches!(&t[0], Value::Text(s) if s.starts_with("_:")))
    );

    let ask = db
        .db
        .execute(
            Statement::new("ASK { <http://example.com/alice> ?p ?o }"),
            &limits(),
        )
        .await
        .expect("ask");
    assert_eq!(ask.columns.len(), 1);
    assert_eq!(ask.columns[0].kind, ValueKind::Bool);
    assert_eq!(ask.rows, vec![vec![Value::Bool(true)]]);
    db.drop_now().await;
}

#[tokio::test]
async fn parameters_bind_to_numbered_variables() {
    let (_dir, b) = backend();
    let db = Db::new(&b, "g-params").await;
    db.exec(DATA).await.expect("insert");
    let r = db
        .db
        .execute(
            Statement {
                sql: "PREFIX ex: <http://example.com/> SELECT ?s WHERE { ?s ex:age ?a FILTER(?a > $1) }"
                    .into(),
                params: vec![Value::Int(30)],
            },
            &limits(),
        )
        .await
        .expect("select");
    assert_eq!(
        r.rows,
        vec![vec![Value::Text("http://example.com/alice".into())]]
    );
    let err = db
        .db
        .execute(
            Statement {
                sql: "INSERT DATA { <a:b> <a:c> 1 }".into(),
                params: vec![Value::Int(1)],
            },
            &limits(),
        )
        .await
        .expect_err("updates take no parameters");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    db.drop_now().await;
}

#[tokio::test]
async fn read_only_access_refuses_updates_by_every_route() {
    let (_dir, b) = backend();
    let db = Db::new(&b, "g-ro").await;
    db.exec(DATA).await.expect("insert");
    let update = Statement::new("DELETE WHERE { ?s ?p ?o }");
    let forbidden = |e: Error| {
        assert!(
            matches!(
                e,
                Error::Query {
                    kind: QueryErrorKind::Forbidden,
                    ..
                }
            ),
            "{e:?}"
        );
    };
    forbidden(
        db.db
            .execute(update.clone(), &read_only())
            .await
            .expect_err("execute"),
    );
    let mut stream = db
        .db
        .query(update.clone(), read_only())
        .await
        .expect("stream");
    let first = stream.next().await.expect("an event");
    forbidden(first.expect_err("stream"));
    for transactional in [true, false] {
        forbidden(
            db.db
                .batch(
                    vec![Statement::new("ASK {}"), update.clone()],
                    transactional,
                    &read_only(),
                )
                .await
                .expect_err("batch"),
        );
    }
    forbidden(
        db.db
            .import_records(b"<a:b> <a:c> <a:d> .\n", &read_only())
            .await
            .expect_err("import"),
    );
    // Reads still work, and nothing was deleted.
    let n = db
        .db
        .execute(
            Statement::new("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"),
            &read_only(),
        )
        .await
        .expect("read");
    assert_eq!(n.rows, vec![vec![Value::Int(12)]]);
    db.drop_now().await;
}

#[tokio::test]
async fn databases_do_not_see_each_other() {
    let (_dir, b) = backend();
    let a = Db::new(&b, "g-iso-a").await;
    let other = Db::new(&b, "g-iso-b").await;
    a.exec(DATA).await.expect("insert");
    let seen = other
        .exec("SELECT * WHERE { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } } }")
        .await
        .expect("select");
    assert!(seen.is_empty(), "{seen:?}");
    let err = other
        .exec("SELECT * WHERE { SERVICE <http://127.0.0.1:1/sparql> { ?s ?p ?o } }")
        .await
        .expect_err("no SERVICE");
    assert!(matches!(err, Error::Query { .. }), "{err:?}");
    a.drop_now().await;
    other.drop_now().await;
}

#[tokio::test]
async fn a_failing_batch_in_a_transaction_applies_nothing() {
    let (_dir, b) = backend();
    let db = Db::new(&b, "g-batch").await;
    let err = db
        .db
        .batch(
            vec![
                Statement::new("INSERT DATA { <a:x> <a:y> 1 }"),
                Statement::new("ASK {}"),
                Statement::new("THIS IS NOT SPARQL"),
            ],
            true,
            &limits(),
        )
        .await
        .expect_err("bad statement");
    assert!(
        matches!(
            err,
            Error::Query {
                kind: QueryErrorKind::Syntax,
                statement_index: Some(2),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        db.exec("SELECT * WHERE { ?s ?p ?o }")
            .await
            .expect("select")
            .is_empty()
    );
    let results = db
        .db
        .batch(
            vec![
                Statement::new("INSERT DATA { <a:x> <a:y> 1 }"),
                Statement::new("SELECT ?o WHERE { <a:x> <a:y> ?o }"),
            ],
            true,
            &limits(),
        )
        .await
        .expect("batch");
    // The query inside the transaction sees the transaction's own write.
    assert_eq!(results[1].rows, vec![vec![Value::Int(1)]]);
    db.drop_now().await;
}

#[tokio::test]
async fn schema_counts_classes_predicates_and_graphs() {
    let (_dir, b) = backend();
    let db = Db::new(&b, "g-schema").await;
    db.exec(DATA).await.expect("insert");
    let schema = db.db.schema(None, &limits()).await.expect("schema");
    assert!(schema.tables.is_empty());
    let g = schema.graph.expect("a graph summary");
    assert_eq!(g.total_quads, 13);
    assert_eq!(
        g.classes,
        [
            ("http://example.com/Person".to_owned(), 2),
            ("http://example.com/Robot".to_owned(), 1)
        ]
    );
    assert_eq!(g.predicates[0], ("http://example.com/name".to_owned(), 3));
    assert_eq!(g.named_graphs, [("http://example.com/g".to_owned(), 1)]);
    let text = crate::core::schema::Schema {
        graph: Some(g),
        ..Default::default()
    }
    .render_text();
    assert!(text.contains("<http://example.com/Person> 2"), "{text}");
    db.drop_now().await;
}

#[tokio::test]
async fn a_dump_loads_into_an_identical_store() {
    let (_dir, b) = backend();
    let db = Db::new(&b, "g-dump").await;
    db.exec(DATA).await.expect("insert");
    let mut dump = db
        .db
        .dump(false, Limits::default().transfer())
        .await
        .expect("dump");
    let (mut bytes, mut rows) = (Vec::new(), 0);
    while let Some(chunk) = dump.next().await {
        let chunk = chunk.expect("chunk");
        bytes.extend(chunk.data);
        rows += chunk.rows;
    }
    assert_eq!(rows, 13);
    let copy = Db::new(&b, "g-dump-copy").await;
    // Two batches split mid-way: the blank node keeps its identity across them.
    let text = String::from_utf8(bytes).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    for part in [first, second] {
        let batch = part.iter().map(|l| format!("{l}\n")).collect::<String>();
        copy.db
            .import_records(batch.as_bytes(), &limits())
            .await
            .expect("load");
    }
    let all = "SELECT ?s ?p ?o ?g WHERE { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } } } ORDER BY ?s ?p ?o ?g";
    let (want, got) = (
        db.exec(all).await.expect("source"),
        copy.exec(all).await.expect("copy"),
    );
    assert_eq!(got.len(), want.len());
    let anon = "SELECT (COUNT(*) AS ?n) WHERE { ?b <http://example.com/name> \"anon\" . ?x <http://example.com/friend> ?b }";
    assert_eq!(
        copy.exec(anon).await.expect("join"),
        vec![vec![Value::Int(1)]]
    );
    let err = copy
        .db
        .import_records(b"not n-quads\n", &limits())
        .await
        .expect_err("bad data");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    db.drop_now().await;
    copy.drop_now().await;
}

#[tokio::test]
async fn streams_end_with_a_summary_and_stop_at_the_row_limit() {
    let (_dir, b) = backend();
    let db = Db::new(&b, "g-stream").await;
    db.exec(DATA).await.expect("insert");
    let stream = db
        .db
        .query(
            Statement::new("SELECT ?s ?p ?o WHERE { ?s ?p ?o }"),
            Limits::default().stream(3),
        )
        .await
        .expect("query");
    let (columns, rows) = read_all(stream).await.expect("rows");
    assert_eq!(columns.len(), 3);
    assert_eq!(rows.len(), 3);
    let Err(err) = db
        .db
        .query(
            Statement::new("SELEKT nothing"),
            Limits::default().stream(0),
        )
        .await
    else {
        panic!("a syntax error");
    };
    assert!(
        matches!(
            err,
            Error::Query {
                kind: QueryErrorKind::Syntax,
                ..
            }
        ),
        "{err:?}"
    );
    db.drop_now().await;
}
