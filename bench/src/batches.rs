//! Phase 15: a batch of 100 single-row INSERTs (Redis: SETs) through `ExecuteBatch`, with and
//! without a transaction, against the same 100 statements sent by the engine's driver in this
//! process (rusqlite, sqlx, redis-rs), on every backend.
//!
//! Without a transaction each statement commits on its own on both sides; with one, the direct
//! side wraps them in BEGIN … COMMIT. On Redis the direct side sends one pipeline (MULTI … EXEC
//! around it with a transaction), as the gateway does. A no-op RPC (the floor) is timed in the
//! same rounds: for batches that take well under a millisecond directly, it is most of the
//! gateway's time. Sides alternate round by round and the best round of each counts: a batch is
//! short, and the best shows the cost of the path rather than of the machine's other load.
//! This phase was added when each MariaDB statement of a batch waited ~44 ms for a delayed ACK
//! (sqlx 0.9.0 left Nagle on): 4.4 s for the batch against tens of milliseconds direct.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use dbforge::pb;
use sqlx::{Connection as _, Executor as _, MySqlConnection, PgConnection};

use crate::{
    BoxError,
    backends::{Available, REDIS_URL, redis_prefix},
    gateway::{self, Conn, failed},
};

/// Statements per batch.
pub const STATEMENTS: usize = 100;

/// The target: a gateway batch within this factor of the driver sending the same statements.
pub const RATIO_MAX: f64 = 2.0;

/// The best round of each of the four ways to run the batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchResults {
    /// ExecuteBatch, `transaction: false`.
    pub gateway: Duration,
    /// ExecuteBatch, `transaction: true`.
    pub gateway_tx: Duration,
    /// The driver, one autocommitted statement after another.
    pub direct: Duration,
    /// The driver, the statements in one transaction.
    pub direct_tx: Duration,
    /// A no-op RPC (`grpc.health.v1.Health/Check`).
    pub floor: Duration,
}

/// The backends of this phase, with their report names.
const BACKENDS: [(&str, pb::Backend); 4] = [
    ("SQLite", pb::Backend::Sqlite),
    ("PostgreSQL", pb::Backend::Postgres),
    ("MariaDB", pb::Backend::Mysql),
    ("Redis", pb::Backend::Redis),
];

/// Runs the phase on every available backend, `rounds` rounds each; SQLite's direct side keeps
/// its file in `dir`.
pub async fn run(
    conn: &Conn,
    available: &Available,
    rounds: usize,
    dir: &Path,
) -> Vec<(&'static str, Result<BatchResults, String>)> {
    let mut out = Vec::new();
    for (name, backend) in BACKENDS {
        let usable = match backend {
            pb::Backend::Postgres => available.postgres.clone(),
            pb::Backend::Mysql => available.mysql.clone(),
            pb::Backend::Redis => available.redis.clone(),
            _ => Ok(()),
        };
        let result = match usable {
            Ok(()) => {
                crate::progress(&format!("15. {name}: a batch of {STATEMENTS} statements"));
                one(conn, backend, rounds, dir)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(why) => Err(why),
        };
        out.push((name, result));
    }
    out
}

/// The driver side of one backend.
enum Direct {
    Sqlite(rusqlite::Connection),
    Postgres(PgConnection),
    Mysql(MySqlConnection),
    Redis(redis::aio::MultiplexedConnection, String),
}

impl Direct {
    /// Runs the batch (ids `from..from + STATEMENTS`) and returns how long it took.
    async fn batch(&mut self, from: i64, transaction: bool) -> Result<Duration, BoxError> {
        let ids = from..from + STATEMENTS as i64;
        let started = Instant::now();
        match self {
            Self::Sqlite(c) => {
                if transaction {
                    c.execute_batch("BEGIN")?;
                }
                for id in ids {
                    let mut stmt = c.prepare_cached("INSERT INTO t (id, v) VALUES (?1, ?2)")?;
                    stmt.execute(rusqlite::params![id, "x"])?;
                }
                if transaction {
                    c.execute_batch("COMMIT")?;
                }
            }
            Self::Postgres(c) => {
                if transaction {
                    c.execute("BEGIN").await?;
                }
                for id in ids {
                    sqlx::query("INSERT INTO t (id, v) VALUES ($1, $2)")
                        .bind(id)
                        .bind("x")
                        .execute(&mut *c)
                        .await?;
                }
                if transaction {
                    c.execute("COMMIT").await?;
                }
            }
            Self::Mysql(c) => {
                if transaction {
                    c.execute("BEGIN").await?;
                }
                for id in ids {
                    sqlx::query("INSERT INTO t (id, v) VALUES (?, ?)")
                        .bind(id)
                        .bind("x")
                        .execute(&mut *c)
                        .await?;
                }
                if transaction {
                    c.execute("COMMIT").await?;
                }
            }
            Self::Redis(c, prefix) => {
                // One pipeline either way, as the gateway sends a batch.
                let mut pipe = redis::pipe();
                if transaction {
                    pipe.atomic();
                }
                for id in ids {
                    pipe.cmd("SET")
                        .arg(format!("{prefix}k{id}"))
                        .arg("x")
                        .ignore();
                }
                pipe.query_async::<()>(c).await?;
            }
        }
        Ok(started.elapsed())
    }
}

/// The gateway's batch: ids `from..from + STATEMENTS`.
fn statements(backend: pb::Backend, from: i64) -> Vec<pb::Statement> {
    let int = |v: i64| pb::Value {
        kind: Some(pb::value::Kind::IntValue(v)),
    };
    let text = |v: String| pb::Value {
        kind: Some(pb::value::Kind::TextValue(v)),
    };
    (from..from + STATEMENTS as i64)
        .map(|id| match backend {
            pb::Backend::Redis => pb::Statement {
                sql: "SET".into(),
                params: vec![text(format!("k{id}")), text("x".into())],
            },
            pb::Backend::Postgres => pb::Statement {
                sql: "INSERT INTO t (id, v) VALUES ($1, $2)".into(),
                params: vec![int(id), text("x".into())],
            },
            _ => pb::Statement {
                sql: "INSERT INTO t (id, v) VALUES (?, ?)".into(),
                params: vec![int(id), text("x".into())],
            },
        })
        .collect()
}

async fn one(
    conn: &Conn,
    backend: pb::Backend,
    rounds: usize,
    dir: &Path,
) -> Result<BatchResults, BoxError> {
    // Short: MariaDB user names (which embed it) are limited.
    let tag = match backend {
        pb::Backend::Postgres => "pg",
        pb::Backend::Mysql => "my",
        pb::Backend::Redis => "rd",
        _ => "lite",
    };
    let db = format!("be-{}-b{tag}", std::process::id());
    let mut dbs = conn.databases();
    gateway::create_database(&mut dbs, &db, backend).await?;
    let measured = measure(conn, &db, backend, rounds, dir).await;
    let deleted = gateway::delete_database(&mut dbs, &db).await;
    let result = measured?;
    deleted?;
    Ok(result)
}

async fn measure(
    conn: &Conn,
    db: &str,
    backend: pb::Backend,
    rounds: usize,
    dir: &Path,
) -> Result<BatchResults, BoxError> {
    const CREATE: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(20))";
    let mut q = conn.query();
    if backend != pb::Backend::Redis {
        gateway::execute(&mut q, db, CREATE, vec![]).await?;
    }
    let mut direct = match backend {
        pb::Backend::Sqlite => {
            let path = dir.join("batch-direct.sqlite");
            let _ = std::fs::remove_file(&path);
            let c = crate::direct::open(&path)?;
            c.execute(CREATE, [])?;
            Direct::Sqlite(c)
        }
        pb::Backend::Postgres => {
            let ident = crate::transfer::server_database(&conn.locator(db)?)?;
            let url = format!("postgres://postgres@127.0.0.1:5432/{ident}");
            Direct::Postgres(PgConnection::connect(&url).await?)
        }
        pb::Backend::Mysql => {
            let ident = crate::transfer::server_database(&conn.locator(db)?)?;
            let url = format!("mysql://root@127.0.0.1:3306/{ident}");
            Direct::Mysql(MySqlConnection::connect(&url).await?)
        }
        _ => {
            let client = redis::Client::open(REDIS_URL)?;
            let c = client.get_multiplexed_async_connection().await?;
            let prefix = redis_prefix(&conn.locator(db)?)?;
            Direct::Redis(c, prefix)
        }
    };
    // Ids: the gateway and the driver write disjoint ranges of the same table (or key space).
    let mut next = 0i64;
    let mut ids = || {
        next += STATEMENTS as i64;
        next
    };
    let mut best = BatchResults {
        gateway: Duration::MAX,
        gateway_tx: Duration::MAX,
        direct: Duration::MAX,
        direct_tx: Duration::MAX,
        floor: Duration::MAX,
    };
    let mut health = conn.health();
    // Round 0 warms both sides up (connections, prepared statements) and does not count.
    for round in 0..=rounds {
        let started = Instant::now();
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .map_err(failed("grpc.health.v1.Health/Check"))?;
        let floor = started.elapsed();
        let mut times = [Duration::ZERO; 4];
        for (i, transaction) in [false, true].into_iter().enumerate() {
            let started = Instant::now();
            let req = pb::ExecuteBatchRequest {
                database: db.to_owned(),
                statements: statements(backend, ids()),
                transaction,
            };
            let res = q
                .execute_batch(req)
                .await
                .map_err(failed(format_args!("ExecuteBatch on {db:?}")))?
                .into_inner();
            times[i] = started.elapsed();
            if res.results.len() != STATEMENTS {
                return Err(format!("ExecuteBatch returned {} results", res.results.len()).into());
            }
            times[2 + i] = direct.batch(ids(), transaction).await?;
        }
        if round > 0 {
            best.gateway = best.gateway.min(times[0]);
            best.gateway_tx = best.gateway_tx.min(times[1]);
            best.direct = best.direct.min(times[2]);
            best.direct_tx = best.direct_tx.min(times[3]);
            best.floor = best.floor.min(floor);
        }
    }
    Ok(best)
}
