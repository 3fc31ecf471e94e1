//! Provisioning on MySQL/MariaDB: a schema and a user per spawned database, created, dropped and
//! swept through the administrative pool.

use std::{collections::BTreeSet, sync::Arc};

use sqlx::Row as _;
use tokio::time::Instant;

use super::{
    MysqlBackend, MysqlDialect,
    conn::{MyConn, MysqlEngine},
};
use crate::{
    backend::{
        reader::reader_ident,
        sql::{
            Locator, Server,
            pool::{ADMIN_TIMEOUT, Pooled},
            text::like_prefix,
        },
    },
    core::{
        error::{Error, Result},
        table::SqlDialect,
    },
};

/// An administrative connection for one provisioning step.
struct Admin(Pooled<MysqlEngine>);

impl Admin {
    /// An administrative connection of `server`, waiting at most the administrative timeout.
    async fn of(server: &Arc<Server<MysqlEngine>>) -> Result<Self> {
        let pooled = server
            .admin()
            .acquire(Instant::now() + ADMIN_TIMEOUT)
            .await?;
        Ok(Self(pooled))
    }

    fn conn(&mut self) -> Result<&mut MyConn> {
        self.0.begin_use()
    }

    /// Runs a statement built from quoted names and generated hex; never client values.
    async fn exec(&mut self, sql: String) -> Result<()> {
        let r = self.conn()?.admin_exec(sql).await;
        self.0.end_use(&r);
        r
    }

    /// The first column of the rows `sql` returns for the bound argument, as text.
    async fn strings(&mut self, sql: &'static str, arg: &str) -> Result<Vec<String>> {
        let conn = self.conn()?;
        let r = sqlx::query(sql)
            .bind(arg)
            .persistent(false)
            .fetch_all(conn.raw())
            .await;
        let r = match r {
            Ok(rows) => rows
                .iter()
                .map(|row| row.try_get::<String, _>(0).map_err(super::classify))
                .collect(),
            Err(e) => Err(conn.fail(e)),
        };
        self.0.end_use(&r);
        r
    }

    /// The first column of the rows `sql` returns for the bound argument, as integers.
    async fn integers(&mut self, sql: &'static str, arg: &str) -> Result<Vec<u64>> {
        let conn = self.conn()?;
        let r = sqlx::query(sql)
            .bind(arg)
            .persistent(false)
            .fetch_all(conn.raw())
            .await;
        let r = match r {
            Ok(rows) => rows
                .iter()
                .map(|row| row.try_get::<u64, _>(0).map_err(super::classify))
                .collect(),
            Err(e) => Err(conn.fail(e)),
        };
        self.0.end_use(&r);
        r
    }
}

/// Runs `fut` under the administrative timeout.
async fn admin_timeout<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(ADMIN_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout(
                "the mysql server did not finish an administrative step in time".into(),
            ))
        })
}

/// The account of a spawned database's user. `ident` is `[a-z0-9_]` (checked by
/// [`Locator::parse`]), so it is safe inside quotes; `'%'` lets the gateway connect from any
/// host it runs on.
fn account(ident: &str) -> String {
    format!("'{ident}'@'%'")
}

impl MysqlBackend {
    async fn admin(&self) -> Result<Admin> {
        Admin::of(&self.server).await
    }

    /// Creates (or completes) the schema and the user of `loc`.
    pub(super) async fn provision(&self, loc: &Locator) -> Result<()> {
        admin_timeout(async {
            let mut admin = self.admin().await?;
            let schema = MysqlDialect.quote_ident(&loc.ident);
            let account = account(&loc.ident);
            // The password is generated hex (checked by Locator::parse): safe inside quotes.
            let password = &loc.password;
            admin
                .exec(format!(
                    "CREATE DATABASE IF NOT EXISTS {schema} CHARACTER SET utf8mb4"
                ))
                .await?;
            admin
                .exec(format!(
                    "CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{password}'"
                ))
                .await?;
            admin
                .exec(format!("ALTER USER {account} IDENTIFIED BY '{password}'"))
                .await?;
            // Every privilege on its own schema and none elsewhere: naming another schema is
            // "access denied" (no GRANT OPTION, FILE, PROCESS, SUPER or global rights).
            admin
                .exec(format!("GRANT ALL PRIVILEGES ON {schema}.* TO {account}"))
                .await
        })
        .await?;
        ensure_reader(Arc::clone(&self.server), loc.clone()).await
    }

    /// Drops the schema and the user named `ident`; what is already gone is fine.
    pub(super) async fn unprovision(&self, ident: &str) -> Result<()> {
        let reader = reader_ident(ident);
        self.server.close_idle(ident);
        self.server.close_idle(&reader);
        admin_timeout(async {
            let mut admin = self.admin().await?;
            // MySQL keeps a dropped user's sessions alive: end them first.
            for user in [ident, reader.as_str()] {
                let sessions = admin
                    .integers(
                        "SELECT CAST(ID AS UNSIGNED) FROM information_schema.PROCESSLIST \
                         WHERE USER = ?",
                        user,
                    )
                    .await?;
                for id in sessions {
                    match admin.exec(format!("KILL CONNECTION {id}")).await {
                        // 1094: the session ended meanwhile.
                        Err(Error::Query { code: Some(c), .. }) if c == "1094" => {}
                        other => other?,
                    }
                }
            }
            let schema = MysqlDialect.quote_ident(ident);
            admin
                .exec(format!("DROP DATABASE IF EXISTS {schema}"))
                .await?;
            admin
                .exec(format!(
                    "DROP USER IF EXISTS {}, {}",
                    account(ident),
                    account(&reader)
                ))
                .await
        })
        .await
    }

    /// The size of the schema named `ident`, if it exists.
    pub(super) async fn schema_size(&self, ident: &str) -> Result<Option<u64>> {
        admin_timeout(async {
            let mut admin = self.admin().await?;
            let exists = !admin
                .strings(
                    "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                    ident,
                )
                .await?
                .is_empty();
            if !exists {
                return Ok(None);
            }
            let size = admin
                .integers(
                    "SELECT CAST(COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS UNSIGNED) \
                     FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
                    ident,
                )
                .await?;
            Ok(size.first().copied())
        })
        .await
    }

    /// Schemas and users carrying this backend's prefix whose names are not in `known`.
    pub(super) async fn orphans(&self, known: &BTreeSet<String>) -> Result<BTreeSet<String>> {
        admin_timeout(async {
            let mut admin = self.admin().await?;
            let pattern = like_prefix(&self.prefix);
            let mut found = admin
                .strings(
                    "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
                    &pattern,
                )
                .await?;
            found.extend(
                admin
                    .strings("SELECT User FROM mysql.user WHERE User LIKE ?", &pattern)
                    .await?,
            );
            Ok(found
                .into_iter()
                .filter(|n| Locator::is_ident(n, &self.prefix, super::MAX_IDENT))
                .filter(|n| !known.contains(n))
                .collect())
        })
        .await
    }
}

/// Creates (or completes) the read-only user of `loc`, which read grants log in as:
/// `SELECT` and `SHOW VIEW` on its schema and nothing else, so the server refuses every
/// write, DDL, temporary table, routine call and file access from it. Idempotent, and run
/// again before the first read-only call of every open database, so that databases spawned before read-only users existed get one.
pub(super) async fn ensure_reader(server: Arc<Server<MysqlEngine>>, loc: Locator) -> Result<()> {
    admin_timeout(async {
        let mut admin = Admin::of(&server).await?;
        let schema = MysqlDialect.quote_ident(&loc.ident);
        let account = account(&reader_ident(&loc.ident));
        // The password is generated hex (checked by Locator::parse): safe inside quotes. The
        // reader shares it with the owner: both are the gateway's, never shown to clients.
        let password = &loc.password;
        admin
            .exec(format!(
                "CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{password}'"
            ))
            .await?;
        admin
            .exec(format!("ALTER USER {account} IDENTIFIED BY '{password}'"))
            .await?;
        admin
            .exec(format!(
                "GRANT SELECT, SHOW VIEW ON {schema}.* TO {account}"
            ))
            .await
    })
    .await
}

/// Sets the password of the database login `user` back to `password` (the catalog's), for a
/// login the server refused (see [`Relogin`](crate::backend::sql::Relogin)).
pub(super) async fn reset_login(
    server: Arc<Server<MysqlEngine>>,
    user: String,
    password: String,
) -> Result<()> {
    admin_timeout(async {
        let mut admin = Admin::of(&server).await?;
        // The password is generated hex (checked by Locator::parse): safe inside quotes.
        admin
            .exec(format!(
                "ALTER USER {} IDENTIFIED BY '{password}'",
                account(&user)
            ))
            .await
    })
    .await
}
