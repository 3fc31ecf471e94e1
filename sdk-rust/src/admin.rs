//! What the admin calls answer: API keys, server figures and audit records, as the SDK's own
//! types rather than the generated messages (the same shapes as Python's `dbforge.admin` and
//! TypeScript's `src/admin.ts`).
//!
//! Field names are the proto's; the values are Rust's own: [`SystemTime`] for timestamps,
//! [`Duration`] for durations, `Option` for a time or number that may be unset, [`Role`] for
//! roles and a map for label selectors. Counts are `u64` (the server never sends negative ones).
//!
//! ```no_run
//! use dbforge::{AuditFilter, Client};
//!
//! # async fn demo(admin: Client) -> Result<(), dbforge::Error> {
//! let me = admin.who_am_i().await?;
//! println!("{} ({}), created {:?}", me.name, me.id, me.created_at);
//! for key in admin.list_api_keys(false).await? {
//!     println!("{}: {} grants, expires {:?}", key.id, key.grants.len(), key.expires_at);
//! }
//! let stats = admin.server_stats().await?;
//! println!("up {:?}, {} databases", stats.uptime, stats.databases);
//! let (events, _next) = admin
//!     .list_audit_events(AuditFilter { outcome: "PERMISSION_DENIED".into(), ..Default::default() })
//!     .await?;
//! for e in events {
//!     println!("{} {} {} {:?}", e.seq, e.rpc, e.outcome, e.duration);
//! }
//! let verdict = admin.verify_audit_log().await?;
//! assert!(verdict.ok, "broken at {:?}: {}", verdict.first_broken_seq, verdict.problem);
//! # Ok(())
//! # }
//! ```

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::{Backend, Grant, Role, pb};

/// A protobuf time, or `None` when unset or before the epoch.
pub(crate) fn time(t: Option<prost_types::Timestamp>) -> Option<SystemTime> {
    let t = t?;
    let secs = u64::try_from(t.seconds).ok()?;
    let nanos = u32::try_from(t.nanos).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// A protobuf duration; unset or negative is zero.
pub(crate) fn duration(d: Option<prost_types::Duration>) -> Duration {
    d.and_then(|d| {
        Some(Duration::new(
            u64::try_from(d.seconds).ok()?,
            u32::try_from(d.nanos).ok()?,
        ))
    })
    .unwrap_or_default()
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

/// A grant as an API key carries it: `role` on one target, which is exactly one of `database`
/// (a name), `pattern` (`*` stands for any characters) or `labels` (all of them); the other two
/// are empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    /// The database's name, for a grant on one database.
    pub database: String,
    /// The name pattern, for a grant on the databases it matches.
    pub pattern: String,
    /// The labels, for a grant on the databases carrying all of them.
    pub labels: BTreeMap<String, String>,
    /// The role it gives.
    pub role: Role,
}

impl KeyGrant {
    /// The same grant, as [`ApiKeySpec::grant`](crate::ApiKeySpec::grant) takes it.
    ///
    /// ```
    /// use dbforge::{Grant, KeyGrant, Role};
    /// let g = KeyGrant { database: "reports".into(), pattern: String::new(), labels: Default::default(), role: Role::Read };
    /// assert_eq!(g.to_grant(), Grant::database("reports", Role::Read));
    /// ```
    pub fn to_grant(&self) -> Grant {
        if !self.database.is_empty() {
            Grant::database(self.database.clone(), self.role)
        } else if !self.pattern.is_empty() {
            Grant::pattern(self.pattern.clone(), self.role)
        } else {
            Grant::labels(self.labels.clone(), self.role)
        }
    }
}

impl From<pb::Grant> for KeyGrant {
    fn from(g: pb::Grant) -> Self {
        let pb::Grant { target, role } = g;
        let mut grant = KeyGrant {
            database: String::new(),
            pattern: String::new(),
            labels: BTreeMap::new(),
            role: Role::try_from(role).unwrap_or(Role::Unspecified),
        };
        match target {
            Some(pb::grant::Target::Database(d)) => grant.database = d,
            Some(pb::grant::Target::Pattern(p)) => grant.pattern = p,
            Some(pb::grant::Target::Labels(sel)) => grant.labels = sel.labels.into_iter().collect(),
            None => {}
        }
        grant
    }
}

/// An API key, never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The key's id (the secret reads `dbf_<id>_…`).
    pub id: String,
    /// The name it was created with.
    pub name: String,
    /// Whether it may do everything, including the admin calls.
    pub admin: bool,
    /// Whether it may create databases (it owns those it creates).
    pub can_create: bool,
    /// How many databases it may own at once; 0: no limit.
    pub create_quota: u32,
    /// Roles on other databases.
    pub grants: Vec<KeyGrant>,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it stops working; `None`: never.
    pub expires_at: Option<SystemTime>,
    /// When it was revoked; `None`: it was not.
    pub revoked_at: Option<SystemTime>,
}

impl From<pb::ApiKey> for ApiKey {
    fn from(k: pb::ApiKey) -> Self {
        let pb::ApiKey {
            id,
            name,
            admin,
            can_create,
            create_quota,
            grants,
            created_at,
            expires_at,
            revoked_at,
        } = k;
        ApiKey {
            id,
            name,
            admin,
            can_create,
            create_quota: u32::try_from(create_quota).unwrap_or_default(),
            grants: grants.into_iter().map(Into::into).collect(),
            created_at: time(created_at).unwrap_or(UNIX_EPOCH),
            expires_at: time(expires_at),
            revoked_at: time(revoked_at),
        }
    }
}

/// Calls of one RPC since the server started.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcStats {
    /// The RPC, e.g. `Execute`.
    pub rpc: String,
    /// How many calls.
    pub calls: u64,
    /// How many of them ended with an error.
    pub errors: u64,
    /// Their mean duration.
    pub mean_duration: Duration,
    /// Their longest duration.
    pub max_duration: Duration,
}

impl From<pb::RpcStats> for RpcStats {
    fn from(r: pb::RpcStats) -> Self {
        let pb::RpcStats {
            rpc,
            calls,
            errors,
            mean_duration,
            max_duration,
        } = r;
        RpcStats {
            rpc,
            calls: count(calls),
            errors: count(errors),
            mean_duration: duration(mean_duration),
            max_duration: duration(max_duration),
        }
    }
}

/// The answer of [`Client::server_stats`](crate::Client::server_stats): the gateway's
/// operational figures now.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStats {
    /// Time since the server started.
    pub uptime: Duration,
    /// Open client connections (HTTP/2 and HTTP/1.1).
    pub active_connections: u64,
    /// Streamed results being sent now.
    pub active_streams: u64,
    /// Open interactive sessions (transactions).
    pub active_sessions: u64,
    /// Spawned databases.
    pub databases: u64,
    /// Databases with open connections.
    pub open_databases: u64,
    /// Calls, errors and durations per RPC.
    pub rpcs: Vec<RpcStats>,
    /// Errors over calls, all RPCs together (0 when there were no calls).
    pub error_rate: f64,
    /// Each open PostgreSQL or MySQL database's share of its server's connections.
    pub connection_shares: Vec<ConnectionShare>,
    /// The gateways sharing this gateway's catalog with a recent heartbeat (itself included),
    /// by name.
    pub nodes: Vec<Node>,
    /// This gateway's node name.
    pub node: String,
    /// Per server engine, this gateway's share of the server's connection cap.
    pub connection_caps: Vec<ConnectionCap>,
}

/// A gateway sharing the catalog, as its last heartbeat recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its node name.
    pub name: String,
    /// The address it listens on for gRPC.
    pub address: String,
    /// When its process started.
    pub started: Option<SystemTime>,
    /// Its last heartbeat.
    pub heartbeat: Option<SystemTime>,
    /// Free bytes on its data directory's filesystem (new SQLite databases go to the most).
    pub free_bytes: u64,
}

/// This gateway's connections to one engine's server: with N live gateways on one catalog,
/// each keeps to 1/N of the server's cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionCap {
    /// The engine.
    pub backend: Backend,
    /// Data-plane connections this gateway may open now.
    pub cap: u32,
    /// Data-plane connections open now.
    pub open: u32,
}

/// One open database's share of its server's connection cap, which follows its demand
/// (see `ConnectionShare` in `operations.proto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionShare {
    /// The database's engine.
    pub backend: Backend,
    /// The database's name.
    pub database: String,
    /// Connections it may hold now.
    pub share: u32,
    /// Its connections lent to calls now.
    pub in_use: u32,
    /// Its connections kept open, unused.
    pub idle: u32,
    /// Its calls waiting for a connection.
    pub waiters: u32,
    /// The least share it keeps even when idle.
    pub min: u32,
    /// The largest share it may grow to.
    pub max: u32,
}

impl From<pb::ConnectionShare> for ConnectionShare {
    fn from(c: pb::ConnectionShare) -> Self {
        let pb::ConnectionShare {
            backend,
            database,
            share,
            in_use,
            idle,
            waiters,
            min,
            max,
        } = c;
        let n = |v: i32| u32::try_from(v).unwrap_or_default();
        ConnectionShare {
            backend: Backend::try_from(backend).unwrap_or(Backend::Unspecified),
            database,
            share: n(share),
            in_use: n(in_use),
            idle: n(idle),
            waiters: n(waiters),
            min: n(min),
            max: n(max),
        }
    }
}

impl From<pb::GetServerStatsResponse> for ServerStats {
    fn from(s: pb::GetServerStatsResponse) -> Self {
        let pb::GetServerStatsResponse {
            uptime,
            active_connections,
            active_streams,
            active_sessions,
            databases,
            open_databases,
            rpcs,
            error_rate,
            connection_shares,
            nodes,
            node,
            connection_caps,
        } = s;
        let n = |v: i32| u32::try_from(v).unwrap_or_default();
        ServerStats {
            uptime: duration(uptime),
            active_connections: count(active_connections),
            active_streams: count(active_streams),
            active_sessions: count(active_sessions),
            databases: count(databases),
            open_databases: count(open_databases),
            rpcs: rpcs.into_iter().map(Into::into).collect(),
            error_rate,
            connection_shares: connection_shares.into_iter().map(Into::into).collect(),
            nodes: nodes
                .into_iter()
                .map(|g| Node {
                    name: g.name,
                    address: g.address,
                    started: time(g.started),
                    heartbeat: time(g.heartbeat),
                    free_bytes: u64::try_from(g.free_bytes).unwrap_or_default(),
                })
                .collect(),
            node,
            connection_caps: connection_caps
                .into_iter()
                .map(|c| ConnectionCap {
                    backend: Backend::try_from(c.backend).unwrap_or(Backend::Unspecified),
                    cap: n(c.cap),
                    open: n(c.open),
                })
                .collect(),
        }
    }
}

/// Which audit records [`Client::list_audit_events`](crate::Client::list_audit_events)
/// returns, and which page. Empty strings and `None` match everything.
///
/// ```
/// use dbforge::AuditFilter;
/// let denied = AuditFilter { outcome: "PERMISSION_DENIED".into(), page_size: 100, ..Default::default() };
/// # let _ = denied;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only calls made with this key id.
    pub key_id: String,
    /// Only calls naming this database.
    pub database: String,
    /// Only calls with this outcome, a gRPC code name (`OK`, `PERMISSION_DENIED`, …).
    pub outcome: String,
    /// Only calls at or after this time.
    pub since: Option<SystemTime>,
    /// Only calls before this time.
    pub until: Option<SystemTime>,
    /// Records per page; 0: the server's default.
    pub page_size: u32,
    /// The token a previous page returned; empty: the first page.
    pub page_token: String,
}

impl From<AuditFilter> for pb::ListAuditEventsRequest {
    fn from(f: AuditFilter) -> Self {
        let AuditFilter {
            key_id,
            database,
            outcome,
            since,
            until,
            page_size,
            page_token,
        } = f;
        pb::ListAuditEventsRequest {
            key_id,
            database,
            outcome,
            since: since.map(Into::into),
            until: until.map(Into::into),
            page_size: i32::try_from(page_size).unwrap_or(i32::MAX),
            page_token,
        }
    }
}

/// One audited call, a link of the audit log's hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Its position in the chain.
    pub seq: u64,
    /// When it happened.
    pub time: SystemTime,
    /// The calling key's id (`-` without authentication).
    pub key_id: String,
    /// The RPC.
    pub rpc: String,
    /// The database, when the call named one (else empty).
    pub database: String,
    /// The statement or operation text, cut at 256 characters; parameters are never recorded.
    pub statement: String,
    /// SHA-256 (hex) of the full statement text.
    pub statement_hash: String,
    /// Rows changed; `None` when not known.
    pub rows_affected: Option<u64>,
    /// The outcome's gRPC code name (`OK`, `PERMISSION_DENIED`, …).
    pub outcome: String,
    /// How long the call took.
    pub duration: Duration,
    /// The hash of the record before (hex).
    pub prev_hash: String,
    /// This record's hash (hex).
    pub hash: String,
}

impl From<pb::AuditEvent> for AuditEvent {
    fn from(e: pb::AuditEvent) -> Self {
        let pb::AuditEvent {
            seq,
            time: at,
            key_id,
            rpc,
            database,
            statement,
            statement_hash,
            rows_affected,
            outcome,
            duration: took,
            prev_hash,
            hash,
        } = e;
        AuditEvent {
            seq: count(seq),
            time: time(at).unwrap_or(UNIX_EPOCH),
            key_id,
            rpc,
            database,
            statement,
            statement_hash,
            rows_affected: rows_affected.map(count),
            outcome,
            duration: duration(took),
            prev_hash,
            hash,
        }
    }
}

/// The answer of [`Client::verify_audit_log`](crate::Client::verify_audit_log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerdict {
    /// Whether the whole hash chain holds.
    pub ok: bool,
    /// How many records were checked.
    pub checked: u64,
    /// The `seq` of the first record that was edited or whose predecessors were deleted;
    /// `None` when `ok`.
    pub first_broken_seq: Option<u64>,
    /// What is wrong with that record (empty when `ok`).
    pub problem: String,
}

impl From<pb::VerifyAuditLogResponse> for AuditVerdict {
    fn from(v: pb::VerifyAuditLogResponse) -> Self {
        let pb::VerifyAuditLogResponse {
            ok,
            checked,
            first_broken_seq,
            problem,
        } = v;
        AuditVerdict {
            ok,
            checked: count(checked),
            first_broken_seq: (!ok).then(|| count(first_broken_seq)),
            problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos })
    }

    fn dur(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
        Some(prost_types::Duration { seconds, nanos })
    }

    #[test]
    fn api_keys_convert_with_their_grants_and_times() {
        let key = ApiKey::from(pb::ApiKey {
            id: "k1".into(),
            name: "agent".into(),
            admin: false,
            can_create: true,
            create_quota: 10,
            grants: vec![
                Grant::pattern("agent-*", Role::Owner).0,
                Grant::labels([("team", "search")], Role::Read).0,
            ],
            created_at: ts(1_700_000_000, 5),
            expires_at: None,
            revoked_at: ts(1_700_000_060, 0),
        });
        assert_eq!(key.create_quota, 10);
        assert_eq!(key.created_at, UNIX_EPOCH + Duration::new(1_700_000_000, 5));
        assert_eq!(key.expires_at, None);
        assert_eq!(
            key.revoked_at,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_060))
        );
        assert_eq!(key.grants[0].pattern, "agent-*");
        assert_eq!(key.grants[0].role, Role::Owner);
        assert!(key.grants[0].database.is_empty() && key.grants[0].labels.is_empty());
        assert_eq!(key.grants[1].labels["team"], "search");
        assert_eq!(
            key.grants[1].to_grant(),
            Grant::labels([("team", "search")], Role::Read),
            "a key's grant converts back to the one it was created with"
        );
    }

    #[test]
    fn stats_convert_counts_and_durations() {
        let stats = ServerStats::from(pb::GetServerStatsResponse {
            uptime: dur(90, 0),
            active_connections: 2,
            active_streams: 1,
            active_sessions: 0,
            databases: 7,
            open_databases: 3,
            rpcs: vec![pb::RpcStats {
                rpc: "Execute".into(),
                calls: 10,
                errors: 1,
                mean_duration: dur(0, 1_500_000),
                max_duration: None,
            }],
            error_rate: 0.1,
            connection_shares: vec![pb::ConnectionShare {
                backend: pb::Backend::Postgres as i32,
                database: "app".into(),
                share: 3,
                in_use: 2,
                idle: 1,
                waiters: 0,
                min: 1,
                max: 6,
            }],
            nodes: vec![pb::Node {
                name: "a1".into(),
                address: "10.0.0.1:50051".into(),
                started: ts(1_700_000_000, 0),
                heartbeat: ts(1_700_000_060, 500_000_000),
                free_bytes: 1 << 40,
            }],
            node: "a1".into(),
            connection_caps: vec![pb::ConnectionCap {
                backend: pb::Backend::Postgres as i32,
                cap: 48,
                open: 5,
            }],
        });
        assert_eq!(stats.uptime, Duration::from_secs(90));
        assert_eq!(
            (stats.node.as_str(), stats.nodes[0].address.as_str()),
            ("a1", "10.0.0.1:50051")
        );
        assert_eq!(
            stats.nodes[0].heartbeat,
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_060_500))
        );
        assert_eq!(
            stats.connection_caps,
            vec![ConnectionCap {
                backend: Backend::Postgres,
                cap: 48,
                open: 5
            }]
        );
        let share = &stats.connection_shares[0];
        assert_eq!(
            (share.backend, share.database.as_str()),
            (Backend::Postgres, "app")
        );
        assert_eq!(
            (share.share, share.in_use, share.idle, share.min, share.max),
            (3, 2, 1, 1, 6)
        );
        assert_eq!(stats.databases, 7);
        assert_eq!(stats.rpcs[0].mean_duration, Duration::from_micros(1500));
        assert_eq!(stats.rpcs[0].max_duration, Duration::ZERO, "unset is zero");
        assert_eq!(stats.error_rate, 0.1);
    }

    #[test]
    fn audit_records_and_verdicts_keep_what_is_unset() {
        let e = AuditEvent::from(pb::AuditEvent {
            seq: 4,
            time: ts(1_700_000_000, 0),
            rpc: "Execute".into(),
            rows_affected: None,
            outcome: "OK".into(),
            duration: dur(0, 2_000_000),
            ..Default::default()
        });
        assert_eq!((e.seq, e.rows_affected), (4, None));
        assert_eq!(e.duration, Duration::from_millis(2));
        let ok = AuditVerdict::from(pb::VerifyAuditLogResponse {
            ok: true,
            checked: 4,
            first_broken_seq: 0,
            problem: String::new(),
        });
        assert_eq!(ok.first_broken_seq, None);
        let broken = AuditVerdict::from(pb::VerifyAuditLogResponse {
            ok: false,
            checked: 4,
            first_broken_seq: 3,
            problem: "hash mismatch".into(),
        });
        assert_eq!(broken.first_broken_seq, Some(3));
    }

    #[test]
    fn audit_filters_become_requests() {
        let at = UNIX_EPOCH + Duration::from_secs(100);
        let req = pb::ListAuditEventsRequest::from(AuditFilter {
            outcome: "OK".into(),
            since: Some(at),
            page_size: 50,
            ..Default::default()
        });
        assert_eq!(req.outcome, "OK");
        assert_eq!(req.since.map(|t| t.seconds), Some(100));
        assert_eq!(req.until, None);
        assert_eq!(req.page_size, 50);
    }
}
