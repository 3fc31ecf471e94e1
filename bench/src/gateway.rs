//! The gateway phases, over real gRPC to the `serve` child.
//!
//! Every call error is turned into a message that names the RPC, its target and the status
//! (code and message), so a server bug shows up in the report as exactly what failed.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use dbforge::pb::{
    self, backup_service_client::BackupServiceClient,
    database_service_client::DatabaseServiceClient, query_response,
    query_service_client::QueryServiceClient, transfer_service_client::TransferServiceClient,
    value,
};
use prost::Message as _;
use tokio::{sync::Barrier, task::JoinSet};
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{
    BoxError,
    child::cpu_time,
    direct::StreamRun,
    stats::{Latency, Rng, sample},
    workload::{
        CREATE_INSERT_TABLE, CREATE_POINT_TABLE, FILL_POINT_TABLE, INSERT_ROW, POINT_QUERY,
        POINT_ROWS, Plan, stream_query,
    },
};

/// The database the point, insert and stream phases use.
pub const BENCH_DB: &str = "bench";

/// Room for the server's ~1 MiB row batches with margin (tonic's default cap is 4 MiB).
const MAX_MESSAGE: usize = 16 << 20;

/// Describes a failed call: which RPC, on what, and the status the server answered.
pub fn failed(call: impl std::fmt::Display) -> impl FnOnce(Status) -> BoxError {
    move |s| {
        format!(
            "{call} failed: code {:?} ({}), message {:?}",
            s.code(),
            s.code() as i32,
            s.message()
        )
        .into()
    }
}

/// Puts the API key on every call, as the SDK does.
#[derive(Debug, Clone)]
pub struct ApiKey(MetadataValue<Ascii>);

impl Interceptor for ApiKey {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// A client stack whose calls carry the API key.
pub type Authed = InterceptedService<Channel, ApiKey>;

/// One HTTP/2 connection to the gateway, and the key its calls present.
#[derive(Debug, Clone)]
pub struct Conn {
    channel: Channel,
    key: ApiKey,
    /// The gateway's data directory, whose catalog maps database names to the engine-side
    /// names the driver side needs (see [`Conn::at`]).
    data_dir: Option<std::path::PathBuf>,
}

impl Conn {
    /// Connects to the gateway at `addr`; calls will present `key`.
    pub async fn open(addr: SocketAddr, key: &str) -> Result<Self, BoxError> {
        let channel = Channel::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        let key = ApiKey(format!("Bearer {key}").parse()?);
        Ok(Self {
            channel,
            key,
            data_dir: None,
        })
    }

    /// The same connection, knowing the gateway's data directory.
    pub fn at(self, data_dir: &std::path::Path) -> Self {
        Self {
            data_dir: Some(data_dir.to_owned()),
            ..self
        }
    }

    /// The catalog locator of the spawned database `name`: engine-side names are opaque ids,
    /// so the driver side reads them where the gateway keeps them.
    pub fn locator(&self, name: &str) -> Result<String, BoxError> {
        let dir = self
            .data_dir
            .as_deref()
            .ok_or("the gateway's data directory is not known to this connection")?;
        crate::transfer::locator(dir, name)
    }

    /// A QueryService client on this connection.
    pub fn query(&self) -> QueryServiceClient<Authed> {
        QueryServiceClient::with_interceptor(self.channel.clone(), self.key.clone())
            .max_decoding_message_size(MAX_MESSAGE)
    }

    /// A DatabaseService client on this connection.
    pub fn databases(&self) -> DatabaseServiceClient<Authed> {
        DatabaseServiceClient::with_interceptor(self.channel.clone(), self.key.clone())
    }

    /// A TransferService client on this connection.
    pub fn transfer(&self) -> TransferServiceClient<Authed> {
        TransferServiceClient::with_interceptor(self.channel.clone(), self.key.clone())
    }

    /// A BackupService client on this connection.
    pub fn backups(&self) -> BackupServiceClient<Authed> {
        BackupServiceClient::with_interceptor(self.channel.clone(), self.key.clone())
    }

    /// Health checks need no key, so the floor is a bare tonic call.
    pub fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel.clone())
    }
}

fn int(v: i64) -> pb::Value {
    pb::Value {
        kind: Some(value::Kind::IntValue(v)),
    }
}

fn text(v: String) -> pb::Value {
    pb::Value {
        kind: Some(value::Kind::TextValue(v)),
    }
}

/// Runs one statement through Execute and returns its result.
pub async fn execute(
    client: &mut QueryServiceClient<Authed>,
    database: &str,
    sql: &str,
    params: Vec<pb::Value>,
) -> Result<pb::StatementResult, BoxError> {
    let req = pb::ExecuteRequest {
        database: database.to_owned(),
        sql: sql.to_owned(),
        params,
    };
    let res = client
        .execute(req)
        .await
        .map_err(failed(format_args!("Execute {sql:?} on {database:?}")))?;
    res.into_inner()
        .result
        .ok_or_else(|| format!("Execute {sql:?} on {database:?} returned no result").into())
}

/// Spawns one database on `backend`.
pub async fn create_database(
    client: &mut DatabaseServiceClient<Authed>,
    name: &str,
    backend: pb::Backend,
) -> Result<(), BoxError> {
    let req = pb::CreateDatabaseRequest {
        name: name.to_owned(),
        backend: backend.into(),
        ..Default::default()
    };
    let res = client
        .create_database(req)
        .await
        .map_err(failed(format_args!("CreateDatabase {name:?}")))?;
    if !res.into_inner().created {
        return Err(format!("CreateDatabase {name:?} answered created = false").into());
    }
    Ok(())
}

/// Deletes a database the bench spawned.
pub async fn delete_database(
    client: &mut DatabaseServiceClient<Authed>,
    name: &str,
) -> Result<(), BoxError> {
    let req = pb::DeleteDatabaseRequest {
        name: name.to_owned(),
        allow_missing: false,
    };
    client
        .delete_database(req)
        .await
        .map_err(failed(format_args!("DeleteDatabase {name:?}")))?;
    Ok(())
}

/// Spawns the bench database and creates its tables, all through the gateway.
pub async fn prepare(conn: &Conn) -> Result<(), BoxError> {
    create_database(&mut conn.databases(), BENCH_DB, pb::Backend::Sqlite).await?;
    let mut q = conn.query();
    execute(&mut q, BENCH_DB, CREATE_POINT_TABLE, vec![]).await?;
    let filled = execute(&mut q, BENCH_DB, FILL_POINT_TABLE, vec![]).await?;
    if filled.rows_affected != i64::try_from(POINT_ROWS)? {
        return Err(format!("filling t inserted {} rows", filled.rows_affected).into());
    }
    execute(&mut q, BENCH_DB, CREATE_INSERT_TABLE, vec![]).await?;
    Ok(())
}

/// One point query, checked: exactly one row comes back.
pub async fn point_query(client: &mut QueryServiceClient<Authed>, id: i64) -> Result<(), BoxError> {
    let result = execute(client, BENCH_DB, POINT_QUERY, vec![int(id)]).await?;
    if result.rows.len() != 1 {
        return Err(format!(
            "{POINT_QUERY} with id {id} returned {} rows",
            result.rows.len()
        )
        .into());
    }
    Ok(())
}

/// The floor (a health check: a no-op RPC answered by tonic-health without touching DB-Forge
/// code) and the gateway point query, sequential on one connection.
///
/// The two alternate call by call, so both see the same machine: on two shared cores, load that
/// comes and goes would otherwise land on one side of the ratio only.
pub async fn floor_and_point(conn: &Conn, plan: &Plan) -> Result<(Latency, Latency), BoxError> {
    let mut health = conn.health();
    let mut query = conn.query();
    let mut rng = Rng::new(7);
    let check = "grpc.health.v1.Health/Check";
    for _ in 0..plan.warmup {
        health
            .check(HealthCheckRequest::default())
            .await
            .map_err(failed(check))?;
        point_query(&mut query, rng.key(POINT_ROWS)).await?;
    }
    let n = plan.point_iters;
    let (mut floor, mut point) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let id = rng.key(POINT_ROWS);
        let start = Instant::now();
        health
            .check(HealthCheckRequest::default())
            .await
            .map_err(failed(check))?;
        let mid = Instant::now();
        point_query(&mut query, id).await?;
        point.push(mid.elapsed());
        floor.push(mid - start);
    }
    let summary = |v| Latency::from_samples(v).ok_or("no samples");
    Ok((summary(floor)?, summary(point)?))
}

/// Sequential single-row inserts, each its own transaction.
pub async fn insert(conn: &Conn, plan: &Plan) -> Result<Latency, BoxError> {
    let client = conn.query();
    sample(plan.warmup, plan.insert_iters, |i| {
        let mut client = client.clone();
        async move {
            let n = i64::try_from(i)?;
            let params = vec![text(format!("row-{i}")), int(n)];
            let result = execute(&mut client, BENCH_DB, INSERT_ROW, params).await?;
            if result.rows_affected != 1 {
                return Err(format!("{INSERT_ROW} affected {} rows", result.rows_affected).into());
            }
            Ok::<_, BoxError>(())
        }
    })
    .await
}

/// Point-query throughput of many concurrent client tasks.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// HTTP/2 connections the tasks shared.
    pub channels: usize,
    /// Queries answered in the window.
    pub queries: u64,
    /// The measured window.
    pub elapsed: Duration,
    /// CPU the gateway process used in the window.
    pub server_cpu: Duration,
    /// CPU this (client) process used in the window.
    pub client_cpu: Duration,
}

impl Throughput {
    /// Queries per second.
    pub fn qps(&self) -> f64 {
        self.queries as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU microseconds per query of the gateway and of the client.
    pub fn cpu_per_query_us(&self) -> (f64, f64) {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / self.queries.max(1) as f64;
        (per(self.server_cpu), per(self.client_cpu))
    }
}

/// Runs `plan.throughput_tasks` tasks spread over `conns` for `plan.throughput_for`.
pub async fn throughput(
    conns: &[Conn],
    plan: &Plan,
    server_pid: u32,
) -> Result<Throughput, BoxError> {
    let tasks = plan.throughput_tasks;
    // Every task warms up, then all start together so the window holds only steady state.
    let barrier = Arc::new(Barrier::new(tasks + 1));
    let mut set = JoinSet::new();
    for t in 0..tasks {
        let mut client = conns[t % conns.len()].query();
        let barrier = Arc::clone(&barrier);
        let window = plan.throughput_for;
        set.spawn(async move {
            let mut rng = Rng::new(1000 + t as u64);
            let mut warm = Ok(());
            for _ in 0..20 {
                warm = point_query(&mut client, rng.key(POINT_ROWS)).await;
                if warm.is_err() {
                    break;
                }
            }
            barrier.wait().await;
            warm?;
            let deadline = Instant::now() + window;
            let mut done = 0u64;
            while Instant::now() < deadline {
                point_query(&mut client, rng.key(POINT_ROWS)).await?;
                done += 1;
            }
            Ok::<_, BoxError>(done)
        });
    }
    barrier.wait().await;
    let (start, server0, client0) = (
        Instant::now(),
        cpu_time(server_pid)?,
        cpu_time(std::process::id())?,
    );
    let mut queries = 0;
    while let Some(joined) = set.join_next().await {
        queries += joined??;
    }
    Ok(Throughput {
        channels: conns.len(),
        queries,
        elapsed: start.elapsed(),
        server_cpu: cpu_time(server_pid)?.saturating_sub(server0),
        client_cpu: cpu_time(std::process::id())?.saturating_sub(client0),
    })
}

/// Reads the streamed result of `sql` on `db`, which must yield `rows` rows of (int, text,
/// float), decoding every message and touching every cell. With `count_bytes`, it also sums
/// the messages' encoded sizes: a walk over every decoded cell that no client makes, so only
/// one run of several does it (the size is the same each time).
pub async fn stream_once(
    conn: &Conn,
    db: &str,
    sql: String,
    rows: u64,
    server_pid: u32,
    count_bytes: bool,
) -> Result<StreamRun, BoxError> {
    let mut client = conn.query();
    let (server0, client0) = (cpu_time(server_pid)?, cpu_time(std::process::id())?);
    let start = Instant::now();
    let req = pb::QueryRequest {
        database: db.to_owned(),
        sql,
        ..Default::default()
    };
    let call = format!("Query ({rows}-row stream on {db:?})");
    let call = call.as_str();
    let mut stream = client.query(req).await.map_err(failed(call))?.into_inner();
    let (mut n, mut bytes, mut summary) = (0u64, 0u64, None);
    let (mut ints, mut text_bytes, mut floats) = (0i64, 0usize, 0f64);
    while let Some(msg) = stream.message().await.map_err(failed(call))? {
        if count_bytes {
            bytes += msg.encoded_len() as u64;
        }
        match msg.kind {
            Some(query_response::Kind::Batch(batch)) => {
                for row in batch.rows {
                    n += 1;
                    for cell in row.values {
                        match cell.kind {
                            Some(value::Kind::IntValue(x)) => ints = ints.wrapping_add(x),
                            Some(value::Kind::TextValue(s)) => text_bytes += s.len(),
                            Some(value::Kind::FloatValue(f)) => floats += f,
                            other => {
                                return Err(format!("{call}: unexpected cell {other:?}").into());
                            }
                        }
                    }
                }
            }
            Some(query_response::Kind::Summary(s)) => summary = Some(s),
            Some(query_response::Kind::Header(_) | query_response::Kind::ColumnSummaries(_))
            | None => {}
        }
    }
    let elapsed = start.elapsed();
    let cpu = (
        cpu_time(server_pid)?.saturating_sub(server0),
        cpu_time(std::process::id())?.saturating_sub(client0),
    );
    std::hint::black_box((ints, text_bytes, floats));
    let summary = summary.ok_or_else(|| format!("{call}: the stream ended without a summary"))?;
    if n != rows || summary.row_count != i64::try_from(rows)? || summary.truncation != 0 {
        return Err(format!(
            "{call}: read {n} rows; summary says {} rows, truncation {}",
            summary.row_count, summary.truncation
        )
        .into());
    }
    Ok(StreamRun {
        rows: n,
        elapsed,
        bytes,
        cpu: Some(cpu),
    })
}

/// The fastest of several gateway streams of one result, with the encoded size the one run
/// that counted it saw.
#[derive(Default)]
pub struct BestStream {
    best: Option<StreamRun>,
    bytes: u64,
}

impl BestStream {
    /// Keeps `run` if it is the fastest so far.
    pub fn add(&mut self, run: StreamRun) {
        self.bytes = self.bytes.max(run.bytes);
        if self.best.is_none_or(|b| run.elapsed < b.elapsed) {
            self.best = Some(run);
        }
    }

    /// The fastest run.
    pub fn take(self) -> Result<StreamRun, BoxError> {
        let best = self.best.ok_or("no stream runs")?;
        Ok(StreamRun {
            bytes: self.bytes,
            ..best
        })
    }
}

/// The fastest of `plan.stream_runs` reads of the streamed result.
pub async fn stream(conn: &Conn, plan: &Plan, server_pid: u32) -> Result<StreamRun, BoxError> {
    let mut best = BestStream::default();
    for run in 0..plan.stream_runs {
        let sql = stream_query(plan.stream_rows);
        let rows = plan.stream_rows;
        best.add(stream_once(conn, BENCH_DB, sql, rows, server_pid, run == 0).await?);
    }
    best.take()
}

/// CreateDatabase latency, one spawn at a time.
pub async fn spawn(conn: &Conn, plan: &Plan) -> Result<Latency, BoxError> {
    let client = conn.databases();
    sample(0, plan.spawns, |i| {
        let mut client = client.clone();
        async move { create_database(&mut client, &format!("spawn-{i:05}"), pb::Backend::Sqlite).await }
    })
    .await
}

/// Spawns `plan.fleet` databases and runs `SELECT 1` once on each; returns how long it took.
pub async fn fleet(conn: &Conn, plan: &Plan) -> Result<Duration, BoxError> {
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..plan.fleet_tasks {
        let (next, total) = (Arc::clone(&next), plan.fleet);
        let mut dbs = conn.databases();
        let mut q = conn.query();
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, BoxError>(());
                }
                let name = format!("fleet-{i:05}");
                create_database(&mut dbs, &name, pb::Backend::Sqlite).await?;
                let r = execute(&mut q, &name, "SELECT 1", vec![]).await?;
                let one = r.rows.first().and_then(|row| row.values.first());
                if one.and_then(|v| v.kind.as_ref()) != Some(&value::Kind::IntValue(1)) {
                    return Err(format!("SELECT 1 on {name:?} returned {:?}", r.rows).into());
                }
            }
        });
    }
    while let Some(joined) = set.join_next().await {
        joined??;
    }
    Ok(start.elapsed())
}
