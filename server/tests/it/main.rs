//! Integration tests over real gRPC on loopback: one binary, one module per area.

mod access;
mod backup;
mod backup_s3;
mod concurrency;
mod control;
mod data;
mod deploy;
mod docs;
mod errors;
mod harness;
mod limits;
mod mysql;
mod operations;
mod persistence;
mod postgres;
mod redis;
mod sandbox;
mod session;
mod sql_servers;
mod streaming;
mod table;
mod tenant;
mod tls;
mod transfer;
mod unreachable;
mod web;
