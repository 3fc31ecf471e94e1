//! The gateway under test, in its own process.
//!
//! The bench re-executes its own binary with the hidden `serve` subcommand, which runs
//! `dbforge_server::server::run` exactly as `dbforge-server` does. A separate process is the
//! point: its `/proc/<pid>/status` then shows the gateway's memory alone, and its CPU time is
//! not mixed with the client's.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use dbforge_server::config::Config;
use tokio::sync::oneshot;

use crate::BoxError;

/// The line prefix `serve` prints before its bound address.
const READY: &str = "listening ";

/// The environment variable that carries the admin key to the child; the server's own name for
/// it, and unlike a flag it does not show in `ps`.
const ADMIN_KEY_ENV: &str = "DBFORGE_ADMIN_KEY";

/// Which gateway configuration a child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Variant {
    /// The defaults, as `dbforge-server` runs without flags.
    Default,
    /// The defaults less authentication, the audit log and Prometheus metrics
    /// (`--insecure-no-auth --disable-audit --disable-metrics`, on loopback), to show what those
    /// cost per call.
    Lean,
}

/// The database servers a gateway fronts besides SQLite (the server's `--postgres-url`,
/// `--mysql-url` and `--redis-url`); none by default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Servers {
    /// PostgreSQL admin URL.
    #[arg(long)]
    pub postgres_url: Option<String>,
    /// MySQL/MariaDB admin URL.
    #[arg(long)]
    pub mysql_url: Option<String>,
    /// Redis URL.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// The catalog in PostgreSQL at this URL (else SQLite in the data directory).
    #[arg(long)]
    pub catalog_url: Option<String>,
}

impl Servers {
    /// The flags that pass these on to a `serve` child.
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (flag, url) in [
            ("--postgres-url", &self.postgres_url),
            ("--mysql-url", &self.mysql_url),
            ("--redis-url", &self.redis_url),
            ("--catalog-url", &self.catalog_url),
        ] {
            if let Some(url) = url {
                args.extend([flag.to_owned(), url.clone()]);
            }
        }
        args
    }
}

/// Body of the hidden `serve` subcommand: serve until SIGTERM, or until the parent goes away.
pub fn serve(
    data_dir: PathBuf,
    listen: SocketAddr,
    variant: Variant,
    log_file: &Path,
    servers: Servers,
) -> Result<(), BoxError> {
    // `dbforge-server` logs at info by default (the audit log writes a line per call), so the
    // child does too, into a file: the cost is measured as deployed and the terminal stays
    // readable. The bench reports the file's warnings and errors afterwards.
    let log = std::fs::File::create(log_file)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::sync::Mutex::new(log))
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{READY}{addr}")?;
        out.flush()?;
        drop(out);
        // Authentication stays on, as deployed: every data and control call the bench makes
        // carries this key, so its cost is part of what is measured. The lean gateway has it
        // off (the key the bench still sends is then ignored).
        let cfg = Config {
            data_dir,
            admin_key: std::env::var(ADMIN_KEY_ENV).ok(),
            insecure_no_auth: variant == Variant::Lean,
            disable_audit: variant == Variant::Lean,
            disable_metrics: variant == Variant::Lean,
            postgres_url: servers.postgres_url,
            mysql_url: servers.mysql_url,
            redis_url: servers.redis_url,
            catalog_url: servers.catalog_url,
            // The one setting read from the environment, as dbforge-server reads it, so that
            // phase 16 can be run at another zstd level (BENCHMARKS.md compares them).
            backup_compression_level: std::env::var("DBFORGE_BACKUP_COMPRESSION_LEVEL")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(Config::default().backup_compression_level),
            ..Config::default()
        };
        dbforge_server::server::run(cfg, listener, stop_signal()).await
    })
}

/// Resolves on SIGTERM or when stdin reaches EOF. The parent holds our stdin open for its whole
/// life, so a bench that panics or is killed never leaves an orphaned server behind.
async fn stop_signal() {
    let (tx, rx) = oneshot::channel::<()>();
    thread::spawn(move || {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = rx => {}
            }
        }
        Err(_) => {
            let _ = rx.await;
        }
    }
}

/// A running `serve` child.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

/// Memory figures of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// Resident set size now, in bytes.
    pub rss: u64,
    /// Peak resident set size so far ("high water mark"), in bytes.
    pub hwm: u64,
}

impl ServerProcess {
    /// Starts the gateway in configuration `variant` on an ephemeral port, with its data in
    /// `data_dir`, `admin_key` as its admin API key, its log in `log_file` and `servers` as its
    /// database servers, and waits until it has bound its socket.
    pub fn start(
        data_dir: &Path,
        admin_key: &str,
        variant: Variant,
        log_file: &Path,
        servers: &Servers,
    ) -> Result<Self, BoxError> {
        let exe = std::env::current_exe()?;
        let variant = match variant {
            Variant::Default => "default",
            Variant::Lean => "lean",
        };
        let mut child = Command::new(exe)
            .env(ADMIN_KEY_ENV, admin_key)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--variant", variant])
            .arg("--log-file")
            .arg(log_file)
            .args(servers.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or("the child's stdout was not captured")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix(READY) else {
            let _ = child.kill();
            let status = child.wait()?;
            return Err(format!("the server did not start ({status}); it printed {line:?}").into());
        };
        let addr = addr.parse()?;
        Ok(Self { child, addr })
    }

    /// The address the gateway listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The gateway's current and peak resident memory.
    pub fn memory(&self) -> Result<Memory, BoxError> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        Ok(Memory {
            rss: status_bytes(&status, "VmRSS:", self.pid())?,
            hwm: status_bytes(&status, "VmHWM:", self.pid())?,
        })
    }

    /// Stops the gateway gracefully (SIGTERM, then wait) and says how long that took. After 30 s
    /// it is killed outright and that is an error.
    pub fn stop(mut self) -> Result<Duration, BoxError> {
        let start = Instant::now();
        // The workspace denies unsafe code, so no libc::kill; kill(1) sends the signal instead.
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        if !sent.success() {
            return Err(format!("kill -TERM {} failed: {sent}", self.pid()).into());
        }
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.child.try_wait()? {
                return if status.success() {
                    Ok(start.elapsed())
                } else {
                    Err(format!("the server exited with {status} after SIGTERM").into())
                };
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        Err("the server did not stop within 30 s of SIGTERM and was killed".into())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Only reached when `stop` was not (an early error): do not leave a server running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A memory field of `/proc/<pid>/status` (given in kB there), in bytes.
fn status_bytes(status: &str, name: &str, pid: u32) -> Result<u64, BoxError> {
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))?;
    Ok(kib.parse::<u64>()? * 1024)
}

/// The resident set size of process `pid` now (VmRSS), in bytes.
pub fn resident(pid: u32) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_bytes(&status, "VmRSS:", pid)
}

/// What a gateway log holds: its line count and its WARN and ERROR lines (at most `keep`).
pub fn log_problems(log_file: &Path, keep: usize) -> Result<(usize, usize, Vec<String>), BoxError> {
    let text = std::fs::read_to_string(log_file)?;
    let mut lines = 0;
    let mut problems = 0;
    let mut kept = Vec::new();
    for line in text.lines() {
        lines += 1;
        if line.contains(" WARN ") || line.contains(" ERROR ") {
            problems += 1;
            if kept.len() < keep {
                kept.push(line.to_owned());
            }
        }
    }
    Ok((lines, problems, kept))
}

/// A fresh admin key for one run: 128 random bits from std's randomly seeded hasher (no `rand`
/// crate needed), well above the server's 24-character minimum.
pub fn new_admin_key() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    format!("bench-admin-{:016x}{:016x}", half(), half())
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Result<Duration, BoxError> {
    stat_ticks(pid, 11)
}

/// CPU time (user + system) of this process's children that have ended and been waited for,
/// from `/proc/self/stat` (`cutime`, `cstime`).
pub fn children_cpu_time() -> Result<Duration, BoxError> {
    stat_ticks(std::process::id(), 13)
}

/// The sum of two adjacent tick fields of `/proc/<pid>/stat`, `at` counted after the command
/// name (so `at` 11 is utime and stime, 13 cutime and cstime).
fn stat_ticks(pid: u32, at: usize) -> Result<Duration, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the numeric fields start after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is index 0, so utime (field 14) is index 11 and stime index 12; cutime
    // and cstime follow.
    let ticks = fields
        .get(at)
        .zip(fields.get(at + 1))
        .ok_or("short /proc/<pid>/stat")?;
    let ticks = ticks.0.parse::<u64>()? + ticks.1.parse::<u64>()?;
    // USER_HZ is 100 on every Linux target this runs on (it is fixed by the kernel ABI).
    Ok(Duration::from_millis(ticks * 10))
}
