//! Integration tests over real gRPC on loopback: one binary, one module per area.

mod access;
mod concurrency;
mod control;
mod data;
mod deploy;
mod errors;
mod harness;
mod limits;
mod operations;
mod persistence;
mod redis;
mod sandbox;
mod session;
mod streaming;
mod table;
mod tls;
mod web;
