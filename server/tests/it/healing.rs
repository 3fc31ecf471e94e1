//! Self-healing against real engines, without disturbing the shared servers: the test gateway
//! reaches PostgreSQL, MariaDB and Redis through a loopback proxy started by the test, which
//! can refuse connections (a server that went away), blackhole them (a server that accepts but
//! never answers) and forward again (the server is back). Connections are also killed from the
//! server side (`pg_terminate_backend`, `KILL`, `CLIENT KILL`) and statements run past their
//! timeout, and the server's own process lists show what the gateway left running.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use dbforge::{
    Backend, Client, ClientOptions, Code, CreateOptions, DatabaseEvent, DatabaseEventType,
    DatabaseEvents, DatabaseStatus, ListFilter, Value, WatchOptions,
};
use sqlx::Connection as _;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use crate::harness::{
    TestServer, assert_code, mysql_url, postgres_url, redis_url, serving, unique,
};

// ---- the proxy -----------------------------------------------------------------------------

#[derive(Debug, Default)]
struct ProxyState {
    /// Accept and read, but never forward and never answer.
    blackhole: AtomicBool,
    /// Connections the gateway closed itself.
    closed_by_client: AtomicUsize,
    /// Forwarding connections open now, by id.
    open: Mutex<std::collections::BTreeSet<usize>>,
    /// The next connection's id.
    next_id: AtomicUsize,
}

/// A loopback TCP proxy in front of a real server; see the module docs.
struct Proxy {
    addr: SocketAddr,
    target: String,
    state: Arc<ProxyState>,
    /// The accept loop and every connection's task (aborted to cut them all).
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let p = Proxy {
            addr: listener.local_addr().expect("address"),
            target: target.to_owned(),
            state: Arc::default(),
            tasks: Arc::default(),
        };
        p.serve(listener);
        p
    }

    /// `url` (of the real server) pointed at the proxy instead.
    fn url(&self, url: &str) -> String {
        assert!(
            url.contains(&self.target),
            "cannot route {url} through a proxy"
        );
        url.replacen(&self.target, &self.addr.to_string(), 1)
    }

    fn serve(&self, listener: TcpListener) {
        let (target, state, tasks) = (
            self.target.clone(),
            Arc::clone(&self.state),
            Arc::clone(&self.tasks),
        );
        let inner = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let conn = tokio::spawn(pipe(down, target.clone(), Arc::clone(&state)));
                inner.lock().expect("tasks").push(conn);
            }
        });
        tasks.lock().expect("tasks").push(accept);
    }

    /// The server went away: the port refuses connections and open ones are cut.
    fn refuse(&self) {
        for t in self.tasks.lock().expect("tasks").drain(..) {
            t.abort();
        }
    }

    /// Connections are accepted and read, but nothing is forwarded or answered.
    fn blackhole(&self) {
        self.state.blackhole.store(true, Ordering::SeqCst);
    }

    /// The server is back: the same port forwards again.
    async fn forward(&self) {
        self.state.blackhole.store(false, Ordering::SeqCst);
        if self.tasks.lock().expect("tasks").is_empty() {
            let listener = TcpListener::bind(self.addr).await.expect("bind again");
            self.serve(listener);
        }
    }

    fn closed_by_client(&self) -> usize {
        self.state.closed_by_client.load(Ordering::SeqCst)
    }

    /// The ids of the forwarding connections open now.
    fn open_connections(&self) -> std::collections::BTreeSet<usize> {
        self.state.open.lock().expect("open").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.refuse();
    }
}

/// Forwards one connection both ways until either side closes; in blackhole mode, reads and
/// drops what arrives from either side.
async fn pipe(mut down: TcpStream, target: String, state: Arc<ProxyState>) {
    if state.blackhole.load(Ordering::SeqCst) {
        let mut buf = [0u8; 4096];
        while matches!(down.read(&mut buf).await, Ok(n) if n > 0) {}
        state.closed_by_client.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let Ok(mut up) = TcpStream::connect(&target).await else {
        return;
    };
    let id = state.next_id.fetch_add(1, Ordering::SeqCst);
    state.open.lock().expect("open").insert(id);
    // Whichever way the connection ends (either side, or the task aborted), it is no longer open.
    let _gone = Gone(Arc::clone(&state), id);
    let (mut dr, mut dw) = down.split();
    let (mut ur, mut uw) = up.split();
    let to_server = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match dr.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    state.closed_by_client.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Ok(n) if !state.blackhole.load(Ordering::SeqCst) => {
                    if uw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
            }
        }
    };
    let to_client = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match ur.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) if !state.blackhole.load(Ordering::SeqCst) => {
                    if dw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
            }
        }
    };
    // Either side ending ends the connection, as a real server's close would.
    tokio::select! {
        () = to_server => {}
        () = to_client => {}
    }
}

struct Gone(Arc<ProxyState>, usize);

impl Drop for Gone {
    fn drop(&mut self) {
        if let Ok(mut open) = self.0.open.lock() {
            open.remove(&self.1);
        }
    }
}

/// `host:port` of a backend URL.
fn host_port(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.rsplit('@').next())
        .and_then(|rest| rest.split(['/', '?']).next())
        .expect("host:port")
        .to_owned()
}

// ---- helpers -------------------------------------------------------------------------------

/// The next event of `kind` about `db`, skipping others; fails after `within`.
async fn event_for(
    w: &mut DatabaseEvents,
    kind: DatabaseEventType,
    db: &str,
    within: Duration,
) -> DatabaseEvent {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = tokio::time::timeout(left, w.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind:?} event for {db} within {within:?}"))
            .expect("the watch did not fail")
            .expect("the watch did not end");
        if e.kind == kind && e.database == db {
            return e;
        }
    }
}

async fn status_of(c: &Client, db: &str) -> (DatabaseStatus, DatabaseStatus) {
    let got = c.get_database(db).await.expect("get").status;
    let listed = c
        .list_databases(ListFilter::default())
        .await
        .expect("list")
        .into_iter()
        .find(|d| d.name == db)
        .expect("listed")
        .status;
    (got, listed)
}

/// What each engine runs in the tests.
struct Engine {
    backend: Backend,
    setup: &'static str,
    read: &'static str,
    expect: Value,
}

fn engine(backend: Backend) -> Engine {
    match backend {
        Backend::Redis => Engine {
            backend,
            setup: "SET healed yes",
            read: "GET healed",
            expect: Value::Text("yes".into()),
        },
        _ => Engine {
            backend,
            setup: "CREATE TABLE healed (v INT); INSERT INTO healed VALUES (7)",
            read: "SELECT v FROM healed",
            expect: Value::Int(7),
        },
    }
}

async fn setup(c: &Client, e: &Engine, db: &str) {
    c.create_database(db, CreateOptions::default().backend(e.backend))
        .await
        .expect("create");
    if e.backend == Backend::Redis {
        c.execute(db, e.setup, &[]).await.expect("setup");
    } else {
        for sql in e.setup.split("; ") {
            c.execute(db, sql, &[]).await.expect("setup");
        }
    }
}

async fn read(c: &Client, e: &Engine, db: &str) -> dbforge::Result<Value> {
    let r = c.execute(db, e.read, &[]).await?;
    Ok(r.rows[0].values()[0].clone())
}

/// A gateway that reaches the engine of `url` through a new proxy.
async fn behind_proxy(backend: Backend, url: &str) -> (Proxy, TestServer) {
    let proxy = Proxy::start(&host_port(url)).await;
    let server = serving(backend, proxy.url(url)).await;
    (proxy, server)
}

// ---- a server that goes away and comes back -----------------------------------------------

/// The server stops accepting connections: its databases turn UNAVAILABLE with an event
/// saying why, calls fail fast with UNAVAILABLE; once it answers again, a `recovered` event
/// follows and the data is all there, without restarting the gateway.
async fn goes_away_and_comes_back(backend: Backend, url: String) {
    let e = engine(backend);
    let (proxy, s) = behind_proxy(backend, &url).await;
    let c = &s.client;
    let db = unique("away");
    setup(c, &e, &db).await;
    assert_eq!(read(c, &e, &db).await.expect("read"), e.expect);
    let mut w = c
        .watch_databases(WatchOptions::default())
        .await
        .expect("watch");

    proxy.refuse();
    let down = event_for(
        &mut w,
        DatabaseEventType::Unavailable,
        &db,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(down.backend, backend);
    assert_eq!(down.key_id, "gateway");
    assert!(
        down.cause.contains("cannot be reached") && down.cause.contains(&proxy.addr.to_string()),
        "the cause names the server: {}",
        down.cause
    );
    assert_eq!(
        status_of(c, &db).await,
        (DatabaseStatus::Unavailable, DatabaseStatus::Unavailable)
    );
    let started = Instant::now();
    let err = assert_code(read(c, &e, &db).await, Code::Unavailable);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "fails fast: {:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("cannot be reached"), "{err}");

    proxy.forward().await;
    let up = event_for(
        &mut w,
        DatabaseEventType::Recovered,
        &db,
        Duration::from_secs(10),
    )
    .await;
    assert!(up.cause.starts_with("down_for="), "{}", up.cause);
    assert!(up.sequence > down.sequence);
    assert_eq!(
        status_of(c, &db).await,
        (DatabaseStatus::Ready, DatabaseStatus::Ready)
    );
    assert_eq!(
        read(c, &e, &db).await.expect("read after recovery"),
        e.expect
    );
    c.delete_database(&db).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_databases_turn_unavailable_and_recover_when_the_server_goes_away() {
    let Some(url) = postgres_url().await else {
        return;
    };
    goes_away_and_comes_back(Backend::Postgres, url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_databases_turn_unavailable_and_recover_when_the_server_goes_away() {
    let Some(url) = mysql_url().await else {
        return;
    };
    goes_away_and_comes_back(Backend::Mysql, url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_databases_turn_unavailable_and_recover_when_the_server_goes_away() {
    let Some(url) = redis_url().await else {
        return;
    };
    goes_away_and_comes_back(Backend::Redis, url).await;
}

// ---- a server that stops answering ---------------------------------------------------------

/// The server accepts but never answers: the call in flight ends at its deadline and its
/// connection is closed (not kept for the next call), the probe marks the server down, and
/// once it answers again new connections serve the calls.
async fn stops_answering(backend: Backend, url: String) {
    let e = engine(backend);
    let timeout = Duration::from_secs(2);
    let proxy = Proxy::start(&host_port(&url)).await;
    let proxied = proxy.url(&url);
    // The gateway's own deadline (not the client's) ends the call: the statement timeout.
    let s = TestServer::with(move |mut cfg| {
        cfg.statement_timeout = timeout;
        match backend {
            Backend::Postgres => cfg.postgres_url = Some(proxied),
            Backend::Mysql => cfg.mysql_url = Some(proxied),
            _ => cfg.redis_url = Some(proxied),
        }
        cfg
    })
    .await;
    let db = unique("hung");
    setup(&s.client, &e, &db).await;
    // The client would wait far longer.
    let c = Client::connect_with(
        ClientOptions::new(format!("http://{}", s.addr)).timeout(Duration::from_secs(60)),
    )
    .await
    .expect("connect");
    assert_eq!(read(&c, &e, &db).await.expect("read"), e.expect);
    let mut w = c
        .watch_databases(WatchOptions::default())
        .await
        .expect("watch");

    let closed_before = proxy.closed_by_client();
    // Every connection the gateway has to the server now, the one the next call uses included.
    let before = proxy.open_connections();
    assert!(!before.is_empty());
    proxy.blackhole();
    let started = Instant::now();
    let err = read(&c, &e, &db).await.expect_err("no answer");
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Unavailable),
        "{err:?}"
    );
    assert!(
        started.elapsed() < timeout + Duration::from_secs(2),
        "the call ended near its deadline: {:?}",
        started.elapsed()
    );
    event_for(
        &mut w,
        DatabaseEventType::Unavailable,
        &db,
        Duration::from_secs(10),
    )
    .await;
    // The hung connection was closed by the gateway, not kept.
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.closed_by_client() == closed_before {
        assert!(Instant::now() < deadline, "the hung connection stayed open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    proxy.forward().await;
    event_for(
        &mut w,
        DatabaseEventType::Recovered,
        &db,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(
        read(&c, &e, &db).await.expect("read on a new connection"),
        e.expect
    );
    // None of the connections from before the hang was kept: the call ran on a new one. The
    // proxy sees a close a moment after the gateway drops a connection, so this waits for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let still = proxy.open_connections();
        if before.is_disjoint(&still) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connections from before the hang still open: {:?}",
            before.intersection(&still).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.delete_database(&db).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_postgres_connection_is_cut_at_the_deadline_and_replaced() {
    let Some(url) = postgres_url().await else {
        return;
    };
    stops_answering(Backend::Postgres, url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_mysql_connection_is_cut_at_the_deadline_and_replaced() {
    let Some(url) = mysql_url().await else {
        return;
    };
    stops_answering(Backend::Mysql, url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_connection_is_cut_at_the_deadline_and_replaced() {
    let Some(url) = redis_url().await else {
        return;
    };
    stops_answering(Backend::Redis, url).await;
}

// ---- connections killed by the server ------------------------------------------------------

/// Runs `sql` (a sleep named by `marker`) on `db` in the background, waits until `running`
/// sees it on the server, kills it with `kill`, and returns the call's outcome.
async fn killed_mid_call<F, Fut>(c: &Client, db: &str, sql: String, kill: F) -> dbforge::Error
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let call = tokio::spawn({
        let (c, db) = (c.clone(), db.to_owned());
        async move { c.execute(&db, &sql, &[]).await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !kill().await {
        assert!(Instant::now() < deadline, "the statement never showed up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call ended")
        .expect("task")
        .expect_err("the call's connection was killed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_connection_killed_mid_call_fails_that_call_only() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = serving(Backend::Postgres, url.clone()).await;
    let c = &s.client;
    let e = engine(Backend::Postgres);
    let db = unique("pgkill");
    setup(c, &e, &db).await;
    let marker = unique("kill_marker").replace('-', "_");
    let admin = Arc::new(tokio::sync::Mutex::new(
        sqlx::PgConnection::connect(&url).await.expect("admin"),
    ));
    let kill = || {
        let (admin, marker) = (Arc::clone(&admin), marker.clone());
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
            )
            .bind(&marker)
            .fetch_one(&mut *admin.lock().await)
            .await
            .expect("terminate");
            n > 0
        }
    };
    let err = killed_mid_call(c, &db, format!("SELECT pg_sleep(30) AS {marker}"), kill).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("terminat"), "{err:?}");
    // The killed connection was not kept: the next calls work at once.
    for _ in 0..3 {
        assert_eq!(read(c, &e, &db).await.expect("next call"), e.expect);
    }
    c.delete_database(&db).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_connection_killed_mid_call_fails_that_call_only() {
    let Some(url) = mysql_url().await else {
        return;
    };
    let s = serving(Backend::Mysql, url.clone()).await;
    let c = &s.client;
    let e = engine(Backend::Mysql);
    let db = unique("mykill");
    setup(c, &e, &db).await;
    let marker = unique("kill_marker").replace('-', "_");
    let admin = Arc::new(tokio::sync::Mutex::new(
        sqlx::MySqlConnection::connect(&url).await.expect("admin"),
    ));
    let kill = || {
        let (admin, marker) = (Arc::clone(&admin), marker.clone());
        async move {
            let mut admin = admin.lock().await;
            let ids: Vec<u64> = sqlx::query_scalar(
                "SELECT CAST(ID AS UNSIGNED) FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE CONCAT('%', ?, '%') AND ID <> CONNECTION_ID()",
            )
            .bind(&marker)
            .fetch_all(&mut *admin)
            .await
            .expect("processlist");
            for id in &ids {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL CONNECTION {id}")))
                    .execute(&mut *admin)
                    .await
                    .expect("kill");
            }
            !ids.is_empty()
        }
    };
    let err = killed_mid_call(c, &db, format!("SELECT SLEEP(30) AS {marker}"), kill).await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    for _ in 0..3 {
        assert_eq!(read(c, &e, &db).await.expect("next call"), e.expect);
    }
    c.delete_database(&db).await.expect("delete");
}

/// Redis refuses blocking commands, so no call is long enough to kill in its middle: every
/// connection of the database's ACL user is killed between calls instead. At most the first
/// call after it fails, with UNAVAILABLE, and the next ones work on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connections_killed_by_the_server_are_replaced() {
    let Some(url) = redis_url().await else {
        return;
    };
    let s = serving(Backend::Redis, url.clone()).await;
    let c = &s.client;
    let e = engine(Backend::Redis);
    let db = unique("rkill");
    setup(c, &e, &db).await;
    let marker = unique("kill_marker").replace('-', "_");
    c.execute(&db, "SET", &[Value::Text(marker.clone()), Value::Int(1)])
        .await
        .expect("set");
    let mut admin = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("admin");
    // The stored key shows the database's namespace; its ACL user is the one confined to it.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{marker}"))
        .query_async(&mut admin)
        .await
        .expect("keys");
    let prefix = keys[0].strip_suffix(&marker).expect("namespaced key");
    let users: Vec<String> = redis::cmd("ACL")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .expect("acl list");
    let user = users
        .iter()
        .find(|u| u.contains(&format!("~{prefix}*")))
        .and_then(|u| u.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no user confined to {prefix}: {users:?}"))
        .to_owned();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg(&user)
        .query_async(&mut admin)
        .await
        .expect("client kill");
    assert!(killed > 0, "the database had a connection");
    let mut failures = 0;
    for _ in 0..4 {
        match read(c, &e, &db).await {
            Ok(v) => assert_eq!(v, e.expect),
            Err(err) => {
                assert_eq!(err.code(), Code::Unavailable, "{err:?}");
                failures += 1;
            }
        }
    }
    assert!(failures <= 1, "{failures} calls failed after the kill");
    assert_eq!(read(c, &e, &db).await.expect("works again"), e.expect);
    c.delete_database(&db).await.expect("delete");
}

// ---- statements past their timeout stop on the engine ---------------------------------------

async fn with_timeout(backend: Backend, url: String, timeout: Duration) -> TestServer {
    TestServer::with(move |mut cfg| {
        cfg.statement_timeout = timeout;
        match backend {
            Backend::Postgres => cfg.postgres_url = Some(url),
            Backend::Mysql => cfg.mysql_url = Some(url),
            _ => {}
        }
        cfg
    })
    .await
}

/// Waits until `count` (statements still running on the server) is zero, for at most 3 s.
async fn stops_on_the_server<F, Fut>(count: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = i64>,
{
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let n = count().await;
        if n == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} statements still run on the server after their timeout"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until no statement holding `marker` runs on the PostgreSQL server.
async fn pg_stops_on_the_server(admin: &Arc<tokio::sync::Mutex<sqlx::PgConnection>>, marker: &str) {
    stops_on_the_server(|| {
        let (admin, marker) = (Arc::clone(admin), marker.to_owned());
        async move {
            sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
                 AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
            )
            .bind(marker)
            .fetch_one(&mut *admin.lock().await)
            .await
            .expect("pg_stat_activity")
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_statement_past_its_timeout_is_cancelled_on_the_server() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let s = with_timeout(Backend::Postgres, url.clone(), Duration::from_millis(500)).await;
    let c = &s.client;
    let db = unique("pgslow");
    c.create_database(&db, CreateOptions::default().backend(Backend::Postgres))
        .await
        .expect("create");
    let marker = unique("overdue_marker").replace('-', "_");
    let started = Instant::now();
    let err = assert_code(
        c.execute(&db, &format!("SELECT pg_sleep(30) AS {marker}"), &[])
            .await,
        Code::DeadlineExceeded,
    );
    assert!(started.elapsed() < Duration::from_secs(3), "{err:?}");
    let admin = Arc::new(tokio::sync::Mutex::new(
        sqlx::PgConnection::connect(&url).await.expect("admin"),
    ));
    pg_stops_on_the_server(&admin, &marker).await;
    // The client cannot turn the engine's timeout off: the gateway's deadline still cancels.
    let marker = unique("unset_marker").replace('-', "_");
    let err = c
        .batch(
            &db,
            vec![
                dbforge::Statement::new("SET statement_timeout = 0", vec![]),
                dbforge::Statement::new(format!("SELECT pg_sleep(30) AS {marker}"), vec![]),
            ],
            false,
        )
        .await
        .expect_err("times out");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    pg_stops_on_the_server(&admin, &marker).await;
    c.delete_database(&db).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_statement_past_its_timeout_is_cancelled_on_the_server() {
    let Some(url) = mysql_url().await else {
        return;
    };
    let s = with_timeout(Backend::Mysql, url.clone(), Duration::from_millis(500)).await;
    let c = &s.client;
    let db = unique("myslow");
    c.create_database(&db, CreateOptions::default().backend(Backend::Mysql))
        .await
        .expect("create");
    let marker = unique("overdue_marker").replace('-', "_");
    let started = Instant::now();
    let err = assert_code(
        c.execute(&db, &format!("SELECT SLEEP(30) AS {marker}"), &[])
            .await,
        Code::DeadlineExceeded,
    );
    assert!(started.elapsed() < Duration::from_secs(3), "{err:?}");
    let admin = Arc::new(tokio::sync::Mutex::new(
        sqlx::MySqlConnection::connect(&url).await.expect("admin"),
    ));
    stops_on_the_server(|| {
        let (admin, marker) = (Arc::clone(&admin), marker.clone());
        async move {
            sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.PROCESSLIST \
                 WHERE COMMAND = 'Query' AND INFO LIKE CONCAT('%', ?, '%') \
                 AND ID <> CONNECTION_ID()",
            )
            .bind(marker)
            .fetch_one(&mut *admin.lock().await)
            .await
            .expect("processlist")
        }
    })
    .await;
    c.delete_database(&db).await.expect("delete");
}

/// SQLite runs in the gateway's process: its progress handler interrupts the statement, so the
/// call ends at the timeout and the database answers the next call at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_statement_past_its_timeout_is_interrupted() {
    let s = TestServer::with(|mut cfg| {
        cfg.statement_timeout = Duration::from_millis(300);
        cfg
    })
    .await;
    let c = &s.client;
    let db = s.db("sqslow").await;
    let started = Instant::now();
    assert_code(
        c.execute(
            &db,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
             SELECT count(*) FROM n",
            &[],
        )
        .await,
        Code::DeadlineExceeded,
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let r = c.execute(&db, "SELECT 1", &[]).await.expect("next call");
    assert_eq!(r.rows[0].values(), &[Value::Int(1)]);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}
