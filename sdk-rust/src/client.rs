//! The client: control plane, SQL, tables and transactions over one HTTP/2 connection.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::StreamExt;

use tonic::{
    Request,
    metadata::AsciiMetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

use crate::{
    ExecResult, Filter, Record, Result, Rows, Select, Transaction, Value,
    access::ApiKeySpec,
    admin::{ApiKey, AuditEvent, AuditFilter, AuditVerdict, ServerStats},
    pb::{
        self, access_service_client::AccessServiceClient,
        backup_service_client::BackupServiceClient, database_service_client::DatabaseServiceClient,
        operations_service_client::OperationsServiceClient,
        query_service_client::QueryServiceClient, schema_service_client::SchemaServiceClient,
        table_service_client::TableServiceClient, transfer_service_client::TransferServiceClient,
    },
    rows::{PartStream, Resumer},
    table::{ColumnDef, record_pb},
};

pub use pb::{Backend, Capabilities, DatabaseEventType, DatabaseStatus};

/// A spawned database.
#[derive(Debug, Clone, PartialEq)]
pub struct Database {
    /// Name.
    pub name: String,
    /// Engine.
    pub backend: Backend,
    /// Lifecycle state.
    pub status: DatabaseStatus,
    /// Spawn time.
    pub created_at: SystemTime,
    /// Last data-plane use (kept to within a few seconds).
    pub last_accessed_at: SystemTime,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// What the backend supports.
    pub capabilities: Capabilities,
    /// When the gateway prunes it (its TTL), if it has one.
    pub expire_at: Option<SystemTime>,
    /// The gateway prunes it after this long without a data-plane call, if set.
    pub idle_ttl: Option<Duration>,
    /// Whether a TTL or idle prune is preceded by a backup (and skipped when that fails).
    pub backup_before_prune: bool,
    /// Its size quota in bytes (the smaller of its own and its policies'), if it has one.
    pub max_bytes: Option<u64>,
    /// Where `max_bytes` comes from: `database` or `policy=<name>`.
    pub quota_source: String,
    /// Whether it is over its quota (writes fail with `RESOURCE_EXHAUSTED`).
    pub over_quota: bool,
    /// Its own size quota (UpdateDatabase), if set.
    pub own_max_bytes: Option<u64>,
    /// The gateway whose disk holds it (SQLite databases; empty for the server engines).
    /// Calls through another gateway sharing the catalog are forwarded there.
    pub node: String,
}

fn system_time(t: Option<prost_types::Timestamp>) -> SystemTime {
    t.and_then(|t| {
        let secs = u64::try_from(t.seconds).ok()?;
        let nanos = u32::try_from(t.nanos).ok()?;
        UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
    })
    .unwrap_or(UNIX_EPOCH)
}

impl From<pb::Database> for Database {
    fn from(d: pb::Database) -> Self {
        Database {
            backend: Backend::try_from(d.backend).unwrap_or(Backend::Unspecified),
            status: DatabaseStatus::try_from(d.status).unwrap_or(DatabaseStatus::Unspecified),
            name: d.name,
            created_at: system_time(d.created_at),
            last_accessed_at: system_time(d.last_accessed_at),
            size_bytes: u64::try_from(d.size_bytes).unwrap_or_default(),
            labels: d.labels.into_iter().collect(),
            capabilities: d.capabilities.unwrap_or_default(),
            expire_at: d.expire_at.map(|t| system_time(Some(t))),
            idle_ttl: d.idle_ttl.map(|t| crate::admin::duration(Some(t))),
            backup_before_prune: d.backup_before_prune,
            max_bytes: (d.max_bytes > 0).then_some(d.max_bytes),
            quota_source: d.quota_source,
            over_quota: d.over_quota,
            own_max_bytes: (d.own_max_bytes > 0).then_some(d.own_max_bytes),
            node: d.node,
        }
    }
}

/// A database's TTL: when the gateway prunes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// At this time (which must be in the future).
    At(SystemTime),
    /// This long from now (positive).
    After(Duration),
}

fn wire_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or_default()
}

fn wire_time(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

/// Options of [`Client::create_database`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateOptions {
    /// The engine; `Unspecified` means SQLite.
    pub backend: Backend,
    /// Return the existing database instead of failing with ALREADY_EXISTS.
    pub if_not_exists: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Prune the database at this time (see [`Ttl`]).
    pub ttl: Option<Ttl>,
    /// Prune the database after this long without a data-plane call.
    pub idle_ttl: Option<Duration>,
    /// Back the database up (default target) before a TTL or idle prune; a failed backup keeps
    /// it.
    pub backup_before_prune: bool,
    /// SQLite only: the gateway (node name) whose disk holds it; empty: the live gateway
    /// with the most free space (see `CreateDatabaseRequest.node`).
    pub node: String,
}

impl CreateOptions {
    /// Prunes the database this long from now.
    pub fn ttl(mut self, d: Duration) -> Self {
        self.ttl = Some(Ttl::After(d));
        self
    }

    /// Prunes the database at `t`.
    pub fn expire_at(mut self, t: SystemTime) -> Self {
        self.ttl = Some(Ttl::At(t));
        self
    }

    /// Prunes the database after `d` without a data-plane call.
    pub fn idle_ttl(mut self, d: Duration) -> Self {
        self.idle_ttl = Some(d);
        self
    }

    /// Backs the database up before a TTL or idle prune.
    pub fn backup_before_prune(mut self) -> Self {
        self.backup_before_prune = true;
        self
    }

    /// Uses this engine.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Returns the existing database when the name is taken.
    pub fn if_not_exists(mut self) -> Self {
        self.if_not_exists = true;
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Places the (SQLite) database on the gateway named `node`.
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = node.into();
        self
    }
}

/// The answer of [`Client::create_database`].
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The database.
    pub database: Database,
    /// False when `if_not_exists` found it already there.
    pub created: bool,
}

/// One lifecycle event of [`Client::watch_databases`].
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseEvent {
    /// Its position in the gateway's event log: one more than the event before. Pass the last
    /// one seen as [`WatchOptions::since`] to resume.
    pub sequence: i64,
    /// What happened.
    pub kind: DatabaseEventType,
    /// The database.
    pub database: String,
    /// Its engine.
    pub backend: Backend,
    /// When it happened.
    pub time: SystemTime,
    /// Why (`ttl`, `idle_ttl`, `source=<name>`, `backup=<id>`, …), or empty.
    pub cause: String,
    /// The key whose call caused it; `gateway` for the gateway's own doing.
    pub key_id: String,
    /// The database's labels when it happened.
    pub labels: BTreeMap<String, String>,
}

impl From<pb::DatabaseEvent> for DatabaseEvent {
    fn from(e: pb::DatabaseEvent) -> Self {
        DatabaseEvent {
            sequence: e.sequence,
            kind: DatabaseEventType::try_from(e.r#type).unwrap_or(DatabaseEventType::Unspecified),
            database: e.database,
            backend: Backend::try_from(e.backend).unwrap_or(Backend::Unspecified),
            time: system_time(e.time),
            cause: e.cause,
            key_id: e.key_id,
            labels: e.labels.into_iter().collect(),
        }
    }
}

/// Which events [`Client::watch_databases`] sends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatchOptions {
    /// Only databases carrying all of these labels.
    pub labels: BTreeMap<String, String>,
    /// Only this engine (`Unspecified`: all).
    pub backend: Backend,
    /// Resume after this sequence; `None`: only events from now on.
    pub since: Option<i64>,
}

impl WatchOptions {
    /// Resumes after `sequence`.
    pub fn since(mut self, sequence: i64) -> Self {
        self.since = Some(sequence);
        self
    }

    /// Only databases carrying this label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// The stream of [`Client::watch_databases`].
#[derive(Debug)]
pub struct DatabaseEvents {
    inner: tonic::Streaming<pb::WatchDatabasesResponse>,
}

impl DatabaseEvents {
    /// The next event; waits for it. `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<DatabaseEvent>> {
        loop {
            match self.inner.message().await? {
                Some(pb::WatchDatabasesResponse { event: Some(e) }) => return Ok(Some(e.into())),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }
}

/// A change to a setting in [`UpdateOptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<T> {
    /// Set it to this.
    Set(T),
    /// Remove it.
    Clear,
}

/// What [`Client::update_database`] changes; `None` fields keep their values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateOptions {
    /// Replaces every label.
    pub labels: Option<BTreeMap<String, String>>,
    /// The TTL.
    pub ttl: Option<Change<Ttl>>,
    /// The idle TTL.
    pub idle_ttl: Option<Change<Duration>>,
    /// Whether a final backup precedes a TTL or idle prune.
    pub backup_before_prune: Option<bool>,
    /// The database's own size quota in bytes.
    pub max_bytes: Option<Change<u64>>,
}

impl UpdateOptions {
    /// Replaces every label with `labels`.
    pub fn labels<K: Into<String>, V: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.labels = Some(
            labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Prunes the database this long from now.
    pub fn ttl(mut self, d: Duration) -> Self {
        self.ttl = Some(Change::Set(Ttl::After(d)));
        self
    }

    /// Sets the database's own size quota, in bytes (positive).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(Change::Set(bytes));
        self
    }

    /// Removes the database's own size quota (a policy's still applies).
    pub fn clear_max_bytes(mut self) -> Self {
        self.max_bytes = Some(Change::Clear);
        self
    }

    /// Prunes the database at `t`.
    pub fn expire_at(mut self, t: SystemTime) -> Self {
        self.ttl = Some(Change::Set(Ttl::At(t)));
        self
    }

    /// Removes the TTL.
    pub fn clear_ttl(mut self) -> Self {
        self.ttl = Some(Change::Clear);
        self
    }

    /// Prunes the database after `d` without a data-plane call.
    pub fn idle_ttl(mut self, d: Duration) -> Self {
        self.idle_ttl = Some(Change::Set(d));
        self
    }

    /// Removes the idle TTL.
    pub fn clear_idle_ttl(mut self) -> Self {
        self.idle_ttl = Some(Change::Clear);
        self
    }

    /// Whether a backup precedes a TTL or idle prune.
    pub fn backup_before_prune(mut self, on: bool) -> Self {
        self.backup_before_prune = Some(on);
        self
    }
}

/// Options of [`Client::fork_database`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForkOptions {
    /// The fork's labels (the source's are not copied).
    pub labels: BTreeMap<String, String>,
    /// Fork from this backup of the source (an id from [`Client::create_backup`]) instead of
    /// its current data.
    pub from_backup: Option<String>,
    /// The fork's TTL (the source's is not copied).
    pub ttl: Option<Ttl>,
    /// The fork's idle TTL.
    pub idle_ttl: Option<Duration>,
    /// Back the fork up before a TTL or idle prune.
    pub backup_before_prune: bool,
}

impl ForkOptions {
    /// Prunes the fork this long from now.
    pub fn ttl(mut self, d: Duration) -> Self {
        self.ttl = Some(Ttl::After(d));
        self
    }

    /// Prunes the fork at `t`.
    pub fn expire_at(mut self, t: SystemTime) -> Self {
        self.ttl = Some(Ttl::At(t));
        self
    }

    /// Prunes the fork after this long without a data-plane call.
    pub fn idle_ttl(mut self, d: Duration) -> Self {
        self.idle_ttl = Some(d);
        self
    }

    /// Backs the fork up before a TTL or idle prune.
    pub fn backup_before_prune(mut self) -> Self {
        self.backup_before_prune = true;
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Forks from this backup of the source.
    pub fn from_backup(mut self, id: impl Into<String>) -> Self {
        self.from_backup = Some(id.into());
        self
    }
}

/// The answer of [`Client::fork_database`].
#[derive(Debug, Clone, PartialEq)]
pub struct Forked {
    /// The new database.
    pub database: Database,
    /// How the data was copied: `sqlite-backup-api`, `template`, `dump-replay`, `key-records` or
    /// `backup`.
    pub method: String,
    /// How long the fork took.
    pub duration: Duration,
}

/// Which databases [`Client::list_databases`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    /// Only this engine (`Unspecified`: all).
    pub backend: Backend,
    /// Only databases carrying all of these labels.
    pub labels: BTreeMap<String, String>,
}

/// One statement of a [`Client::batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// SQL text.
    pub sql: String,
    /// Parameters.
    pub params: Vec<Value>,
}

impl Statement {
    /// A statement with parameters.
    pub fn new(sql: impl Into<String>, params: Vec<Value>) -> Self {
        Statement {
            sql: sql.into(),
            params,
        }
    }
}

pub(crate) fn values(params: &[Value]) -> Vec<pb::Value> {
    params.iter().cloned().map(Into::into).collect()
}

/// How to reach a gateway: endpoint, credentials, TLS and timeouts.
///
/// ```
/// use std::time::Duration;
/// use dbforge::ClientOptions;
/// let opts = ClientOptions::new("https://db.example:50051")
///     .api_key("dbf_…")
///     .ca_file("/etc/dbforge/ca.pem")
///     .timeout(Duration::from_secs(10));
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientOptions {
    /// `http://host:port`, or `https://host:port` for TLS.
    pub endpoint: String,
    /// API key, sent as `authorization: Bearer <key>` on every call.
    pub api_key: Option<String>,
    /// PEM file of the CA that signed the server's certificate (TLS).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate and key files presented to the server (mutual TLS).
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// Deadline of each call (streams: of the whole stream).
    pub timeout: Option<Duration>,
    /// Deadline of establishing the connection.
    pub connect_timeout: Option<Duration>,
}

impl ClientOptions {
    /// The default endpoint when none is configured.
    pub const DEFAULT_ENDPOINT: &'static str = "http://127.0.0.1:50051";

    /// Options for `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        ClientOptions {
            endpoint: endpoint.into(),
            ..Default::default()
        }
    }

    /// Options from the environment: `DBFORGE_ENDPOINT` (default `http://127.0.0.1:50051`) and
    /// `DBFORGE_API_KEY`.
    pub fn from_env() -> Self {
        ClientOptions {
            endpoint: std::env::var("DBFORGE_ENDPOINT")
                .ok()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| Self::DEFAULT_ENDPOINT.to_owned()),
            api_key: std::env::var("DBFORGE_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            ..Default::default()
        }
    }

    /// Sets the API key.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Trusts the CA in this PEM file.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Presents this certificate and key (PEM files) for mutual TLS.
    pub fn client_identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_identity = Some((cert.into(), key.into()));
        self
    }

    /// Sets the per-call deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the connection deadline.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }
}

/// Per-call settings every request carries.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallSettings {
    authorization: Option<AsciiMetadataValue>,
    pub(crate) timeout: Option<Duration>,
}

impl CallSettings {
    pub(crate) fn request<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        if let Some(auth) = &self.authorization {
            req.metadata_mut().insert("authorization", auth.clone());
        }
        if let Some(t) = self.timeout {
            req.set_timeout(t);
        }
        req
    }
}

/// Budgets and access of a streamed query ([`Client::query_with`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// Rows at most; 0 means the server's limit.
    pub max_rows: u64,
    /// Bytes of row data at most (approximate encoded size); 0 means the server's limit.
    pub max_bytes: u64,
    /// Run on the read-only login whatever the key's role: the engine refuses any write.
    pub read_only: bool,
    /// Make the stream resumable: the server keeps its cursor for a while (60 s by default)
    /// when the connection drops or a budget cuts it, and [`Rows`] resumes by itself after a
    /// transport error (up to 3 times), so the rows still arrive exactly once and in order.
    /// [`Rows::resume_token`] and [`Client::resume_query`] continue it by hand (the next page
    /// after a budget cut). Counts against the key's resumable streams (4 by default).
    pub resumable: bool,
}

/// A DB-Forge client. Cheap to clone: clones share one connection, over which calls are
/// multiplexed.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) settings: CallSettings,
    channel: Channel,
    pub(crate) databases: DatabaseServiceClient<Channel>,
    pub(crate) queries: QueryServiceClient<Channel>,
    tables: TableServiceClient<Channel>,
    access: AccessServiceClient<Channel>,
    operations: OperationsServiceClient<Channel>,
    pub(crate) transfer: TransferServiceClient<Channel>,
    pub(crate) schema: SchemaServiceClient<Channel>,
    pub(crate) backups: BackupServiceClient<Channel>,
}

impl Client {
    /// Connects to a gateway, e.g. `http://127.0.0.1:50051`, without an API key.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self> {
        Self::connect_with(ClientOptions::new(endpoint)).await
    }

    /// Connects with options: API key, TLS (a CA file, optionally a client identity for
    /// mutual TLS) and timeouts.
    pub async fn connect_with(opts: ClientOptions) -> Result<Self> {
        let authorization = match &opts.api_key {
            Some(key) => Some(
                format!("Bearer {key}")
                    .parse::<AsciiMetadataValue>()
                    .map_err(|_| {
                        crate::Error::Config("the API key is not printable ASCII".into())
                    })?,
            ),
            None => None,
        };
        let mut endpoint = Endpoint::from_shared(opts.endpoint.clone())?.tcp_nodelay(true);
        if let Some(t) = opts.connect_timeout {
            endpoint = endpoint.connect_timeout(t);
        }
        if opts.ca_file.is_some()
            || opts.client_identity.is_some()
            || opts.endpoint.starts_with("https://")
        {
            install_crypto_provider();
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &opts.ca_file {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
            } else {
                tls = tls.with_enabled_roots();
            }
            if let Some((cert, key)) = &opts.client_identity {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint.connect().await?;
        let mut client = Self::from_channel(channel);
        client.settings = CallSettings {
            authorization,
            timeout: opts.timeout,
        };
        Ok(client)
    }

    /// Wraps an existing channel (for custom TLS, timeouts or interceptors).
    pub fn from_channel(channel: Channel) -> Self {
        // Requests and responses may be as large as the server allows; the server enforces it.
        let max = usize::MAX;
        Client {
            settings: CallSettings::default(),
            databases: DatabaseServiceClient::new(channel.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            queries: QueryServiceClient::new(channel.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            tables: TableServiceClient::new(channel.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            access: AccessServiceClient::new(channel.clone()),
            operations: OperationsServiceClient::new(channel.clone()),
            // Export chunks are about 64 KiB and imports send 64 KiB chunks; a schema of many
            // tables can pass the 4 MiB default, and the server bounds it.
            transfer: TransferServiceClient::new(channel.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            schema: SchemaServiceClient::new(channel.clone()).max_decoding_message_size(max),
            // A page of up to 1000 backups, each with its manifest's row counts per table, can
            // pass the 4 MiB default; the server bounds it.
            backups: BackupServiceClient::new(channel.clone()).max_decoding_message_size(max),
            channel,
        }
    }

    /// The underlying channel, for the generated clients in [`pb`].
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    // ---- control plane ------------------------------------------------------------------

    /// Spawns a database.
    pub async fn create_database(&self, name: &str, opts: CreateOptions) -> Result<Created> {
        let resp = self
            .databases
            .clone()
            .create_database(self.settings.request(pb::CreateDatabaseRequest {
                name: name.to_owned(),
                backend: opts.backend as i32,
                if_not_exists: opts.if_not_exists,
                labels: opts.labels.into_iter().collect(),
                ttl: opts.ttl.map(|t| match t {
                    Ttl::At(t) => pb::create_database_request::Ttl::ExpireAt(wire_time(t)),
                    Ttl::After(d) => {
                        pb::create_database_request::Ttl::ExpireAfter(wire_duration(d))
                    }
                }),
                idle_ttl: opts.idle_ttl.map(wire_duration),
                backup_before_prune: opts.backup_before_prune,
                node: opts.node,
            }))
            .await?
            .into_inner();
        Ok(Created {
            database: database(resp.database)?,
            created: resp.created,
        })
    }

    /// Changes a database's labels and lifecycle settings (only those `opts` names). Needs the
    /// owner role; returns the database as it is now.
    pub async fn update_database(&self, name: &str, opts: UpdateOptions) -> Result<Database> {
        use pb::update_database_request::{Idle, Ttl as W};
        let resp = self
            .databases
            .clone()
            .update_database(self.settings.request(pb::UpdateDatabaseRequest {
                name: name.to_owned(),
                labels: opts.labels.map(|l| pb::DatabaseLabels {
                    values: l.into_iter().collect(),
                }),
                ttl: opts.ttl.map(|c| match c {
                    Change::Set(Ttl::At(t)) => W::ExpireAt(wire_time(t)),
                    Change::Set(Ttl::After(d)) => W::ExpireAfter(wire_duration(d)),
                    Change::Clear => W::ClearTtl(true),
                }),
                idle: opts.idle_ttl.map(|c| match c {
                    Change::Set(d) => Idle::IdleTtl(wire_duration(d)),
                    Change::Clear => Idle::ClearIdleTtl(true),
                }),
                backup_before_prune: opts.backup_before_prune,
                quota: opts.max_bytes.map(|c| match c {
                    Change::Set(m) => pb::update_database_request::Quota::MaxBytes(m),
                    Change::Clear => pb::update_database_request::Quota::ClearMaxBytes(true),
                }),
            }))
            .await?
            .into_inner();
        database(resp.database)
    }

    /// Streams lifecycle events (created, deleted, forked, expired, pruned_idle, backed_up,
    /// restored, updated) of the databases this key can see. With `since`, every event after it first
    /// (OUT_OF_RANGE when the gateway no longer keeps them), then live ones, each once.
    pub async fn watch_databases(&self, opts: WatchOptions) -> Result<DatabaseEvents> {
        let inner = self
            .databases
            .clone()
            .watch_databases(self.settings.request(pb::WatchDatabasesRequest {
                labels: opts.labels.into_iter().collect(),
                backend: opts.backend as i32,
                since: opts.since,
            }))
            .await?
            .into_inner();
        Ok(DatabaseEvents { inner })
    }

    /// Looks a database up. NOT_FOUND when it does not exist.
    pub async fn get_database(&self, name: &str) -> Result<Database> {
        let resp = self
            .databases
            .clone()
            .get_database(self.settings.request(pb::GetDatabaseRequest {
                name: name.to_owned(),
            }))
            .await?
            .into_inner();
        database(resp.database)
    }

    /// Lists every database that matches, following pages for you.
    pub async fn list_databases(&self, filter: ListFilter) -> Result<Vec<Database>> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let (page, next) = self.list_databases_page(&filter, &token, 0).await?;
            all.extend(page);
            match next {
                Some(t) => token = t,
                None => return Ok(all),
            }
        }
    }

    /// One page of databases and the token of the next page, if any.
    pub async fn list_databases_page(
        &self,
        filter: &ListFilter,
        page_token: &str,
        page_size: i32,
    ) -> Result<(Vec<Database>, Option<String>)> {
        let resp = self
            .databases
            .clone()
            .list_databases(self.settings.request(pb::ListDatabasesRequest {
                page_size,
                page_token: page_token.to_owned(),
                backend: filter.backend as i32,
                labels: filter.labels.clone().into_iter().collect(),
            }))
            .await?
            .into_inner();
        let next = (!resp.next_page_token.is_empty()).then_some(resp.next_page_token);
        Ok((resp.databases.into_iter().map(Into::into).collect(), next))
    }

    /// Prunes a database and all its data. NOT_FOUND when it does not exist.
    pub async fn delete_database(&self, name: &str) -> Result<()> {
        self.delete(name, false).await.map(drop)
    }

    /// Prunes a database if it exists; returns whether it did.
    pub async fn delete_database_if_exists(&self, name: &str) -> Result<bool> {
        self.delete(name, true).await
    }

    async fn delete(&self, name: &str, allow_missing: bool) -> Result<bool> {
        Ok(self
            .databases
            .clone()
            .delete_database(self.settings.request(pb::DeleteDatabaseRequest {
                name: name.to_owned(),
                allow_missing,
            }))
            .await?
            .into_inner()
            .deleted)
    }

    /// Forks `source` into the new database `name`: a copy of its data as it is now (or as
    /// the backup in `opts` holds it), independent from then on and owned by this key.
    ///
    /// Needs the read role on `source` (the owner role with a backup) and the right to create
    /// `name`. Errors: `ALREADY_EXISTS` when `name` is taken; `NOT_FOUND`;
    /// `PERMISSION_DENIED`; `FAILED_PRECONDITION` for a backup of another database;
    /// `UNAVAILABLE` while the source is being restored.
    pub async fn fork_database(
        &self,
        source: &str,
        name: &str,
        opts: ForkOptions,
    ) -> Result<Forked> {
        let pb::ForkDatabaseResponse {
            database: db,
            method,
            duration: took,
        } = self
            .databases
            .clone()
            .fork_database(self.settings.request(pb::ForkDatabaseRequest {
                source: source.to_owned(),
                name: name.to_owned(),
                labels: opts.labels.into_iter().collect(),
                from_backup: opts.from_backup.unwrap_or_default(),
                ttl: opts.ttl.map(|t| match t {
                    Ttl::At(t) => pb::fork_database_request::Ttl::ExpireAt(wire_time(t)),
                    Ttl::After(d) => pb::fork_database_request::Ttl::ExpireAfter(wire_duration(d)),
                }),
                idle_ttl: opts.idle_ttl.map(wire_duration),
                backup_before_prune: opts.backup_before_prune,
            }))
            .await?
            .into_inner();
        Ok(Forked {
            database: database(db)?,
            method,
            duration: crate::admin::duration(took),
        })
    }

    // ---- SQL ----------------------------------------------------------------------------

    /// Runs one statement and returns its whole result (at most the server's row limit).
    pub async fn execute(&self, database: &str, sql: &str, params: &[Value]) -> Result<ExecResult> {
        let resp = self
            .queries
            .clone()
            .execute(self.settings.request(pb::ExecuteRequest {
                database: database.to_owned(),
                sql: sql.to_owned(),
                params: values(params),
            }))
            .await?
            .into_inner();
        ExecResult::try_from(resp.result.unwrap_or_default())
    }

    /// Runs one statement and streams its rows. The columns are known when this returns.
    pub async fn query(&self, database: &str, sql: &str, params: &[Value]) -> Result<Rows> {
        self.query_limited(database, sql, params, 0).await
    }

    /// Like [`query`](Self::query), stopping after `max_rows` rows (0: the server's limit).
    pub async fn query_limited(
        &self,
        database: &str,
        sql: &str,
        params: &[Value],
        max_rows: u64,
    ) -> Result<Rows> {
        let opts = QueryOptions {
            max_rows,
            ..QueryOptions::default()
        };
        self.query_with(database, sql, params, opts).await
    }

    /// Like [`query`](Self::query), within `opts`' budgets (a stream cut by one ends with a
    /// [`Summary`](crate::Summary) whose `truncation` says which) and, with `read_only`, on the
    /// read-only login whatever the key's role.
    pub async fn query_with(
        &self,
        database: &str,
        sql: &str,
        params: &[Value],
        opts: QueryOptions,
    ) -> Result<Rows> {
        let QueryOptions {
            max_rows,
            max_bytes,
            read_only,
            resumable,
        } = opts;
        let stream = self
            .queries
            .clone()
            .query(self.settings.request(pb::QueryRequest {
                database: database.to_owned(),
                sql: sql.to_owned(),
                params: values(params),
                max_rows: i64::try_from(max_rows).unwrap_or(i64::MAX),
                summarize: false,
                read_only,
                max_bytes: i64::try_from(max_bytes).unwrap_or(i64::MAX),
                resumable,
                resume_token: String::new(),
            }))
            .await?
            .into_inner();
        let rows = Rows::start(stream, self.settings.timeout).await?;
        Ok(self.resuming(rows, opts))
    }

    /// Continues a resumable stream ([`QueryOptions::resumable`]) at `token`
    /// ([`Rows::resume_token`], or a [`Summary`](crate::Summary)'s after a budget cut): the
    /// rows from there on, within `opts`' budgets (its `read_only` is the stream's own and is
    /// ignored here). NOT_FOUND once the stream finished, expired or is another key's;
    /// FAILED_PRECONDITION when the token's rows are older than the server keeps for replay.
    pub async fn resume_query(&self, token: &str, opts: QueryOptions) -> Result<Rows> {
        let parts = self.resume_parts(token.to_owned(), opts).await?;
        let rows = Rows::start(parts, self.settings.timeout).await?;
        Ok(self.resuming(rows, opts))
    }

    /// The call behind [`resume_query`](Self::resume_query), as a stream of parts.
    async fn resume_parts(&self, token: String, opts: QueryOptions) -> Result<PartStream> {
        let stream = self
            .queries
            .clone()
            .query(self.settings.request(pb::QueryRequest {
                max_rows: i64::try_from(opts.max_rows).unwrap_or(i64::MAX),
                max_bytes: i64::try_from(opts.max_bytes).unwrap_or(i64::MAX),
                resume_token: token,
                ..pb::QueryRequest::default()
            }))
            .await?
            .into_inner();
        Ok(Box::pin(stream.map(|m| m.map(Into::into))))
    }

    /// `rows`, resuming by itself after transport errors when `opts` asked for a resumable
    /// stream.
    fn resuming(&self, rows: Rows, opts: QueryOptions) -> Rows {
        if !opts.resumable {
            return rows;
        }
        let client = self.clone();
        let resume: Resumer = Arc::new(move |token, max_rows| {
            let client = client.clone();
            let opts = QueryOptions { max_rows, ..opts };
            Box::pin(async move { client.resume_parts(token, opts).await })
        });
        rows.auto_resume(resume, opts.max_rows)
    }

    /// Runs statements in order; with `transaction`, all or nothing.
    pub async fn batch(
        &self,
        database: &str,
        statements: Vec<Statement>,
        transaction: bool,
    ) -> Result<Vec<ExecResult>> {
        let resp = self
            .queries
            .clone()
            .execute_batch(
                self.settings.request(pb::ExecuteBatchRequest {
                    database: database.to_owned(),
                    statements: statements
                        .into_iter()
                        .map(|s| pb::Statement {
                            sql: s.sql,
                            params: s.params.into_iter().map(Into::into).collect(),
                        })
                        .collect(),
                    transaction,
                }),
            )
            .await?
            .into_inner();
        resp.results.into_iter().map(ExecResult::try_from).collect()
    }

    /// Begins an interactive transaction.
    pub async fn transaction(&self, database: &str) -> Result<Transaction> {
        Transaction::begin(self.queries.clone(), &self.settings, database).await
    }

    // ---- access -------------------------------------------------------------------------

    /// Creates an API key (admin keys only). Returns its description and its secret, which the
    /// server shows only this once.
    pub async fn create_api_key(&self, spec: ApiKeySpec) -> Result<(ApiKey, String)> {
        let resp = self
            .access
            .clone()
            .create_api_key(self.settings.request(spec.req))
            .await?
            .into_inner();
        let key = resp
            .api_key
            .ok_or_else(|| crate::Error::Protocol("the response carries no key".into()))?;
        Ok((key.into(), resp.secret))
    }

    /// Lists API keys (admin keys only), never their secrets; with `include_inactive`, also the
    /// revoked and expired ones.
    pub async fn list_api_keys(&self, include_inactive: bool) -> Result<Vec<ApiKey>> {
        Ok(self
            .access
            .clone()
            .list_api_keys(
                self.settings
                    .request(pb::ListApiKeysRequest { include_inactive }),
            )
            .await?
            .into_inner()
            .api_keys
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Revokes an API key with immediate effect (admin keys only); false if it already was.
    pub async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        Ok(self
            .access
            .clone()
            .revoke_api_key(
                self.settings
                    .request(pb::RevokeApiKeyRequest { id: id.to_owned() }),
            )
            .await?
            .into_inner()
            .revoked)
    }

    /// Describes the key this client uses.
    pub async fn who_am_i(&self) -> Result<ApiKey> {
        self.access
            .clone()
            .who_am_i(self.settings.request(pb::WhoAmIRequest {}))
            .await?
            .into_inner()
            .api_key
            .map(Into::into)
            .ok_or_else(|| crate::Error::Protocol("the response carries no key".into()))
    }

    // ---- operations (admin keys) -----------------------------------------------------------

    /// Operational figures: connections, streams, sessions, per-RPC calls and errors.
    pub async fn server_stats(&self) -> Result<ServerStats> {
        Ok(self
            .operations
            .clone()
            .get_server_stats(self.settings.request(pb::GetServerStatsRequest {}))
            .await?
            .into_inner()
            .into())
    }

    /// One page of audit records, oldest first, and the token of the next page (`None` on the
    /// last); pass it back as [`AuditFilter::page_token`].
    pub async fn list_audit_events(
        &self,
        filter: AuditFilter,
    ) -> Result<(Vec<AuditEvent>, Option<String>)> {
        let resp = self
            .operations
            .clone()
            .list_audit_events(
                self.settings
                    .request(pb::ListAuditEventsRequest::from(filter)),
            )
            .await?
            .into_inner();
        let next = (!resp.next_page_token.is_empty()).then_some(resp.next_page_token);
        Ok((resp.events.into_iter().map(Into::into).collect(), next))
    }

    /// Walks the audit log's hash chain and reports the first broken record.
    pub async fn verify_audit_log(&self) -> Result<AuditVerdict> {
        Ok(self
            .operations
            .clone()
            .verify_audit_log(self.settings.request(pb::VerifyAuditLogRequest {}))
            .await?
            .into_inner()
            .into())
    }

    // ---- tables -------------------------------------------------------------------------

    /// Creates a table; with `if_not_exists`, returns false when it was already there.
    pub async fn create_table(
        &self,
        database: &str,
        table: &str,
        columns: Vec<ColumnDef>,
        if_not_exists: bool,
    ) -> Result<bool> {
        Ok(self
            .tables
            .clone()
            .create_table(self.settings.request(pb::CreateTableRequest {
                database: database.to_owned(),
                table: table.to_owned(),
                columns: columns.into_iter().map(Into::into).collect(),
                if_not_exists,
            }))
            .await?
            .into_inner()
            .created)
    }

    /// Inserts rows in one transaction; returns how many.
    pub async fn insert_rows(&self, database: &str, table: &str, rows: Vec<Record>) -> Result<u64> {
        let resp = self
            .tables
            .clone()
            .insert_rows(
                self.settings.request(pb::InsertRowsRequest {
                    database: database.to_owned(),
                    table: table.to_owned(),
                    rows: rows
                        .into_iter()
                        .map(|r| pb::Record {
                            values: record_pb(r),
                        })
                        .collect(),
                }),
            )
            .await?
            .into_inner();
        Ok(u64::try_from(resp.rows_inserted).unwrap_or_default())
    }

    /// Streams the rows a [`Select`] matches.
    pub async fn select_rows(&self, database: &str, select: Select) -> Result<Rows> {
        let mut req = select.req;
        req.database = database.to_owned();
        let stream = self
            .tables
            .clone()
            .select_rows(self.settings.request(req))
            .await?
            .into_inner();
        Rows::start(stream, self.settings.timeout).await
    }

    /// Sets columns on the rows matching every filter (at least one filter is required).
    pub async fn update_rows(
        &self,
        database: &str,
        table: &str,
        set: Record,
        filters: Vec<Filter>,
    ) -> Result<u64> {
        self.update(database, table, set, filters, false).await
    }

    /// Sets columns on every row of the table.
    pub async fn update_all_rows(&self, database: &str, table: &str, set: Record) -> Result<u64> {
        self.update(database, table, set, Vec::new(), true).await
    }

    async fn update(
        &self,
        database: &str,
        table: &str,
        set: Record,
        filters: Vec<Filter>,
        all: bool,
    ) -> Result<u64> {
        let resp = self
            .tables
            .clone()
            .update_rows(self.settings.request(pb::UpdateRowsRequest {
                database: database.to_owned(),
                table: table.to_owned(),
                set: record_pb(set),
                filters: filters.into_iter().map(Filter::into_pb).collect(),
                all,
            }))
            .await?
            .into_inner();
        Ok(u64::try_from(resp.rows_affected).unwrap_or_default())
    }

    /// Deletes the rows matching every filter (at least one filter is required).
    pub async fn delete_rows(
        &self,
        database: &str,
        table: &str,
        filters: Vec<Filter>,
    ) -> Result<u64> {
        self.delete_where(database, table, filters, false).await
    }

    /// Deletes every row of the table.
    pub async fn delete_all_rows(&self, database: &str, table: &str) -> Result<u64> {
        self.delete_where(database, table, Vec::new(), true).await
    }

    async fn delete_where(
        &self,
        database: &str,
        table: &str,
        filters: Vec<Filter>,
        all: bool,
    ) -> Result<u64> {
        let resp = self
            .tables
            .clone()
            .delete_rows(self.settings.request(pb::DeleteRowsRequest {
                database: database.to_owned(),
                table: table.to_owned(),
                filters: filters.into_iter().map(Filter::into_pb).collect(),
                all,
            }))
            .await?
            .into_inner();
        Ok(u64::try_from(resp.rows_affected).unwrap_or_default())
    }
}

fn database(d: Option<pb::Database>) -> Result<Database> {
    d.map(Into::into)
        .ok_or_else(|| crate::Error::Protocol("the response carries no database".into()))
}

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| crate::Error::Config(format!("cannot read {}: {e}", path.display())))
}

/// Makes ring rustls' process-wide default, which tonic's TLS uses, unless a program chose one
/// already: a program that also links aws-lc-rs (object_store, reqwest) leaves rustls unable to
/// choose by itself, and TLS connections would panic.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
