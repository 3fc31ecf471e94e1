//! Phase 18 (the knowledge-graph issue, bench built with `--features graph`): 1,000,000 triples
//! in a graph database, and three SPARQL queries (a lookup, a 2-hop join, an aggregate)
//! streamed through the gateway against the same queries on Oxigraph in this process, same run.
//!
//! Both sides load the same N-Triples file (the gateway through ImportRdf, in-process through
//! Oxigraph's bulk loader). A query's rate is its result rows per second, read to the end (on
//! the gateway through the Rust SDK's stream, in-process by turning every term into text, as a
//! client would); the best of `plan.stream_runs` runs counts. Target: the streamed results' rates
//! (the 2-hop join's rows, the aggregate's) through the gateway at least 60 % of the in-process
//! ones. The lookup returns ten rows, so its rate is a call's latency: it is reported beside the
//! gateway's floor per call (`ASK {}`, which reads nothing) and the in-process call.

use std::{path::Path, time::Instant};

use dbforge::{Backend, Client, ClientOptions, CreateOptions, RdfFormat};
use futures::TryStreamExt;
use oxigraph::{
    io::RdfFormat as OxFormat,
    sparql::{QueryResults, SparqlEvaluator},
    store::Store,
};

use crate::{
    BoxError,
    report::{Goal, Row, Unit},
    workload::Plan,
};

/// Target: gateway rate / in-process rate, at least.
pub const RATIO_MIN: f64 = 0.6;

/// People in the generated graph; ten triples each.
const PEOPLE: u64 = 100_000;

const PREFIX: &str = "PREFIX ex: <http://example.com/> ";

/// The three queries: name, SPARQL.
const QUERIES: [(&str, &str); 3] = [
    ("lookup", "SELECT ?p ?o WHERE { ex:p4242 ?p ?o }"),
    (
        "2-hop join",
        "SELECT ?a ?c WHERE { ?a ex:knows ?b . ?b ex:city ?c }",
    ),
    (
        "aggregate",
        "SELECT ?c (COUNT(*) AS ?n) (AVG(?age) AS ?avg) WHERE { ?p ex:city ?c ; ex:age ?age } GROUP BY ?c",
    ),
];

/// The graph: `PEOPLE` people with a type, name, age, city, email, score and four friends.
pub fn ntriples() -> Vec<u8> {
    let mut out = String::with_capacity(100 << 20);
    let ex = "http://example.com/";
    for i in 0..PEOPLE {
        let s = format!("<{ex}p{i}>");
        out.push_str(&format!(
            "{s} <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <{ex}Person> .\n"
        ));
        out.push_str(&format!("{s} <{ex}name> \"Person {i}\" .\n"));
        out.push_str(&format!(
            "{s} <{ex}age> \"{}\"^^<http://www.w3.org/2001/XMLSchema#integer> .\n",
            18 + i % 60
        ));
        out.push_str(&format!("{s} <{ex}city> <{ex}c{}> .\n", i % 1000));
        out.push_str(&format!("{s} <{ex}email> \"p{i}@example.com\" .\n"));
        out.push_str(&format!(
            "{s} <{ex}score> \"{}.5\"^^<http://www.w3.org/2001/XMLSchema#decimal> .\n",
            i % 100
        ));
        for k in 1..=4u64 {
            out.push_str(&format!(
                "{s} <{ex}knows> <{ex}p{}> .\n",
                (i * 7 + k * 13) % PEOPLE
            ));
        }
    }
    out.into_bytes()
}

/// Calls of the lookup (and of the round-trip probe) per run: lookups are short, so a run
/// repeats them to last long enough to time.
const LOOKUPS: u64 = 2_000;

/// Rows per second of each query, in-process and through the gateway.
#[derive(Debug, Clone)]
pub struct GraphResults {
    /// (query, rows, in-process rows/s, gateway rows/s).
    pub queries: Vec<(&'static str, u64, f64, f64)>,
    /// Seconds to load the triples: in-process bulk load, gateway ImportRdf.
    pub load_secs: (f64, f64),
    /// Microseconds of the gateway's floor per call: `ASK {}` (no data read) on the same
    /// database through the same stream call, best run.
    pub round_trip_us: f64,
}

/// Phase 18 against the gateway at `addr` (serving the graph engine), with the store of the
/// in-process side under `dir`.
pub async fn run(
    addr: std::net::SocketAddr,
    key: &str,
    plan: &Plan,
    dir: &Path,
) -> Result<GraphResults, BoxError> {
    let data = ntriples();
    let store = Store::open(dir.join("direct.oxigraph"))?;
    let t = Instant::now();
    // Oxigraph 0.5's bulk loader is atomic: nothing is visible before `commit`.
    let mut loader = store.bulk_loader();
    loader.load_from_slice(OxFormat::NTriples, &data)?;
    loader.commit()?;
    let direct_load = t.elapsed().as_secs_f64();

    let client =
        Client::connect_with(ClientOptions::new(format!("http://{addr}")).api_key(key)).await?;
    client
        .create_database(
            "bench-graph",
            CreateOptions::default().backend(Backend::Graph),
        )
        .await?;
    let t = Instant::now();
    client
        .import_rdf("bench-graph", data, RdfFormat::NTriples, None)
        .await?;
    let gateway_load = t.elapsed().as_secs_f64();

    let mut queries = Vec::new();
    for (name, body) in QUERIES {
        let sparql = format!("{PREFIX}{body}");
        let repeat = if name == "lookup" { LOOKUPS } else { 1 };
        let (mut best_direct, mut best_gateway, mut rows) = (0f64, 0f64, 0u64);
        for _ in 0..plan.stream_runs.max(1) {
            let t = Instant::now();
            let mut n = 0;
            for _ in 0..repeat {
                n += direct_rows(&store, &sparql)?;
            }
            best_direct = best_direct.max(n as f64 / t.elapsed().as_secs_f64());
            let t = Instant::now();
            let mut m = 0;
            for _ in 0..repeat {
                m += client
                    .query("bench-graph", &sparql, &[])
                    .await?
                    .try_fold(0u64, |k, _| async move { Ok(k + 1) })
                    .await?;
            }
            best_gateway = best_gateway.max(m as f64 / t.elapsed().as_secs_f64());
            if n != m {
                return Err(format!("{name}: {n} rows in process, {m} through the gateway").into());
            }
            rows = n / repeat;
        }
        queries.push((name, rows, best_direct, best_gateway));
    }
    // The floor of a call: a query that reads nothing, streamed the same way.
    let mut round_trip_us = f64::MAX;
    for _ in 0..plan.stream_runs.max(1) {
        let t = Instant::now();
        for _ in 0..LOOKUPS {
            client
                .query("bench-graph", "ASK {}", &[])
                .await?
                .try_fold(0u64, |k, _| async move { Ok(k + 1) })
                .await?;
        }
        round_trip_us = round_trip_us.min(t.elapsed().as_secs_f64() * 1e6 / LOOKUPS as f64);
    }
    client.delete_database("bench-graph").await?;
    Ok(GraphResults {
        queries,
        load_secs: (direct_load, gateway_load),
        round_trip_us,
    })
}

/// Runs `sparql` in process and reads every term as text; returns the rows.
fn direct_rows(store: &Store, sparql: &str) -> Result<u64, BoxError> {
    let QueryResults::Solutions(solutions) = SparqlEvaluator::new()
        .parse_query(sparql)?
        .on_store(store)
        .execute()?
    else {
        return Err("not a SELECT".into());
    };
    let mut rows = 0;
    let mut text = 0usize;
    for solution in solutions {
        for term in solution?.values().iter().flatten() {
            text += term.to_string().len();
        }
        rows += 1;
    }
    std::hint::black_box(text);
    Ok(rows)
}

/// Phase 18's rows: each query's rates and ratio, and the load times in a note.
pub fn rows_and_notes(measured: Result<GraphResults, String>) -> (Vec<Row>, Vec<String>) {
    match measured {
        Ok(m) => {
            let mut rows = Vec::new();
            for (name, n, direct, gateway) in &m.queries {
                rows.push(Row::new(
                    18,
                    format!("graph: {name} ({n} rows) in process"),
                    *direct,
                    Unit::Rate("rows/s"),
                    Goal::Info,
                ));
                rows.push(Row::new(
                    18,
                    format!("graph: {name} through the gateway"),
                    *gateway,
                    Unit::Rate("rows/s"),
                    Goal::Info,
                ));
                if *name == "lookup" {
                    // A lookup's few rows measure a call's latency, not a stream: its rate
                    // against a function call in process is the round trip's, shown beside it.
                    let per_call = |rate: f64| 1e6 * *n as f64 / rate;
                    rows.push(Row::new(
                        18,
                        "graph: lookup per call through the gateway".to_owned(),
                        per_call(*gateway),
                        Unit::Micros,
                        Goal::Info,
                    ));
                    rows.push(Row::new(
                        18,
                        "graph: lookup per call in process".to_owned(),
                        per_call(*direct),
                        Unit::Micros,
                        Goal::Info,
                    ));
                    rows.push(Row::new(
                        18,
                        "graph: a gateway call that reads nothing (ASK {})".to_owned(),
                        m.round_trip_us,
                        Unit::Micros,
                        Goal::Info,
                    ));
                    rows.push(Row::new(
                        18,
                        "graph: lookup rate, gateway / in-process (a call's latency)".to_owned(),
                        gateway / direct,
                        Unit::Ratio,
                        Goal::Info,
                    ));
                } else {
                    rows.push(Row::new(
                        18,
                        format!("graph: {name} at least 60 % of in-process: gateway / in-process"),
                        gateway / direct,
                        Unit::Ratio,
                        Goal::AtLeast(RATIO_MIN),
                    ));
                }
            }
            let note = format!(
                "graph (18): {} triples loaded in {:.1} s in process (Oxigraph's bulk loader) \
                 and {:.1} s through ImportRdf (one transaction); rates are result rows per \
                 second read to the end, the lookup repeated {LOOKUPS} times.",
                PEOPLE * 10,
                m.load_secs.0,
                m.load_secs.1
            );
            (rows, vec![note])
        }
        Err(e) => (
            vec![Row::failed(
                18,
                "graph: SPARQL through the gateway",
                e,
                Unit::Ratio,
                Goal::AtLeast(RATIO_MIN),
            )],
            Vec::new(),
        ),
    }
}
