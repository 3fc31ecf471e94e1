//! Size quotas: a most bytes per database, its own (UpdateDatabase `max_bytes`) or a lifecycle
//! policy's (the smallest applies), enforced by the engine wherever the engine can.
//!
//! How each engine is held to it, and why that way:
//!
//! - **SQLite: by the engine, at every write.** The quota becomes `PRAGMA max_page_count` on
//!   every connection the gateway opens to the database (writer, readers, sessions), applied
//!   to the open handle as soon as the quota changes ([`Database::set_max_bytes`]) and when a
//!   handle is opened. SQLite then refuses any write that would grow the file past it with
//!   SQLITE_FULL and rolls the statement back. A tenant cannot raise it: the connection's
//!   authorizer refuses `PRAGMA max_page_count` (and every PRAGMA not on its short list).
//! - **PostgreSQL, MySQL, Redis: measured, then the engine refuses.** These engines have no
//!   per-database size cap, so the gateway measures each database with a quota every
//!   `--quota-interval` ([`Backend::size_bytes`](crate::backend::Backend::size_bytes): `pg_database_size`, information_schema data
//!   and index length, MEMORY USAGE over the namespace's keys). Once it is over, every call
//!   runs as if read-only, on the database's read-only login (the one read grants use), so the
//!   engine's own privilege check refuses writes; no statement text is inspected. A database
//!   can overshoot by what is written within one interval. A Redis namespace too large to
//!   measure within the backend's bound (more than 1,000 keys) counts as over its quota: an
//!   unmeasured tenant must not escape it.
//! - **Said as RESOURCE_EXHAUSTED with the quota and the size**, by [`QuotaGuard`], a decorator
//!   over the open database that turns the engine's refusal (SQLITE_FULL; a privilege error of
//!   a call it moved to the read-only login) into [`Error::LimitExceeded`].
//! - **Crossings are events.** Going over is `quota_exceeded`, coming back under (or the quota
//!   rising or going away) is `quota_cleared`: a WatchDatabases event, an audit record (RPC
//!   `Quota`, key `gateway`) and a sample of `dbforge_quota_events_total{backend,event}`.
//!   SQLite's file does not shrink when rows are deleted (freed pages are reused), so a SQLite
//!   database is over while its file has reached the quota or a write was refused since the
//!   last measurement.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use futures::StreamExt;
use rusqlite::params;

use tracing::{info, warn};

use super::{
    audit::Event,
    catalog::Catalog,
    engine::BackendKind,
    error::{Error, QueryErrorKind, Result},
    events::{EventKind, Subject},
    forge::Forge,
    lifecycle::GATEWAY_KEY,
    policy::LifecyclePolicy,
    registry::{Entry, blocking},
    schema::{Plan, Schema},
    trigger::PassTrigger,
    value::{Statement, StatementResult},
};
use crate::{
    backend::{Database, DumpStream, ImageSummary, RowStream, Session, StatementLimits},
    metrics as names,
};

/// The message prefix SQLite's full database carries (see `backend/sqlite/conn.rs`).
pub const SQLITE_FULL_PREFIX: &str = "the database reached its size limit";

/// A database's quota state, shared by its registry entries and its guards.
#[derive(Debug, Default)]
pub struct QuotaState {
    /// The quota in effect, bytes; 0: none.
    max: AtomicU64,
    /// The last size measured, bytes.
    size: AtomicU64,
    /// Over the quota (server engines: writes go to the read-only login).
    over: AtomicBool,
    /// SQLite refused a write for the quota since the last measurement.
    refused: AtomicBool,
    /// Where the quota comes from: `database` or `policy=<name>`.
    source: Mutex<String>,
    /// The database's own quota, bytes; 0: none.
    own: AtomicU64,
}

/// A database's quota as GetDatabase shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaView {
    /// The quota in effect; `None`: none.
    pub max_bytes: Option<u64>,
    /// `database` or `policy=<name>`; empty without a quota.
    pub source: String,
    /// Over it.
    pub over: bool,
    /// The database's own quota; `None`: none.
    pub own_max_bytes: Option<u64>,
}

impl QuotaState {
    /// What GetDatabase shows.
    pub fn view(&self) -> QuotaView {
        let max = self.max.load(Ordering::Relaxed);
        QuotaView {
            max_bytes: (max > 0).then_some(max),
            source: self.source.lock().map(|s| s.clone()).unwrap_or_default(),
            over: max > 0 && self.over.load(Ordering::Relaxed),
            own_max_bytes: Some(self.own.load(Ordering::Relaxed)).filter(|o| *o > 0),
        }
    }

    /// The quota in effect, if any.
    pub fn max_bytes(&self) -> Option<u64> {
        let max = self.max.load(Ordering::Relaxed);
        (max > 0).then_some(max)
    }

    fn cause(&self) -> String {
        let source = self.source.lock().map(|s| s.clone()).unwrap_or_default();
        let mut cause = format!(
            "max_bytes={} size={}",
            self.max.load(Ordering::Relaxed),
            self.size.load(Ordering::Relaxed)
        );
        if let Some(policy) = source.strip_prefix("policy=") {
            cause.push_str(&format!(" policy={policy}"));
        }
        cause
    }

    fn refusal(&self, database: &str) -> Error {
        let source = self.source.lock().map(|s| s.clone()).unwrap_or_default();
        let from = match source.strip_prefix("policy=") {
            Some(p) => format!("lifecycle policy {p:?}"),
            None => "its own setting".to_owned(),
        };
        Error::LimitExceeded(format!(
            "database {database:?} is over its size quota of {} bytes ({from}): it holds {} \
             bytes as last measured; writes are refused until it is back under or the quota \
             rises",
            self.max.load(Ordering::Relaxed),
            self.size.load(Ordering::Relaxed)
        ))
    }
}

/// Runs a quota pass on demand and waits for what it changed (see [`PassTrigger`]).
pub type QuotaTrigger = PassTrigger<QuotaReport>;

/// What one quota pass changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaReport {
    /// Databases that went over their quota.
    pub exceeded: Vec<String>,
    /// Databases back under (or whose quota rose or went away).
    pub cleared: Vec<String>,
}

impl Catalog {
    /// Every database's own quota (`database_quotas`).
    pub fn own_quotas(&self) -> Result<BTreeMap<String, u64>> {
        self.with(|c| {
            let rows = c.query_map("SELECT db, max_bytes FROM database_quotas", &[], |r| {
                Ok((r.get::<String>(0)?, r.get::<i64>(1)?))
            })?;
            Ok(rows
                .into_iter()
                .map(|(db, max)| (db, u64::try_from(max).unwrap_or(0)))
                .collect())
        })
    }

    /// Sets (`Some`) or removes a database's own quota.
    pub fn set_own_quota(&self, db: &str, max_bytes: Option<u64>) -> Result<()> {
        self.with(|c| match max_bytes {
            Some(max) => c
                .execute(
                    "INSERT INTO database_quotas (db, max_bytes) VALUES (?1, ?2)
                     ON CONFLICT (db) DO UPDATE SET max_bytes = ?2",
                    params![db, i64::try_from(max).unwrap_or(i64::MAX)],
                )
                .map(drop),
            None => c
                .execute("DELETE FROM database_quotas WHERE db = ?1", params![db])
                .map(drop),
        })
    }
}

/// The quota in effect for `entry`: its own or a selecting policy's, the smallest, with its
/// source.
fn effective(
    entry: &Entry,
    own: Option<u64>,
    policies: &[LifecyclePolicy],
) -> Option<(u64, String)> {
    let r = &entry.record;
    let mut best = own.map(|m| (m, "database".to_owned()));
    for p in policies {
        let Some(max) = p.spec.max_bytes else {
            continue;
        };
        if p.spec.selects(r.provisioned.name.as_str(), &r.labels)
            && best.as_ref().is_none_or(|(b, _)| max < *b)
        {
            best = Some((max, format!("policy={}", p.spec.name)));
        }
    }
    best
}

impl Forge {
    /// The quota measurer: a pass every `interval`, or when `trigger` asks, until shutdown.
    /// The first pass runs at once, so quotas hold from the start.
    pub(crate) async fn quota_loop(self, interval: Duration, trigger: Option<QuotaTrigger>) {
        let mut requests = trigger.and_then(|t| t.take());
        let mut first = true;
        loop {
            let asked = if first {
                first = false;
                None
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => None,
                    Some(reply) = async {
                        match requests.as_mut() {
                            Some(rx) => rx.recv().await,
                            None => std::future::pending().await,
                        }
                    } => Some(reply),
                    _ = self.quotas_stopped() => break,
                }
            };
            let report = self.quota_pass().await;
            if let Some(reply) = asked {
                let _ = reply.send(report);
            }
        }
    }

    /// One pass: the quota in effect for every database, measured where it has one.
    pub async fn quota_pass(&self) -> QuotaReport {
        let (own, policies) = match self.quota_inputs().await {
            Ok(inputs) => inputs,
            Err(e) => {
                warn!(error = %e, "could not read quotas; the next pass tries again");
                return QuotaReport::default();
            }
        };
        let mut report = QuotaReport::default();
        for entry in self.registry().entries() {
            let name = entry.record.provisioned.name.to_string();
            let own = own.get(&name).copied();
            entry.quota.own.store(own.unwrap_or(0), Ordering::Relaxed);
            let quota = effective(&entry, own, &policies);
            match self.check_quota(&entry, quota).await {
                Some(true) => report.exceeded.push(name),
                Some(false) => report.cleared.push(name),
                None => {}
            }
        }
        report
    }

    /// Re-decides one database's quota now (after UpdateDatabase or a create).
    pub(crate) async fn refresh_quota(&self, entry: &Entry) {
        match self.quota_inputs().await {
            Ok((own, policies)) => {
                let own = own.get(entry.record.provisioned.name.as_str()).copied();
                entry.quota.own.store(own.unwrap_or(0), Ordering::Relaxed);
                let quota = effective(entry, own, &policies);
                self.check_quota(entry, quota).await;
            }
            Err(e) => warn!(error = %e, "could not read quotas"),
        }
    }

    async fn quota_inputs(&self) -> Result<(BTreeMap<String, u64>, Vec<LifecyclePolicy>)> {
        let cat = self.catalog();
        let own = blocking(move || cat.own_quotas()).await?;
        Ok((own, self.lifecycle_policies().await?))
    }

    /// Resolves when shutdown asks the quota measurer to stop.
    async fn quotas_stopped(&self) {
        self.stop_quotas().notified().await
    }

    /// Sets the quota in effect, measures, and reports a crossing: `Some(true)` went over,
    /// `Some(false)` came back under, `None` no change.
    async fn check_quota(&self, entry: &Entry, quota: Option<(u64, String)>) -> Option<bool> {
        let state = &entry.quota;
        let old_max = state
            .max
            .swap(quota.as_ref().map_or(0, |q| q.0), Ordering::Relaxed);
        if let Ok(mut s) = state.source.lock() {
            *s = quota.as_ref().map(|q| q.1.clone()).unwrap_or_default();
        }
        let new_max = state.max.load(Ordering::Relaxed);
        if old_max != new_max {
            // Writes refused under the old quota say nothing about the new one.
            state.refused.store(false, Ordering::Relaxed);
        }
        if old_max != new_max && entry.record.backend == BackendKind::Sqlite {
            // The open handle takes the new page limit now; a handle opened later gets it in
            // `open_entry`.
            if let Some(handle) = self.open_handle(entry)
                && let Err(e) = handle.set_max_bytes(state.max_bytes()).await
            {
                warn!(db = %entry.record.provisioned.name, error = %e, "could not apply the size quota to the open database");
            }
        }
        let was_over = state.over.load(Ordering::Relaxed);
        let over = match quota {
            None => false,
            Some((max, _)) => {
                let measured = match entry.backend() {
                    Ok(b) => b.size_bytes(&entry.record.provisioned).await,
                    Err(e) => Err(e),
                };
                let refused = state.refused.swap(false, Ordering::Relaxed);
                match measured {
                    Ok(Some(size)) => {
                        state.size.store(size, Ordering::Relaxed);
                        size >= max || refused
                    }
                    // Too large to measure within the engine's bound (a Redis namespace of
                    // more than 1,000 keys): an unmeasured tenant must not escape its quota.
                    Ok(None) => true,
                    // The engine did not answer: the state stays as it was until a pass can
                    // measure again, so an outage neither blocks writes nor lifts a block.
                    Err(e) => {
                        warn!(db = %entry.record.provisioned.name, error = %e, "could not measure the database for its quota");
                        was_over || refused
                    }
                }
            }
        };
        state.over.store(over, Ordering::Relaxed);
        if over == was_over {
            return None;
        }
        self.quota_crossed(entry, over).await;
        Some(over)
    }

    async fn quota_crossed(&self, entry: &Entry, over: bool) {
        let (kind, word) = if over {
            (EventKind::QuotaExceeded, "quota_exceeded")
        } else {
            (EventKind::QuotaCleared, "quota_cleared")
        };
        let cause = entry.quota.cause();
        info!(db = %entry.record.provisioned.name, %cause, event = word, "size quota crossed");
        self.events()
            .publish(kind, Subject::of(&entry.record), cause.clone(), GATEWAY_KEY)
            .await;
        metrics::counter!(names::QUOTA_EVENTS_TOTAL, "backend" => entry.record.backend.as_str(), "event" => word)
            .increment(1);
        self.audit()
            .record(Event {
                key_id: GATEWAY_KEY.to_owned(),
                rpc: "Quota",
                database: Some(entry.record.provisioned.name.to_string()),
                statement: Some(format!("{word} {cause}")),
                rows_affected: None,
                outcome: "OK",
                duration: Duration::ZERO,
            })
            .await;
    }

    /// UpdateDatabase's quota change: stores it (validated) and applies it at once.
    pub(crate) async fn set_own_quota(&self, entry: &Entry, max_bytes: Option<u64>) -> Result<()> {
        if max_bytes == Some(0) {
            return Err(Error::invalid("max_bytes", "must be positive"));
        }
        let (cat, name) = (
            self.catalog(),
            entry.record.provisioned.name.as_str().to_owned(),
        );
        blocking(move || cat.set_own_quota(&name, max_bytes)).await
    }

    /// `handle` wrapped so that quota refusals read as RESOURCE_EXHAUSTED, when `entry` has a
    /// quota; `handle` itself otherwise.
    pub(crate) fn guard_quota(entry: &Entry, handle: Arc<dyn Database>) -> Arc<dyn Database> {
        if entry.quota.max_bytes().is_none() {
            return handle;
        }
        Arc::new(QuotaGuard {
            inner: handle,
            state: Arc::clone(&entry.quota),
            database: entry.record.provisioned.name.to_string(),
            measured: entry.record.backend != BackendKind::Sqlite,
        })
    }
}

/// An open database held to its quota (see the module docs).
#[derive(Debug)]
pub struct QuotaGuard {
    inner: Arc<dyn Database>,
    state: Arc<QuotaState>,
    database: String,
    /// Enforced by measuring (server engines), not by the engine at every write (SQLite).
    measured: bool,
}

impl QuotaGuard {
    /// The limits a call runs with: read-only while a measured database is over its quota.
    fn gate(&self, limits: &StatementLimits) -> (StatementLimits, bool) {
        let forced = self.measured && !limits.read_only && self.state.over.load(Ordering::Relaxed);
        (
            StatementLimits {
                read_only: limits.read_only || forced,
                ..limits.clone()
            },
            forced,
        )
    }

    /// The engine's refusal as a quota error.
    fn quota_error(&self, err: Error, forced: bool) -> Error {
        explain(&self.state, &self.database, err, forced)
    }
}

fn explain(state: &QuotaState, database: &str, err: Error, forced: bool) -> Error {
    match err {
        Error::Query {
            kind: QueryErrorKind::Forbidden,
            ..
        } if forced => state.refusal(database),
        Error::LimitExceeded(m) if m.starts_with(SQLITE_FULL_PREFIX) => {
            // The next measurement reports the crossing.
            state.refused.store(true, Ordering::Relaxed);
            state.refusal(database)
        }
        other => other,
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Database for QuotaGuard {
    async fn execute(&self, stmt: Statement, limits: &StatementLimits) -> Result<StatementResult> {
        let (limits, forced) = self.gate(limits);
        self.inner
            .execute(stmt, &limits)
            .await
            .map_err(|e| self.quota_error(e, forced))
    }

    async fn query(&self, stmt: Statement, limits: StatementLimits) -> Result<RowStream> {
        let (limits, forced) = self.gate(&limits);
        let rows = self
            .inner
            .query(stmt, limits)
            .await
            .map_err(|e| self.quota_error(e, forced))?;
        let (state, database) = (Arc::clone(&self.state), self.database.clone());
        Ok(rows
            .map(move |ev| ev.map_err(|e| explain(&state, &database, e, forced)))
            .boxed())
    }

    async fn batch(
        &self,
        stmts: Vec<Statement>,
        transactional: bool,
        limits: &StatementLimits,
    ) -> Result<Vec<StatementResult>> {
        let (limits, forced) = self.gate(limits);
        self.inner
            .batch(stmts, transactional, &limits)
            .await
            .map_err(|e| self.quota_error(e, forced))
    }

    async fn session(&self, limits: StatementLimits) -> Result<Box<dyn Session>> {
        let (limits, forced) = self.gate(&limits);
        let inner = self
            .inner
            .session(limits)
            .await
            .map_err(|e| self.quota_error(e, forced))?;
        Ok(Box::new(GuardedSession {
            inner,
            state: Arc::clone(&self.state),
            database: self.database.clone(),
            forced,
        }))
    }

    async fn schema(&self, table: Option<&str>, limits: &StatementLimits) -> Result<Schema> {
        self.inner.schema(table, limits).await
    }

    async fn explain(
        &self,
        stmt: Statement,
        analyze: bool,
        limits: &StatementLimits,
    ) -> Result<Plan> {
        let (limits, forced) = self.gate(limits);
        self.inner
            .explain(stmt, analyze, &limits)
            .await
            .map_err(|e| self.quota_error(e, forced))
    }

    async fn backup_dump(&self, limits: StatementLimits) -> Result<DumpStream> {
        self.inner.backup_dump(limits).await
    }

    async fn dump(&self, schema_only: bool, limits: StatementLimits) -> Result<DumpStream> {
        self.inner.dump(schema_only, limits).await
    }

    async fn import_records(&self, data: &[u8], limits: &StatementLimits) -> Result<u64> {
        let (limits, forced) = self.gate(limits);
        self.inner
            .import_records(data, &limits)
            .await
            .map_err(|e| self.quota_error(e, forced))
    }

    async fn dump_rdf(
        &self,
        format: crate::core::transfer::RdfFormat,
        limits: StatementLimits,
    ) -> Result<DumpStream> {
        self.inner.dump_rdf(format, limits).await
    }

    async fn import_rdf(
        &self,
        spec: crate::core::transfer::RdfImport,
        input: crate::core::transfer::ImportStream,
        limits: &StatementLimits,
    ) -> Result<u64> {
        let (limits, forced) = self.gate(limits);
        self.inner
            .import_rdf(spec, input, &limits)
            .await
            .map_err(|e| self.quota_error(e, forced))
    }

    async fn restore_records(&self, data: &[u8], limits: &StatementLimits) -> Result<u64> {
        self.inner.restore_records(data, limits).await
    }

    async fn backup_image(&self, dest: std::path::PathBuf) -> Result<ImageSummary> {
        self.inner.backup_image(dest).await
    }

    async fn set_max_bytes(&self, max_bytes: Option<u64>) -> Result<()> {
        self.inner.set_max_bytes(max_bytes).await
    }

    fn engine_name(&self) -> &'static str {
        self.inner.engine_name()
    }

    fn unsupported(&self, operation: &'static str) -> Error {
        self.inner.unsupported(operation)
    }
}

/// A session of a [`QuotaGuard`]: its statements' quota refusals read as RESOURCE_EXHAUSTED.
#[derive(Debug)]
struct GuardedSession {
    inner: Box<dyn Session>,
    state: Arc<QuotaState>,
    database: String,
    forced: bool,
}

impl GuardedSession {
    fn quota_error(&self, err: Error) -> Error {
        explain(&self.state, &self.database, err, self.forced)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Session for GuardedSession {
    async fn begin(&mut self) -> Result<()> {
        self.inner.begin().await.map_err(|e| self.quota_error(e))
    }

    async fn execute(&mut self, stmt: Statement) -> Result<StatementResult> {
        let r = self.inner.execute(stmt).await;
        r.map_err(|e| self.quota_error(e))
    }

    async fn commit(&mut self) -> Result<()> {
        let r = self.inner.commit().await;
        r.map_err(|e| self.quota_error(e))
    }

    async fn rollback(&mut self) -> Result<()> {
        self.inner.rollback().await
    }

    fn in_transaction(&self) -> bool {
        self.inner.in_transaction()
    }

    async fn explain(&mut self, stmt: Statement) -> Result<Plan> {
        self.inner.explain(stmt).await
    }

    async fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[String],
        rows: &[&[crate::core::value::Value]],
    ) -> Result<Option<u64>> {
        let r = self.inner.bulk_insert(table, columns, rows).await;
        r.map_err(|e| self.quota_error(e))
    }

    async fn copy_text(
        &mut self,
        table: &str,
        columns: &[String],
        lines: &[u8],
    ) -> Result<Option<u64>> {
        let r = self.inner.copy_text(table, columns, lines).await;
        r.map_err(|e| self.quota_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forced_read_only_refusal_names_the_quota_and_the_size() {
        let state = QuotaState::default();
        state.max.store(1000, Ordering::Relaxed);
        state.size.store(1500, Ordering::Relaxed);
        if let Ok(mut s) = state.source.lock() {
            *s = "policy=small".into();
        }
        let refused = Error::Query {
            kind: QueryErrorKind::Forbidden,
            code: Some("42501".into()),
            message: "permission denied".into(),
            statement_index: None,
        };
        match explain(&state, "app", refused, true) {
            Error::LimitExceeded(m) => {
                assert!(m.contains("1000 bytes") && m.contains("1500 bytes"), "{m}");
                assert!(m.contains("\"small\""), "{m}");
            }
            other => panic!("{other:?}"),
        }
        // Not moved to the read-only login: a refusal of its own stays one.
        let own = Error::Query {
            kind: QueryErrorKind::Forbidden,
            code: None,
            message: "ATTACH".into(),
            statement_index: None,
        };
        assert!(matches!(
            explain(&state, "app", own, false),
            Error::Query { .. }
        ));
        assert_eq!(state.cause(), "max_bytes=1000 size=1500 policy=small");
    }
}
