//! What every phase runs: the SQL (identical for the gateway and for in-process SQLite) and how
//! many times, for the full run and for `--quick`.

use std::time::Duration;

/// Rows in the point-query table.
pub const POINT_ROWS: u64 = 10_000;

/// The point-query table, created the same way through the gateway and in process.
pub const CREATE_POINT_TABLE: &str = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)";

/// Fills `t` with `POINT_ROWS` rows in one statement (one round trip through the gateway).
pub const FILL_POINT_TABLE: &str = "INSERT INTO t (id, v) \
     WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) \
     SELECT x, 'value-' || x FROM c";

/// The point query.
pub const POINT_QUERY: &str = "SELECT v FROM t WHERE id = ?";

/// The table single-row inserts go to.
pub const CREATE_INSERT_TABLE: &str =
    "CREATE TABLE ins (id INTEGER PRIMARY KEY, v TEXT NOT NULL, n INTEGER NOT NULL)";

/// One single-row insert (autocommit: one transaction per row, as a client would do it).
pub const INSERT_ROW: &str = "INSERT INTO ins (v, n) VALUES (?, ?)";

/// A streamed result of `rows` rows with an integer, a text and a float column.
pub fn stream_query(rows: u64) -> String {
    format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) \
         SELECT x, 'row-' || x, x * 0.5 FROM c"
    )
}

/// Phase 14's query, as the SDK benchmark scripts (`sdk-python/bench_stream.py`,
/// `sdk-typescript/bench/stream.ts`) send it: [`stream_query`] with the row count bound as the
/// one parameter, so it yields the same rows.
pub const SDK_STREAM_QUERY: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 \
     FROM c WHERE x < ?) SELECT x, 'row-' || x, x * 0.5 FROM c";

/// How much work each phase does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `--quick` smoke run?
    pub quick: bool,
    /// Untimed iterations before each latency phase.
    pub warmup: usize,
    /// Timed in-process point queries (they take about a microsecond, so take many).
    pub direct_point_iters: usize,
    /// Timed gateway point queries, and as many no-op RPCs (health checks) between them.
    pub point_iters: usize,
    /// Concurrent client tasks in the throughput phase.
    pub throughput_tasks: usize,
    /// Channels (HTTP/2 connections) in the multi-channel throughput variant.
    pub throughput_channels: usize,
    /// How long each throughput variant runs.
    pub throughput_for: Duration,
    /// Timed single-row inserts, on each side.
    pub insert_iters: usize,
    /// Rows in the streamed result.
    pub stream_rows: u64,
    /// Streams read on each side; the best run counts (the first can pay for page faults, and
    /// on a shared two-core VM a run can lose a fifth of its rate to other load).
    pub stream_runs: usize,
    /// Timed CreateDatabase calls.
    pub spawns: usize,
    /// Databases spawned and queried once for the memory phase.
    pub fleet: usize,
    /// Client tasks spawning the fleet (a few, so the phase takes seconds, not minutes).
    pub fleet_tasks: usize,
    /// Rows of the CSV export/import table.
    pub transfer_rows: u64,
    /// Timed imports and exports per side and engine; the best run counts.
    pub transfer_runs: usize,
    /// CreateDatabase calls per backend in the backends comparison.
    pub backend_spawns: usize,
    /// Rows (Redis: keys) of each database phase 16 backs up and restores.
    pub backup_rows: u64,
    /// Point queries phase 16 times without a backup, and at least as many while one runs.
    pub backup_point_iters: usize,
    /// Rows of the result each SDK streams (phase 14).
    pub sdk_rows: u64,
    /// Streams each SDK reads; the best run counts (the first pays for warming up, which in
    /// Python and Node is more than in Rust).
    pub sdk_runs: usize,
}

impl Plan {
    /// The full run (well under six minutes on two cores) or the `--quick` smoke run.
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                warmup: 200,
                direct_point_iters: 20_000,
                point_iters: 2_000,
                throughput_tasks: 32,
                throughput_channels: 4,
                throughput_for: Duration::from_secs(1),
                insert_iters: 500,
                stream_rows: 100_000,
                stream_runs: 1,
                spawns: 50,
                fleet: 500,
                fleet_tasks: 4,
                transfer_rows: 100_000,
                transfer_runs: 2,
                backend_spawns: 10,
                backup_rows: 100_000,
                backup_point_iters: 300,
                sdk_rows: 100_000,
                sdk_runs: 2,
            }
        } else {
            Self {
                quick,
                warmup: 1_000,
                direct_point_iters: 200_000,
                point_iters: 20_000,
                throughput_tasks: 32,
                throughput_channels: 4,
                throughput_for: Duration::from_secs(5),
                insert_iters: 5_000,
                stream_rows: 1_000_000,
                stream_runs: 5,
                spawns: 300,
                fleet: 10_000,
                fleet_tasks: 4,
                transfer_rows: 1_000_000,
                transfer_runs: 2,
                backend_spawns: 100,
                backup_rows: 1_000_000,
                backup_point_iters: 2_000,
                sdk_rows: 1_000_000,
                sdk_runs: 3,
            }
        }
    }
}
