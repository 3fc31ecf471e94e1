//! The restore fence: while a restore REPLACE swaps a database's storage, no call on any
//! gateway writes into the storage being replaced, so that every write a caller was told
//! succeeded is either in the safety backup or made after the swap, on the restored data.
//!
//! On the restoring gateway (`Forge::fence_everywhere`):
//!
//! 1. Its own calls are refused (UNAVAILABLE) and those holding the open handle are waited
//!    for, at most [`DRAIN_BOUND`].
//! 2. On a shared catalog, for a server engine's database: a fence row in the catalog
//!    (`fences`), renewed every third of `--scheduler-lease` and lapsing a lease after its last
//!    renewal, so a restorer that dies leaves no database fenced for longer.
//!    - Every other gateway reads it when the notification comes (`Forge::follow_fences`),
//!      refuses new calls, waits for its own calls on the database like step 1, and then
//!      acknowledges (`fence_acks`).
//!    - The restorer waits until every live gateway (a heartbeat within the lease) has
//!      acknowledged, at most a lease; a gateway that does not is named in the UNAVAILABLE
//!      that fails the restore, and nothing is restored.
//! 3. The engine ends every session of the database's logins, whichever gateway opened it
//!    ([`Backend::disconnect`](crate::backend::Backend::disconnect)): interactive
//!    transactions, streams and calls still running after the wait are cut, their
//!    uncommitted writes rolled back.
//!
//! Only then is the safety backup taken. A SQLite database is served by its own gateway alone
//! (the others forward its calls), so step 1 is its whole fence.
//!
//! The engine's cut is what makes the fence hold for work that outlives the wait; the wait is
//! what keeps a call that passed the fence check just before it from opening a connection just
//! after the cut. Interactive sessions ([`FencedSession`]) check the fence before each
//! statement and the commit, holding the handle meanwhile, so a fence waits for the statement
//! running and refuses the next: on SQLite, which has no cut, that is what keeps a session's
//! commit from landing in the storage being replaced.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use tracing::{debug, warn};

use super::{
    catalog::FenceRow,
    engine::BackendKind,
    error::{Error, Result},
    forge::Forge,
    names::DatabaseName,
    registry::{Entry, blocking, now_ms},
    schema::Plan,
    value::{Statement, StatementResult, Value},
};
use crate::backend::{Database, Session};

/// How long a gateway waits for its calls holding a fenced database's handle to end; the
/// engine's cut ends what still runs after it.
pub const DRAIN_BOUND: Duration = Duration::from_secs(5);

/// How often the restorer reads the acknowledgements.
const ACK_POLL: Duration = Duration::from_millis(20);

/// Whether a database is fenced, shared by its entry's copies.
#[derive(Debug, Default)]
pub struct FenceState {
    /// Set by a restore on this gateway.
    local: AtomicBool,
    /// Until when another gateway's restore fences it, Unix ms (0: it does not).
    held_until_ms: AtomicI64,
    /// The fence held, acknowledged once.
    token: Mutex<Option<String>>,
}

impl FenceState {
    /// Whether calls are refused at `now_ms`.
    pub fn fenced(&self, now_ms: i64) -> bool {
        self.local.load(Ordering::SeqCst) || now_ms < self.held_until_ms.load(Ordering::SeqCst)
    }

    /// Sets or lifts this gateway's own fence.
    pub fn set_local(&self, on: bool) {
        self.local.store(on, Ordering::SeqCst);
    }

    /// Holds another gateway's fence `token` until `until_ms`: true the first time this
    /// token is seen (it is to be acknowledged).
    fn hold(&self, token: &str, until_ms: i64) -> bool {
        self.held_until_ms.store(until_ms, Ordering::SeqCst);
        let mut held = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if held.as_deref() == Some(token) {
            return false;
        }
        *held = Some(token.to_owned());
        true
    }

    /// Lets go of another gateway's fence.
    fn release(&self) {
        self.held_until_ms.store(0, Ordering::SeqCst);
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// This gateway's fence on one database, kept (and renewed) until [`lift`](Self::lift).
#[derive(Debug)]
pub struct Fence {
    forge: Forge,
    state: Arc<FenceState>,
    db: DatabaseName,
    /// The catalog's fence, when other gateways were fenced.
    token: Option<String>,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl Fence {
    /// Ends the fence. After a failed restore the database is served again as it was; after
    /// a swap (`swapped`) this gateway's old entry stays fenced, since its storage is gone,
    /// and the registry already holds the new one.
    pub async fn lift(mut self, swapped: bool) {
        if let Some(task) = self.renewal.take() {
            task.abort();
        }
        if !swapped {
            self.state.set_local(false);
        }
        if let Some(token) = self.token.take() {
            let (cat, db) = (self.forge.catalog(), self.db.clone());
            if let Err(e) = blocking(move || cat.lift_fence(&db, &token)).await {
                // It lapses a lease after its last renewal.
                warn!(db = %self.db, error = %e, "could not lift a restore fence in the catalog");
            }
        }
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        if let Some(task) = self.renewal.take() {
            task.abort();
        }
    }
}

impl Forge {
    /// Fences `entry` on every gateway for a restore of its storage (the module docs' steps);
    /// the caller lifts the returned fence when the restore ends, however it ends.
    pub(crate) async fn fence_everywhere(&self, entry: &Arc<Entry>) -> Result<Fence> {
        let state = Arc::clone(&entry.fence);
        state.set_local(true);
        let name = entry.record.provisioned.name.clone();
        let mut fence = Fence {
            forge: self.clone(),
            state,
            db: name.clone(),
            token: None,
            renewal: None,
        };
        if !self.drain(entry, DRAIN_BOUND).await {
            debug!(db = %name, "calls still running at the fence; the engine ends them");
        }
        let cat = self.catalog();
        if cat.is_shared()
            && entry.record.backend != BackendKind::Sqlite
            && let Err(e) = self.fence_others(&mut fence).await
        {
            fence.lift(false).await;
            return Err(e);
        }
        let disconnected = match entry.backend() {
            Ok(b) => b.disconnect(&entry.record.provisioned).await,
            Err(e) => Err(e),
        };
        if let Err(e) = disconnected {
            fence.lift(false).await;
            return Err(match e {
                Error::Unavailable(m) => Error::Unavailable(format!(
                    "could not end the sessions of database {name:?} before restoring it, so \
                     nothing was restored: {m}"
                )),
                other => other,
            });
        }
        Ok(fence)
    }

    /// Step 2 of the module docs: the catalog's fence, renewed, and every live gateway's
    /// acknowledgement.
    async fn fence_others(&self, fence: &mut Fence) -> Result<()> {
        let lease = self.config().scheduler_lease;
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let token = super::backup::new_id(now_ms())?.replacen("bk-", "fence-", 1);
        let (cat, db, t) = (self.catalog(), fence.db.clone(), token.clone());
        let put = blocking(move || {
            let now = now_ms();
            cat.put_fence(&db, &t, now.saturating_add(lease_ms), now)
        })
        .await?;
        if !put {
            return Err(Error::Aborted(format!(
                "another gateway is restoring database {:?}; retry when it ends",
                fence.db.as_str()
            )));
        }
        fence.token = Some(token.clone());
        let (cat, db, t) = (self.catalog(), fence.db.clone(), token.clone());
        fence.renewal = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let (cat, db, t) = (cat.clone(), db.clone(), t.clone());
                let until = now_ms().saturating_add(lease_ms);
                match blocking(move || cat.renew_fence(&db, &t, until)).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => warn!(error = %e, "could not renew a restore fence"),
                }
            }
        }));
        let me = self.catalog().node().to_owned();
        let deadline = Instant::now() + lease;
        loop {
            let (cat, db, t) = (self.catalog(), fence.db.clone(), token.clone());
            let (live, acked) = blocking(move || {
                let live = cat.nodes(now_ms().saturating_sub(lease_ms))?;
                Ok((live, cat.fence_acks(&db, &t)?))
            })
            .await?;
            let acked: BTreeSet<String> = acked.into_iter().collect();
            let missing: Vec<String> = live
                .into_iter()
                .map(|n| n.name)
                .filter(|n| *n != me && !acked.contains(n))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "gateway(s) {} did not confirm within {lease:?} that they stopped serving \
                     database {:?}, so nothing was restored; retry",
                    missing.join(", "),
                    fence.db.as_str()
                )));
            }
            tokio::time::sleep(ACK_POLL).await;
        }
    }

    /// Closes `entry`'s open handle and waits until the calls holding it have let it go, at
    /// most `bound`: whether they did. Calls after the fence are refused, and a call that
    /// passed the fence check as it went up checks again once it has the handle.
    pub(crate) async fn drain(&self, entry: &Entry, bound: Duration) -> bool {
        let Some(handle) = self.handles().take(&entry.slot) else {
            return true;
        };
        let deadline = Instant::now() + bound;
        while Arc::strong_count(&handle) > 1 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Brings this gateway's fences in line with the catalog's (after each reload of the
    /// databases): holds the other gateways' live fences on its own entries, acknowledging
    /// each once its calls have ended, and lets go of the lifted or lapsed ones. `rows` are
    /// the catalog's fences, read with the databases.
    pub(crate) async fn follow_fences(&self, rows: Vec<FenceRow>) {
        let (me, now) = (self.catalog().node().to_owned(), now_ms());
        let live: HashMap<&str, &FenceRow> = rows
            .iter()
            .filter(|r| r.holder != me && r.until_ms > now)
            .map(|r| (r.db.as_str(), r))
            .collect();
        let mut unserved: HashMap<&str, &FenceRow> = live.clone();
        for entry in self.registry().entries() {
            let name = entry.record.provisioned.name.as_str();
            unserved.remove(name);
            match live.get(name) {
                Some(row) => {
                    if entry.fence.hold(&row.token, row.until_ms) {
                        tokio::spawn(self.clone().acknowledge(entry, row.token.clone()));
                    }
                }
                None => entry.fence.release(),
            }
        }
        // A database this gateway does not serve (its engine is not configured here) has no
        // calls to wait for: acknowledged at once (again at each reload; it is idempotent).
        for row in unserved.into_values() {
            self.ack(row.db.clone(), row.token.clone()).await;
        }
    }

    /// Acknowledges fence `token` on `entry` once the calls holding its handle have ended.
    async fn acknowledge(self, entry: Arc<Entry>, token: String) {
        if !self.drain(&entry, DRAIN_BOUND).await {
            debug!(db = %entry.record.provisioned.name, "calls still running at another gateway's fence; its engine cut ends them");
        }
        self.ack(entry.record.provisioned.name.to_string(), token)
            .await;
    }

    /// Records this gateway's acknowledgement of fence `token` on `db`.
    async fn ack(&self, db: String, token: String) {
        let cat = self.catalog();
        let name = db.clone();
        if let Err(e) = blocking(move || cat.ack_fence(&name, &token)).await {
            warn!(%db, error = %e, "could not acknowledge a restore fence");
        }
    }
}

/// An interactive session that a fence on its database stops: each statement and the commit
/// first hold the database's open handle (so a fence's wait covers them) and then check the
/// fence (UNAVAILABLE once it is up). A rollback always goes through.
#[derive(Debug)]
pub struct FencedSession {
    inner: Box<dyn Session>,
    entry: Arc<Entry>,
    /// The open handle the session was made from, held during each call.
    handle: Option<Weak<dyn Database>>,
}

impl FencedSession {
    /// `inner`, opened on `entry` from its cached handle `handle`.
    pub fn wrap(
        inner: Box<dyn Session>,
        entry: Arc<Entry>,
        handle: Option<Weak<dyn Database>>,
    ) -> Box<dyn Session> {
        Box::new(Self {
            inner,
            entry,
            handle,
        })
    }

    /// Holds the handle, then checks the fence (this order: see `Forge::drain`).
    fn enter(&self) -> Result<Option<Arc<dyn Database>>> {
        let held = self.handle.as_ref().and_then(Weak::upgrade);
        self.entry.check_fence()?;
        Ok(held)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Session for FencedSession {
    async fn begin(&mut self) -> Result<()> {
        let _held = self.enter()?;
        self.inner.begin().await
    }

    async fn execute(&mut self, stmt: Statement) -> Result<StatementResult> {
        let _held = self.enter()?;
        self.inner.execute(stmt).await
    }

    async fn commit(&mut self) -> Result<()> {
        let _held = self.enter()?;
        self.inner.commit().await
    }

    async fn rollback(&mut self) -> Result<()> {
        self.inner.rollback().await
    }

    fn in_transaction(&self) -> bool {
        self.inner.in_transaction()
    }

    async fn explain(&mut self, stmt: Statement) -> Result<Plan> {
        let _held = self.enter()?;
        self.inner.explain(stmt).await
    }

    async fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[String],
        rows: &[&[Value]],
    ) -> Result<Option<u64>> {
        let _held = self.enter()?;
        self.inner.bulk_insert(table, columns, rows).await
    }

    async fn copy_text(
        &mut self,
        table: &str,
        columns: &[String],
        lines: &[u8],
    ) -> Result<Option<u64>> {
        let _held = self.enter()?;
        self.inner.copy_text(table, columns, lines).await
    }
}
