//! The report: one markdown table (printed, and written to BENCHMARKS.md with `--write`), plus
//! the machine it ran on and how busy that machine was with other work meanwhile.

use std::{fmt::Write as _, path::Path, time::Duration};

use crate::BoxError;

/// How a result is shown.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    /// A duration in microseconds.
    Micros,
    /// A duration in milliseconds.
    Millis,
    /// A plain ratio.
    Ratio,
    /// A rate, with what is counted ("queries/s").
    Rate(&'static str),
    /// Megabytes (10^6 bytes) per second.
    MegabytesPerSec,
    /// A percentage.
    Percent,
    /// Megabytes (10^6 bytes).
    Megabytes,
}

impl Unit {
    fn show(self, v: f64) -> String {
        match self {
            Self::Micros => format!("{v:.1} µs"),
            Self::Millis => format!("{v:.2} ms"),
            Self::Ratio => format!("{v:.2}"),
            Self::Rate(what) => format!("{} {what}", thousands(v)),
            Self::MegabytesPerSec => format!("{v:.1} MB/s"),
            Self::Percent => format!("{v:.0}%"),
            Self::Megabytes => format!("{v:.1} MB"),
        }
    }
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A target from the issue.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// Reported for context; no target.
    Info,
    /// Lower is better; at most this.
    AtMost(f64),
    /// Higher is better; at least this.
    AtLeast(f64),
}

/// How the error of a [`Row::skipped`] row starts.
const SKIPPED: &str = "skipped: ";

/// The error text of a result that was skipped for `why`: a row built from it with
/// [`Row::failed`] shows as SKIPPED, like a [`Row::skipped`] one.
pub fn skipped(why: &str) -> String {
    format!("{SKIPPED}{why}")
}

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The measurement's number in the issue (1 to 8).
    pub phase: u8,
    /// What was measured.
    pub name: String,
    /// The result, or why there is none.
    pub value: Result<f64, String>,
    /// How to show it and its target.
    pub unit: Unit,
    /// Its target.
    pub goal: Goal,
}

impl Row {
    /// A measured row.
    pub fn new(phase: u8, name: impl Into<String>, value: f64, unit: Unit, goal: Goal) -> Self {
        Self {
            phase,
            name: name.into(),
            value: Ok(value),
            unit,
            goal,
        }
    }

    /// A row that was not measured because what it needs is not installed here; it shows as
    /// SKIPPED with `why`, not as a failure.
    pub fn skipped(phase: u8, name: impl Into<String>, why: &str, unit: Unit, goal: Goal) -> Self {
        Self::failed(phase, name, skipped(why), unit, goal)
    }

    /// A row whose phase failed.
    pub fn failed(
        phase: u8,
        name: impl Into<String>,
        error: String,
        unit: Unit,
        goal: Goal,
    ) -> Self {
        Self {
            phase,
            name: name.into(),
            value: Err(error),
            unit,
            goal,
        }
    }

    fn target(&self) -> String {
        match self.goal {
            Goal::Info => "—".into(),
            Goal::AtMost(t) => format!("≤ {}", self.unit.show(t)),
            Goal::AtLeast(t) => format!("≥ {}", self.unit.show(t)),
        }
    }

    /// PASS, MISS (with by how much), FAIL, SKIPPED or blank for context rows.
    pub fn status(&self) -> String {
        match (&self.value, self.goal) {
            (Err(e), _) if e.starts_with(SKIPPED) => "SKIPPED".into(),
            (Err(_), _) => "FAIL".into(),
            (Ok(_), Goal::Info) => String::new(),
            (Ok(v), Goal::AtMost(t)) if *v <= t => "PASS".into(),
            (Ok(v), Goal::AtLeast(t)) if *v >= t => "PASS".into(),
            (Ok(v), Goal::AtMost(t)) => format!("MISS ({:.0}% over)", (v / t - 1.0) * 100.0),
            (Ok(v), Goal::AtLeast(t)) => format!("MISS ({:.0}% short)", (1.0 - v / t) * 100.0),
        }
    }

    /// Whether this row was measured and missed its target.
    pub fn missed(&self) -> bool {
        self.status().starts_with("MISS")
    }
}

/// The machine and the conditions of the run.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs this process may use.
    pub cpus: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Total memory in GiB.
    pub mem_gib: f64,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads what the machine is.
    pub fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown CPU".into(), |(_, m)| m.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0.0);
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            mem_gib: mem_kib / (1024.0 * 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned()),
        }
    }
}

/// `git describe --always --dirty` of the working tree the bench runs in ("-dirty": the
/// gateway was built with uncommitted changes).
pub fn revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()?;
    let rev = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !rev.is_empty()).then_some(rev)
}

/// CPU time the whole machine has spent busy (not idle, not waiting on I/O), from /proc/stat.
pub fn machine_busy() -> Result<Duration, BoxError> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or("no cpu line in /proc/stat")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    // Fields: user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    // USER_HZ is 100: 10 ms per tick.
    Ok(Duration::from_millis(busy * 10))
}

/// Everything the report says.
#[derive(Debug, Clone)]
pub struct Report {
    /// The command that produced it.
    pub command: String,
    /// When it ran (UTC).
    pub date: String,
    /// Where it ran.
    pub machine: Machine,
    /// Smoke run?
    pub quick: bool,
    /// The source the gateway was built from (`git describe`), when known.
    pub revision: Option<String>,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// CPU seconds used by processes other than the bench and its gateway during the run.
    pub other_cpu: Option<Duration>,
    /// The results.
    pub rows: Vec<Row>,
    /// Derived figures that explain the results (breakdowns), one sentence each.
    pub notes: Vec<String>,
}

impl Report {
    /// The results table, then each distinct failure once (one server error usually fails
    /// several rows).
    pub fn table(&self) -> String {
        let mut out = String::from("| # | Measurement | Result | Target | Status |\n");
        out.push_str("|---|---|---|---|---|\n");
        let mut failures: Vec<&str> = Vec::new();
        for row in &self.rows {
            let (value, status) = match &row.value {
                Ok(v) => (row.unit.show(*v), row.status()),
                Err(e) => {
                    let n = match failures.iter().position(|f| f == e) {
                        Some(i) => i + 1,
                        None => {
                            failures.push(e);
                            failures.len()
                        }
                    };
                    ("—".to_owned(), format!("{} [{n}]", row.status()))
                }
            };
            let _ = writeln!(
                out,
                "| {} | {} | {value} | {} | {status} |",
                row.phase,
                row.name,
                row.target(),
            );
        }
        if !failures.is_empty() {
            let all_failed = failures.iter().all(|f| !f.starts_with(SKIPPED));
            out.push_str(if all_failed {
                "\nFailures:\n\n"
            } else {
                "\nFailures and skips:\n\n"
            });
            for (i, f) in failures.iter().enumerate() {
                let _ = writeln!(out, "{}. {f}", i + 1);
            }
        }
        out
    }

    /// The whole BENCHMARKS.md, without the hand-written analysis.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::from("# DB-Forge benchmarks\n\n");
        out.push_str(
            "<!-- Written by dbforge-bench. Everything above \"## Analysis\" is regenerated by \
             the command below; the Analysis section is hand-written and kept. -->\n\n",
        );
        let _ = writeln!(out, "- Command: `{}`", self.command);
        let _ = writeln!(out, "- Date: {}", self.date);
        let _ = writeln!(
            out,
            "- Machine: {} CPUs, {}, {:.1} GiB RAM, Linux {}",
            m.cpus, m.cpu_model, m.mem_gib, m.kernel
        );
        if let Some(rev) = &self.revision {
            let _ = writeln!(out, "- Source: git `{rev}`");
        }
        let mode = if self.quick {
            "quick (smoke run, smaller counts)"
        } else {
            "full"
        };
        let _ = writeln!(
            out,
            "- Run: {mode}, {:.0} s wall time",
            self.wall.as_secs_f64()
        );
        if let Some(other) = self.other_cpu {
            let avail = self.wall.as_secs_f64() * m.cpus as f64;
            let _ = writeln!(
                out,
                "- Other load: processes other than the bench and its gateway used {:.1} CPU-s of \
                 {avail:.0} available during the run ({:.1}%)",
                other.as_secs_f64(),
                100.0 * other.as_secs_f64() / avail
            );
        }
        out.push_str(
            "- Setup: the gateway runs in its own process (this binary re-executed as `serve`, \
             default config, data in a temp dir) on 127.0.0.1; the client and the gateway share \
             the machine's cores.\n\n## Results\n\n",
        );
        out.push_str(&self.table());
        out.push_str("\n## Breakdown\n\n");
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        let misses: Vec<&Row> = self.rows.iter().filter(|r| r.missed()).collect();
        out.push_str("\n## Misses\n\n");
        if misses.is_empty() {
            out.push_str("None: every target that was measured was met.\n");
        }
        for row in misses {
            if let Ok(v) = &row.value {
                let _ = writeln!(
                    out,
                    "- #{} {}: {} against a target of {}: {}.",
                    row.phase,
                    row.name,
                    row.unit.show(*v),
                    row.target(),
                    row.status().to_lowercase()
                );
            }
        }
        out.push_str(METHOD);
        out
    }

    /// Writes the report to `path`, keeping a hand-written "## Analysis" section already there.
    pub fn write(&self, path: &Path) -> Result<(), BoxError> {
        let mut text = self.markdown();
        let existing = std::fs::read_to_string(path).unwrap_or_default();
        match existing.find("\n## Analysis") {
            Some(at) => text.push_str(&existing[at..]),
            None => text.push_str(
                "\n## Analysis\n\n_Not written yet: add the reasons for each miss here by hand; \
                 `--write` keeps this section._\n",
            ),
        }
        std::fs::write(path, text)?;
        Ok(())
    }
}

const METHOD: &str = "
## Method

- The gateway runs with its defaults plus an admin API key that every `DatabaseService` and
  `QueryService` call carries (`authorization: Bearer …`), so authentication is part of what is
  measured; health checks need no key. It logs at info, its default (the audit log writes a
  line per call), into a file in the temp dir.
- A second gateway, started after the first is stopped, runs with `--insecure-no-auth
  --disable-audit --disable-metrics` and repeats phases 1, 3 and 4, to show what
  authentication, the per-call audit record and metrics cost together.
- Other load: the machine's busy CPU time from `/proc/stat` minus the bench's, the gateways'
  and the SDK scripts' own, in 10 ms ticks (approximate; 0 when the difference is within the
  rounding).
- Latencies are exact nearest-rank percentiles over every timed call, after untimed warm-up
  calls; calls are sequential on one HTTP/2 connection unless stated.
- Floor: `grpc.health.v1.Health/Check` on the same connection: what any unary tonic call costs.
- In-process: rusqlite on a file in the same temp dir with the gateway's connection settings
  (WAL, `synchronous = NORMAL`, 2 MiB page cache, `prepare_cached`). The gateway's connections
  also carry an authorizer and a progress handler; the baseline has neither.
- Point query: `SELECT v FROM t WHERE id = ?` on a 10,000-row table (random ids), the table made
  through the gateway with the same SQL as in process. Ratio = gateway p50 / (floor p50 +
  in-process p50).
- Throughput: 32 client tasks, each sending its next point query as soon as the last one is
  answered, for a fixed window; once over one shared connection and once over several.
- Stream: `QueryService.Query` of a recursive CTE yielding (int, text, float) rows; the client
  decodes every message and reads every cell. MB/s counts encoded protobuf bytes (prost
  `encoded_len` of each received message, summed in the first run only: a walk over every cell
  that no client makes). In process: the same SQL, each column read into `i64`/`String`/`f64`.
  Best of the runs on each side.
- Spawn: `CreateDatabase` (SQLite) one at a time. Fleet: that many more databases, each spawned
  and queried once (`SELECT 1`), a few client tasks at a time; then the gateway's VmRSS and
  VmHWM from `/proc/<pid>/status`.
- CPU per query comes from `/proc/<pid>/stat` (user + system time) over the throughput window.
- Transfer (9, 10): a third gateway (defaults, plus `--postgres-url` and `--mysql-url` for the
  local PostgreSQL 15 and MariaDB 10.11) spawns one database per engine. The bench writes one
  CSV file (id, a 20-character name, a float with two decimals, a date; LF line ends) and, for
  each timed run, empties the tables and imports it on both sides: `ImportCsv` (64 KiB chunks,
  one transaction) into `t`, and the engine's loader into the twin table `t_native` in the same
  database (`sqlite3 .import --csv --skip 1` on the gateway's own file; `psql \\copy … FROM …
  CSV HEADER`; `mariadb --local-infile=1 -e \"LOAD DATA LOCAL INFILE …\"`, as postgres and root).
  Exports read the same table `t`: `ExportTable` in CSV, every chunk read, against `sqlite3
  -csv`, `psql \\copy t TO STDOUT CSV HEADER` and `mariadb --batch --quick -e \"SELECT * FROM
  t\"`, each writing to /dev/null. One untimed `SELECT count(*)` precedes the exports (it sets
  PostgreSQL's hint bits and warms every cache). The sides alternate which goes first; the best
  run of each side counts; the native times include starting the client and connecting. CPU is
  read from `/proc` for the gateway and the client, and from `/proc/stat` for the whole machine
  (database servers and tools included).
- Backends (11 to 13), on the same third gateway, which also has `--redis-url` (local Redis
  7.0): for PostgreSQL and MariaDB a 10,000-row table `p (id BIGINT PRIMARY KEY, v TEXT)` is
  queried by random id, through the gateway (Execute with a bound parameter) and with one sqlx
  connection (as postgres/root, to the same database, statements cached by sqlx), alternating
  floor, gateway and sqlx call by call. The targets compare gateway p50 with sqlx p50 (at most
  2×) and with sqlx through pgbouncer (at most 1×), and Redis GET with redis-rs (at most 2×); the
  ratio to floor p50 + driver p50, as in phase 3, is shown beside them for context. The stream
  is a generated (int, text, float) result (`generate_series`; MariaDB's `seq_1_to_N`), read
  through `QueryService.Query` and with sqlx's `fetch`, every cell decoded, sides alternating,
  best run each. Redis: 10,000 keys, GET and SET through Execute against
  redis-rs (one multiplexed RESP3 connection as the default user, on the same prefixed keys).
  Spawn: CreateDatabase round-robin over the backends (one at a time), then DeleteDatabase of
  each.
- Batches (15), on the same third gateway: per backend, a table `t (id BIGINT PRIMARY KEY, v
  VARCHAR(20))` (Redis: keys) takes 100 single-row INSERTs (Redis: SETs) as one `ExecuteBatch`,
  without and with `transaction`, against the same statements from the driver in the bench
  process: rusqlite on its own file with the gateway's settings, sqlx to the same database
  (statements cached; BEGIN … COMMIT for the transaction), redis-rs as one pipeline (MULTI …
  EXEC for the transaction). Sides alternate round by round; the best round of each counts
  (20 rounds, 3 with `--quick`); the target is gateway at most 2× driver, and the ratio to
  floor + driver (a no-op RPC timed in the same rounds) is shown beside it.
- Backups (16), on the same third gateway after phase 15: per engine a database of 1,000,000
  rows (phase 9's CSV, loaded with the engine's own loader into a table `t` the gateway
  created) or 1,000,000 Redis string keys (SET by redis-rs under the database's prefix), read
  once in full. Then one timed run per side, the gateway first: `CreateBackup` (default
  target, in the gateway's data dir) against `sqlite3 FILE \".backup OUT\"` on the gateway's
  own file, `pg_dump -Fc` (as postgres) and `mariadb-dump --single-transaction` (as root) of
  the spawned database, and for Redis a loop in the bench (redis-rs, one connection) that
  `SCAN`s the prefix 1,000 keys at a time and pipelines `DUMP` and `PTTL` of each batch into a
  file; `RestoreBackup` NEW into a fresh name against `sqlite3 NEW \".restore OUT\"`, `CREATE
  DATABASE` plus `pg_restore --no-owner --no-privileges` or `mariadb NEW < dump`, and pipelined
  `RESTORE`s (1,000 per round trip) under another prefix. Every restore's row (key) count is
  checked and the restored database dropped. Rates are rows (keys) per second of wall time;
  native times include starting the tool. RSS growth: the largest of the gateway's VmRSS
  readings (every 50 ms, from `/proc`, while the call runs) minus the reading just before it.
  Interference: sequential point queries by primary key (Redis: GET) on the same database,
  2,000 with nothing else running, then at least as many while a second connection runs
  `CreateBackup` in a loop (each backup deleted once stored); only queries that start and end
  while a backup runs count, and the phase lasts at least one whole backup.
- SDK streams (14), on the first gateway after phase 8: the Rust SDK (`dbforge` crate, in the
  bench process), then each SDK's own benchmark script as a child process, given the gateway's
  address (`--endpoint`) and its admin key (`DBFORGE_API_KEY`): `.venv/bin/python
  sdk-python/bench_stream.py` (sync, then `--async`) and `node --import tsx bench/stream.ts` in
  `sdk-typescript` (`--protocol grpc`, then `grpc-web`). Every client spawns its own SQLite
  database and streams phase 6's recursive CTE with the row count bound as a parameter (the
  same rows), reads every row its SDK yields and checks the count and the sum of the first
  column; it times the whole call, from sending the query to the last row. The scripts print one
  JSON line per run with the seconds and their process's CPU time (`time.process_time()`,
  `process.cpuUsage()`); the best run of each client counts. A client whose runtime is not
  installed is reported as skipped.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_says_by_how_much() {
        let over = Row::new(3, "ratio", 1.8, Unit::Ratio, Goal::AtMost(1.5));
        assert_eq!(over.status(), "MISS (20% over)");
        let short = Row::new(
            4,
            "qps",
            15_000.0,
            Unit::Rate("queries/s"),
            Goal::AtLeast(20_000.0),
        );
        assert_eq!(short.status(), "MISS (25% short)");
        let ok = Row::new(7, "spawn", 3.0, Unit::Millis, Goal::AtMost(5.0));
        assert_eq!(ok.status(), "PASS");
        assert!(!Row::new(1, "floor", 80.0, Unit::Micros, Goal::Info).missed());
        let skipped = Row::skipped(14, "python", "no venv", Unit::Percent, Goal::AtLeast(1.0));
        assert_eq!(skipped.status(), "SKIPPED");
        assert!(!skipped.missed());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
    }
}
