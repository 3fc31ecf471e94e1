//! `dbforge.v1.DatabaseService`: the control plane.

use tonic::{Request, Response, Status};

use super::caller;
use crate::{
    core::forge::{DatabaseSpec, Forge, ListFilter},
    pb::{self, database_service_server::DatabaseService},
};

/// The DatabaseService adapter.
#[derive(Debug, Clone)]
pub struct ControlApi {
    forge: Forge,
}

impl ControlApi {
    /// Wraps the Forge.
    pub fn new(forge: Forge) -> Self {
        Self { forge }
    }
}

#[tonic::async_trait]
impl DatabaseService for ControlApi {
    async fn create_database(
        &self,
        req: Request<pb::CreateDatabaseRequest>,
    ) -> Result<Response<pb::CreateDatabaseResponse>, Status> {
        let who = caller(&req)?;
        let spec = DatabaseSpec::try_from(req.into_inner())?;
        let (db, created) = self.forge.create_database(&who, spec).await?;
        Ok(Response::new(pb::CreateDatabaseResponse {
            database: Some(db.into()),
            created,
        }))
    }

    async fn get_database(
        &self,
        req: Request<pb::GetDatabaseRequest>,
    ) -> Result<Response<pb::GetDatabaseResponse>, Status> {
        let who = caller(&req)?;
        let pb::GetDatabaseRequest { name } = req.into_inner();
        let db = self.forge.get_database(&who, &name).await?;
        Ok(Response::new(pb::GetDatabaseResponse {
            database: Some(db.into()),
        }))
    }

    async fn list_databases(
        &self,
        req: Request<pb::ListDatabasesRequest>,
    ) -> Result<Response<pb::ListDatabasesResponse>, Status> {
        let who = caller(&req)?;
        let filter = ListFilter::try_from(req.into_inner())?;
        let page = self.forge.list_databases(&who, filter).await?;
        Ok(Response::new(page.into()))
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
        let deleted = self
            .forge
            .delete_database(&who, &name, allow_missing)
            .await?;
        Ok(Response::new(pb::DeleteDatabaseResponse { deleted }))
    }
}
