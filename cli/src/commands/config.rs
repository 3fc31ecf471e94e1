//! `dbforge config path|show`: where the settings come from.

use dbforge::Value;

use super::{App, stdout};
use crate::{cli::ConfigCommand, config, error::Result, output};

/// Runs a `config` subcommand.
pub fn run(app: &App, command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::Path => {
            let path = config::path(&app.global);
            let text = path
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let exists = path.as_deref().is_some_and(std::path::Path::exists);
            let human = if exists {
                text.clone()
            } else {
                format!("{text} {}", app.settings.paint.dim("(does not exist)"))
            };
            output::record(
                &app.settings,
                &mut stdout(),
                &human,
                &[("path", Value::Text(text)), ("exists", Value::Bool(exists))],
            )?;
            Ok(())
        }
        ConfigCommand::Show => {
            let r = app.resolved()?;
            let o = &r.options;
            let values = [
                Some(o.endpoint.clone()),
                o.api_key.as_deref().map(mask),
                o.ca_file.as_deref().map(|p| p.display().to_string()),
                o.timeout.map(|t| humantime::format_duration(t).to_string()),
            ];
            let p = app.settings.paint;
            let mut lines = vec![format!(
                "{}  {}",
                p.dim("config file"),
                r.file
                    .as_deref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_else(|| "none".into())
            )];
            lines.push(format!(
                "{}      {}",
                p.dim("profile"),
                r.profile.as_deref().unwrap_or("none")
            ));
            let mut fields: Vec<(&str, Value)> = vec![
                (
                    "config_file",
                    r.file
                        .as_deref()
                        .map(|f| Value::Text(f.display().to_string()))
                        .unwrap_or(Value::Null),
                ),
                (
                    "profile",
                    r.profile.clone().map(Value::Text).unwrap_or(Value::Null),
                ),
            ];
            for ((name, source), value) in r.sources.iter().zip(values) {
                let shown = value.clone().unwrap_or_else(|| "-".into());
                lines.push(format!(
                    "{}{}  {shown} {}",
                    p.dim(name),
                    " ".repeat(11usize.saturating_sub(name.len())),
                    p.dim(&format!("({source})"))
                ));
                fields.push((name, value.map(Value::Text).unwrap_or(Value::Null)));
            }
            output::record(&app.settings, &mut stdout(), &lines.join("\n"), &fields)?;
            Ok(())
        }
    }
}

/// An API key with all but its last four characters hidden.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let shown: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("****{shown}")
}
