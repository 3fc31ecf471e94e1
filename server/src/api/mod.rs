//! Thin gRPC adapters: each method converts the request, calls the Forge and converts back.

pub mod control;
pub mod convert;
pub mod data;
pub mod status;
pub mod table;

use std::pin::Pin;

use futures::Stream;
use tonic::Status;

/// A boxed response stream.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;
