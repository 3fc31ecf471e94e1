//! Data in and out: TransferService's CSV export and import next to each engine's own bulk tool,
//! on the same database, in one run.
//!
//! For each SQL backend the bench spawns a database through the gateway and loads one CSV file
//! of `rows` rows both ways, alternating which side goes first from one run to the next:
//!
//! - import: `ImportCsv` (client-streaming, 64 KiB chunks) into an empty table `t`, against the
//!   engine's loader into an empty twin table `t_native` in the same database (`sqlite3
//!   .import --csv`, `psql \copy … FROM`, `LOAD DATA LOCAL INFILE` through the mariadb client);
//! - export: `ExportTable` in CSV of `t`, reading every chunk, against the engine's client
//!   writing the same table `t` to `/dev/null` (`sqlite3 -csv`, `psql \copy … TO`, `mariadb
//!   --batch --quick`).
//!
//! The native tools reach the very database the gateway spawned: the SQLite file in the
//! gateway's data directory, and on the servers the database (schema) behind the spawned name,
//! found by its `dbf_<name>_` prefix and entered as the server's admin user. Their times include
//! starting the tool and connecting (milliseconds, against seconds of work).

use std::{
    fmt,
    io::{BufWriter, Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use dbforge::pb::{self, import_csv_request};

use crate::{
    BoxError,
    child::cpu_time,
    gateway::{self, Conn, failed},
    report::machine_busy,
};

/// Bytes per ImportCsv message: the size the issue names and the server's own export chunk.
const CHUNK_BYTES: usize = 64 << 10;

/// The table both sides export, and the gateway's import target.
const TABLE: &str = "t";

/// The native loader's import target, a twin of [`TABLE`] in the same database.
const NATIVE_TABLE: &str = "t_native";

/// The CSV header, matching the columns of [`Engine::ddl`].
const HEADER: &str = "id,name,score,created\n";

/// The local servers the bench uses, as the gateway's flags take them.
pub const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// MariaDB's admin URL (root, no password).
pub const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/mysql";

/// An SQL engine behind the gateway, with its own command-line client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite, a file in the gateway's data directory.
    Sqlite,
    /// PostgreSQL on 127.0.0.1:5432.
    Postgres,
    /// MariaDB on 127.0.0.1:3306.
    Mysql,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
            Self::Mysql => "MariaDB",
        })
    }
}

impl Engine {
    /// Every engine, in report order.
    pub const ALL: [Self; 3] = [Self::Sqlite, Self::Postgres, Self::Mysql];

    /// The gateway's name for it.
    pub fn backend(self) -> pb::Backend {
        match self {
            Self::Sqlite => pb::Backend::Sqlite,
            Self::Postgres => pb::Backend::Postgres,
            Self::Mysql => pb::Backend::Mysql,
        }
    }

    /// Where its server listens, when it has one.
    pub fn server(self) -> Option<&'static str> {
        match self {
            Self::Sqlite => None,
            Self::Postgres => Some("127.0.0.1:5432"),
            Self::Mysql => Some("127.0.0.1:3306"),
        }
    }

    /// A short tag for database names.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Sqlite => "lite",
            Self::Postgres => "pg",
            Self::Mysql => "my",
        }
    }

    /// The native export, as the report names it.
    pub fn export_tool(self) -> &'static str {
        match self {
            Self::Sqlite => "`sqlite3 -csv`",
            Self::Postgres => "`psql \\copy … TO` (CSV)",
            Self::Mysql => "`mariadb --batch --quick`",
        }
    }

    /// The native import, as the report names it.
    pub fn import_tool(self) -> &'static str {
        match self {
            Self::Sqlite => "`sqlite3 .import --csv`",
            Self::Postgres => "`psql \\copy … FROM` (CSV)",
            Self::Mysql => "`LOAD DATA LOCAL INFILE`",
        }
    }

    /// `CREATE TABLE` of the benchmark table in this engine's types. `table` is one of the
    /// bench's own constant names, which need no quoting.
    pub fn ddl(self, table: &str) -> String {
        let cols = match self {
            Self::Sqlite => {
                "id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL NOT NULL, \
                 created DATE NOT NULL"
            }
            Self::Postgres => {
                "id BIGINT PRIMARY KEY, name TEXT NOT NULL, score DOUBLE PRECISION NOT NULL, \
                 created DATE NOT NULL"
            }
            Self::Mysql => {
                "id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, score DOUBLE NOT NULL, \
                 created DATE NOT NULL"
            }
        };
        format!("CREATE TABLE {table} ({cols})")
    }
}

/// Writes the benchmark CSV: a header and `rows` rows of (id, a 20-character name, a score with
/// two decimals, a date), deterministic so every run loads the same bytes. Returns its size.
pub fn write_csv(path: &Path, rows: u64) -> Result<u64, BoxError> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    out.write_all(HEADER.as_bytes())?;
    let first = time::Date::from_calendar_date(2000, time::Month::January, 1)?.to_julian_day();
    for id in 1..=rows {
        let h = mix(id);
        let date = time::Date::from_julian_day(first + i32::try_from(id % 9000)?)?;
        writeln!(
            out,
            "{id},user_{:015x},{},{:04}-{:02}-{:02}",
            h >> 4,
            (h % 10_000_000) as f64 / 100.0,
            date.year(),
            u8::from(date.month()),
            date.day()
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// splitmix64: well-spread names and scores from the row id, without a `rand` crate.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A database reached with the engine's own command-line client.
#[derive(Debug, Clone)]
struct Native {
    engine: Engine,
    /// The SQLite file, or the database (schema) name on the server.
    target: String,
}

impl Native {
    /// The client with its connection flags. psql never prompts (`-w`) and stops at the first
    /// error; the mariadb client may read local files for `LOAD DATA LOCAL`.
    fn command(&self) -> Command {
        let mut cmd;
        match self.engine {
            Engine::Sqlite => {
                cmd = Command::new("sqlite3");
                cmd.arg("-bail").arg(&self.target);
            }
            Engine::Postgres => {
                cmd = Command::new("psql");
                cmd.args(["-X", "-w", "-q", "-v", "ON_ERROR_STOP=1"])
                    .args(["-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d"])
                    .arg(&self.target);
            }
            Engine::Mysql => {
                cmd = Command::new("mariadb");
                cmd.args(["-h", "127.0.0.1", "-P", "3306", "-u", "root"])
                    .arg("--local-infile=1")
                    .arg("-D")
                    .arg(&self.target);
            }
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `cmd`, failing with its stderr when it fails. `discard` sends stdout to /dev/null
    /// (the exports); otherwise stdout is returned.
    fn run(mut cmd: Command, discard: bool) -> Result<String, BoxError> {
        if discard {
            cmd.stdout(Stdio::null());
        }
        let out = cmd.output()?;
        if !out.status.success() {
            return Err(format!(
                "{:?} failed ({}): {}",
                cmd.get_program(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Runs `sql` (one or more statements) and returns its output as bare text rows.
    fn sql(&self, sql: &str) -> Result<String, BoxError> {
        let mut cmd = self.command();
        match self.engine {
            Engine::Sqlite => cmd.arg(sql),
            Engine::Postgres => cmd.args(["-A", "-t", "-c", sql]),
            Engine::Mysql => cmd.args(["--batch", "-N", "-e", sql]),
        };
        Self::run(cmd, false)
    }

    /// Rows in `table`.
    fn count(&self, table: &str) -> Result<u64, BoxError> {
        let text = self.sql(&format!("SELECT count(*) FROM {table}"))?;
        Ok(text.trim().parse()?)
    }

    /// Writes the whole of `table` to /dev/null with the engine's client.
    fn export(&self, table: &str) -> Result<(), BoxError> {
        let mut cmd = self.command();
        let select = format!("SELECT * FROM {table}");
        match self.engine {
            Engine::Sqlite => cmd.arg("-csv").arg(select),
            Engine::Postgres => cmd.args(["-c", &format!("\\copy {table} TO STDOUT CSV HEADER")]),
            Engine::Mysql => cmd.args(["--batch", "--quick", "-e", &select]),
        };
        Self::run(cmd, true).map(drop)
    }

    /// Loads `csv` (with its header row) into the existing, empty `table`.
    fn import(&self, csv: &Path, table: &str) -> Result<(), BoxError> {
        let path = csv.to_str().ok_or("the CSV path is not UTF-8")?;
        if path.contains(['\'', '"', '\\', ' ']) {
            return Err(
                format!("the CSV path {path:?} needs quoting; use a plain temp dir").into(),
            );
        }
        let mut cmd = self.command();
        match self.engine {
            Engine::Sqlite => cmd.arg(format!(".import --csv --skip 1 {path} {table}")),
            Engine::Postgres => {
                cmd.args(["-c", &format!("\\copy {table} FROM '{path}' CSV HEADER")])
            }
            Engine::Mysql => cmd.args([
                "-e",
                &format!(
                    "LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table} CHARACTER SET utf8mb4 \
                     FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' \
                     LINES TERMINATED BY '\\n' IGNORE 1 LINES"
                ),
            ]),
        };
        Self::run(cmd, false).map(drop)
    }

    /// Finds the storage behind the spawned database `name`.
    fn locate(engine: Engine, data_dir: &Path, name: &str) -> Result<Self, BoxError> {
        let found: Vec<String> = match engine {
            Engine::Sqlite => {
                let dir = data_dir.join("sqlite");
                let mut files = Vec::new();
                for entry in std::fs::read_dir(&dir)? {
                    let file = entry?.file_name();
                    let file = file.to_string_lossy();
                    if file.starts_with(&format!("{name}.")) && file.ends_with(".sqlite") {
                        files.push(dir.join(file.as_ref()).to_string_lossy().into_owned());
                    }
                }
                files
            }
            Engine::Postgres | Engine::Mysql => vec![server_database(&locator(data_dir, name)?)?],
        };
        match found.as_slice() {
            [one] => Ok(Self {
                engine,
                target: one.clone(),
            }),
            _ => {
                Err(format!("expected one {engine} database for {name:?}, found {found:?}").into())
            }
        }
    }
}

/// Where the engine's own tools find the spawned database `db` of the gateway whose data
/// directory is `data_dir`: its SQLite file, or its database (schema) name on the server.
pub fn native_target(engine: Engine, data_dir: &Path, db: &str) -> Result<String, BoxError> {
    Native::locate(engine, data_dir, db).map(|n| n.target)
}

/// Loads `csv` (`rows` rows) into the existing, empty `table` of the database the engine's tools
/// reach as `target` (see [`native_target`]) with the engine's own loader: the quickest way to
/// fill a table that another phase then measures.
pub fn native_load(
    engine: Engine,
    target: &str,
    csv: &Path,
    table: &str,
    rows: u64,
) -> Result<(), BoxError> {
    let native = Native {
        engine,
        target: target.to_owned(),
    };
    native.import(csv, table)?;
    let loaded = native.count(table)?;
    if loaded != rows {
        return Err(format!("{} loaded {loaded} of {rows} rows", engine.import_tool()).into());
    }
    Ok(())
}

/// Rows in `table` of the database the engine's tools reach as `target` (see
/// [`native_target`]), counted with the engine's client. A full scan: it also warms the cache
/// and sets PostgreSQL's hint bits.
pub fn native_count(engine: Engine, target: &str, table: &str) -> Result<u64, BoxError> {
    Native {
        engine,
        target: target.to_owned(),
    }
    .count(table)
}

/// The catalog locator of the spawned database `name` of the gateway whose data directory is
/// `data_dir`, read from its catalog file (engine-side names are opaque ids).
pub fn locator(data_dir: &Path, name: &str) -> Result<String, BoxError> {
    let catalog = rusqlite::Connection::open_with_flags(
        data_dir.join("catalog.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let locator = catalog
        .query_row(
            "SELECT locator FROM databases WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .map_err(|e| format!("no catalog entry for {name:?}: {e}"))?;
    Ok(locator)
}

/// The database (PostgreSQL) or schema (MariaDB) behind a locator (`<ident>:<password>`).
pub fn server_database(locator: &str) -> Result<String, BoxError> {
    let (ident, _) = locator
        .split_once(':')
        .ok_or_else(|| format!("not a SQL server locator: {locator:?}"))?;
    Ok(ident.to_owned())
}

/// The CPU a timed run cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    /// The gateway process.
    pub gateway: Duration,
    /// This process (the gRPC client, or the wait on the native tool).
    pub client: Duration,
    /// Every process on the machine (includes the two above, the database server, the tool).
    pub machine: Duration,
}

/// One timed run.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Wall time of the run.
    pub elapsed: Duration,
    /// What it cost in CPU.
    pub cpu: Cpu,
}

impl Run {
    /// Rows per second for `rows` rows.
    pub fn rate(&self, rows: u64) -> f64 {
        rows as f64 / self.elapsed.as_secs_f64()
    }
}

/// The best runs of one operation on both sides.
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    /// Through the gateway.
    pub gateway: Run,
    /// With the engine's own tool.
    pub native: Run,
}

/// Best (fastest) of `runs`.
fn best(runs: &[Run]) -> Result<Run, BoxError> {
    runs.iter()
        .copied()
        .min_by_key(|r| r.elapsed)
        .ok_or_else(|| "no timed runs".into())
}

/// What one engine measured.
#[derive(Debug, Clone)]
pub struct EngineResult {
    /// CSV import.
    pub import: Pair,
    /// CSV export.
    pub export: Pair,
    /// Bytes of the gateway's CSV export.
    pub export_bytes: u64,
}

/// Everything the transfer phase measured.
#[derive(Debug)]
pub struct TransferResults {
    /// Rows in the table.
    pub rows: u64,
    /// Bytes of the CSV file imported.
    pub csv_bytes: u64,
    /// Timed runs per side and operation.
    pub runs: usize,
    /// Per engine, or why it could not run.
    pub engines: Vec<(Engine, Result<EngineResult, String>)>,
}

impl TransferResults {
    /// Every engine failed for `why`.
    pub fn failed(rows: u64, runs: usize, why: &str) -> Self {
        Self {
            rows,
            csv_bytes: 0,
            runs,
            engines: Engine::ALL
                .iter()
                .map(|e| (*e, Err(why.to_owned())))
                .collect(),
        }
    }
}

/// Times `f`, with the CPU the gateway, this process and the whole machine spent meanwhile.
pub async fn timed<T>(
    gateway_pid: u32,
    f: impl Future<Output = Result<T, BoxError>>,
) -> Result<(T, Run), BoxError> {
    let me = std::process::id();
    let (g0, c0, m0) = (cpu_time(gateway_pid)?, cpu_time(me)?, machine_busy()?);
    let start = Instant::now();
    let out = f.await?;
    let elapsed = start.elapsed();
    let cpu = Cpu {
        gateway: cpu_time(gateway_pid)?.saturating_sub(g0),
        client: cpu_time(me)?.saturating_sub(c0),
        machine: machine_busy()?.saturating_sub(m0),
    };
    Ok((out, Run { elapsed, cpu }))
}

/// Runs a blocking native-tool call without stalling the runtime's other workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BoxError> + Send + 'static,
) -> Result<T, BoxError> {
    tokio::task::spawn_blocking(f).await?
}

/// ImportCsv of the file at `csv` into `table`, streamed in [`CHUNK_BYTES`] chunks read as
/// tonic asks for them (so at most a few chunks are in memory). Returns the rows inserted.
async fn gateway_import(conn: &Conn, db: &str, table: &str, csv: &Path) -> Result<u64, BoxError> {
    let header = pb::ImportCsvRequest {
        message: Some(import_csv_request::Message::Header(pb::ImportCsvHeader {
            database: db.to_owned(),
            table: table.to_owned(),
            csv: None,
            create: None,
            skip_bad_rows: false,
        })),
    };
    let mut file = std::fs::File::open(csv)?;
    let read_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
    let error_slot = Arc::clone(&read_error);
    // Reads of 64 KiB from the page cache take microseconds, so doing them inside the stream's
    // poll costs less than a reader task and a channel would.
    let chunks = std::iter::from_fn(move || {
        let mut buf = vec![0u8; CHUNK_BYTES];
        match file.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some(pb::ImportCsvRequest {
                    message: Some(import_csv_request::Message::Chunk(buf)),
                })
            }
            Err(e) => {
                *error_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                None
            }
        }
    });
    let requests = tokio_stream::iter(std::iter::once(header).chain(chunks));
    let call = format!("ImportCsv into {db:?}.{table}");
    let res = conn
        .transfer()
        .import_csv(requests)
        .await
        .map_err(failed(&call))?
        .into_inner();
    if let Some(e) = read_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(format!("{call}: reading {} failed: {e}", csv.display()).into());
    }
    if res.rows_rejected != 0 || res.rows_read != res.rows_inserted {
        return Err(format!(
            "{call}: read {} rows, inserted {}, rejected {}",
            res.rows_read, res.rows_inserted, res.rows_rejected
        )
        .into());
    }
    Ok(u64::try_from(res.rows_inserted)?)
}

/// ExportTable in CSV, reading every chunk. Returns (rows the server counted, bytes).
async fn gateway_export(conn: &Conn, db: &str, table: &str) -> Result<(u64, u64), BoxError> {
    let req = pb::ExportTableRequest {
        database: db.to_owned(),
        table: table.to_owned(),
        format: pb::ExportFormat::Csv.into(),
        csv: None,
    };
    let call = format!("ExportTable {db:?}.{table}");
    let mut stream = conn
        .transfer()
        .export_table(req)
        .await
        .map_err(failed(&call))?
        .into_inner();
    let (mut bytes, mut rows, mut done) = (0u64, 0i64, false);
    while let Some(msg) = stream.message().await.map_err(failed(&call))? {
        let chunk = msg
            .chunk
            .ok_or_else(|| format!("{call}: a message without a chunk"))?;
        if done {
            return Err(format!("{call}: a chunk after the one marked done").into());
        }
        bytes += chunk.data.len() as u64;
        rows = chunk.rows;
        done = chunk.done;
    }
    if !done {
        return Err(format!("{call}: the stream ended without a chunk marked done").into());
    }
    Ok((u64::try_from(rows)?, bytes))
}

/// The gateway under test, as the transfer phase needs it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// A connection to it.
    pub conn: &'a Conn,
    /// Its process id, for CPU times.
    pub pid: u32,
    /// Its data directory, where its SQLite files live.
    pub data_dir: &'a Path,
}

/// Runs the transfer phase on every engine: `runs` timed imports and exports per side.
pub async fn run(
    gw: Target<'_>,
    engines: &[(Engine, Result<(), String>)],
    csv: &Path,
    rows: u64,
    runs: usize,
) -> Vec<(Engine, Result<EngineResult, String>)> {
    let mut out = Vec::new();
    for (engine, usable) in engines {
        let result = match usable {
            Ok(()) => {
                crate::progress(&format!(
                    "9 and 10. {engine}: CSV import and export, {rows} rows"
                ));
                one_engine(gw, *engine, csv, rows, runs)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(why) => Err(why.clone()),
        };
        out.push((*engine, result));
    }
    out
}

/// Spawns a database on `engine`, measures it, and deletes it whatever happened.
async fn one_engine(
    gw: Target<'_>,
    engine: Engine,
    csv: &Path,
    rows: u64,
    runs: usize,
) -> Result<EngineResult, BoxError> {
    let name = format!("xfer-{}-{}", std::process::id(), engine.tag());
    let mut dbs = gw.conn.databases();
    gateway::create_database(&mut dbs, &name, engine.backend()).await?;
    let measured = measure(gw, engine, &name, csv, rows, runs).await;
    let deleted = gateway::delete_database(&mut dbs, &name).await;
    let result = measured?;
    deleted?;
    Ok(result)
}

async fn measure(
    gw: Target<'_>,
    engine: Engine,
    db: &str,
    csv: &Path,
    rows: u64,
    runs: usize,
) -> Result<EngineResult, BoxError> {
    let native = Native::locate(engine, gw.data_dir, db)?;
    let mut q = gw.conn.query();
    let (mut g_import, mut n_import) = (Vec::new(), Vec::new());
    for run in 0..runs {
        // Fresh, empty tables for both sides, untimed.
        gateway::execute(&mut q, db, &format!("DROP TABLE IF EXISTS {TABLE}"), vec![]).await?;
        gateway::execute(&mut q, db, &engine.ddl(TABLE), vec![]).await?;
        let n = native.clone();
        blocking(move || {
            n.sql(&format!("DROP TABLE IF EXISTS {NATIVE_TABLE}"))?;
            n.sql(&engine.ddl(NATIVE_TABLE))
        })
        .await?;
        // Alternate who goes first, so neither side always meets a warmer cache or a colder
        // machine.
        for gateway_side in [run % 2 == 0, run % 2 != 0] {
            if gateway_side {
                let (inserted, r) = timed(gw.pid, gateway_import(gw.conn, db, TABLE, csv)).await?;
                if inserted != rows {
                    return Err(format!("ImportCsv inserted {inserted} of {rows} rows").into());
                }
                g_import.push(r);
            } else {
                let (n, path) = (native.clone(), csv.to_owned());
                let ((), r) =
                    timed(gw.pid, blocking(move || n.import(&path, NATIVE_TABLE))).await?;
                n_import.push(r);
                let n = native.clone();
                let loaded = blocking(move || n.count(NATIVE_TABLE)).await?;
                if loaded != rows {
                    return Err(
                        format!("{} loaded {loaded} of {rows} rows", engine.import_tool()).into(),
                    );
                }
            }
        }
    }
    // One untimed full scan first: PostgreSQL sets hint bits on the first read of fresh rows,
    // and every engine warms its cache, which whichever side went first would otherwise pay.
    let n = native.clone();
    let counted = blocking(move || n.count(TABLE)).await?;
    if counted != rows {
        return Err(format!("{TABLE} holds {counted} of {rows} rows").into());
    }
    let (mut g_export, mut n_export, mut export_bytes) = (Vec::new(), Vec::new(), 0);
    for run in 0..runs {
        for gateway_side in [run % 2 == 0, run % 2 != 0] {
            if gateway_side {
                let ((exported, bytes), r) =
                    timed(gw.pid, gateway_export(gw.conn, db, TABLE)).await?;
                if exported != rows {
                    return Err(format!("ExportTable wrote {exported} of {rows} rows").into());
                }
                export_bytes = bytes;
                g_export.push(r);
            } else {
                let n = native.clone();
                let ((), r) = timed(gw.pid, blocking(move || n.export(TABLE))).await?;
                n_export.push(r);
            }
        }
    }
    Ok(EngineResult {
        import: Pair {
            gateway: best(&g_import)?,
            native: best(&n_import)?,
        },
        export: Pair {
            gateway: best(&g_export)?,
            native: best(&n_export)?,
        },
        export_bytes,
    })
}

/// Whether `addr` accepts TCP connections (within a second).
pub fn reachable(addr: &str) -> bool {
    addr.parse()
        .ok()
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)).ok())
        .is_some()
}

/// The CSV file's path in `dir`.
pub fn csv_path(dir: &Path) -> PathBuf {
    dir.join("transfer.csv")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_has_a_header_and_one_line_per_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.csv");
        let bytes = write_csv(&path, 3).expect("written");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(bytes, text.len() as u64);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "id,name,score,created");
        let fields: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[0], "1");
        assert_eq!(fields[1].len(), 20);
        assert!(fields[2].parse::<f64>().is_ok());
        assert_eq!(fields[3], "2000-01-02");
        assert!(lines[3].starts_with("3,user_"));
    }
}
