//! Generated protobuf messages and gRPC clients for `dbforge.v1`, for calls the ergonomic
//! [`Client`](crate::Client) does not cover.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("dbforge.v1");
