//! A gateway for the CLI to talk to, and commands preconfigured to reach it.
//!
//! The server runs in this process on its own tokio runtime (a background thread pool), so the
//! tests themselves stay synchronous: they run the binary with assert_cmd or in a pty with
//! rexpect and block on the SDK for setup.

use std::{
    net::{SocketAddr, TcpStream, ToSocketAddrs},
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use dbforge::{Client, ClientOptions, CreateOptions, Value};
use dbforge_server::config::Config;
use tokio::sync::oneshot;

/// The admin key every test server is started with (the gateway wants 24 characters or more).
pub const KEY: &str = "cli-test-admin-key-0123456789";

/// The `dbforge` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dbforge")
}

/// An in-process gateway with authentication on; shut down on drop.
pub struct Server {
    pub addr: SocketAddr,
    /// Where HOME, the config dir and the history file of the commands point.
    pub home: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: Option<oneshot::Sender<()>>,
    client: Option<Client>,
    _data: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Self {
        Self::with(|c| c)
    }

    /// Starts with a config adjusted by `f`.
    pub fn with(f: impl FnOnce(Config) -> Config) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let home = tempfile::tempdir().expect("temp home");
        let cfg = f(Config {
            data_dir: data.path().to_path_buf(),
            admin_key: Some(KEY.to_owned()),
            ..Config::default()
        });
        let tls = cfg.tls_cert.is_some();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        runtime.spawn(async move {
            dbforge_server::server::run(cfg, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        // The listener is bound before serving starts, so connecting cannot race the bind.
        // A TLS server is reached through the CLI only (with --ca-file).
        let client = (!tls).then(|| {
            runtime
                .block_on(Client::connect_with(
                    ClientOptions::new(format!("http://{addr}")).api_key(KEY),
                ))
                .expect("connect")
        });
        Server {
            addr,
            home,
            runtime: Some(runtime),
            shutdown: Some(tx),
            client,
            _data: data,
        }
    }

    /// A gateway that also spawns databases on the local Redis server (`DBFORGE_TEST_REDIS_URL`,
    /// else redis://127.0.0.1:6379), or `None` with a one-line notice when that server cannot be
    /// reached. With `DBFORGE_REQUIRE_BACKENDS=1` (CI) an unreachable server fails the test.
    pub fn with_redis() -> Option<Self> {
        let url = engine_url("redis", "DBFORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379")?;
        Some(Self::with(|mut c| {
            c.redis_url = Some(url);
            c
        }))
    }

    /// A gateway that also spawns databases on the local MySQL or MariaDB server
    /// (`DBFORGE_TEST_MYSQL_URL`, else mysql://root@127.0.0.1:3306), as [`Server::with_redis`].
    pub fn with_mysql() -> Option<Self> {
        let url = engine_url(
            "mysql",
            "DBFORGE_TEST_MYSQL_URL",
            "mysql://root@127.0.0.1:3306",
        )?;
        Some(Self::with(|mut c| {
            c.mysql_url = Some(url);
            c
        }))
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("a plaintext server")
    }

    fn block_on<T>(&self, f: impl Future<Output = T>) -> T {
        self.runtime.as_ref().expect("running").block_on(f)
    }

    /// Spawns a database with a unique name through the SDK.
    pub fn db(&self, prefix: &str) -> String {
        let name = unique(prefix);
        self.block_on(
            self.client()
                .create_database(&name, CreateOptions::default()),
        )
        .expect("create database");
        name
    }

    /// Spawns a database with a unique name on `backend` through the SDK.
    pub fn db_on(&self, prefix: &str, backend: dbforge::Backend) -> String {
        let name = unique(prefix);
        self.block_on(
            self.client()
                .create_database(&name, CreateOptions::default().backend(backend)),
        )
        .expect("create database");
        name
    }

    /// Spawns a graph database, or `None` with a one-line notice when this build's gateway has
    /// no graph engine (dbforge-server's `graph` feature, which `scripts/test` turns on); with
    /// `DBFORGE_REQUIRE_BACKENDS=1` (CI) its absence fails the test.
    pub fn graph_db(&self, prefix: &str) -> Option<String> {
        let name = unique(prefix);
        let created = self.block_on(self.client().create_database(
            &name,
            CreateOptions::default().backend(dbforge::Backend::Graph),
        ));
        match created {
            Ok(_) => Some(name),
            Err(e) if e.code() == dbforge::Code::FailedPrecondition => {
                if std::env::var("DBFORGE_REQUIRE_BACKENDS").as_deref() == Ok("1") {
                    panic!("the graph engine is required (DBFORGE_REQUIRE_BACKENDS=1): {e}");
                }
                eprintln!("skipping graph tests: built without dbforge-server's graph feature");
                None
            }
            Err(e) => panic!("create a graph database: {e}"),
        }
    }

    /// Runs a statement through the SDK (test setup).
    pub fn exec(&self, db: &str, sql: &str) {
        self.block_on(self.client().execute(db, sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The first column of the first row of a query, through the SDK.
    pub fn scalar(&self, db: &str, sql: &str) -> Value {
        let r = self
            .block_on(self.client().execute(db, sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        r.rows[0].values()[0].clone()
    }

    /// Whether a database exists, through the SDK.
    pub fn exists(&self, db: &str) -> bool {
        match self.block_on(self.client().get_database(db)) {
            Ok(_) => true,
            Err(e) if e.code() == dbforge::Code::NotFound => false,
            Err(e) => panic!("get {db}: {e}"),
        }
    }

    /// The environment a user of this gateway would have: endpoint and key set, a private
    /// HOME (so no real config or history is touched), no colour or width settings inherited.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let home = self.home.path().display().to_string();
        vec![
            ("DBFORGE_ENDPOINT", self.endpoint()),
            ("DBFORGE_API_KEY", KEY.to_owned()),
            ("HOME", home.clone()),
            ("XDG_CONFIG_HOME", format!("{home}/config")),
            ("XDG_DATA_HOME", format!("{home}/data")),
            ("TERM", "xterm-256color".to_owned()),
        ]
    }

    /// Variables a developer's environment may carry that would change the output.
    pub const CLEARED: &'static [&'static str] = &[
        "DBFORGE_PROFILE",
        "DBFORGE_CONFIG",
        "DBFORGE_TIMEOUT",
        "DBFORGE_CA_FILE",
        "DBFORGE_HISTORY",
        "NO_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "COLUMNS",
        "CI",
    ];

    /// `dbforge` with this gateway's environment.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(bin());
        for var in Self::CLEARED {
            cmd.env_remove(var);
        }
        cmd.envs(self.env());
        cmd
    }

    /// The same as a std Command, for the pty.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(bin());
        for var in Self::CLEARED {
            cmd.env_remove(var);
        }
        cmd.envs(self.env());
        cmd
    }

    /// The history file of the shell under this HOME.
    pub fn history(&self) -> PathBuf {
        self.home.path().join("data/dbforge/history")
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // A statement cancelled by a test may still be running on a blocking thread; do not
        // wait for it.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
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

/// stdout of a finished command as text.
pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

/// stderr of a finished command as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf-8 stderr")
}

/// Removes the footer's elapsed time, " (1.2 ms)", which varies from run to run.
pub fn without_time(s: &str) -> String {
    let mut out = String::new();
    for line in s.lines() {
        let timed = line.find(" (").and_then(|i| {
            let end = i + line[i..].find(')')?;
            let inner = &line[i + 2..end];
            let is_time = inner.starts_with(|c: char| c.is_ascii_digit())
                && (inner.ends_with(" ms") || inner.ends_with(" s"));
            is_time.then(|| format!("{}{}", &line[..i], &line[end + 1..]))
        });
        out.push_str(timed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// A command running in a pseudo-terminal (its stdin, stdout and stderr are the terminal).
pub struct Pty {
    session: expectrl::session::OsSession,
}

impl Pty {
    /// Starts `cmd` in a 100×40 terminal.
    pub fn spawn(cmd: std::process::Command) -> Self {
        let mut session = expectrl::Session::spawn(cmd).expect("spawn in a pty");
        session
            .get_process_mut()
            .set_window_size(100, 40)
            .expect("window size");
        session.set_expect_timeout(Some(Duration::from_secs(20)));
        Pty { session }
    }

    /// Waits for `needle` and returns what came before it.
    #[track_caller]
    pub fn expect(&mut self, needle: &str) -> String {
        use expectrl::Expect;
        match self.session.expect(needle) {
            Ok(c) => String::from_utf8_lossy(c.before()).into_owned(),
            Err(e) => panic!("waiting for {needle:?}: {e}"),
        }
    }

    /// Waits for the end of the output and returns all of it.
    #[track_caller]
    pub fn expect_eof(&mut self) -> String {
        use expectrl::Expect;
        match self.session.expect(expectrl::Eof) {
            Ok(c) => String::from_utf8_lossy(c.as_bytes()).into_owned(),
            Err(e) => panic!("waiting for the end: {e}"),
        }
    }

    /// Types `text` and Enter.
    pub fn line(&mut self, text: &str) {
        use expectrl::Expect;
        self.session
            .send(format!("{text}\r"))
            .expect("write to the pty");
    }

    /// Types `text` as is.
    pub fn send(&mut self, text: &str) {
        use expectrl::Expect;
        self.session.send(text).expect("write to the pty");
    }

    /// Presses Ctrl-`c` (e.g. 'c' for Ctrl-C, 'd' for Ctrl-D).
    pub fn control(&mut self, c: char) {
        use expectrl::Expect;
        let code = (c.to_ascii_uppercase() as u8) & 0x1f;
        self.session.send([code]).expect("write to the pty");
    }

    /// The exit code, after the output has ended.
    pub fn exit_code(&mut self) -> i32 {
        match self
            .session
            .get_process()
            .wait()
            .expect("wait for the child")
        {
            expectrl::process::unix::WaitStatus::Exited(_, code) => code,
            other => panic!("the child did not exit normally: {other:?}"),
        }
    }
}

/// The URL of a database server for the tests (`var`, else `default`), or `None` with a one-line
/// notice when it cannot be reached; with `DBFORGE_REQUIRE_BACKENDS=1` (CI) that fails instead.
/// The test holds `<tmp>/dbforge-<engine>-tests.lock` shared until its process ends, so the
/// server's outage tests (which hold it exclusively) never stop the server under it.
fn engine_url(engine: &str, var: &str, default: &str) -> Option<String> {
    static HELD: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join(format!("dbforge-{engine}-tests.lock")))
        .expect("lock file");
    lock.lock_shared().expect("lock");
    HELD.lock().expect("held locks").push(lock);
    let url = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    let host_port = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.rsplit('@').next())
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let reachable = host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if !reachable {
        if std::env::var("DBFORGE_REQUIRE_BACKENDS").as_deref() == Ok("1") {
            panic!(
                "{engine} at {host_port} is required (DBFORGE_REQUIRE_BACKENDS=1) but unreachable"
            );
        }
        eprintln!("skipping {engine} tests: {host_port} unreachable");
        return None;
    }
    Some(url)
}
