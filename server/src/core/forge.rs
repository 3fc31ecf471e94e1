//! The Forge: the registry of spawned databases and every operation on them.
//!
//! The registry lives in memory (loaded from the catalog at start) so that a data-plane call
//! costs a map lookup, not a catalog read. Handles to databases are opened on first use, shared
//! by concurrent calls, and closed when idle or when too many are open, so thousands of spawned
//! databases cost only their catalog rows.

use crate::metrics as names;
use std::{
    borrow::Borrow,
    collections::{BTreeMap, HashMap},
    ops::Bound,
    path::PathBuf,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::{sync::Notify, task::JoinHandle};
use tracing::{debug, info, instrument, warn};

use super::{
    access::{Principal, Role},
    audit::AuditLog,
    catalog::{Catalog, Record, RecordState},
    error::{Error, Result},
    limits::Limits,
    names::{DatabaseName, Identifier},
    table::{self, RowScope, Select, SqlDialect, TableSpec},
    value::{RowEncoder, RowEvent, Statement, StatementResult, Value},
};
use crate::backend::{
    Backend, BackendKind, Capabilities, Database, RowStream, Session, StatementLimits,
};

impl Borrow<str> for DatabaseName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

/// Settings of the Forge.
#[derive(Debug, Clone)]
pub struct ForgeConfig {
    /// Directory of the catalog (backends have their own sub-directories).
    pub data_dir: PathBuf,
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
}

/// A spawn request.
#[derive(Debug, Clone)]
pub struct DatabaseSpec {
    /// Name.
    pub name: DatabaseName,
    /// Engine.
    pub backend: BackendKind,
    /// Return an existing database instead of ALREADY_EXISTS.
    pub if_not_exists: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// Lifecycle state as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseStatus {
    /// Usable.
    Ready,
    /// Its backend is not configured or cannot be reached.
    Unavailable,
}

/// A database as the control plane reports it.
#[derive(Debug, Clone)]
pub struct DatabaseInfo {
    /// Name.
    pub name: DatabaseName,
    /// Engine.
    pub backend: BackendKind,
    /// State.
    pub status: DatabaseStatus,
    /// Spawn time, Unix ms.
    pub created_ms: i64,
    /// Last data-plane use, Unix ms.
    pub last_accessed_ms: i64,
    /// Bytes on disk, when known.
    pub size_bytes: Option<u64>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// What its backend supports (None when the backend is not configured).
    pub capabilities: Option<Capabilities>,
    /// Whether read grants are enforced by its engine (and so usable on it).
    pub read_only_grants: bool,
}

/// A ListDatabases request.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Page size (already capped).
    pub page_size: usize,
    /// List names after this one.
    pub after: Option<String>,
    /// Only this engine.
    pub backend: Option<BackendKind>,
    /// Only databases carrying all these labels.
    pub labels: BTreeMap<String, String>,
}

/// One page of ListDatabases.
#[derive(Debug, Clone)]
pub struct DatabasePage {
    /// The databases.
    pub databases: Vec<DatabaseInfo>,
    /// The last name of this page when more follow.
    pub next_after: Option<String>,
}

#[derive(Debug)]
struct Entry {
    record: Record,
    backend: Option<Arc<dyn Backend>>,
    last_accessed_ms: AtomicI64,
    touched: AtomicBool,
    /// Milliseconds since the Forge started, for idle and LRU decisions.
    last_used: AtomicI64,
    handle: Mutex<Option<Arc<dyn Database>>>,
    opening: tokio::sync::Mutex<()>,
}

impl Entry {
    fn backend(&self) -> Result<&Arc<dyn Backend>> {
        self.backend.as_ref().ok_or_else(|| {
            Error::Unavailable(format!(
                "database {:?} lives on the {} backend, which this gateway has not configured",
                self.record.provisioned.name.as_str(),
                self.record.backend
            ))
        })
    }

    fn cached_handle(&self) -> Option<Arc<dyn Database>> {
        self.handle.lock().ok().and_then(|h| h.clone())
    }

    fn close(&self) -> bool {
        self.handle.lock().ok().and_then(|mut h| h.take()).is_some()
    }
}

#[derive(Debug)]
struct Inner {
    cfg: ForgeConfig,
    catalog: Catalog,
    backends: HashMap<BackendKind, Arc<dyn Backend>>,
    entries: RwLock<BTreeMap<DatabaseName, Arc<Entry>>>,
    /// Serializes spawns and prunes, so a name is never half-created twice.
    control: tokio::sync::Mutex<()>,
    open_count: AtomicUsize,
    started: Instant,
    stop: Notify,
    audit: AuditLog,
}

/// The domain service behind every RPC.
#[derive(Debug, Clone)]
pub struct Forge {
    inner: Arc<Inner>,
}

/// Counts the rows and bytes a stream carries, per backend: encoded bytes when the stream has an
/// encoder (every gRPC stream), approximate ones otherwise.
fn counted(rows: RowStream, backend: BackendKind) -> RowStream {
    use futures::StreamExt;
    let label = backend.as_str();
    Box::pin(rows.inspect(move |ev| {
        let (rows, bytes) = match ev {
            Ok(RowEvent::Rows(batch)) => (
                batch.len(),
                batch.iter().flatten().map(Value::approx_size).sum(),
            ),
            Ok(RowEvent::Encoded(batch)) => (batch.rows, batch.bytes.len()),
            _ => return,
        };
        metrics::counter!(names::ROWS_STREAMED_TOTAL, "backend" => label).increment(rows as u64);
        metrics::counter!(names::BYTES_STREAMED_TOTAL, "backend" => label).increment(bytes as u64);
    }))
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("blocking task failed: {e}")))?
}

impl Forge {
    /// Opens the catalog, finishes spawns and prunes a crash interrupted, removes orphaned
    /// storage, and starts the housekeeping task.
    pub async fn open(
        cfg: ForgeConfig,
        backends: Vec<Arc<dyn Backend>>,
    ) -> Result<(Self, JoinHandle<()>)> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(Error::internal)?;
        let path = cfg.data_dir.join("catalog.db");
        let catalog = blocking(move || Catalog::open(&path)).await?;
        let backends: HashMap<_, _> = backends.into_iter().map(|b| (b.kind(), b)).collect();

        let cat = catalog.clone();
        let records = blocking(move || cat.load()).await?;
        let mut entries = BTreeMap::new();
        let mut known: HashMap<BackendKind, Vec<_>> = HashMap::new();
        for record in records {
            let backend = backends.get(&record.backend).cloned();
            match (record.state, &backend) {
                (RecordState::Ready, _) => {}
                (_, Some(b)) => {
                    let name = record.provisioned.name.clone();
                    warn!(db = %name, state = ?record.state, "finishing an interrupted spawn or prune");
                    // A backend that is down must not stop the gateway: the record stays and
                    // the next start tries again.
                    if let Err(e) = b.destroy(&record.provisioned).await {
                        warn!(db = %name, backend = %record.backend, error = %e, "could not finish it now: the catalog keeps the record and the next start tries again");
                        continue;
                    }
                    let cat = catalog.clone();
                    blocking(move || cat.remove(&name)).await?;
                    continue;
                }
                // Its backend is not configured now: leave the record for a later start.
                (_, None) => continue,
            }
            known
                .entry(record.backend)
                .or_default()
                .push(record.provisioned.clone());
            entries.insert(
                record.provisioned.name.clone(),
                Arc::new(Entry {
                    last_accessed_ms: AtomicI64::new(record.last_accessed_ms),
                    record,
                    backend,
                    touched: AtomicBool::new(false),
                    last_used: AtomicI64::new(0),
                    handle: Mutex::new(None),
                    opening: tokio::sync::Mutex::new(()),
                }),
            );
        }
        for (kind, backend) in backends.iter().filter(|(_, b)| b.owns_storage()) {
            let removed = backend
                .remove_orphans(known.get(kind).map(Vec::as_slice).unwrap_or_default())
                .await?;
            if removed > 0 {
                warn!(backend = %kind, removed, "removed storage the catalog does not know");
            }
        }
        info!(databases = entries.len(), "catalog loaded");
        let audit = if cfg.audit {
            // The writer ends when the last AuditLog clone (the Forge's) is dropped.
            AuditLog::start(catalog.clone())?.0
        } else {
            warn!("the audit log is disabled (--disable-audit)");
            AuditLog::disabled(catalog.clone())
        };
        let forge = Forge {
            inner: Arc::new(Inner {
                cfg,
                catalog,
                backends,
                entries: RwLock::new(entries),
                control: tokio::sync::Mutex::new(()),
                open_count: AtomicUsize::new(0),
                started: Instant::now(),
                stop: Notify::new(),
                audit,
            }),
        };
        let housekeeping = tokio::spawn(forge.clone().housekeeping());
        Ok((forge, housekeeping))
    }

    /// The catalog, shared with the keyring.
    pub fn catalog(&self) -> Catalog {
        self.inner.catalog.clone()
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.cfg.limits
    }

    /// The configured backends and whether each can be reached now.
    pub fn backend_availability(&self) -> Vec<(BackendKind, bool)> {
        let mut all: Vec<_> = self
            .inner
            .backends
            .iter()
            .map(|(k, b)| (*k, b.available()))
            .collect();
        all.sort();
        all
    }

    fn entry(&self, name: &str) -> Result<Arc<Entry>> {
        let entries = self
            .inner
            .entries
            .read()
            .map_err(|_| Error::internal("registry lock poisoned"))?;
        if let Some(e) = entries.get(name) {
            return Ok(Arc::clone(e));
        }
        drop(entries);
        // Only a miss pays for validation, and an invalid name says why rather than NOT_FOUND.
        DatabaseName::parse(name)?;
        Err(Error::NotFound {
            what: "database",
            name: name.to_owned(),
        })
    }

    /// The entry of `name` if the caller has at least `needed` on it. A database the caller
    /// could not know of is PERMISSION_DENIED whether it exists or not, so names don't leak.
    fn authorized(&self, who: &Principal, name: &str, needed: Role) -> Result<(Arc<Entry>, Role)> {
        match self.entry(name) {
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

    fn info(&self, e: &Entry, size_bytes: Option<u64>) -> DatabaseInfo {
        DatabaseInfo {
            name: e.record.provisioned.name.clone(),
            backend: e.record.backend,
            status: self.info_status(e),
            created_ms: e.record.created_ms,
            last_accessed_ms: e.last_accessed_ms.load(Ordering::Relaxed),
            size_bytes,
            labels: e.record.labels.clone(),
            capabilities: e.backend.as_ref().map(|b| b.capabilities().clone()),
            read_only_grants: e.backend.as_ref().is_some_and(|b| b.enforces_read_only()),
        }
    }

    async fn size_of(e: &Entry) -> Option<u64> {
        let backend = e.backend.as_ref()?;
        match backend.size_bytes(&e.record.provisioned).await {
            Ok(size) => size,
            Err(err) => {
                debug!(db = %e.record.provisioned.name, error = %err, "size unknown");
                None
            }
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
        let owner = match who {
            Principal::Unrestricted => None,
            Principal::Key(k) => Some(k.id.clone()),
        };
        let _control = self.inner.control.lock().await;
        if let Ok(existing) = self.entry(&spec.name) {
            // Knowing that a name is taken is fine; getting the database back needs a grant.
            if spec.if_not_exists && existing.record.backend == spec.backend {
                let r = &existing.record;
                who.require(Role::Read, &spec.name, &r.labels, r.owner.as_deref())?;
                let size = Self::size_of(&existing).await;
                return Ok((self.info(&existing, size), false));
            }
            return Err(Error::AlreadyExists {
                what: "database",
                name: format!("{} (backend {})", spec.name, existing.record.backend),
            });
        }
        if let Principal::Key(k) = who {
            let quota = k.create_quota as usize;
            if !k.admin && quota > 0 {
                let owned = self
                    .inner
                    .entries
                    .read()
                    .map_err(|_| Error::internal("registry lock poisoned"))?
                    .values()
                    .filter(|e| e.record.owner.as_deref() == Some(k.id.as_str()))
                    .count();
                if owned >= quota {
                    return Err(Error::LimitExceeded(format!(
                        "key {} has created {owned} databases, its quota",
                        k.id
                    )));
                }
            }
        }
        let backend = self
            .inner
            .backends
            .get(&spec.backend)
            .cloned()
            .ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "the {} backend is not configured on this gateway",
                    spec.backend
                ))
            })?;
        let started = Instant::now();
        let now = now_ms();
        let record = Record {
            provisioned: backend.locate(&spec.name),
            backend: spec.backend,
            state: RecordState::Provisioning,
            created_ms: now,
            last_accessed_ms: now,
            labels: spec.labels,
            owner,
        };
        let (cat, rec) = (self.inner.catalog.clone(), record.clone());
        blocking(move || cat.insert(&rec)).await?;
        if let Err(err) = backend.create(&record.provisioned).await {
            // Undo both halves; the catalog row goes last so that a crash here is retried at
            // start-up.
            if let Err(e) = backend.destroy(&record.provisioned).await {
                warn!(
                    db = %spec.name,
                    backend = %spec.backend,
                    left = %record.provisioned.locator,
                    spawn_error = %err,
                    error = %e,
                    "spawning failed, and removing what it had made on the {} server (named \
                     after `left`) failed too; the catalog keeps the database as unfinished, so \
                     its name stays taken, and the next start of the gateway removes it from \
                     the server and the catalog",
                    spec.backend
                );
                return Err(err);
            }
            let (cat, name) = (self.inner.catalog.clone(), spec.name.clone());
            blocking(move || cat.remove(&name)).await?;
            return Err(err);
        }
        let (cat, name) = (self.inner.catalog.clone(), spec.name.clone());
        blocking(move || cat.set_state(&name, RecordState::Ready)).await?;
        let entry = Arc::new(Entry {
            last_accessed_ms: AtomicI64::new(now),
            record: Record {
                state: RecordState::Ready,
                ..record
            },
            backend: Some(backend),
            touched: AtomicBool::new(false),
            last_used: AtomicI64::new(self.uptime_ms()),
            handle: Mutex::new(None),
            opening: tokio::sync::Mutex::new(()),
        });
        self.inner
            .entries
            .write()
            .map_err(|_| Error::internal("registry lock poisoned"))?
            .insert(spec.name.clone(), Arc::clone(&entry));
        info!(
            elapsed_us = started.elapsed().as_micros() as u64,
            "database spawned"
        );
        Ok((self.info(&entry, Some(0)), true))
    }

    /// One database.
    pub async fn get_database(&self, who: &Principal, name: &str) -> Result<DatabaseInfo> {
        let (e, _) = self.authorized(who, name, Role::Read)?;
        let size = Self::size_of(&e).await;
        Ok(self.info(&e, size))
    }

    /// A page of databases in name order.
    pub async fn list_databases(
        &self,
        who: &Principal,
        filter: ListFilter,
    ) -> Result<DatabasePage> {
        let mut page: Vec<Arc<Entry>> = Vec::new();
        let mut more = false;
        {
            let entries = self
                .inner
                .entries
                .read()
                .map_err(|_| Error::internal("registry lock poisoned"))?;
            let lower = match &filter.after {
                Some(after) => Bound::Excluded(after.as_str()),
                None => Bound::Unbounded,
            };
            for (_, e) in entries.range::<str, _>((lower, Bound::Unbounded)) {
                let r = &e.record;
                let visible = || {
                    who.role_on(r.provisioned.name.as_str(), &r.labels, r.owner.as_deref())
                        .is_some()
                };
                if filter.backend.is_some_and(|b| b != r.backend)
                    || !filter
                        .labels
                        .iter()
                        .all(|(k, v)| r.labels.get(k) == Some(v))
                    || !visible()
                {
                    continue;
                }
                if page.len() == filter.page_size {
                    more = true;
                    break;
                }
                page.push(Arc::clone(e));
            }
        }
        let mut databases = Vec::with_capacity(page.len());
        for e in &page {
            let size = Self::size_of(e).await;
            databases.push(self.info(e, size));
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
        let _control = self.inner.control.lock().await;
        let entry = match self.authorized(who, name, Role::Owner) {
            Ok((e, _)) => e,
            Err(Error::NotFound { .. }) if allow_missing => return Ok(false),
            Err(e) => return Err(e),
        };
        let backend = entry.backend()?.clone();
        let db_name = entry.record.provisioned.name.clone();
        let (cat, n) = (self.inner.catalog.clone(), db_name.clone());
        blocking(move || cat.set_state(&n, RecordState::Deleting)).await?;
        self.inner
            .entries
            .write()
            .map_err(|_| Error::internal("registry lock poisoned"))?
            .remove(name);
        if entry.close() {
            self.inner.open_count.fetch_sub(1, Ordering::Relaxed);
        }
        backend.destroy(&entry.record.provisioned).await?;
        let cat = self.inner.catalog.clone();
        blocking(move || cat.remove(&db_name)).await?;
        info!("database pruned");
        Ok(true)
    }

    fn uptime_ms(&self) -> i64 {
        i64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// The open handle of a database, opening it on first use.
    async fn handle(
        &self,
        who: &Principal,
        name: &str,
        needed: Role,
    ) -> Result<(Arc<Entry>, Arc<dyn Database>, Role)> {
        let (entry, role) = self.authorized(who, name, needed)?;
        entry.last_used.store(self.uptime_ms(), Ordering::Relaxed);
        entry.last_accessed_ms.store(now_ms(), Ordering::Relaxed);
        entry.touched.store(true, Ordering::Relaxed);
        if let Some(h) = entry.cached_handle() {
            return Ok((entry, h, role));
        }
        let handle = {
            let _opening = entry.opening.lock().await;
            if let Some(h) = entry.cached_handle() {
                return Ok((Arc::clone(&entry), h, role));
            }
            let h = entry.backend()?.open(&entry.record.provisioned).await?;
            if let Ok(mut slot) = entry.handle.lock() {
                *slot = Some(Arc::clone(&h));
            }
            h
        };
        let open = self.inner.open_count.fetch_add(1, Ordering::Relaxed) + 1;
        if open > self.inner.cfg.max_open_databases {
            self.close_least_recent();
        }
        Ok((entry, handle, role))
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

    /// Closes the least recently used tenth of the open databases, so that the scan it costs
    /// is paid once per many opens.
    fn close_least_recent(&self) {
        let Ok(entries) = self.inner.entries.read() else {
            return;
        };
        let mut open: Vec<(i64, &Arc<Entry>)> = entries
            .values()
            .filter(|e| e.cached_handle().is_some())
            .map(|e| (e.last_used.load(Ordering::Relaxed), e))
            .collect();
        let target = self.inner.cfg.max_open_databases * 9 / 10;
        if open.len() <= target {
            return;
        }
        let excess = open.len() - target;
        open.select_nth_unstable_by_key(excess - 1, |(t, _)| *t);
        for (_, e) in &open[..excess] {
            if e.close() {
                self.inner.open_count.fetch_sub(1, Ordering::Relaxed);
            }
        }
        debug!(closed = excess, "closed least recently used databases");
    }

    /// Closes idle handles and stores last-access times, until shutdown.
    async fn housekeeping(self) {
        let idle = self.inner.cfg.idle_close_after;
        let tick = (idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = self.inner.stop.notified() => break,
            }
            let cutoff = self.uptime_ms() - i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
            let mut closed = 0;
            if let Ok(entries) = self.inner.entries.read() {
                for e in entries.values() {
                    if e.last_used.load(Ordering::Relaxed) < cutoff && e.close() {
                        self.inner.open_count.fetch_sub(1, Ordering::Relaxed);
                        closed += 1;
                    }
                }
            }
            if closed > 0 {
                debug!(closed, "closed idle databases");
            }
            self.report_gauges();
            self.prune_audit().await;
            if let Err(e) = self.flush_access_times().await {
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

    /// Databases by backend and status, and open databases, for Prometheus.
    fn report_gauges(&self) {
        let Ok(entries) = self.inner.entries.read() else {
            return;
        };
        let mut counts: BTreeMap<(BackendKind, &'static str), usize> = BTreeMap::new();
        for kind in self.inner.backends.keys() {
            counts.insert((*kind, "ready"), 0);
            counts.insert((*kind, "unavailable"), 0);
        }
        for e in entries.values() {
            let status = match self.info_status(e) {
                DatabaseStatus::Ready => "ready",
                DatabaseStatus::Unavailable => "unavailable",
            };
            *counts.entry((e.record.backend, status)).or_default() += 1;
        }
        for ((kind, status), n) in counts {
            metrics::gauge!(names::DATABASES, "backend" => kind.as_str(), "status" => status)
                .set(n as f64);
        }
        metrics::gauge!(names::OPEN_DATABASES)
            .set(self.inner.open_count.load(Ordering::Relaxed) as f64);
    }

    fn info_status(&self, e: &Entry) -> DatabaseStatus {
        if e.backend.as_ref().is_some_and(|b| b.available()) {
            DatabaseStatus::Ready
        } else {
            DatabaseStatus::Unavailable
        }
    }

    async fn flush_access_times(&self) -> Result<()> {
        let updates: Vec<(DatabaseName, i64)> = {
            let entries = self
                .inner
                .entries
                .read()
                .map_err(|_| Error::internal("registry lock poisoned"))?;
            entries
                .values()
                .filter(|e| e.touched.swap(false, Ordering::Relaxed))
                .map(|e| {
                    (
                        e.record.provisioned.name.clone(),
                        e.last_accessed_ms.load(Ordering::Relaxed),
                    )
                })
                .collect()
        };
        let cat = self.inner.catalog.clone();
        blocking(move || cat.touch(&updates)).await
    }

    /// Stops housekeeping, stores last-access times and closes every database.
    pub async fn shutdown(&self) {
        // notify_one keeps the wake-up even when housekeeping is busy flushing right now.
        self.inner.stop.notify_one();
        self.inner.audit.flush(Duration::from_secs(5)).await;
        if let Err(e) = self.flush_access_times().await {
            warn!(error = %e, "could not store last-access times at shutdown");
        }
        if let Ok(entries) = self.inner.entries.read() {
            for e in entries.values() {
                e.close();
            }
        }
        self.inner.open_count.store(0, Ordering::Relaxed);
        info!("all databases closed");
    }

    /// Number of spawned databases.
    pub fn database_count(&self) -> usize {
        self.inner
            .entries
            .read()
            .map(|e| e.len())
            .unwrap_or_default()
    }

    /// Number of databases with open connections.
    pub fn open_databases(&self) -> usize {
        self.inner.open_count.load(Ordering::Relaxed)
    }

    // ---- data plane ------------------------------------------------------------------------

    /// Runs one statement.
    pub async fn execute(
        &self,
        who: &Principal,
        db: &str,
        stmt: Statement,
    ) -> Result<StatementResult> {
        let (entry, h, role) = self.handle(who, db, Role::Read).await?;
        let limits = Self::limits_for(&entry, role, self.inner.cfg.limits.whole_result())?;
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
        max_rows: u64,
        encoder: Option<Arc<dyn RowEncoder>>,
    ) -> Result<RowStream> {
        let (entry, h, role) = self.handle(who, db, Role::Read).await?;
        let limits = StatementLimits {
            encoder,
            ..Self::limits_for(&entry, role, self.inner.cfg.limits.stream(max_rows))?
        };
        let rows = counted(h.query(stmt, limits).await?, entry.record.backend);
        Ok(within_message(
            rows,
            self.inner.cfg.limits.max_message_bytes,
        ))
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
        h.session(limits).await
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
        let rows = counted(rows, self.entry(db)?.record.backend);
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
