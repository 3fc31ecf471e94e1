//! Connections to one Redis server, on the shared pool ([`crate::backend::pool`]: the cap per
//! server, LRU eviction of idle connections, idle closing, the availability probe and the pool
//! gauge, as for PostgreSQL and MySQL). What is Redis' own:
//!
//! - **Per database.** A database's calls share one multiplexed connection ([`Slot`]): a call
//!   that finds one in use by others pipelines on it, which is how Redis is fastest (it runs one
//!   command at a time per connection anyway), so `per_database_connections` is met with one.
//!   When its last call ends, the connection goes back to the shared idle list, where another
//!   database at the cap may evict it and the probe task closes it after `idle_timeout`.
//! - **Server cap.** `max_connections` in all, the administrative reserve included; a call that
//!   finds every connection busy waits until its deadline (LimitExceeded).
//! - **Replacement.** A connection is retired after a timeout (the late reply could otherwise
//!   hold up every later call on it), after a connection error, and after an outage
//!   (connections made before the probe saw the server go away are not reused).
//! - **Lost users.** A database user the server no longer knows (a restart without an ACL
//!   file) is re-created from the catalog's locator when its login is refused.
//! - **Cluster.** On a Redis Cluster a database's connection goes to the primary of its slot,
//!   and the administrative connection to the first node that answers ([`super::cluster`]).

use std::{
    fmt,
    future::Future,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use futures::future::BoxFuture;
use redis::{
    AsyncConnectionConfig, ConnectionInfo, ProtocolVersion, RedisConnectionInfo, RedisError,
    aio::MultiplexedConnection,
};
use tokio::time::Instant;
use tracing::{debug, info};

use super::{
    cluster::{self, Cluster, Node},
    namespace::Namespace,
    reply::classify,
};
use crate::backend::{
    BackendKind,
    pool::{self as shared, Connector, Handle, Lease, PoolConn, PoolSizes},
    probe::Location,
};
use crate::core::error::{Error, Result};

/// Why a database spawned before cluster support cannot be served by a cluster.
pub(super) const LEGACY_ON_CLUSTER: &str = "this Redis database was spawned before cluster \
    support: its keys are not in one hash slot, so a Redis Cluster cannot serve it";

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

/// Who a connection authenticates as.
enum Auth {
    Admin,
    User(Namespace),
}

/// Re-creates a database's ACL user from its locator, within the deadline.
type Recreate = Box<dyn Fn(Deadline) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// Where a pool connects: the admin login or a database's ACL user.
pub(super) struct Target {
    auth: Auth,
    /// Set by `destroy`: the database is gone, so its user must not be re-created.
    destroyed: AtomicBool,
    recreate: Option<Recreate>,
}

impl Target {
    fn user(&self) -> &str {
        match &self.auth {
            Auth::Admin => "admin",
            Auth::User(ns) => ns.user.as_str(),
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("user", &self.user())
            .finish_non_exhaustive()
    }
}

fn deleted() -> Error {
    Error::Unavailable("this database has been deleted".into())
}

/// One multiplexed connection.
pub(super) struct RedisConn {
    conn: MultiplexedConnection,
    /// Set when it must not serve another call (see the module docs).
    retired: AtomicBool,
}

impl RedisConn {
    fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }
}

#[async_trait]
impl PoolConn for RedisConn {
    fn is_broken(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    async fn ping(&mut self) -> Result<()> {
        self.conn
            .send_packed_command(&redis::cmd("PING"))
            .await
            .and_then(redis::Value::extract_error)
            .map(drop)
            .map_err(classify)
    }

    async fn close(self) {
        // Dropping the last clone closes the socket.
    }
}

/// Opens connections to the server of `info`.
pub(super) struct RedisConnector {
    info: ConnectionInfo,
    /// `host:port`, for messages (never the URL: it may hold the admin password).
    addr: String,
    /// Where each database's slot lives when the server is a cluster.
    cluster: Arc<Cluster>,
}

#[async_trait]
impl Connector for RedisConnector {
    type Conn = RedisConn;
    type Target = Target;
    const KIND: BackendKind = BackendKind::Redis;
    const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

    async fn open(&self, target: &Target, by: Instant) -> Result<RedisConn> {
        if target.destroyed.load(Ordering::Relaxed) {
            return Err(deleted());
        }
        let conn = match self.connect_routed(&target.auth, by).await {
            Err(e) if is_auth_failure(&e) => self.recreate_user(target, by, e).await?,
            other => other.map_err(classify)?,
        };
        Ok(RedisConn {
            conn,
            retired: AtomicBool::new(false),
        })
    }

    fn busy(&self, connections: usize) -> Error {
        Error::LimitExceeded(format!(
            "all {connections} connections to the Redis server are busy; try again or raise \
             the server connection limit"
        ))
    }
}

impl RedisConnector {
    /// A database user the server does not know (it restarted without persisting ACLs) is
    /// re-created from the catalog's locator, unless the database was deleted.
    async fn recreate_user(
        &self,
        target: &Target,
        by: Instant,
        err: RedisError,
    ) -> Result<MultiplexedConnection> {
        let (Auth::User(ns), Some(recreate)) = (&target.auth, &target.recreate) else {
            return Err(Error::Unavailable(format!(
                "the Redis server at {} refused the admin credentials: {err}",
                self.addr
            )));
        };
        if target.destroyed.load(Ordering::Relaxed) {
            return Err(deleted());
        }
        info!(user = %ns.user, "re-creating a Redis ACL user the server no longer has");
        recreate(Deadline {
            at: by,
            budget: by.saturating_duration_since(Instant::now()),
        })
        .await?;
        self.connect_routed(&target.auth, by)
            .await
            .map_err(classify)
    }

    /// Connects where `auth` belongs: the admin to the URL's node (on a cluster, else to the
    /// first other node that answers, and reads the slot map there); a database to the primary
    /// of its slot on a cluster, else to the server.
    async fn connect_routed(
        &self,
        auth: &Auth,
        by: Instant,
    ) -> redis::RedisResult<MultiplexedConnection> {
        let ns = match auth {
            Auth::Admin => {
                let mut last = None;
                for node in self.cluster.admin_candidates() {
                    match self.connect(auth, Some(&node), by).await {
                        Ok(mut conn) => {
                            self.cluster.learn(&mut conn, &node).await;
                            return Ok(conn);
                        }
                        Err(e) => last = Some(e),
                    }
                }
                return match last {
                    Some(e) => Err(e),
                    // A URL without a TCP address (a Unix socket): never a cluster.
                    None => self.connect(auth, None, by).await,
                };
            }
            Auth::User(ns) => ns,
        };
        if self.cluster.is_stale() {
            self.cluster.refresh(by).await;
        }
        let Some(node) = self.owner(ns)? else {
            return self.connect(auth, None, by).await;
        };
        match self.connect(auth, Some(&node), by).await {
            Err(e) if e.is_io_error() || e.is_connection_refusal() => {
                // The primary may be gone: read the map again, and try its successor if the
                // cluster has already promoted one.
                self.cluster.mark_stale();
                self.cluster.refresh(by).await;
                match self.owner(ns)? {
                    Some(next) if next != node => self.connect(auth, Some(&next), by).await,
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// The primary that serves a database's slot, on a cluster.
    fn owner(&self, ns: &Namespace) -> redis::RedisResult<Option<Node>> {
        let Some(primary) = self.cluster.primary_for(&ns.prefix) else {
            return Ok(None);
        };
        if !ns.prefix.starts_with('{') {
            // `RedisBackend::open` refuses these with FAILED_PRECONDITION first.
            return Err(RedisError::from(std::io::Error::other(LEGACY_ON_CLUSTER)));
        }
        primary
            .map(Some)
            .map_err(|m| RedisError::from(std::io::Error::new(std::io::ErrorKind::NotConnected, m)))
    }

    async fn connect(
        &self,
        auth: &Auth,
        node: Option<&Node>,
        by: Instant,
    ) -> redis::RedisResult<MultiplexedConnection> {
        let base = match node {
            Some(node) => self.cluster.at(self.info.clone(), node),
            None => self.info.clone(),
        };
        let info = match auth {
            Auth::Admin => base,
            Auth::User(ns) => base.set_redis_settings(
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
            // Calls are timed by the statement deadline instead (see `Pool::run`).
            .set_response_timeout(None);
        match tokio::time::timeout_at(
            by,
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
}

/// The connection of one database (or the admin one), shared by the calls in flight on it.
pub(super) struct Slot {
    handle: Handle<RedisConnector>,
    /// The connection the calls in flight share; back on the pool's idle list when none is.
    live: Mutex<Weak<Lease<RedisConnector>>>,
    connecting: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("user", &self.handle.target().user())
            .finish_non_exhaustive()
    }
}

impl Slot {
    fn new(handle: Handle<RedisConnector>) -> Self {
        Self {
            handle,
            live: Mutex::new(Weak::new()),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// The connection in use by other calls, if it may serve one more.
    fn current(&self) -> Option<Arc<Lease<RedisConnector>>> {
        let lease = self.live.lock().ok()?.upgrade()?;
        lease.reusable().then_some(lease)
    }

    /// Retires the connection in use, if any.
    fn retire(&self) {
        if let Some(lease) = self.live.lock().ok().and_then(|l| l.upgrade()) {
            lease.conn().retire();
        }
    }
}

/// Connections to one Redis server.
pub(super) struct Pool {
    server: Arc<shared::Pool<RedisConnector>>,
    admin: Slot,
    cluster: Arc<Cluster>,
    /// The databases' slots, for `disconnect_user`.
    slots: Mutex<Vec<Weak<Slot>>>,
    /// Numbers the slots' keys.
    serial: AtomicU64,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts managing the server of `info` (the admin's URL, at `location`), with
    /// `max_connections` in all; probes it once, then in the background.
    pub async fn start(
        info: ConnectionInfo,
        location: Location,
        max_connections: u32,
        idle_timeout: Duration,
    ) -> Result<Arc<Self>> {
        let max = max_connections.max(2);
        // One multiplexed connection serves a database: no per-database cap beyond the slot.
        let sizes = PoolSizes::new(max, max, idle_timeout)?;
        let cluster = Arc::new(Cluster::new(info.clone()));
        let connector = RedisConnector {
            addr: info.addr().to_string(),
            info,
            cluster: Arc::clone(&cluster),
        };
        let admin = Target {
            auth: Auth::Admin,
            destroyed: AtomicBool::new(false),
            recreate: None,
        };
        let server = shared::Pool::start(connector, admin, sizes, location).await;
        Ok(Arc::new(Self {
            admin: Slot::new(server.admin()),
            server,
            cluster,
            slots: Mutex::new(Vec::new()),
            serial: AtomicU64::new(0),
        }))
    }

    /// See [`shared::Pool::set_replicas`].
    pub fn set_replicas(&self, replicas: usize) {
        self.server.set_replicas(replicas);
    }

    /// See [`shared::Pool::data_cap`].
    pub fn data_cap(&self) -> usize {
        self.server.data_cap()
    }

    /// Whether the last probe reached the server.
    pub fn available(&self) -> bool {
        self.server.is_up()
    }

    /// Fails fast while the server is known to be down.
    pub fn ensure_available(&self) -> Result<()> {
        self.server.ensure_up()
    }

    /// A slot for a database, whose user is re-created from `ns` if the server lost it.
    pub fn user_slot(self: &Arc<Self>, ns: Namespace) -> Arc<Slot> {
        let pool = Arc::downgrade(self);
        // Its own key: a connection stays with the handle that made it, as another handle of
        // the same database may hold one the server has since closed (its user was re-made).
        let key = format!(
            "{}#{}",
            ns.user,
            self.serial.fetch_add(1, Ordering::Relaxed)
        );
        let recreate: Recreate = {
            let ns = ns.clone();
            Box::new(move |deadline| {
                let (pool, ns) = (pool.clone(), ns.clone());
                Box::pin(async move {
                    let pool = pool.upgrade().ok_or_else(deleted)?;
                    pool.set_user(&ns, deadline).await
                })
            })
        };
        let target = Target {
            auth: Auth::User(ns),
            destroyed: AtomicBool::new(false),
            recreate: Some(recreate),
        };
        let slot = Arc::new(Slot::new(self.server.database(&key, target)));
        if let Ok(mut slots) = self.slots.lock() {
            slots.retain(|w| w.strong_count() > 0);
            slots.push(Arc::downgrade(&slot));
        }
        slot
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
    /// or a connection error retires the connection.
    pub async fn run<T, F, Fut>(&self, slot: &Slot, deadline: Deadline, f: F) -> Result<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let lease = self.lease(slot, deadline).await?;
        match tokio::time::timeout_at(deadline.at, f(lease.conn().conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if is_connection_error(&e) {
                    lease.conn().retire();
                    self.cluster.mark_stale();
                    self.server.suspect();
                } else if cluster::is_redirect(&e) {
                    // The slot moved (failover, resharding): the next call connects to its
                    // new primary.
                    lease.conn().retire();
                    self.cluster.mark_stale();
                }
                Err(classify(e))
            }
            Err(_) => {
                // The reply will still arrive on this connection and hold up whatever is
                // queued behind it; later calls get a fresh connection instead.
                lease.conn().retire();
                Err(deadline.timeout("the Redis command"))
            }
        }
    }

    /// The slot's connection: the one its calls in flight share, or one from the pool.
    async fn lease(&self, slot: &Slot, deadline: Deadline) -> Result<Arc<Lease<RedisConnector>>> {
        if let Some(lease) = slot.current() {
            return Ok(lease);
        }
        let _connecting = tokio::time::timeout_at(deadline.at, slot.connecting.lock())
            .await
            .map_err(|_| deadline.timeout("connecting to Redis"))?;
        if let Some(lease) = slot.current() {
            return Ok(lease);
        }
        let lease = Arc::new(slot.handle.acquire(deadline.at).await?);
        if let Ok(mut live) = slot.live.lock() {
            *live = Arc::downgrade(&lease);
        }
        Ok(lease)
    }

    /// Creates or resets a database's ACL user, and persists ACLs where the server can.
    pub async fn set_user(&self, ns: &Namespace, deadline: Deadline) -> Result<()> {
        let mut cmd = redis::Cmd::new();
        for a in ns.acl_setuser() {
            cmd.arg(a);
        }
        self.everywhere(cmd, deadline).await?;
        self.save_acl(deadline).await;
        Ok(())
    }

    /// Runs an administrative command on every node of a cluster (see [`super::cluster`]),
    /// or on the server.
    pub async fn everywhere(&self, cmd: redis::Cmd, deadline: Deadline) -> Result<()> {
        if let Some(done) = self.cluster.run_everywhere(&cmd, deadline.at).await {
            return done.map_err(classify);
        }
        self.admin(deadline, |mut c| async move {
            c.send_packed_command(&cmd).await?.extract_error()
        })
        .await
        .map(drop)
    }

    /// The node an administrative command about the keys of `prefix` must run on: the
    /// primary of their slot on a cluster (`None` on a standalone server: the admin
    /// connection).
    pub fn node_of(&self, prefix: &str) -> Result<Option<Node>> {
        self.cluster
            .primary_for(prefix)
            .transpose()
            .map_err(Error::Unavailable)
    }

    /// The nodes that hold keys: every primary of a cluster, or the server (`None`).
    pub fn key_nodes(&self) -> Vec<Option<Node>> {
        match self.cluster.topology() {
            Some(t) => t.primaries().into_iter().map(Some).collect(),
            None => vec![None],
        }
    }

    /// Whether the server is a Redis Cluster (as far as the last slot map says).
    pub fn is_cluster(&self) -> bool {
        self.cluster.topology().is_some()
    }

    /// Runs `f` on an administrative connection to `node`, or on the pool's admin connection
    /// when `node` is `None`.
    pub async fn admin_at<T, F, Fut>(
        &self,
        node: Option<&Node>,
        deadline: Deadline,
        f: F,
    ) -> Result<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let Some(node) = node else {
            return self.admin(deadline, f).await;
        };
        let conn = self
            .cluster
            .node_conn(node, deadline.at)
            .await
            .map_err(|e| {
                self.cluster.forget(node);
                classify(e)
            })?;
        match tokio::time::timeout_at(deadline.at, f(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if is_connection_error(&e) || cluster::is_redirect(&e) {
                    self.cluster.forget(node);
                }
                Err(classify(e))
            }
            Err(_) => {
                self.cluster.forget(node);
                Err(deadline.timeout("the Redis command"))
            }
        }
    }

    /// `ACL SAVE` when the server has an ACL file, so users survive a restart; without one it
    /// answers an error, which is fine: missing users are re-created on first use.
    pub async fn save_acl(&self, deadline: Deadline) {
        let mut save = redis::cmd("ACL");
        save.arg("SAVE");
        let saved = self.everywhere(save, deadline).await;
        if let Err(e) = saved {
            debug!(error = %e, "ACL SAVE not done (no aclfile configured?)");
        }
    }

    /// Marks a database deleted and closes its connections.
    pub fn disconnect_user(&self, user: &str) {
        self.retire_user(user, true);
    }

    /// Closes the connections of `user`'s database (the next call opens a new one), and marks
    /// the database deleted when `destroyed`.
    pub fn retire_user(&self, user: &str, destroyed: bool) {
        let slots: Vec<Arc<Slot>> = match self.slots.lock() {
            Ok(slots) => slots.iter().filter_map(Weak::upgrade).collect(),
            Err(_) => Vec::new(),
        };
        for slot in slots {
            let target = slot.handle.target();
            if target.user() == user && matches!(target.auth, Auth::User(_)) {
                if destroyed {
                    target.destroyed.store(true, Ordering::Relaxed);
                }
                slot.retire();
                self.server.close_idle(slot.handle.key());
            }
        }
    }

    /// Database connections open right now (idle or in use; the admin ones not counted).
    pub fn open_connections(&self) -> usize {
        self.server.open_connections()
    }
}

/// Whether an error means the connection itself is broken (rather than the command refused).
fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

fn is_auth_failure(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed || e.code() == Some("WRONGPASS")
}
