//! The server backends side by side with their drivers used directly, in this process: the
//! gateway's PostgreSQL, MariaDB and Redis databases against sqlx and redis-rs connected to the
//! very same database, plus CreateDatabase and DeleteDatabase latency per backend.
//!
//! The direct side connects as the server's admin user (postgres, root, Redis' default user) to
//! the database (schema, key prefix) the gateway spawned, so both sides read the same rows and
//! keys. Every latency phase alternates floor (a no-op RPC), gateway and direct call by call, as
//! the SQLite phase 3 does, so load that comes and goes lands on all three.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use dbforge::pb::{self, value};
use futures::TryStreamExt as _;
use sqlx::{AssertSqlSafe, Connection as _, MySqlConnection, PgConnection, Row as _};
use tonic_health::pb::HealthCheckRequest;

use crate::{
    BoxError,
    batches::BatchResults,
    direct::StreamRun,
    gateway::{self, Conn, failed},
    stats::{Latency, Rng},
    transfer::Engine,
};

/// Rows in the point-query table, as in phase 3.
const POINT_ROWS: u64 = 10_000;

/// Keys the Redis phase reads and writes.
const REDIS_KEYS: u64 = 10_000;

/// The local Redis server, as the gateway's flag and redis-rs take it (RESP3, as the gateway's
/// own connections speak).
pub const REDIS_URL: &str = "redis://127.0.0.1:6379/?protocol=resp3";

/// Where Redis listens.
pub const REDIS_ADDR: &str = "127.0.0.1:6379";

/// How much work each phase does.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    /// Untimed calls before each latency phase.
    pub warmup: usize,
    /// Timed calls per side of each latency phase.
    pub iters: usize,
    /// Rows of the streamed result.
    pub stream_rows: u64,
    /// Streams read per side; the best counts.
    pub stream_runs: usize,
    /// CreateDatabase calls per backend.
    pub spawns: usize,
    /// Timed rounds of phase 15's batches per backend; the best counts.
    pub batch_rounds: usize,
}

/// Point latencies of one alternating phase.
#[derive(Debug, Clone, Copy)]
pub struct Trio {
    /// The no-op RPC.
    pub floor: Latency,
    /// Through the gateway.
    pub gateway: Latency,
    /// The driver used directly.
    pub direct: Latency,
}

impl Trio {
    /// Gateway p50 over (floor p50 + direct p50): what phase 3 asks of SQLite.
    pub fn ratio(&self) -> f64 {
        self.gateway.p50.as_secs_f64() / (self.floor.p50 + self.direct.p50).as_secs_f64()
    }
}

/// What one SQL server measured.
#[derive(Debug, Clone)]
pub struct SqlResults {
    /// `SELECT v FROM p WHERE id = ?`.
    pub point: Trio,
    /// The best gateway read of the streamed result.
    pub stream_gateway: StreamRun,
    /// The best direct read of the same result.
    pub stream_direct: StreamRun,
    /// The point query with sqlx through pgbouncer (PostgreSQL only), in the same rounds.
    pub pooled: Option<Result<Latency, String>>,
}

/// What the Redis phase measured.
#[derive(Debug, Clone, Copy)]
pub struct RedisResults {
    /// GET of an existing key.
    pub get: Trio,
    /// SET of a key.
    pub set: Trio,
}

/// CreateDatabase and DeleteDatabase latency of one backend.
#[derive(Debug, Clone, Copy)]
pub struct SpawnResults {
    /// CreateDatabase.
    pub create: Latency,
    /// DeleteDatabase.
    pub delete: Latency,
}

/// Everything the backends phase measured; each part may have failed on its own.
#[derive(Debug)]
pub struct BackendResults {
    /// Rows of the streamed results.
    pub stream_rows: u64,
    /// PostgreSQL and MariaDB.
    pub sql: Vec<(Engine, Result<SqlResults, String>)>,
    /// Redis.
    pub redis: Result<RedisResults, String>,
    /// Spawn latency per backend, by its report name.
    pub spawn: Vec<(&'static str, Result<SpawnResults, String>)>,
    /// Phase 15: a batch of statements per backend, by its report name.
    pub batches: Vec<(&'static str, Result<BatchResults, String>)>,
}

impl BackendResults {
    /// Every part failed for `why`.
    pub fn failed(stream_rows: u64, why: &str) -> Self {
        Self {
            stream_rows,
            sql: [Engine::Postgres, Engine::Mysql]
                .into_iter()
                .map(|e| (e, Err(why.to_owned())))
                .collect(),
            redis: Err(why.to_owned()),
            spawn: SPAWN_BACKENDS
                .iter()
                .map(|(name, _)| (*name, Err(why.to_owned())))
                .collect(),
            batches: SPAWN_BACKENDS
                .iter()
                .map(|(name, _)| (*name, Err(why.to_owned())))
                .collect(),
        }
    }
}

/// The backends whose spawn latency is measured, with their report names.
const SPAWN_BACKENDS: [(&str, pb::Backend); 4] = [
    ("SQLite", pb::Backend::Sqlite),
    ("PostgreSQL", pb::Backend::Postgres),
    ("MariaDB", pb::Backend::Mysql),
    ("Redis", pb::Backend::Redis),
];

/// Which servers the gateway fronts (an unreachable one is reported with its reason).
#[derive(Debug, Clone)]
pub struct Available {
    /// PostgreSQL.
    pub postgres: Result<(), String>,
    /// MariaDB.
    pub mysql: Result<(), String>,
    /// Redis.
    pub redis: Result<(), String>,
}

/// Runs the backends phase against the gateway on `conn` (process `pid`); pgbouncer, when
/// PostgreSQL is up, keeps its files in `dir`.
pub async fn run(
    conn: &Conn,
    pid: u32,
    available: &Available,
    n: Counts,
    dir: &Path,
) -> BackendResults {
    let bouncer = available.postgres.is_ok().then(|| {
        if !on_path("pgbouncer") {
            return Err(crate::report::skipped(
                "pgbouncer is not installed (apt-get install pgbouncer)",
            ));
        }
        Pgbouncer::start(&dir.join("pgbouncer")).map_err(|e| format!("pgbouncer: {e}"))
    });
    let mut sql = Vec::new();
    for (engine, usable) in [
        (Engine::Postgres, &available.postgres),
        (Engine::Mysql, &available.mysql),
    ] {
        let result = match usable {
            Ok(()) => {
                crate::progress(&format!(
                    "11. {engine}: point queries and a {}-row stream, gateway and sqlx",
                    n.stream_rows
                ));
                let pooler = (engine == Engine::Postgres)
                    .then_some(bouncer.as_ref())
                    .flatten();
                sql_server(conn, pid, engine, n, pooler)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(why) => Err(why.clone()),
        };
        sql.push((engine, result));
    }
    let redis = match &available.redis {
        Ok(()) => {
            crate::progress("12. Redis: GET and SET, gateway and redis-rs");
            redis(conn, n).await.map_err(|e| e.to_string())
        }
        Err(why) => Err(why.clone()),
    };
    crate::progress(&format!("13. spawn latency, {} per backend", n.spawns));
    let spawn = spawns(conn, available, n.spawns).await;
    let batches = crate::batches::run(conn, available, n.batch_rounds, dir).await;
    BackendResults {
        stream_rows: n.stream_rows,
        sql,
        redis,
        spawn,
        batches,
    }
}

/// A database name unique to this run.
fn db_name(what: &str) -> String {
    format!("be-{}-{what}", std::process::id())
}

/// A sqlx connection to one spawned database, as the server's admin user.
enum Direct {
    Postgres(PgConnection),
    Mysql(MySqlConnection),
}

impl Direct {
    /// Connects to the database behind the spawned `ident`, at `port` (the server's own, or a
    /// pooler's in front of it).
    async fn open(engine: Engine, ident: &str, port: u16) -> Result<Self, BoxError> {
        Ok(match engine {
            Engine::Postgres => Self::Postgres(
                PgConnection::connect(&format!("postgres://postgres@127.0.0.1:{port}/{ident}"))
                    .await?,
            ),
            Engine::Mysql => Self::Mysql(
                MySqlConnection::connect(&format!("mysql://root@127.0.0.1:{port}/{ident}")).await?,
            ),
            Engine::Sqlite => return Err("SQLite has no server to connect to".into()),
        })
    }

    /// The point query, through sqlx's prepared-statement cache as the gateway's does.
    async fn point(&mut self, id: i64) -> Result<String, BoxError> {
        Ok(match self {
            Self::Postgres(c) => {
                sqlx::query_scalar("SELECT v FROM p WHERE id = $1")
                    .bind(id)
                    .fetch_one(c)
                    .await?
            }
            Self::Mysql(c) => {
                sqlx::query_scalar("SELECT v FROM p WHERE id = ?")
                    .bind(id)
                    .fetch_one(c)
                    .await?
            }
        })
    }

    /// Streams `sql`, reading each row's (int, text, float) into Rust values.
    async fn stream(&mut self, sql: &str) -> Result<StreamRun, BoxError> {
        let start = Instant::now();
        let (mut n, mut ints, mut text_bytes, mut floats) = (0u64, 0i64, 0usize, 0f64);
        macro_rules! read_all {
            ($conn:expr) => {{
                let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch($conn);
                while let Some(row) = rows.try_next().await? {
                    let x: i64 = row.try_get(0)?;
                    let s: String = row.try_get(1)?;
                    let f: f64 = row.try_get(2)?;
                    n += 1;
                    ints = ints.wrapping_add(x);
                    text_bytes += s.len();
                    floats += f;
                }
            }};
        }
        match self {
            Self::Postgres(c) => read_all!(&mut *c),
            Self::Mysql(c) => read_all!(&mut *c),
        }
        let elapsed = start.elapsed();
        std::hint::black_box((ints, text_bytes, floats));
        Ok(StreamRun {
            rows: n,
            elapsed,
            bytes: 0,
            cpu: None,
        })
    }
}

/// The SQL of each engine: the point table, its fill, the point query and the stream.
fn engine_sql(engine: Engine, rows: u64) -> [String; 4] {
    let create = "CREATE TABLE p (id BIGINT PRIMARY KEY, v TEXT NOT NULL)".to_owned();
    match engine {
        Engine::Postgres => [
            create,
            format!(
                "INSERT INTO p SELECT x, 'value-' || x FROM generate_series(1, {POINT_ROWS}) AS x"
            ),
            "SELECT v FROM p WHERE id = $1".to_owned(),
            format!(
                "SELECT x, 'row-' || x, x * 0.5::float8 \
                 FROM generate_series(1::bigint, {rows}) AS x"
            ),
        ],
        // MariaDB's Sequence engine (`seq_1_to_N`) makes the rows; MySQL proper lacks it.
        _ => [
            create,
            format!("INSERT INTO p SELECT seq, CONCAT('value-', seq) FROM seq_1_to_{POINT_ROWS}"),
            "SELECT v FROM p WHERE id = ?".to_owned(),
            format!(
                "SELECT CAST(seq AS SIGNED), CONCAT('row-', seq), seq * 0.5e0 \
                 FROM seq_1_to_{rows}"
            ),
        ],
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

/// The single text cell of a one-row result.
fn one_text(r: &pb::StatementResult) -> Option<&str> {
    match r.rows.as_slice() {
        [row] => match row.values.as_slice() {
            [
                pb::Value {
                    kind: Some(value::Kind::TextValue(s)),
                },
            ] => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// The type of an absent extra side of [`alternate`].
type NoSide = fn(usize) -> std::future::Ready<Result<(), BoxError>>;

/// No extra side for [`alternate`].
fn no_extra() -> Option<NoSide> {
    None
}

/// Times `n` rounds of (floor, gateway, direct, and `extra` when given) after `warmup` untimed
/// ones.
async fn alternate<G, D, E>(
    conn: &Conn,
    warmup: usize,
    n: usize,
    mut gateway: G,
    mut direct: D,
    mut extra: Option<E>,
) -> Result<(Trio, Option<Latency>), BoxError>
where
    G: AsyncFnMut(usize) -> Result<(), BoxError>,
    D: AsyncFnMut(usize) -> Result<(), BoxError>,
    E: AsyncFnMut(usize) -> Result<(), BoxError>,
{
    let mut health = conn.health();
    let (mut f, mut g, mut d, mut x) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for i in 0..warmup + n {
        let t0 = Instant::now();
        health
            .check(HealthCheckRequest::default())
            .await
            .map_err(failed("grpc.health.v1.Health/Check"))?;
        let t1 = Instant::now();
        gateway(i).await?;
        let t2 = Instant::now();
        direct(i).await?;
        let t3 = Instant::now();
        if let Some(extra) = &mut extra {
            extra(i).await?;
        }
        if i >= warmup {
            f.push(t1 - t0);
            g.push(t2 - t1);
            d.push(t3 - t2);
            x.push(t3.elapsed());
        }
    }
    let summary = |v| Latency::from_samples(v).ok_or("no samples");
    let trio = Trio {
        floor: summary(f)?,
        gateway: summary(g)?,
        direct: summary(d)?,
    };
    Ok((trio, extra.is_some().then(|| summary(x)).transpose()?))
}

/// Phase 11 on one SQL server: spawn, fill, compare, delete.
async fn sql_server(
    conn: &Conn,
    pid: u32,
    engine: Engine,
    n: Counts,
    bouncer: Option<&Result<Pgbouncer, String>>,
) -> Result<SqlResults, BoxError> {
    let db = db_name(engine.tag());
    let mut dbs = conn.databases();
    gateway::create_database(&mut dbs, &db, engine.backend()).await?;
    let measured = sql_measure(conn, pid, engine, &db, n, bouncer).await;
    let deleted = gateway::delete_database(&mut dbs, &db).await;
    let result = measured?;
    deleted?;
    Ok(result)
}

async fn sql_measure(
    conn: &Conn,
    pid: u32,
    engine: Engine,
    db: &str,
    n: Counts,
    bouncer: Option<&Result<Pgbouncer, String>>,
) -> Result<SqlResults, BoxError> {
    let [create, fill, point, stream] = engine_sql(engine, n.stream_rows);
    let mut q = conn.query();
    gateway::execute(&mut q, db, &create, vec![]).await?;
    let filled = gateway::execute(&mut q, db, &fill, vec![]).await?;
    if filled.rows_affected != i64::try_from(POINT_ROWS)? {
        return Err(format!("filling p inserted {} rows", filled.rows_affected).into());
    }
    let ident = crate::transfer::server_database(&conn.locator(db)?)?;
    let port = match engine {
        Engine::Postgres => 5432,
        _ => 3306,
    };
    let mut direct = Direct::open(engine, &ident, port).await?;
    let mut pooled = match bouncer {
        Some(Ok(b)) => Some(match Direct::open(engine, &ident, b.port()).await {
            Ok(c) => Ok(c),
            Err(e) => Err(format!("cannot connect through pgbouncer: {e}")),
        }),
        Some(Err(why)) => Some(Err(why.clone())),
        None => None,
    };
    let (mut rng_g, mut rng_d, mut rng_p) = (Rng::new(7), Rng::new(7), Rng::new(7));
    let (trio, pooled_latency) = {
        let direct = &mut direct;
        let point = point.as_str();
        let q = &mut q;
        let check = |who: &str, id: i64, v: String| {
            if v == format!("value-{id}") {
                Ok(())
            } else {
                Err(BoxError::from(format!(
                    "{who}: {point} with id {id} returned {v:?}"
                )))
            }
        };
        let pooled_side = match &mut pooled {
            Some(Ok(c)) => Some(async |_| {
                let id = rng_p.key(POINT_ROWS);
                check("sqlx through pgbouncer", id, c.point(id).await?)
            }),
            _ => None,
        };
        alternate(
            conn,
            n.warmup,
            n.iters,
            async |_| {
                let id = rng_g.key(POINT_ROWS);
                let r = gateway::execute(q, db, point, vec![int(id)]).await?;
                let v = one_text(&r).map(str::to_owned);
                check("gateway", id, v.unwrap_or_else(|| format!("{:?}", r.rows)))
            },
            async |_| {
                let id = rng_d.key(POINT_ROWS);
                check("sqlx", id, direct.point(id).await?)
            },
            pooled_side,
        )
        .await?
    };
    let pooled =
        pooled.map(|p| p.and_then(|_| pooled_latency.ok_or_else(|| "not measured".into())));
    let (mut g_best, mut d_best) = (gateway::BestStream::default(), None::<StreamRun>);
    for run in 0..n.stream_runs {
        for gateway_side in [run % 2 == 0, run % 2 != 0] {
            if gateway_side {
                let (sql, rows) = (stream.clone(), n.stream_rows);
                g_best.add(gateway::stream_once(conn, db, sql, rows, pid, run == 0).await?);
            } else {
                let r = direct.stream(&stream).await?;
                if r.rows != n.stream_rows {
                    return Err(format!("sqlx read {} of {} rows", r.rows, n.stream_rows).into());
                }
                if d_best.is_none_or(|b| r.elapsed < b.elapsed) {
                    d_best = Some(r);
                }
            }
        }
    }
    Ok(SqlResults {
        point: trio,
        stream_gateway: g_best.take()?,
        stream_direct: d_best.ok_or("no stream runs")?,
        pooled,
    })
}

/// The key prefix of a Redis database's locator (`user=… prefix=… password=…`).
pub fn redis_prefix(locator: &str) -> Result<String, BoxError> {
    locator
        .split(' ')
        .find_map(|f| f.strip_prefix("prefix="))
        .map(str::to_owned)
        .ok_or_else(|| format!("not a Redis locator: {locator:?}").into())
}

/// Phase 12: GET and SET through the gateway and with redis-rs on the same keys.
async fn redis(conn: &Conn, n: Counts) -> Result<RedisResults, BoxError> {
    let db = db_name("redis");
    let mut dbs = conn.databases();
    gateway::create_database(&mut dbs, &db, pb::Backend::Redis).await?;
    let measured = redis_measure(conn, &db, n).await;
    let deleted = gateway::delete_database(&mut dbs, &db).await;
    let result = measured?;
    deleted?;
    Ok(result)
}

async fn redis_measure(conn: &Conn, db: &str, n: Counts) -> Result<RedisResults, BoxError> {
    let client = redis::Client::open(REDIS_URL)?;
    let mut direct = client.get_multiplexed_async_connection().await?;
    let prefix = redis_prefix(&conn.locator(db)?)?;

    // Fill the keys directly, in one pipeline.
    let mut pipe = redis::pipe();
    for k in 1..=REDIS_KEYS {
        pipe.cmd("SET")
            .arg(format!("{prefix}k{k}"))
            .arg(format!("value-{k}"))
            .ignore();
    }
    pipe.query_async::<()>(&mut direct).await?;

    let mut q = conn.query();
    let (mut rng_g, mut rng_d) = (Rng::new(11), Rng::new(11));
    let get = {
        let (q, direct, prefix) = (&mut q, &mut direct, prefix.as_str());
        alternate(
            conn,
            n.warmup,
            n.iters,
            async |_| {
                let k = rng_g.key(REDIS_KEYS);
                let r = gateway::execute(q, db, "GET", vec![text(format!("k{k}"))]).await?;
                if one_text(&r) != Some(format!("value-{k}").as_str()) {
                    return Err(format!("GET k{k} returned {:?}", r.rows).into());
                }
                Ok(())
            },
            async |_| {
                let k = rng_d.key(REDIS_KEYS);
                let v: Option<String> = redis::cmd("GET")
                    .arg(format!("{prefix}k{k}"))
                    .query_async(direct)
                    .await?;
                if v.as_deref() != Some(format!("value-{k}").as_str()) {
                    return Err(format!("redis-rs: GET k{k} returned {v:?}").into());
                }
                Ok(())
            },
            no_extra(),
        )
        .await?
        .0
    };
    let set = {
        let (q, direct, prefix) = (&mut q, &mut direct, prefix.as_str());
        alternate(
            conn,
            n.warmup,
            n.iters,
            async |i| {
                let k = rng_g.key(REDIS_KEYS);
                let params = vec![text(format!("k{k}")), text(format!("value-{k}-{i}"))];
                let r = gateway::execute(q, db, "SET", params).await?;
                if one_text(&r) != Some("OK") {
                    return Err(format!("SET k{k} returned {:?}", r.rows).into());
                }
                Ok(())
            },
            async |i| {
                let k = rng_d.key(REDIS_KEYS);
                let () = redis::cmd("SET")
                    .arg(format!("{prefix}k{k}"))
                    .arg(format!("value-{k}-{i}"))
                    .query_async(direct)
                    .await?;
                Ok(())
            },
            no_extra(),
        )
        .await?
        .0
    };
    Ok(RedisResults { get, set })
}

/// Phase 13: CreateDatabase on every available backend in turn, `count` rounds, then
/// DeleteDatabase of each in turn, so slow moments of the machine spread over all backends.
async fn spawns(
    conn: &Conn,
    available: &Available,
    count: usize,
) -> Vec<(&'static str, Result<SpawnResults, String>)> {
    let usable = |b: pb::Backend| match b {
        pb::Backend::Postgres => available.postgres.clone(),
        pb::Backend::Mysql => available.mysql.clone(),
        pb::Backend::Redis => available.redis.clone(),
        _ => Ok(()),
    };
    let backends: Vec<(&'static str, pb::Backend, Result<(), String>)> = SPAWN_BACKENDS
        .iter()
        .map(|&(name, b)| (name, b, usable(b)))
        .collect();
    let mut create: Vec<Result<Vec<Duration>, String>> = backends
        .iter()
        .map(|(_, _, u)| u.clone().map(|()| Vec::with_capacity(count)))
        .collect();
    let mut delete = create.clone();
    // Databases made per backend: creates of a backend stop at its first failure.
    let mut made = vec![0usize; backends.len()];
    let mut dbs = conn.databases();
    let name = |b: usize, i: usize| db_name(&format!("s{b}-{i}"));
    for i in 0..count {
        for (b, (_, backend, _)) in backends.iter().enumerate() {
            let Ok(samples) = &mut create[b] else {
                continue;
            };
            let start = Instant::now();
            match gateway::create_database(&mut dbs, &name(b, i), *backend).await {
                Ok(()) => {
                    samples.push(start.elapsed());
                    made[b] += 1;
                }
                Err(e) => create[b] = Err(e.to_string()),
            }
        }
    }
    let rounds = made.iter().copied().max().unwrap_or(0);
    for i in 0..rounds {
        for b in 0..backends.len() {
            // Delete whatever was made, even after a failure, so nothing is left behind.
            if i >= made[b] {
                continue;
            }
            let start = Instant::now();
            let deleted = gateway::delete_database(&mut dbs, &name(b, i)).await;
            match (&mut delete[b], deleted) {
                (Ok(samples), Ok(())) => samples.push(start.elapsed()),
                (slot @ Ok(_), Err(e)) => *slot = Err(e.to_string()),
                (Err(_), _) => {}
            }
        }
    }
    backends
        .iter()
        .zip(create.into_iter().zip(delete))
        .map(|((label, _, _), (c, d))| {
            let result = c.and_then(|c| {
                let d = d?;
                Ok(SpawnResults {
                    create: Latency::from_samples(c).ok_or_else(|| "no spawns".to_owned())?,
                    delete: Latency::from_samples(d).ok_or_else(|| "no deletes".to_owned())?,
                })
            });
            (*label, result)
        })
        .collect()
}

/// A pgbouncer child in transaction pooling mode on loopback, in front of the local PostgreSQL:
/// the usual pooler, as a second baseline for the PostgreSQL point query. It is stopped when
/// dropped.
#[derive(Debug)]
pub struct Pgbouncer {
    child: std::process::Child,
    port: u16,
}

impl Pgbouncer {
    /// Starts `pgbouncer` with its config in `dir` and waits (up to 5 s) until it accepts
    /// connections.
    ///
    /// Every database name is forwarded to 127.0.0.1:5432 as `postgres` (`auth_type = any`:
    /// trust on loopback, as the server itself). The pool holds one server connection per
    /// database, so the bench's single client always meets the same one and sqlx's cached
    /// prepared statements stay valid; pgbouncer still assigns and releases that connection
    /// for every transaction, which is the cost transaction pooling adds. pgbouncer refuses to
    /// run as root, so as root it is told to switch to the `postgres` user.
    pub fn start(dir: &Path) -> Result<Self, BoxError> {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(dir)?;
        // The `postgres` user must be able to read the config after pgbouncer switches to it.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?.port()
        };
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host=127.0.0.1 port=5432 user=postgres\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = any\n\
                 pool_mode = transaction\ndefault_pool_size = 1\nmax_client_conn = 16\n\
                 ignore_startup_parameters = extra_float_digits,options\n"
            ),
        )?;
        std::fs::set_permissions(&ini, std::fs::Permissions::from_mode(0o644))?;
        let log = std::fs::File::create(dir.join("pgbouncer.log"))?;
        let mut cmd = std::process::Command::new("pgbouncer");
        if running_as_root() {
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd
            .arg(&ini)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut bouncer = Self { child, port };
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !crate::transfer::reachable(&addr) {
            if let Some(status) = bouncer.child.try_wait()? {
                return Err(format!(
                    "pgbouncer exited ({status}); see {}",
                    dir.join("pgbouncer.log").display()
                )
                .into());
            }
            if Instant::now() > deadline {
                return Err("pgbouncer did not listen within 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // On the early returns above `bouncer` is dropped, which kills the child.
        Ok(bouncer)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Whether `program` is a file in one of the `PATH` directories.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Whether this process runs as root (real uid 0, from `/proc/self/status`).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
