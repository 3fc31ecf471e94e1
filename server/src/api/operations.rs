//! `dbforge.v1.OperationsService`: server figures and the audit log, for admins.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tonic::{Request, Response, Status};

use super::{caller, convert::backend_pb, telemetry::telemetry};
use crate::{
    backend::share::ShareStats,
    core::{
        audit::{Query, Record},
        engine::BackendKind,
        error::Error,
        forge::Forge,
    },
    pb::{self, operations_service_server::OperationsService},
};

/// The OperationsService adapter.
#[derive(Debug, Clone)]
pub struct OperationsApi {
    forge: Forge,
}

impl OperationsApi {
    /// Wraps the Forge.
    pub fn new(forge: Forge) -> Self {
        Self { forge }
    }
}

fn duration(d: Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d).ok()
}

fn millis(t: Option<prost_types::Timestamp>) -> Option<i64> {
    t.map(|t| t.seconds.saturating_mul(1000) + i64::from(t.nanos / 1_000_000))
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or_default(),
    }
}

fn event(r: Record) -> pb::AuditEvent {
    pb::AuditEvent {
        seq: r.seq,
        time: Some(timestamp(r.at_ms)),
        key_id: r.key_id,
        rpc: r.rpc,
        database: r.database.unwrap_or_default(),
        statement: r.statement.unwrap_or_default(),
        statement_hash: r.statement_hash.unwrap_or_default(),
        rows_affected: r.rows_affected,
        outcome: r.outcome,
        duration: duration(Duration::from_micros(r.duration_us.unsigned_abs())),
        prev_hash: r.prev_hash,
        hash: r.hash,
    }
}

fn share_pb(kind: BackendKind, s: ShareStats) -> pb::ConnectionShare {
    let ShareStats {
        database,
        share,
        in_use,
        idle,
        waiters,
        min,
        max,
    } = s;
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    pb::ConnectionShare {
        backend: backend_pb(kind).into(),
        database: database.to_string(),
        share: count(share),
        in_use: count(in_use),
        idle: count(idle),
        waiters: count(waiters),
        min: count(min),
        max: count(max),
    }
}

#[tonic::async_trait]
impl OperationsService for OperationsApi {
    async fn get_server_stats(
        &self,
        req: Request<pb::GetServerStatsRequest>,
    ) -> Result<Response<pb::GetServerStatsResponse>, Status> {
        caller(&req)?.require_admin()?;
        let t = telemetry();
        let rpcs = t.rpcs();
        let (calls, errors) = rpcs
            .values()
            .fold((0u64, 0u64), |(c, e), r| (c + r.calls, e + r.errors));
        let load = |a: &std::sync::atomic::AtomicI64| a.load(std::sync::atomic::Ordering::Relaxed);
        Ok(Response::new(pb::GetServerStatsResponse {
            uptime: duration(t.uptime()),
            active_connections: load(&t.connections),
            active_streams: load(&t.streams),
            active_sessions: load(&t.sessions),
            databases: i64::try_from(self.forge.database_count()).unwrap_or(i64::MAX),
            open_databases: i64::try_from(self.forge.open_databases()).unwrap_or(i64::MAX),
            rpcs: rpcs
                .into_iter()
                .map(|(rpc, c)| pb::RpcStats {
                    rpc: rpc.to_owned(),
                    calls: i64::try_from(c.calls).unwrap_or(i64::MAX),
                    errors: i64::try_from(c.errors).unwrap_or(i64::MAX),
                    mean_duration: duration(
                        c.total / u32::try_from(c.calls.max(1)).unwrap_or(u32::MAX),
                    ),
                    max_duration: duration(c.max),
                })
                .collect(),
            error_rate: if calls == 0 {
                0.0
            } else {
                errors as f64 / calls as f64
            },
            connection_shares: self
                .forge
                .connection_shares()
                .into_iter()
                .map(|(kind, s)| share_pb(kind, s))
                .collect(),
            nodes: self
                .forge
                .leadership()
                .nodes()
                .into_iter()
                .map(|n| pb::Node {
                    name: n.name,
                    address: n.address,
                    started: Some(timestamp(n.started_ms)),
                    heartbeat: Some(timestamp(n.heartbeat_ms)),
                    free_bytes: n.free_bytes,
                })
                .collect(),
            node: self.forge.catalog().node().to_owned(),
            connection_caps: self
                .forge
                .connection_caps()
                .into_iter()
                .map(|(kind, cap, open)| pb::ConnectionCap {
                    backend: backend_pb(kind).into(),
                    cap: i32::try_from(cap).unwrap_or(i32::MAX),
                    open: i32::try_from(open).unwrap_or(i32::MAX),
                })
                .collect(),
        }))
    }

    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        caller(&req)?.require_admin()?;
        // Records wait up to the commit delay for their batch; list what was sent until now.
        self.forge.audit().flush(Duration::from_secs(5)).await;
        let pb::ListAuditEventsRequest {
            key_id,
            database,
            outcome,
            since,
            until,
            page_size,
            page_token,
        } = req.into_inner();
        let limit = match page_size {
            n if n < 0 => return Err(Error::invalid("page_size", "must not be negative").into()),
            0 => 100,
            n => usize::try_from(n).unwrap_or(1000).min(1000),
        };
        let after_seq = if page_token.is_empty() {
            0
        } else {
            let bad = || Error::invalid("page_token", "not a token from ListAuditEvents");
            let raw = URL_SAFE_NO_PAD
                .decode(page_token.as_bytes())
                .map_err(|_| bad())?;
            String::from_utf8(raw)
                .ok()
                .and_then(|t| t.strip_prefix("seq:")?.parse().ok())
                .ok_or_else(bad)?
        };
        let some = |s: String| (!s.is_empty()).then_some(s);
        let query = Query {
            key_id: some(key_id),
            database: some(database),
            outcome: some(outcome),
            since_ms: millis(since),
            until_ms: millis(until),
            after_seq,
            // One more than the page tells whether another page follows.
            limit: limit + 1,
        };
        let audit = self.forge.audit().clone();
        let mut records = tokio::task::spawn_blocking(move || audit.list(&query))
            .await
            .map_err(|e| Error::internal(format!("audit task: {e}")))??;
        let more = records.len() > limit;
        records.truncate(limit);
        let next_page_token = match (more, records.last()) {
            (true, Some(last)) => URL_SAFE_NO_PAD.encode(format!("seq:{}", last.seq)),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: records.into_iter().map(event).collect(),
            next_page_token,
        }))
    }

    async fn verify_audit_log(
        &self,
        req: Request<pb::VerifyAuditLogRequest>,
    ) -> Result<Response<pb::VerifyAuditLogResponse>, Status> {
        caller(&req)?.require_admin()?;
        let audit = self.forge.audit().clone();
        audit.flush(Duration::from_secs(5)).await;
        let v = tokio::task::spawn_blocking(move || audit.verify())
            .await
            .map_err(|e| Error::internal(format!("audit task: {e}")))??;
        Ok(Response::new(pb::VerifyAuditLogResponse {
            ok: v.first_broken_seq.is_none(),
            checked: i64::try_from(v.checked).unwrap_or(i64::MAX),
            first_broken_seq: v.first_broken_seq.unwrap_or_default(),
            problem: v.problem.unwrap_or_default(),
        }))
    }
}
