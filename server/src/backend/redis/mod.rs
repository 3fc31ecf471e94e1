//! Redis: each spawned database is a key namespace on a shared Redis server (7.0 or later),
//! enforced by Redis itself through an ACL user of its own.
//!
//! # Namespaces
//!
//! `locate` picks an ACL user `<user prefix><16 hex>` (the prefix is `dbforge-db-` unless
//! [`RedisBackend::with_prefix`] set another), a 256-bit random password and the
//! key prefix `{<user>}:` (a hash tag: on a Redis Cluster all of a database's keys share one
//! slot; databases spawned before it have `<user>:`), and writes all three into the locator
//! (`user=… prefix=… password=…`), which the catalog keeps. `create` runs `ACL SETUSER <user> reset on >password ~<prefix>*
//! resetchannels -@all +@<data categories> -@<denied categories> +<exceptions> -<exclusions>`
//! (the same lists as the gateway's allowlist below). Every data-plane call runs on the
//! database's own connection, authenticated as that user, so Redis refuses any key outside the
//! prefix even if a command slipped past the gateway. Numbered logical databases are not used.
//!
//! Read grants run as a second ACL user, `<user>-ro`, with the same password and key prefix but
//! only `+@read` (less the denied categories, KEYS, DBSIZE and RANDOMKEY, plus PING, ECHO,
//! TIME, SORT_RO, XREAD and MULTI/EXEC/DISCARD), so Redis refuses every write (`NOPERM` →
//! `Forbidden`). `create` makes it, an open database sets it again before its first read-only
//! call (databases spawned before it existed), and `destroy` deletes it with the other.
//!
//! Redis keeps ACL users in memory: unless the server has an `aclfile` (then the backend runs
//! `ACL SAVE` after each change), a restart forgets them. A database whose user the server no
//! longer knows gets it back from its locator on the next connection (`WRONGPASS` → `ACL
//! SETUSER` → reconnect), so clients only see that the keys are gone if the server also lost its
//! data.
//!
//! # Statements
//!
//! A statement is a Redis command, written either
//! - as an argument list: `sql` is the command name (`HSET`) and `params` are its arguments, or
//! - as a command line in `sql` with no `params` (`HSET user:1 name "Ada Lovelace"`), split like
//!   a POSIX shell line by shlex: single quotes are literal, double quotes allow `\"` and `\\`,
//!   a backslash outside quotes escapes the next character, and `#` is an ordinary character.
//!
//! Both combine: the words of `sql` come first, then `params`. Parameters become arguments:
//! text, decimals, JSON and UUIDs as their text, bytes unchanged, integers in decimal, floats in
//! their shortest exact decimal form (`inf`/`-inf`; NaN is refused), booleans as `1`/`0`,
//! timestamps in RFC 3339 (UTC), dates as `YYYY-MM-DD`, times as `HH:MM:SS[.fff]`. NULL and
//! arrays have no Redis form and are INVALID_ARGUMENT.
//!
//! Clients use their own key names. The gateway finds the key arguments from Redis' own
//! command metadata (`COMMAND`: key specifications, including movable keys such as `numkeys`
//! and `STREAMS`), fetched once and cached, and prefixes exactly those. Key names that come back
//! in replies are stripped of the prefix: SCAN and KEYS results, LMPOP/ZMPOP, XREAD/XREADGROUP
//! stream names, and error messages.
//!
//! # Redis Cluster
//!
//! `--redis-url` may name any node of a Redis Cluster: the backend finds out from the node
//! itself, sends each database's calls to the primary of its slot, keeps ACL users on every
//! node and follows failovers. See `cluster.rs`.
//!
//! # Reply shape
//!
//! Database connections speak RESP3, so replies keep their types. Every reply becomes rows:
//!
//! | reply | columns | rows |
//! |---|---|---|
//! | scalar: bulk/simple/verbatim string, integer, double, boolean, big number, nil | `value` | one |
//! | array or set (LRANGE, SMEMBERS, MGET, KEYS, ZRANGE …) | `value` | one per element |
//! | map (HGETALL, XINFO STREAM, XREAD, CONFIG-like replies) | `field`, `value` | one per entry |
//!
//! Cells: bulk strings are `Text` when valid UTF-8 and `Bytes` otherwise; simple and verbatim
//! strings (`OK`, `string` from TYPE) are `Text`; integers `Int`; doubles (ZSCORE, ZINCRBY)
//! `Float`; booleans `Bool`; big numbers `Decimal`; nil `Null`. A nested array or set is an
//! `Array` of cells (ZRANGE … WITHSCORES gives one `[member, score]` array per row); a nested map
//! is an `Array` of `[field, value]` arrays. A column's kind is the cells' kind when all non-null
//! cells agree, else unspecified. `rows_affected` is always 0 and `last_insert_id` unset: Redis
//! reports what a command changed in its reply.
//!
//! # Query, cursors and KEYS
//!
//! `Query` with an ordinary command sends it once and streams its rows: header, batches,
//! summary. The cursor commands stream page by page: the gateway iterates the cursor from the
//! one given to the end (adding `COUNT 1000` unless the client set one) and sends each page as
//! a row batch, with columns SCAN → `key`; SSCAN → `member`; HSCAN → `field`, `value`;
//! ZSCAN → `member`, `score` (Float). Through `Execute` a cursor command returns one page in the
//! ordinary shape: a row with the next cursor, then a row with the array of elements. SCAN's
//! MATCH patterns are rewritten into the prefix (one is added when absent), its TYPE and COUNT
//! pass through, and `COUNT 1000` is added when absent (SCAN walks the whole server's keyspace,
//! so Redis' default of 10 would give a tenant mostly empty pages). KEYS is emulated with SCAN (MATCH `<prefix><pattern>`), so the server
//! never runs an O(all keys) KEYS for a tenant: `Execute` returns the de-duplicated keys in a
//! `value` column, `Query` streams them page by page (as with SCAN, a key may appear twice if
//! the keyspace is resized during the iteration). KEYS is not available in batches.
//!
//! # Refused commands
//!
//! An allowlist of ACL categories: a command (or subcommand) runs when it belongs to one of
//! `@string @list @hash @set @sortedset @bitmap @hyperloglog @geo @stream @keyspace` and to none
//! of `@dangerous @admin @blocking @pubsub @scripting @connection @transaction`. On top of that:
//! - allowed: PING, ECHO, TIME; KEYS (emulated, confined); SORT/SORT_RO without GET and
//!   without a BY pattern (`BY nosort`, or any BY without `*`, names no key; STORE is mapped);
//!   XREAD/XREADGROUP without BLOCK;
//! - refused: MOVE (another logical database), DBSIZE (counts every tenant's keys), RANDOMKEY
//!   (returns anyone's key name), COPY … DB.
//!
//! So FLUSHALL, FLUSHDB, SWAPDB, MIGRATE, RESTORE, CONFIG, DEBUG, SHUTDOWN, MODULE, ACL,
//! CLIENT, INFO, SAVE/BGSAVE, REPLICAOF, MONITOR, SELECT, HELLO, WAIT, the SUBSCRIBE/PUBLISH
//! family, every blocking command (BLPOP, BRPOP, BLMOVE, BZPOPMIN, … : they would hold the
//! database's shared connection) and all scripting (EVAL, EVALSHA, FCALL, FUNCTION, SCRIPT: a
//! script can build key names the gateway cannot confine, and loaded scripts are shared by the
//! whole server) are refused with PERMISSION_DENIED (`QueryErrorKind::Forbidden`, native code
//! `NOPERM`). MULTI/EXEC/DISCARD/WATCH/UNWATCH in a statement are INVALID_ARGUMENT (use a
//! transactional batch), as transaction control is on the SQL backends. An unknown command or
//! a wrong argument count is a syntax error. OBJECT ENCODING/FREQ/IDLETIME/REFCOUNT, DUMP and
//! the XINFO/XGROUP subcommands are allowed: they only read or manage the named keys.
//!
//! The ACL user is given the same lists, so Redis refuses the same commands on its own (KEYS
//! too: the gateway never sends it). Two confinements are the gateway's alone, because ACL
//! key patterns do not filter them: the MATCH pattern of SCAN (the user may run SCAN, which
//! without the rewrite would list other tenants' key names, though never their values) and
//! COPY's DB option.
//!
//! # Batches
//!
//! - **Without `transaction`**, the statements go out as one pipeline. Statements are checked
//!   first; those before the first refused one are sent and that one's error is returned (with
//!   its index). When Redis fails a command, the error carries the first failing index, and the
//!   commands after it have also run, since they were pipelined with it: the message says how
//!   many.
//! - **With `transaction`**, the batch is `MULTI`, the commands, `EXEC`, in one pipeline on the
//!   database's connection (so nothing else interleaves), and it is atomic in Redis' sense: no
//!   other client sees a partial state, and all or nothing is applied when anything is wrong
//!   before execution: a command the gateway refuses (nothing is sent), or one Redis rejects
//!   while queueing (unknown command, wrong argument count, NOPERM: Redis discards the
//!   transaction with EXECABORT). A command that fails while running (WRONGTYPE, a value that
//!   is not an integer) does not undo the others, because Redis has no rollback: the error
//!   names that statement's index and says the other commands were applied.
//!
//! Batch results carry each command's reply rows. Sessions are not supported (the capability
//! is false; `session` returns Unsupported): a Redis transaction cannot read its own writes
//! before EXEC, so an interactive one would be misleading.
//!
//! # Errors
//!
//! `classify` keeps Redis' error prefix as the native code: NOPERM → Forbidden; WRONGTYPE and
//! "not an integer"/"not a valid float" → DataType; syntax errors, unknown commands and wrong
//! argument counts → Syntax; OOM → LimitExceeded; LOADING/BUSY/READONLY and connection
//! failures → Unavailable; anything else → Other.
//!
//! # Timeouts, outages, connections
//!
//! - A command that runs past the statement timeout is abandoned client-side (Redis cannot
//!   interrupt it; a write may still apply) and fails with Timeout; its connection is replaced
//!   so later calls do not queue behind the late reply. A whole stream shares one deadline.
//! - Connections, the cap and the probe are the shared pool's ([`crate::backend::pool`], as
//!   for PostgreSQL and MySQL): its task pings the server over an administrative connection
//!   (every second, or half the idle timeout if shorter; with backoff while it is down, and at
//!   once after a connection error) and flips [`Backend::available`]. While it is false, calls
//!   fail fast with Unavailable; when it comes back, connections made before the outage are
//!   retired and calls succeed again without a restart. `new` succeeds while the server is down.
//! - One multiplexed connection per open database (concurrent calls pipeline on it), opened on
//!   first use, back on the shared idle list when no call uses it, closed after `idle_timeout`
//!   unused or when the core closes the database; at most `max_connections` to the server, the
//!   administrative ones included. When the cap is reached, the least recently used idle
//!   connection of any database is closed; if none is idle, the call waits until its deadline
//!   (then LimitExceeded). See `pool.rs`.
//!
//! # Dumps, imports and the key-space summary
//!
//! `dump` writes NDJSON, one record `{"key", "type", "ttl_ms", "value"}` per key (byte strings
//! that are not UTF-8 as `{"base64": …}`), read as the database's own user with SCAN and paged
//! reads; `import_records` checks every line, then replays the records in one MULTI/EXEC;
//! `schema` summarizes a sample of at most 1 000 keys as patterns (`user:*`). The exact format
//! and limits are in `transfer.rs`. `explain` is Unsupported: Redis has no query plans.
//!
//! # Pruning and size
//!
//! `destroy` locks the user out (`ACL SETUSER <user> reset`, `CLIENT KILL USER`), deletes the
//! namespace's keys in batches (`SCAN MATCH <prefix>* COUNT 1000` + `UNLINK`), then deletes the
//! user; it is idempotent and also cleans up after a half-finished create. `remove_orphans`
//! removes the users of our exact shape (and the keys under their prefixes, including keys
//! whose user is gone) that the catalog does not know, among the names of this backend's user
//! prefix only (`dbforge-db-` unless [`RedisBackend::with_prefix`] set another): gateways that
//! share a server need different prefixes. The gateway sweeps only storage it owns (SQLite's data
//! directory), so this runs from tests and tools. `size_bytes` sums `MEMORY USAGE` over the namespace's keys when one short SCAN
//! budget (4 pages of COUNT 1000, at most 1000 keys) covers them, and is unknown (`None`)
//! otherwise, rather than a guess.

mod cluster;
mod command;
mod database;
mod namespace;
mod pool;
mod reply;
mod transfer;

use std::{collections::HashSet, sync::Arc, time::Duration};

use async_trait::async_trait;
use redis::{IntoConnectionInfo, Value as Resp};
use tracing::warn;

pub use self::database::RedisDatabase;
pub use self::reply::classify;
use self::{
    cluster::Node,
    command::CommandTable,
    namespace::{
        Namespace, USER_PREFIX, is_ours, legacy_prefix_of, prefix_of, reader_of, user_of_key,
        valid_user_prefix,
    },
    pool::{Deadline, LEGACY_ON_CLUSTER, Pool},
};
use super::{
    Backend, BackendKind, Capabilities, Database, Provisioned, ServerBackendConfig,
    reader::WithReader,
};
use crate::core::{
    error::{Error, Result},
    names::DatabaseName,
    table::SqlDialect,
};

/// Time an administrative command (ACL, one SCAN or UNLINK page, MEMORY USAGE) may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Keys per SCAN page and per UNLINK when pruning.
const PRUNE_BATCH: &str = "1000";
/// The SCAN budget of `size_bytes`: pages, and keys measured.
const SIZE_PAGES: usize = 4;
const SIZE_MAX_KEYS: usize = 1000;

/// What the backend and its open databases share: the connections and the command table.
#[derive(Debug)]
struct Shared {
    pool: Arc<Pool>,
    commands: tokio::sync::OnceCell<Arc<CommandTable>>,
}

impl Shared {
    /// The server's command table, fetched on first use.
    async fn commands(&self, deadline: Deadline) -> Result<Arc<CommandTable>> {
        self.commands
            .get_or_try_init(|| async {
                let reply = self
                    .pool
                    .admin(deadline, |mut c| async move {
                        c.send_packed_command(&redis::cmd("COMMAND"))
                            .await?
                            .extract_error()
                    })
                    .await?;
                Ok(Arc::new(CommandTable::parse(&reply)?))
            })
            .await
            .cloned()
    }

    /// Runs an administrative command on `node` (`None`: the admin connection, any node).
    async fn admin_cmd_at(&self, node: Option<&Node>, args: &[&[u8]]) -> Result<Resp> {
        let cmd = command_of(args);
        self.pool
            .admin_at(node, Deadline::after(ADMIN_TIMEOUT), |mut c| async move {
                c.send_packed_command(&cmd).await?.extract_error()
            })
            .await
    }

    async fn admin_cmd(&self, args: &[&[u8]]) -> Result<Resp> {
        self.admin_cmd_at(None, args).await
    }

    /// Runs an ACL command on every node of a cluster, or on the server.
    async fn everywhere(&self, args: &[&[u8]]) -> Result<()> {
        self.pool
            .everywhere(command_of(args), Deadline::after(ADMIN_TIMEOUT))
            .await
    }

    /// One SCAN page over the whole server (on a cluster, over `node`'s keys): the next cursor
    /// and the keys.
    async fn scan_page(
        &self,
        node: Option<&Node>,
        cursor: &[u8],
        pattern: &[u8],
    ) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
        let reply = self
            .admin_cmd_at(
                node,
                &[
                    b"SCAN",
                    cursor,
                    b"MATCH",
                    pattern,
                    b"COUNT",
                    PRUNE_BATCH.as_bytes(),
                ],
            )
            .await?;
        let bad = || Error::internal("unexpected SCAN reply");
        let Resp::Array(mut page) = reply else {
            return Err(bad());
        };
        let keys = match page.pop() {
            Some(Resp::Array(keys)) => keys
                .into_iter()
                .filter_map(|k| match k {
                    Resp::BulkString(b) => Some(b),
                    _ => None,
                })
                .collect(),
            _ => return Err(bad()),
        };
        match page.pop() {
            Some(Resp::BulkString(next)) => Ok((next, keys)),
            _ => Err(bad()),
        }
    }

    /// Deletes a namespace: the user is locked out first so no write lands behind the sweep,
    /// then the keys under `prefixes` go, then the user. Each step is idempotent.
    async fn remove_namespace(&self, user: &str, prefixes: &[String]) -> Result<()> {
        let reader = reader_of(user);
        let users = [user.as_bytes(), reader.as_bytes()];
        for user_b in users {
            // On a user that does not exist this creates it, disabled; DELUSER below removes it.
            self.everywhere(&[b"ACL", b"SETUSER", user_b, b"reset"])
                .await?;
            if let Err(e) = self
                .everywhere(&[b"CLIENT", b"KILL", b"USER", user_b])
                .await
            {
                tracing::debug!(error = %e, "CLIENT KILL USER found no connection");
            }
        }
        for prefix in prefixes {
            // All of a hash-tagged namespace's keys are on its slot's primary.
            let node = self.pool.node_of(prefix)?;
            let pattern = format!("{prefix}*");
            let mut cursor = b"0".to_vec();
            loop {
                let (next, keys) = self
                    .scan_page(node.as_ref(), &cursor, pattern.as_bytes())
                    .await?;
                if !keys.is_empty() {
                    let mut args: Vec<&[u8]> = vec![b"UNLINK"];
                    args.extend(keys.iter().map(Vec::as_slice));
                    self.admin_cmd_at(node.as_ref(), &args).await?;
                }
                if next == b"0" {
                    break;
                }
                cursor = next;
            }
        }
        self.everywhere(&[b"ACL", b"DELUSER", users[0], users[1]])
            .await?;
        self.pool.save_acl(Deadline::after(ADMIN_TIMEOUT)).await;
        Ok(())
    }
}

/// A command from its words.
fn command_of(args: &[&[u8]]) -> redis::Cmd {
    let mut cmd = redis::Cmd::new();
    for a in args {
        cmd.arg(*a);
    }
    cmd
}

/// The Redis backend.
#[derive(Debug)]
pub struct RedisBackend {
    shared: Arc<Shared>,
    /// What this backend's ACL user names start with.
    user_prefix: String,
    caps: Capabilities,
}

impl RedisBackend {
    /// Creates the backend for the server at `cfg.url` (a user that may manage ACL users and
    /// run SCAN/UNLINK/MEMORY USAGE on every key; logical database 0). It does not need the
    /// server to be up: it connects on first use and probes in the background.
    pub async fn new(cfg: ServerBackendConfig) -> Result<RedisBackend> {
        Self::with_prefix(cfg, USER_PREFIX).await
    }

    /// Like [`Self::new`], with ACL user names (and so key prefixes) starting with
    /// `user_prefix` instead of `dbforge-db-`: lowercase letters, digits and `-`, ending in
    /// `-`. `remove_orphans` only ever touches users and keys of this prefix, so gateways (and
    /// tests) with different prefixes can share a server.
    pub async fn with_prefix(cfg: ServerBackendConfig, user_prefix: &str) -> Result<RedisBackend> {
        if !valid_user_prefix(user_prefix) {
            return Err(Error::invalid(
                "redis user prefix",
                "use at most 32 lowercase letters, digits and '-', ending in '-'",
            ));
        }
        let info = cfg
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| Error::invalid("redis_url", e))?;
        if info.redis_settings().db() != 0 {
            return Err(Error::invalid(
                "redis_url",
                "must select logical database 0: DB-Forge separates Redis databases by key \
                 prefix and ACL user, not by database number",
            ));
        }
        let pool = Pool::start(info, cfg.location(), cfg.max_connections, cfg.idle_timeout).await?;
        let shared = Arc::new(Shared {
            pool,
            commands: tokio::sync::OnceCell::new(),
        });
        Ok(RedisBackend {
            shared,
            user_prefix: user_prefix.to_owned(),
            caps: Capabilities {
                sql: false,
                transactions: true,
                sessions: false,
                typed_params: true,
                table_service: false,
                key_value: true,
                last_insert_id: false,
                returning: false,
                placeholder: "",
                transactional_ddl: false,
                sparql: false,
            },
        })
    }

    /// Database connections open right now (the admin connection not counted).
    pub fn open_connections(&self) -> usize {
        self.shared.pool.open_connections()
    }
}

#[async_trait]
impl Backend for RedisBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Redis
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn dialect(&self) -> Option<&'static dyn SqlDialect> {
        None
    }

    fn locate(&self, name: &DatabaseName) -> Provisioned {
        Provisioned {
            name: name.clone(),
            locator: Namespace::generate(&self.user_prefix).locator(),
        }
    }

    async fn create(&self, db: &Provisioned) -> Result<()> {
        let ns = Namespace::parse(&self.user_prefix, &db.locator)?;
        self.shared.pool.ensure_available()?;
        self.shared
            .pool
            .set_user(&ns, Deadline::after(ADMIN_TIMEOUT))
            .await?;
        self.shared
            .pool
            .set_user(&ns.reader(), Deadline::after(ADMIN_TIMEOUT))
            .await
    }

    async fn destroy(&self, db: &Provisioned) -> Result<()> {
        let ns = Namespace::parse(&self.user_prefix, &db.locator)?;
        self.shared.pool.ensure_available()?;
        self.shared.pool.disconnect_user(&ns.user);
        self.shared.pool.disconnect_user(&ns.reader().user);
        self.shared
            .remove_namespace(&ns.user, std::slice::from_ref(&ns.prefix))
            .await
    }

    async fn disconnect(&self, db: &Provisioned) -> Result<()> {
        let ns = Namespace::parse(&self.user_prefix, &db.locator)?;
        self.shared.pool.ensure_available()?;
        for user in [ns.user.clone(), ns.reader().user] {
            self.shared.pool.retire_user(&user, false);
            match self
                .shared
                .everywhere(&[b"CLIENT", b"KILL", b"USER", user.as_bytes()])
                .await
            {
                // A reader login not made yet (it is made on first read-only use).
                Err(e) if e.to_string().contains("No such user") => {}
                other => other?,
            }
        }
        Ok(())
    }

    async fn open(&self, db: &Provisioned) -> Result<Arc<dyn Database>> {
        let ns = Namespace::parse(&self.user_prefix, &db.locator)?;
        self.shared.pool.ensure_available()?;
        if self.shared.pool.is_cluster() && ns.prefix == legacy_prefix_of(&ns.user) {
            return Err(Error::FailedPrecondition(LEGACY_ON_CLUSTER.into()));
        }
        let reader = ns.reader();
        let shared = Arc::clone(&self.shared);
        // Databases spawned before read-only users existed get theirs on first use; resetting
        // it also brings its rules up to date.
        let ensure = {
            let reader = reader.clone();
            move || -> futures::future::BoxFuture<'static, Result<()>> {
                let shared = Arc::clone(&shared);
                let reader = reader.clone();
                Box::pin(async move {
                    shared
                        .pool
                        .set_user(&reader, Deadline::after(ADMIN_TIMEOUT))
                        .await
                })
            }
        };
        Ok(Arc::new(WithReader::new(
            RedisDatabase::new(Arc::clone(&self.shared), ns),
            RedisDatabase::new(Arc::clone(&self.shared), reader),
            Box::new(ensure),
        )))
    }

    async fn size_bytes(&self, db: &Provisioned) -> Result<Option<u64>> {
        let ns = Namespace::parse(&self.user_prefix, &db.locator)?;
        self.shared.pool.ensure_available()?;
        let pattern = format!("{}*", ns.prefix);
        let node = self.shared.pool.node_of(&ns.prefix)?;
        let mut keys = Vec::new();
        let mut cursor = b"0".to_vec();
        for _ in 0..SIZE_PAGES {
            let (next, page) = self
                .shared
                .scan_page(node.as_ref(), &cursor, pattern.as_bytes())
                .await?;
            keys.extend(page);
            if keys.len() > SIZE_MAX_KEYS {
                return Ok(None);
            }
            if next == b"0" {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.cmd("MEMORY").arg("USAGE").arg(k.as_slice());
                }
                if keys.is_empty() {
                    return Ok(Some(0));
                }
                let count = keys.len();
                let sizes: Vec<Resp> = self
                    .shared
                    .pool
                    .admin_at(
                        node.as_ref(),
                        Deadline::after(ADMIN_TIMEOUT),
                        |mut c| async move { c.send_packed_commands(&pipe, 0, count).await },
                    )
                    .await?;
                // A key that expired between SCAN and MEMORY USAGE answers nil: it counts 0.
                let total = sizes
                    .iter()
                    .map(|s| match s {
                        Resp::Int(n) => u64::try_from(*n).unwrap_or(0),
                        _ => 0,
                    })
                    .sum();
                return Ok(Some(total));
            }
            cursor = next;
        }
        Ok(None)
    }

    async fn remove_orphans(&self, known: &[Provisioned]) -> Result<usize> {
        if !self.shared.pool.available() {
            // Start-up must not depend on Redis; the next start looks again.
            warn!("Redis is unreachable: orphaned users and keys are left for the next start");
            return Ok(0);
        }
        let mut known_users = HashSet::new();
        for p in known {
            match Namespace::parse(&self.user_prefix, &p.locator) {
                Ok(ns) => {
                    known_users.insert(ns.user);
                }
                Err(_) => {
                    // Without every known user, a live database could be taken for an orphan.
                    warn!(db = %p.name, "unreadable Redis locator: not removing orphans");
                    return Ok(0);
                }
            }
        }
        let mut orphans = HashSet::new();
        let users = self.shared.admin_cmd(&[b"ACL", b"USERS"]).await?;
        if let Resp::Array(users) | Resp::Set(users) = users {
            for u in users {
                let name = match u {
                    Resp::BulkString(b) => String::from_utf8(b).ok(),
                    Resp::SimpleString(s) => Some(s),
                    _ => None,
                };
                if let Some(user) = name
                    && is_ours(&self.user_prefix, &user)
                    && !known_users.contains(&user)
                {
                    orphans.insert(user);
                }
            }
        }
        // Keys whose user is gone (the server restarted without an ACL file), under either
        // prefix shape, on every node that holds keys.
        let patterns = [
            format!("{{{}*", self.user_prefix),
            format!("{}*", self.user_prefix),
        ];
        for node in self.shared.pool.key_nodes() {
            for pattern in &patterns {
                let mut cursor = b"0".to_vec();
                loop {
                    let (next, keys) = self
                        .shared
                        .scan_page(node.as_ref(), &cursor, pattern.as_bytes())
                        .await?;
                    for k in keys {
                        let user = user_of_key(&k)
                            .filter(|u| is_ours(&self.user_prefix, u) && !known_users.contains(*u));
                        if let Some(u) = user {
                            orphans.insert(u.to_owned());
                        }
                    }
                    if next == b"0" {
                        break;
                    }
                    cursor = next;
                }
            }
        }
        for user in &orphans {
            // Which shape its keys have is not known for a user found in ACL USERS.
            let mut prefixes = vec![prefix_of(user)];
            if !self.shared.pool.is_cluster() {
                prefixes.push(legacy_prefix_of(user));
            }
            self.shared.remove_namespace(user, &prefixes).await?;
        }
        Ok(orphans.len())
    }

    fn enforces_read_only(&self) -> bool {
        true
    }

    fn available(&self) -> bool {
        self.shared.pool.available()
    }

    fn set_replicas(&self, replicas: usize) {
        self.shared.pool.set_replicas(replicas);
    }

    fn connection_cap(&self) -> Option<(usize, usize)> {
        let pool = &self.shared.pool;
        Some((pool.data_cap(), pool.open_connections()))
    }

    fn availability(&self) -> Result<()> {
        self.shared.pool.ensure_available()
    }
}

#[cfg(test)]
mod tests;
