//! The names of every metric the gateway records, in one place, so that the Prometheus
//! exposition, `GetServerStats`, the README and the tests all speak of the same series.
//!
//! Labels: `backend` is [`BackendKind::as_str`](crate::core::engine::BackendKind::as_str);
//! `rpc` is the gRPC method name; `code` a gRPC status code name; `reason` a refusal reason.

/// Counter: finished RPCs, by `rpc` and `code`.
pub const RPC_REQUESTS_TOTAL: &str = "dbforge_rpc_requests_total";
/// Histogram (seconds): RPC latency, by `rpc`.
pub const RPC_DURATION_SECONDS: &str = "dbforge_rpc_duration_seconds";
/// Counter: refused requests, by `reason` (`UNAUTHENTICATED`, `RATE_LIMITED`, …).
pub const REJECTED_REQUESTS_TOTAL: &str = "dbforge_rejected_requests_total";
/// Gauge: open client connections.
pub const ACTIVE_CONNECTIONS: &str = "dbforge_active_connections";
/// Gauge: response streams being sent.
pub const ACTIVE_STREAMS: &str = "dbforge_active_streams";
/// Gauge: open interactive sessions.
pub const ACTIVE_SESSIONS: &str = "dbforge_active_sessions";
/// Histogram (seconds): statement durations, by `backend`.
pub const STATEMENT_DURATION_SECONDS: &str = "dbforge_statement_duration_seconds";
/// Counter: rows streamed to clients, by `backend`.
pub const ROWS_STREAMED_TOTAL: &str = "dbforge_rows_streamed_total";
/// Counter: bytes streamed to clients (encoded, as sent), by `backend`.
pub const BYTES_STREAMED_TOTAL: &str = "dbforge_bytes_streamed_total";
/// Gauge: databases in the catalog, by `backend` and `status` (`ready`, `unavailable`).
pub const DATABASES: &str = "dbforge_databases";
/// Gauge: databases with an open handle.
pub const OPEN_DATABASES: &str = "dbforge_open_databases";
/// Gauge: engine connections checked out of a pool, by `backend`.
pub const POOL_CONNECTIONS_IN_USE: &str = "dbforge_pool_connections_in_use";
/// Gauge: connections an open database may hold now (its share of its server's cap, which
/// follows its demand), by `backend` and `database`; 0 once the database closes. One series
/// per database opened since the start (PostgreSQL and MySQL; see `backend/pool.rs`).
pub const POOL_CONNECTION_SHARE: &str = "dbforge_pool_connection_share";
/// Counter: backups that ended, by `backend` and `outcome` (`completed`, `failed`).
pub const BACKUPS_TOTAL: &str = "dbforge_backups_total";
/// Counter: bytes stored by completed backups, by `backend`.
pub const BACKUP_BYTES_TOTAL: &str = "dbforge_backup_bytes_total";
/// Histogram: how long backups took, by `backend` and `outcome`.
pub const BACKUP_DURATION_SECONDS: &str = "dbforge_backup_duration_seconds";
/// Gauge: seconds since the newest completed backup of each database started, by `database`
/// (refreshed by the scheduler; alert when it grows past the schedule's interval).
pub const BACKUP_NEWEST_AGE_SECONDS: &str = "dbforge_backup_newest_age_seconds";
/// Counter: restores that ended, by `backend`, `mode` (`replace`, `new`) and `outcome`.
pub const RESTORES_TOTAL: &str = "dbforge_restores_total";
/// Counter: forks that ended, by `backend`, `method` (`sqlite-backup-api`, `template`,
/// `dump-replay`, `key-records`, `backup`) and `outcome` (`completed`, `failed`).
pub const FORKS_TOTAL: &str = "dbforge_forks_total";
/// Histogram (seconds): how long forks took, by `backend` and `method`.
pub const FORK_DURATION_SECONDS: &str = "dbforge_fork_duration_seconds";
/// Counter: databases the pruner handled, by `backend`, `cause` (`expired`, `idle`) and
/// `outcome` (`pruned`; `backup_failed` when the final backup failed and the database was
/// kept; `failed` when dropping it failed).
pub const PRUNES_TOTAL: &str = "dbforge_prunes_total";
/// Counter: changes of a database server's availability, by `backend` and `to`
/// (`unavailable`, `recovered`); see `core/health.rs`.
pub const AVAILABILITY_CHANGES_TOTAL: &str = "dbforge_availability_changes_total";
/// Counter: SQLite files found damaged at start-up and quarantined, by `outcome`
/// (`quarantined`, `restored`, `restore_failed`); see `core/damage.rs`.
pub const DAMAGED_TOTAL: &str = "dbforge_damaged_total";
/// Counter: what lifecycle policies did, by `policy` and `action` (`pruned_expired` for a
/// `max_age`, `pruned_idle` for an `idle_ttl`, `refused_create` for `max_databases_per_key`).
pub const POLICY_ACTIONS_TOTAL: &str = "dbforge_policy_actions_total";
/// Counter: size quota crossings, by `backend` and `event` (`quota_exceeded`, `quota_cleared`).
pub const QUOTA_EVENTS_TOTAL: &str = "dbforge_quota_events_total";
/// Counter: questions SemanticService answered with a model, by `outcome` (`answered`,
/// `gave_up`); cache hits are counted apart.
pub const ASK_TOTAL: &str = "dbforge_ask_total";
/// Counter: calls made to a language model by SemanticService (first tries and repair rounds).
pub const ASK_MODEL_CALLS_TOTAL: &str = "dbforge_ask_model_calls_total";
/// Counter: questions answered from SemanticService's cache.
pub const ASK_CACHE_HITS_TOTAL: &str = "dbforge_ask_cache_hits_total";
