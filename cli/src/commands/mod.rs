//! The commands, and what they share: the [`App`] (settings, runtime, connection) and the
//! driver that streams a result into an output sink.

pub mod access;
pub mod ask;
pub mod backup;
pub mod chart;
pub mod config;
pub mod db;
pub mod materialize;
pub mod mcp;
pub mod operations;
pub mod policy;
pub mod rows;
pub mod schema;
pub mod sql;
pub mod table;
pub mod transfer;

use std::{
    io::{self, IsTerminal},
    time::{Duration, Instant},
};

use dbforge::{Backend, Client, DatabaseStatus, Rows, Truncation};
use futures::StreamExt;

use crate::{
    cli::{ColorArg, Command, Format, GlobalArgs},
    config::Resolved,
    error::{CliError, Result},
    output::{End, Paint, Settings, Sink},
    progress::Progress,
};

/// How long a result may pause before the table prints what it has buffered.
const IDLE_FLUSH: Duration = Duration::from_millis(200);

/// Settings and machinery every command uses.
pub struct App {
    /// The global flags.
    pub global: GlobalArgs,
    /// How stdout is written.
    pub settings: Settings,
    /// Colours of stderr.
    pub err_paint: Paint,
    /// Whether stdin is a terminal (confirmations, shell).
    pub stdin_tty: bool,
    /// Whether stderr is a terminal and stdout is not (progress indicators).
    pub show_progress: bool,
    runtime: tokio::runtime::Runtime,
    /// The connection settings, resolved on first use (a command may need none).
    resolved: std::sync::OnceLock<Resolved>,
}

/// Whether colours are on for a stream: `--color`, then NO_COLOR / CLICOLOR(_FORCE) / TERM and
/// whether it is a terminal (anstream's rules).
fn colors(arg: ColorArg, stdout: bool) -> bool {
    use anstream::{AutoStream, ColorChoice};
    match arg {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => {
            let choice = if stdout {
                AutoStream::choice(&io::stdout())
            } else {
                AutoStream::choice(&io::stderr())
            };
            choice != ColorChoice::Never
        }
    }
}

/// The width of tables and charts: --width, COLUMNS, the terminal's, or none.
pub fn width(global: &GlobalArgs) -> Option<usize> {
    global
        .width
        .or_else(|| {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.trim().parse().ok())
        })
        .or_else(|| {
            terminal_size::terminal_size_of(io::stdout())
                .map(|(w, _)| usize::from(w.0))
                .filter(|w| *w > 0)
        })
        .filter(|w| *w > 0)
}

impl App {
    /// Builds the app from the global flags.
    pub fn new(global: GlobalArgs) -> Result<Self> {
        let stdout_tty = io::stdout().is_terminal();
        let stderr_tty = io::stderr().is_terminal();
        let settings = Settings {
            format: global.format().unwrap_or(if stdout_tty {
                Format::Table
            } else {
                Format::Ndjson
            }),
            width: width(&global),
            wrap: global.wrap,
            null: global.null.clone(),
            paint: Paint::new(colors(global.color, true)),
            timer: true,
        };
        // One worker keeps the connection's background task (HTTP/2 pings, flow control)
        // running while the shell waits for input on the main thread.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        Ok(App {
            err_paint: Paint::new(colors(global.color, false)),
            stdin_tty: io::stdin().is_terminal(),
            show_progress: stderr_tty && !stdout_tty,
            settings,
            global,
            runtime,
            resolved: std::sync::OnceLock::new(),
        })
    }

    /// The connection settings in effect.
    pub fn resolved(&self) -> Result<Resolved> {
        if let Some(r) = self.resolved.get() {
            return Ok(r.clone());
        }
        let r = crate::config::resolve(&self.global)?;
        Ok(self.resolved.get_or_init(|| r).clone())
    }

    /// `--timeout`, if set (and the settings resolve).
    pub fn timeout(&self) -> Option<Duration> {
        self.resolved().ok().and_then(|r| r.options.timeout)
    }

    /// Connects to the gateway.
    pub async fn connect(&self) -> Result<Client> {
        let resolved = self.resolved()?;
        let endpoint = resolved.options.endpoint.clone();
        Client::connect_with(resolved.options)
            .await
            .map_err(|e| CliError::sdk(e, &endpoint))
    }

    /// Runs a future to completion within `--timeout`; Ctrl-C drops it (which cancels any
    /// call in flight) and returns [`CliError::Interrupted`].
    pub fn block_on<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let timeout = self.timeout();
        self.runtime.block_on(async {
            tokio::select! {
                r = within(timeout, fut) => r,
                _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
            }
        })
    }

    /// Runs a future without Ctrl-C handling (the shell handles Ctrl-C itself).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// Prints a warning on stderr.
    pub fn warn(&self, message: &str) {
        eprintln!("{}: {message}", self.err_paint.warn("warning"));
    }
}

/// Runs `fut` within `timeout`. The SDK sends the timeout as the call's `grpc-timeout`, which
/// bounds a unary call; a streamed result, whose call has returned, is bounded only here.
/// The SDK's own deadlines (the call's, a stream's) run out at the same moment as this one and
/// may win the race; theirs carry no ErrorInfo (the gateway's always does), so they read as the
/// same `--timeout` error.
pub async fn within<T>(
    timeout: Option<Duration>,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match timeout {
        None => fut.await,
        Some(t) => match tokio::time::timeout(t, fut).await {
            Err(_) => Err(CliError::Timeout(t)),
            Ok(Err(CliError::Sdk { error, .. }))
                if error.code() == dbforge::Code::DeadlineExceeded && error.reason().is_none() =>
            {
                Err(CliError::Timeout(t))
            }
            Ok(r) => r,
        },
    }
}

/// Runs one command.
pub fn run(app: &App, command: Command) -> Result<()> {
    match command {
        Command::Db(c) => db::run(app, c),
        Command::Sql(a) => sql::run(app, a),
        Command::Table(c) => table::run(app, c),
        Command::Rows(c) => rows::run(app, c),
        Command::Shell(a) => crate::shell::run(app, a),
        Command::Chart(a) => chart::run(app, a),
        Command::Export(a) => transfer::export(app, a),
        Command::Import(a) => transfer::import(app, a),
        Command::Dump(a) => transfer::dump(app, a),
        Command::Fork(a) => db::fork(app, a),
        Command::Watch(a) => db::watch(app, a),
        Command::Schema(a) => schema::schema(app, a),
        Command::Explain(a) => schema::explain(app, a),
        Command::Ask(a) => ask::ask(app, a),
        Command::Materialize(a) => materialize::materialize(app, a),
        Command::Key(c) => access::key(app, c),
        Command::Whoami => access::whoami(app),
        Command::Audit(c) => operations::audit(app, c),
        Command::Stats => operations::stats(app),
        Command::Mcp(a) => mcp::run(app, a),
        Command::Backup(c) => backup::run(app, c),
        Command::Policy(c) => policy::run(app, c),
        Command::Config(c) => config::run(app, c),
        Command::Completions { shell } => {
            let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "dbforge", &mut io::stdout());
            Ok(())
        }
    }
}

/// Buffered stdout for one command's output. Flushed by the sinks when a result pauses and at
/// its end, so streamed results appear as they arrive.
pub fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::with_capacity(64 * 1024, io::stdout().lock())
}

/// Streams `rows` into `sink`: the header, each row as it arrives (flushing when the stream
/// pauses), then the end with counts and the time since `started`.
pub async fn stream(
    mut rows: Rows,
    sink: &mut dyn Sink,
    started: Instant,
    progress: &Progress,
) -> Result<End> {
    sink.header(rows.columns())?;
    let mut count = 0u64;
    loop {
        match tokio::time::timeout(IDLE_FLUSH, rows.next()).await {
            // `next` is cancel-safe: a timeout loses nothing, the row arrives on the next poll.
            Err(_) => sink.idle()?,
            Ok(None) => break,
            Ok(Some(row)) => {
                let row = row?;
                sink.row(row.values())?;
                count += 1;
                progress.inc(1);
            }
        }
    }
    let summary = rows.summary();
    let end = End {
        rows: count,
        affected: summary.map_or(0, |s| s.rows_affected),
        elapsed: started.elapsed(),
        truncation: summary.map_or(Truncation::Unspecified, |s| s.truncation),
    };
    progress.finish();
    sink.end(&end)?;
    Ok(end)
}

/// Writes a whole (non-streamed) result into `sink`.
pub fn write_exec(
    result: &dbforge::ExecResult,
    sink: &mut dyn Sink,
    started: Instant,
) -> Result<End> {
    sink.header(&result.columns)?;
    for row in &result.rows {
        sink.row(row.values())?;
    }
    let end = End {
        rows: result.rows.len() as u64,
        affected: result.rows_affected,
        elapsed: started.elapsed(),
        truncation: Truncation::Unspecified,
    };
    sink.end(&end)?;
    Ok(end)
}

/// Warns on stderr when a limit cut a result (tables say it in their footer already).
pub fn warn_truncated(app: &App, end: &End) {
    if app.settings.format == Format::Table {
        return;
    }
    match end.truncation {
        Truncation::RowLimit => app.warn(&format!(
            "the result was cut at the row limit after {} rows",
            end.rows
        )),
        Truncation::ByteLimit => app.warn(&format!(
            "the result was cut at the gateway's byte limit after {} rows",
            end.rows
        )),
        Truncation::Unspecified => {}
    }
}

/// A count as an integer value.
pub fn int(n: u64) -> dbforge::Value {
    dbforge::Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A duration in milliseconds, to the microsecond.
pub fn millis(d: Duration) -> f64 {
    let ms = d.as_secs() as f64 * 1000.0 + f64::from(d.subsec_nanos()) / 1_000_000.0;
    (ms * 1000.0).round() / 1000.0
}

/// The backend's name as the CLI spells it (`--backend` values).
pub fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Unspecified => "unspecified",
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
        Backend::Mysql => "mysql",
        Backend::Redis => "redis",
        Backend::Graph => "graph",
    }
}

/// A status in lower case.
pub fn status_name(s: DatabaseStatus) -> &'static str {
    match s {
        DatabaseStatus::Unspecified => "unspecified",
        DatabaseStatus::Provisioning => "provisioning",
        DatabaseStatus::Ready => "ready",
        DatabaseStatus::Unavailable => "unavailable",
        DatabaseStatus::Deleting => "deleting",
        DatabaseStatus::Damaged => "damaged",
    }
}

/// Reads all of stdin, refusing to wait on a terminal for input that was not announced;
/// `how` says how else to give it.
pub fn read_stdin(app: &App, what: &str, how: &str) -> Result<String> {
    if app.stdin_tty {
        return Err(CliError::Usage(format!(
            "no {what} given: {how}, or pipe it to stdin"
        )));
    }
    let mut s = String::new();
    io::Read::read_to_string(&mut io::stdin(), &mut s)
        .map_err(|e| CliError::Usage(format!("cannot read {what} from stdin: {e}")))?;
    Ok(s)
}

impl From<dbforge::Error> for CliError {
    fn from(e: dbforge::Error) -> Self {
        // Transport errors happen while connecting, where `App::connect` adds the endpoint;
        // mid-call failures arrive as statuses, which need no endpoint.
        CliError::sdk(e, "")
    }
}
