//! Generated protobuf messages and gRPC server stubs for `dbforge.v1`; nothing hand-written.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("dbforge.v1");

/// The encoded descriptor set of every `dbforge.v1` file, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("dbforge_descriptor");
