//! `dbforge.v1.TableService`: structured access without SQL.

use futures::StreamExt;
use tonic::{Request, Response, Status};

use super::{ResponseStream, caller, convert};
use crate::{
    core::{
        forge::Forge,
        table::{Select, TableSpec},
    },
    pb::{self, table_service_server::TableService},
};

/// The TableService adapter.
#[derive(Debug, Clone)]
pub struct TableApi {
    forge: Forge,
}

impl TableApi {
    /// Wraps the Forge.
    pub fn new(forge: Forge) -> Self {
        Self { forge }
    }
}

#[tonic::async_trait]
impl TableService for TableApi {
    type SelectRowsStream = ResponseStream<pb::SelectRowsResponse>;

    async fn create_table(
        &self,
        req: Request<pb::CreateTableRequest>,
    ) -> Result<Response<pb::CreateTableResponse>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let database = req.database.clone();
        let spec = TableSpec::try_from(req)?;
        let created = self.forge.create_table(&who, &database, spec).await?;
        Ok(Response::new(pb::CreateTableResponse { created }))
    }

    async fn insert_rows(
        &self,
        req: Request<pb::InsertRowsRequest>,
    ) -> Result<Response<pb::InsertRowsResponse>, Status> {
        let who = caller(&req)?;
        let pb::InsertRowsRequest {
            database,
            table,
            rows,
        } = req.into_inner();
        let table = convert::table_name(&table)?;
        let rows = rows
            .into_iter()
            .map(|r| convert::record(r.values))
            .collect::<Result<Vec<_>, _>>()?;
        let (inserted, last_insert_id) =
            self.forge.insert_rows(&who, &database, table, rows).await?;
        Ok(Response::new(pb::InsertRowsResponse {
            rows_inserted: i64::try_from(inserted).unwrap_or(i64::MAX),
            last_insert_id,
        }))
    }

    async fn select_rows(
        &self,
        req: Request<pb::SelectRowsRequest>,
    ) -> Result<Response<Self::SelectRowsStream>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let database = req.database.clone();
        let select = Select::try_from(req)?;
        let rows = self.forge.select_rows(&who, &database, select).await?;
        Ok(Response::new(Box::pin(
            rows.map(|ev| ev.map(Into::into).map_err(Status::from)),
        )))
    }

    async fn update_rows(
        &self,
        req: Request<pb::UpdateRowsRequest>,
    ) -> Result<Response<pb::UpdateRowsResponse>, Status> {
        let who = caller(&req)?;
        let pb::UpdateRowsRequest {
            database,
            table,
            set,
            filters,
            all,
        } = req.into_inner();
        let table = convert::table_name(&table)?;
        let scope = convert::scope(filters, all)?;
        let set = convert::record(set)?;
        let n = self
            .forge
            .update_rows(&who, &database, table, set, scope)
            .await?;
        Ok(Response::new(pb::UpdateRowsResponse {
            rows_affected: i64::try_from(n).unwrap_or(i64::MAX),
        }))
    }

    async fn delete_rows(
        &self,
        req: Request<pb::DeleteRowsRequest>,
    ) -> Result<Response<pb::DeleteRowsResponse>, Status> {
        let who = caller(&req)?;
        let pb::DeleteRowsRequest {
            database,
            table,
            filters,
            all,
        } = req.into_inner();
        let table = convert::table_name(&table)?;
        let scope = convert::scope(filters, all)?;
        let n = self
            .forge
            .delete_rows(&who, &database, table, scope)
            .await?;
        Ok(Response::new(pb::DeleteRowsResponse {
            rows_affected: i64::try_from(n).unwrap_or(i64::MAX),
        }))
    }
}
