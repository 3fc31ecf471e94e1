//! Conversions of the lifecycle calls of DatabaseService (ForkDatabase, UpdateDatabase, and
//! CreateDatabase's TTLs).

use std::time::Duration;

use crate::{
    core::{
        error::{Error, Result},
        events::{DbEvent, EventKind, WatchFilter},
        fork::{ForkReport, ForkSpec},
        lifecycle::{Change, DatabaseUpdate, Lifecycle, LifecycleSpec, Ttl},
        names::DatabaseName,
        names::validate_labels,
    },
    pb,
};

/// A wire time as Unix milliseconds.
fn millis(field: &'static str, t: prost_types::Timestamp) -> Result<i64> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(Error::invalid(field, "nanos must be in 0..1e9"));
    }
    t.seconds
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(i64::from(t.nanos / 1_000_000)))
        .ok_or_else(|| Error::invalid(field, "out of range"))
}

/// A wire duration, which must be positive.
fn positive(field: &'static str, d: prost_types::Duration) -> Result<Duration> {
    match Duration::try_from(d) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(Error::invalid(field, "must be positive")),
    }
}

/// CreateDatabase's lifecycle fields.
pub(crate) fn create_lifecycle(
    ttl: Option<pb::create_database_request::Ttl>,
    idle_ttl: Option<prost_types::Duration>,
    backup_before_prune: bool,
) -> Result<LifecycleSpec> {
    use pb::create_database_request::Ttl as W;
    Ok(LifecycleSpec {
        ttl: match ttl {
            Some(W::ExpireAt(t)) => Some(Ttl::At(millis("expire_at", t)?)),
            Some(W::ExpireAfter(d)) => Some(Ttl::After(positive("expire_after", d)?)),
            None => None,
        },
        idle_ttl: idle_ttl.map(|d| positive("idle_ttl", d)).transpose()?,
        backup_before_prune,
    })
}

/// The Database message's lifecycle fields: `expire_at`, `idle_ttl`.
pub(crate) fn lifecycle_pb(
    l: Lifecycle,
) -> (
    Option<prost_types::Timestamp>,
    Option<prost_types::Duration>,
) {
    (
        l.expire_ms.map(super::timestamp),
        l.idle_ttl.map(wire_duration),
    )
}

impl TryFrom<pb::UpdateDatabaseRequest> for DatabaseUpdate {
    type Error = Error;
    fn try_from(r: pb::UpdateDatabaseRequest) -> Result<Self> {
        use pb::update_database_request::{Idle, Quota, Ttl as W};
        let pb::UpdateDatabaseRequest {
            name,
            labels,
            ttl,
            idle,
            backup_before_prune,
            quota,
        } = r;
        DatabaseName::parse(&name)?;
        let labels = labels.map(|l| l.values.into_iter().collect());
        if let Some(labels) = &labels {
            validate_labels(labels)?;
        }
        Ok(DatabaseUpdate {
            name,
            labels,
            ttl: match ttl {
                Some(W::ExpireAt(t)) => Some(Change::Set(Ttl::At(millis("expire_at", t)?))),
                Some(W::ExpireAfter(d)) => {
                    Some(Change::Set(Ttl::After(positive("expire_after", d)?)))
                }
                Some(W::ClearTtl(true)) => Some(Change::Clear),
                Some(W::ClearTtl(false)) | None => None,
            },
            idle_ttl: match idle {
                Some(Idle::IdleTtl(d)) => Some(Change::Set(positive("idle_ttl", d)?)),
                Some(Idle::ClearIdleTtl(true)) => Some(Change::Clear),
                Some(Idle::ClearIdleTtl(false)) | None => None,
            },
            backup_before_prune,
            max_bytes: match quota {
                Some(Quota::MaxBytes(0)) => {
                    return Err(Error::invalid("max_bytes", "must be positive"));
                }
                Some(Quota::MaxBytes(m)) => Some(Change::Set(m)),
                Some(Quota::ClearMaxBytes(true)) => Some(Change::Clear),
                Some(Quota::ClearMaxBytes(false)) | None => None,
            },
        })
    }
}

impl TryFrom<pb::ForkDatabaseRequest> for ForkSpec {
    type Error = Error;
    fn try_from(r: pb::ForkDatabaseRequest) -> Result<Self> {
        let pb::ForkDatabaseRequest {
            source,
            name,
            labels,
            from_backup,
            ttl,
            idle_ttl,
            backup_before_prune,
        } = r;
        use pb::fork_database_request::Ttl as W;
        let ttl = ttl.map(|t| match t {
            W::ExpireAt(t) => pb::create_database_request::Ttl::ExpireAt(t),
            W::ExpireAfter(d) => pb::create_database_request::Ttl::ExpireAfter(d),
        });
        let source = DatabaseName::parse(&source).map_err(|e| match e {
            Error::InvalidArgument { reason, .. } => Error::invalid("source", reason),
            other => other,
        })?;
        Ok(ForkSpec {
            source,
            name: DatabaseName::parse(&name)?,
            labels: labels.into_iter().collect(),
            from_backup: (!from_backup.is_empty()).then_some(from_backup),
            lifecycle: create_lifecycle(ttl, idle_ttl, backup_before_prune)?,
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

impl TryFrom<pb::WatchDatabasesRequest> for WatchFilter {
    type Error = Error;
    fn try_from(r: pb::WatchDatabasesRequest) -> Result<Self> {
        let pb::WatchDatabasesRequest {
            labels,
            backend,
            since,
        } = r;
        Ok(WatchFilter {
            labels: labels.into_iter().collect(),
            backend: match backend {
                0 => None,
                b => Some(super::backend_kind(b)?),
            },
            since,
        })
    }
}

fn event_type(k: EventKind) -> pb::DatabaseEventType {
    match k {
        EventKind::Created => pb::DatabaseEventType::Created,
        EventKind::Deleted => pb::DatabaseEventType::Deleted,
        EventKind::Forked => pb::DatabaseEventType::Forked,
        EventKind::Expired => pb::DatabaseEventType::Expired,
        EventKind::PrunedIdle => pb::DatabaseEventType::PrunedIdle,
        EventKind::BackedUp => pb::DatabaseEventType::BackedUp,
        EventKind::Restored => pb::DatabaseEventType::Restored,
        EventKind::Unavailable => pb::DatabaseEventType::Unavailable,
        EventKind::Recovered => pb::DatabaseEventType::Recovered,
        EventKind::Damaged => pb::DatabaseEventType::Damaged,
        EventKind::Updated => pb::DatabaseEventType::Updated,
        EventKind::QuotaExceeded => pb::DatabaseEventType::QuotaExceeded,
        EventKind::QuotaCleared => pb::DatabaseEventType::QuotaCleared,
    }
}

impl From<DbEvent> for pb::DatabaseEvent {
    fn from(e: DbEvent) -> Self {
        let DbEvent {
            seq,
            kind,
            database,
            backend,
            at_ms,
            cause,
            key_id,
            labels,
            owner: _,
        } = e;
        pb::DatabaseEvent {
            sequence: seq,
            r#type: event_type(kind) as i32,
            database,
            backend: super::backend_pb(backend) as i32,
            time: Some(super::timestamp(at_ms)),
            cause,
            key_id,
            labels: labels.into_iter().collect(),
        }
    }
}
