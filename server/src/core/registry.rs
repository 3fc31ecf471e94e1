//! The registry of spawned databases: which exist, on which backend, and their lifecycle
//! (spawn, prune, and finishing what a crash interrupted).
//!
//! It lives in memory, loaded from the catalog at start, so that a data-plane call costs a map
//! lookup and not a catalog read. The catalog is written before the engine on spawn and after
//! it on prune, so a crash at any point leaves a record that the next start finishes. Spawns
//! and prunes hold the [`ControlGuard`], so a name is never half-created twice.

use std::{
    borrow::Borrow,
    collections::{BTreeMap, HashMap},
    ops::Bound,
    path::Path,
    sync::{
        Arc, Mutex, RwLock, RwLockReadGuard,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use tracing::{debug, info, warn};

use super::{
    catalog::{Catalog, Record, RecordState},
    clock::SharedClock,
    damage::Damage,
    engine::BackendKind,
    error::{Error, Result},
    fence::FenceState,
    handles::Slot,
    lifecycle::{Lifecycle, LifecycleSpec, PruneCause},
    names::DatabaseName,
};
use crate::{
    backend::{Backend, Capabilities, Provisioned},
    metrics as names,
};

impl Borrow<str> for DatabaseName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
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
    /// TTL, idle TTL and final backup.
    pub lifecycle: LifecycleSpec,
}

/// Lifecycle state as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseStatus {
    /// Usable.
    Ready,
    /// Its backend is not configured or cannot be reached.
    Unavailable,
    /// Its storage failed an integrity check and was quarantined ([`super::damage`]).
    Damaged,
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
    /// TTL, idle TTL and final backup.
    pub lifecycle: Lifecycle,
    /// Its size quota.
    pub quota: super::quota::QuotaView,
    /// The gateway whose disk holds it (SQLite; `None` for the server engines, which every
    /// gateway serves).
    pub node: Option<String>,
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

/// One spawned database.
#[derive(Debug)]
pub struct Entry {
    /// Its catalog record.
    pub record: Record,
    /// Its engine, `None` when this gateway has not configured it.
    backend: Option<Arc<dyn Backend>>,
    last_accessed_ms: AtomicI64,
    /// Whether `last_accessed_ms` changed since it was last stored.
    touched: AtomicBool,
    /// Whether a restore (this gateway's or another's) fences it: calls fail with UNAVAILABLE
    /// meanwhile. Shared by the entry's updated copies.
    pub(crate) fence: Arc<FenceState>,
    /// Set when its storage was found damaged and quarantined ([`super::damage`]).
    damage: Mutex<Option<Damage>>,
    /// Where its open handle lives.
    pub slot: Arc<Slot>,
    /// Its size quota and whether it is over it (shared by the entry's updated copies).
    pub quota: Arc<super::quota::QuotaState>,
}

impl Entry {
    fn new(record: Record, backend: Option<Arc<dyn Backend>>) -> Self {
        Entry {
            last_accessed_ms: AtomicI64::new(record.last_accessed_ms),
            record,
            backend,
            touched: AtomicBool::new(false),
            fence: Arc::default(),
            damage: Mutex::new(None),
            slot: Arc::default(),
            quota: Arc::default(),
        }
    }

    /// Why its storage is damaged, if it is.
    pub fn damage(&self) -> Option<Damage> {
        self.damage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Marks its storage damaged (quarantined): from here on it is never opened.
    pub(crate) fn mark_damaged(&self, damage: Damage) {
        *self.damage.lock().unwrap_or_else(|p| p.into_inner()) = Some(damage);
    }

    /// FAILED_PRECONDITION while its storage is damaged: nothing may open it (opening a
    /// quarantined SQLite file's path would create an empty database in its place).
    pub fn check_damage(&self) -> Result<()> {
        match self.damage() {
            Some(d) => Err(d.error(self.record.provisioned.name.as_str())),
            None => Ok(()),
        }
    }

    /// UNAVAILABLE while a restore replaces the database (see [`super::fence`]).
    pub fn check_fence(&self) -> Result<()> {
        if self.fence.fenced(now_ms()) {
            return Err(Error::Unavailable(format!(
                "database {:?} is being restored from a backup; retry in a moment",
                self.record.provisioned.name.as_str()
            )));
        }
        Ok(())
    }

    /// Its engine, or UNAVAILABLE naming the engine this gateway lacks.
    pub fn backend(&self) -> Result<&Arc<dyn Backend>> {
        self.backend.as_ref().ok_or_else(|| {
            Error::Unavailable(format!(
                "database {:?} lives on the {} backend, which this gateway has not configured",
                self.record.provisioned.name.as_str(),
                self.record.backend
            ))
        })
    }

    /// Notes a data-plane use at `now_ms` (the registry's clock), stored in the catalog by
    /// [`Registry::flush_access_times`].
    pub fn touch(&self, now_ms: i64) {
        self.last_accessed_ms.store(now_ms, Ordering::Relaxed);
        self.touched.store(true, Ordering::Relaxed);
    }

    /// The last data-plane use, Unix ms (the registry's clock).
    pub fn last_accessed_ms(&self) -> i64 {
        self.last_accessed_ms.load(Ordering::Relaxed)
    }

    /// Why its lifecycle wants it pruned at `now_ms`, if it does.
    pub fn due(&self, now_ms: i64) -> Option<PruneCause> {
        self.record
            .lifecycle
            .due(now_ms, self.last_accessed_ms.load(Ordering::Relaxed))
    }

    /// A copy of this entry with `record`, on the same storage and open handle.
    fn updated(&self, record: Record) -> Self {
        Entry {
            last_accessed_ms: AtomicI64::new(self.last_accessed_ms.load(Ordering::Relaxed)),
            record,
            backend: self.backend.clone(),
            touched: AtomicBool::new(self.touched.load(Ordering::Relaxed)),
            fence: Arc::clone(&self.fence),
            damage: Mutex::new(self.damage()),
            slot: Arc::clone(&self.slot),
            quota: Arc::clone(&self.quota),
        }
    }

    fn status(&self) -> DatabaseStatus {
        if self.damage().is_some() {
            DatabaseStatus::Damaged
        } else if self.backend.as_ref().is_some_and(|b| b.available()) {
            DatabaseStatus::Ready
        } else {
            DatabaseStatus::Unavailable
        }
    }

    /// How the control plane reports it, with its size.
    pub fn info(&self, size_bytes: Option<u64>) -> DatabaseInfo {
        DatabaseInfo {
            name: self.record.provisioned.name.clone(),
            backend: self.record.backend,
            status: self.status(),
            created_ms: self.record.created_ms,
            last_accessed_ms: self.last_accessed_ms.load(Ordering::Relaxed),
            size_bytes,
            labels: self.record.labels.clone(),
            capabilities: self.backend.as_ref().map(|b| b.capabilities().clone()),
            read_only_grants: self
                .backend
                .as_ref()
                .is_some_and(|b| b.enforces_read_only()),
            lifecycle: self.record.lifecycle,
            quota: self.quota.view(),
            node: (self.record.backend == BackendKind::Sqlite)
                .then(|| self.record.node.clone())
                .flatten(),
        }
    }

    /// Bytes its engine stores, when it can tell now.
    pub async fn size(&self) -> Option<u64> {
        let backend = self.backend.as_ref()?;
        match backend.size_bytes(&self.record.provisioned).await {
            Ok(size) => size,
            Err(err) => {
                debug!(db = %self.record.provisioned.name, error = %err, "size unknown");
                None
            }
        }
    }
}

/// Proof that the caller holds the registry's spawn-and-prune lock.
pub struct ControlGuard<'a>(#[allow(dead_code)] tokio::sync::MutexGuard<'a, ()>);

/// The registry; see the module docs.
#[derive(Debug)]
pub struct Registry {
    catalog: Catalog,
    backends: HashMap<BackendKind, Arc<dyn Backend>>,
    entries: RwLock<BTreeMap<DatabaseName, Arc<Entry>>>,
    /// Other gateways' ready SQLite databases (their files are on those gateways' disks):
    /// listed here, and their calls forwarded to the owner (`api/forward.rs`). Never in
    /// `entries`, so no pass over the entries (damage, quotas, backups, prunes) touches them.
    remote: RwLock<BTreeMap<DatabaseName, Record>>,
    control: tokio::sync::Mutex<()>,
    clock: SharedClock,
    /// Prunes a crash interrupted that start-up finished, until their events are sent.
    finished_at_start: Mutex<Vec<Record>>,
}

/// Whether `record` is another gateway's ready SQLite database, as seen by the node `me`.
fn is_remote(record: &Record, me: &str) -> bool {
    record.backend == BackendKind::Sqlite
        && record.state == RecordState::Ready
        && record.node.as_deref().is_some_and(|n| n != me)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("blocking task failed: {e}")))?
}

impl Registry {
    /// Opens the catalog (PostgreSQL at `catalog_url`, else `catalog.db` in `data_dir`),
    /// finishes spawns and prunes a crash interrupted, and removes storage the catalog does
    /// not know.
    pub async fn open(
        data_dir: &Path,
        catalog_url: Option<&str>,
        backends: Vec<Arc<dyn Backend>>,
        clock: SharedClock,
    ) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(Error::internal)?;
        let catalog = Catalog::from_config(catalog_url, data_dir).await?;
        let backends: HashMap<_, _> = backends.into_iter().map(|b| (b.kind(), b)).collect();

        let cat = catalog.clone();
        let claimed = blocking(move || cat.claim_unowned()).await?;
        if claimed > 0 {
            info!(node = %catalog.node(), records = claimed, "this gateway owns the catalog's records that had no owner");
        }
        let cat = catalog.clone();
        let records = blocking(move || cat.load()).await?;
        let mut entries = BTreeMap::new();
        let mut remote = BTreeMap::new();
        let mut finished = Vec::new();
        let mut known: HashMap<BackendKind, Vec<_>> = HashMap::new();
        for record in records {
            let backend = backends.get(&record.backend).cloned();
            // Another gateway's: its SQLite file is on that gateway's disk, and an unfinished
            // spawn or prune may be in progress there. Its storage is still known, so that
            // no orphan sweep here removes it.
            if record.node.as_deref() != Some(catalog.node())
                && (record.state != RecordState::Ready || record.backend == BackendKind::Sqlite)
            {
                known
                    .entry(record.backend)
                    .or_default()
                    .push(record.provisioned.clone());
                if is_remote(&record, catalog.node()) {
                    remote.insert(record.provisioned.name.clone(), record);
                }
                continue;
            }
            match (record.state, &backend) {
                (RecordState::Ready, _) => {}
                (state, Some(b)) => {
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
                    // A prune's event is sent once it is done: this one never was.
                    if state == RecordState::Deleting {
                        finished.push(record);
                    }
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
                Arc::new(Entry::new(record, backend)),
            );
        }
        // Staging databases of restores a crash interrupted (or old storage a swap left).
        let cat = catalog.clone();
        for (kind, staged) in blocking(move || cat.stage_list()).await? {
            let Some(b) = backends.get(&kind) else {
                continue;
            };
            match b.destroy(&staged).await {
                Ok(()) => {
                    warn!(db = %staged.name, backend = %kind, "removed a restore's staging database");
                    let (cat, loc) = (catalog.clone(), staged.locator.clone());
                    blocking(move || cat.stage_remove(&loc)).await?;
                }
                Err(e) => {
                    warn!(db = %staged.name, backend = %kind, error = %e, "could not remove a restore's staging database now; the next start tries again");
                }
            }
        }
        for (kind, backend) in &backends {
            backend.recognize(known.get(kind).map(Vec::as_slice).unwrap_or_default());
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
        Ok(Registry {
            catalog,
            backends,
            entries: RwLock::new(entries),
            remote: RwLock::new(remote),
            control: tokio::sync::Mutex::new(()),
            clock,
            finished_at_start: Mutex::new(finished),
        })
    }

    /// The databases whose interrupted prune start-up finished (once; for their events).
    pub fn take_finished_at_start(&self) -> Vec<Record> {
        std::mem::take(
            &mut *self
                .finished_at_start
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Now, on the gateway's clock (creation, last use and lifecycle times).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Every spawned database, now.
    pub fn entries(&self) -> Vec<Arc<Entry>> {
        self.read()
            .map(|e| e.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Replaces `entry`'s labels (when given) and lifecycle settings, in the catalog and
    /// then in the registry; returns the entry as it is now.
    pub async fn update(
        &self,
        _control: &ControlGuard<'_>,
        entry: &Entry,
        labels: Option<BTreeMap<String, String>>,
        lifecycle: Lifecycle,
    ) -> Result<Arc<Entry>> {
        let mut record = entry.record.clone();
        if let Some(labels) = labels {
            record.labels = labels;
        }
        record.lifecycle = lifecycle;
        let (cat, rec) = (self.catalog.clone(), record.clone());
        blocking(move || cat.update_database(&rec)).await?;
        let fresh = Arc::new(entry.updated(record));
        self.entries
            .write()
            .map_err(|_| Error::internal("registry lock poisoned"))?
            .insert(fresh.record.provisioned.name.clone(), Arc::clone(&fresh));
        Ok(fresh)
    }

    /// Brings the registry in line with the catalog's `records` after another gateway
    /// sharing it changed them: adds the ready databases this gateway can serve and does not
    /// know (not another node's SQLite ones, not those of an engine it has not configured),
    /// drops those removed or being pruned, and takes new labels, lifecycle settings and
    /// storage (a restore). Returns the entries dropped or replaced, whose open handles the
    /// caller closes.
    pub fn reconcile(
        &self,
        _control: &ControlGuard<'_>,
        records: Vec<Record>,
    ) -> Result<Vec<Arc<Entry>>> {
        let me = self.catalog.node().to_owned();
        let mut entries = self
            .entries
            .write()
            .map_err(|_| Error::internal("registry lock poisoned"))?;
        let by_name: HashMap<DatabaseName, Record> = records
            .into_iter()
            .map(|r| (r.provisioned.name.clone(), r))
            .collect();
        *self
            .remote
            .write()
            .map_err(|_| Error::internal("registry lock poisoned"))? = by_name
            .values()
            .filter(|r| is_remote(r, &me))
            .map(|r| (r.provisioned.name.clone(), r.clone()))
            .collect();
        let mut stale = Vec::new();
        entries.retain(|name, entry| match by_name.get(name) {
            Some(r) if r.state != RecordState::Deleting => true,
            _ => {
                stale.push(Arc::clone(entry));
                false
            }
        });
        for (name, record) in by_name {
            let serves = record.state == RecordState::Ready
                && (record.backend != BackendKind::Sqlite || record.node.as_deref() == Some(&me));
            let Some(backend) = self.backends.get(&record.backend).filter(|_| serves) else {
                continue;
            };
            match entries.get(&name) {
                None => {
                    debug!(db = %name, node = record.node.as_deref().unwrap_or("-"), "a database spawned through another gateway");
                    entries.insert(
                        name,
                        Arc::new(Entry::new(record, Some(Arc::clone(backend)))),
                    );
                }
                Some(old) if old.record.provisioned.locator != record.provisioned.locator => {
                    stale.push(Arc::clone(old));
                    entries.insert(
                        name,
                        Arc::new(Entry::new(record, Some(Arc::clone(backend)))),
                    );
                }
                Some(old)
                    if old.record.labels != record.labels
                        || old.record.lifecycle != record.lifecycle =>
                {
                    let fresh = Arc::new(old.updated(record));
                    entries.insert(name, fresh);
                }
                Some(_) => {}
            }
        }
        Ok(stale)
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The configured backends, in kind order.
    pub fn backends(&self) -> Vec<(BackendKind, Arc<dyn Backend>)> {
        let mut all: Vec<_> = self
            .backends
            .iter()
            .map(|(k, b)| (*k, Arc::clone(b)))
            .collect();
        all.sort_by_key(|(k, _)| *k);
        all
    }

    /// The configured backends and whether each can be reached now.
    pub fn backend_availability(&self) -> Vec<(BackendKind, bool)> {
        let mut all: Vec<_> = self
            .backends
            .iter()
            .map(|(k, b)| (*k, b.available()))
            .collect();
        all.sort();
        all
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, BTreeMap<DatabaseName, Arc<Entry>>>> {
        self.entries
            .read()
            .map_err(|_| Error::internal("registry lock poisoned"))
    }

    /// The database `name`: NOT_FOUND, or INVALID_ARGUMENT for a name that could not exist.
    pub fn get(&self, name: &str) -> Result<Arc<Entry>> {
        if let Some(e) = self.read()?.get(name) {
            return Ok(Arc::clone(e));
        }
        // Only a miss pays for validation, and an invalid name says why rather than NOT_FOUND.
        DatabaseName::parse(name)?;
        Err(Error::NotFound {
            what: "database",
            name: name.to_owned(),
        })
    }

    /// Databases spawned by the key `key_id`.
    pub fn owned_by(&self, key_id: &str) -> Result<usize> {
        Ok(self
            .read()?
            .values()
            .filter(|e| e.record.owner.as_deref() == Some(key_id))
            .count())
    }

    /// Number of spawned databases.
    pub fn len(&self) -> usize {
        self.read().map(|e| e.len()).unwrap_or_default()
    }

    /// Whether no database is spawned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the spawn-and-prune lock.
    pub async fn control(&self) -> ControlGuard<'_> {
        ControlGuard(self.control.lock().await)
    }

    /// Spawns `spec` on its engine for `owner`: the catalog row first (as unfinished), then
    /// the engine's database and logins, then the row marked ready. A failure undoes both
    /// halves, or leaves the row for the next start to finish.
    pub async fn provision(
        &self,
        _control: &ControlGuard<'_>,
        spec: DatabaseSpec,
        owner: Option<String>,
    ) -> Result<Arc<Entry>> {
        let backend = self.backends.get(&spec.backend).cloned().ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "the {} backend is not configured on this gateway",
                spec.backend
            ))
        })?;
        let now = self.now_ms();
        let lifecycle = spec.lifecycle.resolve(now)?;
        let record = Record {
            provisioned: backend.locate(&spec.name),
            backend: spec.backend,
            state: RecordState::Provisioning,
            created_ms: now,
            last_accessed_ms: now,
            labels: spec.labels,
            owner,
            lifecycle,
            node: Some(self.catalog.node().to_owned()),
        };
        let (cat, rec) = (self.catalog.clone(), record.clone());
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
            let (cat, name) = (self.catalog.clone(), spec.name.clone());
            blocking(move || cat.remove(&name)).await?;
            return Err(err);
        }
        let (cat, name) = (self.catalog.clone(), spec.name.clone());
        blocking(move || cat.set_state(&name, RecordState::Ready)).await?;
        let entry = Arc::new(Entry::new(
            Record {
                state: RecordState::Ready,
                ..record
            },
            Some(backend),
        ));
        self.entries
            .write()
            .map_err(|_| Error::internal("registry lock poisoned"))?
            .insert(spec.name, Arc::clone(&entry));
        Ok(entry)
    }

    /// Takes `entry` out of the registry and marks it for pruning in the catalog: from here on
    /// no call finds it, and a crash leaves a record the next start finishes pruning.
    pub async fn retire(&self, _control: &ControlGuard<'_>, entry: &Entry) -> Result<()> {
        let name = entry.record.provisioned.name.clone();
        let (cat, n) = (self.catalog.clone(), name.clone());
        blocking(move || cat.set_state(&n, RecordState::Deleting)).await?;
        self.entries
            .write()
            .map_err(|_| Error::internal("registry lock poisoned"))?
            .remove(&name);
        Ok(())
    }

    /// Drops a [`retire`](Self::retire)d database from its engine, then from the catalog.
    pub async fn unprovision(&self, _control: &ControlGuard<'_>, entry: &Entry) -> Result<()> {
        entry.backend()?.destroy(&entry.record.provisioned).await?;
        let (cat, name) = (self.catalog.clone(), entry.record.provisioned.name.clone());
        blocking(move || cat.remove(&name)).await
    }

    /// The engine `kind`, or FAILED_PRECONDITION when this gateway has not configured it.
    pub fn backend(&self, kind: BackendKind) -> Result<Arc<dyn Backend>> {
        self.backends.get(&kind).cloned().ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "the {kind} backend is not configured on this gateway"
            ))
        })
    }

    /// Creates storage for a restore of `name` on `kind` beside any database of that name: the
    /// catalog's staging row first, so a crash leaves nothing behind unnamed.
    pub async fn stage(&self, kind: BackendKind, name: &DatabaseName) -> Result<Provisioned> {
        let backend = self.backend(kind)?;
        let staged = backend.locate(name);
        let (cat, s) = (self.catalog.clone(), staged.clone());
        blocking(move || cat.stage_insert(kind, &s, now_ms())).await?;
        if let Err(e) = backend.create(&staged).await {
            self.unstage(kind, &staged).await;
            return Err(e);
        }
        Ok(staged)
    }

    /// Like [`stage`](Self::stage), with the storage made by the engine as a copy of `source`
    /// ([`Backend::create_copy`]). Unsupported leaves nothing (the engine made nothing); any
    /// other failure removes what the engine made.
    pub async fn stage_copy(
        &self,
        kind: BackendKind,
        name: &DatabaseName,
        source: &Provisioned,
    ) -> Result<Provisioned> {
        let backend = self.backend(kind)?;
        let staged = backend.locate(name);
        let (cat, s) = (self.catalog.clone(), staged.clone());
        blocking(move || cat.stage_insert(kind, &s, now_ms())).await?;
        match backend.create_copy(source, &staged).await {
            Ok(()) => Ok(staged),
            Err(e @ Error::Unsupported { .. }) => {
                let (cat, loc) = (self.catalog.clone(), staged.locator.clone());
                blocking(move || cat.stage_remove(&loc)).await?;
                Err(e)
            }
            Err(e) => {
                self.unstage(kind, &staged).await;
                Err(e)
            }
        }
    }

    /// Removes a staging database and its row (the row stays when the engine refuses, for the
    /// next start).
    pub async fn unstage(&self, kind: BackendKind, staged: &Provisioned) {
        let Ok(backend) = self.backend(kind) else {
            return;
        };
        if let Err(e) = backend.destroy(staged).await {
            warn!(db = %staged.name, error = %e, "could not remove a staging database; the next start tries again");
            return;
        }
        let (cat, loc) = (self.catalog.clone(), staged.locator.clone());
        if let Err(e) = blocking(move || cat.stage_remove(&loc)).await {
            warn!(error = %e, "could not forget a removed staging database");
        }
    }

    /// Puts the staging storage `staged` in place of `entry`'s storage: from here on the name
    /// finds the new entry; the old storage becomes staging, for the caller to [`unstage`]
    /// once its handle is closed.
    ///
    /// [`unstage`]: Self::unstage
    pub async fn swap(
        &self,
        _control: &ControlGuard<'_>,
        entry: &Entry,
        staged: Provisioned,
    ) -> Result<(Arc<Entry>, Provisioned)> {
        let old = entry.record.provisioned.clone();
        let (cat, name, kind) = (self.catalog.clone(), old.name.clone(), entry.record.backend);
        let (o, n) = (old.locator.clone(), staged.locator.clone());
        blocking(move || cat.swap_locator(&name, kind, &o, &n, now_ms())).await?;
        let mut record = entry.record.clone();
        record.provisioned = staged;
        let fresh = Arc::new(Entry::new(record, entry.backend.clone()));
        fresh.last_accessed_ms.store(
            entry.last_accessed_ms.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        self.entries
            .write()
            .map_err(|_| Error::internal("registry lock poisoned"))?
            .insert(old.name.clone(), Arc::clone(&fresh));
        Ok((fresh, old))
    }

    /// Registers the staging storage `staged` as the new database `spec` owned by `owner`.
    /// ALREADY_EXISTS when the name was taken meanwhile (the caller removes the staging).
    pub async fn adopt(
        &self,
        _control: &ControlGuard<'_>,
        spec: DatabaseSpec,
        owner: Option<String>,
        staged: Provisioned,
    ) -> Result<Arc<Entry>> {
        if let Ok(existing) = self.get(&spec.name) {
            return Err(Error::AlreadyExists {
                what: "database",
                name: format!("{} (backend {})", spec.name, existing.record.backend),
            });
        }
        let backend = self.backend(spec.backend)?;
        let now = self.now_ms();
        let lifecycle = spec.lifecycle.resolve(now)?;
        let record = Record {
            provisioned: staged,
            backend: spec.backend,
            state: RecordState::Ready,
            created_ms: now,
            last_accessed_ms: now,
            labels: spec.labels,
            owner,
            lifecycle,
            node: Some(self.catalog.node().to_owned()),
        };
        let (cat, rec) = (self.catalog.clone(), record.clone());
        blocking(move || cat.adopt(&rec)).await?;
        let entry = Arc::new(Entry::new(record, Some(backend)));
        self.entries
            .write()
            .map_err(|_| Error::internal("registry lock poisoned"))?
            .insert(spec.name, Arc::clone(&entry));
        Ok(entry)
    }

    /// A page of databases in name order: those after `filter.after` that match it and that
    /// `visible` accepts, and whether more follow.
    pub fn page(
        &self,
        filter: &ListFilter,
        visible: impl Fn(&Record) -> bool,
    ) -> Result<(Vec<Arc<Entry>>, bool)> {
        let entries = self.read()?;
        let remote = self
            .remote
            .read()
            .map_err(|_| Error::internal("registry lock poisoned"))?;
        let lower = || match &filter.after {
            Some(after) => Bound::Excluded(after.as_str()),
            None => Bound::Unbounded,
        };
        // Both maps in name order, merged (a name is in one of them only).
        let mut local = entries
            .range::<str, _>((lower(), Bound::Unbounded))
            .map(|(_, e)| Arc::clone(e))
            .peekable();
        let mut others = remote
            .range::<str, _>((lower(), Bound::Unbounded))
            .map(|(_, r)| r)
            .peekable();
        let merged = std::iter::from_fn(|| match (local.peek(), others.peek()) {
            (Some(e), Some(r)) if r.provisioned.name < e.record.provisioned.name => {
                others.next().map(|r| Arc::new(Entry::new(r.clone(), None)))
            }
            (Some(_), _) => local.next(),
            (None, Some(_)) => others.next().map(|r| Arc::new(Entry::new(r.clone(), None))),
            (None, None) => None,
        });
        let mut page = Vec::new();
        for e in merged {
            let r = &e.record;
            if filter.backend.is_some_and(|b| b != r.backend)
                || !filter
                    .labels
                    .iter()
                    .all(|(k, v)| r.labels.get(k) == Some(v))
                || !visible(r)
            {
                continue;
            }
            if page.len() == filter.page_size {
                return Ok((page, true));
            }
            page.push(e);
        }
        Ok((page, false))
    }

    /// Whether any other gateway's SQLite database is known.
    pub fn has_remote(&self) -> bool {
        self.remote.read().map(|r| !r.is_empty()).unwrap_or(false)
    }

    /// The gateway that holds `name`'s file, when it is another gateway's SQLite database.
    pub fn remote_owner(&self, name: &str) -> Option<String> {
        self.remote
            .read()
            .ok()?
            .get(name)
            .and_then(|r| r.node.clone())
    }

    /// Sets the gauge of databases by backend and status.
    pub fn report_gauges(&self) {
        let Ok(entries) = self.read() else {
            return;
        };
        let mut counts: BTreeMap<(BackendKind, &'static str), usize> = BTreeMap::new();
        for kind in self.backends.keys() {
            counts.insert((*kind, "ready"), 0);
            counts.insert((*kind, "unavailable"), 0);
            counts.insert((*kind, "damaged"), 0);
        }
        for e in entries.values() {
            let status = match e.status() {
                DatabaseStatus::Ready => "ready",
                DatabaseStatus::Unavailable => "unavailable",
                DatabaseStatus::Damaged => "damaged",
            };
            *counts.entry((e.record.backend, status)).or_default() += 1;
        }
        for ((kind, status), n) in counts {
            metrics::gauge!(names::DATABASES, "backend" => kind.as_str(), "status" => status)
                .set(n as f64);
        }
    }

    /// Stores the last-access times that changed since the last call.
    pub async fn flush_access_times(&self) -> Result<()> {
        let updates: Vec<(DatabaseName, i64)> = self
            .read()?
            .values()
            .filter(|e| e.touched.swap(false, Ordering::Relaxed))
            .map(|e| {
                (
                    e.record.provisioned.name.clone(),
                    e.last_accessed_ms.load(Ordering::Relaxed),
                )
            })
            .collect();
        let cat = self.catalog.clone();
        blocking(move || cat.touch(&updates)).await
    }
}
