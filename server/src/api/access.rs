//! `dbforge.v1.AccessService`: API keys.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{Call, caller};
use crate::{
    core::{
        access::{Grant, KeyInfo, Keyring, Principal, Role, Target},
        audit::AuditLog,
        error::{Error, Result},
        names::{DatabaseName, validate_labels},
    },
    pb::{self, access_service_server::AccessService},
};

/// The AccessService adapter; `keyring: None` when authentication is disabled.
#[derive(Debug, Clone)]
pub struct AccessApi {
    keyring: Option<Arc<Keyring>>,
    audit: AuditLog,
}

impl AccessApi {
    /// Wraps the keyring; grant changes go to `audit`.
    pub fn new(keyring: Option<Arc<Keyring>>, audit: AuditLog) -> Self {
        Self { keyring, audit }
    }

    fn keyring(&self) -> Result<&Keyring> {
        self.keyring.as_deref().ok_or_else(|| {
            Error::FailedPrecondition(
                "authentication is disabled on this gateway (--insecure-no-auth): there are no keys"
                    .into(),
            )
        })
    }
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or_default(),
    }
}

fn role_pb(r: Role) -> pb::Role {
    match r {
        Role::Read => pb::Role::Read,
        Role::Write => pb::Role::Write,
        Role::Owner => pb::Role::Owner,
    }
}

fn grant_pb(g: &Grant) -> pb::Grant {
    use pb::grant::Target as T;
    pb::Grant {
        target: Some(match &g.target {
            Target::Database(n) => T::Database(n.to_string()),
            Target::Pattern(p) => T::Pattern(p.clone()),
            Target::Labels(l) => T::Labels(pb::LabelSelector {
                labels: l.clone().into_iter().collect(),
            }),
        }),
        role: role_pb(g.role) as i32,
    }
}

fn key_pb(k: &KeyInfo) -> pb::ApiKey {
    pb::ApiKey {
        id: k.id.clone(),
        name: k.name.clone(),
        admin: k.admin,
        can_create: k.can_create,
        create_quota: i32::try_from(k.create_quota).unwrap_or(i32::MAX),
        grants: k.grants.iter().map(grant_pb).collect(),
        created_at: Some(timestamp(k.created_ms)),
        expires_at: k.expires_ms.map(timestamp),
        revoked_at: k.revoked_ms.map(timestamp),
    }
}

fn grant(g: pb::Grant) -> Result<Grant> {
    use pb::grant::Target as T;
    let pb::Grant { target, role } = g;
    let role = match pb::Role::try_from(role) {
        Ok(pb::Role::Read) => Role::Read,
        Ok(pb::Role::Write) => Role::Write,
        Ok(pb::Role::Owner) => Role::Owner,
        _ => return Err(Error::invalid("grants", "every grant needs a role")),
    };
    let target = match target {
        Some(T::Database(name)) => Target::Database(DatabaseName::parse(&name)?),
        Some(T::Pattern(p)) => {
            let ok = !p.is_empty()
                && p.len() <= 63
                && p.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*')
                });
            if !ok {
                return Err(Error::invalid(
                    "grants",
                    format!("pattern {p:?} must be 1-63 characters of a-z, 0-9, _, - and *"),
                ));
            }
            Target::Pattern(p)
        }
        Some(T::Labels(sel)) => {
            if sel.labels.is_empty() {
                return Err(Error::invalid("grants", "a label selector needs labels"));
            }
            validate_labels(&sel.labels)?;
            Target::Labels(sel.labels.into_iter().collect())
        }
        None => return Err(Error::invalid("grants", "every grant needs a target")),
    };
    Ok(Grant { target, role })
}

#[tonic::async_trait]
impl AccessService for AccessApi {
    async fn create_api_key(
        &self,
        req: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let who = caller(&req)?;
        let call = Call::new(&self.audit, &who, "CreateApiKey");
        let result = self.create(&who, req.into_inner()).await;
        let call = match &result {
            Ok(r) => call.statement(describe(r.api_key.as_ref())),
            Err(_) => call,
        };
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn list_api_keys(
        &self,
        req: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let who = caller(&req)?;
        let call = Call::new(&self.audit, &who, "ListApiKeys");
        let result = async {
            who.require_admin()?;
            let pb::ListApiKeysRequest { include_inactive } = req.into_inner();
            let keys = self.keyring()?.list(include_inactive)?;
            Ok(pb::ListApiKeysResponse {
                api_keys: keys.iter().map(|k| key_pb(k)).collect(),
            })
        }
        .await;
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn revoke_api_key(
        &self,
        req: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let who = caller(&req)?;
        let pb::RevokeApiKeyRequest { id } = req.into_inner();
        let call =
            Call::new(&self.audit, &who, "RevokeApiKey").statement(format!("revoke key {id}"));
        let result = async {
            who.require_admin()?;
            let revoked = self.keyring()?.revoke(&id)?;
            tracing::info!(key = %id, "API key revoked");
            Ok(pb::RevokeApiKeyResponse { revoked })
        }
        .await;
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let api_key = match caller(&req)? {
            Principal::Key(k) => key_pb(&k),
            Principal::Unrestricted => pb::ApiKey {
                id: "-".into(),
                name: "anyone (authentication is disabled)".into(),
                admin: true,
                can_create: true,
                ..Default::default()
            },
        };
        Ok(Response::new(pb::WhoAmIResponse {
            api_key: Some(api_key),
        }))
    }
}

/// A grant change as audit text: the key and what it may do, never its secret.
fn describe(key: Option<&pb::ApiKey>) -> String {
    let Some(k) = key else {
        return String::new();
    };
    format!(
        "create key {} ({:?}) admin={} can_create={} quota={} grants={:?}",
        k.id, k.name, k.admin, k.can_create, k.create_quota, k.grants
    )
}

impl AccessApi {
    async fn create(
        &self,
        who: &Principal,
        req: pb::CreateApiKeyRequest,
    ) -> Result<pb::CreateApiKeyResponse, Status> {
        who.require_admin()?;
        let keyring = self.keyring()?;
        let pb::CreateApiKeyRequest {
            name,
            admin,
            can_create,
            create_quota,
            grants,
            expires_at,
        } = req;
        if name.is_empty() || name.chars().count() > 128 {
            return Err(Error::invalid("name", "must be 1 to 128 characters").into());
        }
        let create_quota = u32::try_from(create_quota)
            .map_err(|_| Error::invalid("create_quota", "must not be negative"))?;
        let grants = grants.into_iter().map(grant).collect::<Result<Vec<_>>>()?;
        let expires_ms =
            expires_at.map(|t| t.seconds.saturating_mul(1000) + i64::from(t.nanos / 1_000_000));
        let (secret, info) = keyring.create(KeyInfo {
            id: String::new(),
            name,
            admin,
            can_create,
            create_quota,
            grants,
            created_ms: 0,
            expires_ms,
            revoked_ms: None,
        })?;
        tracing::info!(key = %info.id, admin = info.admin, "API key created");
        Ok(pb::CreateApiKeyResponse {
            api_key: Some(key_pb(&info)),
            secret,
        })
    }
}
