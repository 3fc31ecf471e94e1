//! `dbforge db create|list|show|rm`: the control plane.

use std::{
    collections::BTreeMap,
    io::{self, BufRead, Write},
    time::{Instant, SystemTime},
};

use dbforge::{
    Column, CreateOptions, Database, DatabaseEventType, ForkOptions, ListFilter, UpdateOptions,
    Value, WatchOptions, pb::ValueKind,
};
use time::OffsetDateTime;

use super::{App, backend_name, status_name, stdout};
use crate::{
    cli::{DbCommand, ForkArgs, Format, WatchArgs},
    error::{CliError, Result},
    output::{self, End},
};

/// Runs a `db` subcommand.
pub fn run(app: &App, command: DbCommand) -> Result<()> {
    match command {
        DbCommand::Create {
            name,
            backend,
            labels,
            if_not_exists,
            ttl,
            expire_at,
            idle_ttl,
            backup_before_prune,
        } => {
            let mut opts = CreateOptions::default().backend(backend.into());
            if if_not_exists {
                opts = opts.if_not_exists();
            }
            if let Some(d) = ttl {
                opts = opts.ttl(d);
            }
            if let Some(t) = expire_at {
                opts = opts.expire_at(t);
            }
            if let Some(d) = idle_ttl {
                opts = opts.idle_ttl(d);
            }
            if backup_before_prune {
                opts = opts.backup_before_prune();
            }
            for (k, v) in labels {
                opts = opts.label(k, v);
            }
            let created = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.create_database(&name, opts).await?)
            })?;
            let db = &created.database;
            let p = app.settings.paint;
            let human = if created.created {
                format!(
                    "{} database {} ({})",
                    p.ok("created"),
                    p.name(&db.name),
                    backend_name(db.backend)
                )
            } else {
                format!(
                    "database {} exists already ({})",
                    p.name(&db.name),
                    backend_name(db.backend)
                )
            };
            let mut fields = fields(app, db);
            fields.insert(1, ("created", Value::Bool(created.created)));
            output::record(&app.settings, &mut stdout(), &human, &fields)?;
            Ok(())
        }
        DbCommand::List { backend, labels } => {
            let filter = ListFilter {
                backend: backend.map(Into::into).unwrap_or_default(),
                labels: labels.into_iter().collect(),
            };
            let started = Instant::now();
            let dbs = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.list_databases(filter).await?)
            })?;
            let mut out = stdout();
            let mut sink = output::sink(&app.settings, &mut out);
            let columns = columns(app);
            sink.header(&columns)?;
            for db in &dbs {
                let values: Vec<Value> = fields(app, db).into_iter().map(|(_, v)| v).collect();
                sink.row(&values)?;
            }
            sink.end(&End {
                rows: dbs.len() as u64,
                affected: 0,
                elapsed: started.elapsed(),
                truncation: dbforge::Truncation::Unspecified,
            })?;
            Ok(())
        }
        DbCommand::Update {
            name,
            labels,
            clear_labels,
            ttl,
            expire_at,
            clear_ttl,
            idle_ttl,
            clear_idle_ttl,
            backup_before_prune,
            max_bytes,
            clear_max_bytes,
        } => {
            let mut opts = UpdateOptions {
                backup_before_prune,
                ..UpdateOptions::default()
            };
            if clear_labels || !labels.is_empty() {
                opts = opts.labels(labels);
            }
            if let Some(d) = ttl {
                opts = opts.ttl(d);
            }
            if let Some(t) = expire_at {
                opts = opts.expire_at(t);
            }
            if clear_ttl {
                opts = opts.clear_ttl();
            }
            if let Some(d) = idle_ttl {
                opts = opts.idle_ttl(d);
            }
            if clear_idle_ttl {
                opts = opts.clear_idle_ttl();
            }
            if let Some(m) = max_bytes {
                opts = opts.max_bytes(m);
            }
            if clear_max_bytes {
                opts = opts.clear_max_bytes();
            }
            let db = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.update_database(&name, opts).await?)
            })?;
            let mut fields = fields(app, &db);
            fields.extend(lifecycle_fields(&db));
            let human = format!(
                "{} database {}\n{}",
                app.settings.paint.ok("updated"),
                app.settings.paint.name(&db.name),
                output::key_values(&app.settings, &fields)
            );
            output::record(&app.settings, &mut stdout(), &human, &fields)?;
            Ok(())
        }
        DbCommand::Show { name } => {
            let db = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.get_database(&name).await?)
            })?;
            let mut fields = fields(app, &db);
            fields.extend(lifecycle_fields(&db));
            let caps = &db.capabilities;
            let flags = [
                ("sql", caps.sql),
                ("transactions", caps.transactions),
                ("sessions", caps.sessions),
                ("typed_params", caps.typed_params),
                ("table_service", caps.table_service),
                ("key_value", caps.key_value),
                ("last_insert_id", caps.last_insert_id),
                ("returning", caps.returning),
            ];
            let capabilities = if app.settings.format == Format::Table {
                let on: Vec<&str> = flags.iter().filter(|f| f.1).map(|f| f.0).collect();
                Value::Text(on.join(", "))
            } else {
                let obj: serde_json::Map<String, serde_json::Value> = flags
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), serde_json::Value::Bool(*v)))
                    .collect();
                Value::Json(serde_json::Value::Object(obj).to_string())
            };
            fields.push(("capabilities", capabilities));
            fields.push(("placeholder", Value::Text(caps.placeholder.clone())));
            let human = output::key_values(&app.settings, &fields);
            output::record(&app.settings, &mut stdout(), &human, &fields)?;
            Ok(())
        }
        DbCommand::Rm {
            name,
            yes,
            if_exists,
        } => {
            if !yes {
                confirm(app, &name)?;
            }
            let deleted = app.block_on(async {
                let client = app.connect().await?;
                if if_exists {
                    Ok(client.delete_database_if_exists(&name).await?)
                } else {
                    client.delete_database(&name).await?;
                    Ok(true)
                }
            })?;
            let p = app.settings.paint;
            let human = if deleted {
                format!("{} database {}", p.ok("deleted"), p.name(&name))
            } else {
                format!("database {} did not exist", p.name(&name))
            };
            output::record(
                &app.settings,
                &mut stdout(),
                &human,
                &[
                    ("name", Value::Text(name)),
                    ("deleted", Value::Bool(deleted)),
                ],
            )?;
            Ok(())
        }
    }
}

/// Asks on the terminal before pruning; refuses without a terminal to ask on.
fn confirm(app: &App, name: &str) -> Result<()> {
    confirm_delete(app, "database", name, "and all its data")
}

/// Asks on the terminal "Delete {what} {name} {consequence}? [y/N]"; refuses without a terminal
/// to ask on (pass --yes).
pub fn confirm_delete(app: &App, what: &str, name: &str, consequence: &str) -> Result<()> {
    if !app.stdin_tty {
        return Err(CliError::Usage(format!(
            "not deleting {name} without confirmation: stdin is not a terminal; pass --yes"
        )));
    }
    let mut err = io::stderr().lock();
    write!(
        err,
        "Delete {what} {} {consequence}? [y/N] ",
        app.err_paint.name(name)
    )?;
    err.flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::Declined(format!("{what} {name} not deleted"))),
    }
}

fn columns(app: &App) -> Vec<Column> {
    let labels_kind = if app.settings.format == Format::Table {
        ValueKind::Text
    } else {
        ValueKind::Json
    };
    [
        ("name", ValueKind::Text),
        ("backend", ValueKind::Text),
        ("status", ValueKind::Text),
        ("size_bytes", ValueKind::Int),
        ("created_at", ValueKind::Timestamp),
        ("last_accessed_at", ValueKind::Timestamp),
        ("labels", labels_kind),
    ]
    .into_iter()
    .map(|(name, kind)| Column {
        name: name.to_owned(),
        declared_type: String::new(),
        kind,
    })
    .collect()
}

/// A database as named values, in [`columns`] order. Labels read `k=v, …` in tables and are an
/// object for programs.
fn fields(app: &App, db: &Database) -> Vec<(&'static str, Value)> {
    let labels = labels(app, &db.labels);
    vec![
        ("name", Value::Text(db.name.clone())),
        ("backend", Value::Text(backend_name(db.backend).to_owned())),
        ("status", Value::Text(status_name(db.status).to_owned())),
        (
            "size_bytes",
            Value::Int(i64::try_from(db.size_bytes).unwrap_or(i64::MAX)),
        ),
        ("created_at", timestamp(db.created_at)),
        ("last_accessed_at", timestamp(db.last_accessed_at)),
        ("labels", labels),
    ]
}

/// A database's TTL, idle TTL (in seconds), final-backup setting and size quota (in effect,
/// where from, its own, whether over it); null when unset.
fn lifecycle_fields(db: &Database) -> Vec<(&'static str, Value)> {
    let bytes = |b: Option<u64>| {
        b.map_or(Value::Null, |b| {
            Value::Int(i64::try_from(b).unwrap_or(i64::MAX))
        })
    };
    vec![
        ("expire_at", db.expire_at.map_or(Value::Null, timestamp)),
        (
            "idle_ttl_seconds",
            db.idle_ttl.map_or(Value::Null, |d| {
                Value::Int(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            }),
        ),
        ("backup_before_prune", Value::Bool(db.backup_before_prune)),
        ("max_bytes", bytes(db.max_bytes)),
        (
            "quota_source",
            if db.quota_source.is_empty() {
                Value::Null
            } else {
                Value::Text(db.quota_source.clone())
            },
        ),
        ("own_max_bytes", bytes(db.own_max_bytes)),
        ("over_quota", Value::Bool(db.over_quota)),
    ]
}

/// Labels as `k=v, …` in tables and an object for programs.
pub fn labels(app: &App, labels: &BTreeMap<String, String>) -> Value {
    if app.settings.format == Format::Table {
        Value::Text(
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    } else {
        let obj: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        Value::Json(serde_json::Value::Object(obj).to_string())
    }
}

/// The columns of a listing, named and typed; `json` columns hold a JSON document for
/// programs and a text summary in tables.
pub fn listing_columns(app: &App, columns: &[(&str, ValueKind)]) -> Vec<Column> {
    columns
        .iter()
        .map(|&(name, kind)| Column {
            name: name.to_owned(),
            declared_type: String::new(),
            kind: if kind == ValueKind::Json && app.settings.format == Format::Table {
                ValueKind::Text
            } else {
                kind
            },
        })
        .collect()
}

/// A catalog time to the second (the catalog keeps access times to within seconds anyway).
pub fn timestamp(t: SystemTime) -> Value {
    let t = OffsetDateTime::from(t);
    t.replace_nanosecond(0)
        .map(Value::Timestamp)
        .unwrap_or(Value::Timestamp(t))
}

/// `dbforge fork SRC NEW`: the new database's record, with how it was copied.
pub fn fork(app: &App, args: ForkArgs) -> Result<()> {
    let ForkArgs {
        source,
        name,
        labels,
        from_backup,
        ttl,
        expire_at,
        idle_ttl,
        backup_before_prune,
    } = args;
    let mut opts = ForkOptions {
        idle_ttl,
        backup_before_prune,
        ..Default::default()
    };
    if let Some(d) = ttl {
        opts = opts.ttl(d);
    }
    if let Some(t) = expire_at {
        opts = opts.expire_at(t);
    }
    for (k, v) in labels {
        opts = opts.label(k, v);
    }
    if let Some(id) = from_backup {
        opts = opts.from_backup(id);
    }
    let forked = app.block_on(async {
        let client = app.connect().await?;
        Ok(client.fork_database(&source, &name, opts).await?)
    })?;
    let db = &forked.database;
    let p = app.settings.paint;
    let human = format!(
        "{} {} into new database {} ({}, {}, {})",
        p.ok("forked"),
        p.name(&source),
        p.name(&db.name),
        backend_name(db.backend),
        forked.method,
        output::elapsed(forked.duration)
    );
    let mut fields = fields(app, db);
    fields.insert(1, ("source", Value::Text(source)));
    fields.insert(2, ("method", Value::Text(forked.method.clone())));
    fields.insert(
        3,
        ("duration_ms", Value::Float(super::millis(forked.duration))),
    );
    fields.extend(lifecycle_fields(db));
    output::record(&app.settings, &mut stdout(), &human, &fields)?;
    Ok(())
}

/// `dbforge watch`: one line (or JSON object) per event until interrupted or `--count`.
pub fn watch(app: &App, args: WatchArgs) -> Result<()> {
    let WatchArgs {
        since,
        labels: selector,
        backend,
        count,
    } = args;
    let opts = WatchOptions {
        labels: selector.into_iter().collect(),
        backend: backend.map(Into::into).unwrap_or_default(),
        since,
    };
    app.block_on(async {
        let client = app.connect().await?;
        let mut events = client.watch_databases(opts).await?;
        let mut seen = 0u64;
        while count.is_none_or(|c| seen < c) {
            let Some(e) = events.next().await? else {
                break;
            };
            seen += 1;
            let kind = event_name(e.kind);
            let human = format!(
                "{:>8}  {}  {:<11}  {} ({})  key {}{}",
                e.sequence,
                OffsetDateTime::from(e.time)
                    .replace_nanosecond(0)
                    .ok()
                    .and_then(|t| t
                        .format(&time::format_description::well_known::Rfc3339)
                        .ok())
                    .unwrap_or_default(),
                kind,
                e.database,
                backend_name(e.backend),
                e.key_id,
                if e.cause.is_empty() {
                    String::new()
                } else {
                    format!("  {}", e.cause)
                }
            );
            let fields = [
                ("sequence", Value::Int(e.sequence)),
                ("type", Value::Text(kind.to_owned())),
                ("database", Value::Text(e.database.clone())),
                ("backend", Value::Text(backend_name(e.backend).to_owned())),
                ("time", timestamp(e.time)),
                ("cause", Value::Text(e.cause.clone())),
                ("key_id", Value::Text(e.key_id.clone())),
                ("labels", labels(app, &e.labels)),
            ];
            output::record(&app.settings, &mut stdout(), &human, &fields)?;
            stdout().flush()?;
        }
        Ok(())
    })
}

fn event_name(k: DatabaseEventType) -> &'static str {
    match k {
        DatabaseEventType::Created => "created",
        DatabaseEventType::Deleted => "deleted",
        DatabaseEventType::Forked => "forked",
        DatabaseEventType::Expired => "expired",
        DatabaseEventType::PrunedIdle => "pruned_idle",
        DatabaseEventType::BackedUp => "backed_up",
        DatabaseEventType::Restored => "restored",
        DatabaseEventType::QuotaExceeded => "quota_exceeded",
        DatabaseEventType::QuotaCleared => "quota_cleared",
        DatabaseEventType::Unavailable => "unavailable",
        DatabaseEventType::Recovered => "recovered",
        DatabaseEventType::Damaged => "damaged",
        DatabaseEventType::Updated => "updated",
        DatabaseEventType::Unspecified => "unknown",
    }
}
