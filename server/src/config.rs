//! The server's configuration: command-line flags, each also read from a `DBFORGE_*` environment
//! variable (flags win).
//!
//! Every default is written once: as a constant (the limits' in [`core::limits::defaults`],
//! the rest in [`defaults`]) that the flag names with clap's `default_value_t`, so `--help`
//! shows it, and that [`Limits::default`] reads too. [`Config::default`] is the flags' defaults
//! as clap fills them in. The README's "Server configuration" table is checked against
//! `--help` by a test (`server/tests/it/docs.rs`).
//!
//! [`core::limits::defaults`]: crate::core::limits::defaults

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::{
    backend::{ServerBackendConfig, sqlite::SqliteConfig},
    core::{
        backup::BackupConfig,
        clock::{self, SharedClock},
        forge::ForgeConfig,
        lifecycle::PruneTrigger,
        limits::{Limits, defaults as limit},
        quota::QuotaTrigger,
        resume::{ResumeLimits, defaults as resume},
        semantic::model::{LlmConfig, Secret},
    },
};

/// The defaults of the flags that are not request limits (those are in
/// [`core::limits::defaults`](crate::core::limits::defaults)).
pub mod defaults {
    use super::*;

    /// `--listen`: loopback only, so a fresh install is not reachable from the network.
    pub const LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 50051);
    /// `--data-dir`.
    pub const DATA_DIR: &str = "./data";
    /// `--log`, in tracing's EnvFilter syntax.
    pub const LOG: &str = "info";
    /// `--shutdown-grace`.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
    /// `--rate-limit`: no limit.
    pub const RATE_LIMIT: u32 = 0;
    /// `--max-streams-per-key`.
    pub const MAX_STREAMS_PER_KEY: usize = 64;
    /// `--sqlite-max-size`: 1 GiB.
    pub const SQLITE_MAX_SIZE: u64 = 1 << 30;
    /// `--audit-retention`: 90 days.
    pub const AUDIT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
    /// `--max-server-connections`.
    pub const MAX_SERVER_CONNECTIONS: u32 = 64;
    /// `--database-connections`.
    pub const DATABASE_CONNECTIONS: u32 = 4;
    /// `--database-min-connections`: an idle database holds no connection slot, so 1,000 open
    /// databases do not reserve the whole cap (as before shares existed).
    pub const DATABASE_MIN_CONNECTIONS: u32 = 0;
    /// `--database-demand-half-life`: long enough that a pause between two bursts keeps the
    /// connections, short enough that an idle database's share is back at its minimum within a
    /// minute (and its idle connections closed before `--idle-close-after` would).
    pub const DATABASE_DEMAND_HALF_LIFE: Duration = Duration::from_secs(10);
    /// `--idle-close-after`.
    pub const IDLE_CLOSE_AFTER: Duration = Duration::from_secs(60);
    /// `--max-open-databases`.
    pub const MAX_OPEN_DATABASES: usize = 256;
    /// `--sqlite-readers`.
    pub const SQLITE_READERS: usize = 4;
    /// `--sqlite-cache-kib`: 2 MiB per connection.
    pub const SQLITE_CACHE_KIB: i64 = 2048;
    /// `--backup-tick`: how often the backup scheduler looks for due policies.
    pub const BACKUP_TICK: Duration = Duration::from_secs(5);
    /// `--backup-concurrency`.
    pub const BACKUP_CONCURRENCY: usize = 2;
    /// zstd level 1: see `core::backup::format` for what the levels cost.
    pub const BACKUP_COMPRESSION_LEVEL: i32 = 1;
    /// `--prune-interval`: how often the pruner looks for expired and idle databases.
    pub const PRUNE_INTERVAL: Duration = Duration::from_secs(30);
    /// `--quota-interval`: how often databases with a size quota are measured.
    pub const QUOTA_INTERVAL: Duration = Duration::from_secs(30);
    /// `--scheduler-lease`: a dead gateway's schedulers are taken over this long after its last
    /// renewal.
    pub const SCHEDULER_LEASE: Duration = Duration::from_secs(15);
    /// `--llm-timeout`: a local model on a CPU may take tens of seconds for one answer.
    pub const LLM_TIMEOUT: Duration = Duration::from_secs(60);
}

/// The environment variable that holds the language model's API key (`--llm-url`). Not a
/// flag, so that it shows in no process list, `--help` or log line.
pub const LLM_API_KEY_ENV: &str = "DBFORGE_LLM_API_KEY";

/// `name=url` of `--backup-target`.
fn parse_target(s: &str) -> Result<(String, String), String> {
    let (name, url) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write a backup target as name=url"))?;
    if crate::core::names::DatabaseName::parse(name).is_err() {
        return Err(format!(
            "{name:?}: a target's name is 1 to 63 characters a-z 0-9 _ -, starting with a letter"
        ));
    }
    if url.is_empty() {
        return Err(format!("{name}: the URL is empty"));
    }
    Ok((name.to_owned(), url.to_owned()))
}

/// A duration as `--help` shows its default and humantime reads it back: whole days, hours
/// (`1h`), seconds (`30s`) or milliseconds.
fn duration_text(d: Duration) -> String {
    const DAY: u64 = 24 * 3600;
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 {
        format!("{}ms", d.as_millis())
    } else if secs >= DAY && secs.is_multiple_of(DAY) {
        format!("{}d", secs / DAY)
    } else if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else {
        format!("{secs}s")
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Which tools the MCP endpoint (`/mcp`) offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum McpTools {
    /// Every tool: databases, query, execute, schema, explain, CSV export.
    #[default]
    Full,
    /// list_databases, describe_schema and query: a tool list of a few hundred tokens.
    Minimal,
    /// No MCP endpoint.
    Off,
}

/// `dbforge-server`'s maintenance commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// The catalog.
    #[command(subcommand)]
    Catalog(CatalogCommand),
}

/// `dbforge-server catalog …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CatalogCommand {
    /// Copy the catalog, with every table's rows, into another (empty) one: from this data
    /// directory's `catalog.db` (or `--catalog-url`) to `--to`. Stop the gateway first.
    Migrate {
        /// Where to: a `postgres://` URL, or the path of a SQLite catalog file to create.
        #[arg(long)]
        to: String,
    },
}

/// Whether `addr` is `host:port` that other gateways can dial: a DNS name or an IP address
/// (IPv6 in brackets), not the unspecified address, and a non-zero port.
fn valid_host_port(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| !ip.is_unspecified())
    } else if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        !ip.is_unspecified()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    port_ok && host_ok
}

/// Whether `url` names a PostgreSQL database (the catalog's only server store).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Flags of `dbforge-server`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "dbforge-server",
    version,
    about = "DB-Forge gateway: spawn isolated databases and use them over gRPC."
)]
pub struct Config {
    /// Address to listen on (gRPC, grpc-web, health and reflection share it).
    #[arg(long, env = "DBFORGE_LISTEN", default_value_t = defaults::LISTEN)]
    pub listen: SocketAddr,
    /// Directory for the catalog and the SQLite files.
    #[arg(long, env = "DBFORGE_DATA_DIR", default_value = defaults::DATA_DIR)]
    pub data_dir: PathBuf,
    /// Keep the catalog (databases, keys, audit log, backups, policies) in PostgreSQL at this
    /// URL instead of `catalog.db` in the data directory.
    #[arg(long, env = "DBFORGE_CATALOG_URL")]
    pub catalog_url: Option<String>,
    /// The `host:port` other gateways sharing the catalog reach this one at, to forward calls
    /// on its SQLite databases; by default the address it listens on, which is not reachable
    /// from elsewhere when that is `0.0.0.0` or `[::]` (the gateway warns then).
    #[arg(long, env = "DBFORGE_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<String>,
    /// A maintenance command instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Log format.
    #[arg(long, env = "DBFORGE_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// Log filter, in tracing's EnvFilter syntax.
    #[arg(long, env = "DBFORGE_LOG", default_value = defaults::LOG)]
    pub log: String,
    /// After SIGINT/SIGTERM, time in-flight calls get to finish before the server closes them,
    /// e.g. "10s".
    #[arg(long, env = "DBFORGE_SHUTDOWN_GRACE", value_parser = humantime::parse_duration,
          default_value = duration_text(defaults::SHUTDOWN_GRACE))]
    pub shutdown_grace: Duration,
    /// Serve without authentication: every caller may do everything. Refused unless the
    /// listen address is a loopback address.
    #[arg(long, env = "DBFORGE_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// The admin API key, registered at start (at least 24 characters). Without it, a first
    /// start writes a new admin key to `<data-dir>/admin.key` (mode 0600).
    #[arg(long, env = "DBFORGE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// PEM certificate chain to serve TLS with (with --tls-key).
    #[arg(long, env = "DBFORGE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "DBFORGE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): clients must present a certificate signed by one (mutual TLS).
    #[arg(long, env = "DBFORGE_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// PEM CA certificate(s) the other gateways' TLS certificates chain to, so that calls on
    /// their SQLite databases can be forwarded to them (default: --tls-client-ca).
    #[arg(long, env = "DBFORGE_TLS_PEER_CA", requires = "tls_cert")]
    pub tls_peer_ca: Option<PathBuf>,
    /// Requests per second each API key may make; 0 means no limit.
    #[arg(long, env = "DBFORGE_RATE_LIMIT", default_value_t = defaults::RATE_LIMIT)]
    pub rate_limit: u32,
    /// Requests a key may make in a burst above its rate [default: the rate].
    #[arg(long, env = "DBFORGE_RATE_BURST")]
    pub rate_burst: Option<u32>,
    /// Streams and sessions each API key may have open at once; 0 means no limit.
    #[arg(long, env = "DBFORGE_MAX_STREAMS_PER_KEY", default_value_t = defaults::MAX_STREAMS_PER_KEY)]
    pub max_streams_per_key: usize,
    /// Largest size of one SQLite database, in bytes; writes past it are RESOURCE_EXHAUSTED.
    #[arg(long, env = "DBFORGE_SQLITE_MAX_SIZE", default_value_t = defaults::SQLITE_MAX_SIZE)]
    pub sqlite_max_size: u64,
    /// Do not record calls in the audit log (records already there stay readable).
    #[arg(long, env = "DBFORGE_DISABLE_AUDIT")]
    pub disable_audit: bool,
    /// Do not collect Prometheus metrics (`/metrics` is then empty).
    #[arg(long, env = "DBFORGE_DISABLE_METRICS")]
    pub disable_metrics: bool,
    /// Do not serve the web dashboard at `/` (the port then shows a short page about the API,
    /// and unknown paths get 400 as before).
    #[arg(long, env = "DBFORGE_NO_DASHBOARD")]
    pub no_dashboard: bool,
    /// The tools of the MCP endpoint at `/mcp` (streamable HTTP, the same API keys as gRPC):
    /// `full`, `minimal` (list_databases, describe_schema, query) or `off`.
    #[arg(long, env = "DBFORGE_MCP_TOOLS", value_enum, default_value_t = McpTools::Full)]
    pub mcp_tools: McpTools,
    /// How long audit records are kept, e.g. "90d".
    #[arg(long, env = "DBFORGE_AUDIT_RETENTION", value_parser = humantime::parse_duration,
          default_value = duration_text(defaults::AUDIT_RETENTION))]
    pub audit_retention: Duration,
    /// Origins whose web pages may call the gateway with grpc-web (CORS), e.g.
    /// `https://app.example`; `*` allows any. Repeat the flag, or separate with commas in the
    /// environment variable. Unset: same-origin pages only.
    #[arg(
        long = "cors-origin",
        env = "DBFORGE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// A backup target, `name=url`: a directory, `file:///dir`, `s3://bucket/prefix`,
    /// `gs://bucket/prefix` or `az://container/prefix`; credentials come from the environment
    /// the way the `object_store` crate reads them (`AWS_*`, `GOOGLE_*`, `AZURE_*`). Repeat the
    /// flag, or separate with commas in the variable. The target `local` is
    /// `<data-dir>/backups` unless set here.
    #[arg(
        long = "backup-target",
        env = "DBFORGE_BACKUP_TARGETS",
        value_delimiter = ',',
        value_parser = parse_target
    )]
    pub backup_targets: Vec<(String, String)>,
    /// How often the backup scheduler looks for due policies.
    #[arg(long, env = "DBFORGE_BACKUP_TICK", value_parser = humantime::parse_duration,
          default_value = duration_text(defaults::BACKUP_TICK))]
    pub backup_tick: Duration,
    /// Scheduled backups that run at once (each of a different database).
    #[arg(long, env = "DBFORGE_BACKUP_CONCURRENCY", default_value_t = defaults::BACKUP_CONCURRENCY)]
    pub backup_concurrency: usize,
    /// zstd level of new backups, from -7 (fastest, largest) to 19 (smallest, slowest); the
    /// stored format is the same at every level, so restores read any.
    #[arg(long, env = "DBFORGE_BACKUP_COMPRESSION_LEVEL", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-7..=19),
          default_value_t = defaults::BACKUP_COMPRESSION_LEVEL)]
    pub backup_compression_level: i32,
    /// How often the pruner looks for databases whose TTL ran out or that were idle past their
    /// idle TTL, e.g. "30s"; a prune happens up to this long after it is due.
    #[arg(long, env = "DBFORGE_PRUNE_INTERVAL", value_parser = humantime::parse_duration,
          default_value = duration_text(defaults::PRUNE_INTERVAL))]
    pub prune_interval: Duration,
    /// Instead of serving: ask the gateway listening on `--listen` (on loopback when that is
    /// a wildcard address) whether it serves, through `grpc.health.v1.Health/Check`, and exit
    /// 0 when it does, 1 otherwise (the container health check). Plaintext only.
    #[arg(long)]
    pub health_check: bool,
    /// Restore a SQLite database found damaged at start-up (after an unclean shutdown) from
    /// its newest completed backup, at once. Off: it stays DAMAGED (quarantined) until an
    /// owner restores or deletes it.
    #[arg(long, env = "DBFORGE_RESTORE_DAMAGED")]
    pub restore_damaged: bool,
    /// How often databases with a size quota are measured, e.g. "30s": PostgreSQL, MySQL and
    /// Redis databases may overshoot their quota by what is written in this long.
    #[arg(long, env = "DBFORGE_QUOTA_INTERVAL", value_parser = humantime::parse_duration,
          default_value = duration_text(defaults::QUOTA_INTERVAL))]
    pub quota_interval: Duration,
    /// How long the schedulers' lease in the catalog lasts unless renewed: with gateways
    /// sharing a catalog, one runs the pruner, quotas, backups and audit retention, and
    /// another takes over this long after it dies.
    #[arg(long, env = "DBFORGE_SCHEDULER_LEASE", value_parser = humantime::parse_duration,
          default_value = duration_text(defaults::SCHEDULER_LEASE))]
    pub scheduler_lease: Duration,
    /// Runs a quota pass on demand, besides every `--quota-interval`. Not a flag: for tests.
    #[arg(skip)]
    pub quota_trigger: Option<QuotaTrigger>,
    /// The clock lifecycles are decided on; `None`: the system's. Not a flag: tests set a
    /// manual clock here.
    #[arg(skip)]
    pub clock: Option<SharedClock>,
    /// Runs a pruner pass on demand, besides every `--prune-interval`. Not a flag: for tests.
    #[arg(skip)]
    pub prune_trigger: Option<PruneTrigger>,
    /// The language model of SemanticService.Ask: the base URL of an OpenAI-compatible
    /// chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp's server), e.g.
    /// `http://127.0.0.1:11434/v1`; the key, if it needs one, in DBFORGE_LLM_API_KEY. Unset: Ask
    /// is FAILED_PRECONDITION (the MCP `ask` tool can still use the client's model).
    #[arg(long, env = "DBFORGE_LLM_URL", requires = "llm_model")]
    pub llm_url: Option<String>,
    /// The model to ask at --llm-url, e.g. `gpt-4o-mini` or `qwen2.5-coder:7b`.
    #[arg(long, env = "DBFORGE_LLM_MODEL", requires = "llm_url")]
    pub llm_model: Option<String>,
    /// Time one answer of the model may take, e.g. "60s".
    #[arg(long, env = "DBFORGE_LLM_TIMEOUT", value_parser = humantime::parse_duration,
          default_value = duration_text(defaults::LLM_TIMEOUT))]
    pub llm_timeout: Duration,
    /// The model's API key, from DBFORGE_LLM_API_KEY ([`Config::load`]); not a flag.
    #[arg(skip)]
    pub llm_api_key: Option<Secret>,
    /// PostgreSQL admin URL (a role that may create databases and roles); unset: no PostgreSQL.
    #[arg(long, env = "DBFORGE_POSTGRES_URL")]
    pub postgres_url: Option<String>,
    /// MySQL/MariaDB admin URL (a user that may create schemas and users); unset: no MySQL.
    #[arg(long, env = "DBFORGE_MYSQL_URL")]
    pub mysql_url: Option<String>,
    /// Redis URL (a user that may manage ACL users); unset: no Redis.
    #[arg(long, env = "DBFORGE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Connections to each database server across all its spawned databases.
    #[arg(long, env = "DBFORGE_MAX_SERVER_CONNECTIONS", default_value_t = defaults::MAX_SERVER_CONNECTIONS)]
    pub max_server_connections: u32,
    /// Connections per spawned database on a database server, at most: the maximum of its
    /// share of the server's connections, which follows its demand.
    #[arg(long, env = "DBFORGE_DATABASE_CONNECTIONS", default_value_t = defaults::DATABASE_CONNECTIONS)]
    pub database_connections: u32,
    /// Connections each open PostgreSQL or MySQL database keeps as its share even when idle
    /// (the minimum of its share), as far as --max-server-connections allows.
    #[arg(long, env = "DBFORGE_DATABASE_MIN_CONNECTIONS", default_value_t = defaults::DATABASE_MIN_CONNECTIONS)]
    pub database_min_connections: u32,
    /// How fast a database's share of its server's connections follows a drop in its demand,
    /// e.g. "10s": the demand estimate halves every this long (a rise counts at once).
    #[arg(long, env = "DBFORGE_DATABASE_DEMAND_HALF_LIFE", value_parser = humantime::parse_duration,
          default_value = duration_text(defaults::DATABASE_DEMAND_HALF_LIFE))]
    pub database_demand_half_life: Duration,
    /// Rows a streamed Query may return before the server cuts it.
    #[arg(long, env = "DBFORGE_MAX_ROWS", default_value_t = limit::MAX_STREAM_ROWS)]
    pub max_rows: u64,
    /// Bytes a streamed Query may return before the server cuts it.
    #[arg(long, env = "DBFORGE_MAX_STREAM_BYTES", default_value_t = limit::MAX_STREAM_BYTES)]
    pub max_stream_bytes: u64,
    /// Rows an Execute may return inline; more is RESOURCE_EXHAUSTED.
    #[arg(long, env = "DBFORGE_MAX_EXECUTE_ROWS", default_value_t = limit::MAX_EXECUTE_ROWS)]
    pub max_execute_rows: u64,
    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "DBFORGE_MAX_MESSAGE_SIZE", default_value_t = limit::MAX_MESSAGE_BYTES)]
    pub max_message_size: usize,
    /// Time a statement or a whole stream may take, e.g. "30s".
    #[arg(long, env = "DBFORGE_STATEMENT_TIMEOUT", value_parser = humantime::parse_duration,
          default_value = duration_text(limit::STATEMENT_TIMEOUT))]
    pub statement_timeout: Duration,
    /// Row batches buffered per stream (the backpressure window).
    #[arg(long, env = "DBFORGE_STREAM_BUFFER", default_value_t = limit::STREAM_BUFFER)]
    pub stream_buffer: usize,
    /// Approximate bytes per streamed row batch.
    #[arg(long, env = "DBFORGE_BATCH_BYTES", default_value_t = limit::BATCH_BYTES)]
    pub batch_bytes: usize,
    /// Time a Session may wait for its next message, e.g. "60s".
    #[arg(long, env = "DBFORGE_SESSION_IDLE_TIMEOUT", value_parser = humantime::parse_duration,
          default_value = duration_text(limit::SESSION_IDLE_TIMEOUT))]
    pub session_idle_timeout: Duration,
    /// Close a database's connections after this long unused, e.g. "60s".
    #[arg(long, env = "DBFORGE_IDLE_CLOSE_AFTER", value_parser = humantime::parse_duration,
          default_value = duration_text(defaults::IDLE_CLOSE_AFTER))]
    pub idle_close_after: Duration,
    /// Databases with open connections at most; the least recently used close first.
    #[arg(long, env = "DBFORGE_MAX_OPEN_DATABASES", default_value_t = defaults::MAX_OPEN_DATABASES)]
    pub max_open_databases: usize,
    /// Read-only SQLite connections per open database.
    #[arg(long, env = "DBFORGE_SQLITE_READERS", default_value_t = defaults::SQLITE_READERS)]
    pub sqlite_readers: usize,
    /// SQLite page cache per connection, in KiB.
    #[arg(long, env = "DBFORGE_SQLITE_CACHE_KIB", default_value_t = defaults::SQLITE_CACHE_KIB)]
    pub sqlite_cache_kib: i64,
    /// Bytes one import (CSV, SQL script, NDJSON) may send.
    #[arg(long, env = "DBFORGE_MAX_IMPORT_SIZE", default_value_t = limit::MAX_IMPORT_BYTES)]
    pub max_import_size: u64,
    /// Bytes one line (CSV record, NDJSON record, SQL statement) of an import may hold.
    #[arg(long, env = "DBFORGE_MAX_IMPORT_LINE", default_value_t = limit::MAX_IMPORT_LINE_BYTES)]
    pub max_import_line: usize,
    /// Time an export, dump or import may take as a whole, e.g. "1h".
    #[arg(long, env = "DBFORGE_TRANSFER_TIMEOUT", value_parser = humantime::parse_duration,
          default_value = duration_text(limit::TRANSFER_TIMEOUT))]
    pub transfer_timeout: Duration,
    /// How long a resumable Query stream stays parked (its engine cursor open) after its client
    /// went away or a budget cut it, e.g. "60s".
    #[arg(long, env = "DBFORGE_RESUME_WINDOW", value_parser = humantime::parse_duration,
          default_value = duration_text(resume::WINDOW))]
    pub resume_window: Duration,
    /// Resumable Query streams (open or parked) each API key may hold; 0 turns them off.
    #[arg(long, env = "DBFORGE_MAX_RESUMABLE_PER_KEY", default_value_t = resume::MAX_PER_KEY)]
    pub max_resumable_per_key: usize,
    /// Resumable Query streams (open or parked) on the server; each parked one holds an engine
    /// connection. 0 turns them off.
    #[arg(long, env = "DBFORGE_MAX_RESUMABLE", default_value_t = resume::MAX_TOTAL)]
    pub max_resumable: usize,
    /// Bytes of already sent rows each resumable stream keeps for replay (rows a dropped
    /// connection may have lost in flight); older rows cannot be resumed from.
    #[arg(long, env = "DBFORGE_RESUME_REPLAY_BYTES", default_value_t = resume::REPLAY_BYTES)]
    pub resume_replay_bytes: usize,
}

impl Default for Config {
    /// Every flag at its default, as `dbforge-server` without flags would start with no
    /// `DBFORGE_*` variable set (the environment is not read).
    fn default() -> Self {
        let cmd = Self::command().mut_args(|a| a.env(None::<&str>));
        let matches = cmd
            .try_get_matches_from(["dbforge-server"])
            .expect("every flag has a default or is optional");
        Self::from_arg_matches(&matches).expect("clap's matches fit the Config they came from")
    }
}

impl Config {
    /// The flags and `DBFORGE_*` variables of this process, with the model's API key read
    /// from [`LLM_API_KEY_ENV`].
    pub fn load() -> Self {
        let mut cfg = Self::parse();
        cfg.llm_api_key = std::env::var(LLM_API_KEY_ENV)
            .ok()
            .filter(|k| !k.is_empty())
            .map(Secret::new);
        cfg
    }

    /// The language model's settings, when `--llm-url` is set.
    pub fn llm(&self) -> Option<LlmConfig> {
        Some(LlmConfig {
            url: self.llm_url.clone()?,
            model: self.llm_model.clone()?,
            timeout: self.llm_timeout,
            api_key: self.llm_api_key.clone(),
        })
    }

    /// Checks values that parse but make no sense; the error names the flag.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("--max-rows", u128::from(self.max_rows)),
            ("--max-execute-rows", u128::from(self.max_execute_rows)),
            ("--max-message-size", self.max_message_size as u128),
            ("--stream-buffer", self.stream_buffer as u128),
            ("--batch-bytes", self.batch_bytes as u128),
            ("--max-open-databases", self.max_open_databases as u128),
            ("--sqlite-readers", self.sqlite_readers as u128),
            ("--max-import-size", u128::from(self.max_import_size)),
            ("--max-import-line", self.max_import_line as u128),
            (
                "--max-server-connections",
                u128::from(self.max_server_connections),
            ),
            (
                "--database-connections",
                u128::from(self.database_connections),
            ),
            ("--backup-concurrency", self.backup_concurrency as u128),
            ("--prune-interval", self.prune_interval.as_millis()),
            ("--quota-interval", self.quota_interval.as_millis()),
            ("--scheduler-lease", self.scheduler_lease.as_millis()),
        ];
        for (flag, value) in positive {
            if value == 0 {
                return Err(format!("{flag} must be greater than 0"));
            }
        }
        if self.max_message_size < 64 << 10 || self.max_message_size > i32::MAX as usize {
            return Err("--max-message-size must be between 65536 and 2147483647 bytes".into());
        }
        if self.insecure_no_auth && !self.listen.ip().is_loopback() {
            return Err(format!(
                "--insecure-no-auth is refused on the non-loopback address {}: anyone who can \
                 reach it could use every database",
                self.listen
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("--tls-cert and --tls-key go together".into());
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            return Err("--tls-client-ca needs --tls-cert and --tls-key".into());
        }
        if self.tls_peer_ca.is_some() && self.tls_cert.is_none() {
            return Err("--tls-peer-ca needs --tls-cert and --tls-key".into());
        }
        if self.statement_timeout.is_zero() {
            return Err("--statement-timeout must be greater than 0".into());
        }
        if self.database_min_connections > self.database_connections {
            return Err(format!(
                "--database-min-connections ({}) must not exceed --database-connections ({})",
                self.database_min_connections, self.database_connections
            ));
        }
        if self.database_demand_half_life.is_zero() {
            return Err("--database-demand-half-life must be greater than 0".into());
        }
        if self.llm_timeout.is_zero() {
            return Err("--llm-timeout must be greater than 0".into());
        }
        if let Some(url) = &self.catalog_url
            && !is_postgres_url(url)
        {
            return Err(format!(
                "--catalog-url must be a postgres:// or postgresql:// URL, not {:?}",
                url.split_once("://").map_or("a path", |(scheme, _)| scheme)
            ));
        }
        if let Some(addr) = &self.advertise_address
            && !valid_host_port(addr)
        {
            return Err(format!(
                "--advertise-address {addr:?} must be host:port (a name or an IP address, and \
                 a port from 1 to 65535; an IPv6 address in brackets: [::1]:50051)"
            ));
        }
        if let Some(url) = &self.llm_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "--llm-url {url:?} must be an http:// or https:// URL (the base of an \
                 OpenAI-compatible API, e.g. http://127.0.0.1:11434/v1)"
            ));
        }
        Ok(())
    }

    /// The request limits: the flags', and the defaults of those without a flag.
    pub fn limits(&self) -> Limits {
        Limits {
            max_stream_rows: self.max_rows,
            max_stream_bytes: self.max_stream_bytes,
            max_execute_rows: self.max_execute_rows,
            max_message_bytes: self.max_message_size,
            statement_timeout: self.statement_timeout,
            stream_buffer: self.stream_buffer,
            batch_bytes: self.batch_bytes,
            session_idle_timeout: self.session_idle_timeout,
            max_import_bytes: self.max_import_size,
            max_import_line_bytes: self.max_import_line,
            transfer_timeout: self.transfer_timeout,
            resume: ResumeLimits {
                window: self.resume_window,
                max_per_key: self.max_resumable_per_key,
                max_total: self.max_resumable,
                replay_bytes: self.resume_replay_bytes,
            },
            ..Limits::default()
        }
    }

    /// The Forge's settings.
    pub fn forge(&self) -> ForgeConfig {
        ForgeConfig {
            data_dir: self.data_dir.clone(),
            catalog_url: self.catalog_url.clone(),
            limits: self.limits(),
            idle_close_after: self.idle_close_after,
            max_open_databases: self.max_open_databases,
            audit_retention: self.audit_retention,
            audit: !self.disable_audit,
            backup: BackupConfig {
                targets: self.backup_targets.clone(),
                default_dir: self.data_dir.join("backups"),
                scratch_dir: self.data_dir.join("backups-scratch"),
                tick: self.backup_tick,
                concurrency: self.backup_concurrency,
                compression_level: self.backup_compression_level,
            },
            prune_interval: self.prune_interval,
            clock: self.clock.clone().unwrap_or_else(clock::system),
            prune_trigger: self.prune_trigger.clone(),
            restore_damaged: self.restore_damaged,
            quota_interval: self.quota_interval,
            scheduler_lease: self.scheduler_lease,
            quota_trigger: self.quota_trigger.clone(),
            address: self
                .advertise_address
                .clone()
                .unwrap_or_else(|| self.listen.to_string()),
        }
    }

    /// The settings of a server backend reached at `url`.
    pub fn server_backend(&self, url: &str) -> ServerBackendConfig {
        ServerBackendConfig {
            url: url.to_owned(),
            max_connections: self.max_server_connections,
            per_database_connections: self.database_connections,
            min_database_connections: self.database_min_connections,
            demand_half_life: self.database_demand_half_life,
            idle_timeout: self.idle_close_after,
        }
    }

    /// The SQLite backend's settings.
    pub fn sqlite(&self) -> SqliteConfig {
        SqliteConfig {
            dir: self.data_dir.join("sqlite"),
            max_readers: self.sqlite_readers,
            cache_kib: self.sqlite_cache_kib,
            // A single value must fit in one response message.
            max_value_bytes: i32::try_from(self.max_message_size).unwrap_or(i32::MAX),
            max_size_bytes: self.sqlite_max_size,
        }
    }

    /// The graph backend's settings (built with the `graph` feature; always on when built).
    #[cfg(feature = "graph")]
    pub fn graph(&self) -> crate::backend::graph::GraphConfig {
        crate::backend::graph::GraphConfig {
            dir: self.data_dir.join("graph"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_as_humantime_reads_them() {
        for (d, text) in [
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(60), "60s"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(90 * 24 * 3600), "90d"),
            (Duration::from_millis(1500), "1500ms"),
        ] {
            assert_eq!(duration_text(d), text);
            assert_eq!(humantime::parse_duration(text).expect("parses"), d);
        }
    }

    #[test]
    fn the_default_config_has_the_limits_defaults() {
        let cfg = Config::default();
        let (got, want) = (cfg.limits(), Limits::default());
        assert_eq!(format!("{got:?}"), format!("{want:?}"));
        assert_eq!(cfg.listen, defaults::LISTEN);
        assert_eq!(cfg.data_dir, PathBuf::from(defaults::DATA_DIR));
        assert_eq!(cfg.audit_retention, defaults::AUDIT_RETENTION);
        assert_eq!(cfg.rate_burst, None);
        assert!(!cfg.insecure_no_auth);
        cfg.validate().expect("the defaults are valid");
    }

    #[test]
    fn flags_override_the_defaults() {
        let cfg = Config::try_parse_from([
            "dbforge-server",
            "--max-rows",
            "5",
            "--statement-timeout",
            "2s",
        ])
        .expect("parses");
        assert_eq!(cfg.limits().max_stream_rows, 5);
        assert_eq!(cfg.limits().statement_timeout, Duration::from_secs(2));
        assert_eq!(cfg.limits().batch_bytes, limit::BATCH_BYTES);
    }

    #[test]
    fn the_catalog_url_must_name_postgresql() {
        for (url, ok) in [
            ("postgres://postgres@127.0.0.1/catalog", true),
            ("postgresql://u:p@db.internal:5433/catalog", true),
            ("mysql://root@127.0.0.1/catalog", false),
            ("/var/lib/dbforge/catalog.db", false),
        ] {
            let cfg =
                Config::try_parse_from(["dbforge-server", "--catalog-url", url]).expect("parses");
            assert_eq!(cfg.validate().is_ok(), ok, "{url}");
        }
        let cfg = Config::try_parse_from([
            "dbforge-server",
            "catalog",
            "migrate",
            "--to",
            "postgres://postgres@127.0.0.1/c",
        ])
        .expect("parses");
        assert!(matches!(
            cfg.command,
            Some(Command::Catalog(CatalogCommand::Migrate { ref to })) if to.starts_with("postgres://")
        ));
    }

    #[test]
    fn the_backup_compression_level_is_zstds_range() {
        for (level, ok) in [
            ("-7", true),
            ("-1", true),
            ("19", true),
            ("-8", false),
            ("20", false),
        ] {
            let parsed =
                Config::try_parse_from(["dbforge-server", "--backup-compression-level", level]);
            assert_eq!(parsed.is_ok(), ok, "{level}");
            if let Ok(cfg) = parsed {
                assert_eq!(cfg.forge().backup.compression_level.to_string(), level);
            }
        }
        let cfg = Config::try_parse_from(["dbforge-server"]).expect("parses");
        assert_eq!(cfg.forge().backup.compression_level, 1);
    }

    #[test]
    fn the_advertised_address_must_be_dialable() {
        for (addr, ok) in [
            ("10.0.0.7:50051", true),
            ("gw-2.internal:50051", true),
            ("[fd00::7]:50051", true),
            ("0.0.0.0:50051", false),
            ("[::]:50051", false),
            ("gw-2.internal", false),
            ("gw-2.internal:0", false),
            ("gw 2:50051", false),
            (":50051", false),
        ] {
            let cfg = Config::try_parse_from(["dbforge-server", "--advertise-address", addr])
                .expect("parses");
            assert_eq!(cfg.validate().is_ok(), ok, "{addr}");
            if ok {
                assert_eq!(cfg.forge().address, addr, "heartbeats carry it");
            }
        }
    }
}
