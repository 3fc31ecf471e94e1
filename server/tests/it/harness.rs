//! Test servers: in-process on an ephemeral port, or the real binary as a child process.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use dbforge::{Client, CreateOptions};
use dbforge_server::config::Config;
use tokio::{sync::oneshot, task::JoinHandle};

/// An in-process server with its own data directory; shut down on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub client: Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    dir: Option<tempfile::TempDir>,
    data_dir: PathBuf,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(|c| c).await
    }

    /// Starts with a config adjusted by `f` (the data dir is a fresh temp dir unless `f` sets one).
    pub async fn with(f: impl FnOnce(Config) -> Config) -> Self {
        Self::with_client(f, true).await
    }

    /// Like [`with`](Self::with); `connect: false` leaves `client` lazily connected (for servers
    /// the default plaintext client cannot reach, like TLS ones).
    pub async fn with_client(f: impl FnOnce(Config) -> Config, connect: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // Most tests are about something else than keys: they run without authentication
        // (loopback only); the access tests turn it on.
        let cfg = f(Config {
            data_dir: dir.path().to_path_buf(),
            insecure_no_auth: true,
            ..Config::default()
        });
        Self::start_config(cfg, Some(dir), connect).await
    }

    /// Starts on an existing data directory (for restart tests).
    pub async fn on_dir(data_dir: &Path) -> Self {
        let cfg = Config {
            data_dir: data_dir.to_path_buf(),
            insecure_no_auth: true,
            ..Config::default()
        };
        Self::start_config(cfg, None, true).await
    }

    async fn start_config(cfg: Config, dir: Option<tempfile::TempDir>, connect: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("local addr");
        let data_dir = cfg.data_dir.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            dbforge_server::server::run(cfg, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        // The listener is bound before serving starts, so connecting cannot race the bind.
        let client = if connect {
            Client::connect(format!("http://{addr}"))
                .await
                .expect("connect to the test server")
        } else {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .expect("endpoint")
                .connect_lazy();
            Client::from_channel(channel)
        };
        TestServer {
            addr,
            client,
            shutdown: Some(tx),
            task: Some(task),
            dir,
            data_dir,
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A second, independent connection.
    pub async fn connect(&self) -> Client {
        Client::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
    }

    /// Spawns a database with a unique name.
    pub async fn db(&self, prefix: &str) -> String {
        let name = unique(prefix);
        self.client
            .create_database(&name, CreateOptions::default())
            .await
            .expect("create database");
        name
    }

    /// Stops gracefully and waits for the catalog to be closed.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        self.dir.take()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A process-unique database name.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The real `dbforge-server` binary as a child process.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Without authentication.
    pub fn spawn(data_dir: &Path, extra: &[&str]) -> Self {
        Self::spawn_env(data_dir, extra, &[])
    }

    /// Without authentication, with `env` added to the environment it inherits.
    pub fn spawn_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut args = vec!["--insecure-no-auth"];
        args.extend_from_slice(extra);
        Self::spawn_with(data_dir, &args, env)
    }

    /// With authentication, as deployed.
    pub fn spawn_secured(data_dir: &Path) -> Self {
        Self::spawn_with(data_dir, &[], &[])
    }

    /// Everything the server logged so far (debug level for DB-Forge's own modules).
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    fn spawn_with(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dbforge-server"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--log", "debug"])
            .env_remove("DBFORGE_ADMIN_KEY")
            .args(extra)
            .env("NO_COLOR", "1")
            .env("RUST_LOG_STYLE", "never")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn dbforge-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let addr = loop {
            let line = lines
                .next()
                .expect("server printed its address before exiting")
                .expect("read server output");
            if let Ok(mut l) = logs.lock() {
                l.push(line.clone());
            }
            if let Some(rest) = line.split("addr=").nth(1) {
                let text = rest.split_whitespace().next().unwrap_or_default();
                break text.parse().expect("listen address");
            }
        };
        // Keep draining the log (into the test's output, shown on failure) so the child never
        // blocks on a full pipe.
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("[server] {line}");
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        ServerProcess { child, addr, logs }
    }

    pub async fn client(&self) -> Client {
        Client::connect(format!("http://{}", self.addr))
            .await
            .expect("connect to the server process")
    }

    /// A field of /proc/<pid>/status in KiB (VmRSS, VmHWM).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("memory field")
    }

    /// CPU time the process has used so far, user plus system (from /proc/<pid>/stat).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("read /proc stat");
        // The command name (field 2) may hold spaces; the fields after it do not.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("stat has a command name")
            .1
            .split_whitespace()
            .collect();
        // utime and stime are fields 14 and 15 of the whole line, in clock ticks.
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        let hz: u64 = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100);
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// Sends SIGTERM and waits (without blocking the runtime, so clients can see the server
    /// go away); returns whether it exited cleanly.
    pub async fn terminate(mut self) -> bool {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        for _ in 0..200 {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.success();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        false
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts an SDK error's gRPC code, printing the error otherwise.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(
    res: Result<T, dbforge::Error>,
    code: dbforge::Code,
) -> dbforge::Error {
    match res {
        Ok(v) => panic!("expected {code:?}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "unexpected error: {e}");
            e
        }
    }
}

/// The URL of a backend server for tests (from `env`, else `default`), or `None` with a one-line
/// notice when it cannot be reached. With `DBFORGE_REQUIRE_BACKENDS=1` (CI) an unreachable
/// server fails the test instead.
///
/// The test then holds `<tmp>/dbforge-<backend>-tests.lock` shared until its process ends (nextest
/// runs each test in its own), as the backends' own tests do: a test that stops the server to
/// test an outage holds it exclusively, so it never stops the server under this one.
pub async fn backend_url(backend: &str, env: &str, default: &str) -> Option<String> {
    static HELD: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());
    let path = std::env::temp_dir().join(format!("dbforge-{backend}-tests.lock"));
    let lock = tokio::task::spawn_blocking(move || {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .expect("lock file");
        f.lock_shared().expect("lock");
        f
    })
    .await
    .expect("lock task");
    HELD.lock().expect("held locks").push(lock);
    let url = std::env::var(env).unwrap_or_else(|_| default.to_owned());
    let host_port = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.rsplit('@').next())
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let reachable = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(host_port.as_str()),
    )
    .await
    .is_ok_and(|c| c.is_ok());
    if reachable {
        return Some(url);
    }
    if std::env::var("DBFORGE_REQUIRE_BACKENDS").as_deref() == Ok("1") {
        panic!("{backend} at {host_port} is required (DBFORGE_REQUIRE_BACKENDS=1) but unreachable");
    }
    eprintln!("skipping {backend} tests: {host_port} unreachable");
    None
}

/// The PostgreSQL server of the tests, or `None` (see [`backend_url`]).
pub async fn postgres_url() -> Option<String> {
    backend_url(
        "postgres",
        "DBFORGE_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
    .await
}

/// The MySQL/MariaDB server of the tests, or `None` (see [`backend_url`]).
pub async fn mysql_url() -> Option<String> {
    backend_url(
        "mysql",
        "DBFORGE_TEST_MYSQL_URL",
        "mysql://root@127.0.0.1:3306",
    )
    .await
}

/// The Redis server of the tests, or `None` (see [`backend_url`]).
pub async fn redis_url() -> Option<String> {
    backend_url("redis", "DBFORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379").await
}

/// A gateway (without authentication) that also serves `backend` on the server at `url`.
pub async fn serving(backend: dbforge::Backend, url: String) -> TestServer {
    TestServer::with(move |mut c| {
        match backend {
            dbforge::Backend::Postgres => c.postgres_url = Some(url),
            dbforge::Backend::Mysql => c.mysql_url = Some(url),
            dbforge::Backend::Redis => c.redis_url = Some(url),
            _ => {}
        }
        c
    })
    .await
}

/// The admin key of [`secured`] gateways.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef";

/// A gateway with authentication on and [`ADMIN_KEY`] registered that also serves `backend`
/// at `url` (SQLite alone for any other backend or no URL).
pub async fn secured(backend: dbforge::Backend, url: Option<String>) -> TestServer {
    TestServer::with(move |mut c| {
        c.insecure_no_auth = false;
        c.admin_key = Some(ADMIN_KEY.into());
        match backend {
            dbforge::Backend::Postgres => c.postgres_url = url,
            dbforge::Backend::Mysql => c.mysql_url = url,
            dbforge::Backend::Redis => c.redis_url = url,
            _ => {}
        }
        c
    })
    .await
}

/// A client of `s` that calls with `key`.
pub async fn as_key(s: &TestServer, key: &str) -> Client {
    Client::connect_with(dbforge::ClientOptions::new(format!("http://{}", s.addr)).api_key(key))
        .await
        .expect("connect")
}

/// A new key with `role` on `db` only, connected.
pub async fn key_for(s: &TestServer, admin: &Client, db: &str, role: dbforge::Role) -> Client {
    let (_, key) = admin
        .create_api_key(
            dbforge::ApiKeySpec::new("scoped").grant(dbforge::Grant::database(db, role)),
        )
        .await
        .expect("key");
    as_key(s, &key).await
}

/// Runs `sql` through every data route of `c` (Execute, Query, both batches, a Session) and
/// returns each outcome's code; what it did is checked by the caller on the engine.
pub async fn every_route(c: &Client, db: &str, sql: &str, sessions: bool) -> Vec<dbforge::Code> {
    let code = |r: Result<(), dbforge::Error>| r.err().map_or(dbforge::Code::Ok, |e| e.code());
    let mut codes = vec![code(c.execute(db, sql, &[]).await.map(drop))];
    let streamed = match c.query(db, sql, &[]).await {
        Ok(mut rows) => rows.collect_rows().await.map(drop),
        Err(e) => Err(e),
    };
    codes.push(code(streamed));
    for transactional in [false, true] {
        codes.push(code(
            c.batch(
                db,
                vec![dbforge::Statement::new(sql, vec![])],
                transactional,
            )
            .await
            .map(drop),
        ));
    }
    if sessions {
        let outcome = match c.transaction(db).await {
            Ok(mut tx) => match tx.execute(sql, &[]).await {
                Ok(_) => tx.commit().await.map(drop),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        codes.push(code(outcome));
    }
    codes
}

/// Plain HTTP/1.1 GET of /metrics on the gRPC port: the whole response, checked 200.
pub async fn scrape_metrics(s: &TestServer) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut body = String::new();
    conn.read_to_string(&mut body).await.expect("read");
    assert!(
        body.starts_with("HTTP/1.1 200"),
        "{}",
        &body[..body.len().min(200)]
    );
    body
}

/// The value of the first series in a scrape whose line starts with `name` and contains every
/// one of `labels`.
pub fn metric_value(scrape: &str, name: &str, labels: &[&str]) -> Option<String> {
    scrape
        .lines()
        .find(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
}
