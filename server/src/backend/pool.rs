//! Connections to a database server, for every server engine (PostgreSQL and MySQL through
//! [`crate::backend::sql::pool`], Redis through `backend/redis/pool.rs`): a pool per spawned
//! database under one cap per server, the availability probe, and the pool gauge. Generic over
//! the connection ([`PoolConn`]) and how one is opened ([`Connector`]); what a connection
//! does while lent out is the engine's.
//!
//! # How the cap works
//!
//! Every live connection to the server holds one permit of a server-wide semaphore
//! (`max_connections` minus the few reserved for administration). A spawned database's pool
//! holds at most `per_database_connections` of them, and only while it uses them: a connection
//! released by a call goes to one idle list shared by the whole server, tagged with its
//! database. A call takes, in order, an idle connection of its own database, a free permit, or
//! the permit of the *least recently used idle connection of any database*, which it closes
//! first. Only when every connection is busy does it wait, until one is released or its
//! deadline passes ([`Connector::busy`] says what that is for the engine). So 1,000 spawned
//! databases share `max_connections` connections instead of opening 1,000 × N, idle ones cost
//! nothing once the cap is reached, and connections idle for longer than `idle_timeout` are
//! closed by the probe task. Administration (create, destroy, cancel, the probe) uses its own
//! small reserve, so a saturated data plane can still be cancelled and pruned.
//!
//! # Shares
//!
//! Within the cap, each spawned database holds at most its *share* ([`crate::backend::share`]):
//! a number of connections that follows its demand (calls holding or waiting for a connection,
//! smoothed), between `min_per_database` and `per_database`. A call within its database's share
//! goes on as above; one beyond it waits, and its demand recomputes the shares at once, so a
//! busy database grows while others are idle, and a starved one takes a slot from the busiest.
//! A connection released beyond its database's (shrunk) share is closed rather than kept, which
//! frees its slot for the database it was given to; the probe task recomputes the shares as the
//! demands decay and closes idle connections beyond them. The writer and reader logins of a
//! database draw on one share. Redis, whose calls share one multiplexed connection per
//! database, keeps the fixed per-database limit.
//!
//! # Availability
//!
//! A background task probes the server (an administrative connection and a ping) every second
//! (more often when `idle_timeout` is short, so idle connections close on time), and at once
//! when a call reports a broken connection. While the server is down, [`Pool::is_up`] is false,
//! idle connections are dropped, connections made before the outage are not reused, calls fail
//! at once with `Unavailable` (naming the server and the cause) instead of waiting for
//! timeouts, and the probe retries with backoff (see [`crate::backend::probe`]); the first
//! successful probe brings it back.
//!
//! # Metrics
//!
//! [`POOL_CONNECTIONS_IN_USE`], labelled with the
//! engine, counts the data-plane connections lent out ([`Lease`]s) right now, for every engine
//! on this pool. [`POOL_CONNECTION_SHARE`], labelled with the engine and the database, is each
//! open database's share (set when shares are recomputed, 0 once the database closes; one
//! series per database opened since the start, as for the backup age gauge).

use std::{
    collections::VecDeque,
    fmt,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tracing::debug;

use super::{
    BackendKind,
    probe::{Availability, Backoff, Location},
    share::{AccountId, ShareSettings, ShareStats, ShareTable},
};
use crate::{
    core::error::{Error, Result},
    metrics::{POOL_CONNECTION_SHARE, POOL_CONNECTIONS_IN_USE},
};

/// How long a connection may sit idle before it is pinged on its way out of the pool.
const PING_AFTER_IDLE: Duration = Duration::from_secs(2);
/// How often the server is probed while it answers, at most.
const PROBE_UP_EVERY: Duration = Duration::from_secs(1);
/// How often the server is probed while it answers, at least.
const PROBE_UP_MIN: Duration = Duration::from_millis(100);
/// How long a probe waits for an administrative connection that others are using.
const PROBE_WAIT: Duration = Duration::from_millis(200);
/// How long opening one connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing a connection politely may take before it is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How fast shares follow a drop in demand, unless [`PoolSizes::with_shares`] says otherwise.
const DEMAND_HALF_LIFE: Duration = Duration::from_secs(10);

/// A connection a [`Pool`] keeps.
#[async_trait]
pub trait PoolConn: Send + 'static {
    /// Whether the connection must be closed rather than reused.
    fn is_broken(&self) -> bool;
    /// Checks that the server answers.
    async fn ping(&mut self) -> Result<()>;
    /// Closes the connection politely.
    async fn close(self);
}

/// How an engine opens connections for a [`Pool`].
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Its connections.
    type Conn: PoolConn;
    /// Where a pool connects: a spawned database with its own login, or the admin login.
    type Target: Send + Sync + fmt::Debug + 'static;
    /// Which engine this is, for messages and the gauge's label.
    const KIND: BackendKind;
    /// How long a probe (connect and ping) may take before the server counts as down.
    const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

    /// Opens a connection, by `by` at the latest.
    async fn open(&self, target: &Self::Target, by: Instant) -> Result<Self::Conn>;

    /// The error for a call that found all `connections` of the server busy until its
    /// deadline.
    fn busy(&self, connections: usize) -> Error {
        Error::Timeout(format!(
            "all {connections} connections to the {} server stayed busy until the deadline",
            Self::KIND.as_str()
        ))
    }
}

/// Sizes of a server's pools.
#[derive(Debug, Clone, Copy)]
pub struct PoolSizes {
    /// Data-plane connections across all spawned databases.
    pub data: usize,
    /// Administrative connections.
    pub admin: usize,
    /// Data-plane connections per spawned database, at most (the maximum of its share).
    pub per_database: usize,
    /// Data-plane connections each open database keeps as its share, idle or not, when the
    /// cap allows (the minimum of its share).
    pub min_per_database: usize,
    /// How fast a database's share follows a drop in its demand: its demand estimate halves
    /// every this long.
    pub demand_half_life: Duration,
    /// Close idle connections after this long.
    pub idle_timeout: Duration,
}

impl PoolSizes {
    /// Splits `max_connections` into a small administrative reserve and the data plane.
    pub fn new(max_connections: u32, per_database: u32, idle_timeout: Duration) -> Result<Self> {
        let max = max_connections as usize;
        if max < 2 {
            return Err(Error::invalid(
                "max_connections",
                "a server backend needs at least 2 connections (one is kept for administration)",
            ));
        }
        let admin = if max >= 8 { 2 } else { 1 };
        let data = max - admin;
        Ok(Self {
            data,
            admin,
            per_database: (per_database as usize).clamp(1, data),
            min_per_database: 0,
            demand_half_life: DEMAND_HALF_LIFE,
            idle_timeout,
        })
    }

    /// With each database's share at least `min_per_database` (within its maximum) and its
    /// demand estimate halving every `demand_half_life`.
    pub fn with_shares(self, min_per_database: u32, demand_half_life: Duration) -> Self {
        Self {
            min_per_database: (min_per_database as usize).min(self.per_database),
            demand_half_life,
            ..self
        }
    }

    fn share_settings(&self) -> ShareSettings {
        ShareSettings {
            min: self.min_per_database,
            max: self.per_database,
            half_life: self.demand_half_life,
        }
    }
}

/// Connections of one class (data plane or administration) under one cap.
struct Slots<C> {
    permits: Arc<Semaphore>,
    size: usize,
    /// Permits kept from use, so that this gateway stays within its share of the server's cap
    /// when it is one of several replicas ([`Pool::set_replicas`]).
    withheld: Mutex<Vec<OwnedSemaphorePermit>>,
    /// How many permits to keep from use.
    hold_back: AtomicUsize,
    /// Idle connections of every database, least recently released first.
    idle: Mutex<VecDeque<Idle<C>>>,
    /// Signalled when a connection goes idle, so that a call waiting at the cap can evict it.
    released: Notify,
}

struct Idle<C> {
    key: Arc<str>,
    conn: C,
    permit: OwnedSemaphorePermit,
    since: Instant,
    /// The pool's outage count when the connection was made.
    epoch: u64,
    /// Counts it as its database's idle connection, while it is one.
    mark: Option<IdleMark>,
}

impl<C: PoolConn> Slots<C> {
    fn new(size: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
            withheld: Mutex::new(Vec::new()),
            hold_back: AtomicUsize::new(0),
            idle: Mutex::new(VecDeque::new()),
            released: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle<C>>> {
        // A panic while holding this lock cannot leave the list inconsistent (push/remove only).
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently released idle connection of `key`.
    fn take(&self, key: &str) -> Option<Idle<C>> {
        let mut idle = self.lock();
        let pos = idle.iter().rposition(|i| &*i.key == key)?;
        idle.remove(pos)
    }

    fn take_oldest(&self) -> Option<Idle<C>> {
        self.lock().pop_front()
    }

    fn put(&self, idle: Idle<C>) {
        self.lock().push_back(idle);
        self.released.notify_one();
    }

    /// Removes idle connections matching `pred` and closes them in the background.
    fn drain(&self, pred: impl Fn(&Idle<C>) -> bool) -> usize {
        let gone: VecDeque<Idle<C>> = {
            let mut idle = self.lock();
            let (gone, keep): (VecDeque<_>, VecDeque<_>) = idle.drain(..).partition(|i| pred(i));
            *idle = keep;
            gone
        };
        let n = gone.len();
        for i in gone {
            close_later(i.conn, (Some(i.permit), None));
        }
        n
    }

    /// Closes the `n` least recently released idle connections of the database `account`.
    fn drain_account(&self, account: AccountId, n: usize) -> usize {
        let gone: Vec<Idle<C>> = {
            let mut idle = self.lock();
            let mut gone = Vec::new();
            let mut i = 0;
            while i < idle.len() && gone.len() < n {
                if idle[i]
                    .mark
                    .as_ref()
                    .is_some_and(|m| m.account.id == account)
                {
                    gone.extend(idle.remove(i));
                } else {
                    i += 1;
                }
            }
            gone
        };
        let closed = gone.len();
        for i in gone {
            close_later(i.conn, (Some(i.permit), None));
        }
        closed
    }

    /// Connections open right now, idle or lent out.
    fn open(&self) -> usize {
        (self.size - self.permits.available_permits()).saturating_sub(self.withheld().len())
    }

    /// Connections allowed now: the size less what is held back.
    fn cap(&self) -> usize {
        self.size
            .saturating_sub(self.hold_back.load(Ordering::Relaxed))
            .max(1)
    }

    fn withheld(&self) -> std::sync::MutexGuard<'_, Vec<OwnedSemaphorePermit>> {
        // Push and pop only: a panic cannot leave the list inconsistent.
        self.withheld.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `permit` from use while fewer than `hold_back` are kept (its connection is then
    /// closed); otherwise hands it back.
    fn hold(&self, permit: OwnedSemaphorePermit) -> Option<OwnedSemaphorePermit> {
        let mut withheld = self.withheld();
        if withheld.len() < self.hold_back.load(Ordering::Relaxed) {
            withheld.push(permit);
            None
        } else {
            Some(permit)
        }
    }

    /// Brings the permits kept from use to `hold_back`: frees the extra ones, takes free ones,
    /// and closes idle connections to take theirs. Connections in use keep theirs until they
    /// are handed back ([`Held::finish`]), so a shrinking cap is reached as calls end.
    fn reconcile(&self) {
        let want = self.hold_back.load(Ordering::Relaxed);
        let short = {
            let mut withheld = self.withheld();
            withheld.truncate(want);
            while withheld.len() < want {
                match Arc::clone(&self.permits).try_acquire_owned() {
                    Ok(p) => withheld.push(p),
                    Err(_) => break,
                }
            }
            want - withheld.len()
        };
        for _ in 0..short {
            let Some(idle) = self.take_oldest() else {
                break;
            };
            let permit = self.hold(idle.permit);
            close_later(idle.conn, (permit, None));
        }
        self.released.notify_waiters();
    }
}

/// Closes a connection in the background, releasing its permits afterwards so that the cap
/// counts it until the server has been told.
fn close_later<C: PoolConn>(
    conn: C,
    permits: (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>),
) {
    let close = async move {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close()).await;
        drop(permits);
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn(close)),
        // Outside a runtime (a backend dropped at exit): dropping closes the socket.
        Err(_) => drop(close),
    }
}

/// Whether the server answers, and a way to ask the probe to look again now.
#[derive(Debug)]
struct Health {
    state: Availability,
    wake: Notify,
    /// How many times the server was found down: connections made before are not reused.
    outages: AtomicU64,
}

/// One database server: its engine, pools, cap and probe.
pub struct Pool<C: Connector> {
    engine: C,
    data: Slots<C::Conn>,
    admin: Slots<C::Conn>,
    admin_target: Arc<C::Target>,
    admin_per_db: Arc<Semaphore>,
    sizes: PoolSizes,
    health: Arc<Health>,
    shares: Arc<Shares>,
}

/// The shares of a server's open databases, and a signal for the calls waiting on them.
#[derive(Debug)]
struct Shares {
    table: Mutex<ShareTable>,
    /// Signalled when a share may have grown or a connection was released: the calls waiting
    /// beyond their database's share look again.
    changed: Notify,
    backend: &'static str,
}

impl Shares {
    fn lock(&self) -> std::sync::MutexGuard<'_, ShareTable> {
        // Every update leaves the table consistent before it can panic.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One open database's claim on its server's connections: its writer and reader handles draw
/// on it. Dropped (the database closed), its share goes to the others.
#[derive(Debug)]
pub struct ShareAccount {
    shares: Arc<Shares>,
    id: AccountId,
    database: Arc<str>,
}

impl ShareAccount {
    /// Takes a connection within the database's share, waiting until `until` at the latest.
    async fn take(self: &Arc<Self>, until: Instant) -> Result<ShareTicket> {
        /// Withdraws a waiting call that stopped waiting (deadline, or the caller went away).
        struct Waiting<'a>(&'a ShareAccount, bool);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.shares.lock().give_up(self.0.id, Instant::now());
                }
            }
        }
        let mut waiting = Waiting(self, false);
        loop {
            let changed = self.shares.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self
                .shares
                .lock()
                .try_take(self.id, Instant::now(), &mut waiting.1)
            {
                return Ok(ShareTicket(Some(Arc::clone(self))));
            }
            tokio::select! {
                _ = &mut changed => {}
                _ = tokio::time::sleep_until(until) => {
                    let share = self.shares.lock().share(self.id);
                    return Err(Error::Timeout(format!(
                        "this database's share of the {} server's connections ({share} now) \
                         stayed busy until the deadline",
                        self.shares.backend
                    )));
                }
            }
        }
    }
}

impl Drop for ShareAccount {
    fn drop(&mut self) {
        self.shares.lock().close(self.id, Instant::now());
        self.shares.changed.notify_waiters();
        metrics::gauge!(POOL_CONNECTION_SHARE, "backend" => self.shares.backend,
            "database" => self.database.to_string())
        .set(0.0);
    }
}

/// A connection counted in its database's share; dropped unreleased (the call failed before
/// it got one), it frees its place.
struct ShareTicket(Option<Arc<ShareAccount>>);

impl ShareTicket {
    /// Hands the place back; returns whether the connection may be kept idle.
    fn release(mut self) -> (Arc<ShareAccount>, bool) {
        let account = self.0.take().expect("a ticket is released once");
        let keep = account.shares.lock().release(account.id, Instant::now());
        (account, keep)
    }
}

impl Drop for ShareTicket {
    fn drop(&mut self) {
        if let Some(account) = self.0.take() {
            account.shares.lock().release(account.id, Instant::now());
            account.shares.changed.notify_waiters();
        }
    }
}

/// Counts an idle connection as its database's while it is kept.
struct IdleMark {
    account: Arc<ShareAccount>,
}

impl IdleMark {
    fn new(account: Arc<ShareAccount>) -> Self {
        account.shares.lock().parked(account.id);
        Self { account }
    }
}

impl Drop for IdleMark {
    fn drop(&mut self) {
        self.account.shares.lock().unparked(self.account.id);
    }
}

/// What a lent connection holds of its database's limit: a permit of a fixed per-database
/// semaphore (administration, Redis) or a place in its share.
enum PerDb {
    Permit(OwnedSemaphorePermit),
    Share(ShareTicket),
}

/// How a [`Handle`] limits its database's connections.
#[derive(Debug, Clone)]
enum Gate {
    Fixed(Arc<Semaphore>),
    Share(Arc<ShareAccount>),
}

impl<C: Connector> fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("engine", &C::KIND.as_str())
            .field("sizes", &self.sizes)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl<C: Connector> Pool<C> {
    /// Starts managing the server at `location`: probes it once (so that [`Self::is_up`] is
    /// right from the start, without failing when it is down), then keeps probing in the
    /// background until the pool is dropped.
    pub async fn start(
        engine: C,
        admin_target: C::Target,
        sizes: PoolSizes,
        location: Location,
    ) -> Arc<Self> {
        let pool = Arc::new(Self {
            engine,
            data: Slots::new(sizes.data),
            admin: Slots::new(sizes.admin),
            admin_target: Arc::new(admin_target),
            admin_per_db: Arc::new(Semaphore::new(sizes.admin)),
            sizes,
            health: Arc::new(Health {
                state: Availability::new(C::KIND.as_str(), location),
                wake: Notify::new(),
                outages: AtomicU64::new(0),
            }),
            shares: Arc::new(Shares {
                table: Mutex::new(ShareTable::new(sizes.data, sizes.share_settings())),
                changed: Notify::new(),
                backend: C::KIND.as_str(),
            }),
        });
        pool.probe().await;
        tokio::spawn(watch(Arc::downgrade(&pool), Arc::clone(&pool.health)));
        pool
    }

    /// The engine.
    pub fn engine(&self) -> &C {
        &self.engine
    }

    /// Whether the server answered the last probe.
    pub fn is_up(&self) -> bool {
        self.health.state.is_up()
    }

    /// Fails fast, naming the server and the cause, while it is known to be down.
    pub fn ensure_up(&self) -> Result<()> {
        if self.is_up() {
            return Ok(());
        }
        Err(self.health.state.unavailable())
    }

    /// Asks the probe to check the server now (a call saw a broken connection). While the
    /// server is known to be down this is no news: the probe's backoff decides.
    pub fn suspect(&self) {
        if self.is_up() {
            self.health.wake.notify_one();
        }
    }

    /// The connections of a spawned database (its key) reached through `target`, at most
    /// `per_database` of them, whatever the demand (Redis: one multiplexed connection).
    pub fn database(self: &Arc<Self>, key: &str, target: C::Target) -> Handle<C> {
        Handle {
            pool: Arc::clone(self),
            key: key.into(),
            target: Arc::new(target),
            gate: Gate::Fixed(Arc::new(Semaphore::new(self.sizes.per_database))),
            admin: false,
        }
    }

    /// Opens the share of the database named `database` (see the module docs), to hand to
    /// [`Self::shared_database`] for each of its logins.
    pub fn share(&self, database: &str) -> Arc<ShareAccount> {
        let database: Arc<str> = database.into();
        let id = self
            .shares
            .lock()
            .open(Arc::clone(&database), Instant::now());
        Arc::new(ShareAccount {
            shares: Arc::clone(&self.shares),
            id,
            database,
        })
    }

    /// The connections of a spawned database (its key) reached through `target`, within the
    /// share `account`.
    pub fn shared_database(
        self: &Arc<Self>,
        account: &Arc<ShareAccount>,
        key: &str,
        target: C::Target,
    ) -> Handle<C> {
        Handle {
            pool: Arc::clone(self),
            key: key.into(),
            target: Arc::new(target),
            gate: Gate::Share(Arc::clone(account)),
            admin: false,
        }
    }

    /// Every open database's share of this server's connections, by name.
    pub fn share_stats(&self) -> Vec<ShareStats> {
        self.shares.lock().stats()
    }

    /// Recomputes the shares from the demands now, closes idle connections beyond them and
    /// publishes the share gauge.
    pub fn rebalance(&self) {
        let (close, stats) = {
            let mut table = self.shares.lock();
            (table.rebalance(Instant::now()), table.stats())
        };
        let mut closed = 0;
        for (account, n) in close {
            closed += self.data.drain_account(account, n);
        }
        if closed > 0 {
            debug!(
                backend = C::KIND.as_str(),
                closed, "closed idle connections beyond their database's share"
            );
        }
        self.shares.changed.notify_waiters();
        for s in stats {
            metrics::gauge!(POOL_CONNECTION_SHARE, "backend" => C::KIND.as_str(),
                "database" => s.database.to_string())
            .set(s.share as f64);
        }
    }

    /// The administrative connections.
    pub fn admin(self: &Arc<Self>) -> Handle<C> {
        Handle {
            pool: Arc::clone(self),
            key: "\0admin".into(),
            target: Arc::clone(&self.admin_target),
            gate: Gate::Fixed(Arc::clone(&self.admin_per_db)),
            admin: true,
        }
    }

    /// Closes the idle connections of one database (it is being destroyed or closed).
    pub fn close_idle(&self, key: &str) {
        self.data.drain(|i| &*i.key == key);
    }

    /// Data-plane connections open right now, idle or lent out.
    pub fn open_connections(&self) -> usize {
        self.data.open()
    }

    /// Makes this gateway one of `replicas` sharing the server: it keeps to
    /// `max_connections / replicas` connections in all (its administrative reserve included,
    /// and at least one data-plane connection), so that the replicas together stay within the
    /// server's cap. Takes effect at once for new connections; idle ones beyond the new cap are
    /// closed now, busy ones when their calls end.
    pub fn set_replicas(&self, replicas: usize) {
        let total = self.sizes.data + self.sizes.admin;
        let share = total / replicas.max(1);
        let data = share
            .saturating_sub(self.sizes.admin)
            .clamp(1, self.sizes.data);
        let before = self
            .data
            .hold_back
            .swap(self.sizes.data - data, Ordering::Relaxed);
        if before != self.sizes.data - data {
            self.shares.lock().set_cap(data);
            debug!(
                backend = C::KIND.as_str(),
                replicas, data, "this replica's share of the server's connections changed"
            );
            self.data.reconcile();
            self.rebalance();
        }
    }

    /// Data-plane connections this gateway may open now (its share of the server's cap).
    pub fn data_cap(&self) -> usize {
        self.data.cap()
    }

    fn outages(&self) -> u64 {
        self.health.outages.load(Ordering::Relaxed)
    }

    fn slots(&self, admin: bool) -> &Slots<C::Conn> {
        if admin { &self.admin } else { &self.data }
    }

    /// Probes once and records the answer.
    async fn probe(self: &Arc<Self>) -> bool {
        let admin = self.admin();
        let outcome = tokio::time::timeout(C::PROBE_TIMEOUT, async {
            // Every administrative connection busy (a slow DROP DATABASE) proves nothing
            // either way: keep the last answer rather than wait behind them.
            let mut conn = match admin
                .acquire_inner(
                    Instant::now() + PROBE_WAIT,
                    Instant::now() + C::PROBE_TIMEOUT,
                    false,
                )
                .await
            {
                Ok(conn) => conn,
                Err(Error::Timeout(_)) => return Ok(false),
                Err(e) => return Err(e),
            };
            // Cut short, the ping leaves the connection in an unknown state: closed, not kept.
            conn.retire = true;
            conn.conn_mut().ping().await?;
            conn.retire = false;
            Ok(true)
        })
        .await
        .unwrap_or_else(|_| Err(Error::Unavailable("the probe timed out".into())));
        let outcome = match outcome {
            Ok(false) => return self.is_up(),
            Ok(true) => Ok(()),
            Err(e) => Err(e),
        };
        let up = self.health.state.record(outcome.map_err(|e| e.to_string()));
        if !up {
            // Whatever is open was connected to a server that went away.
            self.health.outages.fetch_add(1, Ordering::Relaxed);
            let n = self.data.drain(|_| true) + self.admin.drain(|_| true);
            if n > 0 {
                debug!(
                    backend = C::KIND.as_str(),
                    closed = n,
                    "dropped idle connections"
                );
            }
        }
        up
    }

    /// Closes connections idle for longer than the idle timeout.
    fn reap(&self) {
        let cutoff = self.sizes.idle_timeout;
        let n = self.data.drain(|i| i.since.elapsed() >= cutoff)
            + self.admin.drain(|i| i.since.elapsed() >= cutoff);
        if n > 0 {
            debug!(
                backend = C::KIND.as_str(),
                closed = n,
                "closed idle connections"
            );
        }
    }
}

/// The probe loop: holds the pool weakly, so dropping the backend stops it.
async fn watch<C: Connector>(pool: Weak<Pool<C>>, health: Arc<Health>) {
    let mut backoff = Backoff::default();
    loop {
        let wait = {
            let Some(pool) = pool.upgrade() else {
                return;
            };
            let up = pool.probe().await;
            pool.reap();
            pool.data.reconcile();
            pool.rebalance();
            if up {
                backoff.reset();
                (pool.sizes.idle_timeout / 2).clamp(PROBE_UP_MIN, PROBE_UP_EVERY)
            } else {
                backoff.failed()
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = health.wake.notified() => {}
        }
    }
}

/// The connections of one spawned database (or the administrative ones).
pub struct Handle<C: Connector> {
    pool: Arc<Pool<C>>,
    key: Arc<str>,
    target: Arc<C::Target>,
    gate: Gate,
    admin: bool,
}

impl<C: Connector> fmt::Debug for Handle<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("key", &self.key)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl<C: Connector> Handle<C> {
    /// The pool.
    pub fn pool(&self) -> &Arc<Pool<C>> {
        &self.pool
    }

    /// The key its idle connections are kept under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Where it connects.
    pub fn target(&self) -> &C::Target {
        &self.target
    }

    /// A connection, waiting at most until `deadline`; fails at once while the server is down.
    pub async fn acquire(&self, deadline: Instant) -> Result<Lease<C>> {
        self.acquire_inner(deadline, deadline, true).await
    }

    /// A connection, waiting for a free one until `wait_until` and connecting a new one until
    /// `connect_by`. The probe keeps the two apart: it must not wait behind busy connections, but
    /// a slow connect (a loaded server) is not an absent server.
    async fn acquire_inner(
        &self,
        wait_until: Instant,
        connect_by: Instant,
        check_health: bool,
    ) -> Result<Lease<C>> {
        let backend = C::KIND.as_str();
        if check_health {
            self.pool.ensure_up()?;
        }
        let per_db = match &self.gate {
            Gate::Fixed(per_db) => PerDb::Permit(
                tokio::time::timeout_at(wait_until, Arc::clone(per_db).acquire_owned())
                    .await
                    .map_err(|_| {
                        Error::Timeout(format!(
                            "all {} connections of this database stayed busy until the deadline",
                            self.pool.sizes.per_database
                        ))
                    })?
                    .map_err(Error::internal)?,
            ),
            Gate::Share(account) => PerDb::Share(account.take(wait_until).await?),
        };
        let slots = self.pool.slots(self.admin);
        loop {
            let released = slots.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(idle) = slots.take(&self.key) {
                let Idle {
                    mut conn,
                    permit,
                    since,
                    epoch,
                    ..
                } = idle;
                if epoch != self.pool.outages()
                    || (since.elapsed() >= PING_AFTER_IDLE && conn.ping().await.is_err())
                {
                    debug!(backend, "dropping a dead idle connection");
                    close_later(conn, (Some(permit), None));
                    continue;
                }
                return Ok(self.lease(conn, permit, per_db, epoch));
            }
            let permit = match Arc::clone(&slots.permits).try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => match slots.take_oldest() {
                    Some(victim) => {
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, victim.conn.close()).await;
                        Some(victim.permit)
                    }
                    None => None,
                },
            };
            let permit = match permit {
                Some(p) => p,
                None => tokio::select! {
                    p = Arc::clone(&slots.permits).acquire_owned() => p.map_err(Error::internal)?,
                    _ = &mut released => continue,
                    _ = tokio::time::sleep_until(wait_until) => {
                        return Err(self.pool.engine.busy(slots.cap()));
                    }
                },
            };
            let epoch = self.pool.outages();
            let connect_by = connect_by.min(Instant::now() + CONNECT_TIMEOUT);
            let conn = tokio::time::timeout_at(
                connect_by,
                self.pool.engine.open(&self.target, connect_by),
            )
            .await
            .unwrap_or_else(|_| {
                Err(Error::Unavailable(format!(
                    "connecting to the {backend} server timed out"
                )))
            });
            return match conn {
                Ok(conn) => Ok(self.lease(conn, permit, per_db, epoch)),
                Err(e) => {
                    if matches!(e, Error::Unavailable(_)) {
                        self.pool.suspect();
                    }
                    Err(e)
                }
            };
        }
    }

    fn lease(
        &self,
        conn: C::Conn,
        permit: OwnedSemaphorePermit,
        per_db: PerDb,
        epoch: u64,
    ) -> Lease<C> {
        if !self.admin {
            metrics::gauge!(POOL_CONNECTIONS_IN_USE, "backend" => C::KIND.as_str()).increment(1.0);
        }
        Lease {
            held: Held {
                conn: Some(conn),
                permits: Some((permit, per_db)),
                key: Arc::clone(&self.key),
                pool: Arc::clone(&self.pool),
                admin: self.admin,
                epoch,
            },
            retire: false,
        }
    }
}

impl<C: Connector> Drop for Handle<C> {
    fn drop(&mut self) {
        if !self.admin {
            // The database handle is closing: its idle connections go with it.
            self.pool.close_idle(&self.key);
        }
    }
}

/// A connection out of the idle list, with its permits.
struct Held<C: Connector> {
    conn: Option<C::Conn>,
    permits: Option<(OwnedSemaphorePermit, PerDb)>,
    key: Arc<str>,
    pool: Arc<Pool<C>>,
    admin: bool,
    /// The pool's outage count when the connection was made.
    epoch: u64,
}

impl<C: Connector> Held<C> {
    fn conn(&self) -> &C::Conn {
        self.conn
            .as_ref()
            .expect("a connection is held until handed back")
    }

    fn conn_mut(&mut self) -> &mut C::Conn {
        self.conn
            .as_mut()
            .expect("a connection is held until handed back")
    }

    fn current(&self) -> bool {
        !self.conn().is_broken() && self.epoch == self.pool.outages()
    }

    /// Hands the connection back (once): to the idle list when `keep` and it is still sound,
    /// else closed. Either way its per-database permit is free again.
    fn finish(&mut self, keep: bool) {
        if self.conn.is_none() {
            return;
        }
        let keep = keep && self.current();
        let (Some(conn), Some((permit, per_db))) = (self.conn.take(), self.permits.take()) else {
            return;
        };
        // A connection beyond its database's share (shrunk since it was lent) is closed: its
        // slot under the cap belongs to another database now.
        let (per_db, account, keep) = match per_db {
            PerDb::Permit(p) => (Some(p), None, keep),
            PerDb::Share(ticket) => {
                let (account, fits) = ticket.release();
                (None, Some(account), keep && fits)
            }
        };
        // Beyond this gateway's share of the server's cap (it shrank while the connection was
        // lent): the permit is kept from use and the connection closed.
        let slots = self.pool.slots(self.admin);
        let Some(permit) = slots.hold(permit) else {
            close_later(conn, (None, per_db));
            if let Some(account) = account {
                account.shares.changed.notify_waiters();
            }
            return;
        };
        if keep {
            slots.put(Idle {
                key: Arc::clone(&self.key),
                conn,
                permit,
                since: Instant::now(),
                epoch: self.epoch,
                mark: account.clone().map(IdleMark::new),
            });
            drop(per_db);
        } else {
            close_later(conn, (Some(permit), per_db));
        }
        if let Some(account) = account {
            account.shares.changed.notify_waiters();
        }
    }

    /// Moves the connection and its permits into a new holder.
    fn take(&mut self) -> Self {
        Self {
            conn: self.conn.take(),
            permits: self.permits.take(),
            key: Arc::clone(&self.key),
            pool: Arc::clone(&self.pool),
            admin: self.admin,
            epoch: self.epoch,
        }
    }
}

/// A connection lent to one call (or, on Redis, to the calls sharing it). Dropped, it goes
/// back to the idle list, unless it is broken, was made before an outage, or was retired;
/// then it is closed.
pub struct Lease<C: Connector> {
    held: Held<C>,
    /// Close it when dropped rather than keep it.
    pub retire: bool,
}

impl<C: Connector> fmt::Debug for Lease<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.held.key)
            .field("admin", &self.held.admin)
            .field("retire", &self.retire)
            .finish_non_exhaustive()
    }
}

impl<C: Connector> Lease<C> {
    /// The connection.
    pub fn conn(&self) -> &C::Conn {
        self.held.conn()
    }

    /// The connection, to use.
    pub fn conn_mut(&mut self) -> &mut C::Conn {
        self.held.conn_mut()
    }

    /// The pool it came from.
    pub fn pool(&self) -> &Arc<Pool<C>> {
        &self.held.pool
    }

    /// Whether an administrative connection.
    pub fn is_admin(&self) -> bool {
        self.held.admin
    }

    /// Whether it may serve another call: not broken, not retired, not made before an outage.
    pub fn reusable(&self) -> bool {
        !self.retire && self.held.current()
    }

    /// Takes the connection and its permits out (for a cleanup that must finish before it is
    /// kept or closed: a rollback, a cancel), to be handed back with [`Detached::finish`].
    pub fn detach(mut self) -> Detached<C> {
        Detached(self.held.take())
    }
}

impl<C: Connector> Drop for Lease<C> {
    fn drop(&mut self) {
        if !self.held.admin {
            metrics::gauge!(POOL_CONNECTIONS_IN_USE, "backend" => C::KIND.as_str()).decrement(1.0);
        }
        self.held.finish(!self.retire);
    }
}

/// A connection taken out of its [`Lease`] for a cleanup (it is no longer counted as in use).
/// Dropped unfinished (a cleanup cut short), it is closed.
pub struct Detached<C: Connector>(Held<C>);

impl<C: Connector> Detached<C> {
    /// The connection.
    pub fn conn_mut(&mut self) -> &mut C::Conn {
        self.0.conn_mut()
    }

    /// The pool it came from.
    pub fn pool(&self) -> &Arc<Pool<C>> {
        &self.0.pool
    }

    /// Hands the connection back: kept idle when `keep` and it is still sound, else closed.
    pub fn finish(mut self, keep: bool) {
        self.0.finish(keep);
    }
}

impl<C: Connector> Drop for Detached<C> {
    fn drop(&mut self) {
        self.0.finish(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that only counts its closing.
    struct Counted(Arc<AtomicUsize>);

    #[async_trait]
    impl PoolConn for Counted {
        fn is_broken(&self) -> bool {
            false
        }
        async fn ping(&mut self) -> Result<()> {
            Ok(())
        }
        async fn close(self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn idle(slots: &Slots<Counted>, closed: &Arc<AtomicUsize>) {
        let permit = Arc::clone(&slots.permits)
            .try_acquire_owned()
            .expect("a free permit");
        slots.put(Idle {
            key: "db".into(),
            conn: Counted(Arc::clone(closed)),
            permit,
            since: Instant::now(),
            epoch: 0,
            mark: None,
        });
    }

    #[tokio::test]
    async fn a_shrinking_cap_takes_free_permits_then_idle_ones_then_released_ones() {
        let slots = Slots::<Counted>::new(8);
        let closed = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            idle(&slots, &closed);
        }
        let mut busy: Vec<OwnedSemaphorePermit> = (0..4)
            .map(|_| {
                Arc::clone(&slots.permits)
                    .try_acquire_owned()
                    .expect("free")
            })
            .collect();
        assert_eq!((slots.open(), slots.cap()), (7, 8));

        // Down to 2: the free permit and the three idle connections' are taken; two of the
        // busy ones must still come back.
        slots.hold_back.store(6, Ordering::Relaxed);
        slots.reconcile();
        assert_eq!(slots.cap(), 2);
        assert_eq!(slots.withheld().len(), 4);
        assert!(
            slots.lock().is_empty(),
            "idle connections beyond the cap are closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(closed.load(Ordering::Relaxed), 3);
        assert_eq!(slots.open(), 4, "the busy connections are still open");

        // Busy connections handed back while the cap is short: their permits are kept.
        assert!(slots.hold(busy.pop().expect("busy")).is_none());
        assert!(slots.hold(busy.pop().expect("busy")).is_none());
        let third = busy.pop().expect("busy");
        assert!(
            slots.hold(third).is_some(),
            "at the cap again, a released connection may be kept"
        );
        assert_eq!(slots.withheld().len(), 6);

        // Back to the whole cap: every withheld permit is free again.
        slots.hold_back.store(0, Ordering::Relaxed);
        slots.reconcile();
        assert_eq!((slots.cap(), slots.withheld().len()), (8, 0));
        assert_eq!(slots.permits.available_permits(), 7);
    }
}
