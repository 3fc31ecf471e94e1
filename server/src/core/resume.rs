//! Resumable Query streams: a stream that can be picked up again after its client went away
//! (a dropped connection) or after a budget cut it, with the rows arriving exactly once and in
//! order.
//!
//! How: the engine's cursor is not cancelled when a resumable stream's client goes away. The
//! cursor (the backend's row stream, which owns the engine connection and its statement, so
//! its snapshot) is *parked* in [`Resumes`] for a bounded window, together with a replay buffer
//! of the most recent rows sent (those may have been lost in flight). A resume token names the
//! stream (128 random bits, bound to the API key that opened it) and a row offset; resuming
//! replays the rows from that offset out of the buffer, then reads on from the same cursor.
//! Because it is the same cursor, this holds for every query and engine, deterministic or not,
//! and whatever other sessions write meanwhile (they see the same isolation a single long read
//! sees on that engine).
//!
//! Why not keyset continuation (re-running the query with `WHERE key > last`): it needs an
//! ORDER BY on a unique key, which the gateway would have to parse and prove, and it reads a
//! newer snapshot. Holding the cursor is exact for any statement; the price is a bounded one
//! (an engine connection and the replay buffer, per parked stream, for the window at most).
//!
//! Bounds: streams per key and per server (open or parked), the replay buffer's bytes, the
//! window a stream stays parked, and the whole stream's wall-clock time (statement timeout plus
//! the window). Past any of them a resume is refused with a status that says which.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::{Duration, Instant},
};

use base64::Engine as _;
use futures::{StreamExt, stream::BoxStream};
use tokio::sync::Notify;

use super::{
    error::{Error, Result},
    value::{Column, Row, RowEvent, Summary, Truncation, Value},
};

/// A backend's row stream (the engine cursor a resumable stream owns).
pub type Rows = BoxStream<'static, Result<RowEvent>>;

/// One event of a resumable stream: the header, row batches each with the token that resumes
/// after it, and the summary (with a token when a budget cut the stream and more rows remain).
#[derive(Debug, Clone, PartialEq)]
pub enum PageEvent {
    /// The column metadata; the first event of every page, resumed ones included.
    Columns(Vec<Column>),
    /// Rows, and the token that resumes after the last of them.
    Rows {
        /// The rows.
        rows: Vec<Row>,
        /// Resumes after `rows`.
        token: String,
    },
    /// The summary of this page: rows sent in it and why it ended.
    Done {
        /// Rows of this page, rows affected, elapsed time, truncation.
        summary: Summary,
        /// Resumes with the next row, when a budget cut the page; `None` at the end.
        token: Option<String>,
    },
}

/// A stream of [`PageEvent`]s.
pub type PageStream = BoxStream<'static, Result<PageEvent>>;

/// The bounds of resumable streams.
#[derive(Debug, Clone, Copy)]
pub struct ResumeLimits {
    /// How long a stream stays parked after its client went away or a budget cut it.
    pub window: Duration,
    /// Resumable streams (open or parked) one API key may hold; 0 turns resumable streams off.
    pub max_per_key: usize,
    /// Resumable streams (open or parked) on the whole server; 0 turns them off.
    pub max_total: usize,
    /// Approximate bytes of already sent rows kept per stream for replay.
    pub replay_bytes: usize,
}

/// The defaults of [`ResumeLimits`].
pub mod defaults {
    use std::time::Duration;

    /// [`ResumeLimits::window`](super::ResumeLimits::window).
    pub const WINDOW: Duration = Duration::from_secs(60);
    /// [`ResumeLimits::max_per_key`](super::ResumeLimits::max_per_key).
    pub const MAX_PER_KEY: usize = 4;
    /// [`ResumeLimits::max_total`](super::ResumeLimits::max_total).
    pub const MAX_TOTAL: usize = 64;
    /// [`ResumeLimits::replay_bytes`](super::ResumeLimits::replay_bytes): 4 MiB, more than
    /// the transport holds in flight on one stream (HTTP/2 windows plus the stream buffer's
    /// last batches are what a dropped connection can lose).
    pub const REPLAY_BYTES: usize = 4 << 20;
}

impl Default for ResumeLimits {
    fn default() -> Self {
        ResumeLimits {
            window: defaults::WINDOW,
            max_per_key: defaults::MAX_PER_KEY,
            max_total: defaults::MAX_TOTAL,
            replay_bytes: defaults::REPLAY_BYTES,
        }
    }
}

/// How one page of a stream is cut: its budget and batch sizes.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    /// Rows this page may send.
    pub rows: u64,
    /// Approximate bytes of row data this page may send.
    pub bytes: u64,
    /// Rows per batch, at most.
    pub batch_rows: usize,
    /// Approximate bytes per batch, at most.
    pub batch_bytes: usize,
}

/// A stream's id: 128 random bits from the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct StreamId([u8; 16]);

impl StreamId {
    fn random() -> Result<Self> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
        Ok(StreamId(id))
    }

    fn token(self, offset: u64) -> String {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0);
        format!("{id}.{offset}")
    }
}

/// Reads a resume token: `<stream id>.<offset>`.
fn parse_token(token: &str) -> Result<(StreamId, u64)> {
    let bad = || {
        Error::invalid(
            "resume_token",
            "not a resume token (a token is `<stream id>.<row offset>`, as a resumable stream \
             sends it)",
        )
    };
    let (id, offset) = token.split_once('.').ok_or_else(bad)?;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(bad)?;
    let offset = offset.parse::<u64>().map_err(|_| bad())?;
    Ok((StreamId(id), offset))
}

fn row_size(row: &Row) -> usize {
    row.iter().map(Value::approx_size).sum()
}

/// The engine side of a resumable stream.
struct Cursor {
    id: StreamId,
    database: String,
    rows: Rows,
    columns: Vec<Column>,
    /// Rows handed to a page so far: the offset of the next row in `pending` or the engine.
    delivered: u64,
    /// The last rows sent, the first of them at `replay_start`.
    replay: VecDeque<Row>,
    replay_start: u64,
    replay_bytes: usize,
    /// Rows read from the engine (or rewound from `replay`) and not sent yet.
    pending: VecDeque<Row>,
    /// The engine's summary, once its stream ended.
    finished: Option<Summary>,
    /// When the whole stream must be over (the statement's wall-clock limit).
    deadline: Instant,
    /// Whether a token of this stream was ever sent. Until then no client can resume it, so a
    /// page dropped before (a cancelled call still waiting for its first rows) closes it.
    token_sent: bool,
}

impl Cursor {
    fn token(&self) -> String {
        self.id.token(self.delivered)
    }

    /// Keeps `rows` (just sent) for replay, dropping the oldest past `cap` bytes.
    fn remember(&mut self, rows: &[Row], cap: usize) {
        for r in rows {
            self.replay_bytes += row_size(r);
            self.replay.push_back(r.clone());
        }
        while self.replay_bytes > cap {
            let Some(old) = self.replay.pop_front() else {
                break;
            };
            self.replay_bytes -= row_size(&old);
            self.replay_start += 1;
        }
    }

    /// Moves the rows from `offset` on back in front of the unsent ones.
    fn rewind(&mut self, offset: u64) -> Result<()> {
        if offset > self.delivered {
            return Err(Error::invalid(
                "resume_token",
                format!(
                    "its offset {offset} is past the {} rows this stream sent",
                    self.delivered
                ),
            ));
        }
        if offset < self.replay_start {
            return Err(Error::FailedPrecondition(format!(
                "cannot resume at row {offset}: the stream keeps only its last rows for replay \
                 (from row {}, about {} bytes); resume with a later token",
                self.replay_start, self.replay_bytes
            )));
        }
        while self.delivered > offset {
            let Some(r) = self.replay.pop_back() else {
                break;
            };
            self.replay_bytes -= row_size(&r);
            self.pending.push_front(r);
            self.delivered -= 1;
        }
        Ok(())
    }
}

enum Slot {
    /// A page is sending it.
    Live { owner: String },
    /// Waiting for a resume until its timer (of the same generation) expires it.
    Parked {
        owner: String,
        cursor: Box<Cursor>,
        generation: u64,
    },
}

impl Slot {
    fn owner(&self) -> &str {
        match self {
            Slot::Live { owner } | Slot::Parked { owner, .. } => owner,
        }
    }
}

struct Shared {
    limits: ResumeLimits,
    slots: Mutex<HashMap<StreamId, Slot>>,
    generation: std::sync::atomic::AtomicU64,
    parked: Notify,
}

impl Shared {
    fn slots(&self) -> MutexGuard<'_, HashMap<StreamId, Slot>> {
        // A panic while holding the lock leaves the map consistent (every update is one insert
        // or remove), so a poisoned lock is still usable.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Parks a cursor whose page ended without finishing it, until a resume or its expiry.
    fn park(self: &Arc<Self>, owner: String, cursor: Box<Cursor>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Shutting down: the cursor is dropped, closing its statement.
            self.release(cursor.id);
            return;
        };
        let expires = (Instant::now() + self.limits.window).min(cursor.deadline);
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = cursor.id;
        self.slots().insert(
            id,
            Slot::Parked {
                owner,
                cursor,
                generation,
            },
        );
        self.parked.notify_waiters();
        let shared = Arc::downgrade(self);
        runtime.spawn(expire(shared, id, generation, expires));
    }

    fn release(&self, id: StreamId) {
        let slot = self.slots().remove(&id);
        drop(slot); // outside the lock: dropping a cursor closes its statement
    }
}

/// The oldest parked stream of `owner` (or anyone's); with `spent`, only one that was sent
/// whole: its engine cursor is done, and only a replay of rows lost in flight could need it.
fn oldest_parked(
    slots: &HashMap<StreamId, Slot>,
    owner: Option<&str>,
    spent: bool,
) -> Option<StreamId> {
    slots
        .iter()
        .filter_map(|(id, s)| match s {
            Slot::Parked {
                owner: o,
                cursor,
                generation,
            } if owner.is_none_or(|w| w == o)
                && (!spent || (cursor.finished.is_some() && cursor.pending.is_empty())) =>
            {
                Some((*generation, *id))
            }
            _ => None,
        })
        .min()
        .map(|(_, id)| id)
}

/// Drops a parked stream when its window is over, unless it was resumed since.
async fn expire(shared: Weak<Shared>, id: StreamId, generation: u64, at: Instant) {
    tokio::time::sleep_until(at.into()).await;
    let Some(shared) = shared.upgrade() else {
        return;
    };
    let expired = {
        let mut slots = shared.slots();
        match slots.get(&id) {
            Some(Slot::Parked { generation: g, .. }) if *g == generation => slots.remove(&id),
            _ => None,
        }
    };
    drop(expired);
}

/// The resumable streams of a server: open ones and parked ones.
#[derive(Clone)]
pub struct Resumes {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Resumes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumes")
            .field("limits", &self.shared.limits)
            .finish_non_exhaustive()
    }
}

/// A resumable stream's place, taken before its statement runs; freed on drop unless started.
pub struct Reservation {
    shared: Arc<Shared>,
    id: StreamId,
    owner: String,
    started: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.started {
            self.shared.release(self.id);
        }
    }
}

impl Resumes {
    /// Streams within `limits`.
    pub fn new(limits: ResumeLimits) -> Self {
        Resumes {
            shared: Arc::new(Shared {
                limits,
                slots: Mutex::new(HashMap::new()),
                generation: Default::default(),
                parked: Notify::new(),
            }),
        }
    }

    /// The bounds.
    pub fn limits(&self) -> ResumeLimits {
        self.shared.limits
    }

    /// Takes a place for a new resumable stream of `owner` (an API key id), within the bounds
    /// per key and per server. At the key's bound, its oldest parked stream gives way; when
    /// all of its streams are being sent, or the server is full, the stream is refused.
    pub fn reserve(&self, owner: &str) -> Result<Reservation> {
        let limits = self.shared.limits;
        let id = StreamId::random()?;
        let mut slots = self.shared.slots();
        let mut evicted = Vec::new();
        let mut mine = slots.values().filter(|s| s.owner() == owner).count();
        // At its bound, a key's new stream takes the place of its oldest parked one: an agent
        // paging through results abandons pages it has read, and the bound on what the key
        // holds stays the same. Streams still being sent are never taken.
        if mine >= limits.max_per_key
            && let Some(old) = oldest_parked(&slots, Some(owner), false)
        {
            evicted.extend(slots.remove(&old));
            mine -= 1;
        }
        if slots.len() >= limits.max_total
            && let Some(old) = oldest_parked(&slots, None, true)
        {
            evicted.extend(slots.remove(&old));
        }
        if mine >= limits.max_per_key {
            return Err(Error::LimitExceeded(format!(
                "key {owner} is already reading {mine} resumable streams, its maximum \
                 (--max-resumable-per-key); finish or cancel one"
            )));
        }
        if slots.len() >= limits.max_total {
            return Err(Error::LimitExceeded(format!(
                "the server holds {} resumable streams (open or parked), its maximum \
                 (--max-resumable); retry later or query without `resumable`",
                slots.len()
            )));
        }
        slots.insert(
            id,
            Slot::Live {
                owner: owner.to_owned(),
            },
        );
        drop(slots);
        drop(evicted); // outside the lock
        Ok(Reservation {
            shared: Arc::clone(&self.shared),
            id,
            owner: owner.to_owned(),
            started: false,
        })
    }

    /// Resumes `owner`'s stream at the token's row, for one page within `page`. `check` sees
    /// the stream's database before anything is sent (the caller's access is checked again).
    /// Another key's token is NOT_FOUND, as is one that finished or expired; a stream still
    /// being sent on another call is waited for a little (the server may not have seen its
    /// client go yet), then FAILED_PRECONDITION.
    pub async fn resume(
        &self,
        owner: &str,
        token: &str,
        page: PageLimits,
        check: impl FnOnce(&str) -> Result<()>,
    ) -> Result<PageStream> {
        const WAIT_FOR_PARKING: Duration = Duration::from_secs(5);
        let (id, offset) = parse_token(token)?;
        let gone = || Error::NotFound {
            what: "resumable stream",
            name: format!(
                "{token} (it failed, expired {} after its last page or its client went \
                 away, gave way to a newer stream after it was sent whole, or was opened with \
                 another key)",
                humantime::format_duration(self.shared.limits.window)
            ),
        };
        let give_up = Instant::now() + WAIT_FOR_PARKING;
        let cursor = loop {
            let parked = self.shared.parked.notified();
            {
                let mut slots = self.shared.slots();
                match slots.get(&id) {
                    None => return Err(gone()),
                    Some(s) if s.owner() != owner => return Err(gone()),
                    Some(Slot::Parked { .. }) => {
                        let Some(Slot::Parked { cursor, .. }) = slots.insert(
                            id,
                            Slot::Live {
                                owner: owner.to_owned(),
                            },
                        ) else {
                            unreachable!("the slot was parked under the lock");
                        };
                        break cursor;
                    }
                    Some(Slot::Live { .. }) => {}
                }
            }
            if tokio::time::timeout_at(give_up.into(), parked)
                .await
                .is_err()
            {
                return Err(Error::FailedPrecondition(format!(
                    "resumable stream {token} is still being sent on another call; cancel \
                     that call first"
                )));
            }
        };
        // From here on, a refusal parks the cursor again (Page's drop): a later token of the
        // same stream still works.
        let mut p = Page::new(Arc::clone(&self.shared), owner.to_owned(), cursor, page);
        let cursor = p.cursor.as_mut().expect("a new page has its cursor");
        check(&cursor.database)?;
        cursor.rewind(offset)?;
        Ok(p.into_stream())
    }
}

impl Reservation {
    /// Starts the stream on the engine's `rows` (a backend stream without a row encoder, its
    /// `Columns` event first) and returns its first page. `deadline` is when the whole stream
    /// must be over.
    pub async fn start(
        mut self,
        database: &str,
        mut rows: Rows,
        page: PageLimits,
        deadline: Instant,
    ) -> Result<PageStream> {
        let columns = match rows.next().await {
            Some(Ok(RowEvent::Columns(c))) => c,
            Some(Err(e)) => return Err(e),
            _ => {
                return Err(Error::internal(
                    "a row stream did not begin with its columns",
                ));
            }
        };
        let cursor = Box::new(Cursor {
            id: self.id,
            database: database.to_owned(),
            rows,
            columns,
            delivered: 0,
            replay: VecDeque::new(),
            replay_start: 0,
            replay_bytes: 0,
            pending: VecDeque::new(),
            finished: None,
            deadline,
            token_sent: false,
        });
        self.started = true;
        let owner = std::mem::take(&mut self.owner);
        Ok(Page::new(Arc::clone(&self.shared), owner, cursor, page).into_stream())
    }
}

/// One call's share of a resumable stream. Dropped before the stream ended (its client went
/// away), it parks the cursor instead of closing it.
struct Page {
    shared: Arc<Shared>,
    owner: String,
    cursor: Option<Box<Cursor>>,
    limits: PageLimits,
    header_sent: bool,
    sent_rows: u64,
    sent_bytes: u64,
    started: Instant,
}

impl Drop for Page {
    fn drop(&mut self) {
        match self.cursor.take() {
            Some(cursor) if cursor.token_sent => {
                self.shared.park(std::mem::take(&mut self.owner), cursor);
            }
            Some(cursor) => {
                // Nobody holds a token: close the statement, as a plain stream's cancel does.
                let id = cursor.id;
                drop(cursor);
                self.shared.release(id);
            }
            None => {}
        }
    }
}

impl Page {
    fn new(shared: Arc<Shared>, owner: String, cursor: Box<Cursor>, limits: PageLimits) -> Self {
        Page {
            shared,
            owner,
            cursor: Some(cursor),
            limits,
            header_sent: false,
            sent_rows: 0,
            sent_bytes: 0,
            started: Instant::now(),
        }
    }

    fn into_stream(self) -> PageStream {
        Box::pin(futures::stream::unfold(self, |mut page| async move {
            let ev = page.next().await?;
            Some((ev, page))
        }))
    }

    /// Parks the cursor now, for a resume (the page is over).
    fn park_now(&mut self) {
        if let Some(c) = self.cursor.take() {
            self.shared.park(self.owner.clone(), c);
        }
    }

    /// Ends the stream for good: the cursor is closed and its place freed.
    fn close(&mut self) {
        if let Some(c) = self.cursor.take() {
            let id = c.id;
            drop(c);
            self.shared.release(id);
        }
    }

    fn summary(&self, rows_affected: u64, truncation: Truncation) -> Summary {
        Summary {
            row_count: self.sent_rows,
            rows_affected,
            elapsed: self.started.elapsed(),
            truncation,
        }
    }

    async fn next(&mut self) -> Option<Result<PageEvent>> {
        let cursor = self.cursor.as_mut()?;
        if !self.header_sent {
            self.header_sent = true;
            return Some(Ok(PageEvent::Columns(cursor.columns.clone())));
        }
        loop {
            let cursor = self.cursor.as_mut()?;
            if cursor.pending.is_empty() && cursor.finished.is_none() {
                let read = match cursor.rows.next().await {
                    Some(Ok(RowEvent::Rows(rows))) => {
                        cursor.pending.extend(rows);
                        Ok(())
                    }
                    Some(Ok(RowEvent::Done(s))) => {
                        cursor.finished = Some(s);
                        Ok(())
                    }
                    Some(Ok(RowEvent::Columns(_))) => Ok(()),
                    Some(Ok(RowEvent::Encoded(_))) => {
                        Err(Error::internal("a resumable stream has no row encoder"))
                    }
                    Some(Err(e)) => Err(e),
                    None => Err(Error::internal("the stream ended without its summary")),
                };
                if let Err(e) = read {
                    self.close();
                    return Some(Err(e));
                }
                continue;
            }
            if cursor.pending.is_empty() {
                let engine = cursor.finished.clone().unwrap_or(Summary {
                    row_count: 0,
                    rows_affected: 0,
                    elapsed: Duration::ZERO,
                    truncation: Truncation::None,
                });
                // Kept, parked, for the window: rows and summary still in flight may be lost
                // with the connection, and replay recovers them. It holds no engine connection
                // now, and gives way to its key's next resumable stream. A stream that never
                // sent a token (no rows) has nothing to replay and is closed.
                if cursor.token_sent {
                    self.park_now();
                } else {
                    self.close();
                }
                // The engine's own truncation is the server's cap on the whole stream: final.
                let summary = self.summary(engine.rows_affected, engine.truncation);
                return Some(Ok(PageEvent::Done {
                    summary,
                    token: None,
                }));
            }
            let rows_left = self.limits.rows.saturating_sub(self.sent_rows);
            let bytes_left = self.limits.bytes.saturating_sub(self.sent_bytes);
            let mut batch = Vec::new();
            let mut batch_bytes = 0usize;
            let mut cut = None;
            while let Some(row) = cursor.pending.front() {
                if batch.len() as u64 >= rows_left {
                    cut = Some(Truncation::RowLimit);
                    break;
                }
                let size = row_size(row);
                if (batch_bytes + size) as u64 > bytes_left {
                    cut = Some(Truncation::ByteLimit);
                    break;
                }
                if batch.len() >= self.limits.batch_rows
                    || (!batch.is_empty() && batch_bytes + size > self.limits.batch_bytes)
                {
                    break;
                }
                batch_bytes += size;
                batch.extend(cursor.pending.pop_front());
            }
            if batch.is_empty() {
                // A budget is spent and rows remain: the page ends, the stream is parked.
                let token = cursor.token();
                cursor.token_sent = true;
                let truncation = cut.unwrap_or(Truncation::RowLimit);
                let summary = self.summary(0, truncation);
                self.park_now();
                return Some(Ok(PageEvent::Done {
                    summary,
                    token: Some(token),
                }));
            }
            cursor.remember(&batch, self.shared.limits.replay_bytes);
            cursor.delivered += batch.len() as u64;
            self.sent_rows += batch.len() as u64;
            self.sent_bytes += batch_bytes as u64;
            let token = cursor.token();
            cursor.token_sent = true;
            return Some(Ok(PageEvent::Rows { rows: batch, token }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reads_back_as_its_stream_and_offset() {
        let id = StreamId::random().expect("random id");
        let (back, offset) = parse_token(&id.token(1234)).expect("a token");
        assert_eq!((back, offset), (id, 1234));
    }

    #[test]
    fn malformed_tokens_are_invalid_arguments() {
        for t in ["", "abc", "abc.1", "AAAAAAAAAAAAAAAAAAAAAA.x", "AAAA.1"] {
            let e = parse_token(t).expect_err("malformed");
            assert!(
                matches!(
                    e,
                    Error::InvalidArgument {
                        field: "resume_token",
                        ..
                    }
                ),
                "{t}: {e}"
            );
        }
    }

    #[test]
    fn two_stream_ids_differ() {
        assert_ne!(
            StreamId::random().expect("random id"),
            StreamId::random().expect("random id")
        );
    }
}
