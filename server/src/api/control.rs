//! `dbforge.v1.DatabaseService`: the control plane.

use std::sync::Arc;

use futures::StreamExt;
use tonic::{Request, Response, Status};

use super::{Call, ResponseStream, caller, convert::backend_kind, limits::KeyLimits};
use crate::{
    core::{
        engine::BackendKind,
        error::Error,
        events::WatchFilter,
        forge::{DatabaseSpec, Forge, ListFilter},
        fork::ForkSpec,
        lifecycle::DatabaseUpdate,
        policy::PolicySpec,
    },
    pb::{self, database_service_server::DatabaseService},
};

/// The DatabaseService adapter.
#[derive(Debug, Clone)]
pub struct ControlApi {
    forge: Forge,
    limits: Arc<KeyLimits>,
}

impl ControlApi {
    /// Wraps the Forge; WatchDatabases streams count against `limits`.
    pub fn new(forge: Forge, limits: Arc<KeyLimits>) -> Self {
        Self { forge, limits }
    }
}

#[tonic::async_trait]
impl DatabaseService for ControlApi {
    async fn create_database(
        &self,
        req: Request<pb::CreateDatabaseRequest>,
    ) -> Result<Response<pb::CreateDatabaseResponse>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "CreateDatabase")
            .database(&req.name)
            .statement(format!(
                "backend={} if_not_exists={}",
                req.backend, req.if_not_exists
            ));
        let result = async {
            // Forwarded here by `api/forward.rs`, or named this gateway; any other node is
            // reached through forwarding only (this gateway serves TLS, or the views of the
            // catalog disagree for a moment).
            if !req.node.is_empty() {
                if !matches!(backend_kind(req.backend)?, BackendKind::Sqlite) {
                    return Err(Error::invalid(
                        "node",
                        "only SQLite databases are placed on a gateway: every gateway serves \
                         the server engines",
                    )
                    .into());
                }
                let catalog = self.forge.catalog();
                let me = catalog.node();
                if req.node != me {
                    return Err(Error::Unavailable(format!(
                        "this gateway is {me:?}, not {:?}, and cannot place the database there: \
                         call that gateway",
                        req.node
                    ))
                    .into());
                }
            }
            let spec = DatabaseSpec::try_from(req)?;
            let (db, created) = self.forge.create_database(&who, spec).await?;
            Ok(pb::CreateDatabaseResponse {
                database: Some(db.into()),
                created,
            })
        }
        .await;
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn get_database(
        &self,
        req: Request<pb::GetDatabaseRequest>,
    ) -> Result<Response<pb::GetDatabaseResponse>, Status> {
        let who = caller(&req)?;
        let pb::GetDatabaseRequest { name } = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "GetDatabase").database(&name);
        let result = self
            .forge
            .get_database(&who, &name)
            .await
            .map(|db| pb::GetDatabaseResponse {
                database: Some(db.into()),
            })
            .map_err(Status::from);
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn list_databases(
        &self,
        req: Request<pb::ListDatabasesRequest>,
    ) -> Result<Response<pb::ListDatabasesResponse>, Status> {
        let who = caller(&req)?;
        let call = Call::new(self.forge.audit(), &who, "ListDatabases");
        let result = async {
            let filter = ListFilter::try_from(req.into_inner())?;
            Ok(self.forge.list_databases(&who, filter).await?.into())
        }
        .await;
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn delete_database(
        &self,
        req: Request<pb::DeleteDatabaseRequest>,
    ) -> Result<Response<pb::DeleteDatabaseResponse>, Status> {
        let who = caller(&req)?;
        let pb::DeleteDatabaseRequest {
            name,
            allow_missing,
        } = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "DeleteDatabase").database(&name);
        let result = self
            .forge
            .delete_database(&who, &name, allow_missing)
            .await
            .map(|deleted| pb::DeleteDatabaseResponse { deleted })
            .map_err(Status::from);
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn fork_database(
        &self,
        req: Request<pb::ForkDatabaseRequest>,
    ) -> Result<Response<pb::ForkDatabaseResponse>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "ForkDatabase")
            .database(&req.name)
            .statement(format!(
                "source={} from_backup={}",
                req.source, req.from_backup
            ));
        let result = async {
            let spec = ForkSpec::try_from(req)?;
            let report = self.forge.fork_database(&who, spec).await?;
            Ok::<_, Error>(pb::ForkDatabaseResponse::from(report))
        }
        .await
        .map_err(Status::from);
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn update_database(
        &self,
        req: Request<pb::UpdateDatabaseRequest>,
    ) -> Result<Response<pb::UpdateDatabaseResponse>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "UpdateDatabase")
            .database(&req.name)
            .statement(format!(
                "labels={} ttl={:?} idle={:?} backup_before_prune={:?} quota={:?}",
                req.labels.is_some(),
                req.ttl,
                req.idle,
                req.backup_before_prune,
                req.quota
            ));
        let result = async {
            let update = DatabaseUpdate::try_from(req)?;
            let db = self.forge.update_database(&who, update).await?;
            Ok::<_, Error>(pb::UpdateDatabaseResponse {
                database: Some(db.into()),
            })
        }
        .await
        .map_err(Status::from);
        call.done(result, |_| None).await.map(Response::new)
    }

    type WatchDatabasesStream = ResponseStream<pb::WatchDatabasesResponse>;

    async fn watch_databases(
        &self,
        req: Request<pb::WatchDatabasesRequest>,
    ) -> Result<Response<Self::WatchDatabasesStream>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "WatchDatabases")
            .statement(format!("since={:?}", req.since));
        let started = async {
            let filter = WatchFilter::try_from(req)?;
            let permit = self.limits.open_stream(&who)?;
            let events = self.forge.events().watch(who.clone(), filter).await?;
            Ok::<_, Error>((events, permit))
        }
        .await
        .map_err(Status::from);
        match started {
            Ok((events, permit)) => {
                let events = events.map(|e| {
                    e.map(|e| pb::WatchDatabasesResponse {
                        event: Some(e.into()),
                    })
                    .map_err(Status::from)
                });
                Ok(Response::new(Box::pin(call.stream(
                    events,
                    |_| None,
                    permit,
                ))))
            }
            Err(e) => Err(call.failed(e).await),
        }
    }

    async fn set_lifecycle_policy(
        &self,
        req: Request<pb::SetLifecyclePolicyRequest>,
    ) -> Result<Response<pb::SetLifecyclePolicyResponse>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let name = req
            .policy
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let call = Call::new(self.forge.audit(), &who, "SetLifecyclePolicy")
            .statement(format!("policy={name}"));
        let result = async {
            let spec = PolicySpec::try_from(req)?;
            let (policy, created) = self.forge.set_lifecycle_policy(&who, spec).await?;
            Ok::<_, Error>(pb::SetLifecyclePolicyResponse {
                policy: Some(policy.into()),
                created,
            })
        }
        .await
        .map_err(Status::from);
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn list_lifecycle_policies(
        &self,
        req: Request<pb::ListLifecyclePoliciesRequest>,
    ) -> Result<Response<pb::ListLifecyclePoliciesResponse>, Status> {
        let who = caller(&req)?;
        let pb::ListLifecyclePoliciesRequest {} = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "ListLifecyclePolicies");
        let result = self
            .forge
            .list_lifecycle_policies(&who)
            .await
            .map(|ps| pb::ListLifecyclePoliciesResponse {
                policies: ps.into_iter().map(Into::into).collect(),
            })
            .map_err(Status::from);
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn delete_lifecycle_policy(
        &self,
        req: Request<pb::DeleteLifecyclePolicyRequest>,
    ) -> Result<Response<pb::DeleteLifecyclePolicyResponse>, Status> {
        let who = caller(&req)?;
        let pb::DeleteLifecyclePolicyRequest {
            name,
            allow_missing,
        } = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "DeleteLifecyclePolicy")
            .statement(format!("policy={name}"));
        let result = self
            .forge
            .delete_lifecycle_policy(&who, &name, allow_missing)
            .await
            .map(|deleted| pb::DeleteLifecyclePolicyResponse { deleted })
            .map_err(Status::from);
        call.done(result, |_| None).await.map(Response::new)
    }
}
