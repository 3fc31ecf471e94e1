//! Inspection: the schema of a database and the plan of a statement.

use crate::core::{
    access::{Principal, Role},
    error::Result,
    forge::Forge,
    names::Identifier,
    schema::{Plan, Schema},
    value::Statement,
};

impl Forge {
    /// Describes the database's tables, or one of them.
    pub async fn schema(
        &self,
        who: &Principal,
        db: &str,
        table: Option<Identifier>,
    ) -> Result<Schema> {
        let t = self.transfer_target(who, db, Role::Read).await?;
        t.database
            .schema(table.as_ref().map(Identifier::as_str), &t.whole)
            .await
    }

    /// The plan of a statement. `analyze` runs it (rolled back), so it needs write access.
    pub async fn explain(
        &self,
        who: &Principal,
        db: &str,
        stmt: Statement,
        analyze: bool,
    ) -> Result<Plan> {
        let needed = if analyze { Role::Write } else { Role::Read };
        let t = self.transfer_target(who, db, needed).await?;
        t.database.explain(stmt, analyze, &t.whole).await
    }
}
