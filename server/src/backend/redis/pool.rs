//! Connections to one Redis server: the admin connection and one multiplexed connection per
//! open database, authenticated as that database's ACL user.
//!
//! - **Per database.** A database's calls share one multiplexed connection: concurrent calls are
//!   pipelined on it, which is how Redis is fastest (it runs one command at a time per
//!   connection anyway). `per_database_connections` is therefore met with one.
//! - **Server cap.** Database connections hold permits of a semaphore sized
//!   `max_connections - 1` (the admin connection is the one more). A database that needs a
//!   connection when all permits are taken closes the least recently used idle connection of
//!   another database; if none is idle it waits, until the statement's deadline
//!   (LimitExceeded).
//! - **Idle eviction.** A connection unused for `idle_timeout` is closed by the backend's
//!   background task; the next call reconnects.
//! - **Replacement.** A connection is replaced after a timeout (the late reply could otherwise
//!   hold up every later call on it), after a connection error, and after an outage (connections
//!   made before the probe saw the server go away carry an older epoch and are not reused).

use std::{
    fmt,
    future::Future,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::{
    AsyncConnectionConfig, ConnectionInfo, ProtocolVersion, RedisConnectionInfo, RedisError,
    aio::MultiplexedConnection,
};
use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tracing::{debug, info};

use super::{namespace::Namespace, reply::classify};
use crate::backend::probe::{Availability, Location};
use crate::core::error::{Error, Result};

/// How long opening a TCP connection and authenticating may take, at most.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A point in time a call must finish by, and the budget it came from (for messages).
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    /// When.
    pub at: Instant,
    /// The timeout it was made from.
    pub budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
            budget,
        }
    }

    fn timeout(&self, what: &str) -> Error {
        Error::Timeout(format!(
            "{what} did not finish within the statement timeout ({})",
            humantime::format_duration(self.budget)
        ))
    }
}

/// Who a slot's connection authenticates as.
enum Auth {
    Admin,
    User(Namespace),
}

struct Live {
    conn: MultiplexedConnection,
    /// Shared with every call in flight on the connection, so the permit returns to the pool
    /// only when the slot has let go and the last call has finished.
    permit: Option<Arc<OwnedSemaphorePermit>>,
    epoch: u64,
    serial: u64,
}

/// The connection of one database (or the admin connection), opened on demand.
pub(super) struct Slot {
    auth: Auth,
    live: Mutex<Option<Live>>,
    connecting: tokio::sync::Mutex<()>,
    /// Milliseconds since the pool started.
    last_used: AtomicU64,
    /// Set by `destroy`: the database is gone, so its user must not be re-created.
    destroyed: AtomicBool,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match &self.auth {
            Auth::Admin => "admin",
            Auth::User(ns) => ns.user.as_str(),
        };
        f.debug_struct("Slot")
            .field("user", &who)
            .finish_non_exhaustive()
    }
}

impl Slot {
    fn new(auth: Auth) -> Self {
        Self {
            auth,
            live: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            last_used: AtomicU64::new(0),
            destroyed: AtomicBool::new(false),
        }
    }

    fn current(&self, epoch: u64) -> Option<Lease> {
        let live = self.live.lock().ok()?;
        let l = live.as_ref().filter(|l| l.epoch == epoch)?;
        Some(Lease {
            conn: l.conn.clone(),
            _permit: l.permit.clone(),
            serial: l.serial,
        })
    }

    /// Drops the connection if it is still the one with this serial (a newer one stays).
    fn drop_live(&self, serial: Option<u64>) -> bool {
        let Ok(mut live) = self.live.lock() else {
            return false;
        };
        if live
            .as_ref()
            .is_some_and(|l| serial.is_none_or(|s| s == l.serial))
        {
            *live = None;
            return true;
        }
        false
    }

    /// Whether the connection is open with no call in flight.
    fn idle_since(&self) -> Option<u64> {
        let live = self.live.try_lock().ok()?;
        let permit = live.as_ref()?.permit.as_ref()?;
        (Arc::strong_count(permit) == 1).then(|| self.last_used.load(Ordering::Relaxed))
    }
}

/// A connection borrowed for one call.
pub(super) struct Lease {
    /// The connection (a cheap clone of the slot's).
    pub conn: MultiplexedConnection,
    _permit: Option<Arc<OwnedSemaphorePermit>>,
    serial: u64,
}

/// Connections to one Redis server.
pub(super) struct Pool {
    info: ConnectionInfo,
    /// `host:port`, for messages (never the URL: it may hold the admin password).
    addr: String,
    permits: Arc<Semaphore>,
    capacity: usize,
    idle_timeout: Duration,
    slots: Mutex<Vec<Weak<Slot>>>,
    admin: Slot,
    epoch: AtomicU64,
    serial: AtomicU64,
    available: Availability,
    /// Wakes the background probe early (after a connection error while the server was up).
    pub wake: Notify,
    started: Instant,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("addr", &self.addr)
            .field("capacity", &self.capacity)
            .field("available", &self.available())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool for the server of `info` (the admin's URL, at `location`), with
    /// `max_connections` in all.
    pub fn new(
        info: ConnectionInfo,
        location: Location,
        max_connections: u32,
        idle_timeout: Duration,
    ) -> Self {
        let capacity = (max_connections.max(2) - 1) as usize;
        Self {
            addr: info.addr().to_string(),
            available: Availability::new("redis", location),
            info,
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            idle_timeout,
            slots: Mutex::new(Vec::new()),
            admin: Slot::new(Auth::Admin),
            epoch: AtomicU64::new(0),
            serial: AtomicU64::new(0),
            wake: Notify::new(),
            started: Instant::now(),
        }
    }

    /// Whether the last probe (or call) reached the server.
    pub fn available(&self) -> bool {
        self.available.is_up()
    }

    /// Fails fast while the server is known to be down.
    pub fn ensure_available(&self) -> Result<()> {
        if self.available() {
            return Ok(());
        }
        Err(self.available.unavailable())
    }

    /// Asks the probe to look now (a call saw a broken connection). While the server is known
    /// to be down this is no news: the probe's backoff decides, or a refused connect of the
    /// probe's own would wake it again at once.
    fn suspect(&self) {
        if self.available() {
            self.wake.notify_one();
        }
    }

    /// A slot for a database, registered for eviction and idle sweeps.
    pub fn user_slot(&self, ns: Namespace) -> Arc<Slot> {
        let slot = Arc::new(Slot::new(Auth::User(ns)));
        if let Ok(mut slots) = self.slots.lock() {
            slots.push(Arc::downgrade(&slot));
        }
        slot
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs `f` on the admin connection.
    pub async fn admin<T, F, Fut>(&self, deadline: Deadline, f: F) -> Result<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.run(&self.admin, deadline, f).await
    }

    /// Runs `f` on the slot's connection, opening one if needed, within `deadline`. A timeout
    /// or a connection error replaces the connection.
    pub async fn run<T, F, Fut>(&self, slot: &Slot, deadline: Deadline, f: F) -> Result<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let lease = self.lease(slot, deadline).await?;
        let serial = lease.serial;
        match tokio::time::timeout_at(deadline.at, f(lease.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if is_connection_error(&e) {
                    slot.drop_live(Some(serial));
                    self.suspect();
                }
                Err(classify(e))
            }
            Err(_) => {
                // The reply will still arrive on this connection and hold up whatever is
                // queued behind it; later calls get a fresh connection instead.
                slot.drop_live(Some(serial));
                Err(deadline.timeout("the Redis command"))
            }
        }
    }

    async fn lease(&self, slot: &Slot, deadline: Deadline) -> Result<Lease> {
        slot.last_used.store(self.now_ms(), Ordering::Relaxed);
        let epoch = self.epoch.load(Ordering::Relaxed);
        if let Some(lease) = slot.current(epoch) {
            return Ok(lease);
        }
        let _connecting = tokio::time::timeout_at(deadline.at, slot.connecting.lock())
            .await
            .map_err(|_| deadline.timeout("connecting to Redis"))?;
        if let Some(lease) = slot.current(epoch) {
            return Ok(lease);
        }
        if slot.destroyed.load(Ordering::Relaxed) {
            return Err(Error::Unavailable("this database has been deleted".into()));
        }
        // Free the slot's stale connection (and its permit) before asking for a new one.
        slot.drop_live(None);
        let permit = match slot.auth {
            Auth::Admin => None,
            Auth::User(_) => Some(Arc::new(self.acquire_permit(slot, deadline).await?)),
        };
        let conn = match self.connect(slot, deadline).await {
            // Boxed: re-creating the user leases the admin connection, a recursion the compiler
            // cannot bound (the admin slot never takes this branch).
            Err(e) if is_auth_failure(&e) => {
                Box::pin(self.recreate_user(slot, deadline, e)).await?
            }
            other => other.map_err(|e| {
                self.suspect();
                classify(e)
            })?,
        };
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut live) = slot.live.lock() {
            *live = Some(Live {
                conn: conn.clone(),
                permit: permit.clone(),
                epoch,
                serial,
            });
        }
        Ok(Lease {
            conn,
            _permit: permit,
            serial,
        })
    }

    /// A database user the server does not know (it restarted without persisting ACLs) is
    /// re-created from the catalog's locator, unless the database was deleted.
    async fn recreate_user(
        &self,
        slot: &Slot,
        deadline: Deadline,
        err: RedisError,
    ) -> Result<MultiplexedConnection> {
        let Auth::User(ns) = &slot.auth else {
            return Err(Error::Unavailable(format!(
                "the Redis server at {} refused the admin credentials: {err}",
                self.addr
            )));
        };
        if slot.destroyed.load(Ordering::Relaxed) {
            return Err(Error::Unavailable("this database has been deleted".into()));
        }
        info!(user = %ns.user, "re-creating a Redis ACL user the server no longer has");
        self.set_user(ns, deadline).await?;
        self.connect(slot, deadline).await.map_err(classify)
    }

    /// Creates or resets a database's ACL user, and persists ACLs where the server can.
    pub async fn set_user(&self, ns: &Namespace, deadline: Deadline) -> Result<()> {
        let mut cmd = redis::Cmd::new();
        for a in ns.acl_setuser() {
            cmd.arg(a);
        }
        self.admin(deadline, |mut c| async move {
            c.send_packed_command(&cmd).await?.extract_error()
        })
        .await?;
        self.save_acl(deadline).await;
        Ok(())
    }

    /// `ACL SAVE` when the server has an ACL file, so users survive a restart; without one it
    /// answers an error, which is fine: missing users are re-created on first use.
    pub async fn save_acl(&self, deadline: Deadline) {
        let saved = self
            .admin(deadline, |mut c| async move {
                c.send_packed_command(redis::cmd("ACL").arg("SAVE"))
                    .await?
                    .extract_error()
            })
            .await;
        if let Err(e) = saved {
            debug!(error = %e, "ACL SAVE not done (no aclfile configured?)");
        }
    }

    async fn connect(
        &self,
        slot: &Slot,
        deadline: Deadline,
    ) -> redis::RedisResult<MultiplexedConnection> {
        let info = match &slot.auth {
            Auth::Admin => self.info.clone(),
            Auth::User(ns) => self.info.clone().set_redis_settings(
                RedisConnectionInfo::default()
                    .set_username(&ns.user)
                    .set_password(&ns.password)
                    // RESP3 gives maps, sets, doubles and booleans their own types, which the
                    // documented row shape relies on.
                    .set_protocol(ProtocolVersion::RESP3)
                    // CLIENT SETINFO is a connection command the user is not allowed.
                    .set_skip_set_lib_name(),
            ),
        };
        let client = redis::Client::open(info)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            // Calls are timed by the statement deadline instead (see `run`).
            .set_response_timeout(None);
        match tokio::time::timeout_at(
            deadline.at,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connecting to Redis ran past the statement timeout",
            ))),
        }
    }

    async fn acquire_permit(
        &self,
        slot: &Slot,
        deadline: Deadline,
    ) -> Result<OwnedSemaphorePermit> {
        if let Ok(p) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(p);
        }
        if self.evict_least_recent(slot)
            && let Ok(p) = Arc::clone(&self.permits).try_acquire_owned()
        {
            return Ok(p);
        }
        match tokio::time::timeout_at(deadline.at, Arc::clone(&self.permits).acquire_owned()).await
        {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(Error::internal(e)),
            Err(_) => Err(Error::LimitExceeded(format!(
                "all {} connections to the Redis server are busy; try again or raise the \
                 server connection limit",
                self.capacity
            ))),
        }
    }

    fn live_slots(&self) -> Vec<Arc<Slot>> {
        let Ok(mut slots) = self.slots.lock() else {
            return Vec::new();
        };
        slots.retain(|w| w.strong_count() > 0);
        slots.iter().filter_map(Weak::upgrade).collect()
    }

    /// Closes the least recently used idle connection of another database.
    fn evict_least_recent(&self, except: &Slot) -> bool {
        let victim = self
            .live_slots()
            .into_iter()
            .filter(|s| !std::ptr::eq(s.as_ref(), except))
            .filter_map(|s| Some((s.idle_since()?, s)))
            .min_by_key(|(t, _)| *t);
        match victim {
            Some((_, s)) => {
                debug!(slot = ?s, "closing the least recently used Redis connection");
                s.drop_live(None)
            }
            None => false,
        }
    }

    /// Closes connections unused for longer than the idle timeout.
    pub fn sweep_idle(&self) {
        let idle_ms = u64::try_from(self.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let cutoff = self.now_ms().saturating_sub(idle_ms);
        let mut closed = 0;
        for slot in self.live_slots() {
            if slot.idle_since().is_some_and(|t| t < cutoff) && slot.drop_live(None) {
                closed += 1;
            }
        }
        if closed > 0 {
            debug!(closed, "closed idle Redis connections");
        }
    }

    /// Marks a database deleted and closes its connection.
    pub fn disconnect_user(&self, user: &str) {
        for slot in self.live_slots() {
            if matches!(&slot.auth, Auth::User(ns) if ns.user == user) {
                slot.destroyed.store(true, Ordering::Relaxed);
                slot.drop_live(None);
            }
        }
    }

    /// Database connections open right now.
    pub fn open_connections(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }

    /// Pings the server over the admin connection and records the answer. On a failure every
    /// existing connection is retired (new epoch), so calls after the server's return do not
    /// stumble on sockets it closed.
    pub async fn probe(&self, timeout: Duration) -> bool {
        let ok = self
            .admin(Deadline::after(timeout), |mut c| async move {
                c.send_packed_command(&redis::cmd("PING"))
                    .await?
                    .extract_error()
            })
            .await;
        let ok = ok.map(drop).map_err(|e| e.to_string());
        self.available.record(ok.clone());
        if ok.is_err() {
            self.epoch.fetch_add(1, Ordering::Relaxed);
            self.admin.drop_live(None);
        }
        ok.is_ok()
    }
}

/// Whether an error means the connection itself is broken (rather than the command refused).
fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

fn is_auth_failure(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed || e.code() == Some("WRONGPASS")
}
