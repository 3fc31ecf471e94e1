//! Conversions of the lifecycle calls of DatabaseService (ForkDatabase).

use std::time::Duration;

use crate::{
    core::{
        error::{Error, Result},
        fork::{ForkReport, ForkSpec},
        names::DatabaseName,
    },
    pb,
};

impl TryFrom<pb::ForkDatabaseRequest> for ForkSpec {
    type Error = Error;
    fn try_from(r: pb::ForkDatabaseRequest) -> Result<Self> {
        let pb::ForkDatabaseRequest {
            source,
            name,
            labels,
            from_backup,
        } = r;
        let source = DatabaseName::parse(&source).map_err(|e| match e {
            Error::InvalidArgument { reason, .. } => Error::invalid("source", reason),
            other => other,
        })?;
        Ok(ForkSpec {
            source,
            name: DatabaseName::parse(&name)?,
            labels: labels.into_iter().collect(),
            from_backup: (!from_backup.is_empty()).then_some(from_backup),
        })
    }
}

impl From<ForkReport> for pb::ForkDatabaseResponse {
    fn from(r: ForkReport) -> Self {
        let ForkReport {
            database,
            method,
            duration,
        } = r;
        pb::ForkDatabaseResponse {
            database: Some(database.into()),
            method: method.as_str().to_owned(),
            duration: Some(wire_duration(duration)),
        }
    }
}

fn wire_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or_default()
}
