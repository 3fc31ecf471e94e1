//! Phase 20 (the scale-out issue): PostgreSQL point-query throughput through 1, 2 and 3
//! gateways sharing one PostgreSQL catalog, the client load spread over them.
//!
//! Three gateways start on one catalog, each fronting the local PostgreSQL server. One
//! PostgreSQL database is spawned through the first and filled with the point-query table; the
//! others serve it as soon as they follow the catalog. Then the same closed loop runs three
//! times: [`CLIENTS`] concurrent callers, each on its own HTTP/2 connection to gateway
//! `i % replicas`, each sending the next point query as soon as the last is answered, for
//! [`Plan::throughput_for`]. What the machine's CPU did in each step is reported beside the
//! rate: on a machine with few cores every step has all of them busy (gateways, PostgreSQL and
//! the bench's own clients), and adding gateways only moves the work around.
//!
//! Then the forwarded point query: a SQLite database spawned through the first gateway (its
//! file on that gateway's disk) is queried through the second, which forwards each call to the
//! first, alternating call by call with the same query sent to the first directly. Target: the
//! forwarded p50 at most [`FORWARD_RATIO_MAX`] times the direct one.

use std::{net::SocketAddr, time::Duration};

use dbforge::pb;
use tokio::time::Instant;

use crate::{
    BoxError,
    child::cpu_time,
    gateway::{self, Conn},
    report::{Goal, Row, Unit, machine_busy},
    stats::{Latency, Rng},
    workload::{
        CREATE_POINT_TABLE, FILL_POINT_TABLE, POINT_QUERY as SQLITE_POINT_QUERY, POINT_ROWS, Plan,
    },
};

/// Target: a point query forwarded to the owner at most this many times the direct one (p50).
pub const FORWARD_RATIO_MAX: f64 = 1.6;

/// The SQLite database of the forwarded point query.
const LITE_DB: &str = "replicas-forwarded";

/// Concurrent callers in all, spread over the gateways.
pub const CLIENTS: usize = 16;

/// The database the phase spawns.
const DB: &str = "replicas-bench";

/// The point query in PostgreSQL's placeholder style.
const POINT_QUERY: &str = "SELECT v FROM t WHERE id = $1";

/// One step: how many gateways served, what they answered, and what the machine did.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// Gateways the clients were spread over.
    pub replicas: usize,
    /// Point queries answered per second.
    pub qps: f64,
    /// Machine-wide busy CPU over the step, as a share of all cores (1.0: every core busy).
    pub machine_busy: f64,
    /// The gateways' CPU per query, in µs (all of them together).
    pub gateway_cpu_us: f64,
}

/// What phase 20 measured.
#[derive(Debug, Clone)]
pub struct ReplicaResults {
    /// One step per number of gateways.
    pub steps: Vec<Step>,
    /// The point query on the SQLite database, sent to its gateway.
    pub direct: Latency,
    /// The same, through another gateway that forwards it.
    pub forwarded: Latency,
    /// A no-op RPC (Health/Check) on the forwarding gateway, in the same loop: what one more
    /// gRPC round trip on loopback costs on this machine, which forwarding adds by design.
    pub floor: Latency,
}

/// Runs phase 20 on the gateways at `addrs` (their process ids in `pids`, same order).
pub async fn run(
    addrs: &[SocketAddr],
    pids: &[u32],
    key: &str,
    plan: &Plan,
) -> Result<ReplicaResults, BoxError> {
    let steps = throughput(addrs, pids, key, plan).await?;
    let (direct, forwarded, floor) = forwarded(addrs[0], addrs[1], key, plan).await?;
    Ok(ReplicaResults {
        steps,
        direct,
        forwarded,
        floor,
    })
}

/// The point query on a SQLite database of the gateway at `owner`, sent to it and through
/// the gateway at `other`, and a no-op RPC on `other`, alternating call by call.
async fn forwarded(
    owner: SocketAddr,
    other: SocketAddr,
    key: &str,
    plan: &Plan,
) -> Result<(Latency, Latency, Latency), BoxError> {
    let (a, b) = (Conn::open(owner, key).await?, Conn::open(other, key).await?);
    gateway::create_database(&mut a.databases(), LITE_DB, pb::Backend::Sqlite).await?;
    let (mut qa, mut qb) = (a.query(), b.query());
    gateway::execute(&mut qa, LITE_DB, CREATE_POINT_TABLE, vec![]).await?;
    gateway::execute(&mut qa, LITE_DB, FILL_POINT_TABLE, vec![]).await?;
    let by = Instant::now() + Duration::from_secs(10);
    while let Err(e) = point_on(&mut qb, LITE_DB, SQLITE_POINT_QUERY, 1).await {
        if Instant::now() > by {
            return Err(format!("the second gateway does not forward to the first: {e}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut rng = Rng::new(21);
    for _ in 0..plan.warmup {
        let id = rng.key(POINT_ROWS);
        point_on(&mut qa, LITE_DB, SQLITE_POINT_QUERY, id).await?;
        point_on(&mut qb, LITE_DB, SQLITE_POINT_QUERY, id).await?;
    }
    let n = plan.point_iters;
    let mut health = b.health();
    let (mut direct, mut through, mut floor) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for _ in 0..n {
        let id = rng.key(POINT_ROWS);
        let t = std::time::Instant::now();
        point_on(&mut qa, LITE_DB, SQLITE_POINT_QUERY, id).await?;
        direct.push(t.elapsed());
        let t = std::time::Instant::now();
        point_on(&mut qb, LITE_DB, SQLITE_POINT_QUERY, id).await?;
        through.push(t.elapsed());
        let t = std::time::Instant::now();
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await?;
        floor.push(t.elapsed());
    }
    gateway::delete_database(&mut b.databases(), LITE_DB).await?;
    Ok((
        Latency::from_samples(direct).ok_or("no direct sample")?,
        Latency::from_samples(through).ok_or("no forwarded sample")?,
        Latency::from_samples(floor).ok_or("no floor sample")?,
    ))
}

/// Phase 20's throughput steps.
async fn throughput(
    addrs: &[SocketAddr],
    pids: &[u32],
    key: &str,
    plan: &Plan,
) -> Result<Vec<Step>, BoxError> {
    let first = Conn::open(addrs[0], key).await?;
    gateway::create_database(&mut first.databases(), DB, pb::Backend::Postgres).await?;
    let mut q = first.query();
    gateway::execute(&mut q, DB, CREATE_POINT_TABLE, vec![]).await?;
    let filled = gateway::execute(&mut q, DB, FILL_POINT_TABLE, vec![]).await?;
    if filled.rows_affected != i64::try_from(POINT_ROWS)? {
        return Err(format!("filling t inserted {} rows", filled.rows_affected).into());
    }
    // Every gateway serves the database once it has followed the catalog.
    for addr in &addrs[1..] {
        let conn = Conn::open(*addr, key).await?;
        let mut q = conn.query();
        let by = Instant::now() + Duration::from_secs(10);
        while let Err(e) = point(&mut q, 1).await {
            if Instant::now() > by {
                return Err(format!("the gateway at {addr} does not serve {DB}: {e}").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut steps = Vec::new();
    for replicas in 1..=addrs.len() {
        // A second of the same load first, so that every gateway has its connections open.
        closed_loop(&addrs[..replicas], key, Duration::from_secs(1)).await?;
        let cpu_before = gateways_cpu(pids)?;
        let busy_before = machine_busy()?;
        let started = Instant::now();
        let answered = closed_loop(&addrs[..replicas], key, plan.throughput_for).await?;
        let wall = started.elapsed();
        let busy = machine_busy()?.saturating_sub(busy_before);
        let cpu = gateways_cpu(pids)?.saturating_sub(cpu_before);
        steps.push(Step {
            replicas,
            qps: answered as f64 / wall.as_secs_f64(),
            machine_busy: busy.as_secs_f64() / (wall.as_secs_f64() * cores),
            gateway_cpu_us: cpu.as_secs_f64() * 1e6 / answered.max(1) as f64,
        });
    }
    let mut d = first.databases();
    gateway::delete_database(&mut d, DB).await?;
    Ok(steps)
}

fn gateways_cpu(pids: &[u32]) -> Result<Duration, BoxError> {
    pids.iter().map(|p| cpu_time(*p)).sum()
}

async fn point(
    q: &mut pb::query_service_client::QueryServiceClient<gateway::Authed>,
    id: i64,
) -> Result<(), BoxError> {
    point_on(q, DB, POINT_QUERY, id).await
}

/// The point query `sql` with `id` on `db`, checked: one row.
async fn point_on(
    q: &mut pb::query_service_client::QueryServiceClient<gateway::Authed>,
    db: &str,
    sql: &str,
    id: i64,
) -> Result<(), BoxError> {
    let r = gateway::execute(
        q,
        db,
        sql,
        vec![pb::Value {
            kind: Some(pb::value::Kind::IntValue(id)),
        }],
    )
    .await?;
    if r.rows.len() != 1 {
        return Err(format!("{sql} with id {id} returned {} rows", r.rows.len()).into());
    }
    Ok(())
}

/// [`CLIENTS`] callers, caller `i` on gateway `i % addrs.len()`, each on a connection of its
/// own, for `time`: the queries answered.
async fn closed_loop(addrs: &[SocketAddr], key: &str, time: Duration) -> Result<u64, BoxError> {
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let conn = Conn::open(addrs[i % addrs.len()], key).await?;
        tasks.push(tokio::spawn(async move {
            let mut q = conn.query();
            let mut rng = Rng::new(20 + i as u64);
            let until = Instant::now() + time;
            let mut n = 0u64;
            while Instant::now() < until {
                point(&mut q, rng.key(POINT_ROWS)).await?;
                n += 1;
            }
            Ok::<_, BoxError>(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total)
}

/// Phase 20's rows: the rate per step and its ratio to one gateway's, with what the machine's
/// CPU did in a note.
pub fn rows_and_notes(measured: Result<ReplicaResults, String>) -> (Vec<Row>, Vec<String>) {
    let rate = |r: usize| format!("Replicas: PostgreSQL point queries, {r} gateway(s)");
    let ratio = |r: usize| format!("Replicas: {r} gateways / 1 gateway, queries/s");
    let fwd = [
        "Replicas: SQLite point query p50, sent to its gateway",
        "Replicas: SQLite point query p50, forwarded by another gateway",
        "Replicas: forwarded point query within 1.6x: forwarded / direct p50",
    ];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    match measured {
        Ok(ReplicaResults {
            steps,
            direct,
            forwarded,
            floor,
        }) => {
            let one = steps.first().map_or(1.0, |s| s.qps);
            let mut rows = Vec::new();
            for s in &steps {
                rows.push(Row::new(
                    20,
                    rate(s.replicas),
                    s.qps,
                    Unit::Rate("queries/s"),
                    Goal::Info,
                ));
            }
            for s in steps.iter().skip(1) {
                rows.push(Row::new(
                    20,
                    ratio(s.replicas),
                    s.qps / one,
                    Unit::Ratio,
                    Goal::Info,
                ));
            }
            let detail: Vec<String> = steps
                .iter()
                .map(|s| {
                    format!(
                        "{} gateway(s): {:.0} % of the machine's CPU busy, {:.0} µs of gateway \
                         CPU per query",
                        s.replicas,
                        s.machine_busy * 100.0,
                        s.gateway_cpu_us
                    )
                })
                .collect();
            rows.push(Row::new(
                20,
                fwd[0],
                us(direct.p50),
                Unit::Micros,
                Goal::Info,
            ));
            rows.push(Row::new(
                20,
                fwd[1],
                us(forwarded.p50),
                Unit::Micros,
                Goal::Info,
            ));
            rows.push(Row::new(
                20,
                fwd[2],
                us(forwarded.p50) / us(direct.p50),
                Unit::Ratio,
                Goal::AtMost(FORWARD_RATIO_MAX),
            ));
            let note = format!(
                "Replicas (20): {CLIENTS} callers spread over the gateways, one PostgreSQL \
                 catalog, one PostgreSQL database. {}. Forwarded SQLite point query p95 \
                 {:.1} µs against {:.1} µs direct. Forwarding added {:.1} µs at p50; a no-op \
                 RPC (Health/Check) on the forwarding gateway, in the same loop, took {:.1} µs \
                 at p50: the one loopback gRPC round trip forwarding adds by design.",
                detail.join("; "),
                us(forwarded.p95),
                us(direct.p95),
                us(forwarded.p50) - us(direct.p50),
                us(floor.p50)
            );
            (rows, vec![note])
        }
        Err(e) => {
            let mut rows: Vec<Row> = (1..=3)
                .map(|r| Row::failed(20, rate(r), e.clone(), Unit::Rate("queries/s"), Goal::Info))
                .collect();
            rows.extend(
                (2..=3).map(|r| Row::failed(20, ratio(r), e.clone(), Unit::Ratio, Goal::Info)),
            );
            rows.push(Row::failed(20, fwd[0], e.clone(), Unit::Micros, Goal::Info));
            rows.push(Row::failed(20, fwd[1], e.clone(), Unit::Micros, Goal::Info));
            rows.push(Row::failed(
                20,
                fwd[2],
                e,
                Unit::Ratio,
                Goal::AtMost(FORWARD_RATIO_MAX),
            ));
            (rows, Vec::new())
        }
    }
}
