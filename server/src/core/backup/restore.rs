//! Restores: a backup replayed into a staging database beside the original, verified, then
//! swapped in (REPLACE) or registered under a new name (NEW).
//!
//! The checksum is checked as the object streams in, so a damaged backup is found at the
//! latest at its end; since everything before that went into the staging database, which is
//! then dropped, the database the caller uses is never touched by a backup that fails the
//! check. An error while replaying (a statement the engine refuses) is followed by reading the
//! rest of the object: when the object turns out damaged the answer is DATA_LOSS, whatever
//! the first error said.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration, time::Instant};

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

use super::{
    BackupRecord, BackupStatus, FORMAT_VERSION, Manifest, Payload, SAFETY_LABEL,
    format::{Unpacker, sha256_hex},
    store::Target,
};
use crate::{
    backend::{Database, Provisioned, Session, StatementLimits},
    core::{
        access::{Principal, Role},
        error::{Error, Result},
        forge::{DatabaseInfo, DatabaseSpec, Forge},
        names::DatabaseName,
        registry::Entry,
        script::{ScriptStatement, Splitter, copy_target},
        value::Statement,
    },
    metrics as names,
};

/// Lines of COPY data loaded per call, about (bytes): large enough that the savepoint around
/// each call costs nothing next to it, small enough to keep a restore's memory flat.
const COPY_BATCH: usize = 1 << 20;
/// Longest statement a restored script may hold: a dump's statements are batches of rows, so
/// only a single huge value comes near it.
const MAX_STATEMENT: usize = 1 << 30;
/// Key records imported per call, about (bytes): each call is one MULTI on the staging
/// namespace, parsed and pipelined whole, so this bounds a restore's memory (4 MiB grew the
/// gateway by 85 MB).
const RECORD_BATCH: usize = 512 << 10;

/// How a restore treats the database.
#[derive(Debug, Clone)]
pub enum RestoreMode {
    /// Replace the database the backup came from.
    Replace,
    /// Restore into a new database.
    New {
        /// Its name.
        name: DatabaseName,
        /// Its labels.
        labels: BTreeMap<String, String>,
    },
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The restored database.
    pub database: DatabaseInfo,
    /// REPLACE: the backup taken just before.
    pub safety: Option<BackupRecord>,
    /// Rows (or keys) restored, as the manifest counts them.
    pub rows: u64,
    /// How long it took.
    pub duration: Duration,
}

impl Forge {
    /// Restores backup `id`.
    pub async fn restore_backup(
        &self,
        who: &Principal,
        id: &str,
        mode: RestoreMode,
    ) -> Result<RestoreReport> {
        let started = Instant::now();
        let rec = self.visible_backup(who, id, Role::Owner).await?;
        if rec.status != BackupStatus::Completed {
            return Err(Error::FailedPrecondition(format!(
                "backup {id} is {}, not completed: only completed backups can be restored",
                rec.status.as_str()
            )));
        }
        let target = self.backups().targets().get(&rec.target).map_err(|_| {
            Error::FailedPrecondition(format!(
                "backup {id} is in target {:?}, which this server no longer configures",
                rec.target
            ))
        })?;
        let manifest = check_manifest(&rec, &target).await?;
        let mode_name = match mode {
            RestoreMode::Replace => "replace",
            RestoreMode::New { .. } => "new",
        };
        let result = match mode {
            RestoreMode::Replace => self.restore_replace(&rec, &manifest, &target).await,
            RestoreMode::New { name, labels } => {
                self.restore_new(who, &rec, &manifest, &target, name, labels)
                    .await
            }
        };
        let outcome = if result.is_ok() {
            "completed"
        } else {
            "failed"
        };
        metrics::counter!(names::RESTORES_TOTAL, "backend" => rec.backend.as_str(), "mode" => mode_name, "outcome" => outcome)
            .increment(1);
        let (entry, safety) = result?;
        info!(backup = %rec.id, db = %entry.record.provisioned.name, mode = mode_name, elapsed_ms = started.elapsed().as_millis() as u64, "backup restored");
        Ok(RestoreReport {
            database: entry.info(entry.size().await),
            safety,
            rows: manifest.total_rows,
            duration: started.elapsed(),
        })
    }

    async fn restore_replace(
        &self,
        rec: &BackupRecord,
        manifest: &Manifest,
        target: &Target,
    ) -> Result<(Arc<Entry>, Option<BackupRecord>)> {
        let registry = self.registry();
        let entry = match registry.get(&rec.database) {
            Ok(e) if e.record.backend == rec.backend => e,
            Ok(e) => {
                return Err(Error::FailedPrecondition(format!(
                    "database {:?} is now a {} database, and backup {} is of {}: restore it \
                     with mode NEW",
                    rec.database, e.record.backend, rec.id, rec.backend
                )));
            }
            Err(Error::NotFound { .. }) => {
                return Err(Error::FailedPrecondition(format!(
                    "database {:?} no longer exists: restore backup {} with mode NEW",
                    rec.database, rec.id
                )));
            }
            Err(e) => return Err(e),
        };
        let lock = self.backups().lock(&rec.database);
        let _held = lock.try_lock_owned().map_err(|_| {
            Error::Aborted(format!(
                "a backup or restore of database {:?} is running; retry when it ends",
                rec.database
            ))
        })?;
        entry.check_fence()?;
        // From here until the swap, calls on the database are UNAVAILABLE: writes made now
        // would be lost with the storage being replaced.
        entry.fence(true);
        let result = async {
            let labels = BTreeMap::from([(SAFETY_LABEL.to_owned(), rec.id.clone())]);
            let safety = self
                .backup_locked(&entry, &rec.target, labels, None)
                .await
                .map_err(|e| match e {
                    Error::Unavailable(m) => Error::Unavailable(format!(
                        "the safety backup taken before a restore failed, so nothing was \
                         restored: {m}"
                    )),
                    other => other,
                })?;
            let staged = registry
                .stage(rec.backend, &entry.record.provisioned.name)
                .await?;
            if let Err(e) = self.fill(&staged, rec, manifest, target).await {
                registry.unstage(rec.backend, &staged).await;
                return Err(e);
            }
            let control = registry.control().await;
            let swapped = registry.swap(&control, &entry, staged.clone()).await;
            drop(control);
            let (fresh, old) = match swapped {
                Ok(s) => s,
                Err(e) => {
                    registry.unstage(rec.backend, &staged).await;
                    return Err(e);
                }
            };
            // Calls still holding the old handle finish on the old storage; it goes now.
            self.handles().close(&entry.slot);
            registry.unstage(rec.backend, &old).await;
            Ok((fresh, Some(safety)))
        }
        .await;
        if result.is_err() {
            entry.fence(false);
        }
        result
    }

    async fn restore_new(
        &self,
        who: &Principal,
        rec: &BackupRecord,
        manifest: &Manifest,
        target: &Target,
        name: DatabaseName,
        labels: BTreeMap<String, String>,
    ) -> Result<(Arc<Entry>, Option<BackupRecord>)> {
        let registry = self.registry();
        who.require_create(&name)?;
        if let Ok(existing) = registry.get(&name) {
            return Err(Error::AlreadyExists {
                what: "database",
                name: format!("{name} (backend {})", existing.record.backend),
            });
        }
        who.require_create_quota(|key| registry.owned_by(key))?;
        let staged = registry.stage(rec.backend, &name).await?;
        if let Err(e) = self.fill(&staged, rec, manifest, target).await {
            registry.unstage(rec.backend, &staged).await;
            return Err(e);
        }
        let control = registry.control().await;
        let spec = DatabaseSpec {
            name,
            backend: rec.backend,
            if_not_exists: false,
            labels,
        };
        match registry
            .adopt(&control, spec, who.owner_id(), staged.clone())
            .await
        {
            Ok(entry) => Ok((entry, None)),
            Err(e) => {
                drop(control);
                registry.unstage(rec.backend, &staged).await;
                Err(e)
            }
        }
    }

    /// Replays the backup into the staging database `staged`, checking the checksum.
    async fn fill(
        &self,
        staged: &Provisioned,
        rec: &BackupRecord,
        manifest: &Manifest,
        target: &Target,
    ) -> Result<()> {
        let backend = self.registry().backend(rec.backend)?;
        let mut stream = target.get(&rec.object).await?;
        let mut unpacker = Unpacker::new()?;
        let result = match manifest.payload {
            Payload::SqliteFile => {
                let path = self
                    .backups()
                    .cfg
                    .scratch_dir
                    .join(format!("{}.restore-{}.sqlite", rec.id, staged.locator));
                let r = write_file(&mut stream, &mut unpacker, &path, rec).await;
                let r = match r {
                    Ok(()) => backend.restore_image(staged, path.clone()).await,
                    Err(e) => Err(e),
                };
                let _ = std::fs::remove_file(&path);
                r
            }
            Payload::SqlScript => {
                let database = backend.open(staged).await?;
                let limits = StatementLimits {
                    timeout: self.limits().transfer_timeout,
                    ..self.limits().whole_result()
                };
                replay_script(&*database, rec, &mut stream, &mut unpacker, limits).await
            }
            Payload::KeyRecords => {
                let database = backend.open(staged).await?;
                let limits = self.limits().whole_result();
                replay_records(&*database, &mut stream, &mut unpacker, &limits).await
            }
        };
        match result {
            Ok(()) => unpacker.verify(&rec.sha256, rec.size_bytes),
            Err(e) => {
                // Damage explains any failure: read the rest to know.
                while let Some(Ok(piece)) = stream.next().await {
                    unpacker.hash_only(&piece);
                }
                match unpacker.verify(&rec.sha256, rec.size_bytes) {
                    Err(damage @ Error::DataLoss(_)) => Err(damage),
                    _ => Err(e),
                }
            }
        }
    }
}

type Pieces = BoxStream<'static, Result<Bytes>>;

/// Next raw piece of the backup, or `None` at its end.
async fn next_raw(stream: &mut Pieces, unpacker: &mut Unpacker) -> Result<Option<Vec<u8>>> {
    loop {
        if let Some(raw) = unpacker.next_raw()? {
            return Ok(Some(raw));
        }
        match stream.next().await {
            Some(piece) => unpacker.feed(&piece?),
            None => return Ok(None),
        }
    }
}

async fn write_file(
    stream: &mut Pieces,
    unpacker: &mut Unpacker,
    path: &PathBuf,
    rec: &BackupRecord,
) -> Result<()> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(Error::internal)?;
    while let Some(raw) = next_raw(stream, unpacker).await? {
        file.write_all(&raw).await.map_err(Error::internal)?;
    }
    // The image goes in only when it is the one that was stored.
    unpacker.verify(&rec.sha256, rec.size_bytes)?;
    file.sync_all().await.map_err(Error::internal)?;
    Ok(())
}

async fn replay_script(
    database: &dyn Database,
    rec: &BackupRecord,
    stream: &mut Pieces,
    unpacker: &mut Unpacker,
    limits: StatementLimits,
) -> Result<()> {
    let mut replay = Replay {
        kind: rec.backend,
        splitter: Splitter::new(rec.backend, MAX_STATEMENT).with_copy_data(),
        copy: None,
    };
    let mut session = database.session(limits).await?;
    session.begin().await?;
    let outcome: Result<()> = async {
        while let Some(raw) = next_raw(stream, unpacker).await? {
            replay.feed(&mut *session, raw, false).await?;
        }
        replay.feed(&mut *session, Vec::new(), true).await?;
        if let Some(copy) = &replay.copy {
            return Err(Error::DataLoss(format!(
                "backup {} ends inside the rows of table {:?}; nothing was restored",
                rec.id, copy.table
            )));
        }
        let Replay { splitter, .. } = replay;
        for s in splitter.finish()? {
            run_statement(&mut *session, s).await?;
        }
        // Committed only when the bytes are the ones stored.
        unpacker.verify(&rec.sha256, rec.size_bytes)
    }
    .await;
    match outcome {
        Ok(()) => session.commit().await,
        Err(e) => {
            if let Err(rb) = session.rollback().await {
                warn!(error = %rb, "rolling back a failed restore failed");
            }
            Err(e)
        }
    }
}

async fn run_statement(session: &mut dyn Session, s: ScriptStatement) -> Result<()> {
    session
        .execute(Statement::new(s.sql))
        .await
        .map(drop)
        .map_err(|e| restore_failed(e, s.number, s.line))
}

/// A backup's script being replayed: statements, and the data of its `COPY … FROM stdin`
/// blocks (PostgreSQL's), which go to the engine's bulk load a batch of lines at a time.
struct Replay {
    kind: crate::core::engine::BackendKind,
    splitter: Splitter,
    copy: Option<CopyBlock>,
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
                if rest.is_some() || copy.ready() >= COPY_BATCH {
                    copy.load(session).await?;
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
                    run_statement(session, s).await?;
                }
                return Ok(());
            };
            // The last statement is the COPY whose data follows.
            let head = statements
                .pop()
                .ok_or_else(|| Error::internal("a COPY block without its statement"))?;
            for s in statements {
                run_statement(session, s).await?;
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

    /// Bytes of whole lines waiting to load.
    fn ready(&self) -> usize {
        self.scanned
    }

    /// Loads the whole lines waiting.
    async fn load(&mut self, session: &mut dyn Session) -> Result<()> {
        if self.scanned == 0 {
            return Ok(());
        }
        let loaded = session
            .copy_text(&self.table, &self.columns, &self.data[..self.scanned])
            .await
            .map_err(|e| restore_failed(e, self.number, self.line))?;
        if loaded.is_none() {
            return Err(Error::internal("this engine cannot load COPY data"));
        }
        self.data.drain(..self.scanned);
        self.scanned = 0;
        Ok(())
    }
}

async fn replay_records(
    database: &dyn Database,
    stream: &mut Pieces,
    unpacker: &mut Unpacker,
    limits: &StatementLimits,
) -> Result<()> {
    let mut batch: Vec<u8> = Vec::with_capacity(RECORD_BATCH + (64 << 10));
    while let Some(raw) = next_raw(stream, unpacker).await? {
        batch.extend_from_slice(&raw);
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

/// A statement of the backup that the engine refused: the backup cannot be restored here as
/// it is (an engine version that lacks a feature, a full disk). Not the caller's mistake.
fn restore_failed(err: Error, number: usize, line: u64) -> Error {
    match err {
        Error::Query { message, .. } => Error::FailedPrecondition(format!(
            "the engine refused statement {number} (line {line}) of the backup, so nothing was \
             restored: {message}"
        )),
        other => other,
    }
}

/// Reads the manifest and checks it against the catalog: its own hash, and the backup it
/// describes. A manifest of another backup, edited or missing is DATA_LOSS.
async fn check_manifest(rec: &BackupRecord, target: &Target) -> Result<Manifest> {
    let bytes = target.get_all(&rec.manifest_object()).await?;
    let loss = |why: &str| {
        Error::DataLoss(format!(
            "the manifest of backup {} ({}) {why}; nothing was restored",
            rec.id,
            target.location(&rec.manifest_object())
        ))
    };
    if sha256_hex(&bytes) != rec.manifest_sha256 {
        return Err(loss("does not match the checksum the catalog recorded"));
    }
    let m: Manifest =
        serde_json::from_slice(&bytes).map_err(|_| loss("is not a backup manifest"))?;
    if m.backup_id != rec.id
        || m.sha256 != rec.sha256
        || m.size_bytes != rec.size_bytes
        || m.engine != rec.backend.as_str()
    {
        return Err(loss("describes another backup"));
    }
    if m.format_version != FORMAT_VERSION {
        return Err(Error::FailedPrecondition(format!(
            "backup {} is in format version {}, and this gateway reads version {FORMAT_VERSION}",
            rec.id, m.format_version
        )));
    }
    Ok(m)
}
