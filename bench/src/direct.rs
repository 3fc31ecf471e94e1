//! The baselines: the same SQL run on SQLite in this process with rusqlite, set up the way the
//! gateway sets up its connections (WAL, `synchronous = NORMAL`, the same page cache, cached
//! prepared statements), so the difference to the gateway is the gateway.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use rusqlite::{Connection, params};

use crate::{
    BoxError,
    stats::{Latency, Rng, sample_blocking},
    workload::{
        CREATE_INSERT_TABLE, CREATE_POINT_TABLE, FILL_POINT_TABLE, INSERT_ROW, POINT_QUERY,
        POINT_ROWS, Plan, stream_query,
    },
};

/// One read of a streamed result.
#[derive(Debug, Clone, Copy)]
pub struct StreamRun {
    /// Rows read.
    pub rows: u64,
    /// From sending the query to having decoded its last row.
    pub elapsed: Duration,
    /// Encoded protobuf bytes received (0 in process: nothing is encoded).
    pub bytes: u64,
    /// CPU the gateway and the client used meanwhile (gateway runs only).
    pub cpu: Option<(Duration, Duration)>,
}

impl StreamRun {
    /// Rows per second.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64()
    }

    /// Megabytes (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

/// Results of the in-process phases.
#[derive(Debug, Clone)]
pub struct DirectResults {
    /// `SELECT v FROM t WHERE id = ?`.
    pub point: Latency,
    /// One autocommitted single-row insert.
    pub insert: Latency,
    /// The fastest read of the streamed result.
    pub stream: StreamRun,
    /// Creating a database file in WAL mode, as the gateway's SQLite backend spawns one.
    pub spawn: Latency,
}

/// Opens `path` with the gateway's connection settings (see `backend/sqlite/conn.rs`).
pub(crate) fn open(path: &Path) -> Result<Connection, BoxError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -2048;",
    )?;
    Ok(conn)
}

/// Runs every in-process baseline on a fresh database file in `dir`.
pub fn run(dir: &Path, plan: &Plan) -> Result<DirectResults, BoxError> {
    let conn = open(&dir.join("direct.sqlite"))?;
    conn.execute(CREATE_POINT_TABLE, [])?;
    conn.execute(FILL_POINT_TABLE, [])?;
    conn.execute(CREATE_INSERT_TABLE, [])?;

    let mut rng = Rng::new(7);
    let point = sample_blocking(plan.warmup, plan.direct_point_iters, |_| {
        let mut stmt = conn.prepare_cached(POINT_QUERY)?;
        // Owned String: the gateway also hands its client an owned value.
        let v: String = stmt.query_row([rng.key(POINT_ROWS)], |r| r.get(0))?;
        std::hint::black_box(v);
        Ok::<_, BoxError>(())
    })?;

    let insert = sample_blocking(plan.warmup, plan.insert_iters, |i| {
        let mut stmt = conn.prepare_cached(INSERT_ROW)?;
        stmt.execute(params![format!("row-{i}"), i64::try_from(i)?])?;
        Ok::<_, BoxError>(())
    })?;

    let sql = stream_query(plan.stream_rows);
    let mut best: Option<StreamRun> = None;
    for _ in 0..plan.stream_runs {
        let run = read_stream(&conn, &sql)?;
        if run.rows != plan.stream_rows {
            return Err(format!(
                "in-process stream read {} of {} rows",
                run.rows, plan.stream_rows
            )
            .into());
        }
        if best.is_none_or(|b| run.elapsed < b.elapsed) {
            best = Some(run);
        }
    }
    let stream = best.ok_or("no stream runs")?;

    let files = dir.join("spawned");
    std::fs::create_dir_all(&files)?;
    // The same two steps as `SqliteBackend::create`: the file system's cost of a new database.
    let spawn = sample_blocking(0, plan.spawns, |i| {
        let conn = Connection::open(files.join(format!("db-{i:05}.sqlite")))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Ok::<_, BoxError>(())
    })?;
    Ok(DirectResults {
        point,
        insert,
        stream,
        spawn,
    })
}

/// Reads every column of every row into Rust values, as the gateway's client does.
fn read_stream(conn: &Connection, sql: &str) -> Result<StreamRun, BoxError> {
    let start = Instant::now();
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let (mut n, mut ints, mut text_bytes, mut floats) = (0u64, 0i64, 0usize, 0f64);
    while let Some(row) = rows.next()? {
        let x: i64 = row.get(0)?;
        let s: String = row.get(1)?;
        let f: f64 = row.get(2)?;
        n += 1;
        ints = ints.wrapping_add(x);
        text_bytes += s.len();
        floats += f;
    }
    let elapsed = start.elapsed();
    std::hint::black_box((ints, text_bytes, floats));
    Ok(StreamRun {
        rows: n,
        elapsed,
        bytes: 0,
        cpu: None,
    })
}
