//! `dbforge backup create|list|show|restore|rm` and `dbforge backup policy set|list|rm`:
//! backups, restores and schedules through BackupService.

use std::{
    io::{self, IsTerminal},
    time::{Duration, Instant},
};

use dbforge::{
    Backup, BackupFilter, BackupPolicy, BackupStatus, Client, CreateBackup, RestoreMode, Restored,
    Schedule, Selector, Value, pb::ValueKind,
};
use indicatif::BinaryBytes;

use super::{
    App,
    access::time,
    backend_name,
    db::{confirm_delete, labels, listing_columns},
    int, millis, stdout,
};
use crate::{
    cli::{BackupCommand, Format, PolicyCommand},
    error::{CliError, Result},
    output::{self, End, elapsed, plural},
    progress::Progress,
};

/// How often `backup create` asks for the size of the running backup. The gateway updates it
/// as it writes; twice a second keeps the count lively at the cost of one small call.
const POLL: Duration = Duration::from_millis(500);

/// The columns of `backup list`, in [`backup_fields`] order.
const BACKUP_COLUMNS: &[(&str, ValueKind)] = &[
    ("id", ValueKind::Text),
    ("database", ValueKind::Text),
    ("backend", ValueKind::Text),
    ("status", ValueKind::Text),
    ("created_at", ValueKind::Timestamp),
    ("size_bytes", ValueKind::Int),
    ("rows", ValueKind::Int),
    ("duration_ms", ValueKind::Float),
    ("target", ValueKind::Text),
    ("labels", ValueKind::Json),
    ("error", ValueKind::Text),
];

/// The columns of `backup policy list`, in [`policy_fields`] order.
const POLICY_COLUMNS: &[(&str, ValueKind)] = &[
    ("name", ValueKind::Text),
    ("selector", ValueKind::Json),
    ("schedule", ValueKind::Json),
    ("keep_last", ValueKind::Int),
    ("keep_within", ValueKind::Text),
    ("target", ValueKind::Text),
    ("last_run_at", ValueKind::Timestamp),
    ("next_run_at", ValueKind::Timestamp),
    ("last_error", ValueKind::Text),
    ("updated_at", ValueKind::Timestamp),
];

/// Runs a `backup` subcommand.
pub fn run(app: &App, command: BackupCommand) -> Result<()> {
    let p = app.settings.paint;
    match command {
        BackupCommand::Create {
            database,
            target,
            labels,
        } => {
            let opts = CreateBackup {
                target: target.unwrap_or_default(),
                labels: labels.into_iter().collect(),
            };
            let progress = Progress::bytes(spinner_shown(), &format!("backing up {database}:"));
            let backup = app.block_on(async {
                let client = app.connect().await?;
                create(&client, &database, opts, &progress).await
            })?;
            progress.finish();
            let rows = backup
                .manifest
                .as_ref()
                .map(|m| format!(", {}", plural(m.total_rows, "row", "rows")))
                .unwrap_or_default();
            let human = format!(
                "{} backup {} of {}: {}{rows} in {}",
                p.ok("created"),
                p.name(&backup.id),
                p.name(&backup.database),
                BinaryBytes(backup.size_bytes),
                elapsed(backup.duration),
            );
            output::record(
                &app.settings,
                &mut stdout(),
                &human,
                &backup_fields(app, &backup),
            )?;
            Ok(())
        }
        BackupCommand::List {
            database,
            labels,
            status,
        } => {
            let filter = BackupFilter {
                database: database.unwrap_or_default(),
                labels: labels.into_iter().collect(),
                status: status.map(Into::into).unwrap_or_default(),
            };
            let started = Instant::now();
            let backups = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.list_backups(filter).await?)
            })?;
            let rows = backups.iter().map(|b| backup_fields(app, b));
            listing(app, BACKUP_COLUMNS, rows, started)
        }
        BackupCommand::Show { id } => {
            let backup = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.get_backup(&id).await?)
            })?;
            let fields = details(app, &backup);
            let human = output::key_values(&app.settings, &fields);
            output::record(&app.settings, &mut stdout(), &human, &fields)?;
            Ok(())
        }
        BackupCommand::Restore {
            id,
            replace,
            new,
            labels,
        } => {
            // Checked here: clap's `requires = "new"` on --label let `--replace --label k=v`
            // through (both modes are in one required group).
            let mode = match new {
                Some(name) => RestoreMode::New {
                    name,
                    labels: labels.into_iter().collect(),
                },
                None if !labels.is_empty() => {
                    return Err(CliError::Usage(
                        "--label is for the new database of --new; --replace keeps the \
                         database's labels"
                            .into(),
                    ));
                }
                None if replace => RestoreMode::Replace,
                None => return Err(CliError::Usage("pass --replace or --new NAME".into())),
            };
            let progress = Progress::spinner(spinner_shown(), &format!("restoring {id}"));
            let restored = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.restore_backup(&id, mode).await?)
            })?;
            progress.finish();
            let human = restored_text(app, &id, &restored);
            let fields = vec![
                ("backup", Value::Text(id)),
                ("database", Value::Text(restored.database.name.clone())),
                (
                    "backend",
                    Value::Text(backend_name(restored.database.backend).to_owned()),
                ),
                ("rows", int(restored.rows)),
                ("duration_ms", Value::Float(millis(restored.duration))),
                (
                    "safety_backup",
                    restored
                        .safety_backup
                        .as_ref()
                        .map_or(Value::Null, |b| Value::Text(b.id.clone())),
                ),
            ];
            output::record(&app.settings, &mut stdout(), &human, &fields)?;
            Ok(())
        }
        BackupCommand::Rm { id, yes, if_exists } => {
            if !yes {
                confirm_delete(app, "backup", &id, "and its stored copy")?;
            }
            let deleted = app.block_on(async {
                let client = app.connect().await?;
                if if_exists {
                    Ok(client.delete_backup_if_exists(&id).await?)
                } else {
                    client.delete_backup(&id).await?;
                    Ok(true)
                }
            })?;
            let human = if deleted {
                format!("{} backup {}", p.ok("deleted"), p.name(&id))
            } else {
                format!("backup {} did not exist", p.name(&id))
            };
            output::record(
                &app.settings,
                &mut stdout(),
                &human,
                &[("id", Value::Text(id)), ("deleted", Value::Bool(deleted))],
            )?;
            Ok(())
        }
        BackupCommand::Policy(c) => policy(app, c),
    }
}

/// Runs a `backup policy` subcommand.
fn policy(app: &App, command: PolicyCommand) -> Result<()> {
    let p = app.settings.paint;
    match command {
        PolicyCommand::Set {
            name,
            database,
            pattern,
            labels,
            every,
            cron,
            keep_last,
            keep_within,
            target,
        } => {
            // clap's groups make exactly one of each given.
            let selector = match (database, pattern) {
                (Some(d), _) => Selector::Database(d),
                (None, Some(p)) => Selector::Pattern(p),
                (None, None) => Selector::Labels(labels.into_iter().collect()),
            };
            let schedule = match (every, cron) {
                (Some(d), _) => Schedule::Every(d),
                (None, Some(c)) => Schedule::Cron(c),
                (None, None) => return Err(CliError::Usage("pass --every or --cron".into())),
            };
            let mut policy = BackupPolicy::new(name, selector, schedule);
            policy.keep_last = keep_last.unwrap_or(0);
            policy.keep_within = keep_within;
            policy.target = target.unwrap_or_default();
            let (policy, created) = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.set_backup_policy(policy).await?)
            })?;
            let next = policy
                .next_run_at
                .map(|t| format!("; next run {}", output::render::text(&time(Some(t)), "").0))
                .unwrap_or_default();
            let human = format!(
                "{} policy {}: {} {}, keep {}{next}",
                p.ok(if created { "created" } else { "replaced" }),
                p.name(&policy.name),
                selector_text(&policy.selector),
                schedule_text(&policy.schedule),
                retention_text(&policy),
            );
            let mut fields = policy_fields(app, &policy);
            fields.insert(1, ("created", Value::Bool(created)));
            output::record(&app.settings, &mut stdout(), &human, &fields)?;
            Ok(())
        }
        PolicyCommand::List => {
            let started = Instant::now();
            let policies = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.list_backup_policies().await?)
            })?;
            let rows = policies.iter().map(|policy| policy_fields(app, policy));
            listing(app, POLICY_COLUMNS, rows, started)
        }
        PolicyCommand::Rm { name, if_exists } => {
            let deleted = app.block_on(async {
                let client = app.connect().await?;
                if if_exists {
                    Ok(client.delete_backup_policy_if_exists(&name).await?)
                } else {
                    client.delete_backup_policy(&name).await?;
                    Ok(true)
                }
            })?;
            let human = if deleted {
                format!(
                    "{} policy {} (its backups stay)",
                    p.ok("deleted"),
                    p.name(&name)
                )
            } else {
                format!("policy {} did not exist", p.name(&name))
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

/// Backups and restores print one line when they end, so a spinner on stderr helps whenever
/// stderr is a terminal, whatever stdout is.
fn spinner_shown() -> bool {
    io::stderr().is_terminal()
}

/// CreateBackup answers only when the backup is stored; meanwhile the running backup of the
/// database (the gateway runs one per database at a time) reports its growing size in
/// ListBackups, which the spinner shows. A failed poll only leaves the count where it was.
async fn create(
    client: &Client,
    database: &str,
    opts: CreateBackup,
    progress: &Progress,
) -> Result<Backup> {
    let call = client.create_backup(database, opts);
    tokio::pin!(call);
    let running = BackupFilter::database(database).status(BackupStatus::Running);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + POLL, POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            done = &mut call => return Ok(done?),
            _ = tick.tick(), if progress.shown() => {
                if let Ok((page, _)) = client.list_backups_page(&running, "", 1).await
                    && let Some(b) = page.first()
                {
                    progress.set(b.size_bytes);
                }
            }
        }
    }
}

/// Writes a listing: the header, one row per item, the footer.
pub(crate) fn listing(
    app: &App,
    columns: &[(&str, ValueKind)],
    rows: impl Iterator<Item = Vec<(&'static str, Value)>>,
    started: Instant,
) -> Result<()> {
    let mut out = stdout();
    let mut sink = output::sink(&app.settings, &mut out);
    sink.header(&listing_columns(app, columns))?;
    let mut count = 0u64;
    for fields in rows {
        let values: Vec<Value> = fields.into_iter().map(|(_, v)| v).collect();
        sink.row(&values)?;
        count += 1;
    }
    sink.end(&End {
        rows: count,
        affected: 0,
        elapsed: started.elapsed(),
        truncation: dbforge::Truncation::Unspecified,
    })?;
    Ok(())
}

/// A backup as named values, in [`BACKUP_COLUMNS`] order.
fn backup_fields(app: &App, b: &Backup) -> Vec<(&'static str, Value)> {
    vec![
        ("id", Value::Text(b.id.clone())),
        ("database", Value::Text(b.database.clone())),
        ("backend", Value::Text(backend_name(b.backend).to_owned())),
        ("status", Value::Text(status_name(b.status).to_owned())),
        ("created_at", time(Some(b.created_at))),
        ("size_bytes", int(b.size_bytes)),
        (
            "rows",
            b.manifest
                .as_ref()
                .map_or(Value::Null, |m| int(m.total_rows)),
        ),
        ("duration_ms", Value::Float(millis(b.duration))),
        ("target", Value::Text(b.target.clone())),
        ("labels", labels(app, &b.labels)),
        ("error", text_or_null(&b.error)),
    ]
}

/// Everything `backup show` prints: the listing's fields, where the backup is stored, and its
/// manifest.
fn details(app: &App, b: &Backup) -> Vec<(&'static str, Value)> {
    let mut fields = backup_fields(app, b);
    fields.extend([
        ("sha256", Value::Text(b.sha256.clone())),
        ("format", Value::Text(b.format.clone())),
        ("location", Value::Text(b.location.clone())),
    ]);
    if let Some(m) = &b.manifest {
        let row_counts = if app.settings.format == Format::Table {
            Value::Text(
                m.row_counts
                    .iter()
                    .map(|r| format!("{}={}", r.table, r.rows))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        } else {
            let obj: serde_json::Map<String, serde_json::Value> = m
                .row_counts
                .iter()
                .map(|r| (r.table.clone(), r.rows.into()))
                .collect();
            Value::Json(serde_json::Value::Object(obj).to_string())
        };
        fields.extend([
            ("format_version", int(u64::from(m.format_version))),
            ("engine", Value::Text(m.engine.clone())),
            ("engine_version", Value::Text(m.engine_version.clone())),
            ("gateway_version", Value::Text(m.gateway_version.clone())),
            ("tables", int(u64::from(m.tables))),
            ("views", int(u64::from(m.views))),
            ("row_counts", row_counts),
            ("raw_bytes", int(m.raw_bytes)),
        ]);
    }
    fields
}

/// A policy as named values, in [`POLICY_COLUMNS`] order. The selector and the schedule read
/// `database app`, `every 6h` in tables and are objects for programs (`{"database":"app"}`,
/// `{"every":"6h"}`); durations are written as the flags take them.
fn policy_fields(app: &App, policy: &BackupPolicy) -> Vec<(&'static str, Value)> {
    let table = app.settings.format == Format::Table;
    let selector = if table {
        Value::Text(selector_text(&policy.selector))
    } else {
        let obj = match &policy.selector {
            Selector::Database(d) => serde_json::json!({ "database": d }),
            Selector::Pattern(p) => serde_json::json!({ "pattern": p }),
            Selector::Labels(l) => serde_json::json!({ "labels": l }),
        };
        Value::Json(obj.to_string())
    };
    let schedule = if table {
        Value::Text(schedule_text(&policy.schedule))
    } else {
        let obj = match &policy.schedule {
            Schedule::Every(d) => serde_json::json!({ "every": duration_text(*d) }),
            Schedule::Cron(c) => serde_json::json!({ "cron": c }),
        };
        Value::Json(obj.to_string())
    };
    vec![
        ("name", Value::Text(policy.name.clone())),
        ("selector", selector),
        ("schedule", schedule),
        (
            "keep_last",
            match policy.keep_last {
                0 => Value::Null,
                n => int(u64::from(n)),
            },
        ),
        (
            "keep_within",
            policy
                .keep_within
                .map_or(Value::Null, |d| Value::Text(duration_text(d))),
        ),
        ("target", Value::Text(policy.target.clone())),
        ("last_run_at", time(policy.last_run_at)),
        ("next_run_at", time(policy.next_run_at)),
        ("last_error", text_or_null(&policy.last_error)),
        ("updated_at", time(policy.updated_at)),
    ]
}

/// "restored app from bk-… (3 rows in 12.0 ms); …" for people.
fn restored_text(app: &App, id: &str, r: &Restored) -> String {
    let p = app.settings.paint;
    let took = format!(
        "{} in {}",
        plural(r.rows, "row", "rows"),
        elapsed(r.duration)
    );
    match &r.safety_backup {
        Some(safety) => format!(
            "{} {} from backup {} ({took})\nthe database as it was is backup {}: `dbforge backup \
             restore {} --replace` undoes this",
            p.ok("restored"),
            p.name(&r.database.name),
            p.name(id),
            p.name(&safety.id),
            safety.id,
        ),
        None => format!(
            "{} backup {} into new database {} ({took})",
            p.ok("restored"),
            p.name(id),
            p.name(&r.database.name),
        ),
    }
}

/// `database app`, `pattern agent-*`, `labels tier=prod`: as `backup policy set` takes it.
fn selector_text(s: &Selector) -> String {
    match s {
        Selector::Database(d) => format!("database {d}"),
        Selector::Pattern(p) => format!("pattern {p}"),
        Selector::Labels(l) => format!(
            "labels {}",
            l.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// `every 6h` or `cron 0 3 * * *`.
fn schedule_text(s: &Schedule) -> String {
    match s {
        Schedule::Every(d) => format!("every {}", duration_text(*d)),
        Schedule::Cron(c) => format!("cron {c}"),
    }
}

/// `last 10 or within 7days`, as the policy keeps backups.
fn retention_text(policy: &BackupPolicy) -> String {
    let mut rules = Vec::new();
    if policy.keep_last > 0 {
        rules.push(format!("last {}", policy.keep_last));
    }
    if let Some(d) = policy.keep_within {
        rules.push(format!("within {}", duration_text(d)));
    }
    if rules.is_empty() {
        "all".to_owned()
    } else {
        rules.join(" or ")
    }
}

/// A duration as the flags take it: `6h`, `7days`, `1h 30m`.
fn duration_text(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A backup status in lower case, as `--status` takes it.
fn status_name(s: BackupStatus) -> &'static str {
    match s {
        BackupStatus::Unspecified => "unspecified",
        BackupStatus::Running => "running",
        BackupStatus::Completed => "completed",
        BackupStatus::Failed => "failed",
    }
}

fn text_or_null(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::Text(s.to_owned())
    }
}
