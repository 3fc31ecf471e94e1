//! Phase 17 (the agents issue): an MCP `query` tool call over streamable HTTP (`/mcp` on the
//! gateway's own port) against gRPC `Execute` of the same point query, on one gateway.
//!
//! Both sides run the bench table's point query (`SELECT v FROM t WHERE id = ?`, one row back)
//! with the same admin key, each on one kept-alive connection (HTTP/1.1 for MCP, HTTP/2 for
//! gRPC). They alternate call by call, so load that comes and goes on the shared cores lands on
//! both. An MCP round trip is one `tools/call` request answered as one server-sent event, and is
//! checked: a JSON-RPC result, not an error, whose text holds the row.

use std::{net::SocketAddr, time::Instant};

use serde_json::{Value as Json, json};

use crate::{
    BoxError,
    gateway::{self, BENCH_DB, Conn},
    report::{Goal, Row, Unit},
    stats::{Latency, Rng},
    workload::{POINT_QUERY, POINT_ROWS, Plan},
};

/// Target: the MCP round trip's p50 at most this many times gRPC Execute's.
pub const RATIO_MAX: f64 = 1.5;

/// The MCP protocol version the bench's client announces.
const PROTOCOL_VERSION: &str = "2025-06-18";

/// What phase 17 measured.
#[derive(Debug, Clone, Copy)]
pub struct McpResults {
    /// gRPC Execute of the point query.
    pub execute: Latency,
    /// The MCP `query` tool call of the same query.
    pub mcp: Latency,
}

/// One MCP session with the gateway: the session id the gateway gave at `initialize`.
struct Session {
    http: reqwest::Client,
    url: String,
    bearer: String,
    id: String,
    next: u64,
}

impl Session {
    /// `initialize`, then `notifications/initialized`, as an MCP client starts.
    async fn open(addr: SocketAddr, key: &str) -> Result<Self, BoxError> {
        let http = reqwest::Client::builder().http1_only().build()?;
        let url = format!("http://{addr}/mcp");
        let bearer = format!("Bearer {key}");
        let init = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "dbforge-bench", "version": env!("CARGO_PKG_VERSION")},
            },
        });
        let res = http
            .post(&url)
            .header("authorization", &bearer)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&init)?)
            .send()
            .await?;
        let id = res
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or("initialize: no mcp-session-id header")?
            .to_owned();
        answer(res, 0).await?;
        let mut session = Self {
            http,
            url,
            bearer,
            id,
            next: 1,
        };
        let done = session
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        if !done.status().is_success() {
            return Err(format!("notifications/initialized: HTTP {}", done.status()).into());
        }
        Ok(session)
    }

    async fn post(&mut self, body: &Json) -> Result<reqwest::Response, BoxError> {
        Ok(self
            .http
            .post(&self.url)
            .header("authorization", &self.bearer)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body)?)
            .send()
            .await?)
    }

    /// One `query` tool call of the point query for `id`, checked.
    async fn point_query(&mut self, id: i64) -> Result<(), BoxError> {
        let call = self.next;
        self.next += 1;
        let req = json!({
            "jsonrpc": "2.0", "id": call, "method": "tools/call",
            "params": {"name": "query", "arguments": {
                "database": BENCH_DB, "sql": POINT_QUERY, "params": [id],
            }},
        });
        let res = self.post(&req).await?;
        let result = answer(res, call).await?;
        if result.get("isError") == Some(&Json::Bool(true)) {
            return Err(format!("MCP query for {id} failed: {result}").into());
        }
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        if !text.contains(&format!("\"value-{id}\"")) {
            return Err(format!("MCP query for {id} did not return its row: {text}").into());
        }
        Ok(())
    }
}

/// The JSON-RPC result answering request `id`: the response is JSON, or server-sent events of
/// which one carries it. The body is read to its end, so the connection is kept for the next
/// call.
async fn answer(res: reqwest::Response, id: u64) -> Result<Json, BoxError> {
    let status = res.status();
    let body = res.text().await?;
    if !status.is_success() {
        return Err(format!("MCP request {id}: HTTP {status}: {body}").into());
    }
    let messages: Vec<Json> = if body.trim_start().starts_with('{') {
        vec![serde_json::from_str(&body)?]
    } else {
        body.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    };
    let reply = messages
        .into_iter()
        .find(|m| m.get("id") == Some(&json!(id)))
        .ok_or_else(|| format!("MCP request {id}: no reply in {body:?}"))?;
    match reply.get("result") {
        Some(result) => Ok(result.clone()),
        None => Err(format!("MCP request {id}: {reply}").into()),
    }
}

/// Phase 17 on the gateway at `addr`: prepares the bench database, then alternates gRPC Execute
/// and MCP `query` point queries, `plan.point_iters` of each after `plan.warmup` untimed ones.
pub async fn run(addr: SocketAddr, key: &str, plan: &Plan) -> Result<McpResults, BoxError> {
    let conn = Conn::open(addr, key).await?;
    gateway::prepare(&conn).await?;
    let mut grpc = conn.query();
    let mut mcp = Session::open(addr, key).await?;
    let mut rng = Rng::new(17);
    for _ in 0..plan.warmup {
        let id = rng.key(POINT_ROWS);
        gateway::point_query(&mut grpc, id).await?;
        mcp.point_query(id).await?;
    }
    let n = plan.point_iters;
    let (mut execute, mut over_mcp) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let id = rng.key(POINT_ROWS);
        let t = Instant::now();
        gateway::point_query(&mut grpc, id).await?;
        execute.push(t.elapsed());
        let t = Instant::now();
        mcp.point_query(id).await?;
        over_mcp.push(t.elapsed());
    }
    Ok(McpResults {
        execute: Latency::from_samples(execute).ok_or("no Execute sample")?,
        mcp: Latency::from_samples(over_mcp).ok_or("no MCP sample")?,
    })
}

/// Phase 17's rows: both p50s and their ratio against the target, with the p95s in a note.
pub fn rows_and_notes(measured: Result<McpResults, String>) -> (Vec<Row>, Vec<String>) {
    let names = [
        "MCP: gRPC Execute point query p50",
        "MCP: `query` tool call (streamable HTTP) p50",
        "MCP: query round trip within 1.5x of gRPC Execute: MCP / Execute p50",
    ];
    let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
    match measured {
        Ok(m) => {
            let rows = vec![
                Row::new(17, names[0], us(m.execute.p50), Unit::Micros, Goal::Info),
                Row::new(17, names[1], us(m.mcp.p50), Unit::Micros, Goal::Info),
                Row::new(
                    17,
                    names[2],
                    us(m.mcp.p50) / us(m.execute.p50),
                    Unit::Ratio,
                    Goal::AtMost(RATIO_MAX),
                ),
            ];
            let note = format!(
                "MCP (17): p95 {:.1} µs over MCP against {:.1} µs over gRPC; each MCP call is a \
                 JSON-RPC tools/call on a kept-alive HTTP/1.1 connection of one MCP session, \
                 answered as one server-sent event, alternating with the gRPC calls.",
                us(m.mcp.p95),
                us(m.execute.p95)
            );
            (rows, vec![note])
        }
        Err(e) => (
            names
                .iter()
                .map(|n| {
                    let unit = if n.contains("within") {
                        Unit::Ratio
                    } else {
                        Unit::Micros
                    };
                    Row::failed(17, *n, e.clone(), unit, Goal::Info)
                })
                .collect(),
            Vec::new(),
        ),
    }
}
