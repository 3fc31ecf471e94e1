//! Integration tests: the `dbforge` binary run as a separate process against a live gateway
//! started in this test process (one per test, on an ephemeral loopback port), with the shell
//! driven through a real pseudo-terminal.

mod harness;

mod access;
mod backup;
mod chart;
mod config;
mod db;
mod errors;
mod output;
mod policy;
mod rows;
mod schema;
mod shell;
mod sql;
mod transfer;
