//! Generated protobuf messages and gRPC clients for `dbforge.v1`, for calls the ergonomic
//! [`Client`](crate::Client) does not cover.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("dbforge.v1");

/// The encoded descriptor set of every `dbforge.v1` file, with the proto's comments.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("dbforge_descriptor");
