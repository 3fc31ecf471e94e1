//! `dbforge-bench`: DB-Forge's gateway side by side with the engine it fronts, in one run.
//!
//! ```text
//! cargo run --release -p dbforge-bench                          # full run, table on stdout
//! cargo run --release -p dbforge-bench -- --write BENCHMARKS.md # ...and write the report
//! cargo run --release -p dbforge-bench -- --quick               # smoke run, smaller counts
//! cargo run --release -p dbforge-bench -- --only sdk            # one part: core, transfer,
//!                                                               # backends, sdk, backup, mcp,
//!                                                               # graph or catalog
//! ```
//!
//! The gateway runs in a separate process so its memory can be read from `/proc`: the bench
//! re-executes itself (`std::env::current_exe()`) with the hidden `serve` subcommand, which runs
//! `dbforge_server::server::run` and prints its bound address; the bench connects to that address
//! and stops the process with SIGTERM at the end. The gateway keeps its defaults (authentication,
//! audit log, metrics, info logging into a file); the bench generates an admin key for the run
//! and sends it with every call. A second gateway with authentication, the audit log and metrics off then
//! repeats phases 1, 3 and 4, so the report can say what those cost.
//!
//! Each phase measures the gateway next to a baseline taken in the same run, and the report
//! states ratios against those baselines rather than absolute times, which depend on the
//! machine:
//!
//! 1. floor: a no-op tonic RPC (`grpc.health.v1.Health/Check`);
//! 2. in-process SQLite point query (rusqlite, the gateway's connection settings);
//! 3. gateway point query, sequential, and its ratio to floor + in-process;
//! 4. point-query throughput of 32 concurrent client tasks;
//! 5. single-row INSERT, gateway against in-process;
//! 6. a streamed 1,000,000-row result, gateway against in-process, and the gateway's peak RSS;
//! 7. CreateDatabase latency;
//! 8. the gateway's RSS after 10,000 databases were spawned and queried once;
//! 9. CSV export (`ExportTable`) of a 1,000,000-row table against `sqlite3`, `psql` and the
//!    `mariadb` client on the same table;
//! 10. CSV import (`ImportCsv`) of the same file against `sqlite3 .import`, `psql \copy` and
//!     `LOAD DATA LOCAL INFILE`;
//! 11. PostgreSQL and MariaDB point queries and a streamed result against sqlx in this process
//!     (and PostgreSQL through pgbouncer);
//! 12. Redis GET and SET against redis-rs;
//! 13. CreateDatabase and DeleteDatabase latency per backend;
//! 15. (listed after 13, run with the backends) a batch of 100 single-row INSERTs (Redis: SETs)
//!     through `ExecuteBatch`, with and without a transaction, against the same statements
//!     sent by each engine's driver in this process ([`batches`]);
//! 14. the same streamed result read through each SDK, side by side with the Rust SDK: Python
//!     (sync and asyncio) and TypeScript on Node (gRPC and grpc-web), each SDK's own benchmark
//!     script run as a child process (`sdk-python/bench_stream.py`,
//!     `sdk-typescript/bench/stream.ts`) against the bench's gateway with its admin key;
//! 16. backups: `CreateBackup` and `RestoreBackup` (NEW) of a 1,000,000-row (Redis: key)
//!     database per engine against the engine's own tool on the same data (`sqlite3 .backup` and
//!     `.restore`, `pg_dump -Fc` and `pg_restore`, `mariadb-dump` and `mariadb`, a pipelined
//!     `DUMP` and `RESTORE` loop), the gateway's RSS growth during each call, and point-query
//!     p99 while backups of the same database run against p99 without; and `ForkDatabase` of the
//!     SQLite and PostgreSQL databases against `sqlite3 .backup` and `CREATE DATABASE …
//!     TEMPLATE` ([`backups`]).
//! 17. an MCP `query` tool call over streamable HTTP (`/mcp`) against gRPC `Execute` of the
//!     same point query, alternating call by call on a gateway of its own ([`mcp`]).
//! 18. (bench built with `--features graph`) 1,000,000 triples in a graph database and three
//!     SPARQL queries (a lookup, a 2-hop join, an aggregate) streamed through the gateway
//!     against Oxigraph in this process, on a gateway of its own (`graph`).
//! 19. the catalog in PostgreSQL (`--catalog-url`) against the SQLite catalog: the audited
//!     point query and CreateDatabase on two gateways at once, alternating call by call
//!     ([`catalog`]).
//! 20. PostgreSQL point-query throughput through 1, 2 and 3 gateways sharing one PostgreSQL
//!     catalog, the client load spread over them, with the machine's CPU beside each step
//!     ([`replicas`]).
//!
//! Phases 9 to 13, 15 and 16 run on a third gateway that also fronts the local PostgreSQL,
//! MariaDB and Redis servers ([`transfer`], [`backends`], [`backups`]). Phase 14 ([`sdk`]) runs last on the first
//! gateway, after phase 8, so phases 7 and 8 measure that gateway as before; a client whose
//! runtime is not installed (the `.venv`, `node`, `sdk-typescript/node_modules`) is reported as
//! skipped.
//!
//! This is a benchmark, not a test: nothing fails when a target is missed; the report says
//! PASS or MISS and by how much. Modules: [`workload`] (what runs), [`direct`] (in-process
//! baselines), [`gateway`] (the gRPC phases), [`child`] (the gateway process), [`sdk`] (the
//! SDKs), [`stats`] (percentiles), [`summary`] (results to rows) and [`report`] (markdown).

mod backends;
mod backups;
mod batches;
mod catalog;
mod child;
mod direct;
mod gateway;
#[cfg(feature = "graph")]
mod graph;
mod mcp;
mod replicas;
mod report;
mod sdk;
mod stats;
mod summary;
mod transfer;
mod workload;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};

use crate::{
    backends::BackendResults,
    backups::BackupResults,
    child::{ServerProcess, Servers, Variant, cpu_time},
    report::{Machine, Report, Row, machine_busy, revision},
    sdk::SdkResults,
    summary::{GatewayResults, LeanResults, Outcome},
    transfer::{Engine, TransferResults},
    workload::Plan,
};

/// Any error of the bench, shown as text in the report.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// DB-Forge benchmarks: the gateway side by side with SQLite used directly.
#[derive(Debug, Parser)]
#[command(name = "dbforge-bench")]
struct Cli {
    /// Smoke run: smaller counts, a few seconds per phase at most.
    #[arg(long)]
    quick: bool,
    /// Also write the report to this markdown file (keeping its hand-written Analysis section).
    #[arg(long, value_name = "PATH", conflicts_with = "only")]
    write: Option<PathBuf>,
    /// Rows of the CSV export/import table [default: 1000000; 100000 with --quick].
    #[arg(long, value_name = "N")]
    transfer_rows: Option<u64>,
    /// Rows (Redis: keys) of each backed-up database [default: 1000000; 100000 with --quick].
    #[arg(long, value_name = "N")]
    backup_rows: Option<u64>,
    /// Run one part only (for a quicker look; cannot be combined with --write).
    #[arg(long, value_enum)]
    only: Option<Part>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

/// The parts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    /// Phases 1 to 8: SQLite in process against the gateway, latency, throughput, memory.
    Core,
    /// Phases 9 and 10: CSV export and import against each engine's own tool.
    Transfer,
    /// Phases 11 to 13: PostgreSQL, MariaDB and Redis against their drivers, spawn latency.
    Backends,
    /// Phase 14: a streamed result through the Rust, Python and TypeScript SDKs.
    Sdk,
    /// Phase 16: backup and restore per engine against its own tool, memory, interference.
    Backup,
    /// Phase 17: an MCP `query` tool call over streamable HTTP against gRPC Execute.
    Mcp,
    /// Phase 19: the catalog in PostgreSQL against the SQLite catalog (point query and
    /// CreateDatabase).
    Catalog,
    /// Phase 20: PostgreSQL point-query throughput through 1, 2 and 3 gateways on one catalog.
    Replicas,
    /// Phase 18: SPARQL on 1,000,000 triples through the gateway against Oxigraph in process
    /// (a bench built with `--features graph`).
    #[cfg(feature = "graph")]
    Graph,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Runs the gateway (used by the bench itself, in a child process).
    #[command(hide = true)]
    Serve {
        /// Data directory of the gateway.
        #[arg(long)]
        data_dir: PathBuf,
        /// Address to bind; port 0 picks a free one, printed on stdout.
        #[arg(long)]
        listen: SocketAddr,
        /// Gateway configuration.
        #[arg(long, value_enum)]
        variant: Variant,
        /// Where the gateway's log goes.
        #[arg(long)]
        log_file: PathBuf,
        /// Database servers besides SQLite.
        #[command(flatten)]
        servers: Servers,
    },
}

fn main() -> Result<(), BoxError> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Serve {
            data_dir,
            listen,
            variant,
            log_file,
            servers,
        }) => child::serve(data_dir, listen, variant, &log_file, servers),
        None => {
            let mut plan = Plan::new(cli.quick);
            if let Some(rows) = cli.transfer_rows {
                plan.transfer_rows = rows;
            }
            if let Some(rows) = cli.backup_rows {
                plan.backup_rows = rows;
            }
            bench(plan, cli.only, cli.write.as_deref())
        }
    }
}

/// Prints progress on stderr, so stdout carries only the table.
fn progress(what: &str) {
    eprintln!("dbforge-bench: {what}");
}

fn bench(plan: Plan, only: Option<Part>, write: Option<&Path>) -> Result<(), BoxError> {
    let runs = |part| only.is_none_or(|o| o == part);
    let started = Instant::now();
    let busy_before = machine_busy().ok();
    let tmp = tempfile::tempdir()?;
    let admin_key = child::new_admin_key();
    let mut gateway_cpu = Duration::ZERO;
    let (mut rows, mut notes) = (Vec::new(), Vec::new());
    let mut sdk = None;
    if runs(Part::Core) || runs(Part::Sdk) {
        let parts = (runs(Part::Core), runs(Part::Sdk));
        let (outcome, sdk_results, cpu) = core(&plan, tmp.path(), &admin_key, parts)?;
        gateway_cpu += cpu;
        let phase6 = outcome
            .as_ref()
            .and_then(|o| o.gateway.stream.as_ref().ok().copied());
        if let Some(outcome) = outcome {
            (rows, notes) = outcome.rows_and_notes();
        }
        sdk = sdk_results.map(|s| (s, phase6));
    }
    let mut backup = None;
    if runs(Part::Transfer) || runs(Part::Backends) || runs(Part::Backup) {
        let parts = Parts {
            transfer: runs(Part::Transfer),
            backends: runs(Part::Backends),
            backup: runs(Part::Backup),
        };
        let (transfer, backends, backups, cpu) =
            servers_part(&plan, tmp.path(), &admin_key, parts)?;
        gateway_cpu += cpu;
        backup = backups;
        for (r, n) in [
            transfer.map(|t| summary::transfer_rows_and_notes(&t)),
            backends.map(|b| summary::backend_rows_and_notes(&b)),
        ]
        .into_iter()
        .flatten()
        {
            rows.extend(r);
            notes.extend(n);
        }
    }
    // Phase 14 ran on the first gateway, but its rows come last, in phase order.
    let mut sdk_cpu = Duration::ZERO;
    if let Some((s, phase6)) = sdk {
        let (r, n) = summary::sdk_rows_and_notes(&s, phase6.as_ref());
        rows.extend(r);
        notes.extend(n);
        sdk_cpu = s.children_cpu;
    }
    // Phase 16 ran on the third gateway; its rows come after phase 14's.
    if let Some(b) = &backup {
        let (r, n) = summary::backup_rows_and_notes(b);
        rows.extend(r);
        notes.extend(n);
    }
    if runs(Part::Mcp) {
        let (r, n, cpu) = mcp_part(&plan, tmp.path(), &admin_key)?;
        rows.extend(r);
        notes.extend(n);
        gateway_cpu += cpu;
    }
    #[cfg(feature = "graph")]
    if runs(Part::Graph) {
        let (r, n, cpu) = graph_part(&plan, tmp.path(), &admin_key)?;
        rows.extend(r);
        notes.extend(n);
        gateway_cpu += cpu;
    }
    if runs(Part::Catalog) {
        let (r, n, cpu) = catalog_part(&plan, tmp.path(), &admin_key)?;
        rows.extend(r);
        notes.extend(n);
        gateway_cpu += cpu;
    }
    if runs(Part::Replicas) {
        let (r, n, cpu) = replicas_part(&plan, tmp.path(), &admin_key)?;
        rows.extend(r);
        notes.extend(n);
        gateway_cpu += cpu;
    }
    // The SDK scripts are the bench's own work too, not other load.
    let own_cpu = cpu_time(std::process::id())? + gateway_cpu + sdk_cpu;
    let wall = started.elapsed();
    let other_cpu = busy_before
        .zip(machine_busy().ok())
        .map(|(before, after)| after.saturating_sub(before).saturating_sub(own_cpu));
    let report = Report {
        command: command_line(),
        date: now_utc(),
        machine: Machine::probe(),
        quick: plan.quick,
        revision: revision(),
        wall,
        other_cpu,
        rows,
        notes,
    };
    println!("{}", report.table());
    for note in &report.notes {
        println!("- {note}");
    }
    if let Some(path) = write {
        report.write(path)?;
        progress(&format!("wrote {}", path.display()));
    }
    Ok(())
}

/// Phases 1 to 8 (`with_core`): the in-process baselines, the default gateway, then the lean
/// one; and phase 14 (`with_sdk`) on the default gateway after phase 8. Returns what they
/// measured and the CPU the gateways used.
fn core(
    plan: &Plan,
    tmp: &Path,
    admin_key: &str,
    (with_core, with_sdk): (bool, bool),
) -> Result<(Option<Outcome>, Option<SdkResults>, Duration), BoxError> {
    let direct_dir = tmp.join("direct");
    std::fs::create_dir_all(&direct_dir)?;

    // The baselines run first, while no gateway exists yet to compete for the cores.
    let direct = with_core.then(|| {
        progress("in-process SQLite baselines");
        direct::run(&direct_dir, plan).map_err(|e| e.to_string())
    });

    progress("starting the gateway process (default configuration)");
    let log = tmp.join("gateway.log");
    let server = ServerProcess::start(
        &tmp.join("gateway"),
        admin_key,
        Variant::Default,
        &log,
        &Servers::default(),
    )?;
    let gateway = if with_core {
        Some(on_runtime(gateway_phases(&server, admin_key, plan))?)
    } else {
        None
    };
    let sdk = with_sdk.then(|| {
        let target = sdk::Target {
            addr: server.addr(),
            key: admin_key,
            pid: server.pid(),
        };
        sdk::run(target, plan.sdk_rows, plan.sdk_runs)
    });
    let mut gateway_cpu = cpu_time(server.pid())?;
    progress("stopping the gateway (SIGTERM)");
    let stopped = server.stop().map_err(|e| e.to_string());
    let (Some(direct), Some(gateway)) = (direct, gateway) else {
        if let Err(e) = stopped {
            progress(&format!("the gateway did not stop cleanly: {e}"));
        }
        return Ok((None, sdk, gateway_cpu));
    };

    progress("starting a second gateway with authentication, the audit log and metrics off");
    let lean_log = tmp.join("gateway-lean.log");
    let channels = gateway.best_channels().unwrap_or(1);
    let lean = match ServerProcess::start(
        &tmp.join("gateway-lean"),
        admin_key,
        Variant::Lean,
        &lean_log,
        &Servers::default(),
    ) {
        Ok(server) => {
            let lean = on_runtime(lean_phases(&server, admin_key, plan, channels))?;
            gateway_cpu += cpu_time(server.pid())?;
            progress("stopping the second gateway (SIGTERM)");
            if let Err(e) = server.stop() {
                progress(&format!("the second gateway did not stop cleanly: {e}"));
            }
            lean
        }
        Err(e) => LeanResults::failed(&format!("the second gateway did not start: {e}")),
    };
    let outcome = Outcome {
        plan: plan.clone(),
        direct,
        gateway,
        lean,
        stopped,
        log: child::log_problems(&log, 5).map_err(|e| e.to_string()),
    };
    Ok((Some(outcome), sdk, gateway_cpu))
}

/// Which of the third gateway's parts run.
#[derive(Debug, Clone, Copy)]
struct Parts {
    /// Phases 9 and 10.
    transfer: bool,
    /// Phases 11 to 13 and 15.
    backends: bool,
    /// Phase 16.
    backup: bool,
}

/// What the third gateway's parts measured (those that ran), and the CPU the gateway used.
type ServersOutcome = (
    Option<TransferResults>,
    Option<BackendResults>,
    Option<BackupResults>,
    Duration,
);

/// Phases 9 to 13, 15 and 16 (those of `parts`) on a third gateway (default configuration)
/// that also fronts the local PostgreSQL, MariaDB and Redis servers. An engine whose server is
/// unreachable is reported as failed.
fn servers_part(
    plan: &Plan,
    tmp: &Path,
    admin_key: &str,
    parts: Parts,
) -> Result<ServersOutcome, BoxError> {
    let Parts {
        transfer: with_transfer,
        backends: with_backends,
        backup: with_backup,
    } = parts;
    let (rows, runs) = (plan.transfer_rows, plan.transfer_runs);
    let up = |addr: &str| {
        if transfer::reachable(addr) {
            Ok(())
        } else {
            Err(format!("{addr} unreachable"))
        }
    };
    let available = backends::Available {
        postgres: up(Engine::Postgres.server().unwrap_or_default()),
        mysql: up(Engine::Mysql.server().unwrap_or_default()),
        redis: up(backends::REDIS_ADDR),
    };
    let servers = Servers {
        postgres_url: available
            .postgres
            .is_ok()
            .then(|| transfer::POSTGRES_URL.into()),
        mysql_url: available.mysql.is_ok().then(|| transfer::MYSQL_URL.into()),
        redis_url: available.redis.is_ok().then(|| backends::REDIS_URL.into()),
        catalog_url: None,
    };
    let engines: Vec<(Engine, Result<(), String>)> = vec![
        (Engine::Sqlite, Ok(())),
        (Engine::Postgres, available.postgres.clone()),
        (Engine::Mysql, available.mysql.clone()),
    ];
    let csv = transfer::csv_path(tmp);
    let csv_bytes = if with_transfer {
        progress(&format!("writing the {rows}-row CSV file"));
        transfer::write_csv(&csv, rows)?
    } else {
        0
    };
    // Phase 16 loads the same file when it has as many rows, and its own otherwise.
    let backup_csv = if with_backup && !(with_transfer && plan.backup_rows == rows) {
        let path = tmp.join("backup.csv");
        progress(&format!("writing the {}-row CSV file", plan.backup_rows));
        transfer::write_csv(&path, plan.backup_rows)?;
        path
    } else {
        csv.clone()
    };
    let backup_counts = backups::Counts {
        rows: plan.backup_rows,
        warmup: plan.warmup / 10,
        point_iters: plan.backup_point_iters,
    };
    let counts = backends::Counts {
        // A tenth of phase 3's calls: MariaDB's gateway point query takes tens of milliseconds
        // (see the Analysis), and 2,000 calls still give stable percentiles.
        warmup: plan.warmup / 10,
        iters: plan.point_iters / 10,
        stream_rows: plan.stream_rows,
        stream_runs: plan.stream_runs,
        spawns: plan.backend_spawns,
        batch_rounds: if plan.quick { 3 } else { 20 },
    };
    progress("starting a third gateway, with the PostgreSQL, MariaDB and Redis backends");
    let data_dir = tmp.join("gateway-servers");
    let log = tmp.join("gateway-servers.log");
    let server = match ServerProcess::start(&data_dir, admin_key, Variant::Default, &log, &servers)
    {
        Ok(s) => s,
        Err(e) => {
            let why = format!("the third gateway did not start: {e}");
            return Ok((
                with_transfer.then(|| TransferResults::failed(rows, runs, &why)),
                with_backends.then(|| BackendResults::failed(counts.stream_rows, &why)),
                with_backup.then(|| BackupResults::failed(backup_counts.rows, &why)),
                Duration::ZERO,
            ));
        }
    };
    let (engines, backend_results, backup_results) = on_runtime(async {
        match gateway::Conn::open(server.addr(), admin_key).await {
            Ok(conn) => {
                let conn = conn.at(&data_dir);
                let target = transfer::Target {
                    conn: &conn,
                    pid: server.pid(),
                    data_dir: &data_dir,
                };
                let t = if with_transfer {
                    Some(transfer::run(target, &engines, &csv, rows, runs).await)
                } else {
                    None
                };
                let b = if with_backends {
                    Some(backends::run(&conn, server.pid(), &available, counts, tmp).await)
                } else {
                    None
                };
                let k = if with_backup {
                    // The backups that run beside point queries use a connection of their own,
                    // as another client would.
                    Some(match gateway::Conn::open(server.addr(), admin_key).await {
                        Ok(other) => {
                            let target = backups::Target {
                                conn: &conn,
                                other: &other,
                                pid: server.pid(),
                                data_dir: &data_dir,
                            };
                            let dir = tmp.join("backups-native");
                            backups::run(target, &available, &backup_csv, backup_counts, &dir).await
                        }
                        Err(e) => BackupResults::failed(
                            backup_counts.rows,
                            &format!("cannot open a second connection to the third gateway: {e}"),
                        ),
                    })
                } else {
                    None
                };
                (t, b, k)
            }
            Err(e) => {
                let why = format!("cannot connect to the third gateway: {e}");
                (
                    with_transfer.then(|| {
                        engines
                            .iter()
                            .map(|(e, _)| (*e, Err(why.clone())))
                            .collect()
                    }),
                    with_backends.then(|| BackendResults::failed(counts.stream_rows, &why)),
                    with_backup.then(|| BackupResults::failed(backup_counts.rows, &why)),
                )
            }
        }
    })?;
    let cpu = cpu_time(server.pid())?;
    progress("stopping the third gateway (SIGTERM)");
    if let Err(e) = server.stop() {
        progress(&format!("the third gateway did not stop cleanly: {e}"));
    }
    let transfer = engines.map(|engines| TransferResults {
        rows,
        csv_bytes,
        runs,
        engines,
    });
    Ok((transfer, backend_results, backup_results, cpu))
}

/// Every gateway phase, in order. A failing phase is recorded and the others still run, so one
/// server bug does not hide the rest of the numbers.
async fn gateway_phases(server: &ServerProcess, key: &str, plan: &Plan) -> GatewayResults {
    let memory = || server.memory().map_err(|e| e.to_string());
    let mut out = GatewayResults::new(memory());
    let conn = match gateway::Conn::open(server.addr(), key).await {
        Ok(c) => c,
        Err(e) => {
            out.fail_all(&format!("cannot connect to the gateway: {e}"));
            return out;
        }
    };
    let text = |e: BoxError| e.to_string();

    progress("setup: spawning the bench database and its 10,000-row table");
    if let Err(e) = gateway::prepare(&conn).await {
        out.fail_prepared(&format!("setup failed: {e}"));
    } else {
        progress("1 and 3. floor (Health/Check) and gateway point queries, alternating");
        match gateway::floor_and_point(&conn, plan).await {
            Ok((floor, point)) => (out.floor, out.point) = (Ok(floor), Ok(point)),
            Err(e) => (out.floor, out.point) = (Err(e.to_string()), Err(e.to_string())),
        }
        progress("4. throughput, one shared channel");
        out.shared = gateway::throughput(std::slice::from_ref(&conn), plan, server.pid())
            .await
            .map_err(text);
        progress("4. throughput, several channels");
        out.multi = multi_channel(server.addr(), key, plan, server.pid())
            .await
            .map_err(text);
        progress("5. single-row inserts");
        out.insert = gateway::insert(&conn, plan).await.map_err(text);
        progress("6. streamed result");
        out.stream = gateway::stream(&conn, plan, server.pid())
            .await
            .map_err(text);
        out.after_stream = memory();
    }
    progress("7. spawn latency");
    out.spawn = gateway::spawn(&conn, plan).await.map_err(text);
    progress(&format!(
        "8. spawning and querying {} databases",
        plan.fleet
    ));
    out.fleet = gateway::fleet(&conn, plan).await.map_err(text);
    out.after_fleet = memory();
    out
}

/// The second gateway (authentication, audit log and metrics off): the same point queries and throughput, over
/// `channels` connections (whichever count did better on the first).
async fn lean_phases(
    server: &ServerProcess,
    key: &str,
    plan: &Plan,
    channels: usize,
) -> LeanResults {
    let result = async {
        let mut conns = Vec::with_capacity(channels);
        for _ in 0..channels.max(1) {
            conns.push(gateway::Conn::open(server.addr(), key).await?);
        }
        gateway::prepare(&conns[0]).await?;
        progress("1 and 3 again, auth, audit log and metrics off");
        let (floor, point) = gateway::floor_and_point(&conns[0], plan).await?;
        progress("4 again, auth, audit log and metrics off");
        let throughput = gateway::throughput(&conns, plan, server.pid()).await?;
        Ok::<_, BoxError>(LeanResults {
            floor: Ok(floor),
            point: Ok(point),
            throughput: Ok(throughput),
        })
    };
    result
        .await
        .unwrap_or_else(|e| LeanResults::failed(&e.to_string()))
}

/// Runs `f` on a fresh multi-threaded runtime. Dropping the runtime afterwards closes every
/// connection it held, so a gateway stopped next has no client left to wait for.
/// Phase 17 on a gateway of its own (default configuration: keys, audit log and metrics on, as
/// an agent meets it): rows, notes and the gateway's CPU.
fn mcp_part(
    plan: &Plan,
    tmp: &Path,
    admin_key: &str,
) -> Result<(Vec<Row>, Vec<String>, Duration), BoxError> {
    progress("starting a gateway for the MCP phase");
    let server = ServerProcess::start(
        &tmp.join("gateway-mcp"),
        admin_key,
        Variant::Default,
        &tmp.join("gateway-mcp.log"),
        &Servers::default(),
    )?;
    progress("MCP query tool calls against gRPC Execute");
    let measured = on_runtime(mcp::run(server.addr(), admin_key, plan))?;
    let cpu = cpu_time(server.pid())?;
    if let Err(e) = server.stop() {
        progress(&format!(
            "the MCP phase's gateway did not stop cleanly: {e}"
        ));
    }
    let (rows, notes) = mcp::rows_and_notes(measured.map_err(|e| e.to_string()));
    Ok((rows, notes, cpu))
}

/// Phase 19 on two gateways of its own, one on each catalog: rows, notes and their CPU.
fn catalog_part(
    plan: &Plan,
    tmp: &Path,
    admin_key: &str,
) -> Result<(Vec<Row>, Vec<String>, Duration), BoxError> {
    if !transfer::reachable(Engine::Postgres.server().unwrap_or_default()) {
        let (rows, notes) =
            catalog::rows_and_notes(Err("the PostgreSQL server is unreachable".into()));
        return Ok((rows, notes, Duration::ZERO));
    }
    progress("creating the PostgreSQL catalog database");
    let url = on_runtime(catalog::fresh_catalog(transfer::POSTGRES_URL))??;
    progress("starting two gateways: SQLite catalog and PostgreSQL catalog");
    let lite = ServerProcess::start(
        &tmp.join("gateway-catalog-sqlite"),
        admin_key,
        Variant::Default,
        &tmp.join("gateway-catalog-sqlite.log"),
        &Servers::default(),
    )?;
    let pg = ServerProcess::start(
        &tmp.join("gateway-catalog-postgres"),
        admin_key,
        Variant::Default,
        &tmp.join("gateway-catalog-postgres.log"),
        &Servers {
            catalog_url: Some(url),
            ..Servers::default()
        },
    )?;
    progress("audited point queries and CreateDatabase on both catalogs");
    let measured = on_runtime(catalog::run(lite.addr(), pg.addr(), admin_key, plan))?;
    let cpu = cpu_time(lite.pid())? + cpu_time(pg.pid())?;
    for server in [lite, pg] {
        if let Err(e) = server.stop() {
            progress(&format!(
                "a catalog phase gateway did not stop cleanly: {e}"
            ));
        }
    }
    let (rows, notes) = catalog::rows_and_notes(measured.map_err(|e| e.to_string()));
    Ok((rows, notes, cpu))
}

/// Phase 20 on three gateways of its own sharing a PostgreSQL catalog: rows, notes and their
/// CPU.
fn replicas_part(
    plan: &Plan,
    tmp: &Path,
    admin_key: &str,
) -> Result<(Vec<Row>, Vec<String>, Duration), BoxError> {
    if !transfer::reachable(Engine::Postgres.server().unwrap_or_default()) {
        let (rows, notes) =
            replicas::rows_and_notes(Err("the PostgreSQL server is unreachable".into()));
        return Ok((rows, notes, Duration::ZERO));
    }
    progress("creating the PostgreSQL catalog database");
    let url = on_runtime(catalog::fresh_catalog(transfer::POSTGRES_URL))??;
    progress("starting three gateways on one PostgreSQL catalog");
    let mut gateways = Vec::new();
    for name in ["a", "b", "c"] {
        gateways.push(ServerProcess::start(
            &tmp.join(format!("gateway-replica-{name}")),
            admin_key,
            Variant::Default,
            &tmp.join(format!("gateway-replica-{name}.log")),
            &Servers {
                postgres_url: Some(transfer::POSTGRES_URL.to_owned()),
                catalog_url: Some(url.clone()),
                ..Servers::default()
            },
        )?);
    }
    progress("PostgreSQL point queries through 1, 2 and 3 gateways");
    let addrs: Vec<SocketAddr> = gateways.iter().map(ServerProcess::addr).collect();
    let pids: Vec<u32> = gateways.iter().map(ServerProcess::pid).collect();
    let measured = on_runtime(replicas::run(&addrs, &pids, admin_key, plan))?;
    let mut cpu = Duration::ZERO;
    for pid in &pids {
        cpu += cpu_time(*pid)?;
    }
    for server in gateways {
        if let Err(e) = server.stop() {
            progress(&format!(
                "a replica phase gateway did not stop cleanly: {e}"
            ));
        }
    }
    let (rows, notes) = replicas::rows_and_notes(measured.map_err(|e| e.to_string()));
    Ok((rows, notes, cpu))
}

/// Phase 18 on a gateway of its own (default configuration): rows, notes and the gateway's CPU.
#[cfg(feature = "graph")]
fn graph_part(
    plan: &Plan,
    tmp: &Path,
    admin_key: &str,
) -> Result<(Vec<Row>, Vec<String>, Duration), BoxError> {
    progress("starting a gateway for the graph phase");
    let server = ServerProcess::start(
        &tmp.join("gateway-graph"),
        admin_key,
        Variant::Default,
        &tmp.join("gateway-graph.log"),
        &Servers::default(),
    )?;
    progress("SPARQL on 1,000,000 triples: gateway against Oxigraph in process");
    let dir = tmp.join("graph-direct");
    std::fs::create_dir_all(&dir)?;
    let measured = on_runtime(graph::run(server.addr(), admin_key, plan, &dir))?;
    let cpu = cpu_time(server.pid())?;
    if let Err(e) = server.stop() {
        progress(&format!(
            "the graph phase's gateway did not stop cleanly: {e}"
        ));
    }
    let (rows, notes) = graph::rows_and_notes(measured.map_err(|e| e.to_string()));
    Ok((rows, notes, cpu))
}

fn on_runtime<F: Future>(f: F) -> Result<F::Output, BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(f))
}

/// Throughput over `plan.throughput_channels` separate connections: one HTTP/2 connection
/// serialises its frames through one socket and one server task, which several avoid.
async fn multi_channel(
    addr: SocketAddr,
    key: &str,
    plan: &Plan,
    pid: u32,
) -> Result<gateway::Throughput, BoxError> {
    let mut conns = Vec::with_capacity(plan.throughput_channels);
    for _ in 0..plan.throughput_channels {
        conns.push(gateway::Conn::open(addr, key).await?);
    }
    gateway::throughput(&conns, plan, pid).await
}

/// The command as a reader would retype it.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cmd = String::from("cargo run --release -p dbforge-bench");
    if !args.is_empty() {
        cmd.push_str(" -- ");
        cmd.push_str(&args.join(" "));
    }
    cmd
}

fn now_utc() -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::now_utc()
        .format(fmt)
        .unwrap_or_else(|_| "unknown".into())
}

/// Memory in megabytes (10^6 bytes), the unit of the issue's targets.
pub fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}
