//! The server's configuration: command-line flags, each also read from a `DBFORGE_*` environment
//! variable (flags win). Every limit left unset takes the default of [`Limits`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

use crate::{
    backend::{ServerBackendConfig, sqlite::SqliteConfig},
    core::{forge::ForgeConfig, limits::Limits},
};

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `dbforge-server`.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "dbforge-server",
    version,
    about = "DB-Forge gateway: spawn isolated databases and use them over gRPC."
)]
pub struct Config {
    /// Address to listen on (gRPC, grpc-web, health and reflection share it) [default: 127.0.0.1:50051].
    #[arg(long, env = "DBFORGE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the catalog and the SQLite files [default: ./data].
    #[arg(long, env = "DBFORGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "DBFORGE_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// Log filter, in tracing's EnvFilter syntax [default: info].
    #[arg(long, env = "DBFORGE_LOG")]
    pub log: Option<String>,
    /// After SIGINT/SIGTERM, time in-flight calls get to finish before the server closes them,
    /// e.g. "10s" [default: 10s].
    #[arg(long, env = "DBFORGE_SHUTDOWN_GRACE", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Option<Duration>,
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
    /// Requests per second each API key may make; 0 means no limit [default: 0].
    #[arg(long, env = "DBFORGE_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Requests a key may make in a burst above its rate [default: the rate].
    #[arg(long, env = "DBFORGE_RATE_BURST")]
    pub rate_burst: Option<u32>,
    /// Streams and sessions each API key may have open at once; 0 means no limit [default: 64].
    #[arg(long, env = "DBFORGE_MAX_STREAMS_PER_KEY")]
    pub max_streams_per_key: Option<usize>,
    /// Largest size of one SQLite database, in bytes; writes past it are RESOURCE_EXHAUSTED
    /// [default: 1 GiB].
    #[arg(long, env = "DBFORGE_SQLITE_MAX_SIZE")]
    pub sqlite_max_size: Option<u64>,
    /// Do not record calls in the audit log (records already there stay readable).
    #[arg(long, env = "DBFORGE_DISABLE_AUDIT")]
    pub disable_audit: bool,
    /// Do not collect Prometheus metrics (`/metrics` is then empty).
    #[arg(long, env = "DBFORGE_DISABLE_METRICS")]
    pub disable_metrics: bool,
    /// How long audit records are kept, e.g. "90d" [default: 90d].
    #[arg(long, env = "DBFORGE_AUDIT_RETENTION", value_parser = humantime::parse_duration)]
    pub audit_retention: Option<Duration>,
    /// Origins whose web pages may call the gateway with grpc-web (CORS), e.g.
    /// `https://app.example`; `*` allows any. Repeat the flag, or separate with commas in the
    /// environment variable. Unset: same-origin pages only.
    #[arg(
        long = "cors-origin",
        env = "DBFORGE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// PostgreSQL admin URL (a role that may create databases and roles); unset: no PostgreSQL.
    #[arg(long, env = "DBFORGE_POSTGRES_URL")]
    pub postgres_url: Option<String>,
    /// MySQL/MariaDB admin URL (a user that may create schemas and users); unset: no MySQL.
    #[arg(long, env = "DBFORGE_MYSQL_URL")]
    pub mysql_url: Option<String>,
    /// Redis URL (a user that may manage ACL users); unset: no Redis.
    #[arg(long, env = "DBFORGE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Connections to each database server across all its spawned databases [default: 64].
    #[arg(long, env = "DBFORGE_MAX_SERVER_CONNECTIONS")]
    pub max_server_connections: Option<u32>,
    /// Connections per spawned database on a database server [default: 4].
    #[arg(long, env = "DBFORGE_DATABASE_CONNECTIONS")]
    pub database_connections: Option<u32>,
    /// Rows a streamed Query may return before the server cuts it [default: 100000000].
    #[arg(long, env = "DBFORGE_MAX_ROWS")]
    pub max_rows: Option<u64>,
    /// Bytes a streamed Query may return before the server cuts it [default: 16 GiB].
    #[arg(long, env = "DBFORGE_MAX_STREAM_BYTES")]
    pub max_stream_bytes: Option<u64>,
    /// Rows an Execute may return inline; more is RESOURCE_EXHAUSTED [default: 10000].
    #[arg(long, env = "DBFORGE_MAX_EXECUTE_ROWS")]
    pub max_execute_rows: Option<u64>,
    /// Largest gRPC message accepted or sent, in bytes [default: 4194304].
    #[arg(long, env = "DBFORGE_MAX_MESSAGE_SIZE")]
    pub max_message_size: Option<usize>,
    /// Time a statement or a whole stream may take, e.g. "30s" [default: 30s].
    #[arg(long, env = "DBFORGE_STATEMENT_TIMEOUT", value_parser = humantime::parse_duration)]
    pub statement_timeout: Option<Duration>,
    /// Row batches buffered per stream (the backpressure window) [default: 8].
    #[arg(long, env = "DBFORGE_STREAM_BUFFER")]
    pub stream_buffer: Option<usize>,
    /// Approximate bytes per streamed row batch [default: 1048576].
    #[arg(long, env = "DBFORGE_BATCH_BYTES")]
    pub batch_bytes: Option<usize>,
    /// Time a Session may wait for its next message, e.g. "60s" [default: 60s].
    #[arg(long, env = "DBFORGE_SESSION_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub session_idle_timeout: Option<Duration>,
    /// Close a database's connections after this long unused, e.g. "60s" [default: 60s].
    #[arg(long, env = "DBFORGE_IDLE_CLOSE_AFTER", value_parser = humantime::parse_duration)]
    pub idle_close_after: Option<Duration>,
    /// Databases with open connections at most; the least recently used close first [default: 256].
    #[arg(long, env = "DBFORGE_MAX_OPEN_DATABASES")]
    pub max_open_databases: Option<usize>,
    /// Read-only SQLite connections per open database [default: 4].
    #[arg(long, env = "DBFORGE_SQLITE_READERS")]
    pub sqlite_readers: Option<usize>,
    /// SQLite page cache per connection, in KiB [default: 2048].
    #[arg(long, env = "DBFORGE_SQLITE_CACHE_KIB")]
    pub sqlite_cache_kib: Option<i64>,
    /// Bytes one import (CSV, SQL script, NDJSON) may send [default: 268435456].
    #[arg(long, env = "DBFORGE_MAX_IMPORT_SIZE")]
    pub max_import_size: Option<u64>,
    /// Bytes one line (CSV record, NDJSON record, SQL statement) of an import may hold
    /// [default: 16777216].
    #[arg(long, env = "DBFORGE_MAX_IMPORT_LINE")]
    pub max_import_line: Option<usize>,
    /// Time an export, dump or import may take as a whole, e.g. "1h" [default: 1h].
    #[arg(long, env = "DBFORGE_TRANSFER_TIMEOUT", value_parser = humantime::parse_duration)]
    pub transfer_timeout: Option<Duration>,
}

impl Config {
    /// The listen address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50051)))
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./data"))
    }

    /// Checks values that parse but make no sense; the error names the flag.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("--max-rows", self.max_rows.map(|v| v as u128)),
            (
                "--max-execute-rows",
                self.max_execute_rows.map(|v| v as u128),
            ),
            (
                "--max-message-size",
                self.max_message_size.map(|v| v as u128),
            ),
            ("--stream-buffer", self.stream_buffer.map(|v| v as u128)),
            ("--batch-bytes", self.batch_bytes.map(|v| v as u128)),
            (
                "--max-open-databases",
                self.max_open_databases.map(|v| v as u128),
            ),
            ("--sqlite-readers", self.sqlite_readers.map(|v| v as u128)),
            ("--max-import-size", self.max_import_size.map(|v| v as u128)),
            ("--max-import-line", self.max_import_line.map(|v| v as u128)),
            (
                "--max-server-connections",
                self.max_server_connections.map(|v| v as u128),
            ),
            (
                "--database-connections",
                self.database_connections.map(|v| v as u128),
            ),
        ];
        for (flag, value) in positive {
            if value == Some(0) {
                return Err(format!("{flag} must be greater than 0"));
            }
        }
        if self
            .max_message_size
            .is_some_and(|m| m < 64 << 10 || m > i32::MAX as usize)
        {
            return Err("--max-message-size must be between 65536 and 2147483647 bytes".into());
        }
        if self.insecure_no_auth && !self.listen_addr().ip().is_loopback() {
            return Err(format!(
                "--insecure-no-auth is refused on the non-loopback address {}: anyone who can \
                 reach it could use every database",
                self.listen_addr()
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("--tls-cert and --tls-key go together".into());
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            return Err("--tls-client-ca needs --tls-cert and --tls-key".into());
        }
        if self.statement_timeout.is_some_and(|t| t.is_zero()) {
            return Err("--statement-timeout must be greater than 0".into());
        }
        Ok(())
    }

    /// The limits, defaults filled in.
    pub fn limits(&self) -> Limits {
        let d = Limits::default();
        Limits {
            max_stream_rows: self.max_rows.unwrap_or(d.max_stream_rows),
            max_stream_bytes: self.max_stream_bytes.unwrap_or(d.max_stream_bytes),
            max_execute_rows: self.max_execute_rows.unwrap_or(d.max_execute_rows),
            max_message_bytes: self.max_message_size.unwrap_or(d.max_message_bytes),
            statement_timeout: self.statement_timeout.unwrap_or(d.statement_timeout),
            stream_buffer: self.stream_buffer.unwrap_or(d.stream_buffer),
            batch_bytes: self.batch_bytes.unwrap_or(d.batch_bytes),
            session_idle_timeout: self.session_idle_timeout.unwrap_or(d.session_idle_timeout),
            max_import_bytes: self.max_import_size.unwrap_or(d.max_import_bytes),
            max_import_line_bytes: self.max_import_line.unwrap_or(d.max_import_line_bytes),
            transfer_timeout: self.transfer_timeout.unwrap_or(d.transfer_timeout),
            ..d
        }
    }

    /// The Forge's settings.
    pub fn forge(&self) -> ForgeConfig {
        ForgeConfig {
            data_dir: self.data_dir(),
            limits: self.limits(),
            idle_close_after: self.idle_close_after.unwrap_or(Duration::from_secs(60)),
            max_open_databases: self.max_open_databases.unwrap_or(256),
            audit_retention: self
                .audit_retention
                .unwrap_or(Duration::from_secs(90 * 24 * 3600)),
            audit: !self.disable_audit,
        }
    }

    /// The settings of a server backend reached at `url`.
    pub fn server_backend(&self, url: &str) -> ServerBackendConfig {
        ServerBackendConfig {
            url: url.to_owned(),
            max_connections: self.max_server_connections.unwrap_or(64),
            per_database_connections: self.database_connections.unwrap_or(4),
            idle_timeout: self.idle_close_after.unwrap_or(Duration::from_secs(60)),
        }
    }

    /// The SQLite backend's settings.
    pub fn sqlite(&self) -> SqliteConfig {
        let limits = self.limits();
        SqliteConfig {
            dir: self.data_dir().join("sqlite"),
            max_readers: self.sqlite_readers.unwrap_or(4),
            cache_kib: self.sqlite_cache_kib.unwrap_or(2048),
            // A single value must fit in one response message.
            max_value_bytes: i32::try_from(limits.max_message_bytes).unwrap_or(i32::MAX),
            max_size_bytes: self.sqlite_max_size.unwrap_or(1 << 30),
        }
    }
}
