//! `dbforge`: the command-line client of DB-Forge, built on the Rust SDK (crate `dbforge`).
//!
//! ```text
//! dbforge db create scratch --label task=demo
//! dbforge sql scratch "CREATE TABLE people (name TEXT, age INTEGER)"
//! dbforge sql scratch "INSERT INTO people VALUES (?, ?)" --param Ada --param 36
//! dbforge sql scratch "SELECT * FROM people WHERE age > ?" --param 30
//! dbforge shell scratch
//! dbforge db rm scratch --yes
//! ```
//!
//! `main` parses the command line (clap exits with 2 on usage errors), builds the [`App`]
//! (output settings, colours, a tokio runtime), runs one command, and turns the outcome into
//! an exit code; `error.rs` holds the table. Modules:
//!
//! - `cli`: the grammar (clap derive); `input`: typed values from argument text and JSON;
//! - `commands/`: one module per command group; `shell/`: the interactive shell;
//! - `output/`: formats (table, JSON, NDJSON, CSV), colours and value rendering;
//! - `chart`: terminal charts; `schema`: the shell's view of SchemaService (tables, columns);
//! - `statements`: splitting SQL at `;`; `config`: profiles and connection settings;
//! - `progress`: progress indicators on stderr.

mod chart;
mod cli;
mod commands;
mod config;
mod error;
mod input;
mod output;
mod progress;
mod schema;
mod shell;
mod statements;

use std::process::ExitCode;

use clap::Parser;

use crate::{
    cli::{Cli, Command, ExportFormatArg, OutputArg},
    commands::App,
};

/// Gives `-o` to the command it belongs to. `-o PATH` names the file of an export or a dump;
/// anywhere else a path is not an output format. `-o csv|json|ndjson` on an export is the
/// file's format (an export's output is that file), so it never silently writes another one.
/// A dump is the backend's own script and has no format to choose. Mistakes are usage errors
/// (exit code 2) that name the flag meant.
fn route_output(cli: &mut Cli) {
    let Some(output) = cli.global.output.clone() else {
        return;
    };
    let path = match output {
        OutputArg::File(path) => path,
        OutputArg::Format(f) => {
            match &mut cli.command {
                Command::Export(a) => {
                    let Some(format) = ExportFormatArg::from_output(f) else {
                        usage_error(format!(
                            "-o {}: an export is a file; choose its format with \
                             --format csv|json|ndjson (or -o csv|json|ndjson), and the file to \
                             write with --out PATH (or -o PATH)",
                            f.name()
                        ))
                    };
                    if let Some(given) = a.format
                        && given != format
                    {
                        usage_error(format!(
                            "--format {} and -o {} disagree: give the export's format once",
                            given.name(),
                            f.name()
                        ));
                    }
                    a.format = Some(format);
                    cli.global.output = None;
                }
                Command::Dump(_) => usage_error(format!(
                    "-o {}: a dump is the backend's own script and has no other format; \
                     -o PATH or --out PATH names the file to write (e.g. -o app.sql)",
                    f.name()
                )),
                _ => {}
            }
            return;
        }
    };
    let out = match &mut cli.command {
        Command::Export(a) => &mut a.out,
        Command::Dump(a) => &mut a.out,
        _ => usage_error(format!(
            "-o {}: a file path is only for export and dump; the output format is one of \
             table, json, ndjson, csv",
            path.display()
        )),
    };
    if out.is_some() {
        usage_error("give the file once: -o PATH or --out PATH".into());
    }
    *out = Some(path);
    cli.global.output = None;
}

/// clap ends its message for a missing required argument with a usage line built from the
/// arguments given, global flags and those set through the environment included
/// (`--output <FORMAT> --endpoint <URL> --api-key <KEY> <--where <COND>|--all>`), which reads as
/// if they were required too. The command's own usage line replaces it, so that the error
/// names only what is missing.
fn plain_usage(mut e: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::MissingRequiredArgument {
        return e;
    }
    let Some(ContextValue::StyledStr(usage)) = e.get(ContextKind::Usage) else {
        return e;
    };
    // "Usage: dbforge rows update …": the words after the binary's name that name
    // subcommands are the path to the command that failed.
    let usage = usage.to_string();
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    let mut path = Vec::new();
    let mut at = &cmd;
    for word in usage.split_whitespace().skip(2) {
        match at.find_subcommand(word) {
            Some(sub) => {
                path.push(word.to_owned());
                at = sub;
            }
            None => break,
        }
    }
    let mut sub = &mut cmd;
    for name in &path {
        sub = match sub.find_subcommand_mut(name) {
            Some(s) => s,
            None => return e,
        };
    }
    e.insert(
        ContextKind::Usage,
        ContextValue::StyledStr(sub.render_usage()),
    );
    e
}

fn usage_error(message: String) -> ! {
    <Cli as clap::CommandFactory>::command()
        .error(clap::error::ErrorKind::ArgumentConflict, message)
        .exit()
}

fn main() -> ExitCode {
    let mut cli = Cli::try_parse().unwrap_or_else(|e| plain_usage(e).exit());
    route_output(&mut cli);
    let app = match App::new(cli.global) {
        Ok(app) => app,
        Err(e) => {
            error::report(&e, output::Paint::new(false));
            return ExitCode::from(e.exit_code());
        }
    };
    match commands::run(&app, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error::report(&e, app.err_paint);
            ExitCode::from(e.exit_code())
        }
    }
}
