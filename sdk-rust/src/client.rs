//! The client: control plane, SQL, tables and transactions over one HTTP/2 connection.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tonic::transport::{Channel, Endpoint};

use crate::{
    ExecResult, Filter, Record, Result, Rows, Select, Transaction, Value,
    pb::{
        self, database_service_client::DatabaseServiceClient,
        query_service_client::QueryServiceClient, table_service_client::TableServiceClient,
    },
    table::{ColumnDef, record_pb},
};

pub use pb::{Backend, Capabilities, DatabaseStatus};

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
        }
    }
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
}

impl CreateOptions {
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
}

/// The answer of [`Client::create_database`].
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The database.
    pub database: Database,
    /// False when `if_not_exists` found it already there.
    pub created: bool,
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

fn values(params: &[Value]) -> Vec<pb::Value> {
    params.iter().cloned().map(Into::into).collect()
}

/// A DB-Forge client. Cheap to clone: clones share one connection, over which calls are
/// multiplexed.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    databases: DatabaseServiceClient<Channel>,
    queries: QueryServiceClient<Channel>,
    tables: TableServiceClient<Channel>,
}

impl Client {
    /// Connects to a gateway, e.g. `http://127.0.0.1:50051`.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self> {
        let channel = Endpoint::from_shared(endpoint.into())?
            .tcp_nodelay(true)
            .connect()
            .await?;
        Ok(Self::from_channel(channel))
    }

    /// Wraps an existing channel (for custom TLS, timeouts or interceptors).
    pub fn from_channel(channel: Channel) -> Self {
        // Requests and responses may be as large as the server allows; the server enforces it.
        let max = usize::MAX;
        Client {
            databases: DatabaseServiceClient::new(channel.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            queries: QueryServiceClient::new(channel.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            tables: TableServiceClient::new(channel.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
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
            .create_database(pb::CreateDatabaseRequest {
                name: name.to_owned(),
                backend: opts.backend as i32,
                if_not_exists: opts.if_not_exists,
                labels: opts.labels.into_iter().collect(),
            })
            .await?
            .into_inner();
        Ok(Created {
            database: database(resp.database)?,
            created: resp.created,
        })
    }

    /// Looks a database up. NOT_FOUND when it does not exist.
    pub async fn get_database(&self, name: &str) -> Result<Database> {
        let resp = self
            .databases
            .clone()
            .get_database(pb::GetDatabaseRequest {
                name: name.to_owned(),
            })
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
            .list_databases(pb::ListDatabasesRequest {
                page_size,
                page_token: page_token.to_owned(),
                backend: filter.backend as i32,
                labels: filter.labels.clone().into_iter().collect(),
            })
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
            .delete_database(pb::DeleteDatabaseRequest {
                name: name.to_owned(),
                allow_missing,
            })
            .await?
            .into_inner()
            .deleted)
    }

    // ---- SQL ----------------------------------------------------------------------------

    /// Runs one statement and returns its whole result (at most the server's row limit).
    pub async fn execute(&self, database: &str, sql: &str, params: &[Value]) -> Result<ExecResult> {
        let resp = self
            .queries
            .clone()
            .execute(pb::ExecuteRequest {
                database: database.to_owned(),
                sql: sql.to_owned(),
                params: values(params),
            })
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
        let stream = self
            .queries
            .clone()
            .query(pb::QueryRequest {
                database: database.to_owned(),
                sql: sql.to_owned(),
                params: values(params),
                max_rows: i64::try_from(max_rows).unwrap_or(i64::MAX),
            })
            .await?
            .into_inner();
        Rows::start(stream).await
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
            .execute_batch(pb::ExecuteBatchRequest {
                database: database.to_owned(),
                statements: statements
                    .into_iter()
                    .map(|s| pb::Statement {
                        sql: s.sql,
                        params: s.params.into_iter().map(Into::into).collect(),
                    })
                    .collect(),
                transaction,
            })
            .await?
            .into_inner();
        resp.results.into_iter().map(ExecResult::try_from).collect()
    }

    /// Begins an interactive transaction.
    pub async fn transaction(&self, database: &str) -> Result<Transaction> {
        Transaction::begin(self.queries.clone(), database).await
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
            .create_table(pb::CreateTableRequest {
                database: database.to_owned(),
                table: table.to_owned(),
                columns: columns.into_iter().map(Into::into).collect(),
                if_not_exists,
            })
            .await?
            .into_inner()
            .created)
    }

    /// Inserts rows in one transaction; returns how many.
    pub async fn insert_rows(&self, database: &str, table: &str, rows: Vec<Record>) -> Result<u64> {
        let resp = self
            .tables
            .clone()
            .insert_rows(pb::InsertRowsRequest {
                database: database.to_owned(),
                table: table.to_owned(),
                rows: rows
                    .into_iter()
                    .map(|r| pb::Record {
                        values: record_pb(r),
                    })
                    .collect(),
            })
            .await?
            .into_inner();
        Ok(u64::try_from(resp.rows_inserted).unwrap_or_default())
    }

    /// Streams the rows a [`Select`] matches.
    pub async fn select_rows(&self, database: &str, select: Select) -> Result<Rows> {
        let mut req = select.req;
        req.database = database.to_owned();
        let stream = self.tables.clone().select_rows(req).await?.into_inner();
        Rows::start(stream).await
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
            .update_rows(pb::UpdateRowsRequest {
                database: database.to_owned(),
                table: table.to_owned(),
                set: record_pb(set),
                filters: filters.into_iter().map(Filter::into_pb).collect(),
                all,
            })
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
            .delete_rows(pb::DeleteRowsRequest {
                database: database.to_owned(),
                table: table.to_owned(),
                filters: filters.into_iter().map(Filter::into_pb).collect(),
                all,
            })
            .await?
            .into_inner();
        Ok(u64::try_from(resp.rows_affected).unwrap_or_default())
    }
}

fn database(d: Option<pb::Database>) -> Result<Database> {
    d.map(Into::into)
        .ok_or_else(|| crate::Error::Protocol("the response carries no database".into()))
}
