//! Provisioning on MySQL/MariaDB: a schema and a user per spawned database, created, dropped and
//! swept through the administrative pool (the steps themselves are
//! [`SqlBackend`](crate::backend::sql::provision::SqlBackend)'s; this is their SQL).

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Row as _;

use super::{
    CAPABILITIES, CAPABILITIES_RETURNING, MAX_IDENT, Mysql, MysqlDialect,
    conn::{MyConn, MysqlEngine, MysqlTarget, TypeCache},
};
use crate::{
    backend::{
        Capabilities,
        reader::reader_ident,
        sql::{
            Locator, Relogin, Server,
            provision::{Admin, AdminConn, Provisioner, Shared},
        },
    },
    core::{
        error::{Error, Result},
        table::SqlDialect,
    },
};

#[async_trait]
impl AdminConn for MyConn {
    async fn exec(&mut self, sql: String) -> Result<()> {
        self.admin_exec(sql).await
    }

    async fn strings(&mut self, sql: &'static str, arg: &str) -> Result<Vec<String>> {
        let r = sqlx::query(sql)
            .bind(arg)
            .persistent(false)
            .fetch_all(self.raw())
            .await;
        match r {
            Ok(rows) => rows
                .iter()
                .map(|row| row.try_get::<String, _>(0).map_err(super::classify))
                .collect(),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn integers(&mut self, sql: &'static str, arg: &str) -> Result<Vec<u64>> {
        let r = sqlx::query(sql)
            .bind(arg)
            .persistent(false)
            .fetch_all(self.raw())
            .await;
        match r {
            Ok(rows) => rows
                .iter()
                .map(|row| row.try_get::<u64, _>(0).map_err(super::classify))
                .collect(),
            Err(e) => Err(self.fail(e)),
        }
    }
}

/// The account of a spawned database's user. `ident` is `[a-z0-9_]` (checked by
/// [`Locator::parse`]), so it is safe inside quotes; `'%'` lets the gateway connect from any
/// host it runs on.
fn account(ident: &str) -> String {
    format!("'{ident}'@'%'")
}

#[async_trait]
impl Provisioner for Mysql {
    type Engine = MysqlEngine;
    const MAX_IDENT: usize = MAX_IDENT;
    const MAX_PREFIX: usize = 16;

    fn capabilities(&self, server: &Server<MysqlEngine>) -> &'static Capabilities {
        // Known once the server has answered; until then, the conservative set.
        match server.engine().flavor() {
            Some(f) if f.returning => &CAPABILITIES_RETURNING,
            _ => &CAPABILITIES,
        }
    }

    fn dialect(&self) -> &'static dyn SqlDialect {
        &MysqlDialect
    }

    fn targets(
        &self,
        loc: &Locator,
        relogin: &dyn Fn(String, bool) -> Relogin,
    ) -> (MysqlTarget, MysqlTarget) {
        let types = Arc::new(TypeCache::default());
        let reader = reader_ident(&loc.ident);
        (
            self.target(loc, &loc.ident, &types, relogin(loc.ident.clone(), false)),
            self.target(loc, &reader, &types, relogin(reader.clone(), true)),
        )
    }

    /// Creates (or completes) the schema and the user of `loc`.
    async fn provision(&self, admin: &mut Admin<MysqlEngine>, loc: &Locator) -> Result<()> {
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
    }

    /// Creates (or completes) the read-only user of `loc`, which read grants log in as:
    /// `SELECT` and `SHOW VIEW` on its schema and nothing else, so the server refuses every
    /// write, DDL, temporary table, routine call and file access from it.
    async fn ensure_reader(backend: &Arc<Shared<Self>>, loc: &Locator) -> Result<()> {
        let mut admin = backend.admin().await?;
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
    }

    /// Drops the schema and the user named `ident`; what is already gone is fine.
    async fn unprovision(&self, admin: &mut Admin<MysqlEngine>, ident: &str) -> Result<()> {
        let reader = reader_ident(ident);
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
    }

    /// The size of the schema named `ident`, if it exists.
    async fn size(&self, admin: &mut Admin<MysqlEngine>, ident: &str) -> Result<Option<u64>> {
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
        admin
            .integer(
                "SELECT CAST(COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS UNSIGNED) \
                 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
                ident,
            )
            .await
    }

    /// Schemas and users whose names match `like`.
    async fn names(&self, admin: &mut Admin<MysqlEngine>, like: &str) -> Result<Vec<String>> {
        let mut found = admin
            .strings(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
                like,
            )
            .await?;
        found.extend(
            admin
                .strings("SELECT User FROM mysql.user WHERE User LIKE ?", like)
                .await?,
        );
        Ok(found)
    }

    /// Sets the password of the login `user` back to the catalog's (see [`Relogin`]).
    async fn reset_login(
        &self,
        admin: &mut Admin<MysqlEngine>,
        user: &str,
        password: &str,
        _reader: bool,
    ) -> Result<()> {
        // The password is generated hex (checked by Locator::parse): safe inside quotes.
        admin
            .exec(format!(
                "ALTER USER {} IDENTIFIED BY '{password}'",
                account(user)
            ))
            .await
    }
}
