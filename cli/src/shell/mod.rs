//! `dbforge shell DB`: an interactive SQL shell on rustyline.
//!
//! Lines collect into a buffer until it holds complete statements (ended by `;`, see
//! `statements.rs`); each statement then streams its result like `dbforge sql`. A line starting
//! with `.` is a dot-command. Ctrl-C while a statement runs cancels it (the shell drops the
//! call, which cancels it on the gateway) and returns to the prompt; at the prompt it clears the
//! line. BEGIN opens a transaction over a Session, so the statements until COMMIT or ROLLBACK
//! run in it. Input that is not a terminal is read line by line without prompts, and the first
//! error ends it with that error's exit code.

mod complete;

use std::{
    io::{self, BufRead, Write},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Instant,
};

use dbforge::{Client, Transaction};
use rustyline::{Config, Editor, error::ReadlineError, history::DefaultHistory};

use crate::{
    cli::{Format, ShellArgs},
    commands::{self, App, backend_name},
    error::{self, CliError, Result},
    output::{self, Settings},
    progress::Progress,
    schema::{Catalog, Schema},
    statements,
};

use complete::{DOT_COMMANDS, MODES, ShellHelper};

/// What the loop does after a line.
enum Flow {
    Continue,
    Quit,
}

/// What a statement asks of the transaction state.
#[derive(Debug, PartialEq, Eq)]
enum TxControl {
    Begin,
    Commit,
    Rollback,
    None,
}

/// The first `n` tokens of `sql` after its comments, words in upper case and anything else as
/// `""` (so `END + 1` is not `END`), read by the shared scanner under `dialect`.
fn leading_words(sql: &str, dialect: statements::Dialect, n: usize) -> Vec<String> {
    use dbforge_sqlscan::{TokenKind, Tokens};
    Tokens::new(sql, dialect)
        .filter(|t| !matches!(t.kind, TokenKind::Comment | TokenKind::ExecutableComment))
        .take(n)
        .map(|t| match t.kind {
            TokenKind::Word => t.text.to_ascii_uppercase(),
            _ => String::new(),
        })
        .collect()
}

fn tx_control(sql: &str, dialect: statements::Dialect) -> TxControl {
    let words = leading_words(sql, dialect, 3);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["BEGIN"]
        | [
            "BEGIN",
            "TRANSACTION" | "DEFERRED" | "IMMEDIATE" | "EXCLUSIVE" | "WORK",
        ]
        | [
            "BEGIN",
            "DEFERRED" | "IMMEDIATE" | "EXCLUSIVE",
            "TRANSACTION",
        ]
        | ["START", "TRANSACTION"] => TxControl::Begin,
        ["COMMIT" | "END"] | ["COMMIT" | "END", "TRANSACTION" | "WORK"] => TxControl::Commit,
        ["ROLLBACK"] | ["ROLLBACK", "TRANSACTION" | "WORK"] => TxControl::Rollback,
        _ => TxControl::None,
    }
}

/// Statements after which the table and column names may have changed.
fn changes_schema(sql: &str, dialect: statements::Dialect) -> bool {
    let first = leading_words(sql, dialect, 1);
    matches!(
        first.first().map(String::as_str),
        Some("CREATE" | "DROP" | "ALTER")
    )
}

struct Shell<'a> {
    app: &'a App,
    client: Client,
    database: String,
    schema: Schema,
    catalog: Arc<Mutex<Catalog>>,
    settings: Settings,
    timer: bool,
    tx: Option<Transaction>,
    buffer: String,
    /// Commands end at the end of their line (key-value engines: a Redis command has no `;`);
    /// otherwise statements end with `;` and may span lines.
    line_ends_command: bool,
    /// How the database's engine reads quotes and comments, to find where statements end.
    dialect: statements::Dialect,
}

/// Runs the shell.
pub fn run(app: &App, args: ShellArgs) -> Result<()> {
    let (client, db) = app.block_on(async {
        let client = app.connect().await?;
        let db = client.get_database(&args.database).await?;
        Ok((client, db))
    })?;
    let mut settings = app.settings.clone();
    settings.format = app.global.format().unwrap_or(Format::Table);
    let mut shell = Shell {
        app,
        schema: Schema::new(client.clone(), &db.name),
        client,
        database: db.name.clone(),
        catalog: Arc::new(Mutex::new(Catalog::default())),
        settings,
        timer: false,
        tx: None,
        buffer: String::new(),
        line_ends_command: db.capabilities.key_value,
        dialect: statements::dialect(db.backend),
    };
    shell.refresh_catalog();
    if app.stdin_tty {
        let endpoint = app.resolved()?.options.endpoint;
        let p = app.settings.paint;
        println!(
            "{} {} ({}) at {endpoint}",
            p.dim("connected to"),
            p.name(&db.name),
            backend_name(db.backend)
        );
        let ending = if shell.line_ends_command {
            "Enter runs the command: one command per line."
        } else {
            "End statements with ;"
        };
        println!(
            "{}",
            p.dim(&format!(
                "{ending}  .help lists the dot-commands, Ctrl-D quits."
            ))
        );
        shell.interactive()
    } else {
        shell.batch()
    }
}

impl Shell<'_> {
    fn interactive(&mut self) -> Result<()> {
        let config = Config::builder()
            .auto_add_history(false)
            .history_ignore_space(true)
            .history_ignore_dups(true)
            .map_err(|e| CliError::Io(io::Error::other(e)))?
            .max_history_size(10_000)
            .map_err(|e| CliError::Io(io::Error::other(e)))?
            .completion_type(rustyline::CompletionType::List)
            .build();
        let mut rl: Editor<ShellHelper, DefaultHistory> =
            Editor::with_config(config).map_err(readline_error)?;
        rl.set_helper(Some(ShellHelper {
            catalog: Arc::clone(&self.catalog),
        }));
        let history = crate::config::history_path();
        if let Some(path) = &history {
            // A first run has no history yet; any other problem only costs the history.
            if path.exists()
                && let Err(e) = rl.load_history(path)
            {
                self.app
                    .warn(&format!("cannot read the history {}: {e}", path.display()));
            }
        }
        let mut history_warned = false;
        loop {
            let prompt = self.prompt();
            match rl.readline(&prompt) {
                Ok(line) => {
                    let (flow, entry) = self.line(&line);
                    if let Some(entry) = entry {
                        let _ = rl.add_history_entry(entry);
                        if let Some(path) = &history
                            && let Err(e) = save_history(&mut rl, path)
                            && !history_warned
                        {
                            history_warned = true;
                            self.app
                                .warn(&format!("cannot write the history {}: {e}", path.display()));
                        }
                    }
                    if let Flow::Quit = flow {
                        break;
                    }
                }
                // Ctrl-C at the prompt drops what was typed, like a shell.
                Err(ReadlineError::Interrupted) => self.buffer.clear(),
                Err(ReadlineError::Eof) => break,
                Err(e) => return Err(readline_error(e)),
            }
        }
        self.leave();
        Ok(())
    }

    /// Input from a pipe or file: no prompts, stop at the first error.
    fn batch(&mut self) -> Result<()> {
        let stdin = io::stdin();
        for line in stdin.lock().lines() {
            let line = line?;
            match self.line_checked(&line)? {
                Flow::Continue => {}
                Flow::Quit => break,
            }
        }
        // A last statement without its `;` still runs.
        if !statements::is_blank(self.dialect, &self.buffer) {
            let rest = std::mem::take(&mut self.buffer);
            self.statement(rest.trim())?;
        }
        self.leave();
        Ok(())
    }

    fn prompt(&self) -> String {
        let marker = if self.tx.is_some() { "*" } else { "" };
        let name = format!("{}{marker}", self.database);
        if self.buffer.is_empty() {
            format!("{name}> ")
        } else {
            format!("{:>w$}> ", "...", w = name.len().max(3))
        }
    }

    /// Handles one line, printing errors and carrying on; returns the history entry to add
    /// when something complete was entered.
    fn line(&mut self, line: &str) -> (Flow, Option<String>) {
        let entry = self.entry(line);
        match self.line_checked(line) {
            Ok(flow) => (flow, entry),
            Err(e) => {
                error::report(&e, self.app.err_paint);
                self.buffer.clear();
                (Flow::Continue, entry)
            }
        }
    }

    /// The history entry `line` completes, if any: a dot-command, or the buffered statement.
    fn entry(&self, line: &str) -> Option<String> {
        let text = format!("{}{line}\n", self.buffer);
        // Like shells, input that starts with a space stays out of the history.
        if text.starts_with(' ') {
            return None;
        }
        if self.buffer.is_empty() && line.trim_start().starts_with('.') {
            return Some(line.trim().to_owned());
        }
        if self.line_ends_command {
            return (!statements::is_blank(self.dialect, &text)).then(|| text.trim().to_owned());
        }
        let split = statements::split(self.dialect, &text);
        (!split.statements.is_empty()).then(|| {
            let end = text.len() - split.rest.len();
            text[..end].trim().to_owned()
        })
    }

    fn line_checked(&mut self, line: &str) -> Result<Flow> {
        if self.buffer.is_empty() && line.trim_start().starts_with('.') {
            return self.dot(line.trim());
        }
        self.buffer.push_str(line);
        self.buffer.push('\n');
        let split = statements::split(self.dialect, &self.buffer);
        let rest_is_empty = split.rest_is_empty();
        let mut stmts = split.statements;
        if rest_is_empty {
            self.buffer.clear();
        } else if self.line_ends_command {
            stmts.push(split.rest.trim().to_owned());
            self.buffer.clear();
        } else {
            self.buffer = split.rest.trim_start().to_owned();
        }
        for stmt in stmts {
            if let Err(e) = self.statement(&stmt) {
                // The rest of a line after a failed statement is dropped, like a batch.
                self.buffer.clear();
                return Err(e);
            }
        }
        Ok(Flow::Continue)
    }

    fn dot(&mut self, line: &str) -> Result<Flow> {
        let mut parts = line.splitn(2, char::is_whitespace);
        let cmd = parts.next().unwrap_or_default();
        let arg = parts.next().map(str::trim).filter(|a| !a.is_empty());
        let p = self.settings.paint;
        let mut out = io::stdout().lock();
        match (cmd, arg) {
            (".quit" | ".exit" | ".q", _) => return Ok(Flow::Quit),
            (".help", _) => {
                for (c, what) in DOT_COMMANDS {
                    writeln!(out, "{:<8} {what}", p.name(c))?;
                }
            }
            (".tables", _) => {
                let catalog = self.app.runtime().block_on(self.schema.catalog())?;
                for t in &catalog.tables {
                    writeln!(out, "{t}")?;
                }
                *self
                    .catalog
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = catalog;
            }
            (".schema", table) => {
                let table = table.map(|t| t.trim_matches('"'));
                let text = self.app.runtime().block_on(self.schema.text(table))?;
                write!(out, "{text}")?;
                if !text.is_empty() && !text.ends_with('\n') {
                    writeln!(out)?;
                }
            }
            (".mode", None) => writeln!(out, "{}", self.settings.format.name())?,
            (".mode", Some(m)) => {
                self.settings.format = match m {
                    "table" => Format::Table,
                    "csv" => Format::Csv,
                    "json" => Format::Json,
                    "ndjson" => Format::Ndjson,
                    _ => {
                        return Err(CliError::Usage(format!(
                            "unknown mode {m:?}; expected {}",
                            MODES.join(", ")
                        )));
                    }
                }
            }
            (".timer", Some("on")) => self.timer = true,
            (".timer", Some("off")) => self.timer = false,
            (".timer", _) => {
                return Err(CliError::Usage("expected .timer on or .timer off".into()));
            }
            (other, _) => {
                return Err(CliError::Usage(format!(
                    "unknown command {other}; .help lists them"
                )));
            }
        }
        out.flush()?;
        Ok(Flow::Continue)
    }

    /// Runs one statement; Ctrl-C cancels it.
    fn statement(&mut self, sql: &str) -> Result<()> {
        let p = self.settings.paint;
        let control = tx_control(sql, self.dialect);
        let in_tx = self.tx.is_some();
        match (&control, in_tx) {
            (TxControl::Begin, true) => {
                return Err(CliError::Usage(
                    "a transaction is open already; COMMIT or ROLLBACK it first".into(),
                ));
            }
            (TxControl::Commit | TxControl::Rollback, false) => {
                return Err(CliError::Usage("no transaction is open".into()));
            }
            _ => {}
        }
        let mut settings = self.settings.clone();
        settings.timer = self.timer;
        settings.width = commands::width(&self.app.global);
        let client = self.client.clone();
        let database = self.database.clone();
        let tx = &mut self.tx;
        let run = async {
            match control {
                TxControl::Begin => {
                    *tx = Some(client.transaction(&database).await?);
                    println!("{}", p.dim("transaction started"));
                }
                TxControl::Commit => {
                    if let Some(t) = tx.take() {
                        t.commit().await?;
                    }
                    println!("{}", p.dim("committed"));
                }
                TxControl::Rollback => {
                    if let Some(t) = tx.take() {
                        t.rollback().await?;
                    }
                    println!("{}", p.dim("rolled back"));
                }
                TxControl::None => {
                    let started = Instant::now();
                    let mut out = commands::stdout();
                    match tx.as_mut() {
                        Some(t) => {
                            let result = t.execute(sql, &[]).await?;
                            let mut sink = output::sink(&settings, &mut out);
                            commands::write_exec(&result, sink.as_mut(), started)?;
                        }
                        None => {
                            let rows = client.query(&database, sql, &[]).await?;
                            let mut sink = output::sink(&settings, &mut out);
                            commands::stream(rows, sink.as_mut(), started, &Progress::none())
                                .await?;
                        }
                    }
                }
            }
            Ok::<(), CliError>(())
        };
        let timeout = self.app.timeout();
        let outcome = self.app.runtime().block_on(async {
            tokio::select! {
                r = commands::within(timeout, run) => Some(r),
                _ = tokio::signal::ctrl_c() => None,
            }
        });
        match outcome {
            Some(result) => {
                if matches!(result, Err(CliError::Timeout(_))) && self.tx.take().is_some() {
                    // The session may still owe an answer to the abandoned statement.
                    self.app.warn("the transaction was rolled back");
                }
                let result = match result {
                    Err(e) if in_tx => match session_ended(&e) {
                        // The transaction is gone with its session: leave transaction mode.
                        Some(why) => {
                            self.tx = None;
                            Err(CliError::RolledBack(why))
                        }
                        None => Err(e),
                    },
                    r => r,
                };
                result?;
                if changes_schema(sql, self.dialect) {
                    self.refresh_catalog();
                }
                Ok(())
            }
            None => {
                // The unfinished table stays as printed; say why it stops there.
                let mut note = String::from("cancelled");
                if self.tx.take().is_some() {
                    note.push_str("; the transaction was rolled back");
                }
                println!();
                eprintln!("{}", self.app.err_paint.warn(&note));
                Ok(())
            }
        }
    }

    fn refresh_catalog(&mut self) {
        // Completion is a convenience: when introspection fails it offers keywords only.
        if let Ok(c) = self.app.runtime().block_on(self.schema.catalog()) {
            *self
                .catalog
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = c;
        }
    }

    fn leave(&mut self) {
        if self.tx.take().is_some() {
            eprintln!(
                "{}",
                self.app
                    .err_paint
                    .warn("the open transaction was rolled back")
            );
        }
    }
}

/// Why the gateway ended a transaction's session, if `e` says it did: the gateway rolls back
/// a transaction left idle past its `--session-idle-timeout` ("the session was idle for 1m;
/// its transaction was rolled back", DEADLINE_EXCEEDED), and a session that ended otherwise
/// (a restart) shows as the SDK's protocol error.
fn session_ended(e: &CliError) -> Option<String> {
    let CliError::Sdk { error, .. } = e else {
        return None;
    };
    if let dbforge::Error::Protocol(_) = error {
        return Some("the gateway ended the session".to_owned());
    }
    if error.code() != dbforge::Code::DeadlineExceeded {
        return None;
    }
    let message = error.message();
    let idle = message
        .strip_prefix("the session was idle for ")?
        .split(';')
        .next()?;
    Some(format!(
        "the session was idle for {idle} (the gateway's --session-idle-timeout)"
    ))
}

fn save_history(rl: &mut Editor<ShellHelper, DefaultHistory>, path: &PathBuf) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    rl.append_history(path).map_err(readline_error)
}

fn readline_error(e: ReadlineError) -> CliError {
    match e {
        ReadlineError::Io(e) => CliError::Io(e),
        other => CliError::Io(io::Error::other(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_control_is_recognised() {
        let sqlite = statements::Dialect::Sqlite;
        let tx = |sql| tx_control(sql, sqlite);
        assert_eq!(tx("BEGIN"), TxControl::Begin);
        assert_eq!(tx("begin immediate transaction"), TxControl::Begin);
        assert_eq!(tx("START TRANSACTION"), TxControl::Begin);
        assert_eq!(tx("-- a note\nBEGIN /* here */"), TxControl::Begin);
        assert_eq!(tx("commit"), TxControl::Commit);
        assert_eq!(tx("END"), TxControl::Commit);
        assert_eq!(tx("END + 1"), TxControl::None);
        assert_eq!(tx("ROLLBACK"), TxControl::Rollback);
        assert_eq!(tx("ROLLBACK TO SAVEPOINT a"), TxControl::None);
        assert_eq!(tx("SELECT 1"), TxControl::None);
        let mysql = statements::Dialect::Mysql;
        assert_eq!(tx_control("# note\nCOMMIT", mysql), TxControl::Commit);
        assert!(changes_schema("create table t (a)", sqlite));
        assert!(changes_schema("/* x */ DROP TABLE t", sqlite));
        assert!(!changes_schema("SELECT 1", sqlite));
    }

    #[test]
    fn a_session_the_gateway_ended_is_told_apart() {
        let status = |code, message: &str| {
            CliError::sdk(
                dbforge::Error::Status(tonic::Status::new(code, message)),
                "",
            )
        };
        let idle = status(
            tonic::Code::DeadlineExceeded,
            "the session was idle for 1m; its transaction was rolled back",
        );
        assert_eq!(
            session_ended(&idle).as_deref(),
            Some("the session was idle for 1m (the gateway's --session-idle-timeout)")
        );
        let ended = CliError::sdk(dbforge::Error::Protocol("the session has ended".into()), "");
        assert_eq!(
            session_ended(&ended).as_deref(),
            Some("the gateway ended the session")
        );
        let slow = status(tonic::Code::DeadlineExceeded, "statement timeout");
        assert_eq!(session_ended(&slow), None);
        assert_eq!(session_ended(&CliError::Interrupted), None);
    }
}
