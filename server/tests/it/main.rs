//! Integration tests over real gRPC on loopback: one binary, one module per area.

mod access;
mod backup;
mod backup_s3;
mod catalog_pg;
mod concurrency;
mod control;
mod damaged;
mod data;
mod deploy;
mod docs;
mod errors;
mod fork;
#[cfg(feature = "graph")]
mod graph;
mod harness;
mod healing;
mod interrupted;
mod lifecycle;
mod limits;
mod llm_fixture;
#[cfg(feature = "graph")]
mod materialize;
mod mcp;
mod mysql;
mod operations;
mod persistence;
mod policy;
mod postgres;
mod preview;
mod quota;
mod redis;
mod resume;
mod sandbox;
mod semantic;
mod session;
mod shares;
mod sql_servers;
mod streaming;
mod summarize;
mod table;
mod tenant;
mod tls;
mod transfer;
mod unreachable;
mod web;
