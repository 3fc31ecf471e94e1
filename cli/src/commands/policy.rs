//! `dbforge policy set|list|delete`: lifecycle policies through DatabaseService.

use std::{collections::BTreeMap, time::Instant};

use dbforge::{LifecyclePolicy, Value, pb::ValueKind};

use super::{App, access::time, backup::listing, int, stdout};
use crate::{
    cli::{Format, LifecyclePolicyCommand},
    error::Result,
    output,
};

/// The columns of `policy list`, in [`policy_fields`] order.
const COLUMNS: &[(&str, ValueKind)] = &[
    ("name", ValueKind::Text),
    ("pattern", ValueKind::Text),
    ("labels", ValueKind::Json),
    ("idle_ttl", ValueKind::Text),
    ("max_age", ValueKind::Text),
    ("max_databases_per_key", ValueKind::Int),
    ("max_bytes", ValueKind::Int),
    ("updated_at", ValueKind::Timestamp),
    ("updated_by", ValueKind::Text),
];

/// Runs a `policy` subcommand.
pub fn run(app: &App, command: LifecyclePolicyCommand) -> Result<()> {
    let p = app.settings.paint;
    match command {
        LifecyclePolicyCommand::Set {
            name,
            pattern,
            labels,
            idle_ttl,
            max_age,
            max_databases_per_key,
            max_bytes,
        } => {
            let policy = LifecyclePolicy {
                name,
                name_pattern: pattern.unwrap_or_default(),
                labels: labels.into_iter().collect(),
                idle_ttl,
                max_age,
                max_databases_per_key: max_databases_per_key.unwrap_or(0),
                max_bytes,
                ..Default::default()
            };
            let (policy, created) = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.set_lifecycle_policy(policy).await?)
            })?;
            let human = format!(
                "{} lifecycle policy {}: {}",
                p.ok(if created { "created" } else { "replaced" }),
                p.name(&policy.name),
                rules_text(&policy),
            );
            let mut fields = policy_fields(app, &policy);
            fields.insert(1, ("created", Value::Bool(created)));
            output::record(&app.settings, &mut stdout(), &human, &fields)?;
            Ok(())
        }
        LifecyclePolicyCommand::List => {
            let started = Instant::now();
            let policies = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.list_lifecycle_policies().await?)
            })?;
            listing(
                app,
                COLUMNS,
                policies.iter().map(|policy| policy_fields(app, policy)),
                started,
            )
        }
        LifecyclePolicyCommand::Delete { name, if_exists } => {
            let deleted = app.block_on(async {
                let client = app.connect().await?;
                if if_exists {
                    Ok(client.delete_lifecycle_policy_if_exists(&name).await?)
                } else {
                    client.delete_lifecycle_policy(&name).await?;
                    Ok(true)
                }
            })?;
            let human = if deleted {
                format!("{} lifecycle policy {}", p.ok("deleted"), p.name(&name))
            } else {
                format!("lifecycle policy {} did not exist", p.name(&name))
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

/// "databases ci-* with team=a: prune after 1h idle, at age 1day, at most 5 per key".
fn rules_text(policy: &LifecyclePolicy) -> String {
    let mut selector = Vec::new();
    if !policy.name_pattern.is_empty() {
        selector.push(policy.name_pattern.clone());
    }
    if !policy.labels.is_empty() {
        selector.push(format!("with {}", labels_text(&policy.labels)));
    }
    let mut rules = Vec::new();
    if let Some(d) = policy.idle_ttl {
        rules.push(format!(
            "prune after {} idle",
            humantime::format_duration(d)
        ));
    }
    if let Some(d) = policy.max_age {
        rules.push(format!("prune at age {}", humantime::format_duration(d)));
    }
    if policy.max_databases_per_key > 0 {
        rules.push(format!("at most {} per key", policy.max_databases_per_key));
    }
    if let Some(b) = policy.max_bytes {
        rules.push(format!("at most {b} bytes each"));
    }
    format!("databases {}: {}", selector.join(" "), rules.join(", "))
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A policy as named values, in [`COLUMNS`] order; durations as the flags take them.
fn policy_fields(app: &App, policy: &LifecyclePolicy) -> Vec<(&'static str, Value)> {
    let duration = |d: Option<std::time::Duration>| {
        d.map_or(Value::Null, |d| {
            Value::Text(humantime::format_duration(d).to_string())
        })
    };
    let labels = if app.settings.format == Format::Table {
        Value::Text(labels_text(&policy.labels))
    } else {
        Value::Json(serde_json::json!(policy.labels).to_string())
    };
    vec![
        ("name", Value::Text(policy.name.clone())),
        ("pattern", Value::Text(policy.name_pattern.clone())),
        ("labels", labels),
        ("idle_ttl", duration(policy.idle_ttl)),
        ("max_age", duration(policy.max_age)),
        (
            "max_databases_per_key",
            match policy.max_databases_per_key {
                0 => Value::Null,
                n => int(u64::from(n)),
            },
        ),
        ("max_bytes", policy.max_bytes.map_or(Value::Null, int)),
        ("updated_at", time(policy.updated_at)),
        ("updated_by", Value::Text(policy.updated_by.clone())),
    ]
}
