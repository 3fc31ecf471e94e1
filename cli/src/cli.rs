//! The command-line grammar: every command, flag and environment variable of `dbforge`, as clap
//! derive structs. Parsing only; what the commands do lives in `commands/`.
//!
//! A new command group becomes a variant of [`Command`] with its own module under
//! `commands/` (as `backup` did).

use std::{path::PathBuf, time::Duration};

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use dbforge::{ColumnDef, ColumnType, Filter, Value};

use crate::{
    error::EXIT_CODES_HELP,
    input::{self, Assign, OrderKey},
};

const AFTER_HELP: &str = "\
Connection settings come from flags, then DBFORGE_* environment variables, then the profile in
the config file (~/.config/dbforge/config.toml, or DBFORGE_CONFIG), then defaults.

Parameters (--param, --where, --set values) are typed by their text: 24 is an int, 2.5 a float,
true/false a bool, null is NULL, anything else (and numbers with a leading zero, like 007) is
text. Force a type with a prefix: text:24, int:24, float:1, bool:true, decimal:1.10, json:{…},
hex:00ff, base64:AP8=, timestamp:2024-05-01T12:00:00Z, date:2024-05-01, uuid:….
";

/// The DB-Forge command-line client: spawn isolated databases and use them.
#[derive(Debug, Parser)]
#[command(
    name = "dbforge",
    version,
    about = "Spawn isolated databases on a DB-Forge gateway and use them: SQL, tables, an interactive shell, charts.",
    after_help = format!("{AFTER_HELP}\n{EXIT_CODES_HELP}"),
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Connection and output settings, accepted before or after the command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Gateway address: http://host:port, or https://host:port for TLS; a bare host:port is http
    /// (https with --ca-file) [default: http://127.0.0.1:50051].
    #[arg(long, global = true, env = "DBFORGE_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// API key, sent as a bearer token on every call.
    #[arg(
        long,
        global = true,
        env = "DBFORGE_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// PEM file of the CA that signed the gateway's certificate (enables TLS).
    #[arg(long, global = true, env = "DBFORGE_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Deadline of the whole command, e.g. 30s or 2m, streamed results included (in the shell: of
    /// each statement).
    #[arg(long, global = true, env = "DBFORGE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Named profile of the config file.
    #[arg(long, global = true, env = "DBFORGE_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// Config file [default: <config dir>/dbforge/config.toml].
    #[arg(long, global = true, env = "DBFORGE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Output format: table, json, ndjson or csv [default: table on a terminal, ndjson
    /// otherwise]. For export and dump, a file path (`-o out.csv`) names the file to write.
    #[arg(long, short = 'o', global = true, value_parser = parse_output, value_name = "FORMAT")]
    pub output: Option<OutputArg>,
    /// When to use colours; NO_COLOR in the environment turns auto off.
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto, value_name = "WHEN")]
    pub color: ColorArg,
    /// Width of tables and charts in columns [default: the terminal's, or COLUMNS].
    #[arg(long, global = true, value_name = "COLUMNS")]
    pub width: Option<usize>,
    /// Wrap wide table cells over several lines instead of cutting them with '…'.
    #[arg(long, global = true)]
    pub wrap: bool,
    /// How tables show NULL.
    #[arg(long, global = true, default_value = "NULL", value_name = "TEXT")]
    pub null: String,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned table with a row count and the elapsed time.
    Table,
    /// One JSON array of row objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// RFC 4180 CSV with a header line; NULL is an empty field, empty text is "".
    Csv,
}

impl Format {
    /// The name `--output` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
        }
    }
}

/// The value of `-o/--output`: a format, or (for `export` and `dump`) the file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputArg {
    /// How rows are printed.
    Format(Format),
    /// The file an export or dump goes to.
    File(PathBuf),
}

impl GlobalArgs {
    /// The output format asked for, if any (a file value was moved to its command by then).
    pub fn format(&self) -> Option<Format> {
        match self.output {
            Some(OutputArg::Format(f)) => Some(f),
            _ => None,
        }
    }
}

/// A format name, else a path: a value with a `.` or a `/` in it, so that a misspelt format
/// (`-o jsn`) is still a usage error rather than a file.
fn parse_output(s: &str) -> std::result::Result<OutputArg, String> {
    if let Ok(f) = Format::from_str(s, true) {
        return Ok(OutputArg::Format(f));
    }
    if s.contains('.') || s.contains(std::path::MAIN_SEPARATOR) {
        return Ok(OutputArg::File(PathBuf::from(s)));
    }
    Err(format!(
        "expected one of table, json, ndjson, csv (or, for export and dump, a file path such \
         as out.csv), found {s:?}"
    ))
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    /// Colours when writing to a terminal and NO_COLOR is not set.
    Auto,
    /// Always (also overrides NO_COLOR).
    Always,
    /// Never.
    Never,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Spawn, inspect, list and prune databases.
    #[command(subcommand)]
    Db(DbCommand),
    /// Run SQL and stream the result as it arrives.
    Sql(SqlArgs),
    /// Create tables without writing SQL.
    #[command(subcommand)]
    Table(TableCommand),
    /// Insert, select, update and delete rows without writing SQL.
    #[command(subcommand)]
    Rows(RowsCommand),
    /// An interactive SQL shell with history, completion and dot-commands.
    Shell(ShellArgs),
    /// Chart a two-column result (label, value) in the terminal.
    Chart(ChartArgs),
    /// Export a table or a query's rows as CSV, JSON or NDJSON.
    Export(ExportArgs),
    /// Import a CSV file into a table, or run an SQL script or NDJSON key dump.
    Import(ImportArgs),
    /// Dump a whole database as a script that `import --sql` replays.
    Dump(DumpArgs),
    /// Fork a database: a new, independent database with its data as it is now (or as a backup
    /// holds it).
    Fork(ForkArgs),
    /// Print lifecycle events (created, deleted, forked, expired, pruned_idle, backed_up,
    /// restored, updated) of the databases this key can see, as they happen.
    Watch(WatchArgs),
    /// Show the tables, columns, keys, indexes and constraints of a database.
    Schema(SchemaArgs),
    /// Show a statement's query plan, with the tables it reads in full.
    Explain(ExplainArgs),
    /// Ask a question about a database's data in natural language: the gateway's model writes
    /// the SQL, the engine checks it, and with --run it runs read-only.
    Ask(AskArgs),
    /// Map a SQL database into a graph database (W3C Direct Mapping): rows become subjects,
    /// columns typed literals, foreign keys links, so joins are SPARQL paths.
    Materialize(MaterializeArgs),
    /// Create, list and revoke API keys (admin keys only).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Describe the API key in use: its name, role and grants.
    Whoami,
    /// List and verify the gateway's audit log (admin keys only).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The gateway's operational figures: uptime, connections, streams, sessions, calls per RPC
    /// (admin keys only).
    Stats,
    /// Back databases up, list, restore and delete backups, and schedule them with policies.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Set, list and delete lifecycle policies: prune rules and per-key limits for databases
    /// by name pattern or labels (admin keys set and delete them).
    #[command(subcommand)]
    Policy(LifecyclePolicyCommand),
    /// Show the config file and the settings in effect.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Serve MCP (the Model Context Protocol) on stdin/stdout for an agent host, with the tools
    /// of the gateway's /mcp endpoint, calling the gateway with this command's endpoint and key.
    Mcp(McpArgs),
    /// Print a shell completion script, e.g. `dbforge completions bash > /etc/bash_completion.d/dbforge`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `dbforge db …`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Spawn a new, empty database.
    Create {
        /// Name: 1 to 63 of a-z 0-9 _ -, starting with a letter.
        name: String,
        /// The engine.
        #[arg(long, value_enum, default_value_t = BackendArg::Sqlite)]
        backend: BackendArg,
        /// A label KEY=VALUE; repeat for more.
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = input::parse_label)]
        labels: Vec<(String, String)>,
        /// Succeed when the database exists already (with the same backend).
        #[arg(long)]
        if_not_exists: bool,
        /// The gateway prunes the database this long from now, e.g. "1h" (its TTL).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "expire_at")]
        ttl: Option<std::time::Duration>,
        /// The gateway prunes the database at this RFC 3339 time, e.g. 2030-01-01T00:00:00Z.
        #[arg(long, value_name = "TIME", value_parser = input::parse_rfc3339)]
        expire_at: Option<std::time::SystemTime>,
        /// The gateway prunes the database after this long without a data-plane call, e.g. "30m".
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        idle_ttl: Option<std::time::Duration>,
        /// Back the database up (default target) before a TTL or idle prune; a failed backup
        /// keeps it.
        #[arg(long)]
        backup_before_prune: bool,
    },
    /// Change a database's labels, TTL, idle TTL or final backup (owner role); what is not
    /// given keeps its value.
    #[command(after_help = "\
Examples:
  dbforge db update scratch --ttl 2h --idle-ttl 30m
  dbforge db update scratch --clear-ttl --backup-before-prune true
  dbforge db update scratch --label team=a --label tier=dev   # replaces every label")]
    Update {
        /// The database.
        name: String,
        /// A label KEY=VALUE; the labels given replace every label. Repeat for more.
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = input::parse_label)]
        labels: Vec<(String, String)>,
        /// Remove every label.
        #[arg(long, conflicts_with = "labels")]
        clear_labels: bool,
        /// A new TTL, this long from now, e.g. "1h".
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with_all = ["expire_at", "clear_ttl"])]
        ttl: Option<std::time::Duration>,
        /// A new TTL at this RFC 3339 time.
        #[arg(long, value_name = "TIME", value_parser = input::parse_rfc3339, conflicts_with = "clear_ttl")]
        expire_at: Option<std::time::SystemTime>,
        /// Remove the TTL.
        #[arg(long)]
        clear_ttl: bool,
        /// A new idle TTL, e.g. "30m".
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "clear_idle_ttl")]
        idle_ttl: Option<std::time::Duration>,
        /// Remove the idle TTL.
        #[arg(long)]
        clear_idle_ttl: bool,
        /// Whether a backup precedes a TTL or idle prune.
        #[arg(long, value_name = "BOOL")]
        backup_before_prune: Option<bool>,
        /// A size quota in bytes: over it, writes fail with RESOURCE_EXHAUSTED (SQLite: at
        /// once; PostgreSQL, MySQL, Redis: after the next measurement).
        #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "clear_max_bytes")]
        max_bytes: Option<u64>,
        /// Remove the database's own size quota (a policy's still applies).
        #[arg(long)]
        clear_max_bytes: bool,
    },
    /// List databases in name order.
    #[command(visible_alias = "ls")]
    List {
        /// Only databases of this engine.
        #[arg(long, value_enum)]
        backend: Option<BackendArg>,
        /// Only databases with this label KEY=VALUE; repeat to require several.
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = input::parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Show one database: backend, status, times, size, labels, capabilities.
    Show {
        /// The database.
        name: String,
    },
    /// Prune a database and all its data; asks first unless --yes.
    #[command(visible_alias = "delete")]
    Rm {
        /// The database.
        name: String,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Succeed when the database does not exist.
        #[arg(long)]
        if_exists: bool,
    },
}

/// Engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// Embedded SQLite, one file per database.
    Sqlite,
    /// A database and role on a PostgreSQL server.
    Postgres,
    /// A schema and user on a MySQL or MariaDB server.
    Mysql,
    /// A key namespace and ACL user on a Redis server.
    Redis,
    /// An embedded Oxigraph RDF store queried with SPARQL (servers built with `graph`).
    Graph,
}

impl From<BackendArg> for dbforge::Backend {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Sqlite => dbforge::Backend::Sqlite,
            BackendArg::Postgres => dbforge::Backend::Postgres,
            BackendArg::Mysql => dbforge::Backend::Mysql,
            BackendArg::Redis => dbforge::Backend::Redis,
            BackendArg::Graph => dbforge::Backend::Graph,
        }
    }
}

/// `dbforge sql DB [SQL]`
#[derive(Debug, Args)]
#[command(after_help = "\
SQL comes from the argument, from --file, or from stdin (when neither is given or SQL is -).
Several statements separated by ; run in order and stop at the first error; with --transaction
they run all or nothing. --param binds to the ? placeholders of a single statement.")]
pub struct SqlArgs {
    /// The database.
    pub database: String,
    /// The SQL text; - reads stdin.
    pub sql: Option<String>,
    /// Read the SQL from this file.
    #[arg(long, short = 'f', value_name = "PATH", conflicts_with = "sql")]
    pub file: Option<PathBuf>,
    /// A positional parameter; repeat in placeholder order (see `dbforge --help` for typing).
    #[arg(long = "param", short = 'p', value_name = "VALUE", value_parser = input::parse_param, allow_hyphen_values = true)]
    pub params: Vec<Value>,
    /// Run all statements in one transaction: all of them or none (on Redis: one MULTI/EXEC
    /// batch).
    #[arg(long)]
    pub transaction: bool,
    /// Stop after this many rows (the summary says the result was cut).
    #[arg(long, value_name = "N")]
    pub max_rows: Option<u64>,
    /// Dry run: run the statements in a transaction that is always rolled back and show what
    /// each would do (rows affected, sampled rows before and after, full scans, errors).
    #[arg(long, conflicts_with_all = ["transaction", "max_rows"])]
    pub preview: bool,
}

/// `dbforge table …`
#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Create a table from column specs NAME:TYPE[:pk][:notnull][:unique][:default=VALUE].
    #[command(after_help = "\
Types: integer (int), float (real, double), text (string), bytes (blob), bool (boolean),
decimal (numeric), json, timestamp (datetime), date.

Example: dbforge table create app people --column id:integer:pk --column name:text:notnull \\
         --column score:float:default=0")]
    Create {
        /// The database.
        database: String,
        /// The table name.
        table: String,
        /// A column NAME:TYPE[:pk][:notnull][:unique][:default=VALUE]; repeat in order.
        #[arg(long = "column", short = 'c', value_name = "SPEC", required = true, value_parser = input::parse_column)]
        columns: Vec<ColumnDef>,
        /// Succeed without change when the table exists.
        #[arg(long)]
        if_not_exists: bool,
    },
}

/// `dbforge rows …`
#[derive(Debug, Subcommand)]
pub enum RowsCommand {
    /// Insert rows from JSON: an array of objects, or one object per line (NDJSON).
    #[command(after_help = "\
Each object maps column names to values: numbers become int or float, strings text, true/false
bool, null NULL, nested arrays and objects a JSON document. Rows are sent in batches of
--batch-size; each batch is one transaction.")]
    Insert {
        /// The database.
        database: String,
        /// The table.
        table: String,
        /// Read rows from this file (- for stdin) [default: stdin].
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// Rows per InsertRows call (the gateway accepts at most 10 000).
        #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000))]
        batch_size: u64,
    },
    /// Stream the rows that match every --where.
    Select {
        /// The database.
        database: String,
        /// The table.
        table: String,
        /// Only these columns, in this order; repeat or separate with commas.
        #[arg(
            long = "column",
            short = 'c',
            value_name = "NAME",
            value_delimiter = ','
        )]
        columns: Vec<String>,
        /// A condition: `col=v`, `col!=v`, `col<v`, `col<=v`, `col>v`, `col>=v`, `col like A%`,
        /// `col in a,b,c`, `col is null`, `col is not null`; repeat for AND.
        #[arg(long = "where", short = 'w', value_name = "COND", value_parser = input::parse_where, allow_hyphen_values = true)]
        filters: Vec<Filter>,
        /// Sort by this column: `age`, `age:desc` or `-age`; repeat for more keys.
        #[arg(long, value_name = "COLUMN", value_parser = input::parse_order, allow_hyphen_values = true)]
        order_by: Vec<OrderKey>,
        /// At most this many rows.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Skip this many rows first.
        #[arg(long, value_name = "N")]
        offset: Option<u64>,
    },
    /// Set columns on the rows that match every --where (or on all rows with --all).
    #[command(group(ArgGroup::new("which").required(true).args(["filters", "all"])))]
    Update {
        /// The database.
        database: String,
        /// The table.
        table: String,
        /// An assignment COLUMN=VALUE; repeat for more columns.
        #[arg(long = "set", short = 's', value_name = "COLUMN=VALUE", required = true, value_parser = input::parse_assign)]
        set: Vec<Assign>,
        /// A condition, as in `rows select`; repeat for AND.
        #[arg(long = "where", short = 'w', value_name = "COND", value_parser = input::parse_where, allow_hyphen_values = true)]
        filters: Vec<Filter>,
        /// Update every row of the table.
        #[arg(long, conflicts_with = "filters")]
        all: bool,
    },
    /// Delete the rows that match every --where (or all rows with --all).
    #[command(group(ArgGroup::new("which").required(true).args(["filters", "all"])))]
    Delete {
        /// The database.
        database: String,
        /// The table.
        table: String,
        /// A condition, as in `rows select`; repeat for AND.
        #[arg(long = "where", short = 'w', value_name = "COND", value_parser = input::parse_where, allow_hyphen_values = true)]
        filters: Vec<Filter>,
        /// Delete every row of the table.
        #[arg(long, conflicts_with = "filters")]
        all: bool,
    },
}

/// `dbforge shell DB`
#[derive(Debug, Args)]
#[command(after_help = "\
Statements end with ; and may span lines (on Redis a command ends at the end of its line).
Dot-commands: .tables, .schema [TABLE],
.mode table|csv|json|ndjson, .timer on|off, .help, .quit. Tab completes dot-commands, keywords,
table and column names. Ctrl-C cancels the running query (or clears the line); Ctrl-D quits.
BEGIN … COMMIT/ROLLBACK runs the statements in between in one transaction.
History is kept in <data dir>/dbforge/history (or DBFORGE_HISTORY).")]
pub struct ShellArgs {
    /// The database.
    pub database: String,
}

/// `dbforge chart DB SQL --bar|--hbar|--line|--pie`
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("kind").required(true).args(["bar", "hbar", "line", "pie"])))]
#[command(after_help = "\
The query must return two columns: a label (any type) and a numeric value, one row per bar,
point or slice. Bars and slices need values of at least 0; --pie lists every slice with its
value and share and draws one bar split by share (the smallest slices beyond 8 are grouped as
'other').

Example: dbforge chart app \"SELECT team, count(*) FROM people GROUP BY team\" --hbar")]
pub struct ChartArgs {
    /// The database.
    pub database: String,
    /// A query returning (label, value) rows; - reads stdin.
    pub sql: String,
    /// A positional parameter; repeat in placeholder order.
    #[arg(long = "param", short = 'p', value_name = "VALUE", value_parser = input::parse_param, allow_hyphen_values = true)]
    pub params: Vec<Value>,
    /// Vertical bars.
    #[arg(long)]
    pub bar: bool,
    /// Horizontal bars, one line per row.
    #[arg(long)]
    pub hbar: bool,
    /// A line through the values in row order.
    #[arg(long)]
    pub line: bool,
    /// Shares of the total, as a labelled breakdown.
    #[arg(long)]
    pub pie: bool,
    /// Height in lines of --bar and --line charts.
    #[arg(long, default_value_t = 12, value_name = "LINES", value_parser = clap::value_parser!(u16).range(2..=200))]
    pub height: u16,
    /// Charts at most this many rows; more is an error (aggregate in SQL instead).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_rows: u64,
}

/// File formats of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormatArg {
    /// RFC 4180 CSV with a header row and CRLF line ends.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

impl ExportFormatArg {
    /// The export format `-o FORMAT` names, if it names one (a table is not a file format).
    pub fn from_output(f: Format) -> Option<Self> {
        match f {
            Format::Csv => Some(ExportFormatArg::Csv),
            Format::Json => Some(ExportFormatArg::Json),
            Format::Ndjson => Some(ExportFormatArg::Ndjson),
            Format::Table => None,
        }
    }

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormatArg::Csv => "csv",
            ExportFormatArg::Json => "json",
            ExportFormatArg::Ndjson => "ndjson",
        }
    }
}

impl From<ExportFormatArg> for dbforge::ExportFormat {
    fn from(f: ExportFormatArg) -> Self {
        match f {
            ExportFormatArg::Csv => dbforge::ExportFormat::Csv,
            ExportFormatArg::Json => dbforge::ExportFormat::Json,
            ExportFormatArg::Ndjson => dbforge::ExportFormat::Ndjson,
        }
    }
}

/// `dbforge export DB (--table T | --query SQL)`
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["table", "query"])))]
#[command(after_help = "\
The file streams from the gateway as it is written: to stdout, or to --out. Bytes are base64,
decimals strings (no rounding), timestamps RFC 3339 in UTC. When stderr is a terminal and the
file does not go to it, a progress line counts the rows.

Examples:
  dbforge export app --table people > people.csv
  dbforge export app --query \"SELECT * FROM people WHERE age > ?\" -p 30 --format ndjson --out adults.ndjson")]
pub struct ExportArgs {
    /// The database.
    pub database: String,
    /// Export this table or view.
    #[arg(long, short = 't', value_name = "TABLE")]
    pub table: Option<String>,
    /// Export the rows of this read statement; - reads it from stdin.
    #[arg(long, short = 'q', value_name = "SQL")]
    pub query: Option<String>,
    /// A positional parameter of --query; repeat in placeholder order.
    #[arg(long = "param", short = 'p', value_name = "VALUE", value_parser = input::parse_param, allow_hyphen_values = true, requires = "query")]
    pub params: Vec<Value>,
    /// The file format [default: csv] (also `-o csv|json|ndjson`).
    #[arg(long, short = 'F', value_enum, value_name = "FORMAT")]
    pub format: Option<ExportFormatArg>,
    /// Write the file here instead of stdout (also `-o PATH`).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// CSV field delimiter: one ASCII character, or tab.
    #[arg(long, short = 'd', value_name = "CHAR", value_parser = input::parse_delimiter)]
    pub delimiter: Option<char>,
    /// CSV text for NULL [default: the empty field; empty text is then \"\"].
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub null_text: Option<String>,
}

/// `dbforge import DB (--csv F --table T | --sql F | --ndjson F)`
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("file").required(true).args(["csv", "sql", "ndjson"])))]
#[command(after_help = "\
--csv inserts every row in one transaction: a bad row fails the import, naming its line, and
nothing is inserted. With --skip-bad-rows the good rows go in and the bad ones are listed.
--create makes the table from the header, inferring each column's type from the first
--sample-rows rows (integer, float, bool, date, timestamp, else text); --type overrides it.
--sql runs a script (such as a `dbforge dump`) statement by statement; on SQLite and PostgreSQL
all or nothing. --ndjson replays a Redis dump. A FILE of - reads stdin.

Examples:
  dbforge import app --csv people.csv --table people --create --type zip=text
  dbforge import app --csv export.csv --table people --skip-bad-rows --null-text NULL
  dbforge import copy --sql dump.sql")]
pub struct ImportArgs {
    /// The database.
    pub database: String,
    /// Import this CSV file into --table.
    #[arg(long, value_name = "FILE", requires = "table")]
    pub csv: Option<PathBuf>,
    /// Run this SQL script.
    #[arg(long, value_name = "FILE")]
    pub sql: Option<PathBuf>,
    /// Import these NDJSON key records (Redis).
    #[arg(long, value_name = "FILE")]
    pub ndjson: Option<PathBuf>,
    /// The target table of --csv.
    #[arg(long, short = 't', value_name = "TABLE", requires = "csv")]
    pub table: Option<String>,
    /// Create the table from the file (fails if it exists).
    #[arg(long, requires = "csv")]
    pub create: bool,
    /// With --create: a column's type instead of the inferred one, COLUMN=TYPE; repeat.
    #[arg(long = "type", value_name = "COLUMN=TYPE", value_parser = input::parse_type_override, requires = "create")]
    pub types: Vec<(String, ColumnType)>,
    /// With --create: rows read to infer the types [default: 100].
    #[arg(long, value_name = "N", requires = "create")]
    pub sample_rows: Option<u32>,
    /// Insert the good rows and list the bad ones instead of failing.
    #[arg(long, requires = "csv")]
    pub skip_bad_rows: bool,
    /// CSV field delimiter: one ASCII character, or tab.
    #[arg(long, short = 'd', value_name = "CHAR", value_parser = input::parse_delimiter, requires = "csv")]
    pub delimiter: Option<char>,
    /// CSV text read as NULL [default: the empty field; \"\" stays empty text].
    #[arg(
        long,
        value_name = "TEXT",
        allow_hyphen_values = true,
        requires = "csv"
    )]
    pub null_text: Option<String>,
    /// The CSV file has no header row: fields fill the table's columns in order.
    #[arg(long, requires = "csv", conflicts_with = "create")]
    pub no_header: bool,
}

/// `dbforge dump DB`
#[derive(Debug, Args)]
#[command(after_help = "\
SQL databases dump as a script in their own dialect (tables, constraints, indexes, views,
sequence state, then the data as INSERTs) that `dbforge import DB --sql` replays into a fresh
database of the same backend; Redis dumps NDJSON key records for `import --ndjson`.

Example: dbforge dump app > app.sql && dbforge db create copy && dbforge import copy --sql app.sql")]
pub struct DumpArgs {
    /// The database.
    pub database: String,
    /// Leave the data out.
    #[arg(long)]
    pub schema_only: bool,
    /// Write the dump here instead of stdout (also `-o PATH`).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// `dbforge fork SRC NEW`
#[derive(Debug, Args)]
#[command(after_help = "\
The fork is a new database on the source's backend, owned by your key: writes to either one
never show in the other. It needs the read role on SRC (the owner role with --from-backup) and
the right to create NEW. SQLite copies the file with its online backup API, PostgreSQL uses SRC as
a template (a dump when SRC is in use), MySQL replays a consistent dump, Redis copies every
key with its TTL.

Examples:
  dbforge fork app app-before-migration
  dbforge fork app app-yesterday --from-backup bk-0192ab34cd56-7f3a09c1 --label why=debug
  dbforge fork app app-try --ttl 2h --idle-ttl 20m")]
pub struct ForkArgs {
    /// The database to fork.
    pub source: String,
    /// The new database's name: 1 to 63 of a-z 0-9 _ -, starting with a letter.
    pub name: String,
    /// A label KEY=VALUE of the new database; repeat for more (the source's are not copied).
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = input::parse_label)]
    pub labels: Vec<(String, String)>,
    /// Fork from this backup of SRC (as `backup list` shows it) instead of its current data.
    #[arg(long, value_name = "ID")]
    pub from_backup: Option<String>,
    /// The gateway prunes the fork this long from now, e.g. "1h" (its TTL).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "expire_at")]
    pub ttl: Option<std::time::Duration>,
    /// The gateway prunes the fork at this RFC 3339 time, e.g. 2030-01-01T00:00:00Z.
    #[arg(long, value_name = "TIME", value_parser = input::parse_rfc3339)]
    pub expire_at: Option<std::time::SystemTime>,
    /// The gateway prunes the fork after this long without a data-plane call, e.g. "30m".
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub idle_ttl: Option<std::time::Duration>,
    /// Back the fork up (default target) before a TTL or idle prune.
    #[arg(long)]
    pub backup_before_prune: bool,
}

/// `dbforge watch`
#[derive(Debug, Args)]
#[command(after_help = "\
Runs until interrupted (or --count events, or --timeout). Each event carries its sequence
number: after a dropped connection, `dbforge watch --since N` with the last N printed sends every
later event once, in order (OUT_OF_RANGE when the gateway no longer keeps them).

Examples:
  dbforge watch -o ndjson
  dbforge watch --since 1234 --label team=a")]
pub struct WatchArgs {
    /// Resume after this sequence number; without it, only events from now on.
    #[arg(long, value_name = "N")]
    pub since: Option<i64>,
    /// Only databases with this label KEY=VALUE; repeat to require several.
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = input::parse_label)]
    pub labels: Vec<(String, String)>,
    /// Only databases of this engine.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

/// `dbforge schema DB [TABLE]`
#[derive(Debug, Args)]
#[command(after_help = "\
Prints the gateway's compact rendering: CREATE statements with row estimates (SQL), or key
patterns (Redis). With --output json or ndjson (-o json), prints the structure as JSON: tables
with columns, primary key, indexes, foreign keys, unique and check constraints.")]
pub struct SchemaArgs {
    /// The database.
    pub database: String,
    /// Only this table or view.
    pub table: Option<String>,
}

/// `dbforge explain DB SQL`
#[derive(Debug, Args)]
#[command(after_help = "\
Prints the plan as a tree, each node with its estimated rows and cost where the backend gives
them, then a warning naming the tables read by a full scan. With -o json, prints the plan as
JSON with the backend's raw plan.

Example: dbforge explain app \"SELECT * FROM people WHERE name = ?\" -p Ada")]
pub struct ExplainArgs {
    /// The database.
    pub database: String,
    /// The statement; - reads stdin.
    pub sql: String,
    /// A positional parameter; repeat in placeholder order.
    #[arg(long = "param", short = 'p', value_name = "VALUE", value_parser = input::parse_param, allow_hyphen_values = true)]
    pub params: Vec<Value>,
    /// Run the statement (rolled back) for actual row counts (PostgreSQL, MariaDB).
    #[arg(long)]
    pub analyze: bool,
}

/// `dbforge ask DB QUESTION`
#[derive(Debug, Args)]
#[command(after_help = "\
Prints the model's rationale as comments, the SQL, and a warning naming the tables its plan reads
in full; with --run, the rows as `dbforge sql` prints them. Exits non-zero when the model gave up
(the reason is printed). Needs a gateway started with --llm-url and --llm-model.

Example: dbforge ask shop \"Which five customers spent the most?\" --run --max-rows 5")]
pub struct AskArgs {
    /// The database.
    pub database: String,
    /// The question, in natural language.
    pub question: String,
    /// Run the query (read-only) and print its rows.
    #[arg(long)]
    pub run: bool,
    /// Rows to print at most (0: the gateway's default, 100).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_rows: u64,
}

/// `dbforge materialize SRC GRAPH_DB`
#[derive(Debug, Args)]
#[command(after_help = "\
Reads every base table of SRC (SQLite, PostgreSQL or MySQL) and loads its rows into the graph
database GRAPH_DB in one transaction: each row is <BASE table/key=value> of class <BASE table>,
each non-NULL column a typed literal on <BASE table#column>, each foreign key a link
<BASE table#ref-column> to the referenced row. BASE is urn:dbforge:SRC/ unless --base-iri says.

Examples:
  dbforge db create shop-kb --backend graph
  dbforge materialize shop shop-kb --replace
  dbforge sql shop-kb 'SELECT ?name WHERE { ?c <urn:dbforge:shop/customers#name> ?name }'")]
pub struct MaterializeArgs {
    /// The SQL database to map.
    pub source: String,
    /// The graph database to load.
    pub graph_database: String,
    /// The IRI every table, column and row IRI starts with (default: urn:dbforge:SRC/).
    #[arg(long, value_name = "IRI")]
    pub base_iri: Option<String>,
    /// Load into this named graph instead of the default graph.
    #[arg(long, value_name = "IRI")]
    pub graph: Option<String>,
    /// Clear that graph first, in the same transaction, so it holds exactly SRC's rows now.
    #[arg(long)]
    pub replace: bool,
}

/// `dbforge key …`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key; its secret is shown this once.
    #[command(after_help = "\
Grants are ROLE:TARGET with ROLE read, write or owner (write + delete the database) and TARGET a
database name, a name pattern with * (agent-42-*), or labels KEY=VALUE[,KEY=VALUE…].

Examples:
  dbforge key create \"agent 42\" --can-create --quota 10 --grant 'owner:agent-42-*'
  dbforge key create reports --grant read:sales --grant read:team=search --expires-in 30d
  dbforge key create ops --admin")]
    Create {
        /// A name for people, 1 to 128 characters.
        name: String,
        /// Make it an admin key: everything is allowed, including managing keys.
        #[arg(long)]
        admin: bool,
        /// Let it create databases (it then owns them).
        #[arg(long)]
        can_create: bool,
        /// With --can-create: how many databases it may have created at once [default: no limit].
        #[arg(long, value_name = "N", requires = "can_create")]
        quota: Option<u32>,
        /// A role on some databases, ROLE:TARGET; repeat for more.
        #[arg(long = "grant", short = 'g', value_name = "ROLE:TARGET", value_parser = input::parse_grant)]
        grants: Vec<dbforge::Grant>,
        /// Make it stop working after this long, e.g. 30d or 12h.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
    },
    /// List API keys (never their secrets).
    #[command(visible_alias = "ls")]
    List {
        /// Include revoked and expired keys.
        #[arg(long)]
        all: bool,
    },
    /// Revoke an API key; calls with it fail from the next one on.
    Revoke {
        /// The key's id (the part after dbf_, as `key list` shows it).
        id: String,
    },
}

/// `dbforge audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit records, oldest first, filtered by key, database, outcome and time.
    #[command(visible_alias = "ls")]
    List {
        /// Only calls made with this key id.
        #[arg(long, value_name = "ID")]
        key: Option<String>,
        /// Only calls on this database.
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
        /// Only calls with this outcome: OK, PERMISSION_DENIED, …
        #[arg(long, value_name = "CODE")]
        outcome: Option<String>,
        /// Only records from this time on: RFC 3339 (2024-05-01T12:00:00Z) or an age (1h).
        #[arg(long, value_name = "TIME", value_parser = input::parse_time)]
        since: Option<std::time::SystemTime>,
        /// Only records before this time: RFC 3339 or an age.
        #[arg(long, value_name = "TIME", value_parser = input::parse_time)]
        until: Option<std::time::SystemTime>,
        /// At most this many records.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: u64,
    },
    /// Check the audit log's hash chain: the first edited record or gap, if any (exit code 1).
    Verify,
}

/// `dbforge backup …`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back a database up now; returns when the backup is stored.
    #[command(after_help = "\
The gateway writes the backup (compressed, checksummed, with a manifest) to a target configured
on the server (--backup-target name=url there); the default target is its data directory's
backups folder. On a terminal a spinner shows the bytes written so far.

Examples:
  dbforge backup create app --label why=before-migration
  dbforge backup create app --target s3-archive -o json | jq -r .id")]
    Create {
        /// The database.
        database: String,
        /// A target configured on the server [default: the server's default target].
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// A label KEY=VALUE; repeat for more (keys starting with `dbforge.` are reserved).
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = input::parse_label)]
        labels: Vec<(String, String)>,
    },
    /// List backups, newest first.
    #[command(visible_alias = "ls")]
    List {
        /// Only backups of this database (it may have been deleted since).
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
        /// Only backups with this label KEY=VALUE; repeat to require several.
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = input::parse_label)]
        labels: Vec<(String, String)>,
        /// Only backups in this status.
        #[arg(long, value_enum)]
        status: Option<BackupStatusArg>,
    },
    /// Show one backup: its database, status, size, checksum, location and manifest.
    Show {
        /// The backup's id (as `backup list` shows it).
        id: String,
    },
    /// Restore a backup over the database it came from (--replace) or into a new one (--new).
    #[command(group(ArgGroup::new("mode").required(true).args(["replace", "new"])))]
    #[command(after_help = "\
--replace first backs up the database as it is now (the safety backup, named in the output:
restoring it undoes the restore), then swaps the restored copy in at once; calls on the database
fail with UNAVAILABLE meanwhile. --new restores into a new database on the same backend and
leaves the original alone. A backup whose stored bytes do not match their checksum is refused
and nothing changes.

Examples:
  dbforge backup restore bk-0192ab34cd56-7f3a09c1 --replace
  dbforge backup restore bk-0192ab34cd56-7f3a09c1 --new app-yesterday --label from=backup")]
    Restore {
        /// The backup's id.
        id: String,
        /// Replace the database the backup came from, after a safety backup of it.
        #[arg(long)]
        replace: bool,
        /// Restore into a new database with this name.
        #[arg(long, value_name = "NAME")]
        new: Option<String>,
        /// With --new: a label KEY=VALUE of the new database; repeat for more.
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = input::parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Delete a backup (its stored object too); asks first unless --yes.
    #[command(visible_alias = "delete")]
    Rm {
        /// The backup's id.
        id: String,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Succeed when the backup does not exist.
        #[arg(long)]
        if_exists: bool,
    },
    /// Schedule backups: set, list and delete backup policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// Statuses of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackupStatusArg {
    /// Being written.
    Running,
    /// Stored and verified; can be restored.
    Completed,
    /// Did not complete.
    Failed,
}

impl From<BackupStatusArg> for dbforge::BackupStatus {
    fn from(s: BackupStatusArg) -> Self {
        match s {
            BackupStatusArg::Running => dbforge::BackupStatus::Running,
            BackupStatusArg::Completed => dbforge::BackupStatus::Completed,
            BackupStatusArg::Failed => dbforge::BackupStatus::Failed,
        }
    }
}

/// `dbforge backup policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create or replace (by name) a policy: which databases, when, and how many backups to keep.
    #[command(group(ArgGroup::new("selector").required(true).args(["database", "pattern", "labels"])))]
    #[command(group(ArgGroup::new("schedule").required(true).args(["every", "cron"])))]
    #[command(after_help = "\
The gateway runs the policy: it backs up each selected database on the schedule (one backup of
a database at a time, one missed run caught up after downtime) and after each success deletes
that database's backups of this policy that neither --keep-last nor --keep-within keeps (give
one or both).
--pattern and --label select databases by name or labels and need an admin key.

Examples:
  dbforge backup policy set app-6h --database app --every 6h --keep-last 10
  dbforge backup policy set nightly --label tier=prod --cron \"0 3 * * *\" --keep-within 30d")]
    Set {
        /// The policy's name: 1 to 63 of a-z 0-9 _ -, starting with a letter.
        name: String,
        /// Back up this database.
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
        /// Back up the databases whose names match this pattern (`*` = any characters).
        #[arg(long, value_name = "PATTERN")]
        pattern: Option<String>,
        /// Back up the databases with this label KEY=VALUE; repeat to require several.
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = input::parse_label)]
        labels: Vec<(String, String)>,
        /// At this interval, counted from the last run, e.g. 6h or 1d (at least 1m).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        every: Option<Duration>,
        /// On this cron schedule in UTC: minute hour day-of-month month day-of-week, e.g. "0 3 * * *".
        #[arg(long, value_name = "EXPR")]
        cron: Option<String>,
        /// Keep the newest N backups of each database.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        keep_last: Option<u32>,
        /// Keep the backups younger than this, e.g. 7d.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        keep_within: Option<Duration>,
        /// A target configured on the server [default: the server's default target].
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
    },
    /// List backup policies by name, with their last and next runs.
    #[command(visible_alias = "ls")]
    List,
    /// Delete a policy; the backups it made stay.
    #[command(visible_alias = "delete")]
    Rm {
        /// The policy's name.
        name: String,
        /// Succeed when the policy does not exist.
        #[arg(long)]
        if_exists: bool,
    },
}

/// `dbforge policy …`
#[derive(Debug, Subcommand)]
pub enum LifecyclePolicyCommand {
    /// Create or replace (by name) a lifecycle policy (admin key).
    #[command(group(ArgGroup::new("selector").required(true).multiple(true).args(["pattern", "labels"])))]
    #[command(group(ArgGroup::new("rules").required(true).multiple(true).args(["idle_ttl", "max_age", "max_databases_per_key", "max_bytes"])))]
    #[command(after_help = "\
The policy applies to every database it selects, existing and future: --pattern and --label
both must hold when both are given (--pattern '*' selects all). A database is pruned when its
own TTL or idle TTL runs out or a policy's --max-age or --idle-ttl does, whichever comes first
(the stricter wins). --max-databases-per-key refuses creates and forks beyond that many
selected databases owned by one key (RESOURCE_EXHAUSTED naming the policy); admin keys are
exempt.

Examples:
  dbforge policy set ci --pattern 'ci-*' --max-age 1d --idle-ttl 1h
  dbforge policy set agents --label kind=agent --max-databases-per-key 5 --max-bytes 104857600")]
    Set {
        /// The policy's name: 1 to 63 of a-z 0-9 _ -, starting with a letter.
        name: String,
        /// Select databases whose names match this pattern (`*` = any characters).
        #[arg(long, value_name = "PATTERN")]
        pattern: Option<String>,
        /// Select databases with this label KEY=VALUE; repeat to require several.
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = input::parse_label)]
        labels: Vec<(String, String)>,
        /// Prune a selected database after this long without a data-plane call, e.g. 1h.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        idle_ttl: Option<Duration>,
        /// Prune a selected database this long after its creation, e.g. 7d.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        max_age: Option<Duration>,
        /// At most this many selected databases per (non-admin) key.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_databases_per_key: Option<u32>,
        /// A size quota in bytes for every selected database.
        #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
        max_bytes: Option<u64>,
    },
    /// List lifecycle policies by name (all for an admin key; others see those selecting a
    /// database they can see).
    #[command(visible_alias = "ls")]
    List,
    /// Delete a lifecycle policy (admin key); databases keep their own settings.
    #[command(visible_alias = "rm")]
    Delete {
        /// The policy's name.
        name: String,
        /// Succeed when the policy does not exist.
        #[arg(long)]
        if_exists: bool,
    },
}

/// `dbforge config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the config file's path.
    Path,
    /// Print the settings in effect and where each came from (the API key masked).
    Show,
}

/// `dbforge mcp`
#[derive(Debug, Args)]
#[command(after_help = "\
Agent hosts start it as a process and speak MCP over its stdin and stdout, e.g. in Claude
Desktop's claude_desktop_config.json:
  {\"mcpServers\": {\"dbforge\": {\"command\": \"dbforge\", \"args\": [\"mcp\"],
    \"env\": {\"DBFORGE_ENDPOINT\": \"http://127.0.0.1:50051\", \"DBFORGE_API_KEY\": \"...\"}}}}
The tools are those of the gateway's /mcp endpoint; writing tools are listed only when the key
may write.")]
pub struct McpArgs {
    /// The tools to offer: full, or minimal (list_databases, describe_schema, query).
    #[arg(long, value_enum, env = "DBFORGE_MCP_TOOLS", default_value = "full")]
    pub tools: McpToolsArg,
}

/// `dbforge mcp --tools`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum McpToolsArg {
    /// Every tool.
    Full,
    /// list_databases, describe_schema and query.
    Minimal,
}
