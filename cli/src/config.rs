//! Connection settings and the config file.
//!
//! Each setting comes from the first of: the flag, its `DBFORGE_*` environment variable (both
//! read by clap), the selected profile of the config file, the default. The config file is TOML
//! in the user's config directory (`~/.config/dbforge/config.toml` on Linux) or at
//! `--config`/`DBFORGE_CONFIG`:
//!
//! ```toml
//! default_profile = "local"
//!
//! [profiles.local]
//! endpoint = "http://127.0.0.1:50051"
//!
//! [profiles.prod]
//! endpoint = "https://dbforge.example.com:50051"
//! api_key = "dbf_…"
//! ca_file = "/etc/dbforge/ca.pem"
//! timeout = "30s"
//! ```

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use dbforge::ClientOptions;
use serde::Deserialize;

use crate::{
    cli::GlobalArgs,
    error::{CliError, Result},
};

/// Time allowed to establish the connection, so an unreachable gateway fails in seconds rather
/// than after the operating system's TCP timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// The profile used when neither --profile nor DBFORGE_PROFILE names one.
    default_profile: Option<String>,
    /// Named connection settings.
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// One profile's settings; all optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    endpoint: Option<String>,
    api_key: Option<String>,
    ca_file: Option<PathBuf>,
    timeout: Option<String>,
}

/// Where a setting came from, for `dbforge config show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// An environment variable.
    Env(&'static str),
    /// A profile of the config file.
    Profile(String),
    /// The built-in default.
    Default,
    /// Not set anywhere.
    Unset,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(var) => f.write_str(var),
            Source::Profile(p) => write!(f, "profile {p:?}"),
            Source::Default => f.write_str("default"),
            Source::Unset => f.write_str("not set"),
        }
    }
}

/// The settings in effect.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// What the SDK connects with.
    pub options: ClientOptions,
    /// The config file consulted, if it exists.
    pub file: Option<PathBuf>,
    /// The profile used, if any.
    pub profile: Option<String>,
    /// Where endpoint, api key, CA file and timeout came from.
    pub sources: [(&'static str, Source); 4],
}

/// The default config file path: `<config dir>/dbforge/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "dbforge").map(|d| d.config_dir().join("config.toml"))
}

/// The shell's history file: DBFORGE_HISTORY, or `<data dir>/dbforge/history`.
pub fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DBFORGE_HISTORY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    directories::ProjectDirs::from("", "", "dbforge").map(|d| d.data_dir().join("history"))
}

/// The config file's path: --config / DBFORGE_CONFIG, else the default.
pub fn path(global: &GlobalArgs) -> Option<PathBuf> {
    global.config.clone().or_else(default_path)
}

fn load(path: &Path, explicit: bool) -> Result<Option<ConfigFile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        // A missing default file is normal; a missing file the user named is a mistake.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) => {
            return Err(CliError::Usage(format!(
                "cannot read the config file {}: {e}",
                path.display()
            )));
        }
    };
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "invalid config file {}: {}",
            path.display(),
            e.message()
        ))
    })?;
    warn_if_readable(path, &file);
    Ok(Some(file))
}

/// API keys in a file others can read are not secret; say so (once per run, on stderr).
#[cfg(unix)]
fn warn_if_readable(path: &Path, file: &ConfigFile) {
    use std::os::unix::fs::PermissionsExt;
    let has_key = file.profiles.values().any(|p| p.api_key.is_some());
    if let Ok(meta) = std::fs::metadata(path)
        && has_key
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: {} holds an API key and others can read it; run: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable(_path: &Path, _file: &ConfigFile) {}

/// Resolves the settings in effect.
pub fn resolve(global: &GlobalArgs) -> Result<Resolved> {
    let path = path(global);
    let file = match &path {
        Some(p) => load(p, global.config.is_some())?,
        None => None,
    };
    let profile_name = global
        .profile
        .clone()
        .or_else(|| file.as_ref().and_then(|f| f.default_profile.clone()));
    let profile = match (&profile_name, &file) {
        (None, _) => Profile::default(),
        (Some(name), Some(f)) => f.profiles.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = f.profiles.keys().map(String::as_str).collect();
            CliError::Usage(format!(
                "no profile {name:?} in {} (profiles: {})",
                path.as_deref()
                    .map(Path::display)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })?,
        (Some(name), None) => {
            return Err(CliError::Usage(format!(
                "profile {name:?} was asked for but there is no config file{}",
                path.as_deref()
                    .map(|p| format!(" at {}", p.display()))
                    .unwrap_or_default()
            )));
        }
    };
    let from_profile = || Source::Profile(profile_name.clone().unwrap_or_default());

    let (endpoint, endpoint_src) = pick(
        global.endpoint.clone(),
        "DBFORGE_ENDPOINT",
        profile.endpoint.clone(),
        &from_profile,
    );
    let (endpoint, endpoint_src) = match endpoint {
        Some(e) => (e, endpoint_src),
        None => (ClientOptions::DEFAULT_ENDPOINT.to_owned(), Source::Default),
    };
    let (api_key, key_src) = pick(
        global.api_key.clone(),
        "DBFORGE_API_KEY",
        profile.api_key.clone(),
        &from_profile,
    );
    let (ca_file, ca_src) = pick(
        global.ca_file.clone(),
        "DBFORGE_CA_FILE",
        profile.ca_file.clone(),
        &from_profile,
    );
    let profile_timeout = match &profile.timeout {
        Some(t) => Some(humantime::parse_duration(t).map_err(|e| {
            CliError::Usage(format!("invalid timeout {t:?} in the config file: {e}"))
        })?),
        None => None,
    };
    let (timeout, timeout_src) = pick(
        global.timeout,
        "DBFORGE_TIMEOUT",
        profile_timeout,
        &from_profile,
    );

    let endpoint = with_scheme(endpoint, ca_file.is_some());
    let mut options = ClientOptions::new(endpoint).connect_timeout(CONNECT_TIMEOUT);
    if let Some(k) = api_key {
        options = options.api_key(k);
    }
    if let Some(ca) = ca_file {
        options = options.ca_file(ca);
    }
    if let Some(t) = timeout {
        options = options.timeout(t);
    }
    Ok(Resolved {
        options,
        file: path.filter(|p| p.exists()),
        profile: profile_name,
        sources: [
            ("endpoint", endpoint_src),
            ("api_key", key_src),
            ("ca_file", ca_src),
            ("timeout", timeout_src),
        ],
    })
}

/// `host:port` as a URL, the way grpcurl and the Python SDK read it: `http://host:port`, or
/// `https://host:port` when a CA file is given (which turns TLS on; the transport speaks TLS
/// only to an `https` URL). A URL with a scheme is left as it is.
fn with_scheme(endpoint: String, tls: bool) -> String {
    if endpoint.contains("://") {
        return endpoint;
    }
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{endpoint}")
}

/// The first of flag-or-environment and profile, with its source. clap has merged the flag and
/// the environment variable already; the variable being set tells which one it was.
fn pick<T>(
    flag_or_env: Option<T>,
    var: &'static str,
    profile: Option<T>,
    from_profile: &dyn Fn() -> Source,
) -> (Option<T>, Source) {
    match (flag_or_env, profile) {
        (Some(v), _) => {
            let src = if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
                Source::Env(var)
            } else {
                Source::Flag
            };
            (Some(v), src)
        }
        (None, Some(v)) => (Some(v), from_profile()),
        (None, None) => (None, Source::Unset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let example: String = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let file: ConfigFile = toml::from_str(&example).expect("example parses");
        assert_eq!(file.default_profile.as_deref(), Some("local"));
        assert_eq!(file.profiles["prod"].timeout.as_deref(), Some("30s"));
    }

    #[test]
    fn an_endpoint_without_a_scheme_gets_one() {
        let url = |e: &str, tls| with_scheme(e.to_owned(), tls);
        assert_eq!(url("127.0.0.1:50051", false), "http://127.0.0.1:50051");
        assert_eq!(url("localhost:50051", true), "https://localhost:50051");
        assert_eq!(url("[::1]:50051", false), "http://[::1]:50051");
        assert_eq!(url("http://a:1", true), "http://a:1");
        assert_eq!(url("https://a:1", false), "https://a:1");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<ConfigFile>("[profiles.a]\nendpont = \"x\"\n")
            .expect_err("typo refused");
        assert!(err.message().contains("endpont"), "{}", err.message());
    }
}
