//! Replaying a dump into a staging database: what restores (`core/backup/restore.rs`) and
//! forks (`core/fork.rs`) share. SQL dumps are split into statements run in one transaction,
//! with PostgreSQL's `COPY … FROM stdin` blocks (a backup's rows) loaded through the engine's
//! bulk path a batch of lines at a time; key records are written a batch at a time. Either way
//! memory stays bounded whatever the dump's size.

use futures::{StreamExt, stream::BoxStream};
use tracing::warn;

use super::{
    engine::BackendKind,
    error::{Error, Result},
    script::{ScriptStatement, Splitter, copy_target},
    value::Statement,
};
use crate::backend::{Database, Session, StatementLimits};

/// Longest statement a replayed script may hold: a dump's statements are batches of rows, so
/// only a single huge value comes near it.
const MAX_STATEMENT: usize = 1 << 30;
/// Key records written per call, about (bytes): each call is parsed and pipelined whole, so
/// this bounds the memory (4 MiB grew the gateway by 85 MB).
const RECORD_BATCH: usize = 512 << 10;
/// Lines of COPY data loaded per call, about (bytes): large enough that the savepoint around
/// each call costs nothing next to it, small enough to keep memory flat.
const COPY_BATCH: usize = 1 << 20;

/// A dump's bytes, in pieces of any size.
pub type RawPieces<'a> = BoxStream<'a, Result<Vec<u8>>>;

/// Turns a statement the engine refused (its number and line in the script) into the caller's
/// error.
pub type Refused = fn(Error, usize, u64) -> Error;

/// Replays the SQL script of `pieces` into `database` in one transaction, which is left open
/// for the caller to commit after its own checks (or roll back). On an error the transaction
/// is rolled back here.
pub async fn replay_script(
    database: &dyn Database,
    kind: BackendKind,
    pieces: &mut RawPieces<'_>,
    limits: StatementLimits,
    refused: Refused,
) -> Result<Box<dyn Session>> {
    let mut replay = Replay {
        kind,
        splitter: Splitter::new(kind, MAX_STATEMENT).with_copy_data(),
        copy: None,
        refused,
    };
    let mut session = database.session(limits).await?;
    session.begin().await?;
    let outcome: Result<()> = async {
        while let Some(raw) = pieces.next().await {
            replay.feed(&mut *session, raw?, false).await?;
        }
        replay.feed(&mut *session, Vec::new(), true).await?;
        if let Some(copy) = &replay.copy {
            return Err(Error::DataLoss(format!(
                "the dump ends inside the rows of table {:?}",
                copy.table
            )));
        }
        let Replay { splitter, .. } = replay;
        for s in splitter.finish()? {
            run_statement(&mut *session, s, refused).await?;
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => Ok(session),
        Err(e) => {
            if let Err(rb) = session.rollback().await {
                warn!(error = %rb, "rolling back a failed replay failed");
            }
            Err(e)
        }
    }
}

/// Writes the key records of `pieces` into `database`, an empty staging database, a batch of
/// whole lines at a time ([`Database::restore_records`]).
pub async fn replay_records(
    database: &dyn Database,
    pieces: &mut RawPieces<'_>,
    limits: &StatementLimits,
) -> Result<()> {
    let mut batch: Vec<u8> = Vec::with_capacity(RECORD_BATCH + (64 << 10));
    while let Some(raw) = pieces.next().await {
        batch.extend_from_slice(&raw?);
        if batch.len() >= RECORD_BATCH
            && let Some(end) = batch.iter().rposition(|b| *b == b'\n')
        {
            let rest = batch.split_off(end + 1);
            database.restore_records(&batch, limits).await?;
            batch = rest;
        }
    }
    if !batch.is_empty() {
        database.restore_records(&batch, limits).await?;
    }
    Ok(())
}

async fn run_statement(
    session: &mut dyn Session,
    s: ScriptStatement,
    refused: Refused,
) -> Result<()> {
    session
        .execute(Statement::new(s.sql))
        .await
        .map(drop)
        .map_err(|e| refused(e, s.number, s.line))
}

/// A backup's script being replayed: statements, and the data of its `COPY … FROM stdin`
/// blocks (PostgreSQL's), which go to the engine's bulk load a batch of lines at a time.
struct Replay {
    kind: BackendKind,
    splitter: Splitter,
    copy: Option<CopyBlock>,
    refused: Refused,
}

impl Replay {
    /// Replays what `input` completes; `last` at the end of the script.
    async fn feed(
        &mut self,
        session: &mut dyn Session,
        mut input: Vec<u8>,
        last: bool,
    ) -> Result<()> {
        loop {
            if let Some(copy) = self.copy.as_mut() {
                let rest = copy.push(&input);
                if rest.is_some() || copy.scanned >= COPY_BATCH {
                    copy.load(session, self.refused).await?;
                }
                match rest {
                    Some(rest) => {
                        self.splitter.skip_lines(copy.lines);
                        self.copy = None;
                        input = rest;
                    }
                    None => return Ok(()),
                }
            }
            let mut statements = self.splitter.push(&input)?;
            if last {
                statements.extend(self.splitter.end_of_input()?);
            }
            let Some(data) = self.splitter.take_copy_data() else {
                for s in statements {
                    run_statement(session, s, self.refused).await?;
                }
                return Ok(());
            };
            // The last statement is the COPY whose data follows.
            let head = statements
                .pop()
                .ok_or_else(|| Error::internal("a COPY block without its statement"))?;
            for s in statements {
                run_statement(session, s, self.refused).await?;
            }
            let target = copy_target(self.kind, &head.sql).ok_or_else(|| {
                Error::internal(format!(
                    "statement {} is not a COPY FROM STDIN",
                    head.number
                ))
            })?;
            self.copy = Some(CopyBlock {
                table: target.table,
                columns: target.columns,
                number: head.number,
                line: head.line,
                data: Vec::new(),
                started: false,
                scanned: 0,
                lines: 0,
            });
            input = data;
        }
    }
}

/// The data of one `COPY … FROM stdin` block, read line by line up to its `\.` line.
struct CopyBlock {
    table: String,
    columns: Vec<String>,
    /// The COPY statement's number and line, for errors.
    number: usize,
    line: u64,
    /// Whole lines not loaded yet (up to `scanned`), then the start of the next one.
    data: Vec<u8>,
    /// Whether the rest of the COPY statement's own line was skipped.
    started: bool,
    /// Length of the whole data lines at the start of `data`.
    scanned: usize,
    /// Lines read, for the splitter's line numbers.
    lines: u64,
}

impl CopyBlock {
    /// Appends `input`; at the `\.` line, returns what follows it.
    fn push(&mut self, input: &[u8]) -> Option<Vec<u8>> {
        self.data.extend_from_slice(input);
        if !self.started {
            let eol = self.data.iter().position(|b| *b == b'\n')?;
            self.data.drain(..=eol);
            self.lines += 1;
            self.started = true;
        }
        loop {
            let line = &self.data[self.scanned..];
            // In COPY text a backslash in a value is written `\\`, so a line that starts
            // with `\.` can only be the end of the data.
            if line.starts_with(b"\\.\n") {
                let rest = self.data.split_off(self.scanned + 3);
                self.data.truncate(self.scanned);
                self.lines += 1;
                return Some(rest);
            }
            if line.len() < 3 && b"\\.\n".starts_with(line) {
                return None;
            }
            let eol = line.iter().position(|b| *b == b'\n')?;
            self.scanned += eol + 1;
            self.lines += 1;
        }
    }

    /// Loads the whole lines waiting.
    async fn load(&mut self, session: &mut dyn Session, refused: Refused) -> Result<()> {
        if self.scanned == 0 {
            return Ok(());
        }
        let loaded = session
            .copy_text(&self.table, &self.columns, &self.data[..self.scanned])
            .await
            .map_err(|e| refused(e, self.number, self.line))?;
        if loaded.is_none() {
            return Err(Error::internal("this engine cannot load COPY data"));
        }
        self.data.drain(..self.scanned);
        self.scanned = 0;
        Ok(())
    }
}
