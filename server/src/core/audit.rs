//! The audit log: who did what to which database, when, and how it ended.
//!
//! Records are hash-chained: each stores the SHA-256 of its own fields and of the record before
//! it, so editing or deleting a record breaks the chain, and [`AuditLog::verify`] finds where.
//! Callers hand records to a bounded channel and go on; one writer task (the chain needs one
//! writer anyway) wakes for the first record, lets the others gather for [`COMMIT_DELAY`] (or
//! until someone [flushes](AuditLog::flush)), then appends them all to the catalog in one
//! commit and emits a structured log line for each. Gateways sharing a PostgreSQL catalog
//! keep one chain: the catalog serialises appends and links each batch after the head it
//! finds (`chain_after`). Waking the writer for every call would put a
//! thread wake-up and a context switch beside each call, which measured 40–50 µs of a point
//! query's latency on a 2-core machine; one catalog commit per call would cost more than the
//! call itself. When the channel is full, callers wait: records are never dropped.
//!
//! Statement text is kept truncated (with the hash of the full text); parameters and keys'
//! secrets are never recorded.

use std::{
    ops::ControlFlow,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sha2::{Digest, Sha256};
use tokio::{
    sync::{Notify, mpsc, oneshot},
    task::JoinHandle,
};

use super::{
    catalog::Catalog,
    error::{Error, Result},
    value::text::hex,
};

/// Characters of statement text kept in a record.
pub const STATEMENT_CHARS: usize = 256;

/// Records the channel holds; callers wait beyond it.
const CAPACITY: usize = 4096;

/// How long records gather after the first before they are logged and committed together.
pub const COMMIT_DELAY: Duration = Duration::from_millis(20);

/// What the writer receives.
#[derive(Debug)]
enum Msg {
    /// An event and when it happened (Unix ms).
    Record(i64, Event),
    /// Commit everything before this message, then answer.
    Flush(oneshot::Sender<()>),
}

/// One audited call, as the caller reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The calling key's id (`-` without authentication).
    pub key_id: String,
    /// The RPC, e.g. `Execute`.
    pub rpc: &'static str,
    /// The database it targeted, if any.
    pub database: Option<String>,
    /// The statement (or operation) text, in full; truncated when stored.
    pub statement: Option<String>,
    /// Rows the call changed, when it succeeded and that is known.
    pub rows_affected: Option<u64>,
    /// The gRPC code name of the outcome: `OK`, `NOT_FOUND`, …
    pub outcome: &'static str,
    /// How long the call took.
    pub duration: Duration,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Key id.
    pub key_id: String,
    /// RPC.
    pub rpc: String,
    /// Database.
    pub database: Option<String>,
    /// Truncated statement text.
    pub statement: Option<String>,
    /// SHA-256 (hex) of the full statement text.
    pub statement_hash: Option<String>,
    /// Rows changed.
    pub rows_affected: Option<i64>,
    /// Outcome code name.
    pub outcome: String,
    /// Microseconds.
    pub duration_us: i64,
    /// The hash of the record before (hex; 64 zeros for the first).
    pub prev_hash: String,
    /// The hash of this record (hex).
    pub hash: String,
}

impl Record {
    /// The chain hash over every field but `hash` itself.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        let field = |h: &mut Sha256, s: &str| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        field(&mut h, &self.prev_hash);
        h.update(self.seq.to_le_bytes());
        h.update(self.at_ms.to_le_bytes());
        field(&mut h, &self.key_id);
        field(&mut h, &self.rpc);
        field(&mut h, self.database.as_deref().unwrap_or("\u{0}"));
        field(&mut h, self.statement.as_deref().unwrap_or("\u{0}"));
        field(&mut h, self.statement_hash.as_deref().unwrap_or("\u{0}"));
        h.update(self.rows_affected.unwrap_or(-1).to_le_bytes());
        field(&mut h, &self.outcome);
        h.update(self.duration_us.to_le_bytes());
        hex(&h.finalize())
    }
}

/// Links `records` (in order) after the chain's `head` (sequence number and hash of the last
/// stored record): renumbers and rehashes them unless they already follow it. A gateway seals
/// records against the head it last stored; another gateway on the same catalog may have
/// appended since, and the catalog calls this under the lock that serialises appends, so the
/// log stays one chain across gateways.
pub(crate) fn chain_after(records: &mut [Record], head: (i64, String)) {
    let (mut seq, mut prev) = head;
    if records
        .first()
        .is_none_or(|r| r.seq == seq + 1 && r.prev_hash == prev)
    {
        return;
    }
    for r in records {
        seq += 1;
        r.seq = seq;
        r.prev_hash = std::mem::take(&mut prev);
        r.hash = r.compute_hash();
        prev = r.hash.clone();
    }
}

/// Which records ListAuditEvents returns.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only this key.
    pub key_id: Option<String>,
    /// Only this database.
    pub database: Option<String>,
    /// Only this outcome (`OK`, `PERMISSION_DENIED`, …).
    pub outcome: Option<String>,
    /// From this time (Unix ms, inclusive).
    pub since_ms: Option<i64>,
    /// Until this time (Unix ms, exclusive).
    pub until_ms: Option<i64>,
    /// Only records after this sequence number (paging).
    pub after_seq: i64,
    /// At most this many.
    pub limit: usize,
}

/// The result of [`AuditLog::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Records checked.
    pub checked: u64,
    /// The first record whose hash or link does not hold, if any.
    pub first_broken_seq: Option<i64>,
    /// What is wrong with it.
    pub problem: Option<String>,
}

/// What breaks the chain at `r`, given the sequence number and hash of the record before it.
fn chain_problem(r: &Record, prev: Option<&(i64, String)>) -> Option<String> {
    if r.compute_hash() != r.hash {
        return Some("its contents do not match its hash (edited)".to_owned());
    }
    match prev {
        Some((seq, _)) if r.seq != seq + 1 => Some(format!(
            "records {} to {} are missing (deleted)",
            seq + 1,
            r.seq - 1
        )),
        Some((_, hash)) if *hash != r.prev_hash => {
            Some("it does not link to the record before (edited)".to_owned())
        }
        _ => None,
    }
}

/// The audit log's front: cheap to clone, hands events to the writer.
#[derive(Debug, Clone)]
pub struct AuditLog {
    /// `None` when auditing is disabled (`--disable-audit`): nothing is recorded.
    tx: Option<mpsc::Sender<Msg>>,
    /// Cuts the writer's gathering short for a flush.
    flushing: Arc<Notify>,
    catalog: Catalog,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl AuditLog {
    /// Starts the writer. It ends when every `AuditLog` clone is dropped, after storing what
    /// was sent.
    pub async fn start(catalog: Catalog) -> Result<(Self, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let cat = catalog.clone();
        let head = super::registry::blocking(move || cat.audit_head()).await?;
        let flushing = Arc::new(Notify::new());
        let writer = tokio::spawn(write_loop(catalog.clone(), rx, Arc::clone(&flushing), head));
        Ok((
            Self {
                tx: Some(tx),
                flushing,
                catalog,
            },
            writer,
        ))
    }

    /// An audit log that records nothing (existing records stay readable).
    pub fn disabled(catalog: Catalog) -> Self {
        Self {
            tx: None,
            flushing: Arc::new(Notify::new()),
            catalog,
        }
    }

    /// Records an event. Waits only when the writer is behind by thousands of records.
    pub async fn record(&self, event: Event) {
        let Some(tx) = &self.tx else {
            return;
        };
        if tx.send(Msg::Record(now_ms(), event)).await.is_err() {
            tracing::error!("the audit writer has stopped; an audit record was not stored");
        }
    }

    /// Waits (up to `timeout`) until every record sent so far is stored in the catalog, so that
    /// a listing sees them and a graceful shutdown loses none.
    pub async fn flush(&self, timeout: Duration) {
        let Some(tx) = &self.tx else {
            return;
        };
        let (done, stored) = oneshot::channel();
        let flushed = async {
            if tx.send(Msg::Flush(done)).await.is_ok() {
                self.flushing.notify_one();
                let _ = stored.await;
            }
        };
        if tokio::time::timeout(timeout, flushed).await.is_err() {
            tracing::warn!("the audit log was not flushed in time");
        }
    }

    /// Records matching a query, oldest first.
    pub fn list(&self, q: &Query) -> Result<Vec<Record>> {
        self.catalog.audit_list(q)
    }

    /// Walks the whole chain: every record's hash must match its contents, and its link the
    /// hash of the record before, with no sequence number missing.
    pub fn verify(&self) -> Result<Verification> {
        let mut verification = Verification {
            checked: 0,
            first_broken_seq: None,
            problem: None,
        };
        let mut prev: Option<(i64, String)> = None;
        self.catalog.audit_each(|r| {
            verification.checked += 1;
            match chain_problem(&r, prev.as_ref()) {
                Some(problem) => {
                    verification.first_broken_seq = Some(r.seq);
                    verification.problem = Some(problem);
                    ControlFlow::Break(())
                }
                None => {
                    prev = Some((r.seq, r.hash));
                    ControlFlow::Continue(())
                }
            }
        })?;
        Ok(verification)
    }

    /// Deletes records older than `before_ms`. The oldest remaining record's link is then
    /// taken as given; everything after it stays verifiable.
    pub fn prune(&self, before_ms: i64) -> Result<usize> {
        self.catalog.audit_prune(before_ms)
    }
}

async fn write_loop(
    catalog: Catalog,
    mut rx: mpsc::Receiver<Msg>,
    flushing: Arc<Notify>,
    head: (i64, String),
) {
    let (mut seq, mut prev) = head;
    let mut inbox = Vec::with_capacity(CAPACITY);
    loop {
        // Asleep until the first record; the senders of the others wake nobody while it gathers.
        let closed = rx.recv_many(&mut inbox, CAPACITY).await == 0;
        if !closed && !inbox.iter().any(|m| matches!(m, Msg::Flush(_))) {
            tokio::select! {
                () = tokio::time::sleep(COMMIT_DELAY) => {}
                () = flushing.notified() => {}
            }
            while inbox.len() < CAPACITY {
                match rx.try_recv() {
                    Ok(msg) => inbox.push(msg),
                    Err(_) => break,
                }
            }
        }
        let mut pending = Vec::with_capacity(inbox.len());
        let mut waiters = Vec::new();
        for msg in inbox.drain(..) {
            match msg {
                Msg::Record(at_ms, e) => {
                    seq += 1;
                    let r = seal(seq, at_ms, e, std::mem::take(&mut prev));
                    prev = r.hash.clone();
                    pending.push(r);
                }
                Msg::Flush(done) => waiters.push(done),
            }
        }
        if !pending.is_empty() {
            // The head the catalog linked them to (another gateway may have appended first).
            if let Some(last) = store(&catalog, pending).await {
                (seq, prev) = last;
            }
        }
        for w in waiters {
            let _ = w.send(());
        }
        if closed {
            break;
        }
    }
}

/// Builds the chained record of an event, off the request's path.
fn seal(seq: i64, at_ms: i64, e: Event, prev_hash: String) -> Record {
    let statement_hash = e
        .statement
        .as_deref()
        .map(|s| hex(&Sha256::digest(s.as_bytes())));
    let statement = e
        .statement
        .map(|s| s.chars().take(STATEMENT_CHARS).collect());
    let mut r = Record {
        seq,
        at_ms,
        key_id: e.key_id,
        rpc: e.rpc.to_owned(),
        database: e.database,
        statement,
        statement_hash,
        rows_affected: e
            .rows_affected
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        outcome: e.outcome.to_owned(),
        duration_us: i64::try_from(e.duration.as_micros()).unwrap_or(i64::MAX),
        prev_hash,
        hash: String::new(),
    };
    r.hash = r.compute_hash();
    r
}

/// The structured log line of a stored (or lost) record: a second copy of the log, for log
/// pipelines.
fn log_line(r: &Record) {
    tracing::info!(
        target: "dbforge::audit",
        seq = r.seq,
        key = %r.key_id,
        rpc = %r.rpc,
        db = r.database.as_deref().unwrap_or("-"),
        outcome = %r.outcome,
        rows = r.rows_affected,
        duration_us = r.duration_us,
        statement_hash = r.statement_hash.as_deref().unwrap_or("-"),
        "audit"
    );
}

/// Appends records to the catalog in one transaction and writes their log lines; the
/// sequence number and hash of the last one as stored, or `None` when they could not be (the
/// next batch then links to the catalog's head).
async fn store(catalog: &Catalog, mut records: Vec<Record>) -> Option<(i64, String)> {
    let cat = catalog.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let stored = cat.audit_append(&mut records);
        records.iter().for_each(log_line);
        stored.map(|()| records.pop().map(|r| (r.seq, r.hash)))
    })
    .await
    .map_err(|e| Error::internal(format!("audit task: {e}")))
    .and_then(|r| r);
    match stored {
        Ok(head) => head,
        Err(e) => {
            tracing::error!(error = %e, "audit records could not be stored");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Event {
        Event {
            key_id: "k".into(),
            rpc: "Execute",
            database: Some("db".into()),
            statement: Some(format!("SELECT {n}")),
            rows_affected: Some(n),
            outcome: "OK",
            duration: Duration::from_micros(n),
        }
    }

    /// Two writers sealing against the same head: the second batch, linked after the first
    /// as the catalog does under its lock, verifies as one chain.
    #[test]
    fn batches_sealed_against_a_stale_head_are_relinked_into_one_chain() {
        let genesis = (0, "0".repeat(64));
        let seal_batch = |head: &(i64, String), from: u64| {
            let (mut seq, mut prev) = head.clone();
            (from..from + 3)
                .map(|n| {
                    seq += 1;
                    let r = seal(seq, 1_000, event(n), std::mem::take(&mut prev));
                    prev = r.hash.clone();
                    r
                })
                .collect::<Vec<_>>()
        };
        let mut a = seal_batch(&genesis, 0);
        let mut b = seal_batch(&genesis, 10);
        chain_after(&mut a, genesis.clone());
        let head = a.last().map(|r| (r.seq, r.hash.clone())).expect("a record");
        let untouched = a.clone();
        chain_after(&mut a, (0, "0".repeat(64)));
        assert_eq!(
            a.iter().map(|r| &r.hash).collect::<Vec<_>>(),
            untouched.iter().map(|r| &r.hash).collect::<Vec<_>>(),
            "a batch that follows its head is kept"
        );
        chain_after(&mut b, head);
        let mut prev: Option<(i64, String)> = None;
        for r in a.iter().chain(&b) {
            assert_eq!(chain_problem(r, prev.as_ref()), None, "record {}", r.seq);
            prev = Some((r.seq, r.hash.clone()));
        }
        assert_eq!(b.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 5, 6]);
    }
}
