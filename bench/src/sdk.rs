//! Phase 14: one streamed result read through each SDK, against the same gateway, one client
//! at a time: the Rust SDK (the `dbforge` crate) in this process, then the Python SDK (sync and
//! asyncio) and the TypeScript SDK on Node (gRPC and grpc-web) in child processes running the
//! SDKs' own benchmark scripts, `sdk-python/bench_stream.py` and `sdk-typescript/bench/stream.ts`.
//!
//! Every client runs [`SDK_STREAM_QUERY`] with the same row count, in a database of its own that
//! it spawns and deletes, reads each row as its SDK hands it over, checks the row count and the
//! sum of the first column, and times `runs` streams; the best counts. The scripts print one JSON
//! line per run (rows, seconds, and the CPU their process used in that run), which this module
//! reads. The endpoint goes on their command line and the admin key in `DBFORGE_API_KEY`, where
//! both SDKs look for it (so it never shows in `ps`).
//!
//! A client whose runtime is not installed (no `.venv`, no `node`, no
//! `sdk-typescript/node_modules`) is skipped with the reason; the rest of the run goes on.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use futures::StreamExt as _;

use crate::{
    BoxError,
    child::{children_cpu_time, cpu_time},
    workload::SDK_STREAM_QUERY,
};

/// The clients, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// The `dbforge` crate, in this process.
    Rust,
    /// `dbforge.Client` (grpcio, blocking).
    PythonSync,
    /// `dbforge.AsyncClient` (grpc.aio).
    PythonAsync,
    /// `connect()` from `@dbforge/sdk/node`: gRPC over HTTP/2 (connect-node).
    NodeGrpc,
    /// The same with `protocol: "grpc-web"` (HTTP/1.1), as browsers speak it.
    NodeGrpcWeb,
}

impl Client {
    /// Every client, in the order they run.
    pub const ALL: [Self; 5] = [
        Self::Rust,
        Self::PythonSync,
        Self::PythonAsync,
        Self::NodeGrpc,
        Self::NodeGrpcWeb,
    ];

    /// Its name in the report.
    pub fn label(self) -> &'static str {
        match self {
            Self::Rust => "Rust SDK (dbforge crate)",
            Self::PythonSync => "Python SDK, sync (grpcio)",
            Self::PythonAsync => "Python SDK, asyncio (grpc.aio)",
            Self::NodeGrpc => "TypeScript SDK on Node, gRPC",
            Self::NodeGrpcWeb => "TypeScript SDK on Node, grpc-web (HTTP/1.1)",
        }
    }
}

/// The best of one client's runs.
#[derive(Debug, Clone, Copy)]
pub struct SdkRun {
    /// Rows read.
    pub rows: u64,
    /// From sending the query to having read its last row.
    pub elapsed: Duration,
    /// CPU the client's process used meanwhile (every thread).
    pub client_cpu: Duration,
    /// CPU the gateway used per row over all of this client's runs (its setup included, which
    /// is negligible next to the rows).
    pub gateway_ns_per_row: Option<f64>,
}

impl SdkRun {
    /// Rows per second.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64()
    }

    /// The client's CPU per row, in nanoseconds.
    pub fn client_ns_per_row(&self) -> f64 {
        self.client_cpu.as_secs_f64() * 1e9 / self.rows.max(1) as f64
    }

    /// How many cores the client kept busy on average.
    pub fn client_cores(&self) -> f64 {
        self.client_cpu.as_secs_f64() / self.elapsed.as_secs_f64()
    }
}

/// Why a client has no result.
#[derive(Debug, Clone)]
pub enum Missing {
    /// Its runtime or dependencies are not installed here.
    Skipped(String),
    /// It ran and failed.
    Failed(String),
}

/// What phase 14 measured.
#[derive(Debug)]
pub struct SdkResults {
    /// Rows of the streamed result.
    pub rows: u64,
    /// Streams each client read.
    pub runs: usize,
    /// Each client's best run, in [`Client::ALL`] order.
    pub clients: Vec<(Client, Result<SdkRun, Missing>)>,
    /// CPU the scripts' processes used in all (start-up included), so the report does not
    /// count it as other load on the machine.
    pub children_cpu: Duration,
}

impl SdkResults {
    /// The result of `client`.
    pub fn get(&self, client: Client) -> Option<&Result<SdkRun, Missing>> {
        self.clients
            .iter()
            .find_map(|(c, r)| (*c == client).then_some(r))
    }
}

/// The gateway phase 14 reads from.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// Its admin key.
    pub key: &'a str,
    /// Its process id (for its CPU time).
    pub pid: u32,
}

/// Runs every client in turn against `target`: `runs` streams of `rows` rows each.
pub fn run(target: Target<'_>, rows: u64, runs: usize) -> SdkResults {
    let root = repo_root();
    let children0 = children_cpu_time().unwrap_or_default();
    let clients = Client::ALL
        .into_iter()
        .map(|client| {
            crate::progress(&format!(
                "14. {}: {runs} streams of {rows} rows",
                client.label()
            ));
            let result = match client {
                Client::Rust => {
                    rust(target, rows, runs).map_err(|e| Missing::Failed(e.to_string()))
                }
                _ => script(&root, client, target, rows, runs),
            };
            (client, result)
        })
        .collect();
    SdkResults {
        rows,
        runs,
        clients,
        children_cpu: children_cpu_time()
            .unwrap_or_default()
            .saturating_sub(children0),
    }
}

/// The workspace root, where the SDKs live: the bench crate's parent directory.
fn repo_root() -> PathBuf {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).to_path_buf()
}

/// The Rust SDK, on its own connection from this process.
fn rust(target: Target<'_>, rows: u64, runs: usize) -> Result<SdkRun, BoxError> {
    crate::on_runtime(async {
        let opts =
            dbforge::ClientOptions::new(format!("http://{}", target.addr)).api_key(target.key);
        let client = dbforge::Client::connect_with(opts).await?;
        let db = format!("bench-rs-{}", std::process::id());
        client
            .create_database(&db, dbforge::CreateOptions::default().if_not_exists())
            .await?;
        let gateway0 = cpu_time(target.pid)?;
        let measured = rust_runs(&client, &db, rows, runs).await;
        let gateway = cpu_time(target.pid)?.saturating_sub(gateway0);
        client.delete_database(&db).await?;
        let mut best = measured?;
        best.gateway_ns_per_row = Some(per_row(gateway, rows, runs));
        Ok(best)
    })?
}

async fn rust_runs(
    client: &dbforge::Client,
    db: &str,
    rows: u64,
    runs: usize,
) -> Result<SdkRun, BoxError> {
    let params = [dbforge::Value::Int(i64::try_from(rows)?)];
    let mut best: Option<SdkRun> = None;
    for _ in 0..runs {
        let (start, cpu0) = (Instant::now(), cpu_time(std::process::id())?);
        let mut stream = client.query(db, SDK_STREAM_QUERY, &params).await?;
        let (mut n, mut sum, mut text_bytes, mut floats) = (0u64, 0i64, 0usize, 0f64);
        while let Some(row) = stream.next().await {
            let row = row?;
            n += 1;
            // Every cell, as the scripts' SDKs decode every cell before handing a row over.
            for cell in row.values() {
                match cell {
                    dbforge::Value::Int(x) => sum = sum.wrapping_add(*x),
                    dbforge::Value::Text(s) => text_bytes += s.len(),
                    dbforge::Value::Float(f) => floats += f,
                    other => return Err(format!("unexpected cell {other:?}").into()),
                }
            }
        }
        let (elapsed, cpu) = (
            start.elapsed(),
            cpu_time(std::process::id())?.saturating_sub(cpu0),
        );
        std::hint::black_box((text_bytes, floats));
        check(n, sum, rows)?;
        let run = SdkRun {
            rows: n,
            elapsed,
            client_cpu: cpu,
            gateway_ns_per_row: None,
        };
        if best.is_none_or(|b| run.elapsed < b.elapsed) {
            best = Some(run);
        }
    }
    best.ok_or_else(|| "no runs".into())
}

/// The scripts' own check: every row, and the first column sums to 1 + 2 + … + rows.
fn check(n: u64, sum: i64, rows: u64) -> Result<(), BoxError> {
    let want = i128::from(rows) * (i128::from(rows) + 1) / 2;
    if n != rows || i128::from(sum) != want {
        return Err(format!("wrong result: {n} rows, sum {sum}").into());
    }
    Ok(())
}

fn per_row(cpu: Duration, rows: u64, runs: usize) -> f64 {
    cpu.as_secs_f64() * 1e9 / (rows as f64 * runs.max(1) as f64)
}

/// The command that runs `client`'s script, or why it cannot run here.
fn command(root: &Path, client: Client, rows: u64, runs: usize) -> Result<Command, String> {
    let (rows, runs) = (rows.to_string(), runs.to_string());
    let missing = |what: &Path, fix: &str| {
        format!(
            "{} is missing ({fix})",
            what.strip_prefix(root).unwrap_or(what).display()
        )
    };
    match client {
        Client::Rust => Err("the Rust SDK runs in process".into()),
        Client::PythonSync | Client::PythonAsync => {
            let python = root.join(".venv/bin/python");
            let script = root.join("sdk-python/bench_stream.py");
            if !python.exists() {
                return Err(missing(
                    &python,
                    "python3 -m venv .venv && .venv/bin/pip install -e 'sdk-python[dev]'",
                ));
            }
            if !script.exists() {
                return Err(missing(&script, "the Python SDK is not checked out"));
            }
            let mut cmd = Command::new(python);
            cmd.arg(script)
                .args(["--rows", &rows, "--runs", &runs])
                .current_dir(root);
            if client == Client::PythonAsync {
                cmd.arg("--async");
            }
            Ok(cmd)
        }
        Client::NodeGrpc | Client::NodeGrpcWeb => {
            let dir = root.join("sdk-typescript");
            let tsx = dir.join("node_modules/tsx");
            if !tsx.exists() {
                return Err(missing(&tsx, "cd sdk-typescript && npm ci"));
            }
            let node = Command::new("node").arg("--version").output();
            if !node.is_ok_and(|o| o.status.success()) {
                return Err("node is not on PATH".into());
            }
            let protocol = if client == Client::NodeGrpc {
                "grpc"
            } else {
                "grpc-web"
            };
            let mut cmd = Command::new("node");
            cmd.args(["--import", "tsx", "bench/stream.ts"])
                .args(["--rows", &rows, "--runs", &runs, "--protocol", protocol])
                .current_dir(dir);
            Ok(cmd)
        }
    }
}

/// Runs `client`'s script against the gateway and returns its best run.
fn script(
    root: &Path,
    client: Client,
    target: Target<'_>,
    rows: u64,
    runs: usize,
) -> Result<SdkRun, Missing> {
    let mut cmd = command(root, client, rows, runs).map_err(Missing::Skipped)?;
    let endpoint = format!("http://{}", target.addr);
    cmd.args(["--endpoint", &endpoint])
        .env("DBFORGE_ENDPOINT", &endpoint)
        .env("DBFORGE_API_KEY", target.key);
    let failed = |e: BoxError| Missing::Failed(format!("{}: {e}", client.label()));
    let gateway0 = cpu_time(target.pid).map_err(failed)?;
    // Slower than 20,000 rows/s, or a minute of start-up and setup, is a hang, not a result.
    let limit = Duration::from_secs(60 + rows * runs as u64 / 20_000);
    let stdout = run_child(cmd, limit).map_err(failed)?;
    let gateway = cpu_time(target.pid)
        .map_err(failed)?
        .saturating_sub(gateway0);
    let mut best = best_run(&stdout, rows, runs).map_err(failed)?;
    best.gateway_ns_per_row = Some(per_row(gateway, rows, runs));
    Ok(best)
}

/// Runs `cmd` to its end (killing it after `limit`) and returns its stdout; a failure carries
/// the end of its stderr.
fn run_child(mut cmd: Command, limit: Duration) -> Result<String, BoxError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Both pipes are drained on threads, so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Ok(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break Err(format!("killed after {} s", limit.as_secs()));
        }
        thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    let tail = || {
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(3)..].join(" / ")
    };
    match status {
        Ok(s) if s.success() => Ok(out),
        Ok(s) => Err(format!("exited with {s}: {}", tail()).into()),
        Err(why) => Err(format!("{why}: {}", tail()).into()),
    }
}

/// The fastest of the JSON lines a script printed, one per run.
fn best_run(stdout: &str, rows: u64, runs: usize) -> Result<SdkRun, BoxError> {
    let mut best: Option<SdkRun> = None;
    let mut seen = 0;
    for line in stdout.lines().filter(|l| l.trim_start().starts_with('{')) {
        let json: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{e} in {line:?}"))?;
        let field = |key: &str| {
            json.get(key)
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| format!("no number {key:?} in {line:?}"))
        };
        let (n, secs, cpu) = (field("rows")?, field("seconds")?, field("cpu_seconds")?);
        if n != rows as f64 || secs <= 0.0 {
            return Err(format!("expected {rows} rows in a positive time: {line:?}").into());
        }
        seen += 1;
        let run = SdkRun {
            rows,
            elapsed: Duration::from_secs_f64(secs),
            client_cpu: Duration::from_secs_f64(cpu.max(0.0)),
            gateway_ns_per_row: None,
        };
        if best.is_none_or(|b| run.elapsed < b.elapsed) {
            best = Some(run);
        }
    }
    if seen != runs {
        return Err(format!("expected {runs} JSON lines, got {seen}: {stdout:?}").into());
    }
    best.ok_or_else(|| "no runs".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::stream_query;

    #[test]
    fn same_rows_as_phase_6() {
        // Bound or inlined, the row count is the only difference to phase 6's query.
        assert_eq!(SDK_STREAM_QUERY.replace('?', "1000"), stream_query(1000));
        let ts = std::fs::read_to_string(repo_root().join("sdk-typescript/bench/stream.ts"))
            .expect("the TypeScript script");
        assert!(
            ts.contains(SDK_STREAM_QUERY),
            "stream.ts runs another query"
        );
        let py = std::fs::read_to_string(repo_root().join("sdk-python/bench_stream.py"))
            .expect("the Python script");
        let (head, tail) =
            SDK_STREAM_QUERY.split_at(SDK_STREAM_QUERY.find("SELECT x,").expect("a SELECT"));
        assert!(
            py.contains(head) && py.contains(tail),
            "bench_stream.py runs another query"
        );
    }

    #[test]
    fn missing_runtimes_are_skipped() {
        let empty = tempfile::tempdir().expect("a temp dir");
        let target = Target {
            addr: ([127, 0, 0, 1], 1).into(),
            key: "unused",
            pid: std::process::id(),
        };
        for (client, missing) in [
            (Client::PythonSync, ".venv/bin/python is missing"),
            (Client::PythonAsync, ".venv/bin/python is missing"),
            (
                Client::NodeGrpc,
                "sdk-typescript/node_modules/tsx is missing",
            ),
            (
                Client::NodeGrpcWeb,
                "sdk-typescript/node_modules/tsx is missing",
            ),
        ] {
            match script(empty.path(), client, target, 10, 1) {
                Err(Missing::Skipped(why)) => assert!(why.starts_with(missing), "{why}"),
                other => panic!("{client:?}: expected a skip, got {other:?}"),
            }
        }
    }

    #[test]
    fn reads_the_scripts_lines() {
        let out = "{\"sdk\": \"python\", \"mode\": \"sync\", \"run\": 0, \"rows\": 1000, \
                   \"seconds\": 0.5, \"rows_per_s\": 2000, \"cpu_seconds\": 0.45}\n\
                   {\"sdk\":\"typescript\",\"run\":1,\"rows\":1000,\"seconds\":0.25,\
                   \"rows_per_s\":4000,\"cpu_seconds\":2.5e-1}\n\
                   python (sync): best 4,000 rows/s over 2 runs of 1,000 rows\n";
        let best = best_run(out, 1000, 2).expect("two good lines");
        assert_eq!(best.elapsed, Duration::from_millis(250));
        assert!((best.rows_per_sec() - 4000.0).abs() < 1e-6);
        assert!((best.client_cores() - 1.0).abs() < 1e-9);
        assert!(best_run(out, 1000, 3).is_err(), "a missing run is an error");
        assert!(
            best_run(out, 999, 2).is_err(),
            "a wrong row count is an error"
        );
    }
}
