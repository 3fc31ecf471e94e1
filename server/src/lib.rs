//! DB-Forge gateway: spawn isolated databases on demand and use them over gRPC.
//!
//! Layers, each depending only on the ones below it:
//! - [`api`]: thin tonic adapters for `dbforge.v1` (generated in [`pb`]);
//! - [`mcp`]: the MCP endpoint (`/mcp`), another thin adapter over the same core;
//! - [`core`]: the domain (registry, spawn/prune, tables, limits), free of wire types;
//! - [`backend`]: one trait and a module per engine.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dbforge_server::server::BoxError> {
//! let cfg = dbforge_server::config::Config::default();
//! let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
//! dbforge_server::server::run(cfg, listener, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```
#![warn(missing_docs)]

pub mod api;
pub mod backend;
pub mod config;
pub mod core;
pub mod dashboard;
pub mod mcp;
pub mod metrics;
pub mod pb;
pub mod server;
pub mod supervisor;
