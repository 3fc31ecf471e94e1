//! Lifecycle events (WatchDatabases): created, deleted, forked, expired, pruned for idleness,
//! backed up, restored, unavailable, recovered, damaged, updated, quota exceeded and cleared.
//!
//! Guarantees, and what each rests on:
//!
//! - **One order.** [`Events::publish`] numbers an event, stores it in the catalog and then
//!   broadcasts it, all under one lock, so sequence numbers grow by one with no gap and the
//!   catalog holds every event before any watcher sees it live.
//! - **Resumable without gap or repeat.** A watch subscribes to the broadcast *before* it reads
//!   the stored events after `since`, then sends live events whose sequence is above the last
//!   one sent: an event stored after the read is received live, one in both is sent once.
//! - **Bounded.** The catalog keeps the newest [`RETAINED`] events (older ones are deleted as
//!   new ones arrive); a `since` before them is OUT_OF_RANGE rather than a silent gap. The
//!   broadcast holds [`BROADCAST`] events: a watcher that falls further behind is not waited
//!   for; it reads what it missed from the catalog and goes on (or ends with OUT_OF_RANGE when
//!   that is gone too). Each watch sends into a small channel of its own, so a slow client
//!   holds back only its own stream.
//! - **Visibility** is judged per event on the labels and owner the database had when it
//!   happened, by the same rule as ListDatabases ([`Principal::role_on`]).
//!
//! Publishing never fails the operation that caused the event: a catalog error is logged and
//! the event is dropped (its sequence number is then reused by the next one).

use std::{collections::BTreeMap, sync::Arc};

use futures::stream::BoxStream;
use tokio::sync::{Mutex, broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use super::{
    access::Principal,
    catalog::Catalog,
    clock::SharedClock,
    engine::BackendKind,
    error::{Error, Result},
    registry::blocking,
};

/// Events the catalog keeps.
pub const RETAINED: i64 = 10_000;

/// Events the live broadcast buffers per watcher before it must catch up from the catalog.
pub const BROADCAST: usize = 1024;

/// Events read from the catalog per query while catching up.
const PAGE: usize = 256;

/// Events buffered per watch stream (its backpressure window).
const STREAM_BUFFER: usize = 16;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// CreateDatabase.
    Created,
    /// DeleteDatabase.
    Deleted,
    /// ForkDatabase (the new database).
    Forked,
    /// Pruned: its TTL ran out.
    Expired,
    /// Pruned: idle past its idle TTL.
    PrunedIdle,
    /// A backup completed.
    BackedUp,
    /// Restored from a backup.
    Restored,
    /// Its engine's server stopped answering ([`super::health`]).
    Unavailable,
    /// Its engine's server answers again.
    Recovered,
    /// Its SQLite file failed its integrity check and was quarantined ([`super::damage`]).
    Damaged,
    /// UpdateDatabase changed its labels or lifecycle settings.
    Updated,
    /// It went over its size quota.
    QuotaExceeded,
    /// It is back under its size quota.
    QuotaCleared,
}

impl EventKind {
    /// Its name in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Deleted => "deleted",
            EventKind::Forked => "forked",
            EventKind::Expired => "expired",
            EventKind::PrunedIdle => "pruned_idle",
            EventKind::BackedUp => "backed_up",
            EventKind::Restored => "restored",
            EventKind::Unavailable => "unavailable",
            EventKind::Recovered => "recovered",
            EventKind::Damaged => "damaged",
            EventKind::Updated => "updated",
            EventKind::QuotaExceeded => "quota_exceeded",
            EventKind::QuotaCleared => "quota_cleared",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created" => EventKind::Created,
            "deleted" => EventKind::Deleted,
            "forked" => EventKind::Forked,
            "expired" => EventKind::Expired,
            "pruned_idle" => EventKind::PrunedIdle,
            "backed_up" => EventKind::BackedUp,
            "restored" => EventKind::Restored,
            "unavailable" => EventKind::Unavailable,
            "recovered" => EventKind::Recovered,
            "damaged" => EventKind::Damaged,
            "updated" => EventKind::Updated,
            "quota_exceeded" => EventKind::QuotaExceeded,
            "quota_cleared" => EventKind::QuotaCleared,
            _ => return None,
        })
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbEvent {
    /// Position in the log, from 1.
    pub seq: i64,
    /// What happened.
    pub kind: EventKind,
    /// The database.
    pub database: String,
    /// Its engine.
    pub backend: BackendKind,
    /// When (Unix ms, the gateway's clock).
    pub at_ms: i64,
    /// Why, or empty.
    pub cause: String,
    /// The key whose call caused it (`gateway` for the gateway's own doing).
    pub key_id: String,
    /// The database's labels then.
    pub labels: BTreeMap<String, String>,
    /// The database's owner then.
    pub owner: Option<String>,
}

/// The database an event is about, as it was.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Name.
    pub database: &'a str,
    /// Engine.
    pub backend: BackendKind,
    /// Labels.
    pub labels: &'a BTreeMap<String, String>,
    /// Owner key.
    pub owner: Option<&'a str>,
}

impl<'a> Subject<'a> {
    /// The subject of a registry record.
    pub fn of(r: &'a super::catalog::Record) -> Self {
        Subject {
            database: r.provisioned.name.as_str(),
            backend: r.backend,
            labels: &r.labels,
            owner: r.owner.as_deref(),
        }
    }
}

/// Which events a watch sends.
#[derive(Debug, Clone, Default)]
pub struct WatchFilter {
    /// Only databases carrying all these labels.
    pub labels: BTreeMap<String, String>,
    /// Only this engine.
    pub backend: Option<BackendKind>,
    /// Resume after this sequence; `None`: only new events.
    pub since: Option<i64>,
}

impl WatchFilter {
    fn matches(&self, who: &Principal, e: &DbEvent) -> bool {
        self.backend.is_none_or(|b| b == e.backend)
            && self.labels.iter().all(|(k, v)| e.labels.get(k) == Some(v))
            && who
                .role_on(&e.database, &e.labels, e.owner.as_deref())
                .is_some()
    }
}

/// The event log: numbering, storing, broadcasting; see the module docs.
#[derive(Debug)]
pub struct Events {
    catalog: Catalog,
    clock: SharedClock,
    tx: broadcast::Sender<Arc<DbEvent>>,
    /// The last sequence number given; held while one event is stored and broadcast.
    head: Mutex<i64>,
    /// Events the catalog keeps ([`RETAINED`]; smaller in tests).
    retained: i64,
}

fn gone(after: i64, retained: i64) -> Error {
    Error::OutOfRange(format!(
        "the events after sequence {after} are no longer kept (the gateway keeps the newest \
         {retained}): list the databases again, then watch without `since`"
    ))
}

impl Events {
    /// The log stored in `catalog`, continuing its numbering.
    pub async fn open(catalog: Catalog, clock: SharedClock) -> Result<Self> {
        super::registry::blocking(move || Self::with_limits(catalog, clock, RETAINED, BROADCAST))
            .await
    }

    /// Like [`open`](Self::open), keeping `retained` events and buffering `broadcast` live.
    /// Reads the catalog: call it from a blocking thread.
    pub fn with_limits(
        catalog: Catalog,
        clock: SharedClock,
        retained: i64,
        broadcast: usize,
    ) -> Result<Self> {
        let head = catalog.events_head()?;
        let (tx, _) = broadcast::channel(broadcast.max(1));
        Ok(Events {
            catalog,
            clock,
            tx,
            head: Mutex::new(head),
            retained: retained.max(1),
        })
    }

    /// Records an event about `subject` caused by `key_id`. Never fails the caller.
    pub async fn publish(
        &self,
        kind: EventKind,
        subject: Subject<'_>,
        cause: String,
        key_id: &str,
    ) {
        let mut head = self.head.lock().await;
        let event = DbEvent {
            seq: *head + 1,
            kind,
            database: subject.database.to_owned(),
            backend: subject.backend,
            at_ms: self.clock.now_ms(),
            cause,
            key_id: key_id.to_owned(),
            labels: subject.labels.clone(),
            owner: subject.owner.map(str::to_owned),
        };
        let (cat, mut ev) = (self.catalog.clone(), event);
        let keep = self.retained;
        // The catalog may number it later: another gateway sharing it stored events since.
        let event = match blocking(move || cat.event_append(&mut ev, keep).map(|()| ev)).await {
            Ok(stored) => stored,
            Err(e) => {
                warn!(error = %e, kind = kind.as_str(), "could not store a lifecycle event; it is dropped");
                return;
            }
        };
        *head = event.seq;
        // No receiver is fine: nobody watches.
        let _ = self.tx.send(Arc::new(event));
    }

    async fn page(&self, after: i64) -> Result<Vec<DbEvent>> {
        let (cat, retained) = (self.catalog.clone(), self.retained);
        blocking(move || {
            if let Some(oldest) = cat.events_oldest()?
                && oldest > after + 1
            {
                return Err(gone(after, retained));
            }
            cat.events_after(after, PAGE)
        })
        .await
    }

    /// The events `filter` selects that `who` may see, as a stream; see the module docs.
    pub async fn watch(
        self: &Arc<Self>,
        who: Principal,
        filter: WatchFilter,
    ) -> Result<BoxStream<'static, Result<DbEvent>>> {
        // Subscribe first: whatever is stored after the backlog is read arrives live.
        let mut live = self.tx.subscribe();
        let head = *self.head.lock().await;
        let start = match filter.since {
            None => head,
            Some(s) if s > head => {
                return Err(Error::OutOfRange(format!(
                    "since {s} is beyond the newest event ({head}); pass a sequence this gateway sent"
                )));
            }
            Some(s) if s < 0 => return Err(Error::invalid("since", "must not be negative")),
            Some(s) => s,
        };
        // Fail the call itself, not the stream, when the backlog is gone already.
        let first = self.page(start).await?;
        let (tx, rx) = mpsc::channel::<Result<DbEvent>>(STREAM_BUFFER);
        let events = Arc::clone(self);
        tokio::spawn(async move {
            let mut last = start;
            let mut backlog = first;
            loop {
                // Catch up from the catalog.
                while !backlog.is_empty() {
                    for e in backlog.drain(..) {
                        last = e.seq;
                        if filter.matches(&who, &e) && tx.send(Ok(e)).await.is_err() {
                            return;
                        }
                    }
                    backlog = match events.page(last).await {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    };
                }
                // Then live, until this watcher falls behind the broadcast.
                loop {
                    let received = tokio::select! {
                        r = live.recv() => r,
                        () = tx.closed() => return,
                    };
                    match received {
                        Ok(e) if e.seq <= last => {}
                        Ok(e) if e.seq == last + 1 => {
                            last = e.seq;
                            if filter.matches(&who, &e) && tx.send(Ok((*e).clone())).await.is_err()
                            {
                                return;
                            }
                        }
                        // A gap cannot happen (stored before sent); the catalog has it anyway.
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            debug!(last, "a watcher fell behind; catching up from the catalog");
                            break;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
                backlog = match events.page(last).await {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::core::clock::ManualClock;

    fn log(dir: &std::path::Path, retained: i64, broadcast: usize) -> Arc<Events> {
        let catalog = Catalog::open(&dir.join("catalog.db")).expect("catalog");
        Arc::new(
            Events::with_limits(catalog, ManualClock::new(), retained, broadcast).expect("events"),
        )
    }

    async fn publish(e: &Events, name: &str) {
        let labels = BTreeMap::new();
        let subject = Subject {
            database: name,
            backend: BackendKind::Sqlite,
            labels: &labels,
            owner: None,
        };
        e.publish(EventKind::Created, subject, String::new(), "-")
            .await;
    }

    async fn next_seq(s: &mut BoxStream<'static, Result<DbEvent>>) -> i64 {
        tokio::time::timeout(std::time::Duration::from_secs(5), s.next())
            .await
            .expect("an event in time")
            .expect("not ended")
            .expect("not an error")
            .seq
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_the_broadcast_misses_nothing_and_repeats_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        // A broadcast of 2 and a stream buffer of 16: 100 unread events overflow both.
        let events = log(dir.path(), 1000, 2);
        let mut watch = events
            .watch(Principal::Unrestricted, WatchFilter::default())
            .await
            .expect("watch");
        for i in 0..100 {
            publish(&events, &format!("db{i}")).await;
        }
        for want in 1..=100 {
            assert_eq!(next_seq(&mut watch).await, want);
        }
        publish(&events, "late").await;
        assert_eq!(next_seq(&mut watch).await, 101);
    }

    #[tokio::test]
    async fn a_since_older_than_what_is_kept_is_out_of_range() {
        let dir = tempfile::tempdir().expect("dir");
        let events = log(dir.path(), 3, 16);
        for i in 0..5 {
            publish(&events, &format!("db{i}")).await;
        }
        let watch = |since| {
            let events = Arc::clone(&events);
            async move {
                events
                    .watch(
                        Principal::Unrestricted,
                        WatchFilter {
                            since: Some(since),
                            ..Default::default()
                        },
                    )
                    .await
            }
        };
        // Kept: 3, 4, 5.
        assert!(matches!(watch(1).await, Err(Error::OutOfRange(_))));
        assert!(matches!(watch(6).await, Err(Error::OutOfRange(_))));
        let mut s = watch(2).await.expect("from 2");
        for want in 3..=5 {
            assert_eq!(next_seq(&mut s).await, want);
        }
        // The numbering continues across a reopening.
        drop(s);
        let again = log(dir.path(), 3, 16);
        publish(&again, "after").await;
        let mut s = again
            .watch(
                Principal::Unrestricted,
                WatchFilter {
                    since: Some(5),
                    ..Default::default()
                },
            )
            .await
            .expect("watch");
        assert_eq!(next_seq(&mut s).await, 6);
    }
}
