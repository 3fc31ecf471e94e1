//! Rust client for [DB-Forge](https://example.invalid/dbforge): spawn isolated databases on
//! demand and use them over gRPC.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # let cfg = dbforge_server::config::Config { data_dir: dir.path().into(), insecure_no_auth: true, ..Default::default() };
//! # tokio::spawn(dbforge_server::server::run(cfg, listener, std::future::pending()));
//! use dbforge::{Client, CreateOptions, ExportOptions, params};
//! use futures::TryStreamExt;
//!
//! let client = Client::connect(format!("http://{addr}")).await?;
//! // A scratch database for one task.
//! client.create_database("scratch", CreateOptions::default()).await?;
//! client.execute("scratch", "CREATE TABLE people (name TEXT, age INTEGER)", &[]).await?;
//! client
//!     .execute("scratch", "INSERT INTO people VALUES (?, ?)", &params!["Ada", 36])
//!     .await?;
//!
//! // Rows stream in as they are read.
//! let rows: Vec<_> = client
//!     .query("scratch", "SELECT name, age FROM people WHERE age > ?", &params![30])
//!     .await?
//!     .try_collect()
//!     .await?;
//! assert_eq!(rows[0].get::<String>(0)?, "Ada");
//! assert_eq!(rows[0].get_by_name::<i64>("age")?, 36);
//!
//! // All or nothing.
//! let mut tx = client.transaction("scratch").await?;
//! tx.execute("UPDATE people SET age = age + 1", &[]).await?;
//! tx.commit().await?;
//!
//! // Structure, and files in and out.
//! let schema = client.get_schema("scratch", Some("people")).await?;
//! assert_eq!(schema.tables[0].columns[1].name, "age");
//! let csv = client.export_table("scratch", "people", ExportOptions::csv()).await?.bytes().await?;
//! assert_eq!(csv, b"name,age\r\nAda,37\r\n");
//! let report = client.import_csv("scratch", "people", "name,age\nAlan,41\n", Default::default()).await?;
//! assert_eq!(report.rows_inserted, 1);
//!
//! client.delete_database("scratch").await?;
//! # Ok(())
//! # }
//! ```
//!
//! Errors carry the gRPC code the server chose ([`Error::code`]) and its machine-readable
//! reason ([`Error::reason`]), e.g. `NOT_FOUND` for an unknown database or
//! `FAILED_PRECONDITION` / `UNIQUE_VIOLATION` for a duplicate key.
#![warn(missing_docs)]

mod access;
mod admin;
mod backup;
mod client;
mod error;
pub mod pb;
mod policy;
mod preview;
mod rows;
mod schema;
mod semantic;
mod summary;
mod table;
mod transaction;
mod transfer;
mod value;

pub use access::{ApiKeySpec, Grant, Role};
pub use admin::{
    ApiKey, AuditEvent, AuditFilter, AuditVerdict, ConnectionCap, ConnectionShare, KeyGrant, Node,
    RpcStats, ServerStats,
};
pub use backup::{
    Backup, BackupFilter, BackupManifest, BackupPolicy, BackupStatus, CreateBackup, RestoreMode,
    Restored, Schedule, Selector, TableRowCount,
};
pub use client::{
    Backend, Capabilities, Change, Client, ClientOptions, CreateOptions, Created, Database,
    DatabaseEvent, DatabaseEventType, DatabaseEvents, DatabaseStatus, ForkOptions, Forked,
    ListFilter, QueryOptions, Statement, Ttl, UpdateOptions, WatchOptions,
};
pub use error::{Error, Result};
pub use policy::LifecyclePolicy;
pub use preview::{PreviewError, StatementPreview};
pub use rows::{Column, ExecResult, Row, Rows, Summary, Truncation};
pub use schema::{
    CheckSchema, ColumnSchema, ForeignKeySchema, GraphSummary, GraphTermCount, IndexSchema,
    KeyPattern, KeySpaceSummary, Plan, PlanNode, Schema, TableKind, TableSchema, UniqueSchema,
};
pub use semantic::{
    Answer, AskOptions, AskStatus, Asked, MaterializeOptions, Materialized, MaterializedTable,
};
pub use summary::{ColumnSummary, Summarized};
pub use table::{ColumnDef, ColumnType, Filter, Record, Select, record};
pub use tonic::Code;
pub use transaction::Transaction;
pub use transfer::{
    Chunk, Export, ExportFormat, ExportOptions, IMPORT_CHUNK_BYTES, ImportCsvOptions,
    ImportCsvReport, ImportSource, ImportSqlReport, RdfFormat, RejectedRow,
};
pub use value::{FromValue, NotByte, Value};

/// Compiles the README's examples as doc tests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
