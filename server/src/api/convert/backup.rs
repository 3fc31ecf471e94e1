//! BackupService messages ↔ the domain values of `core::backup`.

use std::{collections::BTreeMap, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, backend_pb, timestamp};
use crate::{
    core::{
        backup::{
            BackupFilter, BackupRecord, BackupStatus, Manifest, Policy, PolicySpec, RestoreMode,
            RestoreReport, Retention, Schedule, Selector,
        },
        error::{Error, Result},
        names::{DatabaseName, validate_labels},
        registry::now_ms,
    },
    pb,
};

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or_default()
}

fn duration_ms(field: &'static str, d: prost_types::Duration) -> Result<u64> {
    let d = Duration::try_from(d).map_err(|_| Error::invalid(field, "must be positive"))?;
    u64::try_from(d.as_millis()).map_err(|_| Error::invalid(field, "is too long"))
}

fn status_pb(s: BackupStatus) -> pb::BackupStatus {
    match s {
        BackupStatus::Running => pb::BackupStatus::Running,
        BackupStatus::Completed => pb::BackupStatus::Completed,
        BackupStatus::Failed => pb::BackupStatus::Failed,
    }
}

impl From<Manifest> for pb::BackupManifest {
    fn from(m: Manifest) -> Self {
        let Manifest {
            format_version,
            engine,
            engine_version,
            gateway_version,
            raw_bytes,
            tables,
            views,
            row_counts,
            total_rows,
            backup_id: _,
            database: _,
            created_ms: _,
            payload: _,
            size_bytes: _,
            sha256: _,
        } = m;
        pb::BackupManifest {
            format_version,
            engine,
            engine_version,
            gateway_version,
            tables,
            views,
            row_counts: row_counts
                .into_iter()
                .map(|(table, rows)| pb::TableRowCount { table, rows })
                .collect(),
            total_rows,
            raw_bytes,
        }
    }
}

/// A backup as the wire shows it, with the location under its target's URL.
pub fn backup_pb(b: BackupRecord, location: String) -> pb::Backup {
    let BackupRecord {
        id,
        database,
        backend,
        created_ms,
        finished_ms,
        status,
        target,
        format,
        size_bytes,
        sha256,
        manifest,
        labels,
        error,
        db_owner: _,
        db_labels: _,
        object: _,
        manifest_sha256: _,
        policy: _,
    } = b;
    let took = finished_ms
        .unwrap_or_else(now_ms)
        .saturating_sub(created_ms);
    pb::Backup {
        id,
        database,
        backend: backend_pb(backend) as i32,
        created_at: Some(timestamp(created_ms)),
        size_bytes,
        sha256,
        format,
        target,
        location,
        status: status_pb(status) as i32,
        duration: Some(duration(Duration::from_millis(took.max(0) as u64))),
        labels: labels.into_iter().collect(),
        error: error.unwrap_or_default(),
        manifest: manifest.map(Into::into),
    }
}

impl TryFrom<pb::ListBackupsRequest> for BackupFilter {
    type Error = Error;
    fn try_from(r: pb::ListBackupsRequest) -> Result<Self> {
        let pb::ListBackupsRequest {
            database,
            labels,
            status,
            page_size,
            page_token,
        } = r;
        let page_size = match page_size {
            n if n < 0 => return Err(Error::invalid("page_size", "must not be negative")),
            0 => DEFAULT_PAGE_SIZE,
            n => usize::try_from(n)
                .unwrap_or(MAX_PAGE_SIZE)
                .min(MAX_PAGE_SIZE),
        };
        let status = match pb::BackupStatus::try_from(status) {
            Ok(pb::BackupStatus::Unspecified) => None,
            Ok(pb::BackupStatus::Running) => Some(BackupStatus::Running),
            Ok(pb::BackupStatus::Completed) => Some(BackupStatus::Completed),
            Ok(pb::BackupStatus::Failed) => Some(BackupStatus::Failed),
            Err(_) => return Err(Error::invalid("status", format!("unknown status {status}"))),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let bad = || Error::invalid("page_token", "not a token from ListBackups");
            let raw = URL_SAFE_NO_PAD
                .decode(page_token.as_bytes())
                .map_err(|_| bad())?;
            let text = String::from_utf8(raw).map_err(|_| bad())?;
            let rest = text.strip_prefix("backups:").ok_or_else(bad)?;
            let (ms, id) = rest.split_once(':').ok_or_else(bad)?;
            Some((ms.parse().map_err(|_| bad())?, id.to_owned()))
        };
        if !database.is_empty() {
            DatabaseName::parse(&database)?;
        }
        Ok(BackupFilter {
            database: (!database.is_empty()).then_some(database),
            labels: labels.into_iter().collect(),
            status,
            page_size,
            after,
        })
    }
}

/// The page token that continues after `(created_ms, id)`.
pub fn backup_page_token(next: Option<(i64, String)>) -> String {
    next.map(|(ms, id)| URL_SAFE_NO_PAD.encode(format!("backups:{ms}:{id}")))
        .unwrap_or_default()
}

/// The restore mode of a request.
pub fn restore_mode(
    mode: i32,
    new_name: String,
    labels: std::collections::HashMap<String, String>,
) -> Result<RestoreMode> {
    match pb::RestoreMode::try_from(mode) {
        Ok(pb::RestoreMode::Replace) => {
            if !new_name.is_empty() || !labels.is_empty() {
                return Err(Error::invalid(
                    "new_name",
                    "REPLACE restores into the database the backup came from: leave new_name and \
                     labels empty",
                ));
            }
            Ok(RestoreMode::Replace)
        }
        Ok(pb::RestoreMode::New) => {
            validate_labels(&labels)?;
            Ok(RestoreMode::New {
                name: DatabaseName::parse(&new_name).map_err(|e| match e {
                    Error::InvalidArgument { reason, .. } => Error::invalid("new_name", reason),
                    other => other,
                })?,
                labels: labels.into_iter().collect(),
                lifecycle: Default::default(),
            })
        }
        _ => Err(Error::invalid(
            "mode",
            "set RESTORE_MODE_REPLACE or RESTORE_MODE_NEW",
        )),
    }
}

impl From<RestoreReport> for pb::RestoreBackupResponse {
    fn from(r: RestoreReport) -> Self {
        let RestoreReport {
            database,
            safety,
            rows,
            duration: took,
        } = r;
        pb::RestoreBackupResponse {
            database: Some(database.into()),
            // The location needs the target; the adapter fills it in.
            safety_backup: safety.map(|s| backup_pb(s, String::new())),
            rows,
            duration: Some(duration(took)),
        }
    }
}

impl TryFrom<pb::BackupPolicy> for PolicySpec {
    type Error = Error;
    fn try_from(p: pb::BackupPolicy) -> Result<Self> {
        let pb::BackupPolicy {
            name,
            selector,
            schedule,
            keep_last,
            keep_within,
            target,
            updated_at: _,
            last_run_at: _,
            next_run_at: _,
            last_error: _,
        } = p;
        let selector = match selector.and_then(|s| s.selector) {
            Some(pb::backup_selector::Selector::Database(d)) => {
                Selector::Database(DatabaseName::parse(&d)?.to_string())
            }
            Some(pb::backup_selector::Selector::Pattern(p)) if !p.is_empty() => {
                Selector::Pattern(p)
            }
            Some(pb::backup_selector::Selector::Labels(l)) if !l.labels.is_empty() => {
                validate_labels(&l.labels)?;
                Selector::Labels(l.labels.into_iter().collect::<BTreeMap<_, _>>())
            }
            _ => {
                return Err(Error::invalid(
                    "selector",
                    "set a database, a non-empty pattern or non-empty labels",
                ));
            }
        };
        let schedule = match schedule {
            Some(pb::backup_policy::Schedule::Every(d)) => {
                Schedule::Every(duration_ms("every", d)?)
            }
            Some(pb::backup_policy::Schedule::Cron(c)) => Schedule::Cron(c.trim().to_owned()),
            None => return Err(Error::invalid("schedule", "set every or cron")),
        };
        let keep_within_ms = match keep_within {
            Some(d) => Some(duration_ms("keep_within", d)?).filter(|ms| *ms > 0),
            None => None,
        };
        Ok(PolicySpec {
            name,
            selector,
            schedule,
            retention: Retention {
                keep_last,
                keep_within_ms,
            },
            target,
        })
    }
}

impl From<Policy> for pb::BackupPolicy {
    fn from(p: Policy) -> Self {
        let Policy {
            spec,
            owner: _,
            updated_ms,
            last_run_ms,
            next_run_ms,
            last_error,
            failures: _,
        } = p;
        let PolicySpec {
            name,
            selector,
            schedule,
            retention,
            target,
        } = spec;
        pb::BackupPolicy {
            name,
            selector: Some(pb::BackupSelector {
                selector: Some(match selector {
                    Selector::Database(d) => pb::backup_selector::Selector::Database(d),
                    Selector::Pattern(p) => pb::backup_selector::Selector::Pattern(p),
                    Selector::Labels(l) => {
                        pb::backup_selector::Selector::Labels(pb::LabelSelector {
                            labels: l.into_iter().collect(),
                        })
                    }
                }),
            }),
            schedule: Some(match schedule {
                Schedule::Every(ms) => {
                    pb::backup_policy::Schedule::Every(duration(Duration::from_millis(ms)))
                }
                Schedule::Cron(c) => pb::backup_policy::Schedule::Cron(c),
            }),
            keep_last: retention.keep_last,
            keep_within: retention
                .keep_within_ms
                .map(|ms| duration(Duration::from_millis(ms))),
            target,
            updated_at: Some(timestamp(updated_ms)),
            last_run_at: last_run_ms.map(timestamp),
            next_run_at: Some(timestamp(next_run_ms)),
            last_error: last_error.unwrap_or_default(),
        }
    }
}
