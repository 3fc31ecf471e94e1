//! `dbforge audit list|verify` and `dbforge stats`: the gateway's OperationsService.

use std::{io::Write, time::Instant};

use dbforge::{
    AuditEvent, AuditFilter, ConnectionCap, ConnectionShare, Node, RpcStats, Value, pb::ValueKind,
};

use super::{App, access::time, backend_name, db::listing_columns, int, millis, stdout};
use crate::{
    cli::{AuditCommand, Format},
    error::{CliError, Result},
    output::{self, End, plural},
};

/// The columns of `audit list`, in [`event_values`] order.
const AUDIT_COLUMNS: &[(&str, ValueKind)] = &[
    ("seq", ValueKind::Int),
    ("time", ValueKind::Timestamp),
    ("key_id", ValueKind::Text),
    ("rpc", ValueKind::Text),
    ("database", ValueKind::Text),
    ("outcome", ValueKind::Text),
    ("rows_affected", ValueKind::Int),
    ("duration_ms", ValueKind::Float),
    ("statement", ValueKind::Text),
];

/// The columns of the RPC table of `stats`, in [`rpc_values`] order.
const RPC_COLUMNS: &[(&str, ValueKind)] = &[
    ("rpc", ValueKind::Text),
    ("calls", ValueKind::Int),
    ("errors", ValueKind::Int),
    ("mean_ms", ValueKind::Float),
    ("max_ms", ValueKind::Float),
];

/// Columns of `dbforge stats`' connection shares (one row per open PostgreSQL or MySQL
/// database).
/// Columns of `dbforge stats --format json`'s `nodes` array.
const NODE_COLUMNS: &[(&str, ValueKind)] = &[
    ("name", ValueKind::Text),
    ("address", ValueKind::Text),
    ("heartbeat", ValueKind::Timestamp),
];

/// Columns of `dbforge stats --format json`'s `connection_caps` array.
const CAP_COLUMNS: &[(&str, ValueKind)] = &[
    ("backend", ValueKind::Text),
    ("cap", ValueKind::Int),
    ("open", ValueKind::Int),
];

const SHARE_COLUMNS: &[(&str, ValueKind)] = &[
    ("backend", ValueKind::Text),
    ("database", ValueKind::Text),
    ("share", ValueKind::Int),
    ("in_use", ValueKind::Int),
    ("idle", ValueKind::Int),
    ("waiters", ValueKind::Int),
    ("min", ValueKind::Int),
    ("max", ValueKind::Int),
];

/// Records asked for per ListAuditEvents page.
const AUDIT_PAGE: u64 = 500;

/// Runs an `audit` subcommand.
pub fn audit(app: &App, command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::List {
            key,
            database,
            outcome,
            since,
            until,
            limit,
        } => {
            let started = Instant::now();
            let mut filter = AuditFilter {
                key_id: key.unwrap_or_default(),
                database: database.unwrap_or_default(),
                outcome: outcome.map(|o| o.to_ascii_uppercase()).unwrap_or_default(),
                since,
                until,
                page_size: 0,
                page_token: String::new(),
            };
            let mut out = stdout();
            let mut sink = output::sink(&app.settings, &mut out);
            sink.header(&listing_columns(app, AUDIT_COLUMNS))?;
            let mut rows = 0u64;
            app.block_on(async {
                let client = app.connect().await?;
                while rows < limit {
                    filter.page_size = u32::try_from((limit - rows).min(AUDIT_PAGE)).unwrap_or(1);
                    let (events, next) = client.list_audit_events(filter.clone()).await?;
                    for e in &events {
                        if rows == limit {
                            break;
                        }
                        sink.row(&event_values(e))?;
                        rows += 1;
                    }
                    match next {
                        Some(token) if !events.is_empty() => filter.page_token = token,
                        _ => break,
                    }
                }
                Ok(())
            })?;
            sink.end(&End {
                rows,
                affected: 0,
                elapsed: started.elapsed(),
                truncation: dbforge::Truncation::Unspecified,
            })?;
            Ok(())
        }
        AuditCommand::Verify => {
            let report = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.verify_audit_log().await?)
            })?;
            let p = app.settings.paint;
            let checked = plural(report.checked, "record", "records");
            let broken_at = report.first_broken_seq.unwrap_or_default();
            let human = if report.ok {
                format!("{}: {checked} checked", p.ok("audit log intact"))
            } else {
                format!(
                    "{} at record {}: {} ({checked} checked)",
                    p.error("audit log broken"),
                    broken_at,
                    report.problem
                )
            };
            output::record(
                &app.settings,
                &mut stdout(),
                &human,
                &[
                    ("ok", Value::Bool(report.ok)),
                    ("checked", int(report.checked)),
                    (
                        "first_broken_seq",
                        report.first_broken_seq.map_or(Value::Null, int),
                    ),
                    ("problem", Value::Text(report.problem.clone())),
                ],
            )?;
            if report.ok {
                Ok(())
            } else {
                Err(CliError::CheckFailed(format!(
                    "the audit log's hash chain breaks at record {broken_at}"
                )))
            }
        }
    }
}

/// Objects of `columns` names and `values`, one per item, for the JSON output.
fn objects<T>(
    items: &[T],
    columns: &[(&str, ValueKind)],
    values: impl Fn(&T) -> Vec<Value>,
) -> Value {
    let all: Vec<serde_json::Value> = items
        .iter()
        .map(|item| {
            let obj: serde_json::Map<String, serde_json::Value> = columns
                .iter()
                .zip(values(item))
                .map(|((k, _), v)| ((*k).to_owned(), output::render::json(&v)))
                .collect();
            serde_json::Value::Object(obj)
        })
        .collect();
    Value::Json(serde_json::Value::Array(all).to_string())
}

/// Runs `dbforge stats`: the figures as `name  value` lines, a table of calls per RPC and one
/// of each open database's connection share, or one object (its `rpcs` and
/// `connection_shares` arrays) for programs.
pub fn stats(app: &App) -> Result<()> {
    let started = Instant::now();
    let stats = app.block_on(async {
        let client = app.connect().await?;
        Ok(client.server_stats().await?)
    })?;
    let fields: Vec<(&str, Value)> = vec![
        ("uptime_seconds", int(stats.uptime.as_secs())),
        ("active_connections", int(stats.active_connections)),
        ("active_streams", int(stats.active_streams)),
        ("active_sessions", int(stats.active_sessions)),
        ("databases", int(stats.databases)),
        ("open_databases", int(stats.open_databases)),
        ("error_rate", Value::Float(stats.error_rate)),
        ("node", Value::Text(stats.node.clone())),
        ("replicas", int(stats.nodes.len() as u64)),
    ];
    let mut out = stdout();
    if app.settings.format != Format::Table {
        let mut fields = fields;
        fields.push(("rpcs", objects(&stats.rpcs, RPC_COLUMNS, rpc_values)));
        fields.push((
            "connection_shares",
            objects(&stats.connection_shares, SHARE_COLUMNS, share_values),
        ));
        fields.push(("nodes", objects(&stats.nodes, NODE_COLUMNS, node_values)));
        fields.push((
            "connection_caps",
            objects(&stats.connection_caps, CAP_COLUMNS, cap_values),
        ));
        output::record(&app.settings, &mut out, "", &fields)?;
        return Ok(());
    }
    let mut human = output::key_values(&app.settings, &fields);
    human.push('\n');
    output::record(&app.settings, &mut out, &human, &[])?;
    let mut sink = output::sink(&app.settings, &mut out);
    sink.header(&listing_columns(app, RPC_COLUMNS))?;
    for r in &stats.rpcs {
        sink.row(&rpc_values(r))?;
    }
    sink.end(&End {
        rows: stats.rpcs.len() as u64,
        affected: 0,
        elapsed: started.elapsed(),
        truncation: dbforge::Truncation::Unspecified,
    })?;
    drop(sink);
    if !stats.connection_shares.is_empty() {
        writeln!(out)?;
        let mut sink = output::sink(&app.settings, &mut out);
        sink.header(&listing_columns(app, SHARE_COLUMNS))?;
        for c in &stats.connection_shares {
            sink.row(&share_values(c))?;
        }
        sink.end(&End {
            rows: stats.connection_shares.len() as u64,
            affected: 0,
            elapsed: started.elapsed(),
            truncation: dbforge::Truncation::Unspecified,
        })?;
    }
    Ok(())
}

/// A gateway sharing the catalog as values, in [`NODE_COLUMNS`] order.
fn node_values(n: &Node) -> Vec<Value> {
    vec![
        Value::Text(n.name.clone()),
        Value::Text(n.address.clone()),
        time(n.heartbeat),
    ]
}

/// This gateway's share of one server's connections as values, in [`CAP_COLUMNS`] order.
fn cap_values(c: &ConnectionCap) -> Vec<Value> {
    vec![
        Value::Text(backend_name(c.backend).to_owned()),
        int(c.cap.into()),
        int(c.open.into()),
    ]
}

/// One database's connection share as values, in [`SHARE_COLUMNS`] order.
fn share_values(c: &ConnectionShare) -> Vec<Value> {
    vec![
        Value::Text(backend_name(c.backend).to_owned()),
        Value::Text(c.database.clone()),
        int(c.share.into()),
        int(c.in_use.into()),
        int(c.idle.into()),
        int(c.waiters.into()),
        int(c.min.into()),
        int(c.max.into()),
    ]
}

/// An audit record as values, in [`AUDIT_COLUMNS`] order.
fn event_values(e: &AuditEvent) -> Vec<Value> {
    let text = |s: &str| {
        if s.is_empty() {
            Value::Null
        } else {
            Value::Text(s.to_owned())
        }
    };
    vec![
        int(e.seq),
        time(Some(e.time)),
        text(&e.key_id),
        text(&e.rpc),
        text(&e.database),
        text(&e.outcome),
        e.rows_affected.map_or(Value::Null, int),
        Value::Float(millis(e.duration)),
        text(&e.statement),
    ]
}

/// One RPC's calls as values, in [`RPC_COLUMNS`] order.
fn rpc_values(r: &RpcStats) -> Vec<Value> {
    vec![
        Value::Text(r.rpc.clone()),
        int(r.calls),
        int(r.errors),
        Value::Float(millis(r.mean_duration)),
        Value::Float(millis(r.max_duration)),
    ]
}
