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
//! on this pool.

use std::{
    collections::VecDeque,
    fmt,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
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
};
use crate::{
    core::error::{Error, Result},
    metrics::POOL_CONNECTIONS_IN_USE,
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
    /// Data-plane connections per spawned database.
    pub per_database: usize,
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
            idle_timeout,
        })
    }
}

/// Connections of one class (data plane or administration) under one cap.
struct Slots<C> {
    permits: Arc<Semaphore>,
    size: usize,
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
}

impl<C: PoolConn> Slots<C> {
    fn new(size: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
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

    /// Connections open right now, idle or lent out.
    fn open(&self) -> usize {
        self.size - self.permits.available_permits()
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

    /// The connections of a spawned database (its key) reached through `target`.
    pub fn database(self: &Arc<Self>, key: &str, target: C::Target) -> Handle<C> {
        Handle {
            pool: Arc::clone(self),
            key: key.into(),
            target: Arc::new(target),
            per_db: Arc::new(Semaphore::new(self.sizes.per_database)),
            admin: false,
        }
    }

    /// The administrative connections.
    pub fn admin(self: &Arc<Self>) -> Handle<C> {
        Handle {
            pool: Arc::clone(self),
            key: "\0admin".into(),
            target: Arc::clone(&self.admin_target),
            per_db: Arc::clone(&self.admin_per_db),
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
    per_db: Arc<Semaphore>,
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
        let per_db = tokio::time::timeout_at(wait_until, Arc::clone(&self.per_db).acquire_owned())
            .await
            .map_err(|_| {
                Error::Timeout(format!(
                    "all {} connections of this database stayed busy until the deadline",
                    self.pool.sizes.per_database
                ))
            })?
            .map_err(Error::internal)?;
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
                        return Err(self.pool.engine.busy(slots.size));
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
        per_db: OwnedSemaphorePermit,
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
    permits: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
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
        if keep {
            self.pool.slots(self.admin).put(Idle {
                key: Arc::clone(&self.key),
                conn,
                permit,
                since: Instant::now(),
                epoch: self.epoch,
            });
            drop(per_db);
        } else {
            close_later(conn, (Some(permit), Some(per_db)));
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
