//! Redis Cluster: which node serves a database, and the administrative connections to each node.
//!
//! The backend needs no other setting for a cluster: `--redis-url` names any node, and every
//! administrative connection asks it `CLUSTER SLOTS` (a standalone server answers that cluster
//! support is disabled, and nothing changes). What differs on a cluster:
//!
//! - **One slot per database.** A namespace's key prefix is `{<user>}:`, a hash tag, so every
//!   key of a database hashes to the same slot. Multi-key commands, transactional batches
//!   (MULTI/EXEC), SCAN/KEYS and dumps work as on one server, because the database's
//!   connection goes straight to the primary that owns its slot. A key name cannot move the
//!   slot: only the first `{…}` of a key counts, and that is the gateway's prefix.
//! - **ACL users on every node.** ACL users are local to a node, so `ACL SETUSER`, `DELUSER`
//!   and `CLIENT KILL USER` go to every node of the slot map, replicas included, so a promoted
//!   replica already knows the database's user. Every primary must answer; a replica that does
//!   not is logged and skipped (if it is promoted without the user, the database's first login
//!   on it is refused and the user is re-created from the catalog, as after a restart).
//! - **Failover.** When a data connection breaks or Redis answers MOVED/ASK/CLUSTERDOWN, the
//!   slot map is marked stale and the connection retired. The next connection of that database
//!   reads the map again (from the first node that answers: the URL's, then the others known)
//!   and goes to the slot's new primary. Calls fail with UNAVAILABLE until Redis has promoted a
//!   replica (`cluster-node-timeout` plus the election), never with another database's data.
//!   A command interrupted by the failure may or may not have run, as with any lost
//!   connection; one refused with MOVED did not run.
//! - **Administrative connections** to the nodes other than the URL's are one per node, cached,
//!   outside the connection cap (which counts the data connections and the pool's admin
//!   reserve).

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, RedisError, RedisResult, Value as Resp,
    aio::MultiplexedConnection,
};
use tokio::time::Instant;
use tracing::{debug, warn};

/// The number of hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;
/// How long connecting to one node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The slot of a key, as Redis Cluster computes it: CRC16 (XMODEM) of the key's hash tag (the
/// text between its first `{` and the next `}`, when not empty), else of the whole key.
pub(super) fn slot_of(key: &[u8]) -> u16 {
    const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);
    let tagged = key.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|b| *b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    CRC.checksum(tagged.unwrap_or(key)) % SLOTS
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Node {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A range of slots, its primary and its replicas.
#[derive(Debug, Clone)]
struct Shard {
    start: u16,
    end: u16,
    primary: Node,
    replicas: Vec<Node>,
}

/// The slot map from `CLUSTER SLOTS`.
#[derive(Debug, Clone, Default)]
pub(super) struct Topology {
    shards: Vec<Shard>,
}

impl Topology {
    /// Parses a `CLUSTER SLOTS` reply; `host` stands in for a node whose endpoint Redis does
    /// not know (an empty or null host means "the one you asked").
    pub(super) fn parse(reply: &Resp, host: &str) -> Option<Self> {
        let Resp::Array(entries) = reply else {
            return None;
        };
        let node = |v: &Resp| -> Option<Node> {
            let Resp::Array(parts) = v else { return None };
            let h = match parts.first()? {
                Resp::BulkString(b) if !b.is_empty() && b != b"?" => {
                    String::from_utf8(b.clone()).ok()?
                }
                Resp::SimpleString(s) if !s.is_empty() && s != "?" => s.clone(),
                _ => host.to_owned(),
            };
            let Resp::Int(port) = parts.get(1)? else {
                return None;
            };
            Some(Node {
                host: h,
                port: u16::try_from(*port).ok()?,
            })
        };
        let mut shards = Vec::new();
        for e in entries {
            let Resp::Array(parts) = e else { return None };
            let (Some(Resp::Int(start)), Some(Resp::Int(end))) = (parts.first(), parts.get(1))
            else {
                return None;
            };
            let primary = node(parts.get(2)?)?;
            let replicas = parts.iter().skip(3).filter_map(node).collect();
            shards.push(Shard {
                start: u16::try_from(*start).ok()?,
                end: u16::try_from(*end).ok()?,
                primary,
                replicas,
            });
        }
        Some(Self { shards })
    }

    /// The primary that serves `slot`, if any does.
    pub fn primary_of(&self, slot: u16) -> Option<&Node> {
        self.shards
            .iter()
            .find(|s| (s.start..=s.end).contains(&slot))
            .map(|s| &s.primary)
    }

    /// The replicas of the shard that serves `slot`.
    #[cfg(test)]
    pub fn replicas_of(&self, slot: u16) -> Vec<Node> {
        self.shards
            .iter()
            .find(|s| (s.start..=s.end).contains(&slot))
            .map(|s| s.replicas.clone())
            .unwrap_or_default()
    }

    /// Every primary, once.
    pub fn primaries(&self) -> Vec<Node> {
        let mut out: Vec<Node> = Vec::new();
        for s in &self.shards {
            if !out.contains(&s.primary) {
                out.push(s.primary.clone());
            }
        }
        out
    }

    /// Every replica, once (a node that is also a primary not included).
    fn replicas(&self) -> Vec<Node> {
        let primaries = self.primaries();
        let mut out: Vec<Node> = Vec::new();
        for n in self.shards.iter().flat_map(|s| &s.replicas) {
            if !primaries.contains(n) && !out.contains(n) {
                out.push(n.clone());
            }
        }
        out
    }
}

/// What the server behind the URL turned out to be.
#[derive(Debug, Clone)]
enum Mode {
    /// No administrative connection has asked yet.
    Unknown,
    Standalone,
    Cluster(Arc<Topology>),
}

/// The cluster's slot map and the administrative connections to its nodes. On a standalone
/// server it only records that it is one.
pub(super) struct Cluster {
    /// The admin's connection settings, from the URL.
    seed: ConnectionInfo,
    mode: RwLock<Mode>,
    /// Set when a call saw the map change (MOVED, a lost primary): read it again before the
    /// next database connection.
    stale: AtomicBool,
    /// An administrative connection per node, opened on first use.
    nodes: Mutex<HashMap<Node, MultiplexedConnection>>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("mode", &self.mode.read().map(|m| m.clone()).ok())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// For the server at `seed` (the admin's URL).
    pub fn new(seed: ConnectionInfo) -> Self {
        Self {
            seed,
            mode: RwLock::new(Mode::Unknown),
            stale: AtomicBool::new(false),
            nodes: Mutex::new(HashMap::new()),
        }
    }

    /// The slot map, when the server is a cluster.
    pub fn topology(&self) -> Option<Arc<Topology>> {
        match &*self.mode.read().ok()? {
            Mode::Cluster(t) => Some(Arc::clone(t)),
            _ => None,
        }
    }

    /// The primary that serves the keys of `prefix`: `None` when the server is not a cluster,
    /// `Some(Err(message))` when no node serves their slot right now.
    pub fn primary_for(&self, prefix: &str) -> Option<Result<Node, String>> {
        let topology = self.topology()?;
        let slot = slot_of(prefix.as_bytes());
        Some(
            topology
                .primary_of(slot)
                .cloned()
                .ok_or_else(|| format!("no Redis Cluster node serves hash slot {slot} right now")),
        )
    }

    /// Whether the server is known to be standalone or a cluster.
    fn known(&self) -> bool {
        !matches!(self.mode.read().as_deref(), Ok(Mode::Unknown))
    }

    /// Whether the map must be read again.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed) || !self.known()
    }

    /// Records that the slot map may have changed.
    pub fn mark_stale(&self) {
        if self.topology().is_some() {
            self.stale.store(true, Ordering::Relaxed);
        }
    }

    /// The URL's node.
    pub fn seed_node(&self) -> Option<Node> {
        match self.seed.addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                Some(Node {
                    host: host.clone(),
                    port: *port,
                })
            }
            _ => None,
        }
    }

    /// The connection settings of `info` pointed at `node` (TLS stays TLS).
    pub fn at(&self, info: ConnectionInfo, node: &Node) -> ConnectionInfo {
        let addr = match info.addr().clone() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: node.host.clone(),
                port: node.port,
                insecure,
                tls_params,
            },
            _ => ConnectionAddr::Tcp(node.host.clone(), node.port),
        };
        info.set_addr(addr)
    }

    /// The nodes to try for an administrative connection: the URL's first, then the others
    /// the last map named (so losing the URL's node does not lose the cluster).
    pub fn admin_candidates(&self) -> Vec<Node> {
        let mut out: Vec<Node> = self.seed_node().into_iter().collect();
        if let Some(t) = self.topology() {
            for n in t.primaries().into_iter().chain(t.replicas()) {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        out
    }

    /// Asks the node behind `conn` (reached at `node`) for the slot map and records what it
    /// says. A standalone server refuses the command; another error leaves the map as it was.
    pub async fn learn(&self, conn: &mut MultiplexedConnection, node: &Node) {
        let reply = conn
            .send_packed_command(redis::cmd("CLUSTER").arg("SLOTS"))
            .await
            .and_then(Resp::extract_error);
        let mode = match reply {
            Ok(reply) => match Topology::parse(&reply, &node.host) {
                Some(t) if !t.shards.is_empty() => Mode::Cluster(Arc::new(t)),
                // A cluster that has not assigned its slots yet: ask again next time.
                _ => return,
            },
            // An admin login without the CLUSTER command could not manage a cluster's nodes
            // anyway; asking again before every connection would only add a round trip.
            Err(e) if is_standalone(&e) || e.code() == Some("NOPERM") => Mode::Standalone,
            Err(e) => {
                debug!(error = %e, "CLUSTER SLOTS failed; the slot map stays as it was");
                return;
            }
        };
        if let Ok(mut m) = self.mode.write() {
            *m = mode;
        }
        self.stale.store(false, Ordering::Relaxed);
    }

    /// Reads the slot map again from the first node that answers.
    pub async fn refresh(&self, by: Instant) {
        for node in self.admin_candidates() {
            match self.node_conn(&node, by).await {
                Ok(mut c) => {
                    self.learn(&mut c, &node).await;
                    if !self.stale.load(Ordering::Relaxed) {
                        return;
                    }
                }
                Err(e) => debug!(%node, error = %e, "node unreachable while reading the slot map"),
            }
        }
    }

    /// An administrative connection to `node`, opened on first use.
    pub async fn node_conn(&self, node: &Node, by: Instant) -> RedisResult<MultiplexedConnection> {
        if let Some(c) = self.nodes.lock().ok().and_then(|m| m.get(node).cloned()) {
            return Ok(c);
        }
        let client = redis::Client::open(self.at(self.seed.clone(), node))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        let conn = tokio::time::timeout_at(
            by,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| {
            RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to the Redis node {node} timed out"),
            ))
        })??;
        if let Ok(mut m) = self.nodes.lock() {
            m.insert(node.clone(), conn.clone());
        }
        Ok(conn)
    }

    /// Drops the cached connection to `node` after it failed.
    pub fn forget(&self, node: &Node) {
        if let Ok(mut m) = self.nodes.lock() {
            m.remove(node);
        }
        self.mark_stale();
    }

    /// Runs `cmd` on `node`'s administrative connection by `by`.
    pub async fn run_on(&self, node: &Node, cmd: &redis::Cmd, by: Instant) -> RedisResult<Resp> {
        let timed_out = || {
            RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the Redis node {node} did not answer in time"),
            ))
        };
        let mut conn = self.node_conn(node, by).await?;
        let reply = tokio::time::timeout_at(by, conn.send_packed_command(cmd))
            .await
            .map_err(|_| timed_out())
            .and_then(|r| r);
        match reply {
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                self.forget(node);
                Err(e)
            }
            other => other?.extract_error(),
        }
    }

    /// Runs `cmd` on every node of the slot map: every primary must succeed; a replica that
    /// fails is logged (see the module docs). On a standalone server it returns `None`, and
    /// the caller runs the command on the pool's admin connection.
    pub async fn run_everywhere(&self, cmd: &redis::Cmd, by: Instant) -> Option<RedisResult<()>> {
        let topology = self.topology()?;
        let primaries = topology.primaries();
        let replicas = topology.replicas();
        let calls = primaries
            .iter()
            .chain(&replicas)
            .map(|n| self.run_on(n, cmd, by));
        let results = futures::future::join_all(calls).await;
        let mut first_error = None;
        for (i, r) in results.into_iter().enumerate() {
            if let Err(e) = r {
                if i < primaries.len() {
                    first_error.get_or_insert(e);
                } else {
                    let node = &replicas[i - primaries.len()];
                    warn!(%node, error = %e, "a Redis replica missed an ACL change");
                }
            }
        }
        Some(first_error.map_or(Ok(()), Err))
    }
}

/// Whether an error is a standalone server refusing a cluster command.
fn is_standalone(e: &RedisError) -> bool {
    e.to_string().contains("cluster support disabled")
}

/// Whether an error means the slot map changed under a call.
pub(super) fn is_redirect(e: &RedisError) -> bool {
    matches!(
        e.code(),
        Some("MOVED" | "ASK" | "CLUSTERDOWN" | "TRYAGAIN" | "MASTERDOWN")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_hash_tag() {
        // Values from CLUSTER KEYSLOT on Redis 7.
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"{x}a"), 16287);
        assert_eq!(slot_of(b"{x}a"), slot_of(b"{x}:anything{else}"));
        assert_eq!(
            slot_of(b"{}a"),
            slot_of(b"{}a"),
            "an empty tag hashes the whole key"
        );
        assert_ne!(slot_of(b"{}a"), slot_of(b""));
    }

    #[test]
    fn the_slot_map_parses_with_replicas_and_unknown_hosts() {
        let node = |h: &str, p: i64| {
            Resp::Array(vec![
                Resp::BulkString(h.as_bytes().to_vec()),
                Resp::Int(p),
                Resp::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Resp::Array(vec![
            Resp::Array(vec![
                Resp::Int(0),
                Resp::Int(8191),
                node("10.0.0.1", 7000),
                node("10.0.0.2", 7001),
            ]),
            Resp::Array(vec![Resp::Int(8192), Resp::Int(16383), node("", 7002)]),
        ]);
        let t = Topology::parse(&reply, "seed").expect("parses");
        assert_eq!(
            t.primary_of(0).map(Node::to_string).as_deref(),
            Some("10.0.0.1:7000")
        );
        assert_eq!(
            t.primary_of(16383).map(Node::to_string).as_deref(),
            Some("seed:7002")
        );
        assert_eq!(t.primaries().len(), 2);
        assert_eq!(t.replicas().len(), 1);
        assert!(Topology::parse(&Resp::Int(1), "seed").is_none());
    }
}
