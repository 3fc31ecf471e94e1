//! From measurements to report rows: the targets of the issue, the ratios, and the breakdowns
//! that explain a miss.

use std::time::Duration;

use crate::{
    backends::{BackendResults, RedisResults, SqlResults, Trio},
    backups::{
        BackupResults, FORK_RATIO_MAX, GatewayRun, NativeRun, P99_RATIO_MAX, RSS_GROWTH_MAX_MB,
        SHARE_MIN,
    },
    batches::BatchResults,
    child::Memory,
    direct::{DirectResults, StreamRun},
    gateway::Throughput,
    megabytes,
    report::{Goal, Row, Unit, thousands},
    sdk::{Client as SdkClient, Missing, SdkResults, SdkRun},
    stats::Latency,
    transfer::{Engine, TransferResults},
    workload::Plan,
};

/// The targets.
const POINT_RATIO_MAX: f64 = 1.5;
const THROUGHPUT_MIN: f64 = 20_000.0;
const STREAM_ROWS_MIN: f64 = 1_000_000.0;
const STREAM_SHARE_MIN: f64 = 70.0;
/// What authentication, the audit log and metrics may add to a point query, in percent.
const AUTH_AUDIT_METRICS_OVERHEAD_MAX: f64 = 10.0;
const SPAWN_P50_MAX_MS: f64 = 5.0;
const FLEET_RSS_MAX_MB: f64 = 300.0;

/// What the gateway phases produced; each one may have failed on its own.
#[derive(Debug)]
pub struct GatewayResults {
    pub at_start: Result<Memory, String>,
    pub floor: Result<Latency, String>,
    pub point: Result<Latency, String>,
    pub shared: Result<Throughput, String>,
    pub multi: Result<Throughput, String>,
    pub insert: Result<Latency, String>,
    pub stream: Result<StreamRun, String>,
    pub after_stream: Result<Memory, String>,
    pub spawn: Result<Latency, String>,
    pub fleet: Result<Duration, String>,
    pub after_fleet: Result<Memory, String>,
}

const NOT_RUN: &str = "not run";

impl GatewayResults {
    /// Nothing measured yet.
    pub fn new(at_start: Result<Memory, String>) -> Self {
        fn n<T>() -> Result<T, String> {
            Err(NOT_RUN.to_owned())
        }
        Self {
            at_start,
            floor: n(),
            point: n(),
            shared: n(),
            multi: n(),
            insert: n(),
            stream: n(),
            after_stream: n(),
            spawn: n(),
            fleet: n(),
            after_fleet: n(),
        }
    }

    /// Marks the phases that need the bench database as failed for `why`.
    pub fn fail_prepared(&mut self, why: &str) {
        self.floor = Err(why.to_owned());
        self.point = Err(why.to_owned());
        self.shared = Err(why.to_owned());
        self.multi = Err(why.to_owned());
        self.insert = Err(why.to_owned());
        self.stream = Err(why.to_owned());
        self.after_stream = Err(why.to_owned());
    }

    /// Marks every phase as failed for `why`.
    pub fn fail_all(&mut self, why: &str) {
        self.fail_prepared(why);
        self.spawn = Err(why.to_owned());
        self.fleet = Err(why.to_owned());
        self.after_fleet = Err(why.to_owned());
    }
}

impl GatewayResults {
    /// How many connections gave the higher throughput.
    pub fn best_channels(&self) -> Option<usize> {
        [self.shared.as_ref(), self.multi.as_ref()]
            .into_iter()
            .flatten()
            .max_by(|a, b| a.qps().total_cmp(&b.qps()))
            .map(|t| t.channels)
    }
}

/// What the second gateway (authentication, audit log and metrics off) measured.
#[derive(Debug)]
pub struct LeanResults {
    pub floor: Result<Latency, String>,
    pub point: Result<Latency, String>,
    pub throughput: Result<Throughput, String>,
}

impl LeanResults {
    /// Nothing measured, for `why`.
    pub fn failed(why: &str) -> Self {
        Self {
            floor: Err(why.to_owned()),
            point: Err(why.to_owned()),
            throughput: Err(why.to_owned()),
        }
    }
}

/// Everything one run measured.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub direct: Result<DirectResults, String>,
    pub gateway: GatewayResults,
    /// The same point and throughput phases with authentication, the audit log and metrics off.
    pub lean: LeanResults,
    /// How long the gateway took to stop after SIGTERM.
    pub stopped: Result<Duration, String>,
    /// The default gateway's log: lines, warnings and errors, and the first of those.
    pub log: Result<(usize, usize, Vec<String>), String>,
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A row from a result, or a FAIL row carrying its error.
fn row<T>(
    rows: &mut Vec<Row>,
    phase: u8,
    name: &str,
    r: Result<T, &String>,
    value: impl FnOnce(T) -> f64,
    unit: Unit,
    goal: Goal,
) {
    rows.push(match r {
        Ok(t) => Row::new(phase, name, value(t), unit, goal),
        Err(e) => Row::failed(phase, name, e.clone(), unit, goal),
    });
}

/// Both inputs of a ratio, or the first error.
fn both<'e, A, B>(
    a: Result<A, &'e String>,
    b: Result<B, &'e String>,
) -> Result<(A, B), &'e String> {
    Ok((a?, b?))
}

impl Outcome {
    /// The table rows, in the order, and the breakdown notes.
    pub fn rows_and_notes(&self) -> (Vec<Row>, Vec<String>) {
        let g = &self.gateway;
        let d = self.direct.as_ref();
        let mut rows = Vec::new();
        let mut notes = Vec::new();

        let floor = g.floor.as_ref();
        row(
            &mut rows,
            1,
            "Floor: no-op RPC (Health/Check) p50",
            floor,
            |l| us(l.p50),
            Unit::Micros,
            Goal::Info,
        );
        row(
            &mut rows,
            1,
            "Floor: no-op RPC p99",
            floor,
            |l| us(l.p99),
            Unit::Micros,
            Goal::Info,
        );

        let dpoint = d.map(|d| &d.point);
        row(
            &mut rows,
            2,
            "In-process SQLite point query p50",
            dpoint,
            |l| us(l.p50),
            Unit::Micros,
            Goal::Info,
        );

        let point = g.point.as_ref();
        row(
            &mut rows,
            3,
            "Gateway point query p50",
            point,
            |l| us(l.p50),
            Unit::Micros,
            Goal::Info,
        );
        row(
            &mut rows,
            3,
            "Gateway point query p99",
            point,
            |l| us(l.p99),
            Unit::Micros,
            Goal::Info,
        );
        let parts = both(point, both(floor, dpoint));
        row(
            &mut rows,
            3,
            "Point ratio: gateway p50 / (floor p50 + in-process p50)",
            parts,
            |(p, (f, i))| us(p.p50) / (us(f.p50) + us(i.p50)),
            Unit::Ratio,
            Goal::AtMost(POINT_RATIO_MAX),
        );
        if let Ok((p, (f, i))) = parts {
            notes.push(format!(
                "Point query p50 {:.1} µs = floor {:.1} µs + in-process SQLite {:.1} µs + {:.1} µs \
                 of gateway work beyond both (request conversion, database lookup, statement \
                 routing, the hop to SQLite's thread and back).",
                us(p.p50),
                us(f.p50),
                us(i.p50),
                us(p.p50) - us(f.p50) - us(i.p50)
            ));
        }

        self.throughput_rows(&mut rows, &mut notes);

        let ginsert = g.insert.as_ref();
        let dinsert = d.map(|d| &d.insert);
        row(
            &mut rows,
            5,
            "Gateway single-row INSERT p50",
            ginsert,
            |l| us(l.p50),
            Unit::Micros,
            Goal::Info,
        );
        row(
            &mut rows,
            5,
            "In-process single-row INSERT p50",
            dinsert,
            |l| us(l.p50),
            Unit::Micros,
            Goal::Info,
        );
        let ins = both(ginsert, dinsert);
        row(
            &mut rows,
            5,
            "INSERT ratio: gateway p50 / in-process p50",
            ins,
            |(gl, dl)| us(gl.p50) / us(dl.p50),
            Unit::Ratio,
            Goal::Info,
        );
        if let (Ok((gl, dl)), Ok(f)) = (ins, floor) {
            notes.push(format!(
                "INSERT p50 {:.1} µs = floor {:.1} µs + in-process {:.1} µs + {:.1} µs of gateway \
                 work beyond both (ratio to floor + in-process: {:.2}).",
                us(gl.p50),
                us(f.p50),
                us(dl.p50),
                us(gl.p50) - us(f.p50) - us(dl.p50),
                us(gl.p50) / (us(f.p50) + us(dl.p50))
            ));
        }

        self.stream_rows(&mut rows, &mut notes);
        self.fleet_rows(&mut rows, &mut notes);

        self.lean_rows(&mut rows, &mut notes);
        match &self.stopped {
            Ok(t) => notes.push(format!(
                "The gateway stopped {:.0} ms after SIGTERM.",
                ms(*t)
            )),
            Err(e) => notes.push(format!("Stopping the gateway failed: {e}.")),
        }
        match &self.log {
            Ok((lines, 0, _)) => notes.push(format!(
                "The gateway's log (info level, as deployed) has {lines} lines and no warnings \
                 or errors."
            )),
            Ok((lines, problems, first)) => notes.push(format!(
                "The gateway's log (info level, as deployed) has {lines} lines, {problems} of \
                 them warnings or errors; the first: `{}`.",
                first.join("`, `")
            )),
            Err(e) => notes.push(format!("The gateway's log could not be read: {e}.")),
        }
        // Stable: rows of one phase keep their order, the second gateway's join their phase.
        rows.sort_by_key(|r| r.phase);
        (rows, notes)
    }

    fn lean_rows(&self, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
        let (g, l) = (&self.gateway, &self.lean);
        let dpoint = self.direct.as_ref().map(|d| &d.point);
        let lean_parts = both(l.point.as_ref(), both(l.floor.as_ref(), dpoint));
        row(
            rows,
            3,
            "Point ratio, auth, audit log and metrics off",
            lean_parts,
            |(p, (f, i))| us(p.p50) / (us(f.p50) + us(i.p50)),
            Unit::Ratio,
            Goal::Info,
        );
        // Each gateway's p50 is taken relative to its own floor (floor + SQLite), so the floor
        // moving between the two processes does not count as overhead.
        let ratio =
            |(p, (f, i)): (&Latency, (&Latency, &Latency))| us(p.p50) / (us(f.p50) + us(i.p50));
        let on_parts = both(g.point.as_ref(), both(g.floor.as_ref(), dpoint));
        row(
            rows,
            3,
            "Point query overhead of auth + audit log + metrics: ratio on / ratio off − 1",
            both(on_parts, lean_parts),
            |(on, off)| 100.0 * (ratio(on) / ratio(off) - 1.0),
            Unit::Percent,
            Goal::AtMost(AUTH_AUDIT_METRICS_OVERHEAD_MAX),
        );
        let name = match &l.throughput {
            Ok(t) => format!(
                "Throughput, auth, audit log and metrics off ({} channels)",
                t.channels
            ),
            Err(_) => "Throughput, auth, audit log and metrics off".to_owned(),
        };
        let rate = Unit::Rate("queries/s");
        row(
            rows,
            4,
            &name,
            l.throughput.as_ref(),
            Throughput::qps,
            rate,
            Goal::Info,
        );
        let default = [g.shared.as_ref(), g.multi.as_ref()]
            .into_iter()
            .flatten()
            .max_by(|a, b| a.qps().total_cmp(&b.qps()));
        let parts = both(g.point.as_ref(), both(g.floor.as_ref(), dpoint));
        if let (Ok(lean), Ok(full), Ok(lt), Some(gt)) =
            (lean_parts, parts, l.throughput.as_ref(), default)
        {
            // Each gateway is compared with its own interleaved floor: the floor itself moves
            // between the two processes by tens of microseconds on a shared VM.
            let extra =
                |(p, (f, i)): (&Latency, (&Latency, &Latency))| us(p.p50) - us(f.p50) - us(i.p50);
            notes.push(format!(
                "Auth, audit log and metrics: with all three off, the gateway's point-query work beyond floor \
                 + SQLite falls from {:.1} to {:.1} µs, throughput rises from {} to {} queries/s, \
                 and the gateway's CPU per query falls from {:.1} to {:.1} µs.",
                extra(full),
                extra(lean),
                thousands(gt.qps()),
                thousands(lt.qps()),
                gt.cpu_per_query_us().0,
                lt.cpu_per_query_us().0,
            ));
        }
    }

    fn throughput_rows(&self, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
        let g = &self.gateway;
        let tasks = self.plan.throughput_tasks;
        let qps = |t: &Throughput| t.qps();
        let rate = Unit::Rate("queries/s");
        row(
            rows,
            4,
            &format!("Throughput, {tasks} tasks, 1 shared channel"),
            g.shared.as_ref(),
            qps,
            rate,
            Goal::Info,
        );
        let multi_name = format!(
            "Throughput, {tasks} tasks, {} channels",
            self.plan.throughput_channels
        );
        row(
            rows,
            4,
            &multi_name,
            g.multi.as_ref(),
            qps,
            rate,
            Goal::Info,
        );
        let best = [g.shared.as_ref(), g.multi.as_ref()]
            .into_iter()
            .flatten()
            .max_by(|a, b| a.qps().total_cmp(&b.qps()));
        let Some(best) = best else {
            let why = g.shared.as_ref().err().cloned().unwrap_or_default();
            let goal = Goal::AtLeast(THROUGHPUT_MIN);
            rows.push(Row::failed(4, "Throughput, best", why, rate, goal));
            return;
        };
        let name = format!(
            "Throughput, best ({} channel{})",
            best.channels,
            if best.channels == 1 { "" } else { "s" }
        );
        rows.push(Row::new(
            4,
            name,
            best.qps(),
            rate,
            Goal::AtLeast(THROUGHPUT_MIN),
        ));
        let (server_us, client_us) = best.cpu_per_query_us();
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        notes.push(format!(
            "Throughput ({} channel(s), {:.1} s window): the gateway used {server_us:.1} µs of CPU \
             per query and the client {client_us:.1} µs ({:.2} + {:.2} cores busy). With client \
             and gateway sharing {cores:.0} cores, CPU alone caps the rate near {} queries/s.",
            best.channels,
            best.elapsed.as_secs_f64(),
            best.server_cpu.as_secs_f64() / best.elapsed.as_secs_f64(),
            best.client_cpu.as_secs_f64() / best.elapsed.as_secs_f64(),
            thousands(cores * 1e6 / (server_us + client_us)),
        ));
    }

    fn stream_rows(&self, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
        let g = &self.gateway;
        let gs = g.stream.as_ref();
        let ds = self.direct.as_ref().map(|d| &d.stream);
        let n = self.plan.stream_rows;
        let rate = Unit::Rate("rows/s");
        let rps = |s: &StreamRun| s.rows_per_sec();
        let goal_rows = Goal::AtLeast(STREAM_ROWS_MIN);
        row(
            rows,
            6,
            &format!("Gateway stream of {n} rows"),
            gs,
            rps,
            rate,
            goal_rows,
        );
        row(
            rows,
            6,
            "Gateway stream, encoded bytes",
            gs,
            StreamRun::mb_per_sec,
            Unit::MegabytesPerSec,
            Goal::Info,
        );
        row(
            rows,
            6,
            "In-process fetch of the same rows",
            ds,
            rps,
            rate,
            Goal::Info,
        );
        let share = both(gs, ds);
        row(
            rows,
            6,
            "Stream: gateway rate as % of in-process",
            share,
            |(a, b)| 100.0 * a.rows_per_sec() / b.rows_per_sec(),
            Unit::Percent,
            Goal::AtLeast(STREAM_SHARE_MIN),
        );
        let hwm = g.after_stream.as_ref();
        row(
            rows,
            6,
            "Gateway peak RSS (VmHWM) after the stream",
            hwm,
            |m| megabytes(m.hwm),
            Unit::Megabytes,
            Goal::Info,
        );
        if let Ok((a, b)) = share {
            let per_row = |d: Duration| d.as_secs_f64() * 1e9 / a.rows as f64;
            let cpu = a.cpu.map_or_else(String::new, |(server, client)| {
                format!(
                    " Meanwhile the gateway used {:.0} ns of CPU per row and the client {:.0} ns \
                     (in process: {:.0} ns per row in all).",
                    per_row(server),
                    per_row(client),
                    per_row(b.elapsed)
                )
            });
            notes.push(format!(
                "Stream: the gateway took {:.0} ms for {n} rows ({:.1} encoded bytes per row, \
                 {:.1} MB in all); in process the same rows took {:.0} ms.{cpu}",
                ms(a.elapsed),
                a.bytes as f64 / a.rows as f64,
                megabytes(a.bytes),
                ms(b.elapsed),
            ));
        }
    }

    fn fleet_rows(&self, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
        let g = &self.gateway;
        let spawn = g.spawn.as_ref();
        let n = self.plan.spawns;
        row(
            rows,
            7,
            &format!("CreateDatabase p50 ({n} spawns)"),
            spawn,
            |l| ms(l.p50),
            Unit::Millis,
            Goal::AtMost(SPAWN_P50_MAX_MS),
        );
        row(
            rows,
            7,
            "CreateDatabase p99",
            spawn,
            |l| ms(l.p99),
            Unit::Millis,
            Goal::Info,
        );
        let dspawn = self.direct.as_ref().map(|d| &d.spawn);
        let name = "In-process: create a SQLite file in WAL mode p50";
        row(
            rows,
            7,
            name,
            dspawn,
            |l| ms(l.p50),
            Unit::Millis,
            Goal::Info,
        );
        let fleet = self.plan.fleet;
        let after = both(g.after_fleet.as_ref(), g.fleet.as_ref());
        row(
            rows,
            8,
            &format!("Gateway RSS after {fleet} more databases, each queried once"),
            after,
            |(m, _)| megabytes(m.rss),
            Unit::Megabytes,
            Goal::AtMost(FLEET_RSS_MAX_MB),
        );
        row(
            rows,
            8,
            "Gateway peak RSS (VmHWM) at the end",
            after,
            |(m, _)| megabytes(m.hwm),
            Unit::Megabytes,
            Goal::Info,
        );
        if let (Ok((m, took)), Ok(start)) = (after, g.at_start.as_ref()) {
            let total = fleet + n + 1;
            notes.push(format!(
                "Memory: the gateway started at {:.1} MB RSS; after {total} databases it holds \
                 {:.1} MB, {:.1} KB per database above the start. Spawning and querying the {fleet} \
                 took {:.1} s ({:.2} ms each, {} client tasks).",
                megabytes(start.rss),
                megabytes(m.rss),
                (m.rss.saturating_sub(start.rss)) as f64 / 1e3 / total as f64,
                took.as_secs_f64(),
                ms(*took) / fleet as f64 * self.plan.fleet_tasks as f64,
                self.plan.fleet_tasks,
            ));
        }
    }
}

/// The export share the issue asks for: the gateway at least half as fast as the engine's tool.
const EXPORT_SHARE_MIN: f64 = 50.0;
/// The import share: the gateway at least 30% as fast as the engine's bulk loader.
const IMPORT_SHARE_MIN: f64 = 30.0;

/// Rows 9 (CSV export) and 10 (CSV import) for every engine, and their CPU breakdowns.
pub fn transfer_rows_and_notes(t: &TransferResults) -> (Vec<Row>, Vec<String>) {
    let (mut rows, mut notes) = (Vec::new(), Vec::new());
    let n = t.rows;
    let count = thousands(n as f64);
    let rate = Unit::Rate("rows/s");
    if t.csv_bytes > 0 {
        notes.push(format!(
            "Transfer: the CSV file has {count} rows in {:.1} MB ({:.1} bytes per row); each \
             side ran {} timed imports and {} timed exports per engine, alternating which went \
             first, and the best of each counts.",
            megabytes(t.csv_bytes),
            t.csv_bytes as f64 / n.max(1) as f64,
            t.runs,
            t.runs
        ));
    }
    for (phase, export) in [(9, true), (10, false)] {
        for (engine, result) in &t.engines {
            let (what, tool, goal) = if export {
                ("export", engine.export_tool(), EXPORT_SHARE_MIN)
            } else {
                ("import", engine.import_tool(), IMPORT_SHARE_MIN)
            };
            let rpc = if export { "ExportTable" } else { "ImportCsv" };
            let names = [
                format!("{engine} {what}: gateway {rpc} (CSV, {count} rows)"),
                format!("{engine} {what}: {tool}"),
                format!("{engine} {what}: gateway as % of {tool}"),
            ];
            let r = match result {
                Ok(r) => r,
                Err(e) => {
                    rows.push(Row::failed(phase, &names[0], e.clone(), rate, Goal::Info));
                    rows.push(Row::failed(phase, &names[1], e.clone(), rate, Goal::Info));
                    let share = Goal::AtLeast(goal);
                    rows.push(Row::failed(
                        phase,
                        &names[2],
                        e.clone(),
                        Unit::Percent,
                        share,
                    ));
                    continue;
                }
            };
            let pair = if export { r.export } else { r.import };
            let (g, nat) = (pair.gateway.rate(n), pair.native.rate(n));
            rows.push(Row::new(phase, &names[0], g, rate, Goal::Info));
            rows.push(Row::new(phase, &names[1], nat, rate, Goal::Info));
            rows.push(Row::new(
                phase,
                &names[2],
                100.0 * g / nat,
                Unit::Percent,
                Goal::AtLeast(goal),
            ));
            let cpu = |c: &crate::transfer::Cpu| c.machine.as_secs_f64();
            let gw = &pair.gateway;
            let bytes = if export {
                format!(
                    ", {:.1} MB of CSV ({:.1} MB/s)",
                    megabytes(r.export_bytes),
                    megabytes(r.export_bytes) / gw.elapsed.as_secs_f64()
                )
            } else {
                String::new()
            };
            notes.push(format!(
                "{engine} {what}: the gateway took {:.2} s{bytes}, using {:.2} CPU-s in the \
                 gateway process and {:.2} in the client, {:.2} CPU-s on the whole machine \
                 (database server included); {tool} took {:.2} s and {:.2} CPU-s on the whole \
                 machine.",
                gw.elapsed.as_secs_f64(),
                gw.cpu.gateway.as_secs_f64(),
                gw.cpu.client.as_secs_f64(),
                cpu(&gw.cpu),
                pair.native.elapsed.as_secs_f64(),
                cpu(&pair.native.cpu),
            ));
        }
    }
    (rows, notes)
}

/// The backends issue's targets: a point query within 2× of sqlx straight to the server (and no
/// slower than sqlx through pgbouncer), a stream at least 70% as fast as sqlx's `fetch`, and a
/// Redis GET within 2× of redis-rs.
const BACKEND_POINT_RATIO_MAX: f64 = 2.0;
const BACKEND_POOLED_RATIO_MAX: f64 = 1.0;
const BACKEND_STREAM_SHARE_MIN: f64 = 70.0;
const REDIS_GET_RATIO_MAX: f64 = 2.0;

/// Rows 11 (PostgreSQL and MariaDB against sqlx), 12 (Redis against redis-rs) and 13 (spawn
/// latency per backend), with breakdown notes. The ratios over floor + driver are context: the
/// floor alone is of the order of the driver's own round trip, which is what the 2× targets are
/// measured against.
pub fn backend_rows_and_notes(b: &BackendResults) -> (Vec<Row>, Vec<String>) {
    let (mut rows, mut notes) = (Vec::new(), Vec::new());
    for (engine, result) in &b.sql {
        sql_rows(
            *engine,
            result.as_ref(),
            b.stream_rows,
            &mut rows,
            &mut notes,
        );
    }
    redis_rows(&b.redis, &mut rows, &mut notes);
    for (backend, result) in &b.spawn {
        let names = [
            format!("{backend}: CreateDatabase p50"),
            format!("{backend}: CreateDatabase p95"),
            format!("{backend}: DeleteDatabase p50"),
        ];
        match result {
            Ok(s) => {
                let values = [ms(s.create.p50), ms(s.create.p95), ms(s.delete.p50)];
                for (name, v) in names.into_iter().zip(values) {
                    rows.push(Row::new(13, name, v, Unit::Millis, Goal::Info));
                }
            }
            Err(e) => {
                for name in names {
                    rows.push(Row::failed(13, name, e.clone(), Unit::Millis, Goal::Info));
                }
            }
        }
    }
    batch_rows(&b.batches, &mut rows, &mut notes);
    (rows, notes)
}

/// Phase 15: each backend's batch with and without a transaction, gateway against driver.
fn batch_rows(
    batches: &[(&'static str, Result<BatchResults, String>)],
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let n = crate::batches::STATEMENTS;
    for (backend, result) in batches {
        let get = |f: &dyn Fn(&BatchResults) -> f64| result.as_ref().map(f).map_err(String::clone);
        let mut specs: Vec<Spec> = Vec::new();
        for (how, gateway, direct) in [
            (
                "without a transaction",
                (|r: &BatchResults| r.gateway) as fn(&BatchResults) -> Duration,
                (|r: &BatchResults| r.direct) as fn(&BatchResults) -> Duration,
            ),
            (
                "in a transaction",
                |r: &BatchResults| r.gateway_tx,
                |r: &BatchResults| r.direct_tx,
            ),
        ] {
            specs.extend([
                (
                    format!("{backend}: batch of {n} {how}, gateway"),
                    Unit::Millis,
                    Goal::Info,
                    get(&|r| ms(gateway(r))),
                ),
                (
                    format!("{backend}: batch of {n} {how}, driver direct"),
                    Unit::Millis,
                    Goal::Info,
                    get(&|r| ms(direct(r))),
                ),
                (
                    format!("{backend}: batch of {n} {how} within 2× of direct: gateway / driver"),
                    Unit::Ratio,
                    Goal::AtMost(crate::batches::RATIO_MAX),
                    get(&|r| gateway(r).as_secs_f64() / direct(r).as_secs_f64()),
                ),
                (
                    format!("{backend}: batch of {n} {how}: gateway / (floor + driver)"),
                    Unit::Ratio,
                    Goal::Info,
                    get(&|r| gateway(r).as_secs_f64() / (r.floor + direct(r)).as_secs_f64()),
                ),
            ]);
        }
        push_all(rows, 15, specs);
        if let Ok(r) = result {
            notes.push(format!(
                "{backend}: {n} single-row writes, best round: ExecuteBatch {:.2} ms ({:.2} ms in a \
                 transaction), the driver {:.2} ms ({:.2} ms in a transaction), a no-op RPC \
                 {:.2} ms.",
                ms(r.gateway),
                ms(r.gateway_tx),
                ms(r.direct),
                ms(r.direct_tx),
                ms(r.floor)
            ));
        }
    }
}

/// One row to be: its name, how it is shown, its target and its value (or why there is none).
type Spec = (String, Unit, Goal, Result<f64, String>);

fn push_all(rows: &mut Vec<Row>, phase: u8, specs: Vec<Spec>) {
    for (name, unit, goal, value) in specs {
        rows.push(match value {
            Ok(v) => Row::new(phase, name, v, unit, goal),
            Err(e) => Row::failed(phase, name, e, unit, goal),
        });
    }
}

/// Phase 11 for one SQL server: the point query (against sqlx and, for PostgreSQL, pgbouncer),
/// then the stream.
fn sql_rows(
    engine: Engine,
    result: Result<&SqlResults, &String>,
    stream_rows: u64,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let count = thousands(stream_rows as f64);
    let rate = Unit::Rate("rows/s");
    let get = |f: &dyn Fn(&SqlResults) -> f64| result.map(f).map_err(String::clone);
    let mut specs: Vec<Spec> = vec![
        (
            format!("{engine} point query: gateway p50"),
            Unit::Micros,
            Goal::Info,
            get(&|r| us(r.point.gateway.p50)),
        ),
        (
            format!("{engine} point query: sqlx direct p50"),
            Unit::Micros,
            Goal::Info,
            get(&|r| us(r.point.direct.p50)),
        ),
        (
            format!("{engine} point query within 2× of direct sqlx: gateway p50 / sqlx p50"),
            Unit::Ratio,
            Goal::AtMost(BACKEND_POINT_RATIO_MAX),
            get(&|r| us(r.point.gateway.p50) / us(r.point.direct.p50)),
        ),
        (
            format!("{engine} point ratio: gateway p50 / (floor p50 + sqlx p50)"),
            Unit::Ratio,
            Goal::Info,
            get(&|r| r.point.ratio()),
        ),
    ];
    // pgbouncer fronts PostgreSQL only.
    let pooled = match result {
        Ok(r) => r.pooled.clone(),
        Err(e) => (engine == Engine::Postgres).then(|| Err(e.clone())),
    };
    if let Some(pooled) = &pooled {
        let gateway = result.map(|r| r.point.gateway.p50);
        specs.push((
            format!("{engine} point query: sqlx through pgbouncer (transaction pooling) p50"),
            Unit::Micros,
            Goal::Info,
            pooled.as_ref().map(|l| us(l.p50)).map_err(String::clone),
        ));
        specs.push((
            format!(
                "{engine} point query no slower than through pgbouncer: gateway p50 / pgbouncer p50"
            ),
            Unit::Ratio,
            Goal::AtMost(BACKEND_POOLED_RATIO_MAX),
            match (gateway, pooled) {
                (Ok(g), Ok(l)) => Ok(us(g) / us(l.p50)),
                (Err(e), _) | (_, Err(e)) => Err(e.clone()),
            },
        ));
    }
    specs.extend([
        (
            format!("{engine} stream of {count} rows: gateway"),
            rate,
            Goal::Info,
            get(&|r| r.stream_gateway.rows_per_sec()),
        ),
        (
            format!("{engine} stream: sqlx direct"),
            rate,
            Goal::Info,
            get(&|r| r.stream_direct.rows_per_sec()),
        ),
        (
            format!("{engine} stream: gateway as % of sqlx"),
            Unit::Percent,
            Goal::AtLeast(BACKEND_STREAM_SHARE_MIN),
            get(&|r| 100.0 * r.stream_gateway.rows_per_sec() / r.stream_direct.rows_per_sec()),
        ),
    ]);
    push_all(rows, 11, specs);
    let Ok(r) = result else {
        return;
    };
    let p = &r.point;
    if let Some(Ok(l)) = &r.pooled {
        notes.push(format!(
            "{engine} through pgbouncer (transaction pooling, loopback): point query p50 {:.1} µs, \
             {:.1} µs above sqlx straight to the server; the gateway adds {:.1} µs above sqlx, of \
             which {:.1} µs is the no-op RPC floor.",
            us(l.p50),
            us(l.p50) - us(p.direct.p50),
            us(p.gateway.p50) - us(p.direct.p50),
            us(p.floor.p50),
        ));
    }
    let extra = us(p.gateway.p50) - us(p.floor.p50) - us(p.direct.p50);
    let room = BACKEND_POINT_RATIO_MAX * us(p.direct.p50) - us(p.floor.p50);
    let room = if room >= 0.0 {
        format!("so 2× leaves {room:.1} µs beyond the floor for the server and the gateway")
    } else {
        format!(
            "so the floor alone is {:.1} µs over 2× before the server answers",
            -room
        )
    };
    notes.push(format!(
        "{engine} point query against its 2× target: the no-op RPC floor (a tonic call that \
         reaches no DB-Forge code) is by itself {:.2}× sqlx's p50 ({:.1} against {:.1} µs), \
         {room}; the gateway then takes {extra:.1} µs beyond floor + sqlx.",
        us(p.floor.p50) / us(p.direct.p50),
        us(p.floor.p50),
        us(p.direct.p50),
    ));
    let cpu = r.stream_gateway.cpu.map_or_else(String::new, |(s, c)| {
        let per = |d: Duration| d.as_secs_f64() * 1e9 / stream_rows.max(1) as f64;
        format!(
            "; meanwhile the gateway used {:.0} ns of CPU per row and the client {:.0} ns",
            per(s),
            per(c)
        )
    });
    notes.push(format!(
        "{engine}: point query p50 {:.1} µs = floor {:.1} µs + sqlx {:.1} µs + {extra:.1} µs \
         of gateway work (p99: gateway {:.1} µs, sqlx {:.1} µs). The stream took {:.0} ms \
         through the gateway ({:.1} MB of protobuf) and {:.0} ms with sqlx{cpu}.",
        us(p.gateway.p50),
        us(p.floor.p50),
        us(p.direct.p50),
        us(p.gateway.p99),
        us(p.direct.p99),
        ms(r.stream_gateway.elapsed),
        megabytes(r.stream_gateway.bytes),
        ms(r.stream_direct.elapsed),
    ));
}

/// Phase 12: GET (with its target) and SET, each against redis-rs.
fn redis_rows(redis: &Result<RedisResults, String>, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    for op in ["GET", "SET"] {
        let trio = redis
            .as_ref()
            .map(|r| if op == "GET" { r.get } else { r.set });
        let get = |f: fn(&Trio) -> f64| trio.map(|t| f(&t)).map_err(String::clone);
        let plain = if op == "GET" {
            (
                "Redis GET within 2× of direct: gateway p50 / redis-rs p50".to_owned(),
                Goal::AtMost(REDIS_GET_RATIO_MAX),
            )
        } else {
            (
                format!("Redis {op} ratio: gateway p50 / redis-rs p50"),
                Goal::Info,
            )
        };
        let specs: Vec<Spec> = vec![
            (
                format!("Redis {op}: gateway p50"),
                Unit::Micros,
                Goal::Info,
                get(|t| us(t.gateway.p50)),
            ),
            (
                format!("Redis {op}: redis-rs direct p50"),
                Unit::Micros,
                Goal::Info,
                get(|t| us(t.direct.p50)),
            ),
            (
                plain.0,
                Unit::Ratio,
                plain.1,
                get(|t| us(t.gateway.p50) / us(t.direct.p50)),
            ),
            (
                format!("Redis {op} ratio: gateway p50 / (floor p50 + redis-rs p50)"),
                Unit::Ratio,
                Goal::Info,
                get(Trio::ratio),
            ),
        ];
        push_all(rows, 12, specs);
        if let Ok(t) = trio {
            notes.push(format!(
                "Redis {op}: p50 {:.1} µs = floor {:.1} µs + redis-rs {:.1} µs + {:.1} µs of \
                 gateway work (p99: gateway {:.1} µs, redis-rs {:.1} µs); the floor alone is \
                 {:.2}× redis-rs's p50.",
                us(t.gateway.p50),
                us(t.floor.p50),
                us(t.direct.p50),
                us(t.gateway.p50) - us(t.floor.p50) - us(t.direct.p50),
                us(t.gateway.p99),
                us(t.direct.p99),
                us(t.floor.p50) / us(t.direct.p50),
            ));
        }
    }
}

/// Phase 16 for every backend: backup and restore rates against the engine's own tool, the
/// gateway's RSS growth during each, and point-query p99 while backups run.
pub fn backup_rows_and_notes(b: &BackupResults) -> (Vec<Row>, Vec<String>) {
    let (mut rows, mut notes) = (Vec::new(), Vec::new());
    notes.push(format!(
        "Backups (16): one timed run per side and operation (a run moves {} rows or keys and \
         takes seconds), the gateway first; a database is filled with the engine's own loader \
         and read once in full before anything is timed.",
        thousands(b.rows as f64)
    ));
    for (store, result) in &b.stores {
        let count = format!("{} {}", thousands(b.rows as f64), store.unit());
        let rate = Unit::Rate(if store.unit() == "keys" {
            "keys/s"
        } else {
            "rows/s"
        });
        let n = b.rows as f64;
        let secs = |r: &crate::transfer::Run| r.elapsed.as_secs_f64();
        let get = |f: &dyn Fn(&crate::backups::StoreResult) -> Result<f64, String>| {
            result.as_ref().map_err(String::clone).and_then(f)
        };
        let err = |e: &String| e.clone();
        let share = |g: &Result<GatewayRun, String>, nat: &Result<NativeRun, String>| {
            let g = g.as_ref().map_err(err)?;
            let nat = nat.as_ref().map_err(err)?;
            Ok(100.0 * secs(&nat.run) / secs(&g.run))
        };
        let (bt, rt) = (store.backup_tool(), store.restore_tool());
        let specs: Vec<Spec> = vec![
            (
                format!("{store} backup: gateway CreateBackup ({count})"),
                rate,
                Goal::Info,
                get(&|r| r.backup.as_ref().map(|g| n / secs(&g.run)).map_err(err)),
            ),
            (
                format!("{store} backup: {bt}"),
                rate,
                Goal::Info,
                get(&|r| {
                    r.native_backup
                        .as_ref()
                        .map(|x| n / secs(&x.run))
                        .map_err(err)
                }),
            ),
            (
                format!("{store} backup: gateway as % of {bt}"),
                Unit::Percent,
                Goal::AtLeast(SHARE_MIN),
                get(&|r| share(&r.backup, &r.native_backup)),
            ),
            (
                format!("{store} restore: gateway RestoreBackup (NEW)"),
                rate,
                Goal::Info,
                get(&|r| r.restore.as_ref().map(|g| n / secs(&g.run)).map_err(err)),
            ),
            (
                format!("{store} restore: {rt}"),
                rate,
                Goal::Info,
                get(&|r| {
                    r.native_restore
                        .as_ref()
                        .map(|x| n / secs(&x.run))
                        .map_err(err)
                }),
            ),
            (
                format!("{store} restore: gateway as % of {rt}"),
                Unit::Percent,
                Goal::AtLeast(SHARE_MIN),
                get(&|r| share(&r.restore, &r.native_restore)),
            ),
            (
                format!("{store} backup: gateway RSS growth"),
                Unit::Megabytes,
                Goal::AtMost(RSS_GROWTH_MAX_MB),
                get(&|r| {
                    r.backup
                        .as_ref()
                        .map(|g| megabytes(g.rss_growth()))
                        .map_err(err)
                }),
            ),
            (
                format!("{store} restore: gateway RSS growth"),
                Unit::Megabytes,
                Goal::AtMost(RSS_GROWTH_MAX_MB),
                get(&|r| {
                    r.restore
                        .as_ref()
                        .map(|g| megabytes(g.rss_growth()))
                        .map_err(err)
                }),
            ),
            (
                format!("{store} point query p99 while backups run: with / without"),
                Unit::Ratio,
                Goal::AtMost(P99_RATIO_MAX),
                get(&|r| {
                    r.point
                        .as_ref()
                        .map(|p| p.gateway.latency.p99.as_secs_f64() / p.idle.p99.as_secs_f64())
                        .map_err(err)
                }),
            ),
            (
                format!("{store} point query p99 while {bt} runs: with / without"),
                Unit::Ratio,
                Goal::Info,
                get(&|r| {
                    let p = r.point.as_ref().map_err(err)?;
                    let native = p.native.as_ref().map_err(err)?;
                    Ok(native.latency.p99.as_secs_f64() / p.idle.p99.as_secs_f64())
                }),
            ),
        ];
        push_all(&mut rows, 16, specs);
        if let Ok(r) = result
            && let (Some(fork), Some(native)) = (&r.fork, &r.native_fork)
        {
            let tool = match store {
                crate::backups::Store::Sql(crate::transfer::Engine::Sqlite) => "`sqlite3 .backup`",
                _ => "`CREATE DATABASE … TEMPLATE` (`createdb -T`)",
            };
            let ratio = || {
                let g = fork.as_ref().map_err(err)?;
                let nat = native.as_ref().map_err(err)?;
                Ok(secs(&g.run) / secs(&nat.run))
            };
            push_all(
                &mut rows,
                16,
                vec![
                    (
                        format!("{store} fork: gateway ForkDatabase ({count})"),
                        Unit::Millis,
                        Goal::Info,
                        fork.as_ref().map(|g| 1e3 * secs(&g.run)).map_err(err),
                    ),
                    (
                        format!("{store} fork: {tool}"),
                        Unit::Millis,
                        Goal::Info,
                        native.as_ref().map(|x| 1e3 * secs(&x.run)).map_err(err),
                    ),
                    (
                        format!("{store} fork: gateway time / {tool} time"),
                        Unit::Ratio,
                        Goal::AtMost(FORK_RATIO_MAX),
                        ratio(),
                    ),
                ],
            );
        }
        let Ok(r) = result else {
            continue;
        };
        let cpu = |run: &crate::transfer::Run| {
            format!(
                "{:.2} s, {:.2} CPU-s in the gateway, {:.2} on the whole machine",
                secs(run),
                run.cpu.gateway.as_secs_f64(),
                run.cpu.machine.as_secs_f64()
            )
        };
        let mut parts = vec![format!(
            "{store}: filling {count} took {:.1} s (untimed)",
            r.load.as_secs_f64()
        )];
        if let Ok(g) = &r.backup {
            parts.push(format!(
                "CreateBackup {} and stored {:.1} MB (RSS {:.1} → {:.1} MB)",
                cpu(&g.run),
                megabytes(g.bytes),
                megabytes(g.rss_before),
                megabytes(g.rss_peak)
            ));
        }
        if let Ok(x) = &r.native_backup {
            parts.push(format!(
                "{bt} {} and wrote {:.1} MB",
                cpu(&x.run),
                megabytes(x.bytes)
            ));
        }
        if let Ok(g) = &r.restore {
            parts.push(format!(
                "RestoreBackup {} (RSS {:.1} → {:.1} MB)",
                cpu(&g.run),
                megabytes(g.rss_before),
                megabytes(g.rss_peak)
            ));
        }
        if let Ok(x) = &r.native_restore {
            parts.push(format!("{rt} {}", cpu(&x.run)));
        }
        if let Ok(p) = &r.point {
            let during = |d: &crate::backups::During, what: &str| {
                format!(
                    "{:.0}/{:.0} µs over {} queries while {} {what} ran",
                    us(d.latency.p50),
                    us(d.latency.p99),
                    d.samples,
                    d.backups
                )
            };
            let native = match &p.native {
                Ok(d) => format!(", {}", during(d, &format!("runs of {bt}"))),
                Err(_) => String::new(),
            };
            parts.push(format!(
                "point queries p50/p99 {:.0}/{:.0} µs without a backup, {}{native}",
                us(p.idle.p50),
                us(p.idle.p99),
                during(&p.gateway, "CreateBackups"),
            ));
        }
        notes.push(format!("{}.", parts.join("; ")));
    }
    (rows, notes)
}

/// The SDK issue's targets, in rows/s.
const PYTHON_SYNC_MIN: f64 = 250_000.0;
const NODE_GRPC_MIN: f64 = 300_000.0;

/// Phase 14: each SDK's rate, its share of the Rust SDK's, and the CPU that explains a miss.
/// `phase6` is phase 6's stream through the generated Rust client, when it ran.
pub fn sdk_rows_and_notes(s: &SdkResults, phase6: Option<&StreamRun>) -> (Vec<Row>, Vec<String>) {
    let (mut rows, mut notes) = (Vec::new(), Vec::new());
    let count = thousands(s.rows as f64);
    let rate = Unit::Rate("rows/s");
    let rust = s.get(SdkClient::Rust).map(Result::as_ref);
    notes.push(format!(
        "SDK streams: each client read {} streams of the same {count}-row result from the first \
         gateway, one client at a time, and its best run counts; CPU per row is that run's, \
         the client's from its own process (Rust: 10 ms ticks) and the gateway's over all of the \
         client's runs.",
        s.runs
    ));
    for (client, result) in &s.clients {
        let label = client.label();
        let goal = match client {
            SdkClient::PythonSync => Goal::AtLeast(PYTHON_SYNC_MIN),
            SdkClient::NodeGrpc => Goal::AtLeast(NODE_GRPC_MIN),
            _ => Goal::Info,
        };
        let mut specs = vec![(format!("{label}: stream of {count} rows"), goal)];
        if *client != SdkClient::Rust {
            specs.push((format!("{label} as % of the Rust SDK"), Goal::Info));
        }
        for (i, (name, goal)) in specs.into_iter().enumerate() {
            let unit = if i == 0 { rate } else { Unit::Percent };
            let value = match (i, result, rust) {
                (_, Err(why), _) => Err(why.clone()),
                (0, Ok(r), _) => Ok(r.rows_per_sec()),
                (_, Ok(r), Some(Ok(base))) => Ok(100.0 * r.rows_per_sec() / base.rows_per_sec()),
                (_, Ok(_), Some(Err(why))) => Err(why.clone()),
                (_, Ok(_), None) => Err(Missing::Failed("the Rust SDK did not run".into())),
            };
            rows.push(match value {
                Ok(v) => Row::new(14, name, v, unit, goal),
                Err(Missing::Skipped(why)) => Row::skipped(14, name, &why, unit, goal),
                Err(Missing::Failed(why)) => Row::failed(14, name, why, unit, goal),
            });
        }
        if let Ok(r) = result {
            notes.push(sdk_note(*client, r, rust.and_then(Result::ok), goal));
        }
    }
    if let (Some(Ok(r)), Some(p6)) = (rust, phase6)
        && p6.rows == s.rows
    {
        let share = 100.0 * r.rows_per_sec() / p6.rows_per_sec();
        // Runs minutes apart on a shared machine differ by several percent either way.
        let reading = if share < 95.0 {
            "the difference is what the SDK's `Row`s and `Value`s cost over reading the \
             protobuf cells in place"
        } else {
            "the SDK's `Row`s and `Value`s cost less than the two runs' variation"
        };
        notes.push(format!(
            "Rust SDK: its stream ran at {share:.0}% of phase 6's loop over the generated client \
             on the same gateway ({} against {} rows/s): {reading}.",
            thousands(r.rows_per_sec()),
            thousands(p6.rows_per_sec()),
        ));
    }
    (rows, notes)
}

/// What one SDK's best run cost in CPU, and for a missed target, where the time went.
fn sdk_note(client: SdkClient, r: &SdkRun, rust: Option<&SdkRun>, goal: Goal) -> String {
    let label = client.label();
    let elapsed_ns = 1e9 / r.rows_per_sec();
    let gateway = r
        .gateway_ns_per_row
        .map_or_else(String::new, |g| format!(", the gateway {g:.0} ns"));
    let versus = match rust {
        Some(base) if client != SdkClient::Rust => format!(
            " ({:.1}× the Rust SDK's {:.0} ns)",
            r.client_ns_per_row() / base.client_ns_per_row(),
            base.client_ns_per_row()
        ),
        _ => String::new(),
    };
    let mut note = format!(
        "{label}: the best run took {:.0} ms, {elapsed_ns:.0} ns per row; the client process \
         used {:.0} ns of CPU per row{versus}{gateway} (the client kept {:.2} cores busy).",
        ms(r.elapsed),
        r.client_ns_per_row(),
        r.client_cores(),
    );
    if let Goal::AtLeast(target) = goal
        && r.rows_per_sec() < target
    {
        // The time per row the target allows, against what the client's CPU alone needs.
        let budget = 1e9 / target;
        note.push_str(&if r.client_ns_per_row() > budget {
            format!(
                " It misses {} rows/s in the client: the target allows {budget:.0} ns per row, \
                 and the client's own CPU per row (decoding the messages into rows and handing \
                 them over) is {:.0} ns.",
                thousands(target),
                r.client_ns_per_row(),
            )
        } else {
            format!(
                " It misses {} rows/s although its CPU per row fits the {budget:.0} ns the \
                 target allows: the client was busy only {:.0}% of the time, waiting on the \
                 transport or the gateway.",
                thousands(target),
                100.0 * r.client_cores(),
            )
        });
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rows_per_sec: f64, cores: f64) -> SdkRun {
        let elapsed = Duration::from_secs_f64(1000.0 / rows_per_sec);
        SdkRun {
            rows: 1000,
            elapsed,
            client_cpu: elapsed.mul_f64(cores),
            gateway_ns_per_row: Some(500.0),
        }
    }

    #[test]
    fn sdk_rows_carry_targets_shares_and_skips() {
        let s = SdkResults {
            rows: 1000,
            runs: 1,
            clients: vec![
                (SdkClient::Rust, Ok(run(1_000_000.0, 0.5))),
                (SdkClient::PythonSync, Ok(run(200_000.0, 1.0))),
                (
                    SdkClient::PythonAsync,
                    Err(Missing::Skipped("no venv".into())),
                ),
                (SdkClient::NodeGrpc, Ok(run(400_000.0, 0.6))),
                (SdkClient::NodeGrpcWeb, Err(Missing::Failed("boom".into()))),
            ],
            children_cpu: Duration::ZERO,
        };
        let (rows, notes) = sdk_rows_and_notes(&s, None);
        let status: Vec<(String, String)> =
            rows.iter().map(|r| (r.name.clone(), r.status())).collect();
        let of = |prefix: &str| {
            status
                .iter()
                .filter(|(n, _)| n.starts_with(prefix))
                .map(|(_, s)| s.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(of("Rust SDK"), [""]);
        assert_eq!(of("Python SDK, sync"), ["MISS (20% short)", ""]);
        assert_eq!(of("Python SDK, asyncio"), ["SKIPPED", "SKIPPED"]);
        assert_eq!(of("TypeScript SDK on Node, gRPC"), ["PASS", ""]);
        assert_eq!(of("TypeScript SDK on Node, grpc-web"), ["FAIL", "FAIL"]);
        let share = rows
            .iter()
            .find(|r| r.name == "Python SDK, sync (grpcio) as % of the Rust SDK")
            .map(|r| r.value.clone());
        assert_eq!(share, Some(Ok(20.0)));
        // The miss is explained: 5,000 ns of client CPU per row against a 4,000 ns budget.
        assert!(
            notes.iter().any(|n| n.starts_with("Python SDK, sync")
                && n.contains("misses 250,000 rows/s in the client")),
            "{notes:#?}"
        );
    }

    fn timed_run(secs: f64) -> crate::transfer::Run {
        crate::transfer::Run {
            elapsed: Duration::from_secs_f64(secs),
            cpu: crate::transfer::Cpu::default(),
        }
    }

    #[test]
    fn backup_rows_state_shares_memory_and_the_interference_ratio() {
        use crate::backups::{During, PointEffect, Store, StoreResult};
        let latency = |p99_us: u64| Latency {
            p50: Duration::from_micros(p99_us / 2),
            p95: Duration::from_micros(p99_us),
            p99: Duration::from_micros(p99_us),
        };
        let gateway = |secs: f64, growth_mb: u64| GatewayRun {
            run: timed_run(secs),
            rss_before: 50_000_000,
            rss_peak: 50_000_000 + growth_mb * 1_000_000,
            bytes: 1_000_000,
        };
        let native = |secs: f64| NativeRun {
            run: timed_run(secs),
            bytes: 2_000_000,
        };
        let ok = StoreResult {
            load: Duration::from_secs(1),
            backup: Ok(gateway(4.0, 10)),
            native_backup: Ok(native(1.0)),
            restore: Ok(gateway(2.0, 80)),
            native_restore: Err(crate::report::skipped("pg_restore is not installed")),
            point: Ok(PointEffect {
                idle: latency(300),
                gateway: During {
                    latency: latency(900),
                    samples: 2000,
                    backups: 1,
                },
                native: Ok(During {
                    latency: latency(600),
                    samples: 2000,
                    backups: 3,
                }),
            }),
            // Redis has no fork target.
            fork: None,
            native_fork: None,
        };
        let b = BackupResults {
            rows: 1_000_000,
            stores: vec![
                (Store::Redis, Ok(ok)),
                (Store::Sql(Engine::Sqlite), Err("boom".into())),
            ],
        };
        let (rows, notes) = backup_rows_and_notes(&b);
        assert_eq!(rows.len(), 20);
        assert!(rows.iter().all(|r| r.phase == 16));
        let redis: Vec<(String, String)> = rows[..10]
            .iter()
            .map(|r| (r.name.clone(), r.status()))
            .collect();
        let status = |name: &str| {
            redis
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.as_str())
                .unwrap_or("absent")
        };
        assert_eq!(
            status("Redis backup: gateway as % of a pipelined DUMP loop (redis-rs)"),
            "MISS (50% short)"
        );
        assert_eq!(
            status("Redis restore: gateway as % of a pipelined RESTORE loop (redis-rs)"),
            "SKIPPED"
        );
        assert_eq!(status("Redis backup: gateway RSS growth"), "PASS");
        assert_eq!(
            status("Redis restore: gateway RSS growth"),
            "MISS (25% over)"
        );
        assert_eq!(
            status("Redis point query p99 while backups run: with / without"),
            "MISS (50% over)"
        );
        assert_eq!(rows[0].value, Ok(250_000.0));
        assert_eq!(
            rows[9].value,
            Ok(2.0),
            "the native baseline's p99 ratio: {:?}",
            rows[9].name
        );
        assert!(rows[10..].iter().all(|r| r.status() == "FAIL"));
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("Redis: filling 1,000,000 keys")),
            "{notes:#?}"
        );
    }
}
