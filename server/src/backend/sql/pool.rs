//! Connections to a database server: a pool per spawned database under one cap per server, plus
//! the availability probe.
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
//! deadline passes. So 1,000 spawned databases share `max_connections` connections instead of
//! opening 1,000 × N, idle ones cost nothing once the cap is reached, and connections idle for
//! longer than `idle_timeout` are closed by the probe task. Administration (create, destroy,
//! cancel, the probe) uses its own small reserve, so a saturated data plane can still be
//! cancelled and pruned.
//!
//! # Availability
//!
//! A background task probes the server (an administrative connection and a ping) every second,
//! and at once when a call reports a broken connection. While the server is down,
//! [`Server::is_up`] is false, idle connections are dropped, calls fail at once with
//! `Unavailable` (naming the server and the cause) instead of waiting for timeouts, and the
//! probe retries with backoff (see [`crate::backend::probe`]); the first successful probe
//! brings it back.

use std::{
    collections::VecDeque,
    fmt,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tracing::debug;

use super::{Control, Engine, Outcome, Prepared, RowSink, SqlConn, text::placeholder_hint};
use crate::backend::probe::{Availability, Backoff, Location};
use crate::core::{
    error::{Error, QueryErrorKind, Result},
    value::{Statement, Value},
};

/// How long a connection may sit idle before it is pinged on its way out of the pool.
const PING_AFTER_IDLE: Duration = Duration::from_secs(2);
/// How often the server is probed while it answers.
const PROBE_UP_EVERY: Duration = Duration::from_secs(1);
/// How long a probe (connect and ping) may take before the server counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a probe waits for an administrative connection that others are using.
const PROBE_WAIT: Duration = Duration::from_millis(200);
/// How long opening one connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing a connection politely may take before it is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long administrative work (create, destroy, cancel) may wait for a connection.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

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
}

impl<C: SqlConn> Slots<C> {
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
            close_later(i.conn, Some(i.permit), None);
        }
        n
    }
}

/// Closes a connection in the background, releasing its permits afterwards so that the cap
/// counts it until the server has been told.
fn close_later<C: SqlConn>(
    conn: C,
    permit: Option<OwnedSemaphorePermit>,
    per_db: Option<OwnedSemaphorePermit>,
) {
    let close = async move {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close()).await;
        drop((permit, per_db));
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
}

/// One database server: its engine, pools, cap and probe.
pub struct Server<E: Engine> {
    engine: E,
    name: &'static str,
    data: Slots<E::Conn>,
    admin: Slots<E::Conn>,
    admin_target: Arc<E::Target>,
    admin_per_db: Arc<Semaphore>,
    sizes: PoolSizes,
    health: Arc<Health>,
}

impl<E: Engine> fmt::Debug for Server<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("engine", &self.name)
            .field("sizes", &self.sizes)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl<E: Engine> Server<E> {
    /// Starts managing the server at `location`: probes it once (so that [`Self::is_up`] is
    /// right from the start, without failing when it is down), then keeps probing in the
    /// background.
    pub async fn start(
        engine: E,
        admin_target: E::Target,
        sizes: PoolSizes,
        location: Location,
    ) -> Arc<Self> {
        let server = Arc::new(Self {
            engine,
            name: E::KIND.as_str(),
            data: Slots::new(sizes.data),
            admin: Slots::new(sizes.admin),
            admin_target: Arc::new(admin_target),
            admin_per_db: Arc::new(Semaphore::new(sizes.admin)),
            sizes,
            health: Arc::new(Health {
                state: Availability::new(E::KIND.as_str(), location),
                wake: Notify::new(),
            }),
        });
        server.probe().await;
        tokio::spawn(watch(Arc::downgrade(&server), Arc::clone(&server.health)));
        server
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Whether the server answered the last probe.
    pub fn is_up(&self) -> bool {
        self.health.state.is_up()
    }

    /// Asks the probe to check the server now (a call saw a broken connection). While the
    /// server is known to be down this is no news: the probe's backoff decides.
    fn suspect(&self) {
        if self.is_up() {
            self.health.wake.notify_one();
        }
    }

    /// A pool for a spawned database reached through `target`.
    pub fn database(self: &Arc<Self>, key: &str, target: E::Target) -> DbPool<E> {
        DbPool {
            server: Arc::clone(self),
            key: key.into(),
            target: Arc::new(target),
            per_db: Arc::new(Semaphore::new(self.sizes.per_database)),
            admin: false,
        }
    }

    /// The administrative pool.
    pub fn admin(self: &Arc<Self>) -> DbPool<E> {
        DbPool {
            server: Arc::clone(self),
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

    /// Probes once and records the answer.
    async fn probe(self: &Arc<Self>) -> bool {
        let admin = self.admin();
        let outcome = tokio::time::timeout(PROBE_TIMEOUT, async {
            // Every administrative connection busy (a slow DROP DATABASE) proves nothing
            // either way: keep the last answer rather than wait behind them.
            let mut conn = match admin
                .acquire_inner(
                    Instant::now() + PROBE_WAIT,
                    Instant::now() + PROBE_TIMEOUT,
                    false,
                )
                .await
            {
                Ok(conn) => conn,
                Err(Error::Timeout(_)) => return Ok(false),
                Err(e) => return Err(e),
            };
            let c = conn.begin_use()?;
            let r = c.ping().await;
            conn.end_use(&r);
            r.map(|()| true)
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
            // Whatever is idle was connected to a server that went away.
            let n = self.data.drain(|_| true) + self.admin.drain(|_| true);
            if n > 0 {
                debug!(backend = self.name, closed = n, "dropped idle connections");
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
            debug!(backend = self.name, closed = n, "closed idle connections");
        }
    }

    /// Interrupts the statement running on connection `server_id`, through an administrative
    /// connection. Best effort: the connection is being dropped anyway.
    async fn cancel(self: Arc<Self>, server_id: u64) {
        let admin = self.admin();
        let deadline = Instant::now() + PROBE_TIMEOUT;
        let r = tokio::time::timeout_at(deadline, async {
            let mut conn = admin.acquire(deadline).await?;
            let c = conn.begin_use()?;
            let r = E::cancel(c, server_id).await;
            conn.end_use(&r);
            r
        })
        .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(backend = self.name, error = %e, "could not cancel a statement"),
            Err(_) => debug!(backend = self.name, "cancelling a statement timed out"),
        }
    }
}

/// The probe loop: holds the server weakly, so dropping the backend stops it.
async fn watch<E: Engine>(server: Weak<Server<E>>, health: Arc<Health>) {
    let mut backoff = Backoff::default();
    loop {
        let wait = {
            let Some(server) = server.upgrade() else {
                return;
            };
            let up = server.probe().await;
            server.reap();
            if up {
                backoff.reset();
                PROBE_UP_EVERY
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
pub struct DbPool<E: Engine> {
    server: Arc<Server<E>>,
    key: Arc<str>,
    target: Arc<E::Target>,
    per_db: Arc<Semaphore>,
    admin: bool,
}

impl<E: Engine> fmt::Debug for DbPool<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbPool")
            .field("key", &self.key)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl<E: Engine> DbPool<E> {
    fn slots(&self) -> &Slots<E::Conn> {
        if self.admin {
            &self.server.admin
        } else {
            &self.server.data
        }
    }

    /// A connection, waiting at most until `deadline`; fails at once while the server is down.
    pub async fn acquire(&self, deadline: Instant) -> Result<Pooled<E>> {
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
    ) -> Result<Pooled<E>> {
        let backend = self.server.name;
        if check_health && !self.server.is_up() {
            return Err(self.server.health.state.unavailable());
        }
        let per_db = tokio::time::timeout_at(wait_until, Arc::clone(&self.per_db).acquire_owned())
            .await
            .map_err(|_| {
                Error::Timeout(format!(
                    "all {} connections of this database stayed busy until the deadline",
                    self.server.sizes.per_database
                ))
            })?
            .map_err(Error::internal)?;
        let slots = self.slots();
        loop {
            let released = slots.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(idle) = slots.take(&self.key) {
                let Idle {
                    mut conn,
                    permit,
                    since,
                    ..
                } = idle;
                if since.elapsed() >= PING_AFTER_IDLE && conn.ping().await.is_err() {
                    debug!(backend, "dropping a dead idle connection");
                    drop((conn, permit));
                    continue;
                }
                return Ok(self.lease(conn, permit, per_db));
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
                        return Err(Error::Timeout(format!(
                            "all {} connections to the {backend} server stayed busy until the \
                             deadline",
                            slots.size
                        )));
                    }
                },
            };
            let connect_by = connect_by.min(Instant::now() + CONNECT_TIMEOUT);
            let conn =
                tokio::time::timeout_at(connect_by, self.server.engine.connect(&self.target))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::Unavailable(format!(
                            "connecting to the {backend} server timed out"
                        )))
                    });
            return match conn {
                Ok(conn) => Ok(self.lease(conn, permit, per_db)),
                Err(e) => {
                    if matches!(e, Error::Unavailable(_)) {
                        self.server.suspect();
                    }
                    Err(e)
                }
            };
        }
    }

    fn lease(
        &self,
        conn: E::Conn,
        permit: OwnedSemaphorePermit,
        per_db: OwnedSemaphorePermit,
    ) -> Pooled<E> {
        Pooled {
            conn: Some(conn),
            permits: Some((permit, per_db)),
            key: Arc::clone(&self.key),
            server: Arc::clone(&self.server),
            admin: self.admin,
            busy: false,
            abandoned: false,
            in_tx: false,
        }
    }
}

impl<E: Engine> Drop for DbPool<E> {
    fn drop(&mut self) {
        if !self.admin {
            // The database handle is closing: its idle connections go with it.
            self.server.close_idle(&self.key);
        }
    }
}

/// A connection lent to one call. Dropped, it goes back to the idle list if it is clean; rolls
/// back first if a transaction is open; and is cancelled on the server and closed if it was
/// dropped in the middle of a statement or left with unread results.
pub struct Pooled<E: Engine> {
    conn: Option<E::Conn>,
    permits: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
    key: Arc<str>,
    server: Arc<Server<E>>,
    admin: bool,
    /// A call is running on it right now (false again only when the call returns).
    busy: bool,
    /// A statement's results were left unread: the server may still be running it.
    abandoned: bool,
    /// A transaction of the gateway's is open on it.
    in_tx: bool,
}

impl<E: Engine> fmt::Debug for Pooled<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("key", &self.key)
            .field("busy", &self.busy)
            .field("abandoned", &self.abandoned)
            .field("in_tx", &self.in_tx)
            .finish_non_exhaustive()
    }
}

impl<E: Engine> Pooled<E> {
    /// Whether further statements may run on it.
    pub fn usable(&self) -> bool {
        !self.abandoned && !self.busy && self.conn.as_ref().is_some_and(|c| !c.is_broken())
    }

    /// Whether a call was interrupted in the middle (the guard outlived a dropped future).
    pub fn interrupted(&self) -> bool {
        self.busy
    }

    /// The raw connection for one engine call; pair with [`Self::end_use`].
    pub fn begin_use(&mut self) -> Result<&mut E::Conn> {
        if self.abandoned || self.busy {
            return Err(Error::internal(
                "a connection was used after being abandoned",
            ));
        }
        self.busy = true;
        self.conn
            .as_mut()
            .ok_or_else(|| Error::internal("a connection was used after being closed"))
    }

    /// Marks the end of an engine call begun with [`Self::begin_use`].
    pub fn end_use<T>(&mut self, result: &Result<T>) {
        self.busy = false;
        if let Err(Error::Unavailable(_)) = result {
            self.server.suspect();
        }
    }

    /// Applies the statement timeout.
    pub async fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        let c = self.begin_use()?;
        let r = c.set_timeout(timeout).await;
        self.end_use(&r);
        r
    }

    /// Runs transaction control. A failure leaves the connection in an unknown state, so it is
    /// closed rather than reused.
    pub async fn control(&mut self, op: Control) -> Result<()> {
        let c = self.begin_use()?;
        let r = c.control(op).await;
        self.end_use(&r);
        match (&r, op) {
            (Err(_), _) => self.abandoned = true,
            (Ok(()), Control::Begin | Control::BeginReadOnly) => self.in_tx = true,
            (Ok(()), Control::Commit | Control::Rollback) => self.in_tx = false,
            _ => {}
        }
        r
    }

    /// Prepares a client statement.
    pub async fn describe(&mut self, stmt: &Statement) -> Result<Prepared<E>> {
        let c = self.begin_use()?;
        let r = c.describe(stmt).await;
        self.end_use(&r);
        r.map_err(|e| hinted::<E>(e, stmt))
    }

    /// Runs a prepared statement into `sink`. When the sink stopped reading early, the rest of
    /// the result is still on its way: the connection is abandoned (cancelled and closed).
    /// Outside a transaction it runs read-write.
    pub async fn run(
        &mut self,
        prepared: &Prepared<E>,
        stmt: &Statement,
        sink: &mut dyn RowSink,
    ) -> Result<Outcome> {
        self.run_as(false, prepared, stmt, sink).await
    }

    /// Runs a prepared statement outside any transaction with the engine refusing its writes
    /// (see [`SqlConn::set_read_only`]); otherwise as [`Self::run`].
    pub async fn run_read_only(
        &mut self,
        prepared: &Prepared<E>,
        stmt: &Statement,
        sink: &mut dyn RowSink,
    ) -> Result<Outcome> {
        if self.in_tx {
            return Err(Error::internal(
                "a read-only attempt was made inside a transaction",
            ));
        }
        self.run_as(true, prepared, stmt, sink).await
    }

    async fn run_as(
        &mut self,
        read_only: bool,
        prepared: &Prepared<E>,
        stmt: &Statement,
        sink: &mut dyn RowSink,
    ) -> Result<Outcome> {
        self.access(read_only).await?;
        let c = self.begin_use()?;
        let r = c.run(prepared, stmt, &mut *sink).await;
        self.end_use(&r);
        if sink.stopped() {
            self.abandoned = true;
        }
        r
    }

    /// Makes statements outside a transaction read-write again (see
    /// [`SqlConn::set_read_only`]), for callers that run them on the raw connection.
    pub async fn read_write(&mut self) -> Result<()> {
        self.access(false).await
    }

    /// Sets the access mode of statements outside a transaction (a transaction has its own).
    async fn access(&mut self, read_only: bool) -> Result<()> {
        if self.in_tx {
            return Ok(());
        }
        let c = self.begin_use()?;
        let r = c.set_read_only(read_only).await;
        self.end_use(&r);
        r
    }

    /// Bulk-loads rows (see [`SqlConn::copy_in`]).
    pub async fn copy_in(
        &mut self,
        table: &str,
        columns: &[String],
        rows: &[&[Value]],
    ) -> Result<Option<u64>> {
        self.read_write().await?;
        let c = self.begin_use()?;
        let r = c.copy_in(table, columns, rows).await;
        self.end_use(&r);
        r
    }

    /// Runs a statement for its effect only.
    pub async fn run_discarding(&mut self, stmt: &Statement) -> Result<Outcome> {
        self.read_write().await?;
        let c = self.begin_use()?;
        let r = c.run_discarding(stmt).await;
        self.end_use(&r);
        r.map_err(|e| hinted::<E>(e, stmt))
    }
}

/// A syntax error (SQLSTATE 42601) of a statement written with another engine's placeholders
/// says so (see [`placeholder_hint`]).
fn hinted<E: Engine>(err: Error, stmt: &Statement) -> Error {
    let syntax = matches!(
        &err,
        Error::Query { kind: QueryErrorKind::Syntax, code: Some(c), .. } if c == "42601"
    );
    match placeholder_hint(&stmt.sql, stmt.params.len(), E::FLAVOR) {
        Some(hint) if syntax => err.with_hint(hint),
        _ => err,
    }
}

impl<E: Engine> Drop for Pooled<E> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let Some((permit, per_db)) = self.permits.take() else {
            return;
        };
        let rt = tokio::runtime::Handle::try_current();
        if (self.busy || self.abandoned) && !self.admin {
            // The server may still be running a statement for nobody: stop it, then close.
            let server_id = conn.server_id();
            let server = Arc::clone(&self.server);
            let cleanup = async move {
                server.cancel(server_id).await;
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close()).await;
                drop((permit, per_db));
            };
            match rt {
                Ok(rt) => drop(rt.spawn(cleanup)),
                Err(_) => drop(cleanup),
            }
        } else if self.busy || self.abandoned || conn.is_broken() {
            // Administrative statements are short; a broken connection has nothing to cancel.
            close_later(conn, Some(permit), Some(per_db));
        } else if self.in_tx {
            let slots_owner = Arc::clone(&self.server);
            let key = Arc::clone(&self.key);
            let admin = self.admin;
            let rollback = async move {
                let mut conn = conn;
                match conn.control(Control::Rollback).await {
                    Ok(()) if !conn.is_broken() => {
                        let slots = if admin {
                            &slots_owner.admin
                        } else {
                            &slots_owner.data
                        };
                        slots.put(Idle {
                            key,
                            conn,
                            permit,
                            since: Instant::now(),
                        });
                        drop(per_db);
                    }
                    _ => close_later(conn, Some(permit), Some(per_db)),
                }
            };
            match rt {
                Ok(rt) => drop(rt.spawn(rollback)),
                Err(_) => drop(rollback),
            }
        } else {
            let slots = if self.admin {
                &self.server.admin
            } else {
                &self.server.data
            };
            slots.put(Idle {
                key: Arc::clone(&self.key),
                conn,
                permit,
                since: Instant::now(),
            });
            drop(per_db);
        }
    }
}
