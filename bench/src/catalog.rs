//! Phase 19 (the scale-out issue): what keeping the catalog in PostgreSQL (`--catalog-url`)
//! costs against the embedded SQLite catalog.
//!
//! Two gateways (default configuration: authentication and the audit log on) run at once, one
//! on each catalog, and the bench alternates between them call by call, so load that comes and
//! goes on the shared cores lands on both. Measured: the audited point query (the audit record
//! is appended to the catalog by the writer task, off the call's path, in batches) and
//! CreateDatabase of a SQLite database (several catalog transactions on the call's path: the
//! provisioning record, the ready state, the lifecycle event).

use std::{net::SocketAddr, time::Instant};

use dbforge::pb;
use sqlx::{Connection, Executor};

use crate::{
    BoxError,
    gateway::{self, Conn},
    report::{Goal, Row, Unit},
    stats::{Latency, Rng},
    workload::{POINT_ROWS, Plan},
};

/// Target: the audited point query's p50 on the PostgreSQL catalog at most this many times the
/// SQLite catalog's.
pub const RATIO_MAX: f64 = 1.3;

/// The PostgreSQL database the bench makes for the catalog (dropped first if a run left one).
pub const CATALOG_DB: &str = "dbforge_bench_catalog";

/// What phase 19 measured.
#[derive(Debug, Clone, Copy)]
pub struct CatalogResults {
    /// Point query, SQLite catalog.
    pub sqlite_point: Latency,
    /// Point query, PostgreSQL catalog.
    pub postgres_point: Latency,
    /// CreateDatabase, SQLite catalog.
    pub sqlite_create: Latency,
    /// CreateDatabase, PostgreSQL catalog.
    pub postgres_create: Latency,
}

/// Drops and creates [`CATALOG_DB`] on the server at `admin_url`; returns its URL.
pub async fn fresh_catalog(admin_url: &str) -> Result<String, BoxError> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    conn.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {CATALOG_DB} WITH (FORCE)"
    )))
    .await?;
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {CATALOG_DB}")))
        .await?;
    let base = admin_url
        .rsplit_once('/')
        .ok_or("the admin URL names no database")?
        .0;
    Ok(format!("{base}/{CATALOG_DB}"))
}

/// Runs phase 19 against the gateway on the SQLite catalog (`sqlite`) and the one on the
/// PostgreSQL catalog (`postgres`).
pub async fn run(
    sqlite: SocketAddr,
    postgres: SocketAddr,
    key: &str,
    plan: &Plan,
) -> Result<CatalogResults, BoxError> {
    let (a, b) = (
        Conn::open(sqlite, key).await?,
        Conn::open(postgres, key).await?,
    );
    gateway::prepare(&a).await?;
    gateway::prepare(&b).await?;
    let (mut qa, mut qb) = (a.query(), b.query());
    let mut rng = Rng::new(19);
    for _ in 0..plan.warmup {
        let id = rng.key(POINT_ROWS);
        gateway::point_query(&mut qa, id).await?;
        gateway::point_query(&mut qb, id).await?;
    }
    let n = plan.point_iters;
    let (mut on_a, mut on_b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let id = rng.key(POINT_ROWS);
        let t = Instant::now();
        gateway::point_query(&mut qa, id).await?;
        on_a.push(t.elapsed());
        let t = Instant::now();
        gateway::point_query(&mut qb, id).await?;
        on_b.push(t.elapsed());
    }
    let (mut da, mut db) = (a.databases(), b.databases());
    let (mut create_a, mut create_b) = (Vec::new(), Vec::new());
    for i in 0..plan.spawns {
        let name = format!("catalog-{i:04}");
        let t = Instant::now();
        gateway::create_database(&mut da, &name, pb::Backend::Sqlite).await?;
        create_a.push(t.elapsed());
        let t = Instant::now();
        gateway::create_database(&mut db, &name, pb::Backend::Sqlite).await?;
        create_b.push(t.elapsed());
    }
    for i in 0..plan.spawns {
        let name = format!("catalog-{i:04}");
        gateway::delete_database(&mut da, &name).await?;
        gateway::delete_database(&mut db, &name).await?;
    }
    Ok(CatalogResults {
        sqlite_point: Latency::from_samples(on_a).ok_or("no point query sample")?,
        postgres_point: Latency::from_samples(on_b).ok_or("no point query sample")?,
        sqlite_create: Latency::from_samples(create_a).ok_or("no CreateDatabase sample")?,
        postgres_create: Latency::from_samples(create_b).ok_or("no CreateDatabase sample")?,
    })
}

/// Phase 19's rows: both p50s of each call and their ratios, with the p95s in a note.
pub fn rows_and_notes(measured: Result<CatalogResults, String>) -> (Vec<Row>, Vec<String>) {
    let names = [
        "Catalog: audited point query p50, SQLite catalog",
        "Catalog: audited point query p50, PostgreSQL catalog",
        "Catalog: point query within 1.3x on the PostgreSQL catalog: PostgreSQL / SQLite p50",
        "Catalog: CreateDatabase p50, SQLite catalog",
        "Catalog: CreateDatabase p50, PostgreSQL catalog",
        "Catalog: CreateDatabase, PostgreSQL / SQLite catalog p50",
    ];
    let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    match measured {
        Ok(m) => {
            let rows = vec![
                Row::new(
                    19,
                    names[0],
                    us(m.sqlite_point.p50),
                    Unit::Micros,
                    Goal::Info,
                ),
                Row::new(
                    19,
                    names[1],
                    us(m.postgres_point.p50),
                    Unit::Micros,
                    Goal::Info,
                ),
                Row::new(
                    19,
                    names[2],
                    us(m.postgres_point.p50) / us(m.sqlite_point.p50),
                    Unit::Ratio,
                    Goal::AtMost(RATIO_MAX),
                ),
                Row::new(
                    19,
                    names[3],
                    ms(m.sqlite_create.p50),
                    Unit::Millis,
                    Goal::Info,
                ),
                Row::new(
                    19,
                    names[4],
                    ms(m.postgres_create.p50),
                    Unit::Millis,
                    Goal::Info,
                ),
                Row::new(
                    19,
                    names[5],
                    ms(m.postgres_create.p50) / ms(m.sqlite_create.p50),
                    Unit::Ratio,
                    Goal::Info,
                ),
            ];
            let note = format!(
                "Catalog (19): point query p95 {:.1} µs on the PostgreSQL catalog against \
                 {:.1} µs on SQLite's; CreateDatabase p95 {:.2} ms against {:.2} ms. Two \
                 gateways at once, alternating call by call; the PostgreSQL catalog is a \
                 database of the local server (loopback).",
                us(m.postgres_point.p95),
                us(m.sqlite_point.p95),
                ms(m.postgres_create.p95),
                ms(m.sqlite_create.p95)
            );
            (rows, vec![note])
        }
        Err(e) => (
            names
                .iter()
                .map(|n| {
                    let unit = if n.contains('/') {
                        Unit::Ratio
                    } else if n.contains("CreateDatabase") {
                        Unit::Millis
                    } else {
                        Unit::Micros
                    };
                    Row::failed(19, *n, e.clone(), unit, Goal::Info)
                })
                .collect(),
            Vec::new(),
        ),
    }
}
