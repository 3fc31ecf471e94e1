//! `dbforge key create|list|revoke` and `dbforge whoami`: API keys through AccessService.

use std::time::{Instant, SystemTime};

use dbforge::{ApiKey, ApiKeySpec, KeyGrant, Role, Value, pb::ValueKind};

use super::{
    App,
    db::{listing_columns, timestamp},
    stdout,
};
use crate::{
    cli::{Format, KeyCommand},
    error::Result,
    output::{self, End},
};

/// The columns of `key list`, in [`fields`] order.
const COLUMNS: &[(&str, ValueKind)] = &[
    ("id", ValueKind::Text),
    ("name", ValueKind::Text),
    ("admin", ValueKind::Bool),
    ("can_create", ValueKind::Bool),
    ("create_quota", ValueKind::Int),
    ("grants", ValueKind::Json),
    ("created_at", ValueKind::Timestamp),
    ("expires_at", ValueKind::Timestamp),
    ("revoked_at", ValueKind::Timestamp),
];

/// Runs a `key` subcommand.
pub fn key(app: &App, command: KeyCommand) -> Result<()> {
    let p = app.settings.paint;
    match command {
        KeyCommand::Create {
            name,
            admin,
            can_create,
            quota,
            grants,
            expires_in,
        } => {
            let mut spec = ApiKeySpec::new(name);
            if admin {
                spec = spec.admin();
            }
            if can_create {
                spec = spec.can_create(quota.unwrap_or(0));
            }
            for g in grants {
                spec = spec.grant(g);
            }
            if let Some(d) = expires_in {
                spec = spec.expires_at(SystemTime::now() + d);
            }
            let (key, secret) = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.create_api_key(spec).await?)
            })?;
            // The secret goes to stdout with the rest (`-o json | jq -r .secret` keeps it);
            // the server keeps only its hash, so this is the one chance to store it.
            let human = format!(
                "{} key {} (id {})\n{}  {}\n{}",
                p.ok("created"),
                p.name(&key.name),
                key.id,
                p.dim("secret"),
                secret,
                p.warn("store the secret now: it is not shown again"),
            );
            let mut fields = fields(app, &key);
            fields.insert(2, ("secret", Value::Text(secret)));
            output::record(&app.settings, &mut stdout(), &human, &fields)?;
            Ok(())
        }
        KeyCommand::List { all } => {
            let started = Instant::now();
            let keys = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.list_api_keys(all).await?)
            })?;
            let mut out = stdout();
            let mut sink = output::sink(&app.settings, &mut out);
            sink.header(&listing_columns(app, COLUMNS))?;
            for key in &keys {
                let values: Vec<Value> = fields(app, key).into_iter().map(|(_, v)| v).collect();
                sink.row(&values)?;
            }
            sink.end(&End {
                rows: keys.len() as u64,
                affected: 0,
                elapsed: started.elapsed(),
                truncation: dbforge::Truncation::Unspecified,
            })?;
            Ok(())
        }
        KeyCommand::Revoke { id } => {
            let revoked = app.block_on(async {
                let client = app.connect().await?;
                Ok(client.revoke_api_key(&id).await?)
            })?;
            let human = if revoked {
                format!("{} key {}", p.ok("revoked"), p.name(&id))
            } else {
                format!("key {} was revoked already", p.name(&id))
            };
            output::record(
                &app.settings,
                &mut stdout(),
                &human,
                &[("id", Value::Text(id)), ("revoked", Value::Bool(revoked))],
            )?;
            Ok(())
        }
    }
}

/// Runs `dbforge whoami`.
pub fn whoami(app: &App) -> Result<()> {
    let key = app.block_on(async {
        let client = app.connect().await?;
        Ok(client.who_am_i().await?)
    })?;
    let fields = fields(app, &key);
    let human = output::key_values(&app.settings, &fields);
    output::record(&app.settings, &mut stdout(), &human, &fields)?;
    Ok(())
}

/// A key as named values, in [`COLUMNS`] order. Grants read `role:target, …` in tables and are
/// an array of objects for programs.
fn fields(app: &App, key: &ApiKey) -> Vec<(&'static str, Value)> {
    let grants = if app.settings.format == Format::Table {
        Value::Text(
            key.grants
                .iter()
                .map(grant_text)
                .collect::<Vec<_>>()
                .join(", "),
        )
    } else {
        Value::Json(
            serde_json::Value::Array(key.grants.iter().map(grant_json).collect()).to_string(),
        )
    };
    vec![
        ("id", Value::Text(key.id.clone())),
        ("name", Value::Text(key.name.clone())),
        ("admin", Value::Bool(key.admin)),
        ("can_create", Value::Bool(key.can_create)),
        ("create_quota", Value::Int(i64::from(key.create_quota))),
        ("grants", grants),
        ("created_at", time(Some(key.created_at))),
        ("expires_at", time(key.expires_at)),
        ("revoked_at", time(key.revoked_at)),
    ]
}

/// A time as a timestamp to the second; unset is NULL.
pub fn time(t: Option<SystemTime>) -> Value {
    t.map_or(Value::Null, timestamp)
}

/// The role's name as `--grant` spells it.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Read => "read",
        Role::Write => "write",
        Role::Owner => "owner",
        Role::Unspecified => "unspecified",
    }
}

/// A grant as `--grant` spells it: `owner:agent-42-*`, `read:team=search`.
fn grant_text(g: &KeyGrant) -> String {
    let target = if !g.database.is_empty() {
        g.database.clone()
    } else if !g.pattern.is_empty() {
        g.pattern.clone()
    } else {
        // The labels come sorted (a BTreeMap).
        g.labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!("{}:{target}", role_name(g.role))
}

/// A grant for programs: `{"role":"owner","pattern":"agent-42-*"}`.
fn grant_json(g: &KeyGrant) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    obj.insert("role".into(), role_name(g.role).into());
    if !g.database.is_empty() {
        obj.insert("database".into(), g.database.clone().into());
    } else if !g.pattern.is_empty() {
        obj.insert("pattern".into(), g.pattern.clone().into());
    } else if !g.labels.is_empty() {
        let labels: serde_json::Map<String, serde_json::Value> = g
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        obj.insert("labels".into(), labels.into());
    }
    serde_json::Value::Object(obj)
}
