//! The Redis backend against a real server: `DBFORGE_TEST_REDIS_URL`, by default the local
//! `redis://127.0.0.1:6379`. When it cannot be reached the tests skip with one line, or fail
//! under `DBFORGE_REQUIRE_BACKENDS=1` (CI).
//!
//! nextest runs every test in its own process, in parallel. The tests that stop the server or
//! remove every unknown namespace take an exclusive file lock; all others hold it shared, so
//! they never overlap with those.

use std::{
    collections::BTreeSet,
    fs::File,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use redis::{RedisConnectionInfo, aio::MultiplexedConnection};

use super::{RedisBackend, namespace::Namespace};
use crate::{
    backend::{
        Backend, Database, Provisioned, ServerBackendConfig, StatementLimits,
        conformance::{self, Hooks},
    },
    core::{
        error::{Error, QueryErrorKind, Result},
        limits::Limits,
        names::DatabaseName,
        value::{RowEvent, Statement, StatementResult, Truncation, Value},
    },
};

const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

tokio::task_local! {
    /// Set by the cluster test (`tests/cluster.rs`) around the cases it runs: the URL of a node
    /// of the Redis Cluster it started, used instead of the standalone server.
    static CLUSTER: String;
}

fn url() -> String {
    CLUSTER.try_with(Clone::clone).unwrap_or_else(|_| {
        std::env::var("DBFORGE_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
    })
}

/// The URL of the node that holds a namespace's keys: on a cluster, its slot's primary.
async fn node_url(ns: &Namespace) -> String {
    key_url(&ns.prefix).await
}

/// The URL of the node that holds `key`: on a cluster, its slot's primary.
async fn key_url(key: &str) -> String {
    if CLUSTER.try_with(|_| ()).is_err() {
        return url();
    }
    let slots = raw(&mut admin().await, &["CLUSTER", "SLOTS"])
        .await
        .expect("CLUSTER SLOTS");
    let topology = super::cluster::Topology::parse(&slots, "127.0.0.1").expect("slot map");
    let node = topology
        .primary_of(super::cluster::slot_of(key.as_bytes()))
        .expect("the slot has a primary");
    format!("redis://{node}")
}

/// An admin connection to the node that holds `ns`'s keys.
async fn admin_for(ns: &Namespace) -> MultiplexedConnection {
    redis::Client::open(node_url(ns).await)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection")
}

fn config(max_connections: u32, idle_timeout: Duration) -> ServerBackendConfig {
    ServerBackendConfig {
        url: url(),
        max_connections,
        per_database_connections: 1,
        min_database_connections: 0,
        demand_half_life: Duration::from_secs(10),
        idle_timeout,
    }
}

/// Holds the cross-process test lock: shared, or exclusive for the tests that disturb others.
struct TestLock(#[allow(dead_code)] File);

async fn lock(exclusive: bool) -> TestLock {
    let path = std::env::temp_dir().join("dbforge-redis-tests.lock");
    tokio::task::spawn_blocking(move || {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .expect("lock file");
        if exclusive {
            file.lock().expect("exclusive lock");
        } else {
            file.lock_shared().expect("shared lock");
        }
        TestLock(file)
    })
    .await
    .expect("lock task")
}

/// This test process's ACL user prefix: `remove_orphans` in one test process never touches
/// the namespaces of another, or of a gateway sharing the server.
fn user_prefix() -> String {
    format!("dbft{}-", std::process::id())
}

/// The backend on the test server, or `None` (after reporting it) when it is unreachable.
async fn backend_with(cfg: ServerBackendConfig) -> Option<Arc<RedisBackend>> {
    let backend = RedisBackend::with_prefix(cfg, &user_prefix())
        .await
        .expect("new never needs the server");
    if !backend.available() {
        conformance::unreachable(
            "redis",
            "the server of DBFORGE_TEST_REDIS_URL (default 127.0.0.1:6379) is unreachable",
        );
        return None;
    }
    Some(Arc::new(backend))
}

async fn backend() -> Option<Arc<RedisBackend>> {
    backend_with(config(16, Duration::from_secs(60))).await
}

fn limits() -> StatementLimits {
    Limits::default().whole_result()
}

fn name(prefix: &str) -> DatabaseName {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    DatabaseName::parse(&format!(
        "rt-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
    .expect("valid name")
}

/// An admin connection of the test's own, to look behind the gateway.
async fn admin() -> MultiplexedConnection {
    redis::Client::open(url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection")
}

async fn raw(c: &mut MultiplexedConnection, args: &[&str]) -> redis::RedisResult<redis::Value> {
    redis::cmd(args[0]).arg(&args[1..]).query_async(c).await
}

/// A scratch database.
struct Db {
    backend: Arc<RedisBackend>,
    p: Provisioned,
    ns: Namespace,
    db: Arc<dyn Database>,
}

impl Db {
    async fn new(backend: &Arc<RedisBackend>, prefix: &str) -> Self {
        let p = backend.locate(&name(prefix));
        backend.create(&p).await.expect("create");
        let db = backend.open(&p).await.expect("open");
        Db {
            backend: Arc::clone(backend),
            ns: Namespace::parse(&backend.user_prefix, &p.locator).expect("locator"),
            p,
            db,
        }
    }

    /// Runs a command line.
    async fn run(&self, line: &str) -> Result<StatementResult> {
        self.db.execute(Statement::new(line), &limits()).await
    }

    /// Runs a command line that must succeed.
    async fn ok(&self, line: &str) -> StatementResult {
        self.run(line)
            .await
            .unwrap_or_else(|e| panic!("{line}: {e:?}"))
    }

    /// Runs a command given as name and typed parameters.
    async fn with(&self, name: &str, params: Vec<Value>) -> Result<StatementResult> {
        self.db
            .execute(
                Statement {
                    sql: name.into(),
                    params,
                },
                &limits(),
            )
            .await
    }

    /// The single value of a one-row, one-column reply.
    async fn value(&self, line: &str) -> Value {
        let r = self.ok(line).await;
        assert_eq!(r.rows.len(), 1, "{line}: {:?}", r.rows);
        r.rows[0][0].clone()
    }

    /// Streams a Query to the end: (batches, rows, summary truncation).
    async fn stream(&self, line: &str, max_rows: u64) -> (usize, Vec<Vec<Value>>, Truncation) {
        let mut s = self
            .db
            .query(Statement::new(line), Limits::default().stream(max_rows))
            .await
            .unwrap_or_else(|e| panic!("{line}: {e:?}"));
        let (mut batches, mut rows, mut done) = (0, Vec::new(), None);
        let mut header = false;
        while let Some(ev) = s.next().await {
            match ev.unwrap_or_else(|e| panic!("{line}: {e:?}")) {
                RowEvent::Columns(_) => {
                    assert!(!header && batches == 0);
                    header = true;
                }
                RowEvent::Rows(b) => {
                    assert!(header && done.is_none());
                    batches += 1;
                    rows.extend(b);
                }
                RowEvent::Encoded(_) => panic!("{line}: encoded rows without an encoder"),
                RowEvent::Done(sum) => {
                    assert_eq!(sum.row_count, rows.len() as u64);
                    done = Some(sum.truncation);
                }
            }
        }
        (batches, rows, done.expect("summary"))
    }

    async fn drop_now(self) {
        drop(self.db);
        self.backend.destroy(&self.p).await.expect("destroy");
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn texts(rows: &[Vec<Value>]) -> BTreeSet<String> {
    rows.iter()
        .map(|r| match &r[0] {
            Value::Text(s) => s.clone(),
            other => panic!("not text: {other:?}"),
        })
        .collect()
}

fn kind_of(r: Result<StatementResult>) -> (QueryErrorKind, Option<String>, String) {
    match r {
        Err(Error::Query {
            kind,
            code,
            message,
            ..
        }) => (kind, code, message),
        other => panic!("expected a query error, got {other:?}"),
    }
}

/// The conformance hooks: only the SQL cases use them, and those do not run for Redis.
fn no_sql_hooks() -> Hooks {
    Hooks {
        slow_query: "unused: Redis runs no SQL".into(),
        series_query: "unused: Redis runs no SQL".into(),
        ping: "unused: Redis runs no SQL".into(),
        slow_setup: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let _lock = lock(false).await;
    let Some(backend) = backend().await else {
        return;
    };
    // The SQL-only cases (the only users of the hooks) do not run for a backend without SQL.
    conformance::run_all(backend.clone(), &no_sql_hooks()).await;
    assert!(backend.dialect().is_none());
    let db = Db::new(&backend, "unsupported").await;
    assert!(matches!(
        db.db.session(limits()).await,
        Err(Error::Unsupported {
            operation: "Session",
            backend: "redis"
        })
    ));
    let caps = backend.capabilities();
    assert!(caps.key_value && caps.transactions && caps.typed_params);
    assert!(!caps.sql && !caps.sessions && !caps.table_service && !caps.last_insert_id);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_needs_no_server() {
    // Port 1 on loopback: nothing listens there, so every connection is refused at once.
    let backend = RedisBackend::new(ServerBackendConfig {
        url: "redis://127.0.0.1:1".into(),
        ..config(4, Duration::from_secs(60))
    })
    .await
    .expect("new succeeds while the server is down");
    assert!(!backend.available());
    let p = backend.locate(&name("down"));
    assert!(matches!(
        backend.create(&p).await,
        Err(Error::Unavailable(_))
    ));
    assert!(matches!(backend.open(&p).await, Err(Error::Unavailable(_))));
    assert_eq!(backend.remove_orphans(&[]).await.expect("skipped"), 0);
    match RedisBackend::new(ServerBackendConfig {
        url: "redis://127.0.0.1:6379/3".into(),
        ..config(4, Duration::from_secs(60))
    })
    .await
    {
        Err(Error::InvalidArgument {
            field: "redis_url", ..
        }) => {}
        other => panic!("a numbered database: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_mapped_into_the_namespace() {
    let _lock = lock(false).await;
    if let Some(backend) = backend().await {
        keys_are_mapped_into_the_namespace_on(&backend).await;
    }
}

async fn keys_are_mapped_into_the_namespace_on(backend: &Arc<RedisBackend>) {
    let db = Db::new(backend, "keys").await;
    let p = db.ns.prefix.clone();
    let mut admin = admin_for(&db.ns).await;

    assert_eq!(db.value("SET a 1").await, text("OK"));
    assert_eq!(db.value("GET a").await, text("1"));
    let behind: Option<String> = redis::cmd("GET")
        .arg(format!("{p}a"))
        .query_async(&mut admin)
        .await
        .expect("admin get");
    assert_eq!(behind.as_deref(), Some("1"), "stored under the prefix");
    let mut bare_node = redis::Client::open(key_url("a").await)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection");
    let bare: i64 = redis::cmd("EXISTS")
        .arg("a")
        .query_async(&mut bare_node)
        .await
        .expect("exists");
    assert_eq!(bare, 0, "never under the client's own name");

    let r = db
        .with(
            "MSET",
            vec![text("k1"), text("v1"), text("k2"), Value::Int(2)],
        )
        .await
        .expect("mset");
    assert_eq!(r.rows, vec![vec![text("OK")]]);
    let r = db.ok("MGET k1 k2 missing").await;
    assert_eq!(r.columns[0].name, "value");
    assert_eq!(
        r.rows,
        vec![vec![text("v1")], vec![text("2")], vec![Value::Null]]
    );
    assert_eq!(db.value("EXISTS k1 k2 missing a").await, Value::Int(3));
    assert_eq!(db.value("DEL k1 k2").await, Value::Int(2));
    assert_eq!(db.value("EXISTS k1 k2").await, Value::Int(0));

    assert_eq!(db.value("HSET h f1 v1 f2 2").await, Value::Int(2));
    let r = db.ok("HGETALL h").await;
    let names: Vec<_> = r.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["field", "value"]);
    let mut pairs = r.rows.clone();
    pairs.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        pairs,
        vec![vec![text("f1"), text("v1")], vec![text("f2"), text("2")]]
    );

    assert_eq!(db.value("LPUSH l a b c").await, Value::Int(3));
    assert_eq!(
        db.ok("LRANGE l 0 -1").await.rows,
        vec![vec![text("c")], vec![text("b")], vec![text("a")]]
    );
    let r = db.ok("LMPOP 1 l LEFT").await;
    assert_eq!(
        r.rows,
        vec![vec![text("l")], vec![Value::Array(vec![text("c")])]],
        "the popped list's name comes back without the prefix"
    );

    assert_eq!(db.value("ZADD z 1 one 2.5 two").await, Value::Int(2));
    assert_eq!(
        db.ok("ZRANGE z 0 -1 WITHSCORES").await.rows,
        vec![
            vec![Value::Array(vec![text("one"), Value::Float(1.0)])],
            vec![Value::Array(vec![text("two"), Value::Float(2.5)])]
        ]
    );
    assert_eq!(db.value("ZSCORE z two").await, Value::Float(2.5));
    assert_eq!(db.value("ZUNIONSTORE zu 2 z z").await, Value::Int(2));
    assert_eq!(db.value("ZSCORE zu two").await, Value::Float(5.0));

    assert_eq!(db.value("EXPIRE a 100").await, Value::Int(1));
    match db.value("TTL a").await {
        Value::Int(t) => assert!((1..=100).contains(&t), "ttl {t}"),
        other => panic!("ttl is {other:?}"),
    }
    assert_eq!(db.value("TYPE h").await, text("hash"));

    db.with("SET", vec![text("bin"), Value::Bytes(vec![0, 159, 255])])
        .await
        .expect("set bytes");
    assert_eq!(db.value("GET bin").await, Value::Bytes(vec![0, 159, 255]));

    db.ok("XADD s 1-1 f v").await;
    let r = db.ok("XREAD COUNT 5 STREAMS s 0").await;
    assert_eq!(r.columns[0].name, "field");
    assert_eq!(
        r.rows[0][0],
        text("s"),
        "stream names come back without the prefix"
    );

    db.ok("RPUSH nums 3 1 2").await;
    assert_eq!(
        db.ok("SORT nums").await.rows,
        vec![vec![text("1")], vec![text("2")], vec![text("3")]]
    );
    assert_eq!(db.value("SORT nums DESC STORE sorted").await, Value::Int(3));
    assert_eq!(
        db.ok("LRANGE sorted 0 -1").await.rows,
        vec![vec![text("3")], vec![text("2")], vec![text("1")]]
    );
    db.ok("RENAME sorted sorted2").await;
    let moved: i64 = redis::cmd("EXISTS")
        .arg(format!("{p}sorted2"))
        .query_async(&mut admin)
        .await
        .expect("exists");
    assert_eq!(moved, 1);

    let expected: BTreeSet<String> = ["a", "bin", "h", "l", "nums", "s", "sorted2", "z", "zu"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(texts(&db.ok("KEYS *").await.rows), expected);
    assert_eq!(
        texts(&db.ok("KEYS z*").await.rows),
        BTreeSet::from(["z".to_owned(), "zu".to_owned()])
    );
    let (_, rows, _) = db.stream("SCAN 0", 0).await;
    assert_eq!(texts(&rows), expected);
    let (_, rows, _) = db.stream("SCAN 0 MATCH ?u* TYPE zset", 0).await;
    assert_eq!(texts(&rows), BTreeSet::from(["zu".to_owned()]));
    // Through Execute a cursor command is one page: the next cursor, then the keys.
    let page = db.ok("SCAN 0 COUNT 10").await;
    assert_eq!(page.rows.len(), 2);
    assert!(matches!(page.rows[0][0], Value::Text(_)));
    match &page.rows[1][0] {
        Value::Array(keys) => assert!(
            keys.iter()
                .all(|k| matches!(k, Value::Text(s) if expected.contains(s))),
            "{keys:?}"
        ),
        other => panic!("page is {other:?}"),
    }

    let (k, code, _) = kind_of(db.run("LPUSH h x").await);
    assert_eq!(
        (k, code.as_deref()),
        (QueryErrorKind::DataType, Some("WRONGTYPE"))
    );
    let (k, _, _) = kind_of(db.run("INCR bin").await);
    assert_eq!(k, QueryErrorKind::DataType);
    let (k, _, _) = kind_of(db.run("GET").await);
    assert_eq!(k, QueryErrorKind::Syntax);
    let (k, _, msg) = kind_of(db.run("NOSUCHCOMMAND x").await);
    assert_eq!(k, QueryErrorKind::Syntax, "{msg}");
    let (k, _, _) = kind_of(db.run("ZUNIONSTORE d 3 a b").await);
    assert_eq!(k, QueryErrorKind::Syntax, "numkeys beyond the arguments");
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_are_isolated() {
    let _lock = lock(false).await;
    if let Some(backend) = backend().await {
        databases_are_isolated_on(&backend).await;
    }
}

async fn databases_are_isolated_on(backend: &Arc<RedisBackend>) {
    let a = Db::new(backend, "iso-a").await;
    let b = Db::new(backend, "iso-b").await;
    a.ok("SET shared from-a").await;
    b.ok("SET shared from-b").await;
    a.ok("SET only-a 1").await;
    assert_eq!(a.value("GET shared").await, text("from-a"));
    assert_eq!(b.value("GET shared").await, text("from-b"));
    assert_eq!(b.value("GET only-a").await, Value::Null);
    assert_eq!(b.value("EXISTS only-a").await, Value::Int(0));
    assert_eq!(
        texts(&a.ok("KEYS *").await.rows),
        BTreeSet::from(["only-a".to_owned(), "shared".to_owned()])
    );
    assert_eq!(
        texts(&b.ok("KEYS *").await.rows),
        BTreeSet::from(["shared".to_owned()])
    );
    let (_, rows, _) = b.stream("SCAN 0", 0).await;
    assert_eq!(texts(&rows), BTreeSet::from(["shared".to_owned()]));
    let (_, rows, _) = b.stream("KEYS *", 0).await;
    assert_eq!(texts(&rows), BTreeSet::from(["shared".to_owned()]));
    // A's full key name, written as a key of B, is just another key of B.
    let a_full = format!("{}only-a", a.ns.prefix);
    assert_eq!(
        b.with("GET", vec![Value::Text(a_full)])
            .await
            .expect("get")
            .rows,
        vec![vec![Value::Null]]
    );
    b.ok("DEL shared").await;
    assert_eq!(a.value("GET shared").await, text("from-a"));
    a.drop_now().await;
    b.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_commands_are_forbidden() {
    let _lock = lock(false).await;
    if let Some(backend) = backend().await {
        refused_commands_are_forbidden_on(&backend).await;
    }
}

async fn refused_commands_are_forbidden_on(backend: &Arc<RedisBackend>) {
    let db = Db::new(backend, "refused").await;
    db.ok("SET keep 1").await;
    db.ok("RPUSH l 1").await;
    for line in [
        "FLUSHALL",
        "FLUSHDB",
        "CONFIG GET *",
        "CONFIG SET maxmemory 1",
        "DEBUG SLEEP 0",
        "SHUTDOWN NOSAVE",
        "MODULE LIST",
        "SCRIPT LOAD 'return 1'",
        "SCRIPT FLUSH",
        "EVAL 'return 1' 0",
        "EVAL \"return redis.call('GET', KEYS[1])\" 1 keep",
        "EVALSHA e0e1f9fabfc9d4800c877a703b823ac0578ff8db 0",
        "FCALL f 0",
        "FUNCTION LIST",
        "ACL WHOAMI",
        "ACL SETUSER x on",
        "CLIENT KILL ID 1",
        "CLIENT LIST",
        "SELECT 1",
        "MIGRATE 127.0.0.1 6380 keep 0 1000",
        "SWAPDB 0 1",
        "MOVE keep 1",
        "COPY keep other DB 1",
        "REPLICAOF NO ONE",
        "SAVE",
        "BGSAVE",
        "MONITOR",
        "SUBSCRIBE ch",
        "PSUBSCRIBE *",
        "PUBLISH ch hi",
        "INFO",
        "DBSIZE",
        "RANDOMKEY",
        "BLPOP l 1",
        "BRPOP l 1",
        "BLMOVE l l2 LEFT LEFT 1",
        "BZPOPMIN z 1",
        "XREAD BLOCK 10 STREAMS s $",
        "WAIT 0 0",
        "HELLO 2",
        "SORT l BY weight_*",
        "SORT l GET other_*",
        "SORT l GET #",
        "RESTORE k 0 x",
        "LASTSAVE",
        "LATENCY DOCTOR",
        "SLOWLOG GET",
        "OBJECT HELP",
    ] {
        if line == "OBJECT HELP" {
            // Allowed: it names no key and changes nothing.
            db.ok(line).await;
            continue;
        }
        let (kind, code, message) = kind_of(db.run(line).await);
        assert_eq!(kind, QueryErrorKind::Forbidden, "{line}: {message}");
        assert_eq!(code.as_deref(), Some("NOPERM"), "{line}");
        // The argument-list form is refused the same way.
        let mut words = line.split(' ');
        let head = words.next().unwrap_or_default();
        let params = words.map(|w| Value::Text(w.into())).collect();
        let (kind, _, _) = kind_of(db.with(head, params).await);
        assert_eq!(kind, QueryErrorKind::Forbidden, "{line} as params");
    }
    match db
        .db
        .query(Statement::new("FLUSHALL"), Limits::default().stream(0))
        .await
    {
        Err(Error::Query {
            kind: QueryErrorKind::Forbidden,
            ..
        }) => {}
        Err(other) => panic!("FLUSHALL through Query: {other:?}"),
        Ok(_) => panic!("FLUSHALL through Query was accepted"),
    }
    for line in ["MULTI", "EXEC", "DISCARD", "WATCH keep", "UNWATCH"] {
        match db.run(line).await {
            Err(Error::InvalidArgument { field: "sql", .. }) => {}
            other => panic!("{line}: {other:?}"),
        }
    }
    assert_eq!(db.value("GET keep").await, text("1"), "nothing was flushed");
    assert_eq!(db.value("OBJECT ENCODING keep").await, text("int"));
    assert_eq!(db.value("SORT l BY nosort").await, text("1"));
    db.drop_now().await;
}

/// Connects as a database's ACL user directly, bypassing the gateway.
async fn as_user(ns: &Namespace) -> MultiplexedConnection {
    let info = redis::IntoConnectionInfo::into_connection_info(node_url(ns).await.as_str())
        .expect("url")
        .set_redis_settings(
            RedisConnectionInfo::default()
                .set_username(&ns.user)
                .set_password(&ns.password),
        );
    redis::Client::open(info)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect as the database's user")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_user_refuses_what_slips_through() {
    let _lock = lock(false).await;
    let Some(backend) = backend().await else {
        return;
    };
    let a = Db::new(&backend, "acl-a").await;
    let b = Db::new(&backend, "acl-b").await;
    b.ok("SET secret s").await;
    let mut user = as_user(&a.ns).await;
    let own = format!("{}k", a.ns.prefix);
    raw(&mut user, &["SET", &own, "1"])
        .await
        .expect("its own prefix is writable");
    let other = format!("{}secret", b.ns.prefix);
    let refused = [
        vec!["SET", "unprefixed", "1"],
        vec!["GET", "unprefixed"],
        vec!["GET", other.as_str()],
        vec!["DEL", other.as_str()],
        vec!["MSET", own.as_str(), "1", "unprefixed", "2"],
        vec!["COPY", own.as_str(), "unprefixed"],
        vec!["KEYS", "*"],
        vec!["CONFIG", "GET", "*"],
        vec!["DBSIZE"],
        vec!["RANDOMKEY"],
        vec!["MOVE", own.as_str(), "1"],
        vec!["SELECT", "1"],
        vec!["EVAL", "return 1", "0"],
        vec!["SCRIPT", "LOAD", "return 1"],
        vec!["FUNCTION", "LIST"],
        vec!["CLIENT", "LIST"],
        vec!["INFO"],
        vec!["PUBLISH", "ch", "x"],
        vec!["BLPOP", own.as_str(), "1"],
        vec!["WATCH", own.as_str()],
        vec!["ACL", "WHOAMI"],
        vec!["SORT", own.as_str(), "BY", "x_*"],
    ];
    for cmd in refused {
        let err = raw(&mut user, &cmd).await.expect_err(&cmd.join(" "));
        let detail = format!(
            "{} {}",
            err.code().unwrap_or_default(),
            err.detail().unwrap_or_default()
        );
        assert!(
            err.code() == Some("NOPERM") || detail.contains("ACL permissions"),
            "{cmd:?}: {detail}"
        );
    }
    // Commands that would take the server down are checked with ACL DRYRUN, which asks the
    // same permission question without running them.
    let mut admin = admin().await;
    for cmd in [
        vec!["FLUSHALL"],
        vec!["FLUSHDB"],
        vec!["SHUTDOWN", "NOSAVE"],
        vec!["DEBUG", "SLEEP", "0"],
        vec!["SAVE"],
        vec!["BGSAVE"],
        vec!["REPLICAOF", "NO", "ONE"],
        vec!["SWAPDB", "0", "1"],
        vec!["MIGRATE", "127.0.0.1", "6380", own.as_str(), "0", "1000"],
        vec!["MONITOR"],
        vec!["CLIENT", "KILL", "ID", "1"],
        vec!["MODULE", "LOAD", "/tmp/x.so"],
        vec!["ACL", "SETUSER", a.ns.user.as_str(), "+@all"],
    ] {
        let mut dry = vec!["ACL", "DRYRUN", a.ns.user.as_str()];
        dry.extend(&cmd);
        let answer = raw(&mut admin, &dry).await.expect("dryrun");
        assert_ne!(answer, redis::Value::Okay, "{cmd:?} must be refused");
    }
    let mut dry = vec!["ACL", "DRYRUN", a.ns.user.as_str(), "GET"];
    dry.push(own.as_str());
    assert_eq!(
        raw(&mut admin, &dry).await.expect("dryrun"),
        redis::Value::Okay,
        "while its own keys are allowed"
    );
    assert_eq!(b.value("GET secret").await, text("s"));
    a.drop_now().await;
    b.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_lines_are_split_with_quotes() {
    let _lock = lock(false).await;
    if let Some(backend) = backend().await {
        command_lines_are_split_with_quotes_on(&backend).await;
    }
}

async fn command_lines_are_split_with_quotes_on(backend: &Arc<RedisBackend>) {
    let db = Db::new(backend, "split").await;
    db.ok(r#"SET "my key" "hello \"quoted\" world""#).await;
    assert_eq!(
        db.with("GET", vec![text("my key")])
            .await
            .expect("get")
            .rows,
        vec![vec![text(r#"hello "quoted" world"#)]]
    );
    db.ok("HSET 'user:1' name 'Ada Lovelace' note \"it's\"")
        .await;
    assert_eq!(db.value("HGET user:1 name").await, text("Ada Lovelace"));
    assert_eq!(db.value("HGET user:1 note").await, text("it's"));
    db.ok("SET #tag #value").await;
    assert_eq!(db.value("GET '#tag'").await, text("#value"));
    // Words of `sql` and `params` combine: the line first, then the parameters.
    db.with("HSET user:2", vec![text("age"), Value::Int(36)])
        .await
        .expect("hset");
    assert_eq!(db.value("HGET user:2 age").await, text("36"));
    assert_eq!(db.value("SET héllo ✓").await, text("OK"));
    assert_eq!(db.value("GET héllo").await, text("✓"));
    match db.run("SET 'unterminated v").await {
        Err(Error::InvalidArgument { field: "sql", .. }) => {}
        other => panic!("unterminated quote: {other:?}"),
    }
    match db.with("SET", vec![text("k"), Value::Null]).await {
        Err(Error::InvalidArgument {
            field: "params", ..
        }) => {}
        other => panic!("null param: {other:?}"),
    }
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_and_transactions() {
    let _lock = lock(false).await;
    if let Some(backend) = backend().await {
        pipelines_and_transactions_on(&backend).await;
    }
}

async fn pipelines_and_transactions_on(backend: &Arc<RedisBackend>) {
    let db = Db::new(backend, "batch").await;
    let batch = |lines: &[&str], tx: bool| {
        let stmts = lines.iter().map(|l| Statement::new(*l)).collect();
        let db = Arc::clone(&db.db);
        async move { db.batch(stmts, tx, &limits()).await }
    };
    let index = |r: Result<Vec<StatementResult>>| match r {
        Err(Error::Query {
            kind,
            statement_index: Some(i),
            message,
            ..
        }) => (kind, i, message),
        other => panic!("expected a statement error, got {other:?}"),
    };

    let r = batch(&["SET a 1", "INCR a", "GET a"], false)
        .await
        .expect("pipeline");
    let firsts: Vec<_> = r.iter().map(|s| s.rows[0][0].clone()).collect();
    assert_eq!(firsts, [text("OK"), Value::Int(2), text("2")]);

    // A runtime failure: pipelined commands after it still ran, and the message says so.
    let (kind, i, message) = index(batch(&["SET b 1", "LPUSH b x", "SET c 3"], false).await);
    assert_eq!((kind, i), (QueryErrorKind::DataType, 1));
    assert!(
        message.contains("statement 1") && message.contains("ran"),
        "{message}"
    );
    assert_eq!(db.value("GET c").await, text("3"));

    // A refused command stops the batch there: earlier statements ran, later ones did not.
    let (kind, i, _) = index(batch(&["SET d 1", "FLUSHALL", "SET e 1"], false).await);
    assert_eq!((kind, i), (QueryErrorKind::Forbidden, 1));
    assert_eq!(db.value("GET d").await, text("1"));
    assert_eq!(db.value("GET e").await, Value::Null);

    let r = batch(&["SET t 1", "INCRBY t 5", "GET t"], true)
        .await
        .expect("transaction");
    assert_eq!(r[1].rows[0][0], Value::Int(6));
    assert_eq!(r[2].rows[0][0], text("6"));

    // Refused or malformed before execution: nothing is applied.
    let (kind, i, _) = index(batch(&["SET x 1", "INCR x", "FLUSHALL"], true).await);
    assert_eq!((kind, i), (QueryErrorKind::Forbidden, 2));
    let (kind, i, _) = index(batch(&["SET x 1", "GET"], true).await);
    assert_eq!((kind, i), (QueryErrorKind::Syntax, 1));
    assert_eq!(db.value("EXISTS x").await, Value::Int(0), "nothing applied");

    // A command failing while EXEC runs: Redis applies the others, and the error says so.
    let (kind, i, message) = index(batch(&["SET y 1", "LPUSH y a", "SET z 1"], true).await);
    assert_eq!((kind, i), (QueryErrorKind::DataType, 1));
    assert!(message.contains("does not roll back"), "{message}");
    assert_eq!(db.value("GET z").await, text("1"));

    match batch(&["SET k 1", "MULTI"], false).await {
        Err(Error::InvalidArgument { reason, .. }) => {
            assert!(reason.starts_with("statement 1"), "{reason}")
        }
        other => panic!("MULTI in a batch: {other:?}"),
    }
    match batch(&["KEYS *"], true).await {
        Err(Error::InvalidArgument { reason, .. }) => assert!(reason.contains("KEYS")),
        other => panic!("KEYS in a batch: {other:?}"),
    }
    assert_eq!(batch(&[], true).await.expect("empty").len(), 0);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_streams_page_by_page() {
    let _lock = lock(false).await;
    if let Some(backend) = backend().await {
        scan_streams_page_by_page_on(&backend).await;
    }
}

async fn scan_streams_page_by_page_on(backend: &Arc<RedisBackend>) {
    let db = Db::new(backend, "scan").await;
    let other = Db::new(backend, "scan-other").await;
    other.ok("SET k1 not-mine").await;
    let n = 50_000;
    let stmts: Vec<Statement> = (0..n)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|chunk| Statement {
            sql: "MSET".into(),
            params: chunk
                .iter()
                .flat_map(|i| [text(&format!("k{i}")), Value::Int(*i)])
                .collect(),
        })
        .collect();
    db.db
        .batch(stmts, false, &limits())
        .await
        .expect("50 000 keys");
    let (batches, rows, truncation) = db.stream("SCAN 0", 0).await;
    assert_eq!(truncation, Truncation::None);
    let keys = texts(&rows);
    assert_eq!(keys.len(), n as usize, "every key once");
    assert!(keys.contains("k0") && keys.contains("k49999"));
    assert!(batches > 1, "streamed in {batches} batch(es)");

    let (_, rows, _) = db.stream("SCAN 0 MATCH k1* COUNT 500", 0).await;
    assert_eq!(texts(&rows).len(), 11_111);
    let (_, rows, truncation) = db.stream("SCAN 0", 10).await;
    assert_eq!((rows.len(), truncation), (10, Truncation::RowLimit));
    let (_, rows, _) = db.stream("KEYS k4999*", 0).await;
    assert_eq!(texts(&rows).len(), 11);
    match db.run("KEYS *").await {
        Err(Error::LimitExceeded(_)) => {}
        other => panic!("50 000 keys inline: {other:?}"),
    }

    db.ok("HSET h a 1 b 2 c 3").await;
    let (_, rows, _) = db.stream("HSCAN h 0", 0).await;
    let mut rows = rows;
    rows.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        rows,
        vec![
            vec![text("a"), text("1")],
            vec![text("b"), text("2")],
            vec![text("c"), text("3")]
        ]
    );
    db.ok("ZADD z 1.5 m").await;
    let (_, rows, _) = db.stream("ZSCAN z 0", 0).await;
    assert_eq!(rows, vec![vec![text("m"), Value::Float(1.5)]]);
    db.ok("SADD s x").await;
    let (_, rows, _) = db.stream("SSCAN s 0 MATCH x*", 0).await;
    assert_eq!(rows, vec![vec![text("x")]]);
    // An ordinary command through Query: header, rows, summary.
    let (_, rows, _) = db.stream("MGET k1 k2", 0).await;
    assert_eq!(rows, vec![vec![text("1")], vec![text("2")]]);

    // With an encoder, cursor pages and whole replies come encoded, in the same batches.
    let plain = StatementLimits {
        batch_rows: 100,
        ..Limits::default().stream(0)
    };
    let encoded = StatementLimits {
        encoder: Some(Arc::new(conformance::DebugLines)),
        ..plain.clone()
    };
    for line in ["SCAN 0 MATCH k1* COUNT 500", "MGET k1 k2"] {
        let read = |limits: StatementLimits| async {
            conformance::read_batches(db.db.query(Statement::new(line), limits).await.expect(line))
                .await
        };
        let (want, got) = (read(plain.clone()).await, read(encoded.clone()).await);
        assert!(!want.encoded && got.encoded, "{line}");
        assert_eq!(got.batches, want.batches, "{line}");
        assert_eq!(got.summary.row_count, want.summary.row_count, "{line}");
    }

    db.drop_now().await;
    other.drop_now().await;
}

/// Keys under a prefix, and whether the user exists, seen by the admin.
async fn leftovers(admin: &mut MultiplexedConnection, ns: &Namespace) -> (usize, bool) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", ns.prefix))
        .query_async(admin)
        .await
        .expect("keys");
    let user: redis::Value = redis::cmd("ACL")
        .arg("GETUSER")
        .arg(&ns.user)
        .query_async(admin)
        .await
        .expect("getuser");
    (keys.len(), user != redis::Value::Nil)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_removes_keys_and_user() {
    let _lock = lock(false).await;
    if let Some(backend) = backend().await {
        destroy_removes_keys_and_user_on(&backend).await;
    }
}

async fn destroy_removes_keys_and_user_on(backend: &Arc<RedisBackend>) {
    let db = Db::new(backend, "destroy").await;
    let mut admin = admin_for(&db.ns).await;
    let stmts = (0..5)
        .map(|c| Statement {
            sql: "MSET".into(),
            params: (0..500)
                .flat_map(|i| [text(&format!("k{c}-{i}")), text("v")])
                .collect(),
        })
        .collect();
    db.db.batch(stmts, false, &limits()).await.expect("keys");
    assert_eq!(leftovers(&mut admin, &db.ns).await, (2500, true));
    let (ns, p, handle) = (db.ns.clone(), db.p.clone(), Arc::clone(&db.db));
    backend.destroy(&p).await.expect("destroy");
    assert_eq!(leftovers(&mut admin, &ns).await, (0, false));
    backend.destroy(&p).await.expect("destroy is idempotent");
    // A handle still held after the prune fails, and does not bring the user back.
    assert!(
        handle
            .execute(Statement::new("GET k0-0"), &limits())
            .await
            .is_err()
    );
    assert_eq!(leftovers(&mut admin, &ns).await, (0, false));

    // A spawn that got as far as some keys but never made its user is cleaned up too.
    let half = backend.locate(&name("half"));
    let half_ns = Namespace::parse(&user_prefix(), &half.locator).expect("locator");
    let mut admin = admin_for(&half_ns).await;
    raw(&mut admin, &["SET", &format!("{}x", half_ns.prefix), "1"])
        .await
        .expect("set");
    backend
        .destroy(&half)
        .await
        .expect("destroy a half-made spawn");
    assert_eq!(leftovers(&mut admin, &half_ns).await, (0, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_and_closed_when_idle() {
    let _lock = lock(false).await;
    // Three connections in all: the admin one and two for databases.
    let Some(backend) = backend_with(config(3, Duration::from_millis(300))).await else {
        return;
    };
    let dbs = [
        Db::new(&backend, "cap-a").await,
        Db::new(&backend, "cap-b").await,
        Db::new(&backend, "cap-c").await,
    ];
    for round in 0..2 {
        for (i, db) in dbs.iter().enumerate() {
            db.ok(&format!("SET round {round}-{i}")).await;
            assert!(
                backend.open_connections() <= 2,
                "{}",
                backend.open_connections()
            );
        }
    }
    for (i, db) in dbs.iter().enumerate() {
        assert_eq!(db.value("GET round").await, text(&format!("1-{i}")));
    }
    let started = Instant::now();
    while backend.open_connections() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "idle connections were not closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for db in dbs {
        db.drop_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_removed_and_known_databases_kept() {
    // Exclusive: remove_orphans deletes every namespace of its prefix it is not told about.
    let _lock = lock(true).await;
    let Some(backend) = backend().await else {
        return;
    };
    let mut admin = admin().await;
    let kept = Db::new(&backend, "kept").await;
    kept.ok("SET k 1").await;
    let orphan = Db::new(&backend, "orphan").await;
    orphan.ok("SET k 1").await;
    // Another gateway's database on the same server, under another prefix.
    let neighbour = RedisBackend::with_prefix(
        config(4, Duration::from_secs(60)),
        &format!("dbft{}n-", std::process::id()),
    )
    .await
    .map(Arc::new)
    .expect("neighbour");
    let theirs = Db::new(&neighbour, "theirs").await;
    theirs.ok("SET k 1").await;
    // Keys left without their user (a server restarted without an ACL file).
    let userless =
        Namespace::parse(&user_prefix(), &backend.locate(&name("userless")).locator).expect("ns");
    raw(&mut admin, &["SET", &format!("{}k", userless.prefix), "1"])
        .await
        .expect("set");
    // An operator's user that merely starts like ours.
    let operator_user = format!("{}operator", user_prefix());
    raw(&mut admin, &["ACL", "SETUSER", &operator_user, "off"])
        .await
        .expect("setuser");

    let removed = backend
        .remove_orphans(std::slice::from_ref(&kept.p))
        .await
        .expect("remove orphans");
    assert!(removed >= 2, "removed {removed}");
    assert_eq!(leftovers(&mut admin, &orphan.ns).await, (0, false));
    assert_eq!(leftovers(&mut admin, &userless).await.0, 0);
    assert_eq!(leftovers(&mut admin, &kept.ns).await, (1, true));
    let operator: redis::Value = raw(&mut admin, &["ACL", "GETUSER", &operator_user])
        .await
        .expect("getuser");
    assert_ne!(operator, redis::Value::Nil, "not ours: kept");
    raw(&mut admin, &["ACL", "DELUSER", &operator_user])
        .await
        .expect("deluser");
    assert_eq!(kept.value("GET k").await, text("1"));
    assert_eq!(
        theirs.value("GET k").await,
        text("1"),
        "another prefix is not ours to sweep"
    );
    kept.drop_now().await;
    theirs.drop_now().await;
}

/// The server's port when it is a local one this test may restart.
fn local_port() -> Option<u16> {
    let info = redis::IntoConnectionInfo::into_connection_info(url().as_str()).ok()?;
    match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) if host == "127.0.0.1" || host == "localhost" => {
            Some(*port)
        }
        _ => None,
    }
}

fn ping(port: u16) -> bool {
    std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "ping"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
}

fn start_redis(port: u16) {
    let _ = std::fs::create_dir_all("/var/lib/redis");
    let _ = std::fs::create_dir_all("/var/log/redis");
    let status = std::process::Command::new("redis-server")
        .args(["--daemonize", "yes", "--bind", "127.0.0.1", "-::1"])
        .args(["--port", &port.to_string()])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
        ])
        .args(["--logfile", "/var/log/redis/ci.log"])
        .status()
        .expect("redis-server");
    assert!(status.success(), "redis-server failed to start");
    let started = Instant::now();
    while !ping(port) && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts Redis again when the test ends, even when it fails.
struct RestoreRedis(u16);

impl Drop for RestoreRedis {
    fn drop(&mut self) {
        if !ping(self.0) {
            start_redis(self.0);
        }
    }
}

async fn wait_for(backend: &RedisBackend, up: bool, within: Duration) -> Duration {
    let started = Instant::now();
    while backend.available() != up {
        assert!(
            started.elapsed() < within,
            "available() did not become {up} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_outage_and_recovery() {
    // Exclusive: this test pauses and stops the server.
    let _lock = lock(true).await;
    let Some(backend) = backend().await else {
        return;
    };
    let db = Db::new(&backend, "outage").await;
    db.ok("SET a 1").await;
    let mut admin = admin().await;

    // A command stuck behind CLIENT PAUSE times out, and its connection is replaced: a read
    // right after it does not queue behind the stuck write.
    raw(&mut admin, &["CLIENT", "PAUSE", "1500", "WRITE"])
        .await
        .expect("pause");
    let short = StatementLimits {
        timeout: Duration::from_millis(200),
        ..limits()
    };
    let started = Instant::now();
    let err = db
        .db
        .execute(Statement::new("SET b 1"), &short)
        .await
        .expect_err("times out");
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    let started = Instant::now();
    assert_eq!(db.value("GET a").await, text("1"));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the read waited {:?}",
        started.elapsed()
    );
    raw(&mut admin, &["CLIENT", "UNPAUSE"])
        .await
        .expect("unpause");
    assert!(backend.available(), "a paused write is not an outage");

    let Some(port) = local_port() else {
        eprintln!("skipping the outage scenario: the test server is not local");
        db.drop_now().await;
        return;
    };
    let restore = RestoreRedis(port);
    let down = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "shutdown", "nosave"])
        .output()
        .expect("redis-cli shutdown");
    assert!(!ping(port), "shutdown: {down:?}");
    let noticed = wait_for(&backend, false, Duration::from_secs(3)).await;
    eprintln!("outage noticed after {noticed:?}");
    let started = Instant::now();
    match db.run("GET a").await {
        Err(Error::Unavailable(_)) => {}
        other => panic!("while down: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(100), "fails fast");
    assert!(matches!(
        backend.open(&db.p).await,
        Err(Error::Unavailable(_))
    ));

    start_redis(port);
    let back = wait_for(&backend, true, Duration::from_secs(5)).await;
    eprintln!("recovery noticed after {back:?}");
    // The restarted server lost its data and ACL users (no persistence): the user is re-created
    // from the locator on the next connection, without restarting the gateway.
    assert_eq!(db.value("GET a").await, Value::Null);
    assert_eq!(db.value("SET a 2").await, text("OK"));
    assert_eq!(db.value("GET a").await, text("2"));
    let fresh = Db::new(&backend, "after").await;
    fresh.ok("SET x 1").await;
    assert_eq!(
        backend
            .size_bytes(&fresh.p)
            .await
            .expect("size")
            .map(|s| s > 0),
        Some(true),
        "a small namespace has a measured size"
    );
    fresh.ok("DEL x").await;
    assert_eq!(backend.size_bytes(&fresh.p).await.expect("size"), Some(0));
    fresh.drop_now().await;
    db.drop_now().await;
    drop(restore);
}

// ---------------------------------------------------------------------------------------------
// DumpDatabase, ImportNdjson and GetSchema (transfer.rs)

/// What a namespace holds, read by the admin behind the gateway: per user key its type, its
/// contents in a canonical form (sets and hashes sorted) and its PTTL.
async fn contents(
    admin: &mut MultiplexedConnection,
    ns: &Namespace,
) -> std::collections::BTreeMap<Vec<u8>, (String, String, i64)> {
    let mut out = std::collections::BTreeMap::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}*", ns.prefix))
            .arg("COUNT")
            .arg(1000)
            .query_async(admin)
            .await
            .expect("scan");
        for k in keys {
            let t: String = redis::cmd("TYPE")
                .arg(&k)
                .query_async(admin)
                .await
                .expect("type");
            let read = |name: &str, extra: &[&str]| {
                let mut c = redis::cmd(name);
                c.arg(&k).arg(extra);
                c
            };
            let body = match t.as_str() {
                "set" => {
                    let mut m: Vec<Vec<u8>> = read("SMEMBERS", &[])
                        .query_async(admin)
                        .await
                        .expect("smembers");
                    m.sort();
                    format!("{m:?}")
                }
                "hash" => {
                    let m: std::collections::HashMap<Vec<u8>, Vec<u8>> = read("HGETALL", &[])
                        .query_async(admin)
                        .await
                        .expect("hgetall");
                    format!("{:?}", m.into_iter().collect::<BTreeMap<_, _>>())
                }
                other => {
                    let cmd = match other {
                        "string" => read("GET", &[]),
                        "list" => read("LRANGE", &["0", "-1"]),
                        "zset" => read("ZRANGE", &["0", "-1", "WITHSCORES"]),
                        "stream" => read("XRANGE", &["-", "+"]),
                        t => panic!("unexpected type {t}"),
                    };
                    let v: redis::Value = cmd.query_async(admin).await.expect("read");
                    format!("{v:?}")
                }
            };
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&k)
                .query_async(admin)
                .await
                .expect("pttl");
            out.insert(k[ns.prefix.len()..].to_vec(), (t, body, ttl));
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    out
}

/// Runs a dump to the end: the file and its chunks' (size, rows).
async fn dump_of(db: &Db) -> (Vec<u8>, Vec<(usize, u64)>) {
    let mut s = db.db.dump(false, limits()).await.expect("dump");
    let (mut file, mut chunks) = (Vec::new(), Vec::new());
    while let Some(c) = s.next().await {
        let c = c.expect("chunk");
        chunks.push((c.data.len(), c.rows));
        file.extend(c.data);
    }
    (file, chunks)
}

/// Sends commands of many arguments in one pipeline (faster than one call each).
async fn fill(db: &Db, stmts: Vec<Statement>) {
    for r in db.db.batch(stmts, false, &limits()).await.expect("fill") {
        drop(r);
    }
}

fn chunked(cmd: &str, head: &[Value], items: Vec<Value>, per: usize) -> Vec<Statement> {
    items
        .chunks(per)
        .map(|c| Statement {
            sql: cmd.into(),
            params: head.iter().cloned().chain(c.iter().cloned()).collect(),
        })
        .collect()
}

fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

fn invalid_reason<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::InvalidArgument { reason, .. }) => reason,
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

use std::collections::BTreeMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_and_import_round_trip_every_type() {
    let _lock = lock(false).await;
    if let Some(backend) = backend().await {
        dump_and_import_round_trip_every_type_on(&backend).await;
    }
}

async fn dump_and_import_round_trip_every_type_on(backend: &Arc<RedisBackend>) {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    let a = Db::new(backend, "dump-a").await;
    let b = Db::new(backend, "dump-b").await;
    let c = Db::new(backend, "dump-c").await;

    let bin_key = b"\xff\x00k\x80".to_vec();
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let mut stmts = vec![
        Statement {
            sql: "SET".into(),
            params: vec![bytes(&bin_key), bytes(b"\x00\x01\xfe\xff")],
        },
        Statement::new("SET unicode 'héllo wörld ✓ 日本'"),
        Statement {
            sql: "SET".into(),
            params: vec![text("empty"), text("")],
        },
        Statement {
            sql: "SET".into(),
            params: vec![text("big"), Value::Bytes(big)],
        },
        Statement {
            sql: "SET".into(),
            params: vec![text("odd \"key\"\n\\"), text("line1\nline2\t\"q\"\u{1}")],
        },
        Statement {
            sql: "RPUSH".into(),
            params: vec![
                text("small"),
                text("a"),
                text(""),
                text("ü"),
                bytes(b"\xfe"),
            ],
        },
        Statement {
            sql: "SADD".into(),
            params: vec![text("s"), text("b"), text("a"), bytes(b"\xfe")],
        },
        Statement {
            sql: "ZADD".into(),
            params: vec![
                text("z"),
                Value::Float(0.1),
                text("a"),
                Value::Float(f64::NEG_INFINITY),
                text("b"),
                Value::Float(f64::INFINITY),
                text("c"),
                Value::Float(1e300),
                text("d"),
                Value::Float(-2.5),
                bytes(b"\xff"),
            ],
        },
        Statement::new("HSET h name Ada empty '' uni ü"),
        Statement {
            sql: "HSET".into(),
            params: vec![
                text("hb"),
                bytes(b"\xff"),
                text("v"),
                text("f"),
                bytes(b"\x80"),
            ],
        },
        Statement::new("XADD st 1-1 f v"),
        Statement {
            sql: "XADD".into(),
            params: vec![
                text("st"),
                text("2-0"),
                bytes(b"\xff"),
                text("b"),
                text("c"),
                text(""),
            ],
        },
        Statement::new("XADD es 1-1 f v"),
        Statement::new("XDEL es 1-1"),
        Statement::new("SET ttl1 v PX 100000"),
        Statement::new("HSET th f v"),
        Statement::new("PEXPIRE th 200000"),
        Statement::new("SET shared from-a"),
    ];
    let items =
        |n: usize, f: &dyn Fn(usize) -> Vec<Value>| -> Vec<Value> { (0..n).flat_map(f).collect() };
    stmts.extend(chunked(
        "RPUSH",
        &[text("biglist")],
        items(5000, &|i| vec![text(&format!("item-{i}"))]),
        1000,
    ));
    stmts.extend(chunked(
        "SADD",
        &[text("bigset")],
        items(12_000, &|i| vec![text(&format!("m{i}"))]),
        1000,
    ));
    stmts.extend(chunked(
        "ZADD",
        &[text("bigz")],
        items(1500, &|i| {
            vec![Value::Float(i as f64 / 3.0), text(&format!("m{i}"))]
        }),
        2000,
    ));
    stmts.extend(chunked(
        "HSET",
        &[text("bigh")],
        items(1500, &|i| {
            vec![text(&format!("f{i}")), text(&format!("v{i}"))]
        }),
        2000,
    ));
    stmts.extend((1..=1500).map(|i| Statement {
        sql: "XADD".into(),
        params: vec![
            text("bigst"),
            text(&format!("{i}-0")),
            text("n"),
            Value::Int(i),
        ],
    }));
    fill(&a, stmts).await;
    c.ok("SET untouched 1").await;
    c.ok("SET shared from-c").await;
    b.ok("SET shared old").await;
    b.ok("SET b-only 1").await;
    let c_before = contents(&mut admin_for(&c.ns).await, &c.ns).await;

    let want = contents(&mut admin_for(&a.ns).await, &a.ns).await;
    assert_eq!(want.len(), 20, "{:?}", want.keys().collect::<Vec<_>>());
    let (file, chunks) = dump_of(&a).await;
    assert!(chunks.len() > 16, "{} chunks", chunks.len());
    assert!(
        chunks.iter().all(|(len, _)| *len <= 64 * 1024),
        "{chunks:?}"
    );
    assert_eq!(
        chunks.iter().map(|(_, r)| r).sum::<u64>(),
        want.len() as u64
    );
    assert!(
        !file
            .windows(a.ns.prefix.len())
            .any(|w| w == a.ns.prefix.as_bytes()),
        "no internal prefix leaks"
    );
    let text_file = String::from_utf8(file.clone()).expect("NDJSON is UTF-8");
    let records: Vec<serde_json::Value> = text_file
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(records.len(), want.len());
    let record = |key: serde_json::Value| {
        records
            .iter()
            .find(|r| r["key"] == key)
            .unwrap_or_else(|| panic!("no record for {key}"))
            .clone()
    };
    use serde_json::json;
    assert_eq!(
        record(json!({"base64": STANDARD.encode(&bin_key)})),
        json!({"key": {"base64": "/wBrgA=="}, "type": "string", "ttl_ms": null,
               "value": {"base64": "AAH+/w=="}})
    );
    assert_eq!(
        record(json!("unicode"))["value"],
        json!("héllo wörld ✓ 日本")
    );
    assert_eq!(record(json!("empty"))["value"], json!(""));
    assert_eq!(
        record(json!("z"))["value"],
        json!([["b", "-inf"], [{"base64": "/w=="}, -2.5], ["a", 0.1], ["d", 1e300], ["c", "inf"]])
    );
    assert!(
        text_file.contains(r#"["a",0.1]"#),
        "the shortest exact form"
    );
    assert_eq!(
        record(json!("s"))["value"],
        json!(["a", "b", {"base64": "/g=="}]),
        "sorted by bytes"
    );
    assert_eq!(
        record(json!("h"))["value"],
        json!({"name": "Ada", "empty": "", "uni": "ü"})
    );
    let hb = record(json!("hb"))["value"].clone();
    assert!(hb.is_array(), "a non-UTF-8 field makes pairs: {hb}");
    assert_eq!(
        record(json!("st"))["value"],
        json!([{"id": "1-1", "fields": [["f", "v"]]},
               {"id": "2-0", "fields": [[{"base64": "/w=="}, "b"], ["c", ""]]}])
    );
    assert_eq!(record(json!("es"))["value"], json!([]));
    assert_eq!(
        record(json!("biglist"))["value"].as_array().map(Vec::len),
        Some(5000)
    );
    assert_eq!(record(json!("biglist"))["value"][4999], json!("item-4999"));
    assert_eq!(
        record(json!("bigset"))["value"].as_array().map(Vec::len),
        Some(12_000)
    );
    assert_eq!(
        record(json!("bigst"))["value"].as_array().map(Vec::len),
        Some(1500)
    );
    let ttl = record(json!("ttl1"))["ttl_ms"].as_i64().expect("a TTL");
    assert!((90_000..=100_000).contains(&ttl), "{ttl}");
    assert!(!text_file.contains("untouched") && !text_file.contains("from-c"));

    let n = b.db.import_records(&file, &limits()).await.expect("import");
    assert_eq!(n, want.len() as u64);
    let mut got = contents(&mut admin_for(&b.ns).await, &b.ns).await;
    let b_only = got
        .remove(b"b-only".as_slice())
        .expect("keys not in the file stay");
    assert_eq!(
        b_only.1,
        format!("{:?}", redis::Value::BulkString(b"1".to_vec()))
    );
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, (t, body, ttl)) in &want {
        let (t2, body2, ttl2) = &got[k];
        assert_eq!((t, body), (t2, body2), "{}", String::from_utf8_lossy(k));
        if *ttl < 0 {
            assert_eq!(ttl, ttl2, "{}", String::from_utf8_lossy(k));
        } else {
            assert!((ttl - ttl2).abs() < 5000, "{ttl} vs {ttl2}");
        }
    }
    assert_eq!(b.value("GET shared").await, text("from-a"), "replaced");
    assert_eq!(
        contents(&mut admin_for(&c.ns).await, &c.ns).await,
        c_before,
        "c untouched"
    );
    // An imported empty stream is there, and empty.
    assert_eq!(b.value("XLEN es").await, Value::Int(0));
    assert_eq!(b.value("EXISTS es").await, Value::Int(1));
    // A dump of the copy is the same file (TTLs aside).
    let (copy, _) = dump_of(&b).await;
    let strip_ttl = |f: &[u8]| {
        let mut lines: Vec<serde_json::Value> = String::from_utf8_lossy(f)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .filter(|r| r["key"] != json!("b-only"))
            .map(|mut r| {
                r["ttl_ms"] = json!(r["ttl_ms"].is_null());
                // Big sets and hashes are written in SSCAN/HSCAN order, which is the server's.
                let scanned = r["key"] == json!("bigset") || r["key"] == json!("bigh");
                if let Some(items) = r["value"].as_array_mut()
                    && scanned
                {
                    items.sort_by_key(|v| v.to_string());
                }
                r
            })
            .collect();
        lines.sort_by_key(|r| r["key"].to_string());
        lines
    };
    let (copy, original) = (strip_ttl(&copy), strip_ttl(&file));
    assert_eq!(copy.len(), original.len());
    for (c, o) in copy.iter().zip(&original) {
        assert!(c == o, "the copy's record of {} differs", o["key"]);
    }

    a.drop_now().await;
    b.drop_now().await;
    c.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_import_lines_are_named_and_nothing_is_written() {
    let _lock = lock(false).await;
    if let Some(backend) = backend().await {
        bad_import_lines_are_named_and_nothing_is_written_on(&backend).await;
    }
}

async fn bad_import_lines_are_named_and_nothing_is_written_on(backend: &Arc<RedisBackend>) {
    let db = Db::new(backend, "import-bad").await;
    db.ok("SET keep 1").await;
    let good = r#"{"key":"new","type":"string","ttl_ms":null,"value":"x"}"#;
    let replace = r#"{"key":"keep","type":"list","ttl_ms":null,"value":["a"]}"#;
    let cases = [
        (
            format!("{good}\n{replace}\n{{not json"),
            "line 3: not a JSON object",
        ),
        (
            format!("{good}\n\n{}", r#"{"key":"k","type":"bitmap","value":"x"}"#),
            "line 3: unknown type \"bitmap\"",
        ),
        (
            format!("{}\n{good}", r#"{"key":"k","type":"list","value":"x"}"#),
            "line 1: a list value must be an array",
        ),
        (
            format!("{good}\n{}", r#"{"key":"k","type":"zset","value":[["m"]]}"#),
            "line 2: zset element 0 must be a [member, score] pair",
        ),
        (
            format!("{good}\n{}", r#"{"key":"k","type":"hash","value":"x"}"#),
            "line 2: a hash value must be an object",
        ),
    ];
    for (data, want) in cases {
        let reason = invalid_reason(db.db.import_records(data.as_bytes(), &limits()).await);
        assert!(
            reason.starts_with(want),
            "{reason:?} should start with {want:?}"
        );
        assert_eq!(db.value("GET keep").await, text("1"), "nothing written");
        assert_eq!(
            db.value("EXISTS new").await,
            Value::Int(0),
            "nothing written"
        );
    }
    // An expired record deletes its key; a TTL is set from the import.
    let data = format!(
        "{}\n{}\n",
        r#"{"key":"keep","type":"string","ttl_ms":0,"value":"x"}"#,
        r#"{"key":"t","type":"set","ttl_ms":60000,"value":["a","a","b"]}"#,
    );
    assert_eq!(
        db.db
            .import_records(data.as_bytes(), &limits())
            .await
            .expect("import"),
        2
    );
    assert_eq!(db.value("EXISTS keep").await, Value::Int(0));
    assert_eq!(db.value("SCARD t").await, Value::Int(2));
    match db.value("PTTL t").await {
        Value::Int(ms) => assert!((55_000..=60_000).contains(&ms), "{ms}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        db.db
            .import_records(b"\n \n", &limits())
            .await
            .expect("empty"),
        0
    );
    invalid_reason(db.db.dump(true, limits()).await.map(|_| ()));
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_space_summary_groups_patterns() {
    let _lock = lock(false).await;
    if let Some(backend) = backend().await {
        key_space_summary_groups_patterns_on(&backend).await;
    }
}

async fn key_space_summary_groups_patterns_on(backend: &Arc<RedisBackend>) {
    let db = Db::new(backend, "keyspace").await;
    let other = Db::new(backend, "keyspace-other").await;
    other.ok("SET user:9 x").await;
    db.ok("SET user:1 a").await;
    db.ok("SET user:2 b").await;
    db.ok("HSET user:3:profile name Ada").await;
    db.ok("EXPIRE user:3:profile 100").await;
    db.ok("SET config x").await;
    let schema = db.db.schema(None, &limits()).await.expect("schema");
    assert!(schema.tables.is_empty());
    let ks = schema.key_space.expect("a key-space summary");
    assert_eq!((ks.total_keys, ks.sampled_keys), (4, 4));
    let got: Vec<_> = ks
        .patterns
        .iter()
        .map(|p| {
            (
                p.pattern.as_str(),
                p.value_type.as_str(),
                p.count,
                p.with_ttl,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("user:*", "string", 2, 0),
            ("config", "string", 1, 0),
            ("user:*:profile", "hash", 1, 1),
        ]
    );
    assert!(["user:1", "user:2"].contains(&ks.patterns[0].example.as_str()));
    assert_eq!(ks.patterns[2].example, "user:3:profile");
    invalid_reason(db.db.schema(Some("users"), &limits()).await);
    db.drop_now().await;
    other.drop_now().await;
}

/// Read-only access through the database's read-only ACL user.
fn read_only() -> StatementLimits {
    StatementLimits {
        read_only: true,
        ..limits()
    }
}

/// The error of a read-only call, which must be Redis refusing it (`NOPERM` → `Forbidden`).
fn assert_forbidden<T: std::fmt::Debug>(what: &str, r: Result<T>) {
    match r {
        Err(Error::Query {
            kind: QueryErrorKind::Forbidden,
            ..
        }) => {}
        other => panic!("{what}: expected Forbidden, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_only_user_reads_its_own_keys_only() {
    let _lock = lock(false).await;
    if let Some(backend) = backend().await {
        the_read_only_user_reads_its_own_keys_only_on(&backend).await;
    }
}

async fn the_read_only_user_reads_its_own_keys_only_on(backend: &Arc<RedisBackend>) {
    let a = Db::new(backend, "ro-a").await;
    let b = Db::new(backend, "ro-b").await;
    a.ok("SET k v").await;
    a.ok("RPUSH l x y").await;
    b.ok("SET secret s").await;
    let ro = read_only();
    let run = |line: &str| a.db.execute(Statement::new(line), &ro);

    let r = run("GET k").await.expect("GET");
    assert_eq!(r.rows, vec![vec![text("v")]]);
    let r = run("LRANGE l 0 -1").await.expect("LRANGE");
    assert_eq!(r.rows.len(), 2);
    let mut stream =
        a.db.query(Statement::new("LRANGE l 0 -1"), ro.clone())
            .await
            .expect("stream");
    let mut streamed = 0;
    while let Some(ev) = stream.next().await {
        if let RowEvent::Rows(batch) = ev.expect("streamed read") {
            streamed += batch.len();
        }
    }
    assert_eq!(streamed, 2);
    let r =
        a.db.batch(
            vec![Statement::new("GET k"), Statement::new("EXISTS l")],
            true,
            &ro,
        )
        .await
        .expect("a transactional batch of reads");
    assert_eq!(r.len(), 2);

    for line in [
        "SET k w",
        "DEL k",
        "RPUSH l z",
        "EXPIRE k 10",
        "INCR n",
        "RENAME k k2",
        "SORT l STORE l2",
        "HSET h f v",
    ] {
        assert_forbidden(line, run(line).await);
        let streamed = async {
            let mut s = a.db.query(Statement::new(line), ro.clone()).await?;
            while let Some(ev) = s.next().await {
                ev?;
            }
            Ok(())
        };
        assert_forbidden(line, streamed.await);
        for transactional in [false, true] {
            let r =
                a.db.batch(
                    vec![Statement::new("GET k"), Statement::new(line)],
                    transactional,
                    &ro,
                )
                .await;
            assert_forbidden(line, r);
        }
    }
    assert_eq!(a.value("GET k").await, text("v"), "nothing changed");
    assert_eq!(a.value("LLEN l").await, Value::Int(2));
    a.ok("SET k w").await;
    assert_eq!(a.value("GET k").await, text("w"), "the owner still writes");

    // Straight to Redis: the reader of one database reaches no other's keys, and no write.
    let mut reader = as_user(&a.ns.reader()).await;
    let own = format!("{}k", a.ns.prefix);
    let other = format!("{}secret", b.ns.prefix);
    assert_eq!(
        raw(&mut reader, &["GET", &own]).await.expect("own key"),
        redis::Value::BulkString(b"w".to_vec())
    );
    for cmd in [
        vec!["GET", other.as_str()],
        vec!["SET", own.as_str(), "x"],
        vec!["DEL", own.as_str()],
        vec!["FLUSHDB"],
        vec!["KEYS", "*"],
        vec!["DBSIZE"],
        vec!["EVAL_RO", "return 1", "0"],
        vec!["SORT", own.as_str()],
    ] {
        let err = raw(&mut reader, &cmd).await.expect_err(&cmd.join(" "));
        assert_eq!(err.code(), Some("NOPERM"), "{cmd:?}: {err}");
    }

    // A database spawned before read-only users existed gets one on its first read-only call.
    drop(reader);
    let mut admin = admin().await;
    raw(&mut admin, &["ACL", "DELUSER", &a.ns.reader().user])
        .await
        .expect("forget the read-only user");
    let reopened = backend.open(&a.p).await.expect("open");
    let r = reopened
        .execute(Statement::new("GET k"), &read_only())
        .await
        .expect("read after reopen");
    assert_eq!(r.rows, vec![vec![text("w")]]);
    drop(reopened);

    let reader_user = a.ns.reader().user;
    a.drop_now().await;
    let users = raw(&mut admin, &["ACL", "USERS"]).await.expect("users");
    assert!(
        !format!("{users:?}").contains(&reader_user),
        "destroy deletes the read-only user too"
    );
    b.drop_now().await;
}

mod cluster;
