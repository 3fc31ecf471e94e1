//! `dbforge.v1.SchemaService`: structure and query plans.

use tonic::{Request, Response, Status};

use super::{Call, caller};
use crate::{
    core::{forge::Forge, names::Identifier, value::Statement},
    pb::{self, schema_service_server::SchemaService},
};

/// The SchemaService adapter.
#[derive(Debug, Clone)]
pub struct SchemaApi {
    forge: Forge,
}

impl SchemaApi {
    /// Wraps the Forge.
    pub fn new(forge: Forge) -> Self {
        Self { forge }
    }
}

#[tonic::async_trait]
impl SchemaService for SchemaApi {
    async fn get_schema(
        &self,
        req: Request<pb::GetSchemaRequest>,
    ) -> Result<Response<pb::GetSchemaResponse>, Status> {
        let who = caller(&req)?;
        let pb::GetSchemaRequest { database, table } = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "GetSchema").database(&database);
        let result = async {
            let table = match table.as_str() {
                "" => None,
                t => Some(Identifier::parse("table", t)?),
            };
            let schema = self.forge.schema(&who, &database, table).await?;
            Ok(pb::GetSchemaResponse::from(schema))
        }
        .await;
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn explain(
        &self,
        req: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let who = caller(&req)?;
        let pb::ExplainRequest {
            database,
            statement,
            analyze,
        } = req.into_inner();
        let statement = statement.unwrap_or_default();
        let call = Call::new(self.forge.audit(), &who, "Explain")
            .database(&database)
            .statement(statement.sql.clone());
        let result = async {
            let stmt = Statement::try_from(statement)?;
            let plan = self.forge.explain(&who, &database, stmt, analyze).await?;
            Ok(pb::ExplainResponse::from(plan))
        }
        .await;
        call.done(result, |_| None).await.map(Response::new)
    }
}
