//! `dbforge.v1.TableService`: structured access without SQL.

use futures::StreamExt;
use tonic::{Request, Response, Status};

use std::sync::Arc;

use super::{Call, ResponseStream, caller, convert, limits::KeyLimits, wire::ProtoRows};
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
    limits: Arc<KeyLimits>,
}

impl TableApi {
    /// Wraps the Forge; streams count against `limits`.
    pub fn new(forge: Forge, limits: Arc<KeyLimits>) -> Self {
        Self { forge, limits }
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
        let call = Call::new(self.forge.audit(), &who, "CreateTable")
            .database(&database)
            .statement(format!("table {:?}", req.table));
        let result = async {
            let spec = TableSpec::try_from(req)?;
            let created = self.forge.create_table(&who, &database, spec).await?;
            Ok(pb::CreateTableResponse { created })
        }
        .await;
        call.done(result, |_| None).await.map(Response::new)
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
        let call = Call::new(self.forge.audit(), &who, "InsertRows")
            .database(&database)
            .statement(format!("table {table:?}, {} rows", rows.len()));
        let result = async {
            let table = convert::table_name(&table)?;
            let rows = rows
                .into_iter()
                .map(|r| convert::record(r.values))
                .collect::<Result<Vec<_>, _>>()?;
            let (inserted, last_insert_id) =
                self.forge.insert_rows(&who, &database, table, rows).await?;
            Ok(pb::InsertRowsResponse {
                rows_inserted: i64::try_from(inserted).unwrap_or(i64::MAX),
                last_insert_id,
            })
        }
        .await;
        call.done(result, |r| Some(r.rows_inserted.unsigned_abs()))
            .await
            .map(Response::new)
    }

    async fn select_rows(
        &self,
        req: Request<pb::SelectRowsRequest>,
    ) -> Result<Response<Self::SelectRowsStream>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let database = req.database.clone();
        let call = Call::new(self.forge.audit(), &who, "SelectRows")
            .database(&database)
            .statement(format!("table {:?}", req.table));
        let started = async {
            let select = Select::try_from(req)?;
            let permit = self.limits.open_stream(&who)?;
            Ok((
                self.forge
                    .select_rows(&who, &database, select, Some(ProtoRows::shared()))
                    .await?,
                permit,
            ))
        }
        .await;
        match started {
            Ok((rows, permit)) => {
                let rows =
                    rows.map(|ev| ev.map(pb::SelectRowsResponse::from).map_err(Status::from));
                Ok(Response::new(Box::pin(call.stream(rows, |_| None, permit))))
            }
            Err(e) => Err(call.failed(e).await),
        }
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
        let call = Call::new(self.forge.audit(), &who, "UpdateRows")
            .database(&database)
            .statement(format!("table {table:?}"));
        let result = async {
            let table = convert::table_name(&table)?;
            let scope = convert::scope(filters, all)?;
            let set = convert::record(set)?;
            let n = self
                .forge
                .update_rows(&who, &database, table, set, scope)
                .await?;
            Ok(pb::UpdateRowsResponse {
                rows_affected: i64::try_from(n).unwrap_or(i64::MAX),
            })
        }
        .await;
        call.done(result, |r| Some(r.rows_affected.unsigned_abs()))
            .await
            .map(Response::new)
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
        let call = Call::new(self.forge.audit(), &who, "DeleteRows")
            .database(&database)
            .statement(format!("table {table:?}"));
        let result = async {
            let table = convert::table_name(&table)?;
            let scope = convert::scope(filters, all)?;
            let n = self
                .forge
                .delete_rows(&who, &database, table, scope)
                .await?;
            Ok(pb::DeleteRowsResponse {
                rows_affected: i64::try_from(n).unwrap_or(i64::MAX),
            })
        }
        .await;
        call.done(result, |r| Some(r.rows_affected.unsigned_abs()))
            .await
            .map(Response::new)
    }
}
