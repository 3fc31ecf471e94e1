//! The [`Backend`] of the sqlx server engines, written once: PostgreSQL and MySQL/MariaDB
//! differ in the SQL that makes, grants, measures and drops a database and its logins, not in
//! what `create`, `destroy`, `open`, `size_bytes` and `remove_orphans` do with it. An engine
//! states those differences as a [`Provisioner`] and gets [`SqlBackend`], which
//! - names databases with a [`Locator`] (`<prefix><name>_<hex>` and a generated password),
//! - runs every provisioning step on one administrative connection ([`Admin`]) under one
//!   [`ADMIN_TIMEOUT`] ([`admin_timeout`]),
//! - closes a database's idle connections before dropping it, sweeps orphans by prefix,
//! - opens a database as its own login plus a read-only one ([`WithReader`]), both through the
//!   shared pool with its server-wide cap ([`super::pool`]), resetting a login the server
//!   refuses to the catalog's password ([`Relogin`]).
//!
//! Why not Redis: its databases are key prefixes confined by ACL users, made and swept with
//! ACL and SCAN commands rather than SQL on an administrative connection, and its locator is
//! not a [`Locator`]; it shares the connection cap and the probe ([`crate::backend::pool`])
//! instead.
//!
//! # Adding a sqlx engine
//!
//! Implement [`super::Engine`] and [`super::SqlConn`] (the data plane), [`AdminConn`] for its
//! connection (three administrative primitives) and [`Provisioner`] (the SQL of each step);
//! name the backend `pub type <Engine>Backend = SqlBackend<…>`.

use std::{collections::BTreeSet, fmt, sync::Arc};

use async_trait::async_trait;
use tokio::time::Instant;

use super::{
    DbPool, Engine, Locator, Relogin, RowSink, Server, SqlConn, SqlDatabase,
    credentials::Watchlist,
    pool::{ADMIN_TIMEOUT, PoolSizes, Pooled},
};
use crate::{
    backend::{
        Backend, BackendKind, Capabilities, Database, Provisioned, ServerBackendConfig,
        reader::{WithReader, reader_ident},
    },
    core::{
        error::{Error, Result},
        names::DatabaseName,
        table::SqlDialect,
        value::{Column, Row, Statement, Value},
    },
};

/// What provisioning needs of an engine's connection beyond the data plane.
#[async_trait]
pub trait AdminConn: SqlConn {
    /// Runs an administrative statement, built from quoted names and generated hex only,
    /// never client values.
    async fn exec(&mut self, sql: String) -> Result<()>;
}

/// Gathers the first column of every row as text (names, and integers in decimal).
#[derive(Default)]
struct FirstColumn(Vec<String>);

#[async_trait]
impl RowSink for FirstColumn {
    async fn columns(&mut self, _columns: Vec<Column>) -> Result<()> {
        Ok(())
    }

    fn row(&mut self, row: Row) -> Result<bool> {
        let text = match row.into_iter().next() {
            Some(Value::Text(s) | Value::Decimal(s)) => s,
            Some(Value::Int(i)) => i.to_string(),
            Some(Value::Bytes(b)) => String::from_utf8(b).map_err(Error::internal)?,
            other => {
                return Err(Error::internal(format!(
                    "an administrative query returned {other:?}"
                )));
            }
        };
        self.0.push(text);
        Ok(true)
    }

    fn stopped(&self) -> bool {
        false
    }
}

/// An administrative connection for one provisioning step.
pub struct Admin<E: Engine>(Pooled<E>);

impl<E: Engine> Admin<E>
where
    E::Conn: AdminConn,
{
    /// An administrative connection of `server`, waiting at most the administrative timeout.
    pub async fn of(server: &Arc<Server<E>>) -> Result<Self> {
        let pooled = DbPool::admin(server)
            .acquire(Instant::now() + ADMIN_TIMEOUT)
            .await?;
        Ok(Self(pooled))
    }

    /// Runs a statement built from quoted names and generated hex; never client values.
    pub async fn exec(&mut self, sql: String) -> Result<()> {
        let r = self.0.begin_use()?.exec(sql).await;
        self.0.end_use(&r);
        r
    }

    /// The first column of the rows `sql` returns for the bound argument, as text.
    pub async fn strings(&mut self, sql: &'static str, arg: &str) -> Result<Vec<String>> {
        let stmt = Statement {
            sql: sql.into(),
            params: vec![Value::Text(arg.to_owned())],
        };
        let c = self.0.begin_use()?;
        let r = async {
            let prepared = c.describe(&stmt).await?;
            let mut rows = FirstColumn::default();
            c.run(&prepared, &stmt, &mut rows).await?;
            Ok(rows.0)
        }
        .await;
        self.0.end_use(&r);
        r
    }

    /// The first column of the rows `sql` returns for the bound argument, as integers.
    pub async fn integers(&mut self, sql: &'static str, arg: &str) -> Result<Vec<u64>> {
        self.strings(sql, arg)
            .await?
            .iter()
            .map(|s| s.parse().map_err(Error::internal))
            .collect()
    }

    /// The first integer `sql` returns, if it returns a row.
    pub async fn integer(&mut self, sql: &'static str, arg: &str) -> Result<Option<u64>> {
        Ok(self.integers(sql, arg).await?.first().copied())
    }
}

/// Runs `fut` under the administrative timeout of the `kind` server.
pub async fn admin_timeout<T>(
    kind: BackendKind,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(ADMIN_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout(format!(
                "the {} server did not finish an administrative step in time",
                kind.as_str()
            )))
        })
}

/// What the sqlx server engines support; each engine states what it does differently.
pub const SQL_SERVER: Capabilities = Capabilities {
    sql: true,
    transactions: true,
    sessions: true,
    typed_params: true,
    table_service: true,
    key_value: false,
    last_insert_id: false,
    returning: false,
    placeholder: "?",
    transactional_ddl: true,
    sparql: false,
};

/// Makes the [`Relogin`] of a login (its name, and whether it is the read-only one).
pub type Relogins<'a> = &'a dyn Fn(String, bool) -> Relogin;

/// What differs between the sqlx server engines when provisioning: the SQL of each step and
/// how connections to a spawned database are made. Every step must be idempotent (the
/// Provisioning clause of the contract in [`crate::backend`]).
#[async_trait]
pub trait Provisioner: Send + Sync + fmt::Debug + Sized + 'static {
    /// The data plane.
    type Engine: Engine<Conn: AdminConn> + super::Inspect;
    /// The engine's identifier limit, which generated names stay within.
    const MAX_IDENT: usize;
    /// The longest name prefix allowed, leaving room for the name and the random suffix.
    const MAX_PREFIX: usize;
    /// The SQL dialect TableService uses.
    const DIALECT: &'static dyn SqlDialect;
    /// The bytes the database named by the argument takes; no row when it does not exist.
    const SIZE: &'static str;
    /// The names of databases and logins matching the `LIKE` pattern of the argument.
    const NAMES: &'static [&'static str];
    /// Each login matching the `LIKE` pattern of the argument with the credential the server
    /// stores for it, as `<login> <stored credential>` (see [`super::credentials`]).
    const CREDENTIALS: &'static str;
    /// The logins matching the `LIKE` pattern of the argument whose stored settings differ from
    /// what provisioning gave them; `None` where logins cannot store settings.
    const DRIFTED_SETTINGS: Option<&'static str>;

    /// Whether `stored`, the server's credential for `login`, is that of `password`.
    fn credential_is(login: &str, stored: &str, password: &str) -> bool;

    /// Reads the admin URL of `cfg`: the engine's provisioning, its data plane and where its
    /// administrative connections go.
    fn configure(
        cfg: &ServerBackendConfig,
    ) -> Result<(Self, Self::Engine, <Self::Engine as Engine>::Target)>;
    /// What the engine supports (it may depend on what the server said it is).
    fn capabilities(&self, server: &Server<Self::Engine>) -> &'static Capabilities;
    /// Connection settings of a database's own login and of its read-only login, for one open
    /// database. `relogin(login, reader)` resets a refused login to the catalog's password.
    fn targets(
        &self,
        loc: &Locator,
        relogin: Relogins<'_>,
    ) -> (
        <Self::Engine as Engine>::Target,
        <Self::Engine as Engine>::Target,
    );
    /// Creates (or completes) the database of `loc` and its own login.
    async fn provision(&self, admin: &mut Admin<Self::Engine>, loc: &Locator) -> Result<()>;
    /// Creates the database of `loc` and its own login as a copy of the database of `source`,
    /// made by the server (the caller has closed the gateway's idle connections to `source`).
    /// [`Error::Unsupported`] (the default) when the engine has none, before anything is made.
    async fn provision_copy(
        &self,
        admin: &mut Admin<Self::Engine>,
        source: &Locator,
        loc: &Locator,
    ) -> Result<()> {
        let _ = (admin, source, loc);
        Err(Error::Unsupported {
            operation: "CreateCopy",
            backend: <Self::Engine as Engine>::KIND.as_str(),
        })
    }
    /// Creates (or completes) the read-only login of `loc` and its grants. Runs at create and
    /// before the first read-only call of every open database (databases spawned before
    /// read-only logins existed).
    async fn ensure_reader(backend: &Arc<Shared<Self>>, loc: &Locator) -> Result<()>;
    /// Ends every server session of the database `ident`'s login and read-only login.
    async fn disconnect(&self, admin: &mut Admin<Self::Engine>, ident: &str) -> Result<()>;
    /// Drops the database `ident`, its login and its read-only login; what is gone is fine.
    async fn unprovision(&self, admin: &mut Admin<Self::Engine>, ident: &str) -> Result<()>;
    /// Sets the login `login` back to `password` (and a read-only login back to its settings).
    async fn reset_login(
        &self,
        admin: &mut Admin<Self::Engine>,
        login: &str,
        password: &str,
        reader: bool,
    ) -> Result<()>;
    /// Forgets what the engine keeps about the database `ident` (it was destroyed).
    fn forget(&self, ident: &str) {
        let _ = ident;
    }
}

/// What a [`SqlBackend`] and its open databases share.
#[derive(Debug)]
pub struct Shared<P: Provisioner> {
    /// The server: its pools, cap and probe.
    pub server: Arc<Server<P::Engine>>,
    /// The engine's provisioning.
    pub engine: P,
    /// What this backend's names start with.
    pub prefix: String,
    /// The logins whose credentials [`super::credentials`] keeps the gateway's.
    pub watchlist: Watchlist,
}

impl<P: Provisioner> Shared<P> {
    /// An administrative connection.
    pub async fn admin(&self) -> Result<Admin<P::Engine>> {
        Admin::of(&self.server).await
    }

    /// Runs `fut` under the administrative timeout.
    pub async fn admin_timeout<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        admin_timeout(<P::Engine as Engine>::KIND, fut).await
    }

    /// Resets the login `login` to `password`, the catalog's (see [`Relogin`]).
    fn relogin(self: &Arc<Self>, login: String, password: String, reader: bool) -> Relogin {
        let shared = Arc::clone(self);
        Relogin::new(move || {
            let (shared, login, password) = (Arc::clone(&shared), login.clone(), password.clone());
            Box::pin(async move {
                shared
                    .admin_timeout(async {
                        let mut admin = shared.admin().await?;
                        shared
                            .engine
                            .reset_login(&mut admin, &login, &password, reader)
                            .await
                    })
                    .await
            })
        })
    }

    /// Connection settings of `loc`'s own and read-only logins.
    pub fn targets(
        self: &Arc<Self>,
        loc: &Locator,
    ) -> (<P::Engine as Engine>::Target, <P::Engine as Engine>::Target) {
        let password = loc.password.clone();
        self.engine.targets(loc, &|login, reader| {
            self.relogin(login, password.clone(), reader)
        })
    }

    /// Closes this gateway's idle connections to the database `ident` (both its logins').
    fn close_idle(&self, ident: &str) {
        self.server.close_idle(ident);
        self.server.close_idle(&reader_ident(ident));
    }

    /// Drops the database `ident` and its logins.
    async fn unprovision(&self, ident: &str) -> Result<()> {
        self.close_idle(ident);
        self.admin_timeout(async {
            let mut admin = self.admin().await?;
            self.engine.unprovision(&mut admin, ident).await
        })
        .await?;
        self.engine.forget(ident);
        self.watchlist.forget(ident);
        Ok(())
    }
}

/// A server engine spoken through sqlx: PostgreSQL ([`crate::backend::postgres`]) or
/// MySQL/MariaDB ([`crate::backend::mysql`]).
#[derive(Debug)]
pub struct SqlBackend<P: Provisioner> {
    shared: Arc<Shared<P>>,
}

/// The prefix of every database and login a server engine creates, unless told otherwise.
pub const DEFAULT_PREFIX: &str = "dbf_";

impl<P: Provisioner> SqlBackend<P> {
    /// Connects lazily to the server at `cfg.url` (an admin login that may create databases
    /// and logins). Succeeds while the server is down; [`Backend::available`] then says so
    /// until a background probe reaches it.
    pub async fn new(cfg: ServerBackendConfig) -> Result<Self> {
        Self::with_prefix(cfg, DEFAULT_PREFIX).await
    }

    /// As [`Self::new`], naming databases and logins `<prefix>…`: gateways (or test runs) that
    /// share a server must use different prefixes, as each sweeps its own as orphans.
    pub async fn with_prefix(cfg: ServerBackendConfig, prefix: &str) -> Result<Self> {
        let prefix_ok = prefix.len() <= P::MAX_PREFIX
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !prefix_ok {
            return Err(Error::invalid(
                "prefix",
                format!(
                    "1-{} characters of a-z, 0-9 and _, starting with a letter",
                    P::MAX_PREFIX
                ),
            ));
        }
        let (engine, data, admin) = P::configure(&cfg)?;
        let sizes = PoolSizes::new(
            cfg.max_connections,
            cfg.per_database_connections,
            cfg.idle_timeout,
        )?
        .with_shares(cfg.min_database_connections, cfg.demand_half_life);
        let server = Server::start(data, admin, sizes, cfg.location()).await;
        let shared = Arc::new(Shared {
            server,
            engine,
            prefix: prefix.to_owned(),
            watchlist: Watchlist::default(),
        });
        tokio::spawn(super::credentials::watch(Arc::downgrade(&shared)));
        Ok(Self { shared })
    }

    /// The engine's provisioning.
    pub fn engine(&self) -> &P {
        &self.shared.engine
    }

    /// The server.
    pub fn server(&self) -> &Arc<Server<P::Engine>> {
        &self.shared.server
    }

    /// The names of a spawned database, as the catalog keeps them.
    pub fn locator(&self, db: &Provisioned) -> Result<Locator> {
        Locator::parse(&db.locator, &self.shared.prefix, P::MAX_IDENT)
    }

    /// Databases and logins carrying this backend's prefix whose names are not in `known`.
    async fn orphans(&self, known: &BTreeSet<String>) -> Result<BTreeSet<String>> {
        let s = &self.shared;
        s.admin_timeout(async {
            let mut admin = s.admin().await?;
            let like = super::text::like_prefix(&s.prefix);
            let mut found = Vec::new();
            for query in P::NAMES {
                found.extend(admin.strings(query, &like).await?);
            }
            Ok(found
                .into_iter()
                .filter(|n| Locator::is_ident(n, &s.prefix, P::MAX_IDENT))
                .filter(|n| !known.contains(n))
                .collect())
        })
        .await
    }
}

#[async_trait]
impl<P: Provisioner> Backend for SqlBackend<P> {
    fn kind(&self) -> BackendKind {
        <P::Engine as Engine>::KIND
    }

    fn capabilities(&self) -> &Capabilities {
        self.shared.engine.capabilities(&self.shared.server)
    }

    fn dialect(&self) -> Option<&'static dyn SqlDialect> {
        Some(P::DIALECT)
    }

    fn locate(&self, name: &DatabaseName) -> Provisioned {
        Provisioned {
            name: name.clone(),
            locator: Locator::generate(&self.shared.prefix, P::MAX_IDENT).to_string(),
        }
    }

    async fn create(&self, db: &Provisioned) -> Result<()> {
        let loc = self.locator(db)?;
        let s = &self.shared;
        s.admin_timeout(async {
            let mut admin = s.admin().await?;
            s.engine.provision(&mut admin, &loc).await
        })
        .await?;
        s.admin_timeout(P::ensure_reader(s, &loc)).await?;
        s.watchlist.watch(&loc.ident, &loc.password);
        Ok(())
    }

    async fn destroy(&self, db: &Provisioned) -> Result<()> {
        self.shared.unprovision(&self.locator(db)?.ident).await
    }

    async fn disconnect(&self, db: &Provisioned) -> Result<()> {
        let ident = self.locator(db)?.ident;
        let s = &self.shared;
        s.close_idle(&ident);
        s.admin_timeout(async {
            let mut admin = s.admin().await?;
            s.engine.disconnect(&mut admin, &ident).await
        })
        .await
    }

    /// The engine's copy (see [`Provisioner::provision_copy`]). The gateway's own idle pooled
    /// connections to the source (its own and its read-only login's) are closed first, since
    /// PostgreSQL copies only a database nobody is connected to; one in use (a running
    /// statement, an open session) makes the copy fail, and the core then copies through a dump.
    async fn create_copy(&self, source: &Provisioned, db: &Provisioned) -> Result<()> {
        let (src, loc) = (self.locator(source)?, self.locator(db)?);
        let s = &self.shared;
        s.close_idle(&src.ident);
        s.admin_timeout(async {
            let mut admin = s.admin().await?;
            s.engine.provision_copy(&mut admin, &src, &loc).await
        })
        .await?;
        s.admin_timeout(P::ensure_reader(s, &loc)).await?;
        s.watchlist.watch(&loc.ident, &loc.password);
        Ok(())
    }

    async fn open(&self, db: &Provisioned) -> Result<Arc<dyn Database>> {
        let loc = self.locator(db)?;
        let s = &self.shared;
        s.watchlist.watch(&loc.ident, &loc.password);
        let (owner, reader) = s.targets(&loc);
        // The writer and reader logins draw on one share: it is the database's demand.
        let share = s.server.share(db.name.as_str());
        let writer = DbPool::shared(&s.server, &share, &loc.ident, owner);
        let reader = DbPool::shared(&s.server, &share, &reader_ident(&loc.ident), reader);
        let shared = Arc::clone(s);
        Ok(Arc::new(WithReader::new(
            SqlDatabase::new(writer),
            SqlDatabase::new(reader),
            // Databases spawned before read-only logins existed get theirs on first use.
            Box::new(move || {
                let (shared, loc) = (Arc::clone(&shared), loc.clone());
                Box::pin(async move { shared.admin_timeout(P::ensure_reader(&shared, &loc)).await })
            }),
        )))
    }

    async fn size_bytes(&self, db: &Provisioned) -> Result<Option<u64>> {
        let ident = self.locator(db)?.ident;
        let s = &self.shared;
        s.admin_timeout(async {
            let mut admin = s.admin().await?;
            admin.integer(P::SIZE, &ident).await
        })
        .await
    }

    async fn remove_orphans(&self, known: &[Provisioned]) -> Result<usize> {
        let known: BTreeSet<String> = known
            .iter()
            .filter_map(|p| self.locator(p).ok())
            .map(|l| l.ident)
            .collect();
        let orphans = self.orphans(&known).await?;
        for ident in &orphans {
            self.shared.unprovision(ident).await?;
        }
        Ok(orphans.len())
    }

    fn recognize(&self, known: &[Provisioned]) {
        for loc in known.iter().filter_map(|p| self.locator(p).ok()) {
            self.shared.watchlist.watch(&loc.ident, &loc.password);
        }
    }

    fn available(&self) -> bool {
        self.shared.server.is_up()
    }

    fn availability(&self) -> Result<()> {
        self.shared.server.ensure_up()
    }

    fn connection_shares(&self) -> Vec<crate::backend::share::ShareStats> {
        self.shared.server.share_stats()
    }

    fn set_replicas(&self, replicas: usize) {
        self.shared.server.set_replicas(replicas);
    }

    fn connection_cap(&self) -> Option<(usize, usize)> {
        let server = &self.shared.server;
        Some((server.data_cap(), server.open_connections()))
    }

    fn enforces_read_only(&self) -> bool {
        true
    }
}
