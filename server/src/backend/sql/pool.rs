//! The sqlx engines on the shared pool ([`crate::backend::pool`]: a pool per spawned
//! database under one cap per server, LRU eviction of idle connections, the availability probe
//! and the pool gauge), plus what a SQL connection needs while lent to a call: [`Pooled`]
//! tracks whether a statement is running or its results were left unread, and whether a
//! transaction is open, so that a dropped call cancels its statement on the server (through an
//! administrative connection) and a dropped session rolls back before the connection is kept.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::debug;

use super::{
    Control, CopySource, Engine, Outcome, Prepared, RowSink, SqlConn, text::placeholder_hint,
};
pub use crate::backend::pool::PoolSizes;
use crate::backend::pool::{Connector, Handle, Lease, Pool, PoolConn, ShareAccount};
use crate::core::{
    error::{Error, QueryErrorKind, Result},
    value::Statement,
};

/// How long a cancel may take.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long administrative work (create, destroy, cancel) may wait for a connection.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// One database server of a sqlx engine: the shared pool over its connections.
pub type Server<E> = Pool<E>;

#[async_trait]
impl<C: SqlConn> PoolConn for C {
    fn is_broken(&self) -> bool {
        SqlConn::is_broken(self)
    }

    async fn ping(&mut self) -> Result<()> {
        SqlConn::ping(self).await
    }

    async fn close(self) {
        SqlConn::close(self).await;
    }
}

#[async_trait]
impl<E: Engine> Connector for E {
    type Conn = E::Conn;
    type Target = E::Target;
    const KIND: crate::backend::BackendKind = <E as Engine>::KIND;

    async fn open(&self, target: &E::Target, _by: Instant) -> Result<E::Conn> {
        // The pool bounds the connect by `by`.
        self.connect(target).await
    }
}

/// The connections of one spawned database (or the administrative ones).
#[derive(Debug)]
pub struct DbPool<E: Engine>(Handle<E>);

impl<E: Engine> DbPool<E> {
    /// The pool of a spawned database (its key) reached through `target`, with a fixed
    /// per-database limit (one-off administrative work as the database's own login).
    pub fn of(server: &Arc<Server<E>>, key: &str, target: E::Target) -> Self {
        Self(server.database(key, target))
    }

    /// The pool of a spawned database (its key) reached through `target`, within the share
    /// `account` of the server's connections (one per open database, for all its logins).
    pub fn shared(
        server: &Arc<Server<E>>,
        account: &Arc<ShareAccount>,
        key: &str,
        target: E::Target,
    ) -> Self {
        Self(server.shared_database(account, key, target))
    }

    /// The administrative pool of `server`.
    pub fn admin(server: &Arc<Server<E>>) -> Self {
        Self(server.admin())
    }

    /// A connection, waiting at most until `deadline`; fails at once while the server is down.
    pub async fn acquire(&self, deadline: Instant) -> Result<Pooled<E>> {
        let lease = self.0.acquire(deadline).await?;
        Ok(Pooled {
            lease: Some(lease),
            busy: false,
            abandoned: false,
            in_tx: false,
        })
    }
}

/// Interrupts the statement running on connection `server_id`, through an administrative
/// connection. Best effort: the connection is being dropped anyway.
async fn cancel<E: Engine>(server: Arc<Server<E>>, server_id: u64) {
    let backend = <E as Engine>::KIND.as_str();
    let deadline = Instant::now() + CANCEL_TIMEOUT;
    let admin = server.admin();
    let r = tokio::time::timeout_at(deadline, async {
        let mut conn = admin.acquire(deadline).await?;
        // Cut short, the connection is in an unknown state: closed, not kept.
        conn.retire = true;
        E::cancel(conn.conn_mut(), server_id).await?;
        conn.retire = false;
        Ok::<_, Error>(())
    })
    .await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(backend, error = %e, "could not cancel a statement"),
        Err(_) => debug!(backend, "cancelling a statement timed out"),
    }
}

/// A connection lent to one call. Dropped, it goes back to the idle list if it is clean; rolls
/// back first if a transaction is open; and is cancelled on the server and closed if it was
/// dropped in the middle of a statement or left with unread results.
pub struct Pooled<E: Engine> {
    lease: Option<Lease<E>>,
    /// A call is running on it right now (false again only when the call returns).
    busy: bool,
    /// A statement's results were left unread: the server may still be running it.
    abandoned: bool,
    /// A transaction of the gateway's is open on it.
    in_tx: bool,
}

impl<E: Engine> fmt::Debug for Pooled<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("lease", &self.lease)
            .field("busy", &self.busy)
            .field("abandoned", &self.abandoned)
            .field("in_tx", &self.in_tx)
            .finish_non_exhaustive()
    }
}

impl<E: Engine> Pooled<E> {
    /// Whether further statements may run on it.
    pub fn usable(&self) -> bool {
        !self.abandoned
            && !self.busy
            && self
                .lease
                .as_ref()
                .is_some_and(|l| !SqlConn::is_broken(l.conn()))
    }

    /// Whether a call was interrupted in the middle (the guard outlived a dropped future).
    pub fn interrupted(&self) -> bool {
        self.busy
    }

    /// The raw connection for one engine call; pair with [`Self::end_use`].
    pub fn begin_use(&mut self) -> Result<&mut E::Conn> {
        if self.abandoned || self.busy {
            return Err(Error::internal(
                "a connection was used after being abandoned",
            ));
        }
        self.busy = true;
        self.lease
            .as_mut()
            .map(Lease::conn_mut)
            .ok_or_else(|| Error::internal("a connection was used after being closed"))
    }

    /// Marks the end of an engine call begun with [`Self::begin_use`].
    pub fn end_use<T>(&mut self, result: &Result<T>) {
        self.busy = false;
        if let (Err(Error::Unavailable(_)), Some(lease)) = (result, &self.lease) {
            lease.pool().suspect();
        }
    }

    /// Applies the statement timeout.
    pub async fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        let c = self.begin_use()?;
        let r = c.set_timeout(timeout).await;
        self.end_use(&r);
        r
    }

    /// Runs transaction control. A failure leaves the connection in an unknown state, so it is
    /// closed rather than reused.
    pub async fn control(&mut self, op: Control) -> Result<()> {
        let c = self.begin_use()?;
        let r = c.control(op).await;
        self.end_use(&r);
        match (&r, op) {
            (Err(_), _) => self.abandoned = true,
            (Ok(()), Control::Begin | Control::BeginReadOnly) => self.in_tx = true,
            (Ok(()), Control::Commit | Control::Rollback) => self.in_tx = false,
            _ => {}
        }
        r
    }

    /// Prepares a client statement.
    pub async fn describe(&mut self, stmt: &Statement) -> Result<Prepared<E>> {
        let c = self.begin_use()?;
        let r = c.describe(stmt).await;
        self.end_use(&r);
        r.map_err(|e| hinted::<E>(e, stmt))
    }

    /// Runs a prepared statement into `sink`. When the sink stopped reading early, the rest of
    /// the result is still on its way: the connection is abandoned (cancelled and closed).
    /// Outside a transaction it runs read-write.
    pub async fn run(
        &mut self,
        prepared: &Prepared<E>,
        stmt: &Statement,
        sink: &mut dyn RowSink,
    ) -> Result<Outcome> {
        self.run_as(false, prepared, stmt, sink).await
    }

    /// Runs a prepared statement outside any transaction with the engine refusing its writes
    /// (see [`SqlConn::set_read_only`]); otherwise as [`Self::run`].
    pub async fn run_read_only(
        &mut self,
        prepared: &Prepared<E>,
        stmt: &Statement,
        sink: &mut dyn RowSink,
    ) -> Result<Outcome> {
        if self.in_tx {
            return Err(Error::internal(
                "a read-only attempt was made inside a transaction",
            ));
        }
        self.run_as(true, prepared, stmt, sink).await
    }

    async fn run_as(
        &mut self,
        read_only: bool,
        prepared: &Prepared<E>,
        stmt: &Statement,
        sink: &mut dyn RowSink,
    ) -> Result<Outcome> {
        self.access(read_only).await?;
        let c = self.begin_use()?;
        let r = c.run(prepared, stmt, &mut *sink).await;
        self.end_use(&r);
        if sink.stopped() {
            self.abandoned = true;
        }
        r
    }

    /// Makes statements outside a transaction read-write again (see
    /// [`SqlConn::set_read_only`]), for callers that run them on the raw connection.
    pub async fn read_write(&mut self) -> Result<()> {
        self.access(false).await
    }

    /// Sets the access mode of statements outside a transaction (a transaction has its own).
    async fn access(&mut self, read_only: bool) -> Result<()> {
        if self.in_tx {
            return Ok(());
        }
        let c = self.begin_use()?;
        let r = c.set_read_only(read_only).await;
        self.end_use(&r);
        r
    }

    /// Bulk-loads rows (see [`SqlConn::copy_in`]).
    pub async fn copy_in(
        &mut self,
        table: &str,
        columns: &[String],
        rows: CopySource<'_>,
    ) -> Result<Option<u64>> {
        self.read_write().await?;
        let c = self.begin_use()?;
        let r = c.copy_in(table, columns, rows).await;
        self.end_use(&r);
        r
    }

    /// Runs a statement for its effect only.
    pub async fn run_discarding(&mut self, stmt: &Statement) -> Result<Outcome> {
        self.read_write().await?;
        let c = self.begin_use()?;
        let r = c.run_discarding(stmt).await;
        self.end_use(&r);
        r.map_err(|e| hinted::<E>(e, stmt))
    }
}

/// A syntax error (SQLSTATE 42601) of a statement written with another engine's placeholders
/// says so (see [`placeholder_hint`]).
fn hinted<E: Engine>(err: Error, stmt: &Statement) -> Error {
    let syntax = matches!(
        &err,
        Error::Query { kind: QueryErrorKind::Syntax, code: Some(c), .. } if c == "42601"
    );
    match placeholder_hint(&stmt.sql, stmt.params.len(), E::FLAVOR) {
        Some(hint) if syntax => err.with_hint(hint),
        _ => err,
    }
}

impl<E: Engine> Drop for Pooled<E> {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let dirty = self.busy || self.abandoned;
        if dirty && !lease.is_admin() {
            // The server may still be running a statement for nobody: stop it, then close.
            let server_id = SqlConn::server_id(lease.conn());
            let detached = lease.detach();
            let cleanup = async move {
                cancel(Arc::clone(detached.pool()), server_id).await;
                detached.finish(false);
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn(cleanup)),
                Err(_) => drop(cleanup),
            }
        } else if dirty {
            // Administrative statements are short; nothing to cancel.
            let mut lease = lease;
            lease.retire = true;
        } else if self.in_tx {
            let mut detached = lease.detach();
            let rollback = async move {
                let ok = detached.conn_mut().control(Control::Rollback).await.is_ok();
                detached.finish(ok);
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn(rollback)),
                Err(_) => drop(rollback),
            }
        }
        // Otherwise the lease goes back to the idle list as it drops.
    }
}
