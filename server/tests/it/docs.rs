//! Docs that describe the tree or the binary are checked against them, so they cannot drift:
//! ARCHITECTURE.md names only paths that exist, and the README's "Server configuration" table
//! lists exactly the flags of `dbforge-server --help`, with their environment variables and
//! defaults. (docs/sdk-matrix.md is checked against the proto by the SDK tests.)

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server crate sits in the repository")
        .to_path_buf()
}

fn repo_file(name: &str) -> String {
    let path = repo().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The `code spans` of a markdown text, outside fenced blocks.
fn code_spans(markdown: &str) -> Vec<String> {
    let mut in_fence = false;
    let mut prose = String::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The targets of relative markdown links, `[text](target)`, without their `#anchor`.
fn link_targets(markdown: &str) -> Vec<String> {
    markdown
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(|t| t.split('#').next().unwrap_or_default().to_owned())
        .filter(|t| !t.is_empty() && !t.contains("://"))
        .collect()
}

const FILE_EXTENSIONS: &[&str] = &[
    ".rs", ".md", ".proto", ".py", ".ts", ".toml", ".yaml", ".yml", ".json", ".mjs",
];

/// Whether a code span reads as a repository path: no spaces, no Rust paths, no placeholders
/// (`backend/<engine>/`), no URL paths (`/metrics`) or flags, and either a folder separator or a
/// file extension.
fn looks_like_path(span: &str) -> bool {
    !span.is_empty()
        && !span.contains(char::is_whitespace)
        && !span.contains("::")
        && !span.contains(['<', '>', '(', '=', '{'])
        && !span.starts_with(['/', '-'])
        && (span.contains('/') || FILE_EXTENSIONS.iter().any(|ext| span.ends_with(ext)))
}

/// Whether `path` (a `*` allowed in its last component, a trailing `/` meaning a folder)
/// exists below `base`.
fn exists_below(base: &Path, path: &str) -> bool {
    let folder = path.ends_with('/');
    let path = path.trim_end_matches('/');
    let (parent, last) = path.rsplit_once('/').unwrap_or(("", path));
    let Some((prefix, suffix)) = last.split_once('*') else {
        let p = base.join(path);
        return if folder { p.is_dir() } else { p.exists() };
    };
    std::fs::read_dir(base.join(parent))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
}

/// Every file name in the repository (build output and installed packages aside).
fn file_names(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "node_modules" {
                file_names(&path, out);
            }
        } else {
            out.push(name);
        }
    }
}

#[test]
fn architecture_names_only_paths_that_exist() {
    let doc = repo_file("ARCHITECTURE.md");
    let root = repo();
    // Server modules are written from server/src (`api/status.rs`), everything else from the
    // root; a bare file name (`conn.rs` in a row about backend/mysql/) must name some file.
    let bases = [root.clone(), root.join("server/src")];
    let mut names = Vec::new();
    file_names(&root, &mut names);

    let spans: Vec<String> = code_spans(&doc)
        .into_iter()
        .filter(|s| looks_like_path(s))
        .collect();
    assert!(
        spans.len() > 50,
        "found only {} paths in ARCHITECTURE.md; is the parser broken?",
        spans.len()
    );
    let mut missing = Vec::new();
    for span in &spans {
        let found = if span.contains('/') {
            bases.iter().any(|b| exists_below(b, span))
        } else {
            bases.iter().any(|b| exists_below(b, span)) || names.contains(span)
        };
        if !found {
            missing.push(format!("`{span}`"));
        }
    }
    for target in link_targets(&doc) {
        if !exists_below(&root, &target) {
            missing.push(format!("link ({target})"));
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {}",
        missing.join(", ")
    );
}

/// One flag as `dbforge-server --help` shows it.
#[derive(Debug, Default)]
struct HelpFlag {
    takes_value: bool,
    env: Option<String>,
    default: Option<String>,
    /// How many `[default: …]` its description holds: clap's, or one written by hand for a
    /// default that is not a value (`the rate`), never both.
    defaults_shown: usize,
}

/// The text between `open` and the next `]` on `line`.
fn bracketed<'a>(line: &'a str, open: &str) -> Option<&'a str> {
    let rest = &line[line.find(open)? + open.len()..];
    rest.split(']').next()
}

/// The flags of `dbforge-server --help` (clap's own `--help` and `--version` aside).
fn help_flags() -> BTreeMap<String, HelpFlag> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dbforge-server"));
    cmd.arg("--help");
    // clap prints the variables' current values; the table documents the unset state.
    for (var, _) in std::env::vars().filter(|(k, _)| k.starts_with("DBFORGE_")) {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("run dbforge-server --help");
    assert!(out.status.success(), "dbforge-server --help failed");
    let help = String::from_utf8(out.stdout).expect("--help is UTF-8");

    let mut flags = BTreeMap::new();
    let mut current: Option<(String, HelpFlag)> = None;
    // The description of the current flag so far, its lines joined: with clap's `wrap_help`
    // (which the CLI's build turns on for the whole workspace) `[default: …]` may be cut.
    let mut text = String::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        // A new flag: `      --listen <LISTEN>` or `  -h, --help` (not `- text: …`, a value).
        if trimmed.starts_with("--")
            || (trimmed.starts_with('-') && trimmed.get(2..4) == Some(", "))
        {
            flags.extend(current.take());
            text.clear();
            let name = trimmed
                .split([' ', ','])
                .find(|w| w.starts_with("--"))
                .expect("a long flag");
            current = Some((
                name.to_owned(),
                HelpFlag {
                    takes_value: trimmed.contains(" <"),
                    ..HelpFlag::default()
                },
            ));
        } else if let Some((_, flag)) = current.as_mut() {
            text.push(' ');
            text.push_str(trimmed);
            if let Some(env) = bracketed(&text, "[env: ") {
                flag.env = Some(env.split('=').next().unwrap_or_default().to_owned());
            }
            if let Some(default) = bracketed(&text, "[default: ") {
                flag.default = Some(default.to_owned());
            }
            flag.defaults_shown = text.matches("[default: ").count();
        }
    }
    flags.extend(current);
    flags.remove("--help");
    flags.remove("--version");
    assert!(
        flags.contains_key("--listen") && flags.contains_key("--data-dir"),
        "unexpected --help layout:\n{help}"
    );
    flags
}

/// One row of the README's table: its flags with their variables, and the default.
#[derive(Debug)]
struct Row {
    flags: Vec<(String, String)>,
    default: String,
}

fn readme_rows() -> Vec<Row> {
    let readme = repo_file("README.md");
    let section = readme
        .split("\n## Server configuration\n")
        .nth(1)
        .expect("README.md has a '## Server configuration' section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells[0] == "flag" || cells[0].starts_with("---") {
            continue;
        }
        assert_eq!(
            cells.len(),
            4,
            "a row of flag, environment, default, meaning: {line}"
        );
        let flags = code_spans(cells[0]);
        let envs = code_spans(cells[1]);
        assert!(
            !flags.is_empty() && flags.len() == envs.len(),
            "each flag of a row has its variable, in order: {line}"
        );
        rows.push(Row {
            flags: flags.into_iter().zip(envs).collect(),
            default: cells[2].to_owned(),
        });
    }
    rows
}

/// A default as a comparable value: backticks dropped, digit groups joined (`100 000 000`),
/// and byte sizes in bytes (`4 MiB` is `4194304`), so that the README may use readable units.
fn normalize(default: &str) -> String {
    let text = default.replace('`', "");
    let words: Vec<&str> = text.split_whitespace().collect();
    let digits =
        |ws: &[&str]| !ws.is_empty() && ws.iter().all(|w| w.bytes().all(|b| b.is_ascii_digit()));
    let unit = match words.last() {
        Some(&"KiB") => Some(1u128 << 10),
        Some(&"MiB") => Some(1 << 20),
        Some(&"GiB") => Some(1 << 30),
        _ => None,
    };
    match unit {
        Some(unit) if digits(&words[..words.len() - 1]) => {
            let n: u128 = words[..words.len() - 1].concat().parse().expect("digits");
            (n * unit).to_string()
        }
        _ if digits(&words) => words.concat(),
        _ => words.join(" "),
    }
}

#[test]
fn readme_configuration_table_matches_help() {
    let help = help_flags();
    let rows = readme_rows();
    let mut problems = Vec::new();
    let mut documented = BTreeSet::new();
    for row in &rows {
        for (flag, env) in &row.flags {
            if !documented.insert(flag.clone()) {
                problems.push(format!("{flag} is in the table twice"));
            }
            let Some(h) = help.get(flag) else {
                problems.push(format!("{flag} is in the table but not in --help"));
                continue;
            };
            if h.defaults_shown > 1 {
                problems.push(format!(
                    "{flag}: --help shows {} defaults; write it once, as the flag's \
                     default_value_t",
                    h.defaults_shown
                ));
            }
            if h.env.as_deref() != Some(env.as_str()) {
                problems.push(format!("{flag}: the table says {env}, --help {:?}", h.env));
            }
            // A switch is off unless given; an option without a default is unset.
            let expected = match (&h.default, h.takes_value) {
                (Some(d), _) => normalize(d),
                (None, false) => "off".to_owned(),
                (None, true) => "—".to_owned(),
            };
            if normalize(&row.default) != expected {
                problems.push(format!(
                    "{flag}: the table's default is {:?}, --help's {expected:?}",
                    row.default
                ));
            }
        }
    }
    // Modes instead of settings: no variable (an environment must never turn serving off),
    // so they are described under the table, not in it.
    const MODES: &[&str] = &["--health-check"];
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
    )
    .expect("README.md");
    for mode in MODES {
        documented.insert((*mode).to_owned());
        if !readme.contains(&format!("dbforge-server {mode}")) {
            problems.push(format!("{mode} is not described in README.md"));
        }
    }
    for flag in help.keys().filter(|f| !documented.contains(*f)) {
        problems.push(format!("{flag} is in --help but not in the table"));
    }
    assert!(
        problems.is_empty(),
        "README.md's Server configuration table and dbforge-server --help disagree:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn defaults_compare_by_value() {
    assert_eq!(normalize("4 MiB"), normalize("4194304"));
    assert_eq!(normalize("1 GiB"), "1073741824");
    assert_eq!(normalize("100 000 000"), "100000000");
    assert_eq!(normalize("`90d`"), "90d");
    assert_eq!(normalize("the rate"), "the rate");
    assert_ne!(normalize("16 MiB"), normalize("16777217"));
}
