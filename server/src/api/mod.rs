//! Thin gRPC adapters: each method converts the request, calls the Forge and converts back.

pub mod access;
pub mod auth;
pub mod control;
pub mod convert;
pub mod data;
pub mod status;
pub mod table;

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Status};

use crate::core::access::Principal;

/// A boxed response stream.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The caller, as the authentication interceptor recorded it. A request without one never got
/// past the interceptor, so its absence is a wiring bug, answered as INTERNAL.
pub fn caller<T>(req: &Request<T>) -> Result<Principal, Status> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::internal("request reached a service without authentication"))
}
