//! Connection shares on the real SQL servers (`backend/share.rs`, `backend/pool.rs`): two
//! databases on one gateway, load on one while the other is idle. The busy one's share grows
//! past an even split up to its maximum and the server sees that many connections; the idle one
//! still gets a connection within a bounded time when it asks (no starvation); once the load
//! stops, the busy one's share decays and its idle connections are closed on the server.
//!
//! Everything is polled against a deadline (the CI machine is small and loaded); the bounds
//! are generous and only the direction of each change is asserted exactly.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use dbforge::{Backend, Client, ConnectionShare, CreateOptions, Value};
use sqlx::Connection;

use crate::harness::{TestServer, metric_value, mysql_url, postgres_url, scrape_metrics, unique};

/// `--max-server-connections`: 8 for the data plane once 2 are set aside for administration.
const SERVER_CONNECTIONS: u32 = 10;
/// The data-plane cap those leave.
const CAP: u32 = 8;
/// Concurrent calls of the load, more than the cap so that some always wait.
const LOAD: usize = 12;

/// How one engine is driven and watched.
#[derive(Clone, Copy)]
struct Engine {
    backend: Backend,
    /// A statement that holds its connection for about a second.
    sleep: &'static str,
    /// The engine's name of the database a call runs in.
    current_database: &'static str,
    /// Connections to one engine database, counted by the server (parameter: its name).
    count: &'static str,
}

const POSTGRES: Engine = Engine {
    backend: Backend::Postgres,
    sleep: "SELECT pg_sleep(1)",
    current_database: "SELECT current_database()",
    count: "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
};

const MYSQL: Engine = Engine {
    backend: Backend::Mysql,
    sleep: "SELECT SLEEP(1)",
    current_database: "SELECT DATABASE()",
    count: "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ?",
};

/// Polls `probe` until it returns `Some`, failing with the last `None`'s description after
/// `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let until = Instant::now() + within;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= until => {
                panic!("{what}: not within {within:?}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn shares(c: &Client) -> Vec<ConnectionShare> {
    c.server_stats().await.expect("stats").connection_shares
}

async fn share_of(c: &Client, db: &str) -> Option<ConnectionShare> {
    shares(c).await.into_iter().find(|s| s.database == db)
}

/// The engine's name of the database `db`.
async fn engine_name(c: &Client, e: &Engine, db: &str) -> String {
    let r = c.execute(db, e.current_database, &[]).await.expect("name");
    match r.rows[0].values() {
        [Value::Text(name)] => name.clone(),
        other => panic!("current database: {other:?}"),
    }
}

/// Runs [`LOAD`] calls of the engine's sleep on `db` back to back until `stop` is set.
fn load(
    c: &Client,
    e: &Engine,
    db: &str,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..LOAD)
        .map(|_| {
            let (c, db, stop, sleep) = (c.clone(), db.to_owned(), Arc::clone(stop), e.sleep);
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    c.execute(&db, sleep, &[]).await.expect("a loaded call");
                }
            })
        })
        .collect()
}

async fn round(url: String, e: Engine) {
    let gateway_url = url.clone();
    let s = TestServer::with(move |mut cfg| {
        let url = gateway_url;
        match e.backend {
            Backend::Postgres => cfg.postgres_url = Some(url),
            _ => cfg.mysql_url = Some(url),
        }
        cfg.max_server_connections = SERVER_CONNECTIONS;
        // A database may take the whole data plane; an idle one keeps nothing, so the calm
        // database must be given a slot out of the busy one's connections.
        cfg.database_connections = CAP;
        cfg.database_min_connections = 0;
        cfg.database_demand_half_life = Duration::from_millis(500);
        cfg
    })
    .await;
    let c = &s.client;
    let (busy, calm) = (unique("busy"), unique("calm"));
    for db in [&busy, &calm] {
        c.create_database(db, CreateOptions::default().backend(e.backend))
            .await
            .expect("create");
    }
    let busy_engine = engine_name(c, &e, &busy).await;
    engine_name(c, &e, &calm).await;
    let backend = match e.backend {
        Backend::Postgres => "postgres",
        _ => "mysql",
    };
    let server_count = |name: String| {
        let url = url.clone();
        async move {
            let n: i64 = match e.backend {
                Backend::Postgres => {
                    let mut admin = sqlx::PgConnection::connect(&url).await.expect("admin");
                    sqlx::query_scalar(e.count)
                        .bind(&name)
                        .fetch_one(&mut admin)
                        .await
                        .expect("count")
                }
                _ => {
                    let mut admin = sqlx::MySqlConnection::connect(&url).await.expect("admin");
                    sqlx::query_scalar(e.count)
                        .bind(&name)
                        .fetch_one(&mut admin)
                        .await
                        .expect("count")
                }
            };
            n
        }
    };

    // Load on one: its share grows past an even split (4 of 8) up to its maximum (8), and the
    // server sees that many connections of it.
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(c, &e, &busy, &stop);
    eventually(
        Duration::from_secs(30),
        "the busy share at its maximum",
        || async {
            match share_of(c, &busy).await {
                Some(s) if s.share == CAP && s.max == CAP && s.in_use > CAP / 2 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the busy database's connections on the server",
        || {
            let n = server_count(busy_engine.clone());
            async move {
                match n.await {
                    n if n == i64::from(CAP) => Ok(()),
                    n => Err(format!("{n} connections")),
                }
            }
        },
    )
    .await;
    eventually(Duration::from_secs(10), "the share gauge", || async {
        let scrape = scrape_metrics(&s).await;
        let db_label = format!("database=\"{busy}\"");
        let labels = [db_label.as_str(), &format!("backend=\"{backend}\"")];
        match metric_value(&scrape, "dbforge_pool_connection_share", &labels) {
            Some(v) if v == CAP.to_string() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let total: u32 = shares(c).await.iter().map(|s| s.share).sum();
    assert!(
        total <= CAP,
        "the shares add up to {total}, above the cap {CAP}"
    );

    // The idle database asks while every connection is the busy one's: it gets one as soon as
    // a running sleep (about a second) ends, not when the load stops.
    let started = Instant::now();
    c.execute(&calm, e.sleep, &[])
        .await
        .expect("the calm database's call");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "the calm database waited {waited:?} for a connection under the busy one's load"
    );
    assert!(!stop.load(Ordering::Relaxed), "the load was still running");

    // The load stops: the busy share decays to the minimum (0) and the server sees its idle
    // connections closed (well before --idle-close-after, 60 s, would close them).
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("load task");
    }
    eventually(
        Duration::from_secs(30),
        "the busy share back at its minimum",
        || async {
            match share_of(c, &busy).await {
                Some(s) if s.share == 0 && s.idle == 0 && s.in_use == 0 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the busy database's connections closed",
        || {
            let n = server_count(busy_engine.clone());
            async move {
                match n.await {
                    0 => Ok(()),
                    n => Err(format!("{n} connections")),
                }
            }
        },
    )
    .await;
    for db in [&busy, &calm] {
        c.delete_database(db).await.expect("delete");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_postgres_database_takes_a_larger_share_and_gives_it_back() {
    let Some(url) = postgres_url().await else {
        return;
    };
    round(url, POSTGRES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_mysql_database_takes_a_larger_share_and_gives_it_back() {
    let Some(url) = mysql_url().await else {
        return;
    };
    round(url, MYSQL).await;
}
