//! Authentication at the edge: every call to a DB-Forge service passes this interceptor, which
//! turns the `authorization: Bearer <key>` metadata into a [`Principal`] in the request's
//! extensions. Authorization (what the principal may do) is decided by the core.

use std::sync::Arc;

use tonic::{Request, Status, metadata::MetadataMap, service::Interceptor};

use super::limits::KeyLimits;
use crate::core::{
    access::{Keyring, Principal},
    error::Error,
};

/// The authentication interceptor; `keyring: None` means authentication is disabled.
#[derive(Debug, Clone)]
pub struct Authenticator {
    keyring: Option<Arc<Keyring>>,
    limits: Arc<KeyLimits>,
}

impl Authenticator {
    /// Authenticates against `keyring`, or lets everyone in when it is `None`; then applies
    /// the caller's request rate.
    pub fn new(keyring: Option<Arc<Keyring>>, limits: Arc<KeyLimits>) -> Self {
        Self { keyring, limits }
    }

    fn principal(&self, metadata: &MetadataMap) -> Result<Principal, Error> {
        let header = match metadata.get("authorization") {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| not_text())?),
        };
        self.principal_of(header)
    }

    /// The caller of a plain HTTP request (the MCP endpoint): the same keys, the same rate
    /// limit and the same rejection counter as a gRPC call, from the same `Authorization`
    /// header.
    pub fn authenticate_http(&self, headers: &http::HeaderMap) -> Result<Principal, Error> {
        let header = match headers.get(http::header::AUTHORIZATION) {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| not_text())?),
        };
        let principal = self.principal_of(header).inspect_err(|_| {
            super::telemetry::telemetry().rejected("UNAUTHENTICATED");
        })?;
        self.limits.check_rate(&principal)?;
        Ok(principal)
    }

    /// The principal an `authorization` value (if any) names.
    fn principal_of(&self, header: Option<&str>) -> Result<Principal, Error> {
        let Some(keyring) = &self.keyring else {
            return Ok(Principal::Unrestricted);
        };
        let header = header.ok_or_else(|| {
            Error::Unauthenticated(
                "missing API key: send metadata `authorization: Bearer <key>`".into(),
            )
        })?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                Error::Unauthenticated("the authorization header must be `Bearer <key>`".into())
            })?;
        Ok(Principal::Key(keyring.authenticate(key.trim())?))
    }
}

fn not_text() -> Error {
    Error::Unauthenticated("the authorization header is not text".into())
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let principal = self.principal(req.metadata()).inspect_err(|_| {
            super::telemetry::telemetry().rejected("UNAUTHENTICATED");
        })?;
        self.limits.check_rate(&principal)?;
        req.extensions_mut().insert(principal);
        Ok(req)
    }
}
