//! The Forge: the service behind every RPC. It authorizes each call against the caller's
//! grants, applies the request limits, and delegates: spawning and pruning to the
//! [`Registry`], open handles to the [`HandleCache`], statements to the open [`Database`]
//! (wrapped in [`Metered`] so every engine is measured alike), transfers to
//! [`core::transfer`](super::transfer).

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{sync::Notify, task::JoinHandle};
use tracing::{debug, info, instrument, warn};

pub use super::registry::{DatabaseInfo, DatabasePage, DatabaseSpec, DatabaseStatus, ListFilter};
use super::{
    access::{Principal, Role},
    audit::AuditLog,
    backup::{BackupConfig, Backups},
    catalog::{Catalog, DATABASES_CHANNEL},
    clock::SharedClock,
    damage,
    error::{Error, Result},
    events::{EventKind, Events, Subject},
    handles::HandleCache,
    lease::Leadership,
    lifecycle::PruneTrigger,
    limits::{Budget, Limits},
    names::Identifier,
    preview,
    quota::QuotaTrigger,
    registry::{ControlGuard, Entry, Registry, blocking, now_ms},
    resume::{PageLimits, PageStream, Resumes},
    summary::{ColumnSummary, Summarizer},
    table::{self, RowScope, Select, SqlDialect, TableSpec},
    value::{Column, RowEncoder, RowEvent, Statement, StatementResult, Summary, Value},
};
use crate::{
    backend::{
        BackendKind, Capabilities, Database, RowStream, Session, StatementLimits, metered::Metered,
        share::ShareStats,
    },
    metrics as names,
};

/// Settings of the Forge.
#[derive(Debug, Clone)]
pub struct ForgeConfig {
    /// Directory of the catalog (backends have their own sub-directories).
    pub data_dir: PathBuf,
    /// The catalog in PostgreSQL instead of `catalog.db` in `data_dir` (`--catalog-url`).
    pub catalog_url: Option<String>,
    /// Request limits.
    pub limits: Limits,
    /// Close a database's connections after this long without use.
    pub idle_close_after: Duration,
    /// Databases with open connections, at most; the least recently used are closed first.
    pub max_open_databases: usize,
    /// How long audit records are kept.
    pub audit_retention: Duration,
    /// Record calls in the audit log.
    pub audit: bool,
    /// Backup targets and the scheduler.
    pub backup: BackupConfig,
    /// How often the pruner looks for expired and idle databases.
    pub prune_interval: Duration,
    /// The clock lifecycles are decided on.
    pub clock: SharedClock,
    /// Runs a pruner pass on demand (tests), besides every `prune_interval`.
    pub prune_trigger: Option<PruneTrigger>,
    /// Restore a SQLite database found damaged at start-up from its newest backup
    /// (`--restore-damaged`; see [`super::damage`]).
    pub restore_damaged: bool,
    /// How often databases with a size quota are measured.
    pub quota_interval: Duration,
    /// How long the schedulers' lease lasts unless renewed (see [`super::lease`]).
    pub scheduler_lease: Duration,
    /// Runs a quota pass on demand (tests), besides every `quota_interval`.
    pub quota_trigger: Option<QuotaTrigger>,
    /// Where this gateway listens for gRPC, as recorded in the catalog's `nodes` for the
    /// others (the bound address, set by the server once it listens).
    pub address: String,
}

#[derive(Debug)]
struct Inner {
    cfg: ForgeConfig,
    registry: Registry,
    handles: HandleCache,
    stop: Notify,
    /// Stops the pruner (its own: a Notify's stored wake-up goes to one waiter).
    stop_pruner: Notify,
    /// Stops the quota measurer.
    stop_quotas: Notify,
    /// Stops the schedulers' lease keeper.
    stop_lease: Notify,
    /// Whether this gateway runs the schedulers.
    leadership: Leadership,
    /// Tasks following other gateways' changes to the catalog (a PostgreSQL one), stopped at
    /// shutdown.
    followers: std::sync::Mutex<Vec<JoinHandle<()>>>,
    audit: AuditLog,
    backups: Backups,
    events: Arc<Events>,
    /// Resumable Query streams, open and parked.
    resumes: Resumes,
}

/// The domain service behind every RPC.
#[derive(Debug, Clone)]
pub struct Forge {
    inner: Arc<Inner>,
}

/// Ends a stream with [`Error::LimitExceeded`] at the first batch that would not fit in one
/// response message (`max_message` bytes less room for the envelope): a batch only grows that
/// large through a row that big on its own, which the transport would refuse with a code and
/// message of its own (OUT_OF_RANGE, "encoded message length too large").
fn within_message(rows: RowStream, max_message: usize) -> RowStream {
    use futures::StreamExt;
    let cap = max_message - max_message / 16;
    Box::pin(rows.map(move |ev| match ev {
        Ok(RowEvent::Encoded(batch)) if batch.bytes.len() > cap => {
            Err(oversized_row(batch.bytes.len(), max_message))
        }
        Ok(RowEvent::Rows(batch))
            if batch.len() == 1 && batch[0].iter().map(Value::approx_size).sum::<usize>() > cap =>
        {
            let size = batch[0].iter().map(Value::approx_size).sum();
            Err(oversized_row(size, max_message))
        }
        other => other,
    }))
}

fn oversized_row(size: usize, max_message: usize) -> Error {
    Error::LimitExceeded(format!(
        "a row of the result takes about {size} bytes, more than one response message may carry \
         ({max_message} bytes, --max-message-size): select fewer or smaller columns, or read a \
         large value in parts (e.g. substr(col, 1, 1000000), substr(col, 1000001, 1000000), …)"
    ))
}

impl Forge {
    /// Opens the registry (finishing what a crash interrupted) and the audit log, and starts
    /// the housekeeping task.
    pub async fn open(
        cfg: ForgeConfig,
        backends: Vec<Arc<dyn crate::backend::Backend>>,
    ) -> Result<(Self, JoinHandle<()>)> {
        let cfg_resume = cfg.limits.resume;
        let registry = Registry::open(
            &cfg.data_dir,
            cfg.catalog_url.as_deref(),
            backends,
            Arc::clone(&cfg.clock),
        )
        .await?;
        let audit = if cfg.audit {
            // The writer ends when the last AuditLog clone (the Forge's) is dropped.
            AuditLog::start(registry.catalog().clone()).await?.0
        } else {
            warn!("the audit log is disabled (--disable-audit)");
            AuditLog::disabled(registry.catalog().clone())
        };
        let backups = Backups::open(cfg.backup.clone())?;
        let events =
            Arc::new(Events::open(registry.catalog().clone(), Arc::clone(&cfg.clock)).await?);
        let leadership = Leadership::new(registry.catalog().node());
        let forge = Forge {
            inner: Arc::new(Inner {
                handles: HandleCache::new(cfg.max_open_databases),
                cfg,
                registry,
                stop: Notify::new(),
                stop_pruner: Notify::new(),
                stop_quotas: Notify::new(),
                stop_lease: Notify::new(),
                leadership,
                followers: std::sync::Mutex::new(Vec::new()),
                audit,
                backups,
                events,
                resumes: Resumes::new(cfg_resume),
            }),
        };
        forge.recover_backups().await;
        for record in forge.inner.registry.take_finished_at_start() {
            forge
                .inner
                .events
                .publish(
                    EventKind::Deleted,
                    Subject::of(&record),
                    "interrupted_prune_finished_at_start".to_owned(),
                    super::lifecycle::GATEWAY_KEY,
                )
                .await;
        }
        // Before any call can open a database: a damaged file is never opened.
        let unclean = damage::begin_run(&forge.inner.cfg.data_dir)?;
        forge
            .check_damage(unclean, forge.inner.cfg.restore_damaged)
            .await?;
        // Databases spawned, changed or removed through other gateways on a shared catalog.
        let changed = Arc::new(Notify::new());
        let signal = Arc::clone(&changed);
        if let Some(watch) = forge.catalog().watch(DATABASES_CHANNEL, move || {
            signal.notify_one();
            true
        }) {
            let follow = tokio::spawn(forge.clone().follow_databases(changed));
            if let Ok(mut tasks) = forge.inner.followers.lock() {
                tasks.extend([watch, follow]);
            }
        }
        // Held (or not) before the schedulers' first pass.
        let lease = forge.inner.cfg.scheduler_lease;
        forge.renew_lease(lease).await;
        forge.heartbeat(lease).await;
        tokio::spawn(forge.clone().keep_lease(lease));
        let housekeeping = tokio::spawn(forge.clone().housekeeping());
        tokio::spawn(forge.clone().schedule_backups());
        let (interval, trigger) = (
            forge.inner.cfg.prune_interval,
            forge.inner.cfg.prune_trigger.clone(),
        );
        tokio::spawn(forge.clone().prune_loop(interval, trigger));
        let (interval, trigger) = (
            forge.inner.cfg.quota_interval,
            forge.inner.cfg.quota_trigger.clone(),
        );
        tokio::spawn(forge.clone().quota_loop(interval, trigger));
        Ok((forge, housekeeping))
    }

    /// The catalog, shared with the keyring.
    pub fn catalog(&self) -> Catalog {
        self.inner.registry.catalog().clone()
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// The lifecycle event log.
    pub fn events(&self) -> &Arc<Events> {
        &self.inner.events
    }

    /// The registry.
    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Backup targets, locks and progress.
    pub(crate) fn backups(&self) -> &Backups {
        &self.inner.backups
    }

    /// The open-handle cache.
    pub(crate) fn handles(&self) -> &HandleCache {
        &self.inner.handles
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.cfg.limits
    }

    /// The configured backends and whether each can be reached now.
    pub fn backend_availability(&self) -> Vec<(BackendKind, bool)> {
        self.inner.registry.backend_availability()
    }

    /// The entry of `name` if the caller has at least `needed` on it. A database the caller
    /// could not know of is PERMISSION_DENIED whether it exists or not, so names don't leak.
    pub(crate) fn authorized(
        &self,
        who: &Principal,
        name: &str,
        needed: Role,
    ) -> Result<(Arc<Entry>, Role)> {
        match self.inner.registry.get(name) {
            Ok(e) => {
                let r = &e.record;
                let role = who.require(needed, name, &r.labels, r.owner.as_deref())?;
                Ok((e, role))
            }
            Err(Error::NotFound { .. }) if !who.may_know(name) => Err(Error::PermissionDenied(
                format!("key {} has no access to database {name:?}", who.key_id()),
            )),
            Err(e) => Err(e),
        }
    }

    /// Spawns a database. Returns it and whether it was created (false: `if_not_exists` found
    /// it).
    #[instrument(skip_all, fields(db = %spec.name, backend = %spec.backend))]
    pub async fn create_database(
        &self,
        who: &Principal,
        spec: DatabaseSpec,
    ) -> Result<(DatabaseInfo, bool)> {
        // Before any lookup: a name outside the key's grants must not tell whether it is taken.
        who.require_create(&spec.name)?;
        let registry = &self.inner.registry;
        let control = registry.control().await;
        if let Ok(existing) = registry.get(&spec.name) {
            // Knowing that a name is taken is fine; getting the database back needs a grant.
            if spec.if_not_exists && existing.record.backend == spec.backend {
                let r = &existing.record;
                who.require(Role::Read, &spec.name, &r.labels, r.owner.as_deref())?;
                return Ok((existing.info(existing.size().await), false));
            }
            return Err(Error::AlreadyExists {
                what: "database",
                name: format!("{} (backend {})", spec.name, existing.record.backend),
            });
        }
        who.require_create_quota(|key| registry.owned_by(key))?;
        self.check_policy_limits(who, spec.name.as_str(), &spec.labels)
            .await?;
        let started = Instant::now();
        let entry = registry.provision(&control, spec, who.owner_id()).await?;
        // A policy's quota holds from the first call, not from the next measurement.
        self.refresh_quota(&entry).await;
        self.inner
            .events
            .publish(
                EventKind::Created,
                Subject::of(&entry.record),
                String::new(),
                who.key_id(),
            )
            .await;
        info!(
            elapsed_us = started.elapsed().as_micros() as u64,
            "database spawned"
        );
        Ok((entry.info(Some(0)), true))
    }

    /// One database.
    pub async fn get_database(&self, who: &Principal, name: &str) -> Result<DatabaseInfo> {
        let (e, _) = self.authorized(who, name, Role::Read)?;
        Ok(e.info(e.size().await))
    }

    /// A page of databases in name order.
    pub async fn list_databases(
        &self,
        who: &Principal,
        filter: ListFilter,
    ) -> Result<DatabasePage> {
        let (page, more) = self.inner.registry.page(&filter, |r| {
            who.role_on(r.provisioned.name.as_str(), &r.labels, r.owner.as_deref())
                .is_some()
        })?;
        let mut databases = Vec::with_capacity(page.len());
        let (me, live) = (self.catalog().node().to_owned(), self.leadership().nodes());
        let sqlite = self.inner.registry.backend(BackendKind::Sqlite).ok();
        for e in &page {
            let mut info = e.info(e.size().await);
            // Another gateway's SQLite database: served (forwarded) while its owner is live.
            if let Some(owner) = info.node.as_deref().filter(|n| *n != me) {
                if live.iter().any(|n| n.name == owner) {
                    info.status = DatabaseStatus::Ready;
                }
                info.capabilities = sqlite.as_ref().map(|b| b.capabilities().clone());
                info.read_only_grants = sqlite.as_ref().is_some_and(|b| b.enforces_read_only());
            }
            databases.push(info);
        }
        let next_after = more
            .then(|| databases.last().map(|d| d.name.to_string()))
            .flatten();
        Ok(DatabasePage {
            databases,
            next_after,
        })
    }

    /// Prunes a database. Returns false when it did not exist and `allow_missing` is set.
    #[instrument(skip_all, fields(db = %name))]
    pub async fn delete_database(
        &self,
        who: &Principal,
        name: &str,
        allow_missing: bool,
    ) -> Result<bool> {
        let registry = &self.inner.registry;
        let control = registry.control().await;
        let entry = match self.authorized(who, name, Role::Owner) {
            Ok((e, _)) => e,
            Err(Error::NotFound { .. }) if allow_missing => return Ok(false),
            Err(e) => return Err(e),
        };
        // Checked first, so that a database on an engine this gateway lacks stays listed.
        entry.backend()?;
        entry.check_fence()?;
        self.remove(&control, &entry).await?;
        self.inner
            .events
            .publish(
                EventKind::Deleted,
                Subject::of(&entry.record),
                String::new(),
                who.key_id(),
            )
            .await;
        info!("database pruned");
        Ok(true)
    }

    /// Prunes `entry`: out of the registry, its handle closed, then dropped from its engine
    /// and the catalog.
    pub(crate) async fn remove(&self, control: &ControlGuard<'_>, entry: &Entry) -> Result<()> {
        let registry = &self.inner.registry;
        registry.retire(control, entry).await?;
        self.inner.handles.close(&entry.slot);
        registry.unprovision(control, entry).await
    }

    /// Wakes the quota measurer's shutdown.
    pub(crate) fn stop_quotas(&self) -> &Notify {
        &self.inner.stop_quotas
    }

    /// The open handle of a database, if it is open now (without opening it).
    pub(crate) fn open_handle(&self, entry: &Entry) -> Option<Arc<dyn Database>> {
        self.inner.handles.peek(&entry.slot)
    }

    /// Reloads the databases from the catalog whenever `changed` is notified (a burst of
    /// notifications makes one reload: `Notify` keeps one permit).
    async fn follow_databases(self, changed: Arc<Notify>) {
        loop {
            changed.notified().await;
            self.refresh_databases().await;
        }
    }

    /// Brings the registry in line with the catalog (see [`Registry::reconcile`]), closes
    /// the handles of the databases dropped or moved, and follows the other gateways' restore
    /// fences (`super::fence`).
    pub(crate) async fn refresh_databases(&self) {
        let registry = &self.inner.registry;
        let control = registry.control().await;
        let cat = self.catalog();
        // The restore fences too, in the same trip to the catalog.
        let (records, fences) = match blocking(move || Ok((cat.load()?, cat.fences()?))).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "could not reload the databases from the catalog");
                return;
            }
        };
        match registry.reconcile(&control, records) {
            Ok(stale) => {
                for entry in stale {
                    self.inner.handles.close(&entry.slot);
                }
            }
            Err(e) => warn!(error = %e, "could not follow the catalog's databases"),
        }
        drop(control);
        self.follow_fences(fences).await;
    }

    /// Resolves when shutdown asks the lease keeper to stop.
    pub(crate) async fn lease_stopped(&self) {
        self.inner.stop_lease.notified().await
    }

    /// Whether this gateway runs the schedulers, its name as the lease's holder, and the
    /// gateways sharing the catalog.
    pub fn leadership(&self) -> &Leadership {
        &self.inner.leadership
    }

    /// The settings the Forge was opened with.
    pub(crate) fn config(&self) -> &ForgeConfig {
        &self.inner.cfg
    }

    /// Per server engine, the data-plane connections this gateway may open now (its share of
    /// the server's cap) and those open.
    pub fn connection_caps(&self) -> Vec<(BackendKind, usize, usize)> {
        self.inner
            .registry
            .backends()
            .into_iter()
            .filter_map(|(kind, b)| {
                let (cap, open) = b.connection_cap()?;
                Some((kind, cap, open))
            })
            .collect()
    }

    /// Resolves when shutdown asks the pruner to stop.
    pub(crate) async fn pruner_stopped(&self) {
        self.inner.stop_pruner.notified().await
    }

    /// The open handle of a database, opening it on first use.
    async fn handle(
        &self,
        who: &Principal,
        name: &str,
        needed: Role,
    ) -> Result<(Arc<Entry>, Arc<dyn Database>, Role)> {
        let (entry, role) = self.authorized(who, name, needed)?;
        entry.check_fence()?;
        entry.check_damage()?;
        entry.touch(self.inner.registry.now_ms());
        let handle = Self::guard_quota(&entry, self.open_entry(&entry).await?);
        // A fence raised while the handle was opening waits for this call only if the call
        // holds the handle it watches: past this check it does (see `super::fence`).
        entry.check_fence()?;
        Ok((entry, handle, role))
    }

    /// The open handle of `entry`, without access checks or the restore fence (for backups).
    pub(crate) async fn open_entry(&self, entry: &Entry) -> Result<Arc<dyn Database>> {
        entry.check_damage()?;
        self.inner
            .handles
            .get(&entry.slot, async {
                let backend = entry.backend()?;
                let h = backend.open(&entry.record.provisioned).await?;
                // A quota the engine enforces holds on every handle from its first call.
                if let Some(max) = entry.quota.max_bytes() {
                    h.set_max_bytes(Some(max)).await?;
                }
                Ok(Metered::wrap(h, backend.kind()))
            })
            .await
    }

    /// Limits for a caller with `role`: read-only unless it may write, and only on engines
    /// that enforce read-only access themselves.
    fn limits_for(entry: &Entry, role: Role, base: StatementLimits) -> Result<StatementLimits> {
        let read_only = role < Role::Write;
        if read_only && !entry.backend()?.enforces_read_only() {
            return Err(Error::PermissionDenied(format!(
                "read grants are not enforced by the {} backend yet, so they give no access to it; \
                 ask for a write grant",
                entry.record.backend
            )));
        }
        Ok(StatementLimits { read_only, ..base })
    }

    /// Closes idle handles, stores last-access times and prunes the audit log, until shutdown.
    async fn housekeeping(self) {
        let idle = self.inner.cfg.idle_close_after;
        let tick = (idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = self.inner.stop.notified() => break,
            }
            let closed = self.inner.handles.close_idle(idle);
            if closed > 0 {
                debug!(closed, "closed idle databases");
            }
            self.inner.registry.report_gauges();
            metrics::gauge!(names::OPEN_DATABASES).set(self.inner.handles.open_count() as f64);
            if self.runs_schedulers() {
                self.prune_audit().await;
            }
            if let Err(e) = self.inner.registry.flush_access_times().await {
                warn!(error = %e, "could not store last-access times");
            }
        }
    }

    /// Deletes audit records past the retention period.
    async fn prune_audit(&self) {
        let retention =
            i64::try_from(self.inner.cfg.audit_retention.as_millis()).unwrap_or(i64::MAX);
        let audit = self.inner.audit.clone();
        let before = now_ms().saturating_sub(retention);
        match tokio::task::spawn_blocking(move || audit.prune(before)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => info!(removed = n, "pruned audit records past retention"),
            Ok(Err(e)) => warn!(error = %e, "could not prune audit records"),
            Err(e) => warn!(error = %e, "audit pruning task failed"),
        }
    }

    /// Stops housekeeping, stores last-access times and closes every database.
    pub async fn shutdown(&self) {
        // notify_one keeps the wake-up even when housekeeping is busy flushing right now.
        self.inner.stop.notify_one();
        self.inner.stop_pruner.notify_one();
        self.inner.stop_quotas.notify_one();
        self.inner.stop_lease.notify_one();
        if let Ok(mut tasks) = self.inner.followers.lock() {
            tasks.drain(..).for_each(|t| t.abort());
        }
        self.inner.backups.stop();
        self.release_lease().await;
        self.leave().await;
        self.inner.audit.flush(Duration::from_secs(5)).await;
        if let Err(e) = self.inner.registry.flush_access_times().await {
            warn!(error = %e, "could not store last-access times at shutdown");
        }
        self.inner.handles.close_all();
        damage::end_run(&self.inner.cfg.data_dir);
        info!("all databases closed");
    }

    /// Number of spawned databases.
    pub fn database_count(&self) -> usize {
        self.inner.registry.len()
    }

    /// Number of databases with open connections.
    pub fn open_databases(&self) -> usize {
        self.inner.handles.open_count()
    }

    /// Each open database's share of its server's connections, by engine, then name.
    pub fn connection_shares(&self) -> Vec<(BackendKind, ShareStats)> {
        self.inner
            .registry
            .backends()
            .into_iter()
            .flat_map(|(kind, b)| b.connection_shares().into_iter().map(move |s| (kind, s)))
            .collect()
    }

    // ---- data plane ------------------------------------------------------------------------

    /// Runs one statement.
    pub async fn execute(
        &self,
        who: &Principal,
        db: &str,
        stmt: Statement,
    ) -> Result<StatementResult> {
        self.execute_whole(who, db, stmt, Budget::default(), false)
            .await
    }

    /// Runs one statement with read-only access whatever the caller's role (on the read-only
    /// login, as [`query_read_only`](Self::query_read_only)), its whole result within `budget`:
    /// a result past it fails with [`Error::LimitExceeded`]. The MCP `query` tool answers a
    /// result that fits one page this way, in one piece, before it opens a stream.
    pub async fn execute_read_only(
        &self,
        who: &Principal,
        db: &str,
        stmt: Statement,
        budget: Budget,
    ) -> Result<StatementResult> {
        self.execute_whole(who, db, stmt, budget, true).await
    }

    async fn execute_whole(
        &self,
        who: &Principal,
        db: &str,
        stmt: Statement,
        budget: Budget,
        read_only: bool,
    ) -> Result<StatementResult> {
        let (entry, h, role) = self.handle(who, db, Role::Read).await?;
        let role = if read_only { Role::Read } else { role };
        let whole = self.inner.cfg.limits.whole_result_within(budget);
        let limits = Self::limits_for(&entry, role, whole)?;
        let started = Instant::now();
        let result = h.execute(stmt, &limits).await;
        metrics::histogram!(names::STATEMENT_DURATION_SECONDS, "backend" => entry.record.backend.as_str())
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// Streams one statement's rows, as [`RowEvent::Encoded`] batches when given an `encoder`.
    pub async fn query(
        &self,
        who: &Principal,
        db: &str,
        stmt: Statement,
        budget: Budget,
        encoder: Option<Arc<dyn RowEncoder>>,
    ) -> Result<RowStream> {
        self.stream_rows(who, db, stmt, budget, encoder, false)
            .await
    }

    /// Streams one statement's rows with read-only access whatever the caller's role (the MCP
    /// `query` tool, Query with `read_only`): the statement runs on the read-only login a read
    /// grant uses, so the engine itself refuses a write, as ExportQuery does.
    pub async fn query_read_only(
        &self,
        who: &Principal,
        db: &str,
        stmt: Statement,
        budget: Budget,
        encoder: Option<Arc<dyn RowEncoder>>,
    ) -> Result<RowStream> {
        self.stream_rows(who, db, stmt, budget, encoder, true).await
    }

    async fn stream_rows(
        &self,
        who: &Principal,
        db: &str,
        stmt: Statement,
        budget: Budget,
        encoder: Option<Arc<dyn RowEncoder>>,
        read_only: bool,
    ) -> Result<RowStream> {
        let (entry, h, role) = self.handle(who, db, Role::Read).await?;
        let role = if read_only { Role::Read } else { role };
        let limits = StatementLimits {
            encoder,
            ..Self::limits_for(&entry, role, self.inner.cfg.limits.stream_within(budget))?
        };
        let rows = h.query(stmt, limits).await?;
        Ok(within_message(
            rows,
            self.inner.cfg.limits.max_message_bytes,
        ))
    }

    /// Streams one statement's rows as a resumable stream (see [`super::resume`]): its first
    /// page within `budget`, each batch with a resume token. The engine's cursor is opened with
    /// the server's caps only (the budget cuts pages, not the cursor) and may run for the
    /// statement timeout plus the resume window. With `read_only`, as
    /// [`query_read_only`](Self::query_read_only).
    pub async fn query_resumable(
        &self,
        who: &Principal,
        db: &str,
        stmt: Statement,
        budget: Budget,
        read_only: bool,
    ) -> Result<PageStream> {
        let cfg = &self.inner.cfg.limits;
        let reservation = self.inner.resumes.reserve(who.key_id())?;
        let (entry, h, role) = self.handle(who, db, Role::Read).await?;
        let role = if read_only { Role::Read } else { role };
        let timeout = cfg.statement_timeout + cfg.resume.window;
        let limits = StatementLimits {
            timeout,
            encoder: None,
            ..Self::limits_for(&entry, role, cfg.stream(0))?
        };
        let page = self.page_limits(budget);
        let deadline = Instant::now() + timeout;
        let rows = within_message(h.query(stmt, limits).await?, cfg.max_message_bytes);
        reservation.start(db, rows, page, deadline).await
    }

    /// Resumes a resumable stream at its token's row, for one page within `budget`. Only the
    /// key that opened the stream may resume it, and only while it still may read the
    /// database; `db`, when not empty, must be the stream's.
    pub async fn resume_query(
        &self,
        who: &Principal,
        token: &str,
        db: &str,
        budget: Budget,
    ) -> Result<PageStream> {
        let page = self.page_limits(budget);
        self.inner
            .resumes
            .resume(who.key_id(), token, page, |stream_db| {
                if !db.is_empty() && db != stream_db {
                    return Err(Error::invalid(
                        "database",
                        format!("the resume token is of a stream on another database than {db:?}"),
                    ));
                }
                self.authorized(who, stream_db, Role::Read).map(drop)
            })
            .await
    }

    /// How a page of a resumable stream is cut: the request's budget capped by the server's.
    fn page_limits(&self, budget: Budget) -> PageLimits {
        let capped = self.inner.cfg.limits.stream_within(budget);
        PageLimits {
            rows: capped.max_rows,
            bytes: capped.max_bytes,
            batch_rows: capped.batch_rows,
            batch_bytes: capped.batch_bytes,
        }
    }

    /// Runs one statement and summarizes its result's columns instead of sending its rows (see
    /// [`super::summary`]): the columns, their summaries, and the stream's summary (rows read, whether
    /// a limit cut them). With `read_only`, as [`query_read_only`](Self::query_read_only).
    pub async fn summarize(
        &self,
        who: &Principal,
        db: &str,
        stmt: Statement,
        budget: Budget,
        read_only: bool,
    ) -> Result<(Vec<Column>, Vec<ColumnSummary>, Summary)> {
        use futures::StreamExt;
        let mut rows = self
            .stream_rows(who, db, stmt, budget, None, read_only)
            .await?;
        let mut columns = Vec::new();
        let mut summarizer = Summarizer::new(&[]);
        while let Some(ev) = rows.next().await {
            match ev? {
                RowEvent::Columns(c) => {
                    summarizer = Summarizer::new(&c);
                    columns = c;
                }
                RowEvent::Rows(batch) => batch.iter().for_each(|r| summarizer.add(r)),
                RowEvent::Encoded(_) => {
                    return Err(Error::internal("a summarized stream has no encoder"));
                }
                RowEvent::Done(done) => return Ok((columns, summarizer.finish(), done)),
            }
        }
        Err(Error::internal("the stream ended without its summary"))
    }

    /// Runs a batch.
    pub async fn batch(
        &self,
        who: &Principal,
        db: &str,
        stmts: Vec<Statement>,
        transactional: bool,
    ) -> Result<Vec<StatementResult>> {
        let max = self.inner.cfg.limits.max_batch_statements;
        if stmts.len() > max {
            return Err(Error::LimitExceeded(format!(
                "a batch holds at most {max} statements, got {}",
                stmts.len()
            )));
        }
        let (entry, h, role) = self.handle(who, db, Role::Read).await?;
        let limits = Self::limits_for(&entry, role, self.inner.cfg.limits.whole_result())?;
        h.batch(stmts, transactional, &limits).await
    }

    /// Previews statements in a transaction that is rolled back (see [`preview`]): `sample_rows`
    /// 0 means [`preview::DEFAULT_SAMPLE_ROWS`].
    pub async fn preview(
        &self,
        who: &Principal,
        db: &str,
        stmts: Vec<Statement>,
        sample_rows: usize,
    ) -> Result<Vec<preview::StatementPreview>> {
        let max = self.inner.cfg.limits.max_batch_statements;
        if stmts.len() > max {
            return Err(Error::LimitExceeded(format!(
                "a preview holds at most {max} statements, got {}",
                stmts.len()
            )));
        }
        if sample_rows > preview::MAX_SAMPLE_ROWS {
            return Err(Error::invalid(
                "sample_rows",
                format!("must be at most {}", preview::MAX_SAMPLE_ROWS),
            ));
        }
        let sample_rows = match sample_rows {
            0 => preview::DEFAULT_SAMPLE_ROWS,
            n => n,
        };
        let (entry, h, role) = self.handle(who, db, Role::Read).await?;
        let backend = entry.backend()?;
        let (capabilities, dialect) = (backend.capabilities(), backend.dialect());
        let dialect = dialect.filter(|_| capabilities.sessions).ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "{} databases cannot be previewed: the engine has no transaction that can be \
                 rolled back",
                backend.kind().as_str()
            ))
        })?;
        let engine = preview::Engine {
            kind: backend.kind(),
            capabilities,
            dialect,
        };
        let limits = Self::limits_for(&entry, role, self.inner.cfg.limits.whole_result())?;
        preview::preview(h.as_ref(), &engine, stmts, sample_rows, limits).await
    }

    /// Opens an interactive session.
    pub async fn session(&self, who: &Principal, db: &str) -> Result<Box<dyn Session>> {
        let (entry, h, role) = self.handle(who, db, Role::Read).await?;
        let backend = entry.backend()?;
        if !backend.capabilities().sessions {
            return Err(Error::Unsupported {
                operation: "Session",
                backend: backend.kind().as_str(),
            });
        }
        let limits = Self::limits_for(&entry, role, self.inner.cfg.limits.whole_result())?;
        let session = h.session(limits).await?;
        // The cached handle, not `h` (a per-call quota wrapper): a fence waits on its count.
        let cached = self.open_handle(&entry).as_ref().map(Arc::downgrade);
        Ok(super::fence::FencedSession::wrap(session, entry, cached))
    }

    /// What a transfer or inspection call (`core::transfer`) works with: the open database, its
    /// engine, and limits checked against the caller's role.
    pub(crate) async fn transfer_target(
        &self,
        who: &Principal,
        db: &str,
        needed: Role,
    ) -> Result<TransferTarget> {
        let (entry, database, role) = self.handle(who, db, needed).await?;
        let backend = entry.backend()?;
        let limits = &self.inner.cfg.limits;
        Ok(TransferTarget {
            database,
            kind: backend.kind(),
            capabilities: backend.capabilities().clone(),
            dialect: backend.dialect(),
            whole: Self::limits_for(&entry, role, limits.whole_result())?,
            transfer: Self::limits_for(&entry, role, limits.transfer())?,
            limits: limits.clone(),
        })
    }

    /// The handle, dialect and limits (whole-result, streamed) for a TableService call.
    async fn sql(
        &self,
        who: &Principal,
        db: &str,
        needed: Role,
        operation: &'static str,
    ) -> Result<(
        Arc<dyn Database>,
        &'static dyn SqlDialect,
        StatementLimits,
        StatementLimits,
    )> {
        let (entry, h, role) = self.handle(who, db, needed).await?;
        let backend = entry.backend()?;
        let dialect = backend
            .dialect()
            .filter(|_| backend.capabilities().table_service)
            .ok_or(Error::Unsupported {
                operation,
                backend: backend.kind().as_str(),
            })?;
        let limits = &self.inner.cfg.limits;
        let whole = Self::limits_for(&entry, role, limits.whole_result())?;
        let stream = Self::limits_for(&entry, role, limits.stream(0))?;
        Ok((h, dialect, whole, stream))
    }

    /// Creates a table; false when `if_not_exists` found it.
    pub async fn create_table(&self, who: &Principal, db: &str, spec: TableSpec) -> Result<bool> {
        let (h, d, limits, _) = self.sql(who, db, Role::Write, "CreateTable").await?;
        let create = table::create_table(d, &spec)?;
        let mut session = h.session(limits).await?;
        session.begin().await?;
        let exists = !session
            .execute(d.table_exists(spec.table.as_str()))
            .await?
            .rows
            .is_empty();
        if exists {
            session.rollback().await?;
            return if spec.if_not_exists {
                Ok(false)
            } else {
                Err(Error::AlreadyExists {
                    what: "table",
                    name: spec.table.as_str().to_owned(),
                })
            };
        }
        session.execute(create).await?;
        session.commit().await?;
        Ok(true)
    }

    /// Inserts rows in one transaction; returns the count and the last insert id.
    pub async fn insert_rows(
        &self,
        who: &Principal,
        db: &str,
        table: Identifier,
        rows: Vec<Vec<(Identifier, Value)>>,
    ) -> Result<(u64, Option<i64>)> {
        let max = self.inner.cfg.limits.max_insert_rows;
        if rows.len() > max {
            return Err(Error::LimitExceeded(format!(
                "InsertRows takes at most {max} rows per call, got {}",
                rows.len()
            )));
        }
        let (h, d, limits, _) = self.sql(who, db, Role::Write, "InsertRows").await?;
        let stmts = rows
            .into_iter()
            .map(|r| table::insert_row(d, &table, r))
            .collect();
        let results = h.batch(stmts, true, &limits).await?;
        let inserted = results.iter().map(|r| r.rows_affected).sum();
        Ok((inserted, results.last().and_then(|r| r.last_insert_id)))
    }

    /// Streams the rows of a table that match the filters, encoded as in [`Forge::query`].
    pub async fn select_rows(
        &self,
        who: &Principal,
        db: &str,
        select: Select,
        encoder: Option<Arc<dyn RowEncoder>>,
    ) -> Result<RowStream> {
        let (h, d, _, stream) = self.sql(who, db, Role::Read, "SelectRows").await?;
        let stmt = table::select(d, &select);
        let max_rows = self
            .inner
            .cfg
            .limits
            .stream(select.limit.unwrap_or(0))
            .max_rows;
        let rows = h
            .query(
                stmt,
                StatementLimits {
                    max_rows,
                    encoder,
                    ..stream
                },
            )
            .await?;
        Ok(within_message(
            rows,
            self.inner.cfg.limits.max_message_bytes,
        ))
    }

    /// Updates matching rows.
    pub async fn update_rows(
        &self,
        who: &Principal,
        db: &str,
        table: Identifier,
        set: Vec<(Identifier, Value)>,
        scope: RowScope,
    ) -> Result<u64> {
        let (h, d, limits, _) = self.sql(who, db, Role::Write, "UpdateRows").await?;
        let stmt = table::update(d, &table, set, &scope)?;
        Ok(h.execute(stmt, &limits).await?.rows_affected)
    }

    /// Deletes matching rows.
    pub async fn delete_rows(
        &self,
        who: &Principal,
        db: &str,
        table: Identifier,
        scope: RowScope,
    ) -> Result<u64> {
        let (h, d, limits, _) = self.sql(who, db, Role::Write, "DeleteRows").await?;
        let stmt = table::delete(d, &table, &scope);
        Ok(h.execute(stmt, &limits).await?.rows_affected)
    }
}

/// An open database and what a transfer needs to know about it; see [`Forge::transfer_target`].
pub(crate) struct TransferTarget {
    /// The open database.
    pub database: Arc<dyn Database>,
    /// Its engine.
    pub kind: BackendKind,
    /// What the engine supports.
    pub capabilities: Capabilities,
    /// Its SQL dialect, if it speaks SQL.
    pub dialect: Option<&'static dyn SqlDialect>,
    /// Limits for statements whose result travels in one message.
    pub whole: StatementLimits,
    /// Limits for exports and dumps.
    pub transfer: StatementLimits,
    /// The server's limits (import sizes).
    pub limits: Limits,
}
